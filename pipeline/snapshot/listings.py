"""The `documents` table and the `listed` / `unlisted` changes: what each reading list
was tonight, and which entities entered or left it since the previous snapshot. Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.links.identify import HUB_REPO_TYPES
from pipeline.records import Document, DocumentSource
from pipeline.snapshot.links_file import LinksFile

Row = dict[str, Any]

_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*\r?\n", re.DOTALL)
_FRONT_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$", re.MULTILINE)
_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def document_title(text: str) -> str | None:
    """A document's title: its front matter's `title:` when it has one (a blog post),
    else its first ATX heading outside code fences; None when it has neither."""
    front = _FRONT_MATTER.match(text)
    if front:
        found = _FRONT_TITLE.search(front.group(1))
        if found:
            return found.group(1).strip().strip("'\"").strip() or None
        text = text[front.end() :]
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        heading = None if fenced else _HEADING.match(line)
        if heading:
            return heading.group(1).strip() or None
    return None


def document_rows(
    documents: Sequence[Document], sources: Mapping[str, DocumentSource]
) -> list[Row]:
    """One row per document read tonight (or that could not be read)."""
    rows: list[Row] = []
    for document in sorted(documents, key=lambda d: d.name):
        source = sources.get(document.name, DocumentSource(document.name))
        status = "error" if document.error and source.status == "ok" else source.status
        reason = source.status_reason if source.status != "ok" else None
        rows.append(
            {
                "document": document.name,
                "source_url": source.source_url,
                "ref": source.ref,
                "commit_sha": source.commit_sha,
                "committed_at": source.committed_at,
                "sha256": document.sha256,
                "size_bytes": document.size_bytes,
                "fetched_at": source.fetched_at,
                "status": status,
                "status_reason": reason or document.error,
                "title": source.title,
                "links": document.links,
            }
        )
    return rows


def entity_type_of(kind: str) -> str:
    """A link kind as the `changes` table names entity types."""
    if kind in ("arxiv", "arxiv_mention"):
        return "paper"
    return HUB_REPO_TYPES.get(kind, kind)  # type: ignore[call-overload,no-any-return]


_LISTING_KEYS = ["entity_type", "entity_id", "document"]


def _listings(links: pa.Table | LinksFile) -> pa.Table:
    """The distinct (entity type, entity ID, document) of a links table. In Arrow, a
    batch at a time: a night at scale lists hundreds of thousands of them, too many to
    hold as Python sets."""
    parts = [
        pa.table({name: pa.array([], pa.string()) for name in _LISTING_KEYS}),
    ]
    for batch in links.to_batches():
        named = batch.filter(pc.is_valid(batch.column("entity_id")))
        if named.num_rows == 0:
            continue
        kinds = named.column("kind").cast(pa.string())
        present = pc.unique(kinds)
        types = pa.array([entity_type_of(kind) for kind in present.to_pylist()], pa.string())
        listed = pa.table(
            {
                "entity_type": pc.take(types, pc.index_in(kinds, value_set=present)),
                "entity_id": named.column("entity_id").cast(pa.string()),
                "document": named.column("document").cast(pa.string()),
            }
        )
        parts.append(listed.group_by(_LISTING_KEYS).aggregate([]))
    return pa.concat_tables(parts).group_by(_LISTING_KEYS).aggregate([])


def listing_changes(
    links: pa.Table | LinksFile, previous_links: pa.Table | None, previous_date: date | None
) -> list[Row]:
    """`listed` / `unlisted` rows: an entity entering or leaving a document since the
    previous snapshot (`field` names the document). Nothing without a previous snapshot:
    a first night lists everything, which says nothing."""
    if previous_links is None:
        return []
    before, after = _listings(previous_links), _listings(links)
    changes = ("listed", "unlisted")
    found: list[tuple[str, str, int, str]] = []
    for order, (new, old) in enumerate(((after, before), (before, after))):
        moved = new.join(old, keys=_LISTING_KEYS, join_type="left anti")
        found.extend(
            (row["entity_type"], row["entity_id"], order, row["document"])
            for row in moved.select(_LISTING_KEYS).to_pylist()
        )
    # Per entity, what it entered before what it left, each by document.
    return [
        {
            "entity_type": entity_type,
            "entity_id": entity_id,
            "change": changes[order],
            "field": document,
            "previous_snapshot_date": previous_date,
        }
        for entity_type, entity_id, order, document in sorted(found)
    ]


def with_column(table: Any, name: str, column: pa.Array) -> Any:
    """`table` (a Table or a RecordBatch) with `name` replaced by `column` (the schema
    keeps its place and type)."""
    index = table.schema.get_field_index(name)
    return table.set_column(index, table.schema.field(index), column)
