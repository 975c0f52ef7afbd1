"""The benchmark runner's pieces at tiny sizes: corpus generator, synthetic IDs, the naive
baseline's request counting, the out-of-process double (its faults and its log), the
`pipeline` command timed as a user runs it, a first night against faults, floors, targets
and the report.

No timing is asserted here: the benchmarks measure time, these tests check that what they
measure is what they claim to measure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from dataclasses import asdict, replace
from datetime import date
from pathlib import Path

import httpx
import pytest

from benchmarks.commands import (
    ASKING,
    FLOW_BEGIN,
    FLOW_END,
    Line,
    arxiv_waits,
    hub_waits,
    is_quota_wait,
    run_command,
)
from benchmarks.corpus import (
    MB,
    CorpusSpec,
    arxiv_id_for,
    document_name,
    generate_document,
    iter_documents,
    model_id_for,
    synthetic_arxiv_ids,
    synthetic_model_ids,
    synthetic_snapshot,
    write_corpus,
)
from benchmarks.double import DoubleOptions, DoubleProcess
from benchmarks.machine import describe_machine, peak_rss_mb
from benchmarks.naive import NaiveResult, NaiveTarget, naive_targets, run_naive
from benchmarks.report import (
    BEGIN,
    END,
    CorpusSummary,
    Results,
    all_targets,
    arxiv_floor_seconds,
    cli_targets,
    extraction_targets,
    faults_targets,
    hub_floor_seconds,
    merge,
    ok_share,
    render_generated,
    report_targets,
    resolution_floor_seconds,
    resolution_targets,
    results_from_json,
    seed_of,
    storage_section,
)
from benchmarks.sections import (
    PATH_DIRECT,
    PATH_FIRST,
    PATH_SERVER,
    PATH_TEMPORARY,
    TIMED_STEPS,
    CliConfig,
    CliResult,
    CommandRun,
    ExtractionConfig,
    ExtractionResult,
    FaultsConfig,
    FaultsResult,
    ReportConfig,
    ReportResult,
    ResolutionResult,
    ScaleConfig,
    ScaleResult,
    StepTiming,
    StorageConfig,
    StorageNight,
    StorageResult,
    WaitMeasure,
    cli_runs,
    extraction,
    faults_night,
    faults_spec,
    report_build,
    scale,
    storage,
    transient_reset_seconds,
)
from pipeline.links.documents import extract_document_links, link_for
from pipeline.links.extract import extract_document
from pipeline.links.identify import is_valid_hub_repo_id, parse_arxiv_id
from pipeline.sandbox import Sandbox

TINY = CorpusSpec(documents=4, total_bytes=64 * 1024, seed=7)


# -- corpus ------------------------------------------------------------------------------


def test_a_process_reports_its_own_peak_not_its_parents() -> None:
    # `ru_maxrss` survives execve: a child of a process that peaked at 400 MB would
    # report at least 400 MB (the 50 MB reading list's night did, in a large pytest).
    held = bytearray(400 * MB)
    held[::4096] = b"x" * len(range(0, len(held), 4096))
    code = "from benchmarks.machine import peak_rss_mb; print(peak_rss_mb())"
    root = Path(__file__).resolve().parents[1]
    child = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert peak_rss_mb() > 400 and float(child.stdout) < 200
    del held


def test_a_document_is_a_pure_function_of_seed_and_index() -> None:
    assert generate_document(TINY, 2) == generate_document(TINY, 2)
    assert generate_document(TINY, 2) != generate_document(TINY, 3)
    assert generate_document(TINY, 2) != generate_document(replace(TINY, seed=8), 2)


def test_the_corpus_hits_its_total_size_within_one_block_per_document() -> None:
    sizes = [len(text.encode("utf-8")) for _, text in iter_documents(TINY)]
    targets = [TINY.target_bytes(index) for index in range(TINY.documents)]
    assert sum(targets) == pytest.approx(TINY.total_bytes, abs=TINY.documents)
    for size, target in zip(sizes, targets, strict=True):
        # A document stops at the first block that reaches its target; no block is 8 KB.
        assert target <= size < target + 8 * 1024


@pytest.mark.parametrize(
    ("kind", "at_least"),
    [
        ("arxiv", 50),
        ("arxiv_mention", 1),
        ("hf_model", 5),
        ("hf_dataset", 1),
        ("hf_space", 1),
        ("hf_collection", 1),
        ("github_repo", 20),
        ("github_page", 1),
        ("other", 10),  # blogs, Zhihu, badges' images
    ],
)
def test_documents_hold_the_link_kinds_of_the_seeds(kind: str, at_least: int) -> None:
    spec = CorpusSpec(documents=2, total_bytes=160 * 1024, seed=11)
    kinds: Counter[str] = Counter(
        link_for(occurrence).identity.kind
        for name, text in iter_documents(spec)
        for occurrence in extract_document(text, name)
    )
    assert kinds[kind] >= at_least, kinds


@pytest.mark.parametrize(
    "feature",
    ["| --- |", "<details>", "<p align", "[!NOTE]", "```", "<!--", "年", "img.shields.io"],
)
def test_documents_hold_the_block_kinds_of_the_seeds(feature: str) -> None:
    text = "".join(
        generate_document(CorpusSpec(documents=2, total_bytes=300 * 1024, seed=3), i)
        for i in range(2)
    ).replace("|---|", "| --- |")
    assert feature in text


def test_urls_in_code_fences_are_generated_but_not_extracted() -> None:
    spec = CorpusSpec(documents=6, total_bytes=600 * 1024, seed=5)
    for name, text in iter_documents(spec):
        fenced = [line for line in text.splitlines() if line.startswith("git clone ")]
        if not fenced:
            continue
        url = fenced[0].removeprefix("git clone ")
        found = {occurrence.url for occurrence in extract_document(text, name)}
        assert url not in found
        return
    pytest.fail("no document of the spec has a code fence")


def test_write_corpus_reuses_a_complete_corpus_and_regenerates_a_changed_spec(
    tmp_path: Path,
) -> None:
    first = write_corpus(TINY, tmp_path)
    files = sorted(first.directory.glob("*.md"))
    assert [f.name for f in files] == [document_name(i) for i in range(TINY.documents)]
    assert first.total_bytes == sum(f.stat().st_size for f in files)
    files[0].write_text("changed by hand", "utf-8")
    again = write_corpus(TINY, tmp_path)
    assert again.sha256 == first.sha256
    assert files[0].read_text("utf-8") == "changed by hand"  # reused: not regenerated
    other = write_corpus(replace(TINY, seed=8), tmp_path)
    assert other.directory != first.directory
    assert other.sha256 != first.sha256


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"documents": 0}, "at least one document"),
        ({"total_bytes": 100}, "less than 1 KB per document"),
        ({"arxiv_pool": 0}, "arxiv_pool"),
    ],
)
def test_a_corpus_spec_refuses_what_cannot_be_generated(
    changes: dict[str, int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        CorpusSpec(**changes)


# -- synthetic identifiers -----------------------------------------------------------------


def test_synthetic_arxiv_ids_are_distinct_valid_and_canonical() -> None:
    ids = synthetic_arxiv_ids(3000, start=100)
    assert len(set(ids)) == len(ids)
    for arxiv_id in ids:
        parsed = parse_arxiv_id(arxiv_id)
        assert parsed is not None and parsed[0] == arxiv_id


def test_synthetic_model_ids_are_distinct_and_valid_hub_ids() -> None:
    ids = synthetic_model_ids(3000)
    assert len(set(ids)) == len(ids)
    assert all(is_valid_hub_repo_id(repo) for repo in ids)


def test_a_larger_synthetic_set_extends_the_smaller_one() -> None:
    # The scale benchmark's "new on the smaller store" rows rely on it.
    assert synthetic_arxiv_ids(2000)[:1000] == synthetic_arxiv_ids(1000)
    assert synthetic_model_ids(500)[:250] == synthetic_model_ids(250)


@pytest.mark.parametrize("make", [arxiv_id_for, model_id_for])
def test_negative_indexes_are_refused(make: object) -> None:
    with pytest.raises(ValueError, match="negative"):
        make(-1)  # type: ignore[operator]


# -- the naive baseline ----------------------------------------------------------------------

NAIVE_DOC = """\
- [Paper A](https://arxiv.org/abs/1605.08386) and again [A, v1](https://arxiv.org/pdf/1605.08386v1)
- [Paper B](https://arxiv.org/abs/2103.00020), see also arXiv:2103.00020
- [Bad ID](https://arxiv.org/abs/1613.00001)
- [Model](https://huggingface.co/Qwen/Qwen2-VL-72B) and [renamed](https://huggingface.co/vikhyatk/moondream2)
- [Code](https://github.com/QwenLM/Qwen2-VL)
"""


def _naive_doc_targets() -> list[NaiveTarget]:
    return naive_targets(link_for(o) for o in extract_document(NAIVE_DOC, "naive.md"))


def test_naive_targets_are_one_per_link_occurrence_not_per_entity() -> None:
    targets = _naive_doc_targets()
    assert [t.entity_id for t in targets if t.api == "arxiv"] == [
        "1605.08386",
        "1605.08386v1",
        "2103.00020",
        "2103.00020",  # the mention counts: the naive script asks for it too
    ]
    assert [(t.hub_collection, t.entity_id) for t in targets if t.api == "hub"] == [
        ("models", "Qwen/Qwen2-VL-72B"),
        ("models", "vikhyatk/moondream2"),
    ]


def test_the_naive_baseline_sends_one_request_per_occurrence_and_counts_them() -> None:
    targets = _naive_doc_targets()
    with Sandbox() as sandbox:
        result = run_naive(
            targets,
            arxiv_api_url=sandbox.arxiv_api_url,
            hf_endpoint=sandbox.hf_endpoint,
            delay_seconds=0.0,
        )
        assert len(sandbox.requests("arxiv")) == result.arxiv_requests == 4
        # The renamed model costs two: the 307 and the request it redirects to.
        assert len(sandbox.requests("hub")) == result.hub_requests == 3
    assert (result.arxiv_found, result.arxiv_missing, result.arxiv_failed) == (4, 0, 0)
    assert (result.hub_ok, result.hub_failed) == (2, 0)


@pytest.mark.parametrize(
    ("requests", "delay", "measured", "at_three"),
    [
        (242, 0.5, 200.0, 200.0 + 241 * 2.5),
        (1, 0.5, 0.8, 0.8),  # the first request never waits
        (0, 0.5, 0.0, 0.0),
        (10, 3.0, 33.0, 33.0),  # measured at the real rule already
    ],
)
def test_the_naive_wall_time_is_extrapolated_from_its_request_count(
    requests: int, delay: float, measured: float, at_three: float
) -> None:
    result = NaiveResult(delay_seconds=delay, arxiv_requests=requests, arxiv_seconds=measured)
    assert result.arxiv_seconds_at(3.0) == pytest.approx(at_three)


# -- the double in its own process -----------------------------------------------------------


def test_the_double_process_counts_what_it_answers_and_resets() -> None:
    with DoubleProcess(DoubleOptions(latency_seconds=0.0)) as double:
        base = double.env["HF_ENDPOINT"]
        httpx.get(f"{base}/api/models/Qwen/Qwen2-VL-72B").raise_for_status()
        assert httpx.get(f"{base}/api/models/nobody/nothing").status_code == 401
        httpx.get(double.env["ARXIV_API_URL"], params={"id_list": "1605.08386"})
        counts = double.counts()
        assert (counts["hub"], counts["arxiv"]) == (2, 1)
        assert counts.by_status["hub"] == {200: 1, 401: 1}
        double.reset()
        assert double.counts()["hub"] == 0


def test_the_double_process_injects_a_fault_spec_and_hands_over_its_log() -> None:
    with DoubleProcess(DoubleOptions(latency_seconds=0.0, faults="arxiv:503:1.0")) as double:
        url = double.env["ARXIV_API_URL"]
        for _ in range(2):
            assert httpx.get(url, params={"id_list": "1605.08386"}).status_code == 503
        httpx.get(f"{double.env['HF_ENDPOINT']}/api/models/Qwen/Qwen2-VL-72B")
        log = double.log()
    assert [(entry.api, entry.status) for entry in log] == [
        ("arxiv", 503),
        ("arxiv", 503),
        ("hub", 200),
    ]
    assert log[0].path == "/api/query"
    # Arrival order, each answered after it arrived: what a politeness audit reads.
    assert log[0].received_at <= log[0].at <= log[1].received_at <= log[2].received_at


# -- the `pipeline` command as a user runs it ------------------------------------------------

_SCRIPT = """\
import sys, time
print("starting", file=sys.stderr, flush=True)
time.sleep(0.3)
print("5 documents, 9 links; asking: arxiv 3, arxiv_titles 1, hub 2, paper_pages 3",
      file=sys.stderr, flush=True)
print("run 20260101T000000Z-abc partial (papers: 1 error)", flush=True)
sys.exit(3)
"""


def test_a_command_is_timed_from_start_to_exit_and_its_lines_as_they_arrive(
    tmp_path: Path,
) -> None:
    log = tmp_path / "logs" / "command.log"
    finished = run_command([sys.executable, "-c", _SCRIPT], {}, log)
    assert finished.exit_code == 3 and not finished.timed_out
    asking = finished.mark(ASKING)
    assert asking is not None
    started = finished.mark("starting")
    assert started is not None and started + 0.3 <= asking <= finished.seconds
    assert finished.mark(FLOW_BEGIN) is None
    assert finished.run_status() == "partial"
    assert finished.entities_asked() == {
        "arxiv": 3,
        "arxiv_titles": 1,
        "hub": 2,
        "paper_pages": 3,
    }
    assert finished.cpu_seconds > 0 and finished.peak_rss_mb > 1
    text = log.read_text("utf-8")
    assert "asking:" in text and text.endswith(f"exit 3 after {finished.seconds:.3f} s\n")


def test_a_command_past_its_timeout_is_killed_and_says_so(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(30)"]
    finished = run_command(argv, {}, tmp_path / "slow.log", timeout_seconds=0.5)
    assert finished.timed_out and finished.exit_code < 0
    assert finished.seconds < 10


def test_the_last_finished_line_is_the_flow_runs() -> None:
    from benchmarks.commands import Finished

    lines = [
        Line(4.0, "stderr", "12:00:00.000 | INFO | Flow run 'x' - Beginning flow run 'x'"),
        Line(4.5, "stderr", "12:00:00.500 | INFO | Task run 'y' - Finished in state Completed()"),
        Line(6.0, "stderr", "12:00:02.000 | INFO | Flow run 'x' - Finished in state Completed("),
    ]
    finished = Finished(0, 7.0, 5.0, 250.0, lines=lines)
    assert (finished.mark(FLOW_BEGIN), finished.mark(FLOW_END, last=True)) == (4.0, 6.0)


def test_waits_are_read_from_the_nights_log() -> None:
    lines = [
        Line(
            40.0,
            "stderr",
            "12:00:40 | INFO    | hub: quota spent (0 of 500 left), waiting"
            " 262 s for the window to reset",
        ),
        Line(
            50.0,
            "stderr",
            "12:00:50 | INFO    | hub: HTTP 429 rate limited, waiting 3 s as its Retry-After asks",
        ),
        Line(
            60.0,
            "stderr",
            "12:01:00 | INFO    | arXiv: waiting 29.7 s for a backoff after HTTP 503",
        ),
        Line(61.0, "stderr", "12:01:01 | INFO    | hub paper 2103.00020: not found: ..."),
    ]
    hub = hub_waits(lines)
    assert [(w.at_seconds, w.seconds) for w in hub] == [(40.0, 262.0), (50.0, 3.0)]
    assert [is_quota_wait(w) for w in hub] == [True, False]
    [arxiv] = arxiv_waits(lines)
    assert (arxiv.seconds, arxiv.why) == (29.7, "a backoff after HTTP 503")


def test_the_pipeline_command_directly_cold_then_warm(tmp_path: Path) -> None:
    config = CliConfig(
        str(tmp_path / "cli"),
        str(SEEDS),
        latency_seconds=0.0,
        arxiv_delay_seconds=0.01,
        warm_runs=1,
        prefect=False,
        server=False,
    )
    result = cli_runs(config)
    [cold], [warm] = result.of(PATH_DIRECT, "cold"), result.of(PATH_DIRECT, "warm")
    assert cold.arxiv_requests > 0 and cold.hub_requests > 0
    assert (warm.arxiv_requests, warm.hub_requests) == (0, 0)
    assert cold.status == warm.status == "ok"
    assert warm.asking_seconds is not None and 0 < warm.asking_seconds < warm.seconds
    assert warm.flow_begin_seconds is None
    assert result.entities_asked["arxiv"] == 163
    [speed, requests] = cli_targets(result)
    assert speed.measured.startswith(f"{warm.seconds:.2f} s (median of 1;")
    assert requests.passed and requests.measured == "0 in 1 warm runs (Hub: 0)"


@pytest.mark.slow
def test_the_pipeline_command_with_prefect_a_temporary_server_and_a_running_one(
    tmp_path: Path,
) -> None:
    config = CliConfig(
        str(tmp_path / "cli"),
        str(SEEDS),
        latency_seconds=0.0,
        arxiv_delay_seconds=0.01,
        warm_runs=1,
        prefect_warm_runs=1,
        temporary_server_starts=1,
    )
    result = cli_runs(config)
    assert [(run.path, run.label) for run in result.runs] == [
        (PATH_DIRECT, "cold"),
        (PATH_DIRECT, "warm"),
        (PATH_FIRST, "first"),
        (PATH_TEMPORARY, "cold"),
        (PATH_TEMPORARY, "warm"),
        (PATH_SERVER, "warm"),
    ]
    for run in result.runs[2:]:
        assert run.flow_begin_seconds is not None and run.flow_end_seconds is not None
        assert 0 < run.flow_begin_seconds < run.flow_end_seconds < run.seconds
    assert result.of(PATH_FIRST, "first")[0].status == "dry_run"
    assert result.of(PATH_TEMPORARY, "cold")[0].arxiv_requests > 0
    assert result.of(PATH_SERVER, "warm")[0].arxiv_requests == 0
    assert len(result.temporary_server_seconds) == 1
    assert result.server_start_seconds is not None and result.server_start_seconds > 0


# -- a first night against faults --------------------------------------------------------------

SEEDS = Path(__file__).resolve().parent.parent / "raw" / "seeds"

TINY_LIST = """\
# Tiny

- [Qwen2-VL](https://arxiv.org/abs/2409.12191) [weights](https://huggingface.co/Qwen/Qwen2-VL-72B)
- [Qwen2.5-VL](https://arxiv.org/pdf/2502.13923v2) [moondream](https://hf-mirror.com/vikhyatk/moondream2)
- InternVL 2.5, arXiv:2412.05271
"""

SCALED = {
    "PIPELINE_ARXIV_DELAY_SECONDS": "0.01",
    "PIPELINE_ARXIV_BACKOFF_SECONDS": "0.01",
    "PIPELINE_ARXIV_BACKOFF_MAX_SECONDS": "0.05",
    "PIPELINE_HUB_BACKOFF_SECONDS": "0.01",
    "PIPELINE_HUB_BACKOFF_MAX_SECONDS": "0.05",
}
"""The night's waits scaled down; attempts and deadline as the defaults have them."""


def test_the_spec_is_the_issues_with_its_seed_and_scalable_for_tests() -> None:
    from pipeline.sandbox import faults_from_spec

    spec = faults_spec(7)
    assert spec == (
        "arxiv:503:0.25,arxiv:empty:0.15,hub:5xx:0.2,hub:429:0.05/3,hub:truncated:0.1,"
        "hub:quota:150/500/300,seed:7"
    )
    assert faults_from_spec(spec)  # the double reads it
    assert seed_of(spec) == "7" and transient_reset_seconds(spec) == 3.0
    assert "hub:quota:2/500/2" in faults_spec(1, window_seconds=2, reset_seconds=1, left=2)
    assert transient_reset_seconds("hub:429:0.1") == 3.0
    assert transient_reset_seconds("arxiv:503:0.5") == 0.0


def test_a_tiny_first_night_against_faults_reports_its_numbers(tmp_path: Path) -> None:
    documents = tmp_path / "documents"
    documents.mkdir()
    (documents / "tiny.md").write_text(TINY_LIST, "utf-8")
    # Two of the window's requests left: the night runs the quota out and waits.
    spec = faults_spec(1, window_seconds=2, reset_seconds=1, left=2)
    config = FaultsConfig(
        str(tmp_path / "night"),
        str(documents),
        latency_seconds=0.0,
        faults=spec,
        settings=SCALED,
        hub_window_seconds=2,
        timeout_seconds=120.0,
    )
    night = faults_night(config)
    assert night.exit_code in (0, 3) and not night.timed_out
    assert night.status in ("ok", "partial")
    assert sum(night.papers.values()) == 3 and sum(night.models.values()) == 2
    assert sum(night.paper_pages.values()) == 3
    assert night.arxiv_requests >= 1 and night.hub_requests >= 5
    assert sum(night.hub_by_status.values()) == night.hub_requests
    assert night.settings["arxiv_max_attempts"] == 8  # the default patience
    assert night.settings["arxiv_delay_seconds"] == 0.01
    assert night.politeness_violations == 0
    assert night.quota_waits, night.hub_waits  # two left: the window ran out
    assert night.longest_hub_silence_seconds > 0
    targets = faults_targets([night])
    assert [t.name.rsplit(": ", 1)[1] for t in targets] == [
        "papers ok",
        "models ok",
        "arXiv politeness violations",
    ]
    assert targets[2].passed and targets[2].measured == "0 (seed 1)"
    results = Results(mode="quick", command="test", faults=[night])
    text = render_generated(results, describe_machine(Path.cwd()))
    assert "## 3. A first night against faults" in text and spec in text


# -- floors, targets, report -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("ids", "batch", "delay", "floor"),
    [(163, 100, 3.0, 6.0), (100, 100, 3.0, 3.0), (0, 100, 3.0, 0.0), (20_000, 100, 3.0, 600.0)],
)
def test_the_arxiv_floor_is_one_delay_per_batch(
    ids: int, batch: int, delay: float, floor: float
) -> None:
    assert arxiv_floor_seconds(ids, batch, delay) == floor


@pytest.mark.parametrize(
    ("requests", "concurrency", "latency", "floor"),
    [(41, 4, 0.3, 11 * 0.3), (4, 4, 0.3, 0.3), (3, 0, 0.3, 0.9)],
)
def test_the_hub_floor_is_one_round_trip_per_wave(
    requests: int, concurrency: int, latency: float, floor: float
) -> None:
    assert hub_floor_seconds(requests, concurrency, latency) == pytest.approx(floor)


def _resolution(**changes: object) -> ResolutionResult:
    values: dict[str, object] = {
        "latency_seconds": 0.3,
        "arxiv_delay_seconds": 3.0,
        "arxiv_batch_size": 100,
        "hub_concurrency": 4,
        "links": 497,
        "arxiv_occurrences": 242,
        "hub_occurrences": 23,
        "distinct_arxiv_ids": 163,
        "distinct_hub_refs": 23,
        "ours_seconds": 4.0,
        "ours_arxiv_seconds": 3.7,
        "ours_hub_seconds": 4.0,
        "ours_arxiv_requests": 2,
        "ours_hub_requests": 41,
        "ours_papers": {"ok": 163},
        "ours_repos": {"ok": 40},
        "naive_delay_seconds": 0.5,
        "naive_arxiv_requests": 242,
        "naive_hub_requests": 24,
        "naive_arxiv_seconds": 200.0,
        "naive_hub_seconds": 7.0,
        "naive_arxiv_seconds_at_default_delay": 802.5,
        "naive_arxiv_found": 240,
        "naive_arxiv_missing": 2,
        "naive_hub_ok": 23,
        "naive_hub_failed": 0,
    }
    values.update(changes)
    return ResolutionResult(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "passed"),
    [
        ({}, [True, True]),
        ({"ours_seconds": 14.0}, [False, True]),  # floor 6 + 3.3 s: 1.5x is 13.95 s
        ({"ours_arxiv_requests": 5}, [True, False]),  # 242 / 5 < 50
        ({"ours_arxiv_requests": 0}, [True, True]),  # none at all: infinitely fewer
    ],
)
def test_resolution_targets(changes: dict[str, object], passed: list[bool]) -> None:
    result = _resolution(**changes)
    assert resolution_floor_seconds(result) == pytest.approx(6.0 + 11 * 0.3)
    assert [t.passed for t in resolution_targets(result)] == passed


def _extraction(
    mode: str,
    peak: float,
    table_peak: float | None = None,
    worker_seconds: dict[str, list[float]] | None = None,
    later_peak: float | None = None,
    **steps: float,
) -> ExtractionResult:
    return ExtractionResult(
        mode=mode,
        documents=10,
        bytes=10 * MB,
        links=1000,
        seconds=sum(steps.values()) or 20.0,
        cpu_seconds=sum(steps.values()) or 20.0,
        rss_before_mb=140.0,
        peak_rss_mb=peak,
        steps={name: StepTiming(seconds, seconds, 0) for name, seconds in steps.items()},
        table_seconds=1.0 if table_peak else None,
        table_peak_rss_mb=table_peak,
        workers=2 if worker_seconds else 1,
        worker_seconds=worker_seconds or {},
        later_night_seconds=1.0 if later_peak else None,
        later_night_peak_rss_mb=later_peak,
    )


def test_extraction_targets_compare_with_the_bare_parse_and_check_every_peak() -> None:
    corpus = CorpusSummary(10, 10 * MB, 1, "ab" * 32)
    results = {
        "timing": _extraction("timing", 170.0, parse=10.0, links=19.0),
        "links": _extraction("links", 160.0),
        "published": _extraction("published", 300.0, table_peak=450.0, later_peak=510.0),
        "published-workers": _extraction("published", 200.0, table_peak=520.0),
        "published-large": _extraction("published", 600.0, table_peak=1400.0, later_peak=1520.0),
        "workers": _extraction("workers", 200.0, worker_seconds={"1": [10, 9], "2": [6, 5.5]}),
    }
    targets = extraction_targets(results, corpus)
    assert [(t.passed, t.measured) for t in targets] == [
        (True, "19.0 s / 10.0 s = 1.90x"),
        (True, "160 MB"),
        (True, "450 MB"),
        (False, "510 MB"),
        (False, "520 MB"),
        (True, "1400 MB"),
        (False, "1520 MB"),
        (True, "best 9.0 s / 5.5 s = 1.64x; median 1.65x (2 passes each)"),
    ]
    results["workers"] = _extraction("workers", 1.0, worker_seconds={"1": [9.0], "2": [6.0]})
    assert not extraction_targets(results, corpus)[-1].passed
    results["timing"] = _extraction("timing", 170.0, parse=10.0, links=21.0)
    assert not extraction_targets(results, corpus)[0].passed


def test_the_extraction_steps_find_the_same_links_and_the_kept_ones_make_a_table(
    tmp_path: Path,
) -> None:
    corpus = write_corpus(TINY, tmp_path)
    timing = extraction(ExtractionConfig(str(corpus.directory), "timing"))
    assert list(timing.steps) == list(TIMED_STEPS)
    assert timing.steps["parse"].links == timing.steps["stock-parse"].links == 0
    assert timing.steps["extract"].links == timing.steps["links"].links == timing.links > 0
    assert timing.bytes == corpus.total_bytes
    for workers in (1, 2):
        kept = extraction(
            ExtractionConfig(str(corpus.directory), "published", workers=workers, nights=2)
        )
        assert kept.links == timing.links == kept.rows["links"] and not kept.steps
        assert kept.table_peak_rss_mb is not None and kept.table_peak_rss_mb >= kept.peak_rss_mb
        assert kept.later_night_peak_rss_mb is not None and kept.later_night_peak_rss_mb > 0
        # The next night (a process of its own) was built against the first one: over the
        # same links it finds nothing added, removed or changed.
        assert kept.rows["changes"] == 0 and kept.rows["links"] == timing.links
        assert (kept.workers_peak_rss_mb is not None) == (workers == 2)
    largest = max(corpus.directory.glob("*.md"), key=lambda p: p.stat().st_size)
    one = extraction(ExtractionConfig(str(corpus.directory), "document"))
    assert (one.documents, one.bytes) == (1, largest.stat().st_size)
    _, links = extract_document_links(largest.name, largest)
    assert one.links == len(links) > 0
    turns = extraction(ExtractionConfig(str(corpus.directory), "workers", workers=2, repeats=2))
    assert turns.links == timing.links
    assert [len(turns.worker_seconds[n]) for n in ("1", "2")] == [2, 2]


def test_scale_counts_requests_cold_and_asks_nothing_warm(tmp_path: Path) -> None:
    def run(label: str, fresh: bool) -> ScaleResult:
        config = ScaleConfig(str(tmp_path / "store"), label, 150, 6, 0.0, 0.0, fresh)
        return scale(config)

    cold, warm = run("cold", True), run("warm", False)
    assert (cold.arxiv_requests, cold.hub_requests) == (2, 6)  # 100 IDs per request
    assert (cold.papers_ok, cold.models_ok) == (150, 6)
    assert (warm.arxiv_requests, warm.hub_requests) == (0, 0)
    assert (warm.arxiv_from_store, warm.hub_from_store) == (150, 6)
    assert (warm.papers_ok, warm.models_ok) == (150, 6)


def _run(path: str, label: str, seconds: float, arxiv: int = 0) -> CommandRun:
    prefect = path != PATH_DIRECT
    return CommandRun(
        path=path,
        label=label,
        seconds=seconds,
        cpu_seconds=seconds * 0.8,
        peak_rss_mb=210.0,
        exit_code=0,
        status="ok",
        arxiv_requests=arxiv,
        hub_requests=226 if arxiv else 0,
        asking_seconds=1.0,
        flow_begin_seconds=4.0 if prefect else None,
        flow_end_seconds=seconds - 0.5 if prefect else None,
    )


def _cli(*warm: float) -> CliResult:
    runs = [_run(PATH_DIRECT, "cold", 31.0, arxiv=9)]
    runs += [_run(PATH_DIRECT, "warm", seconds) for seconds in warm or (2.0, 2.2, 1.9)]
    runs += [
        _run(PATH_FIRST, "first", 11.0),
        _run(PATH_TEMPORARY, "cold", 36.0, arxiv=9),
        _run(PATH_TEMPORARY, "warm", 7.0),
        _run(PATH_SERVER, "warm", 4.0),
    ]
    asked = {"arxiv": 163, "arxiv_titles": 62, "hub": 23, "paper_pages": 163}
    return CliResult(0.3, 3.0, 4, asked, runs, [3.0, 3.2], 7.0)


@pytest.mark.parametrize(
    ("warm", "passed"),
    [((2.0, 2.2, 1.9), True), ((4.0, 6.0, 5.0), True), ((4.0, 6.0, 5.5), False)],
)
def test_the_warm_direct_target_is_on_the_median(warm: tuple[float, ...], passed: bool) -> None:
    speed, requests = cli_targets(_cli(*warm))
    assert speed.passed is passed and requests.passed
    assert f"median of {len(warm)}" in speed.measured


def _night(
    seed: int, papers_ok: int = 185, models_ok: int = 25, violations: int = 0
) -> FaultsResult:
    return FaultsResult(
        faults=faults_spec(seed),
        latency_seconds=0.3,
        settings={
            "arxiv_delay_seconds": 3.0,
            "arxiv_max_attempts": 8.0,
            "arxiv_backoff_seconds": 30.0,
            "arxiv_backoff_max_seconds": 300.0,
            "hub_concurrency": 4.0,
            "hub_max_attempts": 6.0,
            "hub_backoff_seconds": 2.0,
            "hub_backoff_max_seconds": 60.0,
            "run_deadline_seconds": 21600.0,
        },
        seconds=420.0,
        cpu_seconds=9.0,
        exit_code=3 if papers_ok < 185 else 0,
        timed_out=False,
        status="partial" if papers_ok < 185 else "ok",
        papers={"ok": papers_ok, "error": 185 - papers_ok},
        paper_pages={"ok": 8, "not_found": 170, "error": 7},
        models={"ok": models_ok, "error": 25 - models_ok},
        arxiv_requests=14,
        hub_requests=352,
        arxiv_by_status={"200": 10, "503": 4},
        hub_by_status={"200": 250, "429": 20, "500": 20, "503": 30, "404": 32},
        politeness_violations=violations,
        overlapping_requests=0,
        min_arxiv_gap_seconds=3.3,
        hub_waits=[
            WaitMeasure(12.0, 3.0, "quota spent (0 of 500 left)"),
            WaitMeasure(45.0, 262.0, "quota spent (0 of 500 left)"),
        ],
        arxiv_backoffs=[WaitMeasure(20.0, 30.0, "a backoff after HTTP 503")],
        longest_hub_silence_seconds=262.5,
    )


@pytest.mark.parametrize(
    ("nights", "passed"),
    [
        ([_night(7), _night(8)], [True, True, True]),
        ([_night(7), _night(8, papers_ok=175)], [False, True, True]),  # 94.6 %
        ([_night(7, papers_ok=176, models_ok=23)], [True, True, True]),  # 95.1 %, 92 %
        ([_night(7, models_ok=22)], [True, False, True]),  # 88 %
        ([_night(7), _night(8, violations=1)], [True, True, False]),
    ],
)
def test_faults_targets_hold_for_every_seed(nights: list[FaultsResult], passed: list[bool]) -> None:
    targets = faults_targets(nights)
    assert [t.passed for t in targets] == passed
    assert all("(seed 7)" in t.measured for t in targets)


def test_a_night_tells_its_quota_waits_from_its_transient_ones() -> None:
    night = _night(7)
    assert [w.seconds for w in night.quota_waits] == [262.0]
    assert [w.seconds for w in night.transient_waits] == [3.0]
    assert ok_share({"ok": 3, "error": 1}) == 0.75 and ok_share({}) == 0.0


def _scale() -> ScaleResult:
    return ScaleResult(
        label="cold 5,000",
        papers=5000,
        models=1250,
        latency_seconds=0.02,
        arxiv_delay_seconds=0.05,
        hub_concurrency=4,
        arxiv_seconds=4.0,
        hub_seconds=8.0,
        cpu_seconds=9.0,
        arxiv_requests=50,
        hub_requests=1250,
        arxiv_from_store=0,
        hub_from_store=0,
        papers_ok=5000,
        models_ok=1250,
        rss_before_mb=150.0,
        peak_rss_mb=170.0,
        store_mb=30.0,
    )


def _report(
    label: str, papers: int, seconds: float, size_mb: float = 0.25, seeds: bool = False
) -> ReportResult:
    return ReportResult(
        label=label,
        seeds=seeds,
        nights=2,
        papers=papers,
        models=papers // 8,
        command_seconds=seconds,
        first_seconds=seconds / 2,
        seconds=[seconds / 3],
        cpu_seconds=seconds / 4,
        size_bytes=int(size_mb * MB),
        empty_panels=[],
        rss_before_mb=140.0,
        peak_rss_mb=210.0,
    )


@pytest.mark.parametrize(
    ("builds", "passed"),
    [
        ([_report("the seeds", 185, 4.0, seeds=True)], [True, True]),
        ([_report("the seeds", 185, 10.5, 5.5, seeds=True)], [False, False]),
        ([_report("synthetic 20,000", 20_000, 59.0)], [True]),
        ([_report("synthetic 20,000", 20_000, 61.0)], [False]),
        ([_report("synthetic 2,000", 2_000, 11.0)], [False]),  # quick: the seeds' limit
    ],
    ids=["seeds pass", "seeds slow and large", "20k pass", "20k slow", "quick size"],
)
def test_report_targets_hold_the_build_time_and_the_seeds_size(
    builds: list[ReportResult], passed: list[bool]
) -> None:
    assert [target.passed for target in report_targets(builds)] == passed


def test_a_synthetic_snapshot_publishes_and_the_report_section_builds_it(tmp_path: Path) -> None:
    from pipeline.snapshot.store import check_tables

    night = synthetic_snapshot(400, 40, date(2026, 11, 20), since=date(2026, 11, 13))
    check_tables(night)  # publishable: every table, its schema, no forbidden null, keys
    added = Counter(night["changes"].column("entity_type").to_pylist())
    assert added == {"paper": 20, "model": 2}  # the newest 5 % of each

    result = report_build(
        ReportConfig(str(tmp_path / "work"), "tiny", papers=400, models=40, builds=2)
    )

    assert (result.nights, result.papers, result.models) == (3, 400, 40)
    assert result.empty_panels == [] and len(result.seconds) == 1
    assert result.size_bytes == (tmp_path / "work" / "report.html").stat().st_size
    # The command builds the same file the section's process does.
    command_file = (tmp_path / "work" / "command.html").read_bytes()
    assert command_file == (tmp_path / "work" / "report.html").read_bytes()


def _results() -> Results:
    return Results(
        mode="quick",
        command="python -m benchmarks.run --quick",
        load_average={"start": [1.0, 0.5, 0.25]},
        machine=describe_machine(Path.cwd()),
        resolution=_resolution(),
        cli=_cli(),
        faults=[_night(7), _night(8, papers_ok=180)],
        corpus=CorpusSummary(10, 10 * MB, 1, "ab" * 32),
        extraction={"timing": _extraction("timing", 150.0, parse=10.0, links=15.0)},
        scale=[_scale()],
        storage=StorageResult(
            latency_seconds=0.0,
            arxiv_delay_seconds=0.0,
            links=120,
            nights=[
                StorageNight(
                    store, kind, 2.0, {"resolve": 1.0}, 10 if kind == "cold" else 0, 0, "ok"
                )
                for store in ("local", "s3")
                for kind in ("cold", "warm")
            ],
            objects=40,
            object_mb=1.5,
        ),
        report=[_report("the seeds", 185, 4.0, seeds=True), _report("synthetic", 20_000, 30.0)],
    )


def test_results_survive_their_json_form() -> None:
    # `--report-from` re-renders a saved run: nothing may be lost on the way.
    results = _results()
    assert results_from_json(json.loads(json.dumps(asdict(results)))) == results


def test_the_report_shows_every_section_and_a_verdict_per_target() -> None:
    results = _results()
    assert results.machine is not None
    text = render_generated(results, results.machine)
    for heading in ("## Targets", "## 1.", "## 2.", "## 3.", "## 4.", "## 5.", "## 6.", "## 7."):
        assert heading in text
    verdicts = text.count("| PASS |") + text.count("| **FAIL** |")
    assert verdicts == len(all_targets(results)) == 11
    assert "Nightly report build, synthetic (20,000 papers) | < 60 s | 30.00 s" in text
    assert "| synthetic | 2 | 20,000 | 2,500 | 30.0 | 15.0 | 7.50 | 10.0 | 256 |" in text
    assert "Warm `pipeline run` of the seeds, no Prefect server | <= 5 s" in text
    assert "262 s at 45 s" in text  # the quota's wait, when it came
    assert "180/185 = 97.3%" in text
    assert "extrapolated" in text and "13.5 min" in text  # (802.5 + 7) s


def test_regenerating_keeps_what_a_person_wrote_around_the_generated_part() -> None:
    first = merge(None, f"{BEGIN}\nold numbers\n{END}\n")
    edited = "# Benchmarks\n\nIntro by hand.\n\n" + first.split("# Benchmarks\n\n", 1)[1]
    edited += "\n## Analysis\n\nWritten by hand.\n"
    again = merge(edited, f"{BEGIN}\nnew numbers\n{END}\n")
    assert "Intro by hand." in again and "Written by hand." in again
    assert "new numbers" in again and "old numbers" not in again
    assert again.count(BEGIN) == again.count(END) == 1


def test_storage_runs_the_same_night_on_disk_and_on_s3_and_warm_asks_nothing(
    tmp_path: Path,
) -> None:
    seeds = str(Path(__file__).resolve().parent.parent / "raw" / "seeds")
    result = storage(StorageConfig(str(tmp_path / "storage"), seeds, 0.0, 0.0, nights=1))

    by_run = {(n.store, n.kind): n for n in result.nights}
    assert sorted(by_run) == [("local", "cold"), ("local", "warm"), ("s3", "cold"), ("s3", "warm")]
    assert all(n.status == "ok" for n in result.nights)
    assert by_run["s3", "cold"].requests == by_run["local", "cold"].requests > 0
    assert by_run["s3", "warm"].requests == by_run["local", "warm"].requests == 0
    assert by_run["s3", "warm"].from_store == by_run["local", "warm"].from_store > 0
    assert result.objects > 0 and result.links > 0
    rendered = "\n".join(storage_section(result))
    assert "| s3 | warm |" in rendered and "| local | cold |" in rendered


def test_live_lists_a_second_night_over_unchanged_lists_downloads_none(tmp_path: Path) -> None:
    from benchmarks.report import sources_section
    from benchmarks.sections import SourcesConfig, SourcesResult, live_lists, load_dataclass
    from pipeline.config import PROJECT_ROOT

    result = live_lists(SourcesConfig(str(tmp_path), str(PROJECT_ROOT / "raw" / "seeds"), 0.0))
    first, second = result.nights

    assert result.lists == 5
    assert first.by_status == {"200": 10}  # contents and the commit of each list
    assert first.list_bytes_downloaded > result.list_bytes  # base64 JSON
    assert second.by_status == {"304": 5} and second.unchanged == 5
    assert second.list_bytes_downloaded == 0
    again = load_dataclass(SourcesResult, json.loads(json.dumps(asdict(result))))
    assert again == result
    assert "| second night | 5 | 304: 5 | 0 | 5 |" in "\n".join(sources_section(result))
