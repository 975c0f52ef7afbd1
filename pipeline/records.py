"""Small types shared by every stage.

Each stage declares its own record type beside the code that makes it
(`extract.Occurrence`, `identify.Identity`, `links.Link`, `resolve_arxiv.PaperRecord`,
`resolve_hub.HubRepoRecord`, ...); only what several stages must agree on lives here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

Status = Literal["ok", "not_found", "error", "stale"]
"""An entity's resolution status in a snapshot.

- ok: answered tonight (or from the raw store within its time-to-live);
- not_found: the service says it does not exist (or the identifier is invalid and was never sent);
- error: no answer could be had and no earlier good answer exists;
- stale: tonight's lookup failed; the row carries the last good answer, with its time.
"""

STATUSES: tuple[Status, ...] = ("ok", "not_found", "error", "stale")

ResolvedBy = Literal["id", "title"]
"""How a link leads to a paper: its URL names the arXiv ID, or its text is the paper's title."""


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (every timestamp the pipeline writes is)."""
    return datetime.now(UTC)


@dataclass
class ApiStats:
    """What one resolver did in one run, for the run report and the benchmarks."""

    api: str
    requests: int = 0
    """HTTP requests sent (retries included)."""
    by_status: dict[int, int] = field(default_factory=dict)
    """Responses by HTTP status; transport failures (timeouts, resets) under 0."""
    from_store: int = 0
    """Entities answered from the raw store without a request."""
    retries: int = 0
    seconds: float = 0.0
    """Wall time spent in requests and politeness waits."""

    def count(self, status: int) -> None:
        self.requests += 1
        self.by_status[status] = self.by_status.get(status, 0) + 1
