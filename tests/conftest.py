"""Fixtures shared by test modules: the fault suites' double, night 1, the rig, and a
Prefect server for true flow runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
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
