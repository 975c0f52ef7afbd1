"""Reading lists of multimodal-LLM papers in, deduplicated and enriched Parquet snapshots out.

The public surface is small: `load` for analysts, the `pipeline` command for everyone else.
"""

from pipeline.config import __version__
from pipeline.snapshot.read import load

__all__ = ["__version__", "load"]
