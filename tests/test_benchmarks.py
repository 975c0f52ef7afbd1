"""The benchmark runner's pieces at tiny sizes: corpus generator, synthetic IDs, the naive
baseline's request counting, the out-of-process double, floors, targets and the report.

No timing is asserted here: the benchmarks measure time, these tests check that what they
measure is what they claim to measure.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path

import httpx
import pytest

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
    write_corpus,
)
from benchmarks.double import DoubleOptions, DoubleProcess
from benchmarks.machine import describe_machine
from benchmarks.naive import NaiveResult, NaiveTarget, naive_targets, run_naive
from benchmarks.report import (
    BEGIN,
    END,
    CorpusSummary,
    Results,
    all_targets,
    arxiv_floor_seconds,
    extraction_targets,
    hub_floor_seconds,
    merge,
    render_generated,
    resolution_floor_seconds,
    resolution_targets,
    results_from_json,
)
from benchmarks.sections import (
    TIMED_STEPS,
    ExtractionConfig,
    ExtractionResult,
    FlowResult,
    ResolutionResult,
    RunMeasure,
    ScaleConfig,
    ScaleResult,
    StepTiming,
    extraction,
    scale,
)
from pipeline.links.documents import link_for
from pipeline.links.extract import extract_document
from pipeline.links.identify import is_valid_hub_repo_id, parse_arxiv_id
from pipeline.sandbox import Sandbox

TINY = CorpusSpec(documents=4, total_bytes=64 * 1024, seed=7)


# -- corpus ------------------------------------------------------------------------------


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
    mode: str, peak: float, table_peak: float | None = None, **steps: float
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
    )


def test_extraction_targets_compare_with_the_bare_parse_and_check_every_peak() -> None:
    corpus = CorpusSummary(10, 10 * MB, 1, "ab" * 32)
    results = {
        "timing": _extraction("timing", 170.0, parse=10.0, links=19.0),
        "links": _extraction("links", 160.0),
        "links-kept": _extraction("links-kept", 450.0, table_peak=800.0),
    }
    targets = extraction_targets(results, corpus)
    assert [(t.passed, t.measured) for t in targets] == [
        (True, "19.0 s / 10.0 s = 1.90x"),
        (True, "160 MB"),
        (True, "450 MB"),
        (False, "800 MB"),
    ]
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
    kept = extraction(ExtractionConfig(str(corpus.directory), "links-kept"))
    assert kept.links == timing.links and not kept.steps
    assert kept.table_peak_rss_mb is not None and kept.table_peak_rss_mb >= kept.peak_rss_mb


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


def _flow() -> FlowResult:
    cold = RunMeasure(30.0, {"extract": 0.3, "resolve": 29.0}, 9, 226, {"arxiv": 40}, {}, "ok", "C")
    warm = replace(cold, seconds=3.0, arxiv_requests=0, hub_requests=0)
    return FlowResult(0.3, 3.0, 4, 1.0, 9.0, 1.2, cold, warm)


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


def _results() -> Results:
    return Results(
        mode="quick",
        command="python -m benchmarks.run --quick",
        load_average={"start": [1.0, 0.5, 0.25]},
        machine=describe_machine(Path.cwd()),
        resolution=_resolution(),
        flow=_flow(),
        corpus=CorpusSummary(10, 10 * MB, 1, "ab" * 32),
        extraction={"timing": _extraction("timing", 150.0, parse=10.0, links=15.0)},
        scale=[_scale()],
    )


def test_results_survive_their_json_form() -> None:
    # `--report-from` re-renders a saved run: nothing may be lost on the way.
    results = _results()
    assert results_from_json(json.loads(json.dumps(asdict(results)))) == results


def test_the_report_shows_every_section_and_a_verdict_per_target() -> None:
    results = _results()
    assert results.machine is not None
    text = render_generated(results, results.machine)
    for heading in ("## Targets", "## 1.", "## 2.", "## 3.", "## 4."):
        assert heading in text
    verdicts = text.count("| PASS |") + text.count("| **FAIL** |")
    assert verdicts == len(all_targets(results)) == 4
    assert "extrapolated" in text and "13.5 min" in text  # (802.5 + 7) s


def test_regenerating_keeps_what_a_person_wrote_around_the_generated_part() -> None:
    first = merge(None, f"{BEGIN}\nold numbers\n{END}\n")
    edited = "# Benchmarks\n\nIntro by hand.\n\n" + first.split("# Benchmarks\n\n", 1)[1]
    edited += "\n## Analysis\n\nWritten by hand.\n"
    again = merge(edited, f"{BEGIN}\nnew numbers\n{END}\n")
    assert "Intro by hand." in again and "Written by hand." in again
    assert "new numbers" in again and "old numbers" not in again
    assert again.count(BEGIN) == again.count(END) == 1
