"""arXiv resolution: batched `id_list` lookups and title searches, answered from the raw
store when it can, politely from the API when it must.

CONTRACT STUB: the records and signatures below are the interface other stages rely on;
the implementation is being written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from pipeline.config import Settings
from pipeline.rawstore import RawStore
from pipeline.records import ApiStats, Status


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


class ArxivResolver:
    """Resolves arXiv IDs and titles; one instance per run, shared by all tasks."""

    def __init__(self, settings: Settings, store: RawStore) -> None:
        self.settings = settings
        self.store = store
        self.stats = ApiStats(api="arxiv")

    def resolve_ids(self, arxiv_ids: Iterable[str]) -> dict[str, PaperRecord]:
        """One record per distinct valid ID given (canonical, without version)."""
        raise NotImplementedError

    def resolve_titles(self, titles: Iterable[str]) -> dict[str, TitleMatch]:
        """One match per distinct title given, keyed by the title as given."""
        raise NotImplementedError
