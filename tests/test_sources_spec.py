"""Document arguments and the sources file: what is a GitHub file, what is refused, and why."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.config import PROJECT_ROOT
from pipeline.sources.spec import (
    GithubSource,
    SourceError,
    parse_document,
    read_sources_file,
)
from pipeline.sources.stage import inputs_of


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("github:o/r/docs/list.md", GithubSource("o", "r", "docs/list.md")),
        ("github:o/r/README.md@main", GithubSource("o", "r", "README.md", "main")),
        ("github:o/r.js/a b.md@v1.2", GithubSource("o", "r.js", "a b.md", "v1.2")),
        (
            "https://github.com/PromptExpert/blogs/blob/main/docs/mllm/mllm_papers.md",
            GithubSource("PromptExpert", "blogs", "docs/mllm/mllm_papers.md", "main"),
        ),
        (
            "https://github.com/o/r/blob/0123abc/x%20y.md",
            GithubSource("o", "r", "x y.md", "0123abc"),
        ),
        ("raw/seeds", Path("raw/seeds")),
        ("github.md", Path("github.md")),
    ],
)
def test_document_arguments(text: str, expected: GithubSource | Path) -> None:
    assert parse_document(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("github:o/r", "expected github:OWNER/REPO/PATH[@REF]"),
        ("github:-o/r/x.md", "is not a GitHub repository name"),
        ("github:o/../x.md", "is not a GitHub repository name"),
        ("github:o/r/a/../../etc/passwd", "is not a file path in a repository"),
        ("github:o/r/x.md@a..b", "is not a branch, tag or commit"),
        (
            "https://github.com/o/r/tree/main/docs",
            "expected https://github.com/OWNER/REPO/blob/REF/PATH",
        ),
        ("https://github.com/o/r", "expected https://github.com/OWNER/REPO/blob/REF/PATH"),
    ],
)
def test_bad_github_arguments_are_refused_naming_them(text: str, problem: str) -> None:
    with pytest.raises(SourceError, match=re.escape(problem)) as caught:
        parse_document(text)
    assert repr(text) in str(caught.value)


def test_the_project_sources_file_names_every_seed_and_the_known_upstream() -> None:
    entries = read_sources_file(PROJECT_ROOT / "sources.toml")

    remote = [e for e in entries if isinstance(e.location, GithubSource)]
    assert [e.location for e in remote] == [
        GithubSource("PromptExpert", "blogs", "docs/mllm/mllm_papers.md")
    ]
    assert remote[0].seed == PROJECT_ROOT / "raw/seeds/000_d178590c888f63f5.txt"
    local = sorted(e.location.name for e in entries if isinstance(e.location, Path))
    seeds = sorted(p.name for p in (PROJECT_ROOT / "raw/seeds").iterdir())
    assert local == seeds[1:]
    assert len({e.name for e in entries}) == len(entries) == 5


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no \\[\\[list\\]\\] entry"),
        ("[[list]]\nname = 'a'\n", "`source` must be"),
        ("[[list]]\nsource = 'x.md'\n", "`name` must be a non-empty text"),
        ("[[list]]\nname = 'a'\nsource = 'x.md'\nurl = 'y'\n", "unknown key\\(s\\) url"),
        ("[[list]]\nname='a'\nsource='x.md'\n[[list]]\nname='a'\nsource='y.md'\n", "used twice"),
        ("[[list]]\nname = 'a'\nsource = 'github:o/r'\n", "list 1: 'github:o/r'"),
        ("[[list\n", "not TOML"),
    ],
)
def test_a_bad_sources_file_is_refused_naming_the_file_and_entry(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(text)

    with pytest.raises(SourceError, match=problem) as caught:
        read_sources_file(path)
    assert str(path) in str(caught.value)


def test_inputs_split_local_and_github_documents_and_refuse_one_name_twice(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.md").write_text("# a\n")
    sources = tmp_path / "sources.toml"
    sources.write_text(
        "[[list]]\nname = 'Mine'\nsource = 'a.md'\n"
        "[[list]]\nname = 'Theirs'\nsource = 'github:o/r/list.md@dev'\n"
    )

    from_file = inputs_of([], str(sources))
    from_arguments = inputs_of([str(tmp_path / "a.md"), "github:o/r/list.md"])

    assert from_file.local == [("Mine", tmp_path / "a.md")]
    assert from_file.remote == [("Theirs", GithubSource("o", "r", "list.md", "dev"))]
    assert from_arguments.remote == [("o/r/list.md", GithubSource("o", "r", "list.md"))]
    with pytest.raises(SourceError, match=re.escape("two documents named o/r/list.md")):
        inputs_of(["github:o/r/list.md"] * 2)
