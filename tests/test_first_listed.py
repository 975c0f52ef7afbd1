"""`first_listed` and the listing changes, as pure functions over columns and tables."""

from __future__ import annotations

import random
from datetime import date

import pyarrow as pa
import pytest

from pipeline.snapshot import listings
from pipeline.snapshot.first_listed import (
    backfill_facts,
    first_listed_column,
    listed_since,
    previous_first_listed,
)
from pipeline.snapshot.listings import document_title, entity_type_of, listing_changes

D1, D2, D3 = date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)


def links(rows: list[tuple[str, str, str | None, date | None]]) -> pa.Table:
    documents, kinds, entities, firsts = zip(*rows, strict=True) if rows else ([], [], [], [])
    return pa.table(
        {
            "document": pa.array(documents, pa.string()),
            "kind": pa.array(kinds, pa.string()),
            "entity_id": pa.array(entities, pa.string()),
            "first_listed": pa.array(firsts, pa.date32()),
        }
    )


def test_first_listed_keeps_the_previous_date_and_dates_new_entries_tonight() -> None:
    previous = links(
        [("a.md", "arxiv", "1", D1), ("a.md", "arxiv", "2", D2), ("b.md", "arxiv", "1", D2)]
    )
    facts = previous_first_listed(previous, D2)
    documents = pa.array(["a.md", "a.md", "a.md", "b.md", "b.md", "a.md"])
    entities = pa.array(["1", "2", "3", "1", "2", None])

    column = first_listed_column(
        documents, entities, facts, D3, backfill_facts({("a.md", "3"): D1})
    )

    # 1 and 2 stay; 3 comes from the history; 2 is new in b.md; no entity, no date.
    assert column.to_pylist() == [D1, D2, D1, D2, D3, None]


def test_a_previous_snapshot_without_the_column_dates_its_entries_by_its_own_date() -> None:
    previous = links([("a.md", "arxiv", "1", None)]).drop_columns(["first_listed"])

    assert previous_first_listed(previous, D2).of_documents(["a.md"]).to_pylist() == [
        {"document": "a.md", "entity_id": "1", "first_listed": D2}
    ]
    assert previous_first_listed(None, D2).of_documents(["a.md"]).num_rows == 0


def test_the_earliest_date_of_a_listing_wins_and_rows_keep_their_order() -> None:
    previous = links(
        [("a.md", "arxiv", "1", D2), ("a.md", "arxiv", "1", D1), ("b.md", "arxiv", "2", None)]
    )
    facts = previous_first_listed(previous, D2)
    # Many rows, so that the join's own order would show if the column kept it.
    documents = pa.array(["b.md", "a.md", "c.md"] * 5000)
    entities = pa.array(["2", "1", "1"] * 5000)

    column = first_listed_column(documents, entities, facts, D3)

    assert column.to_pylist() == [D2, D1, D3] * 5000


@pytest.mark.parametrize(
    ("versions", "expected"),
    [
        ([(D3, {"a", "b"}), (D2, {"a"}), (D1, {"a", "b"})], {"a": D1, "b": D3}),
        ([(D3, {"a"}), (D2, set()), (D1, {"a"})], {"a": D3}),
        ([(D3, set())], {}),
        ([], {}),
    ],
)
def test_listed_since_is_the_oldest_version_of_the_unbroken_run(
    versions: list[tuple[date, set[str]]], expected: dict[str, date]
) -> None:
    assert listed_since(versions) == expected


def test_listing_changes_name_the_document_an_entity_entered_or_left() -> None:
    previous = links([("a.md", "arxiv", "1", D1), ("a.md", "hf_model", "o/m", D1)])
    tonight = links(
        [
            ("a.md", "arxiv", "1", D1),
            ("b.md", "arxiv_mention", "1", D2),
            ("a.md", "url", None, None),
        ]
    )

    rows = listing_changes(tonight, previous, D1)

    assert {(r["change"], r["entity_type"], r["entity_id"], r["field"]) for r in rows} == {
        ("listed", "paper", "1", "b.md"),
        ("unlisted", "model", "o/m", "a.md"),
    }
    assert {r["previous_snapshot_date"] for r in rows} == {D1}
    assert listing_changes(tonight, None, None) == []


def test_listing_changes_compare_whole_documents_however_the_links_are_batched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Many documents in many batches, compared a few documents at a time: a document that
    spans batches, one gone tonight, one new tonight, and a baseline out of document
    order give the same changes as comparing the two nights' listings whole."""
    monkeypatch.setattr(listings, "LISTING_GROUP_ROWS", 40)
    pick = random.Random(7)

    def night(names: list[str]) -> list[tuple[str, str, str | None, date | None]]:
        return [
            (name, pick.choice(["arxiv", "hf_model", "github_repo", "url"]), entity, None)
            for name in names
            for entity in (pick.choice([None, *map(str, range(30))]) for _ in range(25))
        ]

    before_rows = night([f"d{n:02d}.md" for n in range(20)])
    pick.shuffle(before_rows)
    tonight_names = [f"d{n:02d}.md" for n in range(1, 22)]  # d00 gone, d20 and d21 new
    # One table per document, split in batches of 7 rows: a document spans batches.
    tonight = pa.concat_tables(
        [links([row for row in night(tonight_names) if row[0] == name]) for name in tonight_names]
    )
    tonight = pa.Table.from_batches(tonight.to_batches(max_chunksize=7))

    rows = listing_changes(tonight, links(before_rows), D1)

    def listed(table: pa.Table) -> set[tuple[str, str, str]]:
        return {
            (entity_type_of(r["kind"]), r["entity_id"], r["document"])
            for r in table.to_pylist()
            if r["entity_id"] is not None
        }

    after, before = listed(tonight), listed(links(before_rows))
    expected = [(*k, "listed") for k in after - before] + [(*k, "unlisted") for k in before - after]
    got = [(r["entity_type"], r["entity_id"], r["field"], r["change"]) for r in rows]
    assert sorted(got) == sorted(expected)
    assert {r["field"] for r in rows if r["change"] == "unlisted"} >= {"d00.md"}
    assert {r["field"] for r in rows if r["change"] == "listed"} >= {"d20.md", "d21.md"}
    # Per entity: what it entered before what it left.
    keys = [(r["entity_type"], r["entity_id"], r["change"] == "unlisted", r["field"]) for r in rows]
    assert keys == sorted(keys)


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("# MLLM论文精选（持续更新）\n\n## 最新动态\n", "MLLM论文精选（持续更新）"),
        ("intro\n\n## Second level first ##\n", "Second level first"),
        (
            '---\ntitle: "PaperReading: MLLM_2"\ntags: [a]\n---\n### Description\n',
            "PaperReading: MLLM_2",
        ),
        ("---\nlayout: post\n---\n## After front matter\n", "After front matter"),
        ("```\n# not a heading\n```\n# Real\n", "Real"),
        ("no heading at all\n", None),
        ("#hashtag is not a heading\n", None),
    ],
)
def test_document_title(text: str, title: str | None) -> None:
    assert document_title(text) == title
