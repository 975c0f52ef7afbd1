"""`LinksFile`'s folder in the temporary folder: removed by its process, or, when that
process was killed outright, by the next links file made there. Real processes, real
signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from pipeline.snapshot.links_file import (
    FOLDER_PREFIX,
    LOCK_FILE,
    UNLOCKED_STALE_SECONDS,
    LinksFile,
    remove_stale,
)

_HOLDER = textwrap.dedent(
    """
    import sys
    from pipeline.snapshot.links_file import LinksFile
    links = LinksFile()
    print(links._folder, flush=True)
    sys.stdin.readline()  # ends when told (or is killed)
    """
)


def _start(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER],
        env={**os.environ, "TMPDIR": str(tmp_path)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    folder = Path(process.stdout.readline().strip())
    assert folder.parent == tmp_path and (folder / LOCK_FILE).exists()
    return process, folder


def test_a_live_process_keeps_its_folder_and_a_killed_one_loses_it(tmp_path: Path) -> None:
    process, folder = _start(tmp_path)
    try:
        assert remove_stale(tmp_path) == []
        assert folder.exists()
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert folder.exists()  # nothing of the killed process ran

    assert remove_stale(tmp_path) == [folder]
    assert not folder.exists()


def test_a_new_links_file_removes_the_folders_of_killed_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    process, folder = _start(tmp_path)
    process.send_signal(signal.SIGKILL)
    process.wait()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    links = LinksFile()

    assert not folder.exists()
    assert [p.name for p in tmp_path.iterdir()] == [links._folder.name]


def test_a_process_that_ends_removes_its_own_folder(tmp_path: Path) -> None:
    process, folder = _start(tmp_path)
    process.communicate("\n")
    assert process.returncode == 0

    assert not folder.exists()


def test_a_folder_without_a_lock_file_is_removed_only_once_a_day_old(tmp_path: Path) -> None:
    """One being made has no lock file for a moment; those of versions before the lock
    never will."""
    fresh, older = tmp_path / f"{FOLDER_PREFIX}fresh", tmp_path / f"{FOLDER_PREFIX}older"
    fresh.mkdir()
    older.mkdir()
    (older / "links.arrows").write_bytes(b"")
    day_and_a_minute = time.time() - UNLOCKED_STALE_SECONDS - 60
    os.utime(older, (day_and_a_minute, day_and_a_minute))

    assert remove_stale(tmp_path) == [older]
    assert fresh.exists() and not older.exists()
