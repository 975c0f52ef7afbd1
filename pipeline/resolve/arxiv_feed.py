"""Reading arXiv Atom answers into records (pure: no network, no disk)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from arxiv import _feed
from lxml import etree

from pipeline.records import PaperRecord, Status

logger = logging.getLogger(__name__)

_ATOM = "http://www.w3.org/2005/Atom"


_NS = {"atom": _ATOM}


_REQUIRED = ("title", "summary", "published", "updated")


_ERROR_MARK = "/api/errors#"


_REJECTED_PREFIX = "incorrect_id_format_for_"


_VERSIONED = re.compile(r"^(?P<base>.+?)(?:v(?P<version>\d+))?$")


_SUBJECT_CLASS = re.compile(r"^(?P<archive>[a-z-]+)\.[A-Za-z]{2}/(?P<number>\d{7})$")


class FeedError(ValueError):
    """A body that is not a complete arXiv Atom feed (HTML error page, truncated, ...)."""


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
class Feed:
    """One arXiv answer, read."""

    total_results: int
    start_index: int
    entries: Mapping[str, Any]
    """Complete entries (`arxiv.Result`) by ID without version, as arXiv writes it."""
    incomplete: Mapping[str, tuple[str, ...]]
    """Entries lacking a required element, by ID: which elements are missing."""
    errors: tuple[ErrorEntry, ...] = ()

    def entry(self, arxiv_id: str) -> Any | None:
        """The entry answering `arxiv_id` (arXiv names `math.GT/0309136` `math/0309136`)."""
        return _lookup(self.entries, arxiv_id)

    def missing_fields(self, arxiv_id: str) -> tuple[str, ...] | None:
        return _lookup(self.incomplete, arxiv_id)

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


def _lookup(mapping: Mapping[str, Any], arxiv_id: str) -> Any | None:
    found = mapping.get(arxiv_id)
    if found is None and (match := _SUBJECT_CLASS.match(arxiv_id)):
        found = mapping.get(f"{match['archive']}/{match['number']}")
    return found


def read_feed(body: bytes) -> Feed:
    """Read an arXiv API answer, live or stored. `FeedError` if it is not a complete feed.

    The body is checked for well-formedness first, because arxiv's parser recovers from
    broken XML: a truncated answer would otherwise read as a feed with fewer entries, and
    the missing ones as "no such paper". Entries are then built by arxiv's own parser.

    A document type declaration is refused: arXiv never sends one, and its entities are
    the XML attacks (billion laughs, external entities). Left unexpanded, as both parsers
    leave them, an entity in a title would silently cut the title short.
    """
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, huge_tree=False, recover=False
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
    incomplete: dict[str, tuple[str, ...]] = {}
    for element in root.iterfind("atom:entry", _NS):
        entry_id = (element.findtext("atom:id", namespaces=_NS) or "").strip()
        if _ERROR_MARK in entry_id:
            message = element.findtext("atom:summary", namespaces=_NS) or ""
            errors.append(ErrorEntry(entry_id.split("#", 1)[1], " ".join(message.split())))
            continue
        base = _entry_base(entry_id)
        if base is None:
            logger.warning("arXiv entry with an unreadable <id> %r ignored", entry_id)
            continue
        missing = tuple(
            name
            for name in _REQUIRED
            if element.findtext(f"atom:{name}", namespaces=_NS) in (None, "")
        )
        if missing:
            incomplete.setdefault(base, missing)
    parsed = _feed.parse(body)
    entries: dict[str, Any] = {}
    for result in parsed.results:
        base = _entry_base(result.entry_id)
        if base is not None and base not in incomplete:
            entries.setdefault(base, result)
    return Feed(
        total_results=parsed.header.total_results,
        start_index=parsed.header.start_index,
        entries=entries,
        incomplete=incomplete,
        errors=tuple(errors),
    )


def _entry_base(entry_id: str) -> str | None:
    """`http://arxiv.org/abs/2409.12191v2` -> `2409.12191`. The new backend always sends a
    version; the legacy one did not always."""
    if "arxiv.org/abs/" not in entry_id:
        return None
    match = _VERSIONED.match(entry_id.strip().split("arxiv.org/abs/")[-1])
    return match["base"] if match else None


def _version_of(entry_id: str) -> int | None:
    match = _VERSIONED.match(entry_id.strip().split("arxiv.org/abs/")[-1])
    return int(match["version"]) if match and match["version"] else None


def _collapse(text: str | None) -> str | None:
    if text is None:
        return None
    collapsed = " ".join(text.split())
    return collapsed or None


def paper_record(
    arxiv_id: str,
    entry: Any,
    *,
    status: Status = "ok",
    status_reason: str | None = None,
    fetched_at: datetime | None = None,
) -> PaperRecord:
    """A paper record from arXiv's entry (an `arxiv.Result`) for `arxiv_id`."""
    links = list(entry.links)
    abs_url = next((link.href for link in links if link.rel == "alternate"), None)
    pdf_url = next(
        (
            link.href
            for link in links
            if link.title == "pdf" or link.content_type == "application/pdf"
        ),
        None,
    )
    comment = _collapse(entry.comment)
    abstract = _collapse(entry.summary)
    categories = tuple(entry.categories)
    return PaperRecord(
        arxiv_id=arxiv_id,
        status=status,
        status_reason=status_reason,
        title=_collapse(entry.title),
        authors=tuple(_collapse(author.name) or "" for author in entry.authors),
        author_affiliations=tuple(
            tuple(_collapse(a) or "" for a in author.affiliation) for author in entry.authors
        ),
        abstract=abstract,
        published=entry.published,
        updated=entry.updated,
        latest_version=_version_of(entry.entry_id),
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


def _candidates(feed: Feed) -> list[tuple[str, str]]:
    return [(arxiv_id, entry.title) for arxiv_id, entry in feed.entries.items()]
