"""Benchmarks: the cost of a run, against the naive way and the APIs' limits.

`python -m benchmarks.run [--quick]` measures and writes `benchmarks/RESULTS.md`; see
`benchmarks/run.py`. Everything generated (corpus, raw stores, snapshots, Prefect's
database) goes to `benchmarks/_work/`, which git ignores.
"""

from pathlib import Path

BENCHMARKS_DIR = Path(__file__).resolve().parent
WORK_DIR = BENCHMARKS_DIR / "_work"
"""Scratch space of every benchmark (git-ignored)."""
