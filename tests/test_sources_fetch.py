"""The sources stage against the GitHub double: conditional requests, the raw media type,
renames, rate limits and secondary limits, an unreachable GitHub, the token's reach, and
the history a backfill reads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from nights import FAST_ENV

from pipeline.config import RefreshPolicy, Settings
from pipeline.resolve.common import Deadline
from pipeline.resolve.github_http import GithubClient
from pipeline.resolve.rawstore import RawStore
from pipeline.sandbox import Fault, Sandbox
from pipeline.sandbox.github_api import GithubDouble, UpstreamFile
from pipeline.sources.fetch import fetch_document
from pipeline.sources.spec import GithubSource

LIST = b"# Sample list\n\n" + b"".join(
    b"- [Paper %d](https://arxiv.org/abs/2401.%05d)\n" % (i, i) for i in range(8)
)
SOURCE = GithubSource("owner", "lists", "docs/list.md")
GITHUB_FAST = {
    "PIPELINE_GITHUB_BACKOFF_SECONDS": "0.01",
    "PIPELINE_GITHUB_BACKOFF_MAX_SECONDS": "0.05",
    "PIPELINE_GITHUB_TIMEOUT_SECONDS": "0.5",
    "PIPELINE_GITHUB_MAX_ATTEMPTS": "3",
}


@pytest.fixture
def double() -> GithubDouble:
    return GithubDouble([UpstreamFile.with_history("owner", "lists", "docs/list.md", LIST)])


@pytest.fixture
def sandbox(double: GithubDouble) -> Iterator[Sandbox]:
    with Sandbox(github=double) as running:
        yield running


def settings_for(sandbox: Sandbox, **env: str) -> Settings:
    return Settings.from_env({**sandbox.env(), **FAST_ENV, **GITHUB_FAST, **env})


def client(settings: Settings, raw: Path) -> GithubClient:
    return GithubClient(settings, RawStore(raw), Deadline(60))


def test_an_unchanged_list_is_a_304_and_is_not_downloaded_again(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    settings = settings_for(sandbox)
    with client(settings, tmp_path) as first:
        night_1 = fetch_document(first, "list", SOURCE)
    sandbox.reset_log()
    with client(settings, tmp_path) as second:
        night_2 = fetch_document(second, "list", SOURCE)

    assert night_1.status == night_2.status == "ok"
    assert night_1.data == night_2.data == LIST
    assert not night_1.not_modified and night_2.not_modified
    assert [r.status for r in sandbox.requests("github")] == [304]
    # The version's commit and fetch time are those of the night that downloaded it.
    assert night_2.commit_sha == night_1.commit_sha is not None
    assert night_2.fetched_at == night_1.fetched_at


def test_an_upstream_edit_is_downloaded_with_its_commit(
    sandbox: Sandbox, double: GithubDouble, tmp_path: Path
) -> None:
    settings = settings_for(sandbox)
    with client(settings, tmp_path) as first:
        fetch_document(first, "list", SOURCE)
    edited = LIST + b"- [New](https://arxiv.org/abs/2402.00001)\n"
    commit = double.edit("owner", "lists", "docs/list.md", edited, datetime(2025, 6, 1, tzinfo=UTC))
    with client(settings, tmp_path) as second:
        again = fetch_document(second, "list", SOURCE)

    assert again.data == edited and not again.not_modified
    assert again.commit_sha == commit.sha
    assert again.committed_at == datetime(2025, 6, 1, tzinfo=UTC)


def test_a_file_over_one_megabyte_comes_by_the_raw_media_type(tmp_path: Path) -> None:
    big = b"# Big\n\n- [x](https://arxiv.org/abs/2401.00001)\n" + b"z" * (1024 * 1024)
    upstream = UpstreamFile("owner", "lists", "big.md")
    upstream.commit(big, "big", datetime(2025, 1, 1, tzinfo=UTC))
    with Sandbox(github=GithubDouble([upstream])) as sandbox:
        settings = settings_for(sandbox)
        source = GithubSource("owner", "lists", "big.md")
        with client(settings, tmp_path) as first:
            fetched = fetch_document(first, "big", source)
        with client(settings, tmp_path) as second:
            again = fetch_document(second, "big", source)
        accepts = [r.path for r in sandbox.requests("github")]

    assert fetched.data == big and again.data == big
    assert again.not_modified  # the JSON answer's ETag, not the raw one's
    assert accepts.count("/repos/owner/lists/contents/big.md") == 3  # JSON, raw, then 304


def test_a_renamed_repository_is_followed_and_its_new_name_kept(
    sandbox: Sandbox, double: GithubDouble, tmp_path: Path
) -> None:
    double.rename("owner/lists", "new-owner/reading-lists")
    with client(settings_for(sandbox), tmp_path) as github:
        fetched = fetch_document(github, "list", SOURCE)

    assert fetched.status == "ok" and fetched.data == LIST
    assert fetched.repo == "new-owner/reading-lists"
    assert 301 in {r.status for r in sandbox.requests("github")}


@pytest.mark.parametrize(
    ("fault", "retried"),
    [
        (
            Fault(
                "github",
                "status",
                status=403,
                headers={"retry-after": "0"},
                body=b'{"message": "You have exceeded a secondary rate limit."}',
            ),
            True,
        ),
        (
            Fault(
                "github",
                "status",
                status=429,
                body=b'{"message": "You have exceeded a secondary rate limit."}',
            ),
            True,
        ),
        (Fault("github", "status", status=502), True),
    ],
)
def test_limits_and_5xx_are_waited_out_and_retried(
    sandbox: Sandbox, tmp_path: Path, fault: Fault, retried: bool
) -> None:
    sandbox.add_fault(fault)
    with client(settings_for(sandbox), tmp_path) as github:
        fetched = fetch_document(github, "list", SOURCE)

    assert fetched.status == "ok" and fetched.data == LIST
    statuses = [r.status for r in sandbox.requests("github")]
    assert statuses[0] == fault.status and statuses[1] == 200
    assert github.stats.retries == 1


def test_a_redirect_to_another_host_is_refused(sandbox: Sandbox, tmp_path: Path) -> None:
    """As the Hub's client does: the same double under another host name is another host,
    and a redirect there is not followed (with or without the token)."""
    elsewhere = sandbox.github_api_url.replace("127.0.0.1", "localhost")
    location = f"{elsewhere}/repos/owner/lists/contents/docs/list.md"
    sandbox.add_fault(Fault("github", "status", status=302, headers={"location": location}))
    with client(settings_for(sandbox, GITHUB_TOKEN="ghp_redirected"), tmp_path) as github:
        fetched = fetch_document(github, "list", SOURCE)

    assert fetched.status == "error"
    assert "redirect to another host refused: localhost" in (fetched.status_reason or "")
    assert [r.status for r in sandbox.requests("github")] == [302]


@pytest.mark.parametrize(
    ("deadline_seconds", "stale_wait_seconds", "why"),
    [(60, "7200", "run deadline"), (7200, "60", "past github_stale_wait_max_seconds=60")],
)
def test_a_spent_budget_not_soon_reset_falls_back_on_the_last_version(
    sandbox: Sandbox, tmp_path: Path, deadline_seconds: float, stale_wait_seconds: str, why: str
) -> None:
    """A reset an hour away: past the deadline, or (within it) past the short bound a
    list with a last version waits: that version is used at once, stale and named."""
    settings = settings_for(sandbox, PIPELINE_GITHUB_STALE_WAIT_MAX_SECONDS=stale_wait_seconds)
    with client(settings, tmp_path) as first:
        fetch_document(first, "list", SOURCE)
    reset = str(int(datetime.now(UTC).timestamp()) + 3600)
    spent = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset}
    sandbox.reset_log()
    sandbox.add_fault(
        Fault(
            "github",
            "status",
            times=-1,
            status=403,
            headers=spent,
            body=b'{"message": "API rate limit exceeded for 127.0.0.1."}',
        )
    )
    with GithubClient(settings, RawStore(tmp_path), Deadline(deadline_seconds)) as github:
        fetched = fetch_document(github, "list", SOURCE)

    assert fetched.status == "stale" and fetched.data == LIST
    assert fetched.status_reason is not None
    assert "rate limit exceeded" in fetched.status_reason
    assert why in fetched.status_reason
    assert len(sandbox.requests("github")) == 1  # asked once, then no tight loop


def test_github_unreachable_uses_the_last_version_or_says_never_fetched(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    with client(settings_for(sandbox), tmp_path / "a") as first:
        fetch_document(first, "list", SOURCE)
    nowhere = Settings.from_env({**FAST_ENV, **GITHUB_FAST, "GITHUB_API_URL": "http://127.0.0.1:9"})

    with client(nowhere, tmp_path / "a") as github:
        stale = fetch_document(github, "list", SOURCE)
    with client(nowhere, tmp_path / "b") as github:
        never = fetch_document(github, "list", SOURCE)

    assert stale.status == "stale" and stale.data == LIST
    assert stale.status_reason is not None and "last good answer from" in stale.status_reason
    assert never.status == "error" and never.data is None
    assert never.status_reason is not None and never.status_reason.startswith("not fetched")


def test_a_missing_file_is_an_error_that_says_404(sandbox: Sandbox, tmp_path: Path) -> None:
    with client(settings_for(sandbox), tmp_path) as github:
        fetched = fetch_document(github, "x", GithubSource("owner", "lists", "nope.md"))

    assert fetched.status == "error"
    assert fetched.status_reason is not None and "HTTP 404" in fetched.status_reason


def test_offline_reads_the_store_and_asks_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    with client(settings_for(sandbox), tmp_path) as first:
        fetch_document(first, "list", SOURCE)
    sandbox.reset_log()
    with client(settings_for(sandbox), tmp_path) as github:
        fetched = fetch_document(github, "list", SOURCE, policy=RefreshPolicy.OFFLINE)

    assert fetched.status == "ok" and fetched.data == LIST
    assert sandbox.requests("github") == []


def test_backfill_reads_past_versions_once(sandbox: Sandbox, tmp_path: Path) -> None:
    with client(settings_for(sandbox), tmp_path) as first:
        fetched = fetch_document(first, "list", SOURCE, backfill=2)
    sandbox.reset_log()
    with client(settings_for(sandbox), tmp_path) as second:
        again = fetch_document(second, "list", SOURCE, backfill=2)

    assert [len(v.data) for v in fetched.history] == sorted(
        (len(v.data) for v in fetched.history), reverse=True
    )
    assert len(fetched.history) == 2
    assert all(len(v.data) < len(LIST) for v in fetched.history)
    assert again.history == fetched.history
    # Past versions never change: only the 304 and the commit list are asked again.
    asked = [r.path for r in sandbox.requests("github")]
    assert asked == ["/repos/owner/lists/contents/docs/list.md", "/repos/owner/lists/commits"]


def test_the_token_goes_to_the_api_host_only_and_never_to_the_store(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    canary = "ghp_CANARY0123456789abcdefCANARY"
    settings = settings_for(sandbox, GITHUB_TOKEN=canary)
    with client(settings, tmp_path) as github:
        fetched = fetch_document(github, "list", SOURCE)

    assert fetched.status == "ok"
    assert all(r.authorization for r in sandbox.requests("github"))
    assert canary not in repr(settings)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert canary.encode() not in path.read_bytes(), path


def test_etags_are_kept_per_identity_with_and_without_a_token(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    anonymous = settings_for(sandbox)
    with_token = settings_for(sandbox, GITHUB_TOKEN="ghp_Identity0123456789abcdefghijABCD")
    with client(anonymous, tmp_path) as github:
        fetch_document(github, "list", SOURCE)
    sandbox.reset_log()
    with client(with_token, tmp_path) as github:
        first_with_token = fetch_document(github, "list", SOURCE)
    with client(with_token, tmp_path) as github:
        again_with_token = fetch_document(github, "list", SOURCE)
    with client(anonymous, tmp_path) as github:
        again_anonymous = fetch_document(github, "list", SOURCE)

    # No anonymous ETag is sent with the token; the token's own is, next time. The
    # anonymous one no longer names the latest version fetched: not sent either.
    assert not first_with_token.not_modified and again_with_token.not_modified
    assert not again_anonymous.not_modified
    assert [r.status for r in sandbox.requests("github") if "/contents/" in r.path] == [
        200,
        304,
        200,
    ]
