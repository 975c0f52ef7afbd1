"""The Prefect flow and the nightly deployment, under `prefect_test_harness`.

Runs go against the loopback double (`sandbox=True`) with politeness delays scaled down
through the environment, as the README documents for tests.
"""

from __future__ import annotations

import asyncio
import gc
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort
from prefect.deployments import run_deployment
from prefect.runner import Runner
from prefect.testing.utilities import prefect_test_harness

import pipeline.flow
from pipeline.deploy import DEFAULT_CRON, build_deployment
from pipeline.flow import ARTIFACT_PREFIX, FLOW_NAME, mllm_papers
from pipeline.parameters import RunParameters
from pipeline.report import RunSummary
from pipeline.snapshot.read import load, read_manifest
from pipeline.workers import DocumentLinks, extract_document_table

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "raw" / "seeds"

FAST_ENV = {
    "PIPELINE_ARXIV_DELAY_SECONDS": "0.01",
    "PIPELINE_ARXIV_BACKOFF_SECONDS": "0.01",
    "PIPELINE_ARXIV_BACKOFF_MAX_SECONDS": "0.05",
    "PIPELINE_HUB_BACKOFF_SECONDS": "0.01",
    "PIPELINE_HUB_BACKOFF_MAX_SECONDS": "0.05",
}


@pytest.fixture(scope="module")
def harness() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FAST_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HF_TOKEN", raising=False)


def _params(tmp_path: Path, **changes: Any) -> RunParameters:
    values: dict[str, Any] = {
        "documents": [str(SEEDS)],
        "out_dir": str(tmp_path / "enriched"),
        "raw_dir": str(tmp_path / "raw"),
        "sandbox": True,
        "snapshot_date": date(2026, 11, 20),
    }
    values.update(changes)
    return RunParameters(**values)


def _run(params: RunParameters) -> RunSummary:
    state = mllm_papers(params, return_state=True)
    summary = state.result(raise_on_failure=False)
    assert isinstance(summary, RunSummary), state
    return summary


async def _latest_markdown(key: str) -> str:
    """The markdown of the newest artifact of `key` on the server."""
    async with get_client() as client:
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    assert artifacts, f"no artifact {key}"
    return str(artifacts[0].data)


def test_a_full_run_against_the_double_publishes_a_snapshot(
    harness: None, fast: None, tmp_path: Path
) -> None:
    summary = _run(_params(tmp_path))

    assert summary.status == "ok", summary.status_reason
    assert summary.published
    out = tmp_path / "enriched"
    links = load("links", out)
    papers = load("papers", out)
    models = load("models", out)
    assert len(links) == summary.links > 400
    assert papers["arxiv_id"].is_unique and models["repo_id"].is_unique
    assert set(links.loc[links["kind"] == "arxiv", "entity_id"]) <= set(papers["arxiv_id"])
    assert (papers["status"] == "ok").sum() > 150
    qwen = papers.set_index("arxiv_id").loc["2409.12191"]
    assert qwen["title"].startswith("Qwen2-VL")
    manifest = read_manifest(out)
    assert list(manifest["status"]) == ["ok"]
    arxiv_stats = next(s for s in summary.api if s.api == "arxiv")
    assert 0 < arxiv_stats.requests <= 20

    # The night's HTML report, linked from the run report on the Artifacts page.
    report = (out / "reports" / "2026-11-20.html").resolve()
    assert summary.report_path == str(report) and report.is_file()
    assert f"({report.as_uri()})" in asyncio.run(_latest_markdown(f"{ARTIFACT_PREFIX}-run-report"))

    again = _run(_params(tmp_path))

    assert next(s for s in again.api if s.api == "arxiv").requests == 0
    assert again.status == "ok"
    assert load("papers", out).equals(papers)


def test_a_run_whose_resolvers_all_fail_still_publishes_links_and_statuses(
    harness: None, fast: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.resolve import arxiv as resolve_arxiv
    from pipeline.resolve import hub as resolve_hub

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("resolver exploded")

    monkeypatch.setattr(resolve_arxiv.ArxivResolver, "resolve_ids", broken)
    monkeypatch.setattr(resolve_arxiv.ArxivResolver, "resolve_titles", broken)
    monkeypatch.setattr(resolve_hub.HubResolver, "resolve_repos", broken)
    monkeypatch.setattr(resolve_hub.HubResolver, "resolve_paper_pages", broken)

    summary = _run(_params(tmp_path))

    assert summary.status == "failed"
    out = tmp_path / "enriched"
    assert read_manifest(out)["status"].tolist() == ["failed"]
    papers = load("papers", out, snapshot_date="2026-11-20")
    assert len(papers) > 150 and set(papers["status"]) == {"error"}
    assert len(load("links", out, snapshot_date="2026-11-20")) == summary.links


def test_a_dry_run_asks_and_writes_nothing(harness: None, fast: None, tmp_path: Path) -> None:
    summary = _run(_params(tmp_path, dry_run=True))

    assert summary.status == "dry_run"
    assert summary.entities_asked["arxiv"] > 150
    assert not (tmp_path / "enriched").exists()
    assert not (tmp_path / "raw").exists()


def test_documents_extracted_as_tasks_in_the_flows_process_are_extracted_frozen(
    harness: None, fast: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen: list[int] = []

    def extract(name: str, path: str) -> DocumentLinks:
        frozen.append(gc.get_freeze_count())
        return extract_document_table(name, path)

    monkeypatch.setattr(pipeline.flow, "extract_document_table", extract)
    summary = _run(_params(tmp_path, dry_run=True))

    assert summary.status == "dry_run" and len(frozen) == len(summary.documents) == 5
    assert all(count > 0 for count in frozen)  # `pipeline.collector`
    assert gc.get_freeze_count() == 0


def test_the_nightly_deployment_has_its_schedule_and_parameter_form(harness: None) -> None:
    deployment = build_deployment(timezone="Europe/Berlin")

    async def check() -> None:
        deployment_id = await deployment.aapply()
        async with get_client() as client:
            stored = await client.read_deployment(deployment_id)
        assert stored.name == "nightly"
        (schedule,) = stored.schedules
        assert schedule.active
        assert schedule.schedule.cron == DEFAULT_CRON  # type: ignore[union-attr]
        assert schedule.schedule.timezone == "Europe/Berlin"  # type: ignore[union-attr]
        form = stored.parameter_openapi_schema
        assert form is not None
        fields = form["definitions"]["RunParameters"]["properties"]
        assert {"documents", "refresh", "resolvers", "limit", "snapshot_date", "dry_run"} <= set(
            fields
        )
        assert all(field.get("description") for field in fields.values())

    asyncio.run(check())


def test_an_unknown_timezone_is_refused() -> None:
    with pytest.raises(ValueError, match="Mars/Olympus"):
        build_deployment(timezone="Mars/Olympus")


def test_a_run_started_through_the_api_honours_its_parameters(
    harness: None, fast: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the UI's Run button does: a flow run created from the deployment with custom
    parameters, then executed by the process that serves the deployment."""
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(SEEDS / "003_54e14ae1a516c0a7.txt", docs / "qwen.md")
    monkeypatch.chdir(ROOT)  # the deployment's entrypoint is relative to the project
    params = _params(
        tmp_path,
        documents=[str(docs)],
        resolvers=["arxiv"],
        snapshot_date=date(2026, 1, 2),
    ).model_dump(mode="json")

    deployment = build_deployment()

    async def trigger_and_serve() -> str:
        runner = Runner(name="test-runner", pause_on_shutdown=False)
        await runner.aadd_deployment(deployment)
        flow_run = await run_deployment(  # type: ignore[misc]
            f"{FLOW_NAME}/nightly", parameters={"params": params}, timeout=0
        )
        await runner.start(run_once=True)
        async with get_client() as client:
            finished = await client.read_flow_run(flow_run.id)
        assert finished.state is not None
        return finished.state.type.value

    assert asyncio.run(trigger_and_serve()) == "COMPLETED"
    out = tmp_path / "enriched"
    manifest = read_manifest(out)
    assert manifest["snapshot_date"].astype(str).tolist() == ["2026-01-02"]
    links = load("links", out)
    assert set(links["document"]) == {"qwen.md"}
    papers = load("papers", out)
    assert (papers["status"] == "ok").all()
    # Only the arXiv resolver ran: Hub repos and paper pages were not asked.
    assert papers["hf_models"].map(len).sum() == 0


def test_a_run_that_breaks_while_building_records_the_failure_and_keeps_the_last_snapshot(
    harness: None, fast: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipeline.night

    first = _run(_params(tmp_path, resolvers=["arxiv"]))
    assert first.published
    before = load("papers", tmp_path / "enriched")

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(pipeline.night, "build_tables", broken)
    state = mllm_papers(
        _params(tmp_path, resolvers=["arxiv"], snapshot_date=date(2026, 11, 21)), return_state=True
    )

    assert state.is_failed()
    manifest = read_manifest(tmp_path / "enriched")
    assert manifest["status"].tolist() == [first.status, "failed"]
    assert manifest["published"].tolist() == [True, False]
    assert "disk on fire" in str(manifest["status_reason"].iloc[-1])
    assert load("papers", tmp_path / "enriched").equals(before)


def test_the_cli_runs_the_flow_and_reports_the_snapshot(
    harness: None, fast: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli import EXIT_LOCKED, EXIT_OK, main
    from pipeline.snapshot.store import snapshot_lock

    out, raw = tmp_path / "enriched", tmp_path / "raw"
    argv = ["run", str(SEEDS / "003_54e14ae1a516c0a7.txt"), "--sandbox", "--out", str(out)]
    argv += ["--raw", str(raw), "--date", "2026-11-20"]

    assert main(argv) == EXIT_OK
    printed = capsys.readouterr().out
    assert "ok" in printed and "published to" in printed

    assert main(["status", "--out", str(out)]) == EXIT_OK
    assert "2026-11-20" in capsys.readouterr().out

    with snapshot_lock(out, "someone-else"):
        assert main(argv) == EXIT_LOCKED
    assert "someone-else" in capsys.readouterr().err
    assert read_manifest(out)["status"].tolist() == ["ok"]
