"""Reading snapshots back (`pipeline.snapshot.read`): `load` with the declared types,
other readers of the Hive folders, dates, the baselines a night is built against, the
manifest, and readers that run while a night is being replaced.

Snapshots are published from small hand-made inputs (`published.night`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from published import (
    DAY1,
    DAY2,
    DAY3,
    TABLE_ROWS,
    as_loaded,
    entry,
    loaded,
    night,
    same,
)

from pipeline.objectstore import Remote
from pipeline.snapshot.read import (
    latest_snapshot,
    load,
    previous_tables,
    read_manifest,
    read_run_schema,
    read_run_table,
    replaced_tables,
)
from pipeline.snapshot.schemas import MANIFEST_SCHEMA, TABLE_SCHEMAS, plain_type
from pipeline.snapshot.store import RUNS_DIR, SnapshotError, publish, record_failed_run

# ----------------------------------------------------------------------------- load


def test_load_returns_declared_dtypes_and_python_lists(tmp_path: Path) -> None:
    out = tmp_path / "enriched"
    tables = night(DAY2, "a")
    publish(out, tables, entry("run-1", DAY2))

    for name, schema in TABLE_SCHEMAS.items():
        frame = load(name, out)
        assert list(frame.columns) == schema.names
        for column in schema:
            assert frame[column.name].dtype == pd.ArrowDtype(column.type), (name, column.name)
    papers = load("papers", out)
    assert papers.attrs == {"snapshot_date": "2026-11-20", "run_id": "run-1"}
    assert papers["authors"].iloc[0] == ["A. Author"]
    assert papers["published"].iloc[0] == pd.Timestamp("2026-11-20 03:00", tz="UTC")
    assert pd.isna(papers["latest_version"].iloc[0])  # null stays null, not NaN-as-float
    assert papers["hf_models"].map(len).tolist() == [1, 0, 0]
    models = load("models", out)
    assert models["params_total"].iloc[0] == 8_291_375_616
    assert models["params_by_dtype"].iloc[0] == [{"dtype": "BF16", "params": 8_291_375_616}]
    assert models["collections"].iloc[0] == ["Qwen/qwen2-vl-66cee7455501d7126940800d"]
    assert load("repos", out)["items"].iloc[0] == [
        {"item_type": "model", "item_id": "Qwen/Qwen2-VL-7B"},
        {"item_type": "paper", "item_id": "2409.10000"},
    ]
    assert load("github_repos", out)["arxiv_ids"].iloc[0] == ["2409.10000"]


def test_pandas_pyarrow_duckdb_and_polars_read_the_declared_types(tmp_path: Path) -> None:
    out = tmp_path / "enriched"
    publish(out, night(DAY1, "a"), entry("run-1", DAY1))
    publish(out, night(DAY2, "b"), entry("run-2", DAY2))

    for name, schema in TABLE_SCHEMAS.items():
        folder = out / name
        declared_empty = schema.empty_table()
        # pyarrow.dataset: the Hive directory, with snapshot_date from the path.
        dataset = ds.dataset(folder, format="parquet", partitioning="hive")
        assert dataset.schema.remove(dataset.schema.get_field_index("snapshot_date")).equals(
            schema, check_metadata=False
        ), name
        assert dataset.count_rows() == 2 * TABLE_ROWS[name]
        # pandas: history of the directory, one night by filter.
        frame = pd.read_parquet(
            folder, dtype_backend="pyarrow", filters=[("snapshot_date", "=", "2026-11-20")]
        )
        assert len(frame) == TABLE_ROWS[name]
        for column in schema:
            assert frame[column.name].dtype == pd.ArrowDtype(column.type), (name, column.name)
        # DuckDB and Polars: their own type for each column equals their type for the
        # declared schema (nothing widened, nothing lost).
        glob = f"{folder}/*/*.parquet"
        assert _duckdb_types(f"SELECT * FROM read_parquet('{glob}', hive_partitioning=true)") == {
            **_duckdb_types("SELECT * FROM declared", declared=declared_empty),
            "snapshot_date": "DATE",
        }, name
        lazy = pl.scan_parquet(f"{folder}/**/*.parquet", hive_partitioning=True)
        assert dict(lazy.collect_schema()) == {
            **dict(pl.from_arrow(declared_empty).schema),  # type: ignore[union-attr]
            "snapshot_date": pl.Date,
        }, name
        assert lazy.collect().height == 2 * TABLE_ROWS[name]


def test_a_night_written_before_the_lineage_lists_were_encoded_loads_as_declared(
    tmp_path: Path,
) -> None:
    """Schema version 2 wrote `documents` and `headings` as plain lists of strings: such a
    night loads with today's types and the same values, alone and in a Hive folder beside
    a newer night; a night whose columns differ in more than encoding is still refused."""
    out = tmp_path / "enriched"
    publish(out, night(DAY1, "a"), entry("run-1", DAY1))
    publish(out, night(DAY2, "b"), entry("run-2", DAY2))
    expected = load("papers", out, DAY1)
    views = list((out / "papers").glob(f"snapshot_date={DAY1.isoformat()}/*.parquet"))
    assert views
    for path in [out / ".runs" / "run-1" / "papers.parquet", *views]:
        written = pq.read_table(path)
        plain = pa.schema(
            [f.with_type(plain_type(f.type)) for f in written.schema], written.schema.metadata
        )
        assert not plain.equals(written.schema)
        path.unlink()  # a Hive view may be a hard link of the run's file
        pq.write_table(written.cast(plain), path)

    frame = load("papers", out, DAY1)

    assert frame.dtypes.equals(expected.dtypes)
    assert frame.equals(expected)
    history = pd.read_parquet(out / "papers", dtype_backend="pyarrow")
    assert set(history["documents"].map(tuple).map(len)) == set(expected["documents"].map(len))
    assert len(history) == 2 * TABLE_ROWS["papers"]

    renamed = pq.read_table(out / ".runs" / "run-1" / "papers.parquet")
    pq.write_table(
        renamed.rename_columns([*renamed.column_names[:-1], "other"]),
        out / ".runs" / "run-1" / "papers.parquet",
    )
    with pytest.raises(SnapshotError, match="schema differs"):
        load("papers", out, DAY1)


def _duckdb_types(sql: str, **tables: pa.Table) -> dict[str, str]:
    connection = duckdb.connect()
    for name, table in tables.items():
        connection.register(name, table)
    relation = connection.sql(sql)
    assert relation is not None
    return dict(zip(relation.columns, map(str, relation.types), strict=True))


def test_load_reads_the_latest_date_or_the_one_asked(tmp_path: Path) -> None:
    out = tmp_path / "enriched"
    first, second = night(DAY1, "a"), night(DAY2, "b")
    publish(out, second, entry("run-2", DAY2))
    publish(out, first, entry("run-1", DAY1))  # a backfill does not become the latest

    assert same(loaded(out), as_loaded(second))
    assert same(loaded(out, DAY1), as_loaded(first))
    assert load("papers", out, "2026-11-19").attrs["run_id"] == "run-1"
    latest = latest_snapshot(out)
    assert latest is not None and (latest.run_id, latest.snapshot_date) == ("run-2", DAY2)
    assert latest.rows["papers"] == 3


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda out: load("paper", out), ValueError, "no table 'paper'; tables: links, papers"),
        (lambda out: load("papers", out / "nowhere"), FileNotFoundError, "no snapshot under"),
        (lambda out: load("papers", out, "20-11-2026"), ValueError, "expected YYYY-MM-DD"),
        (lambda out: load("papers", out, DAY3), SnapshotError, "published: 2026-11-20"),
    ],
    ids=["unknown table", "nothing published", "bad date", "date not published"],
)
def test_load_says_what_is_wrong(
    tmp_path: Path, call: Callable[[Path], Any], error: type[Exception], message: str
) -> None:
    publish(tmp_path, night(DAY2, "a"), entry("run-1", DAY2))

    with pytest.raises(error, match=message):
        call(tmp_path)


# ----------------------------------------------------------------------------- baselines


def test_previous_tables_is_the_latest_night_before_the_date(tmp_path: Path) -> None:
    out = tmp_path / "enriched"
    assert previous_tables(out) is None
    publish(out, night(DAY1, "a"), entry("run-1", DAY1))
    publish(out, night(DAY2, "b"), entry("run-2", DAY2))

    before = previous_tables(out, before=DAY2)
    latest = previous_tables(out)

    assert before is not None and latest is not None
    assert before["papers"].equals(night(DAY1, "a")["papers"])
    assert before["papers"].schema.metadata[b"snapshot_date"] == b"2026-11-19"
    assert latest["papers"].schema.metadata[b"snapshot_date"] == b"2026-11-20"
    assert previous_tables(out, before=DAY1) is None


def test_replaced_tables_are_the_current_run_of_the_night_itself(tmp_path: Path) -> None:
    out = tmp_path / "enriched"
    assert replaced_tables(out, DAY2) is None
    publish(out, night(DAY1, "a"), entry("run-1", DAY1))
    publish(out, night(DAY2, "b"), entry("run-2", DAY2))
    publish(out, night(DAY2, "c"), entry("run-3", DAY2))  # a rerun replaced run-2
    record_failed_run(out, entry("run-4", DAY2, "failed", status_reason="x"))

    replaced = replaced_tables(out, DAY2)

    assert replaced is not None
    assert replaced["papers"].equals(night(DAY2, "c")["papers"])
    assert replaced["papers"].schema.metadata[b"snapshot_date"] == b"2026-11-20"
    assert replaced_tables(out, DAY3) is None


def test_a_baseline_reads_each_table_when_it_is_first_asked_for(tmp_path: Path) -> None:
    out = tmp_path / "enriched"
    publish(out, night(DAY1, "a"), entry("run-1", DAY1))
    baseline = previous_tables(out, before=DAY2)
    assert baseline is not None
    (out / RUNS_DIR / "run-1" / "links.parquet").unlink()  # not read yet: not missed

    assert set(baseline) == set(TABLE_SCHEMAS) and "links" in baseline and len(baseline) > 0
    assert (baseline.run_id, baseline.snapshot_date) == ("run-1", DAY1)
    papers = baseline["papers"]
    (out / RUNS_DIR / "run-1" / "papers.parquet").unlink()
    assert baseline["papers"] is papers  # read once, then kept
    assert papers.equals(night(DAY1, "a")["papers"])
    with pytest.raises(SnapshotError, match=r"links table of run run-1 \(2026-11-19\).*rerun"):
        baseline["links"]
    with pytest.raises(KeyError):
        baseline["no-such-table"]


def test_a_baseline_replaced_before_its_first_read_reads_the_rerun(tmp_path: Path) -> None:
    out = tmp_path / "enriched"
    publish(out, night(DAY1, "a"), entry("run-1", DAY1))
    baseline = previous_tables(out, before=DAY2)
    publish(out, night(DAY1, "b"), entry("run-1b", DAY1))  # deletes run-1's files

    assert baseline is not None and baseline["papers"].equals(night(DAY1, "b")["papers"])
    assert baseline.run_id == "run-1b"
    publish(out, night(DAY1, "c"), entry("run-1c", DAY1))
    with pytest.raises(SnapshotError, match="models table of run run-1b"):
        baseline["models"]  # never two runs' tables in one baseline


def test_a_baseline_that_moves_to_a_newer_night_is_stamped_with_its_date(
    tmp_path: Path,
) -> None:
    out = tmp_path / "enriched"
    publish(out, night(DAY1, "a"), entry("run-1", DAY1))
    baseline = previous_tables(out, before=DAY3)
    publish(out, night(DAY2, "b"), entry("run-2", DAY2))
    publish(out, night(DAY1, "c"), entry("run-1c", DAY1))  # deletes run-1's files

    assert baseline is not None and baseline["papers"].equals(night(DAY2, "b")["papers"])
    assert baseline["papers"].schema.metadata[b"snapshot_date"] == b"2026-11-20"
    assert (baseline.run_id, baseline.snapshot_date) == ("run-2", DAY2)


# ----------------------------------------------------------------------------- manifest


def test_read_manifest_of_an_empty_directory_is_empty_with_its_columns(tmp_path: Path) -> None:
    manifest = read_manifest(tmp_path / "nothing-yet")

    assert manifest.empty
    assert [*MANIFEST_SCHEMA.names, "current"] == list(manifest.columns)
    assert latest_snapshot(tmp_path / "nothing-yet") is None


# ----------------------------------------------------------------------------- concurrency


def test_readers_during_reruns_see_one_complete_version(tmp_path: Path) -> None:
    versions = [night(DAY2, f"v{i}", papers=30) for i in range(12)]
    expected = [as_loaded(v)["papers"] for v in versions]
    publish(tmp_path, versions[0], entry("run-0", DAY2))
    seen: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set():
                got = pa.Table.from_pandas(load("papers", tmp_path), preserve_index=False)
                matches = [i for i, e in enumerate(expected) if got.equals(e)]
                assert len(matches) == 1
                seen.append(matches[0])
        except BaseException as exc:
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i, version in enumerate(versions[1:], start=1):
            publish(tmp_path, version, entry(f"run-{i}", DAY2))
    finally:
        done.set()
        reader.join()

    assert not errors, errors[0]
    assert seen == sorted(seen)  # never back to an older version


def test_readers_never_see_a_torn_manifest(tmp_path: Path) -> None:
    """The manifest is replaced in place (by name): a reader must read one whole file."""
    publish(tmp_path, night(DAY1, "a"), entry("run-0", DAY1))
    sizes: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set():
                sizes.append(len(read_manifest(tmp_path)))
        except BaseException as exc:
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(1, 60):
            record_failed_run(tmp_path, entry(f"run-{i}", DAY2, "failed", status_reason="x"))
    finally:
        done.set()
        reader.join()

    assert not errors, errors[0]
    assert sizes == sorted(sizes) and len(set(sizes)) > 10


class _CountingMemory(MemoryFileSystem):  # type: ignore[misc]  # fsspec is untyped
    """An in-memory object store that counts the bytes readers fetch from it."""

    fetched_bytes = 0

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kw: Any
    ) -> Any:
        data = super().cat_file(path, start=start, end=end, **kw)
        type(self).fetched_bytes += len(data)
        return data

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        handle = super()._open(path, mode, **kwargs)
        if "r" not in mode:
            return handle
        real_read = handle.read

        def counted(size: int = -1) -> bytes:
            data: bytes = real_read(size)
            type(self).fetched_bytes += len(data)
            return data

        handle.read = counted
        return handle


def test_a_schema_or_one_column_of_an_object_store_table_fetches_only_what_it_needs() -> None:
    fs = _CountingMemory(skip_instance_cache=True)
    store = Remote(url="memory://reads", fs=fs, root="/reads")
    wide = pa.table({"key": list(range(1000)), "text": [f"{i:08d}" * 500 for i in range(1000)]})
    with fs.open("/reads/.runs/r1/papers.parquet", "wb") as handle:
        pq.write_table(wide, handle, compression="none")
    size = fs.size("/reads/.runs/r1/papers.parquet")

    _CountingMemory.fetched_bytes = 0
    assert read_run_schema(store, "r1", "papers").names == ["key", "text"]
    assert _CountingMemory.fetched_bytes < size / 10

    _CountingMemory.fetched_bytes = 0
    assert read_run_table(store, "r1", "papers", ["key"]).column("key").to_pylist()[:3] == [0, 1, 2]
    assert _CountingMemory.fetched_bytes < size / 10


def test_reading_a_deleted_object_store_run_raises_file_not_found_for_the_retry() -> None:
    fs = _CountingMemory(skip_instance_cache=True)
    store = Remote(url="memory://gone", fs=fs, root="/gone")

    with pytest.raises(FileNotFoundError):
        read_run_schema(store, "r1", "papers")
    with pytest.raises(FileNotFoundError):
        read_run_table(store, "r1", "papers", ["key"])
