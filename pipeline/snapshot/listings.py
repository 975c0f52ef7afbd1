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


def _listings(links: pa.Table | LinksFile | None) -> dict[tuple[str, str], set[str]]:
    """(entity type, entity ID) -> the documents listing it. Read a batch at a time: only
    the distinct listings become Python objects, not one per link."""
    found: dict[tuple[str, str], set[str]] = {}
    if links is None or links.num_rows == 0:
        return found
    for batch in links.to_batches():
        named = batch.filter(pc.is_valid(batch.column("entity_id")))
        columns = (
            named.column(name).cast(pa.string()).to_pylist()
            for name in ("document", "kind", "entity_id")
        )
        for document, kind, entity in set(zip(*columns, strict=True)):
            found.setdefault((entity_type_of(kind), entity), set()).add(document)
    return found


def listing_changes(
    links: pa.Table | LinksFile, previous_links: pa.Table | None, previous_date: date | None
) -> list[Row]:
    """`listed` / `unlisted` rows: an entity entering or leaving a document since the
    previous snapshot (`field` names the document). Nothing without a previous snapshot:
    a first night lists everything, which says nothing."""
    if previous_links is None:
        return []
    before, after = _listings(previous_links), _listings(links)
    rows: list[Row] = []
    for entity in sorted(before.keys() | after.keys()):
        old, new = before.get(entity, set()), after.get(entity, set())
        for change, documents in (("listed", new - old), ("unlisted", old - new)):
            rows.extend(
                {
                    "entity_type": entity[0],
                    "entity_id": entity[1],
                    "change": change,
                    "field": document,
                    "previous_snapshot_date": previous_date,
                }
                for document in sorted(documents)
            )
    return rows


def with_column(table: Any, name: str, column: pa.Array) -> Any:
    """`table` (a Table or a RecordBatch) with `name` replaced by `column` (the schema
    keeps its place and type)."""
    index = table.schema.get_field_index(name)
    return table.set_column(index, table.schema.field(index), column)
