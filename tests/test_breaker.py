"""A service that cannot be reached at all costs one request's retries, not a night of them."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from fakes import FakeTime

from pipeline.config import Settings
from pipeline.records import RepoRef
from pipeline.resolve.arxiv import ArxivResolver
from pipeline.resolve.common import Breaker, ServiceUnreachable
from pipeline.resolve.hub import HubResolver
from pipeline.resolve.rawstore import RawStore


def test_the_breaker_opens_after_a_run_of_failures_and_closes_on_any_answer() -> None:
    breaker = Breaker("arXiv", threshold=2)
    breaker.failure("refused")
    breaker.check()  # one failure: still asking
    breaker.success()
    breaker.failure("refused")
    breaker.check()  # the answer in between reset the count
    breaker.failure("refused")
    with pytest.raises(ServiceUnreachable, match=r"arXiv unreachable \(refused, 2 "):
        breaker.check()
    breaker.success()
    breaker.check()


@pytest.fixture
def dead_endpoint() -> str:
    """An address on loopback where nothing listens: every connection is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _settings(endpoint: str) -> Settings:
    return Settings.from_env(
        {"ARXIV_API_URL": f"{endpoint}/api/query", "HF_ENDPOINT": endpoint}
    ).replace(arxiv_batch_size=10, arxiv_max_attempts=3, hub_max_attempts=3, hub_concurrency=1)


def test_arxiv_stops_asking_once_it_cannot_connect(dead_endpoint: str, tmp_path: Path) -> None:
    fake = FakeTime()
    ids = [f"2409.{n:05d}" for n in range(1, 51)]  # five batches
    with RawStore(tmp_path) as store:
        resolver = ArxivResolver(
            _settings(dead_endpoint), store, sleep=fake.sleep, clock=fake.clock
        )
        records = resolver.resolve_ids(ids)
    assert resolver.stats.requests == 3  # one batch's attempts, then no more
    assert {record.status for record in records.values()} == {"error"}
    assert "arXiv unreachable" in (records[ids[-1]].status_reason or "")


def test_the_hub_stops_asking_once_it_cannot_connect(dead_endpoint: str, tmp_path: Path) -> None:
    fake = FakeTime()
    refs: list[RepoRef] = [("model", f"org/model-{n}") for n in range(20)]
    with RawStore(tmp_path) as store:
        resolver = HubResolver(_settings(dead_endpoint), store, sleep=fake.sleep, clock=fake.clock)
        records = resolver.resolve_repos(refs)
    assert resolver.stats.requests == 3
    assert {record.status for record in records.values()} == {"error"}
    assert "Hugging Face Hub unreachable" in (records[refs[-1]].status_reason or "")
