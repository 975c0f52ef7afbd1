"""Links in raw HTML: the tags, text and comments of an HTML fragment (pure functions).

Markdown documents carry HTML both as blocks (`<p align="center"><a href=...>`) and
inline (`<a href="...">text</a>` inside a paragraph). One scanner serves both: it
splits a fragment into tags, text and skipped spans, and says which attributes of a
tag are links. It follows the CommonMark grammar of a tag (what markdown-it hands us
is already known to be HTML), tolerates broken markup by treating it as text, and
skips comments, processing instructions, declarations, CDATA and the content of
raw-text elements (`script`, `style`, `textarea`, `title`, `xmp`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass

_ATTRIBUTE = r"""[A-Za-z_:][A-Za-z0-9_.:-]*(?:\s*=\s*(?:[^\s"'=<>`]+|'[^']*'|"[^"]*"))?"""
_TOKEN = re.compile(
    r"<!--(?:-?>|.*?-->)"  # comment (`<!-->` and `<!--->` included, as CommonMark has it)
    r"|<\?.*?\?>"  # processing instruction
    r"|<!\[CDATA\[.*?\]\]>"
    r"|<![A-Za-z][^>]*>"  # declaration
    rf"|</(?P<close>[A-Za-z][A-Za-z0-9-]*)\s*>"
    rf"|<(?P<open>[A-Za-z][A-Za-z0-9-]*)(?P<attrs>(?:\s+{_ATTRIBUTE})*)\s*/?>",
    re.DOTALL,
)
_ATTRIBUTES = re.compile(
    r"""(?P<name>[A-Za-z_:][A-Za-z0-9_.:-]*)(?:\s*=\s*(?:(?P<bare>[^\s"'=<>`]+)|'(?P<single>[^']*)'|"(?P<double>[^"]*)"))?"""
)
_RAW_TEXT_ELEMENTS = frozenset({"script", "style", "textarea", "title", "xmp"})

LINK_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "a": ("href",),
    "area": ("href",),
    "img": ("src", "srcset"),
    "source": ("src", "srcset"),
    "video": ("src", "poster"),
    "audio": ("src",),
    "iframe": ("src",),
    "embed": ("src",),
}
"""Which attributes of which elements point at a resource a reader sees or follows.

`srcset` is included: `<picture>` sources are how READMEs ship light/dark logos and
figures, and each candidate is a real image URL. `<link>`, `<script>` and `<form>`
are not: GitHub strips them, and no reader sees them.
"""


@dataclass(frozen=True, slots=True)
class Tag:
    """An opening or closing tag; `attrs` are entity-decoded, names lower-cased."""

    name: str
    closing: bool
    attrs: dict[str, str]
    offset: int
    """Where the tag starts in the fragment."""

    def urls(self) -> list[str]:
        """The link destinations this tag carries, in attribute order, empty ones dropped."""
        found: list[str] = []
        for attr in LINK_ATTRIBUTES.get(self.name, ()) if not self.closing else ():
            value = self.attrs.get(attr, "").strip()
            if not value:
                continue
            found.extend(srcset_urls(value) if attr == "srcset" else [value])
        return found

    @property
    def label(self) -> str:
        """What a reader sees for an element without content: alt text, else its title."""
        return self.attrs.get("alt") or self.attrs.get("title") or ""


@dataclass(frozen=True, slots=True)
class Text:
    """Character data between tags, entity-decoded."""

    text: str
    offset: int


def scan(fragment: str) -> Iterator[Tag | Text]:
    """Tags and text of an HTML fragment in order; comments and raw-text content skipped."""
    pos = 0
    raw_until: str | None = None
    for match in _TOKEN.finditer(fragment):
        start = match.start()
        name = match.group("open") or match.group("close")
        if raw_until is not None:
            # Inside <script>/<style>/...: nothing is markup until the matching end tag.
            if match.group("close") and name is not None and name.lower() == raw_until:
                yield Tag(raw_until, True, {}, start)
                raw_until = None
                pos = match.end()
            continue
        if start > pos:
            yield Text(html.unescape(fragment[pos:start]), pos)
        pos = match.end()
        if name is None:
            continue  # comment, declaration, processing instruction, CDATA
        lowered = name.lower()
        if match.group("close"):
            yield Tag(lowered, True, {}, start)
            continue
        yield Tag(lowered, False, _attributes(match.group("attrs")), start)
        if lowered in _RAW_TEXT_ELEMENTS:
            raw_until = lowered
    if raw_until is None and pos < len(fragment):
        yield Text(html.unescape(fragment[pos:]), pos)


def _attributes(source: str) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for match in _ATTRIBUTES.finditer(source):
        value = match.group("bare") or match.group("single") or match.group("double") or ""
        # The first occurrence of a repeated attribute wins, as in browsers.
        attrs.setdefault(match.group("name").lower(), html.unescape(value))
    return attrs


def srcset_urls(srcset: str) -> list[str]:
    """The image URLs of a `srcset` value (HTML's candidate-list parsing, simplified).

    URLs may contain commas (`?auto=compress,format`); a candidate's URL is the run of
    non-whitespace characters, trailing commas excluded, and its descriptors run to the
    next comma.
    """
    urls: list[str] = []
    pos, size = 0, len(srcset)
    while pos < size:
        while pos < size and (srcset[pos].isspace() or srcset[pos] == ","):
            pos += 1
        start = pos
        while pos < size and not srcset[pos].isspace():
            pos += 1
        url = srcset[start:pos]
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            comma = srcset.find(",", pos)
            pos = size if comma == -1 else comma + 1
        if url:
            urls.append(url)
    return urls
