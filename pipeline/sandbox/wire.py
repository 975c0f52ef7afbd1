"""The loopback doubles' request and response types, shared by the server and each double."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

Api = Literal["arxiv", "hub", "github"]


FaultKind = Literal[
    "status",  # answer with `status`, `headers` and `body` instead of the real answer
    "delay",  # wait `delay_seconds`, then answer normally (slow answers, 503-after-46s with status)
    "hang",  # wait `delay_seconds` and close without answering (client read timeout)
    "truncate",  # the real answer cut in half, Content-Length matching the cut body
    "disconnect",  # the real answer's headers, half its body, then the connection closes
    "garbage",  # 200 with an HTML error page instead of XML/JSON
    "oversize",  # 200 with a body of `size_bytes` bytes
    "api",  # an API-specific fault the double implements (`name`), listed in the
    # double's module docstring: empty_page, drop_field, rate_limited, huge_ints, ...
    "quota",  # a fixed window of `quota` requests per `window_seconds`, `quota_left` of them
    # left at the start: 429 with the Hub's RateLimit headers once spent, until it resets
]


@dataclass
class Fault:
    """One switchable fault (see `pipeline.sandbox.server` for how they are chosen)."""

    api: Api
    kind: FaultKind
    times: int = 1
    """How many matching requests it hits; -1 for every one. Not used by kind='quota'."""
    match: str = ""
    """Substring of the request's path and query that selects requests ('' matches all)."""
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay_seconds: float = 0.0
    size_bytes: int = 0
    name: str = ""
    """For kind='api': which API-specific fault."""
    probability: float = 1.0
    """The share of matching requests it hits, drawn per request from `seed`; 1.0 hits
    every one (until `times` runs out)."""
    seed: int = 0
    """Seeds the draws: the same seed gives the same faults to the same requests."""
    quota: int = 0
    """For kind='quota': requests per window (the `q` of `RateLimit-Policy`)."""
    window_seconds: int = 0
    """For kind='quota': the window's length (the `w` of `RateLimit-Policy`)."""
    quota_left: int = 0
    """For kind='quota': requests left in the first window; later windows have `quota`."""

    def __post_init__(self) -> None:
        if self.times < -1:
            raise ValueError(f"Fault.times must be -1 (every request) or >= 0, not {self.times}")
        if not 0.0 < self.probability <= 1.0:
            raise ValueError(f"Fault.probability must be in (0, 1], not {self.probability}")
        if self.kind == "quota":
            if self.quota < 1 or self.window_seconds < 1:
                raise ValueError(
                    "a quota fault needs quota >= 1 and window_seconds >= 1,"
                    f" not quota={self.quota}, window_seconds={self.window_seconds}"
                )
            if not 0 <= self.quota_left <= self.quota:
                raise ValueError(
                    f"a quota fault's quota_left must be in [0, {self.quota}],"
                    f" not {self.quota_left}"
                )


@dataclass(frozen=True, slots=True)
class Request:
    api: Api
    method: str
    path: str
    query: list[tuple[str, str]]
    """Query parameters in order, repeated keys kept (`expand[]=a&expand[]=b`)."""
    form: list[tuple[str, str]]
    """Form-encoded POST body parameters."""
    headers: dict[str, str]
    """Request headers, lower-case names."""
    fault: Fault | None = None
    """An API-specific fault the double should apply to this request."""
    body: bytes = b""
    """The request's body as sent (GraphQL's JSON)."""

    def param(self, name: str, default: str | None = None) -> str | None:
        for key, value in [*self.query, *self.form]:
            if key == name:
                return value
        return default

    def params(self, name: str) -> list[str]:
        return [value for key, value in [*self.query, *self.form] if key == name]


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """What the double received: tests and benchmarks count these."""

    api: Api
    method: str
    path: str
    query: str
    status: int
    user_agent: str
    authorization: bool
    """Whether an Authorization header came (its value is never kept)."""
    at: float
    """`time.monotonic()` when the answer was ready (before its body was sent)."""
    received_at: float
    """`time.monotonic()` when the request had arrived (its headers and body read)."""


class ApiDouble(Protocol):
    def handle(self, request: Request) -> Response: ...
