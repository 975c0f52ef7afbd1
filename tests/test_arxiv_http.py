"""The arXiv wire layer: query URLs, the run's polite queue and its deadline, one GET."""

from __future__ import annotations

import arxiv
import httpx
import pytest
from fakes import FakeTime

from pipeline.config import Settings
from pipeline.resolve.arxiv_http import (
    ArxivHttp,
    NotAsked,
    PoliteQueue,
    Unanswered,
    asked_ids,
    check_endpoint,
    query_url,
)
from pipeline.resolve.common import CONNECTION_FAILURES_TO_OPEN, Deadline

ENDPOINT = "https://export.arxiv.org/api/query"

# -- URLs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "search", "url"),
    [
        # max_results always sent: the API's default is 10, for id_list too.
        (ENDPOINT, arxiv.Search(id_list=["2409.12191", "hep-th/9901001"], max_results=2),
         ENDPOINT + "?search_query=&id_list=2409.12191%2Chep-th%2F9901001&sortBy=relevance"
         "&sortOrder=descending&start=0&max_results=2"),
        (ENDPOINT, arxiv.Search(query='ti:"Pixtral 12B" OR ti:"Visual Instruction"',
                                max_results=50),
         ENDPOINT + "?search_query=ti%3A%22Pixtral+12B%22+OR+ti%3A%22Visual+Instruction%22"
         "&id_list=&sortBy=relevance&sortOrder=descending&start=0&max_results=50"),
        (ENDPOINT, arxiv.Search(query="all:electron", max_results=1,
                                sort_by=arxiv.SortCriterion.SubmittedDate,
                                sort_order=arxiv.SortOrder.Ascending),
         ENDPOINT + "?search_query=all%3Aelectron&id_list=&sortBy=submittedDate"
         "&sortOrder=ascending&start=0&max_results=1"),
        # A mirror whose endpoint already carries a query keeps it.
        ("http://127.0.0.1:8080/api/query?key=1", arxiv.Search(id_list=["2409.12191"],
                                                              max_results=1),
         "http://127.0.0.1:8080/api/query?key=1&search_query=&id_list=2409.12191"
         "&sortBy=relevance&sortOrder=descending&start=0&max_results=1"),
    ],
)  # fmt: skip
def test_query_url(endpoint: str, search: arxiv.Search, url: str) -> None:
    assert query_url(endpoint, search) == url


def test_query_url_needs_a_result_count() -> None:
    with pytest.raises(ValueError, match="result count"):
        query_url(ENDPOINT, arxiv.Search(query="all:x", max_results=None))
    with pytest.raises(ValueError, match="start"):
        query_url(ENDPOINT, arxiv.Search(query="all:x", max_results=1), start=-1)


@pytest.mark.parametrize(
    ("url", "ids"),
    [
        (query_url(ENDPOINT, arxiv.Search(id_list=["2409.12191", "math.GT/0309136"],
                                          max_results=2)), {"2409.12191", "math/0309136"}),
        (query_url(ENDPOINT, arxiv.Search(query="ti:x", max_results=1)), set()),
        (ENDPOINT + "?id_list=2409.12191v2,..%2F..%2Fetc%2Fpasswd,abc", {"2409.12191"}),
        (ENDPOINT, set()),
    ],
)  # fmt: skip
def test_asked_ids(url: str, ids: set[str]) -> None:
    assert asked_ids(url) == ids


@pytest.mark.parametrize(
    "url", ["export.arxiv.org/api/query", "ftp://export.arxiv.org/api/query", "http:///api", ""]
)
def test_check_endpoint_refuses_what_is_not_an_http_url(url: str) -> None:
    with pytest.raises(ValueError, match="ARXIV_API_URL must be an http"):
        check_endpoint(url)


# -- the polite queue --------------------------------------------------------------------


def _queue(time: FakeTime, delay: float = 3.0, deadline_seconds: float = 100.0) -> PoliteQueue:
    return PoliteQueue(delay, Deadline(deadline_seconds, clock=time.clock), time.sleep, time.clock)


def test_turns_are_the_delay_apart() -> None:
    time = FakeTime()
    queue = _queue(time)
    waits = []
    for _ in range(3):
        with queue.turn() as waited:
            waits.append(waited)
            time.now += 0.5  # the request itself
    assert waits == [0.0, 3.0, 3.0] and time.sleeps == [3.0, 3.0]


def test_a_backoff_holds_the_next_turn() -> None:
    time = FakeTime()
    queue = _queue(time)
    with queue.turn():
        pass
    queue.back_off(30.0, "HTTP 503 from arXiv")
    with queue.turn() as waited:
        assert waited == 30.0  # the backoff, not the shorter delay


def test_a_backoff_past_the_deadline_is_not_taken_and_closes_the_queue(
    caplog: pytest.LogCaptureFixture,
) -> None:
    time = FakeTime()
    queue = _queue(time, deadline_seconds=20.0)
    with pytest.raises(NotAsked) as refused:
        queue.back_off(30.0, "HTTP 503 from arXiv")
    assert refused.value.reason.startswith("HTTP 503 from arXiv; not tried again: a wait of 30 s")
    assert "run deadline" in refused.value.reason
    with (
        pytest.raises(NotAsked, match=r"^not asked: a wait of 30 s would end past the run dead"),
        queue.turn(),
    ):
        pass
    assert time.sleeps == []  # nothing waited for nothing
    assert "nothing more is asked in this run" in caplog.text


def test_a_turn_whose_wait_would_pass_the_deadline_is_refused() -> None:
    time = FakeTime()
    queue = _queue(time, delay=3.0, deadline_seconds=2.0)
    with queue.turn():
        pass
    with (
        pytest.raises(NotAsked, match=r"a wait of 3 s .*; it was for the politeness delay"),
        queue.turn(),
    ):
        pass


def test_no_turn_once_the_deadline_has_passed() -> None:
    time = FakeTime()
    queue = _queue(time, delay=0.0, deadline_seconds=5.0)
    time.now += 5.0
    with (
        pytest.raises(NotAsked, match=r"the run deadline has passed \(run_deadline_seconds=5\)"),
        queue.turn(),
    ):
        pass


def test_waiting_for_a_backoff_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="pipeline.resolve.arxiv_http")
    time = FakeTime()
    queue = _queue(time)
    queue.back_off(12.0, "HTTP 429 from arXiv: Rate exceeded.")
    with queue.turn():
        pass
    assert "waiting 12 s for a backoff after HTTP 429 from arXiv: Rate exceeded." in caplog.text


# -- one GET -----------------------------------------------------------------------------


def _http(
    handler: httpx.MockTransport, time: FakeTime | None = None, **changes: object
) -> ArxivHttp:
    clock = time or FakeTime()
    settings = Settings(arxiv_api_url=ENDPOINT).replace(arxiv_delay_seconds=0.0, **changes)
    queue = PoliteQueue(0.0, Deadline(100.0, clock=clock.clock), clock.sleep, clock.clock)
    return ArxivHttp(settings, queue, clock=clock.clock, transport=handler)


def test_a_get_sends_the_pipelines_user_agent_and_keeps_the_answer_as_received() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(400, content=b"<feed/>", headers={"content-type": "text/xml"})

    http = _http(httpx.MockTransport(answer))
    url = http.url(arxiv.Search(id_list=["abc"], max_results=1))
    reply = http.get(url)
    assert (reply.status, reply.body, reply.headers["content-type"]) == (
        400,
        b"<feed/>",
        "text/xml",
    )
    assert seen[0].headers["user-agent"] == Settings().user_agent
    assert str(seen[0].url) == url


def test_a_redirect_is_an_answer_never_followed() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.host == "export.arxiv.org", "followed a redirect"
        return httpx.Response(301, headers={"location": "http://elsewhere.example/api/query"})

    reply = _http(httpx.MockTransport(answer)).get(ENDPOINT + "?id_list=2409.12191")
    assert reply.status == 301 and reply.headers["location"].startswith("http://elsewhere")


def test_a_body_past_the_limit_is_refused_with_its_status() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * 2048)

    http = _http(httpx.MockTransport(answer), max_response_bytes=1024)
    with pytest.raises(Unanswered, match="HTTP 200 with a body over the 1024-byte limit") as e:
        http.get(ENDPOINT)
    assert e.value.status == 200


def test_a_timeout_is_unanswered_without_a_status() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    http = _http(httpx.MockTransport(answer), arxiv_timeout_seconds=0.5)
    with pytest.raises(Unanswered, match=r"^no answer from arXiv within 0\.5 s$") as e:
        http.get(ENDPOINT)
    assert e.value.status == 0


def test_connection_failures_open_the_breaker() -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        raise httpx.ConnectError("refused", request=request)

    # However many tries a busy arXiv gets, an unreachable one costs three connections.
    http = _http(httpx.MockTransport(answer), arxiv_max_attempts=8)
    for _ in range(CONNECTION_FAILURES_TO_OPEN):
        with pytest.raises(Unanswered, match=r"connection to arXiv failed \(ConnectError\)"):
            http.get(ENDPOINT)
    with pytest.raises(NotAsked, match="arXiv unreachable"):
        http.get(ENDPOINT)
    assert len(sent) == CONNECTION_FAILURES_TO_OPEN == 3
