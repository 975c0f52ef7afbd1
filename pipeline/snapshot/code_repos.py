"""A paper's code in one column: every code link it has, merged, each with where it came
from. Pure.

Three places name a paper's code: a GitHub repository linked in the same list item as the
paper (`papers.github_repos`, source `links`), the repository its Hugging Face paper page
names (`hf_github_repo`, source `hf_paper_page`), and code URLs in its arXiv comment or
abstract (`code_urls`, source `arxiv`). Links to one GitHub repository (any case, with or
without `.git` or a path inside it) merge into one entry under `https://github.com/owner/name`;
other code hosts stay as their URL.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from pipeline.links.identify import identify
from pipeline.snapshot.schemas import CODE_REPO_TYPE

SOURCES = ("links", "hf_paper_page", "arxiv")


def _github_repo(url: str) -> str | None:
    identity = identify(url)
    if identity.kind in ("github_repo", "github_asset") and identity.valid:
        return identity.entity_id if identity.kind == "github_repo" else identity.asset_repo
    return None


def code_repos(
    github_repos: Iterable[str], hf_github_repo: str | None, code_urls: Iterable[str]
) -> list[dict[str, Any]]:
    """One paper's `code_repos`, sorted by URL."""
    merged: dict[str, dict[str, Any]] = {}

    def add(url: str, repo: str | None, source: str) -> None:
        key = f"https://github.com/{repo}" if repo else url
        entry = merged.setdefault(key, {"url": key, "repo": repo, "sources": []})
        if source not in entry["sources"]:
            entry["sources"].append(source)

    for repo in github_repos:
        add(f"https://github.com/{repo}", repo.lower(), "links")
    candidates: list[tuple[str, str]] = [(url, "arxiv") for url in code_urls]
    if hf_github_repo:
        candidates.insert(0, (hf_github_repo, "hf_paper_page"))
    for url, source in candidates:
        named = _github_repo(url)
        add(url, named.lower() if named else None, source)
    for entry in merged.values():
        entry["sources"].sort(key=SOURCES.index)
    return [merged[key] for key in sorted(merged)]


def code_repos_column(papers: pa.Table) -> pa.ChunkedArray:
    """The `code_repos` column of the papers table. Made a record batch at a time from the
    three columns it reads: the whole table as Python rows would cost more than the table."""
    sources = papers.select(["github_repos", "hf_github_repo", "code_urls"])
    chunks = [
        pa.array(
            [
                code_repos(repos, hf_repo, urls or ())
                for repos, hf_repo, urls in zip(
                    *(column.to_pylist() for column in batch.columns), strict=True
                )
            ],
            type=pa.list_(CODE_REPO_TYPE),
        )
        for batch in sources.to_batches(max_chunksize=4096)
    ]
    return pa.chunked_array(chunks, type=pa.list_(CODE_REPO_TYPE))
