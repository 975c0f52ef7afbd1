"""What the stages hand each other: statuses, documents, resolver records, size labels.

The links stage's own records (`links.extract.Occurrence`, `links.identify.Identity`,
`links.documents.Link`) stay beside the code that makes them; what a later stage reads
from an earlier one (a `Document`, a `PaperRecord`, a `HubRepoRecord`, ...) lives here, so
that no stage imports another's module for its types alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

Status = Literal["ok", "not_found", "error", "stale"]
"""An entity's resolution status in a snapshot.

- ok: answered tonight (or from the raw store within its time-to-live);
- not_found: the service says it does not exist (or the identifier is invalid and was never sent);
- error: no answer could be had and no earlier good answer exists;
- stale: tonight's lookup failed; the row carries the last good answer, with its time.
"""

STATUSES: tuple[Status, ...] = ("ok", "not_found", "error", "stale")

GOOD: frozenset[Status] = frozenset({"ok", "stale"})
"""Statuses whose row carries the entity's values (tonight's, or the last good ones)."""

ResolvedBy = Literal["id", "title"]
"""How a link leads to a paper: its URL names the arXiv ID, or its text is the paper's title."""


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (every timestamp the pipeline writes is)."""
    return datetime.now(UTC)


def parse_utc(text: str) -> datetime:
    """An ISO 8601 moment as the APIs write it (`2024-01-02T03:04:05Z`, or with an
    offset); naive when the text has no zone, for the caller to refuse or assume UTC.
    `ValueError` when it is not one."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


INT64_MAX = 2**63 - 1
"""The largest count a table column (int64) holds."""


@dataclass
class ApiStats:
    """What one resolver did in one run, for the run report and the benchmarks."""

    api: str
    requests: int = 0
    """HTTP requests sent (retries included)."""
    by_status: dict[int, int] = field(default_factory=dict)
    """Responses by HTTP status; transport failures (timeouts, resets) under 0."""
    from_store: int = 0
    """Entities answered from the raw store without a request."""
    retries: int = 0
    seconds: float = 0.0
    """Wall time spent in requests and politeness waits."""

    def count(self, status: int) -> None:
        self.requests += 1
        self.by_status[status] = self.by_status.get(status, 0) + 1


RepoType = Literal["model", "dataset", "space", "collection"]
"""What the Hub resolver can look up (file assets name a `HubRepoType`, never a collection)."""


DRY_RUN_NOT_FETCHED = "dry run: not fetched"
"""The `error` of a GitHub document in a dry run, which asks GitHub nothing."""


@dataclass(frozen=True, slots=True)
class Document:
    """One input document as the run saw it."""

    name: str
    path: Path
    sha256: str | None = None
    size_bytes: int | None = None
    links: int = 0
    error: str | None = None

    @property
    def not_fetched(self) -> bool:
        """A GitHub document a dry run did not ask for: neither read nor failed."""
        return self.error == DRY_RUN_NOT_FETCHED


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


RepoRef = tuple[RepoType, str]
"""A repo as the documents name it: its type and its ID as written (`org/name`)."""


@dataclass(frozen=True, slots=True)
class CollectionItem:
    item_type: str
    """`model`, `dataset`, `space`, `paper` or `collection`, as the Hub says."""
    item_id: str


@dataclass(frozen=True, slots=True)
class HubRepoRecord:
    """What the Hub says about one repo, or why we do not know."""

    repo_type: RepoType
    requested_id: str
    """The ID as written in the documents (or as listed by a collection)."""
    repo_id: str
    """Canonical ID after renames; equal to `requested_id` when unknown."""
    status: Status
    status_reason: str | None = None
    author: str | None = None
    created_at: datetime | None = None
    last_modified: datetime | None = None
    private: bool | None = None
    gated: str | None = None
    """`auto`, `manual`, or None when not gated."""
    downloads: int | None = None
    """Last 30 days, as the Hub counts."""
    likes: int | None = None
    license: str | None = None
    pipeline_tag: str | None = None
    library_name: str | None = None
    tags: tuple[str, ...] = ()
    params_total: int | None = None
    """Logical: packed 4-bit weights count as weights, their scales not at all."""
    params_by_dtype: tuple[tuple[str, int], ...] = ()
    params_source: str | None = None
    """`safetensors`, `safetensors_unpacked:<packing>`, `gguf` or `name`."""
    params_stored: int | None = None
    """The count as stored (safetensors' elements, GGUF's total, the name's)."""
    base_model: str | None = None
    base_model_relation: str | None = None
    """`finetune`, `quantized`, `adapter` or `merge`, when the card or the tags say."""
    arxiv_ids: tuple[str, ...] = ()
    """Papers the repo cites (the Hub's `arxiv:` tags)."""
    title: str | None = None
    """Collections and spaces have titles."""
    items: tuple[CollectionItem, ...] = ()
    """Collections: their items, in order."""
    sdk: str | None = None
    data_fetched_at: datetime | None = None
    upvotes: int | None = None
    """Collections: upvotes (they have no likes or downloads)."""


@dataclass(frozen=True, slots=True)
class LinkedModel:
    """A model that cites a paper, as the paper page lists it."""

    repo_id: str
    params_total: int | None = None
    pipeline_tag: str | None = None
    downloads: int | None = None
    likes: int | None = None


@dataclass(frozen=True, slots=True)
class PaperPageRecord:
    """A paper's Hugging Face paper page (`/api/papers/{id}`)."""

    arxiv_id: str
    status: Status
    status_reason: str | None = None
    upvotes: int | None = None
    github_repo: str | None = None
    github_stars: int | None = None
    project_page: str | None = None
    linked_models: tuple[LinkedModel, ...] = ()
    num_total_models: int | None = None
    data_fetched_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DocumentSource:
    """Where one document of a night came from, for the `documents` table."""

    name: str
    status: Status = "ok"
    """ok; stale (a GitHub fetch failed: the last version fetched was read); error."""
    status_reason: str | None = None
    source_url: str | None = None
    """The file on GitHub as a browser shows it; None for a local file."""
    ref: str | None = None
    commit_sha: str | None = None
    committed_at: datetime | None = None
    fetched_at: datetime | None = None
    title: str | None = None


@dataclass(frozen=True, slots=True)
class GithubRepoRecord:
    """What GitHub says about one code repository, or why we do not know."""

    repo: str
    """The repository as the documents name it (`owner/name`, lower case)."""
    status: Status
    status_reason: str | None = None
    full_name: str | None = None
    """GitHub's name for it (its current one, after a rename or transfer)."""
    stars: int | None = None
    forks: int | None = None
    open_issues: int | None = None
    """Open issues and pull requests (GitHub counts both)."""
    pushed_at: datetime | None = None
    archived: bool | None = None
    license: str | None = None
    """SPDX identifier (`MIT`, `Apache-2.0`, `NOASSERTION`); None when there is none."""
    description: str | None = None
    topics: tuple[str, ...] = ()
    language: str | None = None
    data_fetched_at: datetime | None = None


# -- parameter counts (pure) -------------------------------------------------------------
UNITS: tuple[tuple[str, int], ...] = (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3))


def size_label(params: int) -> str:
    """A parameter count as people write it: 72B, 7.6B, 968M, 1.1T (two significant digits
    below ten units, whole units above)."""
    if params < 0:
        raise ValueError(f"a parameter count cannot be negative: {params}")
    if params < 1000:
        return str(params)
    for index, (unit, scale) in enumerate(UNITS):
        if params >= scale:
            value = params / scale
            text = f"{value:.1f}".removesuffix(".0") if value < 10 else str(math.floor(value + 0.5))
            if text == "1000" and index > 0:  # 999.6M rounds up to the next unit: 1B
                return f"1{UNITS[index - 1][0]}"
            return f"{text}{unit}"
    raise AssertionError("unreachable: params >= 1000 matches the K unit")


def as_utc(value: datetime | None, what: str) -> datetime | None:
    """A timestamp in UTC; a naive one is refused rather than guessed."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what}: {value.isoformat()} has no timezone; timestamps must be aware")
    return value.astimezone(UTC)
