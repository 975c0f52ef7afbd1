"""Fault injection: whole runs against the loopback double with faults switched on.

Each scenario starts from a published night (night 1, resolved cleanly and kept in the raw
store), switches faults on in the double, runs night 2 asking every API again, and checks
what survives:

- the run finishes (or fails cleanly), every link is in `links`, every entity has a row
  with a status;
- whatever was good on night 1 is still there on night 2: as `ok`, or as `stale` with
  night 1's values and data time and tonight's error; only what never had a good value
  is `error`;
- the report (`summarise_tables`, which the flow's `RunSummary.unresolved` is) names
  exactly the entities that are not ok, and why;
- night 1's snapshot is untouched, byte for byte.

The table of faults drives the stages directly (`run_night`, the flow's wiring without
Prefect: a Prefect run costs ~2 s of overhead); a few true Prefect runs
(`mllm_papers`) check the same promises end to end and that `run_night` wires the stages
as the flow does. The module also holds the rig the other fault modules share
(`test_faults_documents.py`, `test_faults_kill.py`, `test_security.py`).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.config import RefreshPolicy, Settings
from pipeline.links.documents import Extraction, Link, entities_of, extract_links
from pipeline.links.identify import HUB_REPO_TYPES
from pipeline.parameters import RunParameters
from pipeline.records import (
    GOOD,
    STATUSES,
    ApiStats,
    Document,
    HubRepoRecord,
    PaperPageRecord,
    PaperRecord,
    RepoRef,
    TitleMatch,
    utc_now,
)
from pipeline.report import run_status, summarise_tables
from pipeline.resolve.arxiv import ArxivResolver, title_candidates
from pipeline.resolve.hub import HubResolver
from pipeline.resolve.rawstore import RawStore
from pipeline.sandbox import Fault, Request, Response, Sandbox
from pipeline.sandbox.arxiv_api import ArxivDouble, error_feed, malformed_id_feed
from pipeline.sandbox.hub_api import HubDouble
from pipeline.sandbox.wire import ApiDouble
from pipeline.snapshot.build import SnapshotInputs, apply_title_matches, build_tables
from pipeline.snapshot.read import latest_snapshot, load, previous_tables, read_manifest
from pipeline.snapshot.store import ManifestEntry, publish, record_failed_run, snapshot_lock

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State

ROOT = Path(__file__).resolve().parent.parent
NIGHT_1 = date(2026, 1, 1)
NIGHT_2 = date(2026, 1, 2)

FAST_ENV = {
    "PIPELINE_ARXIV_DELAY_SECONDS": "0.005",
    "PIPELINE_ARXIV_BACKOFF_SECONDS": "0.01",
    "PIPELINE_ARXIV_BACKOFF_MAX_SECONDS": "0.05",
    "PIPELINE_ARXIV_TIMEOUT_SECONDS": "0.5",
    "PIPELINE_ARXIV_MAX_ATTEMPTS": "3",
    "PIPELINE_HUB_BACKOFF_SECONDS": "0.01",
    "PIPELINE_HUB_BACKOFF_MAX_SECONDS": "0.05",
    "PIPELINE_HUB_TIMEOUT_SECONDS": "0.5",
    "PIPELINE_HUB_MAX_ATTEMPTS": "3",
}
"""Politeness and patience scaled down for loopback speed (the defaults stay as they are)."""

HANG_SECONDS = 1.5
"""How long a hanging double keeps a connection silent: well past the scaled timeouts."""

READING_LIST = "\n".join(
    [
        "# A multimodal reading list",
        "",
        "## Models",
        "",
        "- [2024.09] [Qwen2-VL](https://arxiv.org/abs/2409.12191)"
        " | [Code](https://github.com/QwenLM/Qwen2-VL)"
        " | [Model](https://huggingface.co/Qwen/Qwen2-VL-72B)",
        "- [2025.02] [Qwen2.5-VL](https://arxiv.org/pdf/2502.13923v2)"
        " [weights](https://hf-mirror.com/vikhyatk/moondream2)",
        "- InternVL 2.5, arXiv:2412.05271, [collection]"
        "(https://huggingface.co/collections/OpenGVLab/internvl-25-673e1019b66e2218f68d7c1c)",
        "- [Learning Transferable Visual Models From Natural Language Supervision]"
        "(https://openai.com/research/clip)",
        "",
        "## Odd ones",
        "",
        "- [A paper arXiv never heard of](https://arxiv.org/abs/2501.99999)"
        " and [a broken one](https://arxiv.org/abs/2413.00001)",
        "- [disabled](https://huggingface.co/sample-org/disabled-model),"
        " [missing](https://huggingface.co/sample-org/no-such-model)",
        "- [data](https://huggingface.co/datasets/OpenGVLab/MMPR-v1.1),"
        " [demo](https://huggingface.co/spaces/Qwen/Qwen3-VL-Demo)",
        "- [blog](https://example.com/blog/post)",
        "",
    ]
)
"""Every kind of entity once: papers by ID, version, mention and title; a model, a renamed
one, a disabled and a missing one; a collection (whose models are looked up too), a
dataset, a space; an unknown and an invalid arXiv ID; GitHub and other links."""

TITLED_PAPER = "2103.00020"
"""The paper the reading list reaches by its title only."""

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01"

UNREADABLE = {
    "latin1.md": (
        "# Café\n\n- [Qwen2-VL](https://arxiv.org/abs/2409.12191)\n".encode("latin-1"),
        "not UTF-8: invalid byte 0xe9 at offset 5",
    ),
    "figure.md": (PNG, "binary content (NUL byte at offset 8)"),
    "utf16.md": (
        "# x\n\n- [a](https://example.com/)\n".encode("utf-16"),
        "UTF-16 text (byte-order mark at offset 0), not UTF-8",
    ),
}
"""Documents that cannot be read as text, and the reason the run gives for each."""


def fast_settings(sandbox: Sandbox, **changes: object) -> Settings:
    """Settings pointing at `sandbox`, delays and timeouts scaled down, asking everything."""
    env = {**sandbox.env(), **FAST_ENV}
    base = Settings.from_env(env).replace(refresh=RefreshPolicy.REFRESH)
    return base.replace(**changes) if changes else base


# -- one night, stage by stage ------------------------------------------------------------


@dataclass
class Night:
    """What one run did: its tables as published, and what the report says."""

    run_id: str
    links: list[Link]
    documents: list[Document]
    tables: dict[str, pa.Table]
    status: str
    failed_stages: list[str]
    unresolved: dict[str, list[dict[str, Any]]]
    api: list[ApiStats]

    def stats(self, api: str) -> ApiStats:
        return next(s for s in self.api if s.api == api)

    def rows(self, table: str) -> dict[tuple[Any, ...], dict[str, Any]]:
        return rows_by_key(self.tables[table], table)


Phase = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def _stage(call: Callable[[], Any], name: str, failed: list[str], empty: Any) -> Any:
    """A resolver call; a resolver that fails outright marks its stage failed, as the flow
    does, and the run still publishes links and statuses."""
    try:
        return call()
    except Exception:
        failed.append(name)
        return empty


@dataclass(frozen=True)
class _Run:
    """One run's inputs, as the flow holds them between its stages."""

    run_id: str
    day: date
    started_at: datetime
    extraction: Extraction
    out: Path
    raw: Path
    settings: Settings
    phase: Phase


def run_night(
    documents: Sequence[Path],
    out: Path,
    raw: Path,
    settings: Settings,
    day: date,
    *,
    phase: Phase = _quiet,
) -> Night:
    """One whole run without Prefect, wired as `pipeline.flow.mllm_papers` wires the stages:
    the lock first; titles before IDs (they add IDs), the Hub beside them; paper pages of
    papers found by title late; tables built against the previous night; one publish; a
    failed-run row in the manifest if anything raises. `phase` hears where the run stands
    (the kill tests time their kills by it)."""
    phase("extract")
    run = _Run(
        run_id=f"{day:%Y%m%d}-{uuid.uuid4().hex[:8]}",
        day=day,
        started_at=utc_now(),
        extraction=extract_links(documents),
        out=out,
        raw=raw,
        settings=settings,
        phase=phase,
    )
    with snapshot_lock(out, run.run_id):
        try:
            return _resolve_and_publish(run)
        except Exception as exc:
            record_failed_run(
                out,
                ManifestEntry(
                    run_id=run.run_id,
                    snapshot_date=day,
                    started_at=run.started_at,
                    status="failed",
                    status_reason=f"{type(exc).__name__}: {exc}",
                    documents=run.extraction.documents,
                ),
            )
            raise


def _resolve_and_publish(run: _Run) -> Night:
    links = run.extraction.links
    entities = entities_of(links)
    titles = title_candidates(links)
    failed: list[str] = []

    def progress(name: str) -> Callable[[int, int], None]:
        return lambda done, total: run.phase(f"{name} {done}/{total}")

    with RawStore(run.raw) as store:
        arxiv = ArxivResolver(run.settings, store)
        hub = HubResolver(run.settings, store)
        run.phase("resolve")
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="night") as pool:
            repos_asked = pool.submit(hub.resolve_repos, entities.hub_repos, progress("hub"))
            pages_asked = pool.submit(
                hub.resolve_paper_pages, entities.arxiv_ids, progress("paper_pages")
            )
            matches: dict[str, TitleMatch] = _stage(
                lambda: arxiv.resolve_titles(titles, progress("arxiv_titles")),
                "arxiv_titles",
                failed,
                {},
            )
            found = {
                m.arxiv_id for m in matches.values() if m.arxiv_id and m.status in ("ok", "stale")
            }
            ids = sorted(set(entities.arxiv_ids) | found) if entities.arxiv_ids else []
            papers: dict[str, PaperRecord] = _stage(
                lambda: arxiv.resolve_ids(ids, progress("arxiv")), "arxiv", failed, {}
            )
            repos: dict[RepoRef, HubRepoRecord] = _stage(repos_asked.result, "hub", failed, {})
            pages: dict[str, PaperPageRecord] = _stage(
                pages_asked.result, "paper_pages", failed, {}
            )
        late = sorted(found - set(entities.arxiv_ids))
        if late and "paper_pages" not in failed:
            pages.update(_stage(lambda: hub.resolve_paper_pages(late), "paper_pages", failed, {}))
        arxiv.close()
        run.phase("build")
        matched = {
            text: m.arxiv_id
            for text, m in matches.items()
            if m.arxiv_id and m.status in ("ok", "stale")
        }
        tables = build_tables(
            SnapshotInputs(
                links=apply_title_matches(links, matched),
                documents=run.extraction.documents,
                papers=papers,
                title_matches=matches,
                repos=repos,
                paper_pages=pages,
            ),
            snapshot_date=run.day,
            previous=previous_tables(run.out, before=run.day),
        )
        counts, unresolved, _changes = summarise_tables(tables)
        unreadable = sum(1 for document in run.extraction.documents if document.error)
        status = run_status(counts, failed, unreadable)
        run.phase("publish")
        publish(
            run.out,
            tables,
            ManifestEntry(
                run_id=run.run_id,
                snapshot_date=run.day,
                started_at=run.started_at,
                status=status,
                status_reason=("failed stages: " + ", ".join(failed)) if failed else None,
                documents=run.extraction.documents,
                api_stats=[arxiv.stats, hub.stats],
                arxiv_api_url=run.settings.arxiv_api_url,
                hf_endpoint=run.settings.hf_endpoint,
            ),
        )
    run.phase("done")
    return Night(
        run_id=run.run_id,
        links=links,
        documents=run.extraction.documents,
        tables=tables,
        status=status,
        failed_stages=failed,
        unresolved=unresolved,
        api=[arxiv.stats, hub.stats],
    )


# -- what must hold after any run -----------------------------------------------------------

_KEYS = {"papers": ("arxiv_id",), "models": ("repo_id",), "repos": ("repo_type", "repo_id")}
ENTITY_TABLES = tuple(_KEYS)
_LINEAGE = frozenset({"documents", "mention_count", "headings", "first_seen", "last_seen"})


@dataclass(frozen=True)
class Lookup:
    """One lookup's status columns in a table (papers have two lookups)."""

    table: str
    status: str
    reason: str
    fetched_at: str


ARXIV = Lookup("papers", "status", "status_reason", "data_fetched_at")
PAGES = Lookup("papers", "hf_page_status", "hf_page_status_reason", "hf_page_fetched_at")
MODELS = Lookup("models", "status", "status_reason", "data_fetched_at")
REPOS = Lookup("repos", "status", "status_reason", "data_fetched_at")
ALL_LOOKUPS = (ARXIV, PAGES, MODELS, REPOS)
HUB_LOOKUPS = (PAGES, MODELS, REPOS)
_STATUS_COLUMNS = frozenset(
    name for lookup in ALL_LOOKUPS for name in (lookup.status, lookup.reason, lookup.fetched_at)
)


def rows_by_key(table: pa.Table, name: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    keys = _KEYS[name]
    return {tuple(row[k] for k in keys): row for row in table.to_pylist()}


def assert_every_link_and_entity_has_a_row(night: Night) -> None:
    """Every link occurrence is a row of `links`; every entity a link names is a row of its
    table with a valid status, and a reason wherever the status is not ok."""
    links = night.tables["links"]
    assert links.num_rows == len(night.links)
    published = set(
        zip(
            links.column("document").to_pylist(),
            links.column("position").to_pylist(),
            links.column("url").to_pylist(),
            strict=True,
        )
    )
    extracted = {
        (k.occurrence.document, k.occurrence.position, k.occurrence.url) for k in night.links
    }
    assert published == extracted
    papers = night.rows("papers")
    hub_names: dict[tuple[str, str], set[str]] = {}
    for table in ("models", "repos"):
        for row in night.rows(table).values():
            hub_names.setdefault((row.get("repo_type", "model"), row["repo_id"]), set()).update(
                row["written_as"]
            )
    written = {(repo_type, name) for (repo_type, _), names in hub_names.items() for name in names}
    for link in night.links:
        identity = link.identity
        if identity.entity_id is None:
            continue
        if identity.kind in ("arxiv", "arxiv_mention"):
            assert (identity.entity_id,) in papers, link.occurrence.url
        repo_type = HUB_REPO_TYPES.get(identity.kind)
        if repo_type is not None:
            assert (repo_type, identity.entity_id) in written, link.occurrence.url
    for lookup in ALL_LOOKUPS:
        for key, row in night.rows(lookup.table).items():
            assert row[lookup.status] in STATUSES, (lookup, key)
            if row[lookup.status] != "ok":
                assert row[lookup.reason], (lookup, key, row[lookup.status])


def assert_report_names_what_is_not_ok(night: Night) -> None:
    """The report lists exactly the rows that are not ok, each with its reason."""
    for table in ENTITY_TABLES:
        key_column = _KEYS[table][-1]
        rows = night.tables[table].to_pylist()
        expected = {
            (r[key_column], r["status"], r["status_reason"]) for r in rows if r["status"] != "ok"
        }
        reported = {(r["key"], r["status"], r["reason"]) for r in night.unresolved[table]}
        assert reported == expected


def good_rows(night: Night, lookup: Lookup) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {k: r for k, r in night.rows(lookup.table).items() if r[lookup.status] in GOOD}


def assert_last_known_good(
    before: Night,
    after: Night,
    failing: Sequence[Lookup],
    reason: str,
    *,
    spared: Mapping[Lookup, set[tuple[Any, ...]]] | None = None,
) -> None:
    """Every row that was good before is good after: `stale` with the earlier values, data
    time and tonight's error (matching `reason`) where its lookup failed (`failing`, except
    the `spared` keys), `ok` elsewhere; the values of every row are those of before (the
    double serves the same data every night). Rows that never had a good value are
    `error` (lookup failed) or `not_found` (never sent) with a reason, never dropped."""
    assert reason or not failing
    spared = spared or {}
    pattern = re.compile(reason)
    # A collection's items (rows no document mentions) are asked once the collection is
    # known: when it is known from the previous night alone, their rows say so, and the
    # collection's row says why.
    item_pattern = re.compile(f"{reason}|{ITEM_OF_UNKNOWN_COLLECTION}")
    for lookup in ALL_LOOKUPS:
        before_rows = before.rows(lookup.table)
        after_rows = after.rows(lookup.table)
        assert set(after_rows) >= set(before_rows), f"{lookup.table}: rows lost"
        fails = lookup in failing
        for key, old in before_rows.items():
            new = after_rows[key]
            was_good = old[lookup.status] in GOOD
            if fails and key not in spared.get(lookup, set()):
                if was_good:
                    assert new[lookup.status] == "stale", (lookup, key, new[lookup.reason])
                    assert new[lookup.fetched_at] == old[lookup.fetched_at], (lookup, key)
                else:
                    assert new[lookup.status] in ("error", "not_found"), (lookup, key)
                expected = item_pattern if not new["documents"] else pattern
                if new[lookup.status] != "not_found":
                    assert expected.search(new[lookup.reason] or ""), (
                        lookup,
                        key,
                        new[lookup.reason],
                    )
            elif was_good:
                assert new[lookup.status] == "ok", (lookup, key, new[lookup.reason])
            if was_good:
                assert_same_values(old, new, (lookup.table, key))


ITEM_OF_UNKNOWN_COLLECTION = r"an item of collection \S+, whose items could not be looked up"


def assert_same_values(old: Mapping[str, Any], new: Mapping[str, Any], where: object) -> None:
    """Two rows of one entity hold the same data (lineage and lookup statuses aside)."""
    for column, value in old.items():
        if column in _LINEAGE or column in _STATUS_COLUMNS:
            continue
        assert new[column] == value, (where, column)


# -- published state ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedState:
    """A fingerprint of everything published under an output directory."""

    manifest: list[dict[str, Any]]
    files: dict[str, str]
    """Path under `.runs/` -> sha256 of the bytes."""
    frames: dict[tuple[date, str], Any]
    """(night, table) -> the DataFrame `load` returns."""


def published_state(out: Path) -> PublishedState:
    manifest = read_manifest(out)
    files = {
        path.relative_to(out).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((out / ".runs").rglob("*.parquet"))
    }
    nights = sorted(
        {d for d, c in zip(manifest["snapshot_date"], manifest["current"], strict=True) if c}
    )
    frames = {
        (night, table): load(table, out, snapshot_date=night)
        for night in nights
        for table in ("links", *ENTITY_TABLES, "github_repos", "changes")
    }
    rows = [
        {str(name): value for name, value in row.items()}
        for row in manifest.drop(columns=["current"]).to_dict("records")
    ]
    return PublishedState(rows, files, frames)


def assert_untouched(before: PublishedState, out: Path) -> None:
    """Every night published before reads back identical, file for file, and the manifest
    still holds every earlier row as it was."""
    after = published_state(out)
    assert after.manifest[: len(before.manifest)] == before.manifest
    for path, digest in before.files.items():
        assert after.files.get(path) == digest, path
    for (night, table), frame in before.frames.items():
        assert after.frames[(night, table)].equals(frame), (night, table)


# -- the rig: one double for the module, night 1 published once -------------------------------


@dataclass
class Baseline:
    """Night 1: resolved cleanly, published, its answers in the raw store."""

    root: Path
    documents: list[Path]
    night: Night


@dataclass
class Rig:
    """A copy of night 1's directories and the shared double, faults cleared."""

    sandbox: Sandbox
    baseline: Baseline
    root: Path
    out: Path = field(init=False)
    raw: Path = field(init=False)

    def __post_init__(self) -> None:
        self.out = self.root / "enriched"
        self.raw = self.root / "raw"
        shutil.copytree(self.baseline.root / "enriched", self.out)
        shutil.copytree(self.baseline.root / "raw", self.raw)

    @property
    def before(self) -> Night:
        return self.baseline.night

    def lose_raw_store(self) -> None:
        """The raw store is gone (a new machine, a wiped disk): the snapshot alone remembers."""
        shutil.rmtree(self.raw)

    def night(self, day: date = NIGHT_2, /, **changes: object) -> Night:
        settings = fast_settings(self.sandbox, **changes)
        return run_night(self.baseline.documents, self.out, self.raw, settings, day)

    def night_with(self, *documents: Path) -> Night:
        """Night 2 over night 1's reading list and `documents`."""
        settings = fast_settings(self.sandbox)
        every = [*self.baseline.documents, *documents]
        return run_night(every, self.out, self.raw, settings, NIGHT_2)

    def add(self, *faults: Fault) -> None:
        for fault in faults:
            self.sandbox.add_fault(fault)


def write_reading_list(folder: Path, text: str = READING_LIST, name: str = "list.md") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    # One double for the module: stopping one takes a poll interval, starting one a thread.
    # Its quota is out of reach: the module asks far more than 500 times in 5 minutes, and
    # the scenarios that want a 429 ask for one.
    with Sandbox(hub=HubDouble(quota=1_000_000)) as double:
        yield double


@pytest.fixture(scope="module")
def baseline(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    root = tmp_path_factory.mktemp("night-1")
    documents = [write_reading_list(root / "docs")]
    night = run_night(documents, root / "enriched", root / "raw", fast_settings(sandbox), NIGHT_1)
    # The scenarios below mean something only if night 1 found things to lose.
    assert night.status == "ok" and not night.failed_stages
    assert len(good_rows(night, ARXIV)) == 4 and TITLED_PAPER in {
        k[0] for k in good_rows(night, ARXIV)
    }
    assert len(good_rows(night, PAGES)) == 3
    assert len(good_rows(night, MODELS)) == 9 and len(good_rows(night, REPOS)) == 4
    return Baseline(root, documents, night)


@pytest.fixture
def rig(sandbox: Sandbox, baseline: Baseline, tmp_path: Path) -> Iterator[Rig]:
    sandbox.clear_faults()
    sandbox.reset_log()
    yield Rig(sandbox, baseline, tmp_path)
    sandbox.clear_faults()


# -- the table of faults ----------------------------------------------------------------------

FaultFactory = Callable[[], list[Fault]]


def arxiv_fault(kind: str, times: int = -1, **fields: Any) -> Fault:
    return Fault(api="arxiv", kind=kind, times=times, **fields)  # type: ignore[arg-type]


def hub_fault(kind: str, times: int = -1, **fields: Any) -> Fault:
    return Fault(api="hub", kind=kind, times=times, **fields)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Outage:
    """A fault that lasts the whole night, and the reason it must leave in the rows."""

    name: str
    faults: FaultFactory
    failing: tuple[Lookup, ...]
    reason: str
    settings: Mapping[str, object] = field(default_factory=dict)


_RATE_EXCEEDED: dict[str, Any] = {
    "status": 429,
    "body": b"Rate exceeded.",
    "headers": {"content-type": "text/plain"},
}
_ATOM = {"content-type": "application/atom+xml"}
TOKEN = "hf_FaultSuiteTokenThatMustNeverLeak0123456789"

OUTAGES = [
    # arXiv, as observed: 429s without Retry-After, 503 after a long wait, empty pages,
    # read timeouts, whole batches refused, broken bodies, entries missing fields.
    Outage(
        "arxiv-429-no-retry-after",
        lambda: [arxiv_fault("status", **_RATE_EXCEEDED)],
        (ARXIV,),
        r"HTTP 429 from arXiv: Rate exceeded",
    ),
    Outage(
        "arxiv-503-after-a-delay",
        lambda: [arxiv_fault("delay", delay_seconds=0.05, status=503)],
        (ARXIV,),
        r"HTTP 503 from arXiv",
    ),
    Outage(
        "arxiv-empty-pages",
        lambda: [arxiv_fault("api", name="empty_page")],
        (ARXIV,),
        r"empty or short page",
    ),
    Outage(
        "arxiv-read-timeout",
        lambda: [arxiv_fault("hang", delay_seconds=HANG_SECONDS)],
        (ARXIV,),
        r"no answer from arXiv within 0\.3 s",
        {"arxiv_timeout_seconds": 0.3, "arxiv_max_attempts": 2},
    ),
    Outage(
        "arxiv-400-for-the-batch",
        lambda: [
            arxiv_fault(
                "status",
                status=400,
                headers=_ATOM,
                body=error_feed("backend validation failed", "validation"),
            )
        ],
        (ARXIV,),
        r"arXiv refused the (request|search): backend validation failed",
    ),
    Outage(
        "arxiv-truncated-body",
        lambda: [arxiv_fault("truncate")],
        (ARXIV,),
        r"unusable body: not well-formed XML",
    ),
    Outage(
        "arxiv-cut-connection",
        lambda: [arxiv_fault("disconnect")],
        (ARXIV,),
        r"connection to arXiv failed|unusable body",
    ),
    Outage(
        "arxiv-non-xml-body",
        lambda: [arxiv_fault("garbage")],
        (ARXIV,),
        r"unusable body: not an Atom feed|unusable body: not well-formed",
    ),
    Outage(
        "arxiv-entries-missing-fields",
        lambda: [arxiv_fault("api", name="drop_field")],
        (ARXIV,),
        r"incomplete arXiv entries",
    ),
    # The Hub: rate limited with a window longer than we may wait, 5xx, redirect loops,
    # broken bodies, fields of the wrong type or missing, timeouts, a revoked token.
    Outage(
        "hub-429-with-ratelimit-headers",
        lambda: [hub_fault("api", name="rate_limited")],
        HUB_LOOKUPS,
        r"rate limited|HTTP 429",
    ),
    Outage(
        "hub-502",
        lambda: [hub_fault("status", status=502, body=b"Bad Gateway")],
        HUB_LOOKUPS,
        r"HTTP 502 \(gave up after 3 attempts\)",
    ),
    Outage(
        "hub-503-after-a-delay",
        lambda: [hub_fault("delay", delay_seconds=0.05, status=503)],
        HUB_LOOKUPS,
        r"HTTP 503",
    ),
    Outage(
        "hub-redirect-loop",
        lambda: [hub_fault("api", name="redirect_loop")],
        HUB_LOOKUPS,
        r"redirect loop: /api/",
    ),
    Outage(
        "hub-truncated-body",
        lambda: [hub_fault("truncate")],
        HUB_LOOKUPS,
        r"truncated or non-JSON body",
    ),
    Outage(
        "hub-non-json-body",
        lambda: [hub_fault("garbage")],
        HUB_LOOKUPS,
        r"truncated or non-JSON body \(\d+ bytes, text/html\)",
    ),
    Outage(
        "hub-read-timeout",
        lambda: [hub_fault("hang", delay_seconds=HANG_SECONDS)],
        HUB_LOOKUPS,
        r"timed out after 0\.3 s",
        {"hub_timeout_seconds": 0.3, "hub_max_attempts": 2, "hub_concurrency": 8},
    ),
    Outage(
        "hub-wrong-types",
        lambda: [hub_fault("api", name="wrong_types")],
        HUB_LOOKUPS,
        r"invalid response: field '(downloads|upvotes|items\.0\.id)'",
    ),
    Outage(
        "hub-missing-fields",
        lambda: [hub_fault("api", name="drop_field")],
        HUB_LOOKUPS,
        r"invalid response: field '(id|items)' is missing",
    ),
    Outage(
        "hub-401-token-refused",
        lambda: [
            hub_fault(
                "status",
                status=401,
                headers={"x-error-message": "Invalid credentials in Authorization header"},
                body=b'{"error":"Invalid credentials in Authorization header"}',
            )
        ],
        HUB_LOOKUPS,
        r"refused the token",
        {"hf_token": TOKEN},
    ),
    Outage(
        "both-apis-down",
        lambda: [arxiv_fault("status", status=503), hub_fault("status", status=503)],
        ALL_LOOKUPS,
        r"HTTP 503",
    ),
]


@pytest.mark.parametrize("raw_store", ["kept", "lost"])
@pytest.mark.parametrize("outage", OUTAGES, ids=[o.name for o in OUTAGES])
def test_a_night_long_outage_loses_nothing_that_was_good(
    rig: Rig, outage: Outage, raw_store: str
) -> None:
    """With the raw store kept, the resolvers fall back on its last good answers; with it
    lost, the snapshot falls back on the previous night's rows. Either way: stale, never
    blank, and the report says which and why."""
    published = published_state(rig.out)
    if raw_store == "lost":
        rig.lose_raw_store()
    rig.add(*outage.faults())

    night = rig.night(**outage.settings)

    assert night.status == "partial", night.failed_stages
    assert_every_link_and_entity_has_a_row(night)
    assert_report_names_what_is_not_ok(night)
    assert_last_known_good(rig.before, night, outage.failing, outage.reason)
    assert_untouched(published, rig.out)
    assert len(read_manifest(rig.out)) == 2


RECOVERABLE = [
    ("arxiv-429-burst", lambda: [arxiv_fault("status", times=2, **_RATE_EXCEEDED)]),
    (
        "arxiv-503-after-a-delay-once",
        lambda: [arxiv_fault("delay", times=1, delay_seconds=0.05, status=503)],
    ),
    ("arxiv-empty-page-once", lambda: [arxiv_fault("api", times=1, name="empty_page")]),
    ("arxiv-read-timeout-once", lambda: [arxiv_fault("hang", times=1, delay_seconds=HANG_SECONDS)]),
    ("arxiv-truncated-once", lambda: [arxiv_fault("truncate", times=1)]),
    ("arxiv-missing-fields-once", lambda: [arxiv_fault("api", times=1, name="drop_field")]),
    ("hub-503-twice", lambda: [hub_fault("status", times=2, status=503)]),
    ("hub-truncated-once", lambda: [hub_fault("truncate", times=1)]),
    ("hub-read-timeout-once", lambda: [hub_fault("hang", times=1, delay_seconds=HANG_SECONDS)]),
    (
        "hub-429-wait-one-second",
        lambda: [
            hub_fault(
                "status",
                times=1,
                status=429,
                headers={"ratelimit": '"api";r=0;t=1', "retry-after": "1"},
            )
        ],
    ),
]


@pytest.mark.parametrize(("name", "faults"), RECOVERABLE, ids=[name for name, _ in RECOVERABLE])
def test_a_passing_fault_is_retried_and_the_night_is_whole(
    rig: Rig, name: str, faults: FaultFactory
) -> None:
    rig.add(*faults())

    # A 1 s RateLimit reset is worth waiting for; the scaled-down cap would refuse it.
    night = rig.night(hub_backoff_max_seconds=2.0)

    assert night.status == "ok", night.unresolved
    assert_every_link_and_entity_has_a_row(night)
    assert_last_known_good(rig.before, night, (), "")
    assert sum(s.retries for s in night.api) >= 1
    assert all(f.times == 0 for f in rig.sandbox.faults), "the fault never hit"


def test_a_400_naming_one_id_of_the_batch_keeps_that_papers_last_good_answer(rig: Rig) -> None:
    """arXiv fails a whole batch for one ID it calls malformed; the resolver drops that ID
    and asks again for the others. An ID arXiv answered before is not thereby gone: arXiv
    IDs are never withdrawn, so its row stays, stale, with the refusal as reason."""
    rig.add(
        arxiv_fault(
            "status",
            times=1,
            match="id_list=2",  # the ID batch, not the title search (whose id_list is empty)
            status=400,
            headers=_ATOM,
            body=malformed_id_feed("2409.12191"),
        )
    )

    night = rig.night()

    refused = ("2409.12191",)
    spared = {ARXIV: set(rig.before.rows("papers")) - {refused}}
    assert_last_known_good(
        rig.before, night, (ARXIV,), r"incorrect id format for 2409\.12191 tonight", spared=spared
    )
    reason = night.rows("papers")[refused]["status_reason"]
    assert {"key": "2409.12191", "status": "stale", "reason": reason} in night.unresolved["papers"]


def test_one_repo_in_a_redirect_loop_goes_stale_alone(rig: Rig) -> None:
    rig.add(hub_fault("api", match="moondream2", name="redirect_loop"))

    night = rig.night()

    renamed = ("moondream/moondream2",)
    spared = {
        MODELS: set(rig.before.rows("models")) - {renamed},
        REPOS: set(rig.before.rows("repos")),
        PAGES: set(rig.before.rows("papers")),
    }
    assert_last_known_good(
        rig.before,
        night,
        (MODELS,),
        r"redirect loop: /api/models/vikhyatk/moondream2",
        spared=spared,
    )
    assert night.rows("models")[renamed]["written_as"] == ["vikhyatk/moondream2"]


def test_a_repo_the_hub_says_is_gone_is_not_found_and_the_earlier_night_keeps_it(
    rig: Rig,
) -> None:
    """A 404 is an answer, not a failure: the row says not_found (the repo was deleted or
    made private), the change log records it, and night 1 still holds its values."""
    published = published_state(rig.out)
    rig.add(
        hub_fault(
            "status",
            match="/api/models/Qwen/Qwen2-VL-72B",
            status=404,
            headers={"x-error-code": "RepoNotFound", "x-error-message": "Repository not found"},
            body=b'{"error":"Repository not found"}',
        )
    )

    night = rig.night()

    row = night.rows("models")[("Qwen/Qwen2-VL-72B",)]
    assert row["status"] == "not_found"
    assert (
        row["status_reason"]
        == "not found or not visible: HTTP 404 RepoNotFound: Repository not found"
    )
    assert row["downloads"] is None
    changes = night.tables["changes"].to_pylist()
    assert {
        "entity_type": "model",
        "entity_id": "Qwen/Qwen2-VL-72B",
        "field": "status",
        "old_value": "ok",
        "new_value": "not_found",
    }.items() <= next(
        c for c in changes if c["entity_id"] == "Qwen/Qwen2-VL-72B" and c["field"] == "status"
    ).items()
    assert_untouched(published, rig.out)
    night_1 = load("models", rig.out, snapshot_date=NIGHT_1)
    kept = night_1.loc[night_1["repo_id"] == "Qwen/Qwen2-VL-72B", "downloads"].tolist()
    assert kept == [rig.before.rows("models")[("Qwen/Qwen2-VL-72B",)]["downloads"]] != [None]


def test_a_stale_night_followed_by_another_failed_night_keeps_the_first_good_values(
    rig: Rig,
) -> None:
    """Stale is itself carried: three nights on, the values and their time are night 1's."""
    rig.add(arxiv_fault("status", status=503), hub_fault("status", status=503))
    rig.night(NIGHT_2)
    rig.lose_raw_store()  # the third night has only the snapshot of the second

    third = rig.night(date(2026, 1, 3))

    assert_last_known_good(rig.before, third, ALL_LOOKUPS, r"HTTP 503")


def test_offline_rerun_after_an_outage_recovers_everything_from_the_raw_store(rig: Rig) -> None:
    """The documented recovery: the API is down tonight, `--offline` answers from the raw
    store alone (whatever the age) and the night is whole again."""
    rig.add(arxiv_fault("status", status=503), hub_fault("status", status=503))
    assert rig.night().status == "partial"
    rig.sandbox.reset_log()

    rerun = rig.night(refresh=RefreshPolicy.OFFLINE)

    assert rig.sandbox.requests() == []
    assert rerun.status == "ok", rerun.unresolved
    assert_last_known_good(rig.before, rerun, (), "")
    manifest = read_manifest(rig.out)
    assert manifest["status"].tolist() == ["ok", "partial", "ok"]
    assert manifest["current"].tolist() == [True, False, True]


# -- true runs: the Prefect flow, and the `pipeline` command -------------------------------


@pytest.fixture(scope="module")
def harness() -> Iterator[str]:
    """A Prefect server for the module (startup takes seconds: shared); `pipeline run`
    subprocesses report to it through its URL instead of each starting one of their own.
    Prefect is imported here, not at the top: the kill tests' children import this module
    and start faster without it."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield str(PREFECT_API_URL.value())


@pytest.fixture
def flow_env(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**FAST_ENV, **sandbox.env()}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HF_TOKEN", raising=False)


def flow_night(
    rig: Rig, day: date = NIGHT_2, refresh: RefreshPolicy = RefreshPolicy.REFRESH
) -> tuple[Night, State[Any]]:
    """Night `day` as the flow runs it (in this process, against the module's double)."""
    from pipeline.flow import run_once

    params = RunParameters(
        documents=[str(path) for path in rig.baseline.documents],
        out_dir=str(rig.out),
        raw_dir=str(rig.raw),
        snapshot_date=day,
        refresh=refresh,
    )
    summary, state = run_once(params)
    assert summary is not None, state
    latest = latest_snapshot(rig.out)
    assert latest is not None and latest.run_id == summary.run_id
    night = Night(
        run_id=summary.run_id,
        links=extract_links(rig.baseline.documents).links,
        documents=summary.documents,
        tables={name: pq.read_table(path) for name, path in latest.files.items()},
        status=summary.status,
        failed_stages=(summary.status_reason or "").removeprefix("failed stages: ").split(", "),
        unresolved=summary.unresolved,
        api=summary.api,
    )
    return night, state


def test_run_night_builds_the_night_the_flow_builds(
    harness: str, flow_env: None, rig: Rig, tmp_path: Path
) -> None:
    """The fault table drives the stages without Prefect; this keeps that honest: over the
    same raw store and previous night, both publish the same tables."""
    twin = Rig(rig.sandbox, rig.baseline, tmp_path / "twin")

    by_flow, state = flow_night(rig, refresh=RefreshPolicy.TTL)
    by_stages = twin.night(refresh=RefreshPolicy.TTL)

    assert state.is_completed()
    assert sum(s.requests for s in by_flow.api) == 0  # all from the store: same records
    for name, table in by_flow.tables.items():
        assert table.equals(by_stages.tables[name]), name
    assert by_flow.unresolved == by_stages.unresolved


def test_a_flow_run_through_an_outage_of_both_apis_is_partial_and_loses_nothing(
    harness: str, flow_env: None, rig: Rig
) -> None:
    published = published_state(rig.out)
    rig.add(arxiv_fault("status", status=503), hub_fault("status", status=502))

    night, state = flow_night(rig)

    assert state.is_completed() and state.name == "Partial", state
    assert night.status == "partial"
    assert_every_link_and_entity_has_a_row(night)
    assert_report_names_what_is_not_ok(night)
    assert_last_known_good(rig.before, night, ALL_LOOKUPS, r"HTTP 50[23]")
    assert_untouched(published, rig.out)


def test_a_flow_run_whose_resolvers_crash_keeps_every_row_of_the_night_before(
    harness: str, flow_env: None, rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resolver that raises fails its stage; the run still publishes, and the previous
    snapshot carries every entity: papers found by title and the models of a collection
    included, though tonight nothing asked about them."""
    from pipeline.resolve import arxiv as resolve_arxiv
    from pipeline.resolve import hub as resolve_hub

    def crash(*args: object, **kwargs: object) -> object:
        raise RuntimeError("resolver exploded")

    for owner, name in [
        (resolve_arxiv.ArxivResolver, "resolve_ids"),
        (resolve_arxiv.ArxivResolver, "resolve_titles"),
        (resolve_hub.HubResolver, "resolve_repos"),
        (resolve_hub.HubResolver, "resolve_paper_pages"),
    ]:
        monkeypatch.setattr(owner, name, crash)
    published = published_state(rig.out)

    night, state = flow_night(rig)

    assert state.is_failed() and night.status == "failed"
    assert set(night.failed_stages) == {"arxiv_titles", "arxiv", "hub", "paper_pages"}
    assert_every_link_and_entity_has_a_row(night)
    assert_last_known_good(rig.before, night, ALL_LOOKUPS, r"not resolved in this run")
    assert_untouched(published, rig.out)


class GatedDouble:
    """An API double that holds every request until `opened` is set: a run that stays busy,
    holding its lock, while the test looks at it."""

    def __init__(self, inner: ApiDouble) -> None:
        self.inner = inner
        self.opened = threading.Event()
        self.waiting = 0
        self._lock = threading.Lock()

    def handle(self, request: Request) -> Response:
        with self._lock:
            self.waiting += 1
        self.opened.wait(timeout=120)
        return self.inner.handle(request)


def command_env(api_url: str, sandbox: Sandbox, **extra: str) -> dict[str, str]:
    """The environment of a `pipeline run` subprocess: the double, scaled-down delays, and
    the module's Prefect server."""
    env = {name: value for name, value in os.environ.items() if name != "HF_TOKEN"}
    return {**env, **FAST_ENV, **sandbox.env(), "PREFECT_API_URL": api_url, **extra}


class Command:
    """`pipeline run` in a subprocess, its output collected line by line as it comes."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "run", *args],
            env=dict(env),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout_seconds: float = 120) -> bool:
        """Whether `text` appeared in the output before the process ended."""
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if text in self.output:
                return True
            if self.process.poll() is not None:
                self._reader.join(timeout=5)
                return text in self.output
            time.sleep(0.01)
        raise AssertionError(f"no {text!r} in {timeout_seconds} s:\n{self.output}")

    def finish(self, timeout_seconds: float = 180) -> int:
        code = self.process.wait(timeout=timeout_seconds)
        self._reader.join(timeout=5)
        return code


def wait_until(condition: Callable[[], bool], timeout_seconds: float = 120) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def tree_state(*roots: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under `roots`: size, modification time and content digest."""
    found = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                stat = path.stat()
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                found[str(path)] = (stat.st_size, stat.st_mtime_ns, digest)
    return found


def test_a_flow_run_over_unreadable_documents_reads_the_others_and_names_them(
    harness: str, flow_env: None, rig: Rig, tmp_path: Path
) -> None:
    from pipeline.flow import run_once
    from pipeline.report import markdown_report

    folder = tmp_path / "docs"
    write_reading_list(folder)
    for name, (data, _) in UNREADABLE.items():
        (folder / name).write_bytes(data)
    (folder / "empty.md").write_bytes(b"")
    params = RunParameters(
        documents=[str(folder)], out_dir=str(rig.out), raw_dir=str(rig.raw), snapshot_date=NIGHT_2
    )

    summary, state = run_once(params)

    assert summary is not None and state.is_completed(), state
    # Published, but partial: part of the input could not be read.
    assert summary.published and summary.status == "partial"
    errors = {d.name: d.error for d in summary.documents if d.error}
    assert errors == {name: reason for name, (_, reason) in UNREADABLE.items()}
    assert summary.links == len(rig.before.links)
    report = markdown_report(summary)
    assert "## Documents that could not be read" in report
    for name, reason in errors.items():
        assert f"- `{name}`: {reason}" in report


def test_two_runs_started_at_once_one_wins_the_other_says_why_and_changes_nothing(
    harness: str, tmp_path: Path
) -> None:
    document = write_reading_list(tmp_path / "docs")
    out, raw = tmp_path / "enriched", tmp_path / "raw"
    args = [str(document), "--out", str(out), "--raw", str(raw), "--date", NIGHT_2.isoformat()]
    arxiv, hub = GatedDouble(ArxivDouble()), GatedDouble(HubDouble(quota=1_000_000))
    with Sandbox(arxiv=arxiv, hub=hub) as sandbox:
        # Patient clients: the winner waits at the gate, not in retries.
        env = command_env(
            harness,
            sandbox,
            PIPELINE_ARXIV_TIMEOUT_SECONDS="150",
            PIPELINE_HUB_TIMEOUT_SECONDS="150",
        )
        winner = Command(args, env, tmp_path)
        try:
            # The winner holds the lock and waits on both APIs: nothing of it moves now.
            wait_until(
                lambda: (arxiv.waiting > 0 and hub.waiting > 0) or winner.process.poll() is not None
            )
            assert winner.process.poll() is None, winner.output
            holder = json.loads((out / ".lock").read_text())
            before = tree_state(out, raw)

            loser = Command(args, env, tmp_path)
            loser_code = loser.finish()

            after = tree_state(out, raw)
        finally:
            arxiv.opened.set()
            hub.opened.set()
        winner_code = winner.finish()
        requests = len(sandbox.requests())

    assert loser_code == 4, loser.output
    assert (
        f"{out} is being written by run {holder['run_id']} (pid {winner.process.pid}"
        in loser.output
    )
    assert after == before
    assert winner_code == 0, winner.output
    manifest = read_manifest(out)
    assert manifest["run_id"].tolist() == [holder["run_id"]]
    sent = sum(s["requests"] for s in manifest["api_stats"].iloc[0])
    assert requests == sent  # every request came from the winner


def assert_intact_after_kill(out: Path, raw: Path, published: PublishedState) -> None:
    """What a killed run must leave: every night published before as it was, every night
    the manifest publishes readable whole, a consistent raw store, a free lock."""
    assert_untouched(published, out)  # loads every current night's every table, too
    index = sqlite3.connect(raw / "responses" / "index.sqlite")
    try:
        assert index.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        orphans = index.execute(
            "SELECT count(*) FROM answers"
            " WHERE response_id NOT IN (SELECT response_id FROM responses)"
        ).fetchone()
        assert orphans == (0,)
    finally:
        index.close()
    with RawStore(raw) as store:
        for response in store.responses():
            body = response.read()  # the index never points at a missing or partial body
            assert hashlib.sha256(body).hexdigest() == response.body_sha256, response.body_path
    with snapshot_lock(out, "probe-after-kill"):
        pass


def test_killing_the_pipeline_command_at_random_moments_never_corrupts_anything(
    harness: str, rig: Rig
) -> None:
    """SIGKILL a real `pipeline run` while it resolves, builds or publishes; the kill tests
    of `test_faults_kill.py` do it many more times to the stages alone."""
    published = published_state(rig.out)
    documents = [str(path) for path in rig.baseline.documents]
    args = [*documents, "--out", str(rig.out), "--raw", str(rig.raw), "--date", "2026-01-02"]
    env = command_env(harness, rig.sandbox)
    rng = random.Random(20260102)
    codes: list[int] = []
    for _ in range(3):
        child = Command([*args, "--refresh"], env, rig.root)
        # The flow logs what it is about to ask once the documents are read.
        if child.wait_for("asking:"):
            time.sleep(rng.uniform(0.0, 0.6))
        child.process.send_signal(signal.SIGKILL)
        codes.append(child.finish())
        assert_intact_after_kill(rig.out, rig.raw, published)
    # Each run either died or (if it was quicker than the kill) finished whole.
    assert set(codes) <= {-signal.SIGKILL, 0} and -signal.SIGKILL in codes, codes
    rig.sandbox.reset_log()

    final = Command(args, env, rig.root)

    assert final.finish() == 0, final.output
    assert rig.sandbox.requests() == []  # everything came from the raw store
    manifest = read_manifest(rig.out)
    assert manifest["current"].tolist()[-1]
    assert_intact_after_kill(rig.out, rig.raw, published)
    assert sorted(p.name for p in (rig.out / ".runs").iterdir()) == sorted(
        manifest.loc[manifest["current"], "run_id"].tolist()
    )
