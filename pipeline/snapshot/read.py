"""The read path: `load()` and the manifest, for analysts and for the next run.

Every function takes a local folder or an object-store URL (`s3://bucket/prefix`): the
manifest names the files either way (`pipeline.objectstore`)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import objectstore
from pipeline.arrow_memory import release_unused
from pipeline.config import DEFAULT_OUT_DIR
from pipeline.objectstore import Remote
from pipeline.snapshot.schemas import (
    MANIFEST_SCHEMA,
    SCHEMA_VERSION,
    TABLE_SCHEMAS,
    plain_type,
)
from pipeline.snapshot.store import (
    MANIFEST_FILE,
    RUNS_DIR,
    PublishedSnapshot,
    SnapshotError,
    current_runs,
    manifest_table,
)

_LOAD_ATTEMPTS = 3
"""Reads retried when a rerun of the same night replaced the files between reading the
manifest and opening them (the replaced run's files are deleted after the commit): by
`load`, and by a `Baseline` before its first table."""


_RETRY_SECONDS = 0.05


def read_manifest(out_dir: Path | str = DEFAULT_OUT_DIR) -> pd.DataFrame:
    """Every run recorded under `out_dir`, oldest first (empty when none), with a derived
    `current` column: True for the run whose tables are its date's snapshot."""
    manifest = manifest_table(snapshot_root(out_dir))
    if manifest is None:
        manifest = MANIFEST_SCHEMA.empty_table()
    current = set(current_runs(manifest).values())
    flags = [run_id in current for run_id in manifest.column("run_id").to_pylist()]
    manifest = manifest.append_column("current", pa.array(flags, pa.bool_()))
    frame: pd.DataFrame = manifest.to_pandas(types_mapper=pd.ArrowDtype)
    return frame


def _pick(
    manifest: pa.Table | None, snapshot_date: date | None, before: date | None
) -> tuple[date, str] | None:
    """(date, run) of the snapshot of `snapshot_date`, else the latest one dated before
    `before` (or the latest of all); None when there is no such snapshot."""
    current = current_runs(manifest)
    if snapshot_date is not None:
        run_id = current.get(snapshot_date)
        return None if run_id is None else (snapshot_date, run_id)
    eligible = [d for d in current if before is None or d < before]
    if not eligible:
        return None
    latest = max(eligible)
    return latest, current[latest]


def latest_snapshot(out_dir: Path | str = DEFAULT_OUT_DIR) -> PublishedSnapshot | None:
    """The published snapshot with the latest date, or None when there is none."""
    out = snapshot_root(out_dir)
    manifest = manifest_table(out)
    picked = _pick(manifest, None, None)
    if manifest is None or picked is None:
        return None
    taken, run_id = picked
    row = next(r for r in manifest.to_pylist() if r["run_id"] == run_id)
    return PublishedSnapshot(
        run_id=run_id,
        snapshot_date=taken,
        status=row["status"],
        finished_at=row["finished_at"],
        files={t: _run_file(out, run_id, t) for t in TABLE_SCHEMAS if row[f"{t}_rows"] is not None},
        rows={t: row[f"{t}_rows"] for t in TABLE_SCHEMAS if row[f"{t}_rows"] is not None},
    )


def previous_tables(
    out_dir: Path | str = DEFAULT_OUT_DIR,
    before: date | None = None,
    *,
    columns: Mapping[str, Sequence[str]] | None = None,
) -> Baseline | None:
    """The tables of the latest published snapshot dated before `before` (any date when
    None), or None when there is none; each is read when first asked (`Baseline`), and
    its schema metadata carries its `snapshot_date`. A run passes `before=snapshot_date`,
    so that a rerun of a night is built against the same baseline as the run it
    replaces. Tables are returned as written, even by an older schema version
    (`build_tables` reads missing columns as empty). `columns` names, per table, the only
    columns to read (those the table has; none: its row count only), as a night does
    (`build.baseline_columns`): a baseline read whole at scale costs more memory than the
    night it serves."""
    return _published_tables(snapshot_root(out_dir), None, before, columns)


def replaced_tables(out_dir: Path | str, snapshot_date: date) -> Baseline | None:
    """The tables of the snapshot published for `snapshot_date` itself (the night a
    rerun replaces), as `previous_tables` returns them; None when that night was not
    published. A restricted run keeps the values it did not ask for from it."""
    return _published_tables(snapshot_root(out_dir), snapshot_date, None)


class Baseline(Mapping[str, pa.Table]):
    """Every table of one published run, by name, each read when it is first asked for
    and kept from then on.

    Why not read them all at once: a night asks for the entity tables when its build
    starts, but for the previous links (by far the largest) only when its last stage
    compares listings; read up front, they would be held through the whole build, which
    at 1 GB of markdown was the night's peak.

    A rerun of that night by another writer deletes the run's files once it commits. A
    night holds the lock that prevents it; an analyst's session does not. Until a first
    table is read, the baseline then moves to the run that replaced it (the manifest read
    again, as `load` does); after that, a table of the deleted run raises `SnapshotError`
    naming it, rather than mixing two runs' tables."""

    def __init__(
        self,
        out: Path | Remote,
        picks: tuple[date | None, date | None],
        columns: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """`picks`: (`snapshot_date`, `before`) as `_pick` takes them. Raises
        `LookupError` when no published snapshot matches."""
        self._out = out
        self._picks = picks
        self._columns = columns
        self._read: dict[str, pa.Table] = {}
        self._pick_run()

    def _pick_run(self) -> None:
        manifest = manifest_table(self._out)
        picked = _pick(manifest, *self._picks)
        if manifest is None or picked is None:
            raise LookupError("no published snapshot")
        self.snapshot_date, self.run_id = picked
        self._row = _run_row(manifest, self.run_id)

    def __getitem__(self, name: str) -> pa.Table:
        if name not in TABLE_SCHEMAS:
            raise KeyError(name)
        if name not in self._read:
            table = self._table(name)  # may move to the run that replaced this one
            stamp = {b"snapshot_date": self.snapshot_date.isoformat().encode()}
            self._read[name] = table.replace_schema_metadata(
                {**TABLE_SCHEMAS[name].metadata, **stamp}
            )
            # The reader's buffers, which Arrow's allocator would otherwise keep.
            release_unused()
        return self._read[name]

    def _table(self, name: str) -> pa.Table:
        for attempt in range(_LOAD_ATTEMPTS):
            try:
                return self._table_as_written(name)
            except FileNotFoundError:
                deleted = f"run {self.run_id} ({self.snapshot_date.isoformat()})"
                if self._read or attempt + 1 == _LOAD_ATTEMPTS:
                    raise SnapshotError(
                        f"the {name} table of {deleted} under {_where(self._out)} was "
                        "deleted while it was in use (a rerun of that night replaced it): "
                        "read the snapshot again"
                    ) from None
            time.sleep(_RETRY_SECONDS)
            try:
                self._pick_run()
            except LookupError:
                raise SnapshotError(
                    f"{deleted} under {_where(self._out)} was deleted, and no snapshot replaced it"
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def __contains__(self, name: object) -> bool:
        # Mapping's own would read the table to answer.
        return name in TABLE_SCHEMAS

    def __iter__(self) -> Iterator[str]:
        return iter(TABLE_SCHEMAS)

    def __len__(self) -> int:
        return len(TABLE_SCHEMAS)

    def _table_as_written(self, name: str) -> pa.Table:
        """One table as written (`columns` of it, those it has); one the run's schema
        version did not have yet (its `<table>_rows` is null in the manifest) reads as an
        empty table."""
        if self._row[f"{name}_rows"] is None:
            return TABLE_SCHEMAS[name].empty_table()
        if self._columns is not None and name in self._columns:
            written = read_run_schema(self._out, self.run_id, name).names
            wanted = [column for column in self._columns[name] if column in written]
            return read_run_table(self._out, self.run_id, name, columns=wanted)
        return _read_run_table(self._out, self.run_id, name, strict=False)


def snapshot_root(out_dir: Path | str) -> Path | Remote:
    """The snapshot root `out_dir` names: a local folder, or an object-store prefix."""
    where = objectstore.location(out_dir)
    return Remote.at(where) if isinstance(where, str) else where


def _run_file(out: Path | Remote, run_id: str, table: str) -> Path | str:
    key = f"{RUNS_DIR}/{run_id}/{table}.parquet"
    return out.url_of(key) if isinstance(out, Remote) else out / key


def _published_tables(
    out: Path | Remote,
    snapshot_date: date | None,
    before: date | None,
    columns: Mapping[str, Sequence[str]] | None = None,
) -> Baseline | None:
    try:
        return Baseline(out, (snapshot_date, before), columns)
    except LookupError:
        return None


def _run_row(manifest: pa.Table, run_id: str) -> dict[str, Any]:
    row: dict[str, Any] = next(r for r in manifest.to_pylist() if r["run_id"] == run_id)
    return row


def load(
    table: str, out_dir: Path | str = DEFAULT_OUT_DIR, snapshot_date: date | str | None = None
) -> pd.DataFrame:
    """One table of the latest published snapshot (or of `snapshot_date`) as a DataFrame.

    Columns keep their declared Arrow types (`pd.ArrowDtype`): nullable integers stay
    integers, timestamps are UTC, list columns hold Python lists. The snapshot's date
    and run are in `df.attrs["snapshot_date"]` and `df.attrs["run_id"]`. Raises
    `FileNotFoundError` when nothing was ever published under `out_dir`, `SnapshotError`
    (naming the published dates) when `snapshot_date` was not.
    """
    if table not in TABLE_SCHEMAS:
        raise ValueError(f"no table {table!r}; tables: {', '.join(TABLE_SCHEMAS)}")
    out = snapshot_root(out_dir)
    wanted = _as_date(snapshot_date) if snapshot_date is not None else None
    for attempt in range(_LOAD_ATTEMPTS):
        manifest = manifest_table(out)
        if manifest is None:
            raise FileNotFoundError(
                f"no snapshot under {_where(out)}: {_manifest_file(out)} does not exist"
            )
        picked = _pick(manifest, wanted, None)
        if picked is None:
            dates = ", ".join(d.isoformat() for d in sorted(current_runs(manifest))) or "none"
            asked = f"of {wanted.isoformat()} " if wanted else ""
            raise SnapshotError(f"no snapshot {asked}under {_where(out)} (published: {dates})")
        taken, run_id = picked
        row = _run_row(manifest, run_id)
        if row[f"{table}_rows"] is None:
            raise SnapshotError(
                f"no table {table} in the snapshot of {taken.isoformat()} under "
                f"{_where(out)}: run {run_id} was written with schema version "
                f"{row['schema_version']}, which did not have it"
            )
        try:
            data = _read_run_table(out, run_id, table, written_by=row["schema_version"])
        except FileNotFoundError:
            if attempt + 1 == _LOAD_ATTEMPTS:
                raise
            time.sleep(_RETRY_SECONDS)
            continue
        frame: pd.DataFrame = data.to_pandas(types_mapper=pd.ArrowDtype)
        frame.attrs.update(snapshot_date=taken.isoformat(), run_id=run_id)
        return frame
    raise AssertionError("unreachable")  # pragma: no cover


def _as_date(value: date | str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"snapshot_date {value!r}: expected YYYY-MM-DD") from None


def _where(out: Path | Remote) -> Path | str:
    return out.url if isinstance(out, Remote) else out


def _manifest_file(out: Path | Remote) -> Path | str:
    return out.url_of(MANIFEST_FILE) if isinstance(out, Remote) else out / MANIFEST_FILE


def read_run_table(
    out: Path | Remote, run_id: str, table: str, columns: list[str] | None = None
) -> pa.Table:
    """One table of one published run as written (an older night's schema too), or only
    `columns` of it. On an object store only the footer and those columns' bytes are
    fetched (ranged reads), not the whole object."""
    key = f"{RUNS_DIR}/{run_id}/{table}.parquet"
    if isinstance(out, Remote):
        with _open_remote(out, key) as handle:
            return _read_parquet(handle, columns)
    return _read_parquet(out / key, columns)


def _read_parquet(source: Any, columns: list[str] | None) -> pa.Table:
    """A Parquet file read a row group at a time, in this thread. `pq.read_table` (the
    dataset reader, threads, pre-buffering) left 150 MB more behind it than the 26 MB of
    four columns of a night's links it read, measured; a row group at a time, 60 MB."""
    with pq.ParquetFile(source) as parquet:
        schema = parquet.schema_arrow
        if columns is not None:
            schema = pa.schema([schema.field(name) for name in columns], schema.metadata)
        parts = [
            parquet.read_row_group(group, columns=columns, use_threads=False)
            for group in range(parquet.num_row_groups)
        ]
    return pa.concat_tables(parts) if parts else schema.empty_table()


def read_run_schema(out: Path | Remote, run_id: str, table: str) -> pa.Schema:
    """The schema one published run's table was written with (only its footer is read)."""
    key = f"{RUNS_DIR}/{run_id}/{table}.parquet"
    if isinstance(out, Remote):
        with _open_remote(out, key) as handle:
            return pq.read_schema(handle)
    return pq.read_schema(out / key)


def _open_remote(out: Remote, key: str) -> Any:
    """A seekable handle on a run object that fetches only the ranges read: without a
    read-ahead cache, since a block cache as large as fsspec's default would fetch a
    whole table to read its footer. FileNotFoundError (a rerun deleted the run) as `open`."""
    return out.fs.open(out.path(key), "rb", cache_type="none")


def _read_run_table(
    out: Path | Remote,
    run_id: str,
    table: str,
    *,
    strict: bool = True,
    written_by: int | None = None,
) -> pa.Table:
    """One published table. `strict`: with exactly its declared schema, else
    `SnapshotError` naming the schema version the night was written with (`written_by`,
    from the manifest); a baseline for `build_tables` need not be, since missing columns
    read as empty there."""
    # Run files are never replaced, only deleted (then a reader retries), so opening the
    # path more than once cannot mix two files.
    path = _run_file(out, run_id, table)
    data = read_run_table(out, run_id, table)
    declared = TABLE_SCHEMAS[table]
    if strict and _encoded_differently(data.schema, declared):
        # The same values stored another way (version 3 dictionary-encoded the lineage
        # lists): an older night loads as if written tonight.
        data = data.cast(declared.with_metadata(data.schema.metadata))
    if strict and not data.schema.equals(declared, check_metadata=False):
        written = (data.schema.metadata or {}).get(b"schema_version", b"").decode()
        version = written or (str(written_by) if written_by is not None else "?")
        raise SnapshotError(
            f"{path}: written with schema version {version}, whose {table} schema differs "
            f"from the one of version {SCHEMA_VERSION} this pipeline reads; read it with "
            f"pipeline.snapshot.read.read_run_table (as written) or a pipeline of version "
            f"{version}"
        )
    return data


def _encoded_differently(written: pa.Schema, declared: pa.Schema) -> bool:
    """True when the two schemas differ only in which strings are dictionary-encoded."""
    return (
        written.names == declared.names
        and not written.equals(declared, check_metadata=False)
        and all(
            plain_type(a.type) == plain_type(b.type) and a.nullable == b.nullable
            for a, b in zip(written, declared, strict=True)
        )
    )
