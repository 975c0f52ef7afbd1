"""The Hub resolver against the loopback double (and httpx.MockTransport for exact wire cases)."""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fakes import FakeTime

from pipeline.config import RefreshPolicy, Settings
from pipeline.records import (
    CollectionItem,
    HubRepoRecord,
    PaperPageRecord,
    RepoRef,
    size_label,
)
from pipeline.resolve.common import Deadline
from pipeline.resolve.hub import HubResolver
from pipeline.resolve.hub_bodies import params_from_name
from pipeline.resolve.rawstore import RawStore, StoredResponse
from pipeline.sandbox import Fault, LoggedRequest, Sandbox
from pipeline.sandbox.hub_api import HubDouble

INTERNVL = "OpenGVLab/internvl-25-673e1019b66e2218f68d7c1c"
INTERNVL_SIZES = ("1B", "2B", "4B", "8B", "26B", "38B", "78B")
QWEN: RepoRef = ("model", "Qwen/Qwen2-VL-72B")
TOKEN = "hf_TestTokenThatMustNeverLeak0123456789"

# Tests never sleep for real: the resolver's `sleep` seam records what it was asked to wait.
FAST = {"hub_timeout_seconds": 0.2, "hub_max_attempts": 3}


# -- pure functions ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "label"),
    [
        (72_000_000_000, "72B"),
        (73_405_560_320, "73B"),
        (7_615_616_512, "7.6B"),
        (1_927_237_104, "1.9B"),
        (968_000_000, "968M"),
        (938_158_976, "938M"),
        (1_100_000_000_000, "1.1T"),
        (56_000_000_000, "56B"),
        (1_000_000_000, "1B"),
        (999_600_000, "1B"),  # rounds up into the next unit
        (9_960_000_000, "10B"),
        (12_500_000, "13M"),  # half rounds up, not to even
        (1_500, "1.5K"),
        (999, "999"),
        (0, "0"),
    ],
)
def test_size_label(params: int, label: str) -> None:
    assert size_label(params) == label


def test_size_label_refuses_negative_counts() -> None:
    with pytest.raises(ValueError, match="negative"):
        size_label(-1)


@pytest.mark.parametrize(
    ("repo_id", "params"),
    [
        ("Qwen/Qwen2-VL-72B", 72_000_000_000),
        ("Qwen/Qwen2.5-VL-7B-Instruct", 7_000_000_000),
        ("org/model-7.6B", 7_600_000_000),
        ("org/tiny-968M", 968_000_000),
        ("mistralai/Mixtral-8x7B-Instruct-v0.1", 56_000_000_000),
        ("org/qwen-1.5b", 1_500_000_000),
        ("org/2B-Instruct", 2_000_000_000),
        ("OpenGVLab/InternVL2_5-1B", 1_000_000_000),
        ("google/paligemma-3b-pt-224", 3_000_000_000),
        ("org/Kimi-K2-1T", 1_000_000_000_000),
        ("Qwen/Qwen3-VL-235B-A22B-Instruct", 235_000_000_000),  # A22B: active parameters
        ("Qwen/Qwen2.5-7B-Instruct-1M", 7_000_000_000),  # 1M: context length
        ("Qwen/Qwen2.5", None),
        ("org/model-v1.5", None),
        ("moonshotai/Kimi-VL-A3B-Thinking", None),
        ("microsoft/Phi-3-vision-128k-instruct", None),  # 128k: context length
        ("openbmb/MiniCPM-Llama3-V-2_5-int4", None),
        ("org/llama-4bit", None),
        ("microsoft/Florence-2-large", None),
        ("72B-org/model", None),  # the namespace is not the model
        ("bert-base-uncased", None),
    ],
)
def test_params_from_name(repo_id: str, params: int | None) -> None:
    assert params_from_name(repo_id) == params


# -- the rig: loopback double, raw store, recorded sleeps -----------------------------
@dataclass
class Rig:
    sandbox: Sandbox
    double: HubDouble
    store: RawStore
    root: Path
    sleeps: list[float] = field(default_factory=list)

    def settings(self, **changes: object) -> Settings:
        return Settings.from_env(self.sandbox.env()).replace(**{**FAST, **changes})

    def resolver(
        self, sleep: Callable[[float], None] | None = None, **changes: object
    ) -> HubResolver:
        return HubResolver(self.settings(**changes), self.store, sleep=sleep or self.sleeps.append)

    def requests(self) -> list[LoggedRequest]:
        return self.sandbox.requests("hub")

    def fault(self, kind: str, times: int = 1, **fields: object) -> Fault:
        return self.sandbox.add_fault(Fault(api="hub", kind=kind, times=times, **fields))  # type: ignore[arg-type]


@contextmanager
def open_rig(root: Path, double: HubDouble) -> Iterator[Rig]:
    """A sandbox of its own, for tests that need a double configured differently."""
    with Sandbox(hub=double) as sandbox, RawStore(root / "raw") as store:
        yield Rig(sandbox, double, store, root / "raw")


@pytest.fixture(scope="module")
def shared_sandbox() -> Iterator[tuple[Sandbox, HubDouble]]:
    # One sandbox for the module: stopping one costs about a second (server poll interval).
    double = HubDouble(quota=1_000_000)
    with Sandbox(hub=double) as sandbox:
        yield sandbox, double


@pytest.fixture
def rig(tmp_path: Path, shared_sandbox: tuple[Sandbox, HubDouble]) -> Iterator[Rig]:
    sandbox, double = shared_sandbox
    sandbox.clear_faults()
    sandbox.reset_log()
    with RawStore(tmp_path / "raw") as store:
        yield Rig(sandbox, double, store, tmp_path / "raw")
    sandbox.clear_faults()


def resolve_one(resolver: HubResolver, ref: RepoRef) -> HubRepoRecord:
    return resolver.resolve_repos([ref])[ref]


# -- what a record says ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("repo_id", "total", "source", "by_dtype"),
    [
        ("Qwen/Qwen2-VL-72B", 73_405_560_320, "safetensors", (("BF16", 73_405_560_320),)),
        (
            # bitsandbytes NF4 (the config, asked with `expand[]=config`, says so): its U8
            # holds two weights a byte and the absmax, counted as weights.
            "openbmb/MiniCPM-Llama3-V-2_5-int4",
            8_537_092_336,
            "safetensors_unpacked:bitsandbytes-4bit",
            (("F32", 425_984), ("F16", 1_557_770_480), ("U8", 3_598_712_832)),
        ),
        ("mistralai/Mistral-Large-3-675B-Instruct-2512-GGUF", 675_269_255_744, "gguf", ()),
        ("01-ai/Yi-VL-34B", 34_000_000_000, "name", ()),
    ],
)
def test_parameter_count_from_safetensors_gguf_or_name(
    rig: Rig, repo_id: str, total: int, source: str, by_dtype: tuple[tuple[str, int], ...]
) -> None:
    record = resolve_one(rig.resolver(), ("model", repo_id))
    assert (record.status, record.params_total, record.params_source) == ("ok", total, source)
    assert record.params_by_dtype == by_dtype


def test_model_record_fields_and_the_expand_request(rig: Rig) -> None:
    record = resolve_one(rig.resolver(), QWEN)
    assert record.repo_id == record.requested_id == "Qwen/Qwen2-VL-72B"
    assert record.arxiv_ids == ("2409.12191", "2308.12966")
    assert (record.license, record.gated, record.pipeline_tag) == (
        "other",
        None,
        "image-text-to-text",
    )
    assert (record.downloads, record.likes, record.author) == (2410, 72, "Qwen")
    assert record.created_at is not None and record.created_at.utcoffset() is not None
    assert record.data_fetched_at is not None
    [request] = rig.requests()
    expanded = httpx.QueryParams(request.query).get_list("expand[]")
    assert set(expanded) == {
        "author",
        "cardData",
        "config",
        "createdAt",
        "downloads",
        "gated",
        "gguf",
        "lastModified",
        "library_name",
        "likes",
        "pipeline_tag",
        "private",
        "safetensors",
        "tags",
    }


@pytest.mark.parametrize(
    ("repo_id", "gated"),
    [
        ("google/paligemma-3b-pt-224", "auto"),
        ("meta-llama/Llama-4-Scout-17B-16E-Instruct", "manual"),
        ("microsoft/Florence-2-large", None),
    ],
)
def test_gated_models_keep_their_metadata(rig: Rig, repo_id: str, gated: str | None) -> None:
    record = resolve_one(rig.resolver(), ("model", repo_id))
    assert (record.status, record.gated) == ("ok", gated)
    assert record.params_source == "safetensors"


def test_dataset_and_space_basic_info(rig: Rig) -> None:
    resolver = rig.resolver()
    records = resolver.resolve_repos(
        [("dataset", "huggingface/documentation-images"), ("space", "Qwen/Qwen2.5-VL")]
    )
    dataset = records[("dataset", "huggingface/documentation-images")]
    assert (dataset.status, dataset.license, dataset.likes) == ("ok", "cc-by-nc-sa-4.0", 92)
    space = records[("space", "Qwen/Qwen2.5-VL")]
    assert (space.status, space.sdk, space.title, space.likes) == (
        "ok",
        "gradio",
        "Qwen2.5-VL",
        602,
    )


# -- collections -------------------------------------------------------------------------
def test_collection_items_are_resolved_under_their_own_refs(rig: Rig) -> None:
    progress: list[tuple[int, int]] = []
    records = rig.resolver().resolve_repos(
        [("collection", INTERNVL)], on_progress=lambda d, t: progress.append((d, t))
    )
    collection = records[("collection", INTERNVL)]
    assert (collection.status, collection.title, collection.author) == (
        "ok",
        "InternVL2.5",
        "OpenGVLab",
    )
    assert collection.items[0] == CollectionItem("paper", "2412.05271")
    assert len(collection.items) == 10
    for size in INTERNVL_SIZES:
        model = records[("model", f"OpenGVLab/InternVL2_5-{size}")]
        assert model.status == "ok" and model.params_source == "safetensors"
    assert records[("model", "OpenGVLab/InternVL2_5-78B")].params_total == 78_408_318_336
    assert records[("dataset", "OpenGVLab/MMPR-v1.1")].status == "ok"
    assert records[("space", "OpenGVLab/InternVL")].title == "InternVL"
    assert len(records) == 1 + 9  # papers are not repos: the paper item is not looked up
    assert progress[-1] == (10, 10)
    assert len(rig.requests()) == 10


def test_collection_asked_by_its_short_slug_gets_its_canonical_slug(rig: Rig) -> None:
    resolver = rig.resolver()
    record = resolve_one(resolver, ("collection", "mistralai/mistral-large-3"))
    assert record.status == "ok"
    assert record.requested_id == "mistralai/mistral-large-3"
    assert record.repo_id == "mistralai/mistral-large-3-692c8f1a4e7b3d2c1a0f9e8d"
    assert rig.store.answer("hub", "collection", record.repo_id) is not None


# -- renames -------------------------------------------------------------------------
def test_renamed_repo_keeps_both_names_and_one_canonical_id(rig: Rig) -> None:
    old: RepoRef = ("model", "vikhyatk/moondream2")
    new: RepoRef = ("model", "moondream/moondream2")
    records = rig.resolver().resolve_repos([old, new])
    assert records[old].requested_id == "vikhyatk/moondream2"
    assert records[new].requested_id == "moondream/moondream2"
    assert {records[old].repo_id, records[new].repo_id} == {"moondream/moondream2"}
    assert records[old].params_total == 1_927_237_104
    followed = [r for r in rig.requests() if r.path == "/api/models/moondream/moondream2"]
    assert all("expand%5B%5D=safetensors" in r.query for r in followed)
    for repo_id in ("vikhyatk/moondream2", "moondream/moondream2"):
        answer = rig.store.answer("hub", "model", repo_id)
        assert answer is not None and answer.outcome == "ok"


def test_canonical_name_learnt_from_a_rename_is_not_asked_again(rig: Rig) -> None:
    resolver = rig.resolver(hub_concurrency=1)
    resolver.resolve_repos([("model", "vikhyatk/moondream2")])
    asked = len(rig.requests())
    record = resolve_one(resolver, ("model", "moondream/moondream2"))
    assert (record.status, record.requested_id) == ("ok", "moondream/moondream2")
    assert len(rig.requests()) == asked == 2  # 307 + 200, and nothing since


def test_redirect_loop_is_an_error_not_retried(rig: Rig) -> None:
    rig.fault("api", times=-1, name="redirect_loop")
    record = resolve_one(rig.resolver(), QWEN)
    assert record.status == "error"
    assert record.status_reason is not None and "redirect loop" in record.status_reason
    assert [r.status for r in rig.requests()] == [307, 307]


# -- not found -----------------------------------------------------------------------
@pytest.mark.parametrize(("token", "status"), [(None, 401), (TOKEN, 404)])
def test_missing_repo_is_not_found_and_not_retried(
    rig: Rig, token: str | None, status: int
) -> None:
    record = resolve_one(rig.resolver(hf_token=token), ("model", "nobody/nothing"))
    assert record.status == "not_found"
    assert record.status_reason is not None
    assert f"HTTP {status} RepoNotFound" in record.status_reason
    assert [(r.status, r.authorization) for r in rig.requests()] == [(status, token is not None)]
    answer = rig.store.answer("hub", "model", "nobody/nothing")
    assert answer is not None and answer.outcome == "not_found"


def test_disabled_repo_is_not_visible(rig: Rig) -> None:
    record = resolve_one(rig.resolver(), ("model", "sample-org/disabled-model"))
    assert record.status == "not_found"
    assert record.status_reason is not None and "disabled" in record.status_reason
    assert len(rig.requests()) == 1


@pytest.mark.parametrize(
    "ref",
    [
        ("model", "../../etc/passwd"),
        ("model", "org/../../admin"),
        ("model", "org/.."),
        ("model", "org/name?expand=secrets"),
        ("model", "org/na%2Fme"),
        ("model", "org//name"),
        ("model", "a/b/c"),
        ("dataset", "./x"),
        ("space", "org/name#frag"),
        ("collection", "../collections/x"),
        ("model", ""),
    ],
)
def test_invalid_ids_are_never_requested(rig: Rig, ref: RepoRef) -> None:
    record = resolve_one(rig.resolver(), ref)
    assert (record.status, record.status_reason) == ("not_found", "invalid Hub repo ID; never sent")
    assert rig.requests() == []


# -- rate limits: one gate for every thread, bounded by the run's deadline -----------------
def test_429_with_ratelimit_header_waits_t(tmp_path: Path) -> None:
    with open_rig(tmp_path, HubDouble(window_seconds=7, clock=lambda: 0.0)) as rig:
        rig.fault("api", name="rate_limited")
        record = resolve_one(rig.resolver(), QWEN)
        assert record.status == "ok"
        assert [r.status for r in rig.requests()] == [429, 200]
        assert rig.sleeps == [pytest.approx(7, abs=0.5)]


def test_a_spent_quota_is_waited_out_however_long_its_window_has_to_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A reset five minutes away is five times `hub_backoff_max_seconds`: waited all the same."""
    caplog.set_level(logging.INFO, logger="pipeline.resolve.hub")
    with open_rig(tmp_path, HubDouble(window_seconds=300, clock=lambda: 0.0)) as rig:
        rig.fault("api", name="rate_limited")
        record = resolve_one(rig.resolver(hub_backoff_max_seconds=60), QWEN)
        assert record.status == "ok"
        assert [r.status for r in rig.requests()] == [429, 200]
        assert rig.sleeps == [pytest.approx(300, abs=0.5)]
    assert "hub: quota spent (0 of 500 left), waiting 300 s for the window to reset" in (
        caplog.messages
    )


def test_every_thread_waits_for_the_reset_together_and_none_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Four threads, a quota of 5 per 2-second window: the gate counts what the window has
    left, so no request goes out that the quota would refuse; each reset is waited once,
    announced once, for every thread."""
    caplog.set_level(logging.INFO, logger="pipeline.resolve.hub")
    double = HubDouble(quota=5, window_seconds=2, synthesize_unknown=True)
    with open_rig(tmp_path, double) as rig:
        refs: list[RepoRef] = [("model", f"sample-org/model-{i}") for i in range(8)]
        resolver = HubResolver(rig.settings(hub_concurrency=4), rig.store)
        records = resolver.resolve_repos(refs)
        assert {r.status for r in records.values()} == {"ok"}
        assert [r.status for r in rig.requests()] == [200] * 8
        starts = [r.at for r in rig.requests()]
    waits = [m for m in caplog.messages if m.startswith("hub: quota spent (0 of 5 left)")]
    assert len(waits) == 1, caplog.messages  # 8 requests, 5 a window: one reset, one message
    assert re.fullmatch(
        r"hub: quota spent \(0 of 5 left\), waiting [12] s for the window to reset", waits[0]
    )
    assert max(b - a for a, b in itertools.pairwise(starts)) > 0.5  # it did wait


def test_a_quota_spent_by_another_job_holds_every_thread_once(tmp_path: Path) -> None:
    """The quota is shared with other jobs: the first 429 says when the window resets, and
    no thread asks again before then (those already in flight are answered 429 too)."""
    fake = FakeTime()
    double = HubDouble(quota=1_000, window_seconds=40, clock=fake.clock)
    with open_rig(tmp_path, double) as rig:
        rig.fault("api", name="rate_limited", times=1)
        refs: list[RepoRef] = [
            QWEN,
            ("model", "microsoft/Florence-2-large"),
            ("model", "01-ai/Yi-VL-34B"),
        ]
        resolver = HubResolver(
            rig.settings(hub_concurrency=1), rig.store, sleep=fake.sleep, clock=fake.clock
        )
        records = resolver.resolve_repos(refs)
        assert {r.status for r in records.values()} == {"ok"}
        assert [r.status for r in rig.requests()] == [429, 200, 200, 200]
        assert fake.sleeps == [40]


def test_a_wait_past_the_deadline_is_not_taken(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeTime()
    with open_rig(tmp_path, HubDouble(window_seconds=300, clock=lambda: 0.0)) as rig:
        first = resolve_one(rig.resolver(), QWEN)
        rig.sandbox.reset_log()
        rig.fault("api", times=-1, name="rate_limited")
        refs: list[RepoRef] = [
            QWEN,
            ("model", "microsoft/Florence-2-large"),
            ("model", "01-ai/Yi-VL-34B"),
        ]
        resolver = HubResolver(
            rig.settings(hub_concurrency=1, refresh=RefreshPolicy.REFRESH),
            rig.store,
            sleep=fake.sleep,
            clock=fake.clock,
            deadline=Deadline(120, clock=fake.clock),
        )
        records = resolver.resolve_repos(refs)
        assert len(rig.requests()) == 1  # the others know the window is spent
        assert fake.sleeps == []
    stale = records[QWEN]
    assert (stale.status, stale.downloads) == ("stale", first.downloads)
    assert {r.status for ref, r in records.items() if ref != QWEN} == {"error"}
    for record in records.values():
        assert record.status_reason is not None
        assert "rate limited: quota spent (0 of 500 left)" in record.status_reason
        assert "would end past the run deadline (run_deadline_seconds=120" in record.status_reason
    assert any("not waiting" in m and "run deadline" in m for m in caplog.messages)


def test_a_backoff_past_the_deadline_is_not_taken(rig: Rig) -> None:
    fake = FakeTime()
    rig.fault("status", times=-1, status=503)
    resolver = HubResolver(
        rig.settings(hub_backoff_seconds=20.0, hub_backoff_max_seconds=60, hub_max_attempts=4),
        rig.store,
        sleep=fake.sleep,
        clock=fake.clock,
        deadline=Deadline(5, clock=fake.clock),
    )
    record = resolve_one(resolver, QWEN)
    assert record.status == "error"
    assert record.status_reason is not None
    assert re.match(r"HTTP 503; not tried again: a wait of (1\d|20) s", record.status_reason)
    assert "past the run deadline (run_deadline_seconds=5, 5 s left)" in record.status_reason
    assert len(rig.requests()) == 1 and fake.sleeps == []


def test_nothing_is_asked_once_the_deadline_has_passed(rig: Rig) -> None:
    first = resolve_one(rig.resolver(), QWEN)
    rig.sandbox.reset_log()
    resolver = HubResolver(
        rig.settings(refresh=RefreshPolicy.REFRESH), rig.store, deadline=Deadline(0)
    )
    records = resolver.resolve_repos([QWEN, ("model", "01-ai/Yi-VL-34B")])
    pages = resolver.resolve_paper_pages(["2409.12191"])
    assert rig.requests() == []
    stale = records[QWEN]
    assert stale.status == "stale" and stale.params_total == first.params_total
    assert stale.status_reason is not None and stale.status_reason.startswith(
        "not asked: the run deadline has passed (run_deadline_seconds=0); last good answer from "
    )
    assert records[("model", "01-ai/Yi-VL-34B")].status == "error"
    assert pages["2409.12191"].status == "error"


def test_the_default_deadline_is_the_settings_one_from_construction(rig: Rig) -> None:
    fake = FakeTime()
    resolver = HubResolver(
        rig.settings(run_deadline_seconds=30.0), rig.store, sleep=fake.sleep, clock=fake.clock
    )
    fake.now += 31
    record = resolve_one(resolver, QWEN)
    assert record.status == "error"
    assert "run_deadline_seconds=30" in (record.status_reason or "")
    assert rig.requests() == []


def test_a_night_cut_short_by_its_deadline_leaves_the_next_one_the_rest(tmp_path: Path) -> None:
    """Never-asked entities and the oldest answers go first: a list larger than what one
    night's quota and deadline allow is covered over several nights, not the same first
    entities every night."""
    fake = FakeTime()
    double = HubDouble(quota=2, window_seconds=300, clock=fake.clock)
    with open_rig(tmp_path, double) as rig:
        refs: list[RepoRef] = [("model", f"OpenGVLab/InternVL2_5-{s}") for s in INTERNVL_SIZES[:6]]
        ever_ok: set[RepoRef] = set()
        for _night in range(3):
            resolver = HubResolver(
                rig.settings(refresh=RefreshPolicy.REFRESH, hub_concurrency=1),
                rig.store,
                sleep=fake.sleep,
                clock=fake.clock,
                deadline=Deadline(100, clock=fake.clock),
            )
            records = resolver.resolve_repos(refs)
            ever_ok |= {ref for ref, record in records.items() if record.status == "ok"}
            fake.now += 86_400  # the next night: a new window
        assert ever_ok == set(refs)
        assert [r.status for r in rig.requests()] == [200] * 6  # never one refused
        assert fake.sleeps == []


def test_429_without_headers_backs_off_exponentially(rig: Rig) -> None:
    rig.fault("api", times=2, name="rate_limited_bare")
    resolver = rig.resolver(hub_backoff_seconds=2.0, hub_backoff_max_seconds=60)
    record = resolve_one(resolver, QWEN)
    assert record.status == "ok"
    assert [r.status for r in rig.requests()] == [429, 429, 200]
    first, second = rig.sleeps
    assert 1.0 <= first <= 2.0 and 2.0 <= second <= 4.0  # equal jitter: [b/2, b], b doubling
    assert resolver.stats.retries == 2
    assert resolver.stats.by_status == {429: 2, 200: 1}


def test_429_with_retry_after_only(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.resolve.hub")
    rig.fault("status", status=429, headers={"retry-after": "3"})
    record = resolve_one(rig.resolver(), QWEN)
    assert record.status == "ok"
    assert rig.sleeps == [pytest.approx(3, abs=0.5)]
    assert any(m.startswith("hub: HTTP 429 rate limited, waiting 3 s") for m in caplog.messages)


def test_slows_down_before_the_window_is_spent(tmp_path: Path) -> None:
    fake = FakeTime()
    with open_rig(tmp_path, HubDouble(quota=2, window_seconds=30, clock=fake.clock)) as rig:
        refs: list[RepoRef] = [
            QWEN,
            ("model", "microsoft/Florence-2-large"),
            ("model", "01-ai/Yi-VL-34B"),
        ]
        resolver = HubResolver(
            rig.settings(hub_concurrency=1), rig.store, sleep=fake.sleep, clock=fake.clock
        )
        records = resolver.resolve_repos(refs)
        assert {r.status for r in records.values()} == {"ok"}
        assert [r.status for r in rig.requests()] == [200, 200, 200]  # never refused
        assert fake.sleeps == [30]


# -- transient failures --------------------------------------------------------------
@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_errors_are_retried_then_succeed(rig: Rig, status: int) -> None:
    rig.fault("status", times=2, status=status, body=b"upstream trouble")
    resolver = rig.resolver()
    record = resolve_one(resolver, QWEN)
    assert record.status == "ok"
    assert [r.status for r in rig.requests()] == [status, status, 200]
    assert len(rig.sleeps) == 2


def test_server_errors_forever_become_an_error(rig: Rig) -> None:
    rig.fault("status", times=-1, status=503, body=b'{"error":"Service Unavailable"}')
    record = resolve_one(rig.resolver(hub_max_attempts=3), QWEN)
    assert record.status == "error"
    assert record.status_reason == "HTTP 503: Service Unavailable (gave up after 3 attempts)"
    assert len(rig.requests()) == 3


def test_timeouts_are_retried_then_an_error(tmp_path: Path) -> None:
    # Its own sandbox: the hanging handlers outlive the test and would log into the next one.
    with open_rig(tmp_path, HubDouble()) as rig:
        rig.fault("hang", times=-1, delay_seconds=0.3)
        resolver = rig.resolver(hub_timeout_seconds=0.1, hub_max_attempts=2)
        record = resolve_one(resolver, QWEN)
        assert record.status == "error"
        assert record.status_reason is not None and "timed out after 0.1 s" in record.status_reason
        assert resolver.stats.by_status == {0: 2}


@pytest.mark.parametrize(
    ("fault", "status", "reason", "requests"),
    [
        (Fault(api="hub", kind="truncate"), "ok", None, 2),
        (Fault(api="hub", kind="disconnect"), "ok", None, 2),
        (Fault(api="hub", kind="garbage"), "ok", None, 2),
        (Fault(api="hub", kind="truncate", times=-1), "error", "truncated or non-JSON body", 3),
        (Fault(api="hub", kind="garbage", times=-1), "error", "text/html", 3),
        (Fault(api="hub", kind="api", name="wrong_types"), "error", "field 'downloads'", 1),
        (Fault(api="hub", kind="api", name="drop_field"), "error", "field 'id' is missing", 1),
        (
            Fault(api="hub", kind="status", status=400, body=b'{"error":"bad"}'),
            "error",
            "HTTP 400: bad",
            1,
        ),
        (Fault(api="hub", kind="status", status=403), "error", "HTTP 403", 1),
        # Hostile answers: JSON nested past any parser's depth; digits `int` refuses.
        (
            Fault(api="hub", kind="status", status=200, body=b"[" * 200_000, times=-1),
            "error",
            "truncated or non-JSON body",
            3,
        ),
        (
            Fault(
                api="hub",
                kind="status",
                status=429,
                headers={"ratelimit": '"api";r=\u00b2;t=\u00b9', "retry-after": "\u00b3"},
                times=-1,
            ),
            "error",
            "HTTP 429",
            3,
        ),
    ],
)
def test_bad_bodies_and_statuses(
    rig: Rig, fault: Fault, status: str, reason: str | None, requests: int
) -> None:
    rig.sandbox.add_fault(fault)
    record = resolve_one(rig.resolver(hub_max_attempts=3), QWEN)
    assert record.status == status
    if reason is None:
        assert record.status_reason is None
        assert record.params_total == 73_405_560_320
    else:
        assert record.status_reason is not None and reason in record.status_reason
        assert record.downloads is None  # nothing half-read is kept
    assert len(rig.requests()) == requests


def test_wrong_types_name_every_field_in_the_reason(rig: Rig) -> None:
    rig.fault("api", name="wrong_types")
    reason = resolve_one(rig.resolver(), QWEN).status_reason or ""
    assert "field 'downloads': Input should be a valid integer (got 'many')" in reason
    assert "field 'safetensors.total'" in reason


def test_oversize_body_is_refused(rig: Rig) -> None:
    rig.fault("oversize", size_bytes=50_000)
    record = resolve_one(rig.resolver(max_response_bytes=10_000), QWEN)
    assert record.status == "error"
    assert record.status_reason is not None
    assert "larger than max_response_bytes=10000" in record.status_reason
    assert len(rig.requests()) == 1


# -- the raw store and the refresh policy --------------------------------------------
MIXED: list[RepoRef] = [
    QWEN,
    ("model", "vikhyatk/moondream2"),
    ("model", "nobody/nothing"),
    ("collection", "meta-llama/llama-4-67f0c30d9fe03840bc9d0164"),
]


def test_second_resolver_over_the_same_store_asks_nothing(rig: Rig) -> None:
    first = rig.resolver().resolve_repos(MIXED)
    pages = rig.resolver().resolve_paper_pages(["2409.12191", "2609.39403"])
    asked = len(rig.requests())
    second_resolver = rig.resolver()
    second = second_resolver.resolve_repos(MIXED)
    second_pages = second_resolver.resolve_paper_pages(["2409.12191", "2609.39403"])
    assert len(rig.requests()) == asked
    assert second == first
    assert second_pages == pages
    assert second_resolver.stats.requests == 0
    assert second_resolver.stats.from_store == len(first) + len(pages)


def test_ttl_expired_answers_are_asked_again(rig: Rig) -> None:
    rig.resolver().resolve_repos([QWEN])
    resolve_one(rig.resolver(hub_ttl_seconds=0.0), QWEN)
    assert len(rig.requests()) == 2


def test_refresh_asks_again_whatever_the_store_holds(rig: Rig) -> None:
    first = rig.resolver().resolve_repos(MIXED)
    asked = len(rig.requests())
    again = rig.resolver(refresh=RefreshPolicy.REFRESH).resolve_repos(MIXED)
    assert len(rig.requests()) == 2 * asked
    assert {ref: r.status for ref, r in again.items()} == {
        ref: r.status for ref, r in first.items()
    }


def test_offline_answers_from_the_store_alone(rig: Rig) -> None:
    first = rig.resolver().resolve_repos(MIXED)
    asked = len(rig.requests())
    offline = rig.resolver(refresh=RefreshPolicy.OFFLINE, hub_ttl_seconds=0.0)
    records = offline.resolve_repos([*MIXED, ("model", "microsoft/Florence-2-large")])
    assert len(rig.requests()) == asked
    assert {ref: records[ref] for ref in first} == first
    unknown = records[("model", "microsoft/Florence-2-large")]
    assert (unknown.status, unknown.status_reason) == (
        "error",
        "offline: no usable answer in the raw store",
    )


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (
            Fault(api="hub", kind="status", status=503, times=-1),
            "HTTP 503 (gave up after 2 attempts)",
        ),
        (Fault(api="hub", kind="api", name="wrong_types"), "invalid response: field 'downloads'"),
        (
            Fault(api="hub", kind="oversize", size_bytes=20_000),
            "response body larger than max_response_bytes=10000",
        ),
        (  # a revoked token: an answer about us, not about the repo
            Fault(
                api="hub",
                kind="status",
                status=401,
                times=-1,
                headers={"x-error-message": "Invalid credentials in Authorization header"},
            ),
            "HTTP 401: the Hub refused the token (HF_TOKEN): Invalid credentials",
        ),
    ],
)
def test_failed_lookup_with_a_last_good_answer_is_stale(
    rig: Rig, fault: Fault, reason: str
) -> None:
    first = resolve_one(rig.resolver(), QWEN)
    rig.sandbox.add_fault(fault)
    tonight = rig.resolver(
        refresh=RefreshPolicy.REFRESH, hub_max_attempts=2, max_response_bytes=10_000
    )
    stale = resolve_one(tonight, QWEN)
    assert stale.status == "stale"
    assert stale.status_reason is not None and stale.status_reason.startswith(reason)
    assert stale.data_fetched_at == first.data_fetched_at
    assert (stale.downloads, stale.params_total) == (first.downloads, first.params_total)


def test_every_response_is_recorded_and_definite_ones_marked(rig: Rig) -> None:
    rig.fault("status", status=502)
    rig.resolver().resolve_repos([QWEN, ("model", "vikhyatk/moondream2")])
    statuses = sorted(r.status for r in rig.store.responses("hub"))
    assert statuses == [200, 200, 307, 502]
    assert {r.endpoint for r in rig.store.responses("hub")} == {"models"}


# -- the token ---------------------------------------------------------------------------
def test_token_never_reaches_store_logs_or_records(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rig.fault("status", times=-1, status=500, match="Florence")
    resolver = rig.resolver(hf_token=TOKEN, hub_max_attempts=2)
    records = resolver.resolve_repos(
        [*MIXED, ("model", "microsoft/Florence-2-large"), ("model", "../escape")]
    )
    pages = resolver.resolve_paper_pages(["2409.12191", "2609.39403"])
    assert all(r.authorization for r in rig.requests())
    assert TOKEN not in repr(records) + repr(pages)
    assert TOKEN not in caplog.text
    assert "hub model microsoft/Florence-2-large: error" in caplog.text  # the log was captured
    rig.store.close()
    for path in rig.root.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_a_server_echoing_the_token_is_scrubbed(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    # Our own logs (httpcore's DEBUG trace prints response headers as received, echo included).
    caplog.set_level(logging.DEBUG, logger="pipeline")
    echo = f"token {TOKEN} is not allowed here"
    rig.fault("status", times=-1, status=418, headers={"x-error-message": echo}, body=echo.encode())
    record = resolve_one(rig.resolver(hf_token=TOKEN), QWEN)
    assert record.status == "error"
    assert record.status_reason == "HTTP 418: token [HF_TOKEN] is not allowed here"
    assert TOKEN not in caplog.text
    rig.store.close()
    for path in rig.root.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_user_agent_sent_and_no_authorization_without_token(rig: Rig) -> None:
    resolver = rig.resolver()
    resolve_one(resolver, QWEN)
    [request] = rig.requests()
    assert request.user_agent == resolver.settings.user_agent
    assert request.authorization is False


# -- once per run, concurrency, progress ------------------------------------------------
def test_each_distinct_entity_is_asked_once_per_run(rig: Rig) -> None:
    resolver = rig.resolver()
    records = resolver.resolve_repos([QWEN, QWEN, ("model", "01-ai/Yi-VL-34B"), QWEN])
    assert len(records) == 2
    resolver.resolve_repos([QWEN])
    resolver.resolve_paper_pages(["2409.12191", "2409.12191v2", "arXiv:2409.12191"])
    resolver.resolve_paper_pages(["2409.12191"])
    assert sorted(r.path for r in rig.requests()) == [
        "/api/models/01-ai/Yi-VL-34B",
        "/api/models/Qwen/Qwen2-VL-72B",
        "/api/papers/2409.12191",
    ]
    assert resolver.stats.requests == 3


def test_concurrency_bound_is_respected(tmp_path: Path) -> None:
    double = HubDouble(synthesize_unknown=True, latency_seconds=0.03)
    with open_rig(tmp_path, double) as rig:
        refs: list[RepoRef] = [("model", f"sample-org/model-{i:03d}") for i in range(15)]
        progress: list[tuple[int, int]] = []
        records = rig.resolver(hub_concurrency=3).resolve_repos(
            refs, on_progress=lambda done, total: progress.append((done, total))
        )
        assert {r.status for r in records.values()} == {"ok"}
        assert 2 <= double.max_in_flight <= 3
        assert progress == [(i, 15) for i in range(1, 16)]


# -- paper pages ---------------------------------------------------------------------
def test_paper_pages(rig: Rig) -> None:
    given = [
        "2409.12191",
        "2409.12191v2",
        "2609.39403",
        "hep-th/9901001",
        "not-an-id",
        "2412.05271",
    ]
    pages = rig.resolver().resolve_paper_pages(given)
    assert list(pages) == given
    qwen = pages["2409.12191"]
    assert pages["2409.12191v2"] == qwen
    assert (qwen.arxiv_id, qwen.status, qwen.upvotes) == ("2409.12191", "ok", 79)
    assert (qwen.github_repo, qwen.github_stars) == ("qwenlm/qwen2-vl", 9312)
    assert qwen.num_total_models == 1480
    assert [(m.repo_id, m.params_total) for m in qwen.linked_models][:1] == [
        ("Qwen/Qwen2-VL-7B-Instruct", 8_291_375_616)
    ]
    internvl = pages["2412.05271"]
    assert internvl.project_page == "https://internvl.github.io/blog/2024-12-05-InternVL-2.5/"
    assert len(internvl.linked_models) == 7
    missing = pages["2609.39403"]
    assert missing.status == "not_found"
    assert missing.status_reason is not None and missing.status_reason.startswith(
        "no paper page: HTTP 404: Paper not found."
    )
    assert pages["hep-th/9901001"].status == "not_found"
    assert pages["not-an-id"].status_reason == "invalid arXiv ID; never sent"
    assert sorted(r.path for r in rig.requests()) == [
        "/api/papers/2409.12191",
        "/api/papers/2412.05271",
        "/api/papers/2609.39403",
    ]


def test_paper_page_with_wrong_types_is_an_error_naming_the_field(rig: Rig) -> None:
    rig.fault("api", name="wrong_types")
    page = rig.resolver().resolve_paper_pages(["2409.12191"])["2409.12191"]
    assert page.status == "error"
    assert page.status_reason is not None and "field 'upvotes'" in page.status_reason


# -- wire-level cases on httpx.MockTransport ----------------------------------------------
@pytest.fixture
def store(tmp_path: Path) -> Iterator[RawStore]:
    with RawStore(tmp_path / "raw") as opened:
        yield opened


def mock_resolver(
    store: RawStore, handler: Callable[[httpx.Request], httpx.Response], **changes: object
) -> tuple[HubResolver, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def recording(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    settings = Settings(hf_endpoint="https://hub.test").replace(**{**FAST, **changes})
    resolver = HubResolver(settings, store, httpx.MockTransport(recording), sleep=lambda _: None)
    return resolver, seen


MODEL_BODY = b'{"_id":"x","id":"new-org/model-7B","downloads":5}'


def test_redirect_without_query_keeps_the_expand_parameters(store: RawStore) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/models/old-org/model-7B":
            return httpx.Response(301, headers={"location": "/api/models/new-org/model-7B"})
        return httpx.Response(200, content=MODEL_BODY)

    resolver, seen = mock_resolver(store, handler)
    record = resolve_one(resolver, ("model", "old-org/model-7B"))
    assert (record.status, record.repo_id, record.params_source) == (
        "ok",
        "new-org/model-7B",
        "name",
    )
    assert seen[1].url.params.get_list("expand[]") == seen[0].url.params.get_list("expand[]") != []


def test_redirect_to_another_host_is_refused(store: RawStore) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(307, headers={"location": "https://elsewhere.test/api/models/x/y"})

    resolver, seen = mock_resolver(store, handler, hf_token=TOKEN)
    record = resolve_one(resolver, ("model", "old-org/model"))
    assert (record.status, record.status_reason) == (
        "error",
        "redirect to another host refused: elsewhere.test",
    )
    assert [r.url.host for r in seen] == ["hub.test"]


def test_gated_403_is_not_visible_not_an_error(store: RawStore) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        headers = {
            "x-error-code": "GatedRepo",
            "x-error-message": "Access to model x/y is restricted.",
        }
        return httpx.Response(403, headers=headers)

    resolver, seen = mock_resolver(store, handler)
    record = resolve_one(resolver, ("model", "x/y"))
    assert record.status == "not_found"
    assert record.status_reason == (
        "not found or not visible: HTTP 403 GatedRepo: Access to model x/y is restricted."
    )
    assert len(seen) == 1


def test_streamed_body_without_content_length_is_capped(store: RawStore) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=iter([b"[" + b"0," * 2000, b"0]"]))

    resolver, _ = mock_resolver(store, handler, max_response_bytes=1000)
    record = resolve_one(resolver, ("model", "x/y"))
    assert record.status == "error"
    assert record.status_reason is not None and "max_response_bytes=1000" in record.status_reason


@pytest.mark.parametrize(
    ("body", "field_name"),
    [
        (b'{"id":"x/y","private":"no"}', "private"),
        (b'{"id":"x/y","gated":"sometimes"}', "gated"),
        (b'{"id":"x/y","createdAt":"yesterday"}', "createdAt"),
        (b'{"id":"x/y","createdAt":1700000000}', "createdAt"),
        (b'{"id":"x/y","tags":["ok", 3]}', "tags.1"),
        (b'{"id":"x/y","cardData":{"license":7}}', "cardData.license"),
        (b'{"id":"x/y","gguf":{"total":"big"}}', "gguf.total"),
        (b'{"id":7}', "id"),
        (b"[1, 2]", "(body)"),
    ],
)
def test_wrong_types_are_errors_naming_the_field(
    store: RawStore, body: bytes, field_name: str
) -> None:
    resolver, seen = mock_resolver(store, lambda _: httpx.Response(200, content=body))
    record = resolve_one(resolver, ("model", "x/y"))
    assert record.status == "error"
    assert record.status_reason is not None
    assert f"field '{field_name}'" in record.status_reason
    assert len(seen) == 1


# -- hostile or broken answers (HF_ENDPOINT may be a third-party mirror) -------------------
NIGHT: list[RepoRef] = [
    QWEN,
    ("model", "microsoft/Florence-2-large"),
    ("model", "01-ai/Yi-VL-34B"),
    ("dataset", "huggingface/documentation-images"),
    ("collection", INTERNVL),
]
JSON = {"content-type": "application/json"}


def every_count(record: HubRepoRecord | PaperPageRecord) -> list[int]:
    if isinstance(record, HubRepoRecord):
        counts = [record.downloads, record.likes, record.params_total, record.upvotes]
        counts += [count for _, count in record.params_by_dtype]
    else:
        counts = [record.upvotes, record.github_stars, record.num_total_models]
        for model in record.linked_models:
            counts += [model.params_total, model.downloads, model.likes]
    return [count for count in counts if count is not None]


@pytest.mark.parametrize("hostile", ["traversal", "absolute", "url"])
def test_a_hostile_id_costs_only_the_entity_it_touches(rig: Rig, hostile: str) -> None:
    """A mirror answering Qwen with `"id": "../../../../etc/passwd"`: Qwen gets an error
    naming the field, the answer is not marked good, the others are untouched; a clean
    rerun on the same raw store is fully ok and asks again only about Qwen."""
    rig.fault("api", name=f"hostile_id:{hostile}", match="Qwen2-VL-72B")
    records = rig.resolver().resolve_repos(NIGHT)
    bad = records[QWEN]
    assert (bad.status, bad.repo_id, bad.downloads) == ("error", QWEN[1], None)
    assert (bad.status_reason or "").startswith("invalid response: field 'id': ")
    assert {r.status for ref, r in records.items() if ref != QWEN} == {"ok"}
    keys = {record.repo_id for record in records.values()}
    assert not any("passwd" in key or "://" in key for key in keys)
    assert rig.store.answer("hub", "model", QWEN[1]) is None  # kept for the audit, not marked
    assert [r.status for r in rig.store.responses("hub") if "Qwen2-VL-72B" in r.url] == [200]
    rig.sandbox.clear_faults()
    rig.sandbox.reset_log()
    rerun = rig.resolver().resolve_repos(NIGHT)
    assert {r.status for r in rerun.values()} == {"ok"}
    assert rerun[QWEN].repo_id == QWEN[1]
    assert [r.path for r in rig.requests()] == ["/api/models/Qwen/Qwen2-VL-72B"]


def test_a_collection_listing_hostile_items_keeps_only_its_valid_ones(rig: Rig) -> None:
    rig.fault("api", name="hostile_id:traversal", match="internvl-25")
    records = rig.resolver().resolve_repos([("collection", INTERNVL)])
    collection = records[("collection", INTERNVL)]
    assert (collection.status, collection.items) == ("ok", ())  # every item's id replaced
    assert (collection.status_reason or "").startswith(
        "field 'items.0.id' left out: '../../../../etc/passwd' is not an arXiv ID; "
        "field 'items.1.id' left out: '../../../../etc/passwd' is not a Hub repo ID"
    )
    assert list(records) == [("collection", INTERNVL)]  # nothing hostile looked up, or keyed
    assert [r.path for r in rig.requests()] == [f"/api/collections/{INTERNVL}"]


def test_a_hostile_id_with_a_last_good_answer_is_stale(rig: Rig) -> None:
    first = resolve_one(rig.resolver(), QWEN)
    rig.fault("api", name="hostile_id:absolute")
    stale = resolve_one(rig.resolver(refresh=RefreshPolicy.REFRESH), QWEN)
    assert (stale.status, stale.repo_id, stale.downloads) == ("stale", QWEN[1], first.downloads)
    assert (stale.status_reason or "").startswith(
        "invalid response: field 'id': '/etc/passwd' is not a Hub repo ID; last good answer from "
    )


def test_a_hostile_paper_page_costs_only_that_page(rig: Rig) -> None:
    rig.fault("api", name="hostile_id:traversal", match="2409.12191")
    pages = rig.resolver().resolve_paper_pages(["2409.12191", "2412.05271"])
    assert pages["2409.12191"].status == "error"
    assert "field 'id'" in (pages["2409.12191"].status_reason or "")
    assert pages["2412.05271"].status == "ok"
    assert rig.store.answer("hub", "paper", "2409.12191") is None
    assert rig.store.answer("hub", "paper", "../../../../etc/passwd") is None


def test_an_answer_about_another_repo_is_not_taken(rig: Rig) -> None:
    other = b'{"id": "evil-org/other-model", "downloads": 1}'
    rig.fault("status", status=200, body=other, headers=JSON, match="Qwen2-VL-72B")
    record = resolve_one(rig.resolver(), QWEN)
    assert record.status == "error"
    assert "is neither the ID asked ('Qwen/Qwen2-VL-72B')" in (record.status_reason or "")
    assert rig.store.answer("hub", "model", "evil-org/other-model") is None


def test_counts_past_int64_cost_only_their_fields(rig: Rig) -> None:
    """Counts past int64 once failed the whole night while the tables were built, and
    every rerun within the time-to-live failed again on the stored answer."""
    rig.fault("api", name="huge_ints", times=-1)
    records = rig.resolver().resolve_repos(NIGHT)
    pages = rig.resolver().resolve_paper_pages(["2409.12191", "2412.05271"])
    everything: list[HubRepoRecord | PaperPageRecord] = [*records.values(), *pages.values()]
    assert {r.status for r in everything} == {"ok"}
    qwen = records[QWEN]
    assert (qwen.downloads, qwen.likes) == (None, None)
    assert qwen.params_source == "name"  # safetensors' counts overflow: as if absent
    reason = qwen.status_reason or ""
    for field_name in ("downloads", "likes", "safetensors.total", "safetensors.parameters"):
        assert f"field '{field_name}' left out: " in reason
    assert "field 'upvotes' left out" in (records[("collection", INTERNVL)].status_reason or "")
    assert "linkedModels.0.numParameters" in (pages["2412.05271"].status_reason or "")
    for record in everything:
        assert all(0 <= count <= 2**63 - 1 for count in every_count(record)), record
    # Stored as good, and read back by the same rules: the rerun from the store is the same.
    rig.sandbox.clear_faults()
    again = rig.resolver()
    assert again.resolve_repos(NIGHT) == records
    assert again.resolve_paper_pages(["2409.12191", "2412.05271"]) == pages
    assert again.stats.requests == 0


def test_a_case_variant_is_the_repo_asked(store: RawStore) -> None:
    body = b'{"id": "Qwen/Qwen2-VL-72B", "downloads": 5}'
    resolver, _seen = mock_resolver(store, lambda _: httpx.Response(200, content=body))
    record = resolve_one(resolver, ("model", "qwen/qwen2-vl-72b"))
    assert (record.status, record.requested_id, record.repo_id) == (
        "ok",
        "qwen/qwen2-vl-72b",
        "Qwen/Qwen2-VL-72B",
    )
    assert store.answer("hub", "model", "Qwen/Qwen2-VL-72B") is not None


@pytest.mark.parametrize(
    ("final_id", "status"),
    [("new-org/model-7B", "ok"), ("third-org/model-7B", "error")],
)
def test_a_renamed_repo_is_the_one_redirected_to(
    store: RawStore, final_id: str, status: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/models/old-org/model-7B":
            return httpx.Response(307, headers={"location": "/api/models/new-org/model-7B"})
        return httpx.Response(200, content=f'{{"id": "{final_id}"}}'.encode())

    resolver, _ = mock_resolver(store, handler)
    record = resolve_one(resolver, ("model", "old-org/model-7B"))
    assert record.status == status
    if status == "error":
        assert "nor the one the Hub redirected to" in (record.status_reason or "")
        assert store.answer("hub", "model", "old-org/model-7B") is None


# -- stored answers are read by tonight's rules ------------------------------------------
def plant(rig: Rig, kind: str, entity_id: str, url: str, body: bytes) -> StoredResponse:
    """An answer marked good by an older version of the pipeline, before tonight's rules."""
    response = rig.store.record(
        api="hub", endpoint=f"{kind}s", url=url, status=200, body=body, headers=JSON
    )
    rig.store.mark(response, kind, [entity_id], "ok")
    return response


QWEN_URL = "http://127.0.0.1:1/api/models/Qwen/Qwen2-VL-72B"
PASSWD = b'{"id": "../../../../etc/passwd", "downloads": 3}'


def test_a_stored_answer_that_no_longer_validates_is_asked_again(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    planted = plant(rig, "model", QWEN[1], QWEN_URL, PASSWD)
    resolver = rig.resolver()
    record = resolve_one(resolver, QWEN)  # within its time-to-live, yet not trusted
    assert (record.status, record.repo_id) == ("ok", QWEN[1])
    assert len(rig.requests()) == 1
    assert resolver.stats.from_store == 0
    assert f"stored answer {planted.body_path} unusable, not trusted" in caplog.text


def test_offline_never_trusts_a_stored_answer_that_no_longer_validates(rig: Rig) -> None:
    plant(rig, "model", QWEN[1], QWEN_URL, PASSWD)
    resolver = rig.resolver(refresh=RefreshPolicy.OFFLINE)
    record = resolve_one(resolver, QWEN)
    assert (record.status, record.status_reason) == (
        "error",
        "offline: no usable answer in the raw store",
    )
    assert rig.requests() == [] and resolver.stats.from_store == 0


def test_a_last_good_answer_that_no_longer_validates_is_no_fallback(rig: Rig) -> None:
    plant(rig, "model", QWEN[1], QWEN_URL, PASSWD)
    rig.fault("status", status=503, times=-1)
    record = resolve_one(rig.resolver(refresh=RefreshPolicy.REFRESH, hub_max_attempts=2), QWEN)
    assert (record.status, record.status_reason) == ("error", "HTTP 503 (gave up after 2 attempts)")


def two_good_answers(rig: Rig) -> tuple[HubRepoRecord, StoredResponse]:
    """Qwen answered once by the Hub, then again (a later night) with a body of its own,
    which is then edited on disk: (the first night's record, the edited answer)."""
    first = resolve_one(rig.resolver(), QWEN)
    answer = rig.store.answer("hub", "model", QWEN[1])
    assert answer is not None
    later = plant(rig, "model", QWEN[1], QWEN_URL, answer.response.read() + b" ")
    later.body_path.write_bytes(later.body_path.read_bytes().replace(b"Qwen", b"Qwem", 1))
    rig.sandbox.reset_log()
    return first, later


def test_a_tampered_body_is_asked_again(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    _, edited = two_good_answers(rig)
    resolver = rig.resolver()
    record = resolve_one(resolver, QWEN)
    assert record.status == "ok"
    assert len(rig.requests()) == 1 and resolver.stats.from_store == 0
    assert f"stored answer {edited.body_path} unusable" in caplog.text
    assert "does not match its record" in caplog.text


def test_offline_falls_back_past_a_tampered_body_on_an_older_good_one(rig: Rig) -> None:
    first, _ = two_good_answers(rig)
    resolver = rig.resolver(refresh=RefreshPolicy.OFFLINE)
    record = resolve_one(resolver, QWEN)
    assert (record.status, record.downloads, record.data_fetched_at) == (
        "stale",
        first.downloads,
        first.data_fetched_at,
    )
    assert (record.status_reason or "").startswith(
        "offline: no usable answer in the raw store; last good answer from "
    )
    assert rig.requests() == [] and resolver.stats.from_store == 0


def test_a_failed_lookup_falls_back_past_a_tampered_body(rig: Rig) -> None:
    first, _ = two_good_answers(rig)
    rig.fault("status", status=503, times=-1)
    record = resolve_one(rig.resolver(refresh=RefreshPolicy.REFRESH, hub_max_attempts=2), QWEN)
    assert (record.status, record.params_total) == ("stale", first.params_total)
    assert record.data_fetched_at == first.data_fetched_at


def test_offline_on_an_empty_store_answers_nothing_from_it(rig: Rig) -> None:
    """`from_store` counts the entities the store answered, not the rows it could not."""
    resolver = rig.resolver(refresh=RefreshPolicy.OFFLINE)
    records = resolver.resolve_repos(MIXED)
    pages = resolver.resolve_paper_pages(["2409.12191"])
    assert {r.status for r in records.values()} == {pages["2409.12191"].status} == {"error"}
    assert (resolver.stats.from_store, resolver.stats.requests) == (0, 0)
    filled = rig.resolver()
    filled.resolve_repos(MIXED)
    filled.resolve_paper_pages(["2409.12191"])
    again = rig.resolver(refresh=RefreshPolicy.OFFLINE)
    again.resolve_repos(MIXED)
    again.resolve_paper_pages(["2409.12191"])
    # Every entity answered once, from the store: one request each, but the rename's 307.
    assert again.stats.from_store == filled.stats.requests - 1 > len(MIXED)


# -- the rate-limit headers, as the Hub (or a mirror) may send them -----------------------
@pytest.mark.parametrize(
    ("headers", "waited", "message"),
    [
        ({"ratelimit": '"api";r=0;t=30'}, 30, "hub: quota spent (0 left), waiting 30 s"),
        (
            {
                "ratelimit": '"api";r=0;t=30',
                "ratelimit-policy": '"fixed window";"api";q=500;w=300',
            },
            30,
            "hub: quota spent (0 of 500 left), waiting 30 s for the window to reset",
        ),
        (  # several policies: the "api" one counts
            {"ratelimit": '"resolvers";r=10;t=5, "api";r=0;t=42'},
            42,
            "hub: quota spent (0 left), waiting 42 s",
        ),
        # t=0: at least a second, or the retry is refused again
        ({"ratelimit": '"api";r=0;t=0'}, 1, "hub: quota spent (0 left), waiting 1 s"),
        (
            {"retry-after": "7"},
            7,
            "hub: HTTP 429 rate limited, waiting 7 s as its Retry-After asks",
        ),
        # Calls left: not refused for the quota, so its reset says nothing: back off.
        ({"ratelimit": '"api";r=3;t=200'}, None, None),
        ({"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"}, None, None),
        ({"ratelimit": "garbage"}, None, None),
    ],
)
def test_429_header_forms(
    store: RawStore,
    caplog: pytest.LogCaptureFixture,
    headers: dict[str, str],
    waited: float | None,
    message: str | None,
) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.resolve.hub")
    answers = iter([httpx.Response(429, headers=headers), httpx.Response(200, content=MODEL_BODY)])
    settings = Settings(hf_endpoint="https://hub.test").replace(
        **FAST, hub_backoff_seconds=2.0, hub_backoff_max_seconds=60.0
    )
    sleeps: list[float] = []
    resolver = HubResolver(
        settings, store, httpx.MockTransport(lambda _: next(answers)), sleep=sleeps.append
    )
    record = resolve_one(resolver, ("model", "new-org/model-7B"))
    assert record.status == "ok"
    [slept] = sleeps
    if waited is None:
        assert 1.0 <= slept <= 2.0  # the first backoff, with jitter
        assert not any(m.startswith("hub: ") for m in caplog.messages)
    else:
        assert slept == pytest.approx(waited, abs=0.5)
        assert message is not None
        assert any(m.startswith(message) for m in caplog.messages), caplog.messages
