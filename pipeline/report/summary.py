"""The run report: what a run read, asked, found and changed (pure functions).

The flow publishes it as Prefect artifacts; the CLI prints its short form.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from pipeline.records import STATUSES, ApiStats, Document, Status, TitleMatch

RunStatus = Literal["ok", "partial", "failed", "dry_run"]

UNRESOLVED_ROWS_MAX = 500
"""Table artifacts are for reading; a run with more unresolved rows says how many more."""


@dataclass(frozen=True)
class Lookup:
    """One lookup's status columns in an entity table (papers have two lookups)."""

    name: str
    """Its key in `RunSummary.status_counts` and `RunSummary.unresolved`."""
    label: str
    """How the report and the run's status reason name it."""
    table: str
    key: str
    """The column that names the entity in `RunSummary.unresolved`."""
    status: str
    reason: str


LOOKUPS: tuple[Lookup, ...] = (
    Lookup("papers", "papers", "papers", "arxiv_id", "status", "status_reason"),
    Lookup(
        "paper_pages",
        "papers (paper pages)",
        "papers",
        "arxiv_id",
        "hf_page_status",
        "hf_page_status_reason",
    ),
    Lookup("models", "models", "models", "repo_id", "status", "status_reason"),
    Lookup("repos", "repos", "repos", "repo_id", "status", "status_reason"),
)
"""Every lookup whose statuses a run's status counts."""

TITLES = "titles"
"""The title searches: no table of their own (a paper found by title is a row of `papers`,
and one that was not found is no row at all), so the night counts their matches."""

_LABELS = {lookup.name: lookup.label for lookup in LOOKUPS} | {TITLES: "titles (arXiv search)"}
_PARTIAL: tuple[Status, ...] = ("stale", "error")
"""Statuses that make a run partial: what it publishes is not all fresh."""


@dataclass
class RunSummary:
    """Everything the report shows about one run. Its repr leaves out the per-document
    and per-entity lists, which grow with the reading lists."""

    run_id: str
    snapshot_date: str
    status: RunStatus = "ok"
    status_reason: str | None = None
    failed_stages: list[str] = field(default_factory=list)
    """Resolver stages that failed outright (their entities fell back on last good)."""
    flow_run_id: str | None = None
    out_dir: str = ""
    documents: list[Document] = field(default_factory=list, repr=False)
    links: int = 0
    entities_asked: dict[str, int] = field(default_factory=dict)
    """Distinct entities per resolver (arxiv IDs, titles, hub repos, paper pages)."""
    status_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per lookup (`LOOKUPS`, by name): rows per status."""
    unresolved: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)
    """Per lookup (`LOOKUPS`, by name): rows whose status is not ok (key, status, reason)."""
    api: list[ApiStats] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    changes: dict[str, int] = field(default_factory=dict)
    """Counts of the changes table by `<entity_type> <change>`."""
    published: bool = False
    report_path: str | None = None
    """The night's HTML report (`pipeline.report.nightly`), written after publishing."""
    report_error: str | None = None
    """Why that report was not written: the night is published all the same."""


def summarise_tables(
    tables: dict[str, pa.Table],
) -> tuple[dict[str, dict[str, int]], dict[str, list[dict[str, Any]]], dict[str, int]]:
    """Status counts and unresolved rows of every lookup (`LOOKUPS`), and change counts."""
    counts: dict[str, dict[str, int]] = {}
    unresolved: dict[str, list[dict[str, Any]]] = {}
    for lookup in LOOKUPS:
        table = tables.get(lookup.table)
        if table is None:
            continue
        statuses = table.column(lookup.status).to_pylist()
        tally = Counter(statuses)
        counts[lookup.name] = {status: tally.get(status, 0) for status in STATUSES}
        keys = table.column(lookup.key).to_pylist()
        reasons = table.column(lookup.reason).to_pylist()
        unresolved[lookup.name] = [
            {"key": key, "status": status, "reason": reason or ""}
            for key, status, reason in zip(keys, statuses, reasons, strict=True)
            if status != "ok"
        ]
    changes: dict[str, int] = {}
    change_table = tables.get("changes")
    if change_table is not None and change_table.num_rows:
        pairs = zip(
            change_table.column("entity_type").to_pylist(),
            change_table.column("change").to_pylist(),
            strict=True,
        )
        changes = dict(sorted(Counter(f"{kind} {change}" for kind, change in pairs).items()))
    return counts, unresolved, changes


def summarise_title_matches(
    matches: Mapping[str, TitleMatch],
) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Status counts and unresolved rows of the title searches. A search that failed on a
    first night leaves its paper out of every table: only this count says so."""
    tally = Counter(match.status for match in matches.values())
    unresolved = [
        {"key": title, "status": match.status, "reason": match.status_reason or ""}
        for title, match in sorted(matches.items())
        if match.status != "ok"
    ]
    return {status: tally.get(status, 0) for status in STATUSES}, unresolved


def run_status(
    counts: dict[str, dict[str, int]], failed_stages: list[str], unreadable_documents: int = 0
) -> RunStatus:
    """failed when a stage failed outright; partial when a document could not be read or
    some lookup is error or stale (the snapshot is published, but not all of it is fresh)."""
    if failed_stages:
        return "failed"
    if unreadable_documents or any(c.get(s, 0) for c in counts.values() for s in _PARTIAL):
        return "partial"
    return "ok"


def run_status_reason(
    counts: dict[str, dict[str, int]],
    failed_stages: list[str],
    unreadable_documents: int = 0,
    restriction: str | None = None,
) -> str | None:
    """Why `run_status` is not ok, in one bounded line; None when it is ok:
    `failed stages: hub; papers: 3 stale, 1 error; papers (paper pages): 22 error;
    documents: 1 unreadable`. `restriction` (what restricted the run, e.g.
    `restricted run: --resolvers arxiv hub`) comes first when the run is not ok."""
    parts = []
    if failed_stages:
        parts.append("failed stages: " + ", ".join(failed_stages))
    for name, tally in counts.items():
        shown = ", ".join(f"{tally[s]} {s}" for s in _PARTIAL if tally.get(s, 0))
        if shown:
            parts.append(f"{_LABELS.get(name, name)}: {shown}")
    if unreadable_documents:
        parts.append(f"documents: {unreadable_documents} unreadable")
    if not parts:
        return None
    if restriction:
        parts.insert(0, restriction)
    return "; ".join(parts)


def markdown_report(summary: RunSummary) -> str:
    """The run report as markdown, for the Prefect UI's Artifacts page."""
    read = [d for d in summary.documents if d.error is None]
    failed_docs = [d for d in summary.documents if d.error is not None and not d.not_fetched]
    not_fetched = [d for d in summary.documents if d.not_fetched]
    lines = [
        f"# Run {summary.run_id}: {summary.status}",
        "",
        f"- snapshot date: {summary.snapshot_date}",
        f"- published: {'yes, to ' + summary.out_dir if summary.published else 'no'}",
    ]
    if summary.status_reason:
        lines.append(f"- reason: {summary.status_reason}")
    lines += _report_lines(summary, "- ")
    lines += [
        f"- documents read: {len(read)} ({len(failed_docs)} failed)",
        f"- link occurrences: {summary.links}",
        "",
    ]
    if not_fetched:
        lines += ["## Documents not fetched (dry run)", ""]
        lines += [f"- `{d.name}`" for d in not_fetched]
        lines.append("")
    if failed_docs:
        lines += ["## Documents that could not be read", ""]
        lines += [f"- `{d.name}`: {d.error}" for d in failed_docs]
        lines.append("")
    if summary.status_counts:
        lines += ["## Entities", "", "| lookup | " + " | ".join(STATUSES) + " |"]
        lines.append("|---" * (len(STATUSES) + 1) + "|")
        for name, counts in summary.status_counts.items():
            cells = " | ".join(str(counts.get(s, 0)) for s in STATUSES)
            lines.append(f"| {_LABELS.get(name, name)} | {cells} |")
        lines.append("")
    if summary.entities_asked:
        lines += ["## Asked", ""]
        lines += [f"- {name}: {count}" for name, count in summary.entities_asked.items()]
        lines.append("")
    if summary.api:
        lines += ["## Requests", "", "| API | requests | retries | from store | by status |"]
        lines.append("|---|---|---|---|---|")
        for stats in summary.api:
            statuses = ", ".join(f"{k}: {v}" for k, v in sorted(stats.by_status.items()))
            lines.append(
                f"| {stats.api} | {stats.requests} | {stats.retries} | {stats.from_store}"
                f" | {statuses or '-'} |"
            )
        lines.append("")
    if summary.stage_seconds:
        lines += ["## Time per stage", "", "| stage | seconds |", "|---|---|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in summary.stage_seconds.items()]
        lines.append("")
    lines += ["## Changes since the previous snapshot", ""]
    if summary.changes:
        lines += [f"- {name}: {count}" for name, count in summary.changes.items()]
    else:
        lines.append("- none")
    lines.append("")
    unresolved = {name: len(rows) for name, rows in summary.unresolved.items() if rows}
    if unresolved:
        lines += ["## Not ok", ""]
        lines += [f"- {_LABELS.get(name, name)}: {n}" for name, n in unresolved.items()]
        lines += ["", "Each lookup's rows are in its `unresolved-*` table artifact.", ""]
    return "\n".join(lines)


def _report_lines(summary: RunSummary, bullet: str) -> list[str]:
    """Where the night's HTML report is, or why it is not (markdown links it: the
    Artifacts page opens it when the browser may open local files)."""
    if summary.report_path:
        where = summary.report_path
        if bullet != "- ":
            return [f"{bullet}report: {where}"]
        name = where.rsplit("/", 1)[-1]
        # An object-store report is linked by its URL, a local one as a file:// URI.
        uri = where if "://" in where else Path(where).as_uri()
        return [f"{bullet}report: [{name}]({uri}) (`{where}`)"]
    if summary.report_error:
        return [f"{bullet}report: not written ({summary.report_error})"]
    return []


def short_summary(summary: RunSummary) -> str:
    """A few lines for the terminal at the end of `pipeline run`."""
    read = sum(1 for d in summary.documents if d.error is None)
    not_fetched = sum(1 for d in summary.documents if d.not_fetched)
    failed = len(summary.documents) - read - not_fetched
    counted = f"{read} read, {failed} failed" + (
        f", {not_fetched} not fetched (dry run)" if not_fetched else ""
    )
    parts = [
        f"run {summary.run_id} {summary.status}"
        + (f" ({summary.status_reason})" if summary.status_reason else ""),
        f"  documents: {counted}; links: {summary.links}",
    ]
    for name, counts in summary.status_counts.items():
        shown = ", ".join(f"{s} {n}" for s, n in counts.items() if n)
        parts.append(f"  {_LABELS.get(name, name)}: {shown or 'none'}")
    for stats in summary.api:
        parts.append(
            f"  {stats.api}: {stats.requests} requests, {stats.from_store} answered from the store"
        )
    if summary.changes:
        parts.append("  changes: " + ", ".join(f"{k} {v}" for k, v in summary.changes.items()))
    if summary.published:
        parts.append(f"  snapshot {summary.snapshot_date} published to {summary.out_dir}")
    elif summary.status == "dry_run":
        parts.append("  dry run: nothing was asked or written")
    parts += _report_lines(summary, "  ")
    return "\n".join(parts)
