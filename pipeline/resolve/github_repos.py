"""Code repositories on GitHub: stars, forks, open issues, last push, archived, licence,
description, topics and language of every `github_repo` the documents link.

With a token (`GITHUB_TOKEN`), GraphQL: 100 repositories per query, aliased by a digest of
each name, so that a stored answer is read back without the query that asked it. A
missing repository is a null alias with a `NOT_FOUND` error beside `data`: both are read.
Without a token, REST (`GET /repos/{owner}/{repo}`), one request per repository, within
the unauthenticated budget (60 requests an hour, shared with the sources stage): the
stalest are asked first and, once GitHub says no more than
`github_lists_reserve_requests` are left, the rest keep their last good values (stale)
rather than spend what the next run's lists need, or wait an hour. A renamed or
transferred repository (REST: a 301 to `/repositories/{id}`; GraphQL: followed by GitHub)
keeps the name the documents use as its key and GitHub's current name in `full_name`.

Answers live in the raw store (api `github`, entity kind `repo`) with a time-to-live
(`github_ttl_seconds`); a failed lookup falls back on the last good answer, as the Hub's
lookups do.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from pipeline.config import RefreshPolicy, Settings
from pipeline.records import INT64_MAX, GithubRepoRecord, Status, parse_utc
from pipeline.resolve.common import (
    Deadline,
    LookupFailure,
    PermanentFailure,
    Progress,
    ProgressCallback,
    RateLimited,
    ServiceUnreachable,
    TransientFailure,
    last_good_answer,
    stale_reason,
    unexpected,
)
from pipeline.resolve.github_http import API, GithubClient
from pipeline.resolve.rawstore import RawStore, StoredAnswer, StoredResponse, UnusableBody

logger = logging.getLogger(__name__)

KIND = "repo"
GRAPHQL_BATCH = 100
TOPICS_MAX = 20
BUDGET_SPENT = (
    "not asked: GitHub's budget without a token (60 requests an hour) is spent, but for"
    " the reserve kept for the reading lists; set GITHUB_TOKEN to look every repository up"
)
_FIELDS = (
    "nameWithOwner stargazerCount forkCount isArchived pushedAt description"
    " licenseInfo { spdxId } primaryLanguage { name }"
    f" repositoryTopics(first: {TOPICS_MAX}) {{ nodes {{ topic {{ name }} }} }}"
    " issues(states: OPEN) { totalCount } pullRequests(states: OPEN) { totalCount }"
)


def alias(repo: str) -> str:
    """The GraphQL alias of a repository: a digest of its name (a stored batch answer is
    read back by it)."""
    return "r" + hashlib.sha256(repo.lower().encode()).hexdigest()[:16]


def graphql_query(repos: Sequence[str]) -> str:
    parts = []
    for repo in repos:
        owner, name = repo.split("/", 1)
        parts.append(f'{alias(repo)}: repository(owner: "{owner}", name: "{name}") {{ ...R }}')
    return (
        "query { rateLimit { cost remaining resetAt } "
        + " ".join(parts)
        + f" }} fragment R on Repository {{ {_FIELDS} }}"
    )


class GithubRepoResolver:
    """Looks up code repositories (module docstring)."""

    def __init__(
        self, settings: Settings, store: RawStore, *, deadline: Deadline | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.client = GithubClient(
            settings,
            store,
            deadline or Deadline(settings.run_deadline_seconds),
            stats_name="github_repos",
            wait_for_reset=False,
        )
        self.stats = self.client.stats

    def close(self) -> None:
        self.client.close()

    def resolve_repos(
        self, repos: Sequence[str], progress: ProgressCallback | None = None
    ) -> dict[str, GithubRepoRecord]:
        """A record for every repository (`owner/name`), tonight's or the last good one."""
        done = Progress(progress, len(repos))
        found: dict[str, GithubRepoRecord] = {}
        pending: list[str] = []
        policy = self.settings.refresh
        for repo in repos:
            stored = self.store.reusable_answer(
                API, KIND, repo, policy, lambda _: self.settings.github_ttl_seconds
            )
            record = self._read(repo, stored) if stored is not None else None
            if record is not None:
                found[repo] = record
                self.stats.from_store += 1
                done.advance()
            else:
                pending.append(repo)
        if policy is RefreshPolicy.OFFLINE:
            for repo in pending:
                found[repo] = self._fallback(repo, "offline: never looked up")
            done.advance(len(pending))
            return found
        pending.sort(key=self._staleness)
        if self.settings.github_token:
            for start in range(0, len(pending), GRAPHQL_BATCH):
                batch = pending[start : start + GRAPHQL_BATCH]
                found.update(self._graphql(batch))
                done.advance(len(batch))
        else:
            for repo in pending:
                found[repo] = self._rest(repo)
                done.advance()
            unasked = sum(
                1 for repo in pending if BUDGET_SPENT in (found[repo].status_reason or "")
            )
            if unasked:
                logger.warning("github repos: %d of %d %s", unasked, len(pending), BUDGET_SPENT)
        return found

    def _staleness(self, repo: str) -> tuple[bool, str]:
        """Never asked first, then the oldest answer first."""
        last = self.store.answer(API, KIND, repo)
        return (last is not None, last.answered_at.isoformat() if last else "")

    # -- REST ---------------------------------------------------------------------------
    def _rest(self, repo: str) -> GithubRepoRecord:
        remaining = self.client.remaining
        if remaining is not None and remaining <= self.settings.github_lists_reserve_requests:
            return self._fallback(repo, BUDGET_SPENT)
        try:
            answer = self.client.get(f"/repos/{repo}", endpoint="repos")
        except (LookupFailure, ServiceUnreachable) as exc:
            spent = isinstance(exc, RateLimited) and self.client.remaining == 0
            return self._fallback(repo, BUDGET_SPENT if spent else _reason(exc))
        if answer.status in (404, 451):
            self.store.mark(answer.stored, KIND, [repo], "not_found")
            return self._not_found(repo, answer.status, answer.stored.fetched_at)
        if answer.status == 403 and self.client.remaining == 0:
            return self._fallback(repo, BUDGET_SPENT)
        if answer.status != 200:
            return self._fallback(repo, f"HTTP {answer.status}")
        try:
            record = _from_rest(repo, json.loads(answer.body), answer.stored.fetched_at)
        except (ValueError, TypeError, AttributeError) as exc:
            return self._fallback(repo, unexpected(exc))
        self.store.mark(answer.stored, KIND, [repo], "ok")
        return record

    # -- GraphQL ------------------------------------------------------------------------
    def _graphql(self, batch: Sequence[str]) -> dict[str, GithubRepoRecord]:
        try:
            answer = self.client.post_json(
                self.settings.github_graphql_url,
                {"query": graphql_query(batch)},
                endpoint="graphql",
            )
            if answer.status == 401:
                raise PermanentFailure("HTTP 401: GitHub refused the token (GITHUB_TOKEN)")
            if answer.status != 200:
                raise TransientFailure(f"GraphQL: HTTP {answer.status}")
            body = json.loads(answer.body)
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, dict):
                raise TransientFailure("GraphQL answer without data")
        except (LookupFailure, ServiceUnreachable, ValueError) as exc:
            reason = _reason(exc) if not isinstance(exc, ValueError) else "GraphQL: not JSON"
            return {repo: self._fallback(repo, reason) for repo in batch}
        missing = _not_found_aliases(body)
        out: dict[str, GithubRepoRecord] = {}
        found, gone = [], []
        for repo in batch:
            key = alias(repo)
            node = data.get(key)
            if node is None and key in missing:
                gone.append(repo)
                out[repo] = self._not_found(repo, 404, answer.stored.fetched_at)
                continue
            try:
                out[repo] = _from_graphql(repo, node, answer.stored.fetched_at)
                found.append(repo)
            except (ValueError, TypeError, AttributeError) as exc:
                out[repo] = self._fallback(repo, unexpected(exc))
        self.store.mark(answer.stored, KIND, found, "ok")
        self.store.mark(answer.stored, KIND, gone, "not_found")
        return out

    # -- reading back and falling back ----------------------------------------------
    def _read(self, repo: str, stored: StoredAnswer) -> GithubRepoRecord | None:
        response = stored.response
        if stored.outcome == "not_found":
            return self._not_found(repo, response.status, stored.answered_at)
        try:
            return _parse(repo, response)
        except (UnusableBody, ValueError, TypeError, AttributeError):
            return None

    def _fallback(self, repo: str, reason: str) -> GithubRepoRecord:
        last = last_good_answer(self.store, API, KIND, repo, lambda a: self._read(repo, a))
        quiet = reason == BUDGET_SPENT  # said once for all of them (`resolve_repos`)
        if last is None:
            if not quiet:
                logger.warning("github repo %s: error: %s", repo, reason)
            return GithubRepoRecord(repo, "error", reason)
        record, answer = last
        stale = _with_status(record, "stale", stale_reason(reason, answer))
        if not quiet:
            logger.warning("github repo %s: stale: %s", repo, stale.status_reason)
        return stale

    @staticmethod
    def _not_found(repo: str, status: int, when: datetime) -> GithubRepoRecord:
        reason = (
            f"HTTP {status}: no such repository, or not public"
            if status != 451
            else ("HTTP 451: blocked for legal reasons")
        )
        return GithubRepoRecord(repo, "not_found", reason, data_fetched_at=when)


def _parse(repo: str, response: StoredResponse) -> GithubRepoRecord:
    body = json.loads(response.read())
    if response.endpoint == "graphql":
        return _from_graphql(repo, body["data"][alias(repo)], response.fetched_at)
    return _from_rest(repo, body, response.fetched_at)


def _not_found_aliases(body: Mapping[str, Any]) -> set[str]:
    errors = body.get("errors")
    missing: set[str] = set()
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, dict) and error.get("type") == "NOT_FOUND":
            path = error.get("path")
            if isinstance(path, list) and path and isinstance(path[0], str):
                missing.add(path[0])
    return missing


def _from_rest(repo: str, body: Any, fetched_at: datetime) -> GithubRepoRecord:
    if not isinstance(body, dict) or not isinstance(body.get("full_name"), str):
        raise ValueError("not a repository")
    license_ = body.get("license")
    return GithubRepoRecord(
        repo,
        "ok",
        full_name=body["full_name"],
        stars=_count(body.get("stargazers_count")),
        forks=_count(body.get("forks_count")),
        open_issues=_count(body.get("open_issues_count")),
        pushed_at=_time(body.get("pushed_at")),
        archived=_flag(body.get("archived")),
        license=_text(license_.get("spdx_id")) if isinstance(license_, dict) else None,
        description=_text(body.get("description")),
        topics=_texts(body.get("topics")),
        language=_text(body.get("language")),
        data_fetched_at=fetched_at,
    )


def _from_graphql(repo: str, node: Any, fetched_at: datetime) -> GithubRepoRecord:
    if not isinstance(node, dict) or not isinstance(node.get("nameWithOwner"), str):
        raise ValueError("not a repository")
    license_, language = node.get("licenseInfo"), node.get("primaryLanguage")
    topics = node.get("repositoryTopics")
    names = [
        item.get("topic", {}).get("name")
        for item in (topics.get("nodes") or [] if isinstance(topics, dict) else [])
        if isinstance(item, dict)
    ]
    issues, pulls = _total(node.get("issues")), _total(node.get("pullRequests"))
    return GithubRepoRecord(
        repo,
        "ok",
        full_name=node["nameWithOwner"],
        stars=_count(node.get("stargazerCount")),
        forks=_count(node.get("forkCount")),
        open_issues=issues + pulls if issues is not None and pulls is not None else None,
        pushed_at=_time(node.get("pushedAt")),
        archived=_flag(node.get("isArchived")),
        license=_text(license_.get("spdxId")) if isinstance(license_, dict) else None,
        description=_text(node.get("description")),
        topics=_texts(names),
        language=_text(language.get("name")) if isinstance(language, dict) else None,
        data_fetched_at=fetched_at,
    )


def _count(value: Any) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= INT64_MAX
    return value if ok else None


def _total(value: Any) -> int | None:
    return _count(value.get("totalCount")) if isinstance(value, dict) else None


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _texts(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(sorted({v for v in value if isinstance(v, str) and v}))[: TOPICS_MAX * 5]


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = parse_utc(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _with_status(record: GithubRepoRecord, status: Status, reason: str) -> GithubRepoRecord:
    return replace(record, status=status, status_reason=reason)


def _reason(exc: BaseException) -> str:
    return exc.reason if isinstance(exc, LookupFailure) else str(exc)
