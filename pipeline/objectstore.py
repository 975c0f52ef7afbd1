"""Where a night's outputs live: a local folder, or a prefix of an object store.

`--out` and `--raw` take a local path (as always) or an fsspec URL: `s3://bucket/prefix`,
`gs://bucket/prefix`, ... `file:///path` is a local path and is handled exactly as one.
Credentials come from each store's own environment (`AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL` for S3-compatible stores, ...): the pipeline
passes none.

Object stores have no rename and no flock, so what is atomic on a local disk is built
here from what they do have: an object appears whole or not at all, and S3 (since 2024)
takes conditional PUTs: `If-None-Match: *` (create only if absent) and `If-Match: <etag>`
(replace only the version read). Those two make the manifest commit and the lock
single-writer (`docs/storage.md` says how and why). On a store whose fsspec driver offers
no conditional write the same calls check first and then write: correct with one writer,
which the lock is there to ensure, but not proof against two.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config import Settings

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

log = logging.getLogger(__name__)

UPLOAD_CHUNK_BYTES = 50 * 2**20
"""Part size of a multipart upload (s3fs's default), which S3 uses for an object of twice
this or more. Conditional writes never go that way (see `Remote.put`)."""

CONDITIONAL_PUT_MAX_BYTES = 5 * 2**30
"""The largest object one S3 PUT takes: a conditional write is always one PUT, since a
multipart upload's first request takes no condition. What is written conditionally is
far smaller: the manifest and the lock (kilobytes), the raw store's response bodies."""


@dataclass(frozen=True)
class Listed:
    """What one listing says of an object."""

    token: str
    size_bytes: int | None
    modified: datetime | None


class PreconditionFailed(Exception):
    """A conditional write lost: the object exists (create) or changed (replace)."""


def is_remote(location: str | Path) -> bool:
    """Whether `location` is an object-store URL (a `file://` URL is a local path)."""
    if isinstance(location, Path):
        return False
    scheme, sep, _ = location.partition("://")
    return bool(sep) and scheme.isidentifier() and scheme != "file"


NOT_STORES = frozenset({"http", "https", "zip", "tar", "libarchive", "github", "git", "reference"})
"""fsspec schemes that name no place to keep snapshots: read-only (an archive, a git tree)
or, for HTTP, neither listable nor writable as a prefix. Refused for `--out`/`--raw`,
rather than read as an empty store ("no snapshots")."""


def checked_location(value: str | Path) -> Path | str:
    """`location(value)`, with an object-store URL checked: a scheme that can hold
    snapshots and an installed fsspec driver for it; ValueError naming the URL otherwise."""
    where = location(value)
    if isinstance(where, str):
        Remote.at(where)
    return where


def local_path(location: str | Path) -> Path:
    """A local location as a Path (`file:///x` -> `/x`)."""
    if isinstance(location, Path):
        return location
    return Path(location.removeprefix("file://"))


def location(value: str | Path) -> Path | str:
    """What a `--out`/`--raw` value names: a local Path, or an object-store URL (str)."""
    return value.rstrip("/") if isinstance(value, str) and is_remote(value) else local_path(value)


@dataclass(frozen=True)
class Remote:
    """A prefix of an object store (its URL without a trailing slash)."""

    url: str
    fs: AbstractFileSystem
    root: str
    """The prefix as the filesystem names it (no protocol)."""

    @classmethod
    def at(cls, url: str) -> Remote:
        from fsspec.core import url_to_fs  # only for object stores: `import pipeline` stays light

        url = url.rstrip("/")
        scheme = url.partition("://")[0]
        if scheme in NOT_STORES:
            raise ValueError(
                f"{url}: {scheme}:// cannot hold snapshots (read-only, or not listable); "
                "give a folder or an object-store URL such as s3://bucket/prefix"
            )
        try:
            # No listings cache: another machine may have written since the last look.
            fs, root = url_to_fs(url, use_listings_cache=False)
        except (ImportError, ValueError) as exc:
            raise ValueError(f"{url}: no object store for this URL ({exc})") from None
        return cls(url=url, fs=fs, root=root.rstrip("/"))

    def path(self, key: str) -> str:
        return f"{self.root}/{key}" if key else self.root

    def url_of(self, key: str) -> str:
        return f"{self.url}/{key}" if key else self.url

    @property
    def _s3(self) -> bool:
        protocol = self.fs.protocol
        return bool({"s3", "s3a"} & set((protocol,) if isinstance(protocol, str) else protocol))

    def read(self, key: str) -> bytes:
        """The object's bytes; FileNotFoundError when there is none."""
        data: bytes = self.fs.cat_file(self.path(key))
        return data

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and the version token a conditional replace needs, or None."""
        try:
            info = self.fs.info(self.path(key))
            data = self.read(key)
        except FileNotFoundError:
            return None
        token = _token(info)
        if self._s3:
            # The bytes and the ETag must be of one version: read again if it changed between.
            again = _token(self.fs.info(self.path(key)))
            if again != token:
                return self.read_versioned(key)
        return data, token

    def put(
        self, key: str, data: bytes, *, if_absent: bool = False, if_match: str | None = None
    ) -> str:
        """Write the object whole; with `if_absent` only if there is none, with `if_match`
        only if it is still the version read. Returns the new version token;
        `PreconditionFailed` when the condition does not hold."""
        path = self.path(key)
        if self._s3:
            kwargs: dict[str, Any] = {}
            if if_absent:
                kwargs["IfNoneMatch"] = "*"
            if if_match is not None:
                kwargs["IfMatch"] = if_match
            if not kwargs:
                answer = self.fs.pipe_file(path, data, chunksize=UPLOAD_CHUNK_BYTES)
                return str(answer.get("ETag", "")) if isinstance(answer, Mapping) else ""
            if len(data) > CONDITIONAL_PUT_MAX_BYTES:
                raise ValueError(
                    f"{self.url_of(key)}: {len(data)} bytes is more than one conditional PUT "
                    f"takes ({CONDITIONAL_PUT_MAX_BYTES})"
                )
            bucket, name, _ = self.fs.split_path(path)
            try:
                answer = self.fs.call_s3("put_object", Bucket=bucket, Key=name, Body=data, **kwargs)
            except OSError as exc:
                if _precondition(exc):
                    raise PreconditionFailed(f"{self.url_of(key)}: {exc}") from exc
                raise
            finally:
                self.fs.invalidate_cache(path)
            return str(answer.get("ETag", "")) if isinstance(answer, Mapping) else ""
        return self._put_checked(key, data, if_absent=if_absent, if_match=if_match)

    def _put_checked(self, key: str, data: bytes, *, if_absent: bool, if_match: str | None) -> str:
        path = self.path(key)
        if if_absent or if_match is not None:
            try:
                current: str | None = _token(self.fs.info(path))
            except FileNotFoundError:
                current = None
            if if_absent and current is not None:
                raise PreconditionFailed(f"{self.url_of(key)} exists")
            if if_match is not None and current != if_match:
                raise PreconditionFailed(f"{self.url_of(key)} changed")
        self.fs.pipe_file(path, data)
        return _token(self.fs.info(path))

    def delete_if_match(self, key: str, token: str) -> bool:
        """Delete the object only if it is still the version `token`; False when it is not
        (or is gone). On S3 one conditional DELETE (`If-Match`, which S3 takes since 2025),
        so a version written since is never deleted; on a store without conditional
        deletes a check then a delete, which a writer in between can lose."""
        path = self.path(key)
        if self._s3:
            bucket, name, _ = self.fs.split_path(path)
            try:
                self.fs.call_s3("delete_object", Bucket=bucket, Key=name, IfMatch=token)
                return True
            except FileNotFoundError:
                return False
            except OSError as exc:
                if _precondition(exc):
                    return False
                raise
        if self.token(key) != token:
            return False
        self.delete(key)
        return True

    def delete(self, key: str, *, recursive: bool = False) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self.path(key), recursive=recursive)

    def children(self, key: str) -> list[str]:
        """Names directly under `key/` (objects and pseudo-folders); [] when none."""
        try:
            entries = self.fs.ls(self.path(key), detail=False, refresh=True)
        except FileNotFoundError:
            return []
        prefix = self.path(key).rstrip("/") + "/"
        return sorted(
            {str(e).rstrip("/").removeprefix(prefix) for e in entries if str(e) != prefix[:-1]}
        )

    def listing(self) -> dict[str, Listed]:
        """Every object under the prefix (its key relative to it) -> its version token,
        size and time of writing, in one listing: what `token` per object would ask one
        request each for."""
        found = self.fs.find(self.root, detail=True)
        prefix = self.root + "/"
        return {
            str(name).removeprefix(prefix): Listed(_token(info), _size(info), _modified(info))
            for name, info in found.items()
            if str(name).startswith(prefix) and info.get("type") != "directory"
        }

    def token(self, key: str) -> str | None:
        try:
            return _token(self.fs.info(self.path(key)))
        except FileNotFoundError:
            return None

    def copy(self, source: str, target: str) -> None:
        """Server-side copy where the store has one (S3 does)."""
        self.fs.copy(self.path(source), self.path(target))


def _token(info: Mapping[str, Any]) -> str:
    for name in ("ETag", "etag", "md5Hash", "generation"):
        if info.get(name):
            return str(info[name])
    return (
        f"{info.get('size')}:{info.get('mtime') or info.get('LastModified') or info.get('created')}"
    )


def _size(info: Mapping[str, Any]) -> int | None:
    size = info.get("size", info.get("Size"))
    return size if isinstance(size, int) else None


def _modified(info: Mapping[str, Any]) -> datetime | None:
    for name in ("LastModified", "mtime", "updated", "last_modified"):
        value = info.get(name)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                parsed = datetime.fromisoformat(value)
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _precondition(exc: OSError) -> bool:
    if isinstance(exc, FileExistsError):
        return True
    cause = exc.__cause__
    response = getattr(cause, "response", None)
    if isinstance(response, Mapping):
        code = str(response.get("Error", {}).get("Code", ""))
        if code in ("PreconditionFailed", "ConditionalRequestConflict"):
            return True
    return exc.errno == errno.EINVAL and "pre-condition" in str(exc)


class LockHeld(Exception):
    """Another live writer holds the lock; `holder` is what it wrote there."""

    def __init__(self, holder: Mapping[str, Any] | None) -> None:
        super().__init__("held")
        self.holder = dict(holder or {})


class Lease:
    """An exclusive lock as one object: created with a conditional PUT (only one creator
    wins), renewed by its holder every third of the lease (a conditional replace of the
    version it wrote), deleted at release. A lock whose holder is gone is taken over:
    at once when the holder was a process of this machine (same boot id and pid
    namespace, `machine_id`) that no longer exists (as a local flock is released at
    exit), else once it has not been renewed for the lease."""

    def __init__(self, store: Remote, key: str, run_id: str, lease_seconds: float) -> None:
        self.store = store
        self.key = key
        self.lease_seconds = lease_seconds
        self.holder: dict[str, Any] = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "machine": machine_id(),
            "run_id": run_id,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self._token: str | None = None
        self._lost: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _body(self) -> bytes:
        renewed = {"renewed_at": datetime.now(UTC).isoformat(), "lease_seconds": self.lease_seconds}
        return json.dumps({**self.holder, **renewed}).encode()

    def acquire(self) -> None:
        """Take the lock, or raise `LockHeld` naming its live holder."""
        for _ in range(3):
            try:
                self._token = self.store.put(self.key, self._body(), if_absent=True)
                break
            except PreconditionFailed:
                pass
            found = self.store.read_versioned(self.key)
            if found is None:
                continue  # released in between: try again
            holder = _parse_holder(found[0])
            if not _stale(holder):
                raise LockHeld(holder)
            try:
                self._token = self.store.put(self.key, self._body(), if_match=found[1])
                break
            except PreconditionFailed:
                continue  # another taker was faster, or the holder renewed: look again
        else:
            found = self.store.read_versioned(self.key)
            raise LockHeld(_parse_holder(found[0]) if found else None)
        self._renewer = threading.Thread(target=self._renew, name="lock-lease", daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                self._token = self.store.put(self.key, self._body(), if_match=self._token)
            except PreconditionFailed:
                self._lost = f"the lock {self.store.url_of(self.key)} was taken over"
                return
            except Exception as exc:  # retried at the next beat: the lease leaves time for it
                log.warning("renewing the lock %s failed: %s", self.store.url_of(self.key), exc)

    def check(self) -> None:
        """Raise if the lock was taken over (this holder was thought gone)."""
        if self._lost:
            raise LockHeld({"lost": self._lost})

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        if self._lost or self._token is None:
            return
        # Only the version this holder wrote: a lock taken over since is not ours to delete.
        self.store.delete_if_match(self.key, self._token)


def _parse_holder(data: bytes) -> dict[str, Any]:
    try:
        holder = json.loads(data)
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def machine_id() -> str | None:
    """Who can tell whether a pid is alive: this boot of this kernel (`boot_id`, new at
    every boot and different on every machine) and this pid namespace (containers on one
    kernel each number their processes from 1). None where Linux's /proc does not say.
    A hostname is no such proof: containers on different machines share hostnames, and
    their low pids."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{boot}/{namespace}"


def _stale(holder: Mapping[str, Any]) -> bool:
    pid = holder.get("pid")
    here = machine_id()
    same_machine = here is not None and holder.get("machine") == here
    if same_machine and isinstance(pid, int) and not _alive(pid):
        return True
    try:
        renewed = datetime.fromisoformat(str(holder["renewed_at"]))
        lease = float(holder.get("lease_seconds", Settings.lock_lease_seconds))
    except (KeyError, ValueError, TypeError):
        return True  # not a lock this pipeline wrote whole: nobody renews it
    return (datetime.now(UTC) - renewed).total_seconds() > lease


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
