"""Ctrl-C, SIGTERM and SIGKILL on a real `pipeline run` process: the run stops within
seconds with one line and exit 130, lets go of the lock, leaves published nights intact,
leaves no process behind, and the next run publishes.

The run talks to a `pipeline sandbox` process (the loopback double, with a latency so
that the run is mid-resolution when the signal comes), as a run talks to the real APIs.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nights import (
    FAST_ENV,
    Command,
    assert_untouched,
    published_state,
    wait_until,
    write_reading_list,
)

from pipeline.snapshot.read import read_manifest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
EXIT_WITHIN_SECONDS = 20


@pytest.fixture(scope="module")
def slow_double() -> Iterator[dict[str, str]]:
    """`pipeline sandbox` with 200 ms per answer, in a process of its own."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "sandbox", "--latency-ms", "200"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    env: dict[str, str] = {}
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    while len(env) < 2 and time.monotonic() < deadline:
        line = process.stdout.readline()
        if match := re.search(r"export (\w+)=(\S+)", line):
            env[match.group(1)] = match.group(2)
    assert len(env) == 2, "pipeline sandbox printed no endpoints"
    try:
        yield env
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


PAPERS, MODELS = 30, 10


def _reading_list(folder: Path) -> Path:
    """Papers and models the double makes up: one arXiv request per paper (below), so the
    night is mid-flight for a while; few Hub requests, so the double's Hub quota (500 per
    5 minutes) lasts the module."""
    lines = ["# A list", ""]
    lines += [f"- [Paper {n}](https://arxiv.org/abs/2401.{20000 + n:05d})" for n in range(PAPERS)]
    lines += [f"- [Model {n}](https://huggingface.co/sample-org/m-{n})" for n in range(MODELS)]
    return write_reading_list(folder, "\n".join(lines) + "\n")


def _env(double: dict[str, str], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "PREFECT_API_URL")}
    slow_arxiv = {"PIPELINE_ARXIV_DELAY_SECONDS": "0.5", "PIPELINE_ARXIV_BATCH_SIZE": "1"}
    return {**env, **FAST_ENV, **slow_arxiv, **double, **extra}


def _session_processes(session_id: int) -> list[str]:
    """Every live process of a session (the run's process group and anything it started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        state, session = fields[0], int(fields[3])
        if session == session_id and state != "Z":
            found.append(f"{entry.name}: {cmdline}")
    return found


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline + " " and state != "Z":
            found.append(f"{entry.name}: {cmdline}")
    return found


def _start(tmp_path: Path, double: dict[str, str], *args: str) -> Command:
    docs = _reading_list(tmp_path / "docs")
    return Command(
        [
            str(docs),
            "--out",
            str(tmp_path / "enriched"),
            "--raw",
            str(tmp_path / "raw"),
            "--refresh",
            *args,
        ],
        _env(double),
        ROOT,
        new_session=True,
    )


@pytest.mark.parametrize("how", ["direct", "prefect"])
def test_ctrl_c_to_the_process_group_stops_the_run_cleanly(
    tmp_path: Path, slow_double: dict[str, str], how: str
) -> None:
    extra = ["--prefect"] if how == "prefect" else []
    first = _start(tmp_path, slow_double, "--date", "2026-01-01")
    assert first.finish() in (0, 3), first.output
    published = published_state(tmp_path / "enriched")

    run = _start(tmp_path, slow_double, "--date", "2026-01-02", *extra)
    assert run.wait_for("looked up", timeout_seconds=240), run.output
    started = time.monotonic()
    os.killpg(run.process.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C
    code = run.finish(timeout_seconds=EXIT_WITHIN_SECONDS + 10)
    elapsed = time.monotonic() - started

    assert code == 130, run.output
    assert elapsed < EXIT_WITHIN_SECONDS, f"{elapsed:.1f} s"
    error_lines = [line for line in run.lines if line.startswith("error:")]
    assert error_lines == ["error: interrupted; published nights are intact\n"], run.output
    assert "Traceback" not in run.output
    wait_until(lambda: not _session_processes(run.process.pid), timeout_seconds=10)
    # Night 1 is as it was; night 2 is recorded as an interrupted run, not published.
    assert_untouched(published, tmp_path / "enriched")
    manifest = read_manifest(tmp_path / "enriched")
    assert "KeyboardInterrupt" in " ".join(manifest["status_reason"].dropna())

    again = _start(tmp_path, slow_double, "--date", "2026-01-02")
    assert again.finish() in (0, 3), again.output
    assert "snapshot 2026-01-02 published" in again.output


def test_sigkill_of_a_prefect_run_leaves_no_temporary_server(
    tmp_path: Path, slow_double: dict[str, str]
) -> None:
    run = _start(tmp_path, slow_double, "--prefect")
    assert run.wait_for("looked up", timeout_seconds=240), run.output
    # The run's own server: Prefect logs where the flow run can be seen, on its port.
    port = re.search(r"View at http://127\.0\.0\.1:(\d+)/", run.output)
    assert port, run.output
    server = f"--port {port.group(1)} "
    assert _processes_mentioning(server), "the run's temporary Prefect server is not running"
    os.killpg(run.process.pid, signal.SIGKILL)
    run.finish(timeout_seconds=30)
    wait_until(lambda: not _processes_mentioning(server), timeout_seconds=15)

    # The lock died with the process: the next run publishes.
    again = _start(tmp_path, slow_double)
    assert again.finish() in (0, 3), again.output
