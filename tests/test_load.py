"""Publishing and reading snapshots: layout, declared types in every reader, the manifest
as commit point, same-day replacement, the lock, crash safety, `load`.

Building tables is tested in `test_snapshot.py`; here they are built from small
hand-made inputs. Crash tests SIGKILL a forked child process that publishes, just before
every filesystem step of a publish and at random moments of a big one.
"""

from __future__ import annotations

import os
import random
import select
import shutil
import signal
import threading
import time
import traceback
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from pipeline.links.documents import Link
from pipeline.links.extract import Occurrence
from pipeline.links.identify import Identity, Kind
from pipeline.records import ApiStats, CollectionItem, Document, HubRepoRecord, PaperRecord, RepoRef
from pipeline.snapshot.build import SnapshotInputs, build_tables
from pipeline.snapshot.read import latest_snapshot, load, previous_tables, read_manifest
from pipeline.snapshot.schemas import MANIFEST_SCHEMA, TABLE_SCHEMAS
from pipeline.snapshot.store import (
    MANIFEST_FILE,
    RUNS_DIR,
    STAGING_DIR,
    ManifestEntry,
    SnapshotError,
    SnapshotIntegrityError,
    SnapshotLockedError,
    publish,
    record_failed_run,
    snapshot_lock,
)

DAY1 = date(2026, 11, 19)
DAY2 = date(2026, 11, 20)
DAY3 = date(2026, 11, 21)
DAY4 = date(2026, 11, 22)
ONE_DAY = DAY2 - DAY1
STARTED = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
Tables = dict[str, pa.Table]
CHILD_TIMEOUT_SECONDS = 60.0
"""Only a hung child ever waits this long; it fails the test instead of hanging it."""


# ----------------------------------------------------------------------------- helpers


def night(day: date, tag: str, papers: int = 3, words: int = 5) -> Tables:
    """A small snapshot with a row in every table, whose contents depend on `tag`."""
    rng = random.Random(f"{tag}-{papers}")
    vocabulary = [f"w{i}" for i in range(2000)]
    ids = [f"2409.{10000 + i}" for i in range(papers)]

    def link(position: int, kind: Kind, entity_id: str, item: str, resolved: bool = False) -> Link:
        occurrence = Occurrence(
            "list.md", position, position + 1, ("Models",), None, tag, item, True, "u", "inline"
        )
        identity = Identity(kind, entity_id, f"https://example.org/{entity_id}", "example.org")
        if resolved:
            return Link(occurrence, identity, entity_id, "id")
        return Link(occurrence, identity)

    links = [link(i, "arxiv", arxiv_id, f"item {i}", True) for i, arxiv_id in enumerate(ids)]
    links += [
        link(papers, "github_repo", "QwenLM/Qwen2-VL", "item 0"),  # the first paper's code
        link(papers + 1, "hf_model", "Qwen/Qwen2-VL-7B", "models"),
        link(papers + 2, "hf_collection", "Qwen/qwen2-vl-66cee7455501d7126940800d", "models"),
    ]
    records = {
        arxiv_id: PaperRecord(
            arxiv_id,
            "ok",
            title=f"{tag} paper {arxiv_id}",
            authors=("A. Author",),
            abstract=" ".join(rng.choices(vocabulary, k=words)),
            published=STARTED,
            data_fetched_at=STARTED,
        )
        for arxiv_id in ids
    }
    model = HubRepoRecord(
        "model",
        "Qwen/Qwen2-VL-7B",
        "Qwen/Qwen2-VL-7B",
        "ok",
        params_total=8_291_375_616,
        params_by_dtype=(("BF16", 8_291_375_616),),
        arxiv_ids=(ids[0],),
        data_fetched_at=STARTED,
    )
    collection = HubRepoRecord(
        "collection",
        "Qwen/qwen2-vl-66cee7455501d7126940800d",
        "Qwen/qwen2-vl-66cee7455501d7126940800d",
        "ok",
        title="Qwen2-VL",
        items=(CollectionItem("model", "Qwen/Qwen2-VL-7B"), CollectionItem("paper", ids[0])),
        data_fetched_at=STARTED,
    )
    repos: dict[RepoRef, HubRepoRecord] = {
        (r.repo_type, r.requested_id): r for r in (model, collection)
    }
    given = SnapshotInputs(links, papers=records, repos=repos)
    return build_tables(given, snapshot_date=day)


TABLE_ROWS = {"links": 6, "papers": 3, "models": 1, "repos": 1, "github_repos": 1, "changes": 6}
"""Rows of each table of a `night` of three papers."""


def entry(run_id: str, day: date, status: str = "ok", **kw: Any) -> ManifestEntry:
    values: dict[str, Any] = {
        "documents": [Document("list.md", Path("list.md"), "ab" * 32, 1234, links=4)],
        "api_stats": [ApiStats("arxiv", requests=2, by_status={200: 1, 503: 1}, retries=1)],
        "finished_at": STARTED,
    }
    values.update(kw)
    return ManifestEntry(run_id, day, STARTED, status, **values)


def loaded(out: Path, day: date | None = None) -> Tables:
    """Every table of a published snapshot, as `load` reads it, back in Arrow."""
    return {
        name: pa.Table.from_pandas(load(name, out, day), preserve_index=False)
        for name in TABLE_SCHEMAS
    }


def same(a: Tables, b: Tables) -> bool:
    return all(a[name].equals(b[name]) for name in TABLE_SCHEMAS)


def as_loaded(tables: Tables) -> Tables:
    """Tables through the same pandas round trip as `loaded`, for comparison."""
    return {
        name: pa.Table.from_pandas(t.to_pandas(types_mapper=pd.ArrowDtype), preserve_index=False)
        for name, t in tables.items()
    }


def hive_views(out: Path) -> dict[tuple[str, str], Path]:
    return {
        (table, part.name): part / "part-0.parquet"
        for table in TABLE_SCHEMAS
        if (out / table).is_dir()
        for part in sorted((out / table).iterdir())
    }


def assert_tidy(out: Path) -> None:
    """Nothing left over: no staging, only current runs, every view its run's file."""
    manifest = read_manifest(out)
    current = manifest[manifest["current"]]
    assert list((out / STAGING_DIR).iterdir()) == []
    assert sorted(p.name for p in (out / RUNS_DIR).iterdir()) == sorted(current["run_id"])
    expected = {
        (table, f"snapshot_date={day}"): out / RUNS_DIR / run_id / f"{table}.parquet"
        for day, run_id in zip(current["snapshot_date"].astype(str), current["run_id"], strict=True)
        for table in TABLE_SCHEMAS
    }
    views = hive_views(out)
    assert set(views) == set(expected)
    for key, view in views.items():
        assert view.read_bytes() == expected[key].read_bytes(), key


# ----------------------------------------------------------------------------- layout


def test_publish_writes_hive_partitions_and_a_manifest_row(tmp_path: Path) -> None:
    out = tmp_path / "enriched"
    tables = night(DAY2, "a")

    published = publish(out, tables, entry("run-1", DAY2))

    for name in TABLE_SCHEMAS:
        part = out / name / "snapshot_date=2026-11-20" / "part-0.parquet"
        assert pq.read_table(part).equals(tables[name])
        assert os.path.samefile(part, published.files[name])
    manifest = read_manifest(out)
    (row,) = manifest.to_dict("records")
    assert row["run_id"] == "run-1" and row["published"] and row["current"]
    assert row["status"] == "ok" and row["snapshot_date"] == DAY2
    assert {t: row[f"{t}_rows"] for t in TABLE_SCHEMAS} == TABLE_ROWS
    assert row["documents"] == [
        {"document": "list.md", "sha256": "ab" * 32, "size_bytes": 1234, "links": 4, "error": None}
    ]
    (arxiv,) = row["api_stats"]
    assert arxiv["requests"] == 2 and arxiv["by_status"] == [
        {"http_status": 200, "responses": 1},
        {"http_status": 503, "responses": 1},
    ]
    assert pq.read_schema(out / MANIFEST_FILE).equals(MANIFEST_SCHEMA)
    assert_tidy(out)


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


def _duckdb_types(sql: str, **tables: pa.Table) -> dict[str, str]:
    connection = duckdb.connect()
    for name, table in tables.items():
        connection.register(name, table)
    relation = connection.sql(sql)
    assert relation is not None
    return dict(zip(relation.columns, map(str, relation.types), strict=True))


# ----------------------------------------------------------------------------- manifest


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


def test_a_rerun_of_the_same_night_replaces_it(tmp_path: Path) -> None:
    out = tmp_path / "enriched"
    publish(out, night(DAY2, "a"), entry("run-1", DAY2))
    rerun = night(DAY2, "b")

    publish(out, rerun, entry("run-2", DAY2))

    assert same(loaded(out), as_loaded(rerun))
    manifest = read_manifest(out)
    assert manifest["run_id"].tolist() == ["run-1", "run-2"]
    assert manifest["current"].tolist() == [False, True]
    assert [p.name for p in (out / "papers").iterdir()] == ["snapshot_date=2026-11-20"]
    assert_tidy(out)


def test_identical_inputs_publish_identical_bytes(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    publish(one, night(DAY2, "a"), entry("run-1", DAY2))
    publish(two, night(DAY2, "a"), entry("run-2", DAY2, finished_at=datetime.now(UTC)))

    for name in TABLE_SCHEMAS:
        file = f"{name}/snapshot_date=2026-11-20/part-0.parquet"
        assert (one / file).read_bytes() == (two / file).read_bytes(), name


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


def test_a_failed_run_adds_a_manifest_row_and_touches_no_table(tmp_path: Path) -> None:
    out = tmp_path / "enriched"
    tables = night(DAY1, "a")
    publish(out, tables, entry("run-1", DAY1))
    views = {k: v.read_bytes() for k, v in hive_views(out).items()}

    record_failed_run(out, entry("run-2", DAY2, status="failed", status_reason="arXiv down"))

    manifest = read_manifest(out)
    assert manifest["status"].tolist() == ["ok", "failed"]
    assert manifest["published"].tolist() == [True, False]
    assert pd.isna(manifest["papers_rows"].iloc[1])
    assert {k: v.read_bytes() for k, v in hive_views(out).items()} == views
    assert same(loaded(out), as_loaded(tables))
    with pytest.raises(SnapshotError, match=r"no snapshot of 2026-11-20 .*published: 2026-11-19"):
        load("papers", out, DAY2)
    with pytest.raises(ValueError, match="needs a status_reason"):
        record_failed_run(out, entry("run-3", DAY2, status="failed"))


def test_a_run_with_failed_status_that_publishes_is_loadable(tmp_path: Path) -> None:
    """A run whose resolvers all failed still publishes its links and statuses."""
    out = tmp_path / "enriched"
    publish(out, night(DAY2, "a"), entry("run-1", DAY2, status="failed", status_reason="x"))

    assert read_manifest(out)["published"].tolist() == [True]
    assert len(load("links", out, DAY2)) == TABLE_ROWS["links"]


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


def test_read_manifest_of_an_empty_directory_is_empty_with_its_columns(tmp_path: Path) -> None:
    manifest = read_manifest(tmp_path / "nothing-yet")

    assert manifest.empty
    assert [*MANIFEST_SCHEMA.names, "current"] == list(manifest.columns)
    assert latest_snapshot(tmp_path / "nothing-yet") is None


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        (entry("../escape", DAY2), ValueError, "it names a directory"),
        (entry("run-2", DAY2, status="dry_run"), ValueError, "status 'dry_run'"),
        (entry("run-2", DAY2, finished_at=datetime(2026, 11, 20)), ValueError, "no timezone"),
        (entry("run-1", DAY3), SnapshotError, "run run-1 is already in"),
    ],
    ids=["unsafe run id", "unknown status", "naive time", "duplicate run id"],
)
def test_publish_refuses_a_bad_entry_and_changes_nothing(
    tmp_path: Path, bad: ManifestEntry, error: type[Exception], message: str
) -> None:
    publish(tmp_path, night(DAY2, "a"), entry("run-1", DAY2))
    before = (tmp_path / MANIFEST_FILE).read_bytes()

    with pytest.raises(error, match=message):
        publish(tmp_path, night(DAY3, "b"), bad)

    assert (tmp_path / MANIFEST_FILE).read_bytes() == before
    assert_tidy(tmp_path)


def test_tables_that_break_their_contract_are_never_published(tmp_path: Path) -> None:
    publish(tmp_path, night(DAY1, "a"), entry("run-1", DAY1))
    tables = night(DAY2, "b")
    tables["models"] = pa.concat_tables([tables["models"], tables["models"]])

    with pytest.raises(SnapshotIntegrityError, match=r"models: key .* not unique"):
        publish(tmp_path, tables, entry("run-2", DAY2))

    assert read_manifest(tmp_path)["run_id"].tolist() == ["run-1"]
    assert not (tmp_path / "models" / "snapshot_date=2026-11-20").exists()


def test_a_write_that_fails_midway_leaves_the_published_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipeline.snapshot.store as snapshot

    first = night(DAY2, "a")
    publish(tmp_path, first, entry("run-1", DAY2))
    written: list[Path] = []
    real = snapshot._write_parquet

    def disk_full(table: pa.Table, path: Path) -> None:
        if len(written) == 3:
            raise OSError(28, "No space left on device")
        written.append(path)
        real(table, path)

    monkeypatch.setattr(snapshot, "_write_parquet", disk_full)
    with pytest.raises(OSError, match="No space left"):
        publish(tmp_path, night(DAY2, "b"), entry("run-2", DAY2))

    assert same(loaded(tmp_path), as_loaded(first))
    assert read_manifest(tmp_path)["run_id"].tolist() == ["run-1"]
    assert_tidy(tmp_path)


def test_leftovers_of_a_killed_run_are_cleared_by_the_next_publish(tmp_path: Path) -> None:
    first = night(DAY1, "a")
    publish(tmp_path, first, entry("run-1", DAY1))
    (tmp_path / STAGING_DIR / "run-dead" / "papers.parquet").parent.mkdir(parents=True)
    (tmp_path / STAGING_DIR / "run-dead" / "papers.parquet").write_bytes(b"half")
    shutil.copytree(tmp_path / RUNS_DIR / "run-1", tmp_path / RUNS_DIR / "run-uncommitted")
    orphan = tmp_path / "papers" / "snapshot_date=2026-11-20"
    orphan.mkdir()
    (orphan / "part-0.parquet").write_bytes(b"uncommitted")

    publish(tmp_path, night(DAY3, "c"), entry("run-3", DAY3))

    assert not orphan.exists()
    assert same(loaded(tmp_path, DAY1), as_loaded(first))
    assert_tidy(tmp_path)


def test_snapshot_data_without_a_manifest_is_refused_not_emptied(tmp_path: Path) -> None:
    publish(tmp_path, night(DAY1, "a"), entry("run-1", DAY1))
    (tmp_path / MANIFEST_FILE).unlink()

    with pytest.raises(SnapshotError, match=r"holds snapshot data .* but no _snapshots\.parquet"):
        publish(tmp_path, night(DAY2, "b"), entry("run-2", DAY2))

    assert (tmp_path / "papers" / "snapshot_date=2026-11-19" / "part-0.parquet").exists()


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


def test_a_second_locker_is_told_who_holds_the_lock(tmp_path: Path) -> None:
    with snapshot_lock(tmp_path, "run-nightly"):
        child = Child(lambda say: say(_try_lock(tmp_path)))
        message = child.read()
        assert child.wait() == 0
        with pytest.raises(SnapshotLockedError, match="run run-nightly"):
            # Another thread of this process is another run too.
            _in_thread(lambda: publish(tmp_path, night(DAY2, "b"), entry("run-2", DAY2)))
        # The holder itself publishes under the lock it holds.
        publish(tmp_path, night(DAY2, "a"), entry("run-1", DAY2))

    assert message.startswith("SnapshotLockedError")
    assert f"pid {os.getpid()}" in message and "run run-nightly" in message
    assert "since 20" in message  # the holder's start time, ISO 8601
    with snapshot_lock(tmp_path, "run-next"):  # released on exit
        pass


def _try_lock(out: Path) -> str:
    try:
        with snapshot_lock(out, "run-intruder"):
            return "acquired"
    except SnapshotLockedError as exc:
        return f"SnapshotLockedError: {exc}"


def _in_thread(call: Callable[[], Any]) -> Any:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


# ----------------------------------------------------------------------------- crashes


class Child:
    """A forked child process running `body(say)`; `say` sends the parent a line.

    Forked, not spawned: the child starts in milliseconds with everything imported. It
    only writes Parquet and renames files, which Arrow's fork handlers make safe."""

    def __init__(self, body: Callable[[Callable[[str], None]], None]) -> None:
        read, write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - the child never returns into pytest
            os.close(read)
            code = 0
            try:
                body(lambda line: _write_all(write, f"{line}\n".encode()))
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        os.close(write)
        self.pipe = os.fdopen(read, "rb")
        self.code: int | None = None

    def read(self) -> str:
        """The child's next line; fails rather than hangs if it never comes."""
        ready, _, _ = select.select([self.pipe], [], [], CHILD_TIMEOUT_SECONDS)
        assert ready, "the child process did not answer"
        return self.pipe.readline().decode().rstrip("\n")

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)  # still ours to kill: not reaped before `wait`

    def wait(self) -> int:
        """The child's exit code (negative: the signal that ended it)."""
        if self.code is None:
            deadline = time.monotonic() + CHILD_TIMEOUT_SECONDS
            while (done := os.waitpid(self.pid, os.WNOHANG))[0] == 0:
                if time.monotonic() > deadline:
                    self.kill()
                    raise AssertionError("the child process hung")
                time.sleep(0.001)
            self.code = os.waitstatus_to_exitcode(done[1])
            self.pipe.close()
        return self.code


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


_STEPS = ("replace", "rename", "link", "mkdir", "rmdir", "unlink")
"""The calls that change a directory tree. Those that only touch `.staging` change
nothing a reader sees (and the next run clears `.staging` whole): they are not counted,
so that every kill point is a distinct state of the published tree."""


def _visible(args: tuple[Any, ...]) -> bool:
    paths = [str(a) for a in args if isinstance(a, str | os.PathLike)]
    return not all(f"{os.sep}{STAGING_DIR}" in p for p in paths)


def _publish_and_die_at(kill_at: int, out: Path, tables: Tables, run: ManifestEntry) -> Child:
    """A child that publishes, killed by SIGKILL just before filesystem step `kill_at`
    (0: never; then it reports how many steps a whole publish took)."""

    def body(say: Callable[[str], None]) -> None:
        steps = 0

        def counted(real: Callable[..., Any]) -> Callable[..., Any]:
            def step(*args: Any, **kwargs: Any) -> Any:
                nonlocal steps
                if _visible(args):
                    steps += 1
                    if steps == kill_at:
                        os.kill(os.getpid(), signal.SIGKILL)
                return real(*args, **kwargs)

            return step

        for name in _STEPS:
            setattr(os, name, counted(getattr(os, name)))
        say("publishing")
        publish(out, tables, run)
        say(str(steps))

    return Child(body)


@dataclass
class Versions:
    """The published state crash tests start from, and what the child publishes."""

    base: Path
    nights: dict[date, Tables]
    new: Tables
    new_day: date
    files: dict[date | None, dict[str, bytes]] = field(default_factory=dict)
    """The files of each published night, and (under None) of the new one, by name."""

    def __post_init__(self) -> None:
        for day, run_id in zip(self.nights, ("run-1", "run-2"), strict=True):
            self.files[day] = _files(self.base / RUNS_DIR / run_id)
        self.known(self.new)

    def known(self, new: Tables) -> None:
        self.new = new
        scratch = self.base.parent / f"scratch-{id(new)}"
        publish(self.copy(scratch), new, entry("run-new", self.new_day))
        self.files[None] = _files(scratch / RUNS_DIR / "run-new")

    def copy(self, to: Path) -> Path:
        # Hard links are safe: publishing never writes a file in place.
        shutil.copytree(self.base, to, copy_function=os.link)
        return to

    def check_after_kill(self, out: Path) -> None:
        """Every earlier night reads back as it was (or, when the kill came after the
        commit, the new night reads back complete); the next publish succeeds and tidies."""
        manifest = read_manifest(out)
        runs = manifest["run_id"].tolist()
        committed = runs == ["run-1", "run-2", "run-new"]
        assert committed or runs == ["run-1", "run-2"], runs
        expected: dict[date, date | None] = {day: day for day in self.nights}
        if committed:
            expected[self.new_day] = None
        for day, version in expected.items():
            tables = self.new if version is None else self.nights[day]
            papers = load("papers", out, day)
            assert papers.equals(tables["papers"].to_pandas(types_mapper=pd.ArrowDtype)), day
            # Every table of the night, byte for byte, as the manifest names it.
            published = _files(out / RUNS_DIR / papers.attrs["run_id"])
            assert published == self.files[version], (day, committed)
        # Hive views: never ahead of the manifest; behind it only until the next publish.
        allowed: dict[tuple[str, str], list[bytes]] = defaultdict(list)
        for day in self.nights:
            for table in TABLE_SCHEMAS:
                allowed[table, f"snapshot_date={day}"].append(self.files[day][f"{table}.parquet"])
        if committed:
            for table in TABLE_SCHEMAS:
                new = self.files[None][f"{table}.parquet"]
                allowed[table, f"snapshot_date={self.new_day}"].append(new)
        for key, view in hive_views(out).items():
            assert view.read_bytes() in allowed[key], (key, committed)

        publish(out, night(DAY4, "after"), entry("run-after", DAY4))
        assert_tidy(out)


def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir()}


@pytest.fixture(params=[DAY2, DAY3], ids=["rerun of a night", "new night"])
def versions(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Versions:
    base = tmp_path_factory.mktemp("base") / "enriched"
    nights = {DAY1: night(DAY1, "a"), DAY2: night(DAY2, "b")}
    for i, (day, tables) in enumerate(nights.items(), start=1):
        publish(base, tables, entry(f"run-{i}", day))
    new_day: date = request.param
    return Versions(base, nights, night(new_day, "new"), new_day)


@pytest.mark.slow
def test_killing_a_publish_at_every_step_leaves_the_previous_snapshot_intact(
    tmp_path: Path, versions: Versions
) -> None:
    run = entry("run-new", versions.new_day)
    whole = _publish_and_die_at(0, versions.copy(tmp_path / "count"), versions.new, run)
    assert whole.read() == "publishing"
    steps = int(whole.read())
    assert whole.wait() == 0 and steps > 10

    for kill_at in range(1, steps + 1):
        out = versions.copy(tmp_path / f"kill-{kill_at}")
        child = _publish_and_die_at(kill_at, out, versions.new, run)
        assert child.wait() == -signal.SIGKILL
        versions.check_after_kill(out)


@pytest.mark.slow
def test_killing_a_big_publish_at_random_moments_leaves_the_previous_snapshot_intact(
    tmp_path: Path, versions: Versions
) -> None:
    versions.known(night(versions.new_day, "big", papers=3000, words=300))
    run = entry("run-new", versions.new_day)
    started = time.monotonic()
    publish(versions.copy(tmp_path / "calibrate"), versions.new, run)
    seconds = time.monotonic() - started
    rng = random.Random(20261120)

    for iteration in range(10):
        out = versions.copy(tmp_path / f"kill-{iteration}")
        child = _publish_and_die_at(0, out, versions.new, run)
        assert child.read() == "publishing"
        time.sleep(rng.uniform(0, seconds * 1.2))
        child.kill()
        assert child.wait() in (0, -signal.SIGKILL)
        versions.check_after_kill(out)
