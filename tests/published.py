"""Small published snapshots for the store and read tests: a night with a row in every
table, manifest entries, and the checks that an output directory is tidy."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from pipeline.links.documents import Link
from pipeline.links.extract import Occurrence
from pipeline.links.identify import Identity, Kind
from pipeline.records import ApiStats, CollectionItem, Document, HubRepoRecord, PaperRecord, RepoRef
from pipeline.snapshot.build import SnapshotInputs, build_tables
from pipeline.snapshot.read import load, read_manifest
from pipeline.snapshot.schemas import TABLE_SCHEMAS
from pipeline.snapshot.store import RUNS_DIR, STAGING_DIR, ManifestEntry

DAY1 = date(2026, 11, 19)
DAY2 = date(2026, 11, 20)
DAY3 = date(2026, 11, 21)
DAY4 = date(2026, 11, 22)
STARTED = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
Tables = dict[str, pa.Table]


def night(day: date, tag: str, papers: int = 3, words: int = 5) -> Tables:
    """A small snapshot with a row in every table, whose contents depend on `tag`."""
    rng = random.Random(f"{tag}-{papers}")
    vocabulary = [f"w{i}" for i in range(2000)]
    ids = [f"2409.{10000 + i}" for i in range(papers)]

    def link(position: int, kind: Kind, entity_id: str, item: str, resolved: bool = False) -> Link:
        occurrence = Occurrence(
            "list.md", position, position + 1, ("Models",), None, tag, item, True, "u", "inline"
        )
        identity = Identity(kind, entity_id, f"https://example.org/{entity_id}", "example.org")
        if resolved:
            return Link(occurrence, identity, entity_id, "id")
        return Link(occurrence, identity)

    links = [link(i, "arxiv", arxiv_id, f"item {i}", True) for i, arxiv_id in enumerate(ids)]
    links += [
        link(papers, "github_repo", "QwenLM/Qwen2-VL", "item 0"),  # the first paper's code
        link(papers + 1, "hf_model", "Qwen/Qwen2-VL-7B", "models"),
        link(papers + 2, "hf_collection", "Qwen/qwen2-vl-66cee7455501d7126940800d", "models"),
    ]
    records = {
        arxiv_id: PaperRecord(
            arxiv_id,
            "ok",
            title=f"{tag} paper {arxiv_id}",
            authors=("A. Author",),
            abstract=" ".join(rng.choices(vocabulary, k=words)),
            published=STARTED,
            data_fetched_at=STARTED,
        )
        for arxiv_id in ids
    }
    model = HubRepoRecord(
        "model",
        "Qwen/Qwen2-VL-7B",
        "Qwen/Qwen2-VL-7B",
        "ok",
        params_total=8_291_375_616,
        params_by_dtype=(("BF16", 8_291_375_616),),
        arxiv_ids=(ids[0],),
        data_fetched_at=STARTED,
    )
    collection = HubRepoRecord(
        "collection",
        "Qwen/qwen2-vl-66cee7455501d7126940800d",
        "Qwen/qwen2-vl-66cee7455501d7126940800d",
        "ok",
        title="Qwen2-VL",
        items=(CollectionItem("model", "Qwen/Qwen2-VL-7B"), CollectionItem("paper", ids[0])),
        data_fetched_at=STARTED,
    )
    repos: dict[RepoRef, HubRepoRecord] = {
        (r.repo_type, r.requested_id): r for r in (model, collection)
    }
    document = Document("list.md", Path("list.md"), "ab" * 32, 1234, links=len(links))
    given = SnapshotInputs(links, [document], papers=records, repos=repos)
    return build_tables(given, snapshot_date=day)


TABLE_ROWS = {
    "links": 6,
    "papers": 3,
    "models": 1,
    "repos": 1,
    "github_repos": 1,
    "changes": 6,
    "documents": 1,
}
"""Rows of each table of a `night` of three papers."""


def entry(run_id: str, day: date, status: str = "ok", **kw: Any) -> ManifestEntry:
    values: dict[str, Any] = {
        "documents": [Document("list.md", Path("list.md"), "ab" * 32, 1234, links=4)],
        "api_stats": [ApiStats("arxiv", requests=2, by_status={200: 1, 503: 1}, retries=1)],
        "finished_at": STARTED,
    }
    values.update(kw)
    return ManifestEntry(run_id, day, STARTED, status, **values)


def loaded(out: Path | str, day: date | None = None) -> Tables:
    """Every table of a published snapshot, as `load` reads it, back in Arrow."""
    return {
        name: pa.Table.from_pandas(load(name, out, day), preserve_index=False)
        for name in TABLE_SCHEMAS
    }


def same(a: Tables, b: Tables) -> bool:
    return all(a[name].equals(b[name]) for name in TABLE_SCHEMAS)


def as_loaded(tables: Tables) -> Tables:
    """Tables through the same pandas round trip as `loaded`, for comparison."""
    return {
        name: pa.Table.from_pandas(t.to_pandas(types_mapper=pd.ArrowDtype), preserve_index=False)
        for name, t in tables.items()
    }


def hive_views(out: Path) -> dict[tuple[str, str], Path]:
    return {
        (table, part.name): part / "part-0.parquet"
        for table in TABLE_SCHEMAS
        if (out / table).is_dir()
        for part in sorted((out / table).iterdir())
    }


def assert_tidy(out: Path) -> None:
    """Nothing left over: no staging, only current runs, every view its run's file."""
    manifest = read_manifest(out)
    current = manifest[manifest["current"]]
    assert list((out / STAGING_DIR).iterdir()) == []
    assert sorted(p.name for p in (out / RUNS_DIR).iterdir()) == sorted(current["run_id"])
    expected = {
        (table, f"snapshot_date={day}"): out / RUNS_DIR / run_id / f"{table}.parquet"
        for day, run_id in zip(current["snapshot_date"].astype(str), current["run_id"], strict=True)
        for table in TABLE_SCHEMAS
    }
    views = hive_views(out)
    assert set(views) == set(expected)
    for key, view in views.items():
        assert view.read_bytes() == expected[key].read_bytes(), key
