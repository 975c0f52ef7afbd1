"""The run report: what a run read, asked, found and changed (pure functions).

The flow publishes it as Prefect artifacts; the CLI prints its short form.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa

from pipeline.records import STATUSES, ApiStats, Document

RunStatus = Literal["ok", "partial", "failed", "dry_run"]

ENTITY_TABLES = ("papers", "models", "repos")
"""Tables with one row per resolved entity and a `status` column."""

_KEY_COLUMNS = {"papers": "arxiv_id", "models": "repo_id", "repos": "repo_id"}
UNRESOLVED_ROWS_MAX = 500
"""Table artifacts are for reading; a run with more unresolved rows says how many more."""


@dataclass
class RunSummary:
    """Everything the report shows about one run."""

    run_id: str
    snapshot_date: str
    status: RunStatus = "ok"
    status_reason: str | None = None
    flow_run_id: str | None = None
    out_dir: str = ""
    documents: list[Document] = field(default_factory=list)
    links: int = 0
    entities_asked: dict[str, int] = field(default_factory=dict)
    """Distinct entities per resolver (arxiv IDs, titles, hub repos, paper pages)."""
    status_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per entity table: rows per status."""
    unresolved: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Per entity table: rows whose status is not ok (key, status, reason)."""
    api: list[ApiStats] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    changes: dict[str, int] = field(default_factory=dict)
    """Counts of the changes table by `<entity_type> <change>`."""
    published: bool = False


def summarise_tables(
    tables: dict[str, pa.Table],
) -> tuple[dict[str, dict[str, int]], dict[str, list[dict[str, Any]]], dict[str, int]]:
    """Status counts and unresolved rows of the entity tables, and change counts."""
    counts: dict[str, dict[str, int]] = {}
    unresolved: dict[str, list[dict[str, Any]]] = {}
    for name in ENTITY_TABLES:
        table = tables.get(name)
        if table is None:
            continue
        statuses = table.column("status").to_pylist()
        tally = Counter(statuses)
        counts[name] = {status: tally.get(status, 0) for status in STATUSES}
        keys = table.column(_KEY_COLUMNS[name]).to_pylist()
        reasons = table.column("status_reason").to_pylist()
        unresolved[name] = [
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


def run_status(
    counts: dict[str, dict[str, int]], failed_stages: list[str], unreadable_documents: int = 0
) -> RunStatus:
    """failed when a stage failed outright; partial when a document could not be read or
    some entity is error or stale (the snapshot is published, but not all of it is fresh)."""
    if failed_stages:
        return "failed"
    if unreadable_documents or any(c.get("error", 0) or c.get("stale", 0) for c in counts.values()):
        return "partial"
    return "ok"


def markdown_report(summary: RunSummary) -> str:
    """The run report as markdown, for the Prefect UI's Artifacts page."""
    read = [d for d in summary.documents if d.error is None]
    failed_docs = [d for d in summary.documents if d.error is not None]
    lines = [
        f"# Run {summary.run_id}: {summary.status}",
        "",
        f"- snapshot date: {summary.snapshot_date}",
        f"- published: {'yes, to ' + summary.out_dir if summary.published else 'no'}",
    ]
    if summary.status_reason:
        lines.append(f"- reason: {summary.status_reason}")
    lines += [
        f"- documents read: {len(read)} ({len(failed_docs)} failed)",
        f"- link occurrences: {summary.links}",
        "",
    ]
    if failed_docs:
        lines += ["## Documents that could not be read", ""]
        lines += [f"- `{d.name}`: {d.error}" for d in failed_docs]
        lines.append("")
    if summary.status_counts:
        lines += ["## Entities", "", "| table | " + " | ".join(STATUSES) + " |"]
        lines.append("|---" * (len(STATUSES) + 1) + "|")
        for table, counts in summary.status_counts.items():
            cells = " | ".join(str(counts.get(s, 0)) for s in STATUSES)
            lines.append(f"| {table} | {cells} |")
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
    unresolved_total = sum(len(rows) for rows in summary.unresolved.values())
    if unresolved_total:
        lines += [
            "## Unresolved",
            "",
            f"{unresolved_total} entities are not ok; see the `unresolved-*` table artifacts.",
            "",
        ]
    return "\n".join(lines)


def short_summary(summary: RunSummary) -> str:
    """A few lines for the terminal at the end of `pipeline run`."""
    read = sum(1 for d in summary.documents if d.error is None)
    parts = [
        f"run {summary.run_id} {summary.status}"
        + (f" ({summary.status_reason})" if summary.status_reason else ""),
        f"  documents: {read} read, {len(summary.documents) - read} failed; links: {summary.links}",
    ]
    for table, counts in summary.status_counts.items():
        shown = ", ".join(f"{s} {n}" for s, n in counts.items() if n)
        parts.append(f"  {table}: {shown or 'none'}")
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
    return "\n".join(parts)
