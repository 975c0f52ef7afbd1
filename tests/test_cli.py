"""The `pipeline` command: every subcommand is documented, arguments are validated."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, build_parser, main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("the parser has no subcommands")


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_command_is_documented_in_the_readme(command: str) -> None:
    assert re.search(rf"^#+ `pipeline {command}`", README, re.MULTILINE), (
        f"README.md has no section for `pipeline {command}`"
    )


@pytest.mark.parametrize(
    ("command", "option"),
    [
        (name, option)
        for name, sub in sorted(_subcommands().items())
        for action in sub._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    ],
)
def test_every_option_is_documented_in_the_readme(command: str, option: str) -> None:
    assert option in README, f"README.md does not mention `pipeline {command} {option}`"


def test_extract_writes_the_links_table(tmp_path: Path) -> None:
    doc = tmp_path / "list.md"
    doc.write_text("# Papers\n\n- [Qwen2-VL](https://arxiv.org/abs/2409.12191v2) 72B\n")
    out = tmp_path / "out" / "links.parquet"

    assert main(["extract", str(doc), "-o", str(out)]) == EXIT_OK

    rows = pq.read_table(out).to_pylist()
    assert [(r["kind"], r["entity_id"], r["arxiv_version"]) for r in rows] == [
        ("arxiv", "2409.12191", 2)
    ]
    assert rows[0]["heading_path"] == ["Papers"]


def test_extract_reports_a_bad_document_and_keeps_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "good.md").write_text("[x](https://github.com/a/b)\n")
    (tmp_path / "bad.md").write_bytes(b"\xff\xfe\x00binary")
    out = tmp_path / "links.parquet"

    assert main(["extract", str(tmp_path), "-o", str(out)]) == EXIT_FAILED

    assert "bad.md" in capsys.readouterr().err
    assert pq.read_table(out).column("document").to_pylist() == ["good.md"]


def test_extract_names_a_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope"
    assert main(["extract", str(missing), "-o", str(tmp_path / "x.parquet")]) == EXIT_USAGE
    assert str(missing) in capsys.readouterr().err


def test_run_rejects_a_missing_document_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(tmp_path / "nope.md"), "--out", str(tmp_path)]) == EXIT_USAGE
    assert "nope.md" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--offline", "--refresh"],
        ["run", "--date", "2026-13-01"],
        ["run", "--resolvers", "crossref"],
        ["serve", "--cron"],
    ],
)
def test_bad_arguments_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == EXIT_USAGE


def test_run_rejects_a_zero_limit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--limit", "0"]) == EXIT_USAGE
    assert "limit" in capsys.readouterr().err
