"""docs/analysts.md: every snippet runs, in order, against a sandbox snapshot, gives the
answers it says, and the pitfalls it warns of are real (so the page cannot rot).

The snippets run from a folder where `pipeline run --sandbox` ran, as after the README's
quick start (`quick_start_dir`), in one namespace, as a reader pasting them would."""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from pipeline import load

DOC = Path(__file__).resolve().parent.parent / "docs" / "analysts.md"
README = DOC.parent.parent / "README.md"


def snippets(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", path.read_text(encoding="utf-8"), re.S | re.M)


@pytest.fixture(scope="module")
def ran(quick_start_dir: Path) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(quick_start_dir)
        for number, code in enumerate(snippets(DOC), 1):
            exec(compile(code, f"{DOC.name} snippet {number}", "exec"), namespace)
    return namespace


def test_the_page_has_its_snippets() -> None:
    assert len(snippets(DOC)) == 5


def test_months(ran: dict[str, Any]) -> None:
    papers: pd.DataFrame = ran["papers"]
    dated = int(papers["published"].notna().sum())
    assert dated > 100
    per_month = ran["per_month"]
    assert per_month.sum() == dated and all(re.fullmatch(r"\d{4}-\d\d", m) for m in per_month.index)
    assert list(per_month.index) == sorted(per_month.index)
    assert ran["per_month_start"].sum() == dated
    assert len(ran["per_month_start"]) >= len(per_month)  # the empty months too
    assert ran["per_year"].sum() == dated
    assert str(ran["period"].dtype) == "period[M]"
    periods = ran["period"].dropna().astype(str).value_counts().sort_index()
    assert list(periods.index) == list(per_month.index) and list(periods) == list(per_month)
    recent = ran["recent"]
    assert 0 < len(recent) < len(papers)
    assert len(ran["seen_this_year"]) == len(ran["models"])  # the sandbox night is in 2026+


def test_lists_and_structs(ran: dict[str, Any]) -> None:
    papers: pd.DataFrame = ran["papers"]
    several = ran["in_several_lists"]
    assert len(several) > 0
    assert all(len(documents) > 1 for documents in several["documents"])
    assert ran["papers_per_list"].sum() == sum(len(d) for d in papers["documents"])
    cited = ran["cited"]
    assert len(cited) > 0 and cited["repo_id"].notna().all() and cited["size"].notna().any()
    without = ran["without_code"]
    assert 0 < len(without) < len(papers)
    assert all(len(urls) == 0 for urls in without["code_urls"])
    assert without["hf_github_repo"].isna().all()


def test_sizes(ran: dict[str, Any]) -> None:
    models: pd.DataFrame = ran["models"]
    assert ran["downloads"].dtype == pd.ArrowDtype(pa.int64()) and ran["downloads"].notna().all()
    assert ran["sizes"].dtype == "float64" and len(ran["sizes"]) == len(models)
    largest = ran["largest_per_family"]
    top_size = models["params_total"].max()
    assert largest["family"].is_unique
    assert largest.iloc[0]["size_label"] == "675B"
    assert (largest["size_label"] == "675B").sum() == 1  # once, not once per variant
    top = largest.iloc[0]
    tied = models[(models["family"] == top["family"]) & (models["params_total"] == top_size)]
    assert top["repo_id"] == min(tied["repo_id"])  # equal sizes: the first repo ID, every time
    assert len(ran["unpacked"]) >= 4


def test_folders(ran: dict[str, Any]) -> None:
    night = datetime.date.fromisoformat(ran["papers"].attrs["snapshot_date"])
    assert ran["history"]["snapshot_date"].dtype == pd.ArrowDtype(pa.date32())
    assert set(ran["one_night"]["snapshot_date"]) == {night}
    assert len(ran["one_night"]) == len(ran["papers"])
    assert ran["as_text"]["snapshot_date"].dtype == pd.ArrowDtype(pa.date32())
    nights = ran["nights"]
    assert list(nights["papers"]) == [len(ran["papers"])]
    assert [value.date() for value in nights["snapshot_date"]] == [night]
    polars_papers = ran["polars_papers"]
    assert polars_papers.schema["snapshot_date"] == pl.Date
    assert polars_papers["snapshot_date"].unique().to_list() == [night]


# -- the pitfalls the page names are real ----------------------------------------------
def test_the_pitfalls_are_real(quick_start_dir: Path) -> None:
    root = quick_start_dir / "enriched" / "sandbox"
    papers = load("papers", root)
    with pytest.raises(AttributeError, match="to_period"):
        papers["published"].dt.to_period("M")
    with pytest.raises(TypeError, match="Invalid comparison"):
        _ = papers["published"] >= pd.Timestamp("2024-01-01")
    with pytest.raises(TypeError, match="Invalid comparison"):
        _ = papers["published"] >= "2024-01-01"
    with pytest.raises(AttributeError):
        papers["documents"].str.len()
    as_read = pd.read_parquet(root / "papers", dtype_backend="pyarrow")
    read_as = as_read["snapshot_date"].dtype
    assert isinstance(read_as, pd.ArrowDtype) and pa.types.is_dictionary(read_as.pyarrow_dtype)
    no_hive = pl.scan_parquet(f"{root}/papers/**/*.parquet").collect_schema()
    assert "snapshot_date" not in no_hive.names()


def test_the_readme_points_here_and_reads_folders_right() -> None:
    readme = README.read_text(encoding="utf-8")
    assert "docs/analysts.md" in readme and "examples/analyst.ipynb" in readme
    polars = re.findall(r"pl\.scan_parquet\([^)]*\)", readme)
    assert polars and all("hive_partitioning=True" in call for call in polars)
