"""Run parameters: what the UI form and the CLI validate."""

from __future__ import annotations

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
