"""What the resolvers share (`pipeline.resolve.common`): the circuit breaker (a service
that cannot be reached at all costs one request's retries, not a night of them), the run
deadline, progress, the capped body reader and the last-good fallback."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fakes import FakeTime

from pipeline.config import Settings
from pipeline.records import RepoRef
from pipeline.resolve.arxiv import ArxivResolver
from pipeline.resolve.common import (
    Breaker,
    Deadline,
    Progress,
    ServiceUnreachable,
    TooLarge,
    equal_jitter_seconds,
    header_int,
    last_good_answer,
    read_capped,
    redact,
    redact_bytes,
    stale_reason,
)
from pipeline.resolve.hub import HubResolver
from pipeline.resolve.rawstore import RawStore
from pipeline.sandbox import Fault, Sandbox


def test_the_breaker_opens_after_a_run_of_failures_and_closes_on_any_answer() -> None:
    breaker = Breaker("arXiv", threshold=2)
    breaker.failure("refused")
    breaker.check()  # one failure: still asking
    breaker.success()
    breaker.failure("refused")
    breaker.check()  # the answer in between reset the count
    breaker.failure("refused")
    with pytest.raises(ServiceUnreachable, match=r"arXiv unreachable \(refused, 2 "):
        breaker.check()
    breaker.success()
    breaker.check()


@pytest.fixture
def dead_endpoint() -> str:
    """An address on loopback where nothing listens: every connection is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _settings(endpoint: str) -> Settings:
    return Settings.from_env(
        {"ARXIV_API_URL": f"{endpoint}/api/query", "HF_ENDPOINT": endpoint}
    ).replace(arxiv_batch_size=10, arxiv_max_attempts=3, hub_max_attempts=3, hub_concurrency=1)


def test_arxiv_stops_asking_once_it_cannot_connect(dead_endpoint: str, tmp_path: Path) -> None:
    fake = FakeTime()
    ids = [f"2409.{n:05d}" for n in range(1, 51)]  # five batches
    with RawStore(tmp_path) as store:
        resolver = ArxivResolver(
            _settings(dead_endpoint), store, sleep=fake.sleep, clock=fake.clock
        )
        records = resolver.resolve_ids(ids)
    assert resolver.stats.requests == 3  # one batch's attempts, then no more
    assert {record.status for record in records.values()} == {"error"}
    assert "arXiv unreachable" in (records[ids[-1]].status_reason or "")


def test_the_hub_stops_asking_once_it_cannot_connect(dead_endpoint: str, tmp_path: Path) -> None:
    fake = FakeTime()
    refs: list[RepoRef] = [("model", f"org/model-{n}") for n in range(20)]
    with RawStore(tmp_path) as store:
        resolver = HubResolver(_settings(dead_endpoint), store, sleep=fake.sleep, clock=fake.clock)
        records = resolver.resolve_repos(refs)
    assert resolver.stats.requests == 3
    assert {record.status for record in records.values()} == {"error"}
    assert "Hugging Face Hub unreachable" in (records[refs[-1]].status_reason or "")


def test_cut_bodies_are_answers_and_do_not_open_the_breaker(tmp_path: Path) -> None:
    """A body cut short after its headers is an answer from a service that is there: a
    run of them must not stop the night's asking (a tenth of the Hub's bodies may be)."""
    with Sandbox() as sandbox, RawStore(tmp_path) as store:
        sandbox.add_fault(Fault(api="hub", kind="disconnect", times=3, match="Qwen2-VL-72B"))
        settings = Settings.from_env(sandbox.env()).replace(hub_max_attempts=3)
        resolver = HubResolver(settings, store, sleep=lambda _: None)
        first = resolver.resolve_repos([("model", "Qwen/Qwen2-VL-72B")])
        second = resolver.resolve_repos([("model", "01-ai/Yi-VL-34B")])
    cut = first[("model", "Qwen/Qwen2-VL-72B")]
    assert cut.status == "error"
    assert (cut.status_reason or "").startswith("HTTP 200 with its body cut short")
    assert second[("model", "01-ai/Yi-VL-34B")].status == "ok"


# -- the deadline -------------------------------------------------------------------------
def test_the_deadline_allows_only_waits_that_end_before_it() -> None:
    fake = FakeTime(start=1_000.0)
    deadline = Deadline(300, clock=fake.clock)
    assert deadline.remaining_seconds() == 300
    assert deadline.allows(299) and not deadline.allows(300)
    fake.sleep(250)
    assert deadline.remaining_seconds() == 50
    assert deadline.allows(0) and not deadline.allows(60)
    assert deadline.refusal(60) == (
        "a wait of 60 s would end past the run deadline (run_deadline_seconds=300, 50 s left)"
    )
    fake.sleep(100)
    assert deadline.remaining_seconds() == 0
    assert not deadline.allows(0)


# -- progress -----------------------------------------------------------------------------
def test_progress_reports_done_of_total() -> None:
    seen: list[tuple[int, int]] = []
    progress = Progress(lambda done, total: seen.append((done, total)), total=3)
    progress.advance()
    progress.advance(0)  # nothing done: nothing said
    progress.total += 2
    progress.advance(4)
    assert seen == [(1, 3), (5, 5)]
    Progress(None, 1).advance()  # no callback: fine


# -- the capped reader --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("response", "limit", "refused_at"),
    [
        (httpx.Response(200, content=b"x" * 10), 10, None),
        (httpx.Response(200, content=b"x" * 11), 10, 11),  # declared Content-Length
        (httpx.Response(200, content=iter([b"x" * 6, b"x" * 6])), 10, 12),  # streamed
    ],
)
def test_read_capped(response: httpx.Response, limit: int, refused_at: int | None) -> None:
    if refused_at is None:
        assert read_capped(response, limit) == b"x" * 10
    else:
        with pytest.raises(TooLarge) as raised:
            read_capped(response, limit)
        assert raised.value.size == refused_at


# -- the last good answer -----------------------------------------------------------------
def test_last_good_answer_is_read_by_tonights_rules(tmp_path: Path) -> None:
    fetched = datetime(2026, 11, 19, 3, 4, tzinfo=UTC)
    with RawStore(tmp_path) as store:
        assert last_good_answer(store, "hub", "model", "a/b", lambda last: last) is None
        good = store.record(
            api="hub", endpoint="models", url="u", status=200, body=b"{}", fetched_at=fetched
        )
        store.mark(good, "model", ["a/b"], "ok")
        later = store.record(api="hub", endpoint="models", url="u", status=404, body=b"")
        store.mark(later, "model", ["a/b"], "not_found")
        found = last_good_answer(store, "hub", "model", "a/b", lambda last: last.response.read())
        assert found is not None
        value, last = found
        assert (value, last.response.response_id) == (b"{}", good.response_id)
        # An answer tonight's rules reject is no fallback.
        assert last_good_answer(store, "hub", "model", "a/b", lambda last: None) is None
        assert stale_reason("HTTP 503", last) == (
            "HTTP 503; last good answer from 2026-11-19 03:04 UTC"
        )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("300", 300),
        (" 7 ", 7),
        ("0", 0),
        (None, None),
        ("", None),
        ("-1", None),
        ("1.5", None),
        ("\u00b2", None),  # a superscript two: str.isdigit says yes, int says no
        ("\u0663", None),  # an Arabic-Indic three: int would take it, a header must not
        ("9" * 19, None),  # past what a count can be
    ],
)
def test_header_integers_are_ascii_digits_only(value: str | None, expected: int | None) -> None:
    assert header_int(value) == expected


@pytest.mark.parametrize(
    ("text", "token", "redacted"),
    [
        ("Bad credentials: Bearer ghp_x1", "ghp_x1", "Bad credentials: Bearer [T]"),
        ("ghp_x1 and ghp_x1", "ghp_x1", "[T] and [T]"),
        ("nothing to hide", "ghp_x1", "nothing to hide"),
        ("no token set", None, "no token set"),
    ],
)
def test_redact_removes_every_copy_of_the_token(
    text: str, token: str | None, redacted: str
) -> None:
    assert redact(text, token, "[T]") == redacted
    assert redact_bytes(text.encode(), token, "[T]") == redacted.encode()


@pytest.mark.parametrize(
    ("attempt", "low", "high"), [(1, 5.0, 10.0), (2, 10.0, 20.0), (3, 20.0, 40.0), (9, 30.0, 60.0)]
)
def test_equal_jitter_keeps_at_least_half_of_the_capped_backoff(
    attempt: int, low: float, high: float
) -> None:
    waits = [equal_jitter_seconds(10.0, 60.0, attempt) for _ in range(200)]
    assert all(low <= wait <= high for wait in waits)
