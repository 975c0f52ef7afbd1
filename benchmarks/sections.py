"""The measurements, one per process: `python -m benchmarks.sections NAME CONFIG RESULT`.

Each section reads its configuration (JSON of the `*Config` dataclass), measures, and
writes its result (JSON of the `*Result` dataclass). Run in a fresh process each, so
that peak memory is the section's own and nothing one section warmed (imports, caches,
Prefect's API server) flatters the next. `benchmarks.run` drives them.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from benchmarks.double import DoubleOptions, DoubleProcess
from benchmarks.machine import peak_rss_mb

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

_T = TypeVar("_T")


def load_dataclass(cls: type[_T], data: dict[str, Any]) -> _T:
    """A dataclass from its `asdict` form; fields declared as one of this module's nested
    result types (or a `dict[str, ...]` or `list[...]` of one) are rebuilt too."""
    values: dict[str, Any] = {}
    declared = {item.name: str(item.type) for item in fields(cls)}  # type: ignore[arg-type]
    for name, value in data.items():
        kind = declared[name]
        if value is None:
            values[name] = value
        elif kind in _NESTED:
            values[name] = load_dataclass(_NESTED[kind], value)
        elif kind.startswith("dict[str, ") and kind[10:-1] in _NESTED:
            item_type = _NESTED[kind[10:-1]]
            values[name] = {key: load_dataclass(item_type, item) for key, item in value.items()}
        elif kind.startswith("list[") and kind[5:-1] in _NESTED:
            item_type = _NESTED[kind[5:-1]]
            values[name] = [load_dataclass(item_type, item) for item in value]
        else:
            values[name] = value
    return cls(**values)


# -- resolution: the seeds, ours vs naive vs floor ---------------------------------------


@dataclass(frozen=True)
class ResolutionConfig:
    work_dir: str
    seeds_dir: str
    latency_seconds: float
    arxiv_delay_seconds: float
    naive_delay_seconds: float


@dataclass
class ResolutionResult:
    latency_seconds: float
    arxiv_delay_seconds: float
    arxiv_batch_size: int
    hub_concurrency: int
    links: int
    arxiv_occurrences: int
    hub_occurrences: int
    distinct_arxiv_ids: int
    distinct_hub_refs: int
    ours_seconds: float
    ours_arxiv_seconds: float
    ours_hub_seconds: float
    ours_arxiv_requests: int
    ours_hub_requests: int
    ours_papers: dict[str, int]
    """Paper records by status."""
    ours_repos: dict[str, int]
    """Hub records by status (collection items included)."""
    naive_delay_seconds: float
    naive_arxiv_requests: int
    naive_hub_requests: int
    naive_arxiv_seconds: float
    naive_hub_seconds: float
    naive_arxiv_seconds_at_default_delay: float
    naive_arxiv_found: int
    naive_arxiv_missing: int
    naive_hub_ok: int
    naive_hub_failed: int


def resolution(config: ResolutionConfig) -> ResolutionResult:
    from benchmarks.naive import ARXIV_DEFAULT_DELAY_SECONDS, naive_targets, run_naive
    from pipeline.config import Settings
    from pipeline.links.documents import extract_links
    from pipeline.night import entities_of
    from pipeline.records import HubRepoRecord, RepoRef
    from pipeline.resolve.arxiv import ArxivResolver
    from pipeline.resolve.hub import HubResolver
    from pipeline.resolve.rawstore import RawStore

    work = _fresh_dir(Path(config.work_dir))
    links = extract_links([Path(config.seeds_dir)]).links
    entities = entities_of(links)
    targets = naive_targets(links)
    with DoubleProcess(DoubleOptions(latency_seconds=config.latency_seconds)) as double:
        settings = Settings.from_env(
            {**double.env, "PIPELINE_ARXIV_DELAY_SECONDS": str(config.arxiv_delay_seconds)}
        )
        with RawStore(work / "raw") as store:
            arxiv = ArxivResolver(settings, store)
            hub = HubResolver(settings, store)
            hub_seconds: list[float] = []
            repos: dict[RepoRef, HubRepoRecord] = {}

            def resolve_hub() -> None:
                started = time.perf_counter()
                repos.update(hub.resolve_repos(entities.hub_repos))
                hub_seconds.append(time.perf_counter() - started)

            # As the flow runs them: the Hub beside the (serialised) arXiv queue.
            started = time.perf_counter()
            beside = threading.Thread(target=resolve_hub)
            beside.start()
            papers = arxiv.resolve_ids(entities.arxiv_ids)
            arxiv_seconds = time.perf_counter() - started
            beside.join()
            ours_seconds = time.perf_counter() - started
            arxiv.close()
        ours = double.counts()
        double.reset()
        naive = run_naive(
            targets,
            arxiv_api_url=double.env["ARXIV_API_URL"],
            hf_endpoint=double.env["HF_ENDPOINT"],
            delay_seconds=config.naive_delay_seconds,
        )
        baseline = double.counts()
    return ResolutionResult(
        latency_seconds=config.latency_seconds,
        arxiv_delay_seconds=settings.arxiv_delay_seconds,
        arxiv_batch_size=settings.arxiv_batch_size,
        hub_concurrency=settings.hub_concurrency,
        links=len(links),
        arxiv_occurrences=sum(1 for t in targets if t.api == "arxiv"),
        hub_occurrences=sum(1 for t in targets if t.api == "hub"),
        distinct_arxiv_ids=len(entities.arxiv_ids),
        distinct_hub_refs=len(entities.hub_repos),
        ours_seconds=ours_seconds,
        ours_arxiv_seconds=arxiv_seconds,
        ours_hub_seconds=hub_seconds[0],
        ours_arxiv_requests=ours["arxiv"],
        ours_hub_requests=ours["hub"],
        ours_papers=dict(Counter(record.status for record in papers.values())),
        ours_repos=dict(Counter(record.status for record in repos.values())),
        naive_delay_seconds=config.naive_delay_seconds,
        naive_arxiv_requests=baseline["arxiv"],
        naive_hub_requests=baseline["hub"],
        naive_arxiv_seconds=naive.arxiv_seconds,
        naive_hub_seconds=naive.hub_seconds,
        naive_arxiv_seconds_at_default_delay=naive.arxiv_seconds_at(ARXIV_DEFAULT_DELAY_SECONDS),
        naive_arxiv_found=naive.arxiv_found,
        naive_arxiv_missing=naive.arxiv_missing,
        naive_hub_ok=naive.hub_ok,
        naive_hub_failed=naive.hub_failed,
    )


# -- the `pipeline` command: directly, and as a Prefect flow run ---------------------------

PATH_DIRECT = "direct"
"""`pipeline run`, no Prefect server configured: the night in the command's process."""
PATH_FIRST = "prefect-first"
"""`pipeline run --prefect --dry-run` on an empty PREFECT_HOME: creates Prefect's database."""
PATH_TEMPORARY = "prefect"
"""`pipeline run --prefect`: a flow run, on a temporary server the command starts."""
PATH_SERVER = "server"
"""`pipeline run` with PREFECT_API_URL of an already-running `prefect server start`."""


@dataclass(frozen=True)
class CliConfig:
    work_dir: str
    seeds_dir: str
    latency_seconds: float
    arxiv_delay_seconds: float
    warm_runs: int = 5
    """Warm runs of the direct path (the target is on their median)."""
    prefect: bool = True
    """Also `pipeline run --prefect` (a temporary server per run): first, cold, warm."""
    prefect_warm_runs: int = 3
    server: bool = True
    """Also warm runs through an already-running `prefect server start`."""
    temporary_server_starts: int = 2
    """Times the temporary server alone is started (until its /health answers)."""
    timeout_seconds: float = 1800.0


@dataclass
class CommandRun:
    """One `pipeline` command, from its process's start to its exit."""

    path: str
    """`PATH_DIRECT`, `PATH_FIRST`, `PATH_TEMPORARY` or `PATH_SERVER`."""
    label: str
    """`cold` (a fresh raw store), `warm` (the same store again) or `first`."""
    seconds: float
    cpu_seconds: float
    """The command's CPU, with the children it waited for (the temporary server)."""
    peak_rss_mb: float
    exit_code: int
    status: str
    """What the command's summary line says (`ok`, `partial`, ...)."""
    arxiv_requests: int
    hub_requests: int
    asking_seconds: float | None
    """When the night's first line (`... asking: ...`) came: start-up and extraction done."""
    flow_begin_seconds: float | None = None
    """Prefect paths: when `Beginning flow run` came (Prefect's start-up done)."""
    flow_end_seconds: float | None = None
    """Prefect paths: when the flow run's `Finished in state` came."""


@dataclass
class CliResult:
    latency_seconds: float
    arxiv_delay_seconds: float
    hub_concurrency: int
    entities_asked: dict[str, int]
    runs: list[CommandRun]
    temporary_server_seconds: list[float] = field(default_factory=list)
    """`pipeline.prefect_server.temporary_server` alone, each time: start until /health."""
    server_start_seconds: float | None = None
    """`prefect server start` until its /health answers (not part of any run's time)."""

    def of(self, path: str, label: str) -> list[CommandRun]:
        return [run for run in self.runs if run.path == path and run.label == label]


def _command_env(
    double_env: dict[str, str], settings: dict[str, str], prefect_home: Path
) -> dict[str, str]:
    """A user's environment pointed at the double: nothing of ours that would change what
    is measured (PIPELINE_* tunables, a token, a Prefect server), `settings` on top."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PIPELINE_", "PREFECT_")) and name != "HF_TOKEN"
    }
    env.update(double_env)
    env.update(settings)
    env["PREFECT_HOME"] = str(prefect_home)
    env["PYTHONUNBUFFERED"] = "1"  # stdout lines arrive when printed, to be timed
    return env


def cli_runs(config: CliConfig) -> CliResult:
    from benchmarks.commands import (
        ASKING,
        FLOW_BEGIN,
        FLOW_END,
        Finished,
        executable,
        free_port,
        prefect_server,
        run_command,
    )
    from pipeline.config import Settings

    work = _fresh_dir(Path(config.work_dir))
    home = work / "prefect-home"
    pipeline = executable("pipeline")
    delay = {"PIPELINE_ARXIV_DELAY_SECONDS": str(config.arxiv_delay_seconds)}
    runs: list[CommandRun] = []
    asked: dict[str, int] = {}
    result = CliResult(
        latency_seconds=config.latency_seconds,
        arxiv_delay_seconds=Settings.from_env(delay).arxiv_delay_seconds,
        hub_concurrency=Settings.from_env(delay).hub_concurrency,
        entities_asked=asked,
        runs=runs,
    )
    with DoubleProcess(DoubleOptions(latency_seconds=config.latency_seconds)) as double:
        env = _command_env(double.env, delay, home)

        def measure(
            path: str, label: str, store: str, *extra: str, run_env: dict[str, str] = env
        ) -> Finished:
            double.reset()
            argv = [
                pipeline,
                "run",
                str(Path(config.seeds_dir).resolve()),
                "--out",
                str(work / store / "enriched"),
                "--raw",
                str(work / store / "raw"),
                *extra,
            ]
            log = work / "logs" / f"{len(runs) + 1:02d}-{path}-{label}.log"
            finished = run_command(
                argv, run_env, log, cwd=work, timeout_seconds=config.timeout_seconds
            )
            if finished.exit_code not in (0, 3):
                raise RuntimeError(f"{' '.join(argv)} exited {finished.exit_code}; see {log}")
            counts = double.counts()
            prefect = path != PATH_DIRECT
            runs.append(
                CommandRun(
                    path=path,
                    label=label,
                    seconds=finished.seconds,
                    cpu_seconds=finished.cpu_seconds,
                    peak_rss_mb=finished.peak_rss_mb,
                    exit_code=finished.exit_code,
                    status=finished.run_status(),
                    arxiv_requests=counts["arxiv"],
                    hub_requests=counts["hub"],
                    asking_seconds=finished.mark(ASKING),
                    flow_begin_seconds=finished.mark(FLOW_BEGIN) if prefect else None,
                    flow_end_seconds=finished.mark(FLOW_END, last=True) if prefect else None,
                )
            )
            if not asked:
                asked.update(finished.entities_asked())
            return finished

        measure(PATH_DIRECT, "cold", "direct")
        for _ in range(config.warm_runs):
            measure(PATH_DIRECT, "warm", "direct")
        if config.prefect:
            measure(PATH_FIRST, "first", "prefect", "--prefect", "--dry-run")
            result.temporary_server_seconds = _temporary_server_starts(
                home, config.temporary_server_starts
            )
            measure(PATH_TEMPORARY, "cold", "prefect", "--prefect")
            for _ in range(config.prefect_warm_runs):
                measure(PATH_TEMPORARY, "warm", "prefect", "--prefect")
        if config.server:
            server_log = work / "logs" / "prefect-server.log"
            with prefect_server(work / "server-home", server_log, free_port()) as server:
                result.server_start_seconds = server.start_seconds
                server_env = {**env, "PREFECT_API_URL": server.api_url}
                for _ in range(config.prefect_warm_runs):
                    measure(PATH_SERVER, "warm", "direct", run_env=server_env)
    return result


def _temporary_server_starts(home: Path, times: int) -> list[float]:
    """The temporary server of `pipeline run --prefect` alone: from its start until its
    /health answers, in this process, with the runs' PREFECT_HOME."""
    from pipeline.prefect_server import quiet_prefect_environment, temporary_server

    os.environ["PREFECT_HOME"] = str(home)
    os.environ.pop("PREFECT_API_URL", None)
    quiet_prefect_environment()
    seconds = []
    for _ in range(times):
        started = time.perf_counter()
        with temporary_server():
            seconds.append(time.perf_counter() - started)
    return seconds


# -- a first night against faults ----------------------------------------------------------

FAULTS_SPEC = (
    "arxiv:503:0.25,arxiv:empty:0.15,hub:5xx:0.2,hub:429:0.05/{reset},hub:truncated:0.1,"
    "hub:quota:{left}/500/{window},seed:{seed}"
)
"""The operations issue's night: a quarter of arXiv's answers 503, 15 % of its pages
empty, a fifth of the Hub's answers 5xx, 5 % transient 429s (resetting in `reset` s), a
tenth of its bodies cut short, and `left` (150) of the Hub's 500 requests per `window` s
left, so that the quota runs out mid-night."""


def faults_spec(
    seed: int, window_seconds: int = 300, reset_seconds: int = 3, left: int = 150
) -> str:
    """`FAULTS_SPEC` with its seed; the issue's window, transient reset and quota left by
    default (tests scale them down)."""
    return FAULTS_SPEC.format(seed=seed, window=window_seconds, reset=reset_seconds, left=left)


def transient_reset_seconds(spec: str) -> float:
    """The `t` of a spec's `hub:429:<share>/<t>` (3 s when it says none; 0 without one)."""
    for item in spec.split(","):
        parts = item.strip().split(":")
        if parts[:2] == ["hub", "429"] and len(parts) == 3:
            _, slash, reset = parts[2].partition("/")
            return float(reset) if slash else 3.0
    return 0.0


_REPORTED_SETTINGS = (
    "arxiv_delay_seconds",
    "arxiv_max_attempts",
    "arxiv_backoff_seconds",
    "arxiv_backoff_max_seconds",
    "hub_concurrency",
    "hub_max_attempts",
    "hub_backoff_seconds",
    "hub_backoff_max_seconds",
    "run_deadline_seconds",
)


@dataclass(frozen=True)
class FaultsConfig:
    work_dir: str
    seeds_dir: str
    latency_seconds: float
    faults: str
    """The fault spec (`faults_spec`), seed included."""
    settings: dict[str, str] = field(default_factory=dict)
    """`PIPELINE_*` variables of the night; empty: the defaults, as production has them."""
    hub_window_seconds: int = 300
    """The double's own Hub window (500 requests per window, as the spec's): the
    `RateLimit-Policy` its transient 429s carry."""
    timeout_seconds: float = 3600.0


@dataclass
class WaitMeasure:
    at_seconds: float
    """When the run announced it, since the command started."""
    seconds: float
    why: str


@dataclass
class FaultsResult:
    faults: str
    latency_seconds: float
    settings: dict[str, float]
    """The night's settings that bound its patience (`_REPORTED_SETTINGS`)."""
    seconds: float
    cpu_seconds: float
    exit_code: int
    timed_out: bool
    status: str
    """The run's status as its summary line says it."""
    papers: dict[str, int]
    """Rows of the published `papers` table by `status`."""
    paper_pages: dict[str, int]
    """... by `hf_page_status`."""
    models: dict[str, int]
    """Rows of the published `models` table by `status`."""
    arxiv_requests: int
    hub_requests: int
    arxiv_by_status: dict[str, int]
    """Requests the double answered, by HTTP status (0: the connection was cut)."""
    hub_by_status: dict[str, int]
    politeness_violations: int
    """arXiv requests that arrived less than `arxiv_delay_seconds` after the previous one,
    or while it was being answered (the double's log)."""
    overlapping_requests: int
    min_arxiv_gap_seconds: float | None
    hub_waits: list[WaitMeasure]
    """The Hub gate's announced waits: for a spent window, and for a transient 429 (its
    `RateLimit` says none left, reset in a few seconds: the gate waits as for a window)."""
    arxiv_backoffs: list[WaitMeasure]
    longest_hub_silence_seconds: float
    """The longest gap between two Hub requests arriving at the double."""

    @property
    def quota_waits(self) -> list[WaitMeasure]:
        """The waits for the spec's window to reset: longer than a transient 429's reset."""
        reset = transient_reset_seconds(self.faults)
        return [wait for wait in self.hub_waits if wait.seconds > reset]

    @property
    def transient_waits(self) -> list[WaitMeasure]:
        reset = transient_reset_seconds(self.faults)
        return [wait for wait in self.hub_waits if wait.seconds <= reset]


def faults_night(config: FaultsConfig) -> FaultsResult:
    from itertools import pairwise

    from benchmarks.commands import arxiv_waits, executable, hub_waits, run_command
    from pipeline.config import Settings
    from pipeline.sandbox import politeness_violations

    work = _fresh_dir(Path(config.work_dir))
    settings = Settings.from_env(config.settings)
    out = work / "enriched"
    options = DoubleOptions(
        latency_seconds=config.latency_seconds,
        hub_window_seconds=config.hub_window_seconds,
        faults=config.faults,
    )
    with DoubleProcess(options) as double:
        env = _command_env(double.env, dict(config.settings), work / "prefect-home")
        argv = [
            executable("pipeline"),
            "run",
            str(Path(config.seeds_dir).resolve()),
            "--out",
            str(out),
            "--raw",
            str(work / "raw"),
        ]
        finished = run_command(
            argv, env, work / "night.log", cwd=work, timeout_seconds=config.timeout_seconds
        )
        if finished.exit_code == 2:  # bad usage: the benchmark's fault, not the night's
            raise RuntimeError(f"{' '.join(argv)} exited 2; see {work / 'night.log'}")
        counts = double.counts()
        log = double.log()
    arxiv_log = [entry for entry in log if entry.api == "arxiv"]
    violations = politeness_violations(arxiv_log, settings.arxiv_delay_seconds)
    arrivals = sorted(entry.received_at for entry in arxiv_log)
    hub_arrivals = sorted(entry.received_at for entry in log if entry.api == "hub")
    return FaultsResult(
        faults=config.faults,
        latency_seconds=config.latency_seconds,
        settings={name: float(getattr(settings, name)) for name in _REPORTED_SETTINGS},
        seconds=finished.seconds,
        cpu_seconds=finished.cpu_seconds,
        exit_code=finished.exit_code,
        timed_out=finished.timed_out,
        status=finished.run_status(),
        papers=_published_statuses(out, "papers", "status"),
        paper_pages=_published_statuses(out, "papers", "hf_page_status"),
        models=_published_statuses(out, "models", "status"),
        arxiv_requests=counts["arxiv"],
        hub_requests=counts["hub"],
        arxiv_by_status={str(k): v for k, v in sorted(counts.by_status.get("arxiv", {}).items())},
        hub_by_status={str(k): v for k, v in sorted(counts.by_status.get("hub", {}).items())},
        politeness_violations=len(violations),
        overlapping_requests=sum(1 for violation in violations if violation.overlapping),
        min_arxiv_gap_seconds=min((b - a for a, b in pairwise(arrivals)), default=None),
        hub_waits=[WaitMeasure(w.at_seconds, w.seconds, w.why) for w in hub_waits(finished.lines)],
        arxiv_backoffs=[
            WaitMeasure(w.at_seconds, w.seconds, w.why) for w in arxiv_waits(finished.lines)
        ],
        longest_hub_silence_seconds=max((b - a for a, b in pairwise(hub_arrivals)), default=0.0),
    )


def _published_statuses(out: Path, table: str, column: str) -> dict[str, int]:
    """Rows of the latest published `table` by `column`; none when nothing was published."""
    from pipeline.snapshot.read import load

    try:
        frame = load(table, out)
    except Exception:  # nothing published (the night failed): no rows to count
        return {}
    return {str(status): int(n) for status, n in Counter(frame[column].tolist()).items()}


# -- extraction: our links stage vs the bare parser ----------------------------------------

EXTRACTION_MODES = ("timing", "links", "published", "workers", "document")
"""- timing: every step of `TIMED_STEPS` on each document in turn, in one process;
- links: the links stage alone (`extract_document_links`), links counted and dropped:
  its peak memory is the stage's working set;
- published: every link kept through publishing, as the night does it: the documents
  extracted by the night's executor (`workers` processes), each one's record batches
  appended to the night's `LinksFile`; the resolvers' entity lists planned from it
  (`plan_night`); every table built (`build_tables`, no resolver answers: every entity
  a row, unresolved) and published (`store.publish`); with `nights` > 1, each later
  night built against the one before (`previous_tables`), as a schedule runs them;
- workers: extraction alone by the night's executor with 1 and with `workers` processes,
  taking turns `repeats` times (each pass starts its own pool), tables dropped;
- document: the corpus's one large document through the unit a worker runs
  (`extract_document_table`: its links straight into record batches), the table kept."""

TIMED_STEPS = ("parse", "stock-parse", "extract", "links")
"""- parse: markdown-it-py configured as `pipeline.links._markdown` does, bare `parse`;
- stock-parse: markdown-it-py with stock CommonMark + tables (no GFM autolink rules);
- extract: `extract_document` (chunked parse and token walk), occurrences dropped;
- links: `extract_document_links` (read, hash, extract, identify), links dropped.

They take turns document by document (the order rotating), so that whatever else the
machine does slows them alike: on a shared 2-core machine, timing each in its own pass
moved a ratio by 10 %."""


@dataclass(frozen=True)
class ExtractionConfig:
    corpus_dir: str
    mode: str
    workers: int = 1
    repeats: int = 1
    nights: int = 1
    """published: nights built and published in turn, each against the one before (the
    same links: an unchanged night), as a nightly schedule runs them: each later night in
    a process of its own, as `pipeline run` and Prefect's runner start one per night."""
    out_dir: str | None = None
    """published: where the snapshots go (default: a temporary folder)."""
    first_night: int = 0
    """published: the first night's date, in days after 2026-01-01."""


@dataclass
class StepTiming:
    seconds: float
    cpu_seconds: float
    links: int


@dataclass
class ExtractionResult:
    mode: str
    documents: int
    bytes: int
    links: int
    seconds: float
    """The whole pass (for timing: every step)."""
    cpu_seconds: float
    rss_before_mb: float
    """Peak RSS after imports, before the first document."""
    peak_rss_mb: float
    """Peak RSS once every document is done (before any links table is built)."""
    steps: dict[str, StepTiming] = field(default_factory=dict)
    """timing: each step's total over the corpus."""
    table_seconds: float | None = None
    """published: planning, building every table and publishing them."""
    table_peak_rss_mb: float | None = None
    """published: peak RSS once the snapshot is published."""
    workers: int = 1
    workers_peak_rss_mb: float | None = None
    """published with workers > 1: the largest peak RSS of one worker process (sampled)."""
    rows: dict[str, int] = field(default_factory=dict)
    """published: rows of each published table."""
    later_night_seconds: float | None = None
    """published with nights > 1: the last night's planning, building and publishing."""
    later_night_peak_rss_mb: float | None = None
    """published with nights > 1: peak RSS of the last night's process, extraction
    included, once it is published (it reads the night before as its baseline)."""
    worker_seconds: dict[str, list[float]] = field(default_factory=dict)
    """workers: the wall time of each pass, by number of workers (`"1"`, `"2"`)."""


def extraction(config: ExtractionConfig) -> ExtractionResult:
    from pipeline.arrow_memory import use_system_allocator

    if config.mode not in EXTRACTION_MODES:
        raise ValueError(f"unknown extraction mode {config.mode!r}; one of {EXTRACTION_MODES}")
    # The allocator `run_night` and `pipeline extract` choose: its memory is the night's.
    use_system_allocator()
    paths = sorted(Path(config.corpus_dir).glob("*.md"))
    if not paths:
        raise FileNotFoundError(f"no documents in {config.corpus_dir}")
    if config.mode == "published":
        return _published(config, paths)
    if config.mode == "workers":
        return _workers(config, paths)
    if config.mode == "document":
        return _one_document(paths)
    steps = {name: _step(name) for name in TIMED_STEPS}
    if config.mode != "timing":
        steps = {"links": steps["links"]}
    timings = {name: StepTiming(0.0, 0.0, 0) for name in steps}
    kept: list[Any] | None = None
    names = list(steps)
    before = peak_rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    total_bytes = 0
    for index, path in enumerate(paths):
        total_bytes += path.stat().st_size
        turn = index % len(names)
        for name in names[turn:] + names[:turn]:
            timing = timings[name]
            step_wall, step_cpu = time.perf_counter(), time.process_time()
            timing.links += steps[name](path, kept)
            timing.seconds += time.perf_counter() - step_wall
            timing.cpu_seconds += time.process_time() - step_cpu
    seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
    result = ExtractionResult(
        mode=config.mode,
        documents=len(paths),
        bytes=total_bytes,
        links=timings["links"].links,
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        rss_before_mb=before,
        peak_rss_mb=peak_rss_mb(),
        steps=timings if config.mode == "timing" else {},
    )
    return result


def _published(config: ExtractionConfig, paths: list[Path]) -> ExtractionResult:
    """Every link kept through publishing, as the night does it (`EXTRACTION_MODES`)."""
    import tempfile
    from datetime import UTC, date, datetime, timedelta

    from pipeline.links.documents import discover_documents
    from pipeline.night import ThreadExecutor, plan_night
    from pipeline.parameters import RunParameters
    from pipeline.snapshot.build import SnapshotInputs, baseline_columns, build_tables
    from pipeline.snapshot.links_file import LinksFile
    from pipeline.snapshot.read import previous_tables
    from pipeline.snapshot.store import ManifestEntry, publish

    before = peak_rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    named = discover_documents([Path(config.corpus_dir)])
    links, documents = LinksFile(), []
    with _WorkerMemory() as workers_memory, ThreadExecutor(workers=config.workers) as executor:
        for document, table in executor.extract(named):
            if document.error:
                raise RuntimeError(f"{document.name}: {document.error}")
            documents.append(document)
            links.append(table)
    seconds = time.perf_counter() - wall
    extracted_peak = peak_rss_mb()
    night_seconds: list[float] = []
    night_peaks: list[float] = []
    rows: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="bench-published-") as scratch:
        out = config.out_dir or scratch
        for night in range(config.first_night, config.first_night + 1):
            started = time.perf_counter()
            day = date(2026, 1, 1) + timedelta(days=night)
            plan_night(RunParameters(documents=[config.corpus_dir]), links)
            tables = build_tables(
                SnapshotInputs(links=links, documents=documents),
                snapshot_date=day,
                previous=previous_tables(out, before=day, columns=baseline_columns()),
            )
            now = datetime.now(UTC)
            published = publish(
                Path(out),
                tables,
                ManifestEntry(
                    run_id=f"benchmark-{night}",
                    flow_run_id=None,
                    snapshot_date=day,
                    started_at=now,
                    finished_at=now,
                    status="partial",
                    status_reason="no resolver asked",
                    documents=documents,
                    api_stats=[],
                ),
            )
            del tables
            rows = dict(published.rows)
            night_seconds.append(time.perf_counter() - started)
            night_peaks.append(peak_rss_mb())
        for night in range(1, config.nights):
            later_night = _night_process(
                replace(config, nights=1, out_dir=out, first_night=config.first_night + night)
            )
            night_seconds.append(later_night.table_seconds or 0.0)
            night_peaks.append(later_night.table_peak_rss_mb or 0.0)
            rows = later_night.rows
    later = config.nights > 1
    return ExtractionResult(
        mode=config.mode,
        documents=len(documents),
        bytes=sum(d.size_bytes or 0 for d in documents),
        links=links.num_rows,
        seconds=seconds,
        cpu_seconds=time.process_time() - cpu,
        rss_before_mb=before,
        peak_rss_mb=extracted_peak,
        table_seconds=night_seconds[0],
        table_peak_rss_mb=night_peaks[0],
        workers=config.workers,
        workers_peak_rss_mb=workers_memory.peak_mb if config.workers > 1 else None,
        rows=rows,
        later_night_seconds=night_seconds[-1] if later else None,
        later_night_peak_rss_mb=night_peaks[-1] if later else None,
    )


def _night_process(config: ExtractionConfig) -> ExtractionResult:
    """One `published` night in a fresh process (this module's `main`), as the schedule
    runs each night: its peak is its own, not the night before's."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-night-") as folder:
        config_path, result_path = Path(folder) / "config.json", Path(folder) / "result.json"
        config_path.write_text(json.dumps(asdict(config)), "utf-8")
        command = [sys.executable, "-m", "benchmarks.sections", "extraction"]
        root = Path(__file__).resolve().parents[1]
        subprocess.run([*command, str(config_path), str(result_path)], cwd=root, check=True)
        return load_dataclass(ExtractionResult, json.loads(result_path.read_text("utf-8")))


def _workers(config: ExtractionConfig, paths: list[Path]) -> ExtractionResult:
    """Extraction alone with 1 and `config.workers` processes, taking turns."""
    from pipeline.links.documents import discover_documents
    from pipeline.night import ThreadExecutor

    named = discover_documents([Path(config.corpus_dir)])
    before = peak_rss_mb()
    cpu = time.process_time()
    times: dict[str, list[float]] = {"1": [], str(config.workers): []}
    links = 0
    for _ in range(config.repeats):
        for workers in (1, config.workers):
            started = time.perf_counter()
            links = 0
            with ThreadExecutor(workers=workers) as executor:
                for _document, table in executor.extract(named):
                    links += table.num_rows
            times[str(workers)].append(time.perf_counter() - started)
    return ExtractionResult(
        mode=config.mode,
        documents=len(named),
        bytes=sum(path.stat().st_size for path in paths),
        links=links,
        seconds=sum(sum(t) for t in times.values()),
        cpu_seconds=time.process_time() - cpu,
        rss_before_mb=before,
        peak_rss_mb=peak_rss_mb(),
        workers=config.workers,
        worker_seconds=times,
    )


def _one_document(paths: list[Path]) -> ExtractionResult:
    """The largest document alone, as a worker extracts it (`EXTRACTION_MODES`)."""
    from pipeline.workers import extract_document_table

    path = max(paths, key=lambda p: p.stat().st_size)
    before = peak_rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    document, table = extract_document_table(path.name, str(path))
    if document.error:
        raise RuntimeError(f"{document.name}: {document.error}")
    return ExtractionResult(
        mode="document",
        documents=1,
        bytes=path.stat().st_size,
        links=table.num_rows,
        seconds=time.perf_counter() - wall,
        cpu_seconds=time.process_time() - cpu,
        rss_before_mb=before,
        peak_rss_mb=peak_rss_mb(),
    )


class _WorkerMemory:
    """The largest RSS any child process (the extraction pool's workers) reaches, sampled
    every 0.2 s: their peaks are not this process's, nor its `RUSAGE_CHILDREN` (the
    forkserver, not this process, is their parent)."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.wait(0.2):
            for child in me.children(recursive=True):
                try:
                    self.peak_mb = max(self.peak_mb, child.memory_info().rss / 1024**2)
                except psutil.Error:
                    continue  # it ended meanwhile

    def __enter__(self) -> _WorkerMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


_Step = Callable[[Path, "list[Any] | None"], int]
"""One step on one document: (path, where to keep links or None) -> links found."""


def _step(name: str) -> _Step:
    if name in ("parse", "stock-parse"):
        md = _configured_parser() if name == "parse" else _stock_parser()

        def parse_only(path: Path, kept: list[Any] | None) -> int:
            md.parse(path.read_text("utf-8"))
            return 0  # tokens only: finding links is what the other steps add

        return parse_only
    if name == "extract":
        from pipeline.links.extract import extract_document

        def extract(path: Path, kept: list[Any] | None) -> int:
            return sum(1 for _ in extract_document(path.read_text("utf-8"), path.name))

        return extract
    from pipeline.links.documents import extract_document_links

    def links(path: Path, kept: list[Any] | None) -> int:
        document, found = extract_document_links(path.name, path)
        if document.error:
            raise RuntimeError(f"{path}: {document.error}")
        if kept is not None:
            kept.extend(found)
        return len(found)

    return links


def _configured_parser() -> MarkdownIt:
    from pipeline.links._markdown import parser

    return parser(front_matter=True)


def _stock_parser() -> MarkdownIt:
    from markdown_it import MarkdownIt
    from mdit_py_plugins.footnote import footnote_plugin
    from mdit_py_plugins.front_matter import front_matter_plugin

    return (
        MarkdownIt("commonmark")
        .enable(["table", "strikethrough"])
        .use(footnote_plugin)
        .use(front_matter_plugin)
    )


# -- scale: synthetic papers and models against the double ---------------------------------


@dataclass(frozen=True)
class ScaleConfig:
    store_dir: str
    label: str
    papers: int
    models: int
    latency_seconds: float
    arxiv_delay_seconds: float
    fresh_store: bool


@dataclass
class ScaleResult:
    label: str
    papers: int
    models: int
    latency_seconds: float
    arxiv_delay_seconds: float
    hub_concurrency: int
    arxiv_seconds: float
    hub_seconds: float
    cpu_seconds: float
    arxiv_requests: int
    hub_requests: int
    arxiv_from_store: int
    hub_from_store: int
    papers_ok: int
    models_ok: int
    rss_before_mb: float
    peak_rss_mb: float
    store_mb: float


def scale(config: ScaleConfig) -> ScaleResult:
    from benchmarks.corpus import synthetic_arxiv_ids, synthetic_model_ids
    from pipeline.config import Settings
    from pipeline.resolve.arxiv import ArxivResolver
    from pipeline.resolve.hub import HubResolver
    from pipeline.resolve.rawstore import RawStore

    store_dir = Path(config.store_dir)
    if config.fresh_store:
        _fresh_dir(store_dir)
    paper_ids = synthetic_arxiv_ids(config.papers)
    model_refs: list[Any] = [("model", repo) for repo in synthetic_model_ids(config.models)]
    options = DoubleOptions(
        latency_seconds=config.latency_seconds,
        synthesize_unknown=True,
        hub_quota=10**9,  # the real quota would cap a 5,000-model run at 500 per 5 min
    )
    with DoubleProcess(options) as double:
        settings = Settings.from_env(
            {**double.env, "PIPELINE_ARXIV_DELAY_SECONDS": str(config.arxiv_delay_seconds)}
        )
        before = peak_rss_mb()
        cpu = time.process_time()
        with RawStore(store_dir) as store:
            arxiv = ArxivResolver(settings, store)
            started = time.perf_counter()
            papers = arxiv.resolve_ids(paper_ids)
            arxiv_seconds = time.perf_counter() - started
            arxiv.close()
            hub = HubResolver(settings, store)
            started = time.perf_counter()
            repos = hub.resolve_repos(model_refs)
            hub_seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu
        counts = double.counts()
    store_bytes = sum(p.stat().st_size for p in store_dir.rglob("*") if p.is_file())
    return ScaleResult(
        label=config.label,
        papers=config.papers,
        models=config.models,
        latency_seconds=config.latency_seconds,
        arxiv_delay_seconds=settings.arxiv_delay_seconds,
        hub_concurrency=settings.hub_concurrency,
        arxiv_seconds=arxiv_seconds,
        hub_seconds=hub_seconds,
        cpu_seconds=cpu_seconds,
        arxiv_requests=counts["arxiv"],
        hub_requests=counts["hub"],
        arxiv_from_store=arxiv.stats.from_store,
        hub_from_store=hub.stats.from_store,
        papers_ok=sum(1 for record in papers.values() if record.status == "ok"),
        models_ok=sum(1 for record in repos.values() if record.status == "ok"),
        rss_before_mb=before,
        peak_rss_mb=peak_rss_mb(),
        store_mb=store_bytes / 1024**2,
    )


# -- storage: a night on S3 (moto's server) against local disk ----------------------------


@dataclass(frozen=True)
class StorageConfig:
    work_dir: str
    seeds_dir: str
    latency_seconds: float
    arxiv_delay_seconds: float
    nights: int
    """Warm nights per store (each a new date on the store the cold night filled)."""


@dataclass
class StorageNight:
    store: str
    """local | s3"""
    kind: str
    """cold (empty raw store) | warm (the answers are stored)"""
    seconds: float
    stage_seconds: dict[str, float]
    requests: int
    from_store: int
    status: str


@dataclass
class StorageResult:
    latency_seconds: float
    arxiv_delay_seconds: float
    links: int
    nights: list[StorageNight]
    objects: int
    """Objects in the bucket after every S3 night (snapshots and raw store)."""
    object_mb: float


def storage(config: StorageConfig) -> StorageResult:
    """The seeds' night through `pipeline.night.run_night`, `--out`/`--raw` on local disk
    and on moto's S3 server (a process of its own, over loopback HTTP), cold then warm."""
    import socket
    import subprocess
    from datetime import date, timedelta

    import fsspec

    from pipeline.config import Settings
    from pipeline.night import run_night
    from pipeline.parameters import RunParameters

    work = _fresh_dir(Path(config.work_dir))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Its own process: the server's CPU is not the night's, as a real store's is not.
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    s3_env = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    saved_env = {name: os.environ.get(name) for name in s3_env}
    os.environ.update(s3_env)
    nights: list[StorageNight] = []
    links = 0
    try:
        _wait_for_port(port, moto)
        fs = fsspec.filesystem("s3", use_listings_cache=False)
        fs.mkdir("bench")
        stores = {"local": (str(work / "enriched"), str(work / "raw"))}
        stores["s3"] = ("s3://bench/enriched", "s3://bench/raw")
        options = DoubleOptions(latency_seconds=config.latency_seconds)
        with DoubleProcess(options) as double:
            settings = Settings.from_env(
                {
                    **double.env,
                    "PIPELINE_ARXIV_DELAY_SECONDS": str(config.arxiv_delay_seconds),
                    # With a token (the double takes any): GitHub's 60 anonymous requests
                    # an hour are one budget for both stores' nights, which would then
                    # not ask the same.
                    "GITHUB_TOKEN": "benchmark-token",
                }
            )
            for night in range(1 + config.nights):
                for store, (out, raw) in stores.items():
                    params = RunParameters(
                        documents=[config.seeds_dir],
                        out_dir=out,
                        raw_dir=raw,
                        snapshot_date=date(2026, 1, 1) + timedelta(days=night),
                    )
                    double.reset()
                    started = time.perf_counter()
                    done = run_night(params, settings=settings).summary
                    seconds = time.perf_counter() - started
                    links = done.links
                    nights.append(
                        StorageNight(
                            store=store,
                            kind="cold" if night == 0 else "warm",
                            seconds=seconds,
                            stage_seconds=dict(done.stage_seconds),
                            requests=sum(double.counts().by_api.values()),
                            from_store=sum(s.from_store for s in done.api),
                            status=done.status,
                        )
                    )
        found = fs.find("bench", detail=True)
        object_mb = sum(int(info["size"]) for info in found.values()) / 1024**2
        objects = len(found)
    finally:
        moto.terminate()
        moto.wait(timeout=30)
        # The section may run in a caller's process (the tests): leave no endpoint of a
        # server that is gone, neither in the environment nor in fsspec's cached clients.
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        fsspec.get_filesystem_class("s3").clear_instance_cache()
    return StorageResult(
        latency_seconds=config.latency_seconds,
        arxiv_delay_seconds=config.arxiv_delay_seconds,
        links=links,
        nights=nights,
        objects=objects,
        object_mb=object_mb,
    )


# -- the nightly HTML report: the seeds, and a synthetic snapshot at scale -------------------

REPORT_WEEK_DAYS = 7


@dataclass(frozen=True)
class ReportConfig:
    work_dir: str
    label: str
    seeds_dir: str | None = None
    """The seeds: two nights of them against the double (a week apart, the second from
    the raw store), published by `pipeline run` as a user runs it."""
    papers: int = 0
    """Without seeds: three synthetic nights (`benchmarks.corpus.synthetic_snapshot`), a
    week, a day and no day before the measured one, of 95 %, 99 % and all of `papers`."""
    models: int = 0
    builds: int = 3
    """Reports built in this process: the first pays the imports (matplotlib's included)."""


@dataclass
class ReportResult:
    label: str
    seeds: bool
    nights: int
    papers: int
    models: int
    command_seconds: float
    """`pipeline report` of the night, from its process's start to its exit: the build as
    a user gets it, every import included."""
    first_seconds: float
    """The first build in this process (matplotlib's import included; pandas and pyarrow
    were loaded to publish)."""
    seconds: list[float]
    """The builds after it."""
    cpu_seconds: float
    """The first build's CPU."""
    size_bytes: int
    empty_panels: list[str]
    rss_before_mb: float
    peak_rss_mb: float


def report_build(config: ReportConfig) -> ReportResult:
    import re

    import pyarrow.parquet as pq

    from benchmarks.commands import executable, run_command
    from benchmarks.corpus import synthetic_snapshot
    from pipeline.snapshot.read import latest_snapshot
    from pipeline.snapshot.store import ManifestEntry, publish

    work = _fresh_dir(Path(config.work_dir))
    out = work / "enriched"
    day = date(2026, 11, 20)
    week_before = day - timedelta(days=REPORT_WEEK_DAYS)
    if config.seeds_dir is not None:
        with DoubleProcess(DoubleOptions(latency_seconds=0.0)) as double:
            env = _command_env(
                double.env, {"PIPELINE_ARXIV_DELAY_SECONDS": "0.05"}, work / "prefect-home"
            )
            seeds = str(Path(config.seeds_dir).resolve())
            for night, extra in ((week_before, ()), (day, ("--offline",))):
                argv = [
                    executable("pipeline"),
                    "run",
                    seeds,
                    "--out",
                    str(out),
                    "--raw",
                    str(work / "raw"),
                    "--date",
                    night.isoformat(),
                    *extra,
                ]
                log = work / f"night-{night.isoformat()}.log"
                finished = run_command(argv, env, log, cwd=work, timeout_seconds=900)
                if finished.exit_code not in (0, 3):
                    raise RuntimeError(f"{' '.join(argv)} exited {finished.exit_code}; see {log}")
        nights = 2
    else:
        started = datetime(2026, 11, 1, tzinfo=UTC)
        plan = (
            (week_before, 0.95, None),
            (day - timedelta(days=1), 0.99, week_before),
            (day, 1.0, day - timedelta(days=1)),
        )
        earlier = 0.0
        for night, share, since in plan:
            tables = synthetic_snapshot(
                int(config.papers * share),
                int(config.models * share),
                night,
                since,
                earlier_share=earlier / share,
            )
            earlier = share
            publish(out, tables, ManifestEntry(f"synthetic-{night.isoformat()}", night, started))
        nights = len(plan)
    snapshot = latest_snapshot(out)
    if snapshot is None:
        raise RuntimeError(f"nothing published under {out}")
    rows = {name: pq.read_metadata(path).num_rows for name, path in snapshot.files.items()}
    argv = [executable("pipeline"), "report", "--out", str(out), "--date", day.isoformat()]
    command = run_command(
        [*argv, "--output", str(work / "command.html")],
        _command_env({}, {}, work / "prefect-home"),
        work / "report-command.log",
        cwd=work,
        timeout_seconds=600,
    )
    if command.exit_code != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {command.exit_code}")
    before = peak_rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    from pipeline.report.nightly import write_report

    target = work / "report.html"
    write_report(out, day, target)
    first, first_cpu = time.perf_counter() - wall, time.process_time() - cpu
    seconds = []
    for _ in range(config.builds - 1):
        wall = time.perf_counter()
        write_report(out, day, target)
        seconds.append(time.perf_counter() - wall)
    text = target.read_text("utf-8")
    empty = re.findall(r'<section id="([a-z-]+)"[^>]*>(?:(?!</section>).)*data-empty', text, re.S)
    return ReportResult(
        label=config.label,
        seeds=config.seeds_dir is not None,
        nights=nights,
        papers=rows["papers"],
        models=rows["models"],
        command_seconds=command.seconds,
        first_seconds=first,
        seconds=seconds,
        cpu_seconds=first_cpu,
        size_bytes=target.stat().st_size,
        empty_panels=empty,
        rss_before_mb=before,
        peak_rss_mb=peak_rss_mb(),
    )


# -- live lists: a second night over unchanged lists ------------------------------------


@dataclass(frozen=True)
class SourcesConfig:
    work_dir: str
    seeds_dir: str
    latency_seconds: float


@dataclass
class SourcesNight:
    label: str
    github_requests: int
    by_status: dict[str, int]
    """GitHub answers by HTTP status, from the double's own log."""
    list_bytes_downloaded: int
    """Bytes of list content in tonight's 200 answers (contents, JSON or raw)."""
    unchanged: int
    """Documents GitHub said were unchanged (304)."""
    sources_seconds: float
    """The sources stage's wall time."""
    status: str


@dataclass
class SourcesResult:
    lists: int
    list_bytes: int
    latency_seconds: float
    nights: list[SourcesNight] = field(default_factory=list)


def live_lists(config: SourcesConfig) -> SourcesResult:
    """Each seed served as a GitHub list by the double (in this process: the figures are
    request counts and bytes, not CPU); two nights on one raw store, the lists unchanged
    between them. The second must download no list again: 304s only."""
    from pipeline import night as pipeline_night
    from pipeline.config import Settings
    from pipeline.parameters import RunParameters
    from pipeline.resolve.rawstore import RawStore
    from pipeline.sandbox import Sandbox
    from pipeline.sandbox.github_api import GithubDouble, UpstreamFile

    work = _fresh_dir(Path(config.work_dir))
    seeds = sorted(Path(config.seeds_dir).glob("*.txt"))
    files = [
        UpstreamFile.with_history("bench-owner", "lists", f"lists/{seed.name}", seed.read_bytes())
        for seed in seeds
    ]
    sources = work / "sources.toml"
    sources.write_text(
        "".join(
            f"[[list]]\nname = {seed.stem!r}\n"
            f"source = 'github:bench-owner/lists/lists/{seed.name}'\n"
            for seed in seeds
        ),
        "utf-8",
    )
    result = SourcesResult(
        lists=len(seeds),
        list_bytes=sum(seed.stat().st_size for seed in seeds),
        latency_seconds=config.latency_seconds,
    )
    with Sandbox(github=GithubDouble(files), latency_seconds=config.latency_seconds) as sandbox:
        settings = Settings.from_env({**sandbox.env(), "PIPELINE_ARXIV_DELAY_SECONDS": "0.01"})
        for label, day in (
            ("first night (fresh store)", "2026-01-01"),
            ("second night", "2026-01-02"),
        ):
            sandbox.reset_log()
            with RawStore(work / "raw") as store:
                before = len(store.responses("github"))
            night = pipeline_night.run_night(
                RunParameters(
                    sources=str(sources),
                    out_dir=str(work / "enriched"),
                    raw_dir=str(work / "raw"),
                    snapshot_date=day,  # type: ignore[arg-type]
                    # The lists alone: repository lookups would spend the anonymous
                    # budget the second night's list requests need (60 an hour).
                    resolvers=["arxiv", "arxiv_titles", "hub", "paper_pages"],
                ),
                settings=settings,
            )
            with RawStore(work / "raw") as store:
                tonight = store.responses("github")[before:]
            # The lists' own requests (contents, commits); repository lookups are apart.
            log = sandbox.requests("github", lambda r: r.path.startswith("/repos/bench-owner/"))
            result.nights.append(
                SourcesNight(
                    label=label,
                    github_requests=len(log),
                    by_status={
                        str(k): v for k, v in sorted(Counter(r.status for r in log).items())
                    },
                    list_bytes_downloaded=sum(
                        r.body_bytes
                        for r in tonight
                        if r.status == 200 and r.endpoint in ("contents", "contents_raw")
                    ),
                    unchanged=sum(1 for r in log if r.status == 304),
                    sources_seconds=night.summary.stage_seconds.get("sources", 0.0),
                    status=night.summary.status,
                )
            )
    return result


# -- plumbing ------------------------------------------------------------------------------


def _wait_for_port(port: int, process: Any, timeout_seconds: float = 60.0) -> None:
    import socket

    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"moto server not listening on {port} within {timeout_seconds:.0f} s")


def _fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


_NESTED: dict[str, type[Any]] = {
    "CommandRun": CommandRun,
    "StepTiming": StepTiming,
    "WaitMeasure": WaitMeasure,
    "StorageNight": StorageNight,
    "SourcesNight": SourcesNight,
}

SECTIONS: dict[str, tuple[type[Any], Callable[[Any], Any]]] = {
    "resolution": (ResolutionConfig, resolution),
    "cli": (CliConfig, cli_runs),
    "faults": (FaultsConfig, faults_night),
    "extraction": (ExtractionConfig, extraction),
    "scale": (ScaleConfig, scale),
    "storage": (StorageConfig, storage),
    "report": (ReportConfig, report_build),
    "sources": (SourcesConfig, live_lists),
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] not in SECTIONS:
        names = ", ".join(SECTIONS)
        print(f"usage: python -m benchmarks.sections {{{names}}} CONFIG.json RESULT.json")
        return 2
    name, config_path, result_path = args
    config_type, measure = SECTIONS[name]
    config = load_dataclass(config_type, json.loads(Path(config_path).read_text("utf-8")))
    result = measure(config)
    data = result if isinstance(result, dict) else asdict(result)
    Path(result_path).write_text(json.dumps(data, indent=2), "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
