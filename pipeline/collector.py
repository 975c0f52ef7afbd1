"""CPython's garbage collector while documents are extracted: the objects alive before
extraction began, frozen out of its way.

Extraction makes and drops millions of small objects (markdown-it's tokens, each link's
fields). Each time enough of them survive, the collector walks its older generations,
which in a night's process hold every object of every import (the pipeline, pandas,
pyarrow, Prefect's client when Prefect runs the night): about 100,000 objects walked
again and again, none of them garbage. `gc.freeze()` moves them out of its sight.

Measured on the 100 MB benchmark corpus (its first 150 documents, extracted one at a
time in a process that imported `pipeline.night`, passes alternating): 21.1 s and
23.2 s as is, 17.4 s and 17.9 s with the earlier objects frozen. With the collector off
altogether it was faster still, but memory would then depend on no reference cycle
ever being made.

Frozen objects are never collected, so they are unfrozen when extraction ends: the rest
of the night, and a process that runs many nights, keep the collector as they had it.
A worker process, which only extracts, freezes its imports for its whole life.
"""

from __future__ import annotations

import gc
from collections.abc import Generator, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


@contextmanager
def earlier_objects_frozen() -> Iterator[None]:
    """Freeze every object alive now for the block; unfreeze them after. When something
    else froze objects already, leaves the collector alone: undoing a freeze unfreezes
    every frozen object, theirs too."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def frozen_while(items: Iterable[T]) -> Generator[T, None, None]:
    """`items`, consumed with the objects alive when the first is asked for frozen
    (`earlier_objects_frozen`), until the last is taken or the iterator is closed. Consume
    it in a `for` loop (or close it): one left half-read keeps the process frozen until
    it is dropped."""
    with earlier_objects_frozen():
        yield from items
