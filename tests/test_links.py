"""The links stage: documents named stably, entities gathered, title matches applied."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.links.documents import discover_documents, entities_of, extract_links
from pipeline.snapshot.build import apply_title_matches, links_table
from pipeline.snapshot.schemas import LINKS_SCHEMA

LIST = """# Papers

- [Qwen2-VL](https://arxiv.org/pdf/2409.12191v2) see also https://hf-mirror.com/Qwen/Qwen2-VL-72B
- [NVLM: Open Frontier-Class Multimodal LLMs](https://zhuanlan.zhihu.com/p/720542712)
- [bad](https://arxiv.org/abs/2413.99999) [collection](https://huggingface.co/collections/OpenGVLab/internvl-25-673e1019b66e2218f68d7c1c)
"""


def test_documents_are_named_relative_to_the_folder_given(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.md").write_text("x")
    (tmp_path / "b.txt").write_text("x")
    (tmp_path / "notes.pdf").write_bytes(b"%PDF")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "c.md").write_text("x")
    assert [name for name, _ in discover_documents([tmp_path])] == ["b.txt", "sub/a.md"]
    assert [name for name, _ in discover_documents([tmp_path / "b.txt"])] == ["b.txt"]


def test_a_missing_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        discover_documents([tmp_path / "nope"])


def test_entities_are_distinct_valid_and_sorted(tmp_path: Path) -> None:
    (tmp_path / "list.md").write_text(LIST)
    extraction = extract_links([tmp_path])
    entities = entities_of(extraction.links)
    assert entities.arxiv_ids == ["2409.12191"]  # 2413 is no month: never asked
    assert entities.hub_repos == [
        ("collection", "OpenGVLab/internvl-25-673e1019b66e2218f68d7c1c"),
        ("model", "Qwen/Qwen2-VL-72B"),
    ]


def test_title_matches_lead_links_to_papers_but_never_override_ids(tmp_path: Path) -> None:
    (tmp_path / "list.md").write_text(LIST)
    links = extract_links([tmp_path]).links
    title = "NVLM: Open Frontier-Class Multimodal LLMs"
    matched = apply_title_matches(links, {title: "2409.11402", "Qwen2-VL": "9999.99999"})
    by_text = {link.occurrence.link_text: link for link in matched}
    assert (by_text[title].resolved_arxiv_id, by_text[title].resolved_by) == (
        "2409.11402",
        "title",
    )
    assert (by_text["Qwen2-VL"].resolved_arxiv_id, by_text["Qwen2-VL"].resolved_by) == (
        "2409.12191",
        "id",
    )
    table = links_table(matched)
    assert table.schema.equals(LINKS_SCHEMA, check_metadata=False)
    assert table.num_rows == len(links) == 5
