"""The nightly HTML report: one self-contained file per published night.

`<out>/reports/<snapshot_date>.html`, beside the snapshot it shows (the manifest, the Hive
views and `load()` never look there). The night writes it after publishing; `pipeline
report` rebuilds it from the published snapshots. Reading is here (the edge); the figure
data is `figures` (pure) and the drawing `render`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from pipeline.atomic import write_atomically
from pipeline.config import DEFAULT_OUT_DIR, __version__
from pipeline.objectstore import Remote
from pipeline.report import figures
from pipeline.report.render import (
    Panel,
    ReportPage,
    coverage_svg,
    health_svg,
    model_sizes_svg,
    new_table,
    overlap_svg,
    papers_per_month_svg,
    render_page,
    top_models_svg,
)
from pipeline.report.summary import LOOKUPS
from pipeline.snapshot.read import read_manifest, read_run_schema, read_run_table, snapshot_root
from pipeline.snapshot.schemas import TABLE_SCHEMAS
from pipeline.snapshot.store import SnapshotError

REPORTS_DIR = "reports"
WEEK_DAYS = 7

Tables = Mapping[str, pa.Table]


def report_key(snapshot_date: date) -> str:
    """The report of `snapshot_date`, relative to the snapshot root."""
    return f"{REPORTS_DIR}/{snapshot_date.isoformat()}.html"


def report_path(out_dir: Path | str, snapshot_date: date) -> Path | str:
    """Where the report of `snapshot_date` is written under the snapshot root `out_dir`:
    a local path, or the object's URL under an object-store root."""
    root = snapshot_root(out_dir)
    key = report_key(snapshot_date)
    return root.url_of(key) if isinstance(root, Remote) else root / key


REPORT_TABLES = ("papers", "models", "changes")
"""The tables the report draws from (never `links`, the largest)."""


@dataclass(frozen=True)
class ReportInputs:
    """What the report of one night is drawn from."""

    page: ReportPage
    tables: Tables
    """The night's `REPORT_TABLES`."""
    previous: date | None
    """The previous published night (its changes table says what is new since); None on
    a first night."""
    week_ago: date | None
    """The latest published night at least `WEEK_DAYS` older; None when there is none."""
    week_ago_tables: Tables
    nights: Mapping[date, Tables]
    """The status columns of each published night of the health window."""
    manifest: pd.DataFrame
    health_nights: int = figures.HEALTH_NIGHTS


def report_html(inputs: ReportInputs) -> str:
    """The report of one night, as one HTML document (pure)."""
    page, tables, nights = inputs.page, inputs.tables, inputs.nights
    health_nights = inputs.health_nights
    papers, models = tables.get("papers"), tables.get("models")
    week = figures.new_since_snapshot(
        inputs.week_ago,
        papers,
        models,
        inputs.week_ago_tables.get("papers"),
        inputs.week_ago_tables.get("models"),
    )
    since_previous = figures.new_since_previous(
        inputs.previous, tables.get("changes"), papers, models
    )
    lookups = figures.lookup_health(nights)
    runs = figures.run_health(inputs.manifest, page.snapshot_date, health_nights)
    panels = [
        Panel(
            "per-month",
            "Papers per month",
            "Papers by the month of their first arXiv version, by primary category "
            f"(the {figures.TOP_CATEGORIES} largest; the rest as other).",
            papers_per_month_svg(figures.papers_per_month(papers)),
            "No paper with a first-version date yet.",
        ),
        Panel(
            "new-night",
            "New since the previous night",
            "Papers and models in tonight's snapshot that the previous one did not have "
            "(the changes table), with the lists that mention them.",
            new_table(since_previous, "the previous night"),
            "No earlier snapshot yet: this is the first night.",
        ),
        Panel(
            "new-week",
            "New since a week ago",
            f"Papers and models not in the latest snapshot at least {WEEK_DAYS} days older.",
            new_table(week, "a week ago"),
            f"No snapshot {WEEK_DAYS} or more days older than this one yet.",
        ),
        Panel(
            "overlap",
            "Overlap of the lists",
            "Papers shared between two reading lists; the diagonal (bold) counts each "
            f"list's papers (the {figures.OVERLAP_DOCUMENTS_MAX} lists with most papers).",
            overlap_svg(figures.list_overlap(papers)),
            "Fewer than two lists mention papers yet.",
        ),
        Panel(
            "model-sizes",
            "Model sizes over time",
            "Parameters (log scale) of the models the lists link to, by the date the "
            f"repo was created, by task (the {figures.TOP_TASKS} largest; the rest as other).",
            model_sizes_svg(figures.model_sizes(models)),
            "No model with a parameter count and a creation date yet.",
        ),
        Panel(
            "top-models",
            "The biggest and the most downloaded models",
            f"The {figures.TOP_MODELS} largest model families (their biggest model; a "
            "family is a base model with its fine-tunes and quantised variants) and the "
            f"{figures.TOP_MODELS} most downloaded models (each variant on its own; a "
            "family's bars share a colour).",
            top_models_svg(
                figures.top_models(models, "params_total", per_family=True),
                figures.top_models(models, "downloads"),
            ),
            "No models yet.",
        ),
        Panel(
            "coverage",
            "Coverage: papers with code, with models",
            "Share of each list's papers with a code repository (in the list, on arXiv or "
            "on the paper's Hub page) and with a Hub model citing them (the "
            f"{figures.COVERAGE_DOCUMENTS_MAX} lists with most papers).",
            coverage_svg(figures.coverage(papers)),
            "No papers yet.",
        ),
        Panel(
            "health",
            f"Data health, last {health_nights} nights",
            "Every run of the manifest (ok, partial, failed), and each lookup's rows by "
            "status in the night's snapshot: ok, stale (last good values kept), error, "
            "not found.",
            health_svg(lookups, runs, page.snapshot_date, health_nights),
            "No run recorded yet.",
        ),
    ]
    return render_page(page, panels)


def _status_tables(out: Path | Remote, run_id: str) -> dict[str, pa.Table]:
    """The status columns (those it has) of each lookup's table of one published run."""
    wanted: dict[str, set[str]] = {}
    for lookup in LOOKUPS:
        wanted.setdefault(lookup.table, set()).update((lookup.key, lookup.status, lookup.reason))
    found = {}
    for table, columns in wanted.items():
        present = [c for c in TABLE_SCHEMAS[table].names if c in columns]
        if set(present) - set(read_run_schema(out, run_id, table).names):
            continue  # written before this lookup existed: no health to show for it
        found[table] = read_run_table(out, run_id, table, present)
    return found


def _run_tables(out: Path | Remote, run_id: str) -> dict[str, pa.Table]:
    """`REPORT_TABLES` of one published run, as written (an older night's schema too: the
    builders read the columns there are)."""
    return {name: read_run_table(out, run_id, name) for name in REPORT_TABLES}


def read_inputs(
    out_dir: Path | str, snapshot_date: date | None, health_nights: int = figures.HEALTH_NIGHTS
) -> ReportInputs:
    """What the report of the night of `snapshot_date` (default: the latest) under
    `out_dir` is drawn from. Raises `SnapshotError` naming the published dates when that
    night was not published, `FileNotFoundError` when a rerun replaced a night's files
    while they were read (`write_report` reads again)."""
    out = snapshot_root(out_dir)
    manifest = read_manifest(out_dir)
    runs: dict[date, dict[Hashable, Any]] = {
        row["snapshot_date"]: row
        for row in manifest.to_dict("records")
        if row["current"]  # one current run per published date
    }
    day = snapshot_date or max(runs, default=None)
    if day is None or day not in runs:
        dates = ", ".join(d.isoformat() for d in sorted(runs)) or "none"
        asked = f"of {day.isoformat()} " if day else ""
        where = out.url if isinstance(out, Remote) else out
        raise SnapshotError(f"no snapshot {asked}under {where} (published: {dates})")
    row = runs[day]
    week_ago = max((d for d in runs if d <= day - timedelta(days=WEEK_DAYS)), default=None)
    start = day - timedelta(days=health_nights - 1)
    page = ReportPage(
        snapshot_date=day,
        run_id=str(row["run_id"]),
        status=str(row["status"]),
        status_reason=None if pd.isna(row["status_reason"]) else str(row["status_reason"]),
        counts={
            name: int(row[f"{name}_rows"])
            for name in ("papers", "models", "repos", "github_repos", "links")
            if not pd.isna(row[f"{name}_rows"])
        },
        generated_by=f"mllm-papers-pipeline {__version__}; rebuild with "
        f"`pipeline report --date {day.isoformat()}`.",
    )
    return ReportInputs(
        page=page,
        tables=_run_tables(out, str(row["run_id"])),
        previous=max((d for d in runs if d < day), default=None),
        week_ago=week_ago,
        week_ago_tables=_run_tables(out, str(runs[week_ago]["run_id"])) if week_ago else {},
        nights={
            night: _status_tables(out, str(run["run_id"]))
            for night, run in sorted(runs.items())
            if start <= night <= day
        },
        manifest=manifest,
        health_nights=health_nights,
    )


_READ_ATTEMPTS = 3
"""Reads of a night that a rerun replaced meanwhile (its old files are deleted after its
commit) are started again from the manifest, as `load()` does."""


def write_report(
    out_dir: Path | str = DEFAULT_OUT_DIR,
    snapshot_date: date | None = None,
    output: Path | None = None,
    health_nights: int = figures.HEALTH_NIGHTS,
) -> Path | str:
    """Build the report of the snapshot of `snapshot_date` (default: the latest) under
    `out_dir` and write it to `output` (default: `report_path`), atomically. Raises
    `SnapshotError` naming the published dates when that night was not published."""
    for attempt in range(_READ_ATTEMPTS):
        try:
            inputs = read_inputs(out_dir, snapshot_date, health_nights)
            break
        except FileNotFoundError:
            if attempt + 1 == _READ_ATTEMPTS:
                raise
    html = report_html(inputs)
    if output is not None:
        write_atomically(output, html.encode("utf-8"))
        return output
    root = snapshot_root(out_dir)
    if isinstance(root, Remote):
        # An object appears whole or not at all: no temporary object needed.
        root.put(report_key(inputs.page.snapshot_date), html.encode("utf-8"))
        return root.url_of(report_key(inputs.page.snapshot_date))
    target = root / report_key(inputs.page.snapshot_date)
    write_atomically(target, html.encode("utf-8"))
    return target
