"""A loopback double of the arXiv export API, the Hugging Face Hub API and GitHub's API.

Three HTTP servers on 127.0.0.1 (one per API, so that each has its own base URL, as in
production: the Hub's relative redirects must resolve against the Hub's root). Each
request is answered by an API double (`ArxivDouble`, `HubDouble`) from sample data in
the real wire formats, after the fault plan has had its say.

Everything here is sample data for tests, benchmarks and the offline demo
(`pipeline run --sandbox`); nothing it serves describes the real papers or models.

How a request meets the faults (`Fault`, in `wire`; `faults_from_spec` builds them from text):
- `quota` faults count every request they match, whatever else happens to it. Once a
  window is spent the request is refused with the Hub's 429 and nothing else applies;
  otherwise the window's `RateLimit`/`RateLimit-Policy` replace the double's own.
- Then the first other fault that matches, in the order they were added, hits. A fault
  with `probability` 1.0 matches every request its `match` selects, until `times` runs
  out. Probabilistic faults of one API share one draw per request: with 0.25 then 0.15,
  a request gets the first with probability 0.25 and the second with 0.15. The draw is a
  hash of the fault's `seed` and of the request (method, path, query, body, and how many
  identical requests came before it), so a seed gives the same faults to the same
  requests whatever order concurrent requests arrive in.

The request log (`Sandbox.requests`) keeps when each request arrived and was answered;
`politeness_violations` finds arXiv requests closer together than a delay.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from urllib.parse import parse_qsl, urlsplit

from pipeline.sandbox.arxiv_api import ArxivDouble
from pipeline.sandbox.arxiv_api import check_fault_name as check_arxiv_fault
from pipeline.sandbox.github_api import GithubDouble, default_github_double
from pipeline.sandbox.hub_api import FixedWindow, HubDouble
from pipeline.sandbox.hub_api import check_fault_name as check_hub_fault
from pipeline.sandbox.wire import Api, ApiDouble, Fault, LoggedRequest, Request, Response


@dataclass(frozen=True, slots=True)
class _Decision:
    """What the fault plan makes of one request."""

    fault: Fault | None = None
    limits: dict[str, str] | None = None
    """A quota fault's RateLimit headers for this request, replacing the double's."""
    refusal: Response | None = None
    """A quota fault's 429: answered instead of anything else."""


class _Handler(BaseHTTPRequestHandler):
    server: _ApiServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        if not self.server.sandbox.nagle:
            # The server writes headers and body separately: with Nagle's algorithm on,
            # each body waits for the client's delayed ACK, a cost no real service adds.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: object) -> None:  # quiet: tests read the log
        pass

    def _serve(self) -> None:
        sandbox = self.server.sandbox
        api = self.server.api
        parts = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        received_at = time.monotonic()
        form = (
            parse_qsl(raw_body.decode("utf-8", "replace"), keep_blank_values=True)
            if raw_body and "form" in (self.headers.get("content-type") or "")
            else []
        )
        headers = {name.lower(): value for name, value in self.headers.items()}
        decision = sandbox._decide(api, self.command, f"{parts.path}?{parts.query}", raw_body)
        fault = decision.fault
        if sandbox.latency_seconds:
            time.sleep(sandbox.latency_seconds)
        request = Request(
            api=api,
            method=self.command,
            path=parts.path,
            query=parse_qsl(parts.query, keep_blank_values=True),
            form=form,
            headers=headers,
            fault=fault if fault is not None and fault.kind == "api" else None,
            body=raw_body,
        )
        response = decision.refusal or self._answer(request, fault)
        # The quota's own RateLimit goes on every answer but a 429 of another fault, whose
        # headers say why it refused (a transient limit resetting in seconds).
        limited = response is not None and response.status == 429
        if (
            response is not None
            and decision.limits
            and "ratelimit" in response.headers
            and not limited
        ):
            response = Response(
                response.status, response.body, {**response.headers, **decision.limits}
            )
        sandbox._log(
            LoggedRequest(
                api=api,
                method=self.command,
                path=parts.path,
                query=parts.query,
                status=response.status if response else 0,
                user_agent=headers.get("user-agent", ""),
                authorization="authorization" in headers,
                at=time.monotonic(),
                received_at=received_at,
            )
        )
        if response is None:  # hang: close without a word
            self.close_connection = True
            return
        self._send(response, cut=fault is not None and fault.kind == "disconnect")

    def _answer(self, request: Request, fault: Fault | None) -> Response | None:
        double = self.server.double
        if fault is None or fault.kind == "api":
            return double.handle(request)
        if fault.kind == "status":
            return Response(fault.status, fault.body, dict(fault.headers))
        if fault.kind == "delay":
            time.sleep(fault.delay_seconds)
            if fault.status:
                return Response(fault.status, fault.body, dict(fault.headers))
            return double.handle(request)
        if fault.kind == "hang":
            time.sleep(fault.delay_seconds)
            return None
        if fault.kind == "garbage":
            body = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
            return Response(200, body, {"content-type": "text/html"})
        if fault.kind == "oversize":
            return Response(200, b" " * fault.size_bytes, {"content-type": "application/json"})
        real = double.handle(request)
        if fault.kind == "truncate":
            return Response(real.status, real.body[: len(real.body) // 2], real.headers)
        return real  # disconnect: cut while sending

    def _send(self, response: Response, *, cut: bool) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(response.body)))
        self.end_headers()
        body = response.body[: len(response.body) // 2] if cut else response.body
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)
        if cut:
            self.close_connection = True


class _ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, api: Api, double: ApiDouble, sandbox: Sandbox) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api = api
        self.double = double
        self.sandbox = sandbox

    def handle_error(self, request: object, client_address: object) -> None:
        # A client dropping a keep-alive connection (or a fault cutting one) is routine here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class Sandbox:
    """The three API doubles on loopback. Use as a context manager.

    >>> with Sandbox(faults=faults_from_spec("hub:5xx:0.2,seed:7")) as sandbox:
    ...     settings = Settings.from_env(sandbox.env())
    """

    def __init__(
        self,
        *,
        latency_seconds: float = 0.0,
        arxiv: ApiDouble | None = None,
        hub: ApiDouble | None = None,
        github: GithubDouble | None = None,
        faults: Iterable[Fault] = (),
        nagle: bool = False,
    ) -> None:
        self.latency_seconds = latency_seconds
        """Added to every answer, to model the real services' round-trip time."""
        self.nagle = nagle
        """Leave Nagle's algorithm on for the servers' sockets (off: answers go out at once)."""
        self.faults: list[Fault] = []
        self.log: list[LoggedRequest] = []
        self._lock = threading.Lock()
        self._arxiv = arxiv
        self._hub = hub
        self.github = github or default_github_double()
        """The GitHub double: tests edit its upstream files between two nights."""
        self._servers: list[_ApiServer] = []
        self._threads: list[threading.Thread] = []
        self._seen: Counter[bytes] = Counter()
        self._windows: list[tuple[Fault, FixedWindow]] = []
        for fault in faults:
            self.add_fault(fault)

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> Sandbox:
        doubles: list[tuple[Api, ApiDouble]] = [
            ("arxiv", self._arxiv or ArxivDouble()),
            ("hub", self._hub or HubDouble()),
            ("github", self.github),
        ]
        for api, double in doubles:
            server = _ApiServer(api, double, self)
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},  # quick shutdown between tests
                name=f"sandbox-{api}",
                daemon=True,
            )
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses -----------------------------------------------------------------
    def _base(self, api: Api) -> str:
        for server in self._servers:
            if server.api == api:
                host, port = server.server_address[:2]
                return f"http://{host!s}:{port}"
        raise RuntimeError("the sandbox is not running")

    @property
    def arxiv_api_url(self) -> str:
        return self._base("arxiv") + "/api/query"

    @property
    def hf_endpoint(self) -> str:
        return self._base("hub")

    @property
    def github_api_url(self) -> str:
        return self._base("github")

    def env(self) -> dict[str, str]:
        """The environment that points the pipeline at this sandbox."""
        return {
            "ARXIV_API_URL": self.arxiv_api_url,
            "HF_ENDPOINT": self.hf_endpoint,
            "GITHUB_API_URL": self.github_api_url,
            # Set as well: GitHub's runners export GITHUB_GRAPHQL_URL, which would win.
            "GITHUB_GRAPHQL_URL": self.github_api_url + "/graphql",
        }

    # -- faults and the request log ------------------------------------------------
    def add_fault(self, fault: Fault) -> Fault:
        """Switches `fault` on; raises ValueError for a fault no double knows."""
        _check(fault)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()
            self._windows.clear()

    @contextmanager
    def fault(self, fault: Fault) -> Iterator[Fault]:
        self.add_fault(fault)
        try:
            yield fault
        finally:
            with self._lock:
                if fault in self.faults:
                    self.faults.remove(fault)
                self._windows = [(f, w) for f, w in self._windows if f is not fault]

    def requests(
        self, api: Api | None = None, where: Callable[[LoggedRequest], bool] | None = None
    ) -> list[LoggedRequest]:
        with self._lock:
            return [
                entry
                for entry in self.log
                if (api is None or entry.api == api) and (where is None or where(entry))
            ]

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()

    def politeness_violations(
        self, delay_seconds: float, api: Api = "arxiv"
    ) -> list[PolitenessViolation]:
        """`politeness_violations` of this sandbox's log of `api` (arXiv by default)."""
        return politeness_violations(self.requests(api), delay_seconds)

    def _decide(self, api: Api, method: str, target: str, body: bytes) -> _Decision:
        key = hashlib.sha256(f"{method} {target}\n".encode() + body).digest()
        with self._lock:
            occurrence = self._seen[key]
            self._seen[key] += 1
            windows = [
                self._window(fault)
                for fault in self.faults
                if fault.api == api and fault.kind == "quota" and fault.match in target
            ]
        limits: tuple[int, dict[str, str]] | None = None
        for window in windows:
            left, reset_seconds = window.take()
            if left < 0:
                return _Decision(refusal=window.refusal(reset_seconds))
            if limits is None or left < limits[0]:
                limits = (left, window.headers(left, reset_seconds))
        fault = self._take_fault(api, target, key, occurrence)
        return _Decision(fault=fault, limits=limits[1] if limits else None)

    def _window(self, fault: Fault) -> FixedWindow:
        """The counter of a quota fault, started by the first request it sees."""
        for known, window in self._windows:
            if known is fault:
                return window
        window = FixedWindow(fault.quota, fault.window_seconds, left=fault.quota_left)
        self._windows.append((fault, window))
        return window

    def _take_fault(self, api: Api, target: str, key: bytes, occurrence: int) -> Fault | None:
        with self._lock:
            share_start = 0.0
            for fault in self.faults:
                if fault.api != api or fault.kind == "quota" or fault.match not in target:
                    continue
                if fault.probability < 1.0:
                    # Exhausted faults keep their share, so the others' shares do not move.
                    draw = _draw(fault.seed, api, key, occurrence)
                    hit = share_start <= draw < share_start + fault.probability
                    share_start += fault.probability
                    if not hit:
                        continue
                if fault.times == 0:
                    continue
                if fault.times > 0:
                    fault.times -= 1
                return fault
        return None

    def _log(self, entry: LoggedRequest) -> None:
        with self._lock:
            self.log.append(entry)


def _draw(seed: int, api: Api, key: bytes, occurrence: int) -> float:
    """A number in [0, 1) fixed by the seed and the request (see the module docstring)."""
    digest = hashlib.sha256(f"{seed}\0{api}\0{occurrence}\0".encode() + key).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _check(fault: Fault) -> None:
    if fault.kind == "api" and fault.api == "github":
        raise ValueError("the GitHub double has no API-specific faults: use status faults")
    if fault.kind == "api":
        check = check_arxiv_fault if fault.api == "arxiv" else check_hub_fault
        check(fault.name)
    if fault.kind == "quota" and fault.api != "hub":
        raise ValueError("a quota fault is the Hub's fixed window: arXiv sends no RateLimit")


# -- politeness ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PolitenessViolation:
    """Two consecutive requests too close together, or overlapping."""

    earlier: LoggedRequest
    later: LoggedRequest

    @property
    def gap_seconds(self) -> float:
        """Between the two arrivals."""
        return self.later.received_at - self.earlier.received_at

    @property
    def overlapping(self) -> bool:
        """The later request arrived before the earlier one was answered (two connections
        at once, which arXiv's terms forbid)."""
        return self.later.received_at < self.earlier.at


def politeness_violations(
    log: Iterable[LoggedRequest], delay_seconds: float
) -> list[PolitenessViolation]:
    """Consecutive requests of `log` (in arrival order) that arrived less than
    `delay_seconds` apart, or while the previous one was still being answered.

    arXiv's terms: "no more than one request every three seconds", "a single connection
    at a time" (reference 1.5). Pass the log of one API (`Sandbox.requests("arxiv")`).
    """
    ordered = sorted(log, key=lambda entry: entry.received_at)
    pairs = (PolitenessViolation(earlier, later) for earlier, later in pairwise(ordered))
    return [pair for pair in pairs if pair.gap_seconds < delay_seconds or pair.overlapping]
