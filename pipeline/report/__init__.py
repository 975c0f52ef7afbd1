"""Reports: the run report (`summary`, pure; the Prefect artifact and the terminal's short
form) and the nightly HTML report (`nightly`: figures of a published snapshot).

Only the run report is imported here: the night imports this package on every run, and
the HTML report's plotting library is loaded when a report is written, not before.
"""

from pipeline.report.summary import (
    LOOKUPS,
    TITLES,
    UNRESOLVED_ROWS_MAX,
    Lookup,
    RunStatus,
    RunSummary,
    markdown_report,
    run_status,
    run_status_reason,
    short_summary,
    summarise_tables,
    summarise_title_matches,
)

__all__ = [
    "LOOKUPS",
    "TITLES",
    "UNRESOLVED_ROWS_MAX",
    "Lookup",
    "RunStatus",
    "RunSummary",
    "markdown_report",
    "run_status",
    "run_status_reason",
    "short_summary",
    "summarise_tables",
    "summarise_title_matches",
]
