"""Prefect orchestration. This module wires the stages and adds nothing of its own:
extract (one task per document) -> resolve (arXiv serialised, Hub bounded) -> snapshot.

Retries: the resolvers retry each request themselves (they know a 429 from a 400), so a
task is retried only on a transient infrastructure failure (disk, SQLite busy, a transport
error that escaped), never on a bug or a 4xx. Caching: no Prefect task cache; the raw
store is the cache across runs, keyed by entity with a time-to-live, which Prefect's
input-hash caching cannot express correctly.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast
from uuid import UUID

import httpx
from prefect import Task, flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.states import Completed, Failed
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff

from pipeline.config import Settings
from pipeline.links.documents import (
    Entities,
    Link,
    discover_documents,
    entities_of,
    extract_document_links,
)
from pipeline.parameters import RunParameters
from pipeline.records import (
    ApiStats,
    Document,
    HubRepoRecord,
    PaperPageRecord,
    PaperRecord,
    RepoRef,
    TitleMatch,
)
from pipeline.report import (
    UNRESOLVED_ROWS_MAX,
    RunSummary,
    markdown_report,
    run_status,
    short_summary,
    summarise_tables,
)
from pipeline.resolve.arxiv import ArxivResolver, title_candidates
from pipeline.resolve.hub import HubResolver
from pipeline.resolve.rawstore import RawStore
from pipeline.sandbox import Sandbox
from pipeline.snapshot import build as snapshot
from pipeline.snapshot import read as snapshot_read
from pipeline.snapshot import store as snapshot_store
from pipeline.snapshot.build import apply_title_matches

P = ParamSpec("P")
R = TypeVar("R")

FLOW_NAME = "mllm-papers"
TASK_THREADS = 4
"""Extraction is CPU-bound and resolvers bound their own concurrency: a few threads do."""
ARTIFACT_PREFIX = "mllm-papers"


def _transient(task: Any, task_run: Any, state: State[Any]) -> bool:
    """Retry a task only when it failed for a reason a retry can cure."""
    try:
        state.result()
    except (OSError, sqlite3.OperationalError, httpx.TransportError):
        return True
    except Exception:
        return False
    return False


def _resolver_task(name: str) -> Callable[[Callable[P, R]], Task[P, R]]:
    """A resolver task: retried (with backoff and jitter) only on transient failures."""
    return task(
        name=name,
        retries=2,
        retry_delay_seconds=exponential_backoff(backoff_factor=10),
        retry_jitter_factor=0.5,
        retry_condition_fn=_transient,
        cache_policy=NO_CACHE,
    )


class _Progress:
    """A progress artifact per resolver, updated as it goes (and logged every 10 %)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.logger = get_run_logger()
        self.artifact_id: UUID = cast(
            UUID,
            create_progress_artifact(
                progress=0.0,
                key=f"{ARTIFACT_PREFIX}-progress-{name.replace('_', '-')}",
                description=f"{name}: lookups done",
            ),
        )
        self._last_decile = -1

    def __call__(self, done: int, total: int) -> None:
        percent = 100.0 * done / total if total else 100.0
        decile = int(percent // 10)
        if decile != self._last_decile:
            self._last_decile = decile
            update_progress_artifact(artifact_id=self.artifact_id, progress=percent)
            self.logger.info("%s: %d/%d looked up", self.name, done, total)


@task(name="extract-document", cache_policy=NO_CACHE)
def extract_document_task(name: str, path: str) -> tuple[Document, list[Link]]:
    document, links = extract_document_links(name, Path(path))
    if document.error:
        get_run_logger().error("document %s: %s", name, document.error)
    return document, links


@_resolver_task("resolve-arxiv-titles")
def resolve_titles_task(resolver: ArxivResolver, titles: list[str]) -> dict[str, TitleMatch]:
    return resolver.resolve_titles(titles, on_progress=_Progress("arxiv_titles"))


@_resolver_task("resolve-arxiv")
def resolve_arxiv_task(resolver: ArxivResolver, ids: list[str]) -> dict[str, PaperRecord]:
    return resolver.resolve_ids(ids, on_progress=_Progress("arxiv"))


@_resolver_task("resolve-hub-repos")
def resolve_repos_task(resolver: HubResolver, refs: list[RepoRef]) -> dict[RepoRef, HubRepoRecord]:
    return resolver.resolve_repos(refs, on_progress=_Progress("hub"))


@_resolver_task("resolve-paper-pages")
def resolve_pages_task(resolver: HubResolver, ids: list[str]) -> dict[str, PaperPageRecord]:
    return resolver.resolve_paper_pages(ids, on_progress=_Progress("paper_pages"))


@contextlib.contextmanager
def _endpoints(params: RunParameters) -> Iterator[Settings]:
    """Settings for this run: the real services, or the loopback double in sandbox mode."""
    if not params.sandbox:
        yield Settings.from_env().replace(refresh=params.refresh)
        return
    with Sandbox() as sandbox:
        env = {**os.environ, **sandbox.env()}
        env.pop("HF_TOKEN", None)  # a real token never goes to the double
        yield Settings.from_env(env).replace(refresh=params.refresh)


def _limited(items: list[Any], limit: int | None) -> list[Any]:
    return items if limit is None else items[:limit]


@flow(
    name=FLOW_NAME,
    description="Extract the links of the reading lists, resolve papers and models, "
    "and publish a deduplicated Parquet snapshot.",
    task_runner=ThreadPoolTaskRunner(max_workers=TASK_THREADS),  # type: ignore[arg-type]
    validate_parameters=True,
    log_prints=False,
)
def mllm_papers(params: RunParameters = RunParameters()) -> State[Any]:  # noqa: B008
    """One run of the pipeline. Returns a Completed state (named Partial when some
    entities could not be resolved) or a Failed one; the summary is its result."""
    logger = get_run_logger()
    context = FlowRunContext.get()
    flow_run_id = str(context.flow_run.id) if context and context.flow_run else None
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    snapshot_date = params.snapshot_date or datetime.now(UTC).date()
    out_dir = Path(params.resolved_out_dir)
    summary = RunSummary(
        run_id=run_id,
        snapshot_date=snapshot_date.isoformat(),
        flow_run_id=flow_run_id,
        out_dir=str(out_dir),
    )
    started_at = datetime.now(UTC)
    clock = _StageClock(summary.stage_seconds)

    with clock("extract"):
        named = discover_documents([Path(p) for p in params.documents])
        futures = extract_document_task.map(
            [name for name, _ in named], [str(path) for _, path in named]
        )
        extracted = [future.result() for future in futures]
        summary.documents = [document for document, _ in extracted]
        links = [link for _, doc_links in extracted for link in doc_links]
        summary.links = len(links)
    entities = entities_of(links)
    titles = title_candidates(links) if "arxiv_titles" in params.resolvers else []
    plan = _plan(params, entities, titles)
    summary.entities_asked = {name: len(items) for name, items in plan.items()}
    logger.info(
        "%d documents, %d links; asking: %s",
        len(named),
        len(links),
        ", ".join(f"{k} {v}" for k, v in summary.entities_asked.items()) or "nothing",
    )
    if params.dry_run:
        summary.status = "dry_run"
        _publish_report(summary)
        return Completed(message=short_summary(summary), data=summary)

    failed_stages: list[str] = []
    with contextlib.ExitStack() as stack:
        stack.enter_context(snapshot_store.snapshot_lock(out_dir, run_id))
        try:
            settings = stack.enter_context(_endpoints(params))
            store = stack.enter_context(RawStore(Path(params.resolved_raw_dir)))
            with clock("resolve"):
                resolved = _resolve(params, plan, settings, store, failed_stages)
            summary.api = resolved.stats
            with clock("snapshot"):
                tables = snapshot.build_tables(
                    snapshot.SnapshotInputs(
                        links=apply_title_matches(links, resolved.title_matches()),
                        documents=summary.documents,
                        papers=resolved.papers,
                        title_matches=resolved.titles,
                        repos=resolved.repos,
                        paper_pages=resolved.pages,
                    ),
                    snapshot_date=snapshot_date,
                    previous=snapshot_read.previous_tables(out_dir, before=snapshot_date),
                )
                counts, unresolved, changes = summarise_tables(tables)
                summary.status_counts, summary.unresolved = counts, unresolved
                summary.changes = changes
                unreadable = sum(1 for document in summary.documents if document.error)
                summary.status = run_status(counts, failed_stages, unreadable)
                if failed_stages:
                    summary.status_reason = "failed stages: " + ", ".join(failed_stages)
                snapshot_store.publish(
                    out_dir,
                    tables,
                    snapshot_store.ManifestEntry(
                        run_id=run_id,
                        flow_run_id=flow_run_id,
                        snapshot_date=snapshot_date,
                        started_at=started_at,
                        finished_at=datetime.now(UTC),
                        status=summary.status,
                        status_reason=summary.status_reason,
                        documents=summary.documents,
                        api_stats=summary.api,
                        arxiv_api_url=settings.arxiv_api_url,
                        hf_endpoint=settings.hf_endpoint,
                    ),
                )
                summary.published = True
        except Exception as exc:
            # Whatever broke, the manifest says so; published snapshots stay as they were.
            _record_failure(summary, out_dir, started_at, exc)
            raise

    _publish_report(summary)
    message = short_summary(summary)
    if summary.status == "failed":
        return Failed(message=message, data=summary)
    if summary.status == "partial":
        return Completed(name="Partial", message=message, data=summary)
    return Completed(message=message, data=summary)


@dataclass
class _Resolved:
    papers: dict[str, PaperRecord]
    titles: dict[str, TitleMatch]
    repos: dict[RepoRef, HubRepoRecord]
    pages: dict[str, PaperPageRecord]
    stats: list[ApiStats]

    def title_matches(self) -> dict[str, str]:
        """Link text -> arXiv ID for the titles that found their paper."""
        return {
            title: match.arxiv_id
            for title, match in self.titles.items()
            if match.arxiv_id and match.status in ("ok", "stale")
        }


def _resolve(
    params: RunParameters,
    plan: dict[str, Any],
    settings: Settings,
    store: RawStore,
    failed_stages: list[str],
) -> _Resolved:
    """arXiv is one serialised queue (titles first: they add IDs); the Hub runs beside it.
    One resolver of each kind for the whole run: one arXiv queue, one Hub budget."""
    arxiv = ArxivResolver(settings, store)
    hub = HubResolver(settings, store)
    hub_repos = _submit(resolve_repos_task, hub, plan["hub"])
    hub_pages = _submit(resolve_pages_task, hub, plan["paper_pages"])
    titles = _outcome(
        _submit(resolve_titles_task, arxiv, plan["arxiv_titles"]), "arxiv_titles", failed_stages
    )
    # A stale title match (tonight's search failed) still names its paper: ask for it by ID.
    by_title = {m.arxiv_id for m in titles.values() if m.arxiv_id and m.status in ("ok", "stale")}
    ids = sorted(set(plan["arxiv"]) | by_title) if plan["arxiv"] else []
    papers = _outcome(_submit(resolve_arxiv_task, arxiv, ids), "arxiv", failed_stages)
    repos = _outcome(hub_repos, "hub", failed_stages)
    pages = _outcome(hub_pages, "paper_pages", failed_stages)
    # Papers reached only by title: their paper pages are asked once their IDs are known.
    late = sorted(by_title - set(plan["paper_pages"]))
    if late and "paper_pages" in params.resolvers and "paper_pages" not in failed_stages:
        pages.update(_outcome(_submit(resolve_pages_task, hub, late), "paper_pages", failed_stages))
    return _Resolved(papers, titles, repos, pages, [arxiv.stats, hub.stats])


def _record_failure(
    summary: RunSummary, out_dir: Path, started_at: datetime, exc: Exception
) -> None:
    entry = snapshot_store.ManifestEntry(
        run_id=summary.run_id,
        flow_run_id=summary.flow_run_id,
        snapshot_date=date.fromisoformat(summary.snapshot_date),
        started_at=started_at,
        finished_at=datetime.now(UTC),
        status="failed",
        status_reason=f"{type(exc).__name__}: {exc}",
        documents=summary.documents,
        api_stats=summary.api,
    )
    try:
        snapshot_store.record_failed_run(out_dir, entry)
    except Exception as record_exc:  # the original error matters more; say both
        get_run_logger().error("could not record the failed run: %s", record_exc)


def _plan(params: RunParameters, entities: Entities, titles: list[str]) -> dict[str, Any]:
    wanted = params.resolvers
    return {
        "arxiv": _limited(entities.arxiv_ids, params.limit) if "arxiv" in wanted else [],
        "arxiv_titles": _limited(titles, params.limit),
        "hub": _limited(entities.hub_repos, params.limit) if "hub" in wanted else [],
        "paper_pages": (
            _limited(entities.arxiv_ids, params.limit) if "paper_pages" in wanted else []
        ),
    }


def _submit(task_: Any, resolver: object, items: list[Any]) -> Any:
    """Submit a resolver task, or nothing when it has nothing to ask."""
    return task_.submit(resolver, items) if items else None


def _outcome(future: Any, stage: str, failed: list[str]) -> dict[Any, Any]:
    """The task's result, or nothing with the stage recorded as failed: a resolver that
    fails entirely still lets the run publish links and entities with their statuses."""
    if future is None:
        return {}
    try:
        result: dict[Any, Any] = future.result()
    except Exception as exc:
        get_run_logger().error("stage %s failed: %s", stage, exc)
        failed.append(stage)
        return {}
    return result


class _StageClock:
    def __init__(self, into: dict[str, float]) -> None:
        self.into = into

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.into[stage] = self.into.get(stage, 0.0) + time.monotonic() - start


def _publish_report(summary: RunSummary) -> None:
    create_markdown_artifact(
        markdown=markdown_report(summary),
        key=f"{ARTIFACT_PREFIX}-run-report",
        description=f"Run {summary.run_id}: {summary.status}",
    )
    for table, rows in summary.unresolved.items():
        create_table_artifact(
            table=rows[:UNRESOLVED_ROWS_MAX]
            or [{"key": "", "status": "", "reason": "all resolved"}],
            key=f"{ARTIFACT_PREFIX}-unresolved-{table}",
            description=f"{table} not resolved in run {summary.run_id} ({len(rows)} rows)",
        )


def run_once(params: RunParameters) -> tuple[RunSummary | None, State[Any]]:
    """Run the flow in this process (ephemeral Prefect when no server is configured)."""
    state: State[Any] = mllm_papers(params, return_state=True)
    summary: RunSummary | None = None
    with contextlib.suppress(Exception):
        result = state.result(raise_on_failure=False)
        if isinstance(result, RunSummary):
            summary = result
    return summary, state
