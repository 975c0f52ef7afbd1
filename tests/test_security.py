"""Untrusted input: documents and API answers are hostile until validated.

- Identifiers from documents become URL path segments only after validation and
  escaping, and never file names: no path traversal into `raw/` or `enriched/`.
- The pipeline asks the configured endpoints and nothing else: documents full of links to
  a trap server, redirects to it, entities pointing at it; the trap hears nothing.
- `HF_TOKEN` reaches the Hub as a bearer header and nothing else: a whole `pipeline run`
  with a token set, every file it writes (Prefect's database included) and everything it
  prints are scanned for it.
- Answers are bounded in size (an endless answer costs the limit, not memory), and XML
  entity tricks (billion laughs, external entities) are refused cleanly.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qsl, unquote

import pytest
from nights import (
    ARXIV,
    FAST_ENV,
    HUB_LOOKUPS,
    NIGHT_2,
    Baseline,
    Rig,
    arxiv_fault,
    assert_every_link_and_entity_has_a_row,
    assert_last_known_good,
    assert_untouched,
    hub_fault,
    published_state,
    write_reading_list,
)

from pipeline.config import Settings
from pipeline.links.identify import parse_arxiv_id
from pipeline.resolve.arxiv import ArxivResolver
from pipeline.resolve.arxiv_feed import FeedError, read_feed
from pipeline.resolve.hub import HubResolver
from pipeline.resolve.rawstore import RawStore
from pipeline.sandbox import Sandbox
from pipeline.snapshot.schemas import TABLE_SCHEMAS

# The rig of the fault suite: its double, night 1, and a copy of night 1 per test.

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "api-samples"
TOKEN = "hf_SecuritySuiteTokenThatMustNeverLeak42"
TABLES = "|".join(TABLE_SCHEMAS)
WRITTEN = [
    re.compile(pattern)
    for pattern in (
        r"raw/responses/index\.sqlite(-wal|-shm|-journal)?",
        r"raw/responses/(arxiv|hub|github)/\d{4}-\d{2}-\d{2}/[0-9a-f]{64}\.body",
        r"enriched/(_snapshots\.parquet|\.lock)",
        rf"enriched/\.runs/[A-Za-z0-9][A-Za-z0-9._-]*/({TABLES})\.parquet",
        rf"enriched/({TABLES})/snapshot_date=\d{{4}}-\d{{2}}-\d{{2}}/part-0\.parquet",
        r"enriched/reports/\d{4}-\d{2}-\d{2}\.html",
    )
]
"""Every file a run may write: names made of fixed words, dates, digests and run IDs."""


class Trap:
    """An HTTP server on loopback that records whatever reaches it: nothing should."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_POST = do_GET

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def trap() -> Iterator[Trap]:
    listening = Trap()
    yield listening
    listening.close()


@pytest.fixture
def deep_rig(sandbox: Sandbox, baseline: Baseline, tmp_path: Path) -> Iterator[Rig]:
    """A copy of night 1 three folders down, so that a path that climbs out of the run's
    folders still lands inside this test's folder, where it is seen."""
    sandbox.clear_faults()
    sandbox.reset_log()
    yield Rig(sandbox, baseline, tmp_path / "a" / "b" / "run")
    sandbox.clear_faults()


TRAVERSALS = [
    "https://huggingface.co/../../raw/responses/index.sqlite",
    "https://huggingface.co/%2e%2e/%2e%2e/enriched/_snapshots.parquet",
    "https://huggingface.co/datasets/..%2F..%2Fenriched/x",
    "https://huggingface.co/sample-org/..%2f..%2f..%2fetc%2fpasswd",
    "https://huggingface.co/spaces/%2Fetc/passwd",
    "https://huggingface.co//etc/passwd",
    "https://huggingface.co/sample-org/name%00.parquet",
    "https://huggingface.co/sample-org/na%5Cme",
    "https://hf-mirror.com/collections/..%2F..%2Fraw/responses",
    "https://huggingface.co/collections/sample-org/%2e%2e",
    "https://huggingface.co/papers/..%2F..%2Fapi%2Fmodels",
    "https://arxiv.org/abs/../../etc/passwd",
    "https://arxiv.org/abs/%2e%2e%2fraw%2fresponses",
    "https://arxiv.org/abs/2409.12191%00../../x",
    "https://github.com/../../enriched",
    "../../raw/responses/index.sqlite",
    "/etc/passwd",
    "file:///etc/passwd",
    "C:\\Windows\\system32",
]


def traversal_list() -> str:
    return "\n".join(["# Climbing", "", *(f"- [x]({url})" for url in TRAVERSALS), ""])


def assert_requests_are_clean(sandbox: Sandbox) -> None:
    """Every request went to a known route, with path segments that are names (no empty,
    `.`, `..`, slash, backslash or NUL once decoded) and arXiv IDs that are valid."""
    routes = re.compile(
        r"/api/(query|models/|datasets/|spaces/|collections/|papers/)|/repos/[^/]+/[^/]+$"
    )
    for request in sandbox.requests():
        assert routes.match(request.path), request.path
        segments = [unquote(s) for s in request.path.split("/")[1:]]
        for segment in segments:
            assert segment not in ("", ".", ".."), request.path
            assert not {"/", "\\", "\x00"} & set(segment), request.path
        for name, value in parse_qsl(request.query, keep_blank_values=True):
            if name == "id_list" and value:
                assert all(parse_arxiv_id(i) for i in value.split(",")), value


def files_under(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in root.rglob("*")
        if path.is_file()
    }


def test_identifiers_that_climb_paths_are_never_sent_and_never_written(
    deep_rig: Rig, tmp_path: Path
) -> None:
    published = published_state(deep_rig.out)
    climbing = write_reading_list(tmp_path / "docs", traversal_list(), name="climbing.md")
    before = files_under(tmp_path)

    night = deep_rig.night_with(climbing)

    assert_every_link_and_entity_has_a_row(night)
    assert_last_known_good(deep_rig.before, night, (), "")
    assert_requests_are_clean(deep_rig.sandbox)
    written = {name for name, digest in files_under(tmp_path).items() if before.get(name) != digest}
    run_root = deep_rig.root.relative_to(tmp_path).as_posix() + "/"
    for name in written:
        assert name.startswith(run_root), f"written outside the run's folders: {name}"
        assert any(p.fullmatch(name.removeprefix(run_root)) for p in WRITTEN), name
    urls = set(night.tables["links"].column("url").to_pylist())
    # GitHub (and markdown-it) make no link of a file: URL; every other one is a row.
    assert urls >= set(TRAVERSALS) - {"file:///etc/passwd"}
    assert "file:///etc/passwd" not in urls
    assert_untouched(published, deep_rig.out)


def test_links_found_in_documents_are_never_fetched(
    deep_rig: Rig, trap: Trap, tmp_path: Path
) -> None:
    """Documents full of links to the trap, shaped like every API path the pipeline knows;
    redirects from both APIs to the trap; the trap hears nothing."""
    lines = ["# Everything points at the trap", ""]
    lines += [
        f"- [{path}]({trap.base}{path})"
        for path in (
            "/abs/2409.12191",
            "/pdf/2409.12191v2",
            "/api/query?id_list=2409.12191",
            "/api/models/Qwen/Qwen2-VL-72B",
            "/Qwen/Qwen2-VL-72B",
            "/datasets/OpenGVLab/MMPR-v1.1",
            "/collections/OpenGVLab/internvl-25-673e1019b66e2218f68d7c1c",
            "/papers/2409.12191",
            "/user/repo",
        )
    ]
    lines += [f"{trap.base}/bare/{n} and <{trap.base}/angle/{n}>" for n in range(3)]
    lines += [f'<img src="{trap.base}/image.png"> <a href="{trap.base}/html">html</a>', ""]
    pointing = write_reading_list(tmp_path / "docs", "\n".join(lines), name="trap.md")
    deep_rig.add(
        arxiv_fault("status", status=302, headers={"location": f"{trap.base}/api/query"}),
        hub_fault(
            "status",
            match="Qwen2-VL-72B",
            status=307,
            headers={"location": f"{trap.base}/api/models/Qwen/Qwen2-VL-72B"},
        ),
    )

    night = deep_rig.night_with(pointing)

    assert trap.hits == []
    assert_every_link_and_entity_has_a_row(night)
    papers = night.rows("papers")
    assert "redirect to http://127.0.0.1" in papers[("2409.12191",)]["status_reason"]
    assert papers[("2409.12191",)]["status"] == "stale"
    model = night.rows("models")[("Qwen/Qwen2-VL-72B",)]
    assert model["status"] == "stale"
    assert "redirect to another host refused: 127.0.0.1" in model["status_reason"]


@pytest.mark.parametrize("how", ["direct", "prefect"])
def test_the_token_never_leaves_the_bearer_header(
    sandbox: Sandbox, trap: Trap, tmp_path: Path, how: str
) -> None:
    """A whole `pipeline run` (directly, or through its own temporary Prefect server with
    its own home) with `HF_TOKEN` set and the most verbose logging, a Hub that echoes the
    token in an error, and documents linking the trap: the token is sent to the Hub, never
    to arXiv, and appears in no file, no Prefect record and no output."""
    sandbox.clear_faults()
    sandbox.reset_log()
    echo = f"token {TOKEN} is not valid for this repo"
    sandbox.add_fault(
        hub_fault(
            "status",
            match="Florence",
            status=500,
            headers={"x-error-message": echo},
            body=echo.encode(),
        )
    )
    documents = tmp_path / "docs"
    write_reading_list(documents)
    write_reading_list(
        documents,
        "- [a model](https://huggingface.co/microsoft/Florence-2-large)\n"
        f"- [trap]({trap.base}/api/models/microsoft/Florence-2-large)\n",
        name="more.md",
    )
    home = tmp_path / "prefect-home"
    env = {name: value for name, value in os.environ.items() if not name.startswith("PREFECT_")}
    env.update(FAST_ENV)
    env.update(sandbox.env())
    env.update(
        HF_TOKEN=TOKEN,
        PREFECT_HOME=str(home),
        PREFECT_LOGGING_LEVEL="DEBUG",
        PREFECT_LOGGING_EXTRA_LOGGERS="pipeline",
    )

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "run",
            str(documents),
            "--out",
            "enriched",
            "--raw",
            "raw",
            "--date",
            NIGHT_2.isoformat(),
            "--refresh",
            *(["--prefect"] if how == "prefect" else []),
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    sandbox.clear_faults()
    assert done.returncode == 3, done.stdout + done.stderr  # partial: Florence failed
    assert "hub model microsoft/Florence-2-large: error" in done.stdout + done.stderr
    hub = sandbox.requests("hub")
    assert hub and all(request.authorization for request in hub)
    assert not any(request.authorization for request in sandbox.requests("arxiv"))
    assert trap.hits == []
    assert TOKEN not in done.stdout + done.stderr
    scanned = [path for path in tmp_path.rglob("*") if path.is_file()]
    if how == "prefect":  # Prefect's database is among the files scanned
        assert any(path.name.startswith("prefect") and ".db" in path.name for path in scanned)
    for path in scanned:
        assert TOKEN.encode() not in path.read_bytes(), path


def test_an_answer_past_the_size_limit_is_refused_and_the_night_goes_on(deep_rig: Rig) -> None:
    limit = 1 << 20
    deep_rig.add(
        arxiv_fault("oversize", size_bytes=4 * limit), hub_fault("oversize", size_bytes=4 * limit)
    )

    night = deep_rig.night(max_response_bytes=limit)

    assert_last_known_good(
        deep_rig.before,
        night,
        (ARXIV, *HUB_LOOKUPS),
        r"over the 1048576-byte limit|larger than max_response_bytes=1048576",
    )
    with RawStore(deep_rig.raw) as store:
        assert max(r.body_bytes for r in store.responses()) <= limit


class _Endless(BaseHTTPRequestHandler):
    """200 and a body that never ends (chunked, no length); counts what it sent."""

    protocol_version = "HTTP/1.1"
    sent: ClassVar[list[int]] = []
    _CHUNK = b" " * 65536

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        sent = 0
        try:
            while sent < 1 << 30:
                self.wfile.write(b"10000\r\n" + self._CHUNK + b"\r\n")
                sent += len(self._CHUNK)
        except OSError:
            pass
        finally:
            type(self).sent.append(sent)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def endless() -> Iterator[str]:
    _Endless.sent = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endless)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    yield f"http://{host!s}:{port}"
    server.shutdown()
    server.server_close()


def test_an_endless_answer_costs_the_limit_not_memory(endless: str, tmp_path: Path) -> None:
    limit = 2 << 20
    settings = Settings.from_env(
        {**FAST_ENV, "ARXIV_API_URL": f"{endless}/api/query", "HF_ENDPOINT": endless}
    ).replace(max_response_bytes=limit, arxiv_max_attempts=1, hub_max_attempts=1)
    with RawStore(tmp_path / "raw") as store:
        tracemalloc.start()
        try:
            paper = ArxivResolver(settings, store).resolve_ids(["2409.12191"])["2409.12191"]
            model = HubResolver(settings, store).resolve_repos([("model", "org/name")])
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert paper.status == "error" and "limit" in (paper.status_reason or "")
    assert model[("model", "org/name")].status == "error"
    assert peak < 4 * limit, peak
    time.sleep(0.2)  # the server notices the closed connections
    assert _Endless.sent and max(_Endless.sent) < 64 * limit


_ENTRY = (FIXTURES / "arxiv_id_list_unversioned_1605.08386.xml").read_bytes().split(b"?>", 1)[1]


def _with_dtd(dtd: bytes, title: bytes) -> bytes:
    start = _ENTRY.index(b"<title>", _ENTRY.index(b"<entry>")) + len(b"<title>")
    end = _ENTRY.index(b"</title>", start)
    return (
        b'<?xml version="1.0"?>\n<!DOCTYPE feed ['
        + dtd
        + b"]>\n"
        + _ENTRY[:start]
        + title
        + _ENTRY[end:]
    )


LAUGHS = b'<!ENTITY lol "lol">' + b"".join(
    b'<!ENTITY lol%d "%s">' % (n, (b"&lol%d;" % (n - 1) if n > 1 else b"&lol;") * 10)
    for n in range(1, 10)
)
HOSTILE_XML = {
    "billion laughs": _with_dtd(LAUGHS, b"&lol9;"),
    "quadratic blowup": _with_dtd(b'<!ENTITY a "' + b"a" * 100_000 + b'">', b"&a;" * 1000),
    "external file entity": _with_dtd(b'<!ENTITY x SYSTEM "file:///etc/passwd">', b"&x;"),
    "external http entity": _with_dtd(b'<!ENTITY x SYSTEM "http://127.0.0.1:9/x">', b"&x;"),
    "parameter entity": _with_dtd(b'<!ENTITY % p SYSTEM "http://127.0.0.1:9/p.dtd"> %p;', b"t"),
    "entity cutting a title short": _with_dtd(b'<!ENTITY x "injected">', b"Heat &x; walks"),
}


@pytest.mark.parametrize("body", HOSTILE_XML.values(), ids=HOSTILE_XML.keys())
def test_xml_entity_tricks_are_refused(body: bytes) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(FeedError, match=r"document type declaration|not well-formed"):
            read_feed(body)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def test_xml_entity_tricks_through_the_arxiv_double_leave_the_last_good_answer(
    deep_rig: Rig, trap: Trap
) -> None:
    body = _with_dtd(b'<!ENTITY x SYSTEM "' + trap.base.encode() + b'/xxe">', b"&x;")
    deep_rig.add(
        arxiv_fault(
            "status", status=200, headers={"content-type": "application/atom+xml"}, body=body
        )
    )

    night = deep_rig.night()

    assert trap.hits == []
    assert_last_known_good(deep_rig.before, night, (ARXIV,), r"document type declaration")
