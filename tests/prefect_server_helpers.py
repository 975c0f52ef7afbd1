"""Real Prefect components for the server tests: a `prefect server start` on a loopback
port with its own PREFECT_HOME and SQLite database, the commands that talk to it, and
process groups that never outlive a test.

Every child gets an environment that cannot reach the internet: its HTTP(S) proxy is a
loopback port bound by the test and never listened on (connections are refused at
once), and only loopback addresses bypass it. Prefect's own outbound calls (the
collection registry the server reads work-pool metadata from) fail fast and fall back
to the copies Prefect ships; the pipeline's APIs are the loopback sandbox.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

SERVER_START_SECONDS = 120.0
"""`prefect server start` migrates a fresh database and builds the UI: slow on 2 busy cores."""
STOP_GRACE_SECONDS = 15.0
"""How long a process group gets to exit after SIGTERM before it is SIGKILLed."""
LOG_TAIL_LINES = 60

_INHERITED_OUT = ("PREFECT_", "PIPELINE_")
_DROPPED = {
    "ARXIV_API_URL",
    "HF_ENDPOINT",
    "HF_TOKEN",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
}

FAST_PIPELINE_ENV = {
    "PIPELINE_ARXIV_DELAY_SECONDS": "0.005",
    "PIPELINE_ARXIV_BACKOFF_SECONDS": "0.01",
    "PIPELINE_ARXIV_BACKOFF_MAX_SECONDS": "0.05",
    "PIPELINE_ARXIV_TIMEOUT_SECONDS": "5",
    "PIPELINE_HUB_BACKOFF_SECONDS": "0.01",
    "PIPELINE_HUB_BACKOFF_MAX_SECONDS": "0.05",
    "PIPELINE_HUB_TIMEOUT_SECONDS": "5",
}
"""arXiv politeness (3 s between requests) scaled down for the loopback double."""


def executable(name: str) -> str:
    """A console script of this virtualenv (`prefect`, `pipeline`); never skipped for."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise AssertionError(f"`{name}` is not installed beside {sys.executable} nor on PATH")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port bound and not listened on: every connection to it is refused, and
    no other process can take it while the context is open."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        yield port


def offline_env(
    home: Path, *, refused_proxy_port: int, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of every child: this one without Prefect or pipeline settings,
    with an isolated PREFECT_HOME and a proxy that refuses everything not on loopback."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_INHERITED_OUT) and name not in _DROPPED
    }
    proxy = f"http://127.0.0.1:{refused_proxy_port}"
    no_proxy = "127.0.0.1,localhost"
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_CLI_COLORS": "false",
            "PREFECT_CLI_WRAP_LINES": "false",
            "HTTP_PROXY": proxy,
            "HTTPS_PROXY": proxy,
            "ALL_PROXY": proxy,
            "http_proxy": proxy,
            "https_proxy": proxy,
            "all_proxy": proxy,
            "NO_PROXY": no_proxy,
            "no_proxy": no_proxy,
            "PYTHONUNBUFFERED": "1",
        }
    )
    if extra:
        env.update(extra)
    return env


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no output)"
    return "\n".join(text.splitlines()[-lines:])


def _group_alive(pgid: int) -> bool:
    """Whether a process group still has a member that is not a zombie."""
    proc = Path("/proc")
    if proc.is_dir():
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after ')'.
            fields = stat.rsplit(")", 1)[-1].split()
            if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
                return True
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Service:
    """A child in its own session (so its whole process group can be killed), its output
    in a log file under the test's tmp_path."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_dir: Path,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.argv,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pgid = self.process.pid

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        self._log.flush()
        return f"--- {self.name} ({' '.join(self.argv)}), last {lines} lines ---\n" + _tail(
            self.log_path, lines
        )

    def exited(self) -> int | None:
        return self.process.poll()

    def stop(self) -> None:
        """SIGTERM to the whole group, SIGKILL to what is left after a grace period."""
        with suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while time.monotonic() < deadline:
            self.process.poll()
            if not _group_alive(self.pgid):
                break
            time.sleep(0.2)
        else:
            with suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGKILL)
        try:
            self.process.wait(timeout=30)
        finally:
            self._log.close()


class Services:
    """The children of one test, stopped in reverse order at teardown; their logs make
    the message of every failed assertion."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Service] = []

    def start(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path
    ) -> Service:
        service = Service(name, argv, env=env, cwd=cwd, log_dir=self.log_dir)
        self.started.append(service)
        return service

    def logs(self) -> str:
        return "\n\n".join(service.tail() for service in self.started)

    def fail(self, message: str) -> AssertionError:
        return AssertionError(f"{message}\n\n{self.logs()}")

    def stop_all(self) -> None:
        errors: list[BaseException] = []
        for service in reversed(self.started):
            try:
                service.stop()
            except BaseException as exc:  # stop the others all the same
                errors.append(exc)
        if errors:
            raise errors[0]


class PrefectServer:
    """`prefect server start` on a free loopback port, with its own home and database."""

    def __init__(self, services: Services, home: Path, *, refused_proxy_port: int) -> None:
        self.services = services
        self.home = home
        self.refused_proxy_port = refused_proxy_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        home.mkdir(parents=True, exist_ok=True)
        env = offline_env(
            home,
            refused_proxy_port=refused_proxy_port,
            extra={"PREFECT_API_DATABASE_CONNECTION_URL": self.database_url},
        )
        self.service = services.start(
            "server",
            [
                executable("prefect"),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=env,
            cwd=home,
        )
        self.http = httpx.Client(base_url=self.url, timeout=30.0, trust_env=False)

    @property
    def database_url(self) -> str:
        return f"sqlite+aiosqlite:///{self.home / 'prefect.db'}"

    def client_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a Prefect client (CLI, serve, worker) of this server."""
        return offline_env(
            self.home,
            refused_proxy_port=self.refused_proxy_port,
            extra={"PREFECT_API_URL": self.url, **(extra or {})},
        )

    def wait_healthy(self, timeout: float = SERVER_START_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.service.exited() is not None:
                raise self.services.fail(
                    f"prefect server exited with {self.service.exited()} before it was healthy"
                )
            try:
                response = self.http.get("/health", timeout=5.0)
                if response.status_code == 200 and response.json() is True:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1.0)
        raise self.services.fail(f"prefect server not healthy within {timeout:.0f} s")

    def get(self, path: str) -> httpx.Response:
        return self.http.get(path)

    def post(self, path: str, body: Mapping[str, Any]) -> httpx.Response:
        return self.http.post(path, json=dict(body))

    def deployment(self, flow: str, name: str) -> dict[str, Any] | None:
        response = self.get(f"/deployments/name/{flow}/{name}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def flow_runs(self, deployment_id: str) -> list[dict[str, Any]]:
        response = self.post(
            "/flow_runs/filter",
            {"deployments": {"id": {"any_": [deployment_id]}}, "sort": "EXPECTED_START_TIME_ASC"},
        )
        response.raise_for_status()
        runs: list[dict[str, Any]] = response.json()
        return runs

    def flow_run(self, flow_run_id: str) -> dict[str, Any]:
        response = self.get(f"/flow_runs/{flow_run_id}")
        response.raise_for_status()
        run: dict[str, Any] = response.json()
        return run

    def state_history(self, flow_run_id: str) -> list[dict[str, Any]]:
        response = self.get(f"/flow_run_states/?flow_run_id={flow_run_id}")
        response.raise_for_status()
        states: list[dict[str, Any]] = response.json()
        return sorted(states, key=lambda state: str(state["timestamp"]))

    def close(self) -> None:
        self.http.close()


TERMINAL_FAILURES = {"FAILED", "CRASHED", "CANCELLED", "CANCELLING"}


def poll(
    services: Services,
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 2.0,
    watched: Sequence[Service] = (),
) -> T:
    """Call `probe` until it returns something, failing with every log on timeout or when
    a watched service exits first. An HTTP error (a busy server timing out) is a "not yet"."""
    deadline = time.monotonic() + timeout
    last_error: httpx.HTTPError | None = None
    while True:
        try:
            found = probe()
        except httpx.HTTPError as exc:
            found, last_error = None, exc
        if found is not None:
            return found
        for service in watched:
            code = service.exited()
            if code is not None:
                raise services.fail(f"{service.name} exited with {code} while waiting for {what}")
        if time.monotonic() >= deadline:
            error = f" (last HTTP error: {last_error!r})" if last_error else ""
            raise services.fail(f"timed out after {timeout:.0f} s waiting for {what}{error}")
        time.sleep(interval)


def wait_completed(
    server: PrefectServer,
    flow_run_id: str,
    *,
    timeout: float,
    watched: Sequence[Service] = (),
) -> dict[str, Any]:
    """The flow run once it is COMPLETED; fails at once when it fails, crashes or is
    cancelled, and with the state history and logs on timeout."""
    last: dict[str, Any] = {}

    def probe() -> dict[str, Any] | None:
        nonlocal last
        last = server.flow_run(flow_run_id)
        state = str(last.get("state_type"))
        if state in TERMINAL_FAILURES:
            raise server.services.fail(
                f"flow run {flow_run_id} ended {state} ({last.get('state_name')}): "
                f"{(last.get('state') or {}).get('message')}"
            )
        return last if state == "COMPLETED" else None

    try:
        return poll(
            server.services,
            f"flow run {flow_run_id} to complete",
            probe,
            timeout=timeout,
            watched=watched,
        )
    except AssertionError as exc:
        history = [
            (s.get("type"), s.get("name")) for s in _safe(lambda: server.state_history(flow_run_id))
        ]
        raise AssertionError(
            f"{exc}\n\nlast state: {last.get('state_type')} {last.get('state_name')}; "
            f"history: {history}"
        ) from None


def _safe(call: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    try:
        return call()
    except Exception:
        return []


def run_command(
    services: Services,
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    timeout: float,
) -> str:
    """Run a command to its end (in its own process group, killed on timeout); return
    its combined output, failing with it when the command fails or prints a traceback."""
    service = services.start(name, argv, env=env, cwd=cwd)
    try:
        code = service.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        service.stop()
        raise services.fail(f"`{' '.join(argv)}` did not finish within {timeout:.0f} s") from None
    output = service.log_path.read_text(encoding="utf-8", errors="replace")
    if code != 0 or "Traceback (most recent call last)" in output:
        raise services.fail(f"`{' '.join(argv)}` exited with {code}:\n{output}")
    return output


def start_deployment_run(
    services: Services,
    name: str,
    deployment: str,
    parameters: Mapping[str, Any],
    *,
    env: Mapping[str, str],
    cwd: Path,
) -> str:
    """`prefect deployment run FLOW/DEPLOYMENT --params ...`, as a user starts one by
    hand; returns the id of the flow run it created."""
    argv = [executable("prefect"), "deployment", "run", deployment, "--params"]
    started = run_command(
        services, name, [*argv, json.dumps(parameters)], env=env, cwd=cwd, timeout=120
    )
    match = re.search(r"UUID:\s*([0-9a-f-]{36})", started)
    assert match, started
    return match.group(1)


def copy_seeds(repo: Path, home: Path) -> Path:
    """A working directory whose raw/seeds is a copy of the repository's seeds."""
    seeds = home / "raw" / "seeds"
    shutil.copytree(repo / "raw" / "seeds", seeds)
    return seeds
