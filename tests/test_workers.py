"""Where documents are extracted (`pipeline.workers`): threads, a local process pool, a
real Dask cluster of process workers, and Prefect's DaskTaskRunner on it, all give the
same links table, in document order, with unreadable documents named."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from distributed import LocalCluster

from pipeline.cli import main
from pipeline.config import RefreshPolicy
from pipeline.links.documents import discover_documents
from pipeline.night import ThreadExecutor, run_night
from pipeline.parameters import RunParameters
from pipeline.records import Document
from pipeline.snapshot.build import links_table
from pipeline.workers import DASK_ADDRESS_ENV, dask_address

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "raw" / "seeds"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seeds, a document written after them, an empty one and one that cannot be read."""
    root = tmp_path_factory.mktemp("corpus")
    for seed in sorted(SEEDS.iterdir()):
        shutil.copy(seed, root / seed.name)
    (root / "zz-late.md").write_text(
        "# Late\n\n- [Qwen2-VL](https://arxiv.org/abs/2409.12191) arXiv:2310.03744\n", "utf-8"
    )
    (root / "empty.md").write_text("", "utf-8")
    (root / "binary.md").write_bytes(b"\x00\x01")
    return root


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    ) as local:
        yield local


def _extract(corpus: Path, workers: int) -> tuple[list[Document], pa.Table]:
    named = discover_documents([corpus])
    with ThreadExecutor(workers=workers) as executor:
        extracted = list(executor.extract(named))
    documents = [document for document, _ in extracted]
    return documents, links_table(b for _, table in extracted for b in table.to_batches())


@pytest.fixture(scope="module")
def on_threads(corpus: Path) -> tuple[list[Document], pa.Table]:
    return _extract(corpus, 1)


def test_threads_extract_every_readable_document_in_order(
    corpus: Path, on_threads: tuple[list[Document], pa.Table]
) -> None:
    documents, links = on_threads
    assert [d.name for d in documents] == sorted(p.name for p in corpus.iterdir())
    assert {d.name: d.error is not None for d in documents}["binary.md"]
    assert links.num_rows == sum(d.links for d in documents) > 400
    names = links.column("document").to_pylist()
    assert names[-1] == "zz-late.md" and names == sorted(names)


def test_a_process_pool_gives_the_same_table(
    corpus: Path, on_threads: tuple[list[Document], pa.Table]
) -> None:
    documents, links = _extract(corpus, 2)
    assert documents == on_threads[0]
    assert links.equals(on_threads[1])


def test_a_dask_cluster_of_processes_gives_the_same_table(
    corpus: Path,
    on_threads: tuple[list[Document], pa.Table],
    cluster: LocalCluster,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(DASK_ADDRESS_ENV, cluster.scheduler_address)

    documents, links = _extract(corpus, 1)  # the cluster wins over --workers

    scheduler = cluster.scheduler
    assert scheduler is not None
    ran = scheduler.task_prefixes["extract_document_table"].state_counts
    assert ran["forgotten"] == len(documents)  # each ran there, and was collected
    assert documents == on_threads[0]
    assert links.equals(on_threads[1])


@pytest.mark.parametrize(
    ("environ", "address"),
    [
        ({}, None),
        ({DASK_ADDRESS_ENV: ""}, None),
        ({DASK_ADDRESS_ENV: "  "}, None),
        ({DASK_ADDRESS_ENV: "tcp://10.0.0.5:8786"}, "tcp://10.0.0.5:8786"),
    ],
)
def test_the_dask_address_comes_from_the_environment(
    environ: dict[str, str], address: str | None
) -> None:
    assert dask_address(environ) == address


def test_pipeline_extract_writes_the_same_file_with_any_number_of_workers(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one, two = tmp_path / "one.parquet", tmp_path / "two.parquet"

    assert main(["extract", str(corpus), "-o", str(one)]) == 1  # binary.md cannot be read
    assert main(["extract", str(corpus), "-o", str(two), "--workers", "2"]) == 1

    assert one.read_bytes() == two.read_bytes()
    table = pq.read_table(one)
    assert table.num_rows > 400 and table.schema.field("document").type == pa.dictionary(
        pa.int32(), pa.string()
    )
    assert "binary.md" in capsys.readouterr().err


def test_pipeline_extract_refuses_zero_workers(tmp_path: Path) -> None:
    assert main(["extract", str(SEEDS), "-o", str(tmp_path / "x.parquet"), "--workers", "0"]) == 2


def _params(tmp_path: Path, name: str, workers: int = 1) -> RunParameters:
    """An offline night of the seeds into `tmp_path/name`."""
    return RunParameters(
        documents=[str(SEEDS)],
        out_dir=str(tmp_path / name),
        raw_dir=str(tmp_path / "raw"),
        snapshot_date=date(2026, 11, 20),
        refresh=RefreshPolicy.OFFLINE,
        workers=workers,
    )


def _night_links(tmp_path: Path, name: str, workers: int) -> pa.Table:
    night = run_night(_params(tmp_path, name, workers))
    assert night.summary.published, night.summary.status_reason
    return pq.read_table(tmp_path / name / "links")


def test_a_night_publishes_the_same_links_with_one_or_two_workers(tmp_path: Path) -> None:
    one = _night_links(tmp_path, "one", 1)
    two = _night_links(tmp_path, "two", 2)
    assert one.num_rows > 400
    assert one.to_pylist() == two.to_pylist()


def test_a_prefect_flow_run_extracts_on_the_dask_cluster_through_the_dask_task_runner(
    tmp_path: Path, cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.testing.utilities import prefect_test_harness

    from pipeline.flow import mllm_papers

    direct = _night_links(tmp_path, "direct", 1)
    monkeypatch.setenv(DASK_ADDRESS_ENV, cluster.scheduler_address)
    scheduler = cluster.scheduler
    assert scheduler is not None
    before = set(scheduler.task_prefixes)
    with prefect_test_harness(server_startup_timeout=180):
        state = mllm_papers(_params(tmp_path, "flow"), return_state=True)

    assert not state.is_failed(), state
    assert pq.read_table(tmp_path / "flow" / "links").to_pylist() == direct.to_pylist()
    # The documents ran on the cluster as Prefect task runs (a prefix of their own).
    assert set(scheduler.task_prefixes) - before, list(scheduler.task_prefixes)


def test_a_prefect_flow_run_with_two_workers_and_no_address_extracts_on_a_local_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--workers 2` under Prefect, no cluster named: prefect-dask starts a local cluster of
    process workers for the flow run; its worker processes are seen while the flow runs."""
    import threading

    import psutil
    from prefect.testing.utilities import prefect_test_harness

    from pipeline.flow import mllm_papers

    direct = _night_links(tmp_path, "direct", 1)
    monkeypatch.delenv(DASK_ADDRESS_ENV, raising=False)
    spawned: set[int] = set()
    done = threading.Event()

    def watch() -> None:
        # Dask's nanny starts each worker with multiprocessing's spawn; the harness's
        # own server is a child too, but never a spawned one.
        while not done.wait(0.1):
            for child in psutil.Process().children(recursive=True):
                try:
                    if "spawn_main" in " ".join(child.cmdline()):
                        spawned.add(child.pid)
                except psutil.Error:
                    continue

    with prefect_test_harness(server_startup_timeout=180):
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            state = mllm_papers(_params(tmp_path, "flow", workers=2), return_state=True)
        finally:
            done.set()
            watcher.join()

    assert not state.is_failed(), state
    assert len(spawned) >= 2, spawned
    assert pq.read_table(tmp_path / "flow" / "links").to_pylist() == direct.to_pylist()


def test_arxiv_politeness_is_the_same_with_any_number_of_workers(tmp_path: Path) -> None:
    """Extraction leaves the process, resolution does not: one arXiv queue per run, its
    requests `delay` apart, as many of them with 2 workers as with 1 (the double counts)."""
    from itertools import pairwise

    from pipeline.config import Settings
    from pipeline.sandbox import Sandbox

    delay = 0.2
    requests: dict[int, int] = {}
    for workers in (1, 2):
        with Sandbox() as sandbox:
            env = {**sandbox.env(), "PIPELINE_ARXIV_DELAY_SECONDS": str(delay)}
            params = RunParameters(
                documents=[str(SEEDS)],
                out_dir=str(tmp_path / f"out-{workers}"),
                raw_dir=str(tmp_path / f"raw-{workers}"),
                snapshot_date=date(2026, 11, 20),
                workers=workers,
            )
            night = run_night(params, settings=Settings.from_env(env))
            log = sandbox.requests("arxiv")
        assert night.summary.published, night.summary.status_reason
        assert min(later.at - earlier.at for earlier, later in pairwise(log)) >= delay
        requests[workers] = len(log)
    assert requests[1] == requests[2] > 1
