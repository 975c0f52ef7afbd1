"""Publishing and reading snapshots: layout, declared types in every reader, the manifest
as commit point, same-day replacement, the lock, crash safety, `load`.

Building tables is tested in `test_snapshot.py`; here they are built from small
hand-made inputs. Crash tests kill a child process (forked from a preloaded fork server,
so each costs milliseconds) at every filesystem step of a publish and at random moments.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import shutil
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from pipeline.extract import Occurrence
from pipeline.identify import Identity
from pipeline.links import Document, Link
from pipeline.records import ApiStats
from pipeline.resolve_arxiv import PaperRecord
from pipeline.resolve_hub import HubRepoRecord
from pipeline.schemas import MANIFEST_SCHEMA, TABLE_SCHEMAS
from pipeline.snapshot import (
    MANIFEST_FILE,
    RUNS_DIR,
    STAGING_DIR,
    ManifestEntry,
    SnapshotError,
    SnapshotInputs,
    SnapshotIntegrityError,
    SnapshotLockedError,
    build_tables,
    latest_snapshot,
    load,
    previous_tables,
    publish,
    read_manifest,
    record_failed_run,
    snapshot_lock,
)

DAY1 = date(2026, 11, 19)
DAY2 = date(2026, 11, 20)
DAY3 = date(2026, 11, 21)
STARTED = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
Tables = dict[str, pa.Table]


# ----------------------------------------------------------------------------- helpers


def night(day: date, tag: str, papers: int = 3, words: int = 5) -> Tables:
    """A small snapshot whose contents depend on `tag` (so versions differ)."""
    rng = random.Random(f"{tag}-{papers}")
    vocabulary = [f"w{i}" for i in range(2000)]
    ids = [f"2409.{10000 + i}" for i in range(papers)]
    links = [
        Link(
            Occurrence(
                "list.md", i, i + 1, ("Models",), None, tag, f"item {i}", True, "u", "inline"
            ),
            Identity("arxiv", arxiv_id, f"https://arxiv.org/abs/{arxiv_id}", "arxiv.org"),
            arxiv_id,
            "id",
        )
        for i, arxiv_id in enumerate(ids)
    ]
    links.append(
        Link(
            Occurrence("list.md", papers, 0, (), None, "m", "m", True, "u", "inline"),
            Identity(
                "hf_model",
                "Qwen/Qwen2-VL-7B",
                "https://huggingface.co/Qwen/Qwen2-VL-7B",
                "huggingface.co",
            ),
        )
    )
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
    repos = {
        ("model", "Qwen/Qwen2-VL-7B"): HubRepoRecord(
            "model",
            "Qwen/Qwen2-VL-7B",
            "Qwen/Qwen2-VL-7B",
            "ok",
            params_total=8_291_375_616,
            arxiv_ids=(ids[0],),
            data_fetched_at=STARTED,
        )
    }
    given = SnapshotInputs(links, papers=records, repos=repos)
    return build_tables(given, snapshot_date=day)


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
    assert row["papers_rows"] == 3 and row["links_rows"] == 4 and row["models_rows"] == 1
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
        for field in schema:
            assert frame[field.name].dtype == pd.ArrowDtype(field.type), (name, field.name)
    papers = load("papers", out)
    assert papers.attrs == {"snapshot_date": "2026-11-20", "run_id": "run-1"}
    assert papers["authors"].iloc[0] == ["A. Author"]
    assert papers["published"].iloc[0] == pd.Timestamp("2026-11-20 03:00", tz="UTC")
    assert pd.isna(papers["latest_version"].iloc[0])  # null stays null, not NaN-as-float
    assert papers["hf_models"].map(len).tolist() == [1, 0, 0]
    models = load("models", out)
    assert models["params_total"].iloc[0] == 8_291_375_616


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
        for field in schema:
            assert frame[field.name].dtype == pd.ArrowDtype(field.type), (name, field.name)
        # DuckDB and Polars: their own type for each column equals their type for the
        # declared schema (nothing widened, nothing lost).
        glob = f"{folder}/*/*.parquet"
        relation = duckdb.sql(f"SELECT * FROM read_parquet('{glob}', hive_partitioning=true)")
        expected = duckdb.sql("SELECT * FROM declared_empty")
        assert dict(zip(relation.columns, map(str, relation.types), strict=True)) == {
            **dict(zip(expected.columns, map(str, expected.types), strict=True)),
            "snapshot_date": "DATE",
        }, name
        lazy = pl.scan_parquet(f"{folder}/**/*.parquet", hive_partitioning=True)
        assert dict(lazy.collect_schema()) == {
            **dict(pl.from_arrow(declared_empty).schema),  # type: ignore[union-attr]
            "snapshot_date": pl.Date,
        }, name
        assert lazy.collect().height == 2 * TABLE_ROWS[name]


TABLE_ROWS = {"links": 4, "papers": 3, "models": 1, "repos": 0, "github_repos": 0, "changes": 4}


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
    assert len(load("links", out, DAY2)) == 4


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
    import pipeline.snapshot as snapshot

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
    versions = [night(DAY2, f"v{i}", papers=30) for i in range(6)]
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


def test_a_second_locker_is_told_who_holds_the_lock(
    tmp_path: Path, fork_server: mp.context.ForkServerContext
) -> None:
    with snapshot_lock(tmp_path, "run-nightly"):
        message = _in_child(fork_server, _try_lock, str(tmp_path))
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


def _try_lock(out: str) -> str:
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


@pytest.fixture(scope="module")
def fork_server() -> mp.context.ForkServerContext:
    """Children forked from a server that has already imported the pipeline."""
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(["pipeline.snapshot", __name__])
    return context


def _in_child(context: mp.context.ForkServerContext, call: Callable[..., str], *args: Any) -> str:
    parent, child = context.Pipe()
    process = context.Process(target=_send_result, args=(child, call, *args))
    process.start()
    result: str = parent.recv()
    process.join()
    return result


def _send_result(conn: Connection, call: Callable[..., str], *args: Any) -> None:
    conn.send(call(*args))


_STEPS = ("replace", "rename", "link", "mkdir", "rmdir", "unlink")
"""Every call that changes what a reader of the directory can see."""


def _publish_child(
    conn: Connection, out: str, tables: Tables, manifest_entry: ManifestEntry, kill_at: int
) -> None:
    """Publish, dying by SIGKILL just before filesystem step `kill_at` (0: never)."""
    steps = 0

    def counted(real: Callable[..., Any]) -> Callable[..., Any]:
        def step(*args: Any, **kwargs: Any) -> Any:
            nonlocal steps
            steps += 1
            if steps == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)

        return step

    for name in _STEPS:
        setattr(os, name, counted(getattr(os, name)))
    conn.send("publishing")
    publish(out, tables, manifest_entry)
    conn.send(steps)


@pytest.fixture(scope="module")
def published_base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Tables, Tables]:
    """Two published nights; the crash tests start from hard-linked copies of it."""
    base = tmp_path_factory.mktemp("base") / "enriched"
    first, second = night(DAY1, "a"), night(DAY2, "b")
    publish(base, first, entry("run-1", DAY1))
    publish(base, second, entry("run-2", DAY2))
    return base, first, second


def _copy(base: Path, to: Path) -> Path:
    # Hard links are safe: publishing never writes a file in place.
    shutil.copytree(base, to, copy_function=os.link)
    return to


def _check_after_kill(
    out: Path, old: dict[date, Tables], new: Tables, new_day: date, new_run: str
) -> None:
    """Every earlier night reads back as it was (or, if the kill came after the commit,
    the new night reads back complete), then the next publish succeeds and tidies up."""
    manifest = read_manifest(out)
    committed = new_run in manifest["run_id"].tolist()
    assert manifest["run_id"].tolist()[:2] == ["run-1", "run-2"]
    assert len(manifest) == 2 + committed
    for day, tables in old.items():
        want = new if committed and day == new_day else tables
        assert same(loaded(out, day), as_loaded(want)), (day, committed)
    if committed:
        assert same(loaded(out, new_day), as_loaded(new))
    for (table, _), view in hive_views(out).items():
        got = pq.read_table(view)  # complete: readable, and one of the versions
        assert any(got.equals(t[table]) for t in (*old.values(), new)), view

    publish(out, night(DAY3, "after"), entry("run-after", DAY3))
    assert_tidy(out)
    assert same(loaded(out, DAY1), as_loaded(old[DAY1]))


@pytest.mark.parametrize("new_day", [DAY2, DAY3], ids=["rerun of a night", "new night"])
def test_killing_a_publish_at_every_step_leaves_the_previous_snapshot_intact(
    tmp_path: Path,
    fork_server: mp.context.ForkServerContext,
    published_base: tuple[Path, Tables, Tables],
    new_day: date,
) -> None:
    base, first, second = published_base
    new = night(new_day, "new")
    run_id = "run-new"

    steps = _run_child(fork_server, _copy(base, tmp_path / "count"), new, new_day, 0)
    assert isinstance(steps, int) and steps > 10
    for kill_at in range(1, steps + 1):
        out = _copy(base, tmp_path / f"kill-{kill_at}")
        assert _run_child(fork_server, out, new, new_day, kill_at) == -signal.SIGKILL
        _check_after_kill(out, {DAY1: first, DAY2: second}, new, new_day, run_id)


def _run_child(
    context: mp.context.ForkServerContext, out: Path, tables: Tables, day: date, kill_at: int
) -> int | str:
    """The number of steps of a complete publish, or the child's exit code if killed."""
    parent, child = context.Pipe()
    process = context.Process(
        target=_publish_child, args=(child, str(out), tables, entry("run-new", day), kill_at)
    )
    process.start()
    assert parent.recv() == "publishing"
    process.join(timeout=60)
    if process.exitcode == 0:
        steps: int = parent.recv()
        return steps
    assert process.exitcode is not None
    return process.exitcode


@pytest.mark.slow
def test_killing_a_big_publish_at_random_moments_leaves_the_previous_snapshot_intact(
    tmp_path: Path,
    fork_server: mp.context.ForkServerContext,
    published_base: tuple[Path, Tables, Tables],
) -> None:
    base, first, second = published_base
    big = night(DAY2, "big", papers=3000, words=300)
    calibration = _copy(base, tmp_path / "calibrate")
    started = time.monotonic()
    publish(calibration, big, entry("run-new", DAY2))
    seconds = time.monotonic() - started
    rng = random.Random(20261120)

    for iteration in range(8):
        out = _copy(base, tmp_path / f"kill-{iteration}")
        parent, child = fork_server.Pipe()
        process = fork_server.Process(
            target=_publish_child, args=(child, str(out), big, entry("run-new", DAY2), 0)
        )
        process.start()
        assert parent.recv() == "publishing"
        time.sleep(rng.uniform(0, seconds * 1.2))
        os.kill(process.pid, signal.SIGKILL)  # type: ignore[arg-type]
        process.join()
        _check_after_kill(out, {DAY1: first, DAY2: second}, big, DAY2, "run-new")
