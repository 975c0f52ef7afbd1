"""Run parameters: what the UI form and the CLI validate."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline.config import RefreshPolicy
from pipeline.parameters import ALL_RESOLVERS, RunParameters


def test_defaults_read_the_seeds_with_every_resolver() -> None:
    params = RunParameters()
    assert params.documents == ["raw/seeds"]
    assert params.resolvers == list(ALL_RESOLVERS)
    assert params.refresh is RefreshPolicy.TTL
    assert (params.resolved_out_dir, params.resolved_raw_dir) == ("enriched", "raw")


@pytest.mark.parametrize(
    ("changes", "out_dir", "raw_dir"),
    [
        ({"sandbox": True}, "enriched/sandbox", "raw/sandbox"),
        ({"sandbox": True, "out_dir": "x", "raw_dir": "y"}, "x", "y"),
        ({"out_dir": "elsewhere"}, "elsewhere", "raw"),
    ],
)
def test_sandbox_runs_never_share_directories_with_real_ones(
    changes: dict[str, object], out_dir: str, raw_dir: str
) -> None:
    params = RunParameters.model_validate(changes)
    assert (params.resolved_out_dir, params.resolved_raw_dir) == (out_dir, raw_dir)


@pytest.mark.parametrize(
    "bad",
    [
        {"limit": 0},
        {"documents": []},
        {"resolvers": ["crossref"]},
        {"refresh": "sometimes"},
        {"snapshot_date": "2026-02-30"},
        {"unknown": 1},
        {"out_dir": "nosuchstore://bucket/enriched"},
        {"raw_dir": "nosuchstore://bucket/raw"},
    ],
)
def test_bad_parameters_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RunParameters.model_validate(bad)


def test_the_form_describes_every_field() -> None:
    schema = RunParameters.model_json_schema()
    assert all(field.get("description") for field in schema["properties"].values())


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("s3://bucket/enriched/", "s3://bucket/enriched"),
        ("file:///srv/enriched", "file:///srv/enriched"),
        ("enriched", "enriched"),
    ],
)
def test_object_store_urls_are_accepted_for_out_and_raw(given: str, kept: str) -> None:
    params = RunParameters(out_dir=given, raw_dir=given)
    assert params.resolved_out_dir == params.resolved_raw_dir == kept


def test_documents_may_be_github_files_and_a_bad_one_is_refused_naming_it() -> None:
    given = ["github:o/r/list.md@dev", "https://github.com/o/r/blob/main/README.md", "raw/seeds"]
    assert RunParameters(documents=given).documents == given
    with pytest.raises(ValidationError, match=r"'github:o/r': expected github:OWNER/REPO/PATH"):
        RunParameters(documents=["github:o/r"])


def test_a_sources_file_is_read_when_the_parameters_are_validated(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text("[[list]]\nname = 'a'\nsource = 'github:o/r/a.md'\n")
    bad.write_text("[[list]]\nname = 'a'\n")

    assert RunParameters(sources=str(good), backfill=3).backfill == 3
    with pytest.raises(ValidationError, match="`source` must be"):
        RunParameters(sources=str(bad))
    with pytest.raises(ValidationError, match="cannot read the sources file"):
        RunParameters(sources=str(tmp_path / "missing.toml"))
    with pytest.raises(ValidationError, match="backfill"):
        RunParameters(backfill=-1)


@pytest.mark.parametrize("field", ["out_dir", "raw_dir"])
def test_an_http_store_is_refused_naming_it(field: str) -> None:
    with pytest.raises(ValidationError, match=r"https://example.invalid/x: https:// cannot hold"):
        RunParameters.model_validate({field: "https://example.invalid/x"})
