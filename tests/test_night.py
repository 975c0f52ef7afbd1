"""`pipeline.night`: one night in plain Python, as `pipeline run` runs it without Prefect.

The same function runs under the Prefect flow (`test_flow.py`, and `test_faults.py` checks
that both publish the same tables); these tests drive it directly against the loopback
double.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from nights import FAST_ENV, fast_settings, run_night, write_reading_list

from pipeline.links.documents import extract_links
from pipeline.night import NothingToPublish, Plan, ThreadExecutor, entities_of, plan_night
from pipeline.night import run_night as pipeline_run_night
from pipeline.parameters import RunParameters
from pipeline.sandbox import Fault, Sandbox
from pipeline.sandbox.hub_api import HubDouble
from pipeline.snapshot.read import load, read_manifest

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "raw" / "seeds"
DAY = date(2026, 3, 1)

LIST = """# Papers

- [Qwen2-VL](https://arxiv.org/pdf/2409.12191v2) see also https://hf-mirror.com/Qwen/Qwen2-VL-72B
- [NVLM: Open Frontier-Class Multimodal LLMs](https://zhuanlan.zhihu.com/p/720542712)
- [bad](https://arxiv.org/abs/2413.99999) [collection](https://huggingface.co/collections/OpenGVLab/internvl-25-673e1019b66e2218f68d7c1c)
"""


@pytest.fixture(scope="module")
def double() -> Iterator[Sandbox]:
    # The module asks far more than the Hub's 500 requests per 5 minutes: no quota here.
    with Sandbox(hub=HubDouble(quota=1_000_000)) as sandbox:
        yield sandbox


def test_a_night_of_the_seeds_publishes_every_table_with_no_flow_run(
    double: Sandbox, tmp_path: Path
) -> None:
    night = run_night([SEEDS], tmp_path / "out", tmp_path / "raw", fast_settings(double), DAY)

    assert night.status == "ok", night.unresolved
    assert {"links", "papers", "models", "repos", "github_repos", "changes"} <= set(night.tables)
    manifest = read_manifest(tmp_path / "out")
    assert manifest["status"].tolist() == ["ok"]
    assert manifest["flow_run_id"].isna().all()  # no Prefect, no flow run
    assert len(load("links", tmp_path / "out")) == 497


def test_links_found_by_title_lead_to_their_paper_once(double: Sandbox, tmp_path: Path) -> None:
    night = run_night([SEEDS], tmp_path / "out", tmp_path / "raw", fast_settings(double), DAY)

    links = night.tables["links"].to_pylist()
    by_title = [link for link in links if link["resolved_by"] == "title"]
    assert by_title, "the seeds have links that reach their paper by title only"
    papers = {row["arxiv_id"] for row in night.tables["papers"].to_pylist()}
    assert {link["resolved_arxiv_id"] for link in by_title} <= papers


def test_documents_without_links_publish_nothing(double: Sandbox, tmp_path: Path) -> None:
    docs = write_reading_list(tmp_path / "docs", "# Nothing here\n\nJust words.\n")

    with pytest.raises(NothingToPublish, match="no links in 1 documents"):
        run_night([docs], tmp_path / "out", tmp_path / "raw", fast_settings(double), DAY)

    manifest = read_manifest(tmp_path / "out")
    assert manifest["status"].tolist() == ["failed"]
    assert not manifest["published"].any()
    assert not (tmp_path / "out" / "papers").exists()


def test_a_dry_run_asks_nothing_and_writes_nothing(double: Sandbox, tmp_path: Path) -> None:
    params = RunParameters(
        documents=[str(SEEDS)],
        out_dir=str(tmp_path / "out"),
        raw_dir=str(tmp_path / "raw"),
        dry_run=True,
    )
    double.reset_log()

    night = pipeline_run_night(params, settings=fast_settings(double))

    assert night.summary.status == "dry_run"
    assert night.summary.entities_asked["arxiv"] == 163
    assert not double.log
    assert not (tmp_path / "out").exists() and not (tmp_path / "raw").exists()


@pytest.mark.parametrize(
    ("resolvers", "limit", "expected"),
    [
        (["arxiv", "hub"], None, {"arxiv": 163, "arxiv_titles": 0, "paper_pages": 0}),
        (["arxiv_titles"], None, {"arxiv": 0, "hub": 0, "paper_pages": 0}),
        (["arxiv", "arxiv_titles", "hub", "paper_pages"], 5, {"arxiv": 5, "paper_pages": 5}),
    ],
)
def test_the_plan_asks_only_the_resolvers_and_limit_given(
    resolvers: list[str], limit: int | None, expected: dict[str, int]
) -> None:
    params = RunParameters(documents=[str(SEEDS)], resolvers=resolvers, limit=limit)  # type: ignore[arg-type]
    plan = plan_night(params, extract_links([SEEDS]).links)

    assert isinstance(plan, Plan)
    sizes = plan.sizes()
    for name, size in expected.items():
        assert sizes[name] == size, name
    if limit is not None:
        assert all(size <= limit for size in sizes.values())


def test_the_thread_executor_keeps_document_order(tmp_path: Path) -> None:
    docs = [
        write_reading_list(tmp_path, f"- [x](https://arxiv.org/abs/2409.1219{n})\n", f"{n}.md")
        for n in range(6)
    ]
    with ThreadExecutor() as executor:
        extracted = list(executor.extract([(path.name, path) for path in docs]))

    assert [document.name for document, _ in extracted] == [path.name for path in docs]
    assert [links.column("entity_id")[0].as_py() for _, links in extracted] == [
        f"2409.1219{n}" for n in range(6)
    ]


def test_the_direct_run_never_imports_prefect(tmp_path: Path, double: Sandbox) -> None:
    """`pipeline run` without a Prefect server starts at once: Prefect is not imported."""
    code = (
        "import sys\n"
        "from pipeline.cli import main\n"
        f"code = main(['run', {str(SEEDS)!r}, '--out', {str(tmp_path / 'out')!r},"
        f" '--raw', {str(tmp_path / 'raw')!r}])\n"
        "assert 'prefect' not in sys.modules, 'prefect was imported'\n"
        "sys.exit(code)\n"
    )
    env = {**FAST_ENV, **double.env(), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )

    assert result.returncode == 0, result.stderr
    assert "published" in result.stdout


def test_entities_are_distinct_valid_and_sorted(tmp_path: Path) -> None:
    (tmp_path / "list.md").write_text(LIST)
    extraction = extract_links([tmp_path])
    entities = entities_of(extraction.links)
    assert entities.arxiv_ids == ["2409.12191"]  # 2413 is no month: never asked
    assert entities.hub_repos == [
        ("collection", "OpenGVLab/internvl-25-673e1019b66e2218f68d7c1c"),
        ("model", "Qwen/Qwen2-VL-72B"),
    ]


def test_identifiers_that_climb_paths_are_never_entities(tmp_path: Path) -> None:
    (tmp_path / "list.md").write_text(
        "- https://github.com/../../etc/passwd\n"
        "- https://huggingface.co/datasets/%2e%2e/%2e%2e/etc/passwd\n"
        "- https://arxiv.org/abs/../abs/2409.12191\n"
    )
    extraction = extract_links([tmp_path])
    assert [link.identity.valid for link in extraction.links] == [False, False, False]
    entities = entities_of(extraction.links)
    assert (entities.arxiv_ids, entities.hub_repos) == ([], [])
    assert [link.resolved_arxiv_id for link in extraction.links] == [None, None, None]


def test_failed_title_searches_make_a_first_night_partial(tmp_path: Path) -> None:
    """On a first night a paper whose title search failed is in no table at all: only the
    title searches' own count can say the night is not whole."""
    with Sandbox(hub=HubDouble(quota=1_000_000)) as double:
        double.add_fault(
            Fault(api="arxiv", kind="status", status=503, match="search_query", times=-1)
        )
        night = run_night([SEEDS], tmp_path / "out", tmp_path / "raw", fast_settings(double), DAY)

    assert night.status == "partial"
    manifest = read_manifest(tmp_path / "out")
    reason = str(manifest["status_reason"].iloc[-1])
    assert "titles (arXiv search): 62 error" in reason, reason
    assert all(row["reason"] for row in night.unresolved["titles"])


def test_every_model_of_the_sandbox_sample_has_its_logical_size(
    double: Sandbox, tmp_path: Path
) -> None:
    night = run_night([SEEDS], tmp_path / "out", tmp_path / "raw", fast_settings(double), DAY)
    assert night.status == "ok", night.unresolved
    models = load("models", tmp_path / "out").set_index("repo_id")
    good = models[models["status"] == "ok"]
    assert good["params_total"].notna().all(), good[good["params_total"].isna()].index.tolist()
    nvfp4 = "mistralai/Mistral-Large-3-675B-Instruct-2512-NVFP4"
    packed = {
        nvfp4: "compressed-tensors/nvfp4-pack-quantized",
        "openbmb/MiniCPM-Llama3-V-2_5-int4": "bitsandbytes-4bit",
        "sample-org/Llama-4-Scout-17B-16E-Instruct-GPTQ-Int4": "gptq",
        "sample-org/Llama-4-Scout-17B-16E-Instruct-AWQ": "awq",
    }
    for model_id, packing in packed.items():
        row = good.loc[model_id]
        assert row["params_source"] == f"safetensors_unpacked:{packing}"
        assert row["params_stored"] < row["params_total"]
    # A quantised model is as large as its base, whatever its storage.
    quantized = good[good["base_model_relation"] == "quantized"]
    assert len(quantized) >= 6
    for quantized_id, row in quantized.iterrows():
        if row["base_model"] in good.index:
            base = good.loc[row["base_model"], "params_total"]
            assert abs(row["params_total"] - base) <= 0.005 * base, quantized_id
    assert good.loc["mistralai/Mistral-Large-3-675B-Instruct-2512-GGUF", "params_source"] == "gguf"
    # One family per 675B model: Base, Instruct and its three quantisations.
    mistral = good[good.index.str.startswith("mistralai/Mistral-Large-3-675B")]
    assert set(mistral["family"]) == {"mistralai/Mistral-Large-3-675B-Base-2512"}
    assert len(mistral) == 4
    # A base that is not in the table is the family.
    assert good.loc["openbmb/MiniCPM-Llama3-V-2_5-int4", "family"] == "openbmb/MiniCPM-Llama3-V-2_5"
    assert good.loc["Qwen/Qwen2-VL-72B", "family"] == "Qwen/Qwen2-VL-72B"  # no base
