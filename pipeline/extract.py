"""Extraction: markdown reading lists in, link occurrences with their context out.

CONTRACT STUB: the record and function signatures below are the interface other stages
rely on; the implementation is being written.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Syntax = Literal["inline", "image", "reference", "autolink", "bare", "html", "mention"]
"""How the link is written: `[t](u)`, `![a](u)`, `[t][ref]`, `<u>`, a GFM bare URL,
`href`/`src` in HTML, or a plain-text identifier such as `arXiv:2409.12191`."""


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One link as it stands in one document."""

    document: str
    """The document's name, as `links.discover_documents` named it."""
    position: int
    """0-based ordinal of this occurrence in its document (with `document`, the row key)."""
    line: int
    """1-based line of the document where the link starts."""
    heading_path: tuple[str, ...]
    """Text of every enclosing heading, outermost first."""
    item_date: str | None
    """Date the enclosing list item or table row carries, as ISO `YYYY-MM` or `YYYY-MM-DD`."""
    link_text: str
    """Text of the link (alt text for images); the URL itself for bare URLs and autolinks."""
    annotation: str
    """Text of the enclosing list item or table row (or paragraph) around the link."""
    is_main_link: bool
    """The first link of a list item (awesome-lint's main link)."""
    url: str
    """Destination as written in the document (for mentions: the mention text)."""
    syntax: Syntax


class DocumentError(Exception):
    """A document that cannot be read as text; names the document and the reason."""

    def __init__(self, document: str, reason: str) -> None:
        super().__init__(f"{document}: {reason}")
        self.document = document
        self.reason = reason


def read_document(path: Path, document: str) -> str:
    """The text of a UTF-8 document; `DocumentError` if it is binary, not UTF-8 or unreadable."""
    raise NotImplementedError


def extract_document(text: str, document: str) -> Iterator[Occurrence]:
    """Every link occurrence of one markdown document, in document order."""
    raise NotImplementedError
