"""`pipeline.atomic.write_atomically`: the one way a local file is replaced whole."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.atomic import write_atomically
from pipeline.resolve.rawstore import RawStore


@pytest.fixture
def umask_027() -> Iterator[None]:
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def test_a_file_is_replaced_whole_and_nothing_else_is_left(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "report.html"
    write_atomically(target, b"old")
    write_atomically(target, b"new")

    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.html"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    write_atomically(target, b"old")

    with pytest.raises(TypeError):
        write_atomically(target, "not bytes")  # type: ignore[arg-type]

    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


@pytest.mark.usefixtures("umask_027")
def test_files_get_the_mode_the_umask_gives_new_files(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    write_atomically(target, b"x")

    assert stat.S_IMODE(target.stat().st_mode) == 0o640


@pytest.mark.usefixtures("umask_027")
def test_raw_bodies_are_as_readable_as_the_snapshot(tmp_path: Path) -> None:
    # A body was 0600 whatever the umask (`mkstemp`): unreadable to the group that reads
    # the snapshots and the raw store's index.
    store = RawStore(tmp_path / "raw")
    with store:
        store.record(
            api="arxiv",
            endpoint="query",
            url="https://export.arxiv.org/api/query?id_list=1",
            status=200,
            body=b"<feed/>",
        )

    bodies = list((tmp_path / "raw").rglob("*.body"))
    assert len(bodies) == 1
    assert stat.S_IMODE(bodies[0].stat().st_mode) == 0o640
