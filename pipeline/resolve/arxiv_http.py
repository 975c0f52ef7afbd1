"""The arXiv export API on the wire: query URLs, one polite queue per run, one GET.

Why this layer is ours and not the `arxiv` package's `Client`: the pipeline keeps every
response exactly as received in the raw store (errors included, for the audit) and reads
it with its own validating Atom reader (`arxiv_feed`), and `arxiv.Client` hands over
neither the body nor the status: `results()` parses on its own, retries any non-200 (a
400 that names a bad ID too), drops error bodies, pages on its own and sends its own user
agent. What is left to own is small and lives here, in the open:

- URL building (`query_url`) for `id_list` and `search_query`, with `start` and
  `max_results` always sent: the API's default `max_results` is 10, for `id_list` too,
  and silently drops the rest (api-reference Part 1, §1.1 and §1.4). The parameters and
  their order are those `arxiv.Client` sends, so stored request keys stay comparable.
- One GET through `httpx` (the client the Hub side uses too): one connection, the
  pipeline's user agent, no redirect followed (only `ARXIV_API_URL` is ever asked), the
  body capped at `max_response_bytes`.
- `PoliteQueue`: arXiv's terms allow one request every three seconds over a single
  connection. One queue per run, owned by the resolver and shared by all its threads; a
  backoff holds every thread off, and no wait is taken that would end past the run's
  deadline.

What the `arxiv` package still gives: `arxiv.Search` describes a request (query, ID list,
result count, and `SortCriterion`/`SortOrder`, whose values are the API's own). Its
`Result` is not used: the reader validates every entry and builds its own `Entry`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import arxiv
import httpx

from pipeline.config import Settings
from pipeline.links.identify import parse_arxiv_id
from pipeline.resolve.common import (
    CONNECTION_FAILURES_TO_OPEN,
    Breaker,
    Deadline,
    PermanentFailure,
    ServiceUnreachable,
    TooLarge,
    TransientFailure,
    read_capped,
)

logger = logging.getLogger(__name__)


# -- URLs (pure) -------------------------------------------------------------------------


def check_endpoint(url: str) -> None:
    """`ValueError` unless `url` (`ARXIV_API_URL`) is an http(s) URL with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"ARXIV_API_URL must be an http(s) URL with a host, not {url!r}")


def query_url(endpoint: str, search: arxiv.Search, start: int = 0) -> str:
    """The GET URL asking `endpoint` for `search`'s results from `start` on."""
    if search.max_results is None or search.max_results < 0 or start < 0:
        raise ValueError(f"a query needs a start and a result count: {search!r}, start={start}")
    separator = "&" if "?" in endpoint else "?"
    return (
        endpoint
        + separator
        + urlencode(
            {
                "search_query": search.query,
                "id_list": ",".join(search.id_list),
                "sortBy": search.sort_by.value,
                "sortOrder": search.sort_order.value,
                "start": str(start),
                "max_results": str(search.max_results),
            }
        )
    )


def asked_ids(url: str) -> frozenset[str]:
    """The canonical IDs a query URL's `id_list` names (those `parse_arxiv_id` reads)."""
    values = parse_qs(urlsplit(url).query, keep_blank_values=True).get("id_list", [""])
    parsed = (parse_arxiv_id(item) for item in values[0].split(",") if item)
    return frozenset(p[0] for p in parsed if p is not None)


# -- politeness --------------------------------------------------------------------------


class NotAsked(PermanentFailure):
    """A request this run will not send: arXiv cannot be reached at all (the breaker is
    open), or the wait before it would end past the run's deadline."""


class PoliteQueue:
    """One request at a time, `delay_seconds` apart, with holds every thread keeps.

    A wait that would end past the deadline is not taken: the queue closes instead, and
    every later turn is refused at once with the reason (`NotAsked`), so that what is
    left of the run falls back on its last good answers.
    """

    def __init__(
        self,
        delay_seconds: float,
        deadline: Deadline,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.delay_seconds = delay_seconds
        self.deadline = deadline
        self._sleep = sleep
        self._clock = clock
        self._in_flight = threading.Lock()
        self._state = threading.Lock()
        self._not_before: float | None = None
        self._waiting_for = ""
        self._closed: str | None = None

    @contextmanager
    def turn(self) -> Iterator[float]:
        """Wait for this thread's turn; yields the seconds waited. The next turn starts no
        earlier than `delay_seconds` after this one ends."""
        with self._in_flight:
            waited = 0.0
            while True:
                with self._state:
                    if self._closed is not None:
                        raise NotAsked(f"not asked: {self._closed}")
                    target, why = self._not_before, self._waiting_for
                wait = max(0.0, 0.0 if target is None else target - self._clock())
                if not self.deadline.allows(wait):
                    if wait > 0:
                        refusal = f"{self.deadline.refusal(wait)}; it was for {why}"
                    else:
                        refusal = (
                            "the run deadline has passed"
                            f" (run_deadline_seconds={self.deadline.seconds:g})"
                        )
                    raise NotAsked(f"not asked: {self._close(refusal)}")
                if wait == 0:
                    break
                log = logger.info if why != _DELAY else logger.debug
                log("arXiv: waiting %.3g s for %s", wait, why)
                self._sleep(wait)
                waited += wait
                with self._state:
                    if self._not_before == target:  # not pushed further while we slept
                        break
            try:
                yield waited
            finally:
                self.hold(self.delay_seconds, _DELAY)

    def hold(self, seconds: float, why: str) -> None:
        """No request starts before `seconds` from now; `why` is what the log says."""
        with self._state:
            at = self._clock() + seconds
            if self._not_before is None or at > self._not_before:
                self._not_before, self._waiting_for = at, why

    def back_off(self, seconds: float, after: str) -> None:
        """Hold every thread off for a backoff after the failure `after` — or, when the
        backoff would end past the deadline, close the queue and raise the failure, final
        now, with the reason (`NotAsked`: the next try is not asked)."""
        if not self.deadline.allows(seconds):
            refusal = self.deadline.refusal(seconds)
            self._close(f"{refusal}; it was for a backoff after {after}")
            raise NotAsked(f"{after}; not tried again: {refusal}")
        self.hold(seconds, f"a backoff after {after}")

    def _close(self, reason: str) -> str:
        """No turn is given from now on; later ones are refused with `reason`."""
        with self._state:
            if self._closed is None:
                self._closed = reason
                logger.warning("arXiv: %s; nothing more is asked in this run", reason)
        return reason


_DELAY = "the politeness delay"


# -- one GET -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer, whatever its status."""

    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float
    """Time in the queue and on the wire."""
    elapsed_seconds: float
    """Time on the wire."""


class Unanswered(TransientFailure):
    """No usable answer: a timeout, a connection failure, a body past the size limit."""

    def __init__(self, reason: str, status: int, seconds: float) -> None:
        super().__init__(reason)
        self.status = status
        """The HTTP status when one came, else 0 (the stats count transport failures so)."""
        self.seconds = seconds


class ArxivHttp:
    """GETs to `ARXIV_API_URL` over one connection, each in its turn of `queue`.

    The breaker refuses requests (`NotAsked`) once arXiv cannot be reached at all.
    `transport` is the testing seam, as in httpx's own design.
    """

    def __init__(
        self,
        settings: Settings,
        queue: PoliteQueue,
        *,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        check_endpoint(settings.arxiv_api_url)
        self.settings = settings
        self.queue = queue
        self._clock = clock
        self._breaker = Breaker("arXiv", CONNECTION_FAILURES_TO_OPEN)
        self._client = httpx.Client(
            headers={"user-agent": settings.user_agent},
            timeout=httpx.Timeout(settings.arxiv_timeout_seconds),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            follow_redirects=False,
            transport=transport,
        )

    def url(self, search: arxiv.Search) -> str:
        return query_url(self.settings.arxiv_api_url, search)

    def get(self, url: str) -> Reply:
        """One GET in its turn. `Unanswered` when no usable answer came; `NotAsked` when
        the breaker is open or the queue is closed (nothing was sent)."""
        try:
            self._breaker.check()
        except ServiceUnreachable as exc:
            raise NotAsked(str(exc)) from None
        limit = self.settings.max_response_bytes
        with self.queue.turn() as waited:
            started = self._clock()

            def failed(reason: str, status: int = 0) -> Unanswered:
                return Unanswered(reason, status, waited + self._clock() - started)

            try:
                with self._client.stream("GET", url) as response:
                    status = response.status_code
                    self._breaker.success()
                    try:
                        body = read_capped(response, limit)
                    except TooLarge:
                        over = f"HTTP {status} with a body over the {limit}-byte limit"
                        raise failed(over, status) from None
            except httpx.TimeoutException:
                timeout = self.settings.arxiv_timeout_seconds
                raise failed(f"no answer from arXiv within {timeout:g} s") from None
            except httpx.TransportError as exc:
                reason = f"connection to arXiv failed ({type(exc).__name__})"
                self._breaker.failure(reason)
                raise failed(reason) from None
            except httpx.HTTPError as exc:
                raise failed(f"unusable answer from arXiv ({type(exc).__name__})") from None
            elapsed = self._clock() - started
        return Reply(status, dict(response.headers), body, waited + elapsed, elapsed)

    def close(self) -> None:
        self._client.close()
