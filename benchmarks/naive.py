"""The naive baseline: what a script without the pipeline's care would do.

For every arXiv link occurrence, the `arxiv` package's default client (`arxiv.Client()`:
page size 100, 3 s between requests, 3 retries) asked for that one ID with
`Search(id_list=[id])`; for every Hugging Face repo or collection link occurrence, one
Hub API request; all sequential, nothing remembered between occurrences or runs.

The only change to the defaults is where the client points (the double) and, when the
benchmark asks for it, a shorter delay, so that the baseline finishes in minutes; its
wall time at the real 3 s rule is then extrapolated from its request count.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import arxiv
import httpx
import requests

from pipeline.links.documents import Link

ARXIV_DEFAULT_DELAY_SECONDS = 3.0
"""`arxiv.Client()`'s default, which is arXiv's rule."""

_HUB_COLLECTIONS = {
    "hf_model": "models",
    "hf_dataset": "datasets",
    "hf_space": "spaces",
    "hf_collection": "collections",
}


@dataclass(frozen=True, slots=True)
class NaiveTarget:
    """One request the naive baseline makes."""

    api: Literal["arxiv", "hub"]
    entity_id: str
    """arXiv ID as the link writes it (with its version, if any), or Hub repo ID."""
    hub_collection: str = ""
    """For the Hub: the path segment after `/api/` (`models`, `datasets`, ...)."""


def naive_targets(links: Iterable[Link]) -> list[NaiveTarget]:
    """One target per arXiv link occurrence (links and `arXiv:` mentions with a valid ID)
    and per Hub repo or collection link occurrence, in document order."""
    targets: list[NaiveTarget] = []
    for link in links:
        identity = link.identity
        if not identity.valid or identity.entity_id is None:
            continue
        if identity.kind in ("arxiv", "arxiv_mention"):
            version = f"v{identity.arxiv_version}" if identity.arxiv_version else ""
            targets.append(NaiveTarget("arxiv", identity.entity_id + version))
        elif identity.kind in _HUB_COLLECTIONS:
            targets.append(NaiveTarget("hub", identity.entity_id, _HUB_COLLECTIONS[identity.kind]))
    return targets


@dataclass
class NaiveResult:
    """What the baseline did. Request counts are the client's (retries included)."""

    delay_seconds: float
    arxiv_requests: int = 0
    arxiv_seconds: float = 0.0
    arxiv_found: int = 0
    arxiv_missing: int = 0
    arxiv_failed: int = 0
    hub_requests: int = 0
    hub_seconds: float = 0.0
    hub_ok: int = 0
    hub_failed: int = 0

    @property
    def seconds(self) -> float:
        return self.arxiv_seconds + self.hub_seconds

    def arxiv_seconds_at(self, delay_seconds: float) -> float:
        """The arXiv part's wall time had the client waited `delay_seconds` instead.

        `arxiv.Client` sleeps until `delay_seconds` have passed since the previous answer
        arrived, so each request after the first costs exactly the difference once the
        delay exceeds the round trip (as it does at 3 s)."""
        extra = max(self.arxiv_requests - 1, 0) * (delay_seconds - self.delay_seconds)
        return self.arxiv_seconds + extra


def run_naive(
    targets: Iterable[NaiveTarget],
    *,
    arxiv_api_url: str,
    hf_endpoint: str,
    delay_seconds: float = ARXIV_DEFAULT_DELAY_SECONDS,
) -> NaiveResult:
    """Ask for every target, one request each, sequentially: arXiv first, then the Hub."""
    wanted = list(targets)
    result = NaiveResult(delay_seconds=delay_seconds)
    _run_arxiv([t for t in wanted if t.api == "arxiv"], arxiv_api_url, result)
    _run_hub([t for t in wanted if t.api == "hub"], hf_endpoint, result)
    return result


def _run_arxiv(targets: list[NaiveTarget], api_url: str, result: NaiveResult) -> None:
    client: Any = arxiv.Client(delay_seconds=result.delay_seconds)
    client.query_url_format = api_url + "?{}"

    def count(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        result.arxiv_requests += 1

    client._session.hooks["response"].append(count)
    started = time.perf_counter()
    for target in targets:
        try:
            found = list(client.results(arxiv.Search(id_list=[target.entity_id])))
        except (arxiv.ArxivError, requests.RequestException):
            result.arxiv_failed += 1
            continue
        if found:
            result.arxiv_found += 1
        else:
            result.arxiv_missing += 1
    result.arxiv_seconds = time.perf_counter() - started
    client._session.close()


def _run_hub(targets: list[NaiveTarget], endpoint: str, result: NaiveResult) -> None:
    def count(response: httpx.Response) -> None:
        result.hub_requests += 1

    started = time.perf_counter()
    with httpx.Client(
        base_url=endpoint, follow_redirects=True, event_hooks={"response": [count]}
    ) as client:
        for target in targets:
            try:
                response = client.get(f"/api/{target.hub_collection}/{target.entity_id}")
            except httpx.HTTPError:
                result.hub_failed += 1
                continue
            if response.status_code == 200:
                result.hub_ok += 1
            else:
                result.hub_failed += 1
    result.hub_seconds = time.perf_counter() - started
