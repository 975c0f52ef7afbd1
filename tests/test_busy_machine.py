"""A busy machine: `pipeline run --sandbox` completes while three CPU-bound processes keep
both cores busy, run directly and through a temporary Prefect server alike, and a clean
run logs no ERROR line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from nights import FAST_ENV, Command

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
BURNERS = 3


@pytest.fixture
def busy_machine() -> Iterator[None]:
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
        for _ in range(BURNERS)
    ]
    try:
        yield
    finally:
        for burner in burners:
            os.killpg(burner.pid, signal.SIGKILL)
            burner.wait()


@pytest.mark.parametrize("how", ["direct", "prefect"])
def test_a_sandbox_run_completes_on_a_busy_machine(
    busy_machine: None, tmp_path: Path, how: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "PREFECT_API_URL")}
    args = ["--sandbox", "--out", str(tmp_path / "out"), "--raw", str(tmp_path / "raw")]
    if how == "prefect":
        args.append("--prefect")
    run = Command(args, {**env, **FAST_ENV}, ROOT, new_session=True)

    code = run.finish(timeout_seconds=600)

    assert code == 0, run.output
    assert "published to" in run.output
    # A clean run logs no error: no telemetry failure, no heartbeat noise.
    assert "Traceback" not in run.output
    assert "ERROR" not in run.output and "database is locked" not in run.output
