"""The loopback doubles' request and response types, shared by the server and each double."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

Api = Literal["arxiv", "hub"]


FaultKind = Literal[
    "status",  # answer with `status`, `headers` and `body` instead of the real answer
    "delay",  # wait `delay_seconds`, then answer normally (slow answers, 503-after-46s with status)
    "hang",  # wait `delay_seconds` and close without answering (client read timeout)
    "truncate",  # the real answer cut in half, Content-Length matching the cut body
    "disconnect",  # the real answer's headers, half its body, then the connection closes
    "garbage",  # 200 with an HTML error page instead of XML/JSON
    "oversize",  # 200 with a body of `size_bytes` bytes
    "api",  # an API-specific fault the double implements (`name`): empty_page, drop_field,
    # wrong_types, redirect, redirect_loop, ...
]


@dataclass
class Fault:
    """One switchable fault."""

    api: Api
    kind: FaultKind
    times: int = 1
    """How many matching requests it hits; -1 for every one."""
    match: str = ""
    """Substring of the request's path and query that selects requests ('' matches all)."""
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay_seconds: float = 0.0
    size_bytes: int = 0
    name: str = ""
    """For kind='api': which API-specific fault."""


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


class ApiDouble(Protocol):
    def handle(self, request: Request) -> Response: ...
