"""Publishing snapshots (`pipeline.snapshot.store`): layout and file modes, the manifest
as commit point, same-day replacement, integrity checks, the lock, garbage collection and
crash safety.

Tables are built from small hand-made inputs (`published.night`). Crash tests SIGKILL a
forked child process that publishes, just before every filesystem step of a publish and
at random moments of a big one. Reading back is tested in `test_read.py`.
"""

from __future__ import annotations

import os
import random
import select
import shutil
import signal
import stat
import threading
import time
import traceback
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from published import (
    DAY1,
    DAY2,
    DAY3,
    DAY4,
    TABLE_ROWS,
    Tables,
    as_loaded,
    assert_tidy,
    entry,
    hive_views,
    loaded,
    night,
    same,
)

from pipeline.snapshot.read import load, read_manifest
from pipeline.snapshot.schemas import MANIFEST_SCHEMA, TABLE_SCHEMAS
from pipeline.snapshot.store import (
    LOCK_FILE,
    MANIFEST_FILE,
    RUNS_DIR,
    STAGING_DIR,
    ManifestEntry,
    SnapshotError,
    SnapshotIntegrityError,
    SnapshotLockedError,
    check_tables,
    publish,
    record_failed_run,
    snapshot_lock,
)

CHILD_TIMEOUT_SECONDS = 60.0
"""Only a hung child ever waits this long; it fails the test instead of hanging it."""


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


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_every_file_gets_the_mode_the_umask_gives_new_files(tmp_path: Path, umask: int) -> None:
    """The manifest, the lock, run files and partitions alike: whoever can read the
    tables can read the manifest that says which are current."""
    before = os.umask(umask)
    try:
        publish(tmp_path, night(DAY1, "a"), entry("run-1", DAY1))
        record_failed_run(tmp_path, entry("run-2", DAY2, "failed", status_reason="x"))
    finally:
        os.umask(before)

    files = [
        tmp_path / MANIFEST_FILE,
        tmp_path / LOCK_FILE,
        *(tmp_path / RUNS_DIR / "run-1").iterdir(),
        *hive_views(tmp_path).values(),
    ]
    modes = {
        path.relative_to(tmp_path).as_posix(): stat.S_IMODE(path.stat().st_mode) for path in files
    }
    assert modes == dict.fromkeys(modes, 0o666 & ~umask)
    assert len(modes) == 2 + 2 * len(TABLE_SCHEMAS)


# ----------------------------------------------------------------------------- manifest


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


# ----------------------------------------------------------------------------- integrity


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


def test_check_tables_refuses_a_duplicate_key_naming_it() -> None:
    tables = night(DAY2, "a")
    papers = tables["papers"]
    tables["papers"] = pa.concat_tables([papers, papers.slice(0, 1)])

    with pytest.raises(SnapshotIntegrityError, match=r"papers.*not unique.*2409\.10000"):
        check_tables(tables)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.drop_columns(["title"]), "schema differs"),
        (
            lambda t: t.set_column(
                0, t.schema.field("arxiv_id"), pa.array([None] * t.num_rows, pa.string())
            ),
            "nulls in column arxiv_id",
        ),
        (
            lambda t: t.set_column(
                t.schema.get_field_index("status"),
                t.schema.field("status"),
                pa.array(["fine"] * t.num_rows),
            ),
            "unknown statuses",
        ),
    ],
    ids=["missing column", "null key", "unknown status"],
)
def test_check_tables_refuses_a_table_off_its_schema(change: Any, message: str) -> None:
    tables = night(DAY2, "a")
    tables["papers"] = change(tables["papers"])

    with pytest.raises(SnapshotIntegrityError, match=message):
        check_tables(tables)


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


# ----------------------------------------------------------------------------- lock


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
