"""The raw-response store: bodies kept as received, answers found by entity."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.resolve.rawstore import RawStore, RawStoreError, StoredResponse, request_key

T0 = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


def _record(store: RawStore, body: bytes, status: int = 200, at: datetime = T0) -> StoredResponse:
    return store.record(
        api="arxiv",
        endpoint="id_list",
        url="https://export.arxiv.org/api/query?id_list=2409.12191",
        status=status,
        body=body,
        headers={"Content-Type": "application/atom+xml", "Set-Cookie": "secret"},
        fetched_at=at,
    )


def test_body_is_kept_byte_for_byte_with_only_audit_headers(tmp_path: Path) -> None:
    body = "<feed>Wübben</feed>".encode()
    with RawStore(tmp_path) as store:
        response = _record(store, body)
        (stored,) = store.responses()
    assert stored.read() == body
    assert stored.body_sha256 == response.body_sha256
    assert dict(stored.headers) == {"content-type": "application/atom+xml"}
    assert stored.fetched_at == T0


def test_latest_answer_wins_and_last_good_skips_not_found(tmp_path: Path) -> None:
    with RawStore(tmp_path) as store:
        old = store.record(
            api="hub", endpoint="model", url="u1", status=200, body=b"{}", fetched_at=T0
        )
        store.mark(old, "model", ["a/b"], "ok")
        new = store.record(
            api="hub",
            endpoint="model",
            url="u1",
            status=401,
            body=b"{}",
            fetched_at=T0 + timedelta(days=1),
        )
        store.mark(new, "model", ["a/b"], "not_found")

        latest = store.answer("hub", "model", "a/b")
        good = store.last_good("hub", "model", "a/b")
    assert latest is not None and latest.outcome == "not_found"
    assert latest.response.response_id == new.response_id
    assert good is not None and good.response.response_id == old.response_id
    assert latest.age_seconds(T0 + timedelta(days=2)) == pytest.approx(86400)


def test_unmarked_responses_answer_nothing(tmp_path: Path) -> None:
    """A 429 is recorded for the audit but is never an answer."""
    with RawStore(tmp_path) as store:
        store.record(api="arxiv", endpoint="id_list", url="u", status=429, body=b"Rate exceeded.")
        assert store.answer("arxiv", "paper", "2409.12191") is None
        assert [r.status for r in store.responses("arxiv")] == [429]


def test_answers_survive_reopening(tmp_path: Path) -> None:
    with RawStore(tmp_path) as store:
        response = _record(store, b"<feed/>")
        store.mark(response, "paper", ["2409.12191", "2502.13923"], "ok")
    with RawStore(tmp_path) as reopened:
        found = reopened.answer("arxiv", "paper", "2502.13923")
    assert found is not None and found.response.read() == b"<feed/>"


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    store = RawStore(tmp_path)

    def write(worker: int) -> None:
        for i in range(25):
            response = store.record(
                api="hub",
                endpoint="model",
                url=f"u{worker}-{i}",
                status=200,
                body=f"{worker}-{i}".encode(),
            )
            store.mark(response, "model", [f"o/{worker}-{i}"], "ok")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store.responses("hub")) == 100
    assert all(store.answer("hub", "model", f"o/{w}-{i}") for w in range(4) for i in range(25))
    store.close()


def test_request_key_ignores_nothing_but_headers() -> None:
    assert request_key("get", "u") == request_key("GET", "u")
    assert request_key("GET", "u") != request_key("POST", "u")
    assert request_key("POST", "u", b"a") != request_key("POST", "u", b"b")


def test_unusable_root_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(RawStoreError, match="file"):
        RawStore(blocker)
