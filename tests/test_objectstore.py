"""Snapshots on object storage (`pipeline.objectstore`, the S3 paths of the snapshot
store and read): against moto's S3 server on loopback, a bucket per test.

What must hold there is what holds on a local disk (`test_store.py`, `test_read.py`):
the same tables and the same bytes, a manifest commit that only one writer can make, a
lock that names its holder, and readers (pandas, DuckDB, Polars) that find the tables.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import fsspec
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from published import DAY1, DAY2, DAY3, TABLE_ROWS, as_loaded, entry, loaded, night, same

from pipeline import objectstore
from pipeline.objectstore import (
    Lease,
    PreconditionFailed,
    Remote,
    is_remote,
    location,
    machine_id,
)
from pipeline.snapshot import store as store_module
from pipeline.snapshot.read import latest_snapshot, load, previous_tables, read_manifest
from pipeline.snapshot.schemas import TABLE_SCHEMAS
from pipeline.snapshot.store import (
    LOCK_FILE,
    MANIFEST_FILE,
    RUNS_DIR,
    SnapshotError,
    SnapshotLockedError,
    publish,
    record_failed_run,
    snapshot_lock,
)


@pytest.mark.parametrize(
    ("value", "remote", "named"),
    [
        ("s3://bucket/prefix", True, "s3://bucket/prefix"),
        ("s3://bucket/prefix/", True, "s3://bucket/prefix"),
        ("gs://bucket/p", True, "gs://bucket/p"),
        ("file:///srv/enriched", False, Path("/srv/enriched")),
        ("enriched", False, Path("enriched")),
        ("/abs/raw", False, Path("/abs/raw")),
        (Path("s3:/not/a/url"), False, Path("s3:/not/a/url")),
    ],
)
def test_a_location_is_a_local_path_unless_it_is_an_object_store_url(
    value: str | Path, remote: bool, named: str | Path
) -> None:
    assert is_remote(value) is remote
    assert location(value) == named


def test_a_night_published_to_s3_is_the_night_published_locally(
    s3_bucket: str, tmp_path: Path
) -> None:
    url = f"{s3_bucket}/enriched"
    local = tmp_path / "enriched"
    for out in (url, local):
        publish(out, night(DAY1, "a"), entry("run-1", DAY1))
        publish(out, night(DAY2, "b"), entry("run-2", DAY2))

    assert same(loaded(url), loaded(local))
    assert same(loaded(url, DAY1), as_loaded(night(DAY1, "a")))
    fs = fsspec.filesystem("s3")
    bucket_path = url.removeprefix("s3://")
    for name in TABLE_SCHEMAS:
        # The same bytes: one writer of Parquet for both stores.
        remote_bytes = fs.cat_file(f"{bucket_path}/{RUNS_DIR}/run-2/{name}.parquet")
        assert remote_bytes == (local / RUNS_DIR / "run-2" / f"{name}.parquet").read_bytes()
        view = f"{bucket_path}/{name}/snapshot_date=2026-11-20/part-0.parquet"
        assert fs.cat_file(view) == remote_bytes
    local_manifest = read_manifest(local).drop(columns=["current"])
    remote_manifest = read_manifest(url).drop(columns=["current"])
    assert local_manifest.equals(remote_manifest)
    latest = latest_snapshot(url)
    assert latest is not None and latest.files["links"] == f"{url}/{RUNS_DIR}/run-2/links.parquet"
    baseline = previous_tables(url, before=DAY2)
    assert baseline is not None and baseline["papers"].num_rows == TABLE_ROWS["papers"]


def test_a_rerun_replaces_its_night_and_leaves_no_garbage(s3_bucket: str) -> None:
    url = f"{s3_bucket}/out"
    publish(url, night(DAY1, "a"), entry("run-1", DAY1))
    publish(url, night(DAY1, "b"), entry("run-1b", DAY1))
    record_failed_run(url, entry("run-1c", DAY1, "failed", status_reason="arXiv down"))

    assert same(loaded(url), as_loaded(night(DAY1, "b")))
    store = Remote.at(url)
    assert store.children(RUNS_DIR) == ["run-1b"]
    assert store.children("papers") == ["snapshot_date=2026-11-19"]
    manifest = read_manifest(url)
    assert list(manifest["run_id"]) == ["run-1", "run-1b", "run-1c"]
    assert list(manifest["current"]) == [False, True, False]
    with pytest.raises(SnapshotError, match="run run-1b is already in s3://"):
        publish(url, night(DAY1, "c"), entry("run-1b", DAY1))


def test_pandas_duckdb_and_polars_read_the_tables_on_s3(s3_bucket: str) -> None:
    url = f"{s3_bucket}/enriched"
    publish(url, night(DAY1, "a"), entry("run-1", DAY1))
    publish(url, night(DAY2, "b"), entry("run-2", DAY2))

    papers = load("papers", url)
    assert papers.attrs == {"snapshot_date": "2026-11-20", "run_id": "run-2"}
    assert len(papers) == TABLE_ROWS["papers"]
    # DuckDB without its httpfs extension (a download this machine cannot make): an
    # fsspec filesystem registered with the connection serves s3:// paths.
    connection = duckdb.connect()
    connection.register_filesystem(fsspec.filesystem("s3"))
    counted = connection.sql(
        f"SELECT snapshot_date, count(*) FROM read_parquet('{url}/papers/*/*.parquet',"
        " hive_partitioning=true) GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert [(str(d), n) for d, n in counted] == [("2026-11-19", 3), ("2026-11-20", 3)]
    # Polars reads S3 itself (object_store), with AWS_ENDPOINT_URL from the environment.
    lazy = pl.scan_parquet(f"{url}/links/**/*.parquet", hive_partitioning=True)
    assert lazy.collect().height == 2 * TABLE_ROWS["links"]
    declared = pl.from_arrow(TABLE_SCHEMAS["links"].empty_table())
    assert isinstance(declared, pl.DataFrame)
    assert dict(lazy.collect_schema()) == {**dict(declared.schema), "snapshot_date": pl.Date}


def test_load_names_the_bucket_when_nothing_was_published(s3_bucket: str) -> None:
    with pytest.raises(FileNotFoundError, match=rf"{s3_bucket}/empty/{MANIFEST_FILE}"):
        load("papers", f"{s3_bucket}/empty")


def test_a_lock_held_by_another_writer_fails_clearly(s3_bucket: str) -> None:
    url = f"{s3_bucket}/out"
    # Another writer: a live process of this host that holds the lock.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        _plant_lock(url, pid=holder.pid, run_id="run-other", renewed=datetime.now(UTC))
        with pytest.raises(SnapshotLockedError) as refused:
            publish(url, night(DAY1, "a"), entry("run-1", DAY1))
    finally:
        holder.communicate(b"")
    message = str(refused.value)
    assert "\n" not in message
    assert f"lock {url}/{LOCK_FILE}" in message
    assert f"run run-other (pid {holder.pid} on {socket.gethostname()}" in message
    assert read_manifest(url).empty


@pytest.mark.parametrize(
    ("why", "pid", "renewed_seconds_ago"),
    [
        ("its process is gone", "dead", 1.0),
        ("its lease ran out", "other-host", 10_000.0),
    ],
)
def test_a_stale_lock_is_taken_over(
    s3_bucket: str, why: str, pid: str, renewed_seconds_ago: float
) -> None:
    url = f"{s3_bucket}/out"
    if pid == "dead":
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        _plant_lock(url, pid=gone.pid, run_id="run-killed", renewed=_ago(renewed_seconds_ago))
    else:
        _plant_lock(
            url, pid=1, run_id="run-lost", renewed=_ago(renewed_seconds_ago), host="elsewhere"
        )

    publish(url, night(DAY1, "a"), entry("run-1", DAY1))

    assert list(read_manifest(url)["run_id"]) == ["run-1"], why
    assert Remote.at(url).token(LOCK_FILE) is None  # released after use


def test_a_live_lock_of_another_host_is_respected_until_its_lease_runs_out(
    s3_bucket: str,
) -> None:
    url = f"{s3_bucket}/out"
    _plant_lock(url, pid=1, run_id="run-far", renewed=_ago(5.0), host="elsewhere")
    with (
        pytest.raises(SnapshotLockedError, match="run run-far \\(pid 1 on elsewhere"),
        snapshot_lock(url, "run-1"),
    ):
        pass


def test_the_holder_renews_its_lease_and_only_it_deletes_the_lock(s3_bucket: str) -> None:
    store = Remote.at(f"{s3_bucket}/out")
    lease = Lease(store, LOCK_FILE, "run-1", lease_seconds=0.6)
    lease.acquire()
    try:
        first = store.read_versioned(LOCK_FILE)
        assert first is not None
        renewed = json.loads(first[0])["renewed_at"]
        _wait_for(lambda: _renewed_at(store) != renewed)
        lease.check()
    finally:
        lease.release()
    assert store.token(LOCK_FILE) is None


def test_a_dead_pid_of_another_machine_with_this_hostname_is_not_taken_for_gone(
    s3_bucket: str,
) -> None:
    # Containers on two machines: one hostname, one low pid; only the boot id differs.
    url = f"{s3_bucket}/out"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    _plant_lock(
        url, pid=gone.pid, run_id="run-twin", renewed=_ago(1.0), machine="other-boot/pid:[1]"
    )

    with pytest.raises(SnapshotLockedError, match="run run-twin"):
        publish(url, night(DAY1, "a"), entry("run-1", DAY1))
    assert read_manifest(url).empty


def test_release_never_deletes_a_lock_taken_over_since_it_last_looked(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Remote.at(f"{s3_bucket}/out")
    lease = Lease(store, LOCK_FILE, "run-1", lease_seconds=120.0)
    lease.acquire()
    mine = store.token(LOCK_FILE)
    # Another run takes the lock over; what this holder last saw is still its own version.
    store.put(LOCK_FILE, b'{"run_id": "run-2"}')
    monkeypatch.setattr(Remote, "token", lambda self, key: mine)

    lease.release()

    found = store.read_versioned(LOCK_FILE)
    assert found is not None and json.loads(found[0])["run_id"] == "run-2"


def test_a_commit_on_a_manifest_changed_by_another_writer_is_refused(s3_bucket: str) -> None:
    url = f"{s3_bucket}/out"
    store = Remote.at(url)
    publish(url, night(DAY1, "a"), entry("run-1", DAY1))
    found = store.read_versioned(MANIFEST_FILE)
    assert found is not None
    data, version = found
    # Another writer commits a new version (an ETag is the bytes' MD5: other bytes).
    store.put(MANIFEST_FILE, data + b" ")
    with pytest.raises(PreconditionFailed):
        store.put(MANIFEST_FILE, data, if_match=version)
    with pytest.raises(PreconditionFailed):
        store.put(MANIFEST_FILE, data, if_absent=True)


def _plant_lock(
    url: str,
    *,
    pid: int,
    run_id: str,
    renewed: datetime,
    host: str | None = None,
    machine: str | None = None,
) -> None:
    holder = {
        "pid": pid,
        "host": host or socket.gethostname(),
        "machine": machine or (None if host else machine_id()),
        "run_id": run_id,
        "started_at": renewed.isoformat(timespec="seconds"),
        "renewed_at": renewed.isoformat(),
        "lease_seconds": 120.0,
    }
    Remote.at(url).put(LOCK_FILE, json.dumps(holder).encode())


def _ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


def _renewed_at(store: Remote) -> str:
    found = store.read_versioned(LOCK_FILE)
    assert found is not None
    value: str = json.loads(found[0])["renewed_at"]
    return value


def _wait_for(condition: Callable[[], bool], timeout_seconds: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_commit_after_another_writer_changed_the_manifest_commits_nothing(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{s3_bucket}/out"
    publish(url, night(DAY1, "a"), entry("run-1", DAY1))
    store = Remote.at(url)
    real = store_module._remote_views_and_garbage
    calls: list[int] = []

    def another_writer_commits(target: Remote, manifest: pa.Table) -> None:
        # Between this run's read of the manifest and its commit, a writer that thought
        # the lock was stale commits a night of its own.
        if not calls:
            other = pa.BufferOutputStream()
            pq.write_table(store_module.manifest_table(target), other, compression="snappy")
            target.put(MANIFEST_FILE, other.getvalue().to_pybytes())  # another version
        calls.append(1)
        real(target, manifest)

    monkeypatch.setattr(store_module, "_remote_views_and_garbage", another_writer_commits)
    with pytest.raises(SnapshotError, match=r"changed by another writer.*nothing was committed"):
        publish(url, night(DAY2, "b"), entry("run-2", DAY2))

    assert store.children(RUNS_DIR) == ["run-1"]  # its run objects removed


def test_a_publisher_killed_before_its_commit_leaves_the_last_night_and_no_lock_to_clear(
    s3_bucket: str, tmp_path: Path
) -> None:
    url = f"{s3_bucket}/out"
    publish(url, night(DAY1, "a"), entry("run-1", DAY1))
    script = (
        "import os, signal\n"
        "from published import DAY2, entry, night\n"
        "from pipeline.snapshot import store\n"
        "def die(*args, **kwargs):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "store._commit_remote = die\n"
        f"store.publish({url!r}, night(DAY2, 'b'), entry('run-killed', DAY2))\n"
    )
    tests_dir = str(Path(__file__).resolve().parent)
    killed = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": tests_dir},
        capture_output=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    store = Remote.at(url)
    assert store.token(LOCK_FILE) is not None  # a dead process cannot delete its lock
    assert store.children(RUNS_DIR) == ["run-1", "run-killed"]
    assert same(loaded(url), as_loaded(night(DAY1, "a")))

    # Its process is gone: the next run takes the lock at once and clears what it left.
    publish(url, night(DAY2, "c"), entry("run-2", DAY2))
    assert store.children(RUNS_DIR) == ["run-1", "run-2"]
    assert same(loaded(url), as_loaded(night(DAY2, "c")))


_PART_BYTES = 5 * 2**20
"""The smallest part S3 (and moto) takes: objects of twice this go up in parts."""


def test_conditional_writes_of_an_object_that_would_go_up_in_parts_hold(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(objectstore, "UPLOAD_CHUNK_BYTES", _PART_BYTES)
    store = Remote.at(f"{s3_bucket}/out")
    data = os.urandom(2 * _PART_BYTES + 1)

    first = store.put("big", data, if_absent=True)
    with pytest.raises(PreconditionFailed):
        store.put("big", data, if_absent=True)
    second = store.put("big", data[::-1], if_match=first)
    with pytest.raises(PreconditionFailed):
        store.put("big", data, if_match=first)
    assert store.read("big") == data[::-1] and store.token("big") == second


def test_views_of_tables_uploaded_in_parts_are_copied_once(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(objectstore, "UPLOAD_CHUNK_BYTES", _PART_BYTES)
    url = f"{s3_bucket}/out"
    copied: list[str] = []
    real_copy = Remote.copy

    def counted(self: Remote, source: str, target: str) -> None:
        copied.append(target)
        real_copy(self, source, target)

    monkeypatch.setattr(Remote, "copy", counted)
    # About 12 MB of papers: uploaded in parts, so its ETag is no MD5 a copy could get.
    publish(url, night(DAY1, "a", papers=4, words=1_500_000), entry("run-1", DAY1))
    time.sleep(1.1)  # a listing's times are whole seconds
    publish(url, night(DAY2, "b"), entry("run-2", DAY2))
    time.sleep(1.1)
    copied.clear()
    publish(url, night(DAY3, "c"), entry("run-3", DAY3))

    assert sorted(copied) == sorted(
        f"{table}/snapshot_date={DAY3.isoformat()}/part-0.parquet" for table in TABLE_SCHEMAS
    )
    view = f"papers/snapshot_date={DAY1.isoformat()}/part-0.parquet"
    store = Remote.at(url)
    assert store.read(view) == store.read(f"{RUNS_DIR}/run-1/papers.parquet")


def test_the_lease_is_read_from_the_environment_when_the_lock_is_taken(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIPELINE_LOCK_LEASE_SECONDS", "37.5")
    url = f"{s3_bucket}/out"
    with snapshot_lock(url, "run-1"):
        found = Remote.at(url).read_versioned(LOCK_FILE)
    assert found is not None and json.loads(found[0])["lease_seconds"] == 37.5
