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

The table of faults drives `pipeline.night.run_night`, the night the flow and `pipeline
run` both call; a few true Prefect runs (`mllm_papers`) check the same promises end to end.
The rig the fault modules share is in `nights.py`, its fixtures in `conftest.py`.
"""

from __future__ import annotations

import json
import random
import signal
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq
import pytest
from nights import (
    ALL_LOOKUPS,
    ARXIV,
    ATOM_HEADERS,
    HANG_SECONDS,
    HUB_LOOKUPS,
    MODELS,
    NIGHT_1,
    NIGHT_2,
    PAGES,
    RATE_EXCEEDED,
    REPOS,
    TOKEN,
    UNREADABLE,
    Command,
    FaultFactory,
    GatedDouble,
    Night,
    Outage,
    Rig,
    arxiv_fault,
    assert_every_link_and_entity_has_a_row,
    assert_intact_after_kill,
    assert_last_known_good,
    assert_report_names_what_is_not_ok,
    assert_untouched,
    command_env,
    hub_fault,
    published_state,
    run_night,
    tree_state,
    wait_until,
    write_reading_list,
)

from pipeline.config import RefreshPolicy, Settings
from pipeline.links.documents import extract_links
from pipeline.parameters import RunParameters
from pipeline.sandbox import Sandbox, faults_from_spec
from pipeline.sandbox.arxiv_api import ArxivDouble, error_feed, malformed_id_feed
from pipeline.sandbox.hub_api import HubDouble
from pipeline.snapshot.build import links_table
from pipeline.snapshot.read import latest_snapshot, load, read_manifest

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State


OUTAGES = [
    # arXiv, as observed: 429s without Retry-After, 503 after a long wait, empty pages,
    # read timeouts, whole batches refused, broken bodies, entries missing fields.
    Outage(
        "arxiv-429-no-retry-after",
        lambda: [arxiv_fault("status", **RATE_EXCEEDED)],
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
                headers=ATOM_HEADERS,
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
        # A spent quota is waited out while the wait ends before the run's deadline; this
        # one's window (300 s) does not.
        r"rate limited: quota spent .*would end past the run deadline",
        {"run_deadline_seconds": 5.0},
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
    ("arxiv-429-burst", lambda: [arxiv_fault("status", times=2, **RATE_EXCEEDED)]),
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
            headers=ATOM_HEADERS,
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
        links=links_table(extract_links(rig.baseline.documents).links).to_pylist(),
        documents=summary.documents,
        tables={name: pq.read_table(path) for name, path in latest.files.items()},
        status=summary.status,
        failed_stages=summary.failed_stages,
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


# -- a first night against every fault at once ------------------------------------------------

SEEDS = Path(__file__).resolve().parent.parent / "raw" / "seeds"

FIRST_NIGHT_FAULTS = (
    "arxiv:503:0.25,arxiv:empty:0.15,hub:5xx:0.2,hub:429:0.05/1,hub:truncated:0.1,"
    "hub:quota:150/500/{window},seed:{seed}"
)
"""The operations issue's night: a quarter of arXiv's answers 503, 15 % of its pages empty,
a fifth of the Hub's answers 5xx, 5 % transient 429s, a tenth of its bodies cut short, and
only 150 of the Hub's 500 requests per window left, so that the quota runs out mid-night.
The window is scaled down from 300 s."""

SCALED_DELAYS = {
    "PIPELINE_ARXIV_DELAY_SECONDS": "0.01",
    "PIPELINE_ARXIV_BACKOFF_SECONDS": "0.01",
    "PIPELINE_ARXIV_BACKOFF_MAX_SECONDS": "0.05",
    "PIPELINE_HUB_BACKOFF_SECONDS": "0.01",
    "PIPELINE_HUB_BACKOFF_MAX_SECONDS": "0.05",
}
"""Waits scaled down; attempts and the deadline as the defaults have them."""


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_a_first_night_against_every_fault_is_nearly_whole_and_polite(
    tmp_path: Path, seed: int
) -> None:
    window_seconds = 4
    faults = faults_from_spec(FIRST_NIGHT_FAULTS.format(window=window_seconds, seed=seed))
    with Sandbox(faults=faults) as double:
        # The defaults' patience (attempts, deadline); only the delays are scaled down.
        settings = Settings.from_env({**double.env(), **SCALED_DELAYS}).replace(
            refresh=RefreshPolicy.REFRESH
        )
        night = run_night([SEEDS], tmp_path / "out", tmp_path / "raw", settings, NIGHT_1)
        violations = double.politeness_violations(settings.arxiv_delay_seconds)
        hub_statuses = [entry.status for entry in double.requests("hub")]

    papers = night.tables["papers"].column("status").to_pylist()
    models = night.tables["models"].column("status").to_pylist()
    assert papers.count("ok") >= 0.95 * len(papers), night.unresolved["papers"]
    assert models.count("ok") >= 0.9 * len(models), night.unresolved["models"]
    assert violations == []
    assert hub_statuses.count(429) > 0, "the quota never ran out: the night proves nothing"
    assert night.status in ("ok", "partial")
