"""A table whose rows are grouped by document, read a few documents at a time. Pure.

A links table (tonight's or a baseline's) is in document order. What a night compares
document by document (`first_listed`, `listed`/`unlisted`) then needs only the rows of
the documents at hand: hashing or grouping a whole night's listings at once cost the
100 MB corpus's next night 400 MB more than the documents of one batch of links do.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc

WHOLE_DOCUMENT_ROWS = 16_384
"""Links taken at a time by `whole_documents` (more for a larger document): enough that
Arrow's per-call costs vanish (the build's pass over 100 MB of lists takes as long as
with 65,536), few enough that what is made of them stays small (its peak: 62 MB less)."""


class DocumentSpans:
    """`table`'s rows by document (the `column` column): each document's rows are one
    slice. A table whose documents are not contiguous is sorted by document first (a
    published links table always is in document order; a hand-made one may not be)."""

    def __init__(self, table: pa.Table, column: str = "document") -> None:
        spans = _spans(table.column(column))
        if spans is None:
            order = pc.sort_indices(table.column(column).cast(pa.string()))
            table = table.take(order)
            spans = _spans(table.column(column))
            assert spans is not None
        self.table = table
        self._spans = spans

    @property
    def names(self) -> list[str]:
        """The documents, in table order."""
        return list(self._spans)

    def of(self, names: Iterable[str]) -> pa.Table:
        """The rows of these documents (none for a document the table has not)."""
        slices = [self.table.slice(*self._spans[n]) for n in names if n in self._spans]
        if not slices:
            return self.table.schema.empty_table()
        return pa.concat_tables(slices)

    def groups(self, names: Iterable[str], max_rows: int) -> Iterator[list[str]]:
        """`names` in groups of whole documents of about `max_rows` rows (a document of
        more rows is a group of its own)."""
        group: list[str] = []
        rows = 0
        for name in names:
            length = self._spans.get(name, (0, 0))[1]
            if group and rows + length > max_rows:
                yield group
                group, rows = [], 0
            group.append(name)
            rows += length
        if group:
            yield group


def whole_documents(
    links: pa.Table | Iterable[pa.RecordBatch],
    columns: Sequence[str],
    max_rows: int = WHOLE_DOCUMENT_ROWS,
) -> Iterator[pa.Table]:
    """`columns` of links as tables of whole documents of about `max_rows` rows: a
    document's rows are never split between two tables. Batches must come in document
    order (a `LinksFile`'s do), so that every document before the one a batch ends in is
    complete; a table is grouped by document first (`DocumentSpans`)."""
    batches = (
        DocumentSpans(links.select(list(columns))).table.to_batches()
        if isinstance(links, pa.Table)
        else links
    )
    pending: list[pa.Table] = []
    rows = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(pa.Table.from_batches([batch.select(list(columns))]))
        rows += batch.num_rows
        if rows < max_rows:
            continue
        taken = pa.concat_tables(pending)
        last = taken.column("document")[-1].as_py()
        open_ = pc.equal(taken.column("document").cast(pa.string()), pa.scalar(last))
        done = taken.filter(pc.invert(open_))
        pending = [taken.filter(open_)]
        rows = pending[0].num_rows
        if done.num_rows:
            yield done
    if rows:
        yield pa.concat_tables(pending)


def _spans(documents: pa.ChunkedArray) -> dict[str, tuple[int, int]] | None:
    """Document -> (first row, row count); None when a document's rows are not one run.
    Found from each chunk's runs (of dictionary indices, when encoded): casting a
    night's million document names to strings cost more than the rest of the work."""
    spans: dict[str, tuple[int, int]] = {}
    last: str | None = None
    start = 0
    for chunk in documents.chunks:
        if len(chunk) == 0:
            continue
        encoded = pa.types.is_dictionary(chunk.type)
        runs = pc.run_end_encode(chunk.indices if encoded else chunk)
        names = runs.values.to_pylist()
        if encoded:
            names = chunk.dictionary.take(runs.values).to_pylist()
        begin = start
        for name, end in zip(names, runs.run_ends.to_pylist(), strict=True):
            if name == last:
                first, _ = spans[name]
                spans[name] = (first, start + end - first)
            elif name in spans:
                return None
            else:
                spans[name] = (begin, start + end - begin)
            last, begin = name, start + end
        start += len(chunk)
    return spans
