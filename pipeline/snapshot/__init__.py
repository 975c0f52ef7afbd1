"""Snapshots: `build` (pure: every table of a night), `store` (lock, atomic publish,
manifest, Hive views, garbage collection) and `read` (the read path).

Only the read path is imported here, so that `from pipeline.snapshot import load` costs
no more than reading does.
"""

from pipeline.snapshot.read import load, read_manifest

__all__ = ["load", "read_manifest"]
