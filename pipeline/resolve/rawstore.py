"""The raw-response store: every API answer kept as received, keyed by request.

Layout under the raw root (default `raw/`):

    responses/index.sqlite                      the index: responses, and the entities they answered
    responses/<api>/<YYYY-MM-DD>/<sha256>.body  one file per response body, bytes as received

Why SQLite for the index: several threads record answers at once, a run may be killed at
any moment, and tonight's run must find "the latest answer about entity X" without
reading every body. SQLite gives atomic, durable, concurrent-safe writes from the standard
library. Bodies are written to a temporary file and renamed before they are indexed, so
the index never points at a half-written body.

Two kinds of rows:
- `responses`: every response, errors included (auditable: what was asked, when, what came);
- `answers`: which entity a response answered, and how (`ok` or `not_found`). Only
  definite answers are recorded there: a 429, a 5xx or a garbled body answers nothing,
  so it is never reused as an answer.

Nothing read back is trusted blindly. A body whose bytes no longer hash to the sha256
recorded with it (edited, truncated, swapped, deleted) raises `UnusableBody`, and the
resolver asks again or falls back. A corrupt index raises `RawStoreCorrupt`, on open (a
`PRAGMA quick_check`) or on use, saying which file and what to do: the bodies are fine,
only the index must be moved aside.

On an object store (`--raw s3://bucket/prefix`) the index cannot be one SQLite file that
machines share: object stores have no byte-range writes and no locks, and two workers
would overwrite each other's copy. There the bodies are objects under the same keys
(content-addressed, so two writers of one body write the same bytes), and the index is
a set of immutable segments, `responses/index/<time>-<id>-<sha256>.jsonl`: each store
writes the rows it added as a new segment (every `SEGMENT_ROWS` responses and on close),
created with a conditional PUT so that no segment is ever overwritten. Opening the
store reads every segment, checks each against the sha256 in its name, and merges them
into a private SQLite cache, so every query below runs unchanged. `docs/storage.md`
says why this design.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pipeline import objectstore
from pipeline.atomic import write_atomically
from pipeline.config import RefreshPolicy
from pipeline.objectstore import PreconditionFailed, Remote
from pipeline.records import utc_now

Outcome = Literal["ok", "not_found"]

# Response headers worth keeping for an audit; request headers (which carry the token) never are.
_KEPT_HEADERS = (
    "content-type",
    "content-length",
    "location",
    "retry-after",
    "ratelimit",
    "ratelimit-policy",
    "x-error-code",
    "x-error-message",
    "etag",  # GitHub: the next night's If-None-Match
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    response_id INTEGER PRIMARY KEY,
    api TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    request_key TEXT NOT NULL,
    url TEXT NOT NULL,
    status INTEGER NOT NULL,
    fetched_at TEXT NOT NULL,
    elapsed_seconds REAL,
    body_path TEXT NOT NULL,
    body_sha256 TEXT NOT NULL,
    body_bytes INTEGER NOT NULL,
    headers_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_by_request ON responses (api, request_key, fetched_at);
CREATE TABLE IF NOT EXISTS answers (
    api TEXT NOT NULL,
    entity_kind TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    response_id INTEGER NOT NULL REFERENCES responses (response_id),
    outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'not_found')),
    answered_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS answers_by_entity
    ON answers (api, entity_kind, entity_id, answered_at);
"""


class RawStoreError(Exception):
    """The raw store cannot be opened or written; names the path."""


class RawStoreCorrupt(RawStoreError):
    """The index is damaged (SQLite says "malformed" or "not a database"). Every run would
    fail on it, so the message names the file and the way out."""

    def __init__(self, index: Path | str, detail: str, remedy: str | None = None) -> None:
        super().__init__(
            f"the raw store's index {index} is corrupt ({detail}). "
            + (
                remedy
                or f"Move it aside, with its -wal and -shm files if present (mv {index}"
                f" {index}.corrupt), and rerun with --refresh: a new index is created; the"
                " stored bodies beside it stay, but what they answered is forgotten and"
                " asked again."
            )
        )
        self.index = index


class UnusableBody(OSError):
    """A stored body that is missing, unreadable, or not the bytes that were stored (its
    sha256 differs): the answer it held cannot be trusted. An `OSError`, as any failure
    to read a file is, so that every reader handles it as one."""


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """One response as recorded."""

    response_id: int
    api: str
    endpoint: str
    url: str
    status: int
    fetched_at: datetime
    body_path: Path
    body_sha256: str
    body_bytes: int
    headers: Mapping[str, str]
    remote: RemoteBodies | None = None
    """The object store holding the body; `body_path` is then its key under it."""

    def read(self) -> bytes:
        """The body, exactly as received; `UnusableBody` when the file is gone or its
        bytes are not those recorded."""
        key = self.body_path.as_posix()
        where = self.remote.remote.url_of(key) if self.remote else self.body_path
        try:
            if self.remote is not None:
                body = self.remote.read(key, self.body_sha256)
            else:
                body = self.body_path.read_bytes()
        except OSError as exc:
            raise UnusableBody(f"stored body {where} unreadable: {exc}") from exc
        actual = hashlib.sha256(body).hexdigest()
        if actual != self.body_sha256:
            raise UnusableBody(
                f"stored body {where} does not match its record: sha256 {actual},"
                f" {len(body)} bytes; recorded {self.body_sha256}, {self.body_bytes} bytes"
            )
        return body


@dataclass(frozen=True)
class RemoteBodies:
    """The bodies of a raw store on an object store, read through a private cache by
    sha256: an arXiv batch body answers up to 100 papers, and is fetched once, not once
    per paper. Only bytes that hash to the recorded sha256 are cached, and the cache lives
    as long as the open store (one night)."""

    remote: Remote
    cache: Path

    def read(self, key: str, sha256: str) -> bytes:
        cached = self.cache / sha256
        try:
            data = cached.read_bytes()
        except OSError:
            pass
        else:
            if hashlib.sha256(data).hexdigest() == sha256:
                return data
        data = self.remote.read(key)
        if hashlib.sha256(data).hexdigest() == sha256:
            self.cache.mkdir(exist_ok=True)
            tmp = cached.with_name(f".{sha256}.{uuid.uuid4().hex}")
            tmp.write_bytes(data)
            os.replace(tmp, cached)
        return data


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """The latest definite answer about one entity."""

    response: StoredResponse
    outcome: Outcome
    answered_at: datetime

    def age_seconds(self, now: datetime | None = None) -> float:
        return ((now or utc_now()) - self.answered_at).total_seconds()


def request_key(method: str, url: str, body: bytes | str | None = None) -> str:
    """A stable key for a request: its method, URL and body (never its headers)."""
    digest = hashlib.sha256()
    digest.update(method.upper().encode())
    digest.update(b"\0")
    digest.update(url.encode())
    if body:
        digest.update(b"\0")
        digest.update(body if isinstance(body, bytes) else body.encode())
    return digest.hexdigest()


SEGMENT_ROWS = 50
"""Responses an object-store index segment holds at most: a run killed mid-way loses the
index rows of at most this many answers (their bodies are kept; they are asked again)."""

INDEX_DIR = "index"


class RawStore:
    """Thread-safe append-only store of API responses under `root/responses/` (a local
    folder or an object-store URL)."""

    def __init__(self, root: Path | str) -> None:
        where = objectstore.location(root)
        self.remote: Remote | None = None
        self._bodies: RemoteBodies | None = None
        self._cache: Path | None = None
        self._pending: list[dict[str, Any]] = []
        self._pending_responses = 0
        self._uids: dict[int, str] = {}
        """Response id in the cache -> its id in the segments (ids differ per cache)."""
        self._ids_by_uid: dict[str, int] = {}
        self._flush_lock = threading.Lock()
        if isinstance(where, str):
            try:
                self.remote = Remote.at(f"{where}/responses")
            except ValueError as exc:
                raise RawStoreError(f"cannot open the raw store at {where}: {exc}") from None
            # The merged index lives in a private cache; the store keeps only segments.
            self._cache = Path(tempfile.mkdtemp(prefix="rawstore-"))
            self.root = self._cache
            self.responses_dir = self._cache
            self.index_path = self._cache / "index.sqlite"
            self._bodies = RemoteBodies(self.remote, self._cache / "bodies")
        else:
            self.root = where
            self.responses_dir = self.root / "responses"
            self.index_path = self.responses_dir / "index.sqlite"
        self._lock = threading.Lock()
        try:
            self.responses_dir.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.index_path,
                timeout=30.0,
                check_same_thread=False,
                isolation_level=None,  # explicit transactions below
            )
        except (OSError, sqlite3.Error) as exc:
            raise RawStoreError(
                f"cannot open the raw store at {self.responses_dir}: {exc}"
            ) from exc
        try:
            with self._guard():
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._check_integrity()
                self._db.executescript(_SCHEMA)
        except RawStoreCorrupt:
            self._db.close()
            raise
        except sqlite3.Error as exc:
            self._db.close()
            raise RawStoreError(
                f"cannot open the raw store at {self.responses_dir}: {exc}"
            ) from exc
        if self.remote is not None:
            try:
                self._load_segments(self.remote)
            except BaseException:
                self._db.close()
                shutil.rmtree(self._cache or self.index_path.parent, ignore_errors=True)
                raise

    def _check_integrity(self) -> None:
        """`quick_check` on open: a damaged index is found before a run relies on it. It
        reads every page (it skips only the index-versus-table cross-check of the full
        `integrity_check`), so its cost grows with the index, not with the bodies."""
        problems = [row[0] for row in self._db.execute("PRAGMA quick_check(3)").fetchall()]
        if problems != ["ok"]:
            raise RawStoreCorrupt(self.index_path, "; ".join(map(str, problems)))

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """SQLite's corruption errors, wherever they surface, as `RawStoreCorrupt`."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if _is_corruption(exc):
                raise RawStoreCorrupt(self.index_path, str(exc)) from exc
            raise

    def close(self) -> None:
        try:
            if self.remote is not None:
                self.flush()
        finally:
            with self._lock:
                self._db.close()
            if self._cache is not None:
                shutil.rmtree(self._cache, ignore_errors=True)

    def __enter__(self) -> RawStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._guard():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _fetch(self, sql: str, params: Sequence[str | int]) -> list[Any]:
        with self._lock, self._guard():
            return self._db.execute(sql, params).fetchall()

    def record(
        self,
        *,
        api: str,
        endpoint: str,
        url: str,
        status: int,
        body: bytes,
        headers: Mapping[str, str] | None = None,
        method: str = "GET",
        request_body: bytes | str | None = None,
        elapsed_seconds: float | None = None,
        fetched_at: datetime | None = None,
    ) -> StoredResponse:
        """Keep one response (any status). The body file is complete before it is indexed."""
        fetched_at = fetched_at or utc_now()
        key = request_key(method, url, request_body)
        sha = hashlib.sha256(body).hexdigest()
        if self.remote is not None:
            body_path = Path(_safe_segment(api), fetched_at.strftime("%Y-%m-%d"), f"{sha}.body")
            _put_body(self.remote, body_path.as_posix(), body, sha)
        else:
            day_dir = self.responses_dir / _safe_segment(api) / fetched_at.strftime("%Y-%m-%d")
            day_dir.mkdir(parents=True, exist_ok=True)
            body_path = day_dir / f"{sha}.body"
            # Identical bodies are stored once; a file that no longer holds them (altered
            # or cut short on disk) is replaced, or it would spoil every answer sharing it.
            if not _holds(body_path, sha):
                write_atomically(body_path, body)
        kept = {
            name.lower(): value
            for name, value in (headers or {}).items()
            if name.lower() in _KEPT_HEADERS
        }
        relative = (
            body_path if self.remote is not None else body_path.relative_to(self.responses_dir)
        )
        row = (
            api,
            endpoint,
            key,
            url,
            status,
            fetched_at.isoformat(),
            elapsed_seconds,
            relative.as_posix(),
            sha,
            len(body),
            json.dumps(kept, sort_keys=True),
        )
        with self._transaction() as db:
            response_id = self._insert_response(db, row)
            if self.remote is not None:
                uid = uuid.uuid4().hex
                self._uids[response_id] = uid
                self._pending.append(
                    {"response": dict(zip(_RESPONSE_COLUMNS, row, strict=True)), "uid": uid}
                )
                self._pending_responses += 1
        if self._pending_responses >= SEGMENT_ROWS:
            self.flush()
        return StoredResponse(
            response_id=response_id,
            api=api,
            endpoint=endpoint,
            url=url,
            status=status,
            fetched_at=fetched_at,
            body_path=body_path,
            body_sha256=sha,
            body_bytes=len(body),
            headers=kept,
            remote=self._bodies,
        )

    @staticmethod
    def _insert_response(db: sqlite3.Connection, row: Sequence[object]) -> int:
        cursor = db.execute(
            f"INSERT INTO responses ({', '.join(_RESPONSE_COLUMNS)})"
            f" VALUES ({', '.join('?' * len(_RESPONSE_COLUMNS))})",
            row,
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def flush(self) -> None:
        """Write the index rows added since the last flush as one new segment (object
        stores only; a local index is durable as it is written)."""
        if self.remote is None:
            return
        with self._flush_lock:
            with self._lock:
                pending, self._pending = self._pending, []
                self._pending_responses = 0
            if not pending:
                return
            data = "".join(json.dumps(item, sort_keys=True) + "\n" for item in pending).encode()
            digest = hashlib.sha256(data).hexdigest()
            name = f"{utc_now():%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}-{digest}.jsonl"
            try:
                # A new name each time, created only if absent: no segment is ever replaced.
                self.remote.put(f"{INDEX_DIR}/{name}", data, if_absent=True)
            except BaseException:
                with self._lock:
                    self._pending[:0] = pending
                raise

    def _load_segments(self, remote: Remote) -> None:
        """Merge every index segment into the cache, oldest first (names start with their
        time), so response ids order answers as a local index would."""
        for name in remote.children(INDEX_DIR):
            if not name.endswith(".jsonl"):
                continue
            where = remote.url_of(f"{INDEX_DIR}/{name}")
            try:
                data = remote.read(f"{INDEX_DIR}/{name}")
            except FileNotFoundError:
                continue  # moved aside since it was listed
            except OSError as exc:
                raise RawStoreError(f"cannot read the raw store's index {where}: {exc}") from exc
            recorded = name.removesuffix(".jsonl").rsplit("-", 1)[-1]
            actual = hashlib.sha256(data).hexdigest()
            if actual != recorded:
                raise RawStoreCorrupt(
                    where, f"sha256 {actual}, named {recorded}", _segment_remedy(remote)
                )
            try:
                items = [json.loads(line) for line in data.decode().splitlines()]
                with self._transaction() as db:
                    for item in items:
                        self._load_item(db, item)
            except (ValueError, KeyError, TypeError, sqlite3.IntegrityError) as exc:
                raise RawStoreCorrupt(where, str(exc), _segment_remedy(remote)) from exc

    def _load_item(self, db: sqlite3.Connection, item: Mapping[str, Any]) -> None:
        if "response" in item:
            row = tuple(item["response"][column] for column in _RESPONSE_COLUMNS)
            loaded = self._insert_response(db, row)
            self._uids[loaded] = item["uid"]
            self._ids_by_uid[item["uid"]] = loaded
            return
        answer = item["answer"]
        response_id = self._ids_by_uid.get(answer["uid"])
        if response_id is None:
            return  # its response's segment was moved aside: nothing to answer with
        db.execute(
            "INSERT INTO answers (api, entity_kind, entity_id, response_id, outcome,"
            " answered_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                answer["api"],
                answer["entity_kind"],
                answer["entity_id"],
                response_id,
                answer["outcome"],
                answer["answered_at"],
            ),
        )

    def mark(
        self,
        response: StoredResponse,
        entity_kind: str,
        entity_ids: Iterable[str],
        outcome: Outcome,
    ) -> None:
        """Record that `response` definitely answered these entities (found or not found)."""
        answered_at = response.fetched_at.isoformat()
        rows = [
            (response.api, entity_kind, entity_id, response.response_id, outcome, answered_at)
            for entity_id in entity_ids
        ]
        if not rows:
            return
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO answers (api, entity_kind, entity_id, response_id, outcome,"
                " answered_at) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            if self.remote is not None:
                uid = self._uids[response.response_id]
                self._pending.extend(
                    {
                        "answer": {
                            "uid": uid,
                            "api": api,
                            "entity_kind": kind,
                            "entity_id": entity_id,
                            "outcome": what,
                            "answered_at": when,
                        }
                    }
                    for api, kind, entity_id, _, what, when in rows
                )

    def answer(
        self, api: str, entity_kind: str, entity_id: str, *, outcome: Outcome | None = None
    ) -> StoredAnswer | None:
        """The latest definite answer about an entity (optionally only of one outcome)."""
        sql = (
            "SELECT a.outcome, a.answered_at, r.* FROM answers a"
            " JOIN responses r USING (response_id)"
            " WHERE a.api = ? AND a.entity_kind = ? AND a.entity_id = ?"
        )
        params: list[str] = [api, entity_kind, entity_id]
        if outcome is not None:
            sql += " AND a.outcome = ?"
            params.append(outcome)
        sql += " ORDER BY a.answered_at DESC, a.response_id DESC LIMIT 1"
        rows = self._fetch(sql, params)
        return self._answer_from_row(rows[0]) if rows else None

    def reusable_answer(
        self,
        api: str,
        entity_kind: str,
        entity_id: str,
        policy: RefreshPolicy,
        ttl_seconds: Callable[[Outcome], float],
    ) -> StoredAnswer | None:
        """The stored answer a run with this refresh policy may reuse instead of asking:
        none under `refresh`, any under `offline`, under `ttl` one younger than the
        time-to-live of its outcome (a "not found" may be kept for less than a find)."""
        if policy is RefreshPolicy.REFRESH:
            return None
        answer = self.answer(api, entity_kind, entity_id)
        if answer is None or policy is RefreshPolicy.OFFLINE:
            return answer
        return answer if answer.age_seconds() < ttl_seconds(answer.outcome) else None

    def last_good(self, api: str, entity_kind: str, entity_id: str) -> StoredAnswer | None:
        """The latest answer that found the entity: what a failed lookup falls back on."""
        return self.answer(api, entity_kind, entity_id, outcome="ok")

    def good_answers(self, api: str, entity_kind: str, entity_id: str) -> Iterator[StoredAnswer]:
        """Every answer that found the entity, newest first (read lazily: a fallback stops
        at the first that is still usable)."""
        before = (datetime.max.isoformat(), 0)
        while True:
            rows = self._fetch(
                "SELECT a.outcome, a.answered_at, r.* FROM answers a"
                " JOIN responses r USING (response_id)"
                " WHERE a.api = ? AND a.entity_kind = ? AND a.entity_id = ? AND a.outcome = 'ok'"
                " AND (a.answered_at, a.response_id) < (?, ?)"
                " ORDER BY a.answered_at DESC, a.response_id DESC LIMIT 1",
                [api, entity_kind, entity_id, *before],
            )
            if not rows:
                return
            answer = self._answer_from_row(rows[0])
            yield answer
            before = (rows[0][1], answer.response.response_id)

    def responses(self, api: str | None = None) -> list[StoredResponse]:
        """Every recorded response (optionally of one API), oldest first: for audits and tests."""
        sql = "SELECT * FROM responses"
        params: tuple[str, ...] = ()
        if api is not None:
            sql += " WHERE api = ?"
            params = (api,)
        rows = self._fetch(sql + " ORDER BY response_id", params)
        return [self._response_from_row(list(row)) for row in rows]

    def _answer_from_row(self, row: Sequence[Any]) -> StoredAnswer:
        outcome, answered_at, *response_row = row
        return StoredAnswer(
            response=self._response_from_row(response_row),
            outcome=outcome,
            answered_at=datetime.fromisoformat(answered_at),
        )

    def _response_from_row(self, row: list[object]) -> StoredResponse:
        (
            response_id,
            api,
            endpoint,
            _key,
            url,
            status,
            fetched_at,
            _elapsed,
            body_path,
            sha,
            size,
            headers_json,
        ) = row
        return StoredResponse(
            response_id=int(str(response_id)),
            api=str(api),
            endpoint=str(endpoint),
            url=str(url),
            status=int(str(status)),
            fetched_at=datetime.fromisoformat(str(fetched_at)),
            body_path=(
                Path(str(body_path)) if self.remote else self.responses_dir / str(body_path)
            ),
            body_sha256=str(sha),
            body_bytes=int(str(size)),
            headers=json.loads(str(headers_json)),
            remote=self._bodies,
        )


_RESPONSE_COLUMNS = (
    "api",
    "endpoint",
    "request_key",
    "url",
    "status",
    "fetched_at",
    "elapsed_seconds",
    "body_path",
    "body_sha256",
    "body_bytes",
    "headers_json",
)


def _segment_remedy(remote: Remote) -> str:
    return (
        f"Move it out of {remote.url_of(INDEX_DIR)}/ (e.g. to"
        f" {remote.url_of('index-corrupt')}/) and rerun: the other segments and every"
        " stored body stay; only what this segment recorded is asked again."
    )


def _put_body(remote: Remote, key: str, body: bytes, sha256: str) -> None:
    """Store a body once; an object under its key that no longer holds it (altered) is
    replaced, as a local file is."""
    try:
        remote.put(key, body, if_absent=True)
        return
    except PreconditionFailed:
        pass
    try:
        if hashlib.sha256(remote.read(key)).hexdigest() == sha256:
            return
    except OSError:
        pass
    remote.put(key, body)


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    # Primary result codes (extended codes carry more in the high bits).
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
    return "malformed" in str(exc) or "not a database" in str(exc)


def _safe_segment(name: str) -> str:
    """A name usable as one path segment; the store only uses its own fixed API names."""
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"not a safe path segment: {name!r}")
    return name


def _holds(path: Path, sha256: str) -> bool:
    """Whether `path` exists and holds the bytes whose digest is `sha256`."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    except OSError:
        return False
