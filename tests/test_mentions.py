"""`snapshot.mentions`: what the links say of the entities they name, from their columns."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from pipeline.snapshot.by_document import whole_documents
from pipeline.snapshot.mentions import COLUMNS, Mentions

Row = dict[str, Any]
_DEFAULTS: Row = {
    "document": "a.md",
    "entity_id": None,
    "id_valid": True,
    "id_problem": None,
    "resolved_arxiv_id": None,
    "resolved_by": None,
    "link_text": "",
    "annotation": "",
}


def links(rows: list[Row]) -> pa.Table:
    full = [{**_DEFAULTS, **row} for row in rows]
    columns = {name: [row[name] for row in full] for name in COLUMNS}
    table = pa.table(
        {
            **columns,
            "id_valid": pa.array(columns["id_valid"], pa.bool_()),
            "entity_id": pa.array(columns["entity_id"], pa.string()),
            "id_problem": pa.array(columns["id_problem"], pa.string()),
            "resolved_arxiv_id": pa.array(columns["resolved_arxiv_id"], pa.string()),
        }
    )
    for name in ("document", "kind", "annotation", "resolved_by"):
        table = table.set_column(
            table.schema.get_field_index(name),
            name,
            pa.array(columns[name], pa.string()).dictionary_encode(),
        )
    return table


def said(rows: list[Row], max_rows: int = 1_000) -> Mentions:
    found = Mentions()
    for part in whole_documents(links(rows), COLUMNS, max_rows):
        found.add(part)
    return found


def test_hub_names_with_why_a_name_is_invalid() -> None:
    found = said(
        [
            {"kind": "hf_model", "entity_id": "o/m"},
            {"kind": "hf_model", "entity_id": "o/m"},
            {
                "kind": "hf_dataset",
                "entity_id": "bad name",
                "id_valid": False,
                "id_problem": "space",
            },
            {"kind": "hf_space", "entity_id": "x", "id_valid": False},
            {"kind": "github_repo", "entity_id": "o/m"},
            {"kind": "hf_model", "entity_id": None},
        ]
    )

    assert found.hub_names == {
        ("model", "o/m"): None,
        ("dataset", "bad name"): "space",
        ("space", "x"): "",
    }


@pytest.mark.parametrize(
    ("row", "by_id", "by_title", "invalid"),
    [
        ({"kind": "arxiv", "entity_id": "2401.00001"}, {"2401.00001"}, {}, {}),
        ({"kind": "arxiv_mention", "entity_id": "2401.00001"}, {"2401.00001"}, {}, {}),
        (
            {"kind": "arxiv", "entity_id": "9999.1", "id_valid": False, "id_problem": "month 99"},
            {"9999.1"},
            {},
            {"9999.1": "month 99"},
        ),
        (
            {
                "kind": "url",
                "link_text": "  The  PAPER title ",
                "resolved_arxiv_id": "2401.00002",
                "resolved_by": "title",
            },
            set(),
            {"2401.00002": {"The PAPER title"}},  # `title_key`: spaces folded
            {},
        ),
        # A title match wins over the ID as written, which then says nothing invalid.
        (
            {
                "kind": "arxiv",
                "entity_id": "bad",
                "id_valid": False,
                "link_text": "T",
                "resolved_arxiv_id": "2401.00003",
                "resolved_by": "title",
            },
            set(),
            {"2401.00003": {"T"}},
            {},
        ),
        ({"kind": "arxiv", "entity_id": ""}, set(), {}, {}),
        ({"kind": "url", "entity_id": None}, set(), {}, {}),
    ],
)
def test_how_each_paper_was_reached(
    row: Row, by_id: set[str], by_title: dict[str, set[str]], invalid: dict[str, str]
) -> None:
    found = said([row])

    assert found.papers_by_id == by_id
    assert dict(found.papers_by_title) == by_title
    assert found.invalid_papers == invalid


def test_papers_and_repos_pair_up_within_one_list_item_of_one_document() -> None:
    rows: list[Row] = [
        # a.md, one item: paper 1 and two repos.
        {"kind": "arxiv", "entity_id": "1", "annotation": "Item one"},
        {"kind": "github_repo", "entity_id": "o/r1", "annotation": "Item one"},
        {"kind": "github_repo", "entity_id": "o/r2", "annotation": "Item one"},
        # a.md, another item: paper 2 alone; a blank annotation is no item.
        {"kind": "arxiv", "entity_id": "2", "annotation": "Item two"},
        {"kind": "arxiv", "entity_id": "3", "annotation": "   "},
        {"kind": "github_repo", "entity_id": "o/r3", "annotation": "   "},
        # An invalid repo name is no repo.
        {"kind": "github_repo", "entity_id": "../x", "id_valid": False, "annotation": "Item two"},
        # b.md: the same text as a.md's first item is another item.
        {"document": "b.md", "kind": "arxiv", "entity_id": "4", "annotation": "Item one"},
        {"document": "b.md", "kind": "github_repo", "entity_id": "o/r4", "annotation": "Item one"},
    ]

    for max_rows in (1, 1_000):  # whole documents in one table, or one document at a time
        found = said(rows, max_rows)
        assert dict(found.repos_of_paper) == {"1": {"o/r1", "o/r2"}, "4": {"o/r4"}}
        assert found.papers_of_repo() == {"o/r1": {"1"}, "o/r2": {"1"}, "o/r4": {"4"}}
        assert not found.repos_of_paper  # inverted, not copied
