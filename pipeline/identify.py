"""Classification and normalisation of link destinations (pure functions).

CONTRACT STUB: the record and function signatures below are the interface other stages
rely on; the implementation is being written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal[
    "arxiv",  # a link to an arXiv paper (arxiv.org in all its forms, ar5iv, alphaxiv, HF paper pages, mirrors)
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


@dataclass(frozen=True, slots=True)
class Identity:
    """What a link destination points at."""

    kind: Kind
    entity_id: str | None
    """arXiv ID without version, Hub repo ID (`org/name`, collection `org/slug-id`),
    GitHub `owner/name`, github.io page; None where the link names no entity."""
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


def identify(url: str) -> Identity:
    """Classify and normalise one destination as written in a document."""
    raise NotImplementedError


def parse_arxiv_id(text: str) -> tuple[str, int | None] | None:
    """(canonical ID without version, version) for a valid arXiv identifier, else None."""
    raise NotImplementedError


def is_valid_hub_repo_id(repo_id: str) -> bool:
    """Whether `org/name` (or a legacy `name`) follows the Hub's repo naming rules."""
    raise NotImplementedError
