"""A circuit breaker for a service that cannot be reached at all.

When a run cannot connect to a service (its name does not resolve, the connection is
refused or reset), every lookup would otherwise go through all its retries and backoffs:
with arXiv's politeness that is half an hour of waiting for nothing. After `threshold`
connection failures in a row the breaker opens, and each later request of the run is
refused at once with the reason, so its entities fall back on their last good answers
(stale) straight away. Any answer from the service, whatever its status, closes it again.
Timeouts and HTTP errors do not count: they are answers from a service that is there.
"""

from __future__ import annotations

import threading


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
