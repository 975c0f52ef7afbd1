"""A loopback double of the arXiv and Hugging Face Hub APIs, serving sample data.

Used by the tests, the benchmarks and `pipeline run --sandbox`. Its data is sample data:
it follows the real services' wire formats, not the real papers' and models' contents.
"""

from pipeline.sandbox.faults import FaultSpecError, faults_from_spec
from pipeline.sandbox.server import PolitenessViolation, Sandbox, politeness_violations
from pipeline.sandbox.wire import Fault, LoggedRequest, Request, Response

__all__ = [
    "Fault",
    "FaultSpecError",
    "LoggedRequest",
    "PolitenessViolation",
    "Request",
    "Response",
    "Sandbox",
    "faults_from_spec",
    "politeness_violations",
]
