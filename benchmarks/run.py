"""Run the benchmarks and write the report: `python -m benchmarks.run [--quick]`.

Five sections, each measured in fresh processes (`benchmarks.sections`) against the
loopback double running in a process of its own (`benchmarks.double`):

1. resolution: the seeds' arXiv IDs and Hub repos, ours vs the naive baseline vs the floor;
2. cli: the `pipeline run` command on the seeds, cold and warm, directly and as a Prefect
   flow run (a temporary server, and an already-running `prefect server start`);
3. faults: a first night of the seeds against the operations issue's faults, with the
   real Hub window, the real arXiv delay and the default retries (one night per seed);
4. extraction: the links stage vs the bare markdown parser on a synthetic corpus;
5. scale: 5k/10k/20k synthetic papers (and a quarter as many models), cold, warm, new;
6. storage: the seeds' night with --out/--raw on moto's S3 server against local disk.
7. report: the nightly HTML report of the seeds and of a synthetic 20k-paper snapshot.
8. sources: two nights over unchanged GitHub lists: the second downloads no list (304s).

The full run (~80 minutes on 2 cores: the 1 GB pass's two nights ~31, two faults nights
of ~7 each) writes `benchmarks/RESULTS.md`, keeping what was written by hand outside its
generated part; `--quick` (~10 minutes: small corpus, scaled delays, fewer points, one faults
night, which keeps the real delays) writes `benchmarks/_work/RESULTS-quick.md` instead.
Scratch data, logs and the raw results (JSON) go to `benchmarks/_work/`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks import BENCHMARKS_DIR, WORK_DIR
from benchmarks.corpus import MB, CorpusSpec, write_corpus
from benchmarks.machine import describe_machine
from benchmarks.report import (
    CorpusSummary,
    Results,
    merge,
    render_generated,
    results_from_json,
)
from benchmarks.sections import (
    EXTRACTION_MODES,
    CliConfig,
    CliResult,
    ExtractionConfig,
    ExtractionResult,
    FaultsConfig,
    FaultsResult,
    ReportConfig,
    ReportResult,
    ResolutionConfig,
    ResolutionResult,
    ScaleConfig,
    ScaleResult,
    SourcesConfig,
    SourcesResult,
    StorageConfig,
    StorageResult,
    faults_spec,
    load_dataclass,
)
from pipeline.config import PROJECT_ROOT

SECTION_NAMES = (
    "resolution",
    "cli",
    "faults",
    "extraction",
    "scale",
    "storage",
    "report",
    "sources",
)
RESULTS_FILE = BENCHMARKS_DIR / "RESULTS.md"


@dataclass(frozen=True)
class ScalePoint:
    label: str
    papers: int
    models: int
    store: str
    """Name of the raw store (under the work dir) the point runs on."""
    fresh: bool
    """Start from an empty store."""


@dataclass(frozen=True)
class Plan:
    mode: str
    latency_seconds: float
    arxiv_delay_seconds: float
    naive_delay_seconds: float
    warm_runs: int
    """Warm runs of `pipeline run` without a server (the target is on their median)."""
    prefect_warm_runs: int
    """Warm runs of each Prefect path."""
    fault_seeds: tuple[int, ...]
    """One first night against faults per seed (real delays and window: minutes each)."""
    corpus: CorpusSpec
    extraction_modes: tuple[str, ...]
    large_corpus: CorpusSpec | None
    """Every link kept through publishing at this size too (`published` mode)."""
    workers_corpus: CorpusSpec
    """Extraction with 1 and `extraction_workers` processes, taking turns (`workers` mode)."""
    extraction_workers: int
    worker_repeats: int
    document_corpus: CorpusSpec
    """One large document, extracted as a worker does (`document` mode)."""
    scale_latency_seconds: float
    scale_delay_seconds: float
    scale_points: tuple[ScalePoint, ...]
    report_papers: int = 20_000
    """The synthetic snapshot the report is built of (a quarter as many models)."""


def _scale_points(small: int, large: int, sizes: Sequence[int]) -> tuple[ScalePoint, ...]:
    """Cold at each size, warm at the largest, and the largest on the store of `small`."""
    points = [ScalePoint(f"cold {n:,}", n, n // 4, f"store-{n}", True) for n in sizes]
    points.append(ScalePoint(f"warm {large:,}", large, large // 4, f"store-{large}", False))
    points.append(
        ScalePoint(
            f"{large:,} on the {small:,} store ({large - small:,} new)",
            large,
            large // 4,
            f"store-{small}",
            False,
        )
    )
    return tuple(points)


FULL = Plan(
    mode="full",
    latency_seconds=0.3,
    arxiv_delay_seconds=3.0,
    naive_delay_seconds=0.5,
    warm_runs=5,
    prefect_warm_runs=3,
    fault_seeds=(7, 8),
    corpus=CorpusSpec(documents=1000, total_bytes=100 * MB),
    extraction_modes=EXTRACTION_MODES,
    large_corpus=CorpusSpec(documents=1000, total_bytes=1024 * MB),
    workers_corpus=CorpusSpec(documents=250, total_bytes=25 * MB),
    extraction_workers=2,
    worker_repeats=3,
    document_corpus=CorpusSpec(documents=1, total_bytes=20 * MB),
    scale_latency_seconds=0.02,
    scale_delay_seconds=0.05,
    scale_points=_scale_points(10_000, 20_000, (5_000, 10_000, 20_000)),
)
QUICK = Plan(
    mode="quick",
    latency_seconds=0.05,
    arxiv_delay_seconds=0.3,
    naive_delay_seconds=0.02,
    warm_runs=3,
    prefect_warm_runs=2,
    fault_seeds=(7,),
    corpus=CorpusSpec(documents=40, total_bytes=4 * MB),
    extraction_modes=EXTRACTION_MODES,
    large_corpus=None,
    workers_corpus=CorpusSpec(documents=20, total_bytes=2 * MB),
    extraction_workers=2,
    worker_repeats=2,
    document_corpus=CorpusSpec(documents=1, total_bytes=2 * MB),
    scale_latency_seconds=0.01,
    scale_delay_seconds=0.02,
    scale_points=_scale_points(1_000, 2_000, (1_000, 2_000)),
    report_papers=2_000,
)


FAULTS_NIGHT_TIMEOUT_SECONDS = 40 * 60.0
"""A faults night takes 6-10 minutes; one still running after this is killed and reported."""


class BenchmarkError(Exception):
    """A section failed; names it and its log."""


class _Runner:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.logs = work / "logs"
        self.io = work / "io"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.io.mkdir(parents=True, exist_ok=True)
        self._count = 0

    def env(self) -> dict[str, str]:
        """The sections' environment: this one without anything that would change what is
        measured (PIPELINE_* tunables, a token, a Prefect server elsewhere)."""
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith("PIPELINE_") and name not in ("HF_TOKEN", "PREFECT_API_URL")
        }
        env["PYTHONPATH"] = os.pathsep.join(
            [str(PROJECT_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        env["PREFECT_HOME"] = str(self.work / "prefect-home")
        return env

    def section(self, name: str, config: Any) -> dict[str, Any]:
        self._count += 1
        stem = f"{self._count:02d}-{name}"
        config_path, result_path = self.io / f"{stem}.config.json", self.io / f"{stem}.json"
        config_path.write_text(json.dumps(asdict(config), indent=2), "utf-8")
        log = self.logs / f"{stem}.log"
        command = [sys.executable, "-m", "benchmarks.sections", name]
        with log.open("w") as out:
            code = subprocess.run(
                [*command, str(config_path), str(result_path)],
                cwd=PROJECT_ROOT,
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            ).returncode
        if code != 0:
            raise BenchmarkError(f"section {name} failed with exit status {code}; see {log}")
        result: dict[str, Any] = json.loads(result_path.read_text("utf-8"))
        return result


def _say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def run(plan: Plan, sections: Sequence[str], work: Path, command: str) -> Results:
    runner = _Runner(work)
    results = Results(mode=plan.mode, command=command, machine=describe_machine(PROJECT_ROOT))
    results.load_average["start"] = list(os.getloadavg())
    seeds = str(PROJECT_ROOT / "raw" / "seeds")
    if "resolution" in sections:
        _say(f"resolution: ours, then the naive baseline (delay {plan.naive_delay_seconds:g} s)")
        config = ResolutionConfig(
            work_dir=str(work / "resolution"),
            seeds_dir=seeds,
            latency_seconds=plan.latency_seconds,
            arxiv_delay_seconds=plan.arxiv_delay_seconds,
            naive_delay_seconds=plan.naive_delay_seconds,
        )
        results.resolution = load_dataclass(ResolutionResult, runner.section("resolution", config))
    if "cli" in sections:
        _say("cli: `pipeline run` cold and warm, directly, with --prefect, through a server")
        cli_config = CliConfig(
            work_dir=str(work / "cli"),
            seeds_dir=seeds,
            latency_seconds=plan.latency_seconds,
            arxiv_delay_seconds=plan.arxiv_delay_seconds,
            warm_runs=plan.warm_runs,
            prefect_warm_runs=plan.prefect_warm_runs,
        )
        results.cli = load_dataclass(CliResult, runner.section("cli", cli_config))
    if "faults" in sections:
        for seed in plan.fault_seeds:
            _say(f"faults: a first night against faults, seed {seed} (minutes)")
            faults_config = FaultsConfig(
                work_dir=str(work / "faults" / f"seed-{seed}"),
                seeds_dir=seeds,
                latency_seconds=plan.latency_seconds,
                faults=faults_spec(seed),
                timeout_seconds=FAULTS_NIGHT_TIMEOUT_SECONDS,
            )
            results.faults.append(
                load_dataclass(FaultsResult, runner.section("faults", faults_config))
            )
    if "extraction" in sections:
        spec = plan.corpus
        _say(f"extraction: corpus of {spec.documents} documents, {spec.total_bytes / MB:.0f} MB")
        corpus = write_corpus(spec, work)
        results.corpus = CorpusSummary(spec.documents, corpus.total_bytes, spec.seed, corpus.sha256)
        passes: list[tuple[str, ExtractionConfig]] = []
        for mode in plan.extraction_modes:
            config_of = ExtractionConfig(corpus_dir=str(corpus.directory), mode=mode)
            if mode == "published":
                # In the run's own process (the default) and on a pool of workers; a
                # second night against the first, as the schedule runs every night.
                config_of = replace(config_of, nights=2)
                passes.append((mode, config_of))
                workers = replace(config_of, workers=plan.extraction_workers)
                passes.append((f"{mode}-workers", workers))
            elif mode == "document":
                one = write_corpus(plan.document_corpus, work)
                passes.append((mode, replace(config_of, corpus_dir=str(one.directory))))
            elif mode == "workers":
                small = write_corpus(plan.workers_corpus, work)
                results.workers_corpus = CorpusSummary(
                    plan.workers_corpus.documents, small.total_bytes, small.spec.seed, small.sha256
                )
                config_of = replace(
                    config_of,
                    corpus_dir=str(small.directory),
                    workers=plan.extraction_workers,
                    repeats=plan.worker_repeats,
                )
                passes.append((mode, config_of))
            else:
                passes.append((mode, config_of))
        if plan.large_corpus is not None and "published" in plan.extraction_modes:
            _say(f"extraction: corpus of {plan.large_corpus.total_bytes / MB:.0f} MB (minutes)")
            large = write_corpus(plan.large_corpus, work)
            results.large_corpus = CorpusSummary(
                plan.large_corpus.documents, large.total_bytes, large.spec.seed, large.sha256
            )
            passes.append(
                (
                    "published-large",
                    ExtractionConfig(
                        corpus_dir=str(large.directory),
                        mode="published",
                        workers=plan.extraction_workers,
                        # The next night reads the first one's links as its baseline.
                        nights=2,
                    ),
                )
            )
        for name, extraction_config in passes:
            _say(f"extraction: {name}")
            results.extraction[name] = load_dataclass(
                ExtractionResult, runner.section("extraction", extraction_config)
            )
    if "scale" in sections:
        for point in plan.scale_points:
            _say(f"scale: {point.label}")
            scale_config = ScaleConfig(
                store_dir=str(work / "scale" / point.store),
                label=point.label,
                papers=point.papers,
                models=point.models,
                latency_seconds=plan.scale_latency_seconds,
                arxiv_delay_seconds=plan.scale_delay_seconds,
                fresh_store=point.fresh,
            )
            results.scale.append(load_dataclass(ScaleResult, runner.section("scale", scale_config)))
    if "storage" in sections:
        _say("storage: a night on S3 (moto's server) against local disk, cold then warm")
        storage_config = StorageConfig(
            work_dir=str(work / "storage"),
            seeds_dir=seeds,
            latency_seconds=plan.scale_latency_seconds,
            arxiv_delay_seconds=plan.scale_delay_seconds,
            nights=plan.warm_runs,
        )
        results.storage = load_dataclass(StorageResult, runner.section("storage", storage_config))
    if "report" in sections:
        _say("report: the nightly HTML report of the seeds")
        report = ReportConfig(str(work / "report" / "seeds"), "the seeds", seeds_dir=seeds)
        results.report.append(load_dataclass(ReportResult, runner.section("report", report)))
        papers = plan.report_papers
        _say(f"report: the nightly HTML report of {papers:,} synthetic papers")
        report = ReportConfig(
            str(work / "report" / "synthetic"),
            f"synthetic {papers:,}",
            papers=papers,
            models=papers // 4,
        )
        results.report.append(load_dataclass(ReportResult, runner.section("report", report)))
    if "sources" in sections:
        _say("sources: two nights over unchanged GitHub lists")
        sources_config = SourcesConfig(
            work_dir=str(work / "sources"), seeds_dir=seeds, latency_seconds=plan.latency_seconds
        )
        results.sources = load_dataclass(SourcesResult, runner.section("sources", sources_config))
    results.load_average["end"] = list(os.getloadavg())
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Measure a run's cost against the naive way and the APIs' limits.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small corpus, scaled delays, fewer points"
    )
    parser.add_argument(
        "--latency-ms", type=float, help="the double's latency per request (full: 300)"
    )
    parser.add_argument(
        "--naive-delay",
        type=float,
        help="seconds between the naive client's arXiv requests (full: 0.5; real rule: 3);"
        " its wall time at 3 s is extrapolated from its request count",
    )
    parser.add_argument(
        "--arxiv-delay", type=float, help="our arXiv delay for the seeds (full: 3, the real rule)"
    )
    parser.add_argument(
        "--fault-seeds",
        help="comma-separated seeds of the faults nights, one night each (full: 7,8; quick: 7)",
    )
    parser.add_argument("--corpus-documents", type=int, help="documents in the corpus")
    parser.add_argument("--corpus-mb", type=float, help="corpus size in MB")
    parser.add_argument(
        "--sections",
        default=",".join(SECTION_NAMES),
        help=f"comma-separated subset of {', '.join(SECTION_NAMES)} (default: all)",
    )
    parser.add_argument(
        "--report-from",
        type=Path,
        metavar="RESULTS_JSON",
        help="measure nothing: write the report from the results a run saved"
        " (benchmarks/_work/<mode>/results.json), e.g. after editing the text around it",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="report path (full: benchmarks/RESULTS.md; quick: benchmarks/_work/RESULTS-quick.md)",
    )
    args = parser.parse_args(argv)
    sections = [name.strip() for name in args.sections.split(",") if name.strip()]
    unknown = sorted(set(sections) - set(SECTION_NAMES))
    if unknown:
        parser.error(f"unknown sections: {', '.join(unknown)}")
    plan = QUICK if args.quick else FULL
    changes: dict[str, Any] = {}
    if args.latency_ms is not None:
        changes["latency_seconds"] = args.latency_ms / 1000
    if args.naive_delay is not None:
        changes["naive_delay_seconds"] = args.naive_delay
    if args.arxiv_delay is not None:
        changes["arxiv_delay_seconds"] = args.arxiv_delay
    if args.fault_seeds is not None:
        try:
            changes["fault_seeds"] = tuple(
                int(seed) for seed in args.fault_seeds.split(",") if seed.strip()
            )
        except ValueError:
            parser.error(f"--fault-seeds: whole numbers and commas, not {args.fault_seeds!r}")
    if args.corpus_documents is not None or args.corpus_mb is not None:
        changes["corpus"] = replace(
            plan.corpus,
            documents=args.corpus_documents or plan.corpus.documents,
            total_bytes=round(args.corpus_mb * MB) if args.corpus_mb else plan.corpus.total_bytes,
        )
    plan = replace(plan, **changes)
    output = args.output or (
        WORK_DIR / "RESULTS-quick.md" if plan.mode == "quick" else RESULTS_FILE
    )
    if args.report_from is not None:
        results = results_from_json(json.loads(args.report_from.read_text("utf-8")))
        if args.output is None:
            output = WORK_DIR / "RESULTS-quick.md" if results.mode == "quick" else RESULTS_FILE
        _write_report(results, output)
        _say(f"report written from {args.report_from}: {output}")
        return 0
    work = WORK_DIR / plan.mode
    work.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.run" + (" " + " ".join(argv or sys.argv[1:])).rstrip()
    started = time.monotonic()
    try:
        results = run(plan, sections, work, command)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    (work / "results.json").write_text(json.dumps(asdict(results), indent=2), "utf-8")
    _write_report(results, output)
    _say(f"done in {(time.monotonic() - started) / 60:.1f} min; report: {output}")
    return 0


def _write_report(results: Results, output: Path) -> None:
    machine = results.machine or describe_machine(PROJECT_ROOT)
    existing = output.read_text("utf-8") if output.exists() else None
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(merge(existing, render_generated(results, machine)), "utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
