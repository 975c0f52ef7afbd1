"""One night in plain Python: discover -> extract -> plan -> resolve -> build -> publish.

`run_night` is the whole pipeline. How its work is submitted is a hook (`Executor`):
`pipeline run` without a Prefect server hands it a thread pool (`ThreadExecutor`); the
Prefect flow (`pipeline.flow`) hands it one that makes every document and every resolver
a Prefect task, with retries and progress artifacts. Either way the same function decides
what is asked, in which order, and what is published, so a test of the night is a test of
what the nightly deployment does.

Order within a night: arXiv is one serialised queue (titles first: a title match adds an
ID to ask about), the Hub runs beside it, and paper pages of papers found only by title
are asked once their IDs are known. One resolver of each kind per night: one arXiv queue,
one Hub rate gate, one deadline.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.arrow_memory import use_system_allocator
from pipeline.collector import frozen_while
from pipeline.config import Settings
from pipeline.links.documents import Link, printable
from pipeline.links.identify import HUB_REPO_TYPES
from pipeline.objectstore import location
from pipeline.parameters import ALL_RESOLVERS, Resolver, RunParameters
from pipeline.records import (
    GOOD,
    ApiStats,
    Document,
    GithubRepoRecord,
    HubRepoRecord,
    PaperPageRecord,
    PaperRecord,
    RepoRef,
    TitleMatch,
)
from pipeline.report import (
    TITLES,
    RunSummary,
    run_status,
    run_status_reason,
    summarise_tables,
    summarise_title_matches,
)
from pipeline.resolve.arxiv import ArxivResolver
from pipeline.resolve.common import Deadline, ProgressCallback
from pipeline.resolve.github_http import GithubClient
from pipeline.resolve.github_repos import GithubRepoResolver
from pipeline.resolve.hub import HubResolver
from pipeline.resolve.rawstore import RawStore
from pipeline.resolve.titles import title_candidates
from pipeline.snapshot.build import (
    NotAsked,
    SnapshotInputs,
    baseline_columns,
    build_tables,
    links_table,
)
from pipeline.snapshot.links_file import LinksFile
from pipeline.snapshot.read import previous_tables, read_manifest, replaced_tables
from pipeline.snapshot.store import ManifestEntry, publish, record_failed_run, snapshot_lock
from pipeline.sources.fetch import FetchedDocument, SourcesResult, fetch_documents
from pipeline.sources.spec import GithubSource
from pipeline.sources.stage import backfill_facts, document_sources, inputs_of, materialise
from pipeline.workers import (
    DocumentLinks,
    dask_address,
    extract_document_table,
    extract_on_dask,
    extract_on_processes,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

TASK_THREADS = 4
"""Threads for the resolver stages (two wait on a third, titles before IDs, while the
Hub's two run; each bounds its own concurrency)."""


class NothingToPublish(Exception):
    """The documents yielded no link: publishing would replace a night with an empty one."""


class Handle(Protocol[T_co]):
    """What a submitted piece of work gives back (a `concurrent.futures.Future`, a
    Prefect future)."""

    def result(self) -> T_co: ...


class Executor(Protocol):
    """How a night's work is submitted."""

    log: logging.Logger | logging.LoggerAdapter[logging.Logger]

    def extract(self, documents: Sequence[tuple[str, Path]]) -> Iterable[DocumentLinks]:
        """Each document's record and links table, in the order given. Consume it in a
        `for` loop, or close it: extraction in this process runs with the garbage
        collector's earlier objects frozen until it ends (`pipeline.collector`)."""
        ...

    def submit(self, stage: Resolver, call: Callable[[ProgressCallback], T]) -> Handle[T]:
        """Run one resolver stage; `call` takes the stage's progress callback."""
        ...


class StageProgress:
    """A resolver stage's progress: logged every 10 %, and handed to `publish` (the flow
    turns it into a progress artifact)."""

    def __init__(
        self,
        stage: str,
        log: logging.Logger | logging.LoggerAdapter[logging.Logger],
        publish: Callable[[float], None] | None = None,
    ) -> None:
        self.stage = stage
        self.log = log
        self.publish = publish
        self._last_decile = -1

    def __call__(self, done: int, total: int) -> None:
        percent = 100.0 * done / total if total else 100.0
        decile = int(percent // 10)
        if decile == self._last_decile:
            return
        self._last_decile = decile
        if self.publish is not None:
            self.publish(percent)
        self.log.info("%s: %d/%d looked up", self.stage, done, total)


class ThreadExecutor:
    """Plain Python: each resolver stage on a thread; documents one after another in the
    thread that reads the results, or on `workers` processes, or on the Dask cluster
    `PIPELINE_DASK_ADDRESS` names."""

    def __init__(self, log: logging.Logger | None = None, *, workers: int = 1) -> None:
        self.log: logging.Logger | logging.LoggerAdapter[logging.Logger] = log or logger
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=TASK_THREADS, thread_name_prefix="night")

    def extract(self, documents: Sequence[tuple[str, Path]]) -> Iterable[DocumentLinks]:
        address = dask_address()
        if address is not None:
            return extract_on_dask(documents, address)
        if self.workers > 1:
            return extract_on_processes(documents, self.workers)
        # One thread: extraction is CPU-bound Python, where more threads only contend for
        # the GIL; and one document at a time bounds the memory of finished tables.
        return frozen_while(extract_document_table(name, str(path)) for name, path in documents)

    def submit(self, stage: Resolver, call: Callable[[ProgressCallback], T]) -> Future[T]:
        return self._pool.submit(call, StageProgress(stage, self.log))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> ThreadExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class Entities:
    """The distinct things a set of links asks the resolvers about, each in sorted order."""

    arxiv_ids: list[str]
    """Valid arXiv IDs without version (links and mentions)."""
    hub_repos: list[RepoRef]
    """(repo type, repo ID as written) of valid Hub repo links."""
    github_repos: list[str] = field(default_factory=list)
    """`owner/name` of valid GitHub repository links."""


def entities_of(links: pa.Table | LinksFile | Sequence[Link]) -> Entities:
    """What the resolvers are to be asked about; invalid identifiers are never included.
    Read from the links table's columns a batch at a time: only the distinct IDs become
    Python strings."""
    arxiv_ids: set[str] = set()
    hub_repos: set[RepoRef] = set()
    github_repos: set[str] = set()
    for batch in _as_table(links).to_batches():
        named = batch.filter(
            pc.and_(batch.column("id_valid"), pc.is_valid(batch.column("entity_id")))
        )
        kinds = named.column("kind").cast(pa.string()).to_pylist()
        ids = named.column("entity_id").to_pylist()
        for kind, entity_id in set(zip(kinds, ids, strict=True)):
            if kind in ("arxiv", "arxiv_mention"):
                arxiv_ids.add(entity_id)
            elif kind in HUB_REPO_TYPES:
                hub_repos.add((HUB_REPO_TYPES[kind], entity_id))
            elif kind == "github_repo":
                github_repos.add(entity_id)
    return Entities(sorted(arxiv_ids), sorted(hub_repos), sorted(github_repos))


def _as_table(links: pa.Table | LinksFile | Sequence[Link]) -> pa.Table | LinksFile:
    return links if isinstance(links, pa.Table | LinksFile) else links_table(links)


@dataclass(frozen=True)
class Plan:
    """What tonight asks each resolver about, and what a full night would have asked."""

    arxiv: list[str]
    arxiv_titles: list[str]
    hub: list[RepoRef]
    paper_pages: list[str]
    entities: Entities = field(default_factory=lambda: Entities([], []))
    github_repos: list[str] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    """Every link text that looks like a paper title."""
    restriction: str | None = None
    """What restricted the run (`--resolvers`, `--limit`), or None for a full night."""

    def sizes(self) -> dict[str, int]:
        return {
            "arxiv": len(self.arxiv),
            "arxiv_titles": len(self.arxiv_titles),
            "hub": len(self.hub),
            "paper_pages": len(self.paper_pages),
            "github_repos": len(self.github_repos),
        }


def plan_night(params: RunParameters, links: pa.Table | LinksFile | Sequence[Link]) -> Plan:
    """The entities of the links each resolver the run asks for gets, `limit` first ones."""
    links = _as_table(links)
    entities = entities_of(links)
    wanted = set(params.resolvers)

    def limited(items: list[T], resolver: Resolver) -> list[T]:
        if resolver not in wanted:
            return []
        return items if params.limit is None else items[: params.limit]

    titles = title_candidates(links)
    restrictions = []
    if wanted != set(ALL_RESOLVERS):
        restrictions.append("--resolvers " + " ".join(r for r in ALL_RESOLVERS if r in wanted))
    if params.limit is not None:
        restrictions.append(f"--limit {params.limit}")
    return Plan(
        arxiv=limited(entities.arxiv_ids, "arxiv"),
        arxiv_titles=limited(titles, "arxiv_titles"),
        hub=limited(entities.hub_repos, "hub"),
        paper_pages=limited(entities.arxiv_ids, "paper_pages"),
        entities=entities,
        github_repos=limited(entities.github_repos, "github_repos"),
        titles=titles,
        restriction="restricted run: " + ", ".join(restrictions) if restrictions else None,
    )


def not_asked(plan: Plan, resolved: Resolved) -> NotAsked:
    """What a restricted night deliberately left out, per lookup (a full night: nothing).
    What a failed stage could not ask is not listed: it failed, it was not left out."""
    if plan.restriction is None:
        return NotAsked()
    papers = set(plan.entities.arxiv_ids) | resolved.by_title
    pages_asked = set(plan.paper_pages) | resolved.late_pages
    return NotAsked(
        arxiv=frozenset(papers - resolved.arxiv_asked),
        arxiv_titles=frozenset(set(plan.titles) - set(plan.arxiv_titles)),
        hub=frozenset(set(plan.entities.hub_repos) - set(plan.hub)),
        paper_pages=frozenset(papers - pages_asked),
        github_repos=frozenset(set(plan.entities.github_repos) - set(plan.github_repos)),
        restriction=plan.restriction,
    )


@dataclass
class Resolved:
    """What the resolvers answered tonight."""

    papers: dict[str, PaperRecord] = field(default_factory=dict)
    titles: dict[str, TitleMatch] = field(default_factory=dict)
    repos: dict[RepoRef, HubRepoRecord] = field(default_factory=dict)
    pages: dict[str, PaperPageRecord] = field(default_factory=dict)
    github_repos: dict[str, GithubRepoRecord] = field(default_factory=dict)
    failed_stages: list[str] = field(default_factory=list)
    stats: list[ApiStats] = field(default_factory=list)
    by_title: set[str] = field(default_factory=set)
    """Papers found by a title match (good or stale)."""
    arxiv_asked: set[str] = field(default_factory=set)
    late_pages: set[str] = field(default_factory=set)
    """Paper pages of papers found only by title: asked, or due and lost to a failed stage."""


@dataclass
class Night:
    """One night's outcome: the summary the report shows, and what was published."""

    summary: RunSummary
    links: LinksFile = field(default_factory=LinksFile)
    """Every link occurrence, as extracted (before title matches): the links table, on disk."""
    tables: dict[str, pa.Table] = field(default_factory=dict)


def _quiet(phase: str) -> None:
    """Where the night stands; tests time their kills by it."""


def run_night(
    params: RunParameters,
    executor: Executor | None = None,
    *,
    settings: Settings | None = None,
    flow_run_id: str | None = None,
    phase: Callable[[str], None] = _quiet,
) -> Night:
    """One run of the pipeline. Raises `SnapshotLockedError` when another run holds the
    output directory, `NothingToPublish` when the documents yield no link; any other
    failure is recorded in the manifest as a failed run, then raised. `settings` replaces
    the endpoints `params` would choose (tests point it at their own double)."""
    if executor is None:
        with ThreadExecutor(workers=params.workers) as threads:
            return run_night(
                params, threads, settings=settings, flow_run_id=flow_run_id, phase=phase
            )
    use_system_allocator()  # a night's Arrow memory goes back to the system (arrow_memory)
    log = executor.log
    snapshot_date = params.snapshot_date or datetime.now(UTC).date()
    summary = RunSummary(
        run_id=f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}",
        snapshot_date=snapshot_date.isoformat(),
        flow_run_id=flow_run_id,
        out_dir=str(params.resolved_out_dir),
    )
    started_at = datetime.now(UTC)
    started_monotonic = time.monotonic()
    clock = _StageClock(summary.stage_seconds)
    night = Night(summary)

    inputs = inputs_of(params.documents, params.sources)
    sources = SourcesResult()
    if inputs.remote:
        phase("sources")
        with clock("sources"):
            sources = _fetch_sources(params, settings, inputs.remote, log)
    extracted: list[Document] = []
    with tempfile.TemporaryDirectory(prefix="pipeline-sources-") as scratch:
        fetched, not_fetched = materialise(sources.documents, Path(scratch))
        named = sorted(inputs.local + fetched)
        phase("extract")
        with clock("extract"):
            # Each document's links go to disk as they come (night.links): the corpus's
            # links are never held in memory at once.
            for document, links in executor.extract(named):
                extracted.append(document)
                night.links.append(links)
        origins = document_sources(named, sources.documents)
    summary.documents = sorted(extracted + not_fetched, key=lambda d: d.name)
    summary.links = night.links.num_rows
    for document in summary.documents:
        if document.error:
            log.error("document %s: %s", printable(document.name), printable(document.error))
    plan = plan_night(params, night.links)
    summary.entities_asked = plan.sizes()
    log.info(
        "%d documents, %d links; asking: %s",
        len(named),
        summary.links,
        ", ".join(f"{k} {v}" for k, v in summary.entities_asked.items()) or "nothing",
    )
    if params.dry_run:
        summary.status = "dry_run"
        return night

    out_dir = location(params.resolved_out_dir)  # a local Path, or an object-store URL
    with snapshot_lock(out_dir, summary.run_id):
        try:
            if not summary.links:
                raise NothingToPublish(
                    f"no links in {len(summary.documents)} documents"
                    f" ({sum(1 for d in summary.documents if d.error)} unreadable):"
                    " nothing published"
                )
            with _endpoints(params, settings) as endpoints:
                if params.deadline_minutes is not None:
                    endpoints = endpoints.replace(run_deadline_seconds=params.deadline_minutes * 60)
                with RawStore(params.resolved_raw_dir) as store:
                    phase("resolve")
                    with clock("resolve"):
                        resolved = _resolve(
                            executor, plan, params, endpoints, store, phase, started_monotonic
                        )
                summary.api = [*sources.stats, *resolved.stats]
                phase("build")
                with clock("snapshot"):
                    night.tables = build_tables(
                        SnapshotInputs(
                            links=night.links,
                            documents=summary.documents,
                            papers=resolved.papers,
                            title_matches=resolved.titles,
                            repos=resolved.repos,
                            paper_pages=resolved.pages,
                            not_asked=not_asked(plan, resolved),
                            document_sources=origins,
                            first_listed_backfill=backfill_facts(sources.documents),
                            github_repos=resolved.github_repos,
                        ),
                        snapshot_date=snapshot_date,
                        previous=previous_tables(
                            out_dir,
                            before=snapshot_date,
                            # Whole links only to carry an unreadable document's rows.
                            columns=baseline_columns(
                                whole_links=any(d.error for d in summary.documents)
                            ),
                        ),
                        # A restricted rerun keeps what it did not ask from the night it replaces.
                        replaced=(
                            replaced_tables(out_dir, snapshot_date) if plan.restriction else None
                        ),
                    )
                    counts, unresolved, changes = summarise_tables(night.tables)
                    if resolved.titles:
                        counts[TITLES], unresolved[TITLES] = summarise_title_matches(
                            resolved.titles
                        )
                    summary.status_counts, summary.unresolved = counts, unresolved
                    summary.changes = changes
                    failed = summary.failed_stages = resolved.failed_stages
                    unreadable = sum(1 for document in summary.documents if document.error)
                    summary.status = run_status(counts, failed, unreadable)
                    summary.status_reason = run_status_reason(
                        counts, failed, unreadable, plan.restriction
                    )
                    _stale_documents(summary, sources)
                    phase("publish")
                    publish(
                        out_dir,
                        night.tables,
                        ManifestEntry(
                            run_id=summary.run_id,
                            flow_run_id=flow_run_id,
                            snapshot_date=snapshot_date,
                            started_at=started_at,
                            finished_at=datetime.now(UTC),
                            status=summary.status,
                            status_reason=summary.status_reason,
                            documents=summary.documents,
                            api_stats=summary.api,
                            arxiv_api_url=endpoints.arxiv_api_url,
                            hf_endpoint=endpoints.hf_endpoint,
                        ),
                    )
                    summary.published = True
        except BaseException as exc:
            # Whatever broke (Ctrl-C included), the manifest says so; published nights
            # stay as they were. A night whose manifest row was committed is published,
            # whatever came after (a Ctrl-C while old files were being cleaned up).
            if not _committed(out_dir, summary.run_id):
                _record_failure(summary, out_dir, started_at, exc, log)
            raise
    phase("report")
    with clock("report"):
        _write_report(summary, out_dir, snapshot_date, log)
    phase("done")
    return night


def _write_report(
    summary: RunSummary,
    out_dir: Path | str,
    snapshot_date: date,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger],
) -> None:
    """The night's HTML report, once the night is published (outside the lock: it only
    reads). A report that fails leaves the night published: logged, and said in the
    summary."""
    try:
        # Imported here: the plotting library loads after the night's work, not before.
        from pipeline.report.nightly import write_report

        written = write_report(out_dir, snapshot_date)
        summary.report_path = str(written.resolve() if isinstance(written, Path) else written)
    except Exception as exc:
        summary.report_error = _one_line(exc)
        log.error("the night's report was not written: %s", summary.report_error)


def _fetch_sources(
    params: RunParameters,
    settings: Settings | None,
    remote: Sequence[tuple[str, GithubSource]],
    log: logging.Logger | logging.LoggerAdapter[logging.Logger],
) -> SourcesResult:
    """Tonight's version of every GitHub document (a dry run asks nothing: they are
    listed as not fetched)."""
    if params.dry_run:
        return SourcesResult(
            [
                FetchedDocument(n, s, "error", status_reason="dry run: not fetched")
                for n, s in remote
            ]
        )
    with _endpoints(params, settings) as endpoints:
        seconds = (
            params.deadline_minutes * 60
            if params.deadline_minutes is not None
            else endpoints.run_deadline_seconds
        )
        with (
            RawStore(params.resolved_raw_dir) as store,
            GithubClient(endpoints, store, Deadline(seconds)) as client,
        ):
            result = fetch_documents(
                client, remote, policy=endpoints.refresh, backfill=params.backfill
            )
            result.stats.append(client.stats)
    for document in result.documents:
        if document.status != "ok":
            log.warning(
                "document %s: %s: %s",
                printable(document.name),
                document.status,
                printable(document.status_reason or ""),
            )
    return result


def _stale_documents(summary: RunSummary, sources: SourcesResult) -> None:
    """A document read from its last fetched version makes the run partial, naming it."""
    reason = sources.reason()
    if reason is None:
        return
    if summary.status == "ok":
        summary.status = "partial"
    summary.status_reason = "; ".join(part for part in (summary.status_reason, reason) if part)


def _resolve(
    executor: Executor,
    plan: Plan,
    params: RunParameters,
    settings: Settings,
    store: RawStore,
    phase: Callable[[str], None],
    started: float,
) -> Resolved:
    # The deadline counts from the start of the night, extraction included.
    deadline = Deadline(settings.run_deadline_seconds - (time.monotonic() - started))
    arxiv = ArxivResolver(settings, store, deadline=deadline)
    hub = HubResolver(settings, store, deadline=deadline)
    github = GithubRepoResolver(settings, store, deadline=deadline)
    answers = Resolved()

    def submit(
        stage: Resolver, call: Callable[[ProgressCallback], T], items: Sequence[object]
    ) -> Handle[T] | None:
        """Submit a resolver stage, or nothing when it has nothing to ask; its progress
        goes to the executor's reporter and to `phase`."""
        if not items:
            return None

        def reporting(progress: ProgressCallback) -> T:
            def both(done: int, total: int) -> None:
                progress(done, total)
                phase(f"{stage} {done}/{total}")

            return call(both)

        return executor.submit(stage, reporting)

    try:
        code = submit(
            "github_repos",
            lambda p: github.resolve_repos(plan.github_repos, p),
            plan.github_repos,
        )
        repos = submit("hub", lambda p: hub.resolve_repos(plan.hub, p), plan.hub)
        pages = submit(
            "paper_pages",
            lambda p: hub.resolve_paper_pages(plan.paper_pages, p),
            plan.paper_pages,
        )
        answers.titles = _outcome(
            executor,
            submit(
                "arxiv_titles",
                lambda p: arxiv.resolve_titles(plan.arxiv_titles, p),
                plan.arxiv_titles,
            ),
            "arxiv_titles",
            answers.failed_stages,
        )
        # A stale title match (tonight's search failed) still names its paper.
        by_title = {m.arxiv_id for m in answers.titles.values() if m.arxiv_id and m.status in GOOD}
        ids = sorted(set(plan.arxiv) | by_title) if plan.arxiv else []
        answers.by_title, answers.arxiv_asked = by_title, set(ids)
        answers.papers = _outcome(
            executor,
            submit("arxiv", lambda p: arxiv.resolve_ids(ids, p), ids),
            "arxiv",
            answers.failed_stages,
        )
        answers.repos = _outcome(executor, repos, "hub", answers.failed_stages)
        answers.pages = _outcome(executor, pages, "paper_pages", answers.failed_stages)
        answers.github_repos = _outcome(executor, code, "github_repos", answers.failed_stages)
        # Papers reached only by title: their paper pages are asked once their IDs are known.
        late = sorted(by_title - set(plan.paper_pages))
        if (
            late
            and "paper_pages" in params.resolvers
            and "paper_pages" not in answers.failed_stages
        ):
            answers.pages.update(
                _outcome(
                    executor,
                    submit("paper_pages", lambda p: hub.resolve_paper_pages(late, p), late),
                    "paper_pages",
                    answers.failed_stages,
                )
            )
    except KeyboardInterrupt:
        raise  # the process ends now: closing the client under a running stage is only noise
    except BaseException:
        arxiv.close()
        github.close()
        raise
    arxiv.close()
    github.close()
    answers.stats = [arxiv.stats, hub.stats, github.stats]
    return answers


def _outcome(
    executor: Executor, handle: Handle[dict[Any, Any]] | None, stage: str, failed: list[str]
) -> dict[Any, Any]:
    """The stage's answers, or none with the stage recorded as failed: a resolver that
    fails entirely still lets the night publish links and entities with their statuses."""
    if handle is None:
        return {}
    try:
        return handle.result()
    except Exception as exc:
        executor.log.error("stage %s failed: %s", stage, _one_line(exc))
        failed.append(stage)
        return {}


@contextlib.contextmanager
def _endpoints(params: RunParameters, settings: Settings | None) -> Iterator[Settings]:
    """Settings for this night: given, the real services, or the loopback double."""
    if settings is not None:
        yield settings
        return
    if not params.sandbox:
        yield Settings.from_env().replace(refresh=params.refresh)
        return
    from pipeline.sandbox import Sandbox, faults_from_spec

    with Sandbox(faults=faults_from_spec(params.sandbox_faults)) as sandbox:
        env = {**os.environ, **sandbox.env()}
        env.pop("HF_TOKEN", None)  # a real token never goes to the double
        env.pop("GITHUB_TOKEN", None)
        yield Settings.from_env(env).replace(refresh=params.refresh)


def _committed(out_dir: Path | str, run_id: str) -> bool:
    try:
        manifest = read_manifest(out_dir)
    except Exception:  # an unreadable manifest: the failure is recorded (or says why not)
        return False
    if manifest.empty:
        return False
    mine = manifest[manifest["run_id"] == run_id]
    return bool(mine["published"].any())


def _record_failure(
    summary: RunSummary,
    out_dir: Path | str,
    started_at: datetime,
    exc: BaseException,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger],
) -> None:
    summary.status = "failed"
    summary.status_reason = _one_line(exc)
    entry = ManifestEntry(
        run_id=summary.run_id,
        flow_run_id=summary.flow_run_id,
        snapshot_date=date.fromisoformat(summary.snapshot_date),
        started_at=started_at,
        finished_at=datetime.now(UTC),
        status="failed",
        status_reason=summary.status_reason,
        documents=summary.documents,
        api_stats=summary.api,
    )
    try:
        record_failed_run(out_dir, entry)
    except Exception as record_exc:  # the original error matters more; say both
        log.error("could not record the failed run: %s", _one_line(record_exc))


REASON_MAX_CHARS = 300
"""A failure's reason in the manifest and the log: one line, bounded (a message can
carry a whole object's repr)."""


def _one_line(exc: BaseException) -> str:
    text = printable(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    return text if len(text) <= REASON_MAX_CHARS else text[: REASON_MAX_CHARS - 1] + "…"


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
