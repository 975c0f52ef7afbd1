"""The fault suites' shared rig: a reading list with every kind of entity, settings scaled
down for loopback speed, one night as the pipeline runs it, and what must hold after any
run (used by `test_faults*.py` and `test_security.py`; fixtures are in `conftest.py`)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from pipeline import night as pipeline_night
from pipeline.config import RefreshPolicy, Settings
from pipeline.links.identify import HUB_REPO_TYPES
from pipeline.parameters import RunParameters
from pipeline.records import (
    GOOD,
    STATUSES,
    ApiStats,
    Document,
)
from pipeline.resolve.rawstore import RawStore
from pipeline.sandbox import Fault, Request, Response, Sandbox
from pipeline.sandbox.wire import ApiDouble
from pipeline.snapshot.links_file import LinksFile
from pipeline.snapshot.read import load, read_manifest
from pipeline.snapshot.store import snapshot_lock

if TYPE_CHECKING:
    pass


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


# -- one night, as `pipeline.night.run_night` runs it ---------------------------------------


@dataclass
class Night:
    """What one run did: its tables as published, and what the report says."""

    run_id: str
    links: list[dict[str, Any]]
    """The night's links table as extracted (before title matches), as rows."""
    documents: list[Document]
    tables: dict[str, pa.Table]
    status: str
    failed_stages: list[str]
    unresolved: dict[str, list[dict[str, Any]]]
    api: list[ApiStats]
    report_path: str | None = None
    """Where the night's HTML report was written (None when it was not)."""

    def stats(self, api: str) -> ApiStats:
        return next(s for s in self.api if s.api == api)

    def rows(self, table: str) -> dict[tuple[Any, ...], dict[str, Any]]:
        return rows_by_key(self.tables[table], table)


Phase = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def run_night(
    documents: Sequence[Path],
    out: Path | str,
    raw: Path | str,
    settings: Settings,
    day: date,
    *,
    phase: Phase = _quiet,
    **parameters: Any,
) -> Night:
    """One whole night through `pipeline.night.run_night` (the function the flow and
    `pipeline run` call), against `settings`' endpoints. `phase` hears where the run
    stands (the kill tests time their kills by it)."""
    params = RunParameters(
        documents=[str(path) for path in documents],
        out_dir=str(out),
        raw_dir=str(raw),
        snapshot_date=day,
        refresh=settings.refresh,
        **parameters,
    )
    night = pipeline_night.run_night(params, settings=settings, phase=phase)
    return as_night(night)


def as_night(night: pipeline_night.Night) -> Night:
    summary = night.summary
    return Night(
        run_id=summary.run_id,
        links=night.links.to_pylist(),
        documents=summary.documents,
        # The links of a night live on disk (`LinksFile`); the tests compare whole tables.
        tables={
            name: table.read_all() if isinstance(table, LinksFile) else table
            for name, table in night.tables.items()
        },
        status=summary.status,
        failed_stages=summary.failed_stages,
        unresolved=summary.unresolved,
        api=summary.api,
        report_path=summary.report_path,
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
    extracted = {(k["document"], k["position"], k["url"]) for k in night.links}
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
        entity_id = link["entity_id"]
        if entity_id is None:
            continue
        if link["kind"] in ("arxiv", "arxiv_mention"):
            assert (entity_id,) in papers, link["url"]
        repo_type = HUB_REPO_TYPES.get(link["kind"])
        if repo_type is not None:
            assert (repo_type, entity_id) in written, link["url"]
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


RATE_EXCEEDED: dict[str, Any] = {
    "status": 429,
    "body": b"Rate exceeded.",
    "headers": {"content-type": "text/plain"},
}


ATOM_HEADERS = {"content-type": "application/atom+xml"}
TOKEN = "hf_FaultSuiteTokenThatMustNeverLeak0123456789"


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

    def __init__(
        self,
        args: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        *,
        new_session: bool = False,
    ) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "run", *args],
            env=dict(env),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            # Its own process group, as a terminal gives a command: signals go to the group.
            start_new_session=new_session,
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
