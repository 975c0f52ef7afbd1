"""Snapshots: deduplicated tables, published atomically under `enriched/`.

Two halves. `build_tables` is pure: tonight's links and resolver records (and the
previous snapshot, for lineage dates, the last-known-good fallback and the change log)
in, one pyarrow table per declared schema out. The rest is disk: `publish` writes a
snapshot so that readers never see a half-written one, `load` reads one back.

Layout of an output directory (`docs/data-contract.md` is the reference)::

    _snapshots.parquet                      the manifest: one row per run; the commit point
    <table>/snapshot_date=YYYY-MM-DD/part-0.parquet
                                            Hive view of every published night, for tools
                                            that read a directory (pandas, DuckDB, Polars)
    .runs/<run_id>/<table>.parquet          the published files themselves, immutable;
                                            each Hive partition file is a hard link to one
    .staging/                               work in progress; whatever is there when a
                                            run starts was left by a killed run
    .lock                                   flock(2) lock; holds the holder's pid and run

Why the `.runs` indirection: a night is published by appending its manifest row, one
atomic `os.replace` of `_snapshots.parquet`. Data files are written before that and
never modified after, so whatever the manifest names is complete, and all tables of a
night come from the same run even while a rerun of that night is being written. The
Hive partitions are updated after the commit (one atomic rename each) and repaired by
the next run if a run dies in between; `load` reads what the manifest names, so it
never depends on them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import DEFAULT_OUT_DIR, __version__
from pipeline.extract import Occurrence
from pipeline.identify import HUB_REPO_TYPES
from pipeline.links import Document, Link, apply_title_matches, links_table
from pipeline.records import STATUSES, ApiStats, ResolvedBy, Status, utc_now
from pipeline.resolve_arxiv import PaperRecord, TitleMatch
from pipeline.resolve_hub import (
    HubRepoRecord,
    LinkedModel,
    PaperPageRecord,
    RepoRef,
    RepoType,
    size_label,
)
from pipeline.schemas import (
    MANIFEST_SCHEMA,
    SCHEMA_VERSION,
    TABLE_KEYS,
    TABLE_SCHEMAS,
)

log = logging.getLogger(__name__)

Row = dict[str, Any]
ManifestStatus = Literal["ok", "partial", "failed"]
RUN_STATUSES: tuple[ManifestStatus, ...] = ("ok", "partial", "failed")

MANIFEST_FILE = "_snapshots.parquet"
PART_FILE = "part-0.parquet"
RUNS_DIR = ".runs"
STAGING_DIR = ".staging"
LOCK_FILE = ".lock"
PARTITION_PREFIX = "snapshot_date="

NOT_RESOLVED = "not resolved in this run"
"""Reason of an entity no resolver record speaks of (resolver skipped, failed or limited)."""
INVALID_ID = "invalid identifier, never sent"
"""Reason prefix of an entity whose identifier breaks its naming rules."""

GOOD: frozenset[str] = frozenset({"ok", "stale"})
"""Statuses whose row carries data worth keeping when a later lookup fails."""

_STATUS_RANK: dict[str, int] = {"ok": 0, "stale": 1, "not_found": 2, "error": 3}
"""Winner order among records of one entity: an answer beats a stale one beats a
definite absence beats no answer."""

_ARXIV_KINDS = frozenset({"arxiv", "arxiv_mention"})
_OTHER_REPO_TYPES: tuple[RepoType, ...] = ("dataset", "space", "collection")
_HEADING_SEPARATOR = " > "
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_LOAD_ATTEMPTS = 3
"""Reads retried when a rerun of the same night replaced the files between reading the
manifest and opening them (the replaced run's files are deleted after the commit)."""
_RETRY_SECONDS = 0.05


class SnapshotError(Exception):
    """A snapshot cannot be published or read; the message says which and why."""


class SnapshotIntegrityError(SnapshotError):
    """Tables that break their declared schema or key: a bug upstream; nothing is published."""


class SnapshotLockedError(SnapshotError):
    """Another run holds the output directory's lock."""

    def __init__(self, out_dir: Path, holder: Mapping[str, Any] | None) -> None:
        self.out_dir = out_dir
        self.holder = dict(holder or {})
        if self.holder:
            who = (
                f"run {self.holder.get('run_id', '?')} (pid {self.holder.get('pid', '?')}"
                f" on {self.holder.get('host', '?')}, since {self.holder.get('started_at', '?')})"
            )
        else:
            who = "a run that has not yet said who it is"
        super().__init__(
            f"{out_dir} is being written by {who}; wait for it to finish. The lock is "
            f"released when that process exits, so there is nothing to clean up by hand."
        )


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class SnapshotInputs:
    """Everything a snapshot is built from: one run's links and resolver records."""

    links: Sequence[Link]
    """Every link occurrence (title matches may or may not be applied yet)."""
    documents: Sequence[Document] = ()
    """The documents read; when given, every link must come from one of them."""
    papers: Mapping[str, PaperRecord] = field(default_factory=dict)
    """`ArxivResolver.resolve_ids`: arXiv ID -> record."""
    title_matches: Mapping[str, TitleMatch] = field(default_factory=dict)
    """`ArxivResolver.resolve_titles`: link text -> match."""
    repos: Mapping[RepoRef, HubRepoRecord] = field(default_factory=dict)
    """`HubResolver.resolve_repos`: (type, ID as written) -> record."""
    paper_pages: Mapping[str, PaperPageRecord] = field(default_factory=dict)
    """`HubResolver.resolve_paper_pages`: arXiv ID -> paper page."""


@dataclass(frozen=True)
class ManifestEntry:
    """What the manifest records about one run (row counts are added by `publish`)."""

    run_id: str
    """Unique per run; letters, digits, `.`, `_`, `-` (it names a directory)."""
    snapshot_date: date
    started_at: datetime
    status: str = "ok"
    """ok | partial | failed: how the run went (`publish` accepts all three: a run whose
    resolvers failed still publishes its links and statuses)."""
    status_reason: str | None = None
    flow_run_id: str | None = None
    finished_at: datetime | None = None
    """Defaults to the time the manifest row is written."""
    documents: Sequence[Document] = ()
    api_stats: Sequence[ApiStats] = ()
    arxiv_api_url: str | None = None
    hf_endpoint: str | None = None


@dataclass(frozen=True)
class PublishedSnapshot:
    """One night as the manifest publishes it."""

    run_id: str
    snapshot_date: date
    status: str
    finished_at: datetime
    files: dict[str, Path]
    """Table name -> its immutable Parquet file."""
    rows: dict[str, int]


# --------------------------------------------------------------------------- building


def build_tables(
    inputs: SnapshotInputs,
    *,
    snapshot_date: date,
    previous: Mapping[str, pa.Table] | None = None,
) -> dict[str, pa.Table]:
    """Every table of one snapshot, each with its declared schema, rows sorted by key.

    Pure: no disk, no clock. `previous` is the last published snapshot
    (`previous_tables(out_dir, before=snapshot_date)`); it supplies `first_seen`, the
    last-known-good values of entities whose lookup failed tonight, and the baseline of
    the `changes` table. Raises `ValueError` naming the record for inconsistent inputs.
    """
    _check_inputs(inputs)
    prev = _Previous.of(previous)
    links = apply_title_matches(inputs.links, _title_matches(inputs.title_matches, prev))

    hub = _HubEntities.collect(links, inputs.repos, prev)
    repos = _repo_rows(hub, prev, snapshot_date)
    if hub.add_collection_items(repos, prev):
        repos = _repo_rows(hub, prev, snapshot_date)  # items may be datasets or spaces
    models = [
        _hub_row(entity, _MODEL_LOOKUP, _model_values, prev.row("models", key[1:]), snapshot_date)
        for key, entity in hub.sorted_items(("model",))
    ]
    _add_collections(models, repos, hub)
    items = _ItemIndex.of(links)
    papers = _paper_rows(links, inputs, prev, models, items, snapshot_date)
    github = _github_rows(links, prev, items, snapshot_date)

    tables = {
        "links": links_table(links),
        "papers": _table("papers", papers),
        "models": _table("models", models),
        "repos": _table("repos", repos),
        "github_repos": _table("github_repos", github),
    }
    tables["changes"] = _table("changes", _change_rows(tables, prev))
    return tables


def _title_matches(found: Mapping[str, TitleMatch], prev: _Previous) -> dict[str, str]:
    """Link text -> arXiv ID: tonight's good title matches and, for a title whose search
    failed tonight (or was not run), the paper the previous snapshot reached by it, so
    that the paper keeps its row. A title arXiv now finds no paper for is not carried."""
    matches = {
        text: match.arxiv_id
        for text, match in found.items()
        if match.arxiv_id and match.status in GOOD
    }
    for row in prev.rows("papers").values():
        for text in row["title_queries"]:
            match = found.get(text)
            if text not in matches and (match is None or match.status == "error"):
                matches[text] = row["arxiv_id"]
    return matches


def _check_inputs(inputs: SnapshotInputs) -> None:
    for arxiv_id, paper in inputs.papers.items():
        if paper.arxiv_id != arxiv_id:
            raise ValueError(f"papers[{arxiv_id!r}] holds the record of {paper.arxiv_id!r}")
        _check_status(paper.status, f"paper {arxiv_id}")
    for arxiv_id, page in inputs.paper_pages.items():
        if page.arxiv_id != arxiv_id:
            raise ValueError(f"paper_pages[{arxiv_id!r}] holds the page of {page.arxiv_id!r}")
        _check_status(page.status, f"paper page {arxiv_id}")
    for ref, repo in inputs.repos.items():
        if (repo.repo_type, repo.requested_id) != ref:
            raise ValueError(
                f"repos[{ref!r}] holds the record of {(repo.repo_type, repo.requested_id)!r}"
            )
        _check_status(repo.status, f"{ref[0]} {ref[1]}")
    for title, match in inputs.title_matches.items():
        _check_status(match.status, f"title match {title!r}")
    if inputs.documents:
        names = {document.name for document in inputs.documents}
        for link in inputs.links:
            if link.occurrence.document not in names:
                raise ValueError(
                    f"link {link.occurrence.url!r} (line {link.occurrence.line}) comes from "
                    f"{link.occurrence.document!r}, which is not among the documents read"
                )


def _check_status(status: str, what: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"{what}: status {status!r} is not one of {', '.join(STATUSES)}")


def _utc(value: datetime | None, what: str) -> datetime | None:
    """A timestamp in UTC; a naive one is refused rather than guessed."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what}: {value.isoformat()} has no timezone; timestamps must be aware")
    return value.astimezone(UTC)


def _unique(values: Iterable[str]) -> list[str]:
    """Distinct values in first-seen order (for lists whose order means something)."""
    return list(dict.fromkeys(values))


class _Previous:
    """The previous snapshot's rows by key, with every current column present."""

    def __init__(self, rows: dict[str, dict[tuple[Any, ...], Row]], taken: date | None) -> None:
        self._rows = rows
        self.snapshot_date = taken

    @classmethod
    def of(cls, tables: Mapping[str, pa.Table] | None) -> _Previous:
        rows: dict[str, dict[tuple[Any, ...], Row]] = {}
        taken: date | None = None
        for name, table in (tables or {}).items():
            if name not in TABLE_SCHEMAS or name in ("links", "changes"):
                continue
            schema = TABLE_SCHEMAS[name]
            keys = TABLE_KEYS[name]
            defaults = {f.name: _empty(f) for f in schema}
            rows[name] = {
                tuple(row[k] for k in keys): {**defaults, **row} for row in table.to_pylist()
            }
            stamp = (table.schema.metadata or {}).get(b"snapshot_date")
            if stamp:
                taken = date.fromisoformat(stamp.decode())
        return cls(rows, taken)

    def row(self, table: str, key: tuple[Any, ...]) -> Row | None:
        return self._rows.get(table, {}).get(key)

    def rows(self, table: str) -> dict[tuple[Any, ...], Row]:
        return self._rows.get(table, {})

    def aliases(self) -> dict[RepoRef, str]:
        """(type, name as written) -> canonical ID, from the previous snapshot's good rows:
        how tonight places a renamed repo whose lookup failed under its known name."""
        found: dict[RepoRef, str] = {}
        for table, type_of in (("models", None), ("repos", "repo_type")):
            for row in self.rows(table).values():
                if row["status"] not in GOOD:
                    continue
                repo_type: RepoType = row[type_of] if type_of else "model"
                for written in row["written_as"]:
                    found[(repo_type, written)] = row["repo_id"]
        return found


def _empty(f: pa.Field) -> Any:
    """The value of a column an older snapshot did not have."""
    return [] if pa.types.is_list(f.type) and not f.nullable else None


@dataclass
class _Lineage:
    """Where an entity is mentioned."""

    documents: set[str] = field(default_factory=set)
    headings: set[str] = field(default_factory=set)
    mentions: int = 0

    def add(self, occurrence: Occurrence) -> None:
        self.documents.add(occurrence.document)
        if occurrence.heading_path:
            self.headings.add(_HEADING_SEPARATOR.join(occurrence.heading_path))
        self.mentions += 1

    def columns(self, previous: Row | None, snapshot_date: date) -> Row:
        first_seen = snapshot_date
        if previous is not None and previous.get("first_seen") is not None:
            first_seen = min(previous["first_seen"], snapshot_date)
        return {
            "documents": sorted(self.documents),
            "mention_count": self.mentions,
            "headings": sorted(self.headings),
            "first_seen": first_seen,
            "last_seen": snapshot_date,
        }


@dataclass(frozen=True)
class _Lookup:
    """The columns one lookup fills, with its status, reason and data time."""

    status: str
    reason: str
    fetched_at: str
    columns: tuple[str, ...]


_ARXIV_LOOKUP = _Lookup(
    "status",
    "status_reason",
    "data_fetched_at",
    (
        "title",
        "authors",
        "author_affiliations",
        "abstract",
        "published",
        "updated",
        "latest_version",
        "primary_category",
        "categories",
        "doi",
        "journal_ref",
        "comment",
        "abs_url",
        "pdf_url",
        "code_urls",
    ),
)
_PAGE_LOOKUP = _Lookup(
    "hf_page_status",
    "hf_page_status_reason",
    "hf_page_fetched_at",
    (
        "hf_upvotes",
        "hf_github_repo",
        "hf_github_stars",
        "hf_project_page",
        "hf_num_models",
        "hf_models",
    ),
)
_HUB_COMMON = (
    "author",
    "downloads",
    "likes",
    "license",
    "gated",
    "private",
    "created_at",
    "last_modified",
    "tags",
    "arxiv_ids",
)
_MODEL_LOOKUP = _Lookup(
    "status",
    "status_reason",
    "data_fetched_at",
    (
        *_HUB_COMMON,
        "params_total",
        "params_by_dtype",
        "params_source",
        "size_label",
        "pipeline_tag",
        "library_name",
    ),
)
_REPO_LOOKUP = _Lookup(
    "status", "status_reason", "data_fetched_at", (*_HUB_COMMON, "title", "sdk", "items")
)


def _carry_forward(row: Row, previous: Row | None, lookup: _Lookup) -> None:
    """Last known good: a failed lookup keeps the previous snapshot's good values, as stale."""
    if row[lookup.status] != "error" or previous is None:
        return
    if previous.get(lookup.status) not in GOOD:
        return
    fetched: datetime | None = previous.get(lookup.fetched_at)
    when = fetched.isoformat() if fetched else "an unknown time"
    for column in lookup.columns:
        row[column] = previous[column]
    row[lookup.status] = "stale"
    row[lookup.reason] = (
        f"lookup failed in this run ({row[lookup.reason] or 'no reason given'}); "
        f"values are the last good ones, fetched at {when}"
    )
    row[lookup.fetched_at] = fetched


class _Answer(Protocol):
    """What every resolver record says about its lookup."""

    @property
    def status(self) -> Status: ...
    @property
    def status_reason(self) -> str | None: ...
    @property
    def data_fetched_at(self) -> datetime | None: ...


def _resolution(
    answer: _Answer | None,
    what: str,
    invalid: str | None,
    lookup: _Lookup,
    unresolved: str = NOT_RESOLVED,
) -> Row:
    """A lookup's status columns: the record's, else why there is none (`unresolved`
    says why no resolver answered, when more is known than that)."""
    if answer is not None:
        return {
            lookup.status: answer.status,
            lookup.reason: answer.status_reason,
            lookup.fetched_at: _utc(answer.data_fetched_at, what),
        }
    if invalid is not None:
        reason = f"{INVALID_ID}: {invalid}" if invalid else INVALID_ID
        return {lookup.status: "not_found", lookup.reason: reason, lookup.fetched_at: None}
    return {lookup.status: "error", lookup.reason: unresolved, lookup.fetched_at: None}


# ----- Hub repos and models


@dataclass
class _HubEntity:
    repo_type: RepoType
    repo_id: str
    records: list[HubRepoRecord] = field(default_factory=list)
    written_as: set[str] = field(default_factory=set)
    lineage: _Lineage = field(default_factory=_Lineage)
    invalid: str | None = None
    """Why the identifier as written is invalid ('' when the link gives no reason)."""
    unresolved: str = NOT_RESOLVED
    """The reason of a row no record speaks of."""

    def winner(self) -> HubRepoRecord | None:
        """The record the row is made of: best status, then newest data, then the record
        asked under the canonical name, then the first name alphabetically."""
        if not self.records:
            return None

        def rank(record: HubRepoRecord) -> tuple[int, float, bool, str]:
            fetched = _utc(record.data_fetched_at, f"{record.repo_type} {record.requested_id}")
            age = -fetched.timestamp() if fetched else math.inf
            canonical = record.requested_id == record.repo_id
            return (_STATUS_RANK[record.status], age, not canonical, record.requested_id)

        return min(self.records, key=rank)


class _HubEntities:
    """Hub repos grouped by canonical ID: names written differently, through a mirror or
    under an old name that redirected, land on one entity."""

    def __init__(self) -> None:
        self.entities: dict[tuple[RepoType, str], _HubEntity] = {}
        self.canonical: dict[RepoRef, str] = {}

    @classmethod
    def collect(
        cls, links: Sequence[Link], records: Mapping[RepoRef, HubRepoRecord], prev: _Previous
    ) -> _HubEntities:
        found = cls()
        aliases = prev.aliases()

        def canonical(ref: RepoRef) -> str:
            record = records.get(ref)
            # Tonight's answer names the canonical ID; with no answer, the last snapshot's.
            if record is not None and (
                record.status != "error" or record.repo_id != record.requested_id
            ):
                return record.repo_id
            return aliases.get(ref, ref[1])

        for ref in sorted(records):
            record = records[ref]
            entity = found._entity(ref, canonical(ref))
            entity.records.append(record)
            entity.written_as.add(record.requested_id)
        for link in links:
            identity = link.identity
            repo_type = HUB_REPO_TYPES.get(identity.kind)
            if repo_type is None or identity.entity_id is None:
                continue
            ref = (repo_type, identity.entity_id)
            entity = found._entity(ref, canonical(ref))
            entity.written_as.add(identity.entity_id)
            entity.lineage.add(link.occurrence)
            if not identity.valid:
                entity.invalid = identity.problem or ""
        return found

    def add_collection_items(self, repos: Sequence[Row], prev: _Previous) -> bool:
        """Give a row to every model, dataset and space of a good collection that no record
        speaks of: the collection's lookup failed tonight (its row is the last good one),
        so its items were not asked, and they keep their rows as the collection does.
        True when an entity was added."""
        aliases = prev.aliases()
        added = False
        for repo in repos:
            if repo["repo_type"] != "collection" or repo["status"] not in GOOD:
                continue
            for item in repo["items"]:
                repo_type = _COLLECTION_ITEM_TYPES.get(item["item_type"])
                ref: RepoRef | None = (repo_type, item["item_id"]) if repo_type else None
                if ref is None or not ref[1] or ref in self.canonical:
                    continue
                entity = self._entity(ref, aliases.get(ref, ref[1]))
                entity.written_as.add(ref[1])
                entity.unresolved = (
                    f"{NOT_RESOLVED}: an item of collection {repo['repo_id']}, "
                    "whose items could not be looked up"
                )
                added = True
        return added

    def _entity(self, ref: RepoRef, repo_id: str) -> _HubEntity:
        self.canonical[ref] = repo_id
        key = (ref[0], repo_id)
        if key not in self.entities:
            self.entities[key] = _HubEntity(ref[0], repo_id)
        return self.entities[key]

    def sorted_items(
        self, types: tuple[RepoType, ...]
    ) -> list[tuple[tuple[RepoType, str], _HubEntity]]:
        chosen = [(key, e) for key, e in self.entities.items() if key[0] in types]
        return sorted(chosen, key=lambda item: item[0])


_COLLECTION_ITEM_TYPES: dict[str, RepoType] = {
    "model": "model",
    "dataset": "dataset",
    "space": "space",
}
"""Collection items that are Hub repos (the resolver looks these up in turn)."""


def _repo_rows(hub: _HubEntities, prev: _Previous, snapshot_date: date) -> list[Row]:
    return [
        _hub_row(entity, _REPO_LOOKUP, _repo_values, prev.row("repos", key), snapshot_date)
        for key, entity in hub.sorted_items(_OTHER_REPO_TYPES)
    ]


def _hub_common(record: HubRepoRecord) -> Row:
    what = f"{record.repo_type} {record.requested_id}"
    return {
        "author": record.author,
        "downloads": record.downloads,
        "likes": record.likes,
        "license": record.license,
        "gated": record.gated,
        "private": record.private,
        "created_at": _utc(record.created_at, f"{what} created_at"),
        "last_modified": _utc(record.last_modified, f"{what} last_modified"),
        "tags": sorted(set(record.tags)),
        "arxiv_ids": sorted(set(record.arxiv_ids)),
    }


def _model_values(record: HubRepoRecord) -> Row:
    params = record.params_total
    return {
        **_hub_common(record),
        "params_total": params,
        "params_by_dtype": [
            {"dtype": dtype, "params": count} for dtype, count in sorted(record.params_by_dtype)
        ],
        "params_source": record.params_source,
        "size_label": _size_label(params),
        "pipeline_tag": record.pipeline_tag,
        "library_name": record.library_name,
    }


def _size_label(params: int | None) -> str | None:
    return None if params is None else size_label(params)


def _repo_values(record: HubRepoRecord) -> Row:
    return {
        **_hub_common(record),
        "title": record.title,
        "sdk": record.sdk,
        # Collection order is the curator's order: kept as the Hub gives it.
        "items": [{"item_type": i.item_type, "item_id": i.item_id} for i in record.items],
    }


def _hub_row(
    entity: _HubEntity,
    lookup: _Lookup,
    values: Callable[[HubRepoRecord], Row],
    previous: Row | None,
    snapshot_date: date,
) -> Row:
    record = entity.winner()
    row: Row = {
        "repo_type": entity.repo_type,
        "repo_id": entity.repo_id,
        "written_as": sorted(entity.written_as),
    }
    if record is not None:
        row.update(values(record))
    what = f"{entity.repo_type} {entity.repo_id}"
    row.update(_resolution(record, what, entity.invalid, lookup, entity.unresolved))
    row.update(entity.lineage.columns(previous, snapshot_date))
    _carry_forward(row, previous, lookup)
    return row


def _add_collections(models: list[Row], repos: list[Row], hub: _HubEntities) -> None:
    """Each model lists the collections (good rows of `repos`) that hold it."""
    holders: dict[str, set[str]] = defaultdict(set)
    for repo in repos:
        if repo["repo_type"] != "collection" or repo["status"] not in GOOD:
            continue
        for item in repo["items"]:
            if item["item_type"] == "model" and item["item_id"]:
                model_id = hub.canonical.get(("model", item["item_id"]), item["item_id"])
                holders[model_id].add(repo["repo_id"])
    for model in models:
        model["collections"] = sorted(holders.get(model["repo_id"], ()))


# ----- papers


class _ItemIndex:
    """Papers and GitHub repos mentioned in the same list item (or table row, or
    paragraph) of a document: how a repo is linked to a paper from the links alone."""

    def __init__(self) -> None:
        self.papers_of_repo: dict[str, set[str]] = defaultdict(set)
        self.repos_of_paper: dict[str, set[str]] = defaultdict(set)

    @classmethod
    def of(cls, links: Sequence[Link]) -> _ItemIndex:
        index = cls()
        papers: dict[tuple[str, str], set[str]] = defaultdict(set)
        repos: dict[tuple[str, str], set[str]] = defaultdict(set)
        for link in links:
            occurrence = link.occurrence
            if not occurrence.annotation.strip():
                continue
            item = (occurrence.document, occurrence.annotation)
            key = _paper_key(link)
            if key is not None:
                papers[item].add(key[0])
            if link.identity.kind == "github_repo" and link.identity.entity_id:
                repos[item].add(link.identity.entity_id)
        for item, item_repos in repos.items():
            for repo in item_repos:
                index.papers_of_repo[repo] |= papers.get(item, set())
                for paper in papers.get(item, ()):
                    index.repos_of_paper[paper].add(repo)
        return index


def _paper_key(link: Link) -> tuple[str, ResolvedBy] | None:
    """The paper a link leads to and how: its resolution, else its identifier as written."""
    if link.resolved_arxiv_id:
        return link.resolved_arxiv_id, link.resolved_by or "id"
    identity = link.identity
    if identity.kind in _ARXIV_KINDS and identity.entity_id:
        return identity.entity_id, "id"
    return None


def _paper_values(paper: PaperRecord) -> Row:
    what = f"paper {paper.arxiv_id}"
    return {
        "title": paper.title,
        "authors": list(paper.authors),
        "author_affiliations": [list(a) for a in paper.author_affiliations],
        "abstract": paper.abstract,
        "published": _utc(paper.published, f"{what} published"),
        "updated": _utc(paper.updated, f"{what} updated"),
        "latest_version": paper.latest_version,
        # arXiv's order: the primary category first, then cross-lists.
        "primary_category": paper.primary_category,
        "categories": _unique(paper.categories),
        "doi": paper.doi,
        "journal_ref": paper.journal_ref,
        "comment": paper.comment,
        "abs_url": paper.abs_url,
        "pdf_url": paper.pdf_url,
        "code_urls": _unique(paper.code_urls),
    }


def _page_values(page: PaperPageRecord) -> Row:
    return {
        "hf_upvotes": page.upvotes,
        "hf_github_repo": page.github_repo,
        "hf_github_stars": page.github_stars,
        "hf_project_page": page.project_page,
        "hf_num_models": page.num_total_models,
        "hf_models": [_linked_model(m) for m in page.linked_models],
    }


def _linked_model(model: LinkedModel) -> Row:
    params = model.params_total
    return {
        "repo_id": model.repo_id,
        "params_total": params,
        "size_label": _size_label(params),
        "pipeline_tag": model.pipeline_tag,
        "downloads": model.downloads,
    }


def _paper_rows(
    links: Sequence[Link],
    inputs: SnapshotInputs,
    prev: _Previous,
    models: list[Row],
    items: _ItemIndex,
    snapshot_date: date,
) -> list[Row]:
    lineage: dict[str, _Lineage] = defaultdict(_Lineage)
    by_id: set[str] = set()
    by_title: dict[str, set[str]] = defaultdict(set)
    invalid: dict[str, str] = {}
    for link in links:
        key = _paper_key(link)
        if key is None:
            continue
        arxiv_id, how = key
        lineage[arxiv_id].add(link.occurrence)
        if how == "id":
            by_id.add(arxiv_id)
        else:
            by_title[arxiv_id].add(link.occurrence.link_text)
        if link.resolved_arxiv_id is None and not link.identity.valid:
            invalid[arxiv_id] = link.identity.problem or ""

    citing: dict[str, dict[str, Row]] = defaultdict(dict)
    for model in models:
        if model["status"] in GOOD:
            for arxiv_id in model["arxiv_ids"]:
                citing[arxiv_id][model["repo_id"]] = _citing_model(model)

    keys = set(lineage) | set(inputs.papers) | set(inputs.paper_pages)
    rows = []
    for arxiv_id in sorted(keys):
        paper = inputs.papers.get(arxiv_id)
        page = inputs.paper_pages.get(arxiv_id)
        previous = prev.row("papers", (arxiv_id,))
        resolved_by: ResolvedBy | None = (
            "id" if arxiv_id in by_id else "title" if arxiv_id in by_title else None
        )
        row: Row = {
            "arxiv_id": arxiv_id,
            "resolved_by": resolved_by,
            "title_queries": sorted(by_title.get(arxiv_id, ())),
            "github_repos": sorted(items.repos_of_paper.get(arxiv_id, ())),
            "hf_models": [],
        }
        if paper is not None:
            row.update(_paper_values(paper))
        if page is not None:
            row.update(_page_values(page))
        bad = invalid.get(arxiv_id)
        unresolved = _title_search_failure(by_title.get(arxiv_id, set()), inputs.title_matches)
        row.update(_resolution(paper, f"paper {arxiv_id}", bad, _ARXIV_LOOKUP, unresolved))
        row.update(_resolution(page, f"paper page {arxiv_id}", bad, _PAGE_LOOKUP, unresolved))
        row.update(lineage[arxiv_id].columns(previous, snapshot_date))
        _carry_forward(row, previous, _ARXIV_LOOKUP)
        _carry_forward(row, previous, _PAGE_LOOKUP)
        # Models of our own models table are fresher and complete: they win over the
        # paper page's list for the same repo.
        merged = {m["repo_id"]: m for m in row["hf_models"]}
        merged.update(citing.get(arxiv_id, {}))
        row["hf_models"] = [merged[repo_id] for repo_id in sorted(merged)]
        rows.append(row)
    return rows


def _title_search_failure(texts: Iterable[str], matches: Mapping[str, TitleMatch]) -> str:
    """Why a paper reached by title has no record tonight: its title search failed (the
    paper is then known from the raw store or the previous snapshot only)."""
    for text in sorted(texts):
        match = matches.get(text)
        if match is not None and match.status in ("error", "stale") and match.status_reason:
            return f"{NOT_RESOLVED}: its title search failed ({match.status_reason})"
    return NOT_RESOLVED


def _citing_model(model: Row) -> Row:
    return {
        "repo_id": model["repo_id"],
        "params_total": model["params_total"],
        "size_label": model["size_label"],
        "pipeline_tag": model["pipeline_tag"],
        "downloads": model["downloads"],
    }


# ----- GitHub


def _github_rows(
    links: Sequence[Link], prev: _Previous, items: _ItemIndex, snapshot_date: date
) -> list[Row]:
    lineage: dict[str, _Lineage] = defaultdict(_Lineage)
    for link in links:
        if link.identity.kind == "github_repo" and link.identity.entity_id:
            lineage[link.identity.entity_id].add(link.occurrence)
    return [
        {
            "repo": repo,
            "url": f"https://github.com/{repo}",
            "arxiv_ids": sorted(items.papers_of_repo.get(repo, ())),
            **lineage[repo].columns(prev.row("github_repos", (repo,)), snapshot_date),
        }
        for repo in sorted(lineage)
    ]


# ----- changes

_TRACKED: dict[str, tuple[str, ...]] = {
    "papers": (
        "title",
        "authors",
        "latest_version",
        "updated",
        "primary_category",
        "doi",
        "journal_ref",
        "resolved_by",
        "hf_github_repo",
        "documents",
        "status",
    ),
    "models": (
        "written_as",
        "params_total",
        "size_label",
        "license",
        "pipeline_tag",
        "library_name",
        "gated",
        "arxiv_ids",
        "collections",
        "documents",
        "status",
    ),
    "repos": (
        "written_as",
        "title",
        "license",
        "gated",
        "items",
        "documents",
        "status",
    ),
    "github_repos": ("arxiv_ids", "documents"),
}
"""Fields whose changes are logged. Download and like counts move every night: left out."""


def _entity_of(table: str, row: Row) -> tuple[str, str]:
    if table == "papers":
        return "paper", row["arxiv_id"]
    if table == "models":
        return "model", row["repo_id"]
    if table == "repos":
        return row["repo_type"], row["repo_id"]
    return "github_repo", row["repo"]


def _change_rows(tables: Mapping[str, pa.Table], prev: _Previous) -> list[Row]:
    rows: list[Row] = []
    since = prev.snapshot_date
    for table, fields in _TRACKED.items():
        old = {_entity_of(table, r): r for r in prev.rows(table).values()}
        new = {_entity_of(table, r): r for r in tables[table].to_pylist()}
        for entity in sorted(old.keys() | new.keys()):
            base = {
                "entity_type": entity[0],
                "entity_id": entity[1],
                "previous_snapshot_date": since,
            }
            if entity not in old:
                rows.append({**base, "change": "added"})
            elif entity not in new:
                rows.append({**base, "change": "removed"})
            else:
                for name in fields:
                    before, after = _as_text(old[entity][name]), _as_text(new[entity][name])
                    if before != after:
                        rows.append(
                            {
                                **base,
                                "change": "changed",
                                "field": name,
                                "old_value": before,
                                "new_value": after,
                            }
                        )
    return rows


def _as_text(value: Any) -> str | None:
    """One stable text form per value, so that equal values compare equal across a
    write/read round trip (lists and structs as JSON, times in ISO 8601)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=_as_text)
    return str(value)


def _table(name: str, rows: list[Row]) -> pa.Table:
    """Rows as a table of the declared schema; columns a row lacks (nothing known) are
    null, or empty for list columns that are never null."""
    schema = TABLE_SCHEMAS[name]
    defaults = {f.name: _empty(f) for f in schema}
    return pa.Table.from_pylist([{**defaults, **row} for row in rows], schema=schema)


# --------------------------------------------------------------------------- checking


def check_tables(tables: Mapping[str, pa.Table]) -> None:
    """Every declared table present, with its exact schema, no null where the schema
    forbids one, valid statuses and unique keys; `SnapshotIntegrityError` otherwise."""
    missing = sorted(set(TABLE_SCHEMAS) - set(tables))
    unknown = sorted(set(tables) - set(TABLE_SCHEMAS))
    if missing or unknown:
        raise SnapshotIntegrityError(f"tables missing: {missing}; tables not declared: {unknown}")
    for name, schema in TABLE_SCHEMAS.items():
        table = tables[name]
        if not table.schema.equals(schema, check_metadata=False):
            raise SnapshotIntegrityError(
                f"table {name}: schema differs from the declared one:\n"
                f"got:\n{table.schema.to_string(show_schema_metadata=False)}\n"
                f"declared:\n{schema.to_string(show_schema_metadata=False)}"
            )
        for f in schema:
            nulls = table.column(f.name).null_count
            if not f.nullable and nulls:
                raise SnapshotIntegrityError(f"table {name}: {nulls} nulls in column {f.name}")
        if "status" in schema.names:
            bad = set(table.column("status").to_pylist()) - set(STATUSES)
            if bad:
                raise SnapshotIntegrityError(f"table {name}: unknown statuses {sorted(bad)}")
        _check_keys(name, table)


def _check_keys(name: str, table: pa.Table) -> None:
    columns = [table.column(k).to_pylist() for k in TABLE_KEYS[name]]
    seen: set[tuple[Any, ...]] = set()
    duplicates: list[tuple[Any, ...]] = []
    for key in zip(*columns, strict=True):
        if key in seen:
            duplicates.append(key)
        seen.add(key)
    if duplicates:
        raise SnapshotIntegrityError(
            f"table {name}: key {TABLE_KEYS[name]} not unique; "
            f"{len(duplicates)} duplicates, first: {duplicates[:5]}"
        )


# --------------------------------------------------------------------------- locking

_held_lock = threading.Lock()
_held: dict[Path, int] = {}
"""Output directories whose lock this process holds -> the holding thread."""


@contextlib.contextmanager
def snapshot_lock(out_dir: Path | str, run_id: str) -> Iterator[None]:
    """Hold the output directory's exclusive lock, or raise `SnapshotLockedError` at once
    naming the holder. `publish` and `record_failed_run` take it themselves unless this
    thread already holds it, so a run holds it from its first lookup to its publish."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    key = out.resolve()
    fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SnapshotLockedError(out, _lock_holder(fd)) from None
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "run_id": run_id,
            "started_at": utc_now().isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        with _held_lock:
            _held[key] = threading.get_ident()
        try:
            yield
        finally:
            with _held_lock:
                _held.pop(key, None)
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _lock_holder(fd: int) -> dict[str, Any] | None:
    try:
        text = os.pread(fd, 4096, 0).decode()
        holder = json.loads(text) if text else None
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


@contextlib.contextmanager
def _locked(out: Path, run_id: str) -> Iterator[None]:
    with _held_lock:
        mine = _held.get(out.resolve()) == threading.get_ident()
    if mine:
        yield
        return
    with snapshot_lock(out, run_id):
        yield


# --------------------------------------------------------------------------- publishing


def publish(
    out_dir: Path | str, tables: Mapping[str, pa.Table], manifest_entry: ManifestEntry
) -> PublishedSnapshot:
    """Publish one snapshot: write every table, then commit it with one manifest row.

    A rerun of a night replaces that night. Readers see the previous state or the new
    one, never a mix; a run killed at any moment leaves every published snapshot as it
    was (the next publish clears what it left). Raises `SnapshotIntegrityError` before
    writing anything if a table breaks its schema or key, `SnapshotLockedError` if
    another run holds the lock.
    """
    out = Path(out_dir)
    entry = manifest_entry
    _check_entry(entry)
    check_tables(tables)
    rows = {name: tables[name].num_rows for name in TABLE_SCHEMAS}
    finished_at = _utc(entry.finished_at, "finished_at") or utc_now()
    row = _manifest_row(entry, finished_at, published=True, rows=rows)
    with _locked(out, entry.run_id):
        manifest = _manifest_for_update(out)
        if entry.run_id in manifest.column("run_id").to_pylist():
            raise SnapshotError(f"run {entry.run_id} is already in {out / MANIFEST_FILE}")
        _recover(out, manifest)
        staged = out / STAGING_DIR / entry.run_id
        final = out / RUNS_DIR / entry.run_id
        try:
            staged.mkdir(parents=True)
            for name in TABLE_SCHEMAS:
                _write_parquet(tables[name], staged / f"{name}.parquet")
            _fsync_dir(staged)
            final.parent.mkdir(exist_ok=True)
            os.replace(staged, final)
            _fsync_dir(final.parent)
            manifest = _append(manifest, row)
            _write_manifest(out, manifest)  # the commit point
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            _discard_unless_committed(out, entry.run_id)
            raise
        try:
            _sync_views(out, manifest)
            _collect_garbage(out, manifest)
        except OSError as exc:
            # Published all the same: `load` reads the manifest; the next run repairs.
            log.warning("snapshot %s published; Hive view not updated: %s", entry.run_id, exc)
    return PublishedSnapshot(
        run_id=entry.run_id,
        snapshot_date=entry.snapshot_date,
        status=entry.status,
        finished_at=finished_at,
        files={name: final / f"{name}.parquet" for name in TABLE_SCHEMAS},
        rows=rows,
    )


def _discard_unless_committed(out: Path, run_id: str) -> None:
    """After a failed publish: remove the run's files unless the manifest names them (the
    failure came after the commit). If even that cannot be told, the next run's garbage
    collection decides."""
    with contextlib.suppress(Exception):
        if run_id not in _current_runs(_read_manifest(out)).values():
            shutil.rmtree(out / RUNS_DIR / run_id, ignore_errors=True)


def record_failed_run(out_dir: Path | str, manifest_entry: ManifestEntry) -> None:
    """Add a manifest row for a run that published nothing (status failed); tables and
    published snapshots are not touched. The entry's `status_reason` must say why."""
    out = Path(out_dir)
    entry = manifest_entry
    if not entry.status_reason:
        raise ValueError(f"run {entry.run_id}: a failed run needs a status_reason")
    _check_entry(entry)
    with _locked(out, entry.run_id):
        manifest = _manifest_for_update(out)
        if entry.run_id in manifest.column("run_id").to_pylist():
            raise SnapshotError(f"run {entry.run_id} is already in {out / MANIFEST_FILE}")
        finished_at = _utc(entry.finished_at, "finished_at") or utc_now()
        failed = replace(entry, status="failed")
        row = _manifest_row(failed, finished_at, published=False, rows=None)
        _write_manifest(out, _append(manifest, row))


def _check_entry(entry: ManifestEntry) -> None:
    if not _RUN_ID.fullmatch(entry.run_id):
        raise ValueError(
            f"run id {entry.run_id!r}: use 1-128 letters, digits, '.', '_' or '-' "
            "(it names a directory)"
        )
    if entry.status not in RUN_STATUSES:
        raise ValueError(f"run {entry.run_id}: status {entry.status!r} not in {RUN_STATUSES}")
    _utc(entry.started_at, f"run {entry.run_id} started_at")
    _utc(entry.finished_at, f"run {entry.run_id} finished_at")


def _manifest_row(
    entry: ManifestEntry, finished_at: datetime, *, published: bool, rows: dict[str, int] | None
) -> Row:
    row: Row = {
        "run_id": entry.run_id,
        "flow_run_id": entry.flow_run_id,
        "snapshot_date": entry.snapshot_date,
        "started_at": _utc(entry.started_at, "started_at"),
        "finished_at": finished_at,
        "status": entry.status,
        "status_reason": entry.status_reason,
        "published": published,
        "schema_version": SCHEMA_VERSION,
        "pipeline_version": __version__,
        "documents": [
            {
                "document": d.name,
                "sha256": d.sha256,
                "size_bytes": d.size_bytes,
                "links": d.links,
                "error": d.error,
            }
            for d in sorted(entry.documents, key=lambda d: d.name)
        ],
        "api_stats": [
            {
                "api": s.api,
                "requests": s.requests,
                "from_store": s.from_store,
                "retries": s.retries,
                "seconds": s.seconds,
                "by_status": [
                    {"http_status": code, "responses": n} for code, n in sorted(s.by_status.items())
                ],
            }
            for s in sorted(entry.api_stats, key=lambda s: s.api)
        ],
        "arxiv_api_url": entry.arxiv_api_url,
        "hf_endpoint": entry.hf_endpoint,
    }
    for name in TABLE_SCHEMAS:
        row[f"{name}_rows"] = None if rows is None else rows[name]
    return row


def _append(manifest: pa.Table, row: Row) -> pa.Table:
    return pa.concat_tables([manifest, pa.Table.from_pylist([row], schema=MANIFEST_SCHEMA)])


def _write_parquet(table: pa.Table, path: Path) -> None:
    with path.open("wb") as handle:
        pq.write_table(table, handle, compression="zstd")
        handle.flush()
        os.fsync(handle.fileno())


def _write_manifest(out: Path, manifest: pa.Table) -> None:
    """Replace the manifest atomically: readers see the old one or the new one."""
    staging = out / STAGING_DIR
    staging.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=staging, prefix="manifest-", suffix=".parquet")
    try:
        with os.fdopen(fd, "wb") as handle:
            pq.write_table(manifest, handle, compression="zstd")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, out / MANIFEST_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(out)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _manifest_for_update(out: Path) -> pa.Table:
    """The manifest to append to; an empty one only for a directory without snapshots.

    Partitions and run files that the manifest does not name are deleted as leftovers of
    killed runs, so a directory that holds snapshot data but lost its manifest is refused
    rather than emptied."""
    manifest = _read_manifest(out)
    if manifest is not None:
        return manifest
    runs = out / RUNS_DIR
    data = [p for p in (runs, *(out / t for t in TABLE_SCHEMAS)) if p.is_dir() and any(p.iterdir())]
    if data:
        raise SnapshotError(
            f"{out} holds snapshot data ({', '.join(p.name for p in data)}) but no "
            f"{MANIFEST_FILE}: restore the manifest, or move the directory away"
        )
    return MANIFEST_SCHEMA.empty_table()


def _recover(out: Path, manifest: pa.Table) -> None:
    """Clear what a killed run left: staging files, unpublished run files and partitions,
    and Hive views that lag behind the manifest. Only ever called under the lock."""
    staging = out / STAGING_DIR
    if staging.is_dir():
        for leftover in staging.iterdir():
            _remove(leftover)
    _sync_views(out, manifest)
    _collect_garbage(out, manifest)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _current_runs(manifest: pa.Table | None) -> dict[date, str]:
    """Snapshot date -> the run whose tables are that date's snapshot (the last published)."""
    current: dict[date, str] = {}
    if manifest is None:
        return current
    for row in manifest.select(["run_id", "snapshot_date", "published"]).to_pylist():
        if row["published"]:
            current[row["snapshot_date"]] = row["run_id"]
    return current


def _partition(out: Path, table: str, snapshot_date: date) -> Path:
    return out / table / f"{PARTITION_PREFIX}{snapshot_date.isoformat()}"


def _sync_views(out: Path, manifest: pa.Table) -> None:
    """Make every Hive partition a link to the run file the manifest publishes for its
    date, and remove partitions of dates that no run published."""
    current = _current_runs(manifest)
    staging = out / STAGING_DIR
    staging.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=staging, prefix="views-"))
    try:
        for table in TABLE_SCHEMAS:
            for snapshot_date, run_id in sorted(current.items()):
                source = out / RUNS_DIR / run_id / f"{table}.parquet"
                if source.is_file():
                    _install(source, _partition(out, table, snapshot_date), work)
            table_dir = out / table
            if not table_dir.is_dir():
                continue
            for partition in sorted(table_dir.iterdir()):
                taken = _partition_date(partition.name)
                if taken is not None and taken not in current:
                    shutil.rmtree(partition)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _partition_date(name: str) -> date | None:
    if not name.startswith(PARTITION_PREFIX):
        return None
    try:
        return date.fromisoformat(name.removeprefix(PARTITION_PREFIX))
    except ValueError:
        return None


def _install(source: Path, partition: Path, work: Path) -> None:
    """Make `partition/part-0.parquet` the file `source`, in one atomic rename."""
    target = partition / PART_FILE
    if target.is_file() and _same_file(source, target):
        return
    tmp = work / f"{partition.parent.name}-{partition.name}"
    tmp.mkdir()
    try:
        os.link(source, tmp / PART_FILE)
    except OSError:  # a filesystem without hard links: a copy does, at twice the space
        shutil.copyfile(source, tmp / PART_FILE)
        with (tmp / PART_FILE).open("rb") as handle:
            os.fsync(handle.fileno())
    if partition.is_dir():
        os.replace(tmp / PART_FILE, target)
    else:
        partition.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, partition)
    _fsync_dir(partition.parent)


def _same_file(a: Path, b: Path) -> bool:
    """One inode, or (where the partition had to be a copy) the same bytes."""
    if os.path.samefile(a, b):
        return True
    if a.stat().st_size != b.stat().st_size:
        return False
    with a.open("rb") as left, b.open("rb") as right:
        while chunk := left.read(1 << 20):
            if chunk != right.read(len(chunk)):
                return False
    return True


def _collect_garbage(out: Path, manifest: pa.Table) -> None:
    """Delete run files no date publishes: replaced reruns and runs killed before commit."""
    runs = out / RUNS_DIR
    if not runs.is_dir():
        return
    keep = set(_current_runs(manifest).values())
    for run in runs.iterdir():
        if run.name not in keep:
            _remove(run)


# --------------------------------------------------------------------------- reading


def _read_manifest(out: Path) -> pa.Table | None:
    path = out / MANIFEST_FILE
    try:
        # Read whole, then parsed: given a path, pyarrow may open a file more than once,
        # and a manifest replaced in between would mix two files.
        manifest = pq.read_table(pa.BufferReader(path.read_bytes()))
    except FileNotFoundError:
        return None
    except (OSError, pa.ArrowException) as exc:
        raise SnapshotError(f"cannot read the manifest {path}: {exc}") from exc
    if not manifest.schema.equals(MANIFEST_SCHEMA, check_metadata=False):
        raise SnapshotError(
            f"{path} does not have the manifest schema of schema version {SCHEMA_VERSION}"
        )
    return manifest


def read_manifest(out_dir: Path | str = DEFAULT_OUT_DIR) -> pd.DataFrame:
    """Every run recorded under `out_dir`, oldest first (empty when none), with a derived
    `current` column: True for the run whose tables are its date's snapshot."""
    manifest = _read_manifest(Path(out_dir))
    if manifest is None:
        manifest = MANIFEST_SCHEMA.empty_table()
    current = set(_current_runs(manifest).values())
    flags = [run_id in current for run_id in manifest.column("run_id").to_pylist()]
    manifest = manifest.append_column("current", pa.array(flags, pa.bool_()))
    frame: pd.DataFrame = manifest.to_pandas(types_mapper=pd.ArrowDtype)
    return frame


def _pick(
    manifest: pa.Table | None, snapshot_date: date | None, before: date | None
) -> tuple[date, str] | None:
    """(date, run) of the snapshot of `snapshot_date`, else the latest one dated before
    `before` (or the latest of all); None when there is no such snapshot."""
    current = _current_runs(manifest)
    if snapshot_date is not None:
        run_id = current.get(snapshot_date)
        return None if run_id is None else (snapshot_date, run_id)
    eligible = [d for d in current if before is None or d < before]
    if not eligible:
        return None
    latest = max(eligible)
    return latest, current[latest]


def latest_snapshot(out_dir: Path | str = DEFAULT_OUT_DIR) -> PublishedSnapshot | None:
    """The published snapshot with the latest date, or None when there is none."""
    out = Path(out_dir)
    manifest = _read_manifest(out)
    picked = _pick(manifest, None, None)
    if manifest is None or picked is None:
        return None
    taken, run_id = picked
    row = next(r for r in manifest.to_pylist() if r["run_id"] == run_id)
    return PublishedSnapshot(
        run_id=run_id,
        snapshot_date=taken,
        status=row["status"],
        finished_at=row["finished_at"],
        files={t: out / RUNS_DIR / run_id / f"{t}.parquet" for t in TABLE_SCHEMAS},
        rows={t: row[f"{t}_rows"] for t in TABLE_SCHEMAS},
    )


def previous_tables(
    out_dir: Path | str = DEFAULT_OUT_DIR, before: date | None = None
) -> dict[str, pa.Table] | None:
    """Every table of the latest published snapshot dated before `before` (any date when
    None), or None when there is none. Each table's schema metadata carries its
    `snapshot_date`. A run passes `before=snapshot_date`, so that a rerun of a night is
    built against the same baseline as the run it replaces. Tables are returned as
    written, even by an older schema version (`build_tables` reads missing columns as
    empty)."""
    out = Path(out_dir)
    for attempt in range(_LOAD_ATTEMPTS):
        picked = _pick(_read_manifest(out), None, before)
        if picked is None:
            return None
        taken, run_id = picked
        try:
            return _read_baseline(out, run_id, taken)
        except FileNotFoundError:
            if attempt + 1 == _LOAD_ATTEMPTS:
                raise
            time.sleep(_RETRY_SECONDS)
    raise AssertionError("unreachable")  # pragma: no cover


def _read_baseline(out: Path, run_id: str, taken: date) -> dict[str, pa.Table]:
    stamp = {b"snapshot_date": taken.isoformat().encode()}
    return {
        name: _read_run_table(out, run_id, name, strict=False).replace_schema_metadata(
            {**TABLE_SCHEMAS[name].metadata, **stamp}
        )
        for name in TABLE_SCHEMAS
    }


def load(
    table: str, out_dir: Path | str = DEFAULT_OUT_DIR, snapshot_date: date | str | None = None
) -> pd.DataFrame:
    """One table of the latest published snapshot (or of `snapshot_date`) as a DataFrame.

    Columns keep their declared Arrow types (`pd.ArrowDtype`): nullable integers stay
    integers, timestamps are UTC, list columns hold Python lists. The snapshot's date
    and run are in `df.attrs["snapshot_date"]` and `df.attrs["run_id"]`. Raises
    `FileNotFoundError` when nothing was ever published under `out_dir`, `SnapshotError`
    (naming the published dates) when `snapshot_date` was not.
    """
    if table not in TABLE_SCHEMAS:
        raise ValueError(f"no table {table!r}; tables: {', '.join(TABLE_SCHEMAS)}")
    out = Path(out_dir)
    wanted = _as_date(snapshot_date) if snapshot_date is not None else None
    for attempt in range(_LOAD_ATTEMPTS):
        manifest = _read_manifest(out)
        if manifest is None:
            raise FileNotFoundError(
                f"no snapshot under {out}: {out / MANIFEST_FILE} does not exist"
            )
        picked = _pick(manifest, wanted, None)
        if picked is None:
            dates = ", ".join(d.isoformat() for d in sorted(_current_runs(manifest))) or "none"
            asked = f"of {wanted.isoformat()} " if wanted else ""
            raise SnapshotError(f"no snapshot {asked}under {out} (published: {dates})")
        taken, run_id = picked
        try:
            data = _read_run_table(out, run_id, table)
        except FileNotFoundError:
            if attempt + 1 == _LOAD_ATTEMPTS:
                raise
            time.sleep(_RETRY_SECONDS)
            continue
        frame: pd.DataFrame = data.to_pandas(types_mapper=pd.ArrowDtype)
        frame.attrs.update(snapshot_date=taken.isoformat(), run_id=run_id)
        return frame
    raise AssertionError("unreachable")  # pragma: no cover


def _as_date(value: date | str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"snapshot_date {value!r}: expected YYYY-MM-DD") from None


def _read_run_table(out: Path, run_id: str, table: str, *, strict: bool = True) -> pa.Table:
    """One published table. `strict`: with exactly its declared schema, else
    `SnapshotError` (a night written by another schema version); a baseline for
    `build_tables` need not be, since missing columns read as empty there."""
    # Run files are never replaced, only deleted (then a reader retries), so opening the
    # path more than once cannot mix two files.
    path = out / RUNS_DIR / run_id / f"{table}.parquet"
    data = pq.read_table(path)
    if strict and not data.schema.equals(TABLE_SCHEMAS[table], check_metadata=False):
        written = (data.schema.metadata or {}).get(b"schema_version", b"?").decode()
        raise SnapshotError(
            f"{path}: written with schema version {written}, which differs from the "
            f"{table} schema of version {SCHEMA_VERSION} this pipeline reads"
        )
    return data
