"""The `pipeline` command as a user runs it: a child process, timed from its start to its
exit, its output lines timestamped as they arrive; and a `prefect server start` to point
runs at.

    finished = run_command([pipeline_executable(), "run", ...], env, log_path)
    finished.seconds, finished.cpu_seconds, finished.mark(ASKING)

Times of log lines are taken by the benchmark when the line arrives (seconds since the
process was started), not read from the line: the direct path logs whole seconds only.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from pipeline.prefect_server import stop_process_group

ASKING = "asking:"
"""The night's first line: the documents are read and the links extracted."""
FLOW_BEGIN = "Beginning flow run"
"""Prefect's first line of a flow run: the server answers and the flow run exists."""
FLOW_END = "Finished in state"
"""Prefect's line at the end of the flow run (tasks say it too; the flow run's is the last)."""

_SUMMARY = re.compile(r"^run (\S+) (ok|partial|failed|dry_run)\b")
_ASKED = re.compile(r"asking: (.*)$")
_HUB_WAIT = re.compile(r"hub: (.+), waiting (\d+) s (.+)$")
_ARXIV_WAIT = re.compile(r"arXiv: waiting ([0-9.e+-]+) s for (.+)$")
_QUOTA_SPENT = "quota spent"

SERVER_START_TIMEOUT_SECONDS = 300.0
_STOP_GRACE_SECONDS = 15.0


def executable(name: str) -> str:
    """A console script of this virtualenv (`pipeline`, `prefect`)."""
    beside = Path(sys.executable).parent / name
    if not beside.exists():
        raise FileNotFoundError(f"`{name}` is not installed beside {sys.executable}")
    return str(beside)


@dataclass(frozen=True)
class Line:
    seconds: float
    """Since the process was started."""
    stream: str
    """`stdout` or `stderr`."""
    text: str


@dataclass
class Finished:
    """One command, start to exit."""

    exit_code: int
    """The process's exit status; negative: killed by that signal."""
    seconds: float
    """Wall time from just before the process was started to its exit."""
    cpu_seconds: float
    """User + system CPU of the process and of the children it waited for."""
    peak_rss_mb: float
    """Its peak resident set size (or a waited-for child's, if larger)."""
    timed_out: bool = False
    lines: list[Line] = field(default_factory=list)

    def mark(self, needle: str, last: bool = False) -> float | None:
        """When the first (or last) line containing `needle` arrived, in seconds since the
        start; None when no line does."""
        found = [line.seconds for line in self.lines if needle in line.text]
        if not found:
            return None
        return found[-1] if last else found[0]

    def run_status(self) -> str:
        """The status the summary line printed (`ok`, `partial`...), or `none`."""
        for line in self.lines:
            match = _SUMMARY.match(line.text)
            if match:
                return match.group(2)
        return "none"

    def entities_asked(self) -> dict[str, int]:
        """`arxiv 163, arxiv_titles 62, ...` of the night's first line."""
        for line in self.lines:
            match = _ASKED.search(line.text)
            if match:
                pairs = (item.rsplit(" ", 1) for item in match.group(1).split(", "))
                return {name: int(count) for name, count in pairs if count.isdigit()}
        return {}


def run_command(
    argv: Sequence[str],
    env: Mapping[str, str],
    log_path: Path,
    *,
    cwd: Path | None = None,
    timeout_seconds: float = 3600.0,
) -> Finished:
    """Run `argv` to its end (killed after `timeout_seconds`), its output timestamped line
    by line and written to `log_path`."""
    lines: list[Line] = []
    lock = threading.Lock()
    started = time.perf_counter()
    process = subprocess.Popen(
        list(argv),
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )

    def pump(stream: IO[str], name: str) -> None:
        for text in stream:
            line = Line(time.perf_counter() - started, name, text.rstrip("\n"))
            with lock:
                lines.append(line)

    assert process.stdout is not None and process.stderr is not None
    pumps = [
        threading.Thread(target=pump, args=(process.stdout, "stdout"), daemon=True),
        threading.Thread(target=pump, args=(process.stderr, "stderr"), daemon=True),
    ]
    for thread in pumps:
        thread.start()
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        with contextlib.suppress(ProcessLookupError):
            process.kill()

    watchdog = threading.Timer(timeout_seconds, kill)
    watchdog.daemon = True
    watchdog.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        watchdog.cancel()
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    for thread in pumps:
        thread.join(timeout=10)
    process.stdout.close()
    process.stderr.close()
    with lock:
        ordered = sorted(lines, key=lambda line: line.seconds)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w", encoding="utf-8") as log:
        log.write(f"$ {' '.join(argv)}\n")
        for line in ordered:
            log.write(f"{line.seconds:9.3f} {line.stream[3]} {line.text}\n")
        log.write(f"exit {process.returncode} after {seconds:.3f} s\n")
    return Finished(
        exit_code=process.returncode,
        seconds=seconds,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024,
        timed_out=timed_out.is_set(),
        lines=ordered,
    )


# -- what the night's log says it waited for -------------------------------------------------


@dataclass(frozen=True)
class Wait:
    at_seconds: float
    """When the wait was announced, since the process was started."""
    seconds: float
    why: str


def hub_waits(lines: Sequence[Line]) -> list[Wait]:
    """The Hub rate gate's announced waits (`hub: <why>, waiting N s <until>`): a spent
    quota's, and a 429's that said when to come back."""
    waits = []
    for line in lines:
        match = _HUB_WAIT.search(line.text)
        if match:
            waits.append(Wait(line.seconds, float(match.group(2)), match.group(1)))
    return waits


def is_quota_wait(wait: Wait) -> bool:
    return _QUOTA_SPENT in wait.why


def arxiv_waits(lines: Sequence[Line]) -> list[Wait]:
    """arXiv's announced waits other than the polite delay (`arXiv: waiting N s for <why>`:
    backoffs after a 503, a 429, an empty page, a timeout)."""
    waits = []
    for line in lines:
        match = _ARXIV_WAIT.search(line.text)
        if match:
            waits.append(Wait(line.seconds, float(match.group(1)), match.group(2)))
    return waits


# -- an already-running Prefect server ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class RunningServer:
    api_url: str
    start_seconds: float
    """From `prefect server start` to its API answering /health."""


@contextlib.contextmanager
def prefect_server(home: Path, log_path: Path, port: int) -> Iterator[RunningServer]:
    """`prefect server start` on a loopback port with its own PREFECT_HOME, as a user
    starts one for the UI; stopped (its whole process group) on exit."""
    home.mkdir(parents=True, exist_ok=True)
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("PREFECT_") and not name.startswith("PIPELINE_")
    }
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_CLI_COLORS": "false",
        }
    )
    api_url = f"http://127.0.0.1:{port}/api"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            [executable("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = started + SERVER_START_TIMEOUT_SECONDS
            while True:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"prefect server exited at start-up ({process.returncode}); see {log_path}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{api_url}/health", timeout=2.0).status_code == 200:
                        break
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"prefect server did not answer; see {log_path}")
                time.sleep(0.25)
            yield RunningServer(api_url, time.perf_counter() - started)
        finally:
            stop_process_group(process, _STOP_GRACE_SECONDS)
