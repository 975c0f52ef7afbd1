"""The GitHub double speaks GitHub's wire formats: contents (base64 JSON, raw media type
over 1 MB), ETag / 304, commits with `Link` pagination, repositories, GraphQL aliases,
rate-limit headers and the spent budget, 301 for renamed repositories, 404."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from pipeline.config import PROJECT_ROOT
from pipeline.sandbox import Fault, Sandbox
from pipeline.sandbox.github_api import (
    ANONYMOUS_LIMIT,
    GithubDouble,
    UpstreamFile,
    blob_sha,
    default_github_double,
)

LIST = b"# Sample list\n\n" + b"".join(
    b"- [Paper %d](https://arxiv.org/abs/2401.%05d)\n" % (i, i) for i in range(8)
)
AGENT = {"user-agent": "tests"}


@pytest.fixture
def double() -> GithubDouble:
    return GithubDouble([UpstreamFile.with_history("owner", "lists", "docs/list.md", LIST)])


@pytest.fixture
def client(double: GithubDouble) -> Iterator[httpx.Client]:
    with (
        Sandbox(github=double) as sandbox,
        httpx.Client(base_url=sandbox.github_api_url, headers=AGENT) as http,
    ):
        yield http


def test_contents_are_base64_json_with_the_blob_sha(client: httpx.Client) -> None:
    answer = client.get("/repos/owner/lists/contents/docs/list.md")

    assert answer.status_code == 200
    body = answer.json()
    assert body["type"] == "file" and body["encoding"] == "base64"
    assert all(len(line) <= 60 for line in body["content"].splitlines())
    assert base64.b64decode(body["content"]) == LIST
    assert body["sha"] == blob_sha(LIST) and body["size"] == len(LIST)
    assert answer.headers["etag"].startswith('W/"')
    assert answer.headers["x-ratelimit-limit"] == str(ANONYMOUS_LIMIT)
    assert answer.headers["x-ratelimit-resource"] == "core"


def test_a_conditional_request_with_the_etag_is_a_304_without_a_body(
    client: httpx.Client,
) -> None:
    first = client.get("/repos/owner/lists/contents/docs/list.md")
    again = client.get(
        "/repos/owner/lists/contents/docs/list.md",
        headers={"if-none-match": first.headers["etag"]},
    )

    assert again.status_code == 304 and again.content == b""
    # Anonymous 304s count against the budget; authorised ones do not.
    assert int(again.headers["x-ratelimit-used"]) == 2
    auth = {"authorization": "Bearer canary"}
    token_first = client.get("/repos/owner/lists/contents/docs/list.md", headers=auth)
    token_again = client.get(
        "/repos/owner/lists/contents/docs/list.md",
        headers={**auth, "if-none-match": token_first.headers["etag"]},
    )
    assert token_again.status_code == 304
    assert token_again.headers["x-ratelimit-used"] == token_first.headers["x-ratelimit-used"]


def test_an_upstream_edit_changes_the_etag_and_adds_a_commit(
    client: httpx.Client, double: GithubDouble
) -> None:
    first = client.get("/repos/owner/lists/contents/docs/list.md")
    double.edit(
        "owner",
        "lists",
        "docs/list.md",
        LIST + b"- [New](https://arxiv.org/abs/2402.00001)\n",
        datetime(2025, 6, 1, tzinfo=UTC),
    )

    again = client.get(
        "/repos/owner/lists/contents/docs/list.md", headers={"if-none-match": first.headers["etag"]}
    )
    commits = client.get("/repos/owner/lists/commits", params={"path": "docs/list.md"}).json()

    assert again.status_code == 200
    assert b"2402.00001" in base64.b64decode(again.json()["content"])
    assert commits[0]["commit"]["message"] == "upstream edit"
    assert commits[0]["commit"]["committer"]["date"] == "2025-06-01T00:00:00Z"


def test_commits_are_newest_first_and_paginated_by_link(client: httpx.Client) -> None:
    first = client.get(
        "/repos/owner/lists/commits", params={"path": "docs/list.md", "per_page": "2"}
    )
    after = client.get(first.links["next"]["url"].replace("https://api.github.com", ""))
    commits = first.json() + after.json()

    dates = [c["commit"]["committer"]["date"] for c in commits]
    assert len(commits) == 3 and dates == sorted(dates, reverse=True)
    assert "next" not in after.links
    # The file at an older commit: the contents API with ref=<sha>.
    oldest = client.get(
        "/repos/owner/lists/contents/docs/list.md", params={"ref": commits[-1]["sha"]}
    )
    assert len(base64.b64decode(oldest.json()["content"])) < len(LIST)


def test_files_over_one_megabyte_come_by_the_raw_media_type_only() -> None:
    big = b"# Big\n" + b"x" * (1024 * 1024 + 10)
    double = GithubDouble([UpstreamFile("owner", "lists", "big.md")])
    double.files[("owner", "lists", "big.md")].commit(big, "big", datetime(2025, 1, 1, tzinfo=UTC))
    with (
        Sandbox(github=double) as sandbox,
        httpx.Client(base_url=sandbox.github_api_url, headers=AGENT) as http,
    ):
        as_json = http.get("/repos/owner/lists/contents/big.md").json()
        raw = http.get(
            "/repos/owner/lists/contents/big.md",
            headers={"accept": "application/vnd.github.raw+json"},
        )

    assert as_json["content"] == "" and as_json["encoding"] == "none"
    assert as_json["size"] == len(big)
    assert raw.status_code == 200 and raw.content == big
    assert raw.headers["content-type"] == "application/vnd.github.raw"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/repos/owner/lists/contents/docs/missing.md", 404),
        ("/repos/owner/lists/contents/docs/list.md?ref=no-such-branch", 404),
        ("/repos/nobody!/x/contents/a.md", 404),
        ("/repos/owner/lists", 200),
    ],
)
def test_missing_files_refs_and_repositories_are_404(
    client: httpx.Client, path: str, status: int
) -> None:
    answer = client.get(path)

    assert answer.status_code == status
    if status == 404:
        assert answer.json()["message"] == "Not Found"


def test_a_renamed_repository_answers_301_to_its_id(
    client: httpx.Client, double: GithubDouble
) -> None:
    double.rename("owner/lists", "new-owner/reading-lists")

    moved = client.get("/repos/owner/lists/contents/docs/list.md")
    followed = client.get(moved.headers["location"])

    assert moved.status_code == 301
    assert moved.headers["location"].startswith("/repositories/")
    assert followed.status_code == 200
    assert followed.json()["html_url"].startswith("https://github.com/new-owner/reading-lists/")


def test_a_spent_budget_is_a_403_with_remaining_zero() -> None:
    double = GithubDouble(synthesize_repos=True)
    with (
        Sandbox(github=double) as sandbox,
        httpx.Client(base_url=sandbox.github_api_url, headers=AGENT) as http,
    ):
        answers = [http.get("/repos/some/repo") for _ in range(ANONYMOUS_LIMIT + 1)]

    assert {a.status_code for a in answers[:ANONYMOUS_LIMIT]} == {200}
    last = answers[-1]
    assert last.status_code == 403
    assert last.headers["x-ratelimit-remaining"] == "0"
    assert "rate limit exceeded" in last.json()["message"]


def test_secondary_limits_come_from_the_fault_plan(client: httpx.Client) -> None:
    sandbox_fault = Fault(
        api="github",
        kind="status",
        status=403,
        headers={"retry-after": "1"},
        body=b'{"message": "You have exceeded a secondary rate limit."}',
    )
    # The fixture's sandbox is not reachable from here: a fresh one shows the fault.
    with Sandbox(github=GithubDouble(), faults=[sandbox_fault]) as sandbox:
        answer = httpx.get(sandbox.github_api_url + "/repos/a/b", headers=AGENT)

    assert answer.status_code == 403 and answer.headers["retry-after"] == "1"


def test_requests_without_a_user_agent_are_refused(client: httpx.Client) -> None:
    answer = client.get("/repos/owner/lists", headers={"user-agent": ""})

    assert answer.status_code == 403


def test_graphql_needs_a_token_and_reports_missing_repositories_beside_data() -> None:
    query = (
        'query { r0: repository(owner: "owner", name: "lists") { nameWithOwner stargazerCount }'
        ' r1: repository(owner: "nobody!", name: "x") { nameWithOwner } }'
    )
    double = GithubDouble(synthesize_repos=True)
    with Sandbox(github=double) as sandbox:
        url = sandbox.github_api_url + "/graphql"
        anonymous = httpx.post(url, json={"query": query}, headers=AGENT)
        answer = httpx.post(
            url, json={"query": query}, headers={**AGENT, "authorization": "Bearer t"}
        )

    assert anonymous.status_code == 401
    body = answer.json()
    assert answer.status_code == 200
    assert body["data"]["r0"]["nameWithOwner"] == "owner/lists"
    assert body["data"]["r1"] is None
    assert body["errors"][0]["type"] == "NOT_FOUND" and body["errors"][0]["path"] == ["r1"]
    assert answer.headers["x-ratelimit-resource"] == "graphql"


def test_the_default_double_serves_the_seed_of_each_github_list() -> None:
    double = default_github_double()
    upstream = double.files[("promptexpert", "blogs", "docs/mllm/mllm_papers.md")]

    assert len(upstream.versions) == 3
    seed = PROJECT_ROOT / "raw/seeds/000_d178590c888f63f5.txt"
    assert upstream.versions[-1].text == seed.read_bytes()
    assert len(upstream.versions[0].text) < len(upstream.versions[-1].text)
    assert len({v.sha for v in upstream.versions}) == 3
