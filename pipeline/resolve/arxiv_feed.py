"""Reading arXiv Atom answers into records (pure: no network, no disk).

The reader is ours, not the `arxiv` package's: every answer, live or stored, is checked
before anything in it is believed. A body is read whole or refused (`FeedError`): it must
be well-formed XML without a document type declaration, an Atom feed, with counts that are
numbers, and every entry must carry an arXiv identifier (by the grammar of identifiers in
documents, `pipeline.links.identify.parse_arxiv_id`) and dates that parse. The one fault
tolerated per entry is a missing required element (`Feed.incomplete`): arXiv's legacy
backend sent field-less entries for unknown IDs, and the resolver asks those again.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

from pipeline.links.identify import parse_arxiv_id
from pipeline.records import PaperRecord, Status, parse_utc

logger = logging.getLogger(__name__)

_ATOM = "http://www.w3.org/2005/Atom"
_NS = {
    "atom": _ATOM,
    "arxiv": "http://arxiv.org/schemas/atom",
    "opensearch": "http://a9.com/-/spec/opensearch/1.1/",
}

_REQUIRED = ("title", "summary", "published", "updated")
"""Elements without which an entry is incomplete (`<title>0</title>` is a title)."""

_ERROR_MARK = "/api/errors#"
_REJECTED_PREFIX = "incorrect_id_format_for_"

_ENTRY_ID = re.compile(r"https?://arxiv\.org/abs/(?P<id>[A-Za-z0-9][A-Za-z0-9./-]*)")
"""An entry's `<id>`: always `http://arxiv.org/abs/{id}v{N}` from the new backend; the
legacy one sometimes left the version out. The ID itself is checked by `parse_arxiv_id`."""

MAX_VERSION = 2**31 - 1
"""The largest version number believed: the data contract keeps `latest_version` as int32."""

_COUNT = re.compile(r"[0-9]{1,18}")
"""An `opensearch:` count: digits, and fewer than int64 holds."""


class FeedError(ValueError):
    """A body that is not a complete, valid arXiv Atom feed (HTML error page, truncated,
    an entry whose identifier or date does not parse, ...); says what and where."""


@dataclass(frozen=True, slots=True)
class ErrorEntry:
    """An error entry (`<id>…/api/errors#…</id>`), sent with HTTP 400 or, by the legacy
    backend, with HTTP 200."""

    error_id: str
    """The part after `#`, e.g. `incorrect_id_format_for_abc`."""
    message: str

    @property
    def rejected_id(self) -> str | None:
        """The identifier arXiv calls malformed, if that is the error."""
        if self.error_id.startswith(_REJECTED_PREFIX):
            return self.error_id[len(_REJECTED_PREFIX) :]
        return None


@dataclass(frozen=True, slots=True)
class Author:
    name: str
    affiliations: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EntryLink:
    href: str
    rel: str = ""
    title: str | None = None
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One paper as arXiv's entry gives it; texts as sent (whitespace not yet collapsed)."""

    arxiv_id: str
    """Canonical ID without version (`parse_arxiv_id`)."""
    version: int | None
    """The version the entry describes; the legacy backend did not always say."""
    title: str
    summary: str
    published: datetime
    """Submission of v1, UTC."""
    updated: datetime
    """Submission of the version described, UTC."""
    authors: tuple[Author, ...] = ()
    comment: str | None = None
    journal_ref: str | None = None
    doi: str | None = None
    primary_category: str | None = None
    categories: tuple[str, ...] = ()
    links: tuple[EntryLink, ...] = ()


@dataclass(frozen=True, slots=True)
class Feed:
    """One arXiv answer, read and validated."""

    total_results: int
    start_index: int
    entries: Mapping[str, Entry]
    """Complete entries by canonical ID without version."""
    incomplete: Mapping[str, tuple[str, ...]]
    """Entries lacking a required element, by canonical ID: which elements are missing."""
    errors: tuple[ErrorEntry, ...] = ()

    def entry(self, arxiv_id: str) -> Entry | None:
        """The entry answering `arxiv_id` (any spelling `parse_arxiv_id` reads: arXiv
        names `math.GT/0309136` `math/0309136`)."""
        return self.entries.get(_canonical(arxiv_id))

    def missing_fields(self, arxiv_id: str) -> tuple[str, ...] | None:
        return self.incomplete.get(_canonical(arxiv_id))

    def answered_ids(self) -> frozenset[str]:
        """Every paper the feed has an entry for, complete or not."""
        return frozenset(self.entries) | frozenset(self.incomplete)

    def titles(self) -> list[tuple[str, str]]:
        """(ID, title) of every complete entry: the candidates of a title search."""
        return [(arxiv_id, entry.title) for arxiv_id, entry in self.entries.items()]

    def rejection(self, arxiv_id: str) -> ErrorEntry | None:
        return next((e for e in self.errors if e.rejected_id == arxiv_id), None)

    def shortfall(self, max_results: int) -> str | None:
        """Why this page is shorter than arXiv's own count says it should be, if it is: the
        API sometimes answers a valid but empty (or short) page under load."""
        expected = min(max(self.total_results - self.start_index, 0), max_results)
        returned = len(self.entries) + len(self.incomplete)
        if returned >= expected:
            return None
        return (
            f"arXiv sent {returned} of the {expected} entries its totalResults announces"
            " (an unexpected empty or short page)"
        )

    def not_found_reason(self, arxiv_id: str) -> str:
        rejection = self.rejection(arxiv_id)
        if rejection is not None:
            return f"arXiv rejected the identifier: {rejection.message}"
        return "arXiv has no paper with this identifier"


def _canonical(arxiv_id: str) -> str:
    parsed = parse_arxiv_id(arxiv_id)
    return arxiv_id if parsed is None else parsed[0]


def read_feed(body: bytes) -> Feed:
    """Read an arXiv API answer, live or stored. `FeedError` if it is not a complete,
    valid feed (see the module docstring).

    The parser never recovers from broken XML: a truncated answer would otherwise read as
    a feed with fewer entries, and the missing ones as "no such paper". A document type
    declaration is refused: arXiv never sends one, and its entities are the XML attacks
    (billion laughs, external entities). Left unexpanded (entities are never resolved and
    the network is off), an entity in a title would silently cut the title short.
    """
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, huge_tree=False, recover=False, load_dtd=False
    )
    try:
        root = etree.fromstring(body, parser=parser)
    except etree.XMLSyntaxError as exc:
        raise FeedError(f"not well-formed XML ({exc})") from None
    if root is not None and root.getroottree().docinfo.doctype:
        raise FeedError("a document type declaration (DTD), which arXiv never sends")
    if root is None or root.tag != f"{{{_ATOM}}}feed":
        tag = "nothing" if root is None else f"<{etree.QName(root).localname}>"
        raise FeedError(f"not an Atom feed (the document holds {tag})")
    errors: list[ErrorEntry] = []
    entries: dict[str, Entry] = {}
    incomplete: dict[str, tuple[str, ...]] = {}
    for number, element in enumerate(root.iterfind("atom:entry", _NS), start=1):
        entry_id = (_text(element, "atom:id") or "").strip()
        if _ERROR_MARK in entry_id:
            message = _text(element, "atom:summary") or ""
            errors.append(ErrorEntry(entry_id.split("#", 1)[1], " ".join(message.split())))
            continue
        arxiv_id, version = _entry_identity(entry_id, f"entry {number}")
        missing = tuple(name for name in _REQUIRED if not _text(element, f"atom:{name}"))
        if missing:
            incomplete.setdefault(arxiv_id, missing)
        else:
            entry = _entry(element, arxiv_id, version, f"entry {number} ({arxiv_id})")
            entries.setdefault(arxiv_id, entry)
    for arxiv_id in incomplete:
        entries.pop(arxiv_id, None)
    return Feed(
        total_results=_count(root, "opensearch:totalResults"),
        start_index=_count(root, "opensearch:startIndex"),
        entries=entries,
        incomplete=incomplete,
        errors=tuple(errors),
    )


def _text(element: Any, path: str) -> str | None:
    """The text of the first `path` child (before any child element of its own)."""
    found = element.find(path, _NS)
    if found is None:
        return None
    text: str | None = found.text
    return text


def _count(root: Any, path: str) -> int:
    """An `opensearch:` count; absent is 0 (legacy pages left them out at times)."""
    text = _text(root, path)
    if text is None:
        return 0
    if not _COUNT.fullmatch(text.strip()):
        raise FeedError(f"<{path}> is not a count: {text[:40]!r}")
    return int(text.strip())


def _entry_identity(entry_id: str, where: str) -> tuple[str, int | None]:
    """(canonical ID, version) of an entry's `<id>`, or `FeedError` naming the entry."""
    match = _ENTRY_ID.fullmatch(entry_id)
    parsed = parse_arxiv_id(match["id"]) if match else None
    if match is None or parsed is None or match["id"].lower().startswith("arxiv"):
        raise FeedError(f"{where}: <id> {entry_id[:120]!r} is not an arXiv abstract URL")
    arxiv_id, version = parsed
    if version is not None and version > MAX_VERSION:
        raise FeedError(f"{where}: <id> {entry_id[:120]!r} has an absurd version number")
    return arxiv_id, version


def _date(element: Any, name: str, where: str) -> datetime:
    text = (_text(element, f"atom:{name}") or "").strip()
    try:
        # arXiv writes `2016-05-26T17:59:46Z`; the legacy backend wrote offsets (`-04:00`).
        moment = parse_utc(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        # A date at the edge of the calendar (0001-01-01 with an offset) overflows in UTC.
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise FeedError(f"{where}: <{name}> {text[:40]!r} is not a date") from None


def _entry(element: Any, arxiv_id: str, version: int | None, where: str) -> Entry:
    authors = tuple(
        Author(
            name=_text(author, "atom:name") or "",
            affiliations=tuple(
                a.text for a in author.iterfind("arxiv:affiliation", _NS) if a.text is not None
            ),
        )
        for author in element.iterfind("atom:author", _NS)
    )
    links = tuple(
        EntryLink(
            href=link.get("href"),
            rel=link.get("rel") or "",
            title=link.get("title"),
            content_type=link.get("type"),
        )
        for link in element.iterfind("atom:link", _NS)
        if _is_web_url(link.get("href"))
    )
    primary = element.find("arxiv:primary_category", _NS)
    return Entry(
        arxiv_id=arxiv_id,
        version=version,
        title=_text(element, "atom:title") or "",
        summary=_text(element, "atom:summary") or "",
        published=_date(element, "published", where),
        updated=_date(element, "updated", where),
        authors=authors,
        comment=_text(element, "arxiv:comment"),
        journal_ref=_text(element, "arxiv:journal_ref"),
        doi=_text(element, "arxiv:doi"),
        primary_category=primary.get("term") if primary is not None else None,
        categories=tuple(
            term
            for category in element.iterfind("atom:category", _NS)
            if (term := category.get("term")) is not None
        ),
        links=links,
    )


def _is_web_url(href: str | None) -> bool:
    """Only http(s) links become a record's URLs (never `javascript:` or `file:`)."""
    if not href:
        return False
    try:
        parts = urlsplit(href)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _collapse(text: str | None) -> str | None:
    if text is None:
        return None
    collapsed = " ".join(text.split())
    return collapsed or None


def paper_record(
    arxiv_id: str,
    entry: Entry,
    *,
    status: Status = "ok",
    status_reason: str | None = None,
    fetched_at: datetime | None = None,
) -> PaperRecord:
    """A paper record from arXiv's entry for `arxiv_id`."""
    abs_url = next((link.href for link in entry.links if link.rel == "alternate"), None)
    pdf_url = next(
        (
            link.href
            for link in entry.links
            if link.title == "pdf" or link.content_type == "application/pdf"
        ),
        None,
    )
    comment = _collapse(entry.comment)
    abstract = _collapse(entry.summary)
    categories = entry.categories
    return PaperRecord(
        arxiv_id=arxiv_id,
        status=status,
        status_reason=status_reason,
        title=_collapse(entry.title),
        authors=tuple(_collapse(author.name) or "" for author in entry.authors),
        author_affiliations=tuple(
            tuple(_collapse(a) or "" for a in author.affiliations) for author in entry.authors
        ),
        abstract=abstract,
        published=entry.published,
        updated=entry.updated,
        latest_version=entry.version,
        primary_category=entry.primary_category or (categories[0] if categories else None),
        categories=categories,
        doi=_collapse(entry.doi),
        journal_ref=_collapse(entry.journal_ref),
        comment=comment,
        abs_url=abs_url,
        pdf_url=pdf_url,
        code_urls=code_urls(comment, abstract),
        data_fetched_at=fetched_at,
    )


_CODE_HOSTS = ("github.com", "gitlab.com", "bitbucket.org", "codeberg.org", "gitee.com")

_CODE_URL = re.compile(
    r"(?<![\w.-])(?:https?://)?(?:www\.)?(?P<host>"
    + "|".join(re.escape(host) for host in _CODE_HOSTS)
    + r")/(?P<owner>[A-Za-z0-9][A-Za-z0-9_.-]*)/(?P<repo>[A-Za-z0-9_.-]+)",
    re.IGNORECASE,
)

# First path segments of code hosts that are not owners.
# fmt: off
_NOT_OWNERS = frozenset({
    "orgs", "topics", "features", "sponsors", "marketplace", "settings", "about", "login",
    "search", "collections", "trending", "apps", "explore", "users", "groups",
})
# fmt: on


def code_urls(*texts: str | None) -> tuple[str, ...]:
    """Code repository URLs named in the texts, as `https://host/owner/repo`, in order,
    without duplicates (owner and repo compared case-insensitively, as the hosts do)."""
    found: dict[str, str] = {}
    for text in texts:
        for match in _CODE_URL.finditer(text or ""):
            owner = match["owner"]
            repo = re.sub(r"\.git$", "", match["repo"].rstrip("."), flags=re.IGNORECASE)
            if not repo or owner.casefold() in _NOT_OWNERS:
                continue
            url = f"https://{match['host'].lower()}/{owner}/{repo}"
            found.setdefault(url.casefold(), url)
    return tuple(found.values())
