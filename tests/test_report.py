"""The run report: status rules, summaries of the tables, markdown for the UI."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from pipeline.records import ApiStats, Document
from pipeline.report import (
    RunSummary,
    markdown_report,
    run_status,
    short_summary,
    summarise_tables,
)

OK = {"ok": 3, "not_found": 1, "error": 0, "stale": 0}


@pytest.mark.parametrize(
    ("counts", "failed", "unreadable", "expected"),
    [
        ({"papers": OK}, [], 0, "ok"),
        ({"papers": {**OK, "stale": 1}}, [], 0, "partial"),
        ({"papers": OK, "models": {**OK, "error": 2}}, [], 0, "partial"),
        ({"papers": OK}, [], 1, "partial"),
        ({"papers": OK}, ["hub"], 0, "failed"),
        ({}, [], 0, "ok"),
    ],
)
def test_run_status(
    counts: dict[str, dict[str, int]], failed: list[str], unreadable: int, expected: str
) -> None:
    assert run_status(counts, failed, unreadable) == expected


def _tables() -> dict[str, pa.Table]:
    papers = pa.table(
        {
            "arxiv_id": ["2409.12191", "2502.13923", "2413.00001"],
            "status": ["ok", "stale", "not_found"],
            "status_reason": [None, "HTTP 503 (data of 2026-11-20)", "invalid identifier"],
        }
    )
    changes = pa.table(
        {"entity_type": ["paper", "paper", "model"], "change": ["added", "added", "changed"]}
    )
    return {"papers": papers, "changes": changes}


def test_summarise_tables_counts_statuses_lists_unresolved_and_changes() -> None:
    counts, unresolved, changes = summarise_tables(_tables())
    assert counts == {"papers": {"ok": 1, "not_found": 1, "error": 0, "stale": 1}}
    assert unresolved["papers"] == [
        {"key": "2502.13923", "status": "stale", "reason": "HTTP 503 (data of 2026-11-20)"},
        {"key": "2413.00001", "status": "not_found", "reason": "invalid identifier"},
    ]
    assert changes == {"model changed": 1, "paper added": 2}


def test_the_markdown_report_says_what_happened() -> None:
    counts, unresolved, changes = summarise_tables(_tables())
    stats = ApiStats(api="arxiv", requests=3, by_status={200: 2, 503: 1}, retries=1)
    summary = RunSummary(
        run_id="r1",
        snapshot_date="2026-11-21",
        status="partial",
        out_dir="enriched",
        documents=[
            Document("a.md", Path("a.md"), links=5),
            Document("b.md", Path("b.md"), error="not UTF-8 at byte 12"),
        ],
        links=5,
        status_counts=counts,
        unresolved=unresolved,
        api=[stats],
        stage_seconds={"extract": 0.5, "resolve": 9.0},
        changes=changes,
        published=True,
    )
    report = markdown_report(summary)
    assert "# Run r1: partial" in report
    assert "- documents read: 1 (1 failed)" in report
    assert "- `b.md`: not UTF-8 at byte 12" in report
    assert "| papers | 1 | 1 | 0 | 1 |" in report
    assert "| arxiv | 3 | 1 | 0 | 200: 2, 503: 1 |" in report
    assert "- paper added: 2" in report
    assert "2 entities are not ok" in report
    short = short_summary(summary)
    assert "run r1 partial" in short and "published to enriched" in short
