"""arXiv resolution: batched `id_list` lookups and title searches, answered from the raw
store when it can, politely from the API when it must.

Pure parts (no network, no disk): `read_feed` (one reading of an arXiv answer, live or
stored), `paper_record`, `code_urls`, `normalise_title`, `title_phrase`, `match_title`,
`looks_like_paper_title` and `title_candidates`. `ArxivResolver` is the edge: it sends the
requests through `arxiv.Client`'s session, keeps every answer in the raw store, and owns
the retry policy.

How a paper gets its status:
- ok: arXiv's entry, fetched tonight, or read from a stored answer younger than
  `arxiv_ttl_seconds` (any age when the refresh policy is OFFLINE);
- not_found: arXiv answered without an entry for the ID (stored answers of that kind are
  reused for `arxiv_not_found_ttl_seconds`), rejected the ID's format, or our own
  validation refused the ID, which is then never sent;
- stale: tonight's lookup failed after `arxiv_max_attempts` tries, or arXiv said "no
  such paper" about a paper it had answered before (its API is known to answer 200 with
  no results under load); the record carries the last good answer and says why;
- error: the lookup failed and the raw store holds no good answer.

Politeness, across every thread of the process: one request at a time per endpoint,
`arxiv_delay_seconds` apart; after a 429, a 503, a timeout, a garbled or short answer,
every thread waits out the exponential backoff (`arxiv_backoff_seconds`, doubling,
capped at `arxiv_backoff_max_seconds`) before the endpoint is asked again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import urlsplit

import arxiv
import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from pipeline.config import RefreshPolicy, Settings
from pipeline.links.documents import Link
from pipeline.links.identify import parse_arxiv_id
from pipeline.records import ApiStats, PaperRecord, Status, TitleMatch
from pipeline.resolve.arxiv_feed import (
    Feed,
    FeedError,
    _candidates,
    paper_record,
    read_feed,
)
from pipeline.resolve.common import (
    Breaker,
    Progress,
    ProgressCallback,
    Refused,
    ServiceUnreachable,
)
from pipeline.resolve.rawstore import Outcome, RawStore, StoredAnswer, StoredResponse
from pipeline.resolve.titles import (
    TitleVerdict,
    _search_phrase,
    looks_like_paper_title,
    match_title,
    normalise_title,
)

logger = logging.getLogger(__name__)

API = "arxiv"
ID_LIST_ENDPOINT = "id_list"
SEARCH_ENDPOINT = "search"
PAPER = "paper"
"""Raw-store entity kind of an arXiv ID's answer."""
TITLE = "title"
"""Raw-store entity kind of a title search's answer (keyed by `normalise_title`)."""

CANDIDATES_PER_TITLE = 25
"""Search results asked per title. A title's own paper ranks near the top of its phrase's
matches (the shortest matching titles score highest), so 25 leave room for the longer
titles that contain the phrase; a full page without a match is asked again for that title
alone before it counts as not found."""
MAX_REJECTIONS_PER_BATCH = 5
"""IDs arXiv may refuse one by one in a batch (each refusal costs a request) before the
rest of the batch fails: our validation follows arXiv's, so one refusal is already rare."""

_CHUNK_BYTES = 64 * 1024


# -- records -----------------------------------------------------------------------------


# -- reading arXiv's answers (pure) ------------------------------------------------------


# fmt: on


# -- titles (pure) -----------------------------------------------------------------------


def title_candidates(links: Iterable[Link]) -> list[str]:
    """Distinct link texts worth a title search, in first-seen order: texts of main links
    that lead to no paper yet (not arXiv links or mentions, no resolved ID) and look like
    a paper's title (`looks_like_paper_title`)."""
    found: dict[str, None] = {}
    for link in links:
        if not link.occurrence.is_main_link or link.resolved_arxiv_id is not None:
            continue
        if link.identity.kind in ("arxiv", "arxiv_mention"):
            continue
        text = " ".join(link.occurrence.link_text.split())
        if text not in found and looks_like_paper_title(text):
            found[text] = None
    return list(found)


# -- politeness --------------------------------------------------------------------------


class _Throttle:
    """One request at a time to an endpoint, `delay` apart, with a shared cool-down.

    Module-level per endpoint (`_throttle_for`), not per resolver: Prefect runs tasks in
    threads, and arXiv's terms count every request from the machine. A backoff after a
    429 or a 503 holds every thread off, not only the one that got it.
    """

    def __init__(self) -> None:
        self._in_flight = threading.Lock()
        self._state = threading.Lock()
        self._not_before: float | None = None

    @contextmanager
    def turn(
        self, delay_seconds: float, sleep: Callable[[float], None], clock: Callable[[], float]
    ) -> Iterator[float]:
        """Wait for this thread's turn; yields the seconds waited. The next turn starts no
        earlier than `delay_seconds` after this one ends."""
        with self._in_flight:
            waited = 0.0
            while True:
                with self._state:
                    target = self._not_before
                wait = 0.0 if target is None else target - clock()
                if wait <= 0:
                    break
                sleep(wait)
                waited += wait
                with self._state:
                    if self._not_before == target:  # not pushed further while we slept
                        break
            try:
                yield waited
            finally:
                self.hold_off(delay_seconds, clock)

    def hold_off(self, seconds: float, clock: Callable[[], float]) -> None:
        """No request starts before `seconds` from now."""
        with self._state:
            at = clock() + seconds
            if self._not_before is None or at > self._not_before:
                self._not_before = at


_THROTTLES: dict[str, _Throttle] = {}
_THROTTLES_LOCK = threading.Lock()


def _throttle_for(url: str) -> _Throttle:
    parts = urlsplit(url)
    key = f"{parts.scheme}://{parts.netloc}".lower()
    with _THROTTLES_LOCK:
        return _THROTTLES.setdefault(key, _Throttle())


# -- the client --------------------------------------------------------------------------


class _Transient(Exception):
    """A failure worth another try after a backoff (429, 5xx, timeout, garbled answer)."""


class _TooLarge(Exception):
    def __init__(self, status: int, limit: int) -> None:
        super().__init__(f"HTTP {status} with a body over the {limit}-byte limit")
        self.status = status


@dataclass(frozen=True, slots=True)
class _Exchange:
    stored: StoredResponse
    status: int
    body: bytes


class _Client(arxiv.Client):  # type: ignore[misc]
    """`arxiv.Client` for its URL format and its session, one request per call.

    `arxiv.Client.results()` retries any non-200 (a 400 too), drops error bodies, pages on
    its own and sends its own user agent; the resolver needs every answer as received and
    owns the retry policy, so it asks through `fetch`. `num_retries=0` and
    `delay_seconds=0` keep the inherited machinery inert should anyone call it.
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__(page_size=settings.arxiv_batch_size, delay_seconds=0.0, num_retries=0)
        separator = "&" if "?" in settings.arxiv_api_url else "?"
        self.query_url_format = settings.arxiv_api_url + separator + "{}"
        self._session.headers["User-Agent"] = settings.user_agent
        self.settings = settings

    def url_for(self, search: arxiv.Search) -> str:
        url: str = self._format_url(search, 0, search.max_results)
        return url

    def fetch(self, url: str) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of one GET; `_TooLarge` past `max_response_bytes`."""
        timeout = self.settings.arxiv_timeout_seconds
        limit = self.settings.max_response_bytes
        with self._session.get(
            url,
            headers={"User-Agent": self.settings.user_agent},
            timeout=(timeout, timeout),
            stream=True,
            # Only ARXIV_API_URL is asked: a redirect is an answer, never followed.
            allow_redirects=False,
        ) as response:
            body = bytearray()
            for chunk in response.iter_content(_CHUNK_BYTES):
                body += chunk
                if len(body) > limit:
                    raise _TooLarge(response.status_code, limit)
            return response.status_code, dict(response.headers), bytes(body)

    def close(self) -> None:
        self._session.close()


def _snippet(body: bytes, limit: int = 120) -> str:
    text = " ".join(body[: limit * 2].decode("utf-8", "replace").split())
    return text[:limit] + ("…" if len(text) > limit else "")


def _check_endpoint(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"ARXIV_API_URL must be an http(s) URL with a host, not {url!r}")


# -- the resolver ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _TitleQuery:
    key: str
    """`normalise_title` of the title: the raw-store key."""
    title: str
    """The first spelling given; its words make the phrase."""


@dataclass
class _TitleOutcome:
    """A title's resolution before it is copied to every spelling that shares its key."""

    status: Status
    verdict: TitleVerdict
    reason: str | None = None
    fetched_at: datetime | None = None


class ArxivResolver:
    """Resolves arXiv IDs and titles; one instance per run, shared by all tasks.

    `sleep` and `clock` are injectable so that tests neither sleep nor depend on timing;
    `backoffs` lists every backoff chosen, in order.
    """

    def __init__(
        self,
        settings: Settings,
        store: RawStore,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _check_endpoint(settings.arxiv_api_url)
        if settings.arxiv_batch_size < 1 or settings.arxiv_titles_per_request < 1:
            raise ValueError("arxiv_batch_size and arxiv_titles_per_request must be at least 1")
        self.settings = settings
        self.store = store
        self.stats = ApiStats(api="arxiv")
        self.backoffs: list[float] = []
        self._sleep = sleep
        self._clock = clock
        self._client = _Client(settings)
        self._throttle = _throttle_for(settings.arxiv_api_url)
        self._breaker = Breaker("arXiv", settings.arxiv_max_attempts)
        self._lock = threading.Lock()
        self._feeds: dict[int, Feed | None] = {}

    def close(self) -> None:
        self._client.close()

    # -- IDs -----------------------------------------------------------------------------

    def resolve_ids(
        self, arxiv_ids: Iterable[str], on_progress: ProgressCallback | None = None
    ) -> dict[str, PaperRecord]:
        """One record per distinct valid ID given (canonical, without version). An ID our
        validation refuses is never sent: it gets a `not_found` record under its text."""
        records: dict[str, PaperRecord] = {}
        wanted: dict[str, None] = {}
        for given in arxiv_ids:
            text = given.strip()
            parsed = parse_arxiv_id(text)
            if parsed is None:
                records.setdefault(
                    text,
                    PaperRecord(
                        text, "not_found", f"not a valid arXiv identifier: {text!r} (never sent)"
                    ),
                )
            else:
                wanted.setdefault(parsed[0], None)
        progress = Progress(on_progress, total=len(records) + len(wanted))
        progress.advance(len(records))
        to_ask: list[str] = []
        for arxiv_id in wanted:
            record = self._paper_from_store(arxiv_id)
            if record is None:
                to_ask.append(arxiv_id)
                continue
            records[arxiv_id] = record
            self._stats(from_store=1)
            progress.advance(1)
        size = self.settings.arxiv_batch_size
        for start in range(0, len(to_ask), size):
            batch = to_ask[start : start + size]
            records.update(self._ask_ids(batch))
            progress.advance(len(batch))
        return records

    def _paper_from_store(self, arxiv_id: str) -> PaperRecord | None:
        answer = self._usable_answer(PAPER, arxiv_id)
        if answer is None:
            return self._offline_error(arxiv_id)
        record = self._paper_from_answer(arxiv_id, answer)
        if record is None:
            return self._offline_error(arxiv_id, "the stored answer cannot be read")
        return record

    def _offline_error(self, arxiv_id: str, why: str = "no stored answer") -> PaperRecord | None:
        if self.settings.refresh is RefreshPolicy.OFFLINE:
            return PaperRecord(arxiv_id, "error", f"offline: {why}")
        return None

    def _paper_from_answer(self, arxiv_id: str, answer: StoredAnswer) -> PaperRecord | None:
        feed = self._stored_feed(answer.response)
        if feed is None:
            return None
        fetched_at = answer.response.fetched_at
        if answer.outcome == "ok":
            entry = feed.entry(arxiv_id)
            if entry is None:
                logger.warning("stored answer %s lacks %s", answer.response.response_id, arxiv_id)
                return None
            return paper_record(arxiv_id, entry, fetched_at=fetched_at)
        return self._not_found(arxiv_id, feed.not_found_reason(arxiv_id), fetched_at)

    def _ask_ids(self, batch: list[str]) -> dict[str, PaperRecord]:
        done: dict[str, PaperRecord] = {}
        pending = list(batch)
        failure = "no answer"
        try:
            for attempt in self._retrying():
                with attempt:
                    self._ask_ids_once(pending, done)
        except (_Transient, Refused) as exc:
            failure = str(exc)
        for arxiv_id in pending:
            done[arxiv_id] = self._failed_paper(arxiv_id, failure)
        return done

    def _ask_ids_once(self, pending: list[str], done: dict[str, PaperRecord]) -> None:
        """Ask for every pending ID; settled ones leave `pending`. A 400 naming one ID drops
        that ID and asks again for the rest: arXiv fails a whole batch for one bad ID."""
        rejected = 0
        while pending:
            search = arxiv.Search(id_list=list(pending), max_results=len(pending))
            exchange = self._exchange(ID_LIST_ENDPOINT, search)
            feed = self._feed_of(exchange)
            fetched_at = exchange.stored.fetched_at
            if feed.errors:
                bad = next((e.rejected_id for e in feed.errors if e.rejected_id in pending), None)
                message = feed.errors[0].message
                if bad is None:
                    raise Refused(f"HTTP {exchange.status}: arXiv refused the request: {message}")
                rejected += 1
                if rejected > MAX_REJECTIONS_PER_BATCH:
                    # arXiv's rule and ours disagree wholesale: stop spending requests.
                    raise Refused(f"arXiv rejected {rejected} identifiers in a row ({message})")
                self.store.mark(exchange.stored, PAPER, [bad], "not_found")
                # An ID arXiv answered before is no less valid for being refused tonight.
                done[bad] = self._not_found(bad, feed.not_found_reason(bad), fetched_at)
                pending.remove(bad)
                continue
            if problem := feed.shortfall(len(pending)):
                raise _Transient(problem)
            found: list[str] = []
            absent: list[str] = []
            broken: dict[str, tuple[str, ...]] = {}
            for arxiv_id in pending:
                entry = feed.entry(arxiv_id)
                if entry is not None:
                    found.append(arxiv_id)
                    done[arxiv_id] = paper_record(arxiv_id, entry, fetched_at=fetched_at)
                elif (missing := feed.missing_fields(arxiv_id)) is not None:
                    broken[arxiv_id] = missing
                else:
                    absent.append(arxiv_id)
            self._mark(exchange.stored, PAPER, found, "ok")
            self._mark(exchange.stored, PAPER, absent, "not_found")
            for arxiv_id in absent:
                done[arxiv_id] = self._not_found(
                    arxiv_id, feed.not_found_reason(arxiv_id), fetched_at
                )
            pending[:] = list(broken)
            if broken:
                described = "; ".join(f"{i} lacks {', '.join(m)}" for i, m in broken.items())
                raise _Transient(f"incomplete arXiv entries: {described}")

    def _not_found(self, arxiv_id: str, reason: str, fetched_at: datetime) -> PaperRecord:
        """arXiv's "no such paper" — unless it had the paper before: arXiv IDs are never
        reused or deleted, and its API answers 200 with no results under load."""
        last = self.store.last_good(API, PAPER, arxiv_id)
        if last is not None:
            record = self._paper_from_answer(arxiv_id, last)
            if record is not None:
                return _stale(record, f"{reason} tonight", last)
        return PaperRecord(arxiv_id, "not_found", reason, data_fetched_at=fetched_at)

    def _failed_paper(self, arxiv_id: str, reason: str) -> PaperRecord:
        last = self.store.last_good(API, PAPER, arxiv_id)
        if last is not None:
            record = self._paper_from_answer(arxiv_id, last)
            if record is not None:
                return _stale(record, reason, last)
        return PaperRecord(arxiv_id, "error", reason)

    # -- titles --------------------------------------------------------------------------

    def resolve_titles(
        self, titles: Iterable[str], on_progress: ProgressCallback | None = None
    ) -> dict[str, TitleMatch]:
        """One match per distinct title given, keyed by the title as given. Spellings that
        normalise alike share one search and one stored answer."""
        results: dict[str, TitleMatch] = {}
        groups: dict[str, list[str]] = {}
        seen: set[str] = set()
        for title in titles:
            if title in seen:
                continue
            seen.add(title)
            key = normalise_title(title)
            if key:
                groups.setdefault(key, []).append(title)
            else:
                results[title] = TitleMatch(title, "not_found", status_reason="no words to search")
        progress = Progress(on_progress, total=len(results) + sum(map(len, groups.values())))
        progress.advance(len(results))

        def settle(query: _TitleQuery, outcome: _TitleOutcome) -> None:
            for title in groups[query.key]:
                results[title] = _title_match(title, outcome)
            progress.advance(len(groups[query.key]))

        to_ask: list[_TitleQuery] = []
        for key, group in groups.items():
            query = _TitleQuery(key, group[0])
            outcome = self._title_from_store(query)
            if outcome is None:
                to_ask.append(query)
            else:
                self._stats(from_store=1)
                settle(query, outcome)
        size = self.settings.arxiv_titles_per_request
        queue = deque(to_ask[start : start + size] for start in range(0, len(to_ask), size))
        while queue:
            batch = queue.popleft()
            outcomes, alone = self._ask_titles(batch)
            queue.extend([query] for query in alone)
            for query in batch:
                if query.key in outcomes:
                    settle(query, outcomes[query.key])
        return results

    def _title_from_store(self, query: _TitleQuery) -> _TitleOutcome | None:
        answer = self._usable_answer(TITLE, query.key)
        if answer is not None and (outcome := self._title_from_answer(query, answer)):
            return outcome
        if self.settings.refresh is RefreshPolicy.OFFLINE:
            why = "no stored answer" if answer is None else "the stored answer cannot be read"
            return _TitleOutcome("error", TitleVerdict(None), f"offline: {why}")
        return None

    def _title_from_answer(self, query: _TitleQuery, answer: StoredAnswer) -> _TitleOutcome | None:
        feed = self._stored_feed(answer.response)
        if feed is None:
            return None
        verdict = match_title(query.title, _candidates(feed))
        status: Status = "ok" if verdict.arxiv_id else "not_found"
        return _TitleOutcome(status, verdict, verdict.reason, answer.response.fetched_at)

    def _ask_titles(
        self, batch: list[_TitleQuery]
    ) -> tuple[dict[str, _TitleOutcome], list[_TitleQuery]]:
        """Outcomes of one search for several titles, and the titles to ask again alone
        (the page was full without their paper, or arXiv refused the combined query)."""
        query = " OR ".join(f'ti:"{_search_phrase(q.title)}"' for q in batch)
        max_results = CANDIDATES_PER_TITLE * len(batch)
        search = arxiv.Search(query=query, max_results=max_results)
        try:
            exchange, feed = self._search(search)
        except Refused as exc:
            if len(batch) > 1:
                return {}, batch
            return {batch[0].key: self._failed_title(batch[0], str(exc))}, []
        except _Transient as exc:
            return {q.key: self._failed_title(q, str(exc)) for q in batch}, []
        candidates = _candidates(feed)
        complete = feed.total_results <= len(candidates)
        outcomes: dict[str, _TitleOutcome] = {}
        alone: list[_TitleQuery] = []
        fetched_at = exchange.stored.fetched_at
        for item in batch:
            verdict = match_title(item.title, candidates)
            if verdict.arxiv_id is not None:
                self.store.mark(exchange.stored, TITLE, [item.key], "ok")
                # The search answer holds the paper's full entry: it answers the ID too.
                self.store.mark(exchange.stored, PAPER, [verdict.arxiv_id], "ok")
                outcomes[item.key] = _TitleOutcome("ok", verdict, None, fetched_at)
            elif not complete and len(batch) > 1:
                alone.append(item)
            else:
                reason = verdict.reason
                if not complete:
                    reason = (
                        f"not among the first {len(candidates)} of {feed.total_results}"
                        f" papers whose title contains it; {reason}"
                    )
                self.store.mark(exchange.stored, TITLE, [item.key], "not_found")
                outcomes[item.key] = _TitleOutcome("not_found", verdict, reason, fetched_at)
        return outcomes, alone

    def _search(self, search: arxiv.Search) -> tuple[_Exchange, Feed]:
        for attempt in self._retrying():
            with attempt:
                exchange = self._exchange(SEARCH_ENDPOINT, search)
                feed = self._feed_of(exchange)
                if feed.errors:
                    message = feed.errors[0].message
                    raise Refused(f"HTTP {exchange.status}: arXiv refused the search: {message}")
                if problem := feed.shortfall(search.max_results):
                    raise _Transient(problem)
                if feed.incomplete:
                    raise _Transient(
                        f"incomplete arXiv entries: {', '.join(sorted(feed.incomplete))}"
                    )
                return exchange, feed
        raise AssertionError("unreachable: tenacity re-raises the last failure")

    def _failed_title(self, query: _TitleQuery, reason: str) -> _TitleOutcome:
        last = self.store.last_good(API, TITLE, query.key)
        if last is not None:
            outcome = self._title_from_answer(query, last)
            if outcome is not None and outcome.status == "ok":
                when = _when(last.response.fetched_at)
                reason = f"{reason}; last good answer from {when}"
                return _TitleOutcome("stale", outcome.verdict, reason, outcome.fetched_at)
        return _TitleOutcome("error", TitleVerdict(None), reason)

    # -- the edge: store, requests, retries ----------------------------------------------

    def _usable_answer(self, kind: str, key: str) -> StoredAnswer | None:
        """The stored answer the refresh policy lets this run reuse, if any."""
        policy = self.settings.refresh
        if policy is RefreshPolicy.REFRESH:
            return None
        answer = self.store.answer(API, kind, key)
        if answer is None or policy is RefreshPolicy.OFFLINE:
            return answer
        ttl = (
            self.settings.arxiv_ttl_seconds
            if answer.outcome == "ok"
            else self.settings.arxiv_not_found_ttl_seconds
        )
        return answer if answer.age_seconds() < ttl else None

    def _stored_feed(self, response: StoredResponse) -> Feed | None:
        """A stored body, read once per run (one body answers up to a batch of IDs)."""
        with self._lock:
            if response.response_id in self._feeds:
                return self._feeds[response.response_id]
        feed: Feed | None
        try:
            feed = read_feed(response.read())
        except (OSError, FeedError) as exc:
            logger.warning("stored arXiv answer %s unreadable: %s", response.body_path, exc)
            feed = None
        with self._lock:
            self._feeds[response.response_id] = feed
        return feed

    def _mark(
        self, response: StoredResponse, kind: str, keys: Sequence[str], outcome: Outcome
    ) -> None:
        if keys:
            self.store.mark(response, kind, keys, outcome)

    def _retrying(self) -> Retrying:
        settings = self.settings
        return Retrying(
            stop=stop_after_attempt(max(settings.arxiv_max_attempts, 1)),
            wait=wait_exponential(
                multiplier=settings.arxiv_backoff_seconds, max=settings.arxiv_backoff_max_seconds
            ),
            retry=retry_if_exception_type(_Transient),
            sleep=self._back_off,
            before_sleep=_log_retry,
            reraise=True,
        )

    def _back_off(self, seconds: float) -> None:
        """Tenacity's sleep: the wait is imposed on the endpoint, so every thread keeps it;
        the next request's turn does the sleeping."""
        with self._lock:
            self.backoffs.append(seconds)
        self._stats(retries=1)
        self._throttle.hold_off(seconds, self._clock)

    def _exchange(self, endpoint: str, search: arxiv.Search) -> _Exchange:
        """One request in this thread's turn; the answer is recorded whatever it is."""
        url = self._client.url_for(search)
        timeout = self.settings.arxiv_timeout_seconds
        try:
            self._breaker.check()
        except ServiceUnreachable as exc:
            raise Refused(str(exc)) from None
        with self._throttle.turn(
            self.settings.arxiv_delay_seconds, self._sleep, self._clock
        ) as waited:
            started = self._clock()
            try:
                status, headers, body = self._client.fetch(url)
            except requests.Timeout:
                self._stats(status=0, seconds=waited + self._clock() - started)
                raise _Transient(f"no answer from arXiv within {timeout:g} s") from None
            except _TooLarge as exc:
                self._stats(status=exc.status, seconds=waited + self._clock() - started)
                raise _Transient(str(exc)) from None
            except requests.RequestException as exc:
                self._stats(status=0, seconds=waited + self._clock() - started)
                reason = f"connection to arXiv failed ({type(exc).__name__})"
                self._breaker.failure(reason)
                raise _Transient(reason) from None
            self._breaker.success()
            elapsed = self._clock() - started
            self._stats(status=status, seconds=waited + elapsed)
        stored = self.store.record(
            api=API,
            endpoint=endpoint,
            url=url,
            status=status,
            body=body,
            headers=headers,
            elapsed_seconds=elapsed,
        )
        return _Exchange(stored, status, body)

    def _feed_of(self, exchange: _Exchange) -> Feed:
        """The feed of an answer; `_Transient` or `Refused` when there is none to use."""
        status = exchange.status
        if status in (408, 429) or status >= 500:
            raise _Transient(f"HTTP {status} from arXiv: {_snippet(exchange.body)}")
        if 300 <= status < 400:
            location = exchange.stored.headers.get("location", "nowhere")
            raise Refused(
                f"HTTP {status} from arXiv: redirect to {location} not followed; if arXiv has"
                " moved, set ARXIV_API_URL to its new address"
            )
        if status not in (200, 400):
            raise Refused(f"HTTP {status} from arXiv: {_snippet(exchange.body)}")
        try:
            feed = read_feed(exchange.body)
        except FeedError as exc:
            if status == 400:
                raise Refused(f"HTTP 400 from arXiv: {_snippet(exchange.body)}") from None
            raise _Transient(f"HTTP 200 from arXiv with an unusable body: {exc}") from None
        if status == 400 and not feed.errors:
            raise Refused(f"HTTP 400 from arXiv without an error entry: {_snippet(exchange.body)}")
        with self._lock:
            self._feeds[exchange.stored.response_id] = feed
        return feed

    def _stats(
        self,
        *,
        status: int | None = None,
        seconds: float = 0.0,
        from_store: int = 0,
        retries: int = 0,
    ) -> None:
        with self._lock:
            if status is not None:
                self.stats.count(status)
            self.stats.seconds += seconds
            self.stats.from_store += from_store
            self.stats.retries += retries


def _log_retry(state: RetryCallState) -> None:
    failure = state.outcome.exception() if state.outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    attempt = state.attempt_number
    logger.warning("arXiv: %s; trying again in %.3g s (attempt %d failed)", failure, wait, attempt)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _stale(record: PaperRecord, reason: str, last: StoredAnswer) -> PaperRecord:
    return replace(
        record,
        status="stale",
        status_reason=f"{reason}; last good answer from {_when(last.response.fetched_at)}",
    )


def _title_match(title: str, outcome: _TitleOutcome) -> TitleMatch:
    verdict = outcome.verdict
    return TitleMatch(
        query_title=title,
        status=outcome.status,
        arxiv_id=verdict.arxiv_id,
        matched_title=verdict.matched_title,
        similarity=verdict.similarity,
        status_reason=outcome.reason,
        data_fetched_at=outcome.fetched_at,
    )
