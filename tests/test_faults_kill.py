"""SIGKILL at random points of whole runs: nothing published is ever corrupted or half
published, and the next run completes, reusing what the killed runs stored.

A child process runs night 2 (`pipeline.night.run_night`, what the flow and `pipeline run`
run) and prints where it stands; the test kills it at a
seeded random moment after a randomly chosen point (extraction, the arXiv and Hub
lookups, building the tables, publishing), checks everything on disk, and starts the
next one. Night 2 asks about ~200 entities the raw store does not know, with small
arXiv batches, so that the kills land between many stored answers. `test_faults.py`
kills the real `pipeline run` command a few times too.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from nights import (
    FAST_ENV,
    NIGHT_1,
    NIGHT_2,
    assert_intact_after_kill,
    fast_settings,
    published_state,
    run_night,
    write_reading_list,
)

from pipeline.config import RefreshPolicy, Settings
from pipeline.sandbox import Sandbox
from pipeline.sandbox.arxiv_api import ArxivDouble
from pipeline.sandbox.hub_api import HubDouble
from pipeline.snapshot.read import load, read_manifest

TESTS = Path(__file__).resolve().parent
KILLS = 16
SEED = 20260102
NEW_PAPERS = 120
NEW_MODELS = 80

_CHILD = """
import sys
sys.path.insert(0, {tests!r})
from test_faults_kill import child_night
child_night()
"""

KILL_POINTS = ("extract", "resolve", "arxiv ", "hub ", "build", "publish", "publish")
"""Lines the child prints (`run_night`'s phases; lookups print `arxiv 5/120`, `hub 3/80`).
Publishing is short, and where a kill does the most harm: it is drawn twice as often."""


def more_entities(folder: Path) -> Path:
    """A list of papers and models night 1 never asked about (the double makes them up)."""
    lines = ["# More", ""]
    lines += [
        f"- [Paper {n}](https://arxiv.org/abs/2401.{10000 + n:05d})" for n in range(NEW_PAPERS)
    ]
    lines += [
        f"- [Model {n}](https://huggingface.co/sample-org/model-{n})" for n in range(NEW_MODELS)
    ]
    return write_reading_list(folder, "\n".join(lines) + "\n", name="more.md")


def night_settings(sandbox_env: dict[str, str]) -> Settings:
    """Night 2 as a nightly run asks: what the store does not hold (time-to-live), in
    batches of five so that a kill falls between stored answers."""
    env = {**sandbox_env, **FAST_ENV, "PIPELINE_ARXIV_BATCH_SIZE": "5"}
    return Settings.from_env(env).replace(refresh=RefreshPolicy.TTL)


def child_night() -> None:
    """The child: night 2 of the directories in its environment, saying where it is."""
    out, raw = Path(os.environ["FAULTS_OUT"]), Path(os.environ["FAULTS_RAW"])
    documents = [Path(p) for p in os.environ["FAULTS_DOCUMENTS"].split(os.pathsep)]

    def say(phase: str) -> None:
        print(phase, flush=True)

    run_night(
        documents,
        out,
        raw,
        night_settings(dict(os.environ)),
        date.fromisoformat(os.environ["FAULTS_DAY"]),
        phase=say,
    )


@dataclass
class Killing:
    sandbox: Sandbox
    root: Path
    documents: list[Path]
    fresh_requests: int
    """Requests night 2 sends when nothing kills it."""

    @property
    def out(self) -> Path:
        return self.root / "enriched"

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    def start(self) -> subprocess.Popen[str]:
        env = {
            **os.environ,
            **self.sandbox.env(),
            "FAULTS_OUT": str(self.out),
            "FAULTS_RAW": str(self.raw),
            "FAULTS_DOCUMENTS": os.pathsep.join(map(str, self.documents)),
            "FAULTS_DAY": NIGHT_2.isoformat(),
        }
        env.pop("HF_TOKEN", None)
        return subprocess.Popen(
            [sys.executable, "-c", _CHILD.format(tests=str(TESTS))],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )


@pytest.fixture(scope="module")
def killing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Killing]:
    root = tmp_path_factory.mktemp("killing")
    arxiv = ArxivDouble(synthesize_unknown=True)
    hub = HubDouble(synthesize_unknown=True, quota=1_000_000)
    with Sandbox(arxiv=arxiv, hub=hub) as sandbox:
        listing = write_reading_list(root / "docs")
        documents = [listing, more_entities(root / "docs")]
        night = run_night(
            [listing], root / "enriched", root / "raw", fast_settings(sandbox), NIGHT_1
        )
        assert night.status == "ok"
        # What night 2 asks when nothing kills it, measured on a copy.
        shutil.copytree(root / "enriched", root / "unkilled" / "enriched")
        shutil.copytree(root / "raw", root / "unkilled" / "raw")
        sandbox.reset_log()
        unkilled = run_night(
            documents,
            root / "unkilled" / "enriched",
            root / "unkilled" / "raw",
            night_settings(sandbox.env()),
            NIGHT_2,
        )
        fresh = len(sandbox.requests())
        assert unkilled.status == "ok" and fresh > NEW_MODELS
        yield Killing(sandbox, root, documents, fresh)


def kill_at(child: subprocess.Popen[str], point: str, delay_seconds: float) -> list[str]:
    """Read the child's lines until one starts with `point`, wait, SIGKILL; its lines."""
    assert child.stdout is not None
    lines = []
    for line in child.stdout:
        lines.append(line)
        if line.startswith(point):
            time.sleep(delay_seconds)
            break
    child.send_signal(signal.SIGKILL)
    rest, _ = child.communicate(timeout=60)
    return lines + rest.splitlines(keepends=True)


@pytest.mark.slow
def test_runs_killed_at_random_points_never_corrupt_anything_and_the_next_run_completes(
    killing: Killing,
) -> None:
    published = published_state(killing.out)
    rng = random.Random(SEED)
    stages: list[str] = []
    for _ in range(KILLS):
        point = rng.choice(KILL_POINTS)
        child = killing.start()
        lines = kill_at(child, point, rng.uniform(0.0, 0.05))
        # Killed, or (when the kill came late) finished whole: nothing in between.
        assert child.returncode in (-signal.SIGKILL, 0), "".join(lines)
        if child.returncode == -signal.SIGKILL:
            stages.append(lines[-1].split()[0] if lines else "start")
        assert_intact_after_kill(killing.out, killing.raw, published)
    assert len(stages) >= KILLS // 2 and len(set(stages)) >= 4, stages
    killing.sandbox.reset_log()

    final = killing.start()
    output, _ = final.communicate(timeout=300)

    assert final.returncode == 0, output
    assert output.splitlines()[-1] == "done"
    assert_intact_after_kill(killing.out, killing.raw, published)
    manifest = read_manifest(killing.out)
    assert manifest["snapshot_date"].iloc[-1] == NIGHT_2 and manifest["current"].iloc[-1]
    # What the killed runs stored is reused: the final run asks less than a whole night
    # (nothing at all once some killed run got through its lookups).
    stats = {s["api"]: s for s in manifest["api_stats"].iloc[-1]}
    assert stats["arxiv"]["from_store"] + stats["hub"]["from_store"] > 0
    assert len(killing.sandbox.requests()) < killing.fresh_requests
    # And it is not a lesser night: it publishes what the night nobody killed published.
    unkilled = killing.root / "unkilled" / "enriched"
    for table in ("links", "papers", "models", "repos", "github_repos", "changes"):
        ours = load(table, killing.out, snapshot_date=NIGHT_2)
        theirs = load(table, unkilled, snapshot_date=NIGHT_2)
        moving = [c for c in ("data_fetched_at", "hf_page_fetched_at") if c in ours.columns]
        assert ours.drop(columns=moving).equals(theirs.drop(columns=moving)), table
