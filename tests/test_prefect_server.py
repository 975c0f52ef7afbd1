"""The nightly deployment against a real Prefect server, both ways the README documents.

Each test starts `prefect server start` on a free loopback port with its own PREFECT_HOME
and SQLite database (see `prefect_server_helpers`), and kills every process it started,
whole process groups, at teardown. Nothing reaches the internet: the pipeline's APIs are
the loopback sandbox and every child's proxy refuses anything that is not on loopback.

- `pipeline serve --cron "* * * * *"`: the server's scheduler creates the runs (this is
  what failed with SQLAlchemy 2.1) and the served runner executes one to COMPLETED.
- The work-pool path: `prefect work-pool create`, `prefect deploy --name nightly` (which
  ended with a 422 on `/work_pools/mllm-papers/workers/filter` under FastAPI >= 0.151),
  a `prefect worker start` process and a run created with `prefect deployment run`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from moto_s3 import MotoS3
from prefect_server_helpers import (
    FAST_PIPELINE_ENV,
    PrefectServer,
    Services,
    copy_seeds,
    executable,
    poll,
    refused_port,
    run_command,
    start_deployment_run,
    wait_completed,
)

from pipeline.sandbox import Sandbox
from pipeline.snapshot.read import read_manifest

REPO = Path(__file__).resolve().parent.parent
FLOW_NAME = "mllm-papers"
DEPLOYMENT_NAME = "nightly"
WORK_POOL = "mllm-papers"
MANIFEST = "_snapshots.parquet"

REGISTER_SECONDS = 120.0
"""`pipeline serve` imports Prefect and the pipeline before it registers the deployment."""
SCHEDULED_SECONDS = 120.0
"""The scheduler looks at recently changed deployments every few seconds."""
SERVE_TOTAL_SECONDS = 240.0
"""From registration to a completed run: up to a minute until the run falls due, the
runner's 10 s poll, a flow process start and the run itself (seconds on the sandbox)."""
WORKER_RUN_SECONDS = 240.0
"""The worker's 10 s poll, a flow process start, the pull step and the run."""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PrefectServer]:
    """A healthy `prefect server start`; every process of the test is killed after it."""
    logs = tmp_path / "logs"
    logs.mkdir()
    with refused_port() as proxy_port:
        services = Services(logs)
        try:
            prefect = PrefectServer(
                services, tmp_path / "prefect-home", refused_proxy_port=proxy_port
            )
            try:
                prefect.wait_healthy()
                yield prefect
            finally:
                prefect.close()
        finally:
            services.stop_all()


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _manifest_row(out_dir: Path, flow_run_id: str) -> dict[str, Any]:
    manifest = out_dir / MANIFEST
    assert manifest.exists(), f"no {MANIFEST} under {out_dir}"
    rows = [row for row in pq.read_table(manifest).to_pylist() if row["flow_run_id"] == flow_run_id]
    assert len(rows) == 1, f"{MANIFEST} rows for flow run {flow_run_id}: {rows}"
    row: dict[str, Any] = rows[0]
    return row


def _assert_went_through_the_states(server: PrefectServer, flow_run_id: str) -> None:
    types = [state["type"] for state in server.state_history(flow_run_id)]
    assert types[0] == "SCHEDULED", types
    assert "RUNNING" in types, types
    assert types[-1] == "COMPLETED", types
    assert types.index("RUNNING") < len(types) - 1, types


@pytest.mark.slow
def test_the_server_scheduler_creates_runs_that_pipeline_serve_completes(
    tmp_path: Path, server: PrefectServer
) -> None:
    services = server.services
    # `pipeline serve` has no options for documents, out or raw: its runs take the
    # defaults, relative to its working directory (raw/seeds, raw/, enriched/).
    work = tmp_path / "work"
    copy_seeds(REPO, work)
    with Sandbox() as sandbox:
        # Its runs are not sandbox runs either: the environment points them at the double.
        env = server.client_env({**sandbox.env(), **FAST_PIPELINE_ENV})
        serve = services.start(
            "serve",
            [executable("pipeline"), "serve", "--cron", "* * * * *"],
            env=env,
            cwd=work,
        )
        try:
            watched = [serve, server.service]
            deployment = poll(
                services,
                f"pipeline serve to register {FLOW_NAME}/{DEPLOYMENT_NAME}",
                lambda: server.deployment(FLOW_NAME, DEPLOYMENT_NAME),
                timeout=REGISTER_SECONDS,
                watched=watched,
            )
            registered = time.monotonic()
            assert [s["schedule"]["cron"] for s in deployment["schedules"]] == ["* * * * *"]
            assert all(s["active"] for s in deployment["schedules"])
            assert deployment["paused"] is False

            # The server's scheduler, not serve, creates the scheduled runs.
            runs = poll(
                services,
                "the server's scheduler to create runs of the deployment",
                lambda: (
                    [r for r in server.flow_runs(deployment["id"]) if r["auto_scheduled"]] or None
                ),
                timeout=SCHEDULED_SECONDS,
                watched=watched,
            )
            seen_at = datetime.now(UTC)
            assert any(r["state_type"] == "SCHEDULED" for r in runs), runs
            first = min(runs, key=lambda r: _when(r["expected_start_time"]))
            due = _when(first["expected_start_time"])
            assert due <= seen_at + timedelta(seconds=61), (due, seen_at)

            remaining = SERVE_TOTAL_SECONDS - (time.monotonic() - registered)
            done = wait_completed(server, first["id"], timeout=remaining, watched=watched)
            _assert_went_through_the_states(server, first["id"])
            assert done["deployment_id"] == deployment["id"]
            assert done["auto_scheduled"] is True
            assert _when(done["start_time"]) >= due - timedelta(seconds=30)

            row = _manifest_row(work / "enriched", first["id"])
            assert row["published"] is True
            assert row["status"] in ("ok", "partial"), row["status_reason"]
            assert row["arxiv_api_url"] == sandbox.arxiv_api_url
            assert row["hf_endpoint"] == sandbox.hf_endpoint
            assert sandbox.requests(), "the run asked the double nothing"
        finally:
            serve.stop()  # before the double goes away under a later run


def _pipeline_home(tmp_path: Path) -> Path:
    """PIPELINE_HOME as on a worker: the checkout (here its package, linked) and its seeds.
    Runs write raw/ and enriched/ under it, so nothing lands in the repository."""
    home = tmp_path / "pipeline-home"
    copy_seeds(REPO, home)
    (home / "pipeline").symlink_to(REPO / "pipeline", target_is_directory=True)
    return home


@pytest.mark.slow
def test_the_readme_work_pool_path_deploys_and_a_worker_completes_a_run(
    tmp_path: Path, server: PrefectServer
) -> None:
    services = server.services
    home = _pipeline_home(tmp_path)
    env = server.client_env({"PIPELINE_HOME": str(home), **FAST_PIPELINE_ENV})
    prefect = executable("prefect")

    # As the README documents it, from the repository root (where prefect.yaml is).
    run_command(
        services,
        "work-pool-create",
        [prefect, "work-pool", "create", WORK_POOL, "--type", "process"],
        env=env,
        cwd=REPO,
        timeout=120,
    )
    deployed = run_command(
        services,
        "deploy",
        [prefect, "deploy", "--name", DEPLOYMENT_NAME],
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert f"{FLOW_NAME}/{DEPLOYMENT_NAME}" in deployed
    deployment = server.deployment(FLOW_NAME, DEPLOYMENT_NAME)
    assert deployment is not None
    assert deployment["work_pool_name"] == WORK_POOL
    assert [s["schedule"]["cron"] for s in deployment["schedules"]] == ["0 3 * * *"]

    worker = services.start(
        "worker", [prefect, "worker", "start", "--pool", WORK_POOL], env=env, cwd=home
    )
    parameters = {"params": {"sandbox": True}}
    flow_run_id = start_deployment_run(
        services,
        "deployment-run",
        f"{FLOW_NAME}/{DEPLOYMENT_NAME}",
        parameters,
        env=env,
        cwd=home,
    )

    done = wait_completed(
        server, flow_run_id, timeout=WORKER_RUN_SECONDS, watched=[worker, server.service]
    )
    _assert_went_through_the_states(server, flow_run_id)
    assert done["deployment_id"] == deployment["id"]
    assert done["work_pool_name"] == WORK_POOL
    assert done["parameters"] == parameters

    # A sandbox run in PIPELINE_HOME: its snapshot is under enriched/sandbox/ there.
    row = _manifest_row(home / "enriched" / "sandbox", flow_run_id)
    assert row["published"] is True
    assert row["status"] in ("ok", "partial"), row["status_reason"]
    assert row["arxiv_api_url"].startswith("http://127.0.0.1:")
    assert row["hf_endpoint"].startswith("http://127.0.0.1:")


@pytest.mark.slow
def test_two_workers_share_one_bucket_and_the_second_night_asks_nothing_stored(
    tmp_path: Path, server: PrefectServer, s3_server: MotoS3, s3_bucket: str
) -> None:
    """Two machines (two `prefect worker start` processes, each with its own PIPELINE_HOME)
    on the work pool, `--out` and `--raw` in one bucket: the second worker's night finds
    the first's answers in the shared raw store and asks the double nothing."""
    services = server.services
    prefect = executable("prefect")
    with Sandbox() as sandbox:
        shared = {
            **sandbox.env(),
            **FAST_PIPELINE_ENV,
            **s3_server.env(),
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            # With a token (the double takes any) the first night looks every repository
            # up; anonymously it stops at GitHub's hourly budget and the second night
            # would rightly ask for the rest.
            "GITHUB_TOKEN": "test-token-for-the-double",
        }
        # Deployed without PIPELINE_HOME: each worker's own applies at run time.
        env = server.client_env(shared)
        run_command(
            services,
            "work-pool-create",
            [prefect, "work-pool", "create", WORK_POOL, "--type", "process"],
            env=env,
            cwd=REPO,
            timeout=120,
        )
        run_command(
            services,
            "deploy",
            [prefect, "deploy", "--name", DEPLOYMENT_NAME],
            env=env,
            cwd=REPO,
            timeout=300,
        )
        homes = [_pipeline_home(tmp_path / machine) for machine in ("machine-a", "machine-b")]
        runs: list[str] = []
        for home, night in zip(homes, ("2026-01-01", "2026-01-02"), strict=True):
            worker = services.start(
                f"worker-{home.parent.name}",
                [prefect, "worker", "start", "--pool", WORK_POOL],
                env=server.client_env({**shared, "PIPELINE_HOME": str(home)}),
                cwd=home,
            )
            try:
                parameters = {
                    "params": {
                        "out_dir": f"{s3_bucket}/enriched",
                        "raw_dir": f"{s3_bucket}/raw",
                        "snapshot_date": night,
                    }
                }
                runs.append(
                    start_deployment_run(
                        services,
                        f"deployment-run-{night}",
                        f"{FLOW_NAME}/{DEPLOYMENT_NAME}",
                        parameters,
                        env=env,
                        cwd=home,
                    )
                )
                wait_completed(
                    server, runs[-1], timeout=WORKER_RUN_SECONDS, watched=[worker, server.service]
                )
            finally:
                worker.stop()
            if len(runs) == 1:
                assert sandbox.requests(), "the first night asked the double nothing"
                sandbox.reset_log()
        asked_again = sandbox.requests()

    assert asked_again == [], [(entry.path, entry.query) for entry in asked_again][:10]
    manifest = read_manifest(f"{s3_bucket}/enriched")
    assert list(manifest["flow_run_id"]) == runs
    assert list(manifest["published"]) == [True, True]
    first, second = manifest.to_dict("records")
    assert sum(stats["requests"] for stats in first["api_stats"]) > 0
    assert sum(stats["requests"] for stats in second["api_stats"]) == 0
    assert sum(stats["from_store"] for stats in second["api_stats"]) > 0
    for home in homes:  # nothing written on either machine's disk
        assert sorted(p.name for p in home.iterdir()) == ["pipeline", "raw"]
        assert sorted(p.name for p in (home / "raw").iterdir()) == ["seeds"]
