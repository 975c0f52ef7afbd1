"""A loopback double of the arXiv and Hugging Face Hub APIs, serving sample data.

Used by the tests, the benchmarks and `pipeline run --sandbox`. Its data is sample data:
it follows the real services' wire formats, not the real papers' and models' contents.
"""

from pipeline.sandbox.server import Sandbox
from pipeline.sandbox.wire import Fault, LoggedRequest, Request, Response

__all__ = ["Fault", "LoggedRequest", "Request", "Response", "Sandbox"]
