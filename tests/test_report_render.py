"""The nightly report's markup (`pipeline.report.render`): what reaches the page is
escaped, nothing on it can fetch or run anything, and figures share one document
without sharing ids."""

from __future__ import annotations

import re
from datetime import date

import pandas as pd
import pytest

from pipeline.report.figures import NEW_COLUMNS, NEW_ITEMS_MAX, NewSince
from pipeline.report.render import (
    Panel,
    ReportPage,
    coverage_svg,
    family_label,
    human_count,
    new_table,
    papers_per_month_svg,
    render_page,
    top_models_svg,
)


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0, "0"), (999, "999"), (1_234, "1.23k"), (72e9, "72B"), (999.7e9, "1T"), (675e9, "675B")],
)
def test_counts_are_shown_with_three_digits_and_a_unit(value: float, shown: str) -> None:
    assert human_count(value) == shown


def _new(rows: list[tuple[str, str, str, str, str]]) -> NewSince:
    return NewSince(date(2026, 3, 1), pd.DataFrame(rows, columns=NEW_COLUMNS), {"paper": 2})


def test_what_is_new_is_escaped_and_bounded() -> None:
    hostile = ("paper", "2409.12191", "<script>alert(1)</script>", "a&b.md", 'https://x/"><b>')
    many = [("paper", f"2409.{10000 + i}", "t", "a.md", "https://arxiv.org/") for i in range(150)]

    text = new_table(_new([hostile, *many]), "the previous night")

    assert text is not None
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "a&amp;b.md" in text and 'href="https://x/&quot;&gt;&lt;b&gt;"' in text
    assert text.count('data-mark="row"') == NEW_ITEMS_MAX
    assert f"and {151 - NEW_ITEMS_MAX} more." in text
    assert "151 papers added, 2 removed, 0 models added, 0 removed" in text
    assert new_table(NewSince(None, pd.DataFrame(columns=NEW_COLUMNS), {}), "x") is None


def test_the_page_can_neither_fetch_nor_run_anything() -> None:
    per_month = pd.DataFrame(
        [("2024-01", "cs.CV", 3), ("2024-03", "cs.CL", 1)], columns=["month", "category", "papers"]
    )
    coverage = pd.DataFrame(
        [("all lists", 4, 2, 1), ("a.md", 4, 2, 1)],
        columns=["document", "papers", "with_code", "with_models"],
    )
    panels = [
        Panel("per-month", "Papers", "c", papers_per_month_svg(per_month)),
        Panel("coverage", "Coverage", "c", coverage_svg(coverage)),
        Panel("empty", "Nothing", "c", None, "No <models> yet."),
    ]
    page = ReportPage(date(2026, 3, 1), "run-1", "partial", "papers: 1 <stale>", {"papers": 4})

    text = render_page(page, panels)

    assert "default-src 'none'" in text  # the browser refuses any fetch the page might try
    assert not re.search(r"<script|<link|<img|<iframe|\bsrc=|@import|url\((?!#)", text)
    assert "papers: 1 &lt;stale&gt;" in text and "No &lt;models&gt; yet." in text
    ids = re.findall(r'\bid="([^"]+)"', text)
    assert len(ids) == len(set(ids))  # two figures, one document, no id twice
    for reference in re.findall(r'url\(#([^)]+)\)|href="#([^"]+)"', text):
        assert (reference[0] or reference[1]) in ids
    assert {i.split("-mark-")[0] for i in ids if "-mark-" in i} == {"per-month", "coverage"}


@pytest.mark.parametrize(
    ("repo_id", "family", "variants", "shown"),
    [
        ("m/instruct", "m/base", 4, "m/base (4 models)"),  # the family, not its largest
        ("m/base", "m/base", 1, "m/base"),
        ("t/tuned", "outside/root", 1, "t/tuned"),  # alone in the table: the model itself
    ],
)
def test_a_family_bar_names_the_family_and_its_models(
    repo_id: str, family: str, variants: int, shown: str
) -> None:
    assert family_label(repo_id, family, variants) == shown


def test_one_model_in_several_variants_is_one_biggest_bar_and_one_colour_of_downloads() -> None:
    columns = ["repo_id", "family", "variants", "value", "task"]
    biggest = pd.DataFrame(
        [("m/instruct", "m/base", 3, 675e9, "x"), ("s/solo", "s/solo", 1, 7e9, "x")],
        columns=columns,
    )
    downloaded = pd.DataFrame(
        [
            ("m/gguf", "m/base", 3, 3_000, "x"),
            ("s/solo", "s/solo", 1, 900, "x"),
            ("m/instruct", "m/base", 3, 60, "x"),
        ],
        columns=columns,
    )

    svg = top_models_svg(biggest, downloaded)

    assert svg is not None
    texts = re.findall(r">([^<]+)</text>", svg)
    assert "m/base (4 models)" not in texts and "m/base (3 models)" in texts
    assert "m/instruct" in texts and "m/gguf" in texts  # downloads stay per model
    # The bars, bottom up: biggest (solo, the family), then downloads (instruct, solo, gguf).
    fills = re.findall(r'id="top-models-mark-\d+">\s*<path[^>]*style="fill: (#[0-9a-f]+)', svg)
    assert len(fills) == 5
    assert fills[2] == fills[4] != fills[3]  # m/base's two variants share a colour
    assert texts[-2:] == ["family", "m/base"]  # the legend names the shared family only
