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
from collections.abc import Callable, Iterable, Iterator, Sequence
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

from pipeline.collector import frozen_while
from pipeline.night import TASK_THREADS, StageProgress, run_night
from pipeline.parameters import Resolver, RunParameters
from pipeline.report import UNRESOLVED_ROWS_MAX, RunSummary, markdown_report, short_summary
from pipeline.resolve.common import ProgressCallback
from pipeline.workers import (
    IN_FLIGHT_PER_WORKER,
    DocumentLinks,
    dask_address,
    extract_document_table,
    in_order,
)

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
def extract_document_task(name: str, path: str) -> DocumentLinks:
    return extract_document_table(name, path)


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
    """Documents and resolver stages as Prefect tasks of the current flow run.

    Resolver stages run on the flow's thread pool, in the flow's process, where their
    politeness is enforced. Documents do too, unless the run asks for more than one
    worker or `PIPELINE_DASK_ADDRESS` names a cluster: then they go to prefect-dask's
    `DaskTaskRunner`, on that cluster or on a local one of `workers` processes. Prefect's
    tag concurrency limits are not enforced there, and nothing relies on them."""

    def __init__(self, workers: int = 1) -> None:
        self.log: logging.Logger | logging.LoggerAdapter[logging.Logger] = get_run_logger()
        self.workers = workers

    def extract(self, documents: Sequence[tuple[str, Path]]) -> Iterable[DocumentLinks]:
        address = dask_address()
        if address is None and self.workers == 1:
            return frozen_while(
                in_order(
                    lambda item: extract_document_task.submit(item[0], str(item[1])),
                    documents,
                    IN_FLIGHT_PER_WORKER * TASK_THREADS,
                )
            )
        return self._extract_on_dask(documents, address)

    def _extract_on_dask(
        self, documents: Sequence[tuple[str, Path]], address: str | None
    ) -> Iterator[DocumentLinks]:
        from prefect_dask.task_runners import DaskTaskRunner

        runner = (
            DaskTaskRunner(address=address)
            if address
            else DaskTaskRunner(
                cluster_kwargs={
                    "n_workers": self.workers,
                    "processes": True,
                    "threads_per_worker": 1,
                    "dashboard_address": None,
                }
            )
        )
        with runner:
            threads = runner.client.nthreads()  # type: ignore[no-untyped-call]
            in_flight = IN_FLIGHT_PER_WORKER * max(1, sum(threads.values()))
            yield from in_order(
                lambda item: runner.submit(
                    extract_document_task, parameters={"name": item[0], "path": str(item[1])}
                ),
                documents,
                in_flight,
            )

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
    night = run_night(params, PrefectExecutor(params.workers), flow_run_id=flow_run_id)
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
