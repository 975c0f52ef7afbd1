"""Markdown as GitHub reads it: markdown-it-py configured for GFM, parsed in bounded chunks.

The parser is markdown-it-py (CommonMark) with GitHub's additions: tables,
strikethrough, task lists, alerts (`> [!NOTE]`), footnotes, YAML front matter, and
bare-URL autolinks as cmark-gfm finds them (`pipeline.links._autolink`). Every inline token
carries the offset where it stands in its block's inline source (`token.meta[POS]`),
so a link's line is exact wherever it sits in a paragraph.

A long document is parsed in chunks so that memory stays bounded: markdown-it-py's
tokens take many times the memory of the markdown they come from, which for a document
of tens of megabytes would be gigabytes. A chunk ends before a line that starts in
column 0 after a blank line (no list item, block quote, table, paragraph or indented
code continues across one), or before a column-0 bullet item (a long list has no blank
lines). Only a few blocks can go on across such a line: fenced code and raw HTML blocks,
and, before a bullet item, anything but a list. A chunk whose parse ends in one is cut
before that block (or before its top-level list item), which starts the next chunk; if
it opens the chunk, the chunk grows instead. So every chunk parses as it would within
the whole document. Reference definitions are document-wide: a multi-chunk document that
has any is first scanned for them (block parse only).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Literal

from markdown_it import MarkdownIt
from markdown_it.parser_block import ParserBlock
from markdown_it.parser_inline import ParserInline
from markdown_it.rules_block import StateBlock
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from markdown_it.utils import EnvType
from mdit_py_plugins.footnote import footnote_plugin
from mdit_py_plugins.front_matter import front_matter_plugin

from pipeline.links._autolink import match_scheme_url, match_www, scheme_start, www_preceder_ok

POS = "pos"
"""`token.meta` key: offset of the token in its block's inline source."""
HREF = "href"
"""`token.meta` key of a bare URL token: the destination (`http://` added to `www.`)."""
BARE_URL = "gfm_bare_url"
"""Token type of a GFM bare-URL autolink; `content` is the URL as written."""

CHUNK_CHARS = 256 * 1024
"""Characters per parse: ~12 MB of tokens, ~0.25 s of parsing."""

MAX_NESTING = 100
"""Nesting levels parsed as such (a list level takes two); deeper blocks are read flat.
markdown-it recurses per level, and 100 keeps far from Python's recursion limit."""
_NESTING_RULES = frozenset({"blockquote", "list", "footnote_def"})

_SPLIT = re.compile(r"\n[ \t]*\n(?=[^ \t\n])|(?P<item>\n)(?=[-+*][ \t]+[^ \t\n])")
"""Where a chunk may end: before a line that starts in column 0 after a blank line, or
before a column-0 bullet item (a long list has no blank lines; the cut is checked)."""
_DEFINITION = re.compile(r"^ {0,3}\[[^\n]*\]:", re.MULTILINE)
"""A line that may start a link reference definition."""
_RUNAWAY_BLOCKS = frozenset({"fence", "html_block"})
_WWW_STOP = r"|(?:(?<=[ \t\n\v\f\r*_~(])|^)www\."
"""Added to the text rule's stop characters so the `www.` rule sees where one starts."""


class _InlineState(StateInline):
    """Inline state that stamps each token with its offset and counts open `[` brackets."""

    def __init__(self, src: str, md: MarkdownIt, env: EnvType, outTokens: list[Token]) -> None:
        super().__init__(src, md, env, outTokens)
        self.open_brackets = 0
        """`[` not (yet) closed by a `]` and not part of a link; GitHub makes no bare
        URL while one is open (cmark-gfm's `in_bracket` check)."""

    def push(self, ttype: str, tag: str, nesting: Literal[-1, 0, 1]) -> Token:
        token = super().push(ttype, tag, nesting)
        token.meta[POS] = self.pos
        return token

    def pushPending(self) -> Token:
        # Text is flushed when the next token starts, on the line where the text ends,
        # which is its line: text tokens never span a line break.
        token = super().pushPending()
        token.meta[POS] = self.pos
        return token


class _InlineParser(ParserInline):
    def parse(self, src: str, md: MarkdownIt, env: EnvType, tokens: list[Token]) -> list[Token]:
        state = _InlineState(src, md, env, tokens)
        self.tokenize(state)
        for rule in self.ruler2.getRules(""):
            rule(state)
        return state.tokens


def _bare_url_rule(state: StateInline, silent: bool) -> bool:
    """GFM bare URLs (`www.`, `http(s)://`, `ftp://`) where cmark-gfm would find them."""
    # Never inside link text, `<a>` content or an open `[`, and never while markdown-it
    # scans ahead for a link label (silent): a URL would swallow the closing `]`.
    if silent or state.linkLevel > 0:
        return False
    if not isinstance(state, _InlineState) or state.open_brackets:
        return False
    src, pos, end = state.src, state.pos, state.posMax
    if src[pos] == ":":
        start = scheme_start(src, pos, 0)
        if start is None:
            return False
        link_end = match_scheme_url(src, start, pos, end)
        pending = state.pending
        if link_end is None or not pending.endswith(src[start:pos]):
            return False
        state.pending = pending[: len(pending) - (pos - start)]
        href = src[start:link_end]
    elif src[pos] == "w" and www_preceder_ok(src, pos):
        start = pos
        found = match_www(src, pos, end)
        if found is None:
            return False
        link_end = found
        href = "http://" + src[start:link_end]
    else:
        return False
    token = state.push(BARE_URL, "", 0)
    token.content = src[start:link_end]
    token.meta[POS] = start
    token.meta[HREF] = href
    state.pos = link_end
    return True


def _bracket_rule(state: StateInline, silent: bool) -> bool:
    """Count `[` and `]` that no other rule took (plain text) for `_bare_url_rule`."""
    char = state.src[state.pos]
    if silent or char not in "[]" or not isinstance(state, _InlineState):
        return False
    if char == "[":
        state.open_brackets += 1
    elif state.open_brackets:
        state.open_brackets -= 1
    state.append_pending(char)
    state.pos += 1
    return True


class _BlockParser(ParserBlock):
    def tokenize(self, state: StateBlock, startLine: int, endLine: int) -> None:
        if state.level < state.md.options.maxNesting:
            super().tokenize(state, startLine, endLine)
            return
        # Past the nesting guard markdown-it drops the rest of the enclosing container,
        # links and all; read it as flat blocks (paragraphs, code, HTML...) instead.
        names = self.ruler.get_active_rules()
        rules = [
            rule
            for name, rule in zip(names, self.ruler.getRules(""), strict=True)
            if name not in _NESTING_RULES
        ]
        line = startLine
        while line < endLine:
            state.line = line = state.skipEmptyLines(line)
            if line >= endLine or state.sCount[line] < state.blkIndent:
                break
            if not any(rule(state, line, endLine, False) for rule in rules):
                break  # unreachable while the paragraph rule is on: it takes any line
            line = state.line


class _Markdown(MarkdownIt):
    def normalizeLink(self, url: str) -> str:
        # Destinations stay as written (escapes and entities decoded, as CommonMark
        # defines them); percent-encoding and the like are identify()'s business.
        return url

    def normalizeLinkText(self, link: str) -> str:
        return link


@functools.cache
def parser(*, front_matter: bool) -> MarkdownIt:
    """The GFM parser; with `front_matter`, a leading `---` block is YAML, not content."""
    md = _Markdown()
    md.block = _BlockParser()
    md.inline = _InlineParser()
    md.configure(
        "commonmark",
        {
            "maxNesting": MAX_NESTING,
            "alerts": True,
            "tasklists": True,
            "strikethrough_single_tilde": True,
        },
    )
    md.enable(["table", "strikethrough"])
    md.use(footnote_plugin, inline=False)
    # Footnote definitions stay where they are written (and under their headings)
    # instead of moving to the end of the document.
    md.disable("footnote_tail")
    if front_matter:
        md.use(front_matter_plugin)
    md.inline.ruler.after("text", "gfm_bare_url", _bare_url_rule)
    md.inline.ruler.push("gfm_bracket", _bracket_rule)
    md.inline.terminator_re = re.compile(md.inline.terminator_re.pattern + _WWW_STOP)
    return md


def parse_chunks(text: str, chunk_chars: int = CHUNK_CHARS) -> Iterator[tuple[list[Token], int]]:
    """Block tokens of a document, chunk by chunk, each with its chunk's 0-based first line.

    `text` must have `\\n` line ends. Every yielded token list holds whole top-level
    blocks; together they hold the document's.
    """
    env: EnvType = {}
    if len(text) > chunk_chars and _DEFINITION.search(text):
        for _ in _chunks(text, chunk_chars, env, block_only=True):
            pass
    yield from _chunks(text, chunk_chars, env, block_only=False)


def _chunks(
    text: str, chunk_chars: int, env: EnvType, *, block_only: bool
) -> Iterator[tuple[list[Token], int]]:
    start, first_line, target = 0, 0, chunk_chars
    floor = _front_matter_end(text)
    while start < len(text):
        split = _SPLIT.search(text, max(start + target, floor))
        end = split.end() if split else len(text)
        chunk = text[start:end]
        md = parser(front_matter=start == 0)
        if block_only:
            tokens: list[Token] = []
            md.block.parse(chunk, md, env, tokens)
        else:
            tokens = md.parse(chunk, env)
        lines = chunk.count("\n")
        cut = None
        if split is not None:
            cut = _unsafe_end(tokens, lines, before_item=split.group("item") is not None)
        if cut is None:
            yield tokens, first_line
            start, first_line, target = end, first_line + lines, chunk_chars
            continue
        index, cut_line = cut
        if index == 0 or cut_line == 0:
            target *= 2  # the suspect block opens the chunk: take more text at once
            continue
        yield tokens[:index], first_line
        start += _line_offset(chunk, cut_line)
        first_line += cut_line


def _unsafe_end(tokens: list[Token], lines: int, *, before_item: bool) -> tuple[int, int] | None:
    """Where to cut a chunk's tokens if its last block may go on in the next chunk:
    (index, line) of the first token of the block, or of its top-level list item.

    A fence or raw HTML block that runs to the chunk's end may; so may any block but a
    bullet list when the chunk ends before a bullet item (a bullet item interrupts
    paragraphs and ends items; it does not end HTML blocks or tables).
    """
    top = 0
    item: int | None = None
    for index, token in enumerate(tokens):
        if token.level == 0 and token.nesting >= 0:
            top, item = index, None
        elif token.level == 1 and token.type == "list_item_open":
            item = index
        if token.type in _RUNAWAY_BLOCKS and token.map and token.map[1] >= lines:
            return _start_of(tokens, top if item is None else item)
    if before_item and tokens and tokens[top].type != "bullet_list_open":
        return _start_of(tokens, top)
    return None


def _start_of(tokens: list[Token], index: int) -> tuple[int, int]:
    found = tokens[index].map
    return index, found[0] if found else 0


def _line_offset(text: str, line: int) -> int:
    offset = 0
    for _ in range(line):
        offset = text.index("\n", offset) + 1
    return offset


_FRONT_MATTER_OPEN = re.compile(r"-{3,}")


def _front_matter_end(text: str) -> int:
    """Offset after the front matter block (0 if none), as the front-matter plugin ends it:
    at a line of at least as many dashes as opened it, or at `...`."""
    opener = _FRONT_MATTER_OPEN.match(text)
    if opener is None:
        return 0
    closer = re.compile(rf"^(?: {{0,3}}-{{{len(opener.group())},}}|\.\.\.)[ \t]*$", re.MULTILINE)
    found = closer.search(text, text.find("\n") + 1 if "\n" in text else len(text))
    return found.end() if found else 0
