"""The `pipeline` command: every subcommand is documented, arguments are validated."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.cli import (
    EXIT_FAILED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    build_parser,
    main,
)

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


def _section(command: str) -> str:
    """The README's section of one command: from its heading to the next heading."""
    match = re.search(
        rf"^#+ `pipeline {command}`\n(.*?)(?=^#+ )", README + "\n# end", re.MULTILINE | re.DOTALL
    )
    assert match, f"README.md has no section for `pipeline {command}`"
    return match.group(1)


@pytest.mark.parametrize(
    ("command", "option"),
    [
        (name, option)
        for name, sub in sorted(_subcommands().items())
        for action in sub._actions
        for option in action.option_strings
        if option.startswith("--") and option not in ("--help", "--debug")
    ],
)
def test_every_option_is_documented_in_its_commands_section(command: str, option: str) -> None:
    assert re.search(rf"`{re.escape(option)}\b", _section(command)), (
        f"README.md's section on `pipeline {command}` does not document `{option}`"
    )


def test_debug_is_documented_for_every_command() -> None:
    commands_part = README[README.index("## Commands") :]
    assert "`--debug`" in commands_part.split("### ")[0]


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


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["github:o/r"], "'github:o/r': expected github:OWNER/REPO/PATH[@REF]"),
        (["https://github.com/o/r/tree/main/x.md"], "expected https://github.com/OWNER/REPO/blob"),
        (["--sources", "no-such-sources.toml"], "no such sources file: no-such-sources.toml"),
        (["--backfill", "-1"], "backfill"),
        (
            ["--sources", "sources.toml", "a.md", "b.md"],
            "--sources sources.toml and PATH a.md b.md",
        ),
    ],
)
def test_run_rejects_bad_sources_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], named: str
) -> None:
    assert main(["run", *argv, "--out", str(tmp_path / "o"), "--raw", str(tmp_path / "r")]) == (
        EXIT_USAGE
    )
    assert named in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "o").exists()


def test_a_dry_run_lists_github_documents_without_asking(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "--dry-run", "github:o/r/list.md", "--out", str(tmp_path / "o")]

    assert main([*argv, "--raw", str(tmp_path / "r")]) in (EXIT_OK, EXIT_PARTIAL)
    assert not (tmp_path / "r").exists() and not (tmp_path / "o").exists()
    assert "documents: 0 read, 0 failed, 1 not fetched (dry run)" in capsys.readouterr().out


# -- errors are one line, with the exit code the README gives ------------------------------


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_extract_to_a_folder_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "list.md").write_text("[x](https://github.com/a/b)\n")

    assert main(["extract", str(tmp_path / "list.md"), "-o", str(tmp_path)]) == EXIT_USAGE
    assert "is a folder" in _one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("option", ["--out", "--raw"])
def test_run_into_a_file_is_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")

    assert main(["run", "--sandbox", option, str(blocker)]) == EXIT_USAGE
    assert f"{option} {blocker} is a file" in _one_error_line(capsys.readouterr().err)


def test_status_of_a_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")

    assert main(["status", "--out", str(blocker)]) == EXIT_USAGE
    assert "is a file" in _one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("extra", [[], ["--prefect"]])
def test_the_loser_of_the_lock_says_so_once_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    from pipeline.snapshot.store import snapshot_lock

    out = tmp_path / "out"
    with snapshot_lock(out, "the-other-run"):
        code = main(["run", "--sandbox", "--out", str(out), "--raw", str(tmp_path), *extra])

    assert code == EXIT_LOCKED
    assert "the-other-run" in _one_error_line(capsys.readouterr().err)


def test_document_names_cannot_forge_log_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "evil\nerror: forged.md").write_bytes(b"\xff\xfe\x00binary")
    out = tmp_path / "links.parquet"

    assert main(["extract", str(tmp_path), "-o", str(out)]) == EXIT_FAILED

    err = capsys.readouterr().err
    assert "evil\\nerror: forged.md" in err
    assert not any(line.startswith("error: forged") for line in err.splitlines())


def test_debug_shows_the_traceback_behind_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipeline.night

    def explode(*args: object, **kwargs: object) -> object:
        raise RuntimeError("x" * 50_000)

    monkeypatch.setattr(pipeline.night, "run_night", explode)
    argv = ["run", "--sandbox", "--out", str(tmp_path / "o"), "--raw", str(tmp_path / "r")]

    assert main(argv) == EXIT_FAILED
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("error: RuntimeError: xxx") and len(line) < 600
    assert "--debug" in line

    assert main([*argv, "--debug"]) == EXIT_FAILED
    assert "Traceback" in capsys.readouterr().err


def test_serve_without_a_prefect_server_is_refused_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "serve", "--sandbox"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == EXIT_USAGE
    assert "needs a Prefect server" in _one_error_line(done.stderr)
    assert not (tmp_path / "prefect-home" / "prefect.db").exists()  # no temporary server


def test_run_and_status_take_an_s3_url_for_out_and_raw(
    s3_bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out, raw = f"{s3_bucket}/enriched/", f"{s3_bucket}/raw"  # a trailing slash is the same
    code = main(["run", "--sandbox", "--out", out, "--raw", raw, "--date", "2026-01-01"])
    assert code in (EXIT_OK, EXIT_PARTIAL), capsys.readouterr().err
    capsys.readouterr()

    assert main(["status", "--out", out]) == EXIT_OK
    printed = capsys.readouterr().out
    assert "2026-01-01" in printed and "True" in printed


def test_an_s3_lock_held_elsewhere_is_one_line_naming_the_lock(
    s3_bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.snapshot.store import snapshot_lock

    out = f"{s3_bucket}/out"
    with snapshot_lock(out, "the-other-run"):
        code = main(["run", "--sandbox", "--out", out, "--raw", f"{s3_bucket}/raw"])

    assert code == EXIT_LOCKED
    line = _one_error_line(capsys.readouterr().err)
    assert "the-other-run" in line and f"lock {out}/.lock" in line


def test_an_object_store_without_a_driver_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", "--sandbox", "--out", "nosuchstore://bucket/x"]) == EXIT_USAGE
    assert "nosuchstore://bucket/x" in _one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--out", "https://example.invalid/x"],
        ["report", "--out", "https://example.invalid/x"],
        ["run", "--sandbox", "--out", "https://example.invalid/x"],
        ["run", "--sandbox", "--raw", "http://example.invalid/x"],
        ["status", "--out", "zip://inner::file:///tmp/a.zip"],
    ],
)
def test_a_read_only_or_http_location_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert main(argv) == EXIT_USAGE
    line = _one_error_line(capsys.readouterr().err)
    assert argv[-1] in line and "cannot hold snapshots" in line


def test_a_sandbox_run_shows_live_lists_and_repository_metadata_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nights import FAST_ENV

    from pipeline.config import PROJECT_ROOT
    from pipeline.snapshot.read import load

    monkeypatch.chdir(PROJECT_ROOT)  # where sources.toml is
    for name, value in FAST_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_RealTokenNeverSentToTheDouble000000")
    out, raw = tmp_path / "out", tmp_path / "raw"

    assert main(["run", "--sandbox", "--out", str(out), "--raw", str(raw)]) in (
        EXIT_OK,
        EXIT_PARTIAL,
    )

    documents = load("documents", out).set_index("document")
    live = documents.loc["PromptExpert blogs: MLLM papers"]
    assert live["source_url"] == (
        "https://github.com/PromptExpert/blogs/blob/HEAD/docs/mllm/mllm_papers.md"
    )
    assert live["status"] == "ok" and len(live["commit_sha"]) == 40
    assert documents["source_url"].isna().sum() == 4  # the other seeds stay local files
    repos = load("github_repos", out)
    assert (repos["status"] == "ok").sum() > 0 and repos["stars"].notna().sum() > 0
    for path in [*out.rglob("*"), *raw.rglob("*")]:
        if path.is_file():
            assert b"ghp_RealTokenNeverSentToTheDouble" not in path.read_bytes()


@pytest.mark.parametrize(
    ("command", "says", "never"),
    [
        ("run", "(default: raw/seeds/; with --sandbox: the lists of sources.toml)", "runs read"),
        (
            "serve",
            "(default: the lists of sources.toml in the folder serve runs in, else raw/seeds/)",
            "default with --sandbox",
        ),
    ],
)
def test_path_and_sources_help_is_each_commands_own(
    command: str, says: str, never: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert says in text and "not with PATH" in text
    assert never not in text
