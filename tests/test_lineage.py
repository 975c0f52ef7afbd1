"""`snapshot.lineage`: each entity's documents, headings and mentions, from the links'
columns in one pass."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import pyarrow as pa
import pytest

from pipeline.snapshot import lineage as lineage_module
from pipeline.snapshot.lineage import Lineage, LineageBuilder
from pipeline.snapshot.schemas import REPEATED_TEXT

Row = dict[str, Any]


def links(rows: list[Row]) -> pa.Table:
    """The columns lineage reads, typed as the links table types them."""
    return pa.table(
        {
            "document": pa.array([r["document"] for r in rows], pa.string()).dictionary_encode(),
            "heading_path": pa.array(
                [r.get("heading_path", []) for r in rows], pa.list_(pa.string())
            ).cast(pa.list_(REPEATED_TEXT)),
            "kind": pa.array([r["kind"] for r in rows], pa.string()).dictionary_encode(),
            "entity_id": pa.array([r.get("entity_id") for r in rows], pa.string()),
            "id_valid": pa.array([r.get("id_valid", True) for r in rows], pa.bool_()),
            "resolved_arxiv_id": pa.array([r.get("resolved") for r in rows], pa.string()),
            "resolved_by": pa.array(
                ["title" if r.get("resolved") else None for r in rows], pa.string()
            ).dictionary_encode(),
        }
    )


def test_an_entity_gets_its_documents_headings_and_mentions_sorted() -> None:
    rows: list[Row] = [
        {"document": "b.md", "kind": "arxiv", "entity_id": "1", "heading_path": ["Z", "Vision"]},
        {"document": "a.md", "kind": "arxiv_mention", "entity_id": "1", "heading_path": ["A"]},
        {"document": "b.md", "kind": "arxiv", "entity_id": "1", "heading_path": ["Z", "Vision"]},
        {"document": "a.md", "kind": "arxiv", "entity_id": "1"},  # under no heading
    ]

    columns = Lineage.of(links(rows).to_batches()).columns([("paper", "1"), ("paper", "9")])

    assert columns["documents"].to_pylist() == [["a.md", "b.md"], []]
    assert columns["headings"].to_pylist() == [["A", "Z > Vision"], []]
    assert columns["mention_count"].to_pylist() == [4, 0]
    assert columns["documents"].type == pa.list_(REPEATED_TEXT)


@pytest.mark.parametrize(
    ("row", "named"),
    [
        ({"kind": "arxiv", "entity_id": "2401.00001"}, [("paper", "2401.00001")]),
        ({"kind": "arxiv", "entity_id": ""}, []),  # an arXiv link with no ID
        ({"kind": "url", "entity_id": None, "resolved": "2401.00002"}, [("paper", "2401.00002")]),
        # A Hub link whose text matched a paper's title names both.
        (
            {"kind": "hf_model", "entity_id": "o/m", "resolved": "2401.00003"},
            [("paper", "2401.00003"), ("model", "o/m")],
        ),
        ({"kind": "hf_dataset", "entity_id": "o/d"}, [("dataset", "o/d")]),
        ({"kind": "hf_space", "entity_id": "o/s"}, [("space", "o/s")]),
        ({"kind": "hf_collection", "entity_id": "o/c-1"}, [("collection", "o/c-1")]),
        ({"kind": "github_repo", "entity_id": "o/r"}, [("github_repo", "o/r")]),
        # An invalid GitHub name stays a row of `links`, never a repo.
        ({"kind": "github_repo", "entity_id": "../etc", "id_valid": False}, []),
        ({"kind": "url", "entity_id": None}, []),
    ],
)
def test_which_entities_a_link_names(row: Row, named: list[tuple[str, str]]) -> None:
    lineage = Lineage.of(links([{"document": "a.md", **row}]).to_batches())

    found = {
        (kind, entity_id)
        for kind in ("paper", "model", "dataset", "space", "collection", "github_repo")
        for entity_id in lineage.ids(kind)
    }
    assert found == set(named)


def test_names_of_one_entity_merge_into_its_canonical_key() -> None:
    rows: list[Row] = [
        {"document": "a.md", "kind": "hf_model", "entity_id": "Old/Name", "heading_path": ["H"]},
        {"document": "b.md", "kind": "hf_model", "entity_id": "new/name"},
        {"document": "c.md", "kind": "hf_model", "entity_id": "gone/name"},
    ]
    same = {
        ("model", "Old/Name"): ("model", "new/name"),
        ("model", "new/name"): ("model", "new/name"),
        ("model", "gone/name"): ("model", "Moved/Away"),  # a canonical no link writes
    }

    lineage = Lineage.of(links(rows).to_batches(), same)

    assert lineage.ids("model") == ["Moved/Away", "new/name"]
    columns = lineage.columns(
        [("model", "new/name"), ("model", "Old/Name"), ("model", "Moved/Away")]
    )
    assert columns["documents"].to_pylist() == [["a.md", "b.md"], [], ["c.md"]]
    assert columns["headings"].to_pylist() == [["H"], [], []]
    assert columns["mention_count"].to_pylist() == [2, 0, 1]


def test_many_batches_and_merged_partials_give_what_each_link_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Random links in small batches, partials merged every few hundred pairs: the same
    lineage as counting link by link."""
    monkeypatch.setattr(lineage_module, "COMPACT_ROWS", 300)
    pick = random.Random(11)
    rows: list[Row] = [
        {
            "document": f"d{pick.randrange(40):02d}.md",
            "kind": pick.choice(["arxiv", "hf_model", "github_repo", "url"]),
            "entity_id": pick.choice([None, *(f"e{n}" for n in range(50))]),
            "heading_path": pick.choice([[], ["A"], ["A", "B"], ["Ü", "é"]]),
        }
        for _ in range(5_000)
    ]
    expected: dict[tuple[str, str], Row] = defaultdict(
        lambda: {"documents": set(), "headings": set(), "mentions": 0}
    )
    family = {"arxiv": "paper", "hf_model": "model", "github_repo": "github_repo"}
    for row in rows:
        if row["kind"] == "url" or row["entity_id"] is None:
            continue
        seen = expected[(family[row["kind"]], row["entity_id"])]
        seen["documents"].add(row["document"])
        if row["heading_path"]:
            seen["headings"].add(" > ".join(row["heading_path"]))
        seen["mentions"] += 1

    builder = LineageBuilder()
    for batch in links(rows).to_batches(max_chunksize=97):
        builder.add(batch)
    keys = sorted(expected)
    columns = builder.finish().columns(keys)

    assert columns["documents"].to_pylist() == [sorted(expected[k]["documents"]) for k in keys]
    assert columns["headings"].to_pylist() == [sorted(expected[k]["headings"]) for k in keys]
    assert columns["mention_count"].to_pylist() == [expected[k]["mentions"] for k in keys]
