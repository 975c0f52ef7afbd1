"""The run report (`pipeline.report`): status rules and their reason, summaries of the
tables per lookup, markdown for the UI, the short form for the terminal."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from pipeline.records import ApiStats, Document
from pipeline.report import (
    LOOKUPS,
    RunSummary,
    markdown_report,
    run_status,
    run_status_reason,
    short_summary,
    summarise_tables,
)
from pipeline.snapshot.schemas import TABLE_SCHEMAS

OK = {"ok": 3, "not_found": 1, "error": 0, "stale": 0}


@pytest.mark.parametrize(
    ("counts", "failed", "unreadable", "expected"),
    [
        ({"papers": OK}, [], 0, "ok"),
        ({"papers": {**OK, "stale": 1}}, [], 0, "partial"),
        ({"papers": OK, "models": {**OK, "error": 2}}, [], 0, "partial"),
        ({"papers": OK, "paper_pages": {**OK, "error": 22}}, [], 0, "partial"),
        ({"papers": OK}, [], 1, "partial"),
        ({"papers": OK}, ["hub"], 0, "failed"),
        ({}, [], 0, "ok"),
    ],
    ids=["ok", "stale", "error", "paper pages", "unreadable document", "failed stage", "empty"],
)
def test_run_status(
    counts: dict[str, dict[str, int]], failed: list[str], unreadable: int, expected: str
) -> None:
    assert run_status(counts, failed, unreadable) == expected


@pytest.mark.parametrize(
    ("counts", "failed", "unreadable", "restriction", "expected"),
    [
        ({"papers": OK, "models": OK}, [], 0, None, None),
        ({"papers": OK}, [], 0, "restricted run: --limit 5", None),
        (
            {
                "papers": {**OK, "stale": 3, "error": 1},
                "paper_pages": {**OK, "error": 22},
                "models": OK,
            },
            [],
            1,
            None,
            "papers: 3 stale, 1 error; papers (paper pages): 22 error; documents: 1 unreadable",
        ),
        (
            {"papers": {**OK, "stale": 2}, "repos": {**OK, "error": 1}},
            ["hub"],
            0,
            None,
            "failed stages: hub; papers: 2 stale; repos: 1 error",
        ),
        (
            {"papers": {**OK, "stale": 2}},
            [],
            0,
            "restricted run: --resolvers arxiv hub",
            "restricted run: --resolvers arxiv hub; papers: 2 stale",
        ),
    ],
    ids=["ok", "ok restricted", "partial", "failed", "partial restricted"],
)
def test_the_status_reason_says_why_a_run_is_not_ok(
    counts: dict[str, dict[str, int]],
    failed: list[str],
    unreadable: int,
    restriction: str | None,
    expected: str | None,
) -> None:
    assert run_status_reason(counts, failed, unreadable, restriction) == expected
    assert (expected is None) == (run_status(counts, failed, unreadable) == "ok")


def _tables() -> dict[str, pa.Table]:
    """An entity table of each kind, with only the columns the report reads."""

    def table(name: str, columns: dict[str, list[object]]) -> pa.Table:
        schema = TABLE_SCHEMAS[name]
        return pa.table(columns, schema=pa.schema([schema.field(c) for c in columns]))

    papers = table(
        "papers",
        {
            "arxiv_id": ["2409.12191", "2502.13923", "2413.00001"],
            "status": ["ok", "stale", "not_found"],
            "status_reason": [None, "HTTP 503 (data of 2026-11-20)", "invalid identifier"],
            "hf_page_status": ["error", "ok", "not_found"],
            "hf_page_status_reason": ["HTTP 500", None, "invalid identifier"],
        },
    )
    models = table(
        "models",
        {"repo_id": ["Qwen/Qwen2-VL-7B"], "status": ["ok"], "status_reason": [None]},
    )
    repos = table(
        "repos",
        {
            "repo_type": ["dataset"],
            "repo_id": ["a/b"],
            "status": ["error"],
            "status_reason": ["not asked in this run (restricted run: --limit 1)"],
        },
    )
    changes = table(
        "changes",
        {"entity_type": ["paper", "paper", "model"], "change": ["added", "added", "changed"]},
    )
    return {"papers": papers, "models": models, "repos": repos, "changes": changes}


def test_summarise_tables_counts_every_lookup_lists_what_is_not_ok_and_changes() -> None:
    counts, unresolved, changes = summarise_tables(_tables())

    assert list(counts) == [lookup.name for lookup in LOOKUPS]
    assert counts["papers"] == {"ok": 1, "not_found": 1, "error": 0, "stale": 1}
    assert counts["paper_pages"] == {"ok": 1, "not_found": 1, "error": 1, "stale": 0}
    assert unresolved["papers"] == [
        {"key": "2502.13923", "status": "stale", "reason": "HTTP 503 (data of 2026-11-20)"},
        {"key": "2413.00001", "status": "not_found", "reason": "invalid identifier"},
    ]
    assert unresolved["paper_pages"] == [
        {"key": "2409.12191", "status": "error", "reason": "HTTP 500"},
        {"key": "2413.00001", "status": "not_found", "reason": "invalid identifier"},
    ]
    assert unresolved["models"] == []
    assert [row["key"] for row in unresolved["repos"]] == ["a/b"]
    assert changes == {"model changed": 1, "paper added": 2}
    assert run_status_reason(counts, [], 0) == (
        "papers: 1 stale; papers (paper pages): 1 error; repos: 1 error"
    )


def _summary() -> RunSummary:
    counts, unresolved, changes = summarise_tables(_tables())
    stats = ApiStats(api="arxiv", requests=3, by_status={200: 2, 503: 1}, retries=1)
    return RunSummary(
        run_id="r1",
        snapshot_date="2026-11-21",
        status="partial",
        status_reason=run_status_reason(counts, [], 1),
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


def test_the_markdown_report_says_what_happened() -> None:
    report = markdown_report(_summary())

    assert "# Run r1: partial" in report
    assert "- reason: papers: 1 stale; papers (paper pages): 1 error; repos: 1 error" in report
    assert "- documents read: 1 (1 failed)" in report
    assert "- `b.md`: not UTF-8 at byte 12" in report
    assert "| papers | 1 | 1 | 0 | 1 |" in report
    assert "| papers (paper pages) | 1 | 1 | 1 | 0 |" in report
    assert "| arxiv | 3 | 1 | 0 | 200: 2, 503: 1 |" in report
    assert "- paper added: 2" in report
    assert "- papers (paper pages): 2" in report and "- models:" not in report


def test_the_short_summary_names_every_lookup_and_where_it_published() -> None:
    short = short_summary(_summary())

    assert short.splitlines()[0] == (
        "run r1 partial (papers: 1 stale; papers (paper pages): 1 error; repos: 1 error;"
        " documents: 1 unreadable)"
    )
    assert "  papers (paper pages): ok 1, not_found 1, error 1" in short
    assert "published to enriched" in short


def test_the_summary_repr_stays_short_however_many_rows_are_not_ok() -> None:
    summary = _summary()
    summary.unresolved["papers"] *= 10_000
    summary.documents *= 1_000

    assert len(repr(summary)) < 2_000
