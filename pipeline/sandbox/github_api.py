"""The GitHub REST and GraphQL API double: upstream reading lists and repositories in
GitHub's real wire formats (reference: docs.github.com, REST API version 2022-11-28).

Serves what the pipeline uses:

    GET /repos/{owner}/{repo}/contents/{path}?ref=   the JSON media type (`content` in
        base64 with a newline every 60 characters; empty with `encoding: "none"` for files
        over 1 MB) or, with `Accept: application/vnd.github.raw[+json]`, the file's bytes
    GET /repos/{owner}/{repo}/commits?path=&sha=&per_page=&page=   newest first, paginated
        by a `Link` header
    GET /repos/{owner}/{repo}                         the repository
    GET /repositories/{id}/...                        the same, by repository ID
    POST /graphql                                     `repository(owner:, name:)` aliases

Behaviours modelled on the real API: `ETag` on every 200, `If-None-Match` with it gives a
304 without a body; `x-ratelimit-*` headers on every answer from a per-identity hourly
budget (60 anonymous, 5,000 with a token; an authorised 304 does not count, an anonymous
one does), a spent budget answers 403 with `x-ratelimit-remaining: 0`; a renamed
repository answers 301 with `Location: /repositories/{id}/...`; a missing one 404; a
request without `User-Agent` 403; GraphQL without a token 401, and a missing repository
is a null alias with a `NOT_FOUND` error beside `data`. Secondary limits (403 or 429 with
`retry-after`) are the fault plan's: `Fault(api="github", kind="status", status=403,
headers={"retry-after": "1"})`.

Everything served is SAMPLE data: the seeds as upstream lists, with a few versions of
made-up history (`UpstreamFile.with_history`), and repositories with made-up counts.
`edit` makes an upstream edit between two nights.

`echo_token`, for the security tests: every request with a token is refused 403, its
JSON `message` and its `x-error-message` header quoting the `Authorization` header back
(a misbehaving proxy or server; nothing the pipeline keeps may carry it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote, urlencode

from pipeline.sandbox.wire import Request, Response

JsonObject = dict[str, Any]

_JSON = "application/json; charset=utf-8"
_RAW = "application/vnd.github.raw"
RAW_MEDIA_TYPES = ("application/vnd.github.raw", "application/vnd.github.raw+json")
JSON_CONTENT_LIMIT_BYTES = 1024 * 1024
"""Files larger than this come with an empty `content` in the JSON media type."""
ANONYMOUS_LIMIT = 60
TOKEN_LIMIT = 5000
HOUR_SECONDS = 3600
DEFAULT_BRANCH = "main"
_DOCS = "https://docs.github.com/rest"
_LINE = re.compile(rb"^\s*(?:[-*+]|\d+\.)\s.*\]\(", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Version:
    """One commit of an upstream file."""

    sha: str
    committed_at: datetime
    text: bytes
    message: str


@dataclass
class UpstreamFile:
    """A file on the double's GitHub, with its commits, oldest first."""

    owner: str
    repo: str
    path: str
    versions: list[Version] = field(default_factory=list)

    @classmethod
    def with_history(
        cls, owner: str, repo: str, path: str, text: bytes, *, versions: int = 3
    ) -> UpstreamFile:
        """The file as it is now, after `versions - 1` earlier commits that each lacked
        two more of its list entries (sample history: each commit added two entries)."""
        entries = [m.start() for m in _LINE.finditer(text)]
        upstream = cls(owner, repo, path)
        start = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
        for number in range(versions):
            dropped = 2 * (versions - 1 - number)
            content = _without_entries(text, entries[:dropped])
            upstream.commit(content, f"sample commit {number + 1}", start + timedelta(weeks=number))
        return upstream

    def commit(self, text: bytes, message: str, when: datetime) -> Version:
        digest = hashlib.sha1(f"{self.owner}/{self.repo}/{self.path}\0{when}\0".encode() + text)
        version = Version(digest.hexdigest(), when, text, message)
        self.versions.append(version)
        return version


def _without_entries(text: bytes, starts: list[int]) -> bytes:
    """`text` without the lines that start at `starts`."""
    out, last = [], 0
    for start in starts:
        out.append(text[last:start])
        end = text.find(b"\n", start)
        last = len(text) if end < 0 else end + 1
    out.append(text[last:])
    return b"".join(out)


@dataclass
class SampleRepo:
    """A repository's sample metadata (REST names; GraphQL answers are built from them)."""

    full_name: str
    repo_id: int
    stargazers_count: int = 0
    forks_count: int = 0
    open_issues_count: int = 0
    pushed_at: str = "2025-03-01T12:00:00Z"
    archived: bool = False
    license_spdx: str | None = "MIT"
    description: str | None = None
    topics: list[str] = field(default_factory=list)
    language: str | None = "Python"


def blob_sha(data: bytes) -> str:
    """Git's blob SHA-1: what the contents API calls `sha`."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class GithubDouble:
    """The GitHub API on loopback (module docstring). Thread-safe."""

    def __init__(
        self,
        files: Iterable[UpstreamFile] = (),
        repos: Iterable[SampleRepo] = (),
        *,
        synthesize_repos: bool = True,
        clock: Any = time.time,
    ) -> None:
        self._lock = threading.Lock()
        self.files: dict[tuple[str, str, str], UpstreamFile] = {}
        self.repos: dict[str, SampleRepo] = {}
        self.renamed: dict[str, str] = {}
        """Old full name (lower case) -> current full name."""
        self.synthesize_repos = synthesize_repos
        """Answer any well-formed repository name with made-up metadata (the demo)."""
        self._clock = clock
        self.echo_token = False
        """Refuse each request with a token, quoting it back (module docstring)."""
        self._used: dict[bool, tuple[int, int]] = {}
        """Authorised or not -> (window start, requests counted)."""
        for upstream in files:
            self.add_file(upstream)
        for repo in repos:  # copies: a rename must not change the caller's sample
            self.repos[repo.full_name.lower()] = replace(repo, topics=list(repo.topics))

    # -- setting the scene ---------------------------------------------------------------
    def add_file(self, upstream: UpstreamFile) -> None:
        with self._lock:
            self.files[(upstream.owner.lower(), upstream.repo.lower(), upstream.path)] = upstream
            self._repo(f"{upstream.owner}/{upstream.repo}", create=True)

    def edit(self, owner: str, repo: str, path: str, text: bytes, when: datetime) -> Version:
        """An upstream edit: a new commit of the file (between two nights, in tests)."""
        with self._lock:
            upstream = self.files[(owner.lower(), repo.lower(), path)]
            return upstream.commit(text, "upstream edit", when)

    def rename(self, old: str, new: str) -> None:
        """The repository `old` is now `new`: requests by the old name answer 301."""
        with self._lock:
            sample = self._repo(old, create=True)
            assert sample is not None
            del self.repos[old.lower()]
            sample.full_name = new
            self.repos[new.lower()] = sample
            self.renamed[old.lower()] = new
            for key in [k for k in self.files if f"{k[0]}/{k[1]}" == old.lower()]:
                upstream = self.files.pop(key)
                upstream.owner, upstream.repo = new.split("/")
                self.files[(upstream.owner.lower(), upstream.repo.lower(), key[2])] = upstream

    def _repo(self, full_name: str, *, create: bool = False) -> SampleRepo | None:
        key = full_name.lower()
        if key not in self.repos and (create or self.synthesize_repos):
            if not re.fullmatch(r"[A-Za-z0-9-]+/[A-Za-z0-9._-]+", full_name):
                return None
            seed = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
            self.repos[key] = SampleRepo(
                full_name=full_name,
                repo_id=100000 + seed % 900000000,
                stargazers_count=seed % 5000,
                forks_count=seed % 700,
                open_issues_count=seed % 90,
                description="sample repository (sandbox data)",
                topics=["sample"],
            )
        return self.repos.get(key)

    # -- serving ---------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        if not request.headers.get("user-agent"):
            return _error(
                403,
                "Request forbidden by administrative rules. Please make sure your request has"
                " a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required).",
            )
        authorised = request.headers.get("authorization", "").startswith(("Bearer ", "token "))
        if authorised and self.echo_token:
            echoed = f"Bad credentials: {request.headers['authorization']}"
            refusal = _error(403, echoed)
            return Response(403, refusal.body, {**refusal.headers, "x-error-message": echoed})
        if request.path == "/graphql" and request.method == "POST":
            if not authorised:
                return _error(401, "This endpoint requires you to be authenticated.")
            return self._limited(authorised, self._graphql(request), "graphql")
        if request.method != "GET":
            return _error(404, "Not Found")
        with self._lock:
            answer = self._rest(request)
        if answer.status == 304 and authorised:
            return self._limited(authorised, answer, "core", count=False)
        return self._limited(authorised, answer, "core")

    def _limited(
        self, authorised: bool, answer: Response, resource: str, *, count: bool = True
    ) -> Response:
        limit = TOKEN_LIMIT if authorised else ANONYMOUS_LIMIT
        now = int(self._clock())
        with self._lock:
            start, used = self._used.get(authorised, (now, 0))
            if now >= start + HOUR_SECONDS:
                start, used = now, 0
            refused = count and used >= limit
            if count and not refused:
                used += 1
            self._used[authorised] = (start, used)
        headers = {
            "x-ratelimit-limit": str(limit),
            "x-ratelimit-remaining": str(max(0, limit - used)),
            "x-ratelimit-used": str(used),
            "x-ratelimit-reset": str(start + HOUR_SECONDS),
            "x-ratelimit-resource": resource,
            "x-github-api-version-selected": "2022-11-28",
        }
        if refused:
            refusal = _error(
                403,
                "API rate limit exceeded for 127.0.0.1. (But here's the good news:"
                " Authenticated requests get a higher rate limit. Check out the documentation"
                " for more details.)",
                "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting",
            )
            return Response(403, refusal.body, {**refusal.headers, **headers})
        return Response(answer.status, answer.body, {**answer.headers, **headers})

    def _rest(self, request: Request) -> Response:
        parts = [unquote(p) for p in request.path.strip("/").split("/")]
        if len(parts) >= 2 and parts[0] == "repositories":
            by_id = next((r for r in self.repos.values() if str(r.repo_id) == parts[1]), None)
            if by_id is None:
                return _error(404, "Not Found")
            owner, name = by_id.full_name.split("/")
            parts = ["repos", owner, name, *parts[2:]]
        if len(parts) < 3 or parts[0] != "repos":
            return _error(404, "Not Found")
        full_name = f"{parts[1]}/{parts[2]}"
        moved = self.renamed.get(full_name.lower())
        if moved is not None:
            sample = self.repos[moved.lower()]
            rest = "/".join(quote(p) for p in parts[3:])
            query = urlencode(request.query)
            location = f"/repositories/{sample.repo_id}" + (f"/{rest}" if rest else "")
            location += f"?{query}" if query else ""
            body = {"message": "Moved Permanently", "url": location, "documentation_url": _DOCS}
            return Response(301, _json(body), {"content-type": _JSON, "location": location})
        if len(parts) == 3:
            return self._repository(full_name, request)
        if parts[3] == "contents" and len(parts) > 4:
            return self._contents(parts[1], parts[2], "/".join(parts[4:]), request)
        if parts[3] == "commits" and len(parts) == 4:
            return self._commits(parts[1], parts[2], request)
        return _error(404, "Not Found")

    def _repository(self, full_name: str, request: Request) -> Response:
        sample = self._repo(full_name)
        if sample is None:
            return _error(404, "Not Found", f"{_DOCS}/repos/repos#get-a-repository")
        owner, name = sample.full_name.split("/")
        body = {
            "id": sample.repo_id,
            "node_id": f"R_sample{sample.repo_id}",
            "name": name,
            "full_name": sample.full_name,
            "private": False,
            "owner": {"login": owner, "type": "User"},
            "html_url": f"https://github.com/{sample.full_name}",
            "description": sample.description,
            "fork": False,
            "url": f"https://api.github.com/repos/{sample.full_name}",
            "created_at": "2023-01-01T00:00:00Z",
            "updated_at": sample.pushed_at,
            "pushed_at": sample.pushed_at,
            "size": 1024,
            "stargazers_count": sample.stargazers_count,
            "watchers_count": sample.stargazers_count,
            "language": sample.language,
            "forks_count": sample.forks_count,
            "archived": sample.archived,
            "disabled": False,
            "open_issues_count": sample.open_issues_count,
            "license": (
                {"key": sample.license_spdx.lower(), "spdx_id": sample.license_spdx}
                if sample.license_spdx
                else None
            ),
            "topics": sample.topics,
            "visibility": "public",
            "forks": sample.forks_count,
            "open_issues": sample.open_issues_count,
            "watchers": sample.stargazers_count,
            "default_branch": DEFAULT_BRANCH,
        }
        return _conditional(_json(body), _JSON, request)

    def _find(self, owner: str, repo: str, path: str) -> UpstreamFile | None:
        return self.files.get((owner.lower(), repo.lower(), path))

    def _at(self, upstream: UpstreamFile, ref: str | None) -> Version | None:
        if ref in (None, "", DEFAULT_BRANCH, "HEAD"):
            return upstream.versions[-1] if upstream.versions else None
        for version in upstream.versions:
            if ref is not None and len(ref) >= 7 and version.sha.startswith(ref):
                return version
        return None

    def _contents(self, owner: str, repo: str, path: str, request: Request) -> Response:
        upstream = self._find(owner, repo, path)
        version = self._at(upstream, request.param("ref")) if upstream else None
        if upstream is None or version is None:
            return _error(404, "Not Found", f"{_DOCS}/repos/contents#get-repository-content")
        data = version.text
        accept = request.headers.get("accept", "")
        if any(media in accept for media in RAW_MEDIA_TYPES):
            return _conditional(data, _RAW, request)
        large = len(data) > JSON_CONTENT_LIMIT_BYTES
        full_name = f"{upstream.owner}/{upstream.repo}"
        sha = blob_sha(data)
        base = f"https://api.github.com/repos/{full_name}/contents/{path}"
        body = {
            "type": "file",
            "encoding": "none" if large else "base64",
            "size": len(data),
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "content": "" if large else _base64_lines(data),
            "sha": sha,
            "url": f"{base}?ref={DEFAULT_BRANCH}",
            "git_url": f"https://api.github.com/repos/{full_name}/git/blobs/{sha}",
            "html_url": f"https://github.com/{full_name}/blob/{DEFAULT_BRANCH}/{path}",
            "download_url": f"https://raw.githubusercontent.com/{full_name}/{DEFAULT_BRANCH}/{path}",
            "_links": {
                "self": f"{base}?ref={DEFAULT_BRANCH}",
                "git": f"https://api.github.com/repos/{full_name}/git/blobs/{sha}",
                "html": f"https://github.com/{full_name}/blob/{DEFAULT_BRANCH}/{path}",
            },
        }
        return _conditional(_json(body), _JSON, request)

    def _commits(self, owner: str, repo: str, request: Request) -> Response:
        path = request.param("path") or ""
        upstream = self._find(owner, repo, path)
        if upstream is None:
            if self._repo(f"{owner}/{repo}") is None:
                return _error(404, "Not Found", f"{_DOCS}/commits/commits#list-commits")
            return _conditional(b"[]", _JSON, request)
        newest = self._at(upstream, request.param("sha"))
        if newest is None:
            return _error(404, "No commit found for SHA: " + (request.param("sha") or ""))
        history = [v for v in reversed(upstream.versions) if v.committed_at <= newest.committed_at]
        per_page = min(100, max(1, int(request.param("per_page") or "30")))
        page = max(1, int(request.param("page") or "1"))
        chunk = history[(page - 1) * per_page : page * per_page]
        full_name = f"{upstream.owner}/{upstream.repo}"
        body = [_commit(full_name, version) for version in chunk]
        headers: dict[str, str] = {}
        if page * per_page < len(history):
            query = [(k, v) for k, v in request.query if k != "page"] + [("page", str(page + 1))]
            base = f"https://api.github.com/repos/{full_name}/commits"
            headers["link"] = f'<{base}?{urlencode(query)}>; rel="next"'
        return _conditional(_json(body), _JSON, request, headers)

    def _graphql(self, request: Request) -> Response:
        try:
            query = json.loads(request.body or b"{}").get("query", "")
        except (ValueError, AttributeError):
            return _error(400, "Problems parsing JSON")
        data: JsonObject = {}
        errors: list[JsonObject] = []
        pattern = r'(\w+)\s*:\s*repository\(\s*owner:\s*"([^"]*)"\s*,\s*name:\s*"([^"]*)"\s*\)'
        with self._lock:
            for alias, owner, name in re.findall(pattern, query):
                full = self.renamed.get(f"{owner}/{name}".lower(), f"{owner}/{name}")
                sample = self._repo(full)
                if sample is None:
                    data[alias] = None
                    errors.append(
                        {
                            "type": "NOT_FOUND",
                            "path": [alias],
                            "locations": [{"line": 1, "column": 1}],
                            "message": "Could not resolve to a Repository with the name"
                            f" '{owner}/{name}'.",
                        }
                    )
                    continue
                pulls = sample.open_issues_count // 3
                data[alias] = {
                    "nameWithOwner": sample.full_name,
                    "stargazerCount": sample.stargazers_count,
                    "forkCount": sample.forks_count,
                    "isArchived": sample.archived,
                    "isDisabled": False,
                    "pushedAt": sample.pushed_at,
                    "licenseInfo": (
                        {"spdxId": sample.license_spdx} if sample.license_spdx else None
                    ),
                    "description": sample.description,
                    "primaryLanguage": ({"name": sample.language} if sample.language else None),
                    "repositoryTopics": {"nodes": [{"topic": {"name": t}} for t in sample.topics]},
                    # REST's open_issues_count is both; GraphQL counts them apart.
                    "issues": {"totalCount": sample.open_issues_count - pulls},
                    "pullRequests": {"totalCount": pulls},
                }
        if "rateLimit" in query:
            data["rateLimit"] = {"cost": 1, "remaining": 4999, "resetAt": "2030-01-01T00:00:00Z"}
        body: JsonObject = {"data": data}
        if errors:
            body["errors"] = errors
        return Response(200, _json(body), {"content-type": _JSON})


def _commit(full_name: str, version: Version) -> JsonObject:
    when = version.committed_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    person = {"name": "Sample Author", "email": "sample@example.com", "date": when}
    return {
        "sha": version.sha,
        "node_id": f"C_sample{version.sha[:10]}",
        "commit": {
            "author": person,
            "committer": person,
            "message": version.message,
            "tree": {"sha": hashlib.sha1(version.text).hexdigest()},
            "url": f"https://api.github.com/repos/{full_name}/git/commits/{version.sha}",
            "comment_count": 0,
        },
        "url": f"https://api.github.com/repos/{full_name}/commits/{version.sha}",
        "html_url": f"https://github.com/{full_name}/commit/{version.sha}",
        "parents": [],
    }


def _base64_lines(data: bytes) -> str:
    """Base64 as the contents API sends it: a newline after every 60 characters."""
    encoded = base64.b64encode(data).decode()
    return "".join(encoded[i : i + 60] + "\n" for i in range(0, len(encoded), 60))


def _conditional(
    body: bytes, content_type: str, request: Request, extra: Mapping[str, str] | None = None
) -> Response:
    """200 with an ETag, or 304 without a body when the client already holds it. The ETag
    varies with the media type asked for (and, on the real API, with the token)."""
    accept = request.headers.get("accept", "")
    vary = f"{accept}\0{'authorization' in request.headers}\0".encode()
    etag = 'W/"' + hashlib.sha256(vary + body).hexdigest()[:40] + '"'
    headers = {"etag": etag, **(extra or {})}
    wanted = {tag.strip() for tag in request.headers.get("if-none-match", "").split(",")}
    if etag in wanted:
        return Response(304, b"", headers)
    return Response(200, body, {"content-type": content_type, **headers})


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def _error(status: int, message: str, documentation_url: str = _DOCS) -> Response:
    body = {"message": message, "documentation_url": documentation_url, "status": str(status)}
    return Response(status, _json(body), {"content-type": _JSON})


def default_github_double() -> GithubDouble:
    """The demo's GitHub: every GitHub list of the project's sources file that has a
    local `seed` copy, served as its upstream file with a few versions of sample history."""
    from pipeline.config import PROJECT_ROOT
    from pipeline.sources.spec import GithubSource, SourceError, read_sources_file

    files: list[UpstreamFile] = []
    try:
        entries = read_sources_file(PROJECT_ROOT / "sources.toml")
    except SourceError:
        entries = []  # an installed package without the project's checkout: nothing to serve
    for entry in entries:
        if isinstance(entry.location, GithubSource) and entry.seed is not None:
            try:
                text = entry.seed.read_bytes()
            except OSError:
                continue
            source = entry.location
            files.append(UpstreamFile.with_history(source.owner, source.repo, source.path, text))
    return GithubDouble(files)
