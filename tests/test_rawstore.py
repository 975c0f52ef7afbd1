"""The raw-response store: bodies kept as received, answers found by entity; on a local
disk and on S3 (moto's server, the `s3_bucket` fixture)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.config import RefreshPolicy
from pipeline.objectstore import Remote
from pipeline.records import utc_now
from pipeline.resolve.rawstore import (
    INDEX_DIR,
    SEGMENT_ROWS,
    Outcome,
    RawStore,
    RawStoreCorrupt,
    RawStoreError,
    StoredResponse,
    UnusableBody,
    request_key,
)

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


# -- nothing read back is trusted blindly --------------------------------------------------
def test_a_body_that_is_not_the_bytes_stored_is_unusable(tmp_path: Path) -> None:
    with RawStore(tmp_path) as store:
        response = _record(store, b"<feed>good</feed>")
        response.body_path.write_bytes(b"<feed>edited</feed>")
        (stored,) = store.responses()
        with pytest.raises(UnusableBody, match=str(response.body_path)) as raised:
            stored.read()
    assert "does not match its record" in str(raised.value)
    assert isinstance(raised.value, OSError)  # every reader handles it as a failed read


def test_the_same_answer_again_repairs_an_altered_body(tmp_path: Path) -> None:
    with RawStore(tmp_path) as store:
        first = _record(store, b"<feed>good</feed>")
        first.body_path.write_bytes(b"<feed>edited</feed>")
        again = _record(store, b"<feed>good</feed>")  # asked again: the same bytes

        assert again.body_path == first.body_path
        assert again.read() == first.read() == b"<feed>good</feed>"


def test_a_missing_body_is_unusable(tmp_path: Path) -> None:
    with RawStore(tmp_path) as store:
        response = _record(store, b"<feed/>")
        response.body_path.unlink()
        with pytest.raises(UnusableBody, match=f"{response.body_path}.*unreadable"):
            response.read()


def test_an_intact_body_reads_back(tmp_path: Path) -> None:
    with RawStore(tmp_path) as store:
        response = _record(store, b"")  # even an empty one
        assert response.read() == b""


# -- a corrupt index: one clear error, on open and on use --------------------------------
def _filled(root: Path, answers: int = 2_000) -> Path:
    with RawStore(root) as store:
        for n in range(answers):
            response = store.record(
                api="hub", endpoint="models", url=f"u{n}", status=200, body=b"{}"
            )
            store.mark(response, "model", [f"org/model-{n}"], "ok")
    index = root / "responses" / "index.sqlite"
    assert not (root / "responses" / "index.sqlite-wal").exists()  # checkpointed on close
    return index


def _overwrite(index: Path, offset: int, size: int) -> None:
    with index.open("r+b") as handle:
        handle.seek(offset)
        handle.write(b"\xa5" * size)


def test_a_corrupt_index_is_refused_on_open_with_what_to_do(tmp_path: Path) -> None:
    index = _filled(tmp_path)
    _overwrite(index, offset=5 * 4096, size=2_000)  # a page of the answers, garbled
    with pytest.raises(RawStoreCorrupt) as raised:
        RawStore(tmp_path)
    message = str(raised.value)
    assert f"the raw store's index {index} is corrupt" in message
    assert f"mv {index} {index}.corrupt" in message and "--refresh" in message
    assert "stored bodies beside it stay" in message
    assert raised.value.index == index
    assert isinstance(raised.value, RawStoreError)


def test_an_index_that_is_not_a_database_is_refused_on_open(tmp_path: Path) -> None:
    index = _filled(tmp_path, answers=10)
    _overwrite(index, offset=0, size=100)  # the header
    with pytest.raises(RawStoreCorrupt, match="not a database"):
        RawStore(tmp_path)


def test_an_index_corrupted_while_open_is_refused_on_use(tmp_path: Path) -> None:
    index = _filled(tmp_path)
    store = RawStore(tmp_path)
    _overwrite(index, offset=2 * 4096, size=300 * 4096)
    # Another writer (a second process on the same store) makes the open connection read
    # the file again rather than its cache.
    other = sqlite3.connect(index)
    other.execute("PRAGMA user_version = 7")
    other.commit()
    other.close()
    with pytest.raises(RawStoreCorrupt, match="corrupt"):
        store.answer("hub", "model", "org/model-1999")
    with pytest.raises(RawStoreCorrupt):
        store.responses("hub")
    with pytest.raises(RawStoreCorrupt):
        store.mark(
            store.record(api="hub", endpoint="models", url="u", status=200, body=b"{}"),
            "model",
            ["org/new"],
            "ok",
        )
    store.close()


def test_moving_the_corrupt_index_aside_keeps_the_bodies_and_starts_afresh(tmp_path: Path) -> None:
    index = _filled(tmp_path, answers=10)
    bodies = sorted(p for p in (tmp_path / "responses" / "hub").rglob("*.body"))
    _overwrite(index, offset=0, size=100)
    index.rename(index.with_name("index.sqlite.corrupt"))
    with RawStore(tmp_path) as store:
        assert store.responses() == []
    assert sorted(p for p in (tmp_path / "responses" / "hub").rglob("*.body")) == bodies


# -- the stored answer a refresh policy may reuse -----------------------------------------
@pytest.mark.parametrize(
    ("policy", "age_hours", "outcome", "reused"),
    [
        (RefreshPolicy.TTL, 1, "ok", True),
        (RefreshPolicy.TTL, 30, "ok", False),
        (RefreshPolicy.TTL, 1, "not_found", True),
        (RefreshPolicy.TTL, 5, "not_found", False),  # a "not found" is kept for less
        (RefreshPolicy.REFRESH, 1, "ok", False),
        (RefreshPolicy.OFFLINE, 10_000, "ok", True),
        (RefreshPolicy.OFFLINE, 10_000, "not_found", True),
    ],
)
def test_reusable_answer(
    tmp_path: Path, policy: RefreshPolicy, age_hours: float, outcome: Outcome, reused: bool
) -> None:
    ttl = {"ok": 20 * 3600.0, "not_found": 4 * 3600.0}
    with RawStore(tmp_path) as store:
        response = _record(store, b"<feed/>", at=utc_now() - timedelta(hours=age_hours))
        store.mark(response, "paper", ["2409.12191"], outcome)
        answer = store.reusable_answer("arxiv", "paper", "2409.12191", policy, ttl.__getitem__)
        assert (answer is not None) is reused
        assert (
            store.reusable_answer("arxiv", "paper", "2502.13923", policy, ttl.__getitem__) is None
        )


def test_good_answers_newest_first_and_only_finds(tmp_path: Path) -> None:
    with RawStore(tmp_path) as store:
        ids = []
        for day, (body, outcome) in enumerate([(b"1", "ok"), (b"2", "not_found"), (b"3", "ok")]):
            response = _record(store, body, at=T0 + timedelta(days=day))
            store.mark(response, "paper", ["2409.12191"], outcome)  # type: ignore[arg-type]
            ids.append(response.response_id)
        same_time = _record(store, b"4", at=T0 + timedelta(days=2))
        store.mark(same_time, "paper", ["2409.12191"], "ok")
        found = [a.response.response_id for a in store.good_answers("arxiv", "paper", "2409.12191")]
        assert found == [same_time.response_id, ids[2], ids[0]]
        assert list(store.good_answers("arxiv", "paper", "2502.13923")) == []


# -- on an object store (moto's S3 server) ---------------------------------------------------
def test_an_s3_store_keeps_bodies_as_objects_and_answers_after_reopening(s3_bucket: str) -> None:
    raw = f"{s3_bucket}/raw"
    with RawStore(raw) as store:
        response = _record(store, b"<feed/>")
        store.mark(response, "paper", ["2409.12191"], "ok")
    remote = Remote.at(f"{raw}/responses")
    key = f"arxiv/2026-11-01/{response.body_sha256}.body"
    assert remote.read(key) == b"<feed/>"
    (segment,) = remote.children(INDEX_DIR)
    with RawStore(raw) as reopened:
        found = reopened.answer("arxiv", "paper", "2409.12191")
        assert found is not None and found.response.read() == b"<feed/>"
        assert found.outcome == "ok" and found.response.fetched_at == T0
        assert dict(found.response.headers) == {"content-type": "application/atom+xml"}
    # Reading changes nothing: no new segment without new rows.
    assert remote.children(INDEX_DIR) == [segment]


def test_two_s3_stores_at_once_lose_nothing_and_the_latest_answer_wins(s3_bucket: str) -> None:
    raw = f"{s3_bucket}/raw"
    first, second = RawStore(raw), RawStore(raw)  # two machines sharing one bucket
    rows = SEGMENT_ROWS + 5  # past one segment: written while the store is open

    def write(store: RawStore, who: str, at: datetime) -> None:
        for i in range(rows):
            response = store.record(
                api="hub",
                endpoint="model",
                url=f"u{i}",
                status=200,
                body=f"{who}{i}".encode(),
                fetched_at=at,
            )
            store.mark(response, "model", [f"o/{i}"], "ok")

    threads = [
        threading.Thread(target=write, args=(first, "a", T0)),
        threading.Thread(target=write, args=(second, "b", T0 + timedelta(hours=1))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first.close()
    second.close()
    with RawStore(raw) as merged:
        assert len(merged.responses("hub")) == 2 * rows
        for i in range(rows):
            found = merged.answer("hub", "model", f"o/{i}")
            assert found is not None and found.response.read() == f"b{i}".encode()
            older = [a.response.read() for a in merged.good_answers("hub", "model", f"o/{i}")]
            assert older == [f"b{i}".encode(), f"a{i}".encode()]


def test_an_altered_body_object_is_named_and_repaired_by_the_same_answer(s3_bucket: str) -> None:
    raw = f"{s3_bucket}/raw"
    remote = Remote.at(f"{raw}/responses")
    with RawStore(raw) as store:
        response = _record(store, b"<feed>good</feed>")
        key = response.body_path.as_posix()
        remote.put(key, b"<feed>edited</feed>")
        with pytest.raises(UnusableBody, match=rf"{raw}/responses/{key} does not match"):
            response.read()
        again = _record(store, b"<feed>good</feed>")
        assert again.read() == b"<feed>good</feed>"
    remote.delete(key)
    with RawStore(raw) as store:
        (gone, _) = store.responses()
        with pytest.raises(UnusableBody, match=rf"{raw}/responses/{key} unreadable"):
            gone.read()


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[:-7], id="cut short"),
        pytest.param(lambda data: data.replace(b"arxiv", b"arxib", 1), id="edited"),
    ],
)
def test_a_corrupt_index_segment_is_named_with_what_to_do(
    s3_bucket: str, damage: Callable[[bytes], bytes]
) -> None:
    raw = f"{s3_bucket}/raw"
    remote = Remote.at(f"{raw}/responses")
    with RawStore(raw) as store:
        store.mark(_record(store, b"<feed>1</feed>"), "paper", ["2409.12191"], "ok")
    (bad,) = remote.children(INDEX_DIR)
    with RawStore(raw) as store:
        store.mark(_record(store, b"<feed>2</feed>", at=T0 + timedelta(1)), "paper", ["2"], "ok")
    remote.put(f"{INDEX_DIR}/{bad}", damage(remote.read(f"{INDEX_DIR}/{bad}")))

    with pytest.raises(RawStoreCorrupt) as raised:
        RawStore(raw)
    message = str(raised.value)
    assert f"{raw}/responses/{INDEX_DIR}/{bad} is corrupt (sha256 " in message
    assert "Move it out of" in message and "\n" not in message

    remote.copy(f"{INDEX_DIR}/{bad}", f"index-corrupt/{bad}")
    remote.delete(f"{INDEX_DIR}/{bad}")
    with RawStore(raw) as store:  # the other segment and every body stay
        assert store.answer("arxiv", "paper", "2409.12191") is None
        kept = store.answer("arxiv", "paper", "2")
        assert kept is not None and kept.response.read() == b"<feed>2</feed>"
