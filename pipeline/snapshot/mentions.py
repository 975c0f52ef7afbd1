"""What the links say of the entities they name, besides where (`snapshot.lineage`). Pure.

- the names each Hub repo is written under, and why a name is invalid;
- how each paper was reached: by its arXiv ID, or by a title (with the titles), and why
  an arXiv ID as written is invalid;
- which papers and GitHub repos are named in the same list item (table row, paragraph)
  of a document: how a repo is linked to a paper from the links alone.

Read from the links' columns whole documents at a time (a list item lies in one
document), as Arrow filters, distincts and joins; only the distinct facts become Python.
Rebuilding every link as a Python object took minutes per pass at 1 GB of lists.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.records import RepoRef
from pipeline.resolve.titles import title_key
from pipeline.snapshot.lineage import github_repos_named, hub_repos_named, papers_named

COLUMNS = (
    "document",
    "kind",
    "entity_id",
    "id_valid",
    "id_problem",
    "resolved_arxiv_id",
    "resolved_by",
    "link_text",
    "annotation",
)
"""The links columns `Mentions.add` reads."""


class Mentions:
    """The facts, gathered whole documents at a time (`add`)."""

    def __init__(self) -> None:
        self.hub_names: dict[RepoRef, str | None] = {}
        """(repo type, ID as written) -> why that name is invalid ('' when the link gives
        no reason), None when it is valid."""
        self.papers_by_id: set[str] = set()
        """Papers some link reaches by their arXiv ID."""
        self.papers_by_title: dict[str, set[str]] = defaultdict(set)
        """arXiv ID -> the title keys (`title_key`) of the link texts that led to it."""
        self.invalid_papers: dict[str, str] = {}
        """arXiv ID as written -> why it is invalid."""
        self.repos_of_paper: dict[str, set[str]] = defaultdict(set)
        """arXiv ID -> the GitHub repos named in a list item that names the paper."""

    def add(self, rows: pa.Table) -> None:
        """Whole documents of the links table (at least the columns of `COLUMNS`)."""
        papers, how = papers_named(rows)
        self._add_hub(rows)
        self._add_papers(rows, papers, how)
        self._add_items(rows, papers, github_repos_named(rows))

    def _add_hub(self, rows: pa.Table) -> None:
        repo_types, names = hub_repos_named(rows)
        written = pa.table(
            {
                "repo_type": repo_types,
                "name": names,
                "valid": rows.column("id_valid"),
                "problem": rows.column("id_problem"),
            }
        ).filter(pc.is_valid(names))
        for row in _distinct(written):
            ref: RepoRef = (row["repo_type"], row["name"])
            if row["valid"]:
                self.hub_names.setdefault(ref, None)
            else:
                self.hub_names[ref] = row["problem"] or ""

    def _add_papers(self, rows: pa.Table, papers: pa.Array, how: pa.Array) -> None:
        named = pc.is_valid(papers)
        self.papers_by_id.update(
            pc.unique(papers.filter(pc.and_(named, pc.equal(how, "id")))).to_pylist()
        )
        titles = pa.table({"paper": papers, "text": rows.column("link_text")})
        for row in _distinct(titles.filter(pc.and_(named, pc.not_equal(how, "id")))):
            self.papers_by_title[row["paper"]].add(title_key(row["text"]))
        # An arXiv ID as written (no title replaced it) that breaks arXiv's rules.
        bad = pc.and_(
            pc.and_(named, pc.is_null(rows.column("resolved_arxiv_id"))),
            pc.invert(rows.column("id_valid")),
        )
        problems = pa.table({"paper": papers, "problem": rows.column("id_problem")})
        for row in _distinct(problems.filter(bad)):
            self.invalid_papers[row["paper"]] = row["problem"] or ""

    def _add_items(self, rows: pa.Table, papers: pa.Array, repos: pa.Array) -> None:
        if not pc.any(pc.is_valid(repos)).as_py():
            return
        annotations = rows.column("annotation").cast(pa.string()).combine_chunks()
        # Blank as Python means it (`str.strip`), decided once per distinct annotation.
        distinct = pc.unique(annotations)
        filled = pa.array([bool(text.strip()) for text in distinct.to_pylist()], pa.bool_())
        in_item = pc.take(filled, pc.index_in(annotations, value_set=distinct))
        items = pa.table(
            {"document": rows.column("document").cast(pa.string()), "annotation": annotations}
        )
        with_repo = items.append_column("repo", repos).filter(pc.and_(in_item, pc.is_valid(repos)))
        with_paper = items.append_column("paper", papers).filter(
            pc.and_(in_item, pc.is_valid(papers))
        )
        pairs = with_paper.join(
            with_repo, keys=["document", "annotation"], join_type="inner", use_threads=False
        )
        for row in _distinct(pairs.select(["paper", "repo"])):
            self.repos_of_paper[row["paper"]].add(row["repo"])

    def papers_of_repo(self) -> dict[str, set[str]]:
        """The inverse of `repos_of_paper`, which it empties: at 1 GB of lists the pairs
        number in the millions, and both directions at once were a third of a night's
        memory (made once the papers' rows are built)."""
        inverse: dict[str, set[str]] = defaultdict(set)
        while self.repos_of_paper:
            paper, repos = self.repos_of_paper.popitem()
            for repo in repos:
                inverse[repo].add(paper)
        return inverse


def _distinct(rows: pa.Table) -> list[dict[str, Any]]:
    """The distinct rows of a few columns, as Python."""
    found: list[dict[str, Any]] = (
        rows.group_by(rows.column_names, use_threads=False).aggregate([]).to_pylist()
    )
    return found
