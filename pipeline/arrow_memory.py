"""Which allocator Arrow uses in a night's process, and giving its spare memory back.

A night makes and drops Arrow buffers a few MB at a time for minutes: reading the last
snapshot a row group at a time, hashing and filtering whole documents of links, building
each table. Arrow's default allocator (mimalloc in the pyarrow wheels) keeps the pages
those transients took, partly used by the buffers that live on, and gives little of them
back even when asked. The C library's allocator gives back more, and `malloc_trim` (what
`release_unused` calls on it) returns the rest of its free memory to the system.

Measured on the 100 MB benchmark corpus, every link kept through publishing, extraction
in the run's process (`benchmarks.sections extraction`, mode `published`): the next
night's build peaked at 463 MB with mimalloc, 404 MB with jemalloc, 372 MB with the
system allocator; a whole next night at 514 MB with mimalloc and 417 MB with the system
allocator, in the same time.

The choice is the process's, so it is made by what runs a night (`run_night`,
`pipeline extract`, the extraction workers), never on import: an analyst who imports
`pipeline` to `load` a table keeps the allocator their session chose.
"""

from __future__ import annotations

import pyarrow as pa


def use_system_allocator() -> None:
    """Make the C library's allocator this process's default Arrow pool. Buffers
    allocated before stay with the pool that made them; new ones come from this one."""
    if pa.default_memory_pool().backend_name != "system":
        pa.set_memory_pool(pa.system_memory_pool())


def release_unused() -> None:
    """Give the memory Arrow's pool keeps for reuse back to the system: after a stage
    whose transients would otherwise be held, unused, through the rest of the night."""
    pa.default_memory_pool().release_unused()
