"""The nightly HTML report: one self-contained file per published night.

`<out>/reports/<snapshot_date>.html`, beside the snapshot it shows (the manifest, the Hive
views and `load()` never look there). The night writes it after publishing; `pipeline
report` rebuilds it from the published snapshots. Reading is here (the edge); the figure
data is `figures` (pure) and the drawing `render`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Hashable, Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import DEFAULT_OUT_DIR, __version__
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
from pipeline.snapshot.read import previous_tables, read_manifest, replaced_tables
from pipeline.snapshot.schemas import TABLE_SCHEMAS
from pipeline.snapshot.store import RUNS_DIR, SnapshotError

REPORTS_DIR = "reports"
WEEK_DAYS = 7

Tables = Mapping[str, pa.Table]


def report_path(out_dir: Path | str, snapshot_date: date) -> Path:
    """Where the report of `snapshot_date` is written under the snapshot root `out_dir`."""
    return Path(out_dir) / REPORTS_DIR / f"{snapshot_date.isoformat()}.html"


def _snapshot_date(tables: Tables | None) -> date | None:
    """The date `previous_tables` stamps on the tables it returns."""
    if not tables:
        return None
    stamp = (next(iter(tables.values())).schema.metadata or {}).get(b"snapshot_date")
    return date.fromisoformat(stamp.decode()) if stamp else None


def report_html(
    page: ReportPage,
    tables: Tables,
    previous: date | None,
    week_ago: Tables | None,
    nights: Mapping[date, Tables],
    manifest: pd.DataFrame,
    health_nights: int = figures.HEALTH_NIGHTS,
) -> str:
    """The report of one night: its tables (its changes table says what is new since the
    previous snapshot, of `previous`: None on a first night), those of the latest snapshot
    a week older (None: none is), the status columns of the nights of the health window,
    and the manifest."""
    papers, models = tables.get("papers"), tables.get("models")
    week = figures.new_since_snapshot(
        _snapshot_date(week_ago),
        papers,
        models,
        (week_ago or {}).get("papers"),
        (week_ago or {}).get("models"),
    )
    since_previous = figures.new_since_previous(previous, tables.get("changes"), papers, models)
    lookups = figures.lookup_health(nights)
    runs = figures.run_health(manifest, page.snapshot_date, health_nights)
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
            f"The {figures.TOP_MODELS} models with most parameters and most downloads.",
            top_models_svg(
                figures.top_models(models, "params_total"),
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


def _status_tables(out: Path, run_id: str) -> dict[str, pa.Table]:
    """The status columns (those it has) of each lookup's table of one published run."""
    wanted: dict[str, set[str]] = {}
    for lookup in LOOKUPS:
        wanted.setdefault(lookup.table, set()).update((lookup.key, lookup.status, lookup.reason))
    found = {}
    for table, columns in wanted.items():
        path = out / RUNS_DIR / run_id / f"{table}.parquet"
        present = [c for c in TABLE_SCHEMAS[table].names if c in columns]
        if set(present) - set(pq.read_schema(path).names):
            continue  # written before this lookup existed: no health to show for it
        found[table] = pq.read_table(path, columns=present)
    return found


def write_report(
    out_dir: Path | str = DEFAULT_OUT_DIR,
    snapshot_date: date | None = None,
    output: Path | None = None,
    health_nights: int = figures.HEALTH_NIGHTS,
) -> Path:
    """Build the report of the snapshot of `snapshot_date` (default: the latest) under
    `out_dir` and write it to `output` (default: `report_path`), atomically. Raises
    `SnapshotError` naming the published dates when that night was not published."""
    out = Path(out_dir)
    manifest = read_manifest(out)
    runs: dict[date, dict[Hashable, Any]] = {
        row["snapshot_date"]: row
        for row in manifest.to_dict("records")
        if row["current"]  # one current run per published date
    }
    day = snapshot_date or max(runs, default=None)
    if day is None or day not in runs:
        dates = ", ".join(d.isoformat() for d in sorted(runs)) or "none"
        asked = f"of {day.isoformat()} " if day else ""
        raise SnapshotError(f"no snapshot {asked}under {out} (published: {dates})")
    row = runs[day]
    tables = replaced_tables(out, day)
    if tables is None:  # pragma: no cover - the manifest said it was published
        raise SnapshotError(f"the snapshot of {day.isoformat()} under {out} is gone")
    start = day - timedelta(days=health_nights - 1)
    nights: dict[date, Tables] = {}
    for night, run in sorted(runs.items()):
        if start <= night <= day:
            try:
                nights[night] = _status_tables(out, str(run["run_id"]))
            except FileNotFoundError:
                continue  # replaced by a rerun since the manifest was read: shown without
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
    text = report_html(
        page,
        tables,
        max((night for night in runs if night < day), default=None),
        previous_tables(out, before=day - timedelta(days=WEEK_DAYS - 1)),
        nights,
        manifest,
        health_nights,
    )
    target = output or report_path(out, day)
    _write_atomically(target, text)
    return target


def _write_atomically(target: Path, text: str) -> None:
    """Readers see the old file or the new one; permissions as `open` gives (0666 less
    the umask), like the snapshot's."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
