"""`first_listed`: since when each link's entity has been in its document.

A pure function over columns, so that it does not depend on how links are built: the
links table's `document` and `entity_id` columns in, the `first_listed` column out.

The date of an entity in a document is, in order of precedence:
1. what the previous snapshot says (its `first_listed`; for a snapshot written before the
   column existed, that snapshot's date): an entry already listed never moves;
2. what the document's history says (`--backfill`): the commit date of the oldest version
   in the unbroken run of versions, back from tonight's, that list it;
3. tonight's snapshot date.
A link without an entity (`entity_id` null) has no `first_listed`. An entity that leaves a
document and comes back later starts again: the previous snapshot no longer lists it.

A document that could not be read tonight (unreachable with no version kept, or a version
that does not decode) says nothing about what it lists: its rows of the previous snapshot
are carried into tonight's links table, dates included (`listing_inputs`), so that one bad
night neither resets its `first_listed` dates nor churns `listed`/`unlisted` changes. Its
`documents` row says `error` and why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.records import Document
from pipeline.snapshot.links_file import LinksFile

Listing = tuple[str, str]
"""(document, entity_id)."""


def listing_inputs(
    links: pa.Table | LinksFile,
    previous: Mapping[str, pa.Table] | None,
    documents: Sequence[Document],
) -> tuple[pa.Table | LinksFile, pa.Table | None]:
    """Tonight's links with the previous snapshot's rows of each document not read
    tonight (`Document.error`) carried forward, and the previous links table."""
    previous_links = (previous or {}).get("links")
    unreadable = sorted({document.name for document in documents if document.error})
    if previous_links is None or not unreadable:
        return links, previous_links
    wanted = pc.is_in(
        previous_links.column("document").cast(pa.string()), value_set=pa.array(unreadable)
    )
    carried = previous_links.filter(wanted)
    if carried.num_rows == 0:
        return links, previous_links
    names = links.schema.names
    if any(n not in carried.column_names for n in names if n != "first_listed"):
        return links, previous_links  # an older layout: nothing to carry faithfully
    if "first_listed" not in carried.column_names:  # a snapshot from before the column
        carried = carried.append_column(
            "first_listed", pa.nulls(carried.num_rows, type=pa.date32())
        )
    carried = _in_key_order(carried.select(names).cast(links.schema))
    if isinstance(links, LinksFile):
        return links.with_documents(carried), previous_links
    return _in_key_order(pa.concat_tables([links, carried])), previous_links


def _in_key_order(links: pa.Table) -> pa.Table:
    """Rows by (document, position); Arrow sorts no dictionary column, so by its values."""
    keys = pa.table(
        {"document": links.column("document").cast(pa.string()), "position": links["position"]}
    )
    order = pc.sort_indices(keys, sort_keys=[("document", "ascending"), ("position", "ascending")])
    return links.take(order)


def previous_first_listed(
    previous_links: pa.Table | None, previous_date: date | None
) -> dict[Listing, date]:
    """The first-listed facts of the previous snapshot's links table (module docstring)."""
    if previous_links is None or previous_links.num_rows == 0:
        return {}
    names = previous_links.column_names
    documents = previous_links.column("document").to_pylist()
    entities = previous_links.column("entity_id").to_pylist()
    dates: list[date | None] = (
        previous_links.column("first_listed").to_pylist()
        if "first_listed" in names
        else [None] * len(documents)
    )
    facts: dict[Listing, date] = {}
    for document, entity, when in zip(documents, entities, dates, strict=True):
        if entity is None:
            continue
        known = when or previous_date
        if known is None:
            continue
        key = (document, entity)
        if key not in facts or known < facts[key]:
            facts[key] = known
    return facts


def listed_since(versions: Sequence[tuple[date, Iterable[str]]]) -> dict[str, date]:
    """Entity -> the date of the oldest version in the unbroken run back from the newest
    that lists it. `versions`: (commit date, entities listed), newest first."""
    since: dict[str, date] = {}
    still: set[str] | None = None
    for when, entities in versions:
        present = set(entities)
        still = present if still is None else still & present
        if not still:
            break
        for entity in still:
            since[entity] = when
    return since


def first_listed_column(
    documents: pa.Array | pa.ChunkedArray,
    entity_ids: pa.Array | pa.ChunkedArray,
    previous: Mapping[Listing, date],
    snapshot_date: date,
    backfill: Mapping[Listing, date] | None = None,
) -> pa.Array:
    """The `first_listed` column for these rows (module docstring)."""
    history = backfill or {}
    out: list[date | None] = []
    for document, entity in zip(documents.to_pylist(), entity_ids.to_pylist(), strict=True):
        if entity is None:
            out.append(None)
            continue
        key = (document, entity)
        out.append(previous.get(key) or history.get(key) or snapshot_date)
    return pa.array(out, type=pa.date32())
