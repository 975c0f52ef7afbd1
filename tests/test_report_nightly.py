"""The nightly HTML report (`pipeline.report.nightly`): written by every night that
publishes, rebuilt by `pipeline report`, readable with nothing to show yet, and opened in
a real headless Chromium (the OS's) as a reader would: it renders, every figure has
data, nothing is logged to the console, nothing is fetched."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from nights import fast_settings, write_reading_list
from published import DAY1, DAY2, entry, night

from pipeline.cli import EXIT_OK, EXIT_USAGE, main
from pipeline.night import Night, run_night
from pipeline.parameters import RunParameters
from pipeline.report import markdown_report, short_summary
from pipeline.report.nightly import REPORTS_DIR, report_path, write_report
from pipeline.sandbox import Sandbox
from pipeline.sandbox.hub_api import HubDouble
from pipeline.snapshot.read import load, read_manifest
from pipeline.snapshot.schemas import TABLE_SCHEMAS
from pipeline.snapshot.store import SnapshotError, publish

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "raw" / "seeds"
FIRST = date(2026, 3, 1)
WEEK_LATER = date(2026, 3, 8)
PANELS = (
    "per-month",
    "new-night",
    "new-week",
    "overlap",
    "model-sizes",
    "top-models",
    "coverage",
    "health",
)
TABLE_PANELS = ("new-night", "new-week")
"""Panels that list rows (an HTML table); the others draw an SVG."""


def sections(text: str) -> dict[str, str]:
    """Each panel's markup, by its key."""
    found = re.findall(r'<section id="([a-z-]+)" data-figure="\1">(.*?)</section>', text, re.S)
    return dict(found)


def empty_panels(text: str) -> list[str]:
    return [key for key, body in sections(text).items() if 'data-empty="true"' in body]


def marks(body: str) -> int:
    return len(re.findall(r'id="[a-z-]+-mark-\d+"', body)) + body.count('data-mark="row"')


# -- small published nights --------------------------------------------------------------


def test_a_tiny_first_night_says_what_it_has_no_data_for_yet(tmp_path: Path) -> None:
    publish(tmp_path, night(DAY1, "a"), entry("run-1", DAY1))

    written = write_report(tmp_path)

    assert written == tmp_path / REPORTS_DIR / f"{DAY1.isoformat()}.html"
    text = written.read_text("utf-8")
    assert list(sections(text)) == list(PANELS)
    # One list (no overlap), no earlier night, a model without a creation date.
    assert empty_panels(text) == ["new-night", "new-week", "overlap", "model-sizes"]
    for key, body in sections(text).items():
        assert (marks(body) > 0) == (key not in empty_panels(text)), key


def test_an_empty_snapshot_renders_every_panel_as_no_data_yet(tmp_path: Path) -> None:
    empty = {name: schema.empty_table() for name, schema in TABLE_SCHEMAS.items()}
    publish(tmp_path, empty, entry("run-1", DAY1))

    text = Path(write_report(tmp_path)).read_text("utf-8")

    assert empty_panels(text) == [key for key in PANELS if key != "health"]
    assert "No data yet" not in text  # each panel says what it lacks
    assert "No paper with a first-version date yet." in text


def test_the_report_is_the_same_file_for_the_same_nights(tmp_path: Path) -> None:
    publish(tmp_path, night(DAY1, "a"), entry("run-1", DAY1))
    first = Path(write_report(tmp_path)).read_bytes()

    again = Path(write_report(tmp_path, DAY1, tmp_path / "elsewhere" / "again.html")).read_bytes()

    assert first == again


def test_a_night_not_published_is_named_with_the_published_ones(tmp_path: Path) -> None:
    publish(tmp_path, night(DAY1, "a"), entry("run-1", DAY1))

    with pytest.raises(SnapshotError, match=r"no snapshot of 2026-11-20 .*published: 2026-11-19"):
        write_report(tmp_path, DAY2)
    with pytest.raises(SnapshotError, match=r"published: none"):
        write_report(tmp_path / "nothing")


def test_the_command_rebuilds_a_nights_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    publish(tmp_path, night(DAY1, "a"), entry("run-1", DAY1))
    publish(tmp_path, night(DAY2, "b"), entry("run-2", DAY2))

    assert main(["report", "--out", str(tmp_path), "--date", DAY1.isoformat()]) == EXIT_OK
    assert main(["report", "--out", str(tmp_path)]) == EXIT_OK
    assert main(["report", "--out", str(tmp_path), "--date", "2026-01-01"]) == EXIT_USAGE

    out, err = capsys.readouterr()
    assert Path(report_path(tmp_path, DAY1)).is_file()
    assert Path(report_path(tmp_path, DAY2)).is_file()
    assert str(report_path(tmp_path, DAY2)) in out
    assert err.count("error:") == 1 and "2026-11-19, 2026-11-20" in err


# -- sandbox nights: written by the night, linked from the run report ------------------------


@dataclass
class Nights:
    out: Path
    first: Night
    later: Night


def _night(sandbox: Sandbox, documents: list[Path], out: Path, raw: Path, day: date) -> Night:
    params = RunParameters(
        documents=[str(p) for p in documents],
        out_dir=str(out),
        raw_dir=str(raw),
        snapshot_date=day,
        refresh=fast_settings(sandbox).refresh,
    )
    return run_night(params, settings=fast_settings(sandbox))


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nights]:
    """A first night of one list, then a night a week later of that list and the seeds."""
    root = tmp_path_factory.mktemp("report-nights")
    reading_list = write_reading_list(root / "docs")
    with Sandbox(hub=HubDouble(quota=1_000_000)) as sandbox:
        first = _night(sandbox, [reading_list], root / "out", root / "raw", FIRST)
        later = _night(sandbox, [reading_list, SEEDS], root / "out", root / "raw", WEEK_LATER)
    yield Nights(root / "out", first, later)


def test_every_night_that_publishes_writes_its_report_and_the_run_report_links_it(
    nights: Nights,
) -> None:
    for run, day in ((nights.first, FIRST), (nights.later, WEEK_LATER)):
        path = Path(report_path(nights.out, day))
        assert run.summary.published and run.summary.report_error is None
        assert run.summary.report_path == str(path.resolve()) and path.is_file()
        assert f"({path.resolve().as_uri()})" in markdown_report(run.summary)
        assert f"report: {path.resolve()}" in short_summary(run.summary)
        assert "report" in run.summary.stage_seconds


def test_a_week_later_every_panel_has_data(nights: Nights) -> None:
    text = Path(report_path(nights.out, WEEK_LATER)).read_text("utf-8")

    assert empty_panels(text) == []
    assert {key: marks(body) > 0 for key, body in sections(text).items()} == dict.fromkeys(
        PANELS, True
    )
    new_papers = set(load("papers", nights.out)["arxiv_id"]) - set(
        load("papers", nights.out, FIRST)["arxiv_id"]
    )
    for key in TABLE_PANELS:
        listed = re.findall(r'href="https://arxiv\.org/abs/([0-9.]+)', sections(text)[key])
        assert set(listed) <= new_papers and len(listed) == min(len(new_papers), 100)
    assert len(text.encode()) < 5 * 1024 * 1024


def test_reports_leave_every_reader_of_the_snapshot_as_it_was(nights: Nights) -> None:
    assert sorted(read_manifest(nights.out)["snapshot_date"]) == [FIRST, WEEK_LATER]
    assert len(load("papers", nights.out)) == nights.later.tables["papers"].num_rows
    history = pd.read_parquet(nights.out / "papers", dtype_backend="pyarrow")
    assert history["snapshot_date"].nunique() == 2
    glob = f"{nights.out}/papers/*/*.parquet"
    rows = duckdb.sql(f"select count(*) from read_parquet('{glob}', hive_partitioning=true)")
    assert rows is not None and rows.fetchall() == [(len(history),)]


def test_a_report_that_cannot_be_written_leaves_the_night_published(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / REPORTS_DIR).write_text("a file where the reports folder goes")
    reading_list = write_reading_list(tmp_path / "docs")
    with Sandbox(hub=HubDouble(quota=1_000_000)) as sandbox:
        run = _night(sandbox, [reading_list], out, tmp_path / "raw", FIRST)

    assert run.summary.published and run.summary.report_path is None
    assert run.summary.report_error and "reports" in run.summary.report_error
    assert "report: not written (" in markdown_report(run.summary)
    assert "report: not written (" in short_summary(run.summary)
    assert read_manifest(out)["published"].tolist() == [True]


# -- in a real browser -------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LAPTOP = {"width": 1366, "height": 768}


def _browser_or_skip() -> Any:
    """Playwright's sync API driving the OS's Chromium; a skip without it, except in CI."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        found = False
    else:
        found = CHROMIUM.exists()
    if not found:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the browser test: install chromium and playwright")
        pytest.skip("needs /usr/bin/chromium (apt-get install chromium) and playwright")
    return sync_playwright


FIGURE_CHECK = """() => [...document.querySelectorAll('section[data-figure]')].map(s => ({
  key: s.dataset.figure,
  empty: s.querySelector('[data-empty]') !== null,
  marks: [...s.querySelectorAll('[id*="-mark-"], tr[data-mark]')].filter(m => {
    const box = m.getBoundingClientRect();
    return box.width > 0 || box.height > 0;
  }).length,
  svgWidth: Math.max(0, ...[...s.querySelectorAll('svg')].map(
    v => v.getBoundingClientRect().width)),
}))"""


@pytest.mark.parametrize(
    ("day", "expect_empty"),
    [(WEEK_LATER, []), (FIRST, ["new-night", "new-week", "overlap"])],
    ids=["a week later: every figure has data", "first night: no data yet where none is"],
)
def test_the_report_renders_in_chromium_with_no_error_and_no_request(
    nights: Nights, tmp_path: Path, day: date, expect_empty: list[str]
) -> None:
    sync_playwright = _browser_or_skip()
    # A copy in a folder of its own: nothing beside it for the page to reach for.
    page_path = tmp_path / "report.html"
    shutil.copyfile(report_path(nights.out, day), page_path)
    url = page_path.as_uri()
    console: list[str] = []
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=LAPTOP)
            page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(url, wait_until="load")
            figures = page.evaluate(FIGURE_CHECK)
            title = page.title()
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
        finally:
            browser.close()

    assert title == f"MLLM papers: the night of {day.isoformat()}"
    assert [f["key"] for f in figures] == list(PANELS)
    assert [f["key"] for f in figures if f["empty"]] == expect_empty
    for figure in figures:
        assert (figure["marks"] > 0) != figure["empty"], figure
        if figure["key"] not in TABLE_PANELS and not figure["empty"]:
            assert 0 < figure["svgWidth"] <= LAPTOP["width"], figure
    assert overflow <= 0  # nothing wider than a laptop's screen
    assert console == [] and errors == []
    assert requests == [url]  # the page itself, and nothing else
