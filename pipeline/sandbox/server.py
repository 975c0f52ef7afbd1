"""A loopback double of the arXiv export API and the Hugging Face Hub API.

Two HTTP servers on 127.0.0.1 (one per API, so that each has its own base URL, as in
production: the Hub's relative redirects must resolve against the Hub's root). Each
request is answered by an API double (`ArxivDouble`, `HubDouble`) from sample data in
the real wire formats, after the fault plan has had its say.

Everything here is sample data for tests, benchmarks and the offline demo
(`pipeline run --sandbox`); nothing it serves describes the real papers or models.

Faults are deterministic: each `Fault` hits the next `times` requests that match it.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from pipeline.sandbox.wire import Api, ApiDouble, Fault, LoggedRequest, Request, Response


class _Handler(BaseHTTPRequestHandler):
    server: _ApiServer
    protocol_version = "HTTP/1.1"
    # Without TCP_NODELAY every answer waits ~40 ms on the client's delayed ACK.
    disable_nagle_algorithm = True

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
        form = (
            parse_qsl(raw_body.decode("utf-8", "replace"), keep_blank_values=True)
            if raw_body and "form" in (self.headers.get("content-type") or "")
            else []
        )
        headers = {name.lower(): value for name, value in self.headers.items()}
        fault = sandbox._take_fault(api, f"{parts.path}?{parts.query}")
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
        )
        response = self._answer(request, fault)
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
    """Both API doubles on loopback. Use as a context manager.

    >>> with Sandbox() as sandbox:
    ...     settings = Settings.from_env(sandbox.env())
    """

    def __init__(
        self,
        *,
        latency_seconds: float = 0.0,
        arxiv: ApiDouble | None = None,
        hub: ApiDouble | None = None,
    ) -> None:
        self.latency_seconds = latency_seconds
        """Added to every answer, to model the real services' round-trip time."""
        self.faults: list[Fault] = []
        self.log: list[LoggedRequest] = []
        self._lock = threading.Lock()
        self._arxiv = arxiv
        self._hub = hub
        self._servers: list[_ApiServer] = []
        self._threads: list[threading.Thread] = []

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> Sandbox:
        from pipeline.sandbox.arxiv_api import ArxivDouble
        from pipeline.sandbox.hub_api import HubDouble

        doubles: list[tuple[Api, ApiDouble]] = [
            ("arxiv", self._arxiv or ArxivDouble()),
            ("hub", self._hub or HubDouble()),
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

    def env(self) -> dict[str, str]:
        """The environment that points the pipeline at this sandbox."""
        return {"ARXIV_API_URL": self.arxiv_api_url, "HF_ENDPOINT": self.hf_endpoint}

    # -- faults and the request log ------------------------------------------------
    def add_fault(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    @contextmanager
    def fault(self, fault: Fault) -> Iterator[Fault]:
        self.add_fault(fault)
        try:
            yield fault
        finally:
            with self._lock:
                if fault in self.faults:
                    self.faults.remove(fault)

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

    def _take_fault(self, api: Api, target: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.api == api and fault.match in target and fault.times != 0:
                    if fault.times > 0:
                        fault.times -= 1
                    return fault
        return None

    def _log(self, entry: LoggedRequest) -> None:
        with self._lock:
            self.log.append(entry)
