"""Classification and normalisation of link destinations (pure functions).

`identify(url)` says what one destination, as written in a document, points at: an arXiv
paper, a Hugging Face repo, collection or file, a GitHub repo, file or page, something
else, or a relative link. It never raises: what cannot be read is kept and flagged
(`valid=False` and a `problem`), never dropped and never guessed.

Decisions (documented here once; README and data contract point to this list):

- arXiv: canonical IDs as arXiv writes them (`2409.12191`, `hep-th/9901001`), without
  version; the version a link names goes to `arxiv_version`. Old-style IDs drop the
  subject class (`math.GT/0309136` is `math/0309136`, as the API answers) and lower-case
  the archive. An `arXiv:` prefix inside an arXiv path (`/abs/arXiv:2409.12191`) is
  accepted, as arxiv.org itself does. Validity follows the scheme's history: `YYMM.NNNN`
  for 0704-1412, `YYMM.NNNNN` from 1501, months 01-12, sequence number not 0, old-style
  archives only in the months they took submissions, `vN` with N >= 1. An arXiv-shaped
  link with an invalid ID keeps kind `arxiv` and the ID as written, flagged.
  Future IDs: `identify` and `parse_arxiv_id` check only the scheme unless a `today` is
  injected; with one, an ID from a later month than `today` is flagged. No hidden clock.
- Hugging Face (huggingface.co, www., hf.co, hf-mirror.com): Hub IDs as written (the Hub
  resolves case and renames; the resolver records the canonical ID). Collections are
  `org/slug-<24 hex id>` or the short share form `org/slug` (the Hub's own `shareUrl`),
  both valid. File assets (`/resolve/`, `/raw/`, `/blob/`) are `hf_asset` with
  `asset_repo` in Hub URL-path notation: `org/name` (model), `datasets/org/name`,
  `spaces/org/name` (see `split_hub_asset_repo`). A single path segment is a user or
  organisation page unless it is one of the Hub's legacy un-namespaced models (`gpt2`,
  `bert-base-uncased`, ...; `_HUB_LEGACY_MODELS`): the two cannot be told apart otherwise.
  Hub repo IDs are checked with the Hub's naming rules, ASCII only.
- GitHub: `entity_id` and `asset_repo` are lower-case `owner/name`, because GitHub names
  are case-insensitive and this is the dedup key; the URL as written keeps the case.
  `/blob/` pages are the repo, `/blob/...?raw=true`, `/raw/`, `/releases/download/`,
  `/archive/` and uploads are `github_asset`. `*.github.io` pages: `entity_id` is the
  lower-case host plus the first path segment as written (Pages paths are case-sensitive),
  unless that segment is a file or cannot be a repo name (then the host alone).
- `url_normalized`: for valid entities (arXiv, Hub repos and collections, GitHub repos)
  the entity's canonical URL; for everything else the URL itself, cleaned: lower-case
  scheme and host (IDNA, punycode), no default port, no user-info (credentials are never
  copied), dot segments resolved, percent-encoding normalised (unreserved characters
  decoded, everything else UTF-8 encoded), tracking parameters dropped, fragment dropped
  unless it is a `#/` or `#!` client-side route. Hub mirrors become huggingface.co.
- Paths that do not spell what they lead to: a browser resolves `.` and `..` segments
  (`%2e` is `.`) and reads a backslash (`\\`, `%5C`) as `/`, so `github.com/../../etc/passwd`
  leads to the repo `etc/passwd`, which no document named. Such a link keeps the kind and
  ID a browser would land on, flagged invalid (never sent), with the cleaned URL. Links
  that name no entity (`other`...) are only cleaned.
- A link with no scheme and no host is `relative`, kept as written. Exceptions, which are
  not guesses but hosts written without a scheme: `www.` (GFM's own rule: `http://`) and
  the hosts this module classifies (`github.com/...`, `arxiv.org/...`, `huggingface.co/...`:
  `https://`). `//host/...` is https; `git@github.com:o/n.git` is that repo. `mailto:` is
  `other` with the mail domain as host; other schemes (`data:`, `javascript:`) are `other`.
- Text glued to a URL (GFM autolinks keep non-space characters, e.g. CJK prose after a
  bare URL): trailing punctuation is dropped, and an identifier is cut at the first
  character that cannot belong to it (`github.com/foo/bar中文` is `foo/bar`); the cut-off
  text is kept in `trailing_text` so the cut is visible.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date
from functools import lru_cache
from typing import Literal, NamedTuple
from urllib.parse import unquote

from pipeline.records import RepoType

Kind = Literal[
    # a link to an arXiv paper (arxiv.org in all its forms, ar5iv, alphaxiv, HF papers, mirrors)
    "arxiv",
    "arxiv_mention",  # a plain-text identifier such as `arXiv:2409.12191`
    "hf_model",
    "hf_dataset",
    "hf_space",
    "hf_collection",
    "hf_asset",  # a file inside a Hub repo (/resolve/, /raw/, /blob/); asset_repo names the repo
    "hf_other",  # blog, docs, organisation pages...
    "github_repo",
    "github_asset",  # raw files and uploaded assets; asset_repo names the repo when there is one
    "github_page",  # *.github.io project pages
    "github_other",  # users, organisations, gists, topics...
    "other",
    "relative",  # no scheme and no host: kept as written, never guessed
]

HubRepoType = Literal["model", "dataset", "space"]


HUB_REPO_TYPES: dict[Kind, RepoType] = {
    "hf_model": "model",
    "hf_dataset": "dataset",
    "hf_space": "space",
    "hf_collection": "collection",
}
"""The kinds that name a Hub repo the resolver can look up, and the Hub's name for each."""


@dataclass(frozen=True, slots=True)
class Identity:
    """What a link destination points at."""

    kind: Kind
    entity_id: str | None
    """arXiv ID without version, Hub repo ID (`org/name`, collection `org/slug-id`),
    GitHub `owner/name` (lower-case), github.io page; None where the link names no entity
    (assets name their repo in `asset_repo`)."""
    url_normalized: str
    """Canonical URL of what is linked (arXiv: the abs page without version)."""
    host: str | None
    """Lower-case host of the URL as written, None for relative links and mentions."""
    arxiv_version: int | None = None
    """The version the link names (`v2`), if it names one."""
    asset_repo: str | None = None
    """For hf_asset / github_asset: the repo the file belongs to."""
    valid: bool = True
    """False when the identifier breaks its naming rules: kept and flagged, never sent to an API."""
    problem: str | None = None
    """Why the identifier is invalid."""
    trailing_text: str | None = None
    """Text glued after the identifier that cannot belong to it (e.g. prose after a bare
    URL): the identifier was cut from a longer path segment. None when nothing was cut."""


# --- public functions ------------------------------------------------------------------


def identify(url: str, today: date | None = None) -> Identity:
    """Classify and normalise one destination as written in a document.

    `today` (UTC date) enables the future-ID check for arXiv; without it only the
    identifier scheme is checked. Never raises.
    """
    try:
        return _identify(url, today)
    except Exception as exc:  # the contract is "never raises": keep the row, flagged
        text = url if isinstance(url, str) else repr(url)
        problem = f"cannot be classified ({type(exc).__name__}: {exc})"
        return Identity("other", None, text, None, valid=False, problem=problem)


def parse_arxiv_id(text: str, today: date | None = None) -> tuple[str, int | None] | None:
    """(canonical ID without version, version) for a valid arXiv identifier, else None.

    Accepts `2409.12191`, `2409.12191v2`, `arXiv:2409.12191`, `hep-th/9901001v1`,
    `math.GT/0309136` (surrounding whitespace ignored); nothing else around the ID.
    """
    match = _ARXIV_ID_RE.match(text.strip())
    if match is None or match.end() != len(text.strip()):
        return None
    parsed = _check_arxiv_match(match, today)
    if parsed.problem is not None:
        return None
    return parsed.canonical, parsed.version


def arxiv_id_problem(text: str, today: date | None = None) -> str | None:
    """Why `text` is not a valid arXiv identifier, or None when it is one."""
    stripped = text.strip()
    match = _ARXIV_ID_RE.match(stripped)
    if match is None or match.end() != len(stripped):
        return _not_an_arxiv_id(stripped)
    return _check_arxiv_match(match, today).problem


def is_valid_hub_repo_id(repo_id: str) -> bool:
    """Whether `org/name` (or a legacy `name`) follows the Hub's repo naming rules."""
    return _hub_repo_id_problem(repo_id) is None


def is_valid_github_owner(owner: str) -> bool:
    """Whether `owner` can be a GitHub user or organisation name."""
    return _GITHUB_OWNER_RE.fullmatch(owner) is not None


def is_valid_github_repo(repo: str) -> bool:
    """Whether `owner/name` follows GitHub's naming rules."""
    owner, sep, name = repo.partition("/")
    return bool(sep) and _github_repo_problem(owner, name) is None


def split_hub_asset_repo(asset_repo: str) -> tuple[HubRepoType, str]:
    """(`model`|`dataset`|`space`, `org/name`) of an `asset_repo` in Hub URL-path notation."""
    head, sep, rest = asset_repo.partition("/")
    if sep and head == "datasets":
        return "dataset", rest
    if sep and head == "spaces":
        return "space", rest
    return "model", asset_repo


def split_collection_id(collection_id: str) -> tuple[str, str, str | None]:
    """(namespace, slug, 24-hex object id or None) of a collection `entity_id`.

    The short share form (`org/slug`) has no object id; `/api/collections` wants
    `org/slug-id`, so a resolver must look the short form up another way.
    """
    namespace, _, slug = collection_id.partition("/")
    match = _COLLECTION_OBJECT_ID_RE.search(slug)
    if match is None:
        return namespace, slug, None
    return namespace, slug[: match.start()], match.group(1)


def normalise_url(url: str) -> str:
    """The cleaned form of a URL (see the module docstring), whatever it points at.

    Relative links and unparseable URLs come back as written (outer whitespace stripped).
    """
    text = _strip_outer(url)
    absolute = _absolute_form(text)
    if absolute is None:
        return text
    parts = _parse_absolute(absolute)
    if isinstance(parts, str):
        return text
    if parts.authority is None:
        return _other_without_authority(parts.text).url_normalized
    return _clean_url(parts)


# --- tables ----------------------------------------------------------------------------

_ARXIV_HOSTS = frozenset({"arxiv.org", "xxx.lanl.gov"})
"""Hosts (and, for arxiv.org, every subdomain) that serve arXiv papers under their routes."""
_ARXIV_ROUTES = frozenset({"abs", "pdf", "html", "ps", "format", "src", "e-print"})
_ARXIV_MIRROR_ROUTES: dict[str, frozenset[str]] = {
    "ar5iv.org": frozenset({"abs", "html", "papers"}),
    "ar5iv.labs.arxiv.org": frozenset({"abs", "html", "papers"}),
    "alphaxiv.org": frozenset({"abs", "overview", "pdf"}),
    "arxiv-vanity.com": frozenset({"papers"}),
    "emergentmind.com": frozenset({"papers"}),
}
"""Reading sites that name a paper by its arXiv ID right after one of their routes."""

# Old-style archives and the months (YYYYMM) they took submissions in (arXiv taxonomy;
# old-style identifiers ended in 2007-03, so archives opened later cannot appear).
_OLD_STYLE_LAST_MONTH = 200703
_OLD_STYLE_ARCHIVES: dict[str, tuple[int, int]] = {
    "acc-phys": (199411, 199609),
    "adap-org": (199303, 199912),
    "alg-geom": (199202, 199712),
    "ao-sci": (199502, 199609),
    "astro-ph": (199204, _OLD_STYLE_LAST_MONTH),
    "atom-ph": (199509, 199609),
    "bayes-an": (199506, 199611),
    "chao-dyn": (199301, 199912),
    "chem-ph": (199403, 199609),
    "cmp-lg": (199404, 199809),
    "comp-gas": (199302, 199912),
    "cond-mat": (199204, _OLD_STYLE_LAST_MONTH),
    "cs": (199301, _OLD_STYLE_LAST_MONTH),
    "dg-ga": (199406, 199712),
    "funct-an": (199204, 199712),
    "gr-qc": (199207, _OLD_STYLE_LAST_MONTH),
    "hep-ex": (199404, _OLD_STYLE_LAST_MONTH),
    "hep-lat": (199202, _OLD_STYLE_LAST_MONTH),
    "hep-ph": (199203, _OLD_STYLE_LAST_MONTH),
    "hep-th": (199108, _OLD_STYLE_LAST_MONTH),
    "math": (199202, _OLD_STYLE_LAST_MONTH),
    "math-ph": (199609, _OLD_STYLE_LAST_MONTH),
    "mtrl-th": (199411, 199609),
    "nlin": (199301, _OLD_STYLE_LAST_MONTH),
    "nucl-ex": (199412, _OLD_STYLE_LAST_MONTH),
    "nucl-th": (199210, _OLD_STYLE_LAST_MONTH),
    "patt-sol": (199302, 199912),
    "physics": (199610, _OLD_STYLE_LAST_MONTH),
    "plasm-ph": (199509, 199609),
    "q-alg": (199412, 199712),
    "q-bio": (200309, _OLD_STYLE_LAST_MONTH),
    "quant-ph": (199412, _OLD_STYLE_LAST_MONTH),
    "solv-int": (199304, 199912),
    "supr-con": (199411, 199609),
}

_HUB_HOSTS = frozenset({"huggingface.co", "hf.co", "hf-mirror.com"})
_HUB_CANONICAL_BASE = "https://huggingface.co"
_HUB_RESERVED = frozenset(
    {
        # Site routes: never a user or organisation (the Hub reserves these names). Only
        # routes known to exist: a name wrongly listed here would hide an org's repos.
        "api", "blog", "brand", "changelog", "chat", "code-of-conduct", "collections",
        "content-guidelines", "course", "datasets", "docs", "enterprise", "front",
        "huggingchat", "inference-api", "inference-endpoints", "join", "languages", "learn",
        "login", "logout", "models", "new", "new-collection", "new-dataset", "new-space",
        "notifications", "oauth", "organizations", "papers", "posts", "pricing", "privacy",
        "pro", "search", "settings", "spaces", "subscribe", "support", "tasks",
        "terms-of-service", "transformers", "welcome", "avatars", "favicon.ico", "robots.txt",
        "sitemap.xml",
    }
)  # fmt: skip
_HUB_REPO_ROUTES = frozenset(
    {"tree", "blob", "resolve", "raw", "commits", "commit", "discussions", "edit", "viewer"}
)
"""Second-level routes of a repo page; they tell a legacy un-namespaced repo from `org/name`."""
_HUB_FILE_ROUTES = frozenset({"resolve", "raw", "blob"})
_HUB_LEGACY_MODELS = frozenset(
    {
        # The Hub's canonical models from before namespaces (transformers' original
        # checkpoints); since moved to organisations, the old names still redirect.
        "albert-base-v1", "albert-base-v2", "albert-large-v1", "albert-large-v2",
        "albert-xlarge-v1", "albert-xlarge-v2", "albert-xxlarge-v1", "albert-xxlarge-v2",
        "bert-base-cased", "bert-base-cased-finetuned-mrpc", "bert-base-chinese",
        "bert-base-german-cased", "bert-base-german-dbmdz-cased", "bert-base-german-dbmdz-uncased",
        "bert-base-multilingual-cased", "bert-base-multilingual-uncased", "bert-base-uncased",
        "bert-large-cased", "bert-large-cased-whole-word-masking",
        "bert-large-cased-whole-word-masking-finetuned-squad", "bert-large-uncased",
        "bert-large-uncased-whole-word-masking",
        "bert-large-uncased-whole-word-masking-finetuned-squad", "camembert-base", "ctrl",
        "distilbert-base-cased", "distilbert-base-cased-distilled-squad",
        "distilbert-base-german-cased", "distilbert-base-multilingual-cased",
        "distilbert-base-uncased", "distilbert-base-uncased-distilled-squad",
        "distilbert-base-uncased-finetuned-sst-2-english", "distilgpt2", "distilroberta-base",
        "gpt2", "gpt2-large", "gpt2-medium", "gpt2-xl", "openai-gpt", "roberta-base",
        "roberta-base-openai-detector", "roberta-large", "roberta-large-mnli",
        "roberta-large-openai-detector", "t5-11b", "t5-3b", "t5-base", "t5-large", "t5-small",
        "transfo-xl-wt103", "xlm-clm-ende-1024", "xlm-clm-enfr-1024", "xlm-mlm-100-1280",
        "xlm-mlm-17-1280", "xlm-mlm-en-2048", "xlm-mlm-ende-1024", "xlm-mlm-enfr-1024",
        "xlm-mlm-enro-1024", "xlm-mlm-tlm-xnli15-1024", "xlm-mlm-xnli15-1024",
        "xlm-roberta-base", "xlm-roberta-large", "xlm-roberta-large-finetuned-conll02-dutch",
        "xlm-roberta-large-finetuned-conll02-spanish",
        "xlm-roberta-large-finetuned-conll03-english",
        "xlm-roberta-large-finetuned-conll03-german", "xlnet-base-cased", "xlnet-large-cased",
    }
)  # fmt: skip
_HUB_ASSET_SUBDOMAIN_PREFIX = "cdn-"
"""cdn-lfs*, cdn-uploads...: files the Hub serves outside a repo path."""

_GITHUB_HOSTS = frozenset({"github.com", "www.github.com"})
_GITHUB_RESERVED = frozenset(
    {
        # Site routes: GitHub reserves these names, so they are never an owner.
        "about", "account", "advisories", "apps", "blog", "codespaces", "collections",
        "contact", "copilot", "customer-stories", "dashboard", "education", "enterprise",
        "events", "explore", "features", "git-guides", "github-copilot", "home", "issues",
        "join", "login", "logout", "marketplace", "mcp", "models", "new", "nonprofit",
        "notifications", "open-source", "organizations", "orgs", "partners", "password_reset",
        "premium-support", "pricing", "pulls", "readme", "resources", "search", "security",
        "sessions", "settings", "signup", "site", "solutions", "sponsors", "stars", "team",
        "topics", "trending", "users", "watching",
    }
)  # fmt: skip
_GITHUB_ASSET_ROUTES = frozenset({"raw", "archive", "assets", "files"})
"""Repo sub-routes that serve a file rather than a page."""
_GITHUB_REPO_IN_PATH_HOSTS: dict[str, int] = {
    "raw.githubusercontent.com": 0,
    "codeload.github.com": 0,
    "media.githubusercontent.com": 1,  # /media/<owner>/<name>/...
}
"""Asset hosts whose path names the repo, and the index of its owner segment."""

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}
_HOST_SCHEMES = frozenset({"http", "https", "git", "git+http", "git+https", "git+ssh", "ssh"})
"""Schemes whose host decides the kind (a git clone URL of a GitHub repo is that repo)."""
_HOST_REQUIRED = _HOST_SCHEMES | {"ftp", "ftps", "sftp", "ws", "wss"}

_TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "yclid",
        "twclid", "ttclid", "li_fat_id", "igshid", "igsh", "mc_cid", "mc_eid", "_hsenc",
        "_hsmi", "mkt_tok", "spm", "spm_id_from", "vd_source", "share_source",
        "share_medium", "ref_src",
    }
)  # fmt: skip
"""Query parameters that identify a click, not a resource (plus every `utm_*`)."""

_FILE_SEGMENT_RE = re.compile(
    r".*\.(?:html?|pdf|png|jpe?g|gif|svg|webp|ico|mp4|webm|css|js|json|xml|txt|md|zip)",
    re.IGNORECASE,
)
_TRAILING_PUNCT = frozenset(".,;:!?'\"*~。，、；：！？…")
_CLOSERS = {
    ")": "(",
    "]": "[",
    "}": "{",
    ">": "<",
    "）": "（",
    "】": "【",
    "」": "「",
    "』": "『",
    "》": "《",
}
_OUTER_JUNK = (
    "".join(chr(c) for c in range(0x21)) + "\x7f\u00a0\u200b\u200c\u200d\u2060\u3000\ufeff"
)

# --- regular expressions (compiled once: identify runs once per link occurrence) ------

_ARXIV_ID_RE = re.compile(
    r"(?:arxiv[:.]\s*)?"
    r"(?:(?P<new>(?P<yymm>\d{4})\.(?P<num>\d+))"
    r"|(?P<old>(?P<archive>[a-z]+(?:-[a-z]+)?)(?P<subject>\.[a-z-]{2,})?/"
    r"(?P<oyymm>\d{4})(?P<onum>\d{3,})))"
    r"(?:v(?P<version>\d+))?"
    r"(?![a-z0-9])",
    re.IGNORECASE | re.ASCII,
)
"""An arXiv identifier at the start of a string, in any shape the scheme allows (the
digits are checked afterwards, so that a wrong count gets a precise problem)."""
_MENTION_RE = re.compile(
    r"arxiv(?:\s+preprint)?(?:\s*arxiv)?(?:(?P<colon>\s*[:：]\s*)|\s+)(?P<rest>\S.*)",
    re.IGNORECASE | re.DOTALL,
)
_MENTION_TAIL_RE = re.compile(r"\s*(?:[\[(][^\])]*[\])])?\s*")
"""What may follow a mention without being cut off: `arXiv:2409.12191 [cs.CV]`."""
_URI_RE = re.compile(
    r"(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*):)?"
    r"(?://(?P<authority>[^/?#]*))?"
    r"(?P<path>[^?#]*)"
    r"(?:\?(?P<query>[^#]*))?"
    r"(?:#(?P<fragment>.*))?",
    re.DOTALL,
)
"""RFC 3986 appendix B: splits anything, raises on nothing."""
_SCHEMELESS_HOST_RE = re.compile(
    r"(?:(?P<www>www\.[^\s/?#:@]+)"
    r"|(?:www\.)?(?:[a-z0-9-]+\.)*(?:arxiv\.org|github\.com|huggingface\.co|hf\.co"
    r"|hf-mirror\.com|ar5iv\.org|alphaxiv\.org))"
    r"(?::\d*)?(?=[/?#]|$)",
    re.IGNORECASE,
)
_SCP_GIT_RE = re.compile(r"git@(?P<host>[A-Za-z0-9.-]+):(?P<path>[^/].*)")
"""`git@github.com:owner/name.git`, the SSH clone form."""
_PCT_RE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNSAFE_RE = re.compile(r'[\x00-\x20"<>`{}\x7f]|[^\x00-\x7f]|%(?![0-9A-Fa-f]{2})')
_TAB_NEWLINE_RE = re.compile(r"[\t\n\r]")
_HOST_ASCII_RE = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
_IPV6_RE = re.compile(r"[0-9a-f:.]+(?:%25[0-9a-z._~-]+)?")
_NAME_TOKEN_RE = re.compile(r"[A-Za-z0-9._-]*")
_GITHUB_OWNER_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")
_GITHUB_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,100}")
_HUB_REPO_ID_RE = re.compile(r"(?:\b[\w\-.]+\b/)?\b[\w\-.]{1,96}\b", re.ASCII)
"""huggingface_hub's `validate_repo_id` pattern, restricted to ASCII as the Hub is."""
_HUB_NAMESPACE_RE = re.compile(r"\b[\w\-.]+\b", re.ASCII)
_COLLECTION_SLUG_RE = re.compile(r"[A-Za-z0-9._-]+")
_COLLECTION_OBJECT_ID_RE = re.compile(r"-([0-9a-f]{24})$")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


# --- parsing a URL ---------------------------------------------------------------------


class _Parts(NamedTuple):
    """An absolute URL split and normalised for classification."""

    text: str
    """The URL as classified (outer junk and glued punctuation removed)."""
    scheme: str
    authority: str | None
    host: str | None
    """Lower-case host as written (Unicode for IDNs), without brackets or a final dot."""
    host_ascii: str | None
    """The host in its ASCII (punycode) form: what classification and output use."""
    port: int | None
    path: str
    """Path with unreserved characters percent-decoded and dot segments resolved (as a
    browser does before it asks), otherwise as written."""
    query: str | None
    fragment: str | None
    path_problem: str | None
    """Why the path as written does not spell what it names (dot segments, backslashes)."""

    @property
    def segments(self) -> list[str]:
        return [segment for segment in self.path.split("/") if segment]


class _ArxivParse(NamedTuple):
    written: str
    """The identifier as written, without prefix or version."""
    canonical: str
    version: int | None
    problem: str | None


def _strip_outer(url: str) -> str:
    return url.strip(_OUTER_JUNK)


def _strip_glued_punctuation(text: str) -> str:
    """Drop sentence punctuation and unbalanced closing brackets the extractor kept."""
    while text:
        last = text[-1]
        unbalanced = last in _CLOSERS and text.count(_CLOSERS[last]) < text.count(last)
        if last not in _TRAILING_PUNCT and not unbalanced:
            break
        text = text[:-1]
    return text


def _absolute_form(text: str) -> str | None:
    """The URL with a scheme, or None for a relative link (no scheme and no host)."""
    scp = _SCP_GIT_RE.fullmatch(text)
    if scp is not None:
        return f"ssh://git@{scp.group('host')}/{scp.group('path')}"
    if text.startswith("//"):
        return "https:" + text
    schemeless = _SCHEMELESS_HOST_RE.match(text)
    if schemeless is not None:
        return ("http://" if schemeless.group("www") else "https://") + text
    if _split(text).group("scheme"):
        return text
    return None


def _split(text: str) -> re.Match[str]:
    match = _URI_RE.match(text)
    assert match is not None  # the pattern matches every string
    return match


def _parse_absolute(text: str) -> _Parts | str:
    """The parts of an absolute URL, or the problem that makes it unreadable."""
    text = _TAB_NEWLINE_RE.sub("", text)
    written_scheme = _split(text).group("scheme")
    if not written_scheme:
        return "no scheme"
    # Punctuation glued to the end is stripped after the scheme, never into it (`mailto:`).
    after_scheme = len(written_scheme) + 1
    text = text[:after_scheme] + _strip_glued_punctuation(text[after_scheme:])
    match = _split(text)
    scheme = written_scheme.lower()
    authority = match.group("authority")
    path = match.group("path")
    if authority is None and scheme in _HOST_REQUIRED:
        if not path.strip("/"):
            return "no host"
        # `https:/host/x` or `https:host/x`: browsers read the host anyway for web schemes.
        return _parse_absolute(f"{scheme}://{path.lstrip('/')}{text[match.end('path') :]}")
    host = host_ascii = None
    port = None
    if authority is not None:
        host_port = authority.rpartition("@")[2]
        parsed = _parse_host_port(host_port)
        if isinstance(parsed, str):
            return parsed
        host, host_ascii, port = parsed
        if host is None and scheme in _HOST_REQUIRED:
            return "no host"
    decoded = _decode_unreserved(path)
    return _Parts(
        text=text,
        scheme=scheme,
        authority=authority,
        host=host,
        host_ascii=host_ascii,
        port=port,
        path=_remove_dot_segments(decoded),
        query=match.group("query"),
        fragment=match.group("fragment"),
        path_problem=_path_problem(decoded),
    )


def _parse_host_port(host_port: str) -> tuple[str | None, str | None, int | None] | str:
    """(host as written, ASCII host, port) or the problem with them."""
    if host_port.startswith("["):
        end = host_port.find("]")
        if end < 0:
            return f"unclosed `[` in host `{host_port}`"
        host, after = host_port[1:end].lower(), host_port[end + 1 :]
        if after and not after.startswith(":"):
            return f"unexpected `{after}` after the IPv6 host"
        if not _IPV6_RE.fullmatch(host):
            return f"`{host}` is not an IPv6 address"
        port_text = after[1:]
        host_ascii = f"[{host}]"
    else:
        host, _, port_text = host_port.partition(":")
        if "%" in host:
            host = unquote(host)
        host = host.lower().rstrip(".")
        if not host:
            return None, None, None
        if host.isascii():
            host_ascii = host
        else:
            try:
                host_ascii = host.encode("idna").decode("ascii")
            except UnicodeError:
                return f"host `{host}` is not a valid internationalised domain name"
        if not _HOST_ASCII_RE.fullmatch(host_ascii):
            return f"host `{host}` has characters a host name cannot have"
    if not port_text:
        return host, host_ascii, None
    if not port_text.isascii() or not port_text.isdigit() or int(port_text) > 65535:
        return f"port `{port_text}` is not a number from 0 to 65535"
    return host, host_ascii, int(port_text)


def _decode_unreserved(text: str) -> str:
    """Percent-decode unreserved characters (RFC 3986 6.2.2.2); upper-case the other escapes."""
    if "%" not in text:
        return text

    def decode(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    return _PCT_RE.sub(decode, text)


def _encode_unsafe(text: str) -> str:
    """Percent-encode what may not stand in a URL as it is (non-ASCII as UTF-8)."""

    def encode(match: re.Match[str]) -> str:
        return "".join(f"%{byte:02X}" for byte in match.group().encode("utf-8", "surrogatepass"))

    return _UNSAFE_RE.sub(encode, text)


def _path_problem(path: str) -> str | None:
    """What makes a path (unreserved escapes decoded) lead elsewhere than it spells.

    A browser resolves `.` and `..` segments (`%2e` is `.`) before it asks, and reads a
    backslash as `/`: `github.com/../../etc/passwd` is the repo `etc/passwd`, which no
    document named. Such a path names no identifier as written.
    """
    if "\\" in path or "%5C" in path:
        return "the path has a backslash (`\\` or `%5C`), which browsers read as `/`"
    for segment in path.split("/"):
        if segment in (".", ".."):
            return (
                f"the path has a `{segment}` segment (`%2e` is `.`), which browsers resolve "
                "away: it names no identifier as written"
            )
    return None


def _remove_dot_segments(path: str) -> str:
    if not path.startswith("/") or "." not in path:
        return path
    segments = path.split("/")
    kept: list[str] = []
    for segment in segments[1:]:
        if segment == "..":
            if kept:
                kept.pop()
        elif segment != ".":
            kept.append(segment)
    result = "/" + "/".join(kept)
    if segments[-1] in (".", "..") and not result.endswith("/"):
        result += "/"
    return result


def _clean_query(query: str | None) -> str | None:
    if not query:
        return None
    kept = []
    for pair in query.split("&"):
        if not pair:
            continue
        key = unquote(pair.partition("=")[0]).lower()
        if key.startswith("utm_") or key in _TRACKING_PARAMS:
            continue
        kept.append(pair)
    return _encode_unsafe(_decode_unreserved("&".join(kept))) if kept else None


def _clean_url(parts: _Parts, base: str | None = None) -> str:
    """The URL cleaned as the module docstring says; `base` replaces scheme and host."""
    if base is None:
        host = parts.host_ascii or ""
        if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
            host = f"{host}:{parts.port}"
        base = f"{parts.scheme}://{host}"
    path = _encode_unsafe(parts.path)
    if not path and parts.scheme in _DEFAULT_PORTS:
        path = "/"
    url = base + path
    query = _clean_query(parts.query)
    if query:
        url += "?" + query
    if parts.fragment and parts.fragment[0] in "/!":
        url += "#" + _encode_unsafe(parts.fragment)  # a client-side route names a page
    return url


def _repo_name(segment: str) -> tuple[str, str | None]:
    """A repo name from its path segment: cut from glued text, clone suffix `.git` dropped."""
    name, trailing = _cut_name(segment)
    return _strip_git_suffix(name), trailing


def _strip_git_suffix(name: str) -> str:
    return name[:-4] if name.lower().endswith(".git") else name


def _cut_name(segment: str) -> tuple[str, str | None]:
    """The longest repo-name-shaped prefix of a path segment and the text cut off, if any."""
    match = _NAME_TOKEN_RE.match(segment)
    token = match.group() if match else ""
    if not token or token == segment:
        return segment, None
    return token, segment[len(token) :]


# --- arXiv -----------------------------------------------------------------------------


def _not_an_arxiv_id(written: str) -> str:
    return (
        f"`{written}` is not an arXiv identifier "
        "(expected YYMM.NNNNN, YYMM.NNNN or archive/YYMMNNN, optionally with vN)"
    )


def _check_arxiv_match(match: re.Match[str], today: date | None) -> _ArxivParse:
    """Canonical form, version and validity of an identifier the shape pattern matched."""
    version_text = match.group("version")
    version = int(version_text) if version_text and not version_text.startswith("0") else None
    if match.group("new"):
        written = match.group("new")
        yymm, num = match.group("yymm"), match.group("num")
        problem = _new_style_problem(yymm, num, today)
        canonical = written
    else:
        archive, oyymm, onum = match.group("archive"), match.group("oyymm"), match.group("onum")
        written = f"{archive}{match.group('subject') or ''}/{oyymm}{onum}"
        problem = _old_style_problem(archive.lower(), oyymm, onum)
        canonical = f"{archive.lower()}/{oyymm}{onum}"
    if problem is None and version_text is not None and version is None:
        problem = f"`{written}v{version_text}`: versions start at v1"
    return _ArxivParse(written, canonical, version, problem)


def _new_style_problem(yymm: str, num: str, today: date | None) -> str | None:
    written = f"{yymm}.{num}"
    month = int(yymm[2:])
    if not 1 <= month <= 12:
        return f"`{written}`: month {yymm[2:]} does not exist (YYMM must have a month 01-12)"
    if yymm < "0704":
        return f"`{written}`: identifiers of the form YYMM.NNNN start in 0704 (April 2007)"
    if len(num) not in (4, 5):
        return f"`{written}`: the number after the dot has 4 or 5 digits, not {len(num)}"
    if len(num) == 5 and yymm < "1501":
        return f"`{written}`: five-digit numbers start in 1501 (January 2015); {yymm} used four"
    if len(num) == 4 and yymm >= "1501":
        return f"`{written}`: from 1501 (January 2015) the number has five digits"
    if int(num) == 0:
        return f"`{written}`: number {num} is never assigned"
    if today is not None and (2000 + int(yymm[:2]), month) > (today.year, today.month):
        return f"`{written}`: {yymm} is later than the current month ({today:%y%m})"
    return None


def _old_style_problem(archive: str, yymm: str, num: str) -> str | None:
    written = f"{archive}/{yymm}{num}"
    if len(num) != 3:
        return f"`{written}`: old-style identifiers have 7 digits (YYMMNNN), not {4 + len(num)}"
    window = _OLD_STYLE_ARCHIVES.get(archive)
    if window is None:
        return f"`{written}`: `{archive}` is not an arXiv archive of old-style identifiers"
    year = int(yymm[:2])
    month = int(yymm[2:])
    if not 1 <= month <= 12:
        return f"`{written}`: month {yymm[2:]} does not exist (YYMM must have a month 01-12)"
    yyyymm = (1900 + year if year >= 91 else 2000 + year) * 100 + month
    first, last = window
    if not first <= yyyymm <= last:
        return (
            f"`{written}`: {archive} took old-style submissions from {first % 10000:04d} "
            f"to {last % 10000:04d} only"
        )
    if int(num) == 0:
        return f"`{written}`: number {num} is never assigned"
    return None


def _arxiv_remainder_is_normal(remainder: str) -> bool:
    """What may follow an ID in an arXiv path: a sub-path (HTML assets) or `.pdf`."""
    if remainder[:4].lower() == ".pdf":
        remainder = remainder[4:]
    return not remainder or remainder.startswith("/")


def _arxiv_from_path(
    parts: _Parts, rest: str, today: date | None, *, shaped_only: bool
) -> Identity | None:
    """The arXiv identity of a path remainder right after an arXiv route.

    With `shaped_only`, text that does not look like an arXiv ID at all is not arXiv
    (a mirror's other pages); otherwise it is an arXiv link with an invalid ID.
    """
    match = _ARXIV_ID_RE.match(rest)
    host = parts.host
    if match is None:
        if shaped_only:
            return None
        written = rest.split("/", 1)[0]
        problem = _not_an_arxiv_id(written) if written else "no arXiv identifier in the path"
        return Identity(
            "arxiv", written or None, _clean_url(parts), host, valid=False, problem=problem
        )
    parsed = _check_arxiv_match(match, today)
    remainder = rest[match.end() :]
    trailing = None if _arxiv_remainder_is_normal(remainder) else remainder
    return _arxiv_identity("arxiv", parsed, _clean_url(parts), host, trailing)


def _arxiv_identity(
    kind: Kind, parsed: _ArxivParse, invalid_url: str, host: str | None, trailing: str | None
) -> Identity:
    """A valid ID's canonical URL is its abs page; an invalid one keeps `invalid_url`
    (the link as cleaned, or the mention as written): no canonical URL is invented."""
    if parsed.problem is not None:
        return Identity(
            kind,
            parsed.written,
            invalid_url,
            host,
            arxiv_version=parsed.version,
            valid=False,
            problem=parsed.problem,
            trailing_text=trailing,
        )
    return Identity(
        kind,
        parsed.canonical,
        f"https://arxiv.org/abs/{parsed.canonical}",
        host,
        arxiv_version=parsed.version,
        trailing_text=trailing,
    )


def _arxiv_mention(text: str, today: date | None) -> Identity | None:
    """A plain-text identifier such as `arXiv:2409.12191` or `arXiv 2409.12191v2`."""
    mention = _MENTION_RE.fullmatch(_strip_glued_punctuation(text.lstrip("[(（【")))
    if mention is None:
        return None
    rest = mention.group("rest")
    match = _ARXIV_ID_RE.match(rest)
    if match is None:
        # `arXiv: abc` is a mention gone wrong; `arXiv paper` is no mention at all.
        if mention.group("colon"):
            written = rest.split()[0]
            return Identity(
                "arxiv_mention", written, text, None, valid=False, problem=_not_an_arxiv_id(written)
            )
        return None
    parsed = _check_arxiv_match(match, today)
    remainder = rest[match.end() :]
    trailing = None if _MENTION_TAIL_RE.fullmatch(remainder) else remainder
    return _arxiv_identity("arxiv_mention", parsed, text, None, trailing)


def _arxiv_in_foreign_path(parts: _Parts, today: date | None) -> Identity | None:
    """Mirrors and indexes that embed `/arxiv/<id>`, `arXiv:<id>` or the DOI `arXiv.<id>`."""
    segments = parts.segments
    for index, segment in enumerate(segments):
        lowered = segment.lower()
        if lowered == "arxiv":
            rest = "/".join(segments[index + 1 :])
        elif lowered.startswith(("arxiv:", "arxiv.")):
            rest = "/".join([segment[len("arxiv:") :], *segments[index + 1 :]])
        else:
            continue
        found = _arxiv_from_path(parts, rest, today, shaped_only=True)
        if found is not None:
            return found
    return None


def _classify_arxiv_host(parts: _Parts, routes: frozenset[str], today: date | None) -> Identity:
    segments = parts.segments
    if segments and segments[0].lower() in routes:
        found = _arxiv_from_path(parts, "/".join(segments[1:]), today, shaped_only=False)
        assert found is not None  # not shaped_only: always an identity
        return found
    return _other(parts)


# --- Hugging Face ----------------------------------------------------------------------


def _hub_repo_id_problem(repo_id: str) -> str | None:
    if repo_id.count("/") > 1:
        return f"`{repo_id}`: a Hub repo ID is `name` or `namespace/name`"
    name = repo_id.rpartition("/")[2]
    if len(name) > 96:
        return f"`{repo_id}`: the name has {len(name)} characters, more than 96"
    if "--" in repo_id or ".." in repo_id:
        return f"`{repo_id}`: `--` and `..` are not allowed in Hub repo IDs"
    if repo_id.endswith(".git"):
        return f"`{repo_id}`: a Hub repo ID cannot end with `.git`"
    if _HUB_REPO_ID_RE.fullmatch(repo_id) is None:
        return (
            f"`{repo_id}`: Hub names use letters, digits, `-`, `_` and `.`, "
            "and neither start nor end with `-` or `.`"
        )
    return None


def _collection_problem(namespace: str, slug: str) -> str | None:
    written = f"{namespace}/{slug}"
    if _HUB_NAMESPACE_RE.fullmatch(namespace) is None or "--" in namespace or ".." in namespace:
        return f"`{written}`: `{namespace}` is not a valid Hub user or organisation name"
    if _COLLECTION_SLUG_RE.fullmatch(slug) is None:
        return f"`{written}`: a collection slug uses letters, digits, `-`, `_` and `.`"
    return None


def _hub_repo(
    parts: _Parts, kind: Kind, url_prefix: str, repo_id: str, trailing: str | None, rest: list[str]
) -> Identity:
    """A model, dataset or space page, or a file in one (`url_prefix`: `datasets/`...)."""
    problem = _hub_repo_id_problem(repo_id)
    if rest and rest[0].lower() in _HUB_FILE_ROUTES:
        return Identity(
            "hf_asset",
            None,
            _clean_url(parts, _HUB_CANONICAL_BASE),
            parts.host,
            asset_repo=url_prefix + repo_id,
            valid=problem is None,
            problem=problem,
            trailing_text=trailing,
        )
    if problem is not None:
        normalized = _clean_url(parts, _HUB_CANONICAL_BASE)
    else:
        normalized = f"{_HUB_CANONICAL_BASE}/{url_prefix}{repo_id}"
    return Identity(
        kind,
        repo_id,
        normalized,
        parts.host,
        valid=problem is None,
        problem=problem,
        trailing_text=trailing,
    )


def _hub_other(parts: _Parts) -> Identity:
    return Identity("hf_other", None, _clean_url(parts, _HUB_CANONICAL_BASE), parts.host)


def _classify_hub(parts: _Parts, today: date | None) -> Identity:
    segments = parts.segments
    if not segments:
        return _hub_other(parts)
    head = segments[0].lower()
    if head == "papers":
        found = _arxiv_from_path(parts, "/".join(segments[1:]), today, shaped_only=True)
        return found if found is not None else _hub_other(parts)
    if head == "collections":
        return _classify_hub_collection(parts, segments)
    if head in ("datasets", "spaces"):
        kind: Kind = "hf_dataset" if head == "datasets" else "hf_space"
        # Datasets from before namespaces (`/datasets/squad`) have one segment; spaces never.
        is_legacy = (
            head == "datasets"
            and len(segments) >= 2
            and (len(segments) == 2 or segments[2].lower() in _HUB_REPO_ROUTES)
        )
        if is_legacy:
            name, trailing = _repo_name(segments[1])
            return _hub_repo(parts, kind, head + "/", name, trailing, segments[2:])
        if len(segments) < 3:
            return _hub_other(parts)
        name, trailing = _repo_name(segments[2])
        return _hub_repo(parts, kind, head + "/", f"{segments[1]}/{name}", trailing, segments[3:])
    if head in _HUB_RESERVED:
        return _hub_other(parts)
    if head in _HUB_LEGACY_MODELS and (
        len(segments) == 1 or segments[1].lower() in _HUB_REPO_ROUTES
    ):
        return _hub_repo(parts, "hf_model", "", segments[0], None, segments[1:])
    if len(segments) == 1:
        return _hub_other(parts)  # a user or organisation page
    name, trailing = _repo_name(segments[1])
    return _hub_repo(parts, "hf_model", "", f"{segments[0]}/{name}", trailing, segments[2:])


def _classify_hub_collection(parts: _Parts, segments: list[str]) -> Identity:
    if len(segments) < 3:
        return _hub_other(parts)  # the collections listing, or one user's collections
    namespace = segments[1]
    slug, trailing = _cut_name(segments[2])
    entity = f"{namespace}/{slug}"
    problem = _collection_problem(namespace, slug)
    if problem is not None:
        normalized = _clean_url(parts, _HUB_CANONICAL_BASE)
    else:
        normalized = f"{_HUB_CANONICAL_BASE}/collections/{entity}"
    return Identity(
        "hf_collection",
        entity,
        normalized,
        parts.host,
        valid=problem is None,
        problem=problem,
        trailing_text=trailing,
    )


def _classify_hub_subdomain(parts: _Parts) -> Identity:
    host = parts.host_ascii or ""
    if host.startswith(_HUB_ASSET_SUBDOMAIN_PREFIX):
        return Identity("hf_asset", None, _clean_url(parts), parts.host)
    return Identity("hf_other", None, _clean_url(parts), parts.host)


# --- GitHub ----------------------------------------------------------------------------


def _github_repo_problem(owner: str, name: str) -> str | None:
    written = f"{owner}/{name}"
    if _GITHUB_OWNER_RE.fullmatch(owner) is None:
        return (
            f"`{written}`: a GitHub owner has 1-39 letters, digits or single hyphens, "
            "and neither starts nor ends with a hyphen"
        )
    if _GITHUB_NAME_RE.fullmatch(name) is None or name in (".", ".."):
        return f"`{written}`: a GitHub repo name has 1-100 letters, digits, `.`, `_` or `-`"
    return None


def _query_asks_raw(query: str | None) -> bool:
    if not query:
        return False
    return any(pair.lower() in ("raw=true", "raw=1") for pair in query.split("&"))


def _classify_github(parts: _Parts) -> Identity:
    segments = parts.segments
    if not segments:
        return Identity("github_other", None, _clean_url(parts), parts.host)
    head = segments[0].lower()
    if head == "user-attachments":
        return Identity("github_asset", None, _clean_url(parts), parts.host)
    if head in _GITHUB_RESERVED or len(segments) == 1:
        return Identity("github_other", None, _clean_url(parts), parts.host)
    owner = segments[0]
    name, trailing = _repo_name(segments[1])
    rest = [segment.lower() for segment in segments[2:]]
    problem = _github_repo_problem(owner, name)
    repo = f"{owner}/{name}".lower()
    is_asset = bool(rest) and (
        rest[0] in _GITHUB_ASSET_ROUTES
        or (rest[0] == "releases" and rest[1:2] == ["download"])
        or (rest[0] == "blob" and _query_asks_raw(parts.query))
    )
    if is_asset:
        return Identity(
            "github_asset",
            None,
            _clean_url(parts),
            parts.host,
            asset_repo=repo,
            valid=problem is None,
            problem=problem,
            trailing_text=trailing,
        )
    normalized = f"https://github.com/{repo}" if problem is None else _clean_url(parts)
    return Identity(
        "github_repo",
        repo,
        normalized,
        parts.host,
        valid=problem is None,
        problem=problem,
        trailing_text=trailing,
    )


def _classify_github_asset_host(parts: _Parts) -> Identity:
    owner_index = _GITHUB_REPO_IN_PATH_HOSTS.get(parts.host_ascii or "")
    segments = parts.segments
    if owner_index is None or len(segments) < owner_index + 2:
        return Identity("github_asset", None, _clean_url(parts), parts.host)
    owner, name = segments[owner_index], _strip_git_suffix(segments[owner_index + 1])
    problem = _github_repo_problem(owner, name)
    return Identity(
        "github_asset",
        None,
        _clean_url(parts),
        parts.host,
        asset_repo=f"{owner}/{name}".lower(),
        valid=problem is None,
        problem=problem,
    )


def _classify_github_page(parts: _Parts) -> Identity:
    host = parts.host_ascii or ""
    user = host[: -len(".github.io")]
    segments = parts.segments
    entity, trailing = host, None
    problem = None
    if not is_valid_github_owner(user):
        problem = f"`{host}`: `{user}` is not a valid GitHub user or organisation name"
    project, cut = _cut_name(segments[0]) if segments else ("", None)
    # A page's first segment names a project page when it can be a repo name (a user
    # site's own files and non-ASCII post slugs are pages of the user site).
    if project and _NAME_TOKEN_RE.fullmatch(project) and not _FILE_SEGMENT_RE.fullmatch(project):
        entity, trailing = f"{host}/{project}", cut
        if problem is None and _github_repo_problem(user, project) is not None:
            problem = f"`{host}/{project}`: `{project}` is not a valid GitHub repo name"
    return Identity(
        "github_page",
        entity,
        _clean_url(parts),
        parts.host,
        valid=problem is None,
        problem=problem,
        trailing_text=trailing,
    )


# --- everything else -------------------------------------------------------------------


def _other(parts: _Parts) -> Identity:
    return Identity("other", None, _clean_url(parts), parts.host)


def _other_without_authority(text: str) -> Identity:
    """`mailto:`, `data:`, `javascript:`, `urn:`...: kept, with the mail domain as host."""
    scheme, _, rest = text.partition(":")
    scheme = scheme.lower()
    if scheme == "mailto":
        address, sep, query = rest.partition("?")
        local, at, domain = address.rpartition("@")
        if at:
            host = unquote(domain).lower()
            address = f"{local}@{host}"
            normalized = f"mailto:{address}" + (sep + query if query else "")
            return Identity("other", None, normalized, host or None)
    return Identity("other", None, f"{scheme}:{rest}", None)


def _classify(parts: _Parts, today: date | None) -> Identity:
    """The identity of an absolute URL; one whose path does not spell it is flagged."""
    identity = _classify_host(parts, today)
    if parts.path_problem is None or (identity.entity_id is None and identity.asset_repo is None):
        return identity
    base = _HUB_CANONICAL_BASE if identity.kind.startswith("hf_") else None
    return replace(
        identity, url_normalized=_clean_url(parts, base), valid=False, problem=parts.path_problem
    )


def _classify_host(parts: _Parts, today: date | None) -> Identity:
    host = parts.host_ascii
    if host is None or parts.scheme not in _HOST_SCHEMES:
        return _other(parts)
    if host.startswith("www.") and host[4:] in _ARXIV_MIRROR_ROUTES:
        host = host[4:]
    if host in _ARXIV_MIRROR_ROUTES:
        return _classify_arxiv_host(parts, _ARXIV_MIRROR_ROUTES[host], today)
    if host in _ARXIV_HOSTS or host.endswith(".arxiv.org"):
        return _classify_arxiv_host(parts, _ARXIV_ROUTES, today)
    bare = host[4:] if host.startswith("www.") else host
    if bare in _HUB_HOSTS:
        return _classify_hub(parts, today)
    if host.endswith((".huggingface.co", ".hf.co", ".hf-mirror.com")):
        return _classify_hub_subdomain(parts)
    if host.endswith(".hf.space"):
        return Identity("hf_other", None, _clean_url(parts), parts.host)
    if host in _GITHUB_HOSTS:
        return _classify_github(parts)
    if host.endswith(".githubusercontent.com") or host in _GITHUB_REPO_IN_PATH_HOSTS:
        return _classify_github_asset_host(parts)
    if host == "github.githubassets.com":
        return Identity("github_asset", None, _clean_url(parts), parts.host)
    if host.endswith(".github.io"):
        return _classify_github_page(parts)
    if host.endswith(".github.com"):
        return Identity("github_other", None, _clean_url(parts), parts.host)
    found = _arxiv_in_foreign_path(parts, today)
    return found if found is not None else _other(parts)


@lru_cache(maxsize=1 << 16)
def _identify(url: str, today: date | None) -> Identity:
    text = _strip_outer(url)
    if not text:
        return Identity("relative", None, text, None, valid=False, problem="empty destination")
    if text[:5].lower() == "arxiv" or text[:1] in "[(（【":
        mention = _arxiv_mention(text, today)
        if mention is not None:
            return mention
    absolute = _absolute_form(text)
    if absolute is None:
        return Identity("relative", None, text, None)
    if absolute[:6].lower() == "arxiv:":
        return Identity(
            "arxiv_mention", None, text, None, valid=False, problem="no identifier after `arXiv:`"
        )
    parts = _parse_absolute(absolute)
    if isinstance(parts, str):
        host = _host_as_written(absolute)
        return Identity("other", None, text, host, valid=False, problem=parts)
    if parts.authority is None:
        return _other_without_authority(parts.text)
    return _classify(parts, today)


def _host_as_written(url: str) -> str | None:
    """The host part of an unreadable URL, for the record (no validation)."""
    authority = _split(url).group("authority")
    if not authority:
        return None
    host = authority.rpartition("@")[2]
    host = host[1:].partition("]")[0] if host.startswith("[") else host.partition(":")[0]
    return host.lower() or None
