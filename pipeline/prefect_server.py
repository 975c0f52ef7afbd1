"""A temporary Prefect server for `pipeline run --prefect` when none is configured.

Prefect's own ephemeral mode starts its server as a child that outlives a SIGKILLed run
(reparented to PID 1, holding its port and its memory), is stopped by the Ctrl-C meant for
the run (leaving the run's last state report hanging), and gives up after a start-up limit
that a busy 2-core machine exceeds. This one is started in its own session (a terminal's Ctrl-C
reaches the run alone, which then stops it), dies with this process even on SIGKILL
(Linux parent-death signal), writes its log to a file instead of the terminal, and waits
as long as `startup_timeout_seconds` allows.

It runs the same ASGI app Prefect's ephemeral mode runs, with the UI and telemetry off.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

STARTUP_TIMEOUT_SECONDS = 180.0
"""How long to wait for the server to answer: generous, because a busy machine slows its
start-up many times over (`benchmarks/RESULTS.md`). `PIPELINE_PREFECT_STARTUP_SECONDS`."""
STOP_GRACE_SECONDS = 5.0
"""After SIGTERM, how long the server may take to stop before SIGKILL."""
_PR_SET_PDEATHSIG = 1


class PrefectStartError(RuntimeError):
    """The temporary server did not come up; the message says what to do instead."""


def startup_timeout_seconds() -> float:
    value = os.environ.get("PIPELINE_PREFECT_STARTUP_SECONDS")
    try:
        return float(value) if value else STARTUP_TIMEOUT_SECONDS
    except ValueError:
        raise PrefectStartError(
            f"PIPELINE_PREFECT_STARTUP_SECONDS must be a number of seconds, not {value!r}"
        ) from None


def quiet_prefect_environment() -> None:
    """Defaults for runs this command starts, each unless the user set it: no telemetry
    (every run would log `Failed to send telemetry` without internet)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the parent dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def temporary_server(timeout_seconds: float | None = None) -> Iterator[str]:
    """Start a server on a free loopback port, yield its API URL, stop it on exit."""
    if timeout_seconds is None:
        timeout_seconds = startup_timeout_seconds()
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    log_file = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed in finally)
        prefix="pipeline-prefect-server-", suffix=".log", delete=False
    )
    env = {
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT_SERVER_ANALYTICS_ENABLED": os.environ.get(
            "PREFECT_SERVER_ANALYTICS_ENABLED", "false"
        ),
    }
    env.pop("PREFECT_API_URL", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "prefect.server.api.server:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "error",
            "--lifespan",
            "on",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    try:
        _wait_healthy(process, url, timeout_seconds, Path(log_file.name))
        yield url
    finally:
        stop_process_group(process)
        log_file.close()
        with contextlib.suppress(OSError):
            os.unlink(log_file.name)


def _wait_healthy(
    process: subprocess.Popen[bytes], url: str, timeout_seconds: float, log: Path
) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PrefectStartError(
                f"the temporary Prefect server exited at start-up (code {process.returncode}):"
                f" {_last_line(log)}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return
        time.sleep(0.25)
    raise PrefectStartError(
        f"the temporary Prefect server did not answer within {timeout_seconds:.0f} s"
        " (a busy machine?):"
        " run without --prefect, raise PIPELINE_PREFECT_STARTUP_SECONDS, or start a server"
        " with `prefect server start` and set PREFECT_API_URL"
    )


def _last_line(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1][:300] if lines else "no output"


def stop_process_group(
    process: subprocess.Popen[bytes], grace_seconds: float = STOP_GRACE_SECONDS
) -> None:
    """SIGTERM to the process's group (started with `start_new_session`), SIGKILL to what
    is left after `grace_seconds`, then reap it."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
