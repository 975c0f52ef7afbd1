"""The nightly report's figure data: published tables in, small DataFrames out (pure).

Each builder reads only the columns it names, so a test (or an older night whose tables
lack a later column) can hand it a table of just those. Every frame it returns has plain
NumPy/Python columns, never Arrow-backed ones, and is empty when there is nothing to show:
the renderer turns an empty frame into a "no data yet" panel.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import combinations
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.records import STATUSES
from pipeline.report.summary import LOOKUPS, summarise_tables

OTHER = "other"
"""The group of every category or task past the top ones."""
UNKNOWN = "unknown"
"""The group of rows without a category or task."""

TOP_CATEGORIES = 6
TOP_TASKS = 6
TOP_MODELS = 10
OVERLAP_DOCUMENTS_MAX = 12
"""A heat map stays readable up to a dozen lists; past that, the lists with most papers."""
COVERAGE_DOCUMENTS_MAX = 20
NEW_ITEMS_MAX = 100
"""Rows listed per "what is new" panel; the rest are counted."""
HEALTH_NIGHTS = 30
ENTITY_KINDS = ("paper", "model")
"""What the "what is new" panels list (the changes table's `entity_type`)."""


def _rows(table: pa.Table | None, columns: Iterable[str]) -> list[dict[str, Any]]:
    """The rows of `table` with only `columns` (those it has); none for no table."""
    if table is None:
        return []
    present = [name for name in columns if name in table.column_names]
    rows: list[dict[str, Any]] = table.select(present).to_pylist()
    return rows


def _ranked(values: Iterable[str], top: int) -> list[str]:
    """The `top` most frequent values, most frequent first (ties by name)."""
    counts = Counter(values)
    return [name for name, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]


def _grouped(value: str | None, kept: set[str]) -> str:
    if not value:
        return UNKNOWN
    return value if value in kept else OTHER


# -- papers per month -----------------------------------------------------------------------


def papers_per_month(papers: pa.Table | None, top: int = TOP_CATEGORIES) -> pd.DataFrame:
    """Papers by the month of their first version (`published`, UTC) and primary category:
    columns month (`YYYY-MM`), category, papers; the `top` categories by papers, the
    rest as `other`. Papers without a first-version date (not found, never resolved)
    are left out."""
    rows = [r for r in _rows(papers, ("published", "primary_category")) if r.get("published")]
    kept = set(_ranked((r["primary_category"] for r in rows if r.get("primary_category")), top))
    counts = Counter(
        (f"{r['published']:%Y-%m}", _grouped(r.get("primary_category"), kept)) for r in rows
    )
    frame = pd.DataFrame(
        [(month, category, n) for (month, category), n in sorted(counts.items())],
        columns=["month", "category", "papers"],
    )
    return frame.astype({"papers": "int64"})


# -- what is new -----------------------------------------------------------------------------

NEW_COLUMNS = ["kind", "entity_id", "title", "documents", "url"]


@dataclass(frozen=True)
class NewSince:
    """What is in tonight's snapshot and was not in an earlier one."""

    since: date | None
    """The earlier snapshot's date; None when there is none (a first night)."""
    added: pd.DataFrame
    """Columns `NEW_COLUMNS`, papers first, then models; by ID."""
    removed: dict[str, int]
    """Entities of each kind in the earlier snapshot and not in tonight's."""


Key = tuple[str, str]
"""(kind, ID) of an entity the "what is new" panels list."""

_KEY_COLUMNS = {"paper": ("papers", "arxiv_id"), "model": ("models", "repo_id")}


def _keys(papers: pa.Table | None, models: pa.Table | None) -> set[Key]:
    keys: set[Key] = set()
    for kind, table in (("paper", papers), ("model", models)):
        column = _KEY_COLUMNS[kind][1]
        if table is not None and column in table.column_names:
            keys.update((kind, entity) for entity in table.column(column).to_pylist())
    return keys


def _only(table: pa.Table | None, column: str, ids: Iterable[str]) -> pa.Table | None:
    """The rows of `table` whose `column` is one of `ids` (reading only those rows' values:
    a night of 20,000 papers lists a few new ones)."""
    if table is None or column not in table.column_names:
        return None
    wanted = pa.array(sorted(ids), pa.string())
    return table.filter(pc.is_in(table.column(column), value_set=wanted))


_PAPER_COLUMNS = ("arxiv_id", "title", "documents", "abs_url")
_MODEL_COLUMNS = ("repo_id", "pipeline_tag", "documents")


def _new_frame(
    papers: pa.Table | None, models: pa.Table | None, keys: Iterable[Key]
) -> pd.DataFrame:
    """`NEW_COLUMNS` of the entities of `keys` in tonight's tables: papers first, by ID."""
    wanted = set(keys)
    found: list[tuple[str, str, str, list[str] | None, str]] = []
    paper_ids = [entity for kind, entity in wanted if kind == "paper"]
    for row in _rows(_only(papers, "arxiv_id", paper_ids), _PAPER_COLUMNS):
        url = row.get("abs_url") or ""
        if not url.startswith(("https://", "http://")):
            # A link the report shows is a web page's, whatever an answer said it was.
            url = f"https://arxiv.org/abs/{row['arxiv_id']}"
        found.append(("paper", row["arxiv_id"], row.get("title") or "", row.get("documents"), url))
    model_ids = [entity for kind, entity in wanted if kind == "model"]
    for row in _rows(_only(models, "repo_id", model_ids), _MODEL_COLUMNS):
        url = f"https://huggingface.co/{row['repo_id']}"
        task = row.get("pipeline_tag") or ""
        found.append(("model", row["repo_id"], task, row.get("documents"), url))
    order = {kind: i for i, kind in enumerate(ENTITY_KINDS)}
    found.sort(key=lambda r: (order[r[0]], r[1]))
    rows = [
        (k, entity, title, ", ".join(lists or []), url) for k, entity, title, lists, url in found
    ]
    return pd.DataFrame(rows, columns=NEW_COLUMNS)


def new_since_previous(
    previous: date | None,
    changes: pa.Table | None,
    papers: pa.Table | None,
    models: pa.Table | None,
) -> NewSince:
    """Papers and models the night's `changes` table says were added since the previous
    snapshot (of `previous`; None on a first night: nothing is listed)."""
    if previous is None:
        return NewSince(None, pd.DataFrame(columns=NEW_COLUMNS), {})
    rows = _rows(changes, ("entity_type", "entity_id", "change"))
    ours = [r for r in rows if r["entity_type"] in ENTITY_KINDS]
    added = [(r["entity_type"], r["entity_id"]) for r in ours if r["change"] == "added"]
    removed = Counter(r["entity_type"] for r in ours if r["change"] == "removed")
    return NewSince(
        previous,
        _new_frame(papers, models, added),
        {k: removed[k] for k in ENTITY_KINDS},
    )


def new_since_snapshot(
    since: date | None,
    papers: pa.Table | None,
    models: pa.Table | None,
    earlier_papers: pa.Table | None,
    earlier_models: pa.Table | None,
) -> NewSince:
    """Papers and models in tonight's tables and not in an earlier snapshot's (of `since`;
    None when there is no such snapshot: nothing is listed)."""
    if since is None:
        return NewSince(None, pd.DataFrame(columns=NEW_COLUMNS), {})
    tonight = _keys(papers, models)
    earlier = _keys(earlier_papers, earlier_models)
    removed = Counter(kind for kind, _ in earlier - tonight)
    return NewSince(
        since,
        _new_frame(papers, models, tonight - earlier),
        {k: removed[k] for k in ENTITY_KINDS},
    )


# -- overlap of the lists --------------------------------------------------------------------


def list_overlap(papers: pa.Table | None, most: int = OVERLAP_DOCUMENTS_MAX) -> pd.DataFrame:
    """Papers shared between reading lists: a square frame, documents on both axes (the
    `most` with most papers, by papers then name); a cell counts the papers both
    mention, the diagonal each list's papers. Empty with fewer than two lists."""
    mentions = [sorted(set(r.get("documents") or [])) for r in _rows(papers, ("documents",))]
    documents = _ranked((d for ds in mentions for d in ds), most)
    if len(documents) < 2:
        return pd.DataFrame()
    kept = set(documents)
    shared: Counter[tuple[str, str]] = Counter()
    for mentioned in mentions:
        ours = [d for d in mentioned if d in kept]
        shared.update((d, d) for d in ours)
        for a, b in combinations(ours, 2):
            shared[a, b] += 1
            shared[b, a] += 1
    frame = pd.DataFrame(
        [[shared[a, b] for b in documents] for a in documents],
        index=documents,
        columns=documents,
        dtype="int64",
    )
    return frame


# -- models: sizes over time, the biggest, the most downloaded -------------------------------


def model_sizes(models: pa.Table | None, top: int = TOP_TASKS) -> pd.DataFrame:
    """Models with a parameter count and a creation date: columns repo_id, created_at
    (naive UTC), params, task (`pipeline_tag`; the `top` tasks by models, the rest
    `other`, none `unknown`), by creation date."""
    rows = [
        r
        for r in _rows(models, ("repo_id", "created_at", "params_total", "pipeline_tag"))
        if r.get("params_total") and r.get("created_at")
    ]
    kept = set(_ranked((r["pipeline_tag"] for r in rows if r.get("pipeline_tag")), top))
    frame = pd.DataFrame(
        [
            (
                r["repo_id"],
                r["created_at"].replace(tzinfo=None),
                int(r["params_total"]),
                _grouped(r.get("pipeline_tag"), kept),
            )
            for r in rows
        ],
        columns=["repo_id", "created_at", "params", "task"],
    )
    return frame.sort_values(["created_at", "repo_id"], ignore_index=True)


def top_models(
    models: pa.Table | None, by: str, n: int = TOP_MODELS, per_family: bool = False
) -> pd.DataFrame:
    """The `n` models with the largest `by` (`params_total`, `downloads`): columns
    repo_id, family, variants (the family's models in the table), value, task; largest
    first (ties by ID). Models without a value are left out. `per_family`: only the
    largest of each family, so one model's base, instruct and quantised variants take one
    row, not several. A night from before the `family` column groups nothing: each model
    is its own family."""
    rows = _rows(models, ("repo_id", "family", by, "pipeline_tag"))
    for row in rows:
        row["family"] = row.get("family") or row["repo_id"]
    variants = Counter(row["family"] for row in rows)
    rows = [r for r in rows if r.get(by) is not None]
    rows.sort(key=lambda r: (-r[by], r["repo_id"]))
    if per_family:
        largest: dict[str, dict[str, Any]] = {}
        for row in rows:
            largest.setdefault(row["family"], row)
        rows = list(largest.values())
    return pd.DataFrame(
        [
            (
                r["repo_id"],
                r["family"],
                variants[r["family"]],
                int(r[by]),
                r.get("pipeline_tag") or UNKNOWN,
            )
            for r in rows[:n]
        ],
        columns=["repo_id", "family", "variants", "value", "task"],
    )


# -- coverage --------------------------------------------------------------------------------

ALL_LISTS = "all lists"


def coverage(papers: pa.Table | None, most: int = COVERAGE_DOCUMENTS_MAX) -> pd.DataFrame:
    """Papers with code and with models, for all lists together (first row, `ALL_LISTS`)
    and per list (the `most` with most papers, by name): columns document, papers,
    with_code, with_models. Code: a code link beside the paper in a list, a GitHub repo
    on arXiv or on its paper page; models: a Hub model citing it."""
    columns = ("documents", "code_urls", "github_repos", "hf_github_repo", "hf_models")
    tally: dict[str, list[int]] = {}
    for row in _rows(papers, columns):
        code = bool(row.get("code_urls") or row.get("github_repos") or row.get("hf_github_repo"))
        model = bool(row.get("hf_models"))
        for document in [ALL_LISTS, *sorted(set(row.get("documents") or []))]:
            counts = tally.setdefault(document, [0, 0, 0])
            counts[0] += 1
            counts[1] += code
            counts[2] += model
    lists = sorted((d for d in tally if d != ALL_LISTS), key=lambda d: (-tally[d][0], d))[:most]
    order = [ALL_LISTS, *sorted(lists)] if tally else []
    return pd.DataFrame(
        [(d, *tally[d]) for d in order], columns=["document", "papers", "with_code", "with_models"]
    )


# -- data health -----------------------------------------------------------------------------

HEALTH_COLUMNS = ["snapshot_date", "lookup", *STATUSES]


def lookup_health(nights: Mapping[date, Mapping[str, pa.Table]]) -> pd.DataFrame:
    """Rows of each lookup by status, per night: columns `HEALTH_COLUMNS`, by date and
    lookup (in `LOOKUPS` order). `nights` maps a snapshot date to its entity tables
    (their status columns suffice)."""
    rows = []
    for day in sorted(nights):
        counts, _, _ = summarise_tables(dict(nights[day]))
        for lookup in LOOKUPS:
            if lookup.name in counts:
                rows.append((day, lookup.label, *(counts[lookup.name][s] for s in STATUSES)))
    return pd.DataFrame(rows, columns=HEALTH_COLUMNS)


def run_health(manifest: pd.DataFrame, until: date, nights: int = HEALTH_NIGHTS) -> pd.DataFrame:
    """The manifest's runs of the `nights` nights up to `until`: columns snapshot_date,
    run_id, status (ok, partial, failed), published, current, finished_at (naive UTC);
    by date then finish."""
    columns = ["snapshot_date", "run_id", "status", "published", "current", "finished_at"]
    if manifest.empty:
        return pd.DataFrame(columns=columns)
    start = until - timedelta(days=nights - 1)
    rows = [
        (
            r["snapshot_date"],
            r["run_id"],
            r["status"],
            bool(r["published"]),
            bool(r.get("current", False)),
            _naive(r["finished_at"]),
        )
        for r in manifest.to_dict("records")
        if start <= _day(r["snapshot_date"]) <= until
    ]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["snapshot_date", "finished_at"], ignore_index=True)


def _day(value: Any) -> date:
    return value.date() if isinstance(value, datetime) else value


def _naive(value: Any) -> datetime:
    stamp = pd.Timestamp(value)
    return (stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp).to_pydatetime()
