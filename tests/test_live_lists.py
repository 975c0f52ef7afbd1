"""Nights over live reading lists on GitHub (the GitHub double): an upstream edit between
two nights, GitHub out of reach, a canary token, and unchanged lists that cost 304s only."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from nights import NIGHT_1, NIGHT_2, READING_LIST, fast_settings

from pipeline import night as pipeline_night
from pipeline.config import Settings
from pipeline.parameters import RunParameters
from pipeline.report import markdown_report
from pipeline.sandbox import Sandbox
from pipeline.sandbox.github_api import GithubDouble, UpstreamFile

SPEC = "github:owner/lists/docs/list.md"
NAME = "owner/lists/docs/list.md"
LIST = READING_LIST.encode()
REMOVED_LINE = next(line for line in READING_LIST.splitlines() if "Qwen2.5-VL" in line)
ADDED_LINE = "- [2024.08] [LLaVA-OneVision](https://arxiv.org/abs/2408.03326)"
EDITED = READING_LIST.replace(REMOVED_LINE, ADDED_LINE).encode()
EDITED_AT = datetime(2025, 12, 31, 18, 0, tzinfo=UTC)
GITHUB_FAST = {
    "github_backoff_seconds": 0.01,
    "github_backoff_max_seconds": 0.05,
    "github_timeout_seconds": 0.5,
    "github_max_attempts": 2,
}


@pytest.fixture
def double() -> GithubDouble:
    return GithubDouble(
        [UpstreamFile.with_history("owner", "lists", "docs/list.md", LIST, versions=1)]
    )


@pytest.fixture
def sandbox(double: GithubDouble) -> Iterator[Sandbox]:
    with Sandbox(github=double) as running:
        yield running


def night(
    root: Path, settings: Settings, day: date, documents: list[str] | None = None, **params: Any
) -> pipeline_night.Night:
    return pipeline_night.run_night(
        RunParameters(
            documents=documents or [SPEC],
            out_dir=str(root / "enriched"),
            raw_dir=str(root / "raw"),
            snapshot_date=day,
            **params,
        ),
        settings=settings.replace(**GITHUB_FAST),
    )


def listings(result: pipeline_night.Night) -> dict[str, date]:
    """Entity -> first_listed, over the list's links that name an entity."""
    links = result.tables["links"].to_pylist()
    return {row["entity_id"]: row["first_listed"] for row in links if row["entity_id"]}


def test_an_upstream_edit_shows_exactly_the_added_and_removed_entries(
    sandbox: Sandbox, double: GithubDouble, tmp_path: Path
) -> None:
    settings = fast_settings(sandbox)
    first = night(tmp_path, settings, NIGHT_1)
    commit = double.edit("owner", "lists", "docs/list.md", EDITED, EDITED_AT)
    second = night(tmp_path, settings, NIGHT_2)

    before, after = listings(first), listings(second)
    assert set(before) - set(after) == {"2502.13923", "vikhyatk/moondream2"}
    assert set(after) - set(before) == {"2408.03326"}
    assert after["2408.03326"] == NIGHT_2
    # Entries already listed keep the night they first appeared.
    assert {after[e] for e in set(before) & set(after)} == {NIGHT_1}
    assert set(before.values()) == {NIGHT_1}

    changes = second.tables["changes"].to_pylist()
    listed = {
        (c["change"], c["entity_type"], c["entity_id"], c["field"])
        for c in changes
        if c["change"] in ("listed", "unlisted")
    }
    assert listed == {
        ("listed", "paper", "2408.03326", NAME),
        ("unlisted", "paper", "2502.13923", NAME),
        ("unlisted", "model", "vikhyatk/moondream2", NAME),
    }

    [row_1] = first.tables["documents"].to_pylist()
    [row_2] = second.tables["documents"].to_pylist()
    assert row_2["document"] == NAME and row_2["status"] == "ok"
    assert row_2["commit_sha"] == commit.sha != row_1["commit_sha"]
    assert row_2["committed_at"] == EDITED_AT
    assert row_2["sha256"] != row_1["sha256"]
    assert row_2["source_url"] == "https://github.com/owner/lists/blob/HEAD/docs/list.md"
    assert row_2["title"] == "A multimodal reading list"
    assert row_2["links"] == second.tables["links"].num_rows
    assert row_1["links"] == first.tables["links"].num_rows


def test_unchanged_lists_cost_304s_only_on_the_second_night(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    settings = fast_settings(sandbox)
    first = night(tmp_path, settings, NIGHT_1)
    sandbox.reset_log()
    second = night(tmp_path, settings, NIGHT_2)

    # The list itself (contents, commits) costs one 304; the code repositories it links
    # are lookups of their own (`github_repos`), asked again under this night's refresh.
    lists = sandbox.requests("github", lambda r: r.path.startswith("/repos/owner/lists/"))
    assert [r.status for r in lists] == [304]
    others = {r.path for r in sandbox.requests("github")} - {r.path for r in lists}
    assert others == {"/repos/qwenlm/qwen2-vl"}
    assert listings(second) == listings(first)
    assert second.summary.status == first.summary.status
    github = next(s for s in second.summary.api if s.api == "github")
    assert github.by_status == {304: 1}


def test_github_unreachable_publishes_from_the_last_lists_partial_naming_each(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    settings = fast_settings(sandbox)
    local = tmp_path / "local.md"
    local.write_text("# Local\n\n- [x](https://arxiv.org/abs/2409.12191)\n")
    other = "github:owner/lists/docs/list.md@main"
    documents = [SPEC, other, str(local)]
    first = night(tmp_path, settings, NIGHT_1, documents)
    assert first.summary.status == "ok"

    unreachable = settings.replace(github_api_url="http://127.0.0.1:9")
    second = night(tmp_path, unreachable, NIGHT_2, documents)

    assert second.summary.published and second.summary.status == "partial"
    reason = second.summary.status_reason or ""
    assert NAME in reason and f"{NAME}@main" in reason and "local.md" not in reason
    rows = {r["document"]: r for r in second.tables["documents"].to_pylist()}
    assert {d: r["status"] for d, r in rows.items()} == {
        NAME: "stale",
        f"{NAME}@main": "stale",
        "local.md": "ok",
    }
    assert "last good answer from" in (rows[NAME]["status_reason"] or "")
    assert listings(second) == listings(first)
    assert second.tables["links"].num_rows == first.tables["links"].num_rows


def test_a_canary_token_appears_in_no_file_log_or_report(
    sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    canary = "ghp_CANARYd41d8cd98f00b204e9800998ecf8427e"
    settings = fast_settings(sandbox).replace(github_token=canary)
    caplog.set_level(logging.DEBUG)
    first = night(tmp_path, settings, NIGHT_1)
    second = night(tmp_path, settings, NIGHT_2)

    assert all(r.authorization for r in sandbox.requests("github"))
    assert second.summary.published
    assert canary not in caplog.text
    for result in (first, second):
        assert canary not in markdown_report(result.summary)
        assert canary not in repr(result.summary)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files) and any(p.suffix == ".body" for p in files)
    for path in files:
        assert canary.encode() not in path.read_bytes(), path


def test_a_github_quoting_the_token_back_leaves_it_nowhere(
    sandbox: Sandbox, double: GithubDouble, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """GitHub refuses every authorised request with a 403 whose JSON message and
    `x-error-message` quote the `Authorization` header: the reasons say why, redacted, and
    no file (raw store and its index, enriched), log, summary or report has the token."""
    canary = "ghp_CANARYechoedBackByAMisbehavingServer42"
    settings = fast_settings(sandbox).replace(github_token=canary)
    local = tmp_path / "code.md"
    local.write_text("# Code\n\n- [code](https://github.com/owner/lists)\n")
    double.echo_token = True
    # The pipeline's own records at their most verbose; httpcore's DEBUG trace prints
    # every response header verbatim, and the pipeline never turns it on.
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="pipeline")
    result = night(tmp_path, settings, NIGHT_1, [SPEC, str(local)])

    assert all(r.authorization for r in sandbox.requests("github"))
    rows = {r["document"]: r for r in result.tables["documents"].to_pylist()}
    assert rows[NAME]["status"] == "error"
    assert "Bad credentials: Bearer [GITHUB_TOKEN]" in (rows[NAME]["status_reason"] or "")
    repos = result.tables["github_repos"].to_pylist()
    assert repos and all(row["status"] != "ok" for row in repos)
    assert canary not in caplog.text
    assert canary not in markdown_report(result.summary)
    assert canary not in repr(result.summary)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "index.sqlite" for p in files) and any(p.suffix == ".body" for p in files)
    for path in files:
        assert canary.encode() not in path.read_bytes(), path


def test_a_night_a_list_cannot_be_read_moves_no_date_and_lists_no_change(
    sandbox: Sandbox, double: GithubDouble, tmp_path: Path
) -> None:
    """Night 2's upstream version is not text (the document is `error`); night 3's is
    the list again: its entries keep night 1's `first_listed`, and no night says
    `listed` or `unlisted`."""
    settings = fast_settings(sandbox)
    local = tmp_path / "local.md"
    local.write_text("# Local\n\n- [x](https://arxiv.org/abs/2409.12191)\n")
    documents = [SPEC, str(local)]
    first = night(tmp_path, settings, NIGHT_1, documents)
    double.edit("owner", "lists", "docs/list.md", b"\x89PNG\r\n\x1a\n\x00\x00", EDITED_AT)
    second = night(tmp_path, settings, NIGHT_2, documents)
    double.edit("owner", "lists", "docs/list.md", LIST, EDITED_AT)
    third = night(tmp_path, settings, date(2026, 1, 3), documents)

    status = {r["document"]: r["status"] for r in second.tables["documents"].to_pylist()}
    assert status == {NAME: "error", "local.md": "ok"}
    assert listings(second) == listings(third) == listings(first)
    assert set(listings(first).values()) == {NIGHT_1}
    for result in (second, third):
        changes = result.tables["changes"].column("change").to_pylist()
        assert "listed" not in changes and "unlisted" not in changes


def test_backfill_dates_entries_by_the_commit_that_added_them(tmp_path: Path) -> None:
    upstream = UpstreamFile("owner", "lists", "docs/list.md")
    older = datetime(2025, 3, 1, tzinfo=UTC)
    upstream.commit(READING_LIST.replace(REMOVED_LINE + "\n", "").encode(), "first", older)
    upstream.commit(LIST, "add Qwen2.5-VL", EDITED_AT)
    with Sandbox(github=GithubDouble([upstream])) as sandbox:
        result = night(tmp_path, fast_settings(sandbox), NIGHT_1, backfill=5)

    since = listings(result)
    assert since["2502.13923"] == EDITED_AT.date()  # entered with the newest commit
    assert since["2409.12191"] == older.date()  # there since the first
    assert set(since.values()) == {older.date(), EDITED_AT.date()}
