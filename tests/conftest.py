"""Fixtures shared by test modules: the fault suites' double, night 1, the rig, a
Prefect server for true flow runs, a sandbox night as the README's quick start runs it,
and S3 (moto's server) for object storage."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto_s3 import MotoS3, moto_server
from nights import (
    ARXIV,
    FAST_ENV,
    MODELS,
    NIGHT_1,
    PAGES,
    REPOS,
    TITLED_PAPER,
    Baseline,
    Rig,
    fast_settings,
    good_rows,
    run_night,
    write_reading_list,
)

from pipeline.sandbox import Sandbox
from pipeline.sandbox.hub_api import HubDouble


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    # One double for the module: stopping one takes a poll interval, starting one a thread.
    # Its quota is out of reach: the module asks far more than 500 times in 5 minutes, and
    # the scenarios that want a 429 ask for one.
    with Sandbox(hub=HubDouble(quota=1_000_000)) as double:
        yield double


@pytest.fixture(scope="module")
def baseline(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    root = tmp_path_factory.mktemp("night-1")
    documents = [write_reading_list(root / "docs")]
    night = run_night(documents, root / "enriched", root / "raw", fast_settings(sandbox), NIGHT_1)
    # The scenarios below mean something only if night 1 found things to lose.
    assert night.status == "ok" and not night.failed_stages
    assert len(good_rows(night, ARXIV)) == 4 and TITLED_PAPER in {
        k[0] for k in good_rows(night, ARXIV)
    }
    assert len(good_rows(night, PAGES)) == 3
    assert len(good_rows(night, MODELS)) == 9 and len(good_rows(night, REPOS)) == 4
    return Baseline(root, documents, night)


@pytest.fixture
def rig(sandbox: Sandbox, baseline: Baseline, tmp_path: Path) -> Iterator[Rig]:
    sandbox.clear_faults()
    sandbox.reset_log()
    yield Rig(sandbox, baseline, tmp_path)
    sandbox.clear_faults()


@pytest.fixture(scope="module")
def harness() -> Iterator[str]:
    """A Prefect server for the module (startup takes seconds: shared); `pipeline run`
    subprocesses report to it through its URL instead of each starting one of their own.
    Prefect is imported here, not at the top: the kill tests' children import this module
    and start faster without it."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield str(PREFECT_API_URL.value())


@pytest.fixture
def flow_env(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**FAST_ENV, **sandbox.env()}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)


@pytest.fixture(scope="session")
def quick_start_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where `pipeline run --sandbox` ran over the seeds, as after the README's
    quick start: its snapshots are under `enriched/sandbox` (what the notebook and the
    analysts' guide read by default)."""
    root = tmp_path_factory.mktemp("quick-start")
    seeds = Path(__file__).resolve().parent.parent / "raw" / "seeds"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "HF_"))}
    command = [sys.executable, "-m", "pipeline", "run", str(seeds), "--sandbox"]
    done = subprocess.run(
        command, cwd=root, env={**env, **FAST_ENV}, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return root


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoS3]:
    """One moto S3 server for the session (it starts in a second); a bucket per test."""
    with moto_server() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: MotoS3, monkeypatch: pytest.MonkeyPatch) -> str:
    """`s3://<a fresh bucket>`, with this process's S3 environment pointed at the server."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return f"s3://{s3_server.new_bucket()}"
