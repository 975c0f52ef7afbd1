"""Prefect orchestration of `pipeline.night.run_night`, and nothing else.

The night decides what is asked and published; this module makes each document and each
resolver stage a Prefect task and leaves the run report on the UI's Artifacts page.

Retries: the resolvers retry each request themselves (they know a 429 from a 400), so a
task is retried only on a transient infrastructure failure (disk, SQLite busy, a transport
error that escaped), never on a bug or a 4xx. Caching: no Prefect task cache; the raw
store is the cache across runs, keyed by entity with a time-to-live, which Prefect's
input-hash caching cannot express correctly.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast
from uuid import UUID

import httpx
from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture
from prefect.states import Completed, Failed
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff

from pipeline.links.documents import Link, extract_document_links
from pipeline.night import TASK_THREADS, StageProgress, run_night
from pipeline.parameters import Resolver, RunParameters
from pipeline.records import Document
from pipeline.report import UNRESOLVED_ROWS_MAX, RunSummary, markdown_report, short_summary
from pipeline.resolve.common import ProgressCallback

T = TypeVar("T")

FLOW_NAME = "mllm-papers"
ARTIFACT_PREFIX = "mllm-papers"


def _transient(task: Any, task_run: Any, state: State[Any]) -> bool:
    """Retry a task only when it failed for a reason a retry can cure."""
    try:
        state.result()
    except (OSError, sqlite3.OperationalError, httpx.TransportError):
        return True
    except Exception:
        return False
    return False


@task(name="extract-document", cache_policy=NO_CACHE)
def extract_document_task(name: str, path: str) -> tuple[Document, list[Link]]:
    return extract_document_links(name, Path(path))


@task(
    name="resolve",
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=10),
    retry_jitter_factor=0.5,
    retry_condition_fn=_transient,
    cache_policy=NO_CACHE,
)
def resolve_task(call: Callable[[ProgressCallback], Any], progress: ProgressCallback) -> Any:
    return call(progress)


class PrefectExecutor:
    """Documents and resolver stages as Prefect tasks of the current flow run."""

    def __init__(self) -> None:
        self.log: logging.Logger | logging.LoggerAdapter[logging.Logger] = get_run_logger()

    def extract(self, documents: Sequence[tuple[str, Path]]) -> list[tuple[Document, list[Link]]]:
        futures = extract_document_task.map(
            [name for name, _ in documents], [str(path) for _, path in documents]
        )
        return [future.result() for future in futures]

    def submit(self, stage: Resolver, call: Callable[[ProgressCallback], T]) -> PrefectFuture[T]:
        named = resolve_task.with_options(name=f"resolve-{stage.replace('_', '-')}")
        future: PrefectFuture[T] = named.submit(call, self._progress(stage))
        return future

    def _progress(self, stage: str) -> StageProgress:
        artifact_id = cast(
            UUID,
            create_progress_artifact(
                progress=0.0,
                key=f"{ARTIFACT_PREFIX}-progress-{stage.replace('_', '-')}",
                description=f"{stage}: lookups done",
            ),
        )

        def publish(percent: float) -> None:
            update_progress_artifact(artifact_id=artifact_id, progress=percent)

        return StageProgress(stage, self.log, publish)


@flow(
    name=FLOW_NAME,
    description="Extract the links of the reading lists, resolve papers and models, "
    "and publish a deduplicated Parquet snapshot.",
    task_runner=ThreadPoolTaskRunner(max_workers=TASK_THREADS),  # type: ignore[arg-type]
    validate_parameters=True,
    log_prints=False,
)
def mllm_papers(params: RunParameters = RunParameters()) -> State[Any]:  # noqa: B008
    """One run of the pipeline. Returns a Completed state (named Partial when some
    entities could not be resolved) or a Failed one; the summary is its result."""
    context = FlowRunContext.get()
    flow_run_id = str(context.flow_run.id) if context and context.flow_run else None
    night = run_night(params, PrefectExecutor(), flow_run_id=flow_run_id)
    summary = night.summary
    _publish_report(summary)
    message = short_summary(summary)
    if summary.status == "failed":
        return Failed(message=message, data=summary)
    if summary.status == "partial":
        return Completed(name="Partial", message=message, data=summary)
    return Completed(message=message, data=summary)


def _publish_report(summary: RunSummary) -> None:
    create_markdown_artifact(
        markdown=markdown_report(summary),
        key=f"{ARTIFACT_PREFIX}-run-report",
        description=f"Run {summary.run_id}: {summary.status}",
    )
    for table, rows in summary.unresolved.items():
        create_table_artifact(
            table=rows[:UNRESOLVED_ROWS_MAX]
            or [{"key": "", "status": "", "reason": "all resolved"}],
            key=f"{ARTIFACT_PREFIX}-unresolved-{table.replace('_', '-')}",
            description=f"{table} not resolved in run {summary.run_id} ({len(rows)} rows)",
        )


def run_once(params: RunParameters) -> tuple[RunSummary | None, State[Any]]:
    """Run the flow in this process, reporting to the configured Prefect server."""
    state: State[Any] = mllm_papers(params, return_state=True)
    summary: RunSummary | None = None
    with contextlib.suppress(Exception):
        result = state.result(raise_on_failure=False)
        if isinstance(result, RunSummary):
            summary = result
    return summary, state
