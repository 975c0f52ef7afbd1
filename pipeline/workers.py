"""Where documents are extracted: on threads of this process, on a local process pool
(`--workers N`), or on an existing Dask cluster (`PIPELINE_DASK_ADDRESS`).

Extraction is CPU-bound pure Python (markdown-it-py): threads share one core under the
GIL, processes do not. The unit of work is one document (`extract_document_table`): it
reads the file, extracts and identifies its links and hands them back as an Arrow table
of record batches, never as one Python object per link. Results come back in the order
the documents were given, whatever finishes first, so the links table is the same with
1 or N workers, threads, processes or Dask.

Only extraction leaves the process. Resolution stays in the night's process, where the
one arXiv queue (3 s between requests) and the Hub's rate gate live: more workers never
mean more requests at once.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Protocol, TypeVar

import pyarrow as pa

from pipeline.arrow_memory import use_system_allocator
from pipeline.links.documents import Link, extract_document_into
from pipeline.records import Document
from pipeline.snapshot.build import link_batches
from pipeline.snapshot.schemas import LINKS_SCHEMA

R_co = TypeVar("R_co", covariant=True)
R = TypeVar("R")

DASK_ADDRESS_ENV = "PIPELINE_DASK_ADDRESS"
"""The scheduler of an existing Dask cluster (`tcp://host:8786`): documents are
extracted on its workers, which must see the documents under the same paths."""

IN_FLIGHT_PER_WORKER = 2
"""Documents handed to each worker ahead of the one being collected: enough to keep
every worker busy, few enough that finished tables do not pile up in memory."""

DocumentLinks = tuple[Document, pa.Table]
"""One document's record and its links (the links table's schema, document order)."""


def extract_document_table(name: str, path: str) -> DocumentLinks:
    """One document's record and links: the unit of work a worker runs. A document that
    cannot be read yields its error and no links."""
    return extract_document_into(name, Path(path), _as_table, LINKS_SCHEMA.empty_table())


def _as_table(links: Iterator[Link]) -> tuple[pa.Table, int]:
    table = pa.Table.from_batches(list(link_batches(links)), schema=LINKS_SCHEMA)
    return table, table.num_rows


def dask_address(environ: Mapping[str, str] | None = None) -> str | None:
    """The Dask scheduler to extract on, or None (`PIPELINE_DASK_ADDRESS` unset or empty)."""
    address = (os.environ if environ is None else environ).get(DASK_ADDRESS_ENV, "").strip()
    return address or None


class Handle(Protocol[R_co]):
    def result(self) -> R_co: ...


def in_order(
    submit: Callable[[tuple[str, Path]], Handle[R]],
    documents: Iterable[tuple[str, Path]],
    in_flight: int,
) -> Iterator[R]:
    """Each document's result, in the order given, with at most `in_flight` submitted
    and not yet collected."""
    pending: deque[Handle[R]] = deque()
    for document in documents:
        pending.append(submit(document))
        if len(pending) >= in_flight:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _process_context() -> multiprocessing.context.BaseContext:
    """Forkserver where there is one: a worker is forked from a clean server process,
    never from the night's, which may hold threads (resolvers, Prefect's) and locks.
    Elsewhere spawn."""
    if sys.platform == "linux":
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])  # workers start with the parser imported
        return context
    return multiprocessing.get_context("spawn")


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of `workers` extraction processes, each allocating Arrow memory as the
    night's process does (`arrow_memory`), its imports out of the garbage collector's way
    (`collector`)."""
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=_process_context(), initializer=_start_worker
    )


def _start_worker() -> None:
    use_system_allocator()
    # The process only extracts: what it imported stays alive, and frozen, for its life.
    gc.freeze()


def extract_on_processes(
    documents: Sequence[tuple[str, Path]], workers: int
) -> Iterator[DocumentLinks]:
    """The documents' links, extracted on a pool of `workers` processes of this machine."""
    with process_pool(workers) as pool:
        yield from in_order(
            lambda item: pool.submit(extract_document_table, item[0], str(item[1])),
            documents,
            IN_FLIGHT_PER_WORKER * workers,
        )


def extract_on_dask(documents: Sequence[tuple[str, Path]], address: str) -> Iterator[DocumentLinks]:
    """The documents' links, extracted on the workers of the Dask cluster at `address`."""
    from distributed import Client

    with Client(address, set_as_default=False) as client:  # type: ignore[no-untyped-call]
        threads = max(1, sum(client.nthreads().values()))
        yield from in_order(
            lambda item: client.submit(extract_document_table, item[0], str(item[1]), pure=False),
            documents,
            IN_FLIGHT_PER_WORKER * threads,
        )
