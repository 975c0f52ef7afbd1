"""Settings: defaults match the services' rules; the environment overrides them."""

from __future__ import annotations

import pytest

from pipeline.config import DEFAULT_ARXIV_API_URL, DEFAULT_HF_ENDPOINT, Settings


def test_defaults_target_the_real_services_politely() -> None:
    settings = Settings.from_env({})
    assert settings.arxiv_api_url == DEFAULT_ARXIV_API_URL == "https://export.arxiv.org/api/query"
    assert settings.hf_endpoint == DEFAULT_HF_ENDPOINT == "https://huggingface.co"
    assert settings.hf_token is None
    assert settings.arxiv_delay_seconds >= 3.0
    assert settings.arxiv_batch_size <= 100
    # A spent Hub window (five minutes) is waited out; a night has hours to do so.
    assert settings.run_deadline_seconds == 6 * 3600
    assert settings.hub_backoff_max_seconds < 300 < settings.run_deadline_seconds


def test_there_is_no_per_run_hub_request_budget() -> None:
    """The quota is read from the Hub's RateLimit headers and waited out (resolve.hub):
    a budget would only turn into errors what waiting answers."""
    assert not any("requests_per_run" in name for name in vars(Settings.from_env({})))


def test_endpoints_and_token_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "ARXIV_API_URL": "http://127.0.0.1:9/api/query",
            "HF_ENDPOINT": "https://hf-mirror.com/",
            "HF_TOKEN": "hf_secret",
        }
    )
    assert settings.arxiv_api_url == "http://127.0.0.1:9/api/query"
    assert settings.hf_endpoint == "https://hf-mirror.com"
    assert settings.hf_token == "hf_secret"
    assert "hf_secret" not in repr(settings)


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("PIPELINE_ARXIV_DELAY_SECONDS", "0.05", "arxiv_delay_seconds", 0.05),
        ("PIPELINE_HUB_CONCURRENCY", "8", "hub_concurrency", 8),
        ("PIPELINE_HUB_TTL_SECONDS", "60", "hub_ttl_seconds", 60.0),
        ("PIPELINE_RUN_DEADLINE_SECONDS", "90", "run_deadline_seconds", 90.0),
    ],
)
def test_numeric_settings_can_be_scaled_by_environment(
    variable: str, value: str, field: str, expected: float
) -> None:
    assert getattr(Settings.from_env({variable: value}), field) == expected


@pytest.mark.parametrize("value", ["fast", "-1"])
def test_a_bad_numeric_override_names_the_variable(value: str) -> None:
    with pytest.raises(ValueError, match="PIPELINE_ARXIV_DELAY_SECONDS"):
        Settings.from_env({"PIPELINE_ARXIV_DELAY_SECONDS": value})


def test_contact_is_added_to_the_user_agent() -> None:
    agent = Settings.from_env({"PIPELINE_CONTACT": "ops@example.org"}).user_agent
    assert agent.startswith("mllm-papers-pipeline/") and agent.endswith("mailto:ops@example.org")


@pytest.mark.parametrize(
    ("env", "graphql_url"),
    [
        ({}, "https://api.github.com/graphql"),
        (
            {"GITHUB_API_URL": "https://ghe.example.com/api/v3"},
            "https://ghe.example.com/api/graphql",
        ),
        (
            {"GITHUB_API_URL": "https://ghe.example.com/api/v3/"},
            "https://ghe.example.com/api/graphql",
        ),
        ({"GITHUB_API_URL": "http://127.0.0.1:9"}, "http://127.0.0.1:9/graphql"),
        (
            {
                "GITHUB_API_URL": "https://ghe.example.com/api/v3",
                "GITHUB_GRAPHQL_URL": "https://ghe.example.com/custom/graphql/",
            },
            "https://ghe.example.com/custom/graphql",
        ),
    ],
)
def test_github_graphql_url_is_read_or_derived_from_the_rest_base(
    env: dict[str, str], graphql_url: str
) -> None:
    assert Settings.from_env(env).github_graphql_url == graphql_url
