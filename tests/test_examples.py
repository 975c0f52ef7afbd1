"""examples/analyst.ipynb runs against a sandbox night and answers its questions.

The notebook is executed as Jupyter runs it (nbclient, an ipykernel kernel), reading the
snapshot root from `PIPELINE_SNAPSHOT_ROOT`; its answers are checked against the same
questions asked of the Parquet folders with DuckDB, another reader than `load()`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb
import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "analyst.ipynb"


def read_notebook() -> Any:
    return nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]


def test_the_notebook_is_committed_without_outputs() -> None:
    notebook = read_notebook()
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


@pytest.fixture(scope="module")
def executed(quick_start_dir: Path) -> list[list[dict[str, Any]]]:
    """The outputs of each code cell, the notebook run from the quick start's folder."""
    notebook = read_notebook()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIPELINE_SNAPSHOT_ROOT", str(quick_start_dir / "enriched" / "sandbox"))
        client = NotebookClient(
            notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": "."}}
        )
        client.execute()
    return [cell.outputs for cell in notebook.cells if cell.cell_type == "code"]


def _text(outputs: list[dict[str, Any]]) -> str:
    parts = []
    for output in outputs:
        assert output["output_type"] != "error", output
        if output["output_type"] == "stream":
            parts.append(output["text"])
        elif "data" in output:
            parts.append(output["data"]["text/plain"])
    return "\n".join(parts)


def _sql(root: Path, query: str) -> Any:
    tables = {
        name: f"read_parquet('{root / 'enriched' / 'sandbox' / name}/*/*.parquet')"
        for name in ("papers", "models")
    }
    relation = duckdb.sql(query.format(**tables))
    assert relation is not None
    [row] = relation.fetchall()
    return row[0] if len(row) == 1 else row


def test_papers_per_month(executed: list[list[dict[str, Any]]], quick_start_dir: Path) -> None:
    papers, months, first, last = _sql(
        quick_start_dir,
        "SELECT count(published), count(DISTINCT strftime(published, '%Y-%m')),"
        " strftime(min(published), '%Y-%m'), strftime(max(published), '%Y-%m') FROM {papers}",
    )
    assert papers > 100 and months > 12
    text = _text(executed[1])
    assert f"{papers} papers over {months} months, {first} to {last}" in text
    assert re.search(r"^20\d\d-\d\d\s+\d", text, re.MULTILINE)  # the month table has rows


def test_largest_models_per_family(
    executed: list[list[dict[str, Any]]], quick_start_dir: Path
) -> None:
    families, models = _sql(
        quick_start_dir,
        "SELECT count(DISTINCT family), count(*) FROM {models} WHERE params_total IS NOT NULL",
    )
    assert families < models  # variants share a family
    text = _text(executed[2])
    assert f"{families} families among {models} models with a size" in text
    family, variants = _sql(
        quick_start_dir,
        "SELECT family, count(*) FROM {models} WHERE family = (SELECT family FROM {models}"
        " ORDER BY params_total DESC NULLS LAST LIMIT 1) GROUP BY family",
    )
    assert variants > 1
    # The 675B model once, with its variants, not once per quantisation.
    assert f"largest: the {family} family, 675B ({variants} variants)" in text
    assert len(re.findall(r"\s675B\s*$", text, re.MULTILINE)) == 1


def test_papers_in_several_lists(
    executed: list[list[dict[str, Any]]], quick_start_dir: Path
) -> None:
    several = _sql(quick_start_dir, "SELECT count(*) FROM {papers} WHERE len(documents) > 1")
    assert several > 0
    text = _text(executed[3])
    assert f"{several} papers are in more than one list" in text
    first = _sql(quick_start_dir, "SELECT min(arxiv_id) FROM {papers} WHERE len(documents) > 1")
    assert first in text


def test_papers_without_code(executed: list[list[dict[str, Any]]], quick_start_dir: Path) -> None:
    without, papers = _sql(
        quick_start_dir,
        "SELECT count(*) FILTER (WHERE len(code_urls) = 0 AND hf_github_repo IS NULL"
        " AND len(github_repos) = 0 AND title IS NOT NULL), count(*) FROM {papers}",
    )
    assert 0 < without < papers
    assert f"{without} of {papers} papers have no code anywhere" in _text(executed[4])
