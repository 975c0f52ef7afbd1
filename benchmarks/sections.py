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
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from benchmarks.double import DoubleOptions, DoubleProcess
from benchmarks.machine import peak_rss_mb

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

_T = TypeVar("_T")


def load_dataclass(cls: type[_T], data: dict[str, Any]) -> _T:
    """A dataclass from its `asdict` form; fields declared as one of this module's nested
    result types (or a `dict[str, ...]` of one) are rebuilt too."""
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


# -- the flow: Prefect's start-up, a cold run, a warm rerun ------------------------------


@dataclass(frozen=True)
class FlowConfig:
    work_dir: str
    seeds_dir: str
    latency_seconds: float
    arxiv_delay_seconds: float


@dataclass
class RunMeasure:
    seconds: float
    """`run_once`, end to end."""
    stage_seconds: dict[str, float]
    """The flow body's own clock per stage (extract, resolve, snapshot)."""
    arxiv_requests: int
    hub_requests: int
    from_store: dict[str, int]
    entities_asked: dict[str, int]
    status: str
    state: str


@dataclass
class FlowResult:
    latency_seconds: float
    arxiv_delay_seconds: float
    hub_concurrency: int
    import_seconds: float
    prefect_first_flow_seconds: float
    """A trivial flow, first in the process: starts the ephemeral API server."""
    prefect_next_flow_seconds: float
    """A trivial flow once the server is up: Prefect's per-run cost."""
    cold: RunMeasure
    warm: RunMeasure


def prefect_init(config: FlowConfig) -> dict[str, float]:
    """Create Prefect's database once, so that the flow section times a start-up with an
    existing database, as every run but the very first has."""
    started = time.perf_counter()
    _trivial_flow()
    return {"seconds": time.perf_counter() - started}


def _trivial_flow() -> None:
    from prefect import flow

    @flow(name="benchmark-trivial")
    def trivial() -> int:
        return 1

    trivial()


def flow_runs(config: FlowConfig) -> FlowResult:
    started = time.perf_counter()
    from pipeline.config import Settings
    from pipeline.flow import run_once
    from pipeline.parameters import RunParameters

    import_seconds = time.perf_counter() - started
    started = time.perf_counter()
    _trivial_flow()
    first = time.perf_counter() - started
    started = time.perf_counter()
    _trivial_flow()
    following = time.perf_counter() - started

    work = _fresh_dir(Path(config.work_dir))
    with DoubleProcess(DoubleOptions(latency_seconds=config.latency_seconds)) as double:
        # The flow reads its settings from the environment, as a deployed run does.
        os.environ.update(double.env)
        os.environ["PIPELINE_ARXIV_DELAY_SECONDS"] = str(config.arxiv_delay_seconds)
        os.environ.pop("HF_TOKEN", None)
        params = RunParameters(
            documents=[config.seeds_dir],
            out_dir=str(work / "enriched"),
            raw_dir=str(work / "raw"),
        )
        measures = []
        for _ in ("cold", "warm"):
            double.reset()
            started = time.perf_counter()
            summary, state = run_once(params)
            seconds = time.perf_counter() - started
            if summary is None:
                raise RuntimeError(f"the flow run ended without a summary: {state}")
            counts = double.counts()
            measures.append(
                RunMeasure(
                    seconds=seconds,
                    stage_seconds=dict(summary.stage_seconds),
                    arxiv_requests=counts["arxiv"],
                    hub_requests=counts["hub"],
                    from_store={stats.api: stats.from_store for stats in summary.api},
                    entities_asked=dict(summary.entities_asked),
                    status=summary.status,
                    state=str(state.name),
                )
            )
        settings = Settings.from_env()
    return FlowResult(
        latency_seconds=config.latency_seconds,
        arxiv_delay_seconds=settings.arxiv_delay_seconds,
        hub_concurrency=settings.hub_concurrency,
        import_seconds=import_seconds,
        prefect_first_flow_seconds=first,
        prefect_next_flow_seconds=following,
        cold=measures[0],
        warm=measures[1],
    )


# -- extraction: our links stage vs the bare parser ----------------------------------------

EXTRACTION_MODES = ("timing", "links", "links-kept")
"""- timing: every step of `TIMED_STEPS` on each document in turn, in one process;
- links: the links stage alone (`extract_document_links`), links counted and dropped:
  its peak memory is the stage's working set;
- links-kept: the same, every link kept, as the flow holds them for the snapshot; then
  the links table built from them (`links.links_table`), as the snapshot does."""

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
    """links-kept: building the links table from the kept links."""
    table_peak_rss_mb: float | None = None
    """links-kept: peak RSS once the links table is built."""


def extraction(config: ExtractionConfig) -> ExtractionResult:
    if config.mode not in EXTRACTION_MODES:
        raise ValueError(f"unknown extraction mode {config.mode!r}; one of {EXTRACTION_MODES}")
    paths = sorted(Path(config.corpus_dir).glob("*.md"))
    if not paths:
        raise FileNotFoundError(f"no documents in {config.corpus_dir}")
    steps = {name: _step(name) for name in TIMED_STEPS}
    if config.mode != "timing":
        steps = {"links": steps["links"]}
    timings = {name: StepTiming(0.0, 0.0, 0) for name in steps}
    kept: list[Any] | None = [] if config.mode == "links-kept" else None
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
    if kept:
        from pipeline.snapshot.build import links_table

        started = time.perf_counter()
        table = links_table(kept)
        result.table_seconds = time.perf_counter() - started
        result.table_peak_rss_mb = peak_rss_mb()
        del table
    return result


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


# -- plumbing ------------------------------------------------------------------------------


def _fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


_NESTED: dict[str, type[Any]] = {"RunMeasure": RunMeasure, "StepTiming": StepTiming}

SECTIONS: dict[str, tuple[type[Any], Callable[[Any], Any]]] = {
    "resolution": (ResolutionConfig, resolution),
    "prefect-init": (FlowConfig, prefect_init),
    "flow": (FlowConfig, flow_runs),
    "extraction": (ExtractionConfig, extraction),
    "scale": (ScaleConfig, scale),
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
