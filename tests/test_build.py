"""Building a snapshot (`pipeline.snapshot.build`): the links table and its title
matches, dedup keys and winners, one row per entity, lineage, the last-known-good
fallback, what a restricted run did not ask, the change log and determinism (pure: no
disk).

Inputs are hand-made records of the resolvers' contract types, not network answers.
Publishing is tested in `test_store.py`, reading back in `test_read.py`.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pipeline.links.documents import Link, extract_links
from pipeline.links.extract import Occurrence
from pipeline.links.identify import Identity, Kind
from pipeline.records import (
    CollectionItem,
    Document,
    HubRepoRecord,
    LinkedModel,
    PaperPageRecord,
    PaperRecord,
    RepoType,
    Status,
    TitleMatch,
    size_label,
)
from pipeline.snapshot.build import (
    INVALID_ID,
    NOT_ASKED,
    NOT_RESOLVED,
    NotAsked,
    SnapshotInputs,
    build_tables,
    links_table,
    with_title_matches,
)
from pipeline.snapshot.schemas import LINKS_SCHEMA, TABLE_KEYS, TABLE_SCHEMAS
from pipeline.snapshot.store import check_tables

DAY1 = date(2026, 11, 19)
DAY2 = date(2026, 11, 20)
FETCHED1 = datetime(2026, 11, 19, 3, 0, tzinfo=UTC)
FETCHED2 = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
DOC = "awesome-mllm.md"
DOC_PATH = Path("raw/seeds/awesome-mllm.md")

# ----------------------------------------------------------------------------- factories


def _link(
    position: int,
    url: str,
    kind: Kind,
    entity_id: str | None,
    *,
    document: str = DOC,
    text: str = "link",
    item: str | None = None,
    headings: tuple[str, ...] = ("Models", "Vision-language"),
    host: str | None = None,
    version: int | None = None,
    valid: bool = True,
    problem: str | None = None,
) -> Link:
    occurrence = Occurrence(
        document=document,
        position=position,
        line=position + 1,
        heading_path=headings,
        item_date=None,
        link_text=text,
        annotation=item if item is not None else f"item {position}",
        is_main_link=True,
        url=url,
        syntax="inline",
    )
    identity = Identity(
        kind=kind,
        entity_id=entity_id,
        url_normalized=url,
        host=host if host is not None else url.split("/")[2] if "://" in url else None,
        arxiv_version=version,
        valid=valid,
        problem=problem,
    )
    if kind in ("arxiv", "arxiv_mention") and valid and entity_id:
        return Link(occurrence, identity, entity_id, "id")
    return Link(occurrence, identity)


def arxiv(position: int, arxiv_id: str, form: str = "abs", **kw: Any) -> Link:
    version = kw.pop("version", None)
    suffix = f"v{version}" if version else ""
    host = kw.pop("host", "arxiv.org")
    url = f"https://{host}/{form}/{arxiv_id}{suffix}"
    return _link(position, url, "arxiv", arxiv_id, version=version, **kw)


def titled(position: int, title: str, **kw: Any) -> Link:
    """A link to a PDF elsewhere whose text is the paper's title."""
    return _link(position, f"https://example.org/{position}.pdf", "other", None, text=title, **kw)


def hub(position: int, repo_id: str, kind: Kind = "hf_model", **kw: Any) -> Link:
    host = kw.pop("host", "huggingface.co")
    prefix = {"hf_dataset": "datasets/", "hf_space": "spaces/", "hf_collection": "collections/"}
    return _link(position, f"https://{host}/{prefix.get(kind, '')}{repo_id}", kind, repo_id, **kw)


def github(position: int, repo: str, **kw: Any) -> Link:
    return _link(position, f"https://github.com/{repo}", "github_repo", repo, **kw)


def paper(arxiv_id: str, status: Status = "ok", **kw: Any) -> PaperRecord:
    if status not in ("ok", "stale"):
        return PaperRecord(arxiv_id, status, status_reason=kw.get("status_reason", "HTTP 503"))
    values: dict[str, Any] = {
        "title": f"Paper {arxiv_id}",
        "authors": ("Ada Lovelace", "Alan Turing"),
        "published": FETCHED1 - timedelta(days=400),
        "updated": FETCHED1 - timedelta(days=30),
        "latest_version": 1,
        "primary_category": "cs.CV",
        "categories": ("cs.CV", "cs.CL"),
        "data_fetched_at": FETCHED2,
    }
    values.update(kw)
    return PaperRecord(arxiv_id, status, **values)


def model(
    requested: str,
    repo_id: str | None = None,
    status: Status = "ok",
    repo_type: RepoType = "model",
    **kw: Any,
) -> HubRepoRecord:
    values: dict[str, Any] = {"data_fetched_at": FETCHED2}
    if status in ("ok", "stale"):
        values.update(downloads=1000, likes=10, license="apache-2.0", params_total=7_615_616_512)
        values.update(params_source="safetensors", pipeline_tag="image-text-to-text")
    else:
        values.update(status_reason="HTTP 503", data_fetched_at=None)
    values.update(kw)
    return HubRepoRecord(repo_type, requested, repo_id or requested, status, **values)


def page(arxiv_id: str, status: Status = "ok", **kw: Any) -> PaperPageRecord:
    values: dict[str, Any] = {"upvotes": 42, "data_fetched_at": FETCHED2} if status == "ok" else {}
    values.update(kw)
    return PaperPageRecord(arxiv_id, status, **values)


def inputs(
    links: Sequence[Link],
    papers: Sequence[PaperRecord] = (),
    repos: Sequence[HubRepoRecord] = (),
    pages: Sequence[PaperPageRecord] = (),
    titles: Sequence[TitleMatch] = (),
) -> SnapshotInputs:
    return SnapshotInputs(
        links=list(links),
        papers={p.arxiv_id: p for p in papers},
        title_matches={t.query_title: t for t in titles},
        repos={(r.repo_type, r.requested_id): r for r in repos},
        paper_pages={p.arxiv_id: p for p in pages},
    )


def build(
    given: SnapshotInputs,
    day: date = DAY2,
    previous: Mapping[str, pa.Table] | None = None,
    replaced: Mapping[str, pa.Table] | None = None,
) -> dict[str, pa.Table]:
    tables = build_tables(given, snapshot_date=day, previous=previous, replaced=replaced)
    check_tables(tables)
    return tables


def rows(table: pa.Table) -> dict[Any, dict[str, Any]]:
    """Rows by key (the key's single value, or a tuple for compound keys)."""
    name = (table.schema.metadata or {}).get(b"table", b"").decode()
    keys = TABLE_KEYS[name]
    found: dict[Any, dict[str, Any]] = {}
    for row in table.to_pylist():
        key = tuple(row[k] for k in keys)
        found[key[0] if len(key) == 1 else key] = row
    return found


def as_previous(tables: dict[str, pa.Table], day: date) -> dict[str, pa.Table]:
    """Tables as `previous_tables` returns them: stamped with their snapshot date."""
    stamp = {b"snapshot_date": day.isoformat().encode()}
    return {
        name: table.replace_schema_metadata({**(table.schema.metadata or {}), **stamp})
        for name, table in tables.items()
    }


def _given_links(given: SnapshotInputs) -> list[Link]:
    """The links of inputs built here from `Link`s."""
    assert isinstance(given.links, list)
    return given.links


def rich_inputs() -> SnapshotInputs:
    """A bit of everything: papers by ID and title, models, a renamed model, a collection,
    a dataset, a space, GitHub repos, invalid identifiers, unresolved entities."""
    links = [
        arxiv(0, "2409.12191", item="Qwen2-VL [paper] [code] [model]"),
        github(1, "QwenLM/Qwen2-VL", item="Qwen2-VL [paper] [code] [model]"),
        hub(2, "Qwen/Qwen2-VL-7B-Instruct", item="Qwen2-VL [paper] [code] [model]"),
        arxiv(3, "2409.12191", form="pdf", version=2, document="other.md"),
        titled(4, "Visual Instruction Tuning", item="LLaVA"),
        hub(5, "liuhaotian/llava-v1.5-7b", item="LLaVA", host="hf-mirror.com"),
        hub(6, "old-org/moondream", item="moondream"),
        hub(7, "OpenGVLab/internvl-collection-6555", "hf_collection"),
        hub(8, "lmms-lab/LLaVA-OneVision-Data", "hf_dataset"),
        hub(9, "Qwen/Qwen2-VL", "hf_space"),
        arxiv(10, "2401.999999", valid=False, problem="7-digit number"),
        arxiv(11, "2502.13923", form="html", headings=()),
        _link(12, "https://huggingface.co/bad..name", "hf_model", "bad..name", valid=False),
        hub(13, "never/resolved"),
    ]
    return SnapshotInputs(
        links=links,
        documents=[Document(DOC, DOC_PATH), Document("other.md", DOC_PATH)],
        papers={
            "2409.12191": paper("2409.12191", title="Qwen2-VL", latest_version=2),
            "2304.08485": paper("2304.08485", title="Visual Instruction Tuning"),
            "2502.13923": paper("2502.13923", "not_found", status_reason="arXiv has no entry"),
        },
        title_matches={
            "Visual Instruction Tuning": TitleMatch(
                "Visual Instruction Tuning", "ok", "2304.08485", "Visual Instruction Tuning", 1.0
            )
        },
        repos={
            ("model", "Qwen/Qwen2-VL-7B-Instruct"): model(
                "Qwen/Qwen2-VL-7B-Instruct", arxiv_ids=("2409.12191",)
            ),
            ("model", "liuhaotian/llava-v1.5-7b"): model(
                "liuhaotian/llava-v1.5-7b", params_total=None, params_source=None
            ),
            ("model", "old-org/moondream"): model("old-org/moondream", "vikhyatk/moondream2"),
            ("model", "OpenGVLab/InternVL2-8B"): model(
                "OpenGVLab/InternVL2-8B", params_total=8_075_365_376
            ),
            ("collection", "OpenGVLab/internvl-collection-6555"): model(
                "OpenGVLab/internvl-collection-6555",
                repo_type="collection",
                title="InternVL",
                items=(
                    CollectionItem("model", "OpenGVLab/InternVL2-8B"),
                    CollectionItem("paper", "2404.16821"),
                ),
            ),
            ("dataset", "lmms-lab/LLaVA-OneVision-Data"): model(
                "lmms-lab/LLaVA-OneVision-Data", repo_type="dataset", gated="auto"
            ),
            ("space", "Qwen/Qwen2-VL"): model("Qwen/Qwen2-VL", repo_type="space", sdk="gradio"),
        },
        paper_pages={
            "2409.12191": page(
                "2409.12191",
                github_repo="https://github.com/QwenLM/Qwen2-VL",
                linked_models=(
                    LinkedModel("Qwen/Qwen2-VL-72B-Instruct", 73_405_560_320, "image-text-to-text"),
                    LinkedModel("Qwen/Qwen2-VL-7B-Instruct", 1, "stale-tag", downloads=1),
                ),
                num_total_models=2,
            ),
            "2304.08485": page("2304.08485", "not_found", status_reason="no paper page"),
        },
    )


# ----------------------------------------------------------------------------- schemas


def test_every_table_has_exactly_its_declared_schema() -> None:
    tables = build(rich_inputs())

    assert set(tables) == set(TABLE_SCHEMAS)
    for name, table in tables.items():
        assert table.schema.equals(TABLE_SCHEMAS[name], check_metadata=True), name
    assert tables["links"].schema.equals(LINKS_SCHEMA)
    assert tables["papers"].num_rows and tables["models"].num_rows and tables["repos"].num_rows


def test_keys_are_unique_and_rows_sorted_by_key() -> None:
    tables = build(rich_inputs())

    for name, table in tables.items():
        keys = [tuple(row[k] for k in TABLE_KEYS[name]) for row in table.to_pylist()]
        assert len(keys) == len(set(keys)), name
        if name not in ("links", "changes"):
            assert keys == sorted(keys), name


# ----------------------------------------------------------------------------- links


def test_every_link_occurrence_is_a_row_of_links_with_its_title_resolution() -> None:
    given = rich_inputs()
    links = build(given)["links"].to_pylist()

    assert [(r["document"], r["position"]) for r in links] == sorted(
        (link.occurrence.document, link.occurrence.position) for link in _given_links(given)
    )
    by_text = {r["link_text"]: r for r in links}
    assert by_text["Visual Instruction Tuning"]["resolved_arxiv_id"] == "2304.08485"
    assert by_text["Visual Instruction Tuning"]["resolved_by"] == "title"


def test_title_matches_lead_links_to_papers_but_never_override_ids() -> None:
    links = [arxiv(0, PAPER, text="Qwen2-VL"), titled(1, TITLE)]
    titles = [
        TitleMatch(TITLE, "ok", "2304.08485", TITLE, 1.0),
        TitleMatch("Qwen2-VL", "ok", "9999.99999", "Qwen2-VL", 1.0),
    ]

    tables = build(inputs(links, titles=titles))

    resolved = [(r["resolved_arxiv_id"], r["resolved_by"]) for r in tables["links"].to_pylist()]
    assert resolved == [(PAPER, "id"), ("2304.08485", "title")]
    assert set(rows(tables["papers"])) == {PAPER, "2304.08485"}


def test_a_link_from_a_document_that_was_not_read_is_refused() -> None:
    given = replace(rich_inputs(), documents=[Document("other.md", DOC_PATH)])

    with pytest.raises(ValueError, match=f"{DOC}.*not among the documents read"):
        build_tables(given, snapshot_date=DAY2)


# ----------------------------------------------------------------------------- papers

PAPER = "2409.12191"
TITLE = "Qwen2-VL: Enhancing Vision-Language Model's Perception of the World"
MATCH = TitleMatch(TITLE, "ok", PAPER, TITLE, 0.98)


@pytest.mark.parametrize(
    ("links", "resolved_by"),
    [
        ([arxiv(0, PAPER), arxiv(1, PAPER, form="pdf")], "id"),
        ([arxiv(0, PAPER), arxiv(1, PAPER, version=2)], "id"),
        ([arxiv(0, PAPER, form="html", version=1), arxiv(1, PAPER, form="pdf", version=2)], "id"),
        ([arxiv(0, PAPER, host="huggingface.co", form="papers"), arxiv(1, PAPER)], "id"),
        ([arxiv(0, PAPER, version=3), titled(1, TITLE)], "id"),
        ([titled(0, TITLE), titled(1, TITLE, document="other.md")], "title"),
        ([_link(0, f"arXiv:{PAPER}", "arxiv_mention", PAPER), titled(1, TITLE)], "id"),
    ],
    ids=[
        "abs+pdf",
        "abs+versioned",
        "html+pdf",
        "hf-paper-page+abs",
        "versioned+title",
        "title twice",
        "mention+title",
    ],
)
def test_every_way_of_linking_a_paper_lands_on_one_row(links: list[Link], resolved_by: str) -> None:
    papers = build(inputs(links, papers=[paper(PAPER)], titles=[MATCH]))["papers"]

    assert papers.num_rows == 1
    (row,) = papers.to_pylist()
    assert row["arxiv_id"] == PAPER
    assert row["resolved_by"] == resolved_by
    assert row["mention_count"] == 2
    assert row["status"] == "ok" and row["title"] == f"Paper {PAPER}"


def test_a_paper_reached_by_title_lists_the_titles_it_was_found_by() -> None:
    other = TitleMatch("Qwen2-VL", "stale", PAPER, TITLE, 0.9)
    links = [titled(0, TITLE), titled(1, "Qwen2-VL"), titled(2, "No such paper")]
    missing = TitleMatch("No such paper", "not_found")

    papers = build(inputs(links, [paper(PAPER)], titles=[MATCH, other, missing]))["papers"]

    (row,) = papers.to_pylist()
    assert row["title_queries"] == ["Qwen2-VL", TITLE]


def test_every_entity_found_by_extraction_has_exactly_one_row_with_a_status() -> None:
    given = rich_inputs()
    tables = build(given)
    papers, models, repos = rows(tables["papers"]), rows(tables["models"]), rows(tables["repos"])

    found_papers = {k for link in _given_links(given) if (k := link.resolved_arxiv_id)}
    found_papers |= {
        link.identity.entity_id
        for link in _given_links(given)
        if link.identity.kind == "arxiv" and link.identity.entity_id
    }
    assert found_papers | {"2304.08485"} == set(papers)
    assert {
        "Qwen/Qwen2-VL-7B-Instruct",
        "liuhaotian/llava-v1.5-7b",
        "vikhyatk/moondream2",
        "OpenGVLab/InternVL2-8B",
        "bad..name",
        "never/resolved",
    } == set(models)
    assert {
        ("collection", "OpenGVLab/internvl-collection-6555"),
        ("dataset", "lmms-lab/LLaVA-OneVision-Data"),
        ("space", "Qwen/Qwen2-VL"),
    } == set(repos)

    assert papers["2502.13923"]["status"] == "not_found"
    assert papers["2502.13923"]["status_reason"] == "arXiv has no entry"
    assert models["never/resolved"]["status"] == "error"
    assert models["never/resolved"]["status_reason"] == NOT_RESOLVED
    assert papers["2502.13923"]["hf_page_status"] == "error"


@pytest.mark.parametrize(
    ("link", "table", "key"),
    [
        (arxiv(0, "2401.999999", valid=False, problem="7-digit number"), "papers", "2401.999999"),
        (
            _link(0, "arXiv:1234.1234", "arxiv_mention", "1234.1234", valid=False),
            "papers",
            "1234.1234",
        ),
        (
            _link(0, "https://huggingface.co/a..b", "hf_model", "a..b", valid=False),
            "models",
            "a..b",
        ),
    ],
    ids=["arxiv link", "arxiv mention", "hub model"],
)
def test_an_invalid_identifier_gets_a_not_found_row_and_is_never_resolved(
    link: Link, table: str, key: str
) -> None:
    row = rows(build(inputs([link]))[table])[key]

    assert row["status"] == "not_found"
    assert row["status_reason"].startswith(INVALID_ID)
    assert row["mention_count"] == 1
    if link.identity.problem:
        assert link.identity.problem in row["status_reason"]


def test_paper_lineage_lists_documents_headings_and_mentions() -> None:
    links = [
        arxiv(0, PAPER, headings=("Models", "Qwen")),
        arxiv(1, PAPER, headings=("Models", "Qwen")),
        arxiv(2, PAPER, document="b.md", headings=("Survey",)),
        arxiv(3, PAPER, document="a.md", headings=()),
    ]

    (row,) = build(inputs(links, [paper(PAPER)]))["papers"].to_pylist()

    assert row["documents"] == sorted(["a.md", "b.md", DOC])
    assert row["headings"] == ["Models > Qwen", "Survey"]
    assert row["mention_count"] == 4
    assert row["first_seen"] == row["last_seen"] == DAY2


def test_hf_models_merge_the_paper_page_with_our_models_table() -> None:
    row = rows(build(rich_inputs())["papers"])[PAPER]

    assert row["hf_models"] == [
        # From the paper page only.
        {
            "repo_id": "Qwen/Qwen2-VL-72B-Instruct",
            "params_total": 73_405_560_320,
            "size_label": size_label(73_405_560_320),
            "pipeline_tag": "image-text-to-text",
            "downloads": None,
        },
        # In both: our models table's fresher record wins over the page's summary.
        {
            "repo_id": "Qwen/Qwen2-VL-7B-Instruct",
            "params_total": 7_615_616_512,
            "size_label": size_label(7_615_616_512),
            "pipeline_tag": "image-text-to-text",
            "downloads": 1000,
        },
    ]
    assert row["hf_upvotes"] == 42 and row["hf_num_models"] == 2
    assert row["hf_github_repo"] == "https://github.com/QwenLM/Qwen2-VL"


def test_github_repos_link_to_the_papers_of_their_list_item() -> None:
    tables = build(rich_inputs())

    github_rows = rows(tables["github_repos"])
    assert github_rows["QwenLM/Qwen2-VL"]["arxiv_ids"] == [PAPER]
    assert github_rows["QwenLM/Qwen2-VL"]["url"] == "https://github.com/QwenLM/Qwen2-VL"
    assert rows(tables["papers"])[PAPER]["github_repos"] == ["QwenLM/Qwen2-VL"]
    assert rows(tables["papers"])["2304.08485"]["github_repos"] == []


# ----------------------------------------------------------------------------- models

MODEL = "Qwen/Qwen2-VL-7B-Instruct"


@pytest.mark.parametrize(
    ("links", "records", "written_as"),
    [
        ([hub(0, MODEL), hub(1, MODEL, host="hf-mirror.com")], [model(MODEL)], [MODEL]),
        (
            [hub(0, "Qwen/Qwen2-VL-7B-Chat"), hub(1, MODEL)],
            [model("Qwen/Qwen2-VL-7B-Chat", MODEL), model(MODEL)],
            ["Qwen/Qwen2-VL-7B-Chat", MODEL],
        ),
        (
            [hub(0, "qwen/qwen2-vl-7b-instruct"), hub(1, MODEL)],
            [model("qwen/qwen2-vl-7b-instruct", MODEL), model(MODEL, status="error")],
            [MODEL, "qwen/qwen2-vl-7b-instruct"],
        ),
        (
            [hub(0, "Qwen/Qwen2-VL-7B-Chat", host="hf-mirror.com"), hub(1, MODEL)],
            [model("Qwen/Qwen2-VL-7B-Chat", MODEL)],
            ["Qwen/Qwen2-VL-7B-Chat", MODEL],
        ),
    ],
    ids=[
        "huggingface.co+hf-mirror",
        "renamed",
        "other case, canonical lookup failed",
        "renamed via mirror, canonical never asked",
    ],
)
def test_every_way_of_naming_a_model_lands_on_one_row(
    links: list[Link], records: list[HubRepoRecord], written_as: list[str]
) -> None:
    models = build(inputs(links, repos=records))["models"]

    (row,) = models.to_pylist()
    assert row["repo_id"] == MODEL
    assert row["written_as"] == written_as
    assert row["mention_count"] == 2
    assert row["status"] == "ok"


T_OLD = FETCHED2 - timedelta(hours=5)


@pytest.mark.parametrize(
    ("records", "winner_downloads"),
    [
        ([model("a/x", MODEL, "stale", downloads=1), model(MODEL, downloads=2)], 2),
        ([model("a/x", MODEL, downloads=1), model(MODEL, status="error")], 1),
        (
            [
                model("a/x", MODEL, downloads=1, data_fetched_at=T_OLD),
                model(MODEL, status="stale", downloads=2),
            ],
            1,
        ),
        ([model("a/x", MODEL, downloads=1), model(MODEL, downloads=2, data_fetched_at=T_OLD)], 1),
        ([model("a/x", MODEL, downloads=1), model(MODEL, downloads=2)], 2),
        ([model("b/y", MODEL, downloads=1), model("a/x", MODEL, downloads=2)], 2),
    ],
    ids=[
        "ok beats stale",
        "ok beats error",
        "ok beats newer stale",
        "newest data wins",
        "then the canonical name",
        "then the first name",
    ],
)
def test_the_documented_winner_makes_the_row(
    records: list[HubRepoRecord], winner_downloads: int
) -> None:
    links = [hub(i, r.requested_id) for i, r in enumerate(records)]

    (row,) = build(inputs(links, repos=records))["models"].to_pylist()

    assert row["downloads"] == winner_downloads
    assert row["status"] in ("ok", "stale")


def test_models_carry_sizes_and_the_collections_that_hold_them() -> None:
    models = rows(build(rich_inputs())["models"])

    internvl = models["OpenGVLab/InternVL2-8B"]
    assert internvl["collections"] == ["OpenGVLab/internvl-collection-6555"]
    assert internvl["documents"] == [] and internvl["mention_count"] == 0
    assert internvl["size_label"] == size_label(8_075_365_376)
    assert models["liuhaotian/llava-v1.5-7b"]["size_label"] is None
    assert models[MODEL]["collections"] == []
    assert models[MODEL]["arxiv_ids"] == [PAPER]


def test_a_collection_that_failed_lends_its_models_nothing() -> None:
    collection = model("o/c-1", repo_type="collection", status="error")
    links = [hub(0, "o/c-1", "hf_collection"), hub(1, MODEL)]

    tables = build(inputs(links, repos=[collection, model(MODEL)]))

    assert rows(tables["models"])[MODEL]["collections"] == []
    assert rows(tables["repos"])[("collection", "o/c-1")]["status"] == "error"


# ----------------------------------------------------------------------------- fallback


@pytest.mark.parametrize(
    ("before", "tonight", "expected"),
    [
        ("ok", "error", "stale"),
        ("stale", "error", "stale"),
        ("ok", None, "stale"),
        ("not_found", "error", "error"),
        ("error", "error", "error"),
        (None, "error", "error"),
        ("ok", "not_found", "not_found"),
        ("ok", "ok", "ok"),
    ],
)
def test_a_failed_lookup_falls_back_to_the_last_good_row(
    before: Status | None, tonight: Status | None, expected: Status
) -> None:
    links = [arxiv(0, PAPER), hub(1, MODEL)]

    def night(status: Status | None, title: str, fetched: datetime) -> SnapshotInputs:
        if status is None:
            return inputs(links)
        return inputs(
            links,
            [paper(PAPER, status, title=title, data_fetched_at=fetched)],
            [model(MODEL, status=status, downloads=len(title), data_fetched_at=fetched)],
        )

    previous = None
    if before is not None:
        previous = as_previous(build(night(before, "Yesterday's", FETCHED1), DAY1), DAY1)
    tables = build(night(tonight, "Tonight's", FETCHED2), DAY2, previous)

    for table, key, column, good in (
        ("papers", PAPER, "title", "Yesterday's"),
        ("models", MODEL, "downloads", len("Yesterday's")),
    ):
        row = rows(tables[table])[key]
        assert row["status"] == expected, table
        if expected == "stale":
            assert row[column] == good
            assert row["data_fetched_at"] == FETCHED1
            tonight_reason = "HTTP 503" if tonight else NOT_RESOLVED
            assert tonight_reason in row["status_reason"]
            assert FETCHED1.isoformat() in row["status_reason"]


def test_a_failed_paper_page_keeps_its_last_good_values_apart_from_arxiv() -> None:
    links = [arxiv(0, PAPER)]
    yesterday = inputs(
        links,
        [paper(PAPER)],
        pages=[
            page(
                PAPER,
                upvotes=7,
                data_fetched_at=FETCHED1,
                linked_models=(LinkedModel("a/m", 1_000_000),),
            )
        ],
    )
    previous = as_previous(build(yesterday, DAY1), DAY1)

    tonight = inputs(
        links, [paper(PAPER, title="New")], pages=[page(PAPER, "error", status_reason="HTTP 500")]
    )
    row = rows(build(tonight, DAY2, previous)["papers"])[PAPER]

    assert (row["status"], row["title"]) == ("ok", "New")
    assert (row["hf_page_status"], row["hf_upvotes"]) == ("stale", 7)
    assert row["hf_page_fetched_at"] == FETCHED1
    assert [m["repo_id"] for m in row["hf_models"]] == ["a/m"]
    assert "HTTP 500" in row["hf_page_status_reason"]


def test_a_renamed_model_whose_lookup_fails_stays_under_its_known_name() -> None:
    links = [hub(0, "old/name")]
    yesterday = inputs(links, repos=[model("old/name", MODEL, data_fetched_at=FETCHED1)])
    previous = as_previous(build(yesterday, DAY1), DAY1)

    tables = build(inputs(links, repos=[model("old/name", status="error")]), DAY2, previous)

    (row,) = tables["models"].to_pylist()
    assert (row["repo_id"], row["status"], row["written_as"]) == (MODEL, "stale", ["old/name"])
    changes = tables["changes"].filter(pc.equal(tables["changes"]["entity_type"], "model"))
    assert changes.select(["change", "field", "new_value"]).to_pylist() == [
        {"change": "changed", "field": "status", "new_value": "stale"}
    ]


def test_a_paper_found_by_title_keeps_its_row_while_its_title_search_fails() -> None:
    title = "Visual Instruction Tuning"
    links = [titled(0, title)]
    found = TitleMatch(title, "ok", PAPER, title, 1.0, data_fetched_at=FETCHED1)
    yesterday = inputs(links, [paper(PAPER, data_fetched_at=FETCHED1)], titles=[found])
    previous = as_previous(build(yesterday, DAY1), DAY1)

    failed = TitleMatch(title, "error", status_reason="HTTP 503 from arXiv")
    tables = build(inputs(links, titles=[failed]), DAY2, previous)

    row = rows(tables["papers"])[PAPER]
    assert (row["status"], row["resolved_by"], row["title_queries"]) == ("stale", "title", [title])
    assert (row["title"], row["data_fetched_at"]) == (f"Paper {PAPER}", FETCHED1)
    assert "its title search failed (HTTP 503 from arXiv)" in row["status_reason"]
    assert rows(tables["links"])[(DOC, 0)]["resolved_arxiv_id"] == PAPER
    # A title arXiv now finds no paper for is an answer: the link leads nowhere tonight.
    gone = TitleMatch(
        title, "not_found", status_reason="arXiv has no paper whose title contains it"
    )
    assert PAPER not in rows(build(inputs(links, titles=[gone]), DAY2, previous)["papers"])


def test_the_models_of_a_collection_known_from_the_previous_night_keep_their_rows() -> None:
    items = (CollectionItem("model", MODEL),)
    collection = model("o/c-1", repo_type="collection", items=items, data_fetched_at=FETCHED1)
    links = [hub(0, "o/c-1", "hf_collection")]
    yesterday = inputs(links, repos=[collection, model(MODEL, data_fetched_at=FETCHED1)])
    previous = as_previous(build(yesterday, DAY1), DAY1)

    failed = model("o/c-1", repo_type="collection", status="error")
    tables = build(inputs(links, repos=[failed]), DAY2, previous)

    item = rows(tables["models"])[MODEL]
    assert (item["status"], item["downloads"], item["data_fetched_at"]) == ("stale", 1000, FETCHED1)
    assert item["collections"] == ["o/c-1"] and item["written_as"] == [MODEL]
    assert (
        "an item of collection o/c-1, whose items could not be looked up" in (item["status_reason"])
    )


def test_first_seen_is_carried_from_the_previous_snapshot() -> None:
    previous = as_previous(build(inputs([arxiv(0, PAPER)], [paper(PAPER)]), DAY1), DAY1)

    links = [arxiv(0, PAPER), arxiv(1, "2502.13923")]
    papers = rows(build(inputs(links, [paper(PAPER)]), DAY2, previous)["papers"])

    assert (papers[PAPER]["first_seen"], papers[PAPER]["last_seen"]) == (DAY1, DAY2)
    assert papers["2502.13923"]["first_seen"] == DAY2


class _Asked(Mapping[str, pa.Table]):
    """A baseline that records which tables are asked for, in order (as `read.Baseline`
    reads each when asked)."""

    def __init__(self, tables: dict[str, pa.Table]) -> None:
        self._tables = tables
        self.asked: list[str] = []

    def __getitem__(self, name: str) -> pa.Table:
        self.asked.append(name)
        return self._tables[name]

    def __contains__(self, name: object) -> bool:
        return name in self._tables

    def __iter__(self) -> Iterator[str]:
        return iter(self._tables)

    def __len__(self) -> int:
        return len(self._tables)


def test_the_previous_links_are_asked_for_last_and_once() -> None:
    """The largest table of a baseline is read when the listing stage starts, not held
    through the whole build; the previous changes are never read."""
    yesterday = inputs([arxiv(0, PAPER), hub(1, MODEL)], [paper(PAPER)], [model(MODEL)])
    previous = as_previous(build(yesterday, DAY1), DAY1)
    tonight = inputs([arxiv(0, PAPER), arxiv(1, "2502.13923")], [paper(PAPER), paper("2502.13923")])
    asked = _Asked(previous)

    tables = build(tonight, DAY2, asked)

    assert asked.asked.count("links") == 1 and asked.asked[-1] == "links"
    assert "changes" not in asked.asked
    assert {"papers", "models"} <= set(asked.asked)
    expected = build(tonight, DAY2, previous)
    assert all(tables[name].equals(expected[name]) for name in TABLE_SCHEMAS)


# ----------------------------------------------------------------------------- not asked

LLAVA = "2304.08485"
LLAVA_TITLE = "Visual Instruction Tuning"
RESTRICTION = "restricted run: --resolvers arxiv hub"
COLLECTION = "o/c-1"


def full_night(fetched: datetime) -> SnapshotInputs:
    """A paper by ID, a paper by title, a model, a collection holding another model."""
    links = [
        arxiv(0, PAPER),
        titled(1, LLAVA_TITLE),
        hub(2, MODEL),
        hub(3, COLLECTION, "hf_collection"),
    ]
    held = "o/held"
    return inputs(
        links,
        [paper(PAPER, data_fetched_at=fetched), paper(LLAVA, data_fetched_at=fetched)],
        [
            model(MODEL, data_fetched_at=fetched),
            model(
                COLLECTION,
                repo_type="collection",
                items=(CollectionItem("model", held),),
                data_fetched_at=fetched,
            ),
            model(held, data_fetched_at=fetched),
        ],
        [page(PAPER, data_fetched_at=fetched), page(LLAVA, data_fetched_at=fetched)],
        [TitleMatch(LLAVA_TITLE, "ok", LLAVA, LLAVA_TITLE, 1.0, data_fetched_at=fetched)],
    )


def restricted(given: SnapshotInputs, not_asked: NotAsked) -> SnapshotInputs:
    """`given` as a run that did not ask what `not_asked` lists: no record for it."""
    return replace(
        given,
        papers={k: v for k, v in given.papers.items() if k not in not_asked.arxiv},
        title_matches={
            k: v for k, v in given.title_matches.items() if k not in not_asked.arxiv_titles
        },
        repos={k: v for k, v in given.repos.items() if k not in not_asked.hub},
        paper_pages={k: v for k, v in given.paper_pages.items() if k not in not_asked.paper_pages},
        not_asked=not_asked,
    )


def kept(when: datetime) -> str:
    """The reason of a row that keeps values the run did not ask for."""
    fetched = when.isoformat()
    return f"{NOT_ASKED} ({RESTRICTION}); values are the last good ones, fetched at {fetched}"


def test_a_restricted_rerun_keeps_what_it_did_not_ask_from_the_night_it_replaces() -> None:
    """The night is replaced by a run with `--resolvers arxiv hub`, and no night came
    before: titles and paper pages were not asked, and the paper found by title keeps
    its row, its link and its values, as the replaced night had them."""
    replaced = as_previous(build(full_night(FETCHED1), DAY2), DAY2)
    not_asked = NotAsked(arxiv_titles={LLAVA_TITLE}, paper_pages={PAPER}, restriction=RESTRICTION)
    tonight = restricted(full_night(FETCHED2), not_asked)
    # Its title was not searched: the night knows no ID of the paper found by it.
    tonight = replace(tonight, papers={PAPER: tonight.papers[PAPER]}, paper_pages={})

    tables = build(tonight, DAY2, previous=None, replaced=replaced)

    link = rows(tables["links"])[(DOC, 1)]
    assert (link["resolved_arxiv_id"], link["resolved_by"]) == (LLAVA, "title")
    papers = rows(tables["papers"])
    by_title = papers[LLAVA]
    assert (by_title["status"], by_title["data_fetched_at"]) == ("stale", FETCHED1)
    assert by_title["status_reason"] == kept(FETCHED1)
    assert (by_title["title"], by_title["title_queries"]) == (f"Paper {LLAVA}", [LLAVA_TITLE])
    assert (by_title["hf_page_status"], by_title["hf_upvotes"]) == ("stale", 42)
    assert by_title["hf_page_status_reason"] == kept(FETCHED1)
    by_id = papers[PAPER]
    assert (by_id["status"], by_id["data_fetched_at"]) == ("ok", FETCHED2)
    assert (by_id["hf_page_status"], by_id["hf_page_fetched_at"]) == ("stale", FETCHED1)
    assert by_id["hf_page_status_reason"] == kept(FETCHED1)
    assert rows(tables["models"])[MODEL]["status"] == "ok"


def test_what_a_restricted_run_did_not_ask_and_never_knew_is_an_error_saying_so() -> None:
    not_asked = NotAsked(
        arxiv={PAPER},
        hub={("model", MODEL), ("collection", COLLECTION)},
        paper_pages={PAPER},
        restriction=RESTRICTION,
    )
    tonight = restricted(full_night(FETCHED2), not_asked)

    tables = build(tonight, DAY2)

    reason = f"{NOT_ASKED} ({RESTRICTION})"
    paper_row = rows(tables["papers"])[PAPER]
    assert (paper_row["status"], paper_row["status_reason"]) == ("error", reason)
    assert (paper_row["hf_page_status"], paper_row["hf_page_status_reason"]) == ("error", reason)
    assert rows(tables["models"])[MODEL]["status_reason"] == reason
    assert rows(tables["repos"])[("collection", COLLECTION)]["status_reason"] == reason
    # What was asked is answered as in a full run.
    assert rows(tables["papers"])[LLAVA]["status"] == "ok"


def test_a_not_found_answer_is_kept_when_a_restricted_run_does_not_ask_again() -> None:
    """Nobody on the Hub cites the paper: a run that skips paper pages does not turn that
    answer into an error."""
    night1 = replace(
        full_night(FETCHED1),
        paper_pages={
            PAPER: page(PAPER, "not_found", status_reason="no paper page", data_fetched_at=FETCHED1)
        },
    )
    previous = as_previous(build(night1, DAY1), DAY1)
    not_asked = NotAsked(paper_pages={PAPER, LLAVA}, restriction=RESTRICTION)

    tables = build(restricted(full_night(FETCHED2), not_asked), DAY2, previous)

    row = rows(tables["papers"])[PAPER]
    assert (row["hf_page_status"], row["hf_page_fetched_at"]) == ("not_found", FETCHED1)
    assert row["hf_page_status_reason"] == (
        f"{NOT_ASKED} ({RESTRICTION}); the last answer, fetched at {FETCHED1.isoformat()}:"
        " no paper page"
    )
    # Never asked before either: no answer to keep.
    assert rows(tables["papers"])[LLAVA]["hf_page_status"] == "error"


def test_a_limited_run_keeps_the_previous_nights_values_of_what_it_left_out() -> None:
    """`--limit`: the Hub was asked about the model only. The collection, and the model
    only the collection holds, keep the previous night's values."""
    previous = as_previous(build(full_night(FETCHED1), DAY1), DAY1)
    not_asked = NotAsked(hub={("collection", COLLECTION)}, restriction="restricted run: --limit 1")
    tonight = restricted(full_night(FETCHED2), not_asked)
    tonight = replace(tonight, repos={k: v for k, v in tonight.repos.items() if k[1] == MODEL})

    tables = build(tonight, DAY2, previous)

    reason = f"{NOT_ASKED} (restricted run: --limit 1); values are the last good ones"
    collection = rows(tables["repos"])[("collection", COLLECTION)]
    assert (collection["status"], collection["data_fetched_at"]) == ("stale", FETCHED1)
    assert collection["status_reason"].startswith(reason)
    held = rows(tables["models"])["o/held"]
    assert (held["status"], held["downloads"], held["collections"]) == ("stale", 1000, [COLLECTION])
    assert held["status_reason"].startswith(reason)
    assert rows(tables["models"])[MODEL]["data_fetched_at"] == FETCHED2


def test_what_was_not_asked_comes_from_the_replaced_night_before_the_previous_one() -> None:
    previous = as_previous(build(full_night(FETCHED1), DAY1), DAY1)
    replaced = as_previous(build(full_night(FETCHED2), DAY2, previous), DAY2)
    not_asked = NotAsked(arxiv={PAPER}, restriction=RESTRICTION)

    tables = build(restricted(full_night(FETCHED2), not_asked), DAY2, previous, replaced)

    row = rows(tables["papers"])[PAPER]
    assert (row["status"], row["data_fetched_at"]) == ("stale", FETCHED2)
    assert row["status_reason"] == kept(FETCHED2)
    assert (row["first_seen"], row["last_seen"]) == (DAY1, DAY2)  # lineage: previous night


def test_a_record_answers_for_an_entity_listed_as_not_asked() -> None:
    """A collection's lookup answers for its items, even those `--limit` left out."""
    previous = as_previous(build(full_night(FETCHED1), DAY1), DAY1)
    not_asked = NotAsked(hub={("model", "o/held")}, restriction=RESTRICTION)

    tables = build(replace(full_night(FETCHED2), not_asked=not_asked), DAY2, previous)

    held = rows(tables["models"])["o/held"]
    assert (held["status"], held["data_fetched_at"]) == ("ok", FETCHED2)


def test_a_full_rerun_does_not_read_the_night_it_replaces() -> None:
    given = rich_inputs()
    previous = as_previous(build(given, DAY1), DAY1)
    replaced = as_previous(build(full_night(FETCHED1), DAY2), DAY2)

    with_replaced = build(given, DAY2, previous, replaced)
    without = build(given, DAY2, previous)

    for name in TABLE_SCHEMAS:
        assert with_replaced[name].equals(without[name]), name


def test_links_given_with_their_title_matches_applied_build_the_same_tables() -> None:
    given = rich_inputs()
    matched = {t: m.arxiv_id for t, m in given.title_matches.items() if m.arxiv_id}

    relinked = with_title_matches(links_table(_given_links(given)), matched)
    again = build(replace(given, links=relinked))

    first = build(given)
    for name in TABLE_SCHEMAS:
        assert again[name].equals(first[name]), name


# ----------------------------------------------------------------------------- changes


def test_changes_list_what_is_new_since_the_previous_snapshot() -> None:
    yesterday = inputs(
        [arxiv(0, PAPER), arxiv(1, "2304.08485"), hub(2, MODEL), hub(3, "gone/model")],
        [paper(PAPER), paper("2304.08485")],
        [model(MODEL), model("gone/model")],
    )
    previous = as_previous(build(yesterday, DAY1), DAY1)
    tonight = inputs(
        [arxiv(0, PAPER), arxiv(1, "2304.08485"), arxiv(2, "2502.13923"), hub(3, MODEL)],
        [paper(PAPER, latest_version=2), paper("2304.08485", "error"), paper("2502.13923")],
        [model(MODEL, params_total=8_291_375_616, downloads=999_999)],
    )

    changes = build(tonight, DAY2, previous)["changes"].to_pylist()

    found = {
        (c["entity_type"], c["entity_id"], c["change"], c["field"]): (
            c["old_value"],
            c["new_value"],
        )
        for c in changes
    }
    assert found == {
        ("paper", "2502.13923", "added", None): (None, None),
        ("paper", PAPER, "changed", "latest_version"): ("1", "2"),
        ("paper", "2304.08485", "changed", "status"): ("ok", "stale"),
        ("model", MODEL, "changed", "params_total"): ("7615616512", "8291375616"),
        ("model", MODEL, "changed", "size_label"): (
            size_label(7_615_616_512),
            size_label(8_291_375_616),
        ),
        ("model", "gone/model", "removed", None): (None, None),
        # The list itself: what entered and what left it (`field` names the document).
        ("paper", "2502.13923", "listed", "awesome-mllm.md"): (None, None),
        ("model", "gone/model", "unlisted", "awesome-mllm.md"): (None, None),
    }
    assert {c["previous_snapshot_date"] for c in changes} == {DAY1}


def test_changes_over_many_batches_compare_each_paper_with_its_own_previous_row() -> None:
    """More papers than one batch of tonight's rows holds: the previous rows are taken by
    key for each batch, so changes, removals and additions land on the right papers."""
    ids = [f"2401.{n:05d}" for n in range(10_000)]
    yesterday = inputs([arxiv(i, a) for i, a in enumerate(ids)], [paper(a) for a in ids], [])
    previous = as_previous(build(yesterday, DAY1), DAY1)
    gone, new, bumped = ids[4_321], "2402.00001", {ids[5], ids[4_500], ids[9_999]}
    tonight_ids = [a for a in ids if a != gone] + [new]
    tonight = inputs(
        [arxiv(i, a) for i, a in enumerate(tonight_ids)],
        [paper(a, latest_version=2 if a in bumped else 1) for a in tonight_ids],
        [],
    )

    changes = build(tonight, DAY2, previous)["changes"].to_pylist()

    assert {
        (c["entity_id"], c["change"], c["field"], c["old_value"], c["new_value"])
        for c in changes
        if c["change"] in ("added", "changed", "removed")
    } == {
        (new, "added", None, None, None),
        (gone, "removed", None, None, None),
        *((a, "changed", "latest_version", "1", "2") for a in bumped),
    }


def test_the_first_snapshot_lists_every_entity_as_added() -> None:
    tables = build(rich_inputs())
    changes = tables["changes"].to_pylist()

    assert {c["change"] for c in changes} == {"added"}
    expected = (
        tables["papers"].num_rows
        + tables["models"].num_rows
        + tables["repos"].num_rows
        + tables["github_repos"].num_rows
    )
    assert len(changes) == expected
    assert {c["previous_snapshot_date"] for c in changes} == {None}


# ----------------------------------------------------------------------------- determinism


def _shuffled(given: SnapshotInputs, seed: int) -> SnapshotInputs:
    rng = random.Random(seed)

    def mixed(mapping: Any) -> Any:
        items = list(mapping.items())
        rng.shuffle(items)
        return dict(items)

    links = list(_given_links(given))
    rng.shuffle(links)
    return SnapshotInputs(
        links=links,
        documents=given.documents,
        papers=mixed(given.papers),
        title_matches=mixed(given.title_matches),
        repos=mixed(given.repos),
        paper_pages=mixed(given.paper_pages),
    )


def test_the_same_inputs_in_any_order_build_identical_tables() -> None:
    given = rich_inputs()
    previous = as_previous(build(given, DAY1), DAY1)

    first = build(given, DAY2, previous)
    for seed in range(5):
        again = build(_shuffled(given, seed), DAY2, previous)
        for name in TABLE_SCHEMAS:
            assert again[name].equals(first[name]), (name, seed)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            SnapshotInputs([], papers={"2409.12191": paper("2409.12192")}),
            r"papers\['2409.12191'\] holds the record of '2409.12192'",
        ),
        (
            SnapshotInputs([], repos={("model", "a/b"): model("a/c")}),
            r"repos\[\('model', 'a/b'\)\] holds the record of \('model', 'a/c'\)",
        ),
        (SnapshotInputs([], paper_pages={"1": page("2")}), r"paper_pages\['1'\]"),
        (
            inputs([], [paper(PAPER, data_fetched_at=datetime(2026, 1, 1))]),
            f"paper {PAPER}: 2026-01-01T00:00:00 has no timezone",
        ),
        (
            inputs([], [paper(PAPER, updated=datetime(2026, 1, 1))]),
            f"paper {PAPER} updated: .* has no timezone",
        ),
        (
            inputs([], repos=[model(MODEL, status="fine")]),  # type: ignore[arg-type]
            f"model {MODEL}: status 'fine' is not one of",
        ),
    ],
    ids=[
        "paper key",
        "repo key",
        "page key",
        "naive fetch time",
        "naive updated",
        "unknown status",
    ],
)
def test_inconsistent_inputs_are_refused_naming_the_record(
    given: SnapshotInputs, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_tables(given, snapshot_date=DAY2)


def test_a_previous_snapshot_without_newer_columns_still_serves_as_baseline() -> None:
    old = build(inputs([arxiv(0, PAPER)], [paper(PAPER)]), DAY1)
    old["papers"] = old["papers"].drop_columns(["github_repos", "title_queries"])

    tables = build(inputs([arxiv(0, PAPER)], [paper(PAPER, "error")]), DAY2, as_previous(old, DAY1))

    row = rows(tables["papers"])[PAPER]
    assert (row["status"], row["title"]) == ("stale", f"Paper {PAPER}")


def test_an_empty_run_builds_empty_tables() -> None:
    tables = build(SnapshotInputs([]))

    assert all(table.num_rows == 0 for table in tables.values())


def test_an_invalid_github_repo_is_a_link_never_a_key(tmp_path: Path) -> None:
    document = tmp_path / "list.md"
    document.write_text(
        "- [ok](https://github.com/QwenLM/Qwen2-VL)\n"
        "- [climb](https://github.com/../../etc/passwd)\n"
        "- [climb too](https://github.com/x/y/blob/main/../../../../root/.ssh)\n"
    )
    links = extract_links([document]).links

    tables = build_tables(SnapshotInputs(links=links), snapshot_date=DAY1)

    assert tables["github_repos"].column("repo").to_pylist() == ["qwenlm/qwen2-vl"]
    assert tables["links"].column("id_valid").to_pylist() == [True, False, False]


FAMILY_CASES: list[tuple[str, str | None, str]] = [
    # (model, its base_model, its family)
    ("a/base", None, "a/base"),
    ("a/instruct", "a/base", "a/base"),
    ("a/instruct-nvfp4", "A/Instruct", "a/base"),  # Hub names are case-insensitive
    ("a/instruct-gguf", "old/name", "a/base"),  # by a name the table's row was written as
    ("b/tuned", "outside/root", "outside/root"),  # a base not in the table is the family
    # One base outside the table, spelt two ways: one family, spelt as first seen (by repo ID)
    ("e/one", "Outside/Spelt", "Outside/Spelt"),
    ("e/two", "outside/spelt", "Outside/Spelt"),
    ("c/one", "c/two", "c/one"),  # a cycle ends at its smallest repo ID
    ("c/two", "c/one", "c/one"),
    ("d/alone", None, "d/alone"),
]


def test_families_follow_bases_within_the_table() -> None:
    links = [hub(i, repo_id) for i, (repo_id, _, _) in enumerate(FAMILY_CASES)]
    links.append(hub(len(links), "old/name"))
    records = [
        model(repo_id, base_model=base, base_model_relation="finetune" if base else None)
        for repo_id, base, _ in FAMILY_CASES
        if repo_id != "a/instruct"
    ]
    records.append(model("old/name", "a/instruct", base_model="a/base"))
    models = rows(build(inputs(links, repos=records))["models"])
    assert {repo_id: models[repo_id]["family"] for repo_id, _, _ in FAMILY_CASES} == {
        repo_id: family for repo_id, _, family in FAMILY_CASES
    }
    assert models["a/instruct"]["written_as"] == ["a/instruct", "old/name"]
    assert models["b/tuned"]["base_model_relation"] == "finetune"


def test_paper_pages_list_models_with_the_logical_size_of_their_row() -> None:
    stored, logical = 381_259_080_768, 675_269_255_744
    listed = (LinkedModel("m/nvfp4", stored), LinkedModel("m/elsewhere", stored))
    given = inputs(
        [arxiv(0, PAPER), hub(1, "m/nvfp4")],
        [paper(PAPER)],
        [model("m/nvfp4", params_total=logical, params_stored=stored)],
        [page(PAPER, linked_models=listed)],
    )
    cited = rows(build(given)["papers"])[PAPER]["hf_models"]
    sizes = {m["repo_id"]: m["params_total"] for m in cited}
    assert sizes == {"m/nvfp4": logical, "m/elsewhere": stored}


# ----------------------------------------------------------------------------- GitHub


def test_github_repos_carry_githubs_metadata_and_keep_the_last_good_when_a_lookup_fails() -> None:
    from pipeline.records import GithubRepoRecord

    record = GithubRepoRecord(
        "qwenlm/qwen2-vl",
        "ok",
        full_name="Qwen/Qwen2-VL",  # renamed: both names kept
        stars=9000,
        forks=500,
        open_issues=30,
        pushed_at=FETCHED1,
        archived=False,
        license="Apache-2.0",
        topics=("vlm",),
        language="Python",
        data_fetched_at=FETCHED1,
    )
    links = [arxiv(0, PAPER, item="Qwen2-VL"), github(1, "qwenlm/qwen2-vl", item="Qwen2-VL")]
    night_1 = replace(inputs(links, [paper(PAPER)]), github_repos={record.repo: record})
    previous = as_previous(build(night_1, DAY1), DAY1)
    failed = GithubRepoRecord("qwenlm/qwen2-vl", "error", "HTTP 502")
    night_2 = replace(inputs(links, [paper(PAPER)]), github_repos={record.repo: failed})

    first = rows(build(night_1, DAY1)["github_repos"])["qwenlm/qwen2-vl"]
    second = rows(build(night_2, DAY2, previous)["github_repos"])["qwenlm/qwen2-vl"]
    unasked = rows(build(inputs(links, [paper(PAPER)]), DAY2)["github_repos"])["qwenlm/qwen2-vl"]

    assert (first["repo"], first["full_name"], first["stars"]) == (
        "qwenlm/qwen2-vl",
        "Qwen/Qwen2-VL",
        9000,
    )
    assert (first["license"], first["topics"], first["status"]) == ("Apache-2.0", ["vlm"], "ok")
    assert second["status"] == "stale" and second["stars"] == 9000
    assert "HTTP 502" in second["status_reason"]
    assert second["data_fetched_at"] == FETCHED1
    assert unasked["status"] == "error" and unasked["stars"] is None
    code = rows(build(night_1, DAY1)["papers"])[PAPER]["code_repos"]
    assert code == [
        {
            "url": "https://github.com/qwenlm/qwen2-vl",
            "repo": "qwenlm/qwen2-vl",
            "sources": ["links"],
        }
    ]
