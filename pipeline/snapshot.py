"""Snapshots: deduplicated tables, published atomically under `enriched/`.

CONTRACT STUB: being written.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from pipeline.config import DEFAULT_OUT_DIR


def load(
    table: str, out_dir: Path | str = DEFAULT_OUT_DIR, snapshot_date: date | str | None = None
) -> pd.DataFrame:
    """One table of the latest complete snapshot (or of `snapshot_date`) as a DataFrame."""
    raise NotImplementedError
