"""arXiv resolution: batched `id_list` lookups and title searches, answered from the raw
store when it can, politely from the API when it must.

Pure parts (no network, no disk): `read_feed` (one reading of an arXiv answer, live or
stored), `paper_record`, `code_urls`, `normalise_title`, `title_phrase`, `match_title`,
`looks_like_paper_title` and `title_candidates`. `ArxivResolver` is the edge: it sends the
requests through `arxiv.Client`'s session, keeps every answer in the raw store, and owns
the retry policy.

How a paper gets its status:
- ok: arXiv's entry, fetched tonight, or read from a stored answer younger than
  `arxiv_ttl_seconds` (any age when the refresh policy is OFFLINE);
- not_found: arXiv answered without an entry for the ID (stored answers of that kind are
  reused for `arxiv_not_found_ttl_seconds`), rejected the ID's format, or our own
  validation refused the ID, which is then never sent;
- stale: tonight's lookup failed after `arxiv_max_attempts` tries, or arXiv said "no
  such paper" about a paper it had answered before (its API is known to answer 200 with
  no results under load); the record carries the last good answer and says why;
- error: the lookup failed and the raw store holds no good answer.

Politeness, across every thread of the process: one request at a time per endpoint,
`arxiv_delay_seconds` apart; after a 429, a 503, a timeout, a garbled or short answer,
every thread waits out the exponential backoff (`arxiv_backoff_seconds`, doubling,
capped at `arxiv_backoff_max_seconds`) before the endpoint is asked again.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from difflib import SequenceMatcher
from typing import Any
from urllib.parse import urlsplit

import arxiv
import requests
from arxiv import _feed
from lxml import etree
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from pipeline._breaker import Breaker, ServiceUnreachable
from pipeline.config import RefreshPolicy, Settings
from pipeline.identify import parse_arxiv_id
from pipeline.links import Link
from pipeline.rawstore import Outcome, RawStore, StoredAnswer, StoredResponse
from pipeline.records import ApiStats, Status

logger = logging.getLogger(__name__)

API = "arxiv"
ID_LIST_ENDPOINT = "id_list"
SEARCH_ENDPOINT = "search"
PAPER = "paper"
"""Raw-store entity kind of an arXiv ID's answer."""
TITLE = "title"
"""Raw-store entity kind of a title search's answer (keyed by `normalise_title`)."""

CANDIDATES_PER_TITLE = 25
"""Search results asked per title. A title's own paper ranks near the top of its phrase's
matches (the shortest matching titles score highest), so 25 leave room for the longer
titles that contain the phrase; a full page without a match is asked again for that title
alone before it counts as not found."""
FUZZY_MIN_SIMILARITY = 0.95
"""Below this, two titles that are not equal once normalised are different papers."""
TRUNCATED_MIN_COVERAGE = 0.9
"""A link text cut short ("...Mixture-of-Experts Mode") must still cover this share of
the candidate title; "Qwen2-VL" does not cover "Qwen2-VL: Enhancing ..."."""
TRUNCATED_MIN_WORDS = 4
MAX_REJECTIONS_PER_BATCH = 5
"""IDs arXiv may refuse one by one in a batch (each refusal costs a request) before the
rest of the batch fails: our validation follows arXiv's, so one refusal is already rare."""

_ATOM = "http://www.w3.org/2005/Atom"
_NS = {"atom": _ATOM}
_REQUIRED = ("title", "summary", "published", "updated")
_ERROR_MARK = "/api/errors#"
_REJECTED_PREFIX = "incorrect_id_format_for_"
_VERSIONED = re.compile(r"^(?P<base>.+?)(?:v(?P<version>\d+))?$")
_SUBJECT_CLASS = re.compile(r"^(?P<archive>[a-z-]+)\.[A-Za-z]{2}/(?P<number>\d{7})$")
_CHUNK_BYTES = 64 * 1024

ProgressCallback = Callable[[int, int], None]
"""(done, total): called as lookups complete, so that a flow can show progress."""


# -- records -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PaperRecord:
    """What arXiv says about one paper (its latest version), or why we do not know."""

    arxiv_id: str
    """Canonical ID without version: `2409.12191`, `hep-th/9901001`."""
    status: Status
    status_reason: str | None = None
    title: str | None = None
    authors: tuple[str, ...] = ()
    author_affiliations: tuple[tuple[str, ...], ...] = ()
    """Aligned with `authors`; empty tuples where arXiv gives none."""
    abstract: str | None = None
    published: datetime | None = None
    """Submission time of v1 (UTC)."""
    updated: datetime | None = None
    """Submission time of the latest version (UTC)."""
    latest_version: int | None = None
    primary_category: str | None = None
    categories: tuple[str, ...] = ()
    doi: str | None = None
    journal_ref: str | None = None
    comment: str | None = None
    abs_url: str | None = None
    pdf_url: str | None = None
    code_urls: tuple[str, ...] = ()
    """Code repositories (GitHub, ...) named in the comment or the abstract."""
    data_fetched_at: datetime | None = None
    """When the data in this record was fetched (older than tonight when stale)."""


@dataclass(frozen=True, slots=True)
class TitleMatch:
    """The outcome of looking a paper up by its title."""

    query_title: str
    """The title as written in the document (a link's text)."""
    status: Status
    arxiv_id: str | None = None
    matched_title: str | None = None
    similarity: float | None = None
    status_reason: str | None = None
    data_fetched_at: datetime | None = None
    """When the search answer this match comes from was fetched."""


# -- reading arXiv's answers (pure) ------------------------------------------------------


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


# -- titles (pure) -----------------------------------------------------------------------

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_TEX_COMMAND = re.compile(r"\\(?:(?P<name>[A-Za-z]+)\*?|(?P<char>.))")
_TEX_GROUPING = str.maketrans("", "", "${}_^")
_QUERY_WORDS = frozenset({"AND", "OR", "ANDNOT", "NOT", "TO"})


def _tex_symbol(match: re.Match[str]) -> str:
    """`\\pi` -> `π`, `\\&` -> `&`; other commands (`\\emph`, `\\textbf`) vanish."""
    if match["char"] is not None:
        return match["char"]
    name = match["name"]
    case = "CAPITAL" if name[0].isupper() else "SMALL"
    try:
        return unicodedata.lookup(f"GREEK {case} LETTER {name.upper()}")
    except KeyError:
        return ""


def _untex(text: str) -> str:
    """Titles as arXiv stores them may hold TeX (`$\\pi_0$`); link texts write `π0`."""
    return _TEX_COMMAND.sub(_tex_symbol, text).translate(_TEX_GROUPING)


def normalise_title(text: str) -> str:
    """The form titles are compared in: NFKC, TeX markup dropped, case-folded, every run
    of punctuation and whitespace one space (`Model’s` and `Model's` compare equal)."""
    text = _untex(unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)).casefold()
    kept = "".join(ch if ch.isalnum() else " " for ch in text)
    return " ".join(kept.split())


def title_phrase(title: str) -> str:
    """`title` as the words of an arXiv `ti:"…"` phrase: characters that are query syntax
    (`:`, quotes, brackets, TeX, wildcards, ...) become spaces, and the Boolean operators
    are lower-cased so that they stay words. Hyphens, apostrophes and dots are kept so
    that arXiv's analyser splits the words as it split the indexed title."""
    text = _untex(unicodedata.normalize("NFKC", title).translate(_APOSTROPHES))
    kept = "".join(ch if ch.isalnum() or ch in "-'.," or ch.isspace() else " " for ch in text)
    words = [w.strip("-'.,") for w in kept.split()]
    return " ".join(w.lower() if w in _QUERY_WORDS else w for w in words if w)


def _search_phrase(title: str) -> str:
    """The phrase searched for a title. A long title's last word is left out: reading
    lists cut titles short ("…Mixture-of-Experts Mode"), and a cut word matches nothing;
    the title comparison afterwards is as strict either way."""
    words = title_phrase(title).split()
    if len(words) > TRUNCATED_MIN_WORDS:
        words = words[:-1]
    return " ".join(words)


@dataclass(frozen=True, slots=True)
class TitleVerdict:
    """Which candidate (if any) carries the title asked about, and why."""

    arxiv_id: str | None
    matched_title: str | None = None
    similarity: float | None = None
    reason: str | None = None
    """Why no candidate was accepted."""


def _similarity(a: str, b: str) -> float:
    return SequenceMatcher(None, a, b, autojunk=False).ratio()


def _numbered(words: Sequence[str]) -> list[str]:
    return sorted(word for word in words if any(ch.isdigit() for ch in word))


def _accepts(query: str, candidate: str) -> float | None:
    """The similarity at which `candidate` counts as the title `query` names, or None.
    Both are normalised. A wrong paper is worse than none: every rule is strict."""
    if query == candidate:
        return 1.0
    similarity = _similarity(query, candidate)
    q_words, c_words = query.split(), candidate.split()
    # A link text cut short by its writer: a long prefix covering nearly all the title.
    if (
        candidate.startswith(query)
        and len(q_words) >= TRUNCATED_MIN_WORDS
        and len(query) >= TRUNCATED_MIN_COVERAGE * len(candidate)
    ):
        return similarity
    # A typo or a hyphen: nearly equal, same name first, and the same numbered words,
    # since "Qwen2-VL" and "Qwen2.5-VL" differ by a few characters only.
    if (
        similarity >= FUZZY_MIN_SIMILARITY
        and q_words[:1] == c_words[:1]
        and abs(len(q_words) - len(c_words)) <= 1
        and _numbered(q_words) == _numbered(c_words)
    ):
        return similarity
    return None


def match_title(query: str, candidates: Iterable[tuple[str, str]]) -> TitleVerdict:
    """The candidate `(arxiv_id, title)` whose title is `query`'s, if exactly one paper is.

    Accepted: equality once normalised (case, Unicode, punctuation, whitespace, TeX);
    a truncated query covering at least 90 % of the title; or a similarity of at least
    0.95 with the same first word and the same numbered words. Two different papers
    that both qualify make the answer ambiguous, and nothing is accepted.
    """
    wanted = normalise_title(query)
    if not wanted:
        return TitleVerdict(None, reason="the title has no words to compare")
    accepted: dict[str, tuple[float, str]] = {}
    closest: tuple[float, str] | None = None
    for arxiv_id, title in candidates:
        normalised = normalise_title(title)
        score = _accepts(wanted, normalised)
        if score is not None:
            best = accepted.get(arxiv_id)
            if best is None or score > best[0]:
                accepted[arxiv_id] = (score, title)
        else:
            similarity = _similarity(wanted, normalised)
            if closest is None or similarity > closest[0]:
                closest = (similarity, title)
    if not accepted:
        if closest is None:
            return TitleVerdict(None, reason="arXiv has no paper whose title contains it")
        return TitleVerdict(
            None,
            reason=f"no arXiv title matches; closest: {closest[1]!r} (similarity {closest[0]:.2f})",
        )
    top = max(score for score, _ in accepted.values())
    best_ids = sorted(i for i, (score, _) in accepted.items() if score == top)
    if len(best_ids) > 1:
        return TitleVerdict(
            None, reason=f"ambiguous: {len(best_ids)} papers carry it ({', '.join(best_ids)})"
        )
    score, title = accepted[best_ids[0]]
    return TitleVerdict(best_ids[0], " ".join(title.split()), round(score, 4))


_URL_LIKE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|www\.)|^[\w.-]+\.[a-z]{2,}(?:/|$)", re.I)
_DATE_LIKE = re.compile(
    r"^(?:\d{2,4}[-./年]\d{1,2}(?:[-./月]\d{1,2}日?)?月?"
    r"|(?:\d{1,2}\s+)?[a-z]{3,9}\.?\s+\d{4}|[a-z]{3,9}\.?\s+\d{1,2},?\s+\d{4})$",
    re.I,
)
# Words of link texts that name a kind of link, not a paper.
# fmt: off
_GENERIC_WORDS = frozenset({
    "paper", "papers", "code", "codes", "github", "gitlab", "blog", "post", "project", "page",
    "homepage", "home", "website", "site", "demo", "demos", "model", "models", "dataset",
    "datasets", "data", "weights", "checkpoint", "checkpoints", "huggingface", "hugging",
    "face", "hf", "arxiv", "pdf", "link", "links", "here", "official", "repo", "repository",
    "video", "videos", "slides", "poster", "leaderboard", "benchmark", "docs", "documentation",
    "doc", "release", "download", "api", "online", "try", "it", "the", "a", "an", "and", "of",
    "this", "our", "modelscope", "zhihu", "twitter", "youtube", "bilibili", "report", "tech",
    "technical", "abstract", "html", "readme", "notebook", "colab", "space", "spaces",
    "collection", "card", "more", "details", "full", "text", "version", "v1", "v2", "v3",
    "translation", "chinese", "english", "issue", "issues", "license",
})
# fmt: on
_NON_LATIN_SCRIPTS = ("CJK", "HIRAGANA", "KATAKANA", "HANGUL", "ARABIC", "CYRILLIC")


def looks_like_paper_title(text: str) -> bool:
    """Whether a link's text may be a paper's title worth a title search.

    Yes for "NVLM: Open Frontier-Class Multimodal LLMs", "Visual Instruction Tuning",
    "Pixtral 12B" (two words are enough: arXiv titles that short exist, and the match
    must then be exact). No for URLs, identifiers, dates, single words ("Ovis2"),
    generic link words ("Code", "Project Page", "Github"), and text mostly not in Latin
    script ("翻译", "万字长文总结…"): arXiv titles are in English.
    """
    text = " ".join(text.split())
    if not text or _URL_LIKE.search(text) or _DATE_LIKE.match(text):
        return False
    if parse_arxiv_id(text) is not None or ("/" in text and " " not in text):
        return False
    letters = [ch for ch in text if ch.isalpha()]
    foreign = sum(1 for ch in letters if unicodedata.name(ch, "").startswith(_NON_LATIN_SCRIPTS))
    if not letters or foreign * 10 > len(letters):
        return False
    # Words as written: "Yi-VL" is one word (a name), "Pixtral 12B" two.
    if sum(1 for word in text.split() if any(ch.isalnum() for ch in word)) < 2:
        return False
    return not all(word in _GENERIC_WORDS for word in normalise_title(text).split())


def title_candidates(links: Iterable[Link]) -> list[str]:
    """Distinct link texts worth a title search, in first-seen order: texts of main links
    that lead to no paper yet (not arXiv links or mentions, no resolved ID) and look like
    a paper's title (`looks_like_paper_title`)."""
    found: dict[str, None] = {}
    for link in links:
        if not link.occurrence.is_main_link or link.resolved_arxiv_id is not None:
            continue
        if link.identity.kind in ("arxiv", "arxiv_mention"):
            continue
        text = " ".join(link.occurrence.link_text.split())
        if text not in found and looks_like_paper_title(text):
            found[text] = None
    return list(found)


# -- politeness --------------------------------------------------------------------------


class _Throttle:
    """One request at a time to an endpoint, `delay` apart, with a shared cool-down.

    Module-level per endpoint (`_throttle_for`), not per resolver: Prefect runs tasks in
    threads, and arXiv's terms count every request from the machine. A backoff after a
    429 or a 503 holds every thread off, not only the one that got it.
    """

    def __init__(self) -> None:
        self._in_flight = threading.Lock()
        self._state = threading.Lock()
        self._not_before: float | None = None

    @contextmanager
    def turn(
        self, delay_seconds: float, sleep: Callable[[float], None], clock: Callable[[], float]
    ) -> Iterator[float]:
        """Wait for this thread's turn; yields the seconds waited. The next turn starts no
        earlier than `delay_seconds` after this one ends."""
        with self._in_flight:
            waited = 0.0
            while True:
                with self._state:
                    target = self._not_before
                wait = 0.0 if target is None else target - clock()
                if wait <= 0:
                    break
                sleep(wait)
                waited += wait
                with self._state:
                    if self._not_before == target:  # not pushed further while we slept
                        break
            try:
                yield waited
            finally:
                self.hold_off(delay_seconds, clock)

    def hold_off(self, seconds: float, clock: Callable[[], float]) -> None:
        """No request starts before `seconds` from now."""
        with self._state:
            at = clock() + seconds
            if self._not_before is None or at > self._not_before:
                self._not_before = at


_THROTTLES: dict[str, _Throttle] = {}
_THROTTLES_LOCK = threading.Lock()


def _throttle_for(url: str) -> _Throttle:
    parts = urlsplit(url)
    key = f"{parts.scheme}://{parts.netloc}".lower()
    with _THROTTLES_LOCK:
        return _THROTTLES.setdefault(key, _Throttle())


# -- the client --------------------------------------------------------------------------


class _Transient(Exception):
    """A failure worth another try after a backoff (429, 5xx, timeout, garbled answer)."""


class _Refused(Exception):
    """A failure another try would repeat (a 4xx arXiv explains, or does not)."""


class _TooLarge(Exception):
    def __init__(self, status: int, limit: int) -> None:
        super().__init__(f"HTTP {status} with a body over the {limit}-byte limit")
        self.status = status


@dataclass(frozen=True, slots=True)
class _Exchange:
    stored: StoredResponse
    status: int
    body: bytes


class _Client(arxiv.Client):  # type: ignore[misc]
    """`arxiv.Client` for its URL format and its session, one request per call.

    `arxiv.Client.results()` retries any non-200 (a 400 too), drops error bodies, pages on
    its own and sends its own user agent; the resolver needs every answer as received and
    owns the retry policy, so it asks through `fetch`. `num_retries=0` and
    `delay_seconds=0` keep the inherited machinery inert should anyone call it.
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__(page_size=settings.arxiv_batch_size, delay_seconds=0.0, num_retries=0)
        separator = "&" if "?" in settings.arxiv_api_url else "?"
        self.query_url_format = settings.arxiv_api_url + separator + "{}"
        self._session.headers["User-Agent"] = settings.user_agent
        self.settings = settings

    def url_for(self, search: arxiv.Search) -> str:
        url: str = self._format_url(search, 0, search.max_results)
        return url

    def fetch(self, url: str) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of one GET; `_TooLarge` past `max_response_bytes`."""
        timeout = self.settings.arxiv_timeout_seconds
        limit = self.settings.max_response_bytes
        with self._session.get(
            url,
            headers={"User-Agent": self.settings.user_agent},
            timeout=(timeout, timeout),
            stream=True,
            # Only ARXIV_API_URL is asked: a redirect is an answer, never followed.
            allow_redirects=False,
        ) as response:
            body = bytearray()
            for chunk in response.iter_content(_CHUNK_BYTES):
                body += chunk
                if len(body) > limit:
                    raise _TooLarge(response.status_code, limit)
            return response.status_code, dict(response.headers), bytes(body)

    def close(self) -> None:
        self._session.close()


def _snippet(body: bytes, limit: int = 120) -> str:
    text = " ".join(body[: limit * 2].decode("utf-8", "replace").split())
    return text[:limit] + ("…" if len(text) > limit else "")


def _check_endpoint(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"ARXIV_API_URL must be an http(s) URL with a host, not {url!r}")


# -- the resolver ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _TitleQuery:
    key: str
    """`normalise_title` of the title: the raw-store key."""
    title: str
    """The first spelling given; its words make the phrase."""


@dataclass
class _Progress:
    callback: ProgressCallback | None
    total: int
    done: int = 0

    def advance(self, count: int) -> None:
        self.done += count
        if self.callback is not None and count:
            self.callback(self.done, self.total)


@dataclass
class _TitleOutcome:
    """A title's resolution before it is copied to every spelling that shares its key."""

    status: Status
    verdict: TitleVerdict
    reason: str | None = None
    fetched_at: datetime | None = None


class ArxivResolver:
    """Resolves arXiv IDs and titles; one instance per run, shared by all tasks.

    `sleep` and `clock` are injectable so that tests neither sleep nor depend on timing;
    `backoffs` lists every backoff chosen, in order.
    """

    def __init__(
        self,
        settings: Settings,
        store: RawStore,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _check_endpoint(settings.arxiv_api_url)
        if settings.arxiv_batch_size < 1 or settings.arxiv_titles_per_request < 1:
            raise ValueError("arxiv_batch_size and arxiv_titles_per_request must be at least 1")
        self.settings = settings
        self.store = store
        self.stats = ApiStats(api="arxiv")
        self.backoffs: list[float] = []
        self._sleep = sleep
        self._clock = clock
        self._client = _Client(settings)
        self._throttle = _throttle_for(settings.arxiv_api_url)
        self._breaker = Breaker("arXiv", settings.arxiv_max_attempts)
        self._lock = threading.Lock()
        self._feeds: dict[int, Feed | None] = {}

    def close(self) -> None:
        self._client.close()

    # -- IDs -----------------------------------------------------------------------------

    def resolve_ids(
        self, arxiv_ids: Iterable[str], on_progress: ProgressCallback | None = None
    ) -> dict[str, PaperRecord]:
        """One record per distinct valid ID given (canonical, without version). An ID our
        validation refuses is never sent: it gets a `not_found` record under its text."""
        records: dict[str, PaperRecord] = {}
        wanted: dict[str, None] = {}
        for given in arxiv_ids:
            text = given.strip()
            parsed = parse_arxiv_id(text)
            if parsed is None:
                records.setdefault(
                    text,
                    PaperRecord(
                        text, "not_found", f"not a valid arXiv identifier: {text!r} (never sent)"
                    ),
                )
            else:
                wanted.setdefault(parsed[0], None)
        progress = _Progress(on_progress, total=len(records) + len(wanted))
        progress.advance(len(records))
        to_ask: list[str] = []
        for arxiv_id in wanted:
            record = self._paper_from_store(arxiv_id)
            if record is None:
                to_ask.append(arxiv_id)
                continue
            records[arxiv_id] = record
            self._stats(from_store=1)
            progress.advance(1)
        size = self.settings.arxiv_batch_size
        for start in range(0, len(to_ask), size):
            batch = to_ask[start : start + size]
            records.update(self._ask_ids(batch))
            progress.advance(len(batch))
        return records

    def _paper_from_store(self, arxiv_id: str) -> PaperRecord | None:
        answer = self._usable_answer(PAPER, arxiv_id)
        if answer is None:
            return self._offline_error(arxiv_id)
        record = self._paper_from_answer(arxiv_id, answer)
        if record is None:
            return self._offline_error(arxiv_id, "the stored answer cannot be read")
        return record

    def _offline_error(self, arxiv_id: str, why: str = "no stored answer") -> PaperRecord | None:
        if self.settings.refresh is RefreshPolicy.OFFLINE:
            return PaperRecord(arxiv_id, "error", f"offline: {why}")
        return None

    def _paper_from_answer(self, arxiv_id: str, answer: StoredAnswer) -> PaperRecord | None:
        feed = self._stored_feed(answer.response)
        if feed is None:
            return None
        fetched_at = answer.response.fetched_at
        if answer.outcome == "ok":
            entry = feed.entry(arxiv_id)
            if entry is None:
                logger.warning("stored answer %s lacks %s", answer.response.response_id, arxiv_id)
                return None
            return paper_record(arxiv_id, entry, fetched_at=fetched_at)
        return self._not_found(arxiv_id, feed.not_found_reason(arxiv_id), fetched_at)

    def _ask_ids(self, batch: list[str]) -> dict[str, PaperRecord]:
        done: dict[str, PaperRecord] = {}
        pending = list(batch)
        failure = "no answer"
        try:
            for attempt in self._retrying():
                with attempt:
                    self._ask_ids_once(pending, done)
        except (_Transient, _Refused) as exc:
            failure = str(exc)
        for arxiv_id in pending:
            done[arxiv_id] = self._failed_paper(arxiv_id, failure)
        return done

    def _ask_ids_once(self, pending: list[str], done: dict[str, PaperRecord]) -> None:
        """Ask for every pending ID; settled ones leave `pending`. A 400 naming one ID drops
        that ID and asks again for the rest: arXiv fails a whole batch for one bad ID."""
        rejected = 0
        while pending:
            search = arxiv.Search(id_list=list(pending), max_results=len(pending))
            exchange = self._exchange(ID_LIST_ENDPOINT, search)
            feed = self._feed_of(exchange)
            fetched_at = exchange.stored.fetched_at
            if feed.errors:
                bad = next((e.rejected_id for e in feed.errors if e.rejected_id in pending), None)
                message = feed.errors[0].message
                if bad is None:
                    raise _Refused(f"HTTP {exchange.status}: arXiv refused the request: {message}")
                rejected += 1
                if rejected > MAX_REJECTIONS_PER_BATCH:
                    # arXiv's rule and ours disagree wholesale: stop spending requests.
                    raise _Refused(f"arXiv rejected {rejected} identifiers in a row ({message})")
                self.store.mark(exchange.stored, PAPER, [bad], "not_found")
                # An ID arXiv answered before is no less valid for being refused tonight.
                done[bad] = self._not_found(bad, feed.not_found_reason(bad), fetched_at)
                pending.remove(bad)
                continue
            if problem := feed.shortfall(len(pending)):
                raise _Transient(problem)
            found: list[str] = []
            absent: list[str] = []
            broken: dict[str, tuple[str, ...]] = {}
            for arxiv_id in pending:
                entry = feed.entry(arxiv_id)
                if entry is not None:
                    found.append(arxiv_id)
                    done[arxiv_id] = paper_record(arxiv_id, entry, fetched_at=fetched_at)
                elif (missing := feed.missing_fields(arxiv_id)) is not None:
                    broken[arxiv_id] = missing
                else:
                    absent.append(arxiv_id)
            self._mark(exchange.stored, PAPER, found, "ok")
            self._mark(exchange.stored, PAPER, absent, "not_found")
            for arxiv_id in absent:
                done[arxiv_id] = self._not_found(
                    arxiv_id, feed.not_found_reason(arxiv_id), fetched_at
                )
            pending[:] = list(broken)
            if broken:
                described = "; ".join(f"{i} lacks {', '.join(m)}" for i, m in broken.items())
                raise _Transient(f"incomplete arXiv entries: {described}")

    def _not_found(self, arxiv_id: str, reason: str, fetched_at: datetime) -> PaperRecord:
        """arXiv's "no such paper" — unless it had the paper before: arXiv IDs are never
        reused or deleted, and its API answers 200 with no results under load."""
        last = self.store.last_good(API, PAPER, arxiv_id)
        if last is not None:
            record = self._paper_from_answer(arxiv_id, last)
            if record is not None:
                return _stale(record, f"{reason} tonight", last)
        return PaperRecord(arxiv_id, "not_found", reason, data_fetched_at=fetched_at)

    def _failed_paper(self, arxiv_id: str, reason: str) -> PaperRecord:
        last = self.store.last_good(API, PAPER, arxiv_id)
        if last is not None:
            record = self._paper_from_answer(arxiv_id, last)
            if record is not None:
                return _stale(record, reason, last)
        return PaperRecord(arxiv_id, "error", reason)

    # -- titles --------------------------------------------------------------------------

    def resolve_titles(
        self, titles: Iterable[str], on_progress: ProgressCallback | None = None
    ) -> dict[str, TitleMatch]:
        """One match per distinct title given, keyed by the title as given. Spellings that
        normalise alike share one search and one stored answer."""
        results: dict[str, TitleMatch] = {}
        groups: dict[str, list[str]] = {}
        seen: set[str] = set()
        for title in titles:
            if title in seen:
                continue
            seen.add(title)
            key = normalise_title(title)
            if key:
                groups.setdefault(key, []).append(title)
            else:
                results[title] = TitleMatch(title, "not_found", status_reason="no words to search")
        progress = _Progress(on_progress, total=len(results) + sum(map(len, groups.values())))
        progress.advance(len(results))

        def settle(query: _TitleQuery, outcome: _TitleOutcome) -> None:
            for title in groups[query.key]:
                results[title] = _title_match(title, outcome)
            progress.advance(len(groups[query.key]))

        to_ask: list[_TitleQuery] = []
        for key, group in groups.items():
            query = _TitleQuery(key, group[0])
            outcome = self._title_from_store(query)
            if outcome is None:
                to_ask.append(query)
            else:
                self._stats(from_store=1)
                settle(query, outcome)
        size = self.settings.arxiv_titles_per_request
        queue = deque(to_ask[start : start + size] for start in range(0, len(to_ask), size))
        while queue:
            batch = queue.popleft()
            outcomes, alone = self._ask_titles(batch)
            queue.extend([query] for query in alone)
            for query in batch:
                if query.key in outcomes:
                    settle(query, outcomes[query.key])
        return results

    def _title_from_store(self, query: _TitleQuery) -> _TitleOutcome | None:
        answer = self._usable_answer(TITLE, query.key)
        if answer is not None and (outcome := self._title_from_answer(query, answer)):
            return outcome
        if self.settings.refresh is RefreshPolicy.OFFLINE:
            why = "no stored answer" if answer is None else "the stored answer cannot be read"
            return _TitleOutcome("error", TitleVerdict(None), f"offline: {why}")
        return None

    def _title_from_answer(self, query: _TitleQuery, answer: StoredAnswer) -> _TitleOutcome | None:
        feed = self._stored_feed(answer.response)
        if feed is None:
            return None
        verdict = match_title(query.title, _candidates(feed))
        status: Status = "ok" if verdict.arxiv_id else "not_found"
        return _TitleOutcome(status, verdict, verdict.reason, answer.response.fetched_at)

    def _ask_titles(
        self, batch: list[_TitleQuery]
    ) -> tuple[dict[str, _TitleOutcome], list[_TitleQuery]]:
        """Outcomes of one search for several titles, and the titles to ask again alone
        (the page was full without their paper, or arXiv refused the combined query)."""
        query = " OR ".join(f'ti:"{_search_phrase(q.title)}"' for q in batch)
        max_results = CANDIDATES_PER_TITLE * len(batch)
        search = arxiv.Search(query=query, max_results=max_results)
        try:
            exchange, feed = self._search(search)
        except _Refused as exc:
            if len(batch) > 1:
                return {}, batch
            return {batch[0].key: self._failed_title(batch[0], str(exc))}, []
        except _Transient as exc:
            return {q.key: self._failed_title(q, str(exc)) for q in batch}, []
        candidates = _candidates(feed)
        complete = feed.total_results <= len(candidates)
        outcomes: dict[str, _TitleOutcome] = {}
        alone: list[_TitleQuery] = []
        fetched_at = exchange.stored.fetched_at
        for item in batch:
            verdict = match_title(item.title, candidates)
            if verdict.arxiv_id is not None:
                self.store.mark(exchange.stored, TITLE, [item.key], "ok")
                # The search answer holds the paper's full entry: it answers the ID too.
                self.store.mark(exchange.stored, PAPER, [verdict.arxiv_id], "ok")
                outcomes[item.key] = _TitleOutcome("ok", verdict, None, fetched_at)
            elif not complete and len(batch) > 1:
                alone.append(item)
            else:
                reason = verdict.reason
                if not complete:
                    reason = (
                        f"not among the first {len(candidates)} of {feed.total_results}"
                        f" papers whose title contains it; {reason}"
                    )
                self.store.mark(exchange.stored, TITLE, [item.key], "not_found")
                outcomes[item.key] = _TitleOutcome("not_found", verdict, reason, fetched_at)
        return outcomes, alone

    def _search(self, search: arxiv.Search) -> tuple[_Exchange, Feed]:
        for attempt in self._retrying():
            with attempt:
                exchange = self._exchange(SEARCH_ENDPOINT, search)
                feed = self._feed_of(exchange)
                if feed.errors:
                    message = feed.errors[0].message
                    raise _Refused(f"HTTP {exchange.status}: arXiv refused the search: {message}")
                if problem := feed.shortfall(search.max_results):
                    raise _Transient(problem)
                if feed.incomplete:
                    raise _Transient(
                        f"incomplete arXiv entries: {', '.join(sorted(feed.incomplete))}"
                    )
                return exchange, feed
        raise AssertionError("unreachable: tenacity re-raises the last failure")

    def _failed_title(self, query: _TitleQuery, reason: str) -> _TitleOutcome:
        last = self.store.last_good(API, TITLE, query.key)
        if last is not None:
            outcome = self._title_from_answer(query, last)
            if outcome is not None and outcome.status == "ok":
                when = _when(last.response.fetched_at)
                reason = f"{reason}; last good answer from {when}"
                return _TitleOutcome("stale", outcome.verdict, reason, outcome.fetched_at)
        return _TitleOutcome("error", TitleVerdict(None), reason)

    # -- the edge: store, requests, retries ----------------------------------------------

    def _usable_answer(self, kind: str, key: str) -> StoredAnswer | None:
        """The stored answer the refresh policy lets this run reuse, if any."""
        policy = self.settings.refresh
        if policy is RefreshPolicy.REFRESH:
            return None
        answer = self.store.answer(API, kind, key)
        if answer is None or policy is RefreshPolicy.OFFLINE:
            return answer
        ttl = (
            self.settings.arxiv_ttl_seconds
            if answer.outcome == "ok"
            else self.settings.arxiv_not_found_ttl_seconds
        )
        return answer if answer.age_seconds() < ttl else None

    def _stored_feed(self, response: StoredResponse) -> Feed | None:
        """A stored body, read once per run (one body answers up to a batch of IDs)."""
        with self._lock:
            if response.response_id in self._feeds:
                return self._feeds[response.response_id]
        feed: Feed | None
        try:
            feed = read_feed(response.read())
        except (OSError, FeedError) as exc:
            logger.warning("stored arXiv answer %s unreadable: %s", response.body_path, exc)
            feed = None
        with self._lock:
            self._feeds[response.response_id] = feed
        return feed

    def _mark(
        self, response: StoredResponse, kind: str, keys: Sequence[str], outcome: Outcome
    ) -> None:
        if keys:
            self.store.mark(response, kind, keys, outcome)

    def _retrying(self) -> Retrying:
        settings = self.settings
        return Retrying(
            stop=stop_after_attempt(max(settings.arxiv_max_attempts, 1)),
            wait=wait_exponential(
                multiplier=settings.arxiv_backoff_seconds, max=settings.arxiv_backoff_max_seconds
            ),
            retry=retry_if_exception_type(_Transient),
            sleep=self._back_off,
            before_sleep=_log_retry,
            reraise=True,
        )

    def _back_off(self, seconds: float) -> None:
        """Tenacity's sleep: the wait is imposed on the endpoint, so every thread keeps it;
        the next request's turn does the sleeping."""
        with self._lock:
            self.backoffs.append(seconds)
        self._stats(retries=1)
        self._throttle.hold_off(seconds, self._clock)

    def _exchange(self, endpoint: str, search: arxiv.Search) -> _Exchange:
        """One request in this thread's turn; the answer is recorded whatever it is."""
        url = self._client.url_for(search)
        timeout = self.settings.arxiv_timeout_seconds
        try:
            self._breaker.check()
        except ServiceUnreachable as exc:
            raise _Refused(str(exc)) from None
        with self._throttle.turn(
            self.settings.arxiv_delay_seconds, self._sleep, self._clock
        ) as waited:
            started = self._clock()
            try:
                status, headers, body = self._client.fetch(url)
            except requests.Timeout:
                self._stats(status=0, seconds=waited + self._clock() - started)
                raise _Transient(f"no answer from arXiv within {timeout:g} s") from None
            except _TooLarge as exc:
                self._stats(status=exc.status, seconds=waited + self._clock() - started)
                raise _Transient(str(exc)) from None
            except requests.RequestException as exc:
                self._stats(status=0, seconds=waited + self._clock() - started)
                reason = f"connection to arXiv failed ({type(exc).__name__})"
                self._breaker.failure(reason)
                raise _Transient(reason) from None
            self._breaker.success()
            elapsed = self._clock() - started
            self._stats(status=status, seconds=waited + elapsed)
        stored = self.store.record(
            api=API,
            endpoint=endpoint,
            url=url,
            status=status,
            body=body,
            headers=headers,
            elapsed_seconds=elapsed,
        )
        return _Exchange(stored, status, body)

    def _feed_of(self, exchange: _Exchange) -> Feed:
        """The feed of an answer; `_Transient` or `_Refused` when there is none to use."""
        status = exchange.status
        if status in (408, 429) or status >= 500:
            raise _Transient(f"HTTP {status} from arXiv: {_snippet(exchange.body)}")
        if 300 <= status < 400:
            location = exchange.stored.headers.get("location", "nowhere")
            raise _Refused(
                f"HTTP {status} from arXiv: redirect to {location} not followed; if arXiv has"
                " moved, set ARXIV_API_URL to its new address"
            )
        if status not in (200, 400):
            raise _Refused(f"HTTP {status} from arXiv: {_snippet(exchange.body)}")
        try:
            feed = read_feed(exchange.body)
        except FeedError as exc:
            if status == 400:
                raise _Refused(f"HTTP 400 from arXiv: {_snippet(exchange.body)}") from None
            raise _Transient(f"HTTP 200 from arXiv with an unusable body: {exc}") from None
        if status == 400 and not feed.errors:
            raise _Refused(f"HTTP 400 from arXiv without an error entry: {_snippet(exchange.body)}")
        with self._lock:
            self._feeds[exchange.stored.response_id] = feed
        return feed

    def _stats(
        self,
        *,
        status: int | None = None,
        seconds: float = 0.0,
        from_store: int = 0,
        retries: int = 0,
    ) -> None:
        with self._lock:
            if status is not None:
                self.stats.count(status)
            self.stats.seconds += seconds
            self.stats.from_store += from_store
            self.stats.retries += retries


def _log_retry(state: RetryCallState) -> None:
    failure = state.outcome.exception() if state.outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    attempt = state.attempt_number
    logger.warning("arXiv: %s; trying again in %.3g s (attempt %d failed)", failure, wait, attempt)


def _candidates(feed: Feed) -> list[tuple[str, str]]:
    return [(arxiv_id, entry.title) for arxiv_id, entry in feed.entries.items()]


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _stale(record: PaperRecord, reason: str, last: StoredAnswer) -> PaperRecord:
    return replace(
        record,
        status="stale",
        status_reason=f"{reason}; last good answer from {_when(last.response.fetched_at)}",
    )


def _title_match(title: str, outcome: _TitleOutcome) -> TitleMatch:
    verdict = outcome.verdict
    return TitleMatch(
        query_title=title,
        status=outcome.status,
        arxiv_id=verdict.arxiv_id,
        matched_title=verdict.matched_title,
        similarity=verdict.similarity,
        status_reason=outcome.reason,
        data_fetched_at=outcome.fetched_at,
    )
