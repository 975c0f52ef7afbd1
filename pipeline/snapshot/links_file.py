"""A night's links table on disk: every link kept, none of them held in memory.

A reading-list corpus has about 10,000 links per MB of markdown; even as dictionary-encoded
Arrow columns that is about 270 bytes a link, 2.7 GB for 1 GB of markdown. So the night
appends each document's record batches, as extraction hands them over, to a temporary Arrow
IPC stream (zstd-compressed: about 60 bytes a link on disk), and everything after reads it
back one batch at a time: the resolvers' entity lists, the snapshot's lineage, the title
matches and the Parquet file `publish` writes. Memory then grows with the number of
distinct entities, not with the number of links.

The file lives in the system's temporary folder (`TMPDIR`) and is removed when the last
`LinksFile` reading it is garbage-collected, or when the process exits. A process killed
outright (SIGKILL, the machine's OOM killer) cannot remove it: its folder holds a lock
file that the process keeps locked while it lives (the kernel lets go of it when the
process dies, whatever killed it), and each new links file first removes the folders
whose lock no one holds (`remove_stale`). A lock, not a process ID: two containers that
share a temporary folder do not see each other's processes, but do see each other's locks.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.snapshot.schemas import LINKS_SCHEMA

BatchMap = Callable[[pa.RecordBatch], pa.RecordBatch]

FOLDER_PREFIX = "pipeline-links-"
LOCK_FILE = "in-use.lock"


UNLOCKED_STALE_SECONDS = 24 * 3600
"""A links folder without a lock file (one being made has none for a moment; those of
versions before the lock never will) is removed once it is this old."""


def remove_stale(folder: Path | None = None) -> list[Path]:
    """Remove the links folders in `folder` (default: the temporary folder) whose
    process is gone (no one holds their lock), and return them. A folder without a lock
    file is removed only once it is `UNLOCKED_STALE_SECONDS` old."""
    removed: list[Path] = []
    for candidate in sorted(Path(folder or tempfile.gettempdir()).glob(f"{FOLDER_PREFIX}*")):
        try:
            handle = os.open(candidate / LOCK_FILE, os.O_RDWR)
        except FileNotFoundError:
            if _age_seconds(candidate) > UNLOCKED_STALE_SECONDS:
                shutil.rmtree(candidate, ignore_errors=True)
                removed.append(candidate)
            continue
        except OSError:  # not ours to open, or removed meanwhile
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # its process still runs
            os.close(handle)
            continue
        shutil.rmtree(candidate, ignore_errors=True)
        os.close(handle)
        removed.append(candidate)
    return removed


def _age_seconds(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def _hold(path: Path) -> int:
    """Create `path` locked, and keep it locked for as long as this process lives (or
    until `_remove`). Locked under another name first, then renamed: a sweep never sees
    it unlocked."""
    making = path.with_name(f".{path.name}")
    handle = os.open(making, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    fcntl.flock(handle, fcntl.LOCK_EX)
    os.replace(making, path)
    return handle


def _remove(folder: Path, lock: int) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    os.close(lock)


class LinksFile:
    """The links table, appended to document by document, read back batch by batch.

    It offers what the night and the snapshot read of a `pa.Table` (`schema`, `num_rows`,
    `to_batches`, `column`, `to_pylist`); `read_all` makes it one table (tests, small runs).
    Links must be appended in key order (document, position), as extraction gives them.
    """

    schema = LINKS_SCHEMA

    def __init__(self) -> None:
        remove_stale()
        self._folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))
        self._path = self._folder / "links.arrows"
        lock = _hold(self._folder / LOCK_FILE)
        self._removal = weakref.finalize(self, _remove, self._folder, lock)
        self._sink: Any = pa.OSFile(str(self._path), "wb")
        # A stream, not the IPC file format: each document's batches carry their own
        # dictionaries, which the file format cannot replace from batch to batch.
        self._writer: Any = pa.ipc.new_stream(
            self._sink, LINKS_SCHEMA, options=pa.ipc.IpcWriteOptions(compression="zstd")
        )
        self._last_key: tuple[str, int] | None = None
        self._source: LinksFile | None = None
        self._map: BatchMap | None = None
        self.num_rows = 0

    def append(self, table: pa.Table) -> None:
        """Add one document's links (the links table's schema, in position order)."""
        if self._writer is None:
            raise ValueError(f"{self._path}: already read; nothing more can be appended")
        if not table.schema.equals(LINKS_SCHEMA, check_metadata=False):
            raise ValueError(f"links to append differ from the links schema:\n{table.schema}")
        if table.num_rows == 0:
            return
        first = (table.column("document")[0].as_py(), table.column("position")[0].as_py())
        if self._last_key is not None and not self._last_key < first:
            raise ValueError(
                f"links of {first[0]!r} appended after those of {self._last_key[0]!r}:"
                " documents must come in name order"
            )
        self._last_key = (
            table.column("document")[-1].as_py(),
            table.column("position")[-1].as_py(),
        )
        self._writer.write_table(table)
        self.num_rows += table.num_rows

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
            self._writer = self._sink = None

    def to_batches(self) -> Iterator[pa.RecordBatch]:
        """Every batch, in order, read from disk one at a time (appending ends here)."""
        if self._source is not None:
            for batch in self._source.to_batches():
                yield self._map(batch) if self._map is not None else batch
            return
        self._close()
        with pa.OSFile(str(self._path), "rb") as source:
            yield from pa.ipc.open_stream(source)

    def mapped(self, change: BatchMap) -> LinksFile:
        """A view of these links with `change` applied to each batch as it is read."""
        view = LinksFile.__new__(LinksFile)
        view._source, view._map = self, change
        view._folder, view._path = self._folder, self._path
        view._writer = view._sink = None
        view._last_key = self._last_key
        view.num_rows = self.num_rows
        return view

    def with_documents(self, extra: pa.Table) -> LinksFile:
        """A new links file: these links and `extra`'s rows (whole documents none of
        these links come from, the links schema), each document in its name order."""
        merged = LinksFile()
        documents = sorted(set(extra.column("document").to_pylist()))
        pending = [
            extra.filter(pc.equal(extra.column("document"), pa.scalar(name))) for name in documents
        ]
        for batch in self.to_batches():
            if batch.num_rows == 0:
                continue
            first = batch.column("document")[0].as_py()
            while documents and documents[0] < first:
                documents.pop(0)
                merged.append(pending.pop(0))
            merged.append(pa.Table.from_batches([batch], schema=LINKS_SCHEMA))
        for table in pending:
            merged.append(table)
        return merged

    def column(self, name: str) -> pa.ChunkedArray:
        return pa.chunked_array(
            [batch.column(name) for batch in self.to_batches()], LINKS_SCHEMA.field(name).type
        )

    def to_pylist(self) -> list[dict[str, Any]]:
        return [row for batch in self.to_batches() for row in batch.to_pylist()]

    def read_all(self) -> pa.Table:
        return pa.Table.from_batches(list(self.to_batches()), schema=LINKS_SCHEMA)
