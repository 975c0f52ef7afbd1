"""Hugging Face Hub resolution: models, datasets, spaces, collections and paper pages.

One `HubResolver` per run. Each distinct entity is asked at most once per run, and not at
all when the raw store holds an answer the refresh policy allows (`Settings.refresh`,
`RawStore.reusable_answer`). Requests go out on `settings.hub_concurrency` worker threads
through one `httpx.Client` (`transport` is the testing seam, as in httpx's own design).
Parsing and validating the answers is `hub_bodies` (pure); this module is the edge: HTTP,
the raw store, retries and waits.

Endpoints (reference: docs Part 2):
- `GET /api/models/{id}?expand[]=...` asking only for what a `HubRepoRecord` keeps: with
  `expand` the Hub leaves out siblings, config and the rest, a fraction of the bytes.
- `GET /api/datasets/{id}`, `GET /api/spaces/{id}`, likewise expanded.
- `GET /api/collections/{namespace}/{slug-id}`: its model, dataset and space items are
  looked up too, each under its own `(type, id)` ref.
- `GET /api/papers/{arxiv_id}` for paper pages. Chosen over `/api/models?filter=arxiv:ID`
  and `/api/arxiv/{id}/repos` because one call gives what the other two give only in part:
  upvotes, the GitHub repo and its stars, the project page, the models citing the paper
  *with their parameter counts* (`linkedModels[].numParameters`) and how many there are in
  all (`numTotalModels`). The listing endpoints return neither parameter counts nor paper
  fields, need pagination, and `/api/arxiv/.../repos` has no documented or captured body.
  A 404 there is normal (nobody cited the paper on the Hub) and recorded as not_found.

What counts as an answer: 200 with a body that validates (ok: its shape, its canonical ID,
see `hub_bodies`); 401, 404, and 403 for gated or disabled repos (not_found: the Hub
answers 401 anonymously for a missing repo and hides private ones the same way). Those are
never retried. 408, 5xx, timeouts, connection failures, truncated or non-JSON bodies and
429s without a reset time are retried with exponential backoff and jitter, each sleep
capped by `hub_backoff_max_seconds`. An answer that does not validate is kept in the raw
store for the audit but never marked as an answer, and answers read back from the store
are validated again by tonight's rules. When tonight's lookup fails and the store has an
earlier good answer, the record carries it with status `stale`.

Rate limits (reference §2.8: fixed 5-minute windows, 500 API calls each for an anonymous
caller, shared by every job on the same token or address). Every Hub answer says in its
`RateLimit` header how many calls the window has left and when it resets. One gate holds
every worker thread: when an answer says none are left, or a 429 says when to come back
(`RateLimit`'s t, else an integer `Retry-After`), no thread sends until then, and the wait
is logged once. Such waits are bounded by the run's deadline (`Deadline`, from
`Settings.run_deadline_seconds`), not by a cap per wait: a spent quota is waited out
however long its window has to run, unless the wait would end past the deadline; then it
is not taken, and every entity not yet answered falls back on its last good answer
(stale) or is an error, with a reason naming the deadline.

There is no per-run request budget. One existed to stay under the anonymous quota
without reading it; now the quota is read and waited out, and a budget would only turn
into errors entities that waiting would answer. What bounds a night is its deadline.
Never-asked entities and the oldest answers go first, so that a night cut short by its
deadline leaves the next one the rest rather than the same first entities every night.

The token (`HF_TOKEN`) is sent as a bearer header and nowhere else: the raw store keeps
response headers only, and every reason written to a record or a log is scrubbed of it.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Literal, TypeVar
from urllib.parse import quote, unquote, urlsplit

import httpx

from pipeline.config import RefreshPolicy, Settings
from pipeline.links.identify import parse_arxiv_id
from pipeline.records import (
    GOOD,
    ApiStats,
    HubRepoRecord,
    PaperPageRecord,
    RepoRef,
    RepoType,
    Status,
)
from pipeline.resolve.common import (
    CONNECTION_FAILURES_TO_OPEN,
    Breaker,
    Deadline,
    LookupFailure,
    PermanentFailure,
    Progress,
    ProgressCallback,
    RateLimited,
    ServiceUnreachable,
    TooLarge,
    TransientFailure,
    equal_jitter_seconds,
    header_int,
    last_good_answer,
    read_capped,
    redact,
    redact_bytes,
    stale_reason,
    unexpected,
)
from pipeline.resolve.hub_bodies import (
    Body,
    BodyT,
    CollectionBody,
    DatasetBody,
    ModelBody,
    PaperBody,
    Resolution,
    SpaceBody,
    is_sendable_repo_id,
    paper_record,
    repo_record,
    validate_answer,
)
from pipeline.resolve.rawstore import Outcome, RawStore, RawStoreError, StoredAnswer, StoredResponse

logger = logging.getLogger(__name__)


_K = TypeVar("_K")
_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class _Endpoint:
    kind: str
    """The entity kind, as the raw store's `answers` name it."""
    collection: str
    """The path segment after `/api/`."""
    expand: tuple[str, ...] = ()


# Exactly the properties a record keeps (reference §2.1; cardData carries the licence and
# the base model, config the quantization_config that says how weights are packed).
_MODEL_EXPAND = (
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
)
_DATASET_EXPAND = (
    "author",
    "cardData",
    "createdAt",
    "downloads",
    "gated",
    "lastModified",
    "likes",
    "private",
    "tags",
)
_SPACE_EXPAND = (
    "author",
    "cardData",
    "createdAt",
    "lastModified",
    "likes",
    "private",
    "sdk",
    "tags",
)
_ENDPOINTS: dict[str, _Endpoint] = {
    "model": _Endpoint("model", "models", _MODEL_EXPAND),
    "dataset": _Endpoint("dataset", "datasets", _DATASET_EXPAND),
    "space": _Endpoint("space", "spaces", _SPACE_EXPAND),
    "collection": _Endpoint("collection", "collections"),
    "paper": _Endpoint("paper", "papers"),
}
_BODIES: dict[str, type[Body]] = {
    "model": ModelBody,
    "dataset": DatasetBody,
    "space": SpaceBody,
    "collection": CollectionBody,
}

_API = "hub"
TOKEN_PLACEHOLDER = "[HF_TOKEN]"
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 5
"""A rename is one hop; a chain of renames a few. More is a misconfigured server."""
_REASON_MAX_CHARS = 200
_SAME_WINDOW_SECONDS = 1.5
"""How far apart two answers' estimates of their window's end may be and still be of one
window: `t` is whole seconds, plus the time between the answers."""
_OFFLINE = "offline: no usable answer in the raw store"
_EXPANDED_ITEM_TYPES: dict[str, RepoType] = {
    "model": "model",
    "dataset": "dataset",
    "space": "space",
}
"""Collection items looked up in turn (papers are not repos; nested collections are not
followed, so that one collection cannot pull in an unbounded graph)."""


@dataclass(frozen=True, slots=True)
class _Answer:
    outcome: Literal["ok", "not_found", "redirect"]
    response: StoredResponse
    body: bytes = b""
    reason: str | None = None
    location: str | None = None


@dataclass(frozen=True, slots=True)
class _Quota:
    """What one answer's rate-limit headers say (reference §2.8)."""

    remaining: int | None = None
    """Calls the window has left (`RateLimit`'s r)."""
    reset_seconds: float | None = None
    """Seconds until the window resets (`RateLimit`'s t)."""
    quota: int | None = None
    """Calls a window allows (`RateLimit-Policy`'s q)."""
    window_seconds: int | None = None
    """How long a window lasts (`RateLimit-Policy`'s w)."""

    @classmethod
    def of(cls, headers: httpx.Headers) -> _Quota:
        remaining, reset_seconds = _parse_ratelimit(headers.get("ratelimit"))
        return cls(remaining, reset_seconds, *_parse_policy(headers.get("ratelimit-policy")))


class _QuotaGate:
    """Every Hub request of the run passes here. It keeps count of what the window has left
    (the last `RateLimit` heard, less the requests sent since), so that no request goes out
    that the quota would refuse: when none are left, or a 429 says when to come back, every
    worker thread waits until then. One wait for all, announced once, and taken only when
    it ends before the run's deadline.

    The run's first request goes alone: until its answer says what the window has left
    (the quota may be nearly spent by another job), a burst of every thread could overrun
    it. When a window resets, its whole quota (`RateLimit-Policy`'s q) is left again."""

    def __init__(
        self, deadline: Deadline, sleep: Callable[[float], None], clock: Callable[[], float]
    ) -> None:
        self._deadline = deadline
        self._sleep = sleep
        self._clock = clock
        self._cond = threading.Condition()
        self._in_flight = 0
        self._first_in_flight = False
        self._heard = False
        """Whether any request of the run has been answered (or failed)."""
        self._left: int | None = None
        """Calls left in the window, as far as we know; None when we do not."""
        self._reset_at = 0.0
        self._quota: int | None = None
        self._hold_until = 0.0
        """A 429's wait, when it said how long but not that the window is spent."""
        self._hold_why = ("", "")
        self._changes = 0
        self._announced_until = float("-inf")

    def enter(self) -> None:
        """Wait until a request may go, and count it as sent; `PermanentFailure` when that
        is past the run's deadline."""
        while True:
            with self._cond:
                now = self._clock()
                spent = self._left is not None and self._left <= 0
                if self._first_in_flight or (spent and now >= self._reset_at and self._in_flight):
                    # Answers on their way will say what the (new) window has left.
                    self._cond.wait()
                    continue
                if spent and now >= self._reset_at:
                    self._left = self._quota  # a new window, and none of ours in it yet
                resume_at, what, until = self._resume()
                if resume_at <= now:
                    self._in_flight += 1
                    self._first_in_flight = not self._heard
                    if self._left is not None:
                        self._left -= 1
                    return
                delay = resume_at - now
                changes = self._changes
                # One wait, announced once: threads hear of one reset a moment apart, and
                # answers of one window move its end by a second or so.
                announce = resume_at > self._announced_until + _SAME_WINDOW_SECONDS
                if announce:
                    self._announced_until = resume_at
            if not self._deadline.allows(delay):
                refusal = self._deadline.refusal(delay)
                if announce:
                    logger.warning(
                        "hub: %s; not waiting: %s; what is not answered yet falls back on its"
                        " last good answer",
                        what,
                        refusal,
                    )
                raise PermanentFailure(f"rate limited: {what}; not asked: {refusal}")
            if announce:
                logger.info("hub: %s, waiting %d s %s", what, math.ceil(delay), until)
            self._sleep(delay)
            with self._cond:
                if self._changes == changes:
                    # Waited out; also when `sleep` is a test double that moves no clock. A
                    # later reset heard meanwhile by another thread is waited next round.
                    self._hold_until = 0.0
                    if self._left is not None and self._left <= 0:
                        self._left = self._quota

    def leave(self, heard: _Quota) -> None:
        """A request is over (answered or not); `heard`: its answer's rate-limit headers."""
        with self._cond:
            self._in_flight -= 1
            self._heard = True
            self._first_in_flight = False
            self._cond.notify_all()
            if heard.remaining is None or heard.reset_seconds is None:
                return
            self._quota = heard.quota if heard.quota is not None else self._quota
            # Requests still in flight may or may not be counted in `remaining`: assume not.
            left = heard.remaining - self._in_flight
            reset_at = self._clock() + heard.reset_seconds
            # Answers of one window put its end within a second of each other (`t` is whole
            # seconds); the next window ends a whole window later.
            tolerance = min(_SAME_WINDOW_SECONDS, (heard.window_seconds or 3600) / 2)
            if self._left is None or reset_at > self._reset_at + tolerance:
                self._left, self._reset_at = left, reset_at  # the first word of a new window
            elif reset_at >= self._reset_at - tolerance:
                self._left = min(self._left, left)  # answers arrive out of order
                self._reset_at = max(self._reset_at, reset_at)
            else:
                return  # from a window already over: it says nothing of this one
            self._changes += 1

    def hold(self, seconds: float, what: str, until: str) -> None:
        """No request for `seconds` from now (a 429 said so). `what` is waited out and
        `until` when, for the log: "HTTP 429 rate limited", "as its Retry-After asks"."""
        with self._cond:
            hold_until = self._clock() + seconds
            if hold_until > self._hold_until:
                self._hold_until = hold_until
                self._hold_why = (what, until)
                self._changes += 1

    def _resume(self) -> tuple[float, str, str]:
        """When the next request may go, what it waits for, and until when (for the log)."""
        spent = self._left is not None and self._left <= 0
        if spent and self._reset_at + _SAME_WINDOW_SECONDS >= self._hold_until:
            resume_at = max(self._reset_at, self._hold_until)
            return resume_at, _quota_spent(self._quota), "for the window to reset"
        return self._hold_until, *self._hold_why


class HubResolver:
    """Resolves Hub repos and paper pages; one instance per run, shared by all tasks."""

    def __init__(
        self,
        settings: Settings,
        store: RawStore,
        transport: httpx.BaseTransport | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        deadline: Deadline | None = None,
    ) -> None:
        """`deadline` is the run's, shared with the other resolvers; by default one of
        `settings.run_deadline_seconds` from now."""
        self.settings = settings
        self.store = store
        self.transport = transport
        self.stats = ApiStats(api="hub")
        self._sleep = sleep
        self._stats_lock = threading.Lock()
        self._memo_lock = threading.Lock()
        self._repos: dict[RepoRef, HubRepoRecord] = {}
        self._papers: dict[str, PaperPageRecord] = {}
        self._deadline = deadline or Deadline(settings.run_deadline_seconds, clock)
        self._gate = _QuotaGate(self._deadline, sleep, clock)
        # Repos and paper pages may be resolved at once (two pools): one bound for both.
        self._slots = threading.BoundedSemaphore(max(1, settings.hub_concurrency))
        self._breaker = Breaker("the Hugging Face Hub", CONNECTION_FAILURES_TO_OPEN)
        self._attempts = max(1, settings.hub_max_attempts)

    # -- public ------------------------------------------------------------------------
    def resolve_repos(
        self, refs: Iterable[RepoRef], on_progress: ProgressCallback | None = None
    ) -> dict[RepoRef, HubRepoRecord]:
        """One record per distinct ref given; collections' model items are resolved too and
        included under their own ('model', id) refs (dataset and space items likewise)."""
        started = time.monotonic()
        wanted = list(dict.fromkeys(refs))
        results: dict[RepoRef, HubRepoRecord] = {}
        progress = Progress(on_progress, len(wanted))
        with self._client() as client:
            self._resolve_refs(client, wanted, results, progress)
            items = [ref for ref in _collection_item_refs(results.values()) if ref not in results]
            progress.total += len(items)
            self._resolve_refs(client, items, results, progress)
        self._add_seconds(time.monotonic() - started)
        return {ref: results[ref] for ref in [*wanted, *items]}  # in the order asked

    def resolve_paper_pages(
        self, arxiv_ids: Iterable[str], on_progress: ProgressCallback | None = None
    ) -> dict[str, PaperPageRecord]:
        """One record per distinct arXiv ID given (keyed as given; the record's ID is
        canonical, without version)."""
        started = time.monotonic()
        given = list(dict.fromkeys(arxiv_ids))
        progress = Progress(on_progress, len(given))
        results: dict[str, PaperPageRecord] = {}
        by_canonical: dict[str, list[str]] = {}
        for text in given:
            parsed = parse_arxiv_id(text)
            if parsed is None:
                results[text] = PaperPageRecord(
                    arxiv_id=text, status="not_found", status_reason="invalid arXiv ID; never sent"
                )
            elif "/" in parsed[0]:
                # The Hub indexes papers by new-style IDs only (its index accepts YYMM.NNNNN).
                results[text] = PaperPageRecord(
                    arxiv_id=parsed[0],
                    status="not_found",
                    status_reason="old-style arXiv ID: the Hub has no paper pages for these;"
                    " never sent",
                )
            else:
                by_canonical.setdefault(parsed[0], []).append(text)
        if results:
            progress.advance(len(results))
        with self._client() as client:
            ordered = self._stalest_first(list(by_canonical), lambda i: (_ENDPOINTS["paper"], i))
            for canonical, record in self._run_pool(client, ordered, self._resolve_paper):
                for text in by_canonical[canonical]:
                    results[text] = record
                progress.advance(len(by_canonical[canonical]))
        self._add_seconds(time.monotonic() - started)
        return {text: results[text] for text in given}  # in the order asked

    # -- orchestration -----------------------------------------------------------------
    @contextmanager
    def _client(self) -> Iterator[httpx.Client]:
        headers = {"user-agent": self.settings.user_agent, "accept": "application/json"}
        if self.settings.hf_token:
            headers["authorization"] = f"Bearer {self.settings.hf_token}"
        concurrency = max(1, self.settings.hub_concurrency)
        with httpx.Client(
            base_url=self.settings.hf_endpoint,
            headers=headers,
            timeout=httpx.Timeout(self.settings.hub_timeout_seconds),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            transport=self.transport,
            follow_redirects=False,  # followed by hand: relative, same host, capped, loops caught
        ) as client:
            yield client

    def _run_pool(
        self,
        client: httpx.Client,
        keys: list[_K],
        work: Callable[[httpx.Client, _K], _R],
    ) -> Iterator[tuple[_K, _R]]:
        """(key, result) as each finishes, on at most `hub_concurrency` threads."""
        if not keys:
            return
        workers = max(1, min(self.settings.hub_concurrency, len(keys)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hub") as pool:
            futures = {pool.submit(work, client, key): key for key in keys}
            for future in as_completed(futures):
                yield futures[future], future.result()

    def _resolve_refs(
        self,
        client: httpx.Client,
        refs: list[RepoRef],
        results: dict[RepoRef, HubRepoRecord],
        progress: Progress,
    ) -> None:
        todo: list[RepoRef] = []
        for ref in refs:
            with self._memo_lock:
                known = self._repos.get(ref)
            if known is None:
                todo.append(ref)
            else:
                results[ref] = known
                progress.advance()
        todo = self._stalest_first(todo, lambda ref: (_ENDPOINTS.get(ref[0]), ref[1]))
        for ref, record in self._run_pool(client, todo, self._resolve_repo):
            results[ref] = record
            progress.advance()

    def _stalest_first(
        self, keys: list[_K], entity: Callable[[_K], tuple[_Endpoint | None, str]]
    ) -> list[_K]:
        """Never-answered entities first, then the oldest answers: when the run's deadline
        cuts a night short (a quota spent again and again), the next run goes on where this
        one stopped instead of asking the same first entities every night."""

        def answered_at(key: _K) -> float:
            endpoint, entity_id = entity(key)
            if endpoint is None:
                return float("-inf")
            answer = self.store.answer(_API, endpoint.kind, entity_id)
            return float("-inf") if answer is None else answer.answered_at.timestamp()

        return sorted(keys, key=answered_at)

    def _resolve_repo(self, client: httpx.Client, ref: RepoRef) -> HubRepoRecord:
        repo_type, repo_id = ref
        if repo_type not in _BODIES:
            record = HubRepoRecord(
                repo_type=repo_type,
                requested_id=repo_id,
                repo_id=repo_id,
                status="error",
                status_reason=f"unknown repo type {repo_type!r}",
            )
        elif not is_sendable_repo_id(repo_id):
            record = HubRepoRecord(
                repo_type=repo_type,
                requested_id=repo_id,
                repo_id=repo_id,
                status="not_found",
                status_reason="invalid Hub repo ID; never sent",
            )
        else:
            resolution = self._resolve_entity(
                client, _ENDPOINTS[repo_type], repo_id, _BODIES[repo_type]
            )
            record = repo_record(repo_type, repo_id, resolution)
        self._log_outcome(repo_type, repo_id, record.status, record.status_reason)
        with self._memo_lock:
            self._repos[ref] = record
            if record.repo_id != repo_id:  # a rename: the canonical name is now known too
                self._repos.setdefault(
                    (repo_type, record.repo_id), replace(record, requested_id=record.repo_id)
                )
        return record

    def _resolve_paper(self, client: httpx.Client, arxiv_id: str) -> PaperPageRecord:
        with self._memo_lock:
            known = self._papers.get(arxiv_id)
        if known is not None:
            return known
        resolution = self._resolve_entity(client, _ENDPOINTS["paper"], arxiv_id, PaperBody)
        record = paper_record(arxiv_id, resolution)
        self._log_outcome("paper", arxiv_id, record.status, record.status_reason)
        with self._memo_lock:
            self._papers[arxiv_id] = record
        return record

    # -- one entity: store, then the Hub, then the last good answer ----------------------
    def _resolve_entity(
        self, client: httpx.Client, endpoint: _Endpoint, entity_id: str, body_type: type[BodyT]
    ) -> Resolution[BodyT]:
        stored = self.store.reusable_answer(
            _API, endpoint.kind, entity_id, self.settings.refresh, self._ttl_seconds
        )
        if stored is not None:
            resolution = self._from_store(endpoint, entity_id, stored, body_type)
            if resolution is not None:
                with self._stats_lock:
                    self.stats.from_store += 1
                return resolution
        if self.settings.refresh is RefreshPolicy.OFFLINE:
            return self._fall_back(endpoint, entity_id, body_type, _OFFLINE)
        try:
            answer = self._get(client, endpoint, entity_id)
            if answer.outcome == "not_found":
                self.store.mark(answer.response, endpoint.kind, [entity_id], "not_found")
                return Resolution(
                    "not_found",
                    self._redact(answer.reason or ""),
                    fetched_at=answer.response.fetched_at,
                )
            served = _served_id(endpoint, answer.response.url)
            body = validate_answer(body_type, answer.body, entity_id, served)
        except LookupFailure as exc:
            return self._fall_back(endpoint, entity_id, body_type, self._redact(exc.reason))
        except RawStoreError:
            raise  # the store itself is broken: the whole run must stop and say so
        except Exception as exc:
            # An answer no rule foresaw costs this entity, not the stage: the night goes on.
            logger.warning("hub %s %s: %s", endpoint.kind, entity_id, unexpected(exc))
            logger.debug("hub %s %s: the traceback", endpoint.kind, entity_id, exc_info=True)
            return self._fall_back(endpoint, entity_id, body_type, self._redact(unexpected(exc)))
        ids = list(dict.fromkeys([entity_id, body.canonical_id()]))
        self.store.mark(answer.response, endpoint.kind, ids, "ok")
        return Resolution("ok", body=body, fetched_at=answer.response.fetched_at)

    def _ttl_seconds(self, outcome: Outcome) -> float:
        return self.settings.hub_ttl_seconds

    def _from_store(
        self, endpoint: _Endpoint, entity_id: str, stored: StoredAnswer, body_type: type[BodyT]
    ) -> Resolution[BodyT] | None:
        """The stored answer as tonight's rules read it; None when it is unusable."""
        response = stored.response
        if stored.outcome == "not_found":
            try:
                body = response.read()
            except OSError as exc:
                self._warn_unusable(endpoint, entity_id, stored, exc)
                return None
            reason = _not_found_reason(endpoint.kind, response.status, response.headers, body)
            return Resolution("not_found", self._redact(reason), fetched_at=response.fetched_at)
        parsed = self._load_stored(endpoint, entity_id, stored, body_type)
        if parsed is None:
            return None
        return Resolution("ok", body=parsed, fetched_at=response.fetched_at)

    def _fall_back(
        self, endpoint: _Endpoint, entity_id: str, body_type: type[BodyT], failure: str
    ) -> Resolution[BodyT]:
        """Tonight's lookup failed: the last good answer that still validates (stale), else
        an error."""
        found = last_good_answer(
            self.store,
            _API,
            endpoint.kind,
            entity_id,
            lambda last: self._load_stored(endpoint, entity_id, last, body_type),
        )
        if found is None:
            return Resolution("error", failure)
        body, last = found
        return Resolution(
            "stale", stale_reason(failure, last), body, fetched_at=last.response.fetched_at
        )

    def _load_stored(
        self, endpoint: _Endpoint, entity_id: str, stored: StoredAnswer, body_type: type[BodyT]
    ) -> BodyT | None:
        """A stored good answer, validated again; None (and a warning) when its body is
        gone, not the bytes stored, or rejected by tonight's rules: asked again, or not
        used, never trusted."""
        response = stored.response
        try:
            return validate_answer(
                body_type, response.read(), entity_id, _served_id(endpoint, response.url)
            )
        except (OSError, LookupFailure) as exc:
            self._warn_unusable(endpoint, entity_id, stored, exc)
            return None

    def _warn_unusable(
        self, endpoint: _Endpoint, entity_id: str, stored: StoredAnswer, problem: Exception
    ) -> None:
        logger.warning(
            "hub %s %s: stored answer %s unusable, not trusted: %s",
            endpoint.kind,
            entity_id,
            stored.response.body_path,
            self._redact(str(problem)),
        )

    # -- HTTP --------------------------------------------------------------------------
    def _get(self, client: httpx.Client, endpoint: _Endpoint, entity_id: str) -> _Answer:
        """The answer, after up to `hub_max_attempts` tries; a transient failure is tried
        again after a backoff, or after the quota gate's wait, when it ends in time."""
        path = f"/api/{endpoint.collection}/" + "/".join(
            quote(segment, safe="") for segment in entity_id.split("/")
        )
        params = httpx.QueryParams([("expand[]", prop) for prop in endpoint.expand])
        url = client.build_request("GET", path, params=params).url
        attempt = 1
        while True:
            try:
                return self._get_following_redirects(client, endpoint, url)
            except TransientFailure as exc:
                if attempt >= self._attempts:
                    raise TransientFailure(
                        f"{exc.reason} (gave up after {attempt} attempts)"
                    ) from None
                wait = self._backoff_seconds(exc, attempt)
                if not self._deadline.allows(wait):
                    raise PermanentFailure(
                        f"{exc.reason}; not tried again: {self._deadline.refusal(wait)}"
                    ) from None
                with self._stats_lock:
                    self.stats.retries += 1
                if wait > 0:
                    self._sleep(wait)
                attempt += 1

    def _get_following_redirects(
        self, client: httpx.Client, endpoint: _Endpoint, url: httpx.URL
    ) -> _Answer:
        visited = [url]
        for _hop in range(_MAX_REDIRECTS + 1):
            answer = self._send(client, endpoint, url)
            if answer.outcome != "redirect":
                return answer
            url = self._redirect_target(client, url, answer.location or "")
            if url in visited:
                chain = " -> ".join(u.path for u in [*visited, url])
                raise PermanentFailure(f"redirect loop: {chain}")
            visited.append(url)
        raise PermanentFailure(f"more than {_MAX_REDIRECTS} redirects from {visited[0].path}")

    @staticmethod
    def _redirect_target(client: httpx.Client, url: httpx.URL, location: str) -> httpx.URL:
        target = url.join(location)
        base = client.base_url
        if (target.scheme, target.host, target.port) != (base.scheme, base.host, base.port):
            # Never carry the token to another host (nor count its quota as the Hub's).
            raise PermanentFailure(f"redirect to another host refused: {target.host}")
        if not httpx.URL(location).query:
            # The Hub's rename redirects give the new path only; keep what we asked for.
            target = target.copy_with(query=url.query)
        return target

    def _send(self, client: httpx.Client, endpoint: _Endpoint, url: httpx.URL) -> _Answer:
        try:
            self._breaker.check()
        except ServiceUnreachable as exc:
            raise PermanentFailure(str(exc)) from None
        if self._deadline.remaining_seconds() <= 0:
            raise PermanentFailure(
                f"not asked: the run deadline has passed (run_deadline_seconds="
                f"{self._deadline.seconds:g})"
            )
        with self._slots:
            return self._send_one(client, endpoint, url)

    def _send_one(self, client: httpx.Client, endpoint: _Endpoint, url: httpx.URL) -> _Answer:
        self._gate.enter()
        heard = _Quota()
        answered_status: int | None = None
        started = time.monotonic()
        limit = self.settings.max_response_bytes
        try:
            with client.stream("GET", url) as response:
                answered_status = response.status_code
                heard = _Quota.of(response.headers)
                try:
                    body = read_capped(response, limit)
                except TooLarge as exc:
                    self._count(response.status_code)
                    # The refused body is not kept: only its status and headers, for the audit.
                    self._record(endpoint, response, b"", started)
                    raise PermanentFailure(
                        f"response body larger than max_response_bytes={limit}"
                        f" ({exc.size} bytes or more); refused"
                    ) from None
        except httpx.TimeoutException as exc:
            self._count(0)
            raise TransientFailure(
                f"timed out after {self.settings.hub_timeout_seconds:g} s ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            self._count(0)
            if answered_status is not None:
                # The Hub answered, and the body was cut short: a service that is there.
                self._breaker.success()
                raise TransientFailure(
                    f"HTTP {answered_status} with its body cut short: {type(exc).__name__}: {exc}"
                ) from exc
            reason = f"connection failed: {type(exc).__name__}: {exc}"
            self._breaker.failure(reason)
            raise TransientFailure(reason) from exc
        finally:
            self._gate.leave(heard)
        self._breaker.success()
        status = response.status_code
        self._count(status)
        stored = self._record(endpoint, response, body, started)
        headers = {name.lower(): value for name, value in response.headers.items()}
        if status == 200:
            try:
                json.loads(body)
            except (ValueError, RecursionError):  # a body nested past the parser's depth too
                kind = headers.get("content-type", "no content type")
                raise TransientFailure(
                    f"HTTP 200 with a truncated or non-JSON body ({len(body)} bytes, {kind})"
                ) from None
            return _Answer("ok", stored, body=body)
        if status in _REDIRECT_STATUSES:
            location = headers.get("location")
            if not location:
                raise PermanentFailure(f"HTTP {status} redirect without a Location header")
            return _Answer("redirect", stored, location=location)
        if status == 401 and _token_refused(headers, body):
            # Not an answer about the repo: every lookup tonight gets the same refusal, and
            # calling them all not_found would blank every row.
            raise PermanentFailure(
                f"HTTP 401: the Hub refused the token (HF_TOKEN): {_error_message(headers, body)}"
            )
        if status in (401, 404) or (status == 403 and _hidden(headers)):
            reason = _not_found_reason(endpoint.kind, status, headers, body)
            return _Answer("not_found", stored, reason=reason)
        message = _error_message(headers, body)
        detail = f": {message}" if message else ""
        if status == 429:
            wait = _rate_limit_wait(headers, heard)
            if wait is not None:
                # At least a second: `t` is whole seconds, and a window that resets in 0.4 s
                # says t=0; retrying at once would only be refused again.
                wait = max(wait, 1.0)
                if heard.reset_seconds is not None and not heard.remaining:
                    self._gate.hold(wait, _quota_spent(heard.quota), "for the window to reset")
                else:
                    self._gate.hold(wait, "HTTP 429 rate limited", "as its Retry-After asks")
            raise RateLimited(f"HTTP 429 rate limited{detail}", wait)
        if status == 408 or status >= 500:
            raise TransientFailure(f"HTTP {status}{detail}")
        raise PermanentFailure(f"HTTP {status}{detail}")

    def _record(
        self, endpoint: _Endpoint, response: httpx.Response, body: bytes, started: float
    ) -> StoredResponse:
        headers = {name: self._redact(value) for name, value in response.headers.items()}
        body = redact_bytes(body, self.settings.hf_token, TOKEN_PLACEHOLDER)
        return self.store.record(
            api=_API,
            endpoint=endpoint.collection,
            url=str(response.request.url),
            status=response.status_code,
            body=body,
            headers=headers,
            elapsed_seconds=time.monotonic() - started,
        )

    def _backoff_seconds(self, failure: TransientFailure, attempt: int) -> float:
        if isinstance(failure, RateLimited) and failure.wait_seconds is not None:
            return 0.0  # the quota gate waits, and holds every other worker back too
        return equal_jitter_seconds(
            self.settings.hub_backoff_seconds, self.settings.hub_backoff_max_seconds, attempt
        )

    def _count(self, status: int) -> None:
        with self._stats_lock:
            self.stats.count(status)

    def _add_seconds(self, seconds: float) -> None:
        with self._stats_lock:
            self.stats.seconds += seconds

    def _redact(self, text: str) -> str:
        return redact(text, self.settings.hf_token, TOKEN_PLACEHOLDER)

    def _log_outcome(self, kind: str, entity_id: str, status: Status, reason: str | None) -> None:
        if status in ("error", "stale"):
            logger.warning("hub %s %s: %s: %s", kind, entity_id, status, reason)
        elif status == "not_found":
            logger.info("hub %s %s: not found: %s", kind, entity_id, reason)
        elif reason:  # ok, with values left out of the record
            logger.warning("hub %s %s: ok, but %s", kind, entity_id, reason)


# -- helpers (pure) ------------------------------------------------------------------------
def _served_id(endpoint: _Endpoint, url: str) -> str | None:
    """The entity ID in the URL that gave the answer (after redirects: the new name)."""
    path = urlsplit(url).path
    marker = f"/api/{endpoint.collection}/"
    where = path.find(marker)
    if where < 0:
        return None
    return "/".join(unquote(segment) for segment in path[where + len(marker) :].split("/"))


def _parse_ratelimit(header: str | None) -> tuple[int | None, float | None]:
    """(remaining, seconds to reset) from `RateLimit: "api";r=<n>;t=<s>` (IETF draft 09)."""
    if not header:
        return None, None
    policies = [part.strip() for part in header.split(",")]
    chosen = next((p for p in policies if p.startswith('"api"')), policies[0])
    params = dict(item.strip().split("=", 1) for item in chosen.split(";")[1:] if "=" in item)
    remaining = params.get("r", "")
    reset = params.get("t", "")
    reset_seconds = header_int(reset)
    return header_int(remaining), None if reset_seconds is None else float(reset_seconds)


def _parse_policy(header: str | None) -> tuple[int | None, int | None]:
    """(quota `q`, window `w` in seconds) of the "api" policy in `RateLimit-Policy`, as the
    Hub sends it: `"fixed window";"api";q=500;w=300`."""
    if not header:
        return None, None
    policies = [part.strip() for part in header.split(",")]
    chosen = next((p for p in policies if '"api"' in p), policies[0])
    params = dict(item.strip().split("=", 1) for item in chosen.split(";") if "=" in item)
    quota, window = params.get("q", ""), params.get("w", "")
    return header_int(quota), header_int(window)


def _quota_spent(quota: int | None) -> str:
    return f"quota spent (0 of {quota} left)" if quota is not None else "quota spent (0 left)"


def _rate_limit_wait(headers: Mapping[str, str], heard: _Quota) -> float | None:
    """How long a 429 asks us to wait: `RateLimit`'s t when it says the window is spent
    (r=0, or no r), else an integer `Retry-After`, else nothing (then: back off). A 429
    whose `RateLimit` says calls are left was not refused for the quota: the window's
    reset, minutes away, says nothing of when to try again."""
    if heard.reset_seconds is not None and not heard.remaining:
        return heard.reset_seconds
    retry_after = header_int(headers.get("retry-after"))
    return None if retry_after is None else float(retry_after)


def _hidden(headers: Mapping[str, str]) -> bool:
    """A 403 that means "exists but not visible to us" (gated, disabled), not a refusal."""
    code = headers.get("x-error-code", "")
    message = headers.get("x-error-message", "")
    return code == "GatedRepo" or "disabled" in message.lower()


def _token_refused(headers: Mapping[str, str], body: bytes) -> bool:
    """A 401 about our credentials (an expired or revoked token), not about the repo: the
    Hub says "Invalid credentials in Authorization header", the one 401 huggingface_hub
    does not read as RepoNotFound."""
    return "invalid credentials" in _error_message(headers, body).lower()


def _error_message(headers: Mapping[str, str], body: bytes) -> str:
    message = headers.get("x-error-message", "")
    if not message:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            data = None
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            message = data["error"]
    message = " ".join(message.split())
    if len(message) > _REASON_MAX_CHARS:
        message = message[: _REASON_MAX_CHARS - 3] + "..."
    return message


def _not_found_reason(kind: str, status: int, headers: Mapping[str, str], body: bytes) -> str:
    # The Hub answers 401 for a missing repo when anonymous, and hides private and gated
    # ones the same way: say so, or "Invalid username or password" reads like our fault.
    what = "no paper page" if kind == "paper" else "not found or not visible"
    code = headers.get("x-error-code")
    status_text = f"HTTP {status} {code}" if code else f"HTTP {status}"
    message = _error_message(headers, body)
    return f"{what}: {status_text}: {message}" if message else f"{what}: {status_text}"


def _collection_item_refs(records: Iterable[HubRepoRecord]) -> list[RepoRef]:
    refs: dict[RepoRef, None] = {}
    for record in records:
        if record.repo_type != "collection" or record.status not in GOOD:
            continue
        for item in record.items:
            item_type = _EXPANDED_ITEM_TYPES.get(item.item_type)
            if item_type is not None:
                refs[(item_type, item.item_id)] = None
    return list(refs)
