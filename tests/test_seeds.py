"""The five seed documents: the links stage finds exactly what a careful reader finds.

The expected sets in `tests/data/seeds_expected.json` were established by reading the
seeds, not by running this project's code (its `about` and per-document `notes` say how
and record every judgement call), so these tests check extraction and identification
against an independent answer rather than against themselves.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TypedDict, cast

import pytest

from pipeline.links.documents import Extraction, Link, extract_links
from pipeline.links.identify import Kind

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "raw" / "seeds"
EXPECTED_FILE = Path(__file__).resolve().parent / "data" / "seeds_expected.json"


class ExpectedDocument(TypedDict):
    sha256: str
    arxiv_ids: list[str]
    arxiv_versions: dict[str, list[int]]
    hf_models: list[str]
    hf_datasets: list[str]
    hf_spaces: list[str]
    hf_collections: list[str]
    github_repos: list[str]
    link_occurrences: int
    notes: list[str]


class Expected(TypedDict):
    about: list[str]
    documents: dict[str, ExpectedDocument]
    all_arxiv_ids: list[str]


EXPECTED = cast(Expected, json.loads(EXPECTED_FILE.read_text(encoding="utf-8")))
DOCUMENTS = EXPECTED["documents"]
NAMES = sorted(DOCUMENTS)

ENTITY_FIELDS: dict[str, tuple[Kind, ...]] = {
    "arxiv_ids": ("arxiv", "arxiv_mention"),
    "hf_models": ("hf_model",),
    "hf_datasets": ("hf_dataset",),
    "hf_spaces": ("hf_space",),
    "hf_collections": ("hf_collection",),
    "github_repos": ("github_repo",),
}
"""Expected-file field -> the identify kinds whose entity IDs it lists."""

NEW_STYLE_ARXIV_ID = re.compile(r"\d{4}\.\d{4,5}")

DOC = {name[:3]: name for name in NAMES}
"""Seed file name by its number, to keep the tables below readable."""


def _listed(doc: ExpectedDocument, field: str) -> list[str]:
    """One expected-file entity list, by field name."""
    return cast(Mapping[str, list[str]], doc)[field]


def _key(field: str, entity: str) -> str:
    # GitHub owner and repo names are case-insensitive; Hub and arXiv IDs are compared as written.
    return entity.casefold() if field == "github_repos" else entity


def _seed_digest(path: Path) -> str:
    # Newlines normalised so a CRLF checkout does not read as an edited seed.
    return hashlib.sha256(path.read_bytes().replace(b"\r\n", b"\n")).hexdigest()


@pytest.fixture(scope="module")
def extraction() -> Extraction:
    return extract_links([SEEDS])


@pytest.fixture(scope="module")
def links_by_document(extraction: Extraction) -> dict[str, list[Link]]:
    grouped: dict[str, list[Link]] = defaultdict(list)
    for link in extraction.links:
        grouped[link.occurrence.document].append(link)
    return {
        name: sorted(links, key=lambda lk: lk.occurrence.position)
        for name, links in grouped.items()
    }


def _found_entities(links: Iterable[Link], field: str) -> dict[str, list[str]]:
    """Comparison key -> where it was found (`line N: url`), for one expected-file field."""
    kinds = ENTITY_FIELDS[field]
    found: dict[str, list[str]] = defaultdict(list)
    for link in links:
        ident, occ = link.identity, link.occurrence
        if ident.kind not in kinds:
            continue
        if field == "arxiv_ids" and not (ident.valid and ident.entity_id):
            continue  # an invalid arXiv identifier names no paper
        # A repo kind without an entity ID is a defect of its own: surface it as an extra item.
        entity = ident.entity_id or f"<{ident.kind} without entity_id>"
        found[_key(field, entity)].append(f"line {occ.line}: {occ.url}")
    return found


# --- the expected file itself (these hold before extraction lands) ---


@pytest.mark.parametrize("name", NAMES)
def test_expected_sets_belong_to_the_current_seed(name: str) -> None:
    path = SEEDS / name
    assert path.is_file(), f"{EXPECTED_FILE.name} describes {name}, which is not in {SEEDS}"
    assert _seed_digest(path) == DOCUMENTS[name]["sha256"], (
        f"{path} changed since its expected sets were established: re-read it and update "
        f"{EXPECTED_FILE.name} by hand (never from this project's own output)"
    )


def test_every_seed_has_expected_sets() -> None:
    on_disk = sorted(p.name for p in SEEDS.iterdir() if p.is_file() and not p.name.startswith("."))
    assert on_disk == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_expected_document_is_well_formed(name: str) -> None:
    doc = DOCUMENTS[name]
    for field in ENTITY_FIELDS:
        items = _listed(doc, field)
        keys = [_key(field, item) for item in items]
        assert len(set(keys)) == len(keys), f"{name} {field}: duplicates in {items}"
        assert items == sorted(items, key=lambda s: (s.casefold(), s)), f"{name} {field}: unsorted"
    bad_ids = [i for i in doc["arxiv_ids"] if not NEW_STYLE_ARXIV_ID.fullmatch(i)]
    assert not bad_ids, f"{name}: not canonical arXiv IDs: {bad_ids}"
    unlisted = sorted(set(doc["arxiv_versions"]) - set(doc["arxiv_ids"]))
    assert not unlisted, f"{name}: arxiv_versions names IDs missing from arxiv_ids: {unlisted}"
    assert all(doc["arxiv_versions"].values()), f"{name}: an arxiv_versions entry is empty"
    assert doc["link_occurrences"] > 0


def test_expected_arxiv_union_is_the_union_of_the_documents() -> None:
    union = sorted({i for doc in DOCUMENTS.values() for i in doc["arxiv_ids"]})
    assert EXPECTED["all_arxiv_ids"] == union


# --- extraction + identification against the expected sets ---


def test_every_seed_is_read_without_error(extraction: Extraction) -> None:
    assert sorted(doc.name for doc in extraction.documents) == NAMES
    assert {doc.name: doc.error for doc in extraction.errors} == {}


@pytest.mark.parametrize(("name", "field"), [(n, f) for n in NAMES for f in ENTITY_FIELDS])
def test_entities_are_exactly_the_expected_ones(
    links_by_document: dict[str, list[Link]], name: str, field: str
) -> None:
    expected = {_key(field, item): item for item in _listed(DOCUMENTS[name], field)}
    found = _found_entities(links_by_document.get(name, []), field)
    missing = sorted(expected[k] for k in expected.keys() - found.keys())
    extra = {k: found[k] for k in sorted(found.keys() - expected.keys())}
    assert not missing and not extra, (
        f"{name} {field}: missing {len(missing)} {missing}; extra {len(extra)} {extra}"
    )


@pytest.mark.parametrize("name", NAMES)
def test_arxiv_versions_are_the_linked_ones(
    links_by_document: dict[str, list[Link]], name: str
) -> None:
    found: dict[str, set[int]] = defaultdict(set)
    for link in links_by_document.get(name, []):
        ident = link.identity
        if ident.kind not in ENTITY_FIELDS["arxiv_ids"] or not ident.valid:
            continue
        if ident.entity_id and ident.arxiv_version is not None:
            found[ident.entity_id].add(ident.arxiv_version)
    assert {k: sorted(v) for k, v in sorted(found.items())} == DOCUMENTS[name]["arxiv_versions"]


@pytest.mark.parametrize("name", NAMES)
def test_occurrence_count_is_exact(
    extraction: Extraction, links_by_document: dict[str, list[Link]], name: str
) -> None:
    links = links_by_document.get(name, [])
    expected = DOCUMENTS[name]["link_occurrences"]
    assert len(links) == expected, (
        f"{name}: {len(links)} link occurrences, expected {expected}; found: "
        + "; ".join(f"{lk.occurrence.line}:{lk.occurrence.url}" for lk in links)
    )
    (document,) = [doc for doc in extraction.documents if doc.name == name]
    assert document.links == expected


def test_row_keys_are_unique(extraction: Extraction) -> None:
    keys = [(lk.occurrence.document, lk.occurrence.position) for lk in extraction.links]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    assert not duplicates, f"(document, position) keys occur more than once: {duplicates}"


@pytest.mark.parametrize("name", NAMES)
def test_positions_count_up_in_document_order(
    links_by_document: dict[str, list[Link]], name: str
) -> None:
    links = links_by_document.get(name, [])
    assert [lk.occurrence.position for lk in links] == list(range(len(links)))
    lines = [lk.occurrence.line for lk in links]
    assert lines == sorted(lines), f"{name}: occurrences are not in document order"


def test_commented_out_badge_is_not_a_link(extraction: Extraction) -> None:
    # 001 line 4: `<!-- ... [![Awesome](https://awesome.re/badge.svg)](https://awesome.re) -->`.
    leaked = [
        f"{lk.occurrence.document}:{lk.occurrence.line}: {lk.occurrence.url}"
        for lk in extraction.links
        if "awesome.re" in lk.occurrence.url
    ]
    assert not leaked, f"links from inside an HTML comment: {leaked}"


@pytest.mark.parametrize(
    ("name", "first_line", "last_line", "region"),
    [
        (DOC["001"], 4, 4, "HTML comment"),
        (DOC["002"], 1, 11, "YAML front matter"),
        (DOC["004"], 1, 7, "YAML front matter"),
    ],
)
def test_nothing_is_extracted_from_non_content(
    links_by_document: dict[str, list[Link]],
    name: str,
    first_line: int,
    last_line: int,
    region: str,
) -> None:
    inside = [
        f"line {lk.occurrence.line}: {lk.occurrence.url}"
        for lk in links_by_document.get(name, [])
        if first_line <= lk.occurrence.line <= last_line
    ]
    assert not inside, (
        f"{name}: links extracted from the {region} (lines {first_line}-{last_line}): {inside}"
    )


# The seed occurrences behind the judgement calls in the expected file's notes:
# (document, line, url as written, syntax, kind).
LANDMARKS = [
    # `]Gemini 1.5 ...](url)` has no `[`: GitHub renders a bare autolink without the trailing `)`.
    (DOC["002"], 199, "https://arxiv.org/abs/2403.05530", "bare", "arxiv"),
    (DOC["002"], 141, "microsoft/Florence-2-large", "inline", "relative"),
    (DOC["002"], 173, "https://publications.reka.ai/reka-core-tech-report.pdf", "inline", "other"),
    (
        DOC["002"],
        152,
        "https://github.com/rkuo2000/AI-course/raw/main/images/VILAonJetsonOrin.mp4",
        "html",
        "github_asset",
    ),
    (DOC["002"], 257, "https://www.youtube.com/embed/tmSNw2XonxI", "html", "other"),
    (
        DOC["002"],
        91,
        "https://github.com/rkuo2000/GenAI/blob/main/assets/LLaVA_Gradio_Server_UI.png?raw=true",
        "image",
        "github_asset",
    ),
    (DOC["002"], 56, "https://arxiv.org/html/2401.13601v1/x1.png", "image", "arxiv"),
    (DOC["002"], 220, "https://huggingface.co/blog/paligemma", "inline", "hf_other"),
    (
        DOC["002"],
        223,
        "https://huggingface.co/datasets/huggingface/documentation-images/resolve/main/blog/paligemma/paligemma_arch.png",
        "image",
        "hf_asset",
    ),
    (DOC["001"], 20, "https://huggingface.co/papers/2409.02889", "inline", "arxiv"),
    (DOC["000"], 15, "https://qwenlm.github.io/blog/qwen2.5-vl/", "inline", "github_page"),
    (
        DOC["000"],
        28,
        "https://hf-mirror.com/collections/OpenGVLab/internvl-25-673e1019b66e2218f68d7c1c",
        "inline",
        "hf_collection",
    ),
    (
        DOC["004"],
        55,
        "https://huggingface.co/collections/mistralai/mistral-large-3",
        "inline",
        "hf_collection",
    ),
    (DOC["004"], 62, "https://hjfy.top/arxiv/2511.21631", "inline", "arxiv"),
]


@pytest.mark.parametrize(
    ("name", "line", "url", "syntax", "kind"),
    LANDMARKS,
    ids=[f"{name[:3]}-line{line}-{kind}" for name, line, _, _, kind in LANDMARKS],
)
def test_judgement_call_occurrences(
    links_by_document: dict[str, list[Link]],
    name: str,
    line: int,
    url: str,
    syntax: str,
    kind: str,
) -> None:
    on_line = [lk for lk in links_by_document.get(name, []) if lk.occurrence.line == line]
    matches = [lk for lk in on_line if lk.occurrence.url == url]
    assert len(matches) == 1, (
        f"{name}:{line}: expected one occurrence of {url}, found "
        f"{[lk.occurrence.url for lk in on_line]}"
    )
    (link,) = matches
    assert (link.occurrence.syntax, link.identity.kind) == (syntax, kind), f"{name}:{line}: {url}"
