"""The Hugging Face Hub API double: sample data in the Hub's real wire formats.

Serves the endpoints the pipeline uses (reference: docs Part 2; real bodies in
tests/fixtures/api-samples/hf_*.json):

    GET /api/models/{id}            default key set, or `expand[]=`/`expand=` properties only
    GET /api/datasets/{id}          idem
    GET /api/spaces/{id}            idem
    GET /api/collections/{ns}/{slug-id}   an old slug with the same trailing id works too,
                                    and so does the short `{ns}/{slug}` of `shareUrl`
    GET /api/papers/{arxiv_id}      404 body as the real one for papers nobody cited
    GET /api/models?filter=arxiv:ID listing (paginated with a `Link: rel="next"` header)
    GET /api/arxiv/{arxiv_id}/repos {"models": [...], "datasets": [...], "spaces": [...]}

Behaviours modelled on the real Hub: a missing repo answers 401 anonymously and 404 with a
token, both with `X-Error-Code: RepoNotFound`; a renamed repo answers a redirect (307 by
default, `rename_status` to pick 301, 302 or 308: the real status is not confirmed) with a
relative `Location`; a disabled repo answers 403; every answer carries `RateLimit` and
`RateLimit-Policy` headers from a fixed-window counter (`FixedWindow`), and a spent quota
answers 429 with `RateLimit: "api";r=0;t=<seconds to the window's end>`. No `Retry-After`:
the Hub documents only the two RateLimit headers (hub-docs rate-limits.md; reference 2.8).

API-specific faults (`Fault(kind="api", name=...)`, checked by `check_fault_name`):
- `redirect_loop`: A -> A-moved -> A -> ... (307s);
- `wrong_types`: counts as strings (`"downloads": "many"`), a collection item id as a number;
- `drop_field` (the body's identity key) or `drop_field:<key>`;
- `rate_limited`: 429 with RateLimit headers, reset at the window's end;
  `rate_limited:<t>`: the same with `t=<t>` seconds to reset (a transient 429);
- `rate_limited_bare`: 429 without any header;
- `huge_ints`: integers past int64: `downloads`, `likes`, `upvotes`, `numParameters`,
  `githubStars` wherever they occur, `gguf.total`, and `safetensors.parameters` whose
  values each fit in int64 but whose sum (and `total`) does not;
- `hostile_id:traversal|absolute|url`: every `id` (and `modelId`) of the body replaced by
  `../../../../etc/passwd`, `/etc/passwd` or a URL.

Everything served is SAMPLE data (`pipeline/sandbox/data/hub_*.json`, or synthetic bodies
for unknown IDs with `synthesize_unknown=True`), never a claim about the real repositories.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from importlib.resources import files
from typing import Any
from urllib.parse import quote, unquote, urlencode

from pipeline.records import INT64_MAX
from pipeline.sandbox.wire import Request, Response

JsonObject = dict[str, Any]

_JSON = "application/json; charset=utf-8"

# The properties each repo type accepts in `expand`, from huggingface_hub's
# Expand{Model,Dataset,Space}Property_T; any other value is a 400, as on the Hub.
EXPANDABLE: dict[str, frozenset[str]] = {
    "models": frozenset(
        [
            "author",
            "baseModels",
            "cardData",
            "childrenModelCount",
            "config",
            "createdAt",
            "disabled",
            "downloads",
            "downloadsAllTime",
            "evalResults",
            "gated",
            "gguf",
            "inference",
            "inferenceProviderMapping",
            "lastModified",
            "library_name",
            "likes",
            "mask_token",
            "model-index",
            "pipeline_tag",
            "private",
            "resourceGroup",
            "safetensors",
            "sha",
            "siblings",
            "spaces",
            "tags",
            "transformersInfo",
            "trendingScore",
            "widgetData",
            "usedStorage",
        ]
    ),
    "datasets": frozenset(
        [
            "author",
            "cardData",
            "citation",
            "createdAt",
            "disabled",
            "description",
            "downloads",
            "downloadsAllTime",
            "gated",
            "lastModified",
            "likes",
            "paperswithcode_id",
            "private",
            "resourceGroup",
            "siblings",
            "sha",
            "tags",
            "trendingScore",
            "usedStorage",
        ]
    ),
    "spaces": frozenset(
        [
            "author",
            "cardData",
            "createdAt",
            "datasets",
            "disabled",
            "lastModified",
            "likes",
            "models",
            "private",
            "resourceGroup",
            "runtime",
            "sdk",
            "siblings",
            "sha",
            "subdomain",
            "tags",
            "trendingScore",
            "usedStorage",
        ]
    ),
}

# Fields of a listing item (`GET /api/models?...` without `full`/`expand`), as
# huggingface_hub's list_models receives them.
_LISTING_KEYS = (
    "_id",
    "id",
    "likes",
    "trendingScore",
    "private",
    "downloads",
    "tags",
    "pipeline_tag",
    "library_name",
    "createdAt",
    "modelId",
)
_ARXIV_REPOS_KEYS = ("id", "author", "likes", "downloads", "tags", "pipeline_tag", "lastModified")

_UNAUTHORIZED = "Invalid username or password."
_PAPER_NOT_FOUND = (
    "Paper not found. For an arXiv paper to appear on Hugging Face, its arxiv.org URL needs to be"
    " mentioned in at least one model, dataset or Space's README.md.\n\nIf this paper exists,"
    " cite https://arxiv.org/abs/{id} in any of your repos' README.md for the paper to have its"
    " own page here."
)
_DISABLED = "Access to this resource is disabled."

# The Hub's naming rule for repo IDs, kept independent of the pipeline's own validator so
# that the double does not share the bugs of the code it tests.
_REPO_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}$")
_COLLECTION_ID = re.compile(r"-([0-9a-f]{24})$")

_LISTING_PAGE_SIZE = 1000
_LOOP_SUFFIX = "-moved"
_RENAME_STATUSES = frozenset({301, 302, 307, 308})

FAULT_NAMES = frozenset(
    {
        "redirect_loop",
        "wrong_types",
        "drop_field",
        "rate_limited",
        "rate_limited_bare",
        "huge_ints",
        "hostile_id",
    }
)
HOSTILE_IDS = {
    "traversal": "../../../../etc/passwd",
    "absolute": "/etc/passwd",
    "url": "https://evil.example/api/models/x",
}
# Counts that a careless reader stores in an int64 column.
_HUGE_KEYS = ("downloads", "likes", "upvotes", "numParameters", "githubStars")


def check_fault_name(name: str) -> None:
    """Raises ValueError unless `name` is one of this double's API faults (module docstring)."""
    base, colon, argument = name.partition(":")
    if base not in FAULT_NAMES:
        raise ValueError(f"unknown Hub API fault {name!r}; known: {', '.join(sorted(FAULT_NAMES))}")
    if base == "rate_limited" and colon and not (argument.isdigit() and int(argument) >= 1):
        raise ValueError(f"Hub API fault {name!r}: the reset after ':' must be whole seconds >= 1")
    if base == "hostile_id" and argument not in HOSTILE_IDS:
        raise ValueError(
            f"Hub API fault {name!r}: say which id after ':', one of {', '.join(HOSTILE_IDS)}"
        )
    if base == "drop_field" and colon and not argument:
        raise ValueError(f"Hub API fault {name!r}: name the key after ':'")
    if base not in ("rate_limited", "hostile_id", "drop_field") and colon:
        raise ValueError(f"Hub API fault {name!r} takes no argument")


class FixedWindow:
    """The Hub's rate-limit bucket: `quota` requests per fixed window of `window_seconds`,
    all of them available again when a window ends (hub-docs rate-limits.md).

    The first window starts when the counter is made, with `left` requests (default: the
    whole quota) still allowed in it. Thread-safe.
    """

    def __init__(
        self,
        quota: int,
        window_seconds: int,
        *,
        left: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if quota < 1 or window_seconds < 1:
            raise ValueError(
                f"a window needs quota >= 1 and window_seconds >= 1: {quota}/{window_seconds}"
            )
        if left is not None and not 0 <= left <= quota:
            raise ValueError(f"requests left must be in [0, {quota}], not {left}")
        self.quota = quota
        self.window_seconds = window_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._start = clock()
        self._used = quota - (quota if left is None else left)

    def take(self) -> tuple[int, int]:
        """Counts one request: (requests left after it, negative when it is refused; whole
        seconds until the window resets, at least 1)."""
        with self._lock:
            now = self._clock()
            elapsed = now - self._start
            if elapsed >= self.window_seconds:
                self._start += math.floor(elapsed / self.window_seconds) * self.window_seconds
                self._used = 0
            self._used += 1
            left = self.quota - self._used
            reset = self._start + self.window_seconds - now
        return left, max(1, math.ceil(reset))

    def headers(self, left: int, reset_seconds: int) -> dict[str, str]:
        """`RateLimit` and `RateLimit-Policy` as the Hub sends them (IETF draft 09)."""
        return {
            "ratelimit": f'"api";r={max(left, 0)};t={reset_seconds}',
            "ratelimit-policy": f'"fixed window";"api";q={self.quota};w={self.window_seconds}',
        }

    def refusal(self, reset_seconds: int) -> Response:
        """The 429 of a spent window."""
        return rate_limited(self.headers(0, reset_seconds))


def rate_limited(headers: Mapping[str, str]) -> Response:
    """A 429 carrying `headers` (the RateLimit pair, or none)."""
    return Response(429, b"Too Many Requests", {**headers, "content-type": "text/plain"})


def load_sample(name: str) -> JsonObject:
    """One of the packaged sample-data files (`hub_repos.json`, `hub_papers.json`)."""
    text = files("pipeline.sandbox").joinpath("data", name).read_text(encoding="utf-8")
    data: JsonObject = json.loads(text)
    return data


class HubDouble:
    """Answers Hub API requests from sample data; thread-safe (the server is threaded)."""

    def __init__(
        self,
        repos: Mapping[str, Any] | None = None,
        synthesize_unknown: bool = False,
        *,
        papers: Mapping[str, Any] | None = None,
        quota: int = 500,
        window_seconds: int = 300,
        latency_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        rename_status: int = 307,
    ) -> None:
        if rename_status not in _RENAME_STATUSES:
            raise ValueError(
                f"rename_status must be one of {sorted(_RENAME_STATUSES)}, not {rename_status}"
            )
        repos = repos if repos is not None else load_sample("hub_repos.json")
        papers = papers if papers is not None else load_sample("hub_papers.json")
        self._repos: dict[str, dict[str, JsonObject]] = {
            kind: {body["id"]: body for body in repos.get(kind, [])}
            for kind in ("models", "datasets", "spaces")
        }
        self._collections: list[JsonObject] = list(repos.get("collections", []))
        self._renamed: dict[str, dict[str, str]] = {
            kind: dict(repos.get("renamed", {}).get(kind, {}))
            for kind in ("models", "datasets", "spaces")
        }
        self._disabled: dict[str, set[str]] = {
            kind: set(repos.get("disabled", {}).get(kind, []))
            for kind in ("models", "datasets", "spaces")
        }
        self._papers: dict[str, JsonObject] = {p["id"]: p for p in papers.get("papers", [])}
        self.synthesize_unknown = synthesize_unknown
        self.rename_status = rename_status
        """The status a renamed repo answers with (307 unless a test asks otherwise)."""
        self.window = FixedWindow(quota, window_seconds, clock=clock)
        """The anonymous "api" bucket (500 per 300 s on the real Hub)."""
        self.latency_seconds = latency_seconds
        """Time each answer takes inside the double (in flight), to observe concurrency."""
        self._lock = threading.Lock()
        self._in_flight = 0
        self.max_in_flight = 0
        """The most requests the double was answering at once."""

    # -- entry point -----------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if self.latency_seconds:
                time.sleep(self.latency_seconds)
            return self._handle(request)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _handle(self, request: Request) -> Response:
        fault = request.fault.name if request.fault is not None else ""
        if fault:
            check_fault_name(fault)
        base, _, argument = fault.partition(":")
        if base == "rate_limited_bare":
            return rate_limited({})
        left, reset_seconds = self.window.take()
        if left < 0:
            return self.window.refusal(reset_seconds)
        if base == "rate_limited":
            return self.window.refusal(int(argument) if argument else reset_seconds)
        response = self._route(request, fault)
        limits = self.window.headers(left, reset_seconds)
        return Response(response.status, response.body, {**response.headers, **limits})

    # -- routing ---------------------------------------------------------------------
    def _route(self, request: Request, fault: str) -> Response:
        if request.method != "GET":
            return _json(405, {"error": "Method not allowed"})
        segments = [unquote(s) for s in request.path.split("/")[1:]]
        if len(segments) < 2 or segments[0] != "api":
            return _json(404, {"error": "Not Found"})
        route, rest = segments[1], segments[2:]
        if fault == "redirect_loop":
            return _redirect_loop(request.path)
        if route in ("models", "datasets", "spaces"):
            if not rest:
                return self._listing(route, request)
            return self._repo(route, "/".join(rest), request, fault)
        if route == "collections" and len(rest) == 2:
            return self._collection(rest[0], rest[1], fault)
        if route == "papers" and len(rest) == 1:
            return self._paper(rest[0], fault)
        if route == "arxiv" and len(rest) == 2 and rest[1] == "repos":
            return self._arxiv_repos(rest[0])
        return _json(404, {"error": "Not Found"})

    def _repo(self, kind: str, repo_id: str, request: Request, fault: str) -> Response:
        if repo_id in self._disabled[kind]:
            return _error(403, _DISABLED, code=None)
        renamed = self._renamed[kind].get(repo_id)
        if renamed is not None:
            # Relative, path only: huggingface_hub re-uses the query of the original request.
            location = f"/api/{kind}/{quote(renamed, safe='/')}"
            phrase = HTTPStatus(self.rename_status).phrase
            text = f"{phrase}. Redirecting to {location}".encode()
            return Response(
                self.rename_status, text, {"location": location, "content-type": "text/plain"}
            )
        body = self._repos[kind].get(repo_id)
        if body is None and kind == "models" and self.synthesize_unknown:
            body = synthetic_model(repo_id) if _REPO_ID.match(repo_id) else None
        if body is None:
            if "authorization" in request.headers:
                return _error(404, "Repository not found", code="RepoNotFound")
            return _error(401, _UNAUTHORIZED, code="RepoNotFound")
        expand = [*request.params("expand[]"), *request.params("expand")]
        unknown = [prop for prop in expand if prop not in EXPANDABLE[kind]]
        if unknown:
            allowed = ", ".join(sorted(EXPANDABLE[kind]))
            return _json(400, {"error": f'"expand" must be one of [{allowed}]'})
        answer = copy.deepcopy(body)
        if expand:
            answer = {
                key: value for key, value in answer.items() if key in ("_id", "id") or key in expand
            }
        return _json(200, _apply_fault(answer, fault, kind))

    def _collection(self, namespace: str, slug: str, fault: str) -> Response:
        wanted = f"{namespace}/{slug}"
        object_id = _COLLECTION_ID.search(slug)
        for collection in self._collections:
            current: str = collection["slug"]
            found = current == wanted or (
                current.split("/")[0] == namespace
                and (
                    (object_id is not None and current.endswith("-" + object_id.group(1)))
                    or _COLLECTION_ID.sub("", current) == wanted
                )
            )
            if found:
                return _json(200, _apply_fault(copy.deepcopy(collection), fault, "collections"))
        return _json(404, {"error": "Collection not found"})

    def _paper(self, arxiv_id: str, fault: str) -> Response:
        paper = self._papers.get(arxiv_id)
        if paper is None:
            return _json(404, {"error": _PAPER_NOT_FOUND.format(id=arxiv_id)})
        return _json(200, _apply_fault(copy.deepcopy(paper), fault, "papers"))

    def _listing(self, kind: str, request: Request) -> Response:
        filters = request.params("filter")
        search = (request.param("search") or "").lower()
        bodies = [
            body
            for body in self._repos[kind].values()
            if all(tag in body.get("tags", []) for tag in filters) and search in body["id"].lower()
        ]
        limit = int(request.param("limit") or _LISTING_PAGE_SIZE)
        start = int(request.param("cursor") or 0)
        page = bodies[start : start + limit]
        items = [{key: body[key] for key in _LISTING_KEYS if key in body} for body in page]
        headers: dict[str, str] = {}
        if start + limit < len(bodies):
            query = [(k, v) for k, v in request.query if k != "cursor"]
            query.append(("cursor", str(start + limit)))
            headers["link"] = f'</api/{kind}?{urlencode(query)}>; rel="next"'
        response = _json(200, items)
        return Response(response.status, response.body, {**response.headers, **headers})

    def _arxiv_repos(self, arxiv_id: str) -> Response:
        tag = f"arxiv:{arxiv_id}"
        answer: JsonObject = {}
        for kind in ("models", "datasets", "spaces"):
            answer[kind] = [
                {key: body[key] for key in _ARXIV_REPOS_KEYS if key in body}
                for body in self._repos[kind].values()
                if tag in body.get("tags", [])
            ]
        return _json(200, answer)


# -- synthetic bodies (scale benchmark) --------------------------------------------------
def synthetic_model(repo_id: str) -> JsonObject:
    """A deterministic sample body for any valid model ID: same ID, same body."""
    digest = hashlib.sha256(repo_id.encode()).digest()
    number = int.from_bytes(digest[:8], "big")
    author = repo_id.split("/")[0] if "/" in repo_id else repo_id
    params = 100_000_000 + number % 80_000_000_000
    day = 1 + number % 28
    arxiv_id = f"24{1 + number % 12:02d}.{number % 100_000:05d}"
    return {
        "_id": digest.hex()[:24],
        "id": repo_id,
        "private": False,
        "pipeline_tag": "image-text-to-text",
        "library_name": "transformers",
        "tags": [
            "transformers",
            "safetensors",
            "image-text-to-text",
            f"arxiv:{arxiv_id}",
            "license:apache-2.0",
            "region:us",
        ],
        "downloads": number % 1_000_000,
        "likes": number % 5_000,
        "modelId": repo_id,
        "author": author,
        "sha": digest.hex()[:40],
        "lastModified": f"2025-06-{day:02d}T12:00:00.000Z",
        "gated": False,
        "disabled": False,
        "model-index": None,
        "config": {"model_type": "synthetic"},
        "cardData": {"license": "apache-2.0", "pipeline_tag": "image-text-to-text"},
        "siblings": [{"rfilename": ".gitattributes"}, {"rfilename": "model.safetensors"}],
        "spaces": [],
        "createdAt": f"2024-03-{day:02d}T08:00:00.000Z",
        "safetensors": {"parameters": {"BF16": params}, "total": params},
        "usedStorage": params * 2,
    }


# -- faults and answers ------------------------------------------------------------------
def _apply_fault(body: JsonObject, fault: str, kind: str) -> JsonObject:
    if fault == "wrong_types":
        if kind == "collections":
            if body.get("items"):
                body["items"][0]["id"] = 42
            body["upvotes"] = "many"
        elif kind == "papers":
            body["upvotes"] = "many"
            for model in body.get("linkedModels", []):
                model["numParameters"] = str(model.get("numParameters"))
        else:
            body["downloads"] = "many"
            if isinstance(body.get("safetensors"), dict):
                body["safetensors"]["total"] = str(body["safetensors"]["total"])
    elif fault.startswith("drop_field"):
        _, _, key = fault.partition(":")
        body.pop(key or ("items" if kind == "collections" else "id"), None)
    elif fault == "huge_ints":
        _overflow_counts(body)
    elif fault.startswith("hostile_id:"):
        _replace_ids(body, HOSTILE_IDS[fault.partition(":")[2]])
    return body


def _overflow_counts(node: object) -> None:
    """Counts past int64, each one distinct so that a wrap-around cannot hide."""
    if isinstance(node, list):
        for item in node:
            _overflow_counts(item)
        return
    if not isinstance(node, dict):
        return
    for offset, key in enumerate(_HUGE_KEYS, start=1):
        if isinstance(node.get(key), int) and not isinstance(node[key], bool):
            node[key] = INT64_MAX + offset
    safetensors = node.get("safetensors")
    if isinstance(safetensors, dict):
        # Two dtypes that each fit in int64; their sum, which the Hub reports as total,
        # does not.
        half = INT64_MAX // 2 + 1
        safetensors["parameters"] = {"BF16": half, "F32": half}
        safetensors["total"] = 2 * half
    gguf = node.get("gguf")
    if isinstance(gguf, dict):
        gguf["total"] = 2 * INT64_MAX + 2
    for key, value in node.items():
        if key not in ("safetensors", "gguf"):
            _overflow_counts(value)


def _replace_ids(node: object, hostile: str) -> None:
    if isinstance(node, list):
        for item in node:
            _replace_ids(item, hostile)
    elif isinstance(node, dict):
        for key in node:
            if key in ("id", "modelId") and isinstance(node[key], str):
                node[key] = hostile
            else:
                _replace_ids(node[key], hostile)


def _redirect_loop(path: str) -> Response:
    """A -> A-moved -> A -> ...: a rename that points back at itself."""
    target = path[: -len(_LOOP_SUFFIX)] if path.endswith(_LOOP_SUFFIX) else path + _LOOP_SUFFIX
    body = f"Temporary Redirect. Redirecting to {target}".encode()
    return Response(307, body, {"location": target, "content-type": "text/plain"})


def _json(status: int, body: object) -> Response:
    return Response(status, json.dumps(body, ensure_ascii=False).encode(), {"content-type": _JSON})


def _error(status: int, message: str, *, code: str | None) -> Response:
    headers = {"content-type": _JSON, "x-error-message": message}
    if code is not None:
        headers["x-error-code"] = code
    return Response(status, json.dumps({"error": message}).encode(), headers)
