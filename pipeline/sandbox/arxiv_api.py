"""The arXiv export API double: `/api/query` over sample papers, in the new backend's format.

It speaks the wire format of the backend arXiv put in place in November 2025 (the
`classic_api` of arXiv/arxiv-search) as recorded in `tests/fixtures/api-samples/arxiv_*.xml`:
namespaces and their order, the feed title echoing the query, `opensearch:*` counts,
the entry's elements in the recorded order, `<id>` always `http://arxiv.org/abs/IDvN`,
`arxiv:primary_category` without a scheme, the DOI link after the authors. It sends
nothing the real service does not send.

Semantics modelled (docs: /work/shared/docs/api-reference.md §1.3-1.6, mirrored in the
README's sandbox section):
- `id_list`: a versioned ID answers that version, an unversioned one the latest; unknown
  IDs are silently absent (`totalResults` counts only what was found); one malformed ID
  fails the whole request with HTTP 400 and an error feed naming the first bad ID;
- results come in relevance order (for a bare `id_list`: newest first), never in request
  order; `start` and `max_results` (default 10, also for `id_list`) are honoured;
- `search_query`: `field:word`, `field:"a phrase"`, `field:(a b)`, `AND`, `OR`, `ANDNOT`,
  parentheses; a missing operator means OR (so an unquoted multi-word title is an OR
  query); AND binds tighter than OR; matching is case-insensitive on word tokens, with
  `*` as a trailing wildcard; `id_list` with `search_query` filters the search (AND).

API-specific faults (`Fault(kind="api", name=...)`, checked by `check_fault_name`):
`empty_page` (a valid feed with no entries although `totalResults` > 0, as arXiv sends
under load), `drop_field` (entries without title, summary and published),
`legacy_error_200` (the legacy backend's error feed, with HTTP 200, naming the first
malformed ID of the request, or its first ID when none is malformed). Statuses (503, 429
`Rate exceeded.`), timeouts and cut bodies are the server's faults, not the double's.

Everything but the identifiers and titles of the bundled papers is sample data, and says
so: abstracts start with `SAMPLE_NOTICE`, authors are "Sample Author A", ...
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr

from lxml import etree

from pipeline.records import parse_utc
from pipeline.sandbox.wire import Request, Response

ATOM_NS = "http://www.w3.org/2005/Atom"
ARXIV_NS = "http://arxiv.org/schemas/atom"
OPENSEARCH_NS = "http://a9.com/-/spec/opensearch/1.1/"
# The order the real feeds declare them in.
_NSMAP = {"opensearch": OPENSEARCH_NS, "arxiv": ARXIV_NS, None: ATOM_NS}

CONTENT_TYPE = "application/atom+xml"
QUERY_PATH = "/api/query"
DEFAULT_MAX_RESULTS = 10
SAMPLE_NOTICE = "[Sample data served by the pipeline's loopback double.]"
DATA_FILE = "arxiv_papers.json"

# The server's own rule (arxiv.identifier.parse_arxiv_id as the 2026 backend applies it):
# looser than the pipeline's validation, e.g. `0000.0000` and `0808.05394` are accepted
# and simply not found. Kept separate from pipeline.links.identify on purpose: the double plays
# the server, and the resolver must cope when the two disagree.
_SERVER_ID = re.compile(
    r"^(?P<base>\d{4}\.\d{4,5}|[a-z]+(?:-[a-z]+)?(?:\.[A-Za-z]{2})?/\d{7})(?:v(?P<version>\d+))?$"
)
FAULT_NAMES = frozenset({"empty_page", "drop_field", "legacy_error_200"})
_FIELDS = ("ti", "au", "abs", "co", "jr", "cat", "rn", "id", "all")
_OPERATORS = ("AND", "OR", "ANDNOT")
_WORD = re.compile(r"[0-9a-z]+\*?")


def check_fault_name(name: str) -> None:
    """Raises ValueError unless `name` is one of this double's API faults (module docstring)."""
    if name not in FAULT_NAMES:
        known = ", ".join(sorted(FAULT_NAMES))
        raise ValueError(f"unknown arXiv API fault {name!r}; known: {known}")


# -- sample papers ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SampleAuthor:
    name: str
    affiliations: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SamplePaper:
    """One paper as the double knows it: every version shares the metadata but its date."""

    arxiv_id: str
    title: str
    submitted: tuple[datetime, ...]
    """Submission time of each version, v1 first (UTC)."""
    authors: tuple[SampleAuthor, ...]
    abstract: str
    categories: tuple[str, ...]
    """Primary category first."""
    comment: str | None = None
    journal_ref: str | None = None
    doi: str | None = None
    _tokens: dict[str, tuple[str, ...]] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    def __post_init__(self) -> None:
        if not self.submitted:
            raise ValueError(f"sample paper {self.arxiv_id}: no versions")
        if not self.categories:
            raise ValueError(f"sample paper {self.arxiv_id}: no categories")

    @property
    def latest_version(self) -> int:
        return len(self.submitted)

    def tokens(self, field_name: str) -> tuple[str, ...]:
        """Search tokens of one query field (cached: searches scan every paper)."""
        cached = self._tokens.get(field_name)
        if cached is None:
            cached = tuple(_words(self._field_text(field_name)))
            self._tokens[field_name] = cached
        return cached

    def _field_text(self, field_name: str) -> str:
        texts = {
            "ti": self.title,
            "au": " ".join(author.name for author in self.authors),
            "abs": self.abstract,
            "co": self.comment or "",
            "jr": self.journal_ref or "",
            "cat": " ".join(self.categories),
            "rn": "",
            "id": self.arxiv_id,
        }
        if field_name in texts:
            return texts[field_name]
        return " ".join(texts[name] for name in ("ti", "au", "abs", "co", "jr"))


def load_sample_papers() -> dict[str, SamplePaper]:
    """The bundled sample papers (`data/arxiv_papers.json`), by ID."""
    return dict(_bundled_papers())


@cache
def _bundled_papers() -> tuple[tuple[str, SamplePaper], ...]:
    text = resources.files("pipeline.sandbox").joinpath("data", DATA_FILE).read_text("utf-8")
    document = json.loads(text)
    papers = []
    for index, item in enumerate(document["papers"]):
        try:
            paper = paper_from_json(item)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{DATA_FILE}: paper #{index}: {exc}") from exc
        papers.append((paper.arxiv_id, paper))
    return tuple(papers)


def paper_from_json(item: Mapping[str, Any]) -> SamplePaper:
    """One paper of the data file (see its `_about` for the fields)."""
    arxiv_id = str(item["id"])
    if not _SERVER_ID.match(arxiv_id) or "v" in arxiv_id.split("/")[-1]:
        raise ValueError(f"not an unversioned arXiv ID: {arxiv_id!r}")
    return SamplePaper(
        arxiv_id=arxiv_id,
        title=str(item["title"]),
        submitted=tuple(_parse_time(value) for value in item["submitted"]),
        authors=tuple(
            SampleAuthor(str(a["name"]), tuple(str(x) for x in a.get("affiliations", ())))
            for a in item["authors"]
        ),
        abstract=str(item["abstract"]),
        categories=tuple(str(c) for c in item["categories"]),
        comment=item.get("comment"),
        journal_ref=item.get("journal_ref"),
        doi=item.get("doi"),
    )


def paper_to_json(paper: SamplePaper) -> dict[str, Any]:
    """The data file's form of a paper (the inverse of `paper_from_json`)."""
    item: dict[str, Any] = {
        "id": paper.arxiv_id,
        "title": paper.title,
        "submitted": [_format_time(moment) for moment in paper.submitted],
        "authors": [
            {"name": a.name, **({"affiliations": list(a.affiliations)} if a.affiliations else {})}
            for a in paper.authors
        ],
        "abstract": paper.abstract,
        "categories": list(paper.categories),
    }
    for name in ("comment", "journal_ref", "doi"):
        value = getattr(paper, name)
        if value is not None:
            item[name] = value
    return item


def synthetic_paper(arxiv_id: str, title: str | None = None) -> SamplePaper:
    """A deterministic sample paper for a well-formed ID: dates consistent with the ID's
    year and month, 1-3 versions, and now and then a comment with a code URL, a DOI with
    a journal reference, or an affiliation, so that every field gets exercised."""
    parts = server_id_parts(arxiv_id)
    if parts is None or parts[1] is not None:
        raise ValueError(f"not an unversioned arXiv ID: {arxiv_id!r}")
    seed = hashlib.sha256(arxiv_id.encode()).digest()
    year, month = _year_month(arxiv_id)
    first = datetime(year, month, 1 + seed[0] % 28, seed[1] % 24, seed[2] % 60, seed[3] % 60)
    submitted = [first.replace(tzinfo=UTC)]
    for extra in range(seed[4] % 3):
        gap = timedelta(days=7 + seed[5 + extra] % 80, seconds=seed[8 + extra] * 97)
        submitted.append(submitted[-1] + gap)
    letters = "ABCDEFGH"
    has_affiliation = seed[10] % 8 == 0
    authors = tuple(
        SampleAuthor(
            f"Sample Author {letters[i]}",
            (f"Sample University {1 + (seed[11] + i) % 5}",) if has_affiliation else (),
        )
        for i in range(1 + seed[12] % 6)
    )
    archive = arxiv_id.split("/")[0] if "/" in arxiv_id else None
    if archive is not None:
        categories: tuple[str, ...] = (archive.split(".")[0],)
    else:
        primary = ("cs.CV", "cs.CL", "cs.LG", "cs.AI")[seed[13] % 4]
        cross = [c for c in ("cs.CV", "cs.CL", "cs.AI", "cs.LG") if c != primary]
        categories = (primary, *cross[: seed[14] % 3])
    slug = re.sub(r"[^0-9a-z]+", "-", (title or arxiv_id).lower()).strip("-")[:40] or "paper"
    code_url = f"https://github.com/sample-org/{slug}"
    comment: str | None = None
    abstract_tail = ""
    match seed[15] % 5:
        case 0:
            comment = f"{8 + seed[16] % 30} pages, {1 + seed[17] % 12} figures. Code: {code_url}"
        case 1:
            comment = f"{8 + seed[16] % 30} pages (sample comment)"
        case 2:
            abstract_tail = f" Code is available at {code_url}."
        case _:
            pass
    doi = journal_ref = None
    if seed[18] % 6 == 0:
        doi = f"10.5555/sample.{arxiv_id.replace('/', '.')}"
        journal_ref = f"Sample Journal of Multimodal Learning {year}, {1 + seed[19] % 40}"
    described = f'the paper titled "{title}"' if title else f"arXiv:{arxiv_id}"
    abstract = (
        f"{SAMPLE_NOTICE} Not the real abstract of {described}: the identifier"
        f"{' and the title are' if title else ' is'} real, every other value is a placeholder"
        " that follows the arXiv API's format so that the pipeline can run offline."
        f"{abstract_tail}"
    )
    return SamplePaper(
        arxiv_id=arxiv_id,
        title=title or f"Synthetic sample paper {arxiv_id}",
        submitted=tuple(submitted),
        authors=authors,
        abstract=abstract,
        categories=categories,
        comment=comment,
        journal_ref=journal_ref,
        doi=doi,
    )


def server_id_parts(text: str) -> tuple[str, int | None] | None:
    """(ID, version) as arXiv's server reads `text`, or None when it calls it malformed."""
    match = _SERVER_ID.match(text)
    if match is None:
        return None
    version = match.group("version")
    return match.group("base"), int(version) if version else None


def _year_month(arxiv_id: str) -> tuple[int, int]:
    digits = arxiv_id.split("/")[-1][:4]
    yy, month = int(digits[:2]), int(digits[2:4])
    year = 1900 + yy if yy >= 91 else 2000 + yy
    return year, min(max(month, 1), 12)


def _parse_time(text: str) -> datetime:
    moment = parse_utc(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without a timezone: {text!r}")
    return moment.astimezone(UTC)


def _format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _words(text: str, *, wildcards: bool = False) -> list[str]:
    """Lower-case word tokens; a query word may end in `*` (prefix match)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    words = _WORD.findall(folded)
    return words if wildcards else [word.rstrip("*") for word in words]


# -- search_query ------------------------------------------------------------------------


class QuerySyntaxError(ValueError):
    """A search_query the double cannot read (the real service answers those with 400)."""


@dataclass(frozen=True, slots=True)
class _Term:
    field: str
    words: tuple[str, ...]
    """One word, or a phrase (consecutive words); a trailing `*` marks a prefix."""
    phrase: bool

    def score(self, paper: SamplePaper) -> float:
        tokens = paper.tokens(self.field)
        if _contains(tokens, self.words):
            # Shorter fields first, like a length-normalised relevance score.
            return len(self.words) + 1.0 / (1 + len(tokens))
        return 0.0

    def render(self) -> str:
        text = " ".join(self.words)
        return f'{self.field}:"{text}"' if self.phrase else f"{self.field}:{text}"


@dataclass(frozen=True, slots=True)
class _Op:
    op: str
    left: _Node
    right: _Node

    def score(self, paper: SamplePaper) -> float:
        left = self.left.score(paper)
        if self.op == "OR":
            return left + self.right.score(paper)
        if not left:
            return 0.0
        right = self.right.score(paper)
        if self.op == "AND":
            return left + right if right else 0.0
        return 0.0 if right else left  # ANDNOT

    def render(self) -> str:
        return f"{self.left.render()} {self.op} {self.right.render()}"


_Node = _Term | _Op


def _contains(tokens: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not words:
        return False
    width = len(words)
    for start in range(len(tokens) - width + 1):
        if all(
            tokens[start + i].startswith(word[:-1])
            if word.endswith("*")
            else tokens[start + i] == word
            for i, word in enumerate(words)
        ):
            return True
    return False


_TOKEN = re.compile(r'\s*(\(|\)|"[^"]*"|[^\s()"]+)\s*')


def _tokens(text: str) -> list[str]:
    tokens, at = [], 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None:
            raise QuerySyntaxError(f"unbalanced quote in search_query at {at}")
        tokens.append(match.group(1))
        at = match.end()
    return tokens


def parse_search_query(text: str) -> _Node:
    """The query as a tree of terms and operators (see the module docstring)."""
    tokens = _tokens(text.strip())
    parser = _QueryParser(tokens)
    node = parser.parse_or(default_field="all")
    if parser.peek() is not None:
        raise QuerySyntaxError(f"unexpected {parser.peek()!r} in search_query")
    return node


class _QueryParser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.at = 0

    def peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise QuerySyntaxError("search_query ends too early")
        self.at += 1
        return token

    def parse_or(self, default_field: str) -> _Node:
        node = self.parse_and(default_field)
        while (token := self.peek()) is not None and token != ")":
            if token == "OR":
                self.take()
            node = _Op("OR", node, self.parse_and(default_field))  # missing operator = OR
        return node

    def parse_and(self, default_field: str) -> _Node:
        node = self.parse_unary(default_field)
        while self.peek() in ("AND", "ANDNOT"):
            op = self.take()
            node = _Op(op, node, self.parse_unary(default_field))
        return node

    def parse_unary(self, default_field: str) -> _Node:
        token = self.take()
        if token in _OPERATORS:
            raise QuerySyntaxError(f"operator {token} without a left-hand term")
        if token == "(":
            node = self.parse_or(default_field)
            if self.take() != ")":
                raise QuerySyntaxError("unbalanced parentheses in search_query")
            return node
        if token == ")":
            raise QuerySyntaxError("unbalanced parentheses in search_query")
        field_name, _, rest = token.partition(":")
        if rest or token.endswith(":"):
            if field_name not in _FIELDS:
                raise QuerySyntaxError(f"unknown field {field_name!r} in search_query")
            if not rest:  # `ti:"a phrase"` or `ti:(a b)`: the prefix applies to what follows
                return self.parse_unary(field_name)
            token = rest
        else:
            field_name = default_field
        if token.startswith('"'):
            words = tuple(_words(token.strip('"'), wildcards=True))
            return _Term(field_name, words, phrase=True)
        return _Term(field_name, tuple(_words(token, wildcards=True)), phrase=False)


# -- feeds -------------------------------------------------------------------------------


def _feed_id(query: str) -> str:
    digest = hashlib.sha1(query.encode()).digest()  # an opaque feed id, as arXiv's look
    return "https://arxiv.org/api/" + base64.b64encode(digest).decode().rstrip("=")


def _sub(parent: Any, tag: str, text: str | None = None, **attributes: str) -> Any:
    element = etree.SubElement(parent, tag)
    for name, value in attributes.items():
        element.set(name, value)
    if text is not None:
        element.text = text
    return element


def _new_feed() -> Any:
    return etree.Element(f"{{{ATOM_NS}}}feed", nsmap=_NSMAP)


def _serialize(feed: Any) -> bytes:
    body: bytes = etree.tostring(feed, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return body


def _opensearch(feed: Any, total: int, per_page: int, start: int) -> None:
    _sub(feed, f"{{{OPENSEARCH_NS}}}itemsPerPage", str(per_page))
    _sub(feed, f"{{{OPENSEARCH_NS}}}totalResults", str(total))
    _sub(feed, f"{{{OPENSEARCH_NS}}}startIndex", str(start))


def _add_entry(feed: Any, paper: SamplePaper, version: int, *, drop_fields: bool) -> None:
    a, x = f"{{{ATOM_NS}}}", f"{{{ARXIV_NS}}}"
    versioned = f"{paper.arxiv_id}v{version}"
    entry = _sub(feed, a + "entry")
    _sub(entry, a + "id", f"http://arxiv.org/abs/{versioned}")
    if not drop_fields:
        _sub(entry, a + "title", paper.title)
    _sub(entry, a + "updated", _format_time(paper.submitted[version - 1]))
    _sub(
        entry,
        a + "link",
        href=f"https://arxiv.org/abs/{versioned}",
        rel="alternate",
        type="text/html",
    )
    _sub(
        entry,
        a + "link",
        href=f"https://arxiv.org/pdf/{versioned}",
        rel="related",
        type="application/pdf",
        title="pdf",
    )
    if not drop_fields:
        _sub(entry, a + "summary", paper.abstract)
    for category in paper.categories:
        _sub(entry, a + "category", term=category, scheme=ARXIV_NS)
    if not drop_fields:
        _sub(entry, a + "published", _format_time(paper.submitted[0]))
    if paper.comment:
        _sub(entry, x + "comment", paper.comment)
    _sub(entry, x + "primary_category", term=paper.categories[0])
    if paper.journal_ref:
        _sub(entry, x + "journal_ref", paper.journal_ref)
    for author in paper.authors:
        element = _sub(entry, a + "author")
        _sub(element, a + "name", author.name)
        for affiliation in author.affiliations:
            _sub(element, x + "affiliation", affiliation)
    if paper.doi:
        _sub(entry, x + "doi", paper.doi)
        _sub(entry, a + "link", rel="related", href=f"https://doi.org/{paper.doi}", title="doi")


def error_feed(message: str, error_id: str, now: datetime | None = None) -> bytes:
    """The new backend's error feed (HTTP 400), as in `arxiv_malformed_id_abc_http400.xml`."""
    stamp = _format_time(now or datetime.now(UTC))
    link = f"https://arxiv.org/api/errors#{error_id}"
    feed = _new_feed()
    _sub(feed, f"{{{ATOM_NS}}}id", "https://arxiv.org/")
    _sub(feed, f"{{{ATOM_NS}}}title", "arXiv Search Results")
    _sub(feed, f"{{{ATOM_NS}}}updated", stamp)
    _opensearch(feed, total=1, per_page=1, start=0)
    entry = _sub(feed, f"{{{ATOM_NS}}}entry")
    _sub(entry, f"{{{ATOM_NS}}}id", link)
    _sub(entry, f"{{{ATOM_NS}}}title", "Error")
    _sub(entry, f"{{{ATOM_NS}}}updated", stamp)
    _sub(entry, f"{{{ATOM_NS}}}link", href=link, rel="alternate", type="text/html")
    _sub(entry, f"{{{ATOM_NS}}}summary", message)
    author = _sub(entry, f"{{{ATOM_NS}}}author")
    _sub(author, f"{{{ATOM_NS}}}name", "arXiv api core")
    return _serialize(feed)


def malformed_id_feed(bad_id: str, now: datetime | None = None) -> bytes:
    """The HTTP 400 body for a malformed ID in `id_list` (tests script faults with it)."""
    return error_feed(f"incorrect id format for {bad_id}", f"incorrect_id_format_for_{bad_id}", now)


def legacy_malformed_id_feed(bad_id: str, id_list: str, now: datetime | None = None) -> bytes:
    """The legacy backend's error feed (sent with HTTP 200), in its own serialisation: per
    element namespace declarations, `http://` ids, local-midnight `<updated>`."""
    day = (now or datetime.now(UTC)).strftime("%Y-%m-%dT00:00:00-04:00")
    link = f"http://arxiv.org/api/errors#incorrect_id_format_for_{bad_id}"
    query = f"search_query=&id_list={id_list}"
    ns, os_ns = f'xmlns="{ATOM_NS}"', f'xmlns:opensearch="{OPENSEARCH_NS}"'
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f"<feed {ns} {os_ns}>",
        f'  <link {ns} href={quoteattr("http://arxiv.org/api/query?" + query)} rel="self"'
        ' type="application/atom+xml"/>',
        f"  <title {ns}>ArXiv Query: {escape(query)}</title>",
        f"  <id {ns}>{escape(_feed_id(query).replace('https://', 'http://'))}</id>",
        f"  <updated {ns}>{day}</updated>",
        f"  <opensearch:totalResults {os_ns}>1</opensearch:totalResults>",
        f"  <opensearch:startIndex {os_ns}>0</opensearch:startIndex>",
        "",
        f"  <opensearch:itemsPerPage {os_ns}>1</opensearch:itemsPerPage>",
        f"  <entry {ns}>",
        f"    <id {ns}>{escape(link)}</id>",
        f"    <title {ns}>Error</title>",
        f"    <summary {ns}>incorrect id format for {escape(bad_id)}</summary>",
        f"    <updated {ns}>{day}</updated>",
        "",
        f'    <link {ns} href={quoteattr(link)} rel="alternate" type="text/html"/>',
        f"    <author {ns}>",
        f"      <name {ns}>arXiv api core</name>",
        "    </author>",
        "  </entry>",
        "</feed>",
        "",
    ]
    return "\n".join(lines).encode()


# -- the double --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Hit:
    paper: SamplePaper
    version: int
    score: float


class _BadRequest(Exception):
    def __init__(self, message: str, error_id: str) -> None:
        super().__init__(message)
        self.message = message
        self.error_id = error_id


class ArxivDouble:
    """Answers `/api/query` like the arXiv export API, from sample papers."""

    def __init__(
        self,
        papers: Mapping[str, SamplePaper] | Iterable[SamplePaper] | None = None,
        synthesize_unknown: bool = False,
    ) -> None:
        if papers is None:
            self.papers = load_sample_papers()
        elif isinstance(papers, Mapping):
            self.papers = dict(papers)
        else:
            self.papers = {paper.arxiv_id: paper for paper in papers}
        self.synthesize_unknown = synthesize_unknown
        """Answer any well-formed unknown ID with a synthetic paper (scale benchmarks)."""

    def handle(self, request: Request) -> Response:
        if request.path.rstrip("/") != QUERY_PATH:
            return Response(
                404, b"<html><body><h1>Not Found</h1></body></html>", {"content-type": "text/html"}
            )
        fault = request.fault.name if request.fault is not None else ""
        if fault:
            check_fault_name(fault)
        id_list_text = request.param("id_list") or ""
        ids = [item for item in id_list_text.split(",") if item] if id_list_text else []
        if fault == "legacy_error_200" and ids:
            bad = next((item for item in ids if server_id_parts(item) is None), ids[0])
            return Response(
                200, legacy_malformed_id_feed(bad, id_list_text), {"content-type": CONTENT_TYPE}
            )
        try:
            return self._answer(request, ids, fault)
        except _BadRequest as exc:
            return Response(
                400, error_feed(exc.message, exc.error_id), {"content-type": CONTENT_TYPE}
            )

    def _answer(self, request: Request, ids: list[str], fault: str) -> Response:
        for item in ids:  # the server validates the whole list before it searches
            if server_id_parts(item) is None:
                raise _BadRequest(
                    f"incorrect id format for {item}", f"incorrect_id_format_for_{item}"
                )
        max_results = _non_negative_int(
            request.param("max_results"), "max_results", DEFAULT_MAX_RESULTS
        )
        start = _non_negative_int(request.param("start"), "start", 0)
        sort_by = request.param("sortBy") or "relevance"
        sort_order = request.param("sortOrder") or "descending"
        if sort_by not in ("relevance", "lastUpdatedDate", "submittedDate"):
            raise _BadRequest(
                "sortBy must be in: relevance, lastUpdatedDate, submittedDate", "sort"
            )
        if sort_order not in ("ascending", "descending"):
            raise _BadRequest("sortOrder must be in: ascending, descending", "sort")
        search_text = (request.param("search_query") or "").strip()
        query = None
        if search_text:
            try:
                query = parse_search_query(search_text)
            except QuerySyntaxError as exc:
                raise _BadRequest(str(exc), "query_syntax") from exc
        elif not ids:
            return Response(
                400,
                b"Either a search_query or id_list must be specified for the classic API.",
                {"content-type": "text/html"},
            )

        hits = self._hits(ids, query)
        hits = _sorted(hits, sort_by, sort_order, by_id_only=query is None)
        page = hits[start : start + max_results]
        if fault == "empty_page":
            page = []
        feed = _new_feed()
        rendered_query = query.render() if query is not None else ""
        listed = ",".join(ids)
        echo = (
            f"search_query={rendered_query}&id_list={listed}"
            f"&start={start}&max_results={max_results}"
        )
        link = (
            f"https://arxiv.org/api/query?search_query={quote(rendered_query, safe=':/')}"
            f"&start={start}&max_results={max_results}&id_list={listed}"
        )
        _sub(feed, f"{{{ATOM_NS}}}id", _feed_id(echo))
        _sub(feed, f"{{{ATOM_NS}}}title", f"arXiv Query: {echo}")
        _sub(feed, f"{{{ATOM_NS}}}updated", _format_time(datetime.now(UTC)))
        _sub(feed, f"{{{ATOM_NS}}}link", href=link, type=CONTENT_TYPE)
        total = max(len(hits), 1) if fault == "empty_page" else len(hits)
        _opensearch(feed, total=total, per_page=max_results, start=start)
        for hit in page:
            _add_entry(feed, hit.paper, hit.version, drop_fields=fault == "drop_field")
        return Response(200, _serialize(feed), {"content-type": CONTENT_TYPE})

    def _hits(self, ids: list[str], query: _Node | None) -> list[_Hit]:
        wanted: dict[str, set[int | None]] = {}
        for item in ids:
            parts = server_id_parts(item)
            assert parts is not None  # validated above
            wanted.setdefault(parts[0], set()).add(parts[1])
        if query is None:
            return list(self._listed(wanted))
        candidates: Iterable[SamplePaper] = (
            self.papers.values() if not wanted else (p for p, _ in self._papers_for(wanted))
        )
        hits = []
        for paper in candidates:
            score = query.score(paper)
            if score > 0:
                hits.append(_Hit(paper, paper.latest_version, score))
        return hits

    def _papers_for(
        self, wanted: Mapping[str, set[int | None]]
    ) -> Iterator[tuple[SamplePaper, set[int | None]]]:
        for arxiv_id, versions in wanted.items():
            paper = self.papers.get(arxiv_id)
            if paper is None and self.synthesize_unknown:
                paper = synthetic_paper(arxiv_id)
            if paper is not None:
                yield paper, versions

    def _listed(self, wanted: Mapping[str, set[int | None]]) -> Iterator[_Hit]:
        for paper, versions in self._papers_for(wanted):
            for version in sorted(versions, key=lambda v: v or 0):
                number = paper.latest_version if version is None else version
                if 1 <= number <= paper.latest_version:
                    yield _Hit(paper, number, 0.0)


def _non_negative_int(text: str | None, name: str, default: int) -> int:
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise _BadRequest(f"{name} must be an integer", f"{name}_must_be_an_integer") from None
    if value < 0:
        raise _BadRequest(f"{name} must be non-negative", f"{name}_must_be_non-negative")
    return value


def _sorted(hits: list[_Hit], sort_by: str, sort_order: str, *, by_id_only: bool) -> list[_Hit]:
    def submitted(hit: _Hit) -> datetime:
        return hit.paper.submitted[0]

    def updated(hit: _Hit) -> datetime:
        return hit.paper.submitted[hit.version - 1]

    descending = sort_order == "descending"
    if sort_by == "submittedDate":
        return sorted(hits, key=submitted, reverse=descending)
    if sort_by == "lastUpdatedDate":
        return sorted(hits, key=updated, reverse=descending)
    if by_id_only:  # relevance of a bare id_list: newest first, as observed
        return sorted(hits, key=submitted, reverse=True)
    return sorted(hits, key=lambda hit: (hit.score, submitted(hit)), reverse=True)
