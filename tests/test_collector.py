"""The garbage collector during extraction (`pipeline.collector`): the objects alive
before it are frozen while documents are extracted in the night's process, and unfrozen
after, however extraction ends; a worker process keeps its imports frozen."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.collector import earlier_objects_frozen, frozen_while
from pipeline.night import ThreadExecutor
from pipeline.workers import process_pool


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    assert gc.get_freeze_count() == 0, "a test left objects frozen"
    yield
    gc.unfreeze()


def _collected(value: object) -> bool:
    """Whether the collector sees `value` (a frozen object is out of its sight)."""
    return any(seen is value for seen in gc.get_objects())


def test_the_block_runs_with_earlier_objects_frozen_and_unfreezes_them() -> None:
    earlier: list[int] = []
    with earlier_objects_frozen():
        later: list[int] = []
        assert not _collected(earlier) and _collected(later)
    assert gc.get_freeze_count() == 0 and _collected(earlier)


def test_a_freeze_made_by_someone_else_is_left_to_them() -> None:
    gc.freeze()
    frozen = gc.get_freeze_count()
    with earlier_objects_frozen():
        pass
    assert gc.get_freeze_count() == frozen > 0


def test_the_freeze_ends_when_the_items_end_or_the_consumer_stops() -> None:
    seen = [gc.get_freeze_count() for _ in frozen_while(range(3))]
    assert all(count > 0 for count in seen) and gc.get_freeze_count() == 0

    items = frozen_while(range(3))
    next(items)
    assert gc.get_freeze_count() > 0
    items.close()  # the night broke off (an error, Ctrl-C)
    assert gc.get_freeze_count() == 0


def test_documents_extracted_in_the_process_are_extracted_frozen(tmp_path: Path) -> None:
    names = []
    for i in range(3):
        (tmp_path / f"list-{i}.md").write_text(f"- [x](https://arxiv.org/abs/2401.0000{i})\n")
        names.append((f"list-{i}.md", tmp_path / f"list-{i}.md"))

    with ThreadExecutor(workers=1) as executor:
        seen = [
            (document.name, table.num_rows, gc.get_freeze_count())
            for document, table in executor.extract(names)
        ]

    assert [(name, rows) for name, rows, _ in seen] == [(n, 1) for n, _ in names]
    assert all(frozen > 0 for _, _, frozen in seen)
    assert gc.get_freeze_count() == 0


def test_an_extraction_worker_keeps_its_imports_frozen() -> None:
    with process_pool(1) as pool:
        assert pool.submit(gc.get_freeze_count).result() > 1000
