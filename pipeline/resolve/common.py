"""What the resolvers share: failure classes, the circuit breaker, progress, the capped
body reader, the last-good fallback and the run deadline.

The circuit breaker, for a service that cannot be reached at all. When a run cannot
connect to a service (its name does not resolve, the connection is refused or reset),
every lookup would otherwise go through all its retries and backoffs, waiting politely
for nothing. After `threshold` connection failures in a row the breaker opens, and each
later request of the run is refused at once with the reason, so its entities fall back on
their last good answers (stale) straight away. Any answer from the service, whatever its
status, closes it again. Timeouts, HTTP errors and bodies cut short after their headers do
not count: they come from a service that is there.

The deadline: a run waits out what a service asks it to wait (a spent rate-limit window,
a backoff) however long, as long as the wait ends before the run must be done; a wait
that would not is not taken, and what is left falls back on its last good answer.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx

from pipeline.resolve.rawstore import RawStore, StoredAnswer

T = TypeVar("T")

CONNECTION_FAILURES_TO_OPEN = 3
"""Connection failures in a row that open a breaker: not the retry count, which is sized
for a busy service (8 tries of arXiv, backing off for minutes) and would make an
unreachable one cost half an hour of backoffs; three refusals in a row say it is not
there."""


class ServiceUnreachable(Exception):
    """Raised instead of a request while the breaker is open; says why."""


class Breaker:
    def __init__(self, service: str, threshold: int) -> None:
        self.service = service
        self.threshold = max(1, threshold)
        self._failures = 0
        self._last_reason = ""
        self._lock = threading.Lock()

    def check(self) -> None:
        """Raise `ServiceUnreachable` when the service is known to be out of reach."""
        with self._lock:
            if self._failures >= self.threshold:
                raise ServiceUnreachable(
                    f"{self.service} unreachable ({self._last_reason}, {self._failures}"
                    " connection failures in a row); not asked in this run"
                )

    def failure(self, reason: str) -> None:
        with self._lock:
            self._failures += 1
            self._last_reason = reason

    def success(self) -> None:
        with self._lock:
            self._failures = 0


ProgressCallback = Callable[[int, int], None]
"""(done, total): called as lookups complete, so that a flow can show progress."""


@dataclass
class Progress:
    callback: ProgressCallback | None
    total: int
    done: int = 0

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self.callback is not None and count:
            self.callback(self.done, self.total)


# -- failures ----------------------------------------------------------------------------
class LookupFailure(Exception):
    """A lookup that gave no answer; `reason` goes into the record."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransientFailure(LookupFailure):
    """Worth another try: 5xx, 408, timeouts, resets, truncated or non-JSON bodies."""


class RateLimited(TransientFailure):
    def __init__(self, reason: str, wait_seconds: float | None) -> None:
        super().__init__(reason)
        self.wait_seconds = wait_seconds


class PermanentFailure(LookupFailure):
    """Not worth another try tonight."""


class TooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


UNEXPECTED_REASON_MAX_CHARS = 200


def unexpected(exc: BaseException) -> str:
    """The reason an entity gives when its answer broke the resolver in a way no rule
    foresaw (a bug, or a hostile answer): bounded, one line."""
    text = " ".join(f"unexpected answer: {type(exc).__name__}: {exc}".split())
    return text[:UNEXPECTED_REASON_MAX_CHARS]


HEADER_DIGITS_MAX = 18
"""An integer header longer than this is garbage, not a count (int64 has 19 digits)."""
_ASCII_INTEGER = re.compile(rf"[0-9]{{1,{HEADER_DIGITS_MAX}}}")


def header_int(value: str | None) -> int | None:
    """A header's value as a non-negative integer, or None. ASCII digits only: `str.isdigit`
    accepts `²` and other digits `int` refuses, and a hostile server may send them."""
    text = (value or "").strip()
    return int(text) if _ASCII_INTEGER.fullmatch(text) else None


def read_capped(response: httpx.Response, limit: int) -> bytes:
    declared = header_int(response.headers.get("content-length"))
    if declared is not None and declared > limit:
        raise TooLarge(declared)
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise TooLarge(size)
        chunks.append(chunk)
    return b"".join(chunks)


def last_good_answer(
    store: RawStore,
    api: str,
    entity_kind: str,
    entity_id: str,
    read: Callable[[StoredAnswer], T | None],
) -> tuple[T, StoredAnswer] | None:
    """What a failed lookup falls back on: the latest answer that found the entity and
    still reads by tonight's rules (`read` returns None for one whose body is gone or
    altered, or that no longer validates: then the one before it is tried)."""
    for last in store.good_answers(api, entity_kind, entity_id):
        value = read(last)
        if value is not None:
            return value, last
    return None


def stale_reason(reason: str, last: StoredAnswer) -> str:
    """Tonight's failure, and when the values a stale row carries were fetched."""
    return f"{reason}; last good answer from {last.response.fetched_at:%Y-%m-%d %H:%M} UTC"


class Deadline:
    """The moment a run must be done by, shared by every resolver of the run: a wait
    (rate-limit reset, backoff) is taken only when it ends before the deadline."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        """The run's allowance (`Settings.run_deadline_seconds`), for reasons that name it."""
        self._clock = clock
        self._at = clock() + seconds

    def remaining_seconds(self) -> float:
        return max(0.0, self._at - self._clock())

    def allows(self, wait_seconds: float) -> bool:
        """Whether a wait of this long ends before the deadline."""
        return wait_seconds < self.remaining_seconds()

    def refusal(self, wait_seconds: float) -> str:
        """Why a wait is not taken: it would end past the deadline."""
        return (
            f"a wait of {wait_seconds:.0f} s would end past the run deadline"
            f" (run_deadline_seconds={self.seconds:g}, {self.remaining_seconds():.0f} s left)"
        )


def redact(text: str, token: str | None, placeholder: str) -> str:
    """`text` without `token`: for every header, body and failure reason a client keeps or
    logs, since only a server echoing the request back would send the token, and nothing
    the pipeline writes may carry it."""
    return text.replace(token, placeholder) if token else text


def redact_bytes(body: bytes, token: str | None, placeholder: str) -> bytes:
    """`redact` for a body."""
    return body.replace(token.encode(), placeholder.encode()) if token else body


def equal_jitter_seconds(base_seconds: float, max_seconds: float, attempt: int) -> float:
    """The wait before try `attempt + 1`: the backoff doubles per try up to `max_seconds`,
    and "equal jitter" keeps at least half of it, so that retries never bunch at zero."""
    ceiling = min(base_seconds * float(2 ** (attempt - 1)), max_seconds)
    return ceiling / 2 + random.uniform(0, ceiling / 2)
