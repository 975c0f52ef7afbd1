"""Code repositories against the GitHub double: REST within the anonymous budget, stalest
first; GraphQL 100 per query with a token; renames keep both names; not found; the last
good answer when GitHub fails; the time-to-live; and a paper's merged `code_repos`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from nights import FAST_ENV

from pipeline.config import RefreshPolicy, Settings
from pipeline.resolve.common import Deadline
from pipeline.resolve.github_repos import GithubRepoResolver, alias, graphql_query
from pipeline.resolve.rawstore import RawStore
from pipeline.sandbox import Sandbox
from pipeline.sandbox.github_api import ANONYMOUS_LIMIT, GithubDouble, SampleRepo
from pipeline.snapshot.code_repos import code_repos

QWEN = SampleRepo(
    "QwenLM/Qwen2-VL",
    4242,
    stargazers_count=9000,
    forks_count=500,
    open_issues_count=30,
    pushed_at="2025-10-01T08:00:00Z",
    archived=True,
    license_spdx="Apache-2.0",
    description="Qwen2-VL",
    topics=["vlm", "multimodal"],
    language="Python",
)
TOKEN = "ghp_SampleToken0123456789abcdefghijABCD"
FAST = {
    "PIPELINE_GITHUB_BACKOFF_SECONDS": "0.01",
    "PIPELINE_GITHUB_BACKOFF_MAX_SECONDS": "0.05",
    "PIPELINE_GITHUB_TIMEOUT_SECONDS": "0.5",
    "PIPELINE_GITHUB_MAX_ATTEMPTS": "2",
}


@pytest.fixture
def double() -> GithubDouble:
    return GithubDouble(repos=[QWEN], synthesize_repos=False)


@pytest.fixture
def sandbox(double: GithubDouble) -> Iterator[Sandbox]:
    with Sandbox(github=double) as running:
        yield running


def resolve(settings: Settings, raw: Path, repos: list[str]) -> dict[str, Any]:
    with RawStore(raw) as store:
        resolver = GithubRepoResolver(settings, store, deadline=Deadline(60))
        try:
            return dict(resolver.resolve_repos(repos))
        finally:
            resolver.close()


def settings_for(sandbox: Sandbox, **changes: object) -> Settings:
    return Settings.from_env({**sandbox.env(), **FAST_ENV, **FAST}).replace(**changes)


@pytest.mark.parametrize("token", [None, TOKEN])
def test_a_repository_by_rest_or_graphql_gives_the_same_record(
    sandbox: Sandbox, tmp_path: Path, token: str | None
) -> None:
    found = resolve(settings_for(sandbox, github_token=token), tmp_path, ["qwenlm/qwen2-vl"])

    record = found["qwenlm/qwen2-vl"]
    assert record.status == "ok"
    assert (record.full_name, record.stars, record.forks, record.open_issues) == (
        "QwenLM/Qwen2-VL",
        9000,
        500,
        30,
    )
    assert record.pushed_at == datetime(2025, 10, 1, 8, tzinfo=UTC)
    assert (record.archived, record.license, record.language) == (True, "Apache-2.0", "Python")
    assert record.topics == ("multimodal", "vlm")
    paths = {r.path for r in sandbox.requests("github")}
    assert paths == ({"/graphql"} if token else {"/repos/qwenlm/qwen2-vl"})


def test_graphql_asks_100_repositories_per_query_and_reads_not_found_beside_data(
    tmp_path: Path,
) -> None:
    repos = [f"owner/repo-{i:03d}" for i in range(150)] + ["owner/gone"]
    double = GithubDouble(repos=[SampleRepo(r, 1000 + i) for i, r in enumerate(repos[:-1])])
    double.synthesize_repos = False
    with Sandbox(github=double) as sandbox:
        found = resolve(settings_for(sandbox, github_token=TOKEN), tmp_path, repos)
        posts = sandbox.requests("github")

    assert len(posts) == 2 and {p.path for p in posts} == {"/graphql"}
    assert found["owner/gone"].status == "not_found"
    assert sum(1 for r in found.values() if r.status == "ok") == 150


def test_without_a_token_rest_stays_within_the_budget_stalest_first(tmp_path: Path) -> None:
    repos = [f"owner/repo-{i:03d}" for i in range(ANONYMOUS_LIMIT + 5)]
    with Sandbox(github=GithubDouble()) as sandbox:
        settings = settings_for(sandbox)
        first = resolve(settings, tmp_path, repos)
        statuses = [r.status for r in sandbox.requests("github")]
    reserve = settings.github_lists_reserve_requests
    unasked = [r for r, record in first.items() if record.status == "error"]
    assert len(unasked) == 5 + reserve and "reserve" in (first[unasked[0]].status_reason or "")
    # Stopped with the reserve left for the next run's lists: no 403, and no hour's wait.
    assert statuses == [200] * (ANONYMOUS_LIMIT - reserve)

    # The next hour: those never asked go first, then the oldest answers.
    with Sandbox(github=GithubDouble()) as sandbox:
        second = resolve(settings_for(sandbox, refresh=RefreshPolicy.REFRESH), tmp_path, repos)
        asked = [r.path.removeprefix("/repos/") for r in sandbox.requests("github")]
    assert asked[: len(unasked)] == unasked
    assert {r.status for r in second.values()} == {"ok", "stale"}
    stale = [r for r in second.values() if r.status == "stale"]
    assert len(stale) == 5 + reserve and all(
        "last good answer" in (r.status_reason or "") for r in stale
    )


def test_a_budget_spent_before_the_lookups_stops_them_at_once_without_waiting(
    tmp_path: Path,
) -> None:
    with Sandbox(github=GithubDouble()) as sandbox:
        settings = settings_for(sandbox, github_lists_reserve_requests=0)
        resolve(settings, tmp_path / "a", [f"o/r{i}" for i in range(ANONYMOUS_LIMIT)])
        sandbox.reset_log()
        later = resolve(settings, tmp_path / "b", ["o/late-1", "o/late-2"])

    assert [r.status for r in sandbox.requests("github")] == [403]  # asked once, no hour's wait
    assert {r.status for r in later.values()} == {"error"}
    assert all("budget" in (r.status_reason or "") for r in later.values())


def test_a_renamed_repository_keeps_the_linked_name_and_gains_the_new_one(
    sandbox: Sandbox, double: GithubDouble, tmp_path: Path
) -> None:
    double.rename("QwenLM/Qwen2-VL", "Qwen/Qwen2-VL")

    rest = resolve(settings_for(sandbox), tmp_path / "a", ["qwenlm/qwen2-vl"])
    graphql = resolve(
        settings_for(sandbox, github_token=TOKEN), tmp_path / "b", ["qwenlm/qwen2-vl"]
    )

    for found in (rest, graphql):
        assert found["qwenlm/qwen2-vl"].full_name == "Qwen/Qwen2-VL"
        assert found["qwenlm/qwen2-vl"].status == "ok"


def test_missing_repositories_are_not_found_and_failures_fall_back(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    settings = settings_for(sandbox)
    found = resolve(settings, tmp_path, ["qwenlm/qwen2-vl", "nobody/nothing"])
    assert found["nobody/nothing"].status == "not_found"
    assert found["qwenlm/qwen2-vl"].status == "ok", found

    nowhere = settings.replace(github_api_url="http://127.0.0.1:9", refresh=RefreshPolicy.REFRESH)
    again = resolve(nowhere, tmp_path, ["qwenlm/qwen2-vl", "owner/never-seen"])
    assert again["qwenlm/qwen2-vl"].status == "stale", again
    assert again["qwenlm/qwen2-vl"].stars == 9000
    assert again["owner/never-seen"].status == "error"


def test_answers_within_their_time_to_live_are_not_asked_again(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    settings = settings_for(sandbox, github_token=TOKEN)
    resolve(settings, tmp_path, ["qwenlm/qwen2-vl", "nobody/nothing"])
    sandbox.reset_log()

    again = resolve(settings, tmp_path, ["qwenlm/qwen2-vl", "nobody/nothing"])
    expired = resolve(settings.replace(github_ttl_seconds=0), tmp_path, ["qwenlm/qwen2-vl"])

    assert again["qwenlm/qwen2-vl"].stars == 9000
    assert again["nobody/nothing"].status == "not_found"
    assert expired["qwenlm/qwen2-vl"].status == "ok"
    assert len(sandbox.requests("github")) == 1  # the expired one only


def test_the_query_aliases_every_repository_by_a_digest_of_its_name() -> None:
    query = graphql_query(["a/b", "C/D"])

    assert f'{alias("a/b")}: repository(owner: "a", name: "b")' in query
    assert alias("C/D") == alias("c/d")
    assert "rateLimit" in query


@pytest.mark.parametrize(
    ("links", "page", "comment", "expected"),
    [
        (
            ["qwenlm/qwen2-vl"],
            "https://github.com/QwenLM/Qwen2-VL",
            ["https://github.com/QwenLM/Qwen2-VL/tree/main", "https://gitlab.com/a/b"],
            [
                {
                    "url": "https://github.com/qwenlm/qwen2-vl",
                    "repo": "qwenlm/qwen2-vl",
                    "sources": ["links", "hf_paper_page", "arxiv"],
                },
                {"url": "https://gitlab.com/a/b", "repo": None, "sources": ["arxiv"]},
            ],
        ),
        ([], None, [], []),
        (
            [],
            "https://github.com/o/r",
            [],
            [{"url": "https://github.com/o/r", "repo": "o/r", "sources": ["hf_paper_page"]}],
        ),
    ],
)
def test_a_papers_code_repos_merge_every_code_link_with_its_sources(
    links: list[str], page: str | None, comment: list[str], expected: list[dict[str, Any]]
) -> None:
    assert code_repos(links, page, comment) == expected
