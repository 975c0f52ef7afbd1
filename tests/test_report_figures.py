"""The nightly report's figure data (`pipeline.report.figures`): tables built here, with
only the columns each builder reads, in; the small frames the figures draw, out."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from pipeline.report import figures
from pipeline.snapshot.schemas import MANIFEST_SCHEMA, TABLE_SCHEMAS


def table(name: str, columns: dict[str, list[Any]]) -> pa.Table:
    """A table of `name` with only `columns`, typed as its declared schema types them."""
    schema = TABLE_SCHEMAS[name]
    return pa.table(columns, schema=pa.schema([schema.field(c) for c in columns]))


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


# -- papers per month ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("published", "categories", "top", "expected"),
    [
        ([], [], 6, []),
        (
            ["2024-01-05", "2024-01-31T23:59:59", "2024-02-01", None],
            ["cs.CV", "cs.CV", "cs.CL", "cs.CV"],
            6,
            [("2024-01", "cs.CV", 2), ("2024-02", "cs.CL", 1)],
        ),
        (
            ["2024-03-01", "2024-03-02", "2024-03-03", "2024-04-01", "2024-04-02"],
            ["cs.CV", "cs.CV", "cs.CL", "cs.AI", None],
            1,
            [
                ("2024-03", "cs.CV", 2),
                ("2024-03", "other", 1),
                ("2024-04", "other", 1),
                ("2024-04", "unknown", 1),
            ],
        ),
    ],
    ids=["no papers", "by month and category, undated left out", "top categories, rest other"],
)
def test_papers_per_month_counts_first_versions_by_month_and_category(
    published: list[str | None],
    categories: list[str | None],
    top: int,
    expected: list[tuple[str, str, int]],
) -> None:
    papers = table(
        "papers",
        {
            "published": [at(p) if p else None for p in published],
            "primary_category": categories,
        },
    )

    frame = figures.papers_per_month(papers, top=top)

    assert list(frame.itertuples(index=False, name=None)) == expected
    assert frame["papers"].dtype == "int64"  # plain NumPy: `.dt`, sums and plots just work


# -- what is new ---------------------------------------------------------------------------

PAPERS = table(
    "papers",
    {
        "arxiv_id": ["2409.12191", "2502.13923"],
        "title": ["Qwen2-VL", "Qwen2.5-VL"],
        "documents": [["a.md"], ["a.md", "b.md"]],
        "abs_url": ["https://arxiv.org/abs/2409.12191v2", "javascript:alert(1)"],
    },
)
MODELS = table(
    "models",
    {
        "repo_id": ["Qwen/Qwen2-VL-7B"],
        "pipeline_tag": ["image-text-to-text"],
        "documents": [["b.md"]],
    },
)


def changes(rows: list[tuple[str, str, str]]) -> pa.Table:
    return table(
        "changes",
        {
            "entity_type": [r[0] for r in rows],
            "entity_id": [r[1] for r in rows],
            "change": [r[2] for r in rows],
        },
    )


def test_new_since_the_previous_night_lists_what_the_changes_table_added() -> None:
    rows = [
        ("paper", "2502.13923", "added"),
        ("paper", "2409.12191", "changed"),
        ("model", "Qwen/Qwen2-VL-7B", "added"),
        ("paper", "2301.00001", "removed"),
        ("dataset", "a/b", "added"),  # not a paper or a model: not listed
    ]

    new = figures.new_since_previous(date(2026, 3, 1), changes(rows), PAPERS, MODELS)

    assert new.since == date(2026, 3, 1)
    assert new.removed == {"paper": 1, "model": 0}
    assert list(new.added.itertuples(index=False, name=None)) == [
        ("paper", "2502.13923", "Qwen2.5-VL", "a.md, b.md", "https://arxiv.org/abs/2502.13923"),
        (
            "model",
            "Qwen/Qwen2-VL-7B",
            "image-text-to-text",
            "b.md",
            "https://huggingface.co/Qwen/Qwen2-VL-7B",
        ),
    ]


def test_a_first_night_has_no_previous_night_to_list_news_against() -> None:
    first = changes([("paper", "2409.12191", "added")])

    new = figures.new_since_previous(None, first, PAPERS, MODELS)

    assert new.since is None and new.added.empty


def test_a_night_that_changed_nothing_has_nothing_new_since_the_previous_one() -> None:
    new = figures.new_since_previous(date(2026, 3, 1), changes([]), PAPERS, MODELS)

    assert (
        new.since == date(2026, 3, 1)
        and new.added.empty
        and new.removed
        == {
            "paper": 0,
            "model": 0,
        }
    )


@pytest.mark.parametrize(
    ("earlier_ids", "since", "added", "removed"),
    [
        (["2409.12191"], date(2026, 3, 1), ["2502.13923"], 0),
        (["2409.12191", "2502.13923", "2301.00001"], date(2026, 3, 1), [], 1),
        ([], None, [], 0),
    ],
    ids=["one new", "one gone", "no snapshot a week old"],
)
def test_new_since_a_snapshot_is_what_tonight_has_and_it_had_not(
    earlier_ids: list[str], since: date | None, added: list[str], removed: int
) -> None:
    earlier = table("papers", {"arxiv_id": earlier_ids})
    earlier_models = MODELS if since else None

    new = figures.new_since_snapshot(since, PAPERS, MODELS, earlier, earlier_models)

    assert new.since == since
    assert new.added["entity_id"].tolist() == added
    assert new.removed.get("paper", 0) == removed


# -- overlap of the lists ------------------------------------------------------------------


def test_the_overlap_counts_papers_shared_between_each_pair_of_lists() -> None:
    papers = table(
        "papers",
        {
            "documents": [
                ["a.md", "b.md"],
                ["a.md", "b.md", "c.md"],
                ["a.md"],
                ["c.md", "c.md"],  # one list, however often it mentions the paper
                [],
            ]
        },
    )

    frame = figures.list_overlap(papers)

    assert frame.index.tolist() == frame.columns.tolist() == ["a.md", "b.md", "c.md"]
    assert frame.to_numpy().tolist() == [[3, 2, 1], [2, 2, 1], [1, 1, 2]]


@pytest.mark.parametrize(
    ("documents", "most", "expected"),
    [
        ([["a.md"], ["a.md"]], 12, []),
        ([["a.md", "b.md"], ["c.md", "b.md"], ["c.md"], ["c.md"]], 2, ["c.md", "b.md"]),
    ],
    ids=["one list: nothing to overlap", "the lists with most papers"],
)
def test_the_overlap_keeps_the_lists_with_most_papers(
    documents: list[list[str]], most: int, expected: list[str]
) -> None:
    frame = figures.list_overlap(table("papers", {"documents": documents}), most=most)

    assert frame.index.tolist() == expected


# -- models ----------------------------------------------------------------------------------

SIZED = table(
    "models",
    {
        "repo_id": ["b/big", "a/small", "c/unsized", "d/undated", "e/tts", "f/asr"],
        "created_at": [
            at("2025-02-01"),
            at("2024-06-01"),
            at("2024-01-01"),
            None,
            at("2025-01-01"),
            at("2025-03-01"),
        ],
        "params_total": [
            72_000_000_000,
            2_000_000_000,
            None,
            7_000_000_000,
            80_000_000,
            800_000_000,
        ],
        "downloads": [10, 5_000, 900, None, 10, 42],
        "pipeline_tag": [
            "image-text-to-text",
            "image-text-to-text",
            None,
            None,
            "text-to-speech",
            None,
        ],
    },
)


def test_model_sizes_are_the_models_with_a_size_and_a_date_by_date() -> None:
    frame = figures.model_sizes(SIZED, top=1)

    assert list(frame.itertuples(index=False, name=None)) == [
        ("a/small", datetime(2024, 6, 1), 2_000_000_000, "image-text-to-text"),
        ("e/tts", datetime(2025, 1, 1), 80_000_000, "other"),
        ("b/big", datetime(2025, 2, 1), 72_000_000_000, "image-text-to-text"),
        ("f/asr", datetime(2025, 3, 1), 800_000_000, "unknown"),
    ]


@pytest.mark.parametrize(
    ("by", "n", "expected"),
    [
        (
            "params_total",
            3,
            [("b/big", 72_000_000_000), ("d/undated", 7_000_000_000), ("a/small", 2_000_000_000)],
        ),
        ("downloads", 2, [("a/small", 5_000), ("c/unsized", 900)]),
        (
            "downloads",
            10,
            [("a/small", 5_000), ("c/unsized", 900), ("f/asr", 42), ("b/big", 10), ("e/tts", 10)],
        ),
    ],
    ids=["biggest", "most downloaded", "ties by ID, no value left out"],
)
def test_top_models_are_the_largest_first(by: str, n: int, expected: list[tuple[str, int]]) -> None:
    frame = figures.top_models(SIZED, by, n)

    assert list(zip(frame["repo_id"], frame["value"], strict=True)) == expected


# One 675B model four times (base, instruct, NVFP4, GGUF), as issue 13 found the biggest
# models listed; a fine-tune of a base outside the table; a model alone.
FAMILIES = table(
    "models",
    {
        "repo_id": ["m/base", "m/instruct", "m/nvfp4", "m/gguf", "t/tuned", "s/solo"],
        "family": ["m/base", "m/base", "m/base", "m/base", "outside/root", None],
        "params_total": [675, 675, 675, None, 70, 7],
        "downloads": [10, 900, 500, 3_000, 50, 60],
    },
)


@pytest.mark.parametrize(
    ("models", "by", "per_family", "expected"),
    [
        (
            FAMILIES,
            "params_total",
            True,
            [
                ("m/base", "m/base", 4, 675),
                ("t/tuned", "outside/root", 1, 70),
                ("s/solo", "s/solo", 1, 7),
            ],
        ),
        (
            FAMILIES,
            "downloads",
            False,
            [
                ("m/gguf", "m/base", 4, 3_000),
                ("m/instruct", "m/base", 4, 900),
                ("m/nvfp4", "m/base", 4, 500),
                ("s/solo", "s/solo", 1, 60),
                ("t/tuned", "outside/root", 1, 50),
                ("m/base", "m/base", 4, 10),
            ],
        ),
        (
            FAMILIES,
            "downloads",
            True,
            [
                ("m/gguf", "m/base", 4, 3_000),
                ("s/solo", "s/solo", 1, 60),
                ("t/tuned", "outside/root", 1, 50),
            ],
        ),
        # A night from before the `family` column: each model is its own family.
        (
            FAMILIES.drop_columns(["family"]),
            "params_total",
            True,
            [
                ("m/base", "m/base", 1, 675),
                ("m/instruct", "m/instruct", 1, 675),
                ("m/nvfp4", "m/nvfp4", 1, 675),
                ("t/tuned", "t/tuned", 1, 70),
                ("s/solo", "s/solo", 1, 7),
            ],
        ),
    ],
    ids=["biggest per family", "downloads per model", "downloads per family", "no family column"],
)
def test_top_models_group_variants_by_family(
    models: pa.Table, by: str, per_family: bool, expected: list[tuple[str, str, int, int]]
) -> None:
    frame = figures.top_models(models, by, per_family=per_family)

    columns = ["repo_id", "family", "variants", "value"]
    assert list(frame[columns].itertuples(index=False, name=None)) == expected


def test_no_models_make_empty_frames() -> None:
    empty = TABLE_SCHEMAS["models"].empty_table()

    assert figures.model_sizes(empty).empty
    assert figures.top_models(empty, "downloads").empty
    assert figures.model_sizes(None).empty


# -- coverage ------------------------------------------------------------------------------


def test_coverage_counts_papers_with_code_and_with_models_per_list() -> None:
    model = {
        "repo_id": "Qwen/Qwen2-VL-7B",
        "params_total": None,
        "size_label": None,
        "pipeline_tag": None,
        "downloads": None,
    }
    papers = table(
        "papers",
        {
            "documents": [["a.md"], ["a.md", "b.md"], ["b.md"], ["b.md"]],
            "code_urls": [["https://github.com/x/y"], [], [], []],
            "github_repos": [[], ["x/z"], [], []],
            "hf_github_repo": [None, None, "https://github.com/q/r", None],
            "hf_models": [[], [model], [model], []],
        },
    )

    frame = figures.coverage(papers)

    assert list(frame.itertuples(index=False, name=None)) == [
        (figures.ALL_LISTS, 4, 3, 2),
        ("a.md", 2, 2, 1),
        ("b.md", 3, 2, 2),
    ]
    assert figures.coverage(papers, most=1)["document"].tolist() == [figures.ALL_LISTS, "b.md"]
    assert figures.coverage(TABLE_SCHEMAS["papers"].empty_table()).empty


# -- data health ---------------------------------------------------------------------------


def test_lookup_health_counts_each_lookups_rows_by_status_per_night() -> None:
    def papers(statuses: list[str], pages: list[str]) -> pa.Table:
        return table(
            "papers",
            {
                "arxiv_id": [f"2409.1219{i}" for i in range(len(statuses))],
                "status": statuses,
                "status_reason": [None] * len(statuses),
                "hf_page_status": pages,
                "hf_page_status_reason": [None] * len(statuses),
            },
        )

    models = table("models", {"repo_id": ["a/b"], "status": ["error"], "status_reason": ["x"]})
    nights = {
        date(2026, 3, 2): {"papers": papers(["ok", "stale"], ["ok", "error"]), "models": models},
        date(2026, 3, 1): {"papers": papers(["ok"], ["not_found"])},
    }

    frame = figures.lookup_health(nights)

    assert list(frame.itertuples(index=False, name=None)) == [
        (date(2026, 3, 1), "papers", 1, 0, 0, 0),
        (date(2026, 3, 1), "papers (paper pages)", 0, 1, 0, 0),
        (date(2026, 3, 2), "papers", 1, 0, 0, 1),
        (date(2026, 3, 2), "papers (paper pages)", 1, 0, 1, 0),
        (date(2026, 3, 2), "models", 0, 0, 1, 0),
    ]
    assert frame.columns.tolist() == [
        "snapshot_date",
        "lookup",
        "ok",
        "not_found",
        "error",
        "stale",
    ]


def test_run_health_keeps_the_runs_of_the_window_failed_ones_included() -> None:
    def run(run_id: str, day: date, status: str, published: bool, hour: int) -> dict[str, Any]:
        return {
            "run_id": run_id,
            "snapshot_date": day,
            "status": status,
            "published": published,
            "finished_at": datetime(2026, 3, day.day, hour, tzinfo=UTC),
        }

    rows = [
        run("old", date(2026, 1, 30), "ok", True, 3),
        run("second", date(2026, 3, 1), "partial", True, 5),
        run("first", date(2026, 3, 1), "failed", False, 3),
        run("later", date(2026, 3, 2), "ok", True, 3),
    ]
    manifest = pa.Table.from_pylist(
        rows, schema=pa.schema([MANIFEST_SCHEMA.field(c) for c in rows[0]])
    ).to_pandas(types_mapper=pd.ArrowDtype)
    manifest["current"] = [True, True, False, True]

    frame = figures.run_health(manifest, until=date(2026, 3, 1), nights=30)

    assert frame[["run_id", "status", "published", "current"]].to_numpy().tolist() == [
        ["first", "failed", False, False],
        ["second", "partial", True, True],
    ]
    assert figures.run_health(manifest.iloc[0:0], date(2026, 3, 1)).empty
