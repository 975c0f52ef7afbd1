"""GitHub's bare-URL autolinks, as cmark-gfm's autolink extension finds them (pure functions).

GitHub renders markdown with cmark-gfm, whose autolink extension (GFM spec, "Autolinks
(extension)") turns bare `www.` and `http://` / `https://` / `ftp://` URLs into links.
linkify-it and the Rust linkify crate find a different set, so this module follows
cmark-gfm's `extensions/autolink.c` behaviour (`url_match`, `www_match`,
`check_domain`, `autolink_delim`) rule by rule; the rules are:

- A URL starts at `www.` (lower case), or at a scheme `http`, `https` or `ftp` (any
  case) followed by `://`. Before `www.` must come the start of the text, whitespace
  or one of `*_~(`. Before a scheme, cmark-gfm gives back every ASCII letter that
  precedes the `:`: the letters must spell the scheme exactly, so `xhttp://` is no
  link, while `论文https://...` and `1https://...` are (CJK text and digits are not
  letters).
- After `://` must come a character that is neither Unicode whitespace nor Unicode
  punctuation. The domain (ASCII letters, digits, `-`, `_`, `.`; the scan stops at the
  first other character, non-ASCII included) must not hold `_` in its last two labels
  (unless it has more than ten), and after `www.` must hold a `.`.
- The URL then runs to ASCII whitespace or `<`, whatever lies between: markdown
  syntax, CJK text and full-width punctuation (`：`, `，`, `。`, `）`) all stay in the URL.
- Trailing `?!.,:*_~'"` are dropped, a trailing `)` is dropped while the URL holds
  more `)` than `(`, and a trailing `;` is dropped together with an entity-like
  `&name` before it; repeatedly, in any order.

Bare email addresses (the extension's third kind) are not matched: they name no paper,
model or repository.
"""

from __future__ import annotations

import re
import string
import unicodedata

BARE_URL_SCHEMES = ("http", "https", "ftp")
"""Schemes cmark-gfm links without angle brackets (`sd_autolink_issafe`)."""

_URL_END = re.compile(r"[ \t\n\v\f\r<]")
"""Where a URL's path stops: ASCII whitespace (cmark's `isspace`) or `<`."""

_WWW_PRECEDERS = frozenset(" \t\n\v\f\r*_~(")
_TRAILING_PUNCTUATION = frozenset("?!.,:*_~'\"")
_ASCII_PUNCTUATION = frozenset(string.punctuation)
_ASCII_LETTERS = frozenset(string.ascii_letters)
_UNICODE_SPACES = frozenset("\t\n\f\r ")
"""cmark's `utf8proc_is_space` is these plus the Zs category."""

_MAX_SCHEME_CHARS = max(len(scheme) for scheme in BARE_URL_SCHEMES)


def www_preceder_ok(src: str, pos: int) -> bool:
    """Whether a `www.` link may start at `pos` (start of text, whitespace or `*_~(` before)."""
    return pos == 0 or src[pos - 1] in _WWW_PRECEDERS


def _is_host_char(ch: str) -> bool:
    """cmark's `is_valid_hostchar`: neither Unicode whitespace nor Unicode punctuation."""
    if ch.isascii():
        return ch not in _UNICODE_SPACES and ch not in _ASCII_PUNCTUATION
    category = unicodedata.category(ch)
    return category != "Zs" and not category.startswith("P")


def _domain_ok(src: str, start: int, end: int, *, need_dot: bool) -> bool:
    """cmark's `check_domain` over `src[start:end]`, reduced to its verdict.

    cmark-gfm walks the domain byte by byte from its second byte and never looks at the
    last byte of the text; a non-ASCII character ends the walk at its second byte (which
    does not decode on its own), so only the ASCII run after the first character counts.
    """
    i, last = start + 1, end - 1
    dots = underscores_before_last_dot = underscores = 0
    while i < last:
        ch = src[i]
        if ch == "\\" and i < end - 2:
            i += 1
            ch = src[i]
        if ch == "_":
            underscores += 1
        elif ch == ".":
            underscores_before_last_dot, underscores = underscores, 0
            dots += 1
        elif ch != "-" and not (ch.isascii() and _is_host_char(ch)):
            break
        i += 1
    # Underscores are legal in domain names but not in host names; cmark-gfm waives the
    # rule past ten labels to stay linear on hostile input.
    if (underscores_before_last_dot or underscores) and dots <= 10:
        return False
    return dots > 0 or not need_dot


def _trim_end(src: str, start: int, end: int) -> int:
    """cmark's `autolink_delim`: drop trailing punctuation that is not part of the URL."""
    opening = src.count("(", start, end)
    closing = src.count(")", start, end)
    while end > start:
        ch = src[end - 1]
        if ch == ")":
            if closing <= opening:
                return end
            closing -= 1
            end -= 1
        elif ch in _TRAILING_PUNCTUATION:
            end -= 1
        elif ch == ";":
            # `&amp;`-like entity at the end: drop it whole, else drop the `;` alone.
            back = end - 2
            while back > start and src[back] in _ASCII_LETTERS:
                back -= 1
            end = back if back < end - 2 and src[back] == "&" else end - 1
        else:
            return end
    return end


def _path_end(src: str, pos: int, end: int) -> int:
    stop = _URL_END.search(src, pos, end)
    return stop.start() if stop else end


def match_www(src: str, pos: int, end: int) -> int | None:
    """End of the `www.` link starting at `pos`, or None; the caller checks the preceder."""
    if not src.startswith("www.", pos, end) or not _domain_ok(src, pos, end, need_dot=True):
        return None
    link_end = _trim_end(src, pos, _path_end(src, pos, end))
    return link_end if link_end > pos else None


def scheme_start(src: str, colon: int, floor: int) -> int | None:
    """Start of the scheme that ends at the `:` at `colon`, not before `floor`, or None.

    Like cmark-gfm, take back every ASCII letter before the colon: they must spell a
    bare-URL scheme, so a scheme glued to a preceding word is no scheme.
    """
    start = colon
    while start > floor and src[start - 1] in _ASCII_LETTERS:
        start -= 1
        if colon - start > _MAX_SCHEME_CHARS:
            return None
    return start if src[start:colon].lower() in BARE_URL_SCHEMES else None


def match_scheme_url(src: str, start: int, colon: int, end: int) -> int | None:
    """End of the `scheme://...` link whose scheme spans `src[start:colon]`, or None."""
    host = colon + 3
    if host >= end or not src.startswith("://", colon) or not _is_host_char(src[host]):
        return None
    if not _domain_ok(src, host, end, need_dot=False):
        return None
    link_end = _trim_end(src, colon, _path_end(src, host, end))
    return link_end if link_end > host else None
