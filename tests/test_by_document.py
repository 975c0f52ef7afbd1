"""`DocumentSpans`: a table's rows by document, read a few documents at a time."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipeline.snapshot.by_document import DocumentSpans


def rows(documents: list[str]) -> pa.Table:
    return pa.table(
        {
            "document": pa.array(documents, pa.string()).dictionary_encode(),
            "n": pa.array(range(len(documents)), pa.int64()),
        }
    )


def test_a_grouped_table_is_kept_as_it_is_and_sliced_by_document() -> None:
    table = pa.concat_tables([rows(["b.md", "b.md"]), rows(["a.md", "c.md", "c.md", "c.md"])])

    spans = DocumentSpans(table)

    assert spans.table is table  # no copy: the table is already in document runs
    assert spans.names == ["b.md", "a.md", "c.md"]
    assert spans.of(["c.md", "b.md"]).column("n").to_pylist() == [1, 2, 3, 0, 1]
    assert spans.of(["x.md"]).num_rows == 0


def test_a_document_in_two_runs_is_sorted_into_one() -> None:
    spans = DocumentSpans(rows(["b.md", "a.md", "b.md"]))

    assert spans.names == ["a.md", "b.md"]
    assert spans.of(["b.md"]).column("n").to_pylist() == [0, 2]


def test_an_empty_table_has_no_documents() -> None:
    spans = DocumentSpans(rows([]))

    assert spans.names == []
    assert spans.of(["a.md"]).num_rows == 0


@pytest.mark.parametrize(
    ("max_rows", "expected"),
    [
        (3, [["a.md", "b.md"], ["c.md"], ["d.md"]]),
        (1, [["a.md"], ["b.md"], ["c.md"], ["d.md"]]),
        (100, [["a.md", "b.md", "c.md", "d.md"]]),
    ],
)
def test_groups_are_whole_documents_of_about_max_rows(
    max_rows: int, expected: list[list[str]]
) -> None:
    # a: 1 row, b: 2, c: 4 (more than max_rows=3: a group of its own), d: 1
    spans = DocumentSpans(rows(["a.md", "b.md", "b.md", *["c.md"] * 4, "d.md"]))

    assert list(spans.groups(spans.names, max_rows)) == expected


def test_a_document_continued_in_the_next_chunk_is_one_run() -> None:
    # Each chunk its own dictionary, as each extracted document's batches have.
    spans = DocumentSpans(pa.concat_tables([rows(["a.md", "b.md"]), rows(["b.md", "c.md"])]))

    assert spans.names == ["a.md", "b.md", "c.md"]
    assert spans.of(["b.md"]).column("n").to_pylist() == [1, 0]
