"""The sandbox's server: how faults meet requests over HTTP, and the request log."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from lxml import etree

from pipeline.records import INT64_MAX
from pipeline.sandbox import (
    Fault,
    LoggedRequest,
    Sandbox,
    faults_from_spec,
    politeness_violations,
)
from pipeline.sandbox.arxiv_api import ATOM_NS, ArxivDouble
from pipeline.sandbox.hub_api import HubDouble

OPENSEARCH = "{http://a9.com/-/spec/opensearch/1.1/}"
MODEL = "/api/models/Qwen/Qwen2-VL-72B"
ARXIV_IDS = [f"2402.{n:05d}" for n in range(1, 201)]


def _entries(body: bytes) -> tuple[int, int]:
    """(entries, totalResults) of an Atom feed."""
    feed = etree.fromstring(body)
    total = int(feed.findtext(f"{OPENSEARCH}totalResults"))
    return len(feed.findall(f"{{{ATOM_NS}}}entry")), total


def _raw_get(base: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """One GET on a bare socket, read until the server closes it: (status, headers,
    every body byte that came)."""
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as connection:
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


# -- each fault of the spec, over HTTP ------------------------------------------------------
Check = Callable[[httpx.Response], bool]

SPEC_ITEMS: list[tuple[str, str, str, Check]] = [
    ("arxiv:503:1", "arxiv", "/api/query?id_list=2402.00001", lambda r: r.status_code == 503),
    (
        "arxiv:429:1",
        "arxiv",
        "/api/query?id_list=2402.00001",
        lambda r: (
            (r.status_code, r.content) == (429, b"Rate exceeded.")
            and "retry-after" not in r.headers
        ),
    ),
    (
        "arxiv:empty:1",
        "arxiv",
        "/api/query?id_list=2402.00001,2402.00002",
        lambda r: r.status_code == 200 and _entries(r.content) == (0, 2),
    ),
    ("hub:5xx:1", "hub", MODEL, lambda r: r.status_code in (500, 502, 503, 504)),
    ("hub:504:1", "hub", MODEL, lambda r: r.status_code == 504),
    (
        "hub:429:1",
        "hub",
        MODEL,
        lambda r: (
            r.status_code == 429
            and r.headers["ratelimit"] == '"api";r=0;t=3'
            and r.headers["ratelimit-policy"] == '"fixed window";"api";q=500;w=300'
            and "retry-after" not in r.headers
        ),
    ),
    ("hub:429:1/9", "hub", MODEL, lambda r: r.headers["ratelimit"] == '"api";r=0;t=9'),
    (
        "hub:huge-ints:1",
        "hub",
        MODEL,
        lambda r: json.loads(r.content)["safetensors"]["total"] > INT64_MAX,
    ),
    (
        "hub:id-traversal:1",
        "hub",
        MODEL,
        lambda r: json.loads(r.content)["id"] == "../../../../etc/passwd",
    ),
    ("hub:id-absolute:1", "hub", MODEL, lambda r: json.loads(r.content)["id"] == "/etc/passwd"),
    (
        "hub:id-url:1",
        "hub",
        MODEL,
        lambda r: json.loads(r.content)["id"].startswith("https://"),
    ),
    (
        "hub:quota:0/500/300",
        "hub",
        MODEL,
        lambda r: (
            r.status_code == 429
            and re.fullmatch(r'"api";r=0;t=\d+', r.headers["ratelimit"]) is not None
        ),
    ),
]


@pytest.mark.parametrize(
    ("spec", "api", "path", "check"), SPEC_ITEMS, ids=[item[0] for item in SPEC_ITEMS]
)
def test_every_spec_item_over_http(spec: str, api: str, path: str, check: Check) -> None:
    with Sandbox(arxiv=ArxivDouble(synthesize_unknown=True), faults=faults_from_spec(spec)) as box:
        base = box.hf_endpoint if api == "hub" else box.arxiv_api_url.removesuffix("/api/query")
        response = httpx.get(base + path, timeout=5)
        logged = [r.status for r in box.requests()]
    assert check(response), (response.status_code, response.headers, response.content[:200])
    assert logged == [response.status_code]


@pytest.mark.parametrize("api", ["arxiv", "hub"])
def test_truncated_sends_less_than_its_content_length_then_closes(api: str) -> None:
    spec = f"{api}:truncated:1"
    with Sandbox(arxiv=ArxivDouble(synthesize_unknown=True), faults=faults_from_spec(spec)) as box:
        if api == "hub":
            base, path = box.hf_endpoint, MODEL
        else:
            base, path = (
                box.arxiv_api_url.removesuffix("/api/query"),
                "/api/query?id_list=2402.00001",
            )
        status, headers, body = _raw_get(base, path)  # returns: the server closed
    assert status == 200
    assert 0 < len(body) < int(headers["content-length"])
    if api == "hub":  # the real answer's headers, RateLimit included
        assert headers["ratelimit"].startswith('"api";r=')


# -- probabilistic faults -------------------------------------------------------------------
def _hub_statuses(spec: str, paths: list[str]) -> dict[str, int]:
    double = HubDouble(synthesize_unknown=True, quota=1_000_000)
    faults = faults_from_spec(spec)
    with (
        Sandbox(hub=double, faults=faults) as box,
        httpx.Client(base_url=box.hf_endpoint) as client,
    ):
        return {path: client.get(path).status_code for path in paths}


MODEL_PATHS = [f"/api/models/sample-org/model-{n:04d}" for n in range(60)]


def test_a_seed_gives_the_same_faults_to_the_same_requests_in_any_order() -> None:
    first = _hub_statuses("hub:503:0.5,seed:7", MODEL_PATHS)
    again = _hub_statuses("hub:503:0.5,seed:7", list(reversed(MODEL_PATHS)))
    other = _hub_statuses("hub:503:0.5,seed:8", MODEL_PATHS)
    assert first == again
    assert first != other
    assert 15 <= Counter(first.values())[503] <= 45
    assert set(first.values()) == {200, 503}


def test_shares_of_one_api_split_the_requests() -> None:
    spec = "arxiv:503:0.25,arxiv:empty:0.15,seed:1"
    outcomes: Counter[str] = Counter()
    double = ArxivDouble(synthesize_unknown=True)
    with Sandbox(arxiv=double, faults=faults_from_spec(spec)) as box, httpx.Client() as client:
        for arxiv_id in ARXIV_IDS:
            response = client.get(box.arxiv_api_url, params={"id_list": arxiv_id})
            if response.status_code == 503:
                outcomes["503"] += 1
            elif _entries(response.content) == (0, 1):
                outcomes["empty"] += 1
            else:
                assert _entries(response.content) == (1, 1)
                outcomes["whole"] += 1
    assert sum(outcomes.values()) == len(ARXIV_IDS)
    assert 35 <= outcomes["503"] <= 65  # 50 expected
    assert 18 <= outcomes["empty"] <= 42  # 30 expected


def test_a_repeated_request_gets_a_fresh_draw() -> None:
    statuses = _repeat("hub:503:0.5", 40)
    assert Counter(statuses)[503] not in (0, 40)
    assert statuses == _repeat("hub:503:0.5", 40)  # and the same draws next time


def _repeat(spec: str, times: int) -> list[int]:
    faults = faults_from_spec(spec)
    with Sandbox(faults=faults) as box, httpx.Client(base_url=box.hf_endpoint) as client:
        return [client.get(MODEL).status_code for _ in range(times)]


def test_times_still_caps_a_probabilistic_fault() -> None:
    fault = Fault("hub", "status", times=2, status=503, probability=0.5)
    with Sandbox(faults=[fault]) as box, httpx.Client(base_url=box.hf_endpoint) as client:
        statuses = [client.get(MODEL).status_code for _ in range(40)]
    assert Counter(statuses)[503] == 2
    assert fault.times == 0


# -- the Hub quota --------------------------------------------------------------------------
def test_quota_then_429_until_the_window_resets_then_the_full_quota() -> None:
    quota = Fault("hub", "quota", quota=3, window_seconds=1, quota_left=2)
    with Sandbox(faults=[quota]) as box, httpx.Client(base_url=box.hf_endpoint) as client:
        started = time.monotonic()
        first = [client.get(MODEL) for _ in range(3)]
        time.sleep(max(0.0, started + 1.05 - time.monotonic()))
        second = [client.get(MODEL) for _ in range(4)]
    assert [r.status_code for r in first] == [200, 200, 429]
    assert [r.headers["ratelimit"] for r in first] == [
        '"api";r=1;t=1',
        '"api";r=0;t=1',
        '"api";r=0;t=1',
    ]
    # The quota's policy replaces the double's own (500 per 300 s).
    assert {r.headers["ratelimit-policy"] for r in first + second} == {
        '"fixed window";"api";q=3;w=1'
    }
    assert "retry-after" not in first[2].headers
    assert [r.status_code for r in second] == [200, 200, 200, 429]
    assert [r.headers["ratelimit"] for r in second[:3]] == [
        '"api";r=2;t=1',
        '"api";r=1;t=1',
        '"api";r=0;t=1',
    ]


def test_the_quota_counts_requests_that_met_other_faults() -> None:
    faults = [
        Fault("hub", "quota", quota=500, window_seconds=300, quota_left=2),
        Fault("hub", "status", times=1, status=503),
    ]
    with Sandbox(faults=faults) as box, httpx.Client(base_url=box.hf_endpoint) as client:
        statuses = [client.get(MODEL).status_code for _ in range(3)]
        box.clear_faults()
        after = client.get(MODEL)
    assert statuses == [503, 200, 429]
    assert after.status_code == 200  # clearing the faults ends the quota


def test_a_quota_on_arxiv_or_an_unknown_api_fault_is_refused() -> None:
    box = Sandbox()
    with pytest.raises(ValueError, match="arXiv sends no RateLimit"):
        box.add_fault(Fault("arxiv", "quota", quota=1, window_seconds=1))
    with pytest.raises(ValueError, match="unknown Hub API fault 'empty_page'"):
        box.add_fault(Fault("hub", "api", name="empty_page"))
    with pytest.raises(ValueError, match="unknown arXiv API fault"):
        Sandbox(faults=[Fault("arxiv", "api", name="huge_ints")])
    assert box.faults == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"probability": 0.0}, "probability must be in"),
        ({"probability": 1.5}, "probability must be in"),
        ({"times": -2}, "times must be -1"),
        ({"kind": "quota", "quota": 0, "window_seconds": 1}, "quota >= 1"),
        ({"kind": "quota", "quota": 5, "window_seconds": 1, "quota_left": 6}, "quota_left"),
    ],
)
def test_impossible_faults_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Fault(**{"api": "hub", "kind": "status", **fields})


# -- the request log and politeness ---------------------------------------------------------
def _logged(received_at: float, at: float) -> LoggedRequest:
    return LoggedRequest("arxiv", "GET", "/api/query", "", 200, "", False, at, received_at)


@pytest.mark.parametrize(
    ("times", "delay", "violating"),
    [
        ([(0.0, 0.1), (3.2, 3.3), (6.5, 6.6)], 3.0, []),
        ([(0.0, 0.1), (3.0, 3.1)], 3.0, []),  # exactly the delay is polite
        ([(0.0, 0.1), (2.9, 3.0), (6.0, 6.1)], 3.0, [1]),
        ([(3.2, 3.3), (0.0, 0.1)], 3.0, []),  # arrival order, not log order
        ([(0.0, 5.0), (4.0, 4.5)], 3.0, [1]),  # arrived while the first was being answered
        ([(0.0, 0.1), (0.05, 0.2), (0.1, 0.3)], 0.0, [1, 2]),  # overlaps, whatever the delay
    ],
)
def test_politeness_violations(
    times: list[tuple[float, float]], delay: float, violating: list[int]
) -> None:
    log = [_logged(received, answered) for received, answered in times]
    found = politeness_violations(log, delay)
    ordered = sorted(log, key=lambda entry: entry.received_at)
    assert [ordered.index(v.later) for v in found] == violating
    for violation in found:
        assert violation.earlier is ordered[ordered.index(violation.later) - 1]


def test_the_log_tells_when_each_request_arrived_and_was_answered() -> None:
    delay = 0.15
    with Sandbox(arxiv=ArxivDouble(synthesize_unknown=True)) as box, httpx.Client() as client:
        for arxiv_id in ARXIV_IDS[:3]:
            client.get(box.arxiv_api_url, params={"id_list": arxiv_id})
            time.sleep(delay)
        polite = box.politeness_violations(delay)
        box.reset_log()
        for arxiv_id in ARXIV_IDS[:3]:
            client.get(box.arxiv_api_url, params={"id_list": arxiv_id})
        hasty = box.politeness_violations(delay)
        log = box.requests("arxiv")
    assert polite == []
    assert len(hasty) == 2 and all(v.gap_seconds < delay for v in hasty)
    assert not any(v.overlapping for v in hasty)
    assert all(entry.received_at <= entry.at for entry in log)


def test_two_connections_at_once_are_a_violation() -> None:
    with Sandbox(latency_seconds=0.2) as box:
        threads = [
            threading.Thread(target=httpx.get, args=(box.arxiv_api_url + "?id_list=2409.12191",))
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        (violation,) = box.politeness_violations(0.0)
    assert violation.overlapping
