"""The nightly deployment: a cron schedule in an IANA timezone, served by this process.

`pipeline serve` registers the deployment `mllm-papers/nightly` and runs its scheduled
(and UI-triggered) runs until stopped. The schedule survives restarts: the deployment
lives in the Prefect server's database and serving does not pause it on shutdown.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron

from pipeline.flow import mllm_papers
from pipeline.parameters import RunParameters

DEPLOYMENT_NAME = "nightly"
DEFAULT_CRON = "0 3 * * *"
DEFAULT_TIMEZONE = "UTC"


def build_deployment(
    cron: str = DEFAULT_CRON,
    timezone: str = DEFAULT_TIMEZONE,
    params: RunParameters | None = None,
) -> RunnerDeployment:
    """The nightly deployment. One run at a time: a run started while another is under
    way waits its turn (the snapshot lock would refuse it anyway). `params` are the
    defaults of its runs (the UI form starts from them); only what differs from the
    built-in defaults is stored."""
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA timezone: {timezone!r}") from None
    return RunnerDeployment.from_flow(
        flow=mllm_papers,
        name=DEPLOYMENT_NAME,
        schedules=[Cron(cron, timezone=timezone)],
        concurrency_limit=ConcurrencyLimitConfig(
            limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
        ),
        description="Nightly enrichment of the reading lists (see the project README).",
        parameters=(
            {"params": params.model_dump(mode="json", exclude_defaults=True)}
            if params is not None
            else {}
        ),
        tags=["mllm-papers"],
    )


def serve(
    cron: str = DEFAULT_CRON,
    timezone: str = DEFAULT_TIMEZONE,
    params: RunParameters | None = None,
) -> None:
    """Register the deployment and execute its runs until interrupted."""
    from prefect import serve as prefect_serve

    prefect_serve(build_deployment(cron, timezone, params), pause_on_shutdown=False)
