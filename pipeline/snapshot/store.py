"""The output directory: lock, atomic publish, manifest, Hive views, garbage collection.

Layout of an output directory (`docs/data-contract.md` is the reference)::

    _snapshots.parquet                      the manifest: one row per run; the commit point
    <table>/snapshot_date=YYYY-MM-DD/part-0.parquet
                                            Hive view of every published night, for tools
                                            that read a directory (pandas, DuckDB, Polars)
    .runs/<run_id>/<table>.parquet          the published files themselves, immutable;
                                            each Hive partition file is a hard link to one
    .staging/                               work in progress; whatever is there when a
                                            run starts was left by a killed run
    .lock                                   flock(2) lock; holds the holder's pid and run

Why the `.runs` indirection: a night is published by appending its manifest row, one
atomic `os.replace` of `_snapshots.parquet`. Data files are written before that and
never modified after, so whatever the manifest names is complete, and all tables of a
night come from the same run even while a rerun of that night is being written. The
Hive partitions are updated after the commit (one atomic rename each) and repaired by
the next run if a run dies in between; `read.load` reads what the manifest names, so it
never depends on them. Every file is created with mode 0666 less the umask, as `open`
creates files: the manifest is readable by whoever can read the tables.

On an object store (`--out s3://bucket/prefix`, see `pipeline.objectstore`) the layout is
the same, without `.staging` (an object appears whole or not at all) and with copies for
the Hive views (no hard links). The commit point is the same manifest object, replaced
with a conditional PUT on the version read under the lock, so that even a writer that
lost its lock without knowing cannot overwrite another's commit; `.lock` is an object
with a lease (`docs/storage.md`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline import objectstore
from pipeline.config import Settings, __version__
from pipeline.objectstore import (
    Lease,
    Listed,
    LockHeld,
    PreconditionFailed,
    Remote,
)
from pipeline.records import (
    STATUSES,
    ApiStats,
    Document,
    as_utc,
    utc_now,
)
from pipeline.snapshot.schemas import (
    MANIFEST_SCHEMA,
    SCHEMA_VERSION,
    TABLE_KEYS,
    TABLE_SCHEMAS,
)

log = logging.getLogger(__name__)

Row = dict[str, Any]

ManifestStatus = Literal["ok", "partial", "failed"]
RUN_STATUSES: tuple[ManifestStatus, ...] = ("ok", "partial", "failed")

MANIFEST_FILE = "_snapshots.parquet"
PART_FILE = "part-0.parquet"
RUNS_DIR = ".runs"
STAGING_DIR = ".staging"
LOCK_FILE = ".lock"
PARTITION_PREFIX = "snapshot_date="

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class SnapshotError(Exception):
    """A snapshot cannot be published or read; the message says which and why."""


class SnapshotIntegrityError(SnapshotError):
    """Tables that break their declared schema or key: a bug upstream; nothing is published."""


class SnapshotLockedError(SnapshotError):
    """Another run holds the output directory's lock."""

    def __init__(
        self, out_dir: Path | str, holder: Mapping[str, Any] | None, *, lease: Lease | None = None
    ) -> None:
        self.out_dir = out_dir
        self.holder = dict(holder or {})
        if "lost" in self.holder:
            who = f"another run: {self.holder['lost']}"
        elif self.holder:
            who = (
                f"run {self.holder.get('run_id', '?')} (pid {self.holder.get('pid', '?')}"
                f" on {self.holder.get('host', '?')}, since {self.holder.get('started_at', '?')})"
            )
        else:
            who = "a run that has not yet said who it is"
        if lease is None:
            super().__init__(
                f"{out_dir} is being written by {who}; wait for it to finish. The lock is "
                f"released when that process exits, so there is nothing to clean up by hand."
            )
            return
        super().__init__(
            f"{out_dir} is being written by {who} (lock {lease.store.url_of(lease.key)}); "
            f"wait for it to finish. The lock is released when that run ends, and taken over "
            f"once its holder has not renewed it for {lease.lease_seconds:.0f} s (at once if "
            f"it was a process of this machine that is gone): nothing to clean up by hand."
        )


@dataclass(frozen=True)
class ManifestEntry:
    """What the manifest records about one run (row counts are added by `publish`)."""

    run_id: str
    """Unique per run; letters, digits, `.`, `_`, `-` (it names a directory)."""
    snapshot_date: date
    started_at: datetime
    status: str = "ok"
    """ok | partial | failed: how the run went (`publish` accepts all three: a run whose
    resolvers failed still publishes its links and statuses)."""
    status_reason: str | None = None
    flow_run_id: str | None = None
    finished_at: datetime | None = None
    """Defaults to the time the manifest row is written."""
    documents: Sequence[Document] = ()
    api_stats: Sequence[ApiStats] = ()
    arxiv_api_url: str | None = None
    hf_endpoint: str | None = None


@dataclass(frozen=True)
class PublishedSnapshot:
    """One night as the manifest publishes it."""

    run_id: str
    snapshot_date: date
    status: str
    finished_at: datetime
    files: dict[str, Path | str]
    """Table name -> its immutable Parquet file (a URL on an object store)."""
    rows: dict[str, int]


def check_tables(tables: Mapping[str, pa.Table]) -> None:
    """Every declared table present, with its exact schema, no null where the schema
    forbids one, valid statuses and unique keys; `SnapshotIntegrityError` otherwise."""
    missing = sorted(set(TABLE_SCHEMAS) - set(tables))
    unknown = sorted(set(tables) - set(TABLE_SCHEMAS))
    if missing or unknown:
        raise SnapshotIntegrityError(f"tables missing: {missing}; tables not declared: {unknown}")
    for name, schema in TABLE_SCHEMAS.items():
        table = tables[name]
        if not table.schema.equals(schema, check_metadata=False):
            raise SnapshotIntegrityError(
                f"table {name}: schema differs from the declared one:\n"
                f"got:\n{table.schema.to_string(show_schema_metadata=False)}\n"
                f"declared:\n{schema.to_string(show_schema_metadata=False)}"
            )
        nulls = _null_counts(table)
        for f in schema:
            if not f.nullable and nulls[f.name]:
                raise SnapshotIntegrityError(
                    f"table {name}: {nulls[f.name]} nulls in column {f.name}"
                )
        if "status" in schema.names:
            bad = set(table.column("status").to_pylist()) - set(STATUSES)
            if bad:
                raise SnapshotIntegrityError(f"table {name}: unknown statuses {sorted(bad)}")
        _check_keys(name, table)


def _null_counts(table: pa.Table) -> dict[str, int]:
    """Nulls per column, in one pass over the batches (a table may be read from disk)."""
    counts = dict.fromkeys(table.schema.names, 0)
    for batch in table.to_batches():
        for column_name, column in zip(batch.schema.names, batch.columns, strict=True):
            counts[column_name] += column.null_count
    return counts


def _check_keys(name: str, table: pa.Table) -> None:
    if not isinstance(table, pa.Table):
        _check_key_order(name, table)
        return
    # Counted by Arrow, not as Python tuples: the links table has a row per link.
    keys = list(TABLE_KEYS[name])
    counts = table.select(keys).unify_dictionaries().group_by(keys).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts.column("count_all"), 1))
    duplicates = [
        tuple(row[k] for k in keys) for row in repeated.select(keys).slice(0, 5).to_pylist()
    ]
    if duplicates:
        raise SnapshotIntegrityError(
            f"table {name}: key {TABLE_KEYS[name]} not unique; "
            f"{pc.sum(repeated.column('count_all')).as_py() - repeated.num_rows} duplicates,"
            f" first: {duplicates}"
        )


def _check_key_order(name: str, table: Any) -> None:
    """A table given as batches read from disk (the links of a large night: `LinksFile`)
    is checked in one pass, a batch in memory at a time: its keys must be strictly
    increasing, which makes them unique (such a table is written in key order)."""
    keys = TABLE_KEYS[name]
    last: tuple[Any, ...] | None = None
    for batch in table.to_batches():
        for key in zip(*(batch.column(k).to_pylist() for k in keys), strict=True):
            if last is not None and not last < key:
                raise SnapshotIntegrityError(
                    f"table {name}: key {keys} not unique or not in order: {key} after {last}"
                )
            last = key


_held_lock = threading.Lock()
_held: dict[Path | str, int] = {}
"""Output directories whose lock this process holds -> the holding thread."""


@contextlib.contextmanager
def snapshot_lock(out_dir: Path | str, run_id: str) -> Iterator[None]:
    """Hold the output directory's exclusive lock, or raise `SnapshotLockedError` at once
    naming the holder. `publish` and `record_failed_run` take it themselves unless this
    thread already holds it, so a run holds it from its first lookup to its publish."""
    where = objectstore.location(out_dir)
    if isinstance(where, str):
        with _remote_lock(Remote.at(where), run_id):
            yield
        return
    out = where
    out.mkdir(parents=True, exist_ok=True)
    key = out.resolve()
    fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SnapshotLockedError(out, _lock_holder(fd)) from None
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "run_id": run_id,
            "started_at": utc_now().isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        with _held_lock:
            _held[key] = threading.get_ident()
        try:
            yield
        finally:
            with _held_lock:
                _held.pop(key, None)
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _lock_holder(fd: int) -> dict[str, Any] | None:
    try:
        text = os.pread(fd, 4096, 0).decode()
        holder = json.loads(text) if text else None
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


@contextlib.contextmanager
def _remote_lock(store: Remote, run_id: str) -> Iterator[None]:
    lease = Lease(store, LOCK_FILE, run_id, Settings.from_env().lock_lease_seconds)
    try:
        lease.acquire()
    except LockHeld as held:
        raise SnapshotLockedError(store.url, held.holder, lease=lease) from None
    with _held_lock:
        _held[store.url] = threading.get_ident()
        _leases[store.url] = lease
    try:
        yield
    finally:
        with _held_lock:
            _held.pop(store.url, None)
            _leases.pop(store.url, None)
        lease.release()


_leases: dict[str, Lease] = {}
"""Object-store locks this process holds: the commit checks its lease was not lost."""


def _check_lease(store: Remote) -> None:
    with _held_lock:
        lease = _leases.get(store.url)
    if lease is not None:
        try:
            lease.check()
        except LockHeld as lost:
            raise SnapshotLockedError(store.url, lost.holder, lease=lease) from None


@contextlib.contextmanager
def _locked(out: Path | Remote, run_id: str) -> Iterator[None]:
    key = out.url if isinstance(out, Remote) else out.resolve()
    with _held_lock:
        mine = _held.get(key) == threading.get_ident()
    if mine:
        yield
        return
    with snapshot_lock(out.url if isinstance(out, Remote) else out, run_id):
        yield


def publish(
    out_dir: Path | str, tables: Mapping[str, pa.Table], manifest_entry: ManifestEntry
) -> PublishedSnapshot:
    """Publish one snapshot: write every table, then commit it with one manifest row.

    A rerun of a night replaces that night. Readers see the previous state or the new
    one, never a mix; a run killed at any moment leaves every published snapshot as it
    was (the next publish clears what it left). Raises `SnapshotIntegrityError` before
    writing anything if a table breaks its schema or key, `SnapshotLockedError` if
    another run holds the lock.
    """
    entry = manifest_entry
    _check_entry(entry)
    check_tables(tables)
    rows = {name: tables[name].num_rows for name in TABLE_SCHEMAS}
    finished_at = as_utc(entry.finished_at, "finished_at") or utc_now()
    row = _manifest_row(entry, finished_at, published=True, rows=rows)
    where = objectstore.location(out_dir)
    if isinstance(where, str):
        store = Remote.at(where)
        with _locked(store, entry.run_id):
            files = _publish_remote(store, tables, entry.run_id, row)
        return PublishedSnapshot(
            run_id=entry.run_id,
            snapshot_date=entry.snapshot_date,
            status=entry.status,
            finished_at=finished_at,
            files=files,
            rows=rows,
        )
    out = where
    with _locked(out, entry.run_id):
        manifest = _manifest_for_update(out)
        if entry.run_id in manifest.column("run_id").to_pylist():
            raise SnapshotError(f"run {entry.run_id} is already in {out / MANIFEST_FILE}")
        _recover(out, manifest)
        staged = out / STAGING_DIR / entry.run_id
        final = out / RUNS_DIR / entry.run_id
        try:
            staged.mkdir(parents=True)
            for name in TABLE_SCHEMAS:
                _write_parquet(tables[name], staged / f"{name}.parquet")
            _fsync_dir(staged)
            final.parent.mkdir(exist_ok=True)
            os.replace(staged, final)
            _fsync_dir(final.parent)
            manifest = _append(manifest, row)
            _write_manifest(out, manifest)  # the commit point
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            _discard_unless_committed(out, entry.run_id)
            raise
        try:
            _sync_views(out, manifest)
            _collect_garbage(out, manifest)
        except OSError as exc:
            # Published all the same: `load` reads the manifest; the next run repairs.
            log.warning("snapshot %s published; Hive view not updated: %s", entry.run_id, exc)
    return PublishedSnapshot(
        run_id=entry.run_id,
        snapshot_date=entry.snapshot_date,
        status=entry.status,
        finished_at=finished_at,
        files={name: final / f"{name}.parquet" for name in TABLE_SCHEMAS},
        rows=rows,
    )


def _discard_unless_committed(out: Path, run_id: str) -> None:
    """After a failed publish: remove the run's files unless the manifest names them (the
    failure came after the commit). If even that cannot be told, the next run's garbage
    collection decides."""
    with contextlib.suppress(Exception):
        if run_id not in current_runs(manifest_table(out)).values():
            shutil.rmtree(out / RUNS_DIR / run_id, ignore_errors=True)


def record_failed_run(out_dir: Path | str, manifest_entry: ManifestEntry) -> None:
    """Add a manifest row for a run that published nothing (status failed); tables and
    published snapshots are not touched. The entry's `status_reason` must say why."""
    entry = manifest_entry
    if not entry.status_reason:
        raise ValueError(f"run {entry.run_id}: a failed run needs a status_reason")
    _check_entry(entry)
    where = objectstore.location(out_dir)
    if isinstance(where, str):
        store = Remote.at(where)
        with _locked(store, entry.run_id):
            manifest, version = _remote_manifest_for_update(store)
            _refuse_rerun(manifest, entry.run_id, store.url_of(MANIFEST_FILE))
            finished_at = as_utc(entry.finished_at, "finished_at") or utc_now()
            row = _manifest_row(
                replace(entry, status="failed"), finished_at, published=False, rows=None
            )
            _commit_remote(store, _append(manifest, row), version)
        return
    out = where
    with _locked(out, entry.run_id):
        manifest = _manifest_for_update(out)
        if entry.run_id in manifest.column("run_id").to_pylist():
            raise SnapshotError(f"run {entry.run_id} is already in {out / MANIFEST_FILE}")
        finished_at = as_utc(entry.finished_at, "finished_at") or utc_now()
        failed = replace(entry, status="failed")
        row = _manifest_row(failed, finished_at, published=False, rows=None)
        _write_manifest(out, _append(manifest, row))


def _check_entry(entry: ManifestEntry) -> None:
    if not _RUN_ID.fullmatch(entry.run_id):
        raise ValueError(
            f"run id {entry.run_id!r}: use 1-128 letters, digits, '.', '_' or '-' "
            "(it names a directory)"
        )
    if entry.status not in RUN_STATUSES:
        raise ValueError(f"run {entry.run_id}: status {entry.status!r} not in {RUN_STATUSES}")
    as_utc(entry.started_at, f"run {entry.run_id} started_at")
    as_utc(entry.finished_at, f"run {entry.run_id} finished_at")


def _manifest_row(
    entry: ManifestEntry, finished_at: datetime, *, published: bool, rows: dict[str, int] | None
) -> Row:
    row: Row = {
        "run_id": entry.run_id,
        "flow_run_id": entry.flow_run_id,
        "snapshot_date": entry.snapshot_date,
        "started_at": as_utc(entry.started_at, "started_at"),
        "finished_at": finished_at,
        "status": entry.status,
        "status_reason": entry.status_reason,
        "published": published,
        "schema_version": SCHEMA_VERSION,
        "pipeline_version": __version__,
        "documents": [
            {
                "document": d.name,
                "sha256": d.sha256,
                "size_bytes": d.size_bytes,
                "links": d.links,
                "error": d.error,
            }
            for d in sorted(entry.documents, key=lambda d: d.name)
        ],
        "api_stats": [
            {
                "api": s.api,
                "requests": s.requests,
                "from_store": s.from_store,
                "retries": s.retries,
                "seconds": s.seconds,
                "by_status": [
                    {"http_status": code, "responses": n} for code, n in sorted(s.by_status.items())
                ],
            }
            for s in sorted(entry.api_stats, key=lambda s: s.api)
        ],
        "arxiv_api_url": entry.arxiv_api_url,
        "hf_endpoint": entry.hf_endpoint,
    }
    for name in TABLE_SCHEMAS:
        row[f"{name}_rows"] = None if rows is None else rows[name]
    return row


def _append(manifest: pa.Table, row: Row) -> pa.Table:
    return pa.concat_tables([manifest, pa.Table.from_pylist([row], schema=MANIFEST_SCHEMA)])


def _write_parquet(table: pa.Table, path: Path) -> None:
    with path.open("wb") as handle:
        _write_parquet_to(table, handle)
        handle.flush()
        os.fsync(handle.fileno())


def _write_parquet_to(table: pa.Table, sink: Any) -> None:
    """One table as Parquet, the same bytes on every store."""
    if isinstance(table, pa.Table):
        pq.write_table(table, sink, compression="zstd")
    else:  # batches read from disk (`LinksFile`): written as they are read
        with pq.ParquetWriter(sink, table.schema, compression="zstd") as writer:
            for batch in table.to_batches():
                writer.write_batch(batch)


def _write_manifest(out: Path, manifest: pa.Table) -> None:
    """Replace the manifest atomically: readers see the old one or the new one."""
    staging = out / STAGING_DIR
    staging.mkdir(parents=True, exist_ok=True)
    tmp = staging / f"manifest-{uuid.uuid4().hex}.parquet"
    # Not `tempfile.mkstemp`: its files are 0600 whatever the umask, and the manifest must
    # be as readable as the tables it publishes.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            pq.write_table(manifest, handle, compression="zstd")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, out / MANIFEST_FILE)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(out)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _manifest_for_update(out: Path) -> pa.Table:
    """The manifest to append to; an empty one only for a directory without snapshots.

    Partitions and run files that the manifest does not name are deleted as leftovers of
    killed runs, so a directory that holds snapshot data but lost its manifest is refused
    rather than emptied."""
    manifest = manifest_table(out)
    if manifest is not None:
        return manifest
    runs = out / RUNS_DIR
    data = [p for p in (runs, *(out / t for t in TABLE_SCHEMAS)) if p.is_dir() and any(p.iterdir())]
    if data:
        raise SnapshotError(
            f"{out} holds snapshot data ({', '.join(p.name for p in data)}) but no "
            f"{MANIFEST_FILE}: restore the manifest, or move the directory away"
        )
    return MANIFEST_SCHEMA.empty_table()


def _recover(out: Path, manifest: pa.Table) -> None:
    """Clear what a killed run left: staging files, unpublished run files and partitions,
    and Hive views that lag behind the manifest. Only ever called under the lock."""
    staging = out / STAGING_DIR
    if staging.is_dir():
        for leftover in staging.iterdir():
            _remove(leftover)
    _sync_views(out, manifest)
    _collect_garbage(out, manifest)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def current_runs(manifest: pa.Table | None) -> dict[date, str]:
    """Snapshot date -> the run whose tables are that date's snapshot (the last published)."""
    current: dict[date, str] = {}
    if manifest is None:
        return current
    for row in manifest.select(["run_id", "snapshot_date", "published"]).to_pylist():
        if row["published"]:
            current[row["snapshot_date"]] = row["run_id"]
    return current


def _partition(out: Path, table: str, snapshot_date: date) -> Path:
    return out / table / f"{PARTITION_PREFIX}{snapshot_date.isoformat()}"


def _sync_views(out: Path, manifest: pa.Table) -> None:
    """Make every Hive partition a link to the run file the manifest publishes for its
    date, and remove partitions of dates that no run published."""
    current = current_runs(manifest)
    staging = out / STAGING_DIR
    staging.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=staging, prefix="views-"))
    try:
        for table in TABLE_SCHEMAS:
            for snapshot_date, run_id in sorted(current.items()):
                source = out / RUNS_DIR / run_id / f"{table}.parquet"
                if source.is_file():
                    _install(source, _partition(out, table, snapshot_date), work)
            table_dir = out / table
            if not table_dir.is_dir():
                continue
            for partition in sorted(table_dir.iterdir()):
                taken = _partition_date(partition.name)
                if taken is not None and taken not in current:
                    shutil.rmtree(partition)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _partition_date(name: str) -> date | None:
    if not name.startswith(PARTITION_PREFIX):
        return None
    try:
        return date.fromisoformat(name.removeprefix(PARTITION_PREFIX))
    except ValueError:
        return None


def _install(source: Path, partition: Path, work: Path) -> None:
    """Make `partition/part-0.parquet` the file `source`, in one atomic rename."""
    target = partition / PART_FILE
    if target.is_file() and _same_file(source, target):
        return
    tmp = work / f"{partition.parent.name}-{partition.name}"
    tmp.mkdir()
    try:
        os.link(source, tmp / PART_FILE)
    except OSError:  # a filesystem without hard links: a copy does, at twice the space
        shutil.copyfile(source, tmp / PART_FILE)
        with (tmp / PART_FILE).open("rb") as handle:
            os.fsync(handle.fileno())
    if partition.is_dir():
        os.replace(tmp / PART_FILE, target)
    else:
        partition.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, partition)
    _fsync_dir(partition.parent)


def _same_file(a: Path, b: Path) -> bool:
    """One inode, or (where the partition had to be a copy) the same bytes."""
    if os.path.samefile(a, b):
        return True
    if a.stat().st_size != b.stat().st_size:
        return False
    with a.open("rb") as left, b.open("rb") as right:
        while chunk := left.read(1 << 20):
            if chunk != right.read(len(chunk)):
                return False
    return True


def _collect_garbage(out: Path, manifest: pa.Table) -> None:
    """Delete run files no date publishes: replaced reruns and runs killed before commit."""
    runs = out / RUNS_DIR
    if not runs.is_dir():
        return
    keep = set(current_runs(manifest).values())
    for run in runs.iterdir():
        if run.name not in keep:
            _remove(run)


def manifest_table(out: Path | Remote) -> pa.Table | None:
    """The manifest of `out` as written (no derived columns), or None when there is
    none; `SnapshotError` when it cannot be read or has another schema version's shape."""
    found = _read_manifest(out)
    return None if found is None else found[0]


def _read_manifest(out: Path | Remote) -> tuple[pa.Table, str | None] | None:
    """The manifest and (on an object store) the version a conditional commit replaces."""
    path: Path | str
    version: str | None = None
    try:
        # Read whole, then parsed: given a path, pyarrow may open a file more than once,
        # and a manifest replaced in between would mix two files.
        if isinstance(out, Remote):
            path = out.url_of(MANIFEST_FILE)
            found = out.read_versioned(MANIFEST_FILE)
            if found is None:
                return None
            data, version = found
        else:
            path = out / MANIFEST_FILE
            data = path.read_bytes()
        manifest = pq.read_table(pa.BufferReader(data))
    except FileNotFoundError:
        return None
    except (OSError, pa.ArrowException) as exc:
        raise SnapshotError(f"cannot read the manifest {path}: {exc}") from exc
    if not manifest.schema.equals(MANIFEST_SCHEMA, check_metadata=False):
        manifest = _upgrade_manifest(manifest, path)
    return manifest, version


def _upgrade_manifest(manifest: pa.Table, path: Path | str) -> pa.Table:
    """A manifest written by an older schema version in this version's shape: the columns
    it lacks (`<table>_rows` of a table added since, ...) read as null, so its rows stay
    readable and the next commit appends to it. A newer or unknown shape is refused: this
    pipeline cannot tell what it would drop."""
    names = manifest.schema.names
    versions = manifest.column("schema_version").to_pylist() if "schema_version" in names else []
    newest = max((v for v in versions if v is not None), default=None)
    if newest is not None and newest > SCHEMA_VERSION:
        raise SnapshotError(
            f"{path} was written by schema version {newest}, newer than this pipeline's "
            f"{SCHEMA_VERSION}: upgrade the pipeline to read it"
        )
    unknown = sorted(set(names) - set(MANIFEST_SCHEMA.names))
    missing_required = [f.name for f in MANIFEST_SCHEMA if f.name not in names and not f.nullable]
    if unknown or missing_required:
        raise SnapshotError(
            f"{path} does not have the manifest schema of schema version {SCHEMA_VERSION} "
            f"or an older one (columns not known: {unknown}; "
            f"required columns missing: {missing_required})"
        )
    columns = [
        manifest.column(f.name) if f.name in names else pa.nulls(manifest.num_rows, f.type)
        for f in MANIFEST_SCHEMA
    ]
    try:
        return pa.Table.from_arrays(columns, names=MANIFEST_SCHEMA.names).cast(MANIFEST_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
        raise SnapshotError(
            f"{path} (schema version {newest or '?'}) cannot be read as the manifest of schema "
            f"version {SCHEMA_VERSION}: {exc}"
        ) from exc


def _parquet_bytes(table: pa.Table) -> bytes:
    """A table as `_write_parquet` writes it locally: the same bytes on either store."""
    sink = pa.BufferOutputStream()
    _write_parquet_to(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def _refuse_rerun(manifest: pa.Table, run_id: str, where: str) -> None:
    if run_id in manifest.column("run_id").to_pylist():
        raise SnapshotError(f"run {run_id} is already in {where}")


def _remote_manifest_for_update(store: Remote) -> tuple[pa.Table, str | None]:
    """As `_manifest_for_update`, with the version the commit must replace (None: none)."""
    found = _read_manifest(store)
    if found is not None:
        return found
    data = [name for name in (RUNS_DIR, *TABLE_SCHEMAS) if store.children(name)]
    if data:
        raise SnapshotError(
            f"{store.url} holds snapshot data ({', '.join(data)}) but no {MANIFEST_FILE}:"
            " restore the manifest, or move the prefix away"
        )
    return MANIFEST_SCHEMA.empty_table(), None


def _commit_remote(store: Remote, manifest: pa.Table, version: str | None) -> None:
    """Replace the manifest object only if it is still the version read under the lock."""
    _check_lease(store)
    try:
        store.put(
            MANIFEST_FILE,
            _parquet_bytes(manifest),
            if_absent=version is None,
            if_match=version,
        )
    except PreconditionFailed:
        raise SnapshotError(
            f"{store.url_of(MANIFEST_FILE)} was changed by another writer while this run held"
            " the lock (its lease expired?): nothing was committed; rerun the night"
        ) from None


def _publish_remote(
    store: Remote, tables: Mapping[str, pa.Table], run_id: str, row: Row
) -> dict[str, Path | str]:
    """`publish` on an object store: run objects, then the conditional manifest commit."""
    manifest, version = _remote_manifest_for_update(store)
    _refuse_rerun(manifest, run_id, store.url_of(MANIFEST_FILE))
    _remote_views_and_garbage(store, manifest)
    keys = {name: f"{RUNS_DIR}/{run_id}/{name}.parquet" for name in TABLE_SCHEMAS}
    try:
        for name, key in keys.items():
            store.put(key, _parquet_bytes(tables[name]))
        manifest = _append(manifest, row)
        _commit_remote(store, manifest, version)
    except BaseException:
        with contextlib.suppress(Exception):
            found = manifest_table(store)
            if run_id not in current_runs(found).values():
                store.delete(f"{RUNS_DIR}/{run_id}", recursive=True)
        raise
    try:
        _remote_views_and_garbage(store, manifest)
    except OSError as exc:
        log.warning("snapshot %s published; Hive view not updated: %s", run_id, exc)
    return {name: store.url_of(key) for name, key in keys.items()}


def _remote_views_and_garbage(store: Remote, manifest: pa.Table) -> None:
    """`_sync_views` and `_collect_garbage` on an object store: each partition a copy of
    the run object its date publishes (`_is_copy_of`: nothing to do), then stale
    partitions and unpublished runs deleted. One listing says what is there, so a publish
    costs the same few requests however many nights the prefix holds."""
    current = current_runs(manifest)
    listed = store.listing()
    for table in TABLE_SCHEMAS:
        for snapshot_date, run_id in sorted(current.items()):
            source = f"{RUNS_DIR}/{run_id}/{table}.parquet"
            target = f"{table}/{PARTITION_PREFIX}{snapshot_date.isoformat()}/{PART_FILE}"
            if source in listed and not _is_copy_of(listed.get(target), listed[source]):
                store.copy(source, target)
    stale: set[str] = set()
    keep = set(current.values())
    for key in listed:
        top, _, rest = key.partition("/")
        second = rest.partition("/")[0]
        if top == RUNS_DIR and second not in keep:
            stale.add(f"{RUNS_DIR}/{second}")
        elif top in TABLE_SCHEMAS:
            taken = _partition_date(second)
            if taken is not None and taken not in current:
                stale.add(f"{top}/{second}")
    for prefix in sorted(stale):
        store.delete(prefix, recursive=True)


def _is_copy_of(view: Listed | None, source: Listed) -> bool:
    """Whether a Hive view object is already a copy of its run object, from one listing.
    The same ETag says so for an object uploaded in one part; one uploaded in parts
    (`objectstore.UPLOAD_CHUNK_BYTES`) has an ETag no copy ever gets, so then: the same
    size, written after the source. Run objects are never replaced, and a rerun's objects
    are written after every copy of the run it replaces, so a view older than its source
    is a copy of another run, which is copied again."""
    if view is None:
        return False
    if view.token == source.token:
        return True
    return (
        view.size_bytes is not None
        and view.size_bytes == source.size_bytes
        and view.modified is not None
        and source.modified is not None
        and view.modified > source.modified
    )
