"""GitHub on the wire: one polite, serial client for the sources stage (the lists) and
the repository lookups.

Rate limits, as GitHub documents them (docs/github-api.md in the shared references):
every answer's `x-ratelimit-remaining` / `x-ratelimit-reset` is remembered, and a spent
budget is waited out until its reset before the next request (or the request fails at
once when the wait would end past the run's deadline). A 403 or 429 that is a limit: with
`retry-after`, wait that long; else with `x-ratelimit-remaining: 0`, wait for the reset;
else (a secondary limit) wait at least `github_backoff_seconds`, doubling per try. One
request at a time, never a tight loop.

The token (`GITHUB_TOKEN`) goes as a bearer header to `github_api_url`'s own origin and
nowhere else: a redirect to another host is refused, as the Hub's client refuses it. An
answer echoing the token back (body or headers) is redacted as soon as it is read, before
any reason, log line or the raw store sees it; request headers are never kept.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from pipeline.config import Settings
from pipeline.records import ApiStats
from pipeline.resolve.common import (
    CONNECTION_FAILURES_TO_OPEN,
    Breaker,
    Deadline,
    PermanentFailure,
    RateLimited,
    TooLarge,
    TransientFailure,
    equal_jitter_seconds,
    header_int,
    read_capped,
    redact,
    redact_bytes,
)
from pipeline.resolve.rawstore import RawStore, StoredResponse

API = "github"
JSON_MEDIA_TYPE = "application/vnd.github+json"
RAW_MEDIA_TYPE = "application/vnd.github.raw+json"
API_VERSION = "2022-11-28"
REDIRECTS_MAX = 3
TOKEN_PLACEHOLDER = "[GITHUB_TOKEN]"


@dataclass(frozen=True, slots=True)
class Answer:
    """One final answer (redirects followed), as recorded in the raw store."""

    status: int
    body: bytes
    headers: Mapping[str, str]
    stored: StoredResponse
    moved_to: str | None = None
    """The path the request was redirected to (a renamed repository), if any."""

    def json(self) -> object:
        try:
            return json.loads(self.body)
        except ValueError:
            raise TransientFailure(
                f"HTTP {self.status} with a non-JSON body ({len(self.body)} bytes)"
            ) from None


class GithubClient:
    """Serial requests to `settings.github_api_url`, recorded in the raw store."""

    def __init__(
        self,
        settings: Settings,
        store: RawStore,
        deadline: Deadline,
        *,
        transport: httpx.BaseTransport | None = None,
        stats_name: str = API,
        wait_for_reset: bool = True,
    ) -> None:
        self.settings = settings
        self.store = store
        self.deadline = deadline
        self.stats = ApiStats(stats_name)
        """What this client did (`github`: the sources stage; `github_repos`: the lookups)."""
        self.wait_for_reset = wait_for_reset
        """Wait out a spent primary budget (within the deadline), or fail at once: the
        repository lookups stop and keep their last values rather than wait an hour."""
        self.reset_wait_max_seconds: float | None = None
        """Longest wait for a spent budget's reset (None: up to the deadline); see
        `patience`."""
        self.breaker = Breaker("GitHub", CONNECTION_FAILURES_TO_OPEN)
        self._origin = _origin(settings.github_api_url)
        self._remaining: int | None = None
        self._reset_epoch: int | None = None
        self._client = httpx.Client(
            timeout=settings.github_timeout_seconds,
            follow_redirects=False,
            transport=transport,
            headers={"user-agent": settings.user_agent},
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> GithubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def patience(self, reset_wait_max_seconds: float | None) -> Iterator[None]:
        """Within the block, a spent budget whose reset is further off than this fails at
        once (`RateLimited`) instead of being waited out: the caller has something to
        fall back on."""
        before = self.reset_wait_max_seconds
        self.reset_wait_max_seconds = reset_wait_max_seconds
        try:
            yield
        finally:
            self.reset_wait_max_seconds = before

    @property
    def remaining(self) -> int | None:
        """Requests left in the primary budget, as GitHub last said (None: not heard yet)."""
        return self._remaining

    def get(
        self,
        path: str,
        *,
        endpoint: str,
        params: Mapping[str, str] | None = None,
        accept: str = JSON_MEDIA_TYPE,
        etag: str | None = None,
    ) -> Answer:
        """GET `path` (relative to the API root, or a full URL GitHub gave: a `Link` or a
        `Location`), redirects followed; `TransientFailure`/`RateLimited` when no answer
        could be had within the tries and the deadline."""
        url = self._url(path, params)
        moved: str | None = None
        for _ in range(REDIRECTS_MAX + 1):
            answer = self._send(url, endpoint, accept, etag)
            if answer.status not in (301, 302, 307, 308):
                return Answer(answer.status, answer.body, answer.headers, answer.stored, moved)
            location = answer.headers.get("location")
            if not location:
                raise PermanentFailure(f"HTTP {answer.status} redirect without a Location")
            url = urljoin(url, location)
            if _origin(url) != self._origin:
                raise PermanentFailure(
                    f"HTTP {answer.status}: redirect to another host refused:"
                    f" {urlsplit(url).hostname}"
                )
            moved = urlsplit(url).path
        raise PermanentFailure(f"more than {REDIRECTS_MAX} redirects")

    def post_json(self, path: str, payload: object, *, endpoint: str) -> Answer:
        """POST a JSON body (GraphQL); the same limits and retries as `get`."""
        body = json.dumps(payload).encode()
        return self._send(path, endpoint, JSON_MEDIA_TYPE, None, body)

    def _url(self, path: str, params: Mapping[str, str] | None) -> str:
        url = path if "://" in path else self.settings.github_api_url + path
        if params:
            url = str(httpx.URL(url, params=dict(params)))
        return url

    def _headers(self, url: str, accept: str, etag: str | None) -> dict[str, str]:
        headers = {"accept": accept, "x-github-api-version": API_VERSION}
        if etag:
            headers["if-none-match"] = etag
        token = self.settings.github_token
        if token and _origin(url) == self._origin:
            headers["authorization"] = f"Bearer {token}"
        return headers

    def _send(
        self, url: str, endpoint: str, accept: str, etag: str | None, body: bytes | None = None
    ) -> Answer:
        attempts = max(1, self.settings.github_max_attempts)
        for attempt in range(1, attempts + 1):
            self._wait_for_budget()
            self.breaker.check()
            started = time.monotonic()
            try:
                method = "POST" if body is not None else "GET"
                request = self._client.build_request(
                    method, url, headers=self._headers(url, accept, etag), content=body
                )
                response = self._client.send(request, stream=True)
                try:
                    data = read_capped(response, self.settings.max_response_bytes)
                finally:
                    response.close()
            except TooLarge as exc:
                raise PermanentFailure(f"answer larger than {exc.size} bytes") from None
            except httpx.TransportError as exc:
                reason = self._redact(f"{type(exc).__name__}: {exc}")
                if isinstance(exc, httpx.ConnectError):
                    self.breaker.failure(reason)
                self.stats.count(0)
                self._backoff(attempt, attempts, TransientFailure(f"connection failed: {reason}"))
                continue
            finally:
                self.stats.seconds += time.monotonic() - started
            self.breaker.success()
            self.stats.count(response.status_code)
            # Redacted at once: every reason, log line and stored answer is made from these.
            headers = {
                name.lower(): self._redact(value) for name, value in response.headers.items()
            }
            data = redact_bytes(data, self.settings.github_token, TOKEN_PLACEHOLDER)
            self._heard(headers)
            stored = self._record(endpoint, url, response.status_code, data, headers, body, started)
            answer = Answer(response.status_code, data, headers, stored)
            failure = self._failure(answer)
            if failure is None:
                return answer
            self._backoff(attempt, attempts, failure)
        raise AssertionError("unreachable: the last attempt raises")

    def _failure(self, answer: Answer) -> TransientFailure | None:
        """Why an answer is worth another try (a limit, a 5xx), or None for an answer."""
        status, headers = answer.status, answer.headers
        if status in (403, 429):
            retry_after = header_int(headers.get("retry-after"))
            remaining = header_int(headers.get("x-ratelimit-remaining"))
            message = message_of(answer.body) or ""
            if retry_after is not None:
                return RateLimited(f"HTTP {status} secondary rate limit", float(retry_after))
            if remaining == 0:
                spent = f"HTTP {status} rate limit exceeded"
                if not self.wait_for_reset:
                    raise RateLimited(spent, None)
                wait = self._until_reset()
                if self._impatient(wait):
                    raise RateLimited(f"{spent}; {self._impatience(wait)}", wait)
                return RateLimited(spent, wait)
            if status == 429 or "rate limit" in message.lower():
                return RateLimited(f"HTTP {status} secondary rate limit: {message}", None)
            return None
        if status == 408 or status >= 500:
            return TransientFailure(f"HTTP {status}")
        return None

    def _backoff(self, attempt: int, attempts: int, failure: TransientFailure) -> None:
        """Wait before the next try, as the failure asks; raise it when no try is left or
        the wait would end past the deadline."""
        if attempt >= attempts:
            raise failure
        wait = failure.wait_seconds if isinstance(failure, RateLimited) else None
        if wait is None:
            wait = equal_jitter_seconds(
                self.settings.github_backoff_seconds,
                self.settings.github_backoff_max_seconds,
                attempt,
            )
        if not self.deadline.allows(wait):
            raise RateLimited(f"{failure.reason}; {self.deadline.refusal(wait)}", wait)
        self.stats.retries += 1
        time.sleep(wait)
        self.stats.seconds += wait

    def _redact(self, text: str) -> str:
        return redact(text, self.settings.github_token, TOKEN_PLACEHOLDER)

    def _heard(self, headers: Mapping[str, str]) -> None:
        if headers.get("x-ratelimit-resource", "core") != "core":
            return  # GraphQL's points are a budget of their own
        remaining = header_int(headers.get("x-ratelimit-remaining"))
        if remaining is not None:
            self._remaining = remaining
            self._reset_epoch = header_int(headers.get("x-ratelimit-reset"))

    def _impatient(self, wait_seconds: float) -> bool:
        bound = self.reset_wait_max_seconds
        return bound is not None and wait_seconds > bound

    def _impatience(self, wait_seconds: float) -> str:
        return (
            f"its reset is {wait_seconds:.0f} s away, past"
            f" github_stale_wait_max_seconds={self.reset_wait_max_seconds:g}"
        )

    def _until_reset(self) -> float:
        if self._reset_epoch is None:
            return self.settings.github_backoff_seconds
        return max(1.0, self._reset_epoch - time.time())

    def _wait_for_budget(self) -> None:
        """A spent primary budget: wait for its reset rather than be refused."""
        if self._remaining != 0:
            return
        if not self.wait_for_reset:
            raise RateLimited("GitHub rate limit spent (x-ratelimit-remaining: 0)", None)
        wait = self._until_reset()
        if self._impatient(wait):
            raise RateLimited(
                f"GitHub rate limit spent (x-ratelimit-remaining: 0); {self._impatience(wait)}",
                wait,
            )
        if not self.deadline.allows(wait):
            raise RateLimited(
                "GitHub rate limit spent (x-ratelimit-remaining: 0); "
                + self.deadline.refusal(wait),
                wait,
            )
        time.sleep(wait)
        self.stats.seconds += wait
        self._remaining = None

    def _record(
        self,
        endpoint: str,
        url: str,
        status: int,
        body: bytes,
        headers: Mapping[str, str],
        request_body: bytes | None,
        started: float,
    ) -> StoredResponse:
        return self.store.record(
            api=API,
            endpoint=endpoint,
            url=url,
            status=status,
            body=body,
            headers=headers,
            method="POST" if request_body is not None else "GET",
            request_body=request_body,
            elapsed_seconds=time.monotonic() - started,
        )


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def message_of(body: bytes) -> str | None:
    """The `message` of GitHub's JSON error body; None when there is none."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    message = value.get("message") if isinstance(value, dict) else None
    return message if isinstance(message, str) else None
