"""The `documents` table and the `listed` / `unlisted` changes: what each reading list
was tonight, and which entities entered or left it since the previous snapshot. Pure."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.links.identify import HUB_REPO_TYPES
from pipeline.records import Document, DocumentSource
from pipeline.snapshot.by_document import WHOLE_DOCUMENT_ROWS, DocumentSpans, whole_documents
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
_LISTINGS_SCHEMA = pa.schema([pa.field(name, pa.string()) for name in _LISTING_KEYS])

LISTING_GROUP_ROWS = WHOLE_DOCUMENT_ROWS
"""Links compared at a time (whole documents, `whole_documents`)."""


def _listings(links: pa.Table | pa.RecordBatch) -> pa.Table:
    """The distinct (entity type, entity ID, document) of these links."""
    named = links.filter(pc.is_valid(links.column("entity_id")))
    if named.num_rows == 0:
        return _LISTINGS_SCHEMA.empty_table()
    kinds = named.column("kind").cast(pa.string())
    present = pc.unique(kinds)
    types = pa.array([entity_type_of(kind) for kind in present.to_pylist()], pa.string())
    listed = pa.table(
        [
            pc.take(types, pc.index_in(kinds, value_set=present)),
            named.column("entity_id").cast(pa.string()),
            named.column("document").cast(pa.string()),
        ],
        schema=_LISTINGS_SCHEMA,
    )
    return listed.group_by(_LISTING_KEYS, use_threads=False).aggregate([])


def _tonight_by_documents(links: pa.Table | LinksFile) -> Iterator[tuple[list[str], pa.Table]]:
    """(documents, their distinct listings), whole documents at a time, in order."""
    columns = ["document", "kind", "entity_id"]
    batches = links.to_batches() if isinstance(links, LinksFile) else links
    for rows in whole_documents(batches, columns, LISTING_GROUP_ROWS):
        yield _names(rows), _listings(rows)


def _names(rows: pa.Table) -> list[str]:
    names: list[str] = pc.unique(rows.column("document").cast(pa.string())).to_pylist()
    return names


def listing_changes(
    links: pa.Table | LinksFile, previous_links: pa.Table | None, previous_date: date | None
) -> list[Row]:
    """`listed` / `unlisted` rows: an entity entering or leaving a document since the
    previous snapshot (`field` names the document). Nothing without a previous snapshot:
    a first night lists everything, which says nothing. Compared a few documents at a
    time (`DocumentSpans`): a document's listings are its own business."""
    if previous_links is None:
        return []
    before = DocumentSpans(previous_links.select(["document", "kind", "entity_id"]))
    found: list[tuple[str, str, int, str]] = []
    compared: set[str] = set()
    for names, after in _tonight_by_documents(links):
        compared.update(names)
        found.extend(_moved(after, _listings(before.of(names))))
    gone = [name for name in before.names if name not in compared]
    for names in before.groups(gone, LISTING_GROUP_ROWS):
        found.extend(_moved(_LISTINGS_SCHEMA.empty_table(), _listings(before.of(names))))
    changes = ("listed", "unlisted")
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


def _moved(after: pa.Table, before: pa.Table) -> list[tuple[str, str, int, str]]:
    """(entity type, entity ID, 0 for listed / 1 for unlisted, document) of the listings
    in one of `after` and `before` but not the other."""
    found: list[tuple[str, str, int, str]] = []
    for order, (new, old) in enumerate(((after, before), (before, after))):
        if new.num_rows == 0:
            continue
        moved = new.join(old, keys=_LISTING_KEYS, join_type="left anti", use_threads=False)
        found.extend(
            (row["entity_type"], row["entity_id"], order, row["document"])
            for row in moved.select(_LISTING_KEYS).to_pylist()
        )
    return found


def with_column(table: Any, name: str, column: pa.Array) -> Any:
    """`table` (a Table or a RecordBatch) with `name` replaced by `column` (the schema
    keeps its place and type)."""
    index = table.schema.get_field_index(name)
    return table.set_column(index, table.schema.field(index), column)
