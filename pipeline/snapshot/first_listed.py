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
from pipeline.snapshot.by_document import DocumentSpans
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


FACTS_SCHEMA = pa.schema(
    [
        pa.field("document", pa.string()),
        pa.field("entity_id", pa.string()),
        pa.field("first_listed", pa.date32()),
    ]
)


class ListingDates:
    """First-listed facts: rows of (document, entity ID, a date it was listed) in
    `table` (a previous links table as read, or `FACTS_SCHEMA` rows); a listing may have
    several rows, and the earliest date wins. A row without a date has `default_date`
    (the date of a snapshot written before the column existed); without one, it says
    nothing.

    The table is kept as given, by document (`DocumentSpans`), and a batch of links is
    matched against its own documents' facts only: a night at scale has hundreds of
    thousands of listings, and copying, hashing or grouping them all at once is what a
    next night's memory went on."""

    def __init__(self, table: pa.Table, default_date: date | None = None) -> None:
        kept = [name for name in FACTS_SCHEMA.names if name in table.column_names]
        self._rows = DocumentSpans(table.select(kept))
        self._default_date = default_date

    def of_documents(self, names: Iterable[str]) -> pa.Table:
        """The facts of these documents, one row per listing with its earliest date."""
        rows = self._rows.of(names)
        dates = (
            rows.column("first_listed")
            if "first_listed" in rows.column_names
            else pa.nulls(rows.num_rows, pa.date32())
        )
        if self._default_date is not None:
            dates = pc.fill_null(dates, pa.scalar(self._default_date, pa.date32()))
        facts = pa.table(
            [rows.column("document"), rows.column("entity_id"), dates],
            names=FACTS_SCHEMA.names,
        ).cast(FACTS_SCHEMA)
        facts = facts.filter(pc.and_(pc.is_valid(facts["entity_id"]), pc.is_valid(dates)))
        earliest = facts.group_by(["document", "entity_id"]).aggregate([("first_listed", "min")])
        return pa.table(
            [earliest["document"], earliest["entity_id"], earliest["first_listed_min"]],
            schema=FACTS_SCHEMA,
        )


def previous_first_listed(
    previous_links: pa.Table | None, previous_date: date | None
) -> ListingDates:
    """The first-listed facts of the previous snapshot's links table (module docstring)."""
    if previous_links is None:
        return ListingDates(FACTS_SCHEMA.empty_table())
    return ListingDates(previous_links, default_date=previous_date)


def backfill_facts(backfill: Mapping[Listing, date]) -> ListingDates:
    """`--backfill`'s (document, entity ID) -> date as first-listed facts."""
    return ListingDates(
        pa.table(
            [
                pa.array([document for document, _ in backfill], pa.string()),
                pa.array([entity for _, entity in backfill], pa.string()),
                pa.array(list(backfill.values()), pa.date32()),
            ],
            schema=FACTS_SCHEMA,
        )
    )


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
    previous: ListingDates,
    snapshot_date: date,
    backfill: ListingDates | None = None,
) -> pa.Array:
    """The `first_listed` column for these rows (module docstring). `previous` and
    `backfill` are first-listed facts (`previous_first_listed`, `backfill_facts`)."""
    rows = pa.table(
        {
            "row": pa.array(range(len(documents)), pa.int64()),
            "document": documents.cast(pa.string()),
            "entity_id": entity_ids.cast(pa.string()),
        }
    )
    names = pc.unique(rows["document"]).drop_null().to_pylist()
    keys = ["document", "entity_id"]
    joined = rows.join(previous.of_documents(names), keys=keys, join_type="left outer")
    history = backfill.of_documents(names) if backfill is not None else None
    if history is not None and history.num_rows:
        joined = joined.join(
            history.rename_columns([*keys, "backfilled"]), keys=keys, join_type="left outer"
        )
    else:
        joined = joined.append_column("backfilled", pa.nulls(joined.num_rows, pa.date32()))
    # A join does not keep the rows' order.
    joined = joined.sort_by("row")
    dated = pc.coalesce(
        joined["first_listed"], joined["backfilled"], pa.scalar(snapshot_date, pa.date32())
    )
    none = pa.nulls(joined.num_rows, pa.date32())
    return pc.if_else(pc.is_valid(joined["entity_id"]), dated, none).combine_chunks()
