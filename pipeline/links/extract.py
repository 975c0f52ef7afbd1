"""Extraction: markdown reading lists in, link occurrences with their context out.

Documents are read as GitHub renders them, by a real CommonMark/GFM parser
(`pipeline.links._markdown`), never by line regexes: nothing inside code blocks, code
spans, HTML comments, YAML front matter or Liquid/Jekyll template tags counts, and a
link is where GitHub would show one.

Parser choice. markdown-it-py: CommonMark, GFM tables, plugins for front matter and
footnotes, and a Python API for inline rules, so the bare-URL rules run inside the
inline parser, where GitHub's do, and a URL next to `**`, `)` or CJK text ends where
GitHub ends it (`pipeline.links._autolink`). The alternatives fell short on behaviour,
not only speed: markdown-it-pyrs (its Rust port) has a linkify that is not GitHub's,
wrong source maps after links in table cells and no custom inline rules; pyromark has
no GFM bare-URL autolinks; a regex scan reads no markdown. Documents are parsed in
chunks (`pipeline.links._markdown`), so memory stays bounded whatever a document's size.
Measurements are in `benchmarks/RESULTS.md`.

Decisions, for the people who read the links table:

- `syntax`: a reference-style image (`![alt][ref]`) is `image`; `[text][ref]`,
  `[text][]` and `[text]` with a definition are `reference`; a definition itself is
  not an occurrence (GitHub shows nothing for it). `html` covers `href` of `<a>` and
  `<area>`, `src` of `<img>`, `<source>`, `<video>`, `<audio>`, `<iframe>`, `<embed>`,
  `srcset` of `<img>`/`<source>` (one occurrence per candidate) and `poster`.
- `url`: the destination with escapes and entities decoded, not percent-encoded;
  for a `www.` bare URL the destination GitHub gives it (`http://www...`), while
  `link_text` keeps the text as written. Bare email addresses are not extracted.
- `mention`: `arXiv:2409.12191`, `arXiv: 2409.12191v2`, `arxiv 2409.12191`,
  `arXiv:hep-th/9901001` (any case) in text; not inside link text (the link is the
  occurrence), code, or a URL.
- `heading_path`: a link in a heading has that heading last. Headings inside a block
  quote only apply within it (a quote is a sectioning root); headings in list items
  apply onwards as usual.
- `annotation`: the whole plain text of the link's unit, link texts and dates
  included, whitespace collapsed, at most 2,000 characters: the innermost list item
  (its own paragraphs, not its sub-items), else the table row (non-empty cells joined
  by ` | `), else the paragraph, heading or HTML block.
- `item_date`: the date the unit carries at its start (`2025.03`, `[2024.05]`,
  `24.09`, `2025-12-18`, `Mar 2024`, `2024年5月`), or a table cell or link text that
  is nothing but a date (`| 24.09 |`, `[2025-12-18](...)`), as ISO `YYYY-MM` or
  `YYYY-MM-DD`; two-digit years are 20YY; impossible months and days are no date. A
  sub-item without one takes its parent item's.
- `is_main_link`: the first link (not image, not mention) of a list item's first own
  paragraph, as awesome-lint has it; for tables, the first link of a body row, since
  table-style lists put one entry per row. False elsewhere.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from markdown_it.token import Token

from pipeline.links._html_links import Tag, Text, scan
from pipeline.links._markdown import BARE_URL, CHUNK_CHARS, HREF, POS, parse_chunks

Syntax = Literal["inline", "image", "reference", "autolink", "bare", "html", "mention"]
"""How the link is written: `[t](u)`, `![a](u)`, `[t][ref]`, `<u>`, a GFM bare URL,
`href`/`src` in HTML, or a plain-text identifier such as `arXiv:2409.12191`."""

TEXT_MAX_CHARS = 2000
"""Longest annotation or link text kept; longer ones end in `…`."""


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
    """The first link of a list item (awesome-lint's main link), or of a table body row."""
    url: str
    """Destination as written in the document (for mentions: the mention text)."""
    syntax: Syntax


class DocumentError(Exception):
    """A document that cannot be read as text; names the document and the reason."""

    def __init__(self, document: str, reason: str) -> None:
        super().__init__(f"{document}: {reason}")
        self.document = document
        self.reason = reason


def decode_document(data: bytes, document: str) -> str:
    """The text of a UTF-8 document; `DocumentError` if it is binary or not UTF-8.

    A UTF-8 byte-order mark is dropped; line ends are left as they are.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DocumentError(document, "UTF-16 text (byte-order mark at offset 0), not UTF-8")
    nul = data.find(b"\x00")
    if nul != -1:
        raise DocumentError(document, f"binary content (NUL byte at offset {nul})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(
            document, f"not UTF-8: invalid byte 0x{data[exc.start]:02x} at offset {exc.start}"
        ) from exc
    return text.removeprefix("\ufeff")


def extract_document(
    text: str, document: str, *, chunk_chars: int = CHUNK_CHARS
) -> Iterator[Occurrence]:
    """Every link occurrence of one markdown document, in document order.

    `chunk_chars` bounds how much text is parsed at once (memory); results do not
    depend on it.
    """
    walker = _Walker(document)
    for tokens, first_line in parse_chunks(_prepare(text), chunk_chars):
        yield from walker.walk(tokens, first_line)


# --- Preparing the text -------------------------------------------------------------

_TEMPLATE = re.compile(
    r"\{%-?\s*(?P<block>comment|highlight)\b[^\n]{0,500}?%\}.{0,1000000}?\{%-?\s*end(?P=block)\s*-?%\}"
    r"|\{\{[^\n]{0,1000}?\}\}"
    r"|\{%[^\n]{0,1000}?%\}",
    re.DOTALL,
)
"""Liquid/Jekyll tags (`{{ site.time }}`, `{% include x %}`); a `comment` or `highlight`
block goes whole. Tags stay on one line, so a stray `{{` costs one line's scan."""
_NOT_NEWLINE = re.compile(r"[^\n]")


def _prepare(text: str) -> str:
    """`\\n` line ends, no BOM or NUL, template tags removed (line numbers unchanged)."""
    text = text.removeprefix("\ufeff")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")  # as CommonMark says, and markdown-it does
    if "{{" in text or "{%" in text:
        # Removed, not blanked: spaces at a line's start would make it indented code.
        text = _TEMPLATE.sub(lambda m: _NOT_NEWLINE.sub("", m.group()), text)
    return text


# --- Dates and mentions ---------------------------------------------------------------

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
_MONTH_NAME = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DATE = re.compile(
    rf"""(?:
        (?P<year>(?:19|20)\d\d)(?P<sep>[./-])(?P<month>\d{{1,2}})(?:(?P=sep)(?P<day>\d{{1,2}}))?
      | (?P<yy>\d\d)\.(?P<mm>\d\d)(?:\.(?P<dd>\d\d))?
      | (?P<cy>(?:19|20)\d\d)\s*年\s*(?P<cm>\d{{1,2}})\s*月(?:\s*(?P<cd>\d{{1,2}})\s*日)?
      | (?:(?P<nd>\d{{1,2}})\s+)?(?P<name>{_MONTH_NAME})\.?
        (?:\s+(?P<nd2>\d{{1,2}})(?:st|nd|rd|th)?)?,?\s+(?P<ny>(?:19|20)\d\d)
    )(?![0-9A-Za-z]|[./-][0-9])""",
    re.IGNORECASE | re.VERBOSE,
)
"""The date forms reading lists put on their entries; the lookahead keeps `2024.05` out of
`2024.05.3B`, and the year forms keep version numbers (`Qwen2.5`, `1.5B`) out."""
_LEADING_NON_WORD = re.compile(r"[\W_]*")
_DATE_DECORATION = "".join(("\\s", r"\[\](){}<>【】（）「」『』*_~`'\"|:：,，.·•"))
_DATE_TRIM = re.compile(rf"^[{_DATE_DECORATION}]+|[{_DATE_DECORATION}]+$")


def _iso_date(match: re.Match[str]) -> str | None:
    """The ISO form of a matched date, None if no such month or day exists."""
    group = match.group
    if group("year"):
        year, month, day = int(group("year")), int(group("month")), group("day")
    elif group("yy"):
        year, month, day = 2000 + int(group("yy")), int(group("mm")), group("dd")
    elif group("cy"):
        year, month, day = int(group("cy")), int(group("cm")), group("cd")
    else:
        year, month = int(group("ny")), _MONTHS[group("name").lower()]
        day = group("nd") or group("nd2")
    if not 1 <= month <= 12:
        return None
    if day is None:
        return f"{year:04d}-{month:02d}"
    if not 1 <= int(day) <= calendar.monthrange(year, month)[1]:
        return None
    return f"{year:04d}-{month:02d}-{int(day):02d}"


def _leading_date(text: str) -> str | None:
    """The date `text` starts with, past any punctuation, brackets or emoji."""
    start = _LEADING_NON_WORD.match(text)
    match = _DATE.match(text, start.end() if start else 0)
    return _iso_date(match) if match else None


def _whole_date(text: str) -> str | None:
    """The date `text` is, brackets and emphasis aside; None if it holds anything else."""
    match = _DATE.fullmatch(_DATE_TRIM.sub("", text))
    return _iso_date(match) if match else None


_MENTION = re.compile(
    r"(?<![A-Za-z0-9])arxiv(?:\s*[:：]\s*|\s+)"
    r"(?:\d{4}\.\d{4,5}|[a-z]+(?:-[a-z]+)?(?:\.[a-z]{2})?/\d{7})(?:v\d+)?(?![0-9])",
    re.IGNORECASE,
)
"""An arXiv identifier named in text: new-style `2409.12191`, old-style `hep-th/9901001`."""
_URL_LOOKBACK_CHARS = 2048
"""How far back from a mention to look for the start of the word (URL) it may be in."""


def _mentions(text: str) -> Iterator[re.Match[str]]:
    """arXiv mentions in a run of text, except inside a URL the text spells out."""
    for match in _MENTION.finditer(text):
        start = word = match.start()
        floor = max(0, start - _URL_LOOKBACK_CHARS)
        while word > floor and not text[word - 1].isspace():
            word -= 1
        prefix = text[word:start]
        if "://" not in prefix and "www." not in prefix:
            yield match


# --- Plain text -------------------------------------------------------------------------

_WHITESPACE = re.compile(r"\s+")
_TEXT_TOKENS = frozenset({"text", "code_inline", BARE_URL})
_BREAKS = frozenset({"softbreak", "hardbreak"})


def _collapse(text: str) -> str:
    """Whitespace runs as one space, ends trimmed, bounded length."""
    text = _WHITESPACE.sub(" ", text).strip()
    if len(text) > TEXT_MAX_CHARS:
        text = text[: TEXT_MAX_CHARS - 1] + "…"
    return text


def _plain_text(tokens: Sequence[Token]) -> str:
    """What a reader sees of inline tokens: text, code, image alt text; no markup."""
    parts: list[str] = []
    size = 0
    for token in tokens:
        if token.type in _TEXT_TOKENS:
            parts.append(token.content)
        elif token.type in _BREAKS:
            parts.append(" ")
        elif token.type == "image":
            parts.append(_plain_text(token.children or ()))
        else:
            continue
        size += len(parts[-1])
        if size > 2 * TEXT_MAX_CHARS:
            break
    return _collapse("".join(parts))


# --- The token walk ---------------------------------------------------------------------

_INLINE_HTML_TAGS = frozenset(
    {"a", "abbr", "b", "code", "del", "em", "i", "ins", "kbd", "mark", "s", "small", "span"}
    | {"strong", "sub", "sup", "u"}
)
"""Tags that do not separate words; any other tag reads as a space in annotations."""
_CODE_TAGS = frozenset({"code", "pre", "kbd", "samp"})
_ANCHOR_CLOSE = re.compile(r"</a\s*>", re.IGNORECASE)


@dataclass(slots=True, eq=False)
class _Draft:
    """An occurrence while its unit is still being read."""

    position: int
    line: int
    heading_path: tuple[str, ...]
    url: str
    syntax: Syntax
    link_text: str
    main_candidate: bool
    annotation: str = ""
    item_date: str | None = None
    is_main_link: bool = False

    def occurrence(self, document: str) -> Occurrence:
        return Occurrence(
            document=document,
            position=self.position,
            line=self.line,
            heading_path=self.heading_path,
            item_date=self.item_date,
            link_text=self.link_text,
            annotation=self.annotation,
            is_main_link=self.is_main_link,
            url=self.url,
            syntax=self.syntax,
        )


@dataclass(slots=True, eq=False)
class _Unit:
    """What a link's context comes from: a list item, a table row, or one block."""

    kind: Literal["item", "row", "block"]
    parent: _Unit | None = None
    """The enclosing list item, whose date a dateless sub-item or row takes."""
    level: int = 0
    """Nesting level of the list item's opening token."""
    header: bool = False
    """A table header row."""
    paragraphs: int = 0
    """Paragraphs of the list item's own seen so far."""
    cells: list[list[str]] = field(default_factory=lambda: [[]])
    size: int = 0
    drafts: list[_Draft] = field(default_factory=list)
    children_date: tuple[str | None] | None = None

    def add(self, text: str) -> None:
        # Collapsing and truncation happen once, at the end; stop collecting well past
        # the limit so a runaway paragraph costs no memory.
        if self.size <= 2 * TEXT_MAX_CHARS:
            self.cells[-1].append(text)
            self.size += len(text)

    def texts(self) -> list[str]:
        return [_collapse("".join(cell)) for cell in self.cells]

    def own_date(self, texts: list[str]) -> str | None:
        """The date this unit carries itself (see the module docstring)."""
        found: str | None = None
        if self.kind == "row":
            found = next(filter(None, map(_whole_date, texts)), None)
        elif texts:
            found = _leading_date(texts[0])
        if found is None:
            dated = (d.link_text for d in self.drafts if d.syntax != "mention")
            found = next(filter(None, map(_whole_date, dated)), None)
        return found

    def date_for_children(self) -> str | None:
        """The date sub-items inherit: this item's, as known when the first one asks."""
        if self.children_date is None:
            own = self.own_date(self.texts())
            inherited = self.parent.date_for_children() if self.parent else None
            self.children_date = (own or inherited,)
        return self.children_date[0]

    def close(self) -> None:
        texts = self.texts()
        annotation = _collapse(" | ".join(filter(None, texts))) if self.kind == "row" else texts[0]
        item_date = self.own_date(texts)
        if item_date is None and self.parent is not None:
            item_date = self.parent.date_for_children()
        main = next((d for d in self.drafts if d.main_candidate), None)
        for draft in self.drafts:
            draft.annotation = annotation
            draft.item_date = item_date
            draft.is_main_link = draft is main


class _Lines:
    """Line numbers of offsets into one source string, counted incrementally."""

    __slots__ = ("_count", "_first", "_pos", "_src")

    def __init__(self, src: str, first: int) -> None:
        self._src, self._first, self._pos, self._count = src, first, 0, 0

    def at(self, pos: int) -> int:
        # Steps back happen at every bare URL (its text token is stamped at the `:`, the
        # URL at its start): count back from here, not from the start of the block, or a
        # paragraph of n bare URLs costs n^2.
        if pos < self._pos:
            self._count -= self._src.count("\n", pos, self._pos)
        else:
            self._count += self._src.count("\n", self._pos, pos)
        self._pos = pos
        return self._first + self._count


@dataclass(slots=True, eq=False)
class _Scope:
    """Where the walk stands inside one inline token (a paragraph, cell or heading)."""

    unit: _Unit
    lines: _Lines
    main_ok: bool
    """Links here may be their unit's main link (first own paragraph, body row)."""
    links: int = 0
    """Open markdown links and `<a>` elements: their text is link text, not a mention."""
    anchors: list[bool] = field(default_factory=list)
    """Open `<a>` tags, True where one carries a link."""
    code: int = 0
    """Open `<code>`, `<pre>`... tags: no mentions inside."""

    @property
    def mentions_allowed(self) -> bool:
        return not self.links and not self.code


class _Walker:
    """Walks a document's tokens, chunk by chunk, into occurrences."""

    def __init__(self, document: str) -> None:
        self.document = document
        self.position = 0
        self.headings: list[tuple[int, str]] = []
        self.heading_path: tuple[str, ...] = ()
        self.saved_headings: list[list[tuple[int, str]]] = []
        self.items: list[_Unit] = []
        self.row: _Unit | None = None
        self.block: _Unit | None = None
        self.in_thead = False
        self.first_paragraph = False
        self.heading_level = 0
        self.first_line = 0
        self.drafts: list[_Draft] = []

    def walk(self, tokens: list[Token], first_line: int) -> Iterator[Occurrence]:
        """Occurrences of whole top-level blocks; `first_line`: 0-based line of the first."""
        self.first_line = first_line
        for token in tokens:
            self._block_token(token)
        for unit in [*self.items, self.row, self.block]:  # only on malformed token streams
            if unit is not None:
                unit.close()
        self.items, self.row, self.block = [], None, None
        drafts, self.drafts = self.drafts, []
        for draft in drafts:
            yield draft.occurrence(self.document)

    # Block structure

    def _block_token(self, token: Token) -> None:
        kind = token.type
        if kind == "inline":
            self._inline(token)
        elif kind == "paragraph_open":
            self._open_text_block(token)
        elif kind == "heading_open":
            self.heading_level = int(token.tag[1:])
            self._open_text_block(token)
        elif kind in ("paragraph_close", "heading_close"):
            self.first_paragraph = False
            self.heading_level = 0
            if self.block is not None:
                self.block.close()
                self.block = None
        elif kind == "list_item_open":
            parent = self.items[-1] if self.items else None
            self.items.append(_Unit("item", parent=parent, level=token.level))
        elif kind == "list_item_close":
            self.items.pop().close()
        elif kind == "tr_open":
            parent = self.items[-1] if self.items else None
            self.row = _Unit("row", parent=parent, header=self.in_thead, cells=[])
        elif kind in ("th_open", "td_open") and self.row is not None:
            self.row.cells.append([])
        elif kind == "tr_close" and self.row is not None:
            self.row.close()
            self.row = None
        elif kind in ("thead_open", "thead_close"):
            self.in_thead = kind == "thead_open"
        elif kind in ("blockquote_open", "alert_open"):
            self.saved_headings.append(list(self.headings))
        elif kind in ("blockquote_close", "alert_close") and self.saved_headings:
            self._set_headings(self.saved_headings.pop())
        elif kind == "html_block":
            self._html_block(token)

    def _open_text_block(self, token: Token) -> None:
        if self.items:
            item = self.items[-1]
            if item.size:
                item.add(" ")
            if token.type == "paragraph_open" and token.level == item.level + 1:
                item.paragraphs += 1
                self.first_paragraph = item.paragraphs == 1
        else:
            self.block = _Unit("block")

    def _unit(self) -> _Unit:
        unit = self.row or (self.items[-1] if self.items else self.block)
        if unit is None:  # inline content outside any known block (plugin tokens)
            unit = self.block = _Unit("block")
        return unit

    def _set_headings(self, headings: list[tuple[int, str]]) -> None:
        self.headings = headings
        self.heading_path = tuple(text for _, text in headings)

    def _enter_heading(self, level: int, text: str) -> None:
        headings = [(lvl, txt) for lvl, txt in self.headings if lvl < level]
        self._set_headings([*headings, (level, text)])

    # Inline content

    def _inline(self, token: Token) -> None:
        children = token.children
        if not children:
            return
        if self.heading_level:
            self._enter_heading(self.heading_level, _plain_text(children))
        unit = self._unit()
        scope = _Scope(
            unit=unit,
            lines=_Lines(token.content, (token.map[0] if token.map else 0) + self.first_line + 1),
            main_ok=unit.kind != "block"
            and (self.first_paragraph if unit.kind == "item" else not unit.header),
        )
        link: _Draft | None = None
        for index, child in enumerate(children):
            kind = child.type
            pos = child.meta.get(POS, 0)
            if kind == "text":
                unit.add(child.content)
                if scope.mentions_allowed:
                    line = scope.lines.at(pos)  # a text token never spans lines
                    for match in _mentions(child.content):
                        self._mention(unit, line, match.group())
            elif kind in _BREAKS:
                unit.add(" ")
            elif kind == "code_inline":
                unit.add(child.content)
            elif kind == BARE_URL:
                unit.add(child.content)
                line = scope.lines.at(pos)
                self._draft(unit, line, child.meta[HREF], "bare", child.content, scope.main_ok)
            elif kind == "link_open":
                scope.links += 1
                text = _plain_text(children[index + 1 : _closing(children, index, "link_close")])
                syntax: Syntax = "autolink" if child.markup == "autolink" else "inline"
                href = str(child.attrs.get("href", ""))
                link = self._draft(unit, scope.lines.at(pos), href, syntax, text, scope.main_ok)
            elif kind == "link_close":
                scope.links -= 1
                if link is not None and link.syntax != "autolink":
                    # Pushed at the label's `]`: an inline link's destination follows.
                    followed = token.content.startswith("(", pos + 1)
                    link.syntax = "inline" if followed else "reference"
                link = None
            elif kind == "image":
                alt = _plain_text(child.children or ())
                unit.add(alt)
                src = str(child.attrs.get("src", ""))
                self._draft(unit, scope.lines.at(pos), src, "image", alt, False)
            elif kind == "html_inline":
                for tag in scan(child.content):
                    if isinstance(tag, Tag):
                        self._inline_tag(tag, scope, scope.lines.at(pos), children, index)

    def _inline_tag(
        self, tag: Tag, scope: _Scope, line: int, children: list[Token], index: int
    ) -> None:
        """One tag of inline HTML (comments and the like were skipped: nothing is seen)."""
        if tag.name in _CODE_TAGS:
            scope.code = max(scope.code - 1, 0) if tag.closing else scope.code + 1
        if tag.name == "a" and tag.closing:
            if scope.anchors and scope.anchors.pop():
                scope.links -= 1
        elif tag.name == "a":
            end = _closing(children, index, "html_inline", _ANCHOR_CLOSE)
            text = _plain_text(children[index + 1 : end])
            carries_link = bool(self._tag_drafts(tag, scope.unit, line, scope.main_ok, text))
            scope.anchors.append(carries_link)
            scope.links += carries_link
        elif not tag.closing:
            if tag.name == "img":
                scope.unit.add(tag.label)
            elif tag.name not in _INLINE_HTML_TAGS:
                scope.unit.add(" ")
            self._tag_drafts(tag, scope.unit, line, False, tag.label)

    def _html_block(self, token: Token) -> None:
        unit = self.items[-1] if self.items else _Unit("block")
        if unit.size:
            unit.add(" ")
        lines = _Lines(token.content, (token.map[0] if token.map else 0) + self.first_line + 1)
        anchors: list[tuple[_Draft, list[str]] | None] = []  # open <a>, text so far
        code = 0
        for part in scan(token.content):
            if isinstance(part, Text):
                unit.add(part.text)
                for anchor in anchors:
                    if anchor is not None:
                        anchor[1].append(part.text)
                if not anchors and not code:
                    for match in _mentions(part.text):
                        line = lines.at(part.offset + match.start())
                        self._mention(unit, line, match.group())
                continue
            if part.name in _CODE_TAGS:
                code = max(code - 1, 0) if part.closing else code + 1
            if part.closing:
                if part.name == "a" and anchors:
                    _finish_anchor(anchors.pop())
                continue
            if part.name not in _INLINE_HTML_TAGS:
                unit.add(" ")
            line = lines.at(part.offset)
            drafts = self._tag_drafts(part, unit, line, False, part.label)
            if part.name == "a":
                anchors.append((drafts[0], []) if drafts else None)
            elif part.name == "img":
                unit.add(part.label)
                for anchor in anchors:
                    if anchor is not None:
                        anchor[1].append(part.label)
        for anchor in anchors:
            _finish_anchor(anchor)
        if not self.items:
            unit.close()

    # Occurrences

    def _draft(
        self, unit: _Unit, line: int, url: str, syntax: Syntax, text: str, main: bool
    ) -> _Draft:
        draft = _Draft(
            position=self.position,
            line=line,
            heading_path=self.heading_path,
            url=url,
            syntax=syntax,
            link_text=text,
            main_candidate=main and syntax not in ("image", "mention"),
        )
        self.position += 1
        self.drafts.append(draft)
        unit.drafts.append(draft)
        return draft

    def _tag_drafts(self, tag: Tag, unit: _Unit, line: int, main: bool, text: str) -> list[_Draft]:
        return [self._draft(unit, line, url, "html", text, main) for url in tag.urls()]

    def _mention(self, unit: _Unit, line: int, mention: str) -> None:
        self._draft(unit, line, mention, "mention", mention, False)


def _closing(
    children: list[Token], index: int, kind: str, content: re.Pattern[str] | None = None
) -> int:
    """Index of the first token after `index` of type `kind` (and matching `content`)."""
    for end in range(index + 1, len(children)):
        token = children[end]
        if token.type == kind and (content is None or content.match(token.content)):
            return end
    return len(children)


def _finish_anchor(anchor: tuple[_Draft, list[str]] | None) -> None:
    """An `<a>` of an HTML block is closed: its text is what it enclosed."""
    if anchor is not None:
        draft, parts = anchor
        draft.link_text = _collapse("".join(parts))
