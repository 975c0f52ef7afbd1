"""Bad documents in whole runs: not UTF-8, binary, empty, deeply nested, hostile links
(control characters, 10 kB URLs), 50 MB, a million links.

Each runs night 2 over the reading list of `test_faults.py` plus the bad document: the run
finishes, a document that cannot be read is named with its reason and the others are
read, every link of a readable document is a row of `links` exactly as written, every
entity has a row with a status, and night 1 is untouched. The two big documents run in a
child process, whose peak memory is measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from nights import (
    NIGHT_2,
    UNREADABLE,
    Rig,
    assert_every_link_and_entity_has_a_row,
    assert_last_known_good,
    assert_untouched,
    published_state,
    write_reading_list,
)

from pipeline.links.extract import _Lines
from pipeline.snapshot.read import read_manifest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


CONTROL_CHARACTERS = [
    "https://example.com/bell\x07here",
    "https://huggingface.co/Qwen/Qwen2-VL-72B\x1b[31m",
    "https://example.com/del\x7f",
    "https://arxiv.org/abs/2409.12191\u202egnp.exe",
    "https://huggingface.co/sample-org/na\u200bme",
    "https://huggingface.co/datasets/\x01/\x02",
]
"""Bare URLs with characters a terminal or a file name would act on: each is a row of
`links` as written; what follows an identifier is cut off it, never sent."""

LONG_URLS = [
    "https://example.com/" + "a" * 10_000,
    "https://huggingface.co/sample-org/" + "m" * 10_000,
    "https://arxiv.org/abs/2409.12191?x=" + "y" * 10_000,
    "https://github.com/" + "o" * 10_000 + "/repo",
    "https://huggingface.co/collections/sample-org/" + "c" * 10_000,
]
"""10 kB URLs: a page, a repo name far past the Hub's 96 characters (never sent), a real
paper behind a long query, a GitHub owner past 39 characters, a collection slug."""


def hostile_list() -> str:
    lines = ["# Hostile links", ""]
    lines += [f"- {url} " for url in CONTROL_CHARACTERS]
    lines += [f"- [long {n}]({url})" for n, url in enumerate(LONG_URLS)]
    lines += ["- [" + "a very long link text " * 500 + "](https://example.com/long-text)", ""]
    lines += ['<p><a href="https://example.com/tab\there">tab</a></p>', ""]
    return "\n".join(lines)


def test_unreadable_documents_are_named_and_the_others_read(rig: Rig, tmp_path: Path) -> None:
    published = published_state(rig.out)
    folder = tmp_path / "bad"
    folder.mkdir()
    for name, (data, _) in UNREADABLE.items():
        (folder / name).write_bytes(data)
    (folder / "empty.md").write_bytes(b"")
    (folder / "blank.md").write_text("\n\n   \n\t\n", encoding="utf-8")
    documents = sorted(folder.iterdir())

    night = rig.night_with(*documents)

    errors = {d.name: d.error for d in night.documents if d.error}
    assert errors == {name: reason for name, (_, reason) in UNREADABLE.items()}
    read = {d.name: d.links for d in night.documents if not d.error}
    assert read == {"list.md": len(rig.before.links), "empty.md": 0, "blank.md": 0}
    assert_every_link_and_entity_has_a_row(night)
    assert_last_known_good(rig.before, night, (), "")
    assert_untouched(published, rig.out)
    manifest = read_manifest(rig.out)
    recorded = {d["document"]: d["error"] for d in manifest["documents"].iloc[-1]}
    assert {name: error for name, error in recorded.items() if error} == errors


def test_hostile_links_are_rows_as_written_and_never_sent(rig: Rig, tmp_path: Path) -> None:
    published = published_state(rig.out)
    hostile = write_reading_list(tmp_path / "docs", hostile_list(), name="hostile.md")

    night = rig.night_with(hostile)

    assert_every_link_and_entity_has_a_row(night)
    urls = night.tables["links"].column("url").to_pylist()
    for url in [*CONTROL_CHARACTERS, *LONG_URLS, "https://example.com/tab\there"]:
        assert urls.count(url) == 1, url[:60]
    texts = night.tables["links"].column("link_text").to_pylist()
    assert max(map(len, texts)) == 2000  # cut, with an ellipsis, as the contract says
    # Only identifiers that passed validation became requests: short, plain ASCII paths.
    for request in rig.sandbox.requests():
        target = f"{request.path}?{request.query}"
        assert target.isascii() and target.isprintable() and len(target) < 4096, target[:80]
    invalid = {
        row["repo_id"]: row["status_reason"]
        for row in night.tables["models"].to_pylist()
        if row["status"] == "not_found"
    }
    assert invalid[f"sample-org/{'m' * 10_000}"].startswith("invalid identifier, never sent")
    papers = night.rows("papers")
    assert papers[("2409.12191",)]["status"] == "ok"
    assert_untouched(published, rig.out)


@pytest.mark.parametrize(
    ("shape", "text", "links"),
    [
        (
            "a list 1000 levels deep",
            "# Deep\n\n"
            + "".join("  " * d + f"- [level {d}](https://example.com/{d})\n" for d in range(1000)),
            1000,
        ),
        (
            "block quotes 5000 deep",
            "# Quotes\n\n" + ">" * 5000 + " [deep](https://arxiv.org/abs/2409.12191)\n",
            1,
        ),
        (
            "lists and quotes alternating 400 deep",
            "# Mixed\n\n"
            + "".join(
                "  " * d + ("- " if d % 2 else "> ") + f"[m{d}](https://example.com/m/{d})\n"
                for d in range(400)
            ),
            400,
        ),
    ],
)
def test_deeply_nested_documents_keep_every_link(
    rig: Rig, tmp_path: Path, shape: str, text: str, links: int
) -> None:
    nested = write_reading_list(tmp_path / "docs", text, name="nested.md")

    night = rig.night_with(nested)

    assert {d.name: d.links for d in night.documents}["nested.md"] == links
    assert_every_link_and_entity_has_a_row(night)
    assert_last_known_good(rig.before, night, (), "")


def test_line_numbers_of_many_bare_urls_in_one_paragraph_cost_linear_time() -> None:
    """Each bare URL makes the line counter step back (its text token is stamped at the
    `:`, the URL at its start). Counting back from the start of the paragraph made a
    paragraph of n bare URLs cost n^2: 40,000 took 8 s, a million would take hours."""

    class Scanned(str):
        scanned = 0

        def count(self, x: str, start: Any = None, end: Any = None) -> int:
            Scanned.scanned += (end or len(self)) - (start or 0)
            return super().count(x, start, end)

    text = Scanned("\n".join(f"https://example.com/{n}" for n in range(10_000)))
    lines = _Lines(text, 1)
    for start in range(0, len(text), 25):
        lines.at(start + 5)  # the scheme's `:`
        lines.at(start)  # the URL's start
    assert lines.at(len(text)) == text.count("\n") + 1
    assert Scanned.scanned < 3 * len(text)


# -- big documents, in a child process whose memory is measured ---------------------------

_CHILD = """
import json, os, sys
from datetime import date
from pathlib import Path
sys.path[:0] = [{tests!r}, {root!r}]
from nights import FAST_ENV, run_night
from benchmarks.machine import peak_rss_mb  # the child's own peak, not its parent's
from pipeline.config import RefreshPolicy, Settings
settings = Settings.from_env({{**os.environ, **FAST_ENV}}).replace(refresh=RefreshPolicy.REFRESH)
documents = [Path(p) for p in sys.argv[1:]]
night = run_night(documents, Path(os.environ["FAULTS_OUT"]), Path(os.environ["FAULTS_RAW"]),
                  settings, date.fromisoformat(os.environ["FAULTS_DAY"]))
print(json.dumps({{
    "status": night.status,
    "documents": {{d.name: [d.links, d.error] for d in night.documents}},
    "rows": {{name: table.num_rows for name, table in night.tables.items()}},
    "statuses": sorted({{s for s in night.tables["papers"].column("status").to_pylist()}}),
    "peak_rss_mb": peak_rss_mb(),
}}))
"""


def run_in_child(rig: Rig, documents: Sequence[Path]) -> dict[str, Any]:
    env = {
        **os.environ,
        **rig.sandbox.env(),
        "FAULTS_OUT": str(rig.out),
        "FAULTS_RAW": str(rig.raw),
        "FAULTS_DAY": NIGHT_2.isoformat(),
    }
    env.pop("HF_TOKEN", None)
    done = subprocess.run(
        [sys.executable, "-c", _CHILD.format(tests=str(TESTS), root=str(ROOT))]
        + [str(path) for path in documents],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


PAPERS = ("2409.12191", "2502.13923", "2412.05271", "2103.00020", "2204.14198")


@pytest.mark.slow
def test_a_50_mb_reading_list_is_read_whole(rig: Rig, tmp_path: Path) -> None:
    published = published_state(rig.out)
    prose = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\n"
    entries = []
    size = n = 0
    while size < 50_000_000:
        entry = (
            f"- [2024.{1 + n % 12:02d}] [Paper {n}](https://arxiv.org/abs/{PAPERS[n % 5]})"
            f" [page](https://example.com/page/{n}) {prose}" + "  " + prose * 10
        )
        entries.append(entry)
        size += len(entry)
        n += 1
    big = write_reading_list(tmp_path / "docs", "# Big\n\n" + "".join(entries), name="big.md")
    assert big.stat().st_size >= 50_000_000

    result = run_in_child(rig, [*rig.baseline.documents, big])

    assert result["documents"]["big.md"] == [2 * n, None]
    assert result["rows"]["links"] == 2 * n + len(rig.before.links)
    assert result["status"] == "ok" and result["statuses"] == ["not_found", "ok"]
    assert result["peak_rss_mb"] < 1000, result  # measured: ~540 MB
    assert_untouched(published, rig.out)
    assert read_manifest(rig.out)["links_rows"].iloc[-1] == 2 * n + len(rig.before.links)


@pytest.mark.slow
def test_a_million_links_are_a_million_rows(rig: Rig, tmp_path: Path) -> None:
    """Bare URLs, ten to a paragraph (a link dump), with a paper now and then. Measured:
    ~50 s and ~2 GB at peak. One paragraph of a million links costs more memory (each
    link's annotation is its paragraph's text, 2,000 characters: ~5 GB at peak)."""
    published = published_state(rig.out)
    path = tmp_path / "docs" / "million.md"
    path.parent.mkdir(parents=True)
    with path.open("w", encoding="utf-8") as handle:
        handle.write("# A million links\n\n")
        for block in range(100_000):
            urls = [f"https://example.com/p/{10 * block + k}" for k in range(10)]
            if block % 1000 == 0:
                urls[0] = f"https://arxiv.org/abs/{PAPERS[block // 1000 % 5]}"
            handle.write(" ".join(urls) + "\n\n")

    result = run_in_child(rig, [*rig.baseline.documents, path])

    assert result["documents"]["million.md"] == [1_000_000, None]
    assert result["rows"]["links"] == 1_000_000 + len(rig.before.links)
    assert result["status"] == "ok"
    assert result["peak_rss_mb"] < 3000, result  # measured: ~1.9 GB
    assert_untouched(published, rig.out)
