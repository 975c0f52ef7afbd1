"""Hugging Face Hub resolution: models, datasets, spaces, collections and paper pages.

One `HubResolver` per run. Each distinct entity is asked at most once per run, and not at
all when the raw store holds an answer the refresh policy allows (`Settings.refresh`).
Requests go out on `settings.hub_concurrency` worker threads through one `httpx.Client`
(`transport` is the testing seam, as in httpx's own design), within a per-run request
budget that keeps a nightly run under the anonymous quota (500 calls per 5 minutes).

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

What counts as an answer: 200 with a body that validates (ok); 401, 404, and 403 for
gated or disabled repos (not_found: the Hub answers 401 anonymously for a missing repo and
hides private ones the same way). Those are never retried. 429 waits as the `RateLimit`
header says (else `Retry-After`), capped by `hub_backoff_max_seconds`; 408, 5xx, timeouts,
connection failures and truncated or non-JSON bodies are retried with exponential backoff
and jitter. A body whose fields have the wrong type is an error naming the field.
When tonight's lookup fails and the store has an earlier good answer, the record carries
it with status `stale`.

The token (`HF_TOKEN`) is sent as a bearer header and nowhere else: the raw store keeps
response headers only, and every reason written to a record or a log is scrubbed of it.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Literal, TypeVar
from urllib.parse import quote

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from pipeline.config import RefreshPolicy, Settings
from pipeline.links.identify import is_valid_hub_repo_id, parse_arxiv_id
from pipeline.records import (
    ApiStats,
    HubRepoRecord,
    PaperPageRecord,
    RepoRef,
    RepoType,
    Status,
)
from pipeline.resolve.common import (
    Breaker,
    LookupFailure,
    PermanentFailure,
    RateLimited,
    ServiceUnreachable,
    TooLarge,
    TransientFailure,
    read_capped,
)
from pipeline.resolve.hub_bodies import (
    _B,
    _Body,
    _CollectionBody,
    _DatasetBody,
    _ModelBody,
    _paper_record,
    _PaperBody,
    _repo_record,
    _Resolution,
    _SpaceBody,
    _validate,
)
from pipeline.resolve.rawstore import RawStore, StoredAnswer, StoredResponse

logger = logging.getLogger(__name__)


ProgressCallback = Callable[[int, int], None]
"""Called with (entities done, entities to do) as lookups finish."""


_K = TypeVar("_K")
_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class _Endpoint:
    kind: str
    """The entity kind, as the raw store's `answers` name it."""
    collection: str
    """The path segment after `/api/`."""
    expand: tuple[str, ...] = ()


# Exactly the properties a record keeps (reference §2.1; cardData carries the licence).
_MODEL_EXPAND = (
    "author",
    "cardData",
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
_BODIES: dict[str, type[_Body]] = {
    "model": _ModelBody,
    "dataset": _DatasetBody,
    "space": _SpaceBody,
    "collection": _CollectionBody,
}

_API = "hub"
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 5
"""A rename is one hop; a chain of renames a few. More is a misconfigured server."""
_REASON_MAX_CHARS = 200
_BUDGET_EXHAUSTED = "deferred: hub request budget exhausted"
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


class _RateGate:
    """Holds every worker back while the Hub's rate-limit window is spent."""

    def __init__(
        self, cap_seconds: float, sleep: Callable[[float], None], clock: Callable[[], float]
    ) -> None:
        self._cap_seconds = cap_seconds
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._resume_at = 0.0

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._resume_at = max(self._resume_at, self._clock() + seconds)

    def wait_turn(self) -> None:
        with self._lock:
            resume_at = self._resume_at
        delay = resume_at - self._clock()
        if delay <= 0:
            return
        if delay > self._cap_seconds:
            raise PermanentFailure(
                f"rate limited: the Hub's window resets in {delay:.0f} s, more than"
                f" hub_backoff_max_seconds={self._cap_seconds:g}"
            )
        self._sleep(delay)
        with self._lock:
            if self._resume_at == resume_at:  # waited out; also when `sleep` is a test double
                self._resume_at = 0.0


class _Budget:
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._used = 0
        self._lock = threading.Lock()

    def take(self) -> None:
        with self._lock:
            if self._used >= self._limit:
                raise PermanentFailure(_BUDGET_EXHAUSTED)
            self._used += 1


class _Progress:
    def __init__(self, callback: ProgressCallback | None, total: int) -> None:
        self._callback = callback
        self.total = total
        self.done = 0

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self._callback is not None:
            self._callback(self.done, self.total)


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
    ) -> None:
        self.settings = settings
        self.store = store
        self.transport = transport
        self.stats = ApiStats(api="hub")
        self._sleep = sleep
        self._stats_lock = threading.Lock()
        self._memo_lock = threading.Lock()
        self._repos: dict[RepoRef, HubRepoRecord] = {}
        self._papers: dict[str, PaperPageRecord] = {}
        self._gate = _RateGate(settings.hub_backoff_max_seconds, sleep, clock)
        self._breaker = Breaker("the Hugging Face Hub", settings.hub_max_attempts)
        self._budget = _Budget(settings.hub_max_requests_per_run)
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
        progress = _Progress(on_progress, len(wanted))
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
        progress = _Progress(on_progress, len(given))
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
        progress: _Progress,
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
        """Never-answered entities first, then the oldest answers: when the request budget
        runs out, tomorrow's run goes on where tonight's stopped instead of asking the same
        first entities every night."""

        def answered_at(key: _K) -> float:
            endpoint, entity_id = entity(key)
            if endpoint is None:
                return float("-inf")
            answer = self.store.answer("hub", endpoint.kind, entity_id)
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
        elif not _sendable(repo_id):
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
            record = _repo_record(repo_type, repo_id, resolution)
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
        resolution = self._resolve_entity(client, _ENDPOINTS["paper"], arxiv_id, _PaperBody)
        record = _paper_record(arxiv_id, resolution)
        self._log_outcome("paper", arxiv_id, record.status, record.status_reason)
        with self._memo_lock:
            self._papers[arxiv_id] = record
        return record

    # -- one entity: store, then the Hub, then the last good answer ----------------------
    def _resolve_entity(
        self, client: httpx.Client, endpoint: _Endpoint, entity_id: str, body_type: type[_B]
    ) -> _Resolution[_B]:
        stored = self._reusable_answer(endpoint.kind, entity_id)
        if stored is not None:
            resolution = self._from_store(endpoint.kind, stored, body_type)
            if resolution is not None:
                with self._stats_lock:
                    self.stats.from_store += 1
                return resolution
        if self.settings.refresh is RefreshPolicy.OFFLINE:
            return _Resolution("error", "offline: no usable answer in the raw store")
        try:
            answer = self._get(client, endpoint, entity_id)
            if answer.outcome == "not_found":
                self.store.mark(answer.response, endpoint.kind, [entity_id], "not_found")
                return _Resolution(
                    "not_found",
                    self._redact(answer.reason or ""),
                    fetched_at=answer.response.fetched_at,
                )
            body = _validate(body_type, answer.body)
        except TransientFailure as exc:
            failure = f"{exc.reason} (gave up after {self._attempts} attempts)"
        except LookupFailure as exc:
            failure = exc.reason
        else:
            ids = list(dict.fromkeys([entity_id, body.canonical_id()]))
            self.store.mark(answer.response, endpoint.kind, ids, "ok")
            return _Resolution("ok", body=body, fetched_at=answer.response.fetched_at)
        return self._last_good(endpoint.kind, entity_id, body_type, self._redact(failure))

    def _reusable_answer(self, kind: str, entity_id: str) -> StoredAnswer | None:
        policy = self.settings.refresh
        if policy is RefreshPolicy.REFRESH:
            return None
        answer = self.store.answer(_API, kind, entity_id)
        if answer is None:
            return None
        if policy is RefreshPolicy.TTL and answer.age_seconds() >= self.settings.hub_ttl_seconds:
            return None
        return answer

    def _from_store(
        self, kind: str, stored: StoredAnswer, body_type: type[_B]
    ) -> _Resolution[_B] | None:
        if stored.outcome == "not_found":
            try:
                body = stored.response.read()
            except OSError:
                body = b""
            response = stored.response
            reason = _not_found_reason(kind, response.status, response.headers, body)
            return _Resolution("not_found", self._redact(reason), fetched_at=stored.answered_at)
        parsed = self._load_stored(stored, body_type)
        if parsed is None:
            return None
        return _Resolution("ok", body=parsed, fetched_at=stored.answered_at)

    def _last_good(
        self, kind: str, entity_id: str, body_type: type[_B], failure: str
    ) -> _Resolution[_B]:
        last = self.store.last_good(_API, kind, entity_id)
        if last is not None:
            parsed = self._load_stored(last, body_type)
            if parsed is not None:
                return _Resolution("stale", failure, parsed, last.answered_at)
        return _Resolution("error", failure)

    def _load_stored(self, stored: StoredAnswer, body_type: type[_B]) -> _B | None:
        try:
            return _validate(body_type, stored.response.read())
        except (OSError, LookupFailure) as exc:
            # An unreadable body, or one tonight's rules reject: ask again rather than trust it.
            logger.warning(
                "raw store answer %s (%s) unusable: %s",
                stored.response.response_id,
                stored.response.url,
                exc,
            )
            return None

    # -- HTTP --------------------------------------------------------------------------
    def _get(self, client: httpx.Client, endpoint: _Endpoint, entity_id: str) -> _Answer:
        path = f"/api/{endpoint.collection}/" + "/".join(
            quote(segment, safe="") for segment in entity_id.split("/")
        )
        params = httpx.QueryParams([("expand[]", prop) for prop in endpoint.expand])
        url = client.build_request("GET", path, params=params).url
        retrying = Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=self._backoff,
            retry=retry_if_exception_type(TransientFailure),
            sleep=self._retry_sleep,
            before_sleep=self._note_retry,
            reraise=True,
        )
        answer: _Answer = retrying(self._get_following_redirects, client, endpoint, url)
        return answer

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
            # Never carry the token (or our budget) to another host.
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
        self._gate.wait_turn()
        self._budget.take()
        started = time.monotonic()
        limit = self.settings.max_response_bytes
        try:
            with client.stream("GET", url) as response:
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
            reason = f"connection failed: {type(exc).__name__}: {exc}"
            self._breaker.failure(reason)
            raise TransientFailure(reason) from exc
        self._breaker.success()
        status = response.status_code
        self._count(status)
        stored = self._record(endpoint, response, body, started)
        headers = {name.lower(): value for name, value in response.headers.items()}
        remaining, reset_seconds = _parse_ratelimit(headers.get("ratelimit"))
        if remaining == 0 and reset_seconds is not None:
            self._gate.hold(reset_seconds)  # the next request would be refused: slow down now
        if status == 200:
            try:
                json.loads(body)
            except ValueError:
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
            wait = _rate_limit_wait(headers, reset_seconds)
            if wait is not None:
                # At least a second: `t` is whole seconds, and a window that resets in 0.4 s
                # says t=0; retrying at once would only be refused again.
                wait = max(wait, 1.0)
                self._gate.hold(wait)
            raise RateLimited(f"HTTP 429 rate limited{detail}", wait)
        if status == 408 or status >= 500:
            raise TransientFailure(f"HTTP {status}{detail}")
        raise PermanentFailure(f"HTTP {status}{detail}")

    def _record(
        self, endpoint: _Endpoint, response: httpx.Response, body: bytes, started: float
    ) -> StoredResponse:
        headers = {name: self._redact(value) for name, value in response.headers.items()}
        token = self.settings.hf_token
        if token and token.encode() in body:
            # Only a server echoing our request back would do this; the store must not keep it.
            body = body.replace(token.encode(), b"[HF_TOKEN]")
        return self.store.record(
            api=_API,
            endpoint=endpoint.collection,
            url=str(response.request.url),
            status=response.status_code,
            body=body,
            headers=headers,
            elapsed_seconds=time.monotonic() - started,
        )

    def _backoff(self, state: RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome is not None else None
        if isinstance(failure, RateLimited) and failure.wait_seconds is not None:
            return 0.0  # the rate gate waits, and holds every other worker back too
        ceiling = min(
            self.settings.hub_backoff_seconds * float(2 ** (state.attempt_number - 1)),
            self.settings.hub_backoff_max_seconds,
        )
        # "Equal jitter": at least half the backoff, so that retries never bunch at zero.
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _retry_sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._sleep(seconds)

    def _note_retry(self, state: RetryCallState) -> None:
        with self._stats_lock:
            self.stats.retries += 1

    def _count(self, status: int) -> None:
        with self._stats_lock:
            self.stats.count(status)

    def _add_seconds(self, seconds: float) -> None:
        with self._stats_lock:
            self.stats.seconds += seconds

    def _redact(self, text: str) -> str:
        token = self.settings.hf_token
        return text.replace(token, "[HF_TOKEN]") if token else text

    def _log_outcome(self, kind: str, entity_id: str, status: Status, reason: str | None) -> None:
        if status in ("error", "stale"):
            logger.warning("hub %s %s: %s: %s", kind, entity_id, status, reason)
        elif status == "not_found":
            logger.info("hub %s %s: not found: %s", kind, entity_id, reason)


# -- helpers (pure) ------------------------------------------------------------------------
def _sendable(repo_id: str) -> bool:
    """Whether an ID may become URL path segments: valid by the Hub's rules, and (whatever
    those rules say) no empty, `.` or `..` segment, which URL normalisation would act on."""
    if any(segment in ("", ".", "..") for segment in repo_id.split("/")):
        return False
    return is_valid_hub_repo_id(repo_id)


def _parse_ratelimit(header: str | None) -> tuple[int | None, float | None]:
    """(remaining, seconds to reset) from `RateLimit: "api";r=<n>;t=<s>` (IETF draft 09)."""
    if not header:
        return None, None
    policies = [part.strip() for part in header.split(",")]
    chosen = next((p for p in policies if p.startswith('"api"')), policies[0])
    params = dict(item.strip().split("=", 1) for item in chosen.split(";")[1:] if "=" in item)
    remaining = params.get("r", "")
    reset = params.get("t", "")
    return (
        int(remaining) if remaining.isdigit() else None,
        float(reset) if reset.isdigit() else None,
    )


def _rate_limit_wait(headers: Mapping[str, str], reset_seconds: float | None) -> float | None:
    """How long a 429 asks us to wait: `RateLimit`'s t, else an integer `Retry-After`."""
    if reset_seconds is not None:
        return reset_seconds
    retry_after = headers.get("retry-after", "").strip()
    return float(retry_after) if retry_after.isdigit() else None


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
        except ValueError:
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
        if record.repo_type != "collection" or record.status not in ("ok", "stale"):
            continue
        for item in record.items:
            item_type = _EXPANDED_ITEM_TYPES.get(item.item_type)
            if item_type is not None:
                refs[(item_type, item.item_id)] = None
    return list(refs)
