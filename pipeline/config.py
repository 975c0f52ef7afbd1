"""Settings of a run: API endpoints, politeness, time-to-live and limits.

Every setting is declared here once, with its unit in its name and the reason for its
default beside it. Endpoints and the token come from the environment, following each
service's own convention, so the same code talks to the real services, to a mirror,
or to the loopback double (`pipeline.sandbox`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

try:
    __version__ = version("mllm-papers-pipeline")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

DEFAULT_ARXIV_API_URL = "https://export.arxiv.org/api/query"
DEFAULT_HF_ENDPOINT = "https://huggingface.co"
DEFAULT_GITHUB_API_URL = "https://api.github.com"


def github_graphql_url_for(api_url: str) -> str:
    """GraphQL's endpoint beside a REST base: `https://HOST/api/v3` (Enterprise Server)
    -> `https://HOST/api/graphql`; any other base (api.github.com, a double) -> `/graphql`
    under it."""
    base = api_url.rstrip("/")
    if base.endswith("/api/v3"):
        return base.removesuffix("/v3") + "/graphql"
    return base + "/graphql"


PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SEEDS_DIR = Path("raw/seeds")
DEFAULT_SOURCES_FILE = Path("sources.toml")
"""The reading lists by name (the nightly deployment reads it; see the file itself)."""
DEFAULT_RAW_DIR = Path("raw")
DEFAULT_OUT_DIR = Path("enriched")

HOUR_SECONDS = 3600.0
DAY_SECONDS = 24 * HOUR_SECONDS


class RefreshPolicy(StrEnum):
    """What a run may ask the APIs again."""

    TTL = "ttl"
    """Ask only about entities whose stored answer is older than its time-to-live."""
    REFRESH = "refresh"
    """Ask about every entity again, whatever the store holds."""
    OFFLINE = "offline"
    """Ask nothing; answer from the raw store alone, whatever its age."""


@dataclass(frozen=True)
class Settings:
    """One run's settings. Build with `Settings.from_env()`; override with `.replace()`."""

    arxiv_api_url: str = DEFAULT_ARXIV_API_URL
    """The arXiv export API query endpoint (`ARXIV_API_URL`)."""
    hf_endpoint: str = DEFAULT_HF_ENDPOINT
    """The Hugging Face Hub base URL (`HF_ENDPOINT`, the Hub's own convention)."""
    hf_token: str | None = field(default=None, repr=False)
    """Hub token (`HF_TOKEN`). Sent as a bearer token when set; never logged or stored."""

    user_agent: str = f"mllm-papers-pipeline/{__version__} (reading-list metadata enrichment)"
    """arXiv throttles default library user agents harder and asks for a descriptive one;
    `PIPELINE_CONTACT` (an e-mail address) is appended when set, as arXiv recommends."""

    arxiv_delay_seconds: float = 3.0
    """arXiv terms of use: no more than one request every three seconds, one connection."""
    arxiv_batch_size: int = 100
    """IDs per `id_list` request; 100 keeps GET URLs far below the 414 limit (~640 IDs)."""
    arxiv_timeout_seconds: float = 60.0
    """arXiv answers 503 after ~46 s under load; give it that long before calling it a timeout."""
    arxiv_max_attempts: int = 8
    """Tries per arXiv request on 429/503/timeouts/empty pages, with exponential backoff.
    One failed request loses a whole batch (up to 100 papers) for the night: with 40 % of
    answers failing (arXiv under load: 503s and empty pages), 4 tries lose a batch 2.6 % of
    the time, 8 tries 0.07 %; the backoffs (30 s doubling, capped) stay within the deadline."""
    arxiv_backoff_seconds: float = 30.0
    """First backoff after a 429 or 503 (arXiv sends no Retry-After); doubles per try."""
    arxiv_backoff_max_seconds: float = 300.0
    """Cap on one arXiv backoff sleep."""
    arxiv_titles_per_request: int = 10
    """Title phrases OR-ed into one `ti:` search; longer queries start to dilute ranking."""

    hub_concurrency: int = 4
    """Hub requests in flight at once."""
    hub_timeout_seconds: float = 30.0
    """Per-request timeout (connect + read) for the Hub."""
    hub_max_attempts: int = 6
    """Tries per Hub request on 429/5xx/timeouts/truncated bodies. No per-run request budget:
    the Hub's quota (500 calls per 5-minute window anonymously, shared with every job on the
    same token or address) is read from its `RateLimit` headers and waited out."""
    hub_backoff_seconds: float = 2.0
    """First backoff after a Hub 5xx or timeout; doubles per try, with jitter."""
    hub_backoff_max_seconds: float = 60.0
    """Cap on one Hub backoff sleep (5xx, timeouts, a 429 that says nothing of when to come
    back). A 429 or a spent quota that says when its window resets is waited out instead,
    bounded by `run_deadline_seconds`: the Hub's windows last five minutes."""

    arxiv_ttl_seconds: float = 7 * DAY_SECONDS
    """arXiv metadata changes rarely (a new version now and then): ask again weekly."""
    arxiv_not_found_ttl_seconds: float = 20 * HOUR_SECONDS
    """An unknown ID may be announced tomorrow: ask again at the next nightly run."""
    hub_ttl_seconds: float = 20 * HOUR_SECONDS
    """Download counts change daily. 20 h, not 24, so that a run at 03:00 refreshes what
    the previous night's 03:00 run fetched a few seconds later in its run."""

    max_response_bytes: int = 32 * 1024 * 1024
    """Larger answers are refused, so a hostile or broken server cannot exhaust memory."""

    run_deadline_seconds: float = 6 * HOUR_SECONDS
    """How long one run may take, waits included. Rate-limit resets and backoffs are waited
    out, however long, while they end before it: a nightly job has hours, and a spent Hub
    quota resets within five minutes. What is still unanswered then falls back on its last
    good answer."""

    refresh: RefreshPolicy = RefreshPolicy.TTL
    """Which stored answers may be reused; see `RefreshPolicy`."""

    github_api_url: str = DEFAULT_GITHUB_API_URL
    """GitHub's REST base (`GITHUB_API_URL`, the variable GitHub's own runners set)."""
    github_graphql_url: str = DEFAULT_GITHUB_API_URL + "/graphql"
    """GitHub's GraphQL endpoint (`GITHUB_GRAPHQL_URL`, set by GitHub's runners too); by
    default derived from `github_api_url` (`github_graphql_url_for`): Enterprise Server
    serves REST at `https://HOST/api/v3` but GraphQL at `https://HOST/api/graphql`."""
    github_token: str | None = field(default=None, repr=False)
    """GitHub token (`GITHUB_TOKEN`): sent as a bearer token to `github_api_url`'s host
    only; never logged or stored."""
    github_timeout_seconds: float = 30.0
    """Per-request timeout (connect + read) for GitHub."""
    github_max_attempts: int = 4
    """Tries per GitHub request on 5xx, timeouts, resets and secondary limits."""
    github_backoff_seconds: float = 60.0
    """First wait after a secondary limit without `retry-after`: GitHub asks for "at least
    a minute", growing exponentially; also the first backoff after a 5xx or timeout."""
    github_ttl_seconds: float = 20 * HOUR_SECONDS
    """Stars and pushes change daily: ask again at the next nightly run (as the Hub)."""
    github_backoff_max_seconds: float = 900.0
    """Cap on one GitHub backoff sleep; a spent primary budget is waited out until its
    `x-ratelimit-reset` instead, bounded by `run_deadline_seconds`."""
    github_stale_wait_max_seconds: float = 60.0
    """Longest wait for a spent primary budget's reset while fetching a list that has a
    last fetched version: past it, that version is used (stale, named in the run's
    reason) rather than hold the night up to an hour; a list never fetched still waits,
    within `run_deadline_seconds`."""
    github_lists_reserve_requests: int = 10
    """Requests of the primary budget the repository lookups leave unspent (REST, without
    a token: 60 an hour), so that the next run's lists do not wait for the reset. A list
    costs one request unchanged (a 304; anonymous ones count) and two or three changed
    (contents, its commit, the raw file over 1 MB): 10 covers the project's GitHub lists
    (sources.toml has one) with room; raise it with more lists."""

    lock_lease_seconds: float = 120.0
    """An object-store snapshot lock not renewed for this long belongs to a holder that is
    gone (its machine died: a process of the same machine is seen gone at once) and is
    taken over; the holder renews it every third of this. Read when the lock is taken."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings with endpoints and token taken from the environment.

        Every numeric setting can also be set as `PIPELINE_<NAME>` (for example
        `PIPELINE_ARXIV_DELAY_SECONDS=0.1`), so tests and benchmarks scale delays down
        without touching the defaults production runs with.
        """
        source: Mapping[str, str] = os.environ if env is None else env
        numeric: dict[str, float | int] = {}
        for item in fields(cls):
            variable = f"PIPELINE_{item.name.upper()}"
            raw = source.get(variable)
            if raw is None or item.type not in ("float", "int"):
                continue
            try:
                value = float(raw) if item.type == "float" else int(raw)
            except ValueError:
                raise ValueError(f"{variable}={raw!r} is not a valid {item.type}") from None
            if value < 0:
                raise ValueError(f"{variable}={raw!r} must not be negative")
            numeric[item.name] = value
        contact = source.get("PIPELINE_CONTACT")
        if contact:
            agent = f"{cls.user_agent} mailto:{contact}"
            numeric_or_text: dict[str, object] = {"user_agent": agent}
        else:
            numeric_or_text = {}
        return cls(
            **numeric_or_text,  # type: ignore[arg-type]
            arxiv_api_url=source.get("ARXIV_API_URL") or DEFAULT_ARXIV_API_URL,
            hf_endpoint=(source.get("HF_ENDPOINT") or DEFAULT_HF_ENDPOINT).rstrip("/"),
            hf_token=source.get("HF_TOKEN") or None,
            github_api_url=(source.get("GITHUB_API_URL") or DEFAULT_GITHUB_API_URL).rstrip("/"),
            github_graphql_url=(
                source.get("GITHUB_GRAPHQL_URL")
                or github_graphql_url_for(source.get("GITHUB_API_URL") or DEFAULT_GITHUB_API_URL)
            ).rstrip("/"),
            github_token=source.get("GITHUB_TOKEN") or None,
            **numeric,  # type: ignore[arg-type]
        )

    def replace(self, **changes: object) -> Settings:
        """A copy with some settings changed (the dataclass is frozen)."""
        return replace(self, **changes)  # type: ignore[arg-type]
