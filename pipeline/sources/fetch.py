"""The sources stage: tonight's version of every reading list on GitHub.

For each GitHub document: a conditional request with the ETag of the last version fetched
(304: unchanged, nothing downloaded); a changed file's JSON answer (its `content` in
base64), or for a file over 1 MB the raw media type, and the commit that last changed it.
Every answer goes to the raw store (api `github`), and the store's `answers` say which
response holds which document's latest version:

    document         the contents answer (JSON media type; its ETag is the one sent next)
    document_raw     the raw answer, for a file the JSON answer leaves empty
    document_commit  the commits answer (the first commit listed is the version's)
    document_at      a past version (backfill), keyed `KEY#COMMIT`: immutable, never re-asked
    document_etag_token / document_etag_anonymous
                     the contents answer whose ETag a request with (without) a token sends:
                     GitHub's ETags vary with the token, so each identity keeps its own,
                     and one is sent only while it belongs to the latest version fetched

When a fetch fails, the last version fetched is used (status `stale`, the reason and the
version's fetch time saying so), and the run is partial, naming the document; with no
version at all the document is unreadable (`error`). URLs inside documents are never
fetched: only the documents themselves are.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from urllib.parse import quote, unquote, urlsplit

from pipeline.config import RefreshPolicy
from pipeline.records import ApiStats, Status, parse_utc, utc_now
from pipeline.resolve.common import (
    LookupFailure,
    PermanentFailure,
    ServiceUnreachable,
    TransientFailure,
    stale_reason,
)
from pipeline.resolve.github_http import API, RAW_MEDIA_TYPE, Answer, GithubClient, message_of
from pipeline.resolve.rawstore import RawStore, StoredAnswer, UnusableBody
from pipeline.sources.spec import GithubSource

logger = logging.getLogger(__name__)

COMMITS_PER_PAGE_MAX = 100


@dataclass(frozen=True, slots=True)
class PastVersion:
    """An earlier version of a document (backfill)."""

    commit_sha: str
    committed_at: datetime
    data: bytes


@dataclass(frozen=True, slots=True)
class FetchedDocument:
    """What the sources stage has for one GitHub document tonight."""

    name: str
    source: GithubSource
    status: Status
    """ok (tonight's version, changed or not), stale (the last fetched version: tonight's
    fetch failed), error (no version at all)."""
    data: bytes | None = None
    status_reason: str | None = None
    commit_sha: str | None = None
    committed_at: datetime | None = None
    fetched_at: datetime | None = None
    """When these bytes were downloaded (an earlier night's, when unchanged or stale)."""
    not_modified: bool = False
    """Tonight's conditional request said 304."""
    repo: str | None = None
    """The repository's name tonight, when GitHub says it was renamed (301)."""
    history: tuple[PastVersion, ...] = field(default_factory=tuple)
    """Earlier versions, newest first (`--backfill`)."""


@dataclass(frozen=True, slots=True)
class Commit:
    """A commit that touched a document, and the commits answer that listed it."""

    sha: str
    committed_at: datetime
    answer: Answer | None = None


@dataclass(frozen=True, slots=True)
class _Version:
    data: bytes
    response_id: int | None
    fetched_at: datetime
    commit_sha: str | None
    committed_at: datetime | None


def contents_path(source: GithubSource, owner: str | None = None, repo: str | None = None) -> str:
    return (
        f"/repos/{quote(owner or source.owner)}/{quote(repo or source.repo)}"
        f"/contents/{quote(source.path)}"
    )


def fetch_document(
    client: GithubClient,
    name: str,
    source: GithubSource,
    *,
    policy: RefreshPolicy = RefreshPolicy.TTL,
    backfill: int = 0,
) -> FetchedDocument:
    """Tonight's version of one document (module docstring)."""
    store = client.store
    last = _last_version(store, source)
    if policy is RefreshPolicy.OFFLINE:
        if last is None:
            return FetchedDocument(name, source, "error", status_reason="offline: never fetched")
        return _from(name, source, "ok", last, "offline: the last version fetched")
    # With a version to fall back on, a spent budget is not waited out for long.
    patience = client.settings.github_stale_wait_max_seconds if last is not None else None
    try:
        with client.patience(patience):
            fetched, moved = _fetch(client, source, _etag(client, source, last))
            version = fetched or last
            assert version is not None
            history = _history(client, source, version, backfill) if backfill else ()
    except (LookupFailure, ServiceUnreachable) as exc:
        reason = exc.reason if isinstance(exc, LookupFailure) else str(exc)
        logger.warning("document %s: fetch failed: %s", name, reason)
        if last is None:
            return FetchedDocument(name, source, "error", status_reason=f"not fetched: {reason}")
        answer = store.answer(API, "document", source.key)
        assert answer is not None
        return _from(name, source, "stale", last, stale_reason(reason, answer))
    document = _from(name, source, "ok", version, None)
    return replace(document, not_modified=fetched is None, repo=moved, history=history)


def _from(
    name: str, source: GithubSource, status: Status, version: _Version, reason: str | None
) -> FetchedDocument:
    return FetchedDocument(
        name,
        source,
        status,
        data=version.data,
        status_reason=reason,
        commit_sha=version.commit_sha,
        committed_at=version.committed_at,
        fetched_at=version.fetched_at,
    )


def _fetch(
    client: GithubClient, source: GithubSource, etag: str | None
) -> tuple[_Version | None, str | None]:
    """Tonight's answer: a new version, or None when unchanged (304); and the repository's
    new name when it moved."""
    params = {"ref": source.ref} if source.ref else None
    answer = client.get(contents_path(source), endpoint="contents", params=params, etag=etag)
    moved = _moved_name(client, answer)
    if answer.status == 304 and etag is not None:
        return None, moved
    if answer.status == 404:
        raise PermanentFailure("HTTP 404: no such repository, file or ref on GitHub")
    if answer.status != 200:
        message = message_of(answer.body) or f"{len(answer.body)} bytes, no message"
        raise PermanentFailure(f"HTTP {answer.status}: {message}")
    data = _decoded(answer)
    store = client.store
    raw: Answer | None = None
    if data is None:  # over 1 MB: the JSON media type leaves `content` empty
        raw = client.get(
            contents_path(source), endpoint="contents_raw", params=params, accept=RAW_MEDIA_TYPE
        )
        if raw.status != 200:
            raise TransientFailure(f"raw media type: HTTP {raw.status}")
        data = raw.body
    commit = _latest_commit(client, source)
    store.mark(answer.stored, "document", [source.key], "ok")
    store.mark(answer.stored, _etag_kind(client), [source.key], "ok")
    if raw is not None:
        store.mark(raw.stored, "document_raw", [source.key], "ok")
    if commit is not None:
        assert commit.answer is not None
        store.mark(commit.answer.stored, "document_commit", [source.key], "ok")
    return (
        _Version(
            data,
            answer.stored.response_id,
            answer.stored.fetched_at,
            commit.sha if commit else None,
            commit.committed_at if commit else None,
        ),
        moved,
    )


def _etag_kind(client: GithubClient) -> str:
    return "document_etag_token" if client.settings.github_token else "document_etag_anonymous"


def _etag(client: GithubClient, source: GithubSource, last: _Version | None) -> str | None:
    """The ETag to send: this identity's, when it belongs to the latest version fetched
    (an older one could match a file changed back, and name the wrong version)."""
    if last is None:
        return None
    mine = client.store.answer(API, _etag_kind(client), source.key)
    if mine is None or mine.response.response_id != last.response_id:
        return None
    return mine.response.headers.get("etag")


def _moved_name(client: GithubClient, answer: Answer) -> str | None:
    """The repository's current name after a 301 (`/repositories/{id}/...`): its
    `html_url` says it, on whatever web host GitHub (or Enterprise Server) serves."""
    if answer.moved_to is None or answer.status != 200:
        return None
    try:
        value = json.loads(answer.body)
    except ValueError:
        return None
    url = value.get("html_url") if isinstance(value, dict) else None
    if not isinstance(url, str) or "://" not in url:
        return None
    parts = [unquote(part) for part in urlsplit(url).path.split("/") if part]
    return f"{parts[0]}/{parts[1]}" if len(parts) >= 2 else None


def _decoded(answer: Answer) -> bytes | None:
    """A contents answer's file bytes; None when the JSON leaves them out (over 1 MB)."""
    value = answer.json()
    if not isinstance(value, dict) or value.get("type") != "file":
        raise PermanentFailure("not a file (a folder, a symlink or a submodule)")
    content, encoding = value.get("content"), value.get("encoding")
    size = value.get("size")
    if encoding == "none" or (content == "" and isinstance(size, int) and size > 0):
        return None
    if encoding != "base64" or not isinstance(content, str):
        raise TransientFailure(f"contents answer with encoding {encoding!r}")
    try:
        return base64.b64decode(content.replace("\n", ""), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TransientFailure(f"contents answer with bad base64: {exc}") from None


def _latest_commit(client: GithubClient, source: GithubSource) -> Commit | None:
    """The commit that last changed the file; None when GitHub does not say."""
    commits = _commits(client, source, 1)
    return commits[0] if commits else None


def _commits(client: GithubClient, source: GithubSource, count: int) -> list[Commit]:
    """The newest `count` commits that touched the file, following `Link: rel="next"`."""
    params = {"path": source.path, "per_page": str(min(COMMITS_PER_PAGE_MAX, count))}
    if source.ref:
        params["sha"] = source.ref
    path: str | None = f"/repos/{quote(source.owner)}/{quote(source.repo)}/commits"
    found: list[Commit] = []
    while path is not None and len(found) < count:
        answer = client.get(path, endpoint="commits", params=params)
        params = {}  # the next page's URL carries them
        if answer.status != 200:
            raise TransientFailure(f"commits: HTTP {answer.status}")
        listed = answer.json()
        if not isinstance(listed, list):
            raise TransientFailure("commits: not a list")
        for item in listed:
            parsed = _commit_of(item)
            if parsed is not None:
                found.append(replace(parsed, answer=answer))
        path = _next_link(answer.headers.get("link", ""))
    return found[:count]


def _commit_of(item: object) -> Commit | None:
    if not isinstance(item, dict):
        return None
    sha, commit = item.get("sha"), item.get("commit")
    if not isinstance(sha, str) or not isinstance(commit, dict):
        return None
    committer = commit.get("committer")
    when = committer.get("date") if isinstance(committer, dict) else None
    if not isinstance(when, str):
        return None
    try:
        return Commit(sha, parse_utc(when))
    except ValueError:
        return None


def _next_link(header: str) -> str | None:
    for part in header.split(","):
        target, _, rel = part.partition(";")
        if 'rel="next"' in rel:
            return target.strip().removeprefix("<").removesuffix(">")
    return None


def _history(
    client: GithubClient, source: GithubSource, current: _Version, backfill: int
) -> tuple[PastVersion, ...]:
    """Up to `backfill` versions before `current`, newest first. A past version never
    changes: one already stored is read back, not asked again."""
    past: list[PastVersion] = []
    for commit in _commits(client, source, backfill + 1):
        sha = commit.sha
        if sha == current.commit_sha:
            continue
        key = f"{source.key}#{sha}"
        stored = client.store.answer(API, "document_at", key)
        data = _read_version(stored) if stored is not None else None
        if data is None:
            at_commit = GithubSource(source.owner, source.repo, source.path, sha)
            answer = client.get(contents_path(at_commit), endpoint="contents", params={"ref": sha})
            if answer.status != 200:
                raise TransientFailure(f"version {sha[:12]}: HTTP {answer.status}")
            data = _decoded(answer)
            if data is None:
                raw = client.get(
                    contents_path(at_commit),
                    endpoint="contents_raw",
                    params={"ref": sha},
                    accept=RAW_MEDIA_TYPE,
                )
                data, answer = raw.body, raw
            client.store.mark(answer.stored, "document_at", [key], "ok")
        past.append(PastVersion(sha, commit.committed_at, data))
        if len(past) >= backfill:
            break
    return tuple(past)


def _read_version(stored: StoredAnswer) -> bytes | None:
    try:
        body = stored.response.read()
    except UnusableBody:
        return None
    if stored.response.endpoint == "contents_raw":
        return body
    try:
        return _decoded(Answer(200, body, stored.response.headers, stored.response))
    except LookupFailure:
        return None


def _last_version(store: RawStore, source: GithubSource) -> _Version | None:
    """The latest version fetched, read back from the raw store (None if none is usable)."""
    answer = store.answer(API, "document", source.key)
    if answer is None:
        return None
    try:
        body = answer.response.read()
        data = _decoded(Answer(200, body, answer.response.headers, answer.response))
        if data is None:
            raw = store.answer(API, "document_raw", source.key)
            if raw is None:
                return None
            data = raw.response.read()
    except (UnusableBody, LookupFailure):
        return None
    commit_sha: str | None = None
    committed_at: datetime | None = None
    commit = store.answer(API, "document_commit", source.key)
    if commit is not None:
        try:
            listed = json.loads(commit.response.read())
            parsed = _commit_of(listed[0]) if isinstance(listed, list) and listed else None
        except (UnusableBody, ValueError):
            parsed = None
        if parsed is not None:
            commit_sha, committed_at = parsed.sha, parsed.committed_at
    return _Version(
        data,
        answer.response.response_id,
        answer.response.fetched_at,
        commit_sha,
        committed_at,
    )


@dataclass
class SourcesResult:
    """The sources stage's outcome for one night."""

    documents: list[FetchedDocument] = field(default_factory=list)
    stats: list[ApiStats] = field(default_factory=list)

    @property
    def stale(self) -> list[FetchedDocument]:
        return [d for d in self.documents if d.status == "stale"]

    def reason(self) -> str | None:
        """Why the run is partial because of its documents, naming each; None if it is not."""
        stale = self.stale
        if not stale:
            return None
        return "documents from their last fetched version (GitHub fetch failed): " + ", ".join(
            d.name for d in stale
        )


def fetch_documents(
    client: GithubClient,
    sources: Sequence[tuple[str, GithubSource]],
    *,
    policy: RefreshPolicy = RefreshPolicy.TTL,
    backfill: int = 0,
) -> SourcesResult:
    """Every GitHub document, one after the other (GitHub asks for no concurrency)."""
    result = SourcesResult()
    started = utc_now()
    for name, source in sources:
        result.documents.append(
            fetch_document(client, name, source, policy=policy, backfill=backfill)
        )
    logger.info(
        "sources: %d documents from GitHub (%d unchanged, %d stale) since %s",
        len(result.documents),
        sum(1 for d in result.documents if d.not_modified),
        len(result.stale),
        started.isoformat(timespec="seconds"),
    )
    return result
