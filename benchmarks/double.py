"""The loopback double in its own process, so that its CPU and memory are not ours.

`pipeline.sandbox.Sandbox` runs its servers as threads of the process that starts it;
building Atom feeds and JSON bodies for thousands of entities would then be timed and
counted as the pipeline's own cost. Here a child process serves the double, and a small
control endpoint beside it reports the requests it received (the double's own log: the
count is the server's, not the client's claim).

    with DoubleProcess(latency_seconds=0.3) as double:
        settings = Settings.from_env(double.env)
        ...
        double.counts()  # {"arxiv": 2, "hub": 41}
        double.log()  # every request: API, status, when it arrived and was answered

With `DoubleOptions(faults=SPEC)` the double injects the faults of a spec
(`pipeline.sandbox.faults_from_spec`), as `pipeline sandbox --faults SPEC` does.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import httpx

from pipeline.sandbox import LoggedRequest, Sandbox, faults_from_spec
from pipeline.sandbox.arxiv_api import ArxivDouble
from pipeline.sandbox.hub_api import HubDouble

_STOP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class DoubleOptions:
    latency_seconds: float = 0.3
    """Added to every answer: the real services' round trip."""
    synthesize_unknown: bool = False
    """Answer any well-formed unknown arXiv ID / model ID with synthetic data (scale runs)."""
    hub_quota: int = 500
    """Hub requests per window before 429: the real anonymous quota by default."""
    hub_window_seconds: int = 300
    faults: str = ""
    """A fault spec (`pipeline.sandbox.faults_from_spec`); empty: no fault."""
    nagle: bool = False
    """Leave Nagle's algorithm on in the double's server (`Sandbox(nagle=True)`). Off by
    default: the server writes headers and body separately, so with Nagle on every answer
    waits for the client's delayed ACK, a cost no real service adds and `latency_seconds`
    does not account for."""

    def argv(self) -> list[str]:
        args = [
            f"--latency-seconds={self.latency_seconds}",
            f"--hub-quota={self.hub_quota}",
            f"--hub-window-seconds={self.hub_window_seconds}",
        ]
        if self.synthesize_unknown:
            args.append("--synthesize")
        if self.nagle:
            args.append("--nagle")
        if self.faults:
            args.append(f"--faults={self.faults}")
        return args


@dataclass(frozen=True)
class RequestCounts:
    """Requests the double answered, per API and per HTTP status (0: no answer sent)."""

    by_api: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, dict[int, int]] = field(default_factory=dict)

    def __getitem__(self, api: str) -> int:
        return self.by_api.get(api, 0)


class DoubleProcess:
    """A child process serving the double; a context manager."""

    def __init__(self, options: DoubleOptions | None = None) -> None:
        self.options = options or DoubleOptions()
        self._process: subprocess.Popen[str] | None = None
        self._control = ""
        self.env: dict[str, str] = {}
        """`ARXIV_API_URL` and `HF_ENDPOINT` of the double."""

    def __enter__(self) -> DoubleProcess:
        process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.double", *self.options.argv()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._process = process
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            code = process.wait(_STOP_TIMEOUT_SECONDS)
            raise RuntimeError(f"the double's process exited with status {code} before serving")
        ready = json.loads(line)
        self._control = ready.pop("control")
        self.env = {str(key): str(value) for key, value in ready.items()}
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        process = self._process
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()  # the child serves until its stdin closes
        try:
            process.wait(_STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._process = None

    def counts(self) -> RequestCounts:
        answer = httpx.get(f"{self._control}/counts", timeout=10.0).json()
        return RequestCounts(
            by_api={api: int(n) for api, n in answer["by_api"].items()},
            by_status={
                api: {int(status): int(n) for status, n in statuses.items()}
                for api, statuses in answer["by_status"].items()
            },
        )

    def log(self) -> list[LoggedRequest]:
        """Every request the double received since the last reset, in arrival order, with
        its status and the double's `time.monotonic()` when it arrived and was answered
        (user agent and query left out)."""
        answer = httpx.get(f"{self._control}/log", timeout=30.0).json()
        return [
            LoggedRequest(
                api=entry["api"],
                method=entry["method"],
                path=entry["path"],
                query="",
                status=int(entry["status"]),
                user_agent="",
                authorization=False,
                at=float(entry["at"]),
                received_at=float(entry["received_at"]),
            )
            for entry in answer
        ]

    def reset(self) -> None:
        httpx.post(f"{self._control}/reset", timeout=10.0).raise_for_status()


# -- the child -----------------------------------------------------------------------------


def _control_server(sandbox: Sandbox) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.path == "/log":
                entries = sorted(sandbox.requests(), key=lambda entry: entry.received_at)
                self._send(
                    json.dumps(
                        [
                            {
                                "api": entry.api,
                                "method": entry.method,
                                "path": entry.path,
                                "status": entry.status,
                                "at": entry.at,
                                "received_at": entry.received_at,
                            }
                            for entry in entries
                        ]
                    ).encode()
                )
                return
            if self.path != "/counts":
                self.send_error(404)
                return
            log = sandbox.requests()
            by_status: dict[str, Counter[int]] = {}
            for entry in log:
                by_status.setdefault(entry.api, Counter())[entry.status] += 1
            body = json.dumps(
                {
                    "by_api": {api: sum(c.values()) for api, c in by_status.items()},
                    "by_status": {api: dict(c) for api, c in by_status.items()},
                }
            ).encode()
            self._send(body)

        def do_POST(self) -> None:
            if self.path != "/reset":
                self.send_error(404)
                return
            sandbox.reset_log()
            self._send(b"{}")

        def _send(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the loopback double until stdin closes.")
    parser.add_argument("--latency-seconds", type=float, default=0.3)
    parser.add_argument("--synthesize", action="store_true")
    parser.add_argument("--hub-quota", type=int, default=500)
    parser.add_argument("--hub-window-seconds", type=int, default=300)
    parser.add_argument("--nagle", action="store_true")
    parser.add_argument("--faults", default="")
    args = parser.parse_args(argv)
    sandbox = Sandbox(
        latency_seconds=args.latency_seconds,
        nagle=args.nagle,
        faults=faults_from_spec(args.faults),
        arxiv=ArxivDouble(synthesize_unknown=args.synthesize),
        hub=HubDouble(
            synthesize_unknown=args.synthesize,
            quota=args.hub_quota,
            window_seconds=args.hub_window_seconds,
        ),
    )
    with sandbox:
        control = _control_server(sandbox)
        thread = threading.Thread(target=control.serve_forever, daemon=True)
        thread.start()
        host, port = control.server_address[:2]
        ready = {**sandbox.env(), "control": f"http://{host!s}:{port}"}
        print(json.dumps(ready), flush=True)
        sys.stdin.read()  # returns when the parent closes our stdin (or dies)
        control.shutdown()
        control.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
