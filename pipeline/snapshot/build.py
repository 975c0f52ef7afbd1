"""Building a snapshot (pure): one night's links and resolver records in, every table out.

`build_tables` takes the links as extracted and what the resolvers answered
(`SnapshotInputs`), with the published snapshots it is compared with: `previous`, the
latest night before this one (lineage dates, the last-known-good values of lookups that
failed, the baseline of the `changes` table), and `replaced`, the same night as published
earlier (a rerun replaces it), from which a restricted run keeps what it did not ask. It
returns one pyarrow table per declared schema, the links table included, rows sorted by
key. No disk, no clock: `store.publish` writes the tables.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.arrow_memory import release_unused
from pipeline.links.documents import Link
from pipeline.records import (
    GOOD,
    STATUSES,
    Document,
    DocumentSource,
    GithubRepoRecord,
    HubRepoRecord,
    LinkedModel,
    PaperPageRecord,
    PaperRecord,
    RepoRef,
    RepoType,
    ResolvedBy,
    Status,
    TitleMatch,
    as_utc,
    size_label,
)
from pipeline.resolve.titles import title_key
from pipeline.snapshot.by_document import whole_documents
from pipeline.snapshot.code_repos import code_repos_column
from pipeline.snapshot.first_listed import (
    Listing,
    backfill_facts,
    first_listed_column,
    listing_inputs,
    previous_first_listed,
)
from pipeline.snapshot.lineage import COLUMNS as LINEAGE_COLUMNS
from pipeline.snapshot.lineage import Lineage, LineageBuilder
from pipeline.snapshot.links_file import LinksFile
from pipeline.snapshot.listings import document_rows, listing_changes, with_column
from pipeline.snapshot.mentions import COLUMNS as MENTIONS_COLUMNS
from pipeline.snapshot.mentions import Mentions
from pipeline.snapshot.schemas import (
    LINKS_SCHEMA,
    TABLE_KEYS,
    TABLE_SCHEMAS,
    plain_type,
)

log = logging.getLogger(__name__)

Row = dict[str, Any]


NOT_RESOLVED = "not resolved in this run"
"""Reason of an entity no resolver record speaks of although it was to be asked (its
resolver failed, or left it out)."""
NOT_ASKED = "not asked in this run"
"""Reason prefix of an entity a restricted run deliberately did not ask (`NotAsked`)."""
INVALID_ID = "invalid identifier, never sent"
"""Reason prefix of an entity whose identifier breaks its naming rules."""

_STATUS_RANK: dict[str, int] = {"ok": 0, "stale": 1, "not_found": 2, "error": 3}
"""Winner order among records of one entity: an answer beats a stale one beats a
definite absence beats no answer."""

_ANSWERED: frozenset[str] = GOOD | {"not_found"}
"""Statuses of a lookup that got an answer (tonight or earlier)."""

_OTHER_REPO_TYPES: tuple[RepoType, ...] = ("dataset", "space", "collection")


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class NotAsked:
    """What a restricted run (`--limit`, a subset of `--resolvers`) deliberately did not
    ask, per lookup. Those entities keep the outcome of the night this run replaces (else
    of the previous night): good values as `stale`, a `not_found` answer as such, and are
    `error` when neither night had an answer; the reason says they were not asked. An
    entity with a record tonight is answered, whatever is listed here (a collection's
    lookup answers for its items, for one)."""

    arxiv: Set[str] = frozenset()
    """arXiv IDs (as `entities_of` lists them) not looked up by ID."""
    arxiv_titles: Set[str] = frozenset()
    """Link texts (as `title_candidates` lists them) not searched by title. Links whose
    text led to a paper keep leading to it, and that paper is not asked either."""
    hub: Set[RepoRef] = frozenset()
    """Hub repos (as `entities_of` lists them) not looked up."""
    paper_pages: Set[str] = frozenset()
    """arXiv IDs whose paper page was not looked up (papers found by title included)."""
    github_repos: Set[str] = frozenset()
    """GitHub repositories (`owner/name` as linked) not looked up."""
    restriction: str = "restricted run"
    """What restricted the run, for the reason: `restricted run: --resolvers arxiv hub`."""

    @property
    def reason(self) -> str:
        return f"{NOT_ASKED} ({self.restriction})"


@dataclass(frozen=True)
class SnapshotInputs:
    """Everything a snapshot is built from: one run's links and resolver records."""

    links: Sequence[Link] | pa.Table | LinksFile
    """Every link occurrence, as extracted: `Link`s, or the links table extraction's
    record batches make (`links_table`, or on disk: `LinksFile`). `build_tables` applies
    the title matches (a link that already leads to a paper keeps it)."""
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
    not_asked: NotAsked = NotAsked()
    """What the run deliberately did not ask (empty for a full run)."""
    document_sources: Mapping[str, DocumentSource] = field(default_factory=dict)
    """Document name -> where it came from (GitHub, its commit, its title) for the
    `documents` table; a document missing here is a local file."""
    first_listed_backfill: Mapping[Listing, date] = field(default_factory=dict)
    """(document, entity ID) -> since when the document's history lists it (`--backfill`)."""
    github_repos: Mapping[str, GithubRepoRecord] = field(default_factory=dict)
    """`GithubRepoResolver.resolve_repos`: repo as linked (`owner/name`) -> record."""


# --------------------------------------------------------------------------- building


def build_tables(
    inputs: SnapshotInputs,
    *,
    snapshot_date: date,
    previous: Mapping[str, pa.Table] | None = None,
    replaced: Mapping[str, pa.Table] | None = None,
) -> dict[str, pa.Table]:
    """Every table of one snapshot, each with its declared schema, rows sorted by key.

    `previous` is the latest published snapshot before this night
    (`read.previous_tables(out_dir, before=snapshot_date)`); it supplies `first_seen`,
    the last-known-good values of entities whose lookup failed tonight, and the baseline
    of the `changes` table. `replaced` is this night's published snapshot, when this run
    is a rerun (`read.replaced_tables(out_dir, snapshot_date)`); only what
    `inputs.not_asked` lists is taken from it, so a full rerun builds the same tables
    as the run it replaces. Raises `ValueError` naming the record for inconsistent inputs.
    """
    given = (
        inputs.links
        if isinstance(inputs.links, pa.Table | LinksFile)
        else links_table(inputs.links)
    )
    _check_inputs(inputs, given)
    base = _Baseline(_Previous.of(previous), _Previous.of(replaced), inputs.not_asked)
    table = with_title_matches(given, _title_matches(inputs.title_matches, base))
    # One pass over the links, whole documents at a time: where each entity is named
    # (lineage) and what the links say of it (mentions).
    where, said = LineageBuilder(), Mentions()
    columns = list(dict.fromkeys([*LINEAGE_COLUMNS, *MENTIONS_COLUMNS]))
    batches = table if isinstance(table, pa.Table) else table.to_batches()
    for rows in whole_documents(batches, columns):
        where.add(rows)
        said.add(rows)
    release_unused()

    hub = _HubEntities.collect(said.hub_names, inputs.repos, base)
    lineage = where.finish(
        {(ref[0], ref[1]): (ref[0], repo_id) for ref, repo_id in hub.canonical.items()}
    )
    del where
    release_unused()
    repos = _repo_rows(hub, base, snapshot_date)
    if hub.add_collection_items(repos, base):
        repos = _repo_rows(hub, base, snapshot_date)  # items may be datasets or spaces
    models = [
        _hub_row(entity, _MODEL_LOOKUP, _model_values, "models", key[1:], base, snapshot_date)
        for key, entity in hub.sorted_items(("model",))
    ]
    _add_collections(models, repos, hub)
    _add_families(models)
    # Each stage's Python rows are let go as soon as its table is made: at scale they, not
    # the tables, are what a night's memory is spent on.
    del hub
    tables = {"links": table}
    tables["papers"] = _table(
        "papers", _paper_rows(said, inputs, base, models, lineage, snapshot_date)
    )
    tables["models"] = _table("models", models)
    tables["repos"] = _table("repos", repos)
    del models, repos
    release_unused()
    tables["github_repos"] = _table(
        "github_repos", _github_rows(inputs, base, said.papers_of_repo(), lineage, snapshot_date)
    )
    del said
    for name in _LINEAGE_TABLES:
        tables[name] = _with_lineage(name, tables[name], lineage)
    del lineage
    tables["changes"] = _table("changes", _change_rows(tables, base.previous))
    release_unused()
    _add_listings(tables, inputs, previous, base.previous.snapshot_date, snapshot_date)
    release_unused()
    return tables


def _add_listings(
    tables: dict[str, pa.Table],
    inputs: SnapshotInputs,
    previous: Mapping[str, pa.Table] | None,
    previous_date: date | None,
    snapshot_date: date,
) -> None:
    """`first_listed`, the `documents` table and the `listed`/`unlisted` changes: built
    at table level (`snapshot.first_listed`, `snapshot.listings`)."""
    links, previous_links = listing_inputs(tables["links"], previous, inputs.documents)
    facts = previous_first_listed(previous_links, previous_date)
    backfill = backfill_facts(inputs.first_listed_backfill)

    def stamped(batch: Any) -> Any:
        # From (document, entity_id): a links file is stamped as it is read.
        column = first_listed_column(
            batch.column("document"), batch.column("entity_id"), facts, snapshot_date, backfill
        )
        return with_column(batch, "first_listed", column)

    tables["links"] = links.mapped(stamped) if isinstance(links, LinksFile) else stamped(links)
    papers = tables["papers"]
    tables["papers"] = with_column(papers, "code_repos", code_repos_column(papers))
    listed = listing_changes(links, previous_links, previous_date)
    if listed:
        tables["changes"] = pa.concat_tables([tables["changes"], _table("changes", listed)])
    tables["documents"] = _table(
        "documents", document_rows(inputs.documents, inputs.document_sources)
    )


def _title_matches(found: Mapping[str, TitleMatch], base: _Baseline) -> dict[str, str]:
    """Link text -> arXiv ID: tonight's good title matches; for a title whose search
    failed tonight (or was not run), the paper the previous snapshot reached by it, so
    that the paper keeps its row; for a title deliberately not searched, the paper the
    replaced (else the previous) snapshot reached by it. A title arXiv now finds no paper
    for is not carried."""
    not_searched = base.not_asked.arxiv_titles
    matches = {
        text: match.arxiv_id
        for text, match in found.items()
        if match.arxiv_id and match.status in GOOD
    }
    for text, arxiv_id in base.previous.title_queries():
        match = found.get(text)
        if text in matches or (match is None and text in not_searched):
            continue
        if match is None or match.status == "error":
            matches[text] = arxiv_id
    if not_searched:
        for source in (base.replaced, base.previous):
            for text, arxiv_id in source.title_queries():
                if text in not_searched and text not in found:
                    matches.setdefault(text, arxiv_id)
    return matches


def _check_inputs(inputs: SnapshotInputs, links: pa.Table | LinksFile) -> None:
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
    if not inputs.documents:
        return
    names = pa.array(sorted({document.name for document in inputs.documents}), pa.string())
    for batch in links.to_batches():
        stray = pc.invert(pc.is_in(batch.column("document"), value_set=names))
        if pc.any(stray).as_py():
            link = batch.filter(stray).slice(0, 1).to_pylist()[0]
            raise ValueError(
                f"link {link['url']!r} (line {link['line']}) comes from "
                f"{link['document']!r}, which is not among the documents read"
            )


def _check_status(status: str, what: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"{what}: status {status!r} is not one of {', '.join(STATUSES)}")


def _unique(values: Iterable[str]) -> list[str]:
    """Distinct values in first-seen order (for lists whose order means something)."""
    return list(dict.fromkeys(values))


class _Previous:
    """A published snapshot's rows by key, with every current column present (empty when
    there is no such snapshot).

    The tables stay Arrow, cut to the columns a night reads (`_previous_columns`); a row
    becomes Python only when asked for: a night at scale reads most previous rows only
    to find them unchanged, and as Python dicts they would cost several times the
    table."""

    def __init__(self, tables: dict[str, pa.Table], taken: date | None) -> None:
        self._tables = tables
        self._positions: dict[str, dict[tuple[Any, ...], int]] = {}
        self._first_seen: dict[str, list[date | None]] = {}
        self.snapshot_date = taken

    @classmethod
    def of(cls, tables: Mapping[str, pa.Table] | None) -> _Previous:
        kept: dict[str, pa.Table] = {}
        taken: date | None = None
        if tables is None:
            return cls(kept, taken)
        # Only the tables it keeps are asked for: a `read.Baseline` reads a table when
        # asked, and the previous links are left to the listing stage.
        for name in TABLE_SCHEMAS:
            if name in ("links", "changes") or name not in tables:
                continue
            table = tables[name]
            used = _previous_columns(name)
            kept[name] = table.select([n for n in table.column_names if n in used])
            stamp = (table.schema.metadata or {}).get(b"snapshot_date")
            if stamp:
                taken = date.fromisoformat(stamp.decode())
        return cls(kept, taken)

    def _index(self, table: str) -> dict[tuple[Any, ...], int]:
        """Key -> row position, made the first time a table is asked."""
        if table not in self._positions:
            data = self._tables.get(table)
            self._positions[table] = (
                {}
                if data is None
                else {
                    key: position
                    for position, key in enumerate(
                        zip(*(data.column(k).to_pylist() for k in TABLE_KEYS[table]), strict=True)
                    )
                }
            )
        return self._positions[table]

    def _complete(self, table: str, row: Row) -> Row:
        """`row` with every column it is read for, empty where an older snapshot had none."""
        used = _previous_columns(table)
        return {**{f.name: _empty(f) for f in TABLE_SCHEMAS[table] if f.name in used}, **row}

    def row(self, table: str, key: tuple[Any, ...]) -> Row | None:
        position = self._index(table).get(key)
        if position is None:
            return None
        return self._complete(table, self._tables[table].slice(position, 1).to_pylist()[0])

    def rows_at(self, table: str, keys: Sequence[tuple[Any, ...]]) -> list[Row | None]:
        """The rows of `keys` (None for a key the snapshot has not), taken at once."""
        index = self._index(table)
        positions = [index.get(key) for key in keys]
        found = [p for p in positions if p is not None]
        if not found:
            return [None] * len(keys)
        taken = iter(self._tables[table].take(pa.array(found, pa.int64())).to_pylist())
        return [None if p is None else self._complete(table, next(taken)) for p in positions]

    def first_seen(self, table: str, key: tuple[Any, ...]) -> date | None:
        """When the snapshot first saw the entity of `key` (None: it did not)."""
        if table not in self._first_seen:
            self._first_seen[table] = self.column(table, "first_seen")
        position = self._index(table).get(key)
        return None if position is None else self._first_seen[table][position]

    def keys(self, table: str) -> Iterable[tuple[Any, ...]]:
        return self._index(table).keys()

    def column(self, table: str, name: str) -> list[Any]:
        """One column's values in row order (empty for a column an older snapshot lacks)."""
        data = self._tables.get(table)
        if data is None:
            return []
        if name not in data.column_names:
            return [_empty(TABLE_SCHEMAS[table].field(name))] * data.num_rows
        values: list[Any] = data.column(name).to_pylist()
        return values

    def aliases(self) -> dict[RepoRef, str]:
        """(type, name as written) -> canonical ID, from the snapshot's good rows: how
        tonight places a renamed repo whose lookup failed under its known name."""
        found: dict[RepoRef, str] = {}
        for table in ("models", "repos"):
            statuses = self.column(table, "status")
            types = self.column(table, "repo_type") if table == "repos" else None
            for i, (repo_id, written_as) in enumerate(
                zip(self.column(table, "repo_id"), self.column(table, "written_as"), strict=True)
            ):
                if statuses[i] not in GOOD:
                    continue
                repo_type: RepoType = types[i] if types is not None else "model"
                for written in written_as:
                    found[(repo_type, written)] = repo_id
        return found

    def title_queries(self) -> Iterator[tuple[str, str]]:
        """(link text, arXiv ID) of every paper the snapshot reached by title, in key order."""
        for arxiv_id, texts in zip(
            self.column("papers", "arxiv_id"), self.column("papers", "title_queries"), strict=True
        ):
            for text in texts:
                yield text, arxiv_id


LISTING_COLUMNS = ("document", "kind", "entity_id", "first_listed")
"""The links columns a night reads of its baseline when every document was read tonight
(`first_listed`, the listing changes): the rest of a links table (URLs, texts,
annotations) is most of its size, and is needed only to carry an unreadable document's
rows forward."""


def baseline_columns(*, whole_links: bool = False) -> dict[str, list[str]]:
    """Per table, the columns `build_tables` reads of a previous snapshot
    (`read.previous_tables(columns=...)`): of links, `LISTING_COLUMNS` unless
    `whole_links` (a document could not be read tonight, and its rows are carried);
    nothing of `changes` and `documents`."""
    columns = {name: sorted(_previous_columns(name)) for name in _TRACKED}
    columns["changes"] = columns["documents"] = []
    if not whole_links:
        columns["links"] = list(LISTING_COLUMNS)
    return columns


def _previous_columns(table: str) -> frozenset[str]:
    """The columns of a published table a later night reads: keys, the values a failed
    lookup carries forward, what `changes` compares, and what names and dates an entity.
    The rest (headings, counts, `code_repos`) would only cost memory: a night at scale
    holds the previous night's rows as Python objects."""
    lookups = {
        "papers": (_ARXIV_LOOKUP, _PAGE_LOOKUP),
        "models": (_MODEL_LOOKUP,),
        "repos": (_REPO_LOOKUP,),
        "github_repos": (_GITHUB_LOOKUP,),
    }.get(table, ())
    return frozenset(
        {
            *TABLE_KEYS[table],
            *_TRACKED.get(table, ()),
            *(c for lookup in lookups for c in (lookup.status, lookup.reason, lookup.fetched_at)),
            *(c for lookup in lookups for c in lookup.columns),
            "first_seen",
            "status",
            "written_as",
            "repo_id",
            "repo_type",
            "title_queries",
        }
    )


class _Baseline:
    """The published snapshots a night is built against, and what it did not ask."""

    def __init__(self, previous: _Previous, replaced: _Previous, not_asked: NotAsked) -> None:
        self.previous = previous
        """The latest night before this one: lineage, last known good, changes."""
        self.replaced = replaced
        """This night as published before: the last good values of what was not asked."""
        self.not_asked = not_asked
        self._aliases = previous.aliases()
        self._kept_aliases = {**self._aliases, **replaced.aliases()}

    def alias(self, ref: RepoRef, *, asked: bool) -> str:
        """The canonical ID of a repo no answer names tonight: the one the previous
        snapshot knows it under (the replaced one's first, when it was not asked)."""
        return (self._aliases if asked else self._kept_aliases).get(ref, ref[1])

    def last_known(
        self, table: str, key: tuple[Any, ...], lookup: _Lookup, *, asked: bool
    ) -> Row | None:
        """The row whose outcome of `lookup` a row without an answer tonight carries.
        A lookup that failed: the previous snapshot's row, if its values are good. A
        lookup not asked: the replaced snapshot's row, else the previous one's, if it
        has good values or says the entity does not exist (that answer is kept too)."""
        sources = (self.previous,) if asked else (self.replaced, self.previous)
        known = GOOD if asked else _ANSWERED
        for source in sources:
            row = source.row(table, key)
            if row is not None and row.get(lookup.status) in known:
                return row
        return None

    def carry_forward(
        self, row: Row, table: str, key: tuple[Any, ...], lookup: _Lookup, *, asked: bool
    ) -> None:
        """`_carry_forward` from `last_known`, looked up only for a row without an answer."""
        if row[lookup.status] == "error":
            _carry_forward(
                row, self.last_known(table, key, lookup, asked=asked), lookup, asked=asked
            )


def _empty(f: pa.Field) -> Any:
    """The value of a column an older snapshot did not have."""
    return [] if pa.types.is_list(f.type) and not f.nullable else None


def _seen(seen_before: date | None, snapshot_date: date) -> Row:
    """`first_seen` and `last_seen` of an entity tonight's snapshot lists. The rest of its
    lineage (documents, headings, mentions) is set by column (`_with_lineage`)."""
    first_seen = snapshot_date if seen_before is None else min(seen_before, snapshot_date)
    return {"first_seen": first_seen, "last_seen": snapshot_date, "mention_count": 0}


_LINEAGE_TABLES = ("papers", "models", "repos", "github_repos")


def _with_lineage(name: str, table: pa.Table, lineage: Lineage) -> pa.Table:
    """`table` with its `documents`, `mention_count` and `headings` from `lineage`."""
    keys = [_entity_of(name, row) for row in table.select(TABLE_KEYS[name]).to_pylist()]
    for column, values in lineage.columns(keys).items():
        table = with_column(table, column, values)
    return table


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
        "params_stored",
        "base_model",
        "base_model_relation",
        "pipeline_tag",
        "library_name",
    ),
)
_REPO_LOOKUP = _Lookup(
    "status", "status_reason", "data_fetched_at", (*_HUB_COMMON, "title", "sdk", "items")
)


def _carry_forward(row: Row, last: Row | None, lookup: _Lookup, *, asked: bool) -> None:
    """Last known good: a lookup that failed, or was not asked (`asked` False), keeps the
    good values of `last` (`_Baseline.last_known`), as stale; one not asked keeps a
    `not_found` answer as such."""
    if row[lookup.status] != "error" or last is None:
        return
    fetched: datetime | None = last.get(lookup.fetched_at)
    when = fetched.isoformat() if fetched else "an unknown time"
    why = row[lookup.reason]
    if asked:
        why = f"lookup failed in this run ({why or 'no reason given'})"
    row[lookup.fetched_at] = fetched
    if last[lookup.status] == "not_found":
        row[lookup.status] = "not_found"
        row[lookup.reason] = (
            f"{why}; the last answer, fetched at {when}: {last[lookup.reason] or 'not found'}"
        )
        return
    for column in lookup.columns:
        row[column] = last[column]
    row[lookup.status] = "stale"
    row[lookup.reason] = f"{why}; values are the last good ones, fetched at {when}"


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
            lookup.fetched_at: as_utc(answer.data_fetched_at, what),
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
    invalid: str | None = None
    """Why the identifier as written is invalid ('' when the link gives no reason)."""
    unresolved: str = NOT_RESOLVED
    """The reason of a row no record speaks of."""
    asked: bool = True
    """False when the run deliberately did not ask about it (`NotAsked`)."""

    def winner(self) -> HubRepoRecord | None:
        """The record the row is made of: best status, then newest data, then the record
        asked under the canonical name, then the first name alphabetically."""
        if not self.records:
            return None

        def rank(record: HubRepoRecord) -> tuple[int, float, bool, str]:
            fetched = as_utc(record.data_fetched_at, f"{record.repo_type} {record.requested_id}")
            age = -fetched.timestamp() if fetched else math.inf
            canonical = record.requested_id == record.repo_id
            return (_STATUS_RANK[record.status], age, not canonical, record.requested_id)

        return min(self.records, key=rank)

    def mark_not_asked(self, reason: str) -> None:
        self.asked = False
        self.unresolved = reason


class _HubEntities:
    """Hub repos grouped by canonical ID: names written differently, through a mirror or
    under an old name that redirected, land on one entity."""

    def __init__(self) -> None:
        self.entities: dict[tuple[RepoType, str], _HubEntity] = {}
        self.canonical: dict[RepoRef, str] = {}

    @classmethod
    def collect(
        cls,
        written: Mapping[RepoRef, str | None],
        records: Mapping[RepoRef, HubRepoRecord],
        base: _Baseline,
    ) -> _HubEntities:
        """The entities of tonight's answers and of the names the links write
        (`Mentions.hub_names`: name -> why it is invalid, None when valid)."""
        found = cls()
        not_asked = base.not_asked.hub

        def canonical(ref: RepoRef) -> str:
            record = records.get(ref)
            # Tonight's answer names the canonical ID; with no answer, the last snapshot's.
            if record is not None and (
                record.status != "error" or record.repo_id != record.requested_id
            ):
                return record.repo_id
            return base.alias(ref, asked=record is not None or ref not in not_asked)

        for ref in sorted(records):
            record = records[ref]
            entity = found._entity(ref, canonical(ref))
            entity.records.append(record)
            entity.written_as.add(record.requested_id)
        for ref in sorted(written):
            entity = found._entity(ref, canonical(ref))
            entity.written_as.add(ref[1])
            problem = written[ref]
            if problem is not None:
                entity.invalid = problem
        if not_asked:
            for entity in found.entities.values():
                names = {(entity.repo_type, name) for name in entity.written_as}
                if not entity.records and names <= not_asked:
                    entity.mark_not_asked(base.not_asked.reason)
        return found

    def add_collection_items(self, repos: Sequence[Row], base: _Baseline) -> bool:
        """Give a row to every model, dataset and space of a good collection that no record
        speaks of: the collection's lookup failed tonight, or was not asked (its row is
        the last good one), so its items were not asked, and they keep their rows as the
        collection does. True when an entity was added."""
        added = False
        for repo in repos:
            if repo["repo_type"] != "collection" or repo["status"] not in GOOD:
                continue
            collection = self.entities[("collection", repo["repo_id"])]
            for item in repo["items"]:
                repo_type = _COLLECTION_ITEM_TYPES.get(item["item_type"])
                ref: RepoRef | None = (repo_type, item["item_id"]) if repo_type else None
                if ref is None or not ref[1] or ref in self.canonical:
                    continue
                entity = self._entity(ref, base.alias(ref, asked=collection.asked))
                entity.written_as.add(ref[1])
                if collection.asked:
                    entity.unresolved = (
                        f"{NOT_RESOLVED}: an item of collection {repo['repo_id']}, "
                        "whose items could not be looked up"
                    )
                else:
                    entity.mark_not_asked(base.not_asked.reason)
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


def _repo_rows(hub: _HubEntities, base: _Baseline, snapshot_date: date) -> list[Row]:
    return [
        _hub_row(entity, _REPO_LOOKUP, _repo_values, "repos", key, base, snapshot_date)
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
        "created_at": as_utc(record.created_at, f"{what} created_at"),
        "last_modified": as_utc(record.last_modified, f"{what} last_modified"),
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
        "params_stored": record.params_stored,
        "base_model": record.base_model,
        "base_model_relation": record.base_model_relation,
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
    table: str,
    key: tuple[Any, ...],
    base: _Baseline,
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
    row.update(_seen(base.previous.first_seen(table, key), snapshot_date))
    base.carry_forward(row, table, key, lookup, asked=entity.asked)
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


def _add_families(models: list[Row]) -> None:
    """Each model's `family`: its base followed up to the root while the base is a model
    of this table (by any name it was written as, case-insensitively as on the Hub);
    the first base not in the table when the chain leaves it, spelt as it was first seen
    (cards write "Org/M" and "org/m" for one repo: one family, not two); the model itself
    without a base. A cycle of bases (cards can say anything) ends at its smallest repo ID."""
    by_name: dict[str, Row] = {}
    for model in models:
        for name in (model["repo_id"], *model["written_as"]):
            by_name.setdefault(name.lower(), model)
    outside: dict[str, str] = {}
    for model in models:
        chain = [model["repo_id"]]
        current = model
        family: str = model["repo_id"]
        while current.get("base_model"):
            base = by_name.get(current["base_model"].lower())
            if base is None:
                family = outside.setdefault(current["base_model"].lower(), current["base_model"])
                break
            if base["repo_id"] in chain:
                family = min(chain[chain.index(base["repo_id"]) :])
                break
            chain.append(base["repo_id"])
            current = base
            family = base["repo_id"]
        model["family"] = family


# ----- papers


def _paper_values(paper: PaperRecord) -> Row:
    what = f"paper {paper.arxiv_id}"
    return {
        "title": paper.title,
        "authors": list(paper.authors),
        "author_affiliations": [list(a) for a in paper.author_affiliations],
        "abstract": paper.abstract,
        "published": as_utc(paper.published, f"{what} published"),
        "updated": as_utc(paper.updated, f"{what} updated"),
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
    said: Mentions,
    inputs: SnapshotInputs,
    base: _Baseline,
    models: list[Row],
    lineage: Lineage,
    snapshot_date: date,
) -> Iterator[Row]:
    """The papers' rows in key order, made one at a time (`_table` converts them in
    batches): there is a row per paper the links name."""
    by_id, by_title, invalid = said.papers_by_id, said.papers_by_title, said.invalid_papers

    citing: dict[str, dict[str, Row]] = defaultdict(dict)
    sized: dict[str, Row] = {}
    for model in models:
        if model["status"] in GOOD:
            for arxiv_id in model["arxiv_ids"]:
                citing[arxiv_id][model["repo_id"]] = _citing_model(model)
            if model["params_total"] is not None:
                sized[model["repo_id"]] = model

    not_asked = inputs.not_asked
    keys = set(lineage.ids("paper")) | set(inputs.papers) | set(inputs.paper_pages)
    for arxiv_id in sorted(keys):
        paper = inputs.papers.get(arxiv_id)
        page = inputs.paper_pages.get(arxiv_id)
        row_key = (arxiv_id,)
        resolved_by: ResolvedBy | None = (
            "id" if arxiv_id in by_id else "title" if arxiv_id in by_title else None
        )
        row: Row = {
            "arxiv_id": arxiv_id,
            "resolved_by": resolved_by,
            "title_queries": sorted(by_title.get(arxiv_id, ())),
            "github_repos": sorted(said.repos_of_paper.get(arxiv_id, ())),
            "hf_models": [],
        }
        if paper is not None:
            row.update(_paper_values(paper))
        if page is not None:
            row.update(_page_values(page))
        bad = invalid.get(arxiv_id)
        texts = by_title.get(arxiv_id, set())
        # A paper only titles that were not searched lead to was not asked about either.
        unsearched = arxiv_id not in by_id and bool(texts) and texts <= not_asked.arxiv_titles
        unresolved = _title_search_failure(texts, inputs.title_matches)
        lookups: tuple[tuple[_Answer | None, str, _Lookup, Set[str]], ...] = (
            (paper, "paper", _ARXIV_LOOKUP, not_asked.arxiv),
            (page, "paper page", _PAGE_LOOKUP, not_asked.paper_pages),
        )
        for record, what, lookup, skipped in lookups:
            asked = record is not None or not (unsearched or arxiv_id in skipped)
            why = unresolved if asked else not_asked.reason
            row.update(_resolution(record, f"{what} {arxiv_id}", bad, lookup, why))
            base.carry_forward(row, "papers", row_key, lookup, asked=asked)
        row.update(_seen(base.previous.first_seen("papers", row_key), snapshot_date))
        # Models of our own models table are fresher and complete: they win over the
        # paper page's list for the same repo.
        merged = {m["repo_id"]: _logical_size(m, sized.get(m["repo_id"])) for m in row["hf_models"]}
        merged.update(citing.get(arxiv_id, {}))
        row["hf_models"] = [merged[repo_id] for repo_id in sorted(merged)]
        yield row


def _title_search_failure(texts: Iterable[str], matches: Mapping[str, TitleMatch]) -> str:
    """Why a paper reached by title has no record tonight: its title search failed (the
    paper is then known from the raw store or the previous snapshot only)."""
    for text in sorted(texts):
        match = matches.get(text)
        if match is not None and match.status in ("error", "stale") and match.status_reason:
            return f"{NOT_RESOLVED}: its title search failed ({match.status_reason})"
    return NOT_RESOLVED


def _logical_size(listed: Row, model: Row | None) -> Row:
    """A paper page's model, with the logical size of its row of `models` when it has one:
    the page's `numParameters` is the Hub's count as stored (packed weights as bytes)."""
    if model is None:
        return listed
    return {**listed, "params_total": model["params_total"], "size_label": model["size_label"]}


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
    inputs: SnapshotInputs,
    base: _Baseline,
    papers_of_repo: Mapping[str, set[str]],
    lineage: Lineage,
    snapshot_date: date,
) -> Iterator[Row]:
    """A row per GitHub repo the links name (`lineage.github_repos_named`)."""
    for repo in lineage.ids("github_repo"):
        record = inputs.github_repos.get(repo)
        row: Row = {
            "repo": repo,
            "url": f"https://github.com/{repo}",
            "arxiv_ids": sorted(papers_of_repo.get(repo, ())),
            **_seen(base.previous.first_seen("github_repos", (repo,)), snapshot_date),
        }
        if record is not None and record.status in GOOD:
            row.update(_github_values(record))
        asked = record is not None or repo not in inputs.not_asked.github_repos
        why = NOT_RESOLVED if asked else inputs.not_asked.reason
        row.update(_resolution(record, f"github repo {repo}", None, _GITHUB_LOOKUP, why))
        base.carry_forward(row, "github_repos", (repo,), _GITHUB_LOOKUP, asked=asked)
        yield row


_GITHUB_LOOKUP = _Lookup(
    "status",
    "status_reason",
    "data_fetched_at",
    (
        "full_name",
        "stars",
        "forks",
        "open_issues",
        "pushed_at",
        "archived",
        "license",
        "description",
        "topics",
        "language",
    ),
)


def _github_values(record: GithubRepoRecord) -> Row:
    return {
        "full_name": record.full_name,
        "stars": record.stars,
        "forks": record.forks,
        "open_issues": record.open_issues,
        "pushed_at": as_utc(record.pushed_at, f"github repo {record.repo} pushed_at"),
        "archived": record.archived,
        "license": record.license,
        "description": record.description,
        "topics": list(record.topics),
        "language": record.language,
    }


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
    "github_repos": (
        "arxiv_ids",
        "documents",
        "full_name",
        "archived",
        "license",
        "language",
        "status",
    ),
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
        keys = TABLE_KEYS[table]
        unseen = set(prev.keys(table))
        found: list[tuple[tuple[str, str], list[Row]]] = []
        # Tonight's rows and the previous rows of the same keys a batch at a time, only
        # the columns compared (none when there is no previous row): only the changes
        # are kept as Python objects.
        compared = [*keys, *(fields if unseen else ())]
        for batch in tables[table].select(list(dict.fromkeys(compared))).to_batches(4096):
            tonight = batch.to_pylist()
            batch_keys = [tuple(new[k] for k in keys) for new in tonight]
            befores = prev.rows_at(table, batch_keys) if unseen else [None] * len(tonight)
            for new, key, before_row in zip(tonight, batch_keys, befores, strict=True):
                entity = _entity_of(table, new)
                unseen.discard(key)
                base = {
                    "entity_type": entity[0],
                    "entity_id": entity[1],
                    "previous_snapshot_date": since,
                }
                if before_row is None:
                    found.append((entity, [{**base, "change": "added"}]))
                    continue
                changed = []
                for name in fields:
                    before, after = _as_text(before_row[name]), _as_text(new[name])
                    if before != after:
                        changed.append(
                            {
                                **base,
                                "change": "changed",
                                "field": name,
                                "old_value": before,
                                "new_value": after,
                            }
                        )
                if changed:
                    found.append((entity, changed))
        for key in unseen:
            entity = _entity_of(table, dict(zip(keys, key, strict=True)))
            base = {"entity_type": entity[0], "entity_id": entity[1]}
            found.append((entity, [{**base, "previous_snapshot_date": since, "change": "removed"}]))
        for _, entity_rows in sorted(found, key=lambda item: item[0]):
            rows.extend(entity_rows)
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


def _table(name: str, rows: Iterable[Row]) -> pa.Table:
    """Rows as a table of the declared schema; columns a row lacks (nothing known) are
    null, or empty for list columns that are never null. Converted `TABLE_BATCH_ROWS` at
    a time, so that a generator's rows are never all held at once."""
    schema = TABLE_SCHEMAS[name]
    defaults = {f.name: _empty(f) for f in schema}
    batches = []
    chunk: list[Row] = []
    for row in rows:
        chunk.append({**defaults, **row})
        if len(chunk) == TABLE_BATCH_ROWS:
            batches.append(pa.RecordBatch.from_pylist(chunk, schema=schema))
            chunk = []
    if chunk or not batches:
        batches.append(pa.RecordBatch.from_pylist(chunk, schema=schema))
    # Each batch made its own dictionaries: one shared set is what makes them pay.
    return pa.Table.from_batches(batches, schema=schema).unify_dictionaries()


TABLE_BATCH_ROWS = 4096


# ----- links


LINK_BATCH_ROWS = 8_192
"""Most links per record batch: one document's links are converted this many at a time,
so a document with a million links never has them all as Python objects at once. On a
20 MB document of 192,000 links, batches of 65,536 added 115 MB to extraction's peak,
batches of 8,192 add 21 MB; a list of most reading lists' links fits in one batch."""


def links_batch(links: Iterable[Link]) -> pa.RecordBatch:
    """Links as one record batch of the links table (repeated texts dictionary-encoded)."""
    columns: dict[str, list[object]] = {name: [] for name in LINKS_SCHEMA.names}
    for link in links:
        occ, ident = link.occurrence, link.identity
        row: dict[str, object] = {
            "document": occ.document,
            "position": occ.position,
            "line": occ.line,
            "heading_path": list(occ.heading_path),
            "item_date": occ.item_date,
            "link_text": occ.link_text,
            "annotation": occ.annotation,
            "is_main_link": occ.is_main_link,
            "syntax": occ.syntax,
            "url": occ.url,
            "url_normalized": ident.url_normalized,
            "host": ident.host,
            "kind": ident.kind,
            "entity_id": ident.entity_id,
            "arxiv_version": ident.arxiv_version,
            "asset_repo": ident.asset_repo,
            "id_valid": ident.valid,
            "id_problem": ident.problem,
            "resolved_arxiv_id": link.resolved_arxiv_id,
            "resolved_by": link.resolved_by,
            "first_listed": None,  # set at table level: snapshot.first_listed
        }
        for name in LINKS_SCHEMA.names:
            columns[name].append(row[name])
    return pa.RecordBatch.from_pydict(columns, schema=LINKS_SCHEMA)


def link_batches(links: Iterable[Link]) -> Iterator[pa.RecordBatch]:
    """`links` as record batches of at most `LINK_BATCH_ROWS` rows, in the order given."""
    chunk: list[Link] = []
    for link in links:
        chunk.append(link)
        if len(chunk) == LINK_BATCH_ROWS:
            yield links_batch(chunk)
            chunk = []
    if chunk:
        yield links_batch(chunk)


def links_table(links: Iterable[Link] | Iterable[pa.RecordBatch]) -> pa.Table:
    """The links table, in document order, with its declared schema: from links, or from
    the record batches extraction hands back (`link_batches`)."""
    items = iter(links)
    first = next(items, None)
    if first is None:
        return LINKS_SCHEMA.empty_table()
    if isinstance(first, pa.RecordBatch):
        batches = [first, *items]
    else:
        batches = list(link_batches(itertools.chain([first], items)))
    return in_key_order(pa.Table.from_batches(batches, schema=LINKS_SCHEMA))


def in_key_order(table: pa.Table) -> pa.Table:
    """The links sorted by (document, position): as given when they already are, as
    extraction gives them (sorting copies every column; the check reads two columns one
    batch at a time)."""
    if _sorted_by_key(table):
        return table
    # Sorted as plain text, then re-encoded in batches as `link_batches` makes them, so
    # that the same links given in any order make the same table, dictionaries included.
    plain = table.cast(_PLAIN_LINKS_SCHEMA)
    order = pc.sort_indices(plain, sort_keys=[("document", "ascending"), ("position", "ascending")])
    ordered = plain.take(order).combine_chunks()
    return pa.Table.from_batches(
        [batch.cast(LINKS_SCHEMA) for batch in ordered.to_batches(max_chunksize=LINK_BATCH_ROWS)],
        schema=LINKS_SCHEMA,
    )


_PLAIN_LINKS_SCHEMA = pa.schema(
    [f.with_type(plain_type(f.type)) for f in LINKS_SCHEMA], metadata=LINKS_SCHEMA.metadata
)


def _sorted_by_key(table: pa.Table) -> bool:
    last: tuple[str, int] | None = None
    for batch in table.select(["document", "position"]).to_batches():
        if batch.num_rows == 0:
            continue
        documents = batch.column(0).cast(pa.string())
        positions = batch.column(1)
        first = (documents[0].as_py(), positions[0].as_py())
        if last is not None and not last < first:
            return False
        if batch.num_rows > 1:
            before, after = documents.slice(0, batch.num_rows - 1), documents.slice(1)
            ahead = pc.or_(
                pc.less(before, after),
                pc.and_(
                    pc.equal(before, after),
                    pc.less(positions.slice(0, batch.num_rows - 1), positions.slice(1)),
                ),
            )
            if not pc.all(ahead).as_py():
                return False
        last = (documents[-1].as_py(), positions[-1].as_py())
    return True


def with_title_matches(
    links: pa.Table | LinksFile, matches: Mapping[str, str]
) -> pa.Table | LinksFile:
    """The links table with links whose text resolved to a paper by title (`matches`:
    link text -> arXiv ID) leading to that paper; links that already lead to one by ID
    keep it. Only the two resolution columns are rebuilt, batch by batch (for links on
    disk, as each batch is read)."""
    if not matches or links.num_rows == 0:
        return links
    if isinstance(links, LinksFile):
        return links.mapped(lambda batch: _title_matched(batch, matches))
    batches = [_title_matched(batch, matches) for batch in links.to_batches()]
    return pa.Table.from_batches(batches, schema=LINKS_SCHEMA)


def _title_matched(batch: pa.RecordBatch, matches: Mapping[str, str]) -> pa.RecordBatch:
    resolved = batch.column("resolved_arxiv_id")
    unresolved = pc.indices_nonzero(pc.is_null(resolved)).to_pylist()
    if not unresolved:
        return batch
    texts = batch.column("link_text").take(pa.array(unresolved, pa.int64())).to_pylist()
    found = {
        row: arxiv_id
        for row, text in zip(unresolved, texts, strict=True)
        if (arxiv_id := matches.get(title_key(text))) is not None
    }
    if not found:
        return batch
    ids = resolved.to_pylist()
    how = batch.column("resolved_by").to_pylist()
    for row, arxiv_id in found.items():
        ids[row], how[row] = arxiv_id, "title"
    columns = dict(zip(batch.schema.names, batch.columns, strict=True))
    columns["resolved_arxiv_id"] = pa.array(ids, LINKS_SCHEMA.field("resolved_arxiv_id").type)
    columns["resolved_by"] = pa.array(how, LINKS_SCHEMA.field("resolved_by").type)
    return pa.RecordBatch.from_pydict(columns, schema=LINKS_SCHEMA)
