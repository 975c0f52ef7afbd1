"""Hugging Face Hub resolution: models, datasets, spaces, collections and paper pages.

CONTRACT STUB: the records and signatures below are the interface other stages rely on;
the implementation is being written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import httpx

from pipeline.config import Settings
from pipeline.rawstore import RawStore
from pipeline.records import ApiStats, Status

RepoType = Literal["model", "dataset", "space", "collection"]
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
    params_by_dtype: tuple[tuple[str, int], ...] = ()
    params_source: Literal["safetensors", "gguf", "name"] | None = None
    arxiv_ids: tuple[str, ...] = ()
    """Papers the repo cites (the Hub's `arxiv:` tags)."""
    title: str | None = None
    """Collections and spaces have titles."""
    items: tuple[CollectionItem, ...] = ()
    """Collections: their items, in order."""
    sdk: str | None = None
    data_fetched_at: datetime | None = None


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


class HubResolver:
    """Resolves Hub repos and paper pages; one instance per run, shared by all tasks."""

    def __init__(
        self,
        settings: Settings,
        store: RawStore,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.transport = transport
        self.stats = ApiStats(api="hub")

    def resolve_repos(self, refs: Iterable[RepoRef]) -> dict[RepoRef, HubRepoRecord]:
        """One record per distinct ref given; collections' model items are resolved too and
        included under their own ('model', id) refs."""
        raise NotImplementedError

    def resolve_paper_pages(self, arxiv_ids: Iterable[str]) -> dict[str, PaperPageRecord]:
        """One record per distinct arXiv ID given."""
        raise NotImplementedError
