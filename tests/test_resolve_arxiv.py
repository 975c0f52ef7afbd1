"""The arXiv resolver against the loopback double (real HTTP on 127.0.0.1): batches,
retries, the raw store (TTL, refresh, offline, last good), validation of live and stored
answers, politeness and the run deadline, title searches. Its pure parts are tested in
test_arxiv_feed.py, test_titles.py and test_arxiv_http.py."""

from __future__ import annotations

import math
import re
import threading
import time as time_module
from collections.abc import Callable, Iterator
from datetime import UTC
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from fakes import FakeTime

from pipeline.config import RefreshPolicy, Settings
from pipeline.records import PaperRecord
from pipeline.resolve import arxiv as resolve_arxiv
from pipeline.resolve.arxiv import ArxivResolver
from pipeline.resolve.arxiv_feed import Feed, read_feed
from pipeline.resolve.common import Deadline
from pipeline.resolve.rawstore import RawStore, StoredAnswer
from pipeline.resolve.titles import normalise_title
from pipeline.sandbox import Fault, LoggedRequest, Request, Response, Sandbox
from pipeline.sandbox.arxiv_api import (
    ArxivDouble,
    load_sample_papers,
    malformed_id_feed,
    synthetic_paper,
)

SAMPLES = Path(__file__).resolve().parent / "fixtures" / "api-samples"
PAPERS = load_sample_papers()
KNOWN = ["2409.12191", "2304.08485", "astro-ph/0601001", "2104.12255", "2410.05993"]


class _Switch:
    """The double every test talks to: one loopback server for the module, with the
    double behind it chosen per test (`_serve`)."""

    def __init__(self) -> None:
        self.inner: Any = ArxivDouble()

    def handle(self, request: Request) -> Response:
        response: Response = self.inner.handle(request)
        return response


_SWITCH = _Switch()


@pytest.fixture(scope="module")
def _server() -> Iterator[Sandbox]:
    with Sandbox(arxiv=_SWITCH) as box:
        yield box


@pytest.fixture
def sandbox(_server: Sandbox) -> Iterator[Sandbox]:
    _SWITCH.inner = ArxivDouble()
    _server.clear_faults()
    _server.reset_log()
    yield _server
    _server.clear_faults()


def _serve(double: Any) -> None:
    _SWITCH.inner = double


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RawStore]:
    with RawStore(tmp_path / "raw") as raw:
        yield raw


def _settings(box: Sandbox, **changes: Any) -> Settings:
    scaled: dict[str, Any] = {
        "arxiv_delay_seconds": 0.01,
        "arxiv_backoff_seconds": 0.01,
        "arxiv_backoff_max_seconds": 0.05,
        "arxiv_timeout_seconds": 5.0,
    }
    return Settings.from_env(box.env()).replace(**{**scaled, **changes})


def _resolver(
    box: Sandbox,
    store: RawStore,
    time: FakeTime | None = None,
    deadline_seconds: float | None = None,
    **changes: Any,
) -> ArxivResolver:
    fake = time or FakeTime(start=1000.0)
    deadline = None if deadline_seconds is None else Deadline(deadline_seconds, clock=fake.clock)
    settings = _settings(box, **changes)
    return ArxivResolver(settings, store, deadline=deadline, sleep=fake.sleep, clock=fake.clock)


def _answer(store: RawStore, arxiv_id: str) -> StoredAnswer:
    answer = store.answer("arxiv", "paper", arxiv_id)
    assert answer is not None, f"no stored answer for {arxiv_id}"
    return answer


def _wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time_module.monotonic() + seconds
    while not condition():
        assert time_module.monotonic() < deadline, "the sandbox did not settle"
        time_module.sleep(0.01)


def _id_lists(box: Sandbox) -> list[list[str]]:
    """The id_list of every arXiv request the double received, in order."""
    lists = []
    for entry in box.requests("arxiv"):
        values = parse_qs(entry.query, keep_blank_values=True).get("id_list", [""])
        lists.append([i for i in values[0].split(",") if i])
    return lists


# -- IDs ---------------------------------------------------------------------------------


def test_records_carry_every_field_from_the_entry(sandbox: Sandbox, store: RawStore) -> None:
    records = _resolver(sandbox, store).resolve_ids(KNOWN)
    assert set(records) == set(KNOWN)
    for arxiv_id in KNOWN:
        record, paper = records[arxiv_id], PAPERS[arxiv_id]
        assert record.status == "ok" and record.status_reason is None
        assert record.title == " ".join(paper.title.split())
        assert record.authors == tuple(a.name for a in paper.authors)
        assert record.author_affiliations == tuple(a.affiliations for a in paper.authors)
        assert record.abstract == " ".join(paper.abstract.split())
        assert record.published == paper.submitted[0]
        assert record.updated == paper.submitted[-1]
        assert record.latest_version == paper.latest_version
        assert record.primary_category == paper.categories[0]
        assert record.categories == paper.categories
        assert (record.doi, record.journal_ref) == (paper.doi, paper.journal_ref)
        assert record.comment == paper.comment
        versioned = f"{arxiv_id}v{paper.latest_version}"
        assert record.abs_url == f"https://arxiv.org/abs/{versioned}"
        assert record.pdf_url == f"https://arxiv.org/pdf/{versioned}"
        assert record.data_fetched_at is not None and record.data_fetched_at.tzinfo is UTC
    assert records["2104.12255"].title == "0"  # a paper titled "0" keeps its title
    assert _id_lists(sandbox) == [KNOWN]  # one request, unversioned IDs only


def test_invalid_ids_are_never_sent(sandbox: Sandbox, store: RawStore) -> None:
    records = _resolver(sandbox, store).resolve_ids(["2409.12191", "abc", "0808.05394"])
    assert records["2409.12191"].status == "ok"
    for bad in ("abc", "0808.05394"):
        assert records[bad].status == "not_found"
        assert "never sent" in (records[bad].status_reason or "")
    assert _id_lists(sandbox) == [["2409.12191"]]


def test_entries_are_matched_by_id_and_absent_ones_are_not_found(
    sandbox: Sandbox, store: RawStore
) -> None:
    asked = ["2304.08485", "2409.99999", "2409.12191", "2310.03744"]
    records = _resolver(sandbox, store).resolve_ids(asked)
    assert records["2409.99999"] == PaperRecord(
        "2409.99999",
        "not_found",
        "arXiv has no paper with this identifier",
        data_fetched_at=records["2409.99999"].data_fetched_at,
    )
    for arxiv_id in ("2304.08485", "2409.12191", "2310.03744"):
        assert records[arxiv_id].title == PAPERS[arxiv_id].title
    (response,) = store.responses("arxiv")
    # arXiv (and the double) answer newest first, not in request order.
    answered = list(read_feed(response.read()).entries)
    assert answered != [i for i in asked if i in answered]
    assert _answer(store, "2409.99999").outcome == "not_found"
    assert _answer(store, "2304.08485").response == response


def test_versioned_ids_are_asked_unversioned(sandbox: Sandbox, store: RawStore) -> None:
    records = _resolver(sandbox, store).resolve_ids(["2409.12191v1", "2409.12191", "2409.12191v2"])
    assert list(records) == ["2409.12191"]
    assert records["2409.12191"].latest_version == PAPERS["2409.12191"].latest_version
    assert _id_lists(sandbox) == [["2409.12191"]]


def test_batches_and_max_results(sandbox: Sandbox, store: RawStore) -> None:
    wanted = [f"2401.{n:05d}" for n in range(1, 251)]
    _serve(ArxivDouble(synthesize_unknown=True))
    records = _resolver(sandbox, store).resolve_ids(wanted)
    queries = [parse_qs(e.query) for e in sandbox.requests("arxiv")]
    assert all(r.status == "ok" for r in records.values()) and len(records) == 250
    assert [len(q["id_list"][0].split(",")) for q in queries] == [100, 100, 50]
    # The API defaults to 10 results, for id_list too: every request asks for its batch.
    assert [int(q["max_results"][0]) for q in queries] == [100, 100, 50]


TRANSIENT_FAULTS = [
    pytest.param(Fault("arxiv", "status", status=429, body=b"Rate exceeded."), id="429"),
    pytest.param(Fault("arxiv", "status", status=503, body=b"Service Unavailable"), id="503"),
    pytest.param(Fault("arxiv", "api", name="empty_page"), id="empty-page"),
    pytest.param(Fault("arxiv", "api", name="drop_field"), id="entry-missing-fields"),
    pytest.param(Fault("arxiv", "truncate"), id="truncated"),
    pytest.param(Fault("arxiv", "garbage"), id="not-xml"),
    pytest.param(Fault("arxiv", "disconnect"), id="disconnect"),
    pytest.param(Fault("arxiv", "hang", delay_seconds=0.4), id="read-timeout"),
]


@pytest.mark.parametrize("fault", TRANSIENT_FAULTS)
@pytest.mark.parametrize("failures", [1, 2])
def test_transient_failures_are_retried_with_backoff(
    sandbox: Sandbox, store: RawStore, fault: Fault, failures: int
) -> None:
    fault.times = failures
    sandbox.add_fault(fault)
    time = FakeTime(start=1000.0)
    resolver = _resolver(sandbox, store, time, arxiv_timeout_seconds=0.15)
    records = resolver.resolve_ids(KNOWN[:3])
    assert [r.status for r in records.values()] == ["ok"] * 3
    assert resolver.backoffs == [0.01, 0.02][:failures]  # doubling from arxiv_backoff_seconds
    assert resolver.stats.requests == failures + 1 and resolver.stats.retries == failures
    # The next request waited out the backoff (the politeness delay is shorter).
    assert time.sleeps[:failures] == pytest.approx([0.01, 0.02][:failures])
    # Failed answers are kept for the audit, never as answers.
    assert len([r for r in store.responses("arxiv") if r.status == 200]) >= 1
    assert _answer(store, KNOWN[0]).response.status == 200
    if fault.kind == "hang":  # let the hung handlers finish before the next test's log
        _wait_for(lambda: len(sandbox.requests("arxiv", lambda e: e.status == 0)) == failures)


def test_backoff_is_capped_and_failure_after_the_last_attempt_is_an_error(
    sandbox: Sandbox, store: RawStore
) -> None:
    sandbox.add_fault(Fault("arxiv", "status", times=-1, status=503, body=b"busy"))
    resolver = _resolver(sandbox, store, arxiv_max_attempts=5, arxiv_backoff_max_seconds=0.03)
    records = resolver.resolve_ids(KNOWN[:2])
    assert resolver.backoffs == [0.01, 0.02, 0.03, 0.03]
    assert len(sandbox.requests("arxiv")) == 5
    for record in records.values():
        assert record.status == "error"
        assert record.status_reason is not None and "HTTP 503" in record.status_reason
    assert store.answer("arxiv", "paper", KNOWN[0]) is None  # errors are never answers
    assert resolver.stats.by_status == {503: 5}


def test_a_400_naming_one_id_drops_it_and_asks_again(sandbox: Sandbox, store: RawStore) -> None:
    # arXiv's validation can refuse an ID ours accepts: the whole batch fails with a 400.
    body = malformed_id_feed("2304.08485")
    sandbox.add_fault(Fault("arxiv", "status", status=400, body=body))
    resolver = _resolver(sandbox, store)
    records = resolver.resolve_ids(KNOWN[:3])
    assert records["2304.08485"].status == "not_found"
    assert records["2304.08485"].status_reason == (
        "arXiv rejected the identifier: incorrect id format for 2304.08485"
    )
    assert records["2409.12191"].status == records["astro-ph/0601001"].status == "ok"
    assert _id_lists(sandbox) == [KNOWN[:3], ["2409.12191", "astro-ph/0601001"]]
    assert resolver.backoffs == []  # a 400 is never retried blindly


def test_refusals_one_by_one_are_bounded(sandbox: Sandbox, store: RawStore) -> None:
    ids = [f"2406.{n:05d}" for n in range(1, 11)]
    for arxiv_id in ids:
        body = malformed_id_feed(arxiv_id)
        sandbox.add_fault(Fault("arxiv", "status", status=400, body=body, match=arxiv_id))
    records = _resolver(sandbox, store).resolve_ids(ids)
    limit = resolve_arxiv.MAX_REJECTIONS_PER_BATCH
    assert len(sandbox.requests("arxiv")) == limit + 1
    assert [r.status for r in records.values()].count("not_found") == limit
    assert [r.status for r in records.values()].count("error") == len(ids) - limit


def test_the_legacy_error_entry_with_http_200_is_handled_like_a_400(
    sandbox: Sandbox, store: RawStore
) -> None:
    sandbox.add_fault(Fault("arxiv", "api", name="legacy_error_200"))
    records = _resolver(sandbox, store).resolve_ids(KNOWN[:3])
    # The double's legacy fault names the first ID of the request.
    assert records[KNOWN[0]].status == "not_found"
    assert "incorrect id format" in (records[KNOWN[0]].status_reason or "")
    assert [records[i].status for i in KNOWN[1:3]] == ["ok", "ok"]
    assert _id_lists(sandbox) == [KNOWN[:3], KNOWN[1:3]]


def test_a_400_arxiv_does_not_explain_fails_the_batch_without_retries(
    sandbox: Sandbox, store: RawStore
) -> None:
    sandbox.add_fault(Fault("arxiv", "status", status=400, body=b"<html>Bad Request</html>"))
    resolver = _resolver(sandbox, store)
    records = resolver.resolve_ids(KNOWN[:2])
    assert [r.status for r in records.values()] == ["error", "error"]
    assert "HTTP 400" in (records[KNOWN[0]].status_reason or "")
    assert len(sandbox.requests("arxiv")) == 1 and resolver.backoffs == []


def test_user_agent_is_the_pipelines(sandbox: Sandbox, store: RawStore) -> None:
    resolver = _resolver(sandbox, store)
    resolver.resolve_ids(KNOWN[:1])
    resolver.resolve_titles(["Visual Instruction Tuning"])
    agents = {entry.user_agent for entry in sandbox.requests("arxiv")}
    assert agents == {resolver.settings.user_agent}
    assert "mllm-papers-pipeline" in resolver.settings.user_agent


# -- the raw store: TTL, refresh, offline, last good ------------------------------------


def test_a_second_run_within_the_ttl_asks_nothing(sandbox: Sandbox, store: RawStore) -> None:
    asked = [*KNOWN, "2409.99999"]
    first = _resolver(sandbox, store).resolve_ids(asked)
    sandbox.reset_log()
    second_resolver = _resolver(sandbox, store)
    second = second_resolver.resolve_ids(asked)
    assert sandbox.requests("arxiv") == []
    assert second == first
    assert second_resolver.stats.from_store == len(asked) and second_resolver.stats.requests == 0


@pytest.mark.parametrize(
    ("changes", "asked_again"),
    [
        ({"refresh": RefreshPolicy.REFRESH}, [*KNOWN, "2409.99999"]),
        ({"arxiv_ttl_seconds": 0.0}, KNOWN),  # found answers expired
        ({"arxiv_not_found_ttl_seconds": 0.0}, ["2409.99999"]),  # "not found" expired
        ({"refresh": RefreshPolicy.OFFLINE, "arxiv_ttl_seconds": 0.0}, []),
    ],
)
def test_refresh_policy_decides_what_is_asked_again(
    sandbox: Sandbox, store: RawStore, changes: dict[str, Any], asked_again: list[str]
) -> None:
    asked = [*KNOWN, "2409.99999"]
    _resolver(sandbox, store).resolve_ids(asked)
    sandbox.reset_log()
    records = _resolver(sandbox, store, **changes).resolve_ids(asked)
    assert sorted(i for ids in _id_lists(sandbox) for i in ids) == sorted(asked_again)
    assert [records[i].status for i in asked] == ["ok"] * len(KNOWN) + ["not_found"]


def test_offline_without_a_stored_answer_is_an_error(sandbox: Sandbox, store: RawStore) -> None:
    resolver = _resolver(sandbox, store, refresh=RefreshPolicy.OFFLINE)
    records = resolver.resolve_ids(["2409.12191"])
    titles = resolver.resolve_titles(["Visual Instruction Tuning"])
    assert records["2409.12191"] == PaperRecord("2409.12191", "error", "offline: no stored answer")
    assert titles["Visual Instruction Tuning"].status == "error"
    assert sandbox.requests() == []


def test_a_failed_lookup_falls_back_on_the_last_good_answer(
    sandbox: Sandbox, store: RawStore
) -> None:
    first = _resolver(sandbox, store).resolve_ids(KNOWN[:2])
    sandbox.add_fault(Fault("arxiv", "status", times=-1, status=429, body=b"Rate exceeded."))
    second = _resolver(sandbox, store, refresh=RefreshPolicy.REFRESH).resolve_ids(KNOWN[:2])
    for arxiv_id in KNOWN[:2]:
        record = second[arxiv_id]
        assert record.status == "stale"
        assert record.title == first[arxiv_id].title
        assert record.data_fetched_at == first[arxiv_id].data_fetched_at  # when that data came
        assert record.status_reason is not None
        assert (
            "HTTP 429" in record.status_reason and "last good answer from" in record.status_reason
        )


def test_errors_are_never_reused_as_answers(sandbox: Sandbox, store: RawStore) -> None:
    with sandbox.fault(Fault("arxiv", "status", times=-1, status=503)):
        failed = _resolver(sandbox, store, arxiv_max_attempts=2).resolve_ids(KNOWN[:1])
    assert failed[KNOWN[0]].status == "error"
    sandbox.reset_log()
    again = _resolver(sandbox, store).resolve_ids(KNOWN[:1])
    assert again[KNOWN[0]].status == "ok"
    assert len(sandbox.requests("arxiv")) == 1


def test_a_paper_arxiv_no_longer_finds_keeps_its_last_good_answer(
    sandbox: Sandbox, store: RawStore
) -> None:
    first = _resolver(sandbox, store).resolve_ids(["2409.12191"])
    _serve(ArxivDouble({k: v for k, v in PAPERS.items() if k != "2409.12191"}))
    second = _resolver(sandbox, store, refresh=RefreshPolicy.REFRESH).resolve_ids(["2409.12191"])
    record = second["2409.12191"]
    assert record.status == "stale" and record.title == first["2409.12191"].title
    assert (record.status_reason or "").startswith("arXiv has no paper with this identifier")
    assert _answer(store, "2409.12191").outcome == "not_found"


def test_an_id_refused_after_it_was_answered_keeps_its_last_good_answer(
    sandbox: Sandbox, store: RawStore
) -> None:
    first = _resolver(sandbox, store).resolve_ids(["2409.12191"])
    sandbox.add_fault(Fault("arxiv", "status", status=400, body=malformed_id_feed("2409.12191")))
    second = _resolver(sandbox, store, refresh=RefreshPolicy.REFRESH).resolve_ids(["2409.12191"])
    record = second["2409.12191"]
    assert record.status == "stale" and record.title == first["2409.12191"].title
    assert (record.status_reason or "").startswith(
        "arXiv rejected the identifier: incorrect id format for 2409.12191 tonight"
    )


def test_a_redirect_is_answered_not_followed(sandbox: Sandbox, store: RawStore) -> None:
    elsewhere = "http://127.0.0.1:9/api/query"  # would be refused, were it followed
    sandbox.add_fault(
        Fault("arxiv", "status", times=-1, status=302, headers={"location": elsewhere})
    )
    record = _resolver(sandbox, store).resolve_ids(["2409.12191"])["2409.12191"]
    assert record.status == "error"
    assert record.status_reason == (
        f"HTTP 302 from arXiv: redirect to {elsewhere} not followed; if arXiv has moved,"
        " set ARXIV_API_URL to its new address"
    )
    assert len(sandbox.requests("arxiv")) == 1  # a refusal: not retried


def test_a_stored_body_is_read_once_per_run(
    sandbox: Sandbox, store: RawStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _resolver(sandbox, store).resolve_ids(KNOWN)
    reads: list[bytes] = []
    original = read_feed

    def counting(body: bytes) -> Feed:
        reads.append(body)
        return original(body)

    monkeypatch.setattr(resolve_arxiv, "read_feed", counting)
    records = _resolver(sandbox, store).resolve_ids(KNOWN)
    assert len(reads) == 1 and all(r.status == "ok" for r in records.values())


# -- politeness ----------------------------------------------------------------------------


class _Gate:
    """Wraps the double and records how many requests it was serving at once."""

    def __init__(self, inner: ArxivDouble) -> None:
        self.inner = inner
        self.lock = threading.Lock()
        self.serving = 0
        self.most = 0

    def handle(self, request: Request) -> Response:
        with self.lock:
            self.serving += 1
            self.most = max(self.most, self.serving)
        try:
            threading.Event().wait(0.005)  # widen the window an overlap would need
            return self.inner.handle(request)
        finally:
            with self.lock:
                self.serving -= 1


def test_the_threads_of_a_run_share_its_polite_queue(sandbox: Sandbox, store: RawStore) -> None:
    delay = 0.05
    gate = _Gate(ArxivDouble(synthesize_unknown=True))
    _serve(gate)
    groups = [[f"2402.{n:05d}" for n in range(start, start + 6)] for start in (1, 101)]
    results: list[dict[str, PaperRecord]] = []
    settings = _settings(sandbox, arxiv_delay_seconds=delay, arxiv_batch_size=2)
    resolver = ArxivResolver(settings, store)  # one per run, in real time

    def work(ids: list[str]) -> None:
        results.append(resolver.resolve_ids(ids))

    threads = [threading.Thread(target=work, args=(ids,)) for ids in groups]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log: list[LoggedRequest] = sandbox.requests("arxiv")
    assert gate.most == 1  # never two requests in flight
    assert len(log) == 6
    # Each request was logged after it was served; the next one could only start `delay`
    # after its predecessor's answer arrived, so served times are at least `delay` apart.
    gaps = [later.at - earlier.at for earlier, later in pairwise(log)]
    assert min(gaps) >= delay
    assert {i for r in results for i, rec in r.items() if rec.status == "ok"} == {
        i for ids in groups for i in ids
    }


def test_waits_come_from_the_delay_and_are_recorded(sandbox: Sandbox, store: RawStore) -> None:
    time = FakeTime(start=1000.0)
    resolver = _resolver(sandbox, store, time, arxiv_batch_size=1, arxiv_delay_seconds=3.0)
    resolver.resolve_ids(KNOWN[:3])
    assert time.sleeps == [3.0, 3.0]  # none before the first request, the delay after each


def test_progress_is_reported(sandbox: Sandbox, store: RawStore) -> None:
    seen: list[tuple[int, int]] = []
    _resolver(sandbox, store, arxiv_batch_size=2).resolve_ids(
        [*KNOWN, "abc"], on_progress=lambda done, total: seen.append((done, total))
    )
    assert seen == [(1, 6), (3, 6), (5, 6), (6, 6)]


# -- titles --------------------------------------------------------------------------------

SEED_TITLES = {
    "NVLM: Open Frontier-Class Multimodal LLMs": "2409.11402",
    "Molmo and PixMo: Open Weights and Open Data for State-of-the-Art Multimodal Models": (
        "2409.17146"
    ),
    "Pixtral 12B": "2410.07073",
    "Aria: An Open Multimodal Native Mixture-of-Experts Mode": "2410.05993",  # cut short
    "MM1.5: Methods, Analysis & Insights from Multimodal LLM Fine-tuning": "2409.20566",
    "Qwen2-VL: Enhancing Vision-Language Model’s Perception of the World at Any Resolution": (
        "2409.12191"
    ),
    "Flamingo: a Visual Language Model for Few-Shot Learning": "2204.14198",
    "Visual Instruction Tuning": "2304.08485",
    "Improved Baselines with Visual Instruction Tuning": "2310.03744",
    "LLaVA-NeXT: Improved reasoning, OCR, and world knowledge": None,  # a blog post
    "Yi-VL": None,
}


def test_titles_resolve_in_batched_searches(sandbox: Sandbox, store: RawStore) -> None:
    resolver = _resolver(sandbox, store)
    matches = resolver.resolve_titles(list(SEED_TITLES))
    assert {t: m.arxiv_id for t, m in matches.items()} == SEED_TITLES
    for title, match in matches.items():
        assert match.query_title == title
        assert match.status == ("ok" if SEED_TITLES[title] else "not_found")
        if match.arxiv_id:
            assert match.matched_title == PAPERS[match.arxiv_id].title
            assert match.similarity is not None and match.similarity >= 0.95
    searches = [parse_qs(e.query)["search_query"][0] for e in sandbox.requests("arxiv")]
    assert len(searches) == math.ceil(len(SEED_TITLES) / 10)
    # Long titles are searched without their last word (reading lists cut titles short).
    assert searches[0].startswith('ti:"NVLM Open Frontier-Class Multimodal" OR ti:"Molmo')
    assert 'ti:"Pixtral 12B"' in searches[0] and 'ti:"Visual Instruction Tuning"' in searches[0]
    # The search answers hold the papers' entries: looking the IDs up needs no request.
    sandbox.reset_log()
    found = [m.arxiv_id for m in matches.values() if m.arxiv_id]
    records = resolver.resolve_ids(found)
    assert all(r.status == "ok" for r in records.values()) and sandbox.requests() == []


def test_request_count_is_batches_plus_title_searches(sandbox: Sandbox, store: RawStore) -> None:
    ids = [f"2403.{n:05d}" for n in range(1, 231)]
    titles = list(SEED_TITLES)  # 11 titles: two searches
    _serve(ArxivDouble({**PAPERS, **{i: synthetic_paper(i) for i in ids}}))
    resolver = _resolver(sandbox, store)
    resolver.resolve_titles(titles)
    resolver.resolve_ids(ids)
    assert len(sandbox.requests("arxiv")) == math.ceil(len(ids) / 100) + math.ceil(11 / 10)


def test_a_title_not_seen_on_a_full_page_is_asked_alone(sandbox: Sandbox, store: RawStore) -> None:
    # 60 more papers contain "visual instruction tuning": the OR-ed page (2 x 25 results)
    # fills up with them, and the Pixtral paper ranks below; it is asked for alone.
    papers = dict(PAPERS)
    for n in range(60):
        arxiv_id = f"2405.{n:05d}"
        papers[arxiv_id] = synthetic_paper(arxiv_id, f"Visual Instruction Tuning at Scale {n}")
    _serve(ArxivDouble(papers))
    resolver = _resolver(sandbox, store, arxiv_titles_per_request=2)
    matches = resolver.resolve_titles(["Visual Instruction Tuning", "Pixtral 12B"])
    searches = [parse_qs(e.query)["search_query"][0] for e in sandbox.requests("arxiv")]
    assert matches["Visual Instruction Tuning"].arxiv_id == "2304.08485"
    assert matches["Pixtral 12B"].arxiv_id == "2410.07073"
    assert searches == ['ti:"Visual Instruction Tuning" OR ti:"Pixtral 12B"', 'ti:"Pixtral 12B"']


def test_title_answers_are_stored_and_reused(sandbox: Sandbox, store: RawStore) -> None:
    first = _resolver(sandbox, store).resolve_titles(list(SEED_TITLES))
    sandbox.reset_log()
    # Another spelling of a stored title shares its answer (the key is the normalised title).
    again = [*SEED_TITLES, "visual instruction tuning"]
    second = _resolver(sandbox, store).resolve_titles(again)
    assert sandbox.requests() == []
    assert {t: second[t] for t in SEED_TITLES} == first
    assert second["visual instruction tuning"].arxiv_id == "2304.08485"
    stored = store.answer("arxiv", "title", normalise_title("Visual Instruction Tuning"))
    assert stored is not None and stored.outcome == "ok"


def test_a_failed_title_search_falls_back_on_the_last_good_answer(
    sandbox: Sandbox, store: RawStore
) -> None:
    _resolver(sandbox, store).resolve_titles(["Visual Instruction Tuning", "Yi-VL"])
    sandbox.add_fault(Fault("arxiv", "status", times=-1, status=503))
    matches = _resolver(
        sandbox, store, refresh=RefreshPolicy.REFRESH, arxiv_max_attempts=2
    ).resolve_titles(["Visual Instruction Tuning", "Yi-VL"])
    stale, lost = matches["Visual Instruction Tuning"], matches["Yi-VL"]
    assert (stale.status, stale.arxiv_id) == ("stale", "2304.08485")
    assert "HTTP 503" in (stale.status_reason or "")
    assert (lost.status, lost.arxiv_id) == ("error", None)


def test_a_misconfigured_endpoint_is_refused(tmp_path: Path) -> None:
    with RawStore(tmp_path) as raw, pytest.raises(ValueError, match="ARXIV_API_URL"):
        ArxivResolver(Settings(arxiv_api_url="export.arxiv.org/api/query"), raw)


def test_answered_from_the_store_counts_only_what_the_store_answered(
    sandbox: Sandbox, store: RawStore
) -> None:
    offline = _resolver(sandbox, store, refresh=RefreshPolicy.OFFLINE)
    records = offline.resolve_ids(KNOWN[:2])
    offline.resolve_titles(["Visual Instruction Tuning"])
    assert {r.status for r in records.values()} == {"error"}
    assert offline.stats.from_store == 0  # an empty store answered nothing
    _resolver(sandbox, store).resolve_ids(KNOWN[:2])
    again = _resolver(sandbox, store, refresh=RefreshPolicy.OFFLINE)
    again.resolve_ids([*KNOWN[:2], "2409.99999"])
    assert again.stats.from_store == 2


# -- validation: nothing from arXiv is believed unchecked ----------------------------------

_RECORDED = (SAMPLES / "arxiv_id_list_unversioned_1605.08386.xml").read_bytes()


def _as_answer_for(arxiv_id: str, entry_id: str | None = None, **texts: str) -> bytes:
    """The recorded answer, rewritten to answer `arxiv_id` (its `<id>` set to `entry_id`),
    with further texts replaced."""
    body = _RECORDED.replace(b"1605.08386", arxiv_id.encode())
    if entry_id is not None:
        body = body.replace(f"http://arxiv.org/abs/{arxiv_id}v1".encode(), entry_id.encode())
    for old, new in texts.items():
        body = body.replace(old.encode(), new.encode())
    return body


HOSTILE_ANSWERS = {
    "path traversal as the ID": (
        _as_answer_for("2409.12191", "http://arxiv.org/abs/../../etc/passwd"),
        r"unusable body: entry 1: <id> 'http://arxiv.org/abs/../../etc/passwd' is not an arXiv",
    ),
    "an entry for an ID never asked": (
        _as_answer_for("2304.08485"),
        r"arXiv answered IDs it was not asked: 2304\.08485",
    ),
    "a version past int64": (
        _as_answer_for("2409.12191", "http://arxiv.org/abs/2409.12191v99999999999999999999"),
        r"unusable body: entry 1: <id> .* has an absurd version number",
    ),
    "a date that does not parse": (
        _as_answer_for("2409.12191", **{"<published>2016-05-26": "<published>2016-05-32"}),
        r"unusable body: entry 1 \(2409\.12191\): <published> '2016-05-32T17:59:46Z' is not",
    ),
    "a count that is not a number": (
        _as_answer_for("2409.12191", **{"totalResults>1<": "totalResults>one<"}),
        r"unusable body: <opensearch:totalResults> is not a count: 'one'",
    ),
}


@pytest.mark.parametrize(("body", "reason"), HOSTILE_ANSWERS.values(), ids=HOSTILE_ANSWERS.keys())
def test_a_hostile_answer_is_never_stored_as_an_answer(
    sandbox: Sandbox, store: RawStore, body: bytes, reason: str
) -> None:
    sandbox.add_fault(Fault("arxiv", "status", times=-1, status=200, body=body))
    resolver = _resolver(sandbox, store, arxiv_max_attempts=2)
    record = resolver.resolve_ids(["2409.12191"])["2409.12191"]
    assert record.status == "error" and record.title is None
    assert re.search(reason, record.status_reason or ""), record.status_reason
    assert resolver.stats.requests == 2  # garbled answers are tried again, as any
    assert store.answer("arxiv", "paper", "2409.12191") is None
    assert store.answer("arxiv", "paper", "2304.08485") is None
    assert len(store.responses("arxiv")) == 2  # kept for the audit all the same


def test_a_hostile_answer_leaves_the_last_good_one(sandbox: Sandbox, store: RawStore) -> None:
    first = _resolver(sandbox, store).resolve_ids(["2409.12191"])["2409.12191"]
    body, _ = HOSTILE_ANSWERS["path traversal as the ID"]
    sandbox.add_fault(Fault("arxiv", "status", times=-1, status=200, body=body))
    again = _resolver(sandbox, store, refresh=RefreshPolicy.REFRESH, arxiv_max_attempts=1)
    record = again.resolve_ids(["2409.12191"])["2409.12191"]
    assert (record.status, record.title) == ("stale", first.title)
    assert "is not an arXiv abstract URL" in (record.status_reason or "")


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda body: body.replace(b"2409.12191v", b"..%2F..%2Fx"), id="bad-id"),
        pytest.param(lambda body: body.replace(b"<published>2", b"<published>X"), id="bad-date"),
        pytest.param(lambda body: body[: len(body) // 2], id="truncated"),
    ],
)
def test_a_stored_answer_that_no_longer_validates_is_asked_again(
    sandbox: Sandbox, store: RawStore, tamper: Callable[[bytes], bytes]
) -> None:
    _resolver(sandbox, store).resolve_ids(["2409.12191"])
    path = _answer(store, "2409.12191").response.body_path
    path.write_bytes(tamper(path.read_bytes()))
    offline = _resolver(sandbox, store, refresh=RefreshPolicy.OFFLINE)
    assert offline.resolve_ids(["2409.12191"])["2409.12191"] == PaperRecord(
        "2409.12191", "error", "offline: the stored answer cannot be read"
    )
    sandbox.reset_log()
    record = _resolver(sandbox, store).resolve_ids(["2409.12191"])["2409.12191"]
    assert record.status == "ok" and record.title == PAPERS["2409.12191"].title
    assert _id_lists(sandbox) == [["2409.12191"]]  # within the TTL, yet asked again


def test_a_stored_answer_is_trusted_only_for_the_ids_its_request_asked(
    sandbox: Sandbox, store: RawStore
) -> None:
    _resolver(sandbox, store).resolve_ids(["2409.12191"])
    # An index row claiming that answer for another paper (a bug, or tampering).
    store.mark(_answer(store, "2409.12191").response, "paper", ["2304.08485"], "ok")
    sandbox.reset_log()
    records = _resolver(sandbox, store).resolve_ids(["2409.12191", "2304.08485"])
    assert _id_lists(sandbox) == [["2304.08485"]]
    assert records["2304.08485"].title == PAPERS["2304.08485"].title


# -- the run deadline ------------------------------------------------------------------------


def test_a_backoff_past_the_deadline_is_not_taken(sandbox: Sandbox, store: RawStore) -> None:
    _resolver(sandbox, store).resolve_ids(KNOWN[:1])  # a last good answer for the first
    sandbox.reset_log()
    sandbox.add_fault(Fault("arxiv", "status", times=-1, status=503, body=b"busy"))
    time = FakeTime(start=1000.0)
    resolver = _resolver(
        sandbox,
        store,
        time,
        deadline_seconds=80.0,
        refresh=RefreshPolicy.REFRESH,
        arxiv_batch_size=1,
        arxiv_delay_seconds=3.0,
        arxiv_backoff_seconds=30.0,
        arxiv_backoff_max_seconds=300.0,
    )
    records = resolver.resolve_ids(KNOWN[:4])
    # 503, 30 s backoff, 503, 60 s backoff: would end past the deadline, so not taken.
    assert len(sandbox.requests("arxiv")) == 2 and time.sleeps == [30.0]
    assert resolver.backoffs == [30.0]
    first, *rest = (records[i] for i in KNOWN[:4])
    assert first.status == "stale" and first.title == PAPERS[KNOWN[0]].title
    assert (first.status_reason or "").startswith(
        "HTTP 503 from arXiv: busy; not tried again: a wait of 60 s would end past the run"
        " deadline (run_deadline_seconds=80, 50 s left)"
    )
    assert "last good answer from" in (first.status_reason or "")
    for record in rest:  # never asked: the run stopped asking arXiv
        assert record.status == "error"
        assert (record.status_reason or "").startswith(
            "not asked: a wait of 60 s would end past the run deadline"
        )


def test_titles_past_the_deadline_are_not_asked_one_by_one(
    sandbox: Sandbox, store: RawStore
) -> None:
    sandbox.add_fault(Fault("arxiv", "status", times=-1, status=429, body=b"Rate exceeded."))
    resolver = _resolver(
        sandbox,
        store,
        deadline_seconds=10.0,
        arxiv_backoff_seconds=30.0,
        arxiv_backoff_max_seconds=300.0,
        arxiv_titles_per_request=2,
    )
    matches = resolver.resolve_titles(["Visual Instruction Tuning", "Pixtral 12B", "Yi-VL Model"])
    assert len(sandbox.requests("arxiv")) == 1
    for match in matches.values():
        assert match.status == "error" and "run deadline" in (match.status_reason or "")
