"""arXiv resolution: batched `id_list` lookups and title searches, answered from the raw
store when it can, politely from the API when it must.

`ArxivResolver` is the edge: it asks through `arxiv_http` (URLs, the run's polite queue,
one GET), keeps every answer in the raw store, reads answers with `arxiv_feed` and
matches titles with `titles` (both pure), and owns the retry policy.

How a paper gets its status:
- ok: arXiv's entry, fetched tonight, or read from a stored answer younger than
  `arxiv_ttl_seconds` (any age when the refresh policy is OFFLINE);
- not_found: arXiv answered without an entry for the ID (stored answers of that kind are
  reused for `arxiv_not_found_ttl_seconds`), rejected the ID's format, or our own
  validation refused the ID, which is then never sent;
- stale: tonight's lookup failed, or arXiv said "no such paper" about a paper it had
  answered before (its API is known to answer 200 with no results under load, and arXiv
  IDs are never reused); the record carries the last good answer and says why;
- error: the lookup failed and the raw store holds no good answer.

Nothing from arXiv is believed unchecked, live or stored: `arxiv_feed.read_feed` refuses
a body whose entries' IDs or dates do not parse, an `id_list` answer must answer only IDs
it was asked, and a stored answer that no longer passes is asked again.

Retries: 429, 5xx, timeouts, garbled, short or incomplete answers are tried again up to
`arxiv_max_attempts` times, after an exponential backoff (`arxiv_backoff_seconds`,
doubling, capped at `arxiv_backoff_max_seconds`) that every thread of the run keeps. A
backoff that would end past the run's deadline is not taken: the run stops asking arXiv,
and what is left falls back on its last good answers with a reason naming the deadline.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import arxiv
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from pipeline.config import RefreshPolicy, Settings
from pipeline.links.identify import parse_arxiv_id
from pipeline.records import ApiStats, PaperRecord, Status, TitleMatch
from pipeline.resolve.arxiv_feed import Feed, FeedError, paper_record, read_feed
from pipeline.resolve.arxiv_http import ArxivHttp, NotAsked, PoliteQueue, Unanswered, asked_ids
from pipeline.resolve.common import (
    Deadline,
    LookupFailure,
    PermanentFailure,
    Progress,
    ProgressCallback,
    TransientFailure,
    last_good_answer,
    stale_reason,
    unexpected,
)
from pipeline.resolve.rawstore import Outcome, RawStore, RawStoreError, StoredAnswer, StoredResponse
from pipeline.resolve.titles import (
    TitleVerdict,
    match_title,
    normalise_title,
    search_phrase,
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


@dataclass(frozen=True, slots=True)
class _Exchange:
    stored: StoredResponse
    status: int
    body: bytes


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
    """Resolves arXiv IDs and titles; one instance per run, shared by all its threads,
    which share its polite queue.

    `deadline` bounds every wait (default: `run_deadline_seconds` from now). `sleep` and
    `clock` are injectable so that tests neither sleep nor depend on timing; `backoffs`
    lists every backoff chosen, in order.
    """

    def __init__(
        self,
        settings: Settings,
        store: RawStore,
        *,
        deadline: Deadline | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if settings.arxiv_batch_size < 1 or settings.arxiv_titles_per_request < 1:
            raise ValueError("arxiv_batch_size and arxiv_titles_per_request must be at least 1")
        self.settings = settings
        self.store = store
        self.stats = ApiStats(api="arxiv")
        self.backoffs: list[float] = []
        self.deadline = deadline or Deadline(settings.run_deadline_seconds, clock=clock)
        self._queue = PoliteQueue(settings.arxiv_delay_seconds, self.deadline, sleep, clock)
        self._http = ArxivHttp(settings, self._queue, clock=clock)
        self._lock = threading.Lock()
        self._feeds: dict[int, Feed | None] = {}

    def close(self) -> None:
        self._http.close()

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
            progress.advance(1)
        size = self.settings.arxiv_batch_size
        for start in range(0, len(to_ask), size):
            batch = to_ask[start : start + size]
            records.update(self._ask_ids(batch))
            progress.advance(len(batch))
        return records

    def _paper_from_store(self, arxiv_id: str) -> PaperRecord | None:
        """The record a reusable stored answer gives (counted as answered from the store);
        offline, an error record when there is none; else None: ask arXiv."""
        answer = self._reusable_answer(PAPER, arxiv_id)
        record = None if answer is None else self._paper_from_answer(arxiv_id, answer)
        if record is not None:
            self._stats(from_store=1)
            return record
        if self.settings.refresh is RefreshPolicy.OFFLINE:
            why = "no stored answer" if answer is None else "the stored answer cannot be read"
            return PaperRecord(arxiv_id, "error", f"offline: {why}")
        return None

    def _paper_from_answer(self, arxiv_id: str, answer: StoredAnswer) -> PaperRecord | None:
        """The record a stored answer gives, or None when it no longer reads or validates."""
        feed = self._stored_feed(answer.response)
        if feed is None or not self._answers(answer.response, feed, arxiv_id):
            return None
        fetched_at = answer.response.fetched_at
        if answer.outcome == "ok":
            entry = feed.entry(arxiv_id)
            if entry is None:
                logger.warning("stored answer %s lacks %s", answer.response.response_id, arxiv_id)
                return None
            return paper_record(arxiv_id, entry, fetched_at=fetched_at)
        return self._not_found(arxiv_id, feed.not_found_reason(arxiv_id), fetched_at)

    @staticmethod
    def _answers(response: StoredResponse, feed: Feed, arxiv_id: str) -> bool:
        """Whether a stored `id_list` answer was asked about `arxiv_id`, and about every
        paper it has an entry for (a search answers whatever matched it)."""
        if response.endpoint != ID_LIST_ENDPOINT:
            return True
        asked = asked_ids(response.url)
        if arxiv_id in asked and feed.answered_ids() <= asked:
            return True
        logger.warning(
            "stored arXiv answer %s does not answer %s as asked; asking again",
            response.response_id,
            arxiv_id,
        )
        return False

    def _ask_ids(self, batch: list[str]) -> dict[str, PaperRecord]:
        done: dict[str, PaperRecord] = {}
        pending = list(batch)
        failure = "no answer"
        try:
            for attempt in self._retrying():
                with attempt:
                    self._ask_ids_once(pending, done)
        except LookupFailure as exc:
            failure = exc.reason
        except RawStoreError:
            raise  # the store itself is broken: the whole run must stop and say so
        except Exception as exc:
            # An answer no rule foresaw costs this batch, not the stage: the night goes on.
            failure = unexpected(exc)
            logger.warning("arXiv batch of %d: %s", len(batch), failure)
            logger.debug("arXiv batch: the traceback", exc_info=True)
        for arxiv_id in pending:
            done[arxiv_id] = self._fallback(arxiv_id, failure) or PaperRecord(
                arxiv_id, "error", failure
            )
        return done

    def _ask_ids_once(self, pending: list[str], done: dict[str, PaperRecord]) -> None:
        """Ask for every pending ID; settled ones leave `pending`. A 400 naming one ID drops
        that ID and asks again for the rest: arXiv fails a whole batch for one bad ID."""
        rejected = 0
        while pending:
            asked = list(pending)
            search = arxiv.Search(id_list=asked, max_results=len(asked))
            exchange = self._exchange(ID_LIST_ENDPOINT, search)
            feed = self._feed_of(exchange)
            fetched_at = exchange.stored.fetched_at
            if feed.errors:
                bad = next((e.rejected_id for e in feed.errors if e.rejected_id in pending), None)
                message = feed.errors[0].message
                if bad is None:
                    raise PermanentFailure(
                        f"HTTP {exchange.status}: arXiv refused the request: {message}"
                    )
                rejected += 1
                if rejected > MAX_REJECTIONS_PER_BATCH:
                    # arXiv's rule and ours disagree wholesale: stop spending requests.
                    raise PermanentFailure(
                        f"arXiv rejected {rejected} identifiers in a row ({message})"
                    )
                self.store.mark(exchange.stored, PAPER, [bad], "not_found")
                # An ID arXiv answered before is no less valid for being refused tonight.
                done[bad] = self._not_found(bad, feed.not_found_reason(bad), fetched_at)
                pending.remove(bad)
                continue
            if unasked := feed.answered_ids() - set(asked):
                # Not an answer to this request (a proxy's mix-up, or worse): believe none of it.
                listed = ", ".join(sorted(unasked)[:5])
                raise TransientFailure(f"arXiv answered IDs it was not asked: {listed}")
            if problem := feed.shortfall(len(asked)):
                raise TransientFailure(problem)
            found: list[str] = []
            absent: list[str] = []
            broken: dict[str, tuple[str, ...]] = {}
            for arxiv_id in asked:
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
                raise TransientFailure(f"incomplete arXiv entries: {described}")

    def _not_found(self, arxiv_id: str, reason: str, fetched_at: datetime) -> PaperRecord:
        """arXiv's "no such paper" — unless it had the paper before: arXiv IDs are never
        reused or deleted, and its API answers 200 with no results under load."""
        stale = self._fallback(arxiv_id, f"{reason} tonight")
        return stale or PaperRecord(arxiv_id, "not_found", reason, data_fetched_at=fetched_at)

    def _fallback(self, arxiv_id: str, reason: str) -> PaperRecord | None:
        """The last good answer about the paper, as a stale record saying why."""
        last = last_good_answer(
            self.store, API, PAPER, arxiv_id, lambda a: self._paper_from_answer(arxiv_id, a)
        )
        if last is None:
            return None
        record, answer = last
        return replace(record, status="stale", status_reason=stale_reason(reason, answer))

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
        answer = self._reusable_answer(TITLE, query.key)
        outcome = None if answer is None else self._title_from_answer(query, answer)
        if outcome is not None:
            self._stats(from_store=1)
            return outcome
        if self.settings.refresh is RefreshPolicy.OFFLINE:
            why = "no stored answer" if answer is None else "the stored answer cannot be read"
            return _TitleOutcome("error", TitleVerdict(None), f"offline: {why}")
        return None

    def _title_from_answer(self, query: _TitleQuery, answer: StoredAnswer) -> _TitleOutcome | None:
        feed = self._stored_feed(answer.response)
        if feed is None:
            return None
        verdict = match_title(query.title, feed.titles())
        status: Status = "ok" if verdict.arxiv_id else "not_found"
        return _TitleOutcome(status, verdict, verdict.reason, answer.response.fetched_at)

    def _ask_titles(
        self, batch: list[_TitleQuery]
    ) -> tuple[dict[str, _TitleOutcome], list[_TitleQuery]]:
        """Outcomes of one search for several titles, and the titles to ask again alone
        (the page was full without their paper, or arXiv refused the combined query)."""
        query = " OR ".join(f'ti:"{search_phrase(q.title)}"' for q in batch)
        max_results = CANDIDATES_PER_TITLE * len(batch)
        search = arxiv.Search(query=query, max_results=max_results)
        try:
            exchange, feed = self._search(search)
        except NotAsked as exc:  # the run's refusal, not arXiv's: alone, it would be the same
            return {q.key: self._failed_title(q, exc.reason) for q in batch}, []
        except PermanentFailure as exc:
            if len(batch) > 1:
                return {}, batch
            return {batch[0].key: self._failed_title(batch[0], exc.reason)}, []
        except TransientFailure as exc:
            return {q.key: self._failed_title(q, exc.reason) for q in batch}, []
        except Exception as exc:
            logger.warning("arXiv title search: %s", unexpected(exc))
            logger.debug("arXiv title search: the traceback", exc_info=True)
            return {q.key: self._failed_title(q, unexpected(exc)) for q in batch}, []
        candidates = feed.titles()
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
                    raise PermanentFailure(
                        f"HTTP {exchange.status}: arXiv refused the search: {message}"
                    )
                if problem := feed.shortfall(search.max_results):
                    raise TransientFailure(problem)
                if feed.incomplete:
                    raise TransientFailure(
                        f"incomplete arXiv entries: {', '.join(sorted(feed.incomplete))}"
                    )
                return exchange, feed
        raise AssertionError("unreachable: tenacity re-raises the last failure")

    def _failed_title(self, query: _TitleQuery, reason: str) -> _TitleOutcome:
        def good(answer: StoredAnswer) -> _TitleOutcome | None:
            outcome = self._title_from_answer(query, answer)
            return outcome if outcome is not None and outcome.status == "ok" else None

        last = last_good_answer(self.store, API, TITLE, query.key, good)
        if last is None:
            return _TitleOutcome("error", TitleVerdict(None), reason)
        outcome, answer = last
        return replace(outcome, status="stale", reason=stale_reason(reason, answer))

    # -- the edge: store, requests, retries ----------------------------------------------

    def _reusable_answer(self, kind: str, key: str) -> StoredAnswer | None:
        """The stored answer the refresh policy lets this run reuse, if any."""

        def ttl_seconds(outcome: Outcome) -> float:
            if outcome == "ok":
                return self.settings.arxiv_ttl_seconds
            return self.settings.arxiv_not_found_ttl_seconds

        return self.store.reusable_answer(API, kind, key, self.settings.refresh, ttl_seconds)

    def _stored_feed(self, response: StoredResponse) -> Feed | None:
        """A stored body, read once per run (one body answers up to a batch of IDs)."""
        with self._lock:
            if response.response_id in self._feeds:
                return self._feeds[response.response_id]
        feed: Feed | None
        try:
            feed = read_feed(response.read())
        except (OSError, FeedError) as exc:
            logger.warning("stored arXiv answer %s unusable: %s", response.body_path, exc)
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
        attempts = max(self.settings.arxiv_max_attempts, 1)
        backoff = wait_exponential(
            multiplier=self.settings.arxiv_backoff_seconds,
            max=self.settings.arxiv_backoff_max_seconds,
        )

        def wait(state: RetryCallState) -> float:
            seconds: float = backoff(state)
            if state.attempt_number < attempts:  # else tenacity stops: nothing is waited
                failure = state.outcome.exception() if state.outcome is not None else None
                # Every thread keeps the backoff: the next request's turn does the waiting.
                # Past the run's deadline it is not taken, and the failure is final.
                self._queue.back_off(seconds, _reason(failure))
                with self._lock:
                    self.backoffs.append(seconds)
                self._stats(retries=1)
            return seconds

        return Retrying(
            stop=stop_after_attempt(attempts),
            wait=wait,
            retry=retry_if_exception_type(TransientFailure),
            sleep=_no_sleep,
            before_sleep=_log_retry,
            reraise=True,
        )

    def _exchange(self, endpoint: str, search: arxiv.Search) -> _Exchange:
        """One request in this thread's turn; the answer is recorded whatever it is."""
        url = self._http.url(search)
        try:
            reply = self._http.get(url)
        except Unanswered as exc:
            self._stats(status=exc.status, seconds=exc.seconds)
            raise
        self._stats(status=reply.status, seconds=reply.seconds)
        stored = self.store.record(
            api=API,
            endpoint=endpoint,
            url=url,
            status=reply.status,
            body=reply.body,
            headers=reply.headers,
            elapsed_seconds=reply.elapsed_seconds,
        )
        return _Exchange(stored, reply.status, reply.body)

    def _feed_of(self, exchange: _Exchange) -> Feed:
        """The feed of an answer; `TransientFailure` or `PermanentFailure` when there is
        none to use."""
        status = exchange.status
        if status in (408, 429) or status >= 500:
            raise TransientFailure(f"HTTP {status} from arXiv: {_snippet(exchange.body)}")
        if 300 <= status < 400:
            location = exchange.stored.headers.get("location", "nowhere")
            raise PermanentFailure(
                f"HTTP {status} from arXiv: redirect to {location} not followed; if arXiv has"
                " moved, set ARXIV_API_URL to its new address"
            )
        if status not in (200, 400):
            raise PermanentFailure(f"HTTP {status} from arXiv: {_snippet(exchange.body)}")
        try:
            feed = read_feed(exchange.body)
        except FeedError as exc:
            if status == 400:
                raise PermanentFailure(f"HTTP 400 from arXiv: {_snippet(exchange.body)}") from None
            raise TransientFailure(f"HTTP 200 from arXiv with an unusable body: {exc}") from None
        if status == 400 and not feed.errors:
            raise PermanentFailure(
                f"HTTP 400 from arXiv without an error entry: {_snippet(exchange.body)}"
            )
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


def _snippet(body: bytes, limit: int = 120) -> str:
    text = " ".join(body[: limit * 2].decode("utf-8", "replace").split())
    return text[:limit] + ("…" if len(text) > limit else "")


def _reason(failure: BaseException | None) -> str:
    return failure.reason if isinstance(failure, LookupFailure) else str(failure)


def _no_sleep(seconds: float) -> None:
    """Tenacity's sleep: the backoff is a hold on the polite queue (see `_retrying`)."""


def _log_retry(state: RetryCallState) -> None:
    failure = state.outcome.exception() if state.outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    attempt = state.attempt_number
    logger.warning(
        "arXiv: %s; trying again after a %.3g s backoff (attempt %d failed)",
        _reason(failure),
        wait,
        attempt,
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
