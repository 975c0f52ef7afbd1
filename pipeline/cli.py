"""The `pipeline` command.

Every subcommand is documented in the README (a test fails when one is not).
Exit codes: 0 success, 1 the run failed, 2 bad usage or input, 3 the run published a
snapshot in which some entities could not be resolved (partial), 4 another run holds
the snapshot lock, 130 `pipeline run` was interrupted (Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from pipeline.config import (
    DEFAULT_OUT_DIR,
    DEFAULT_SEEDS_DIR,
    DEFAULT_SOURCES_FILE,
    RefreshPolicy,
    __version__,
)

if TYPE_CHECKING:
    from pipeline.parameters import RunParameters
    from pipeline.report import RunSummary

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL, EXIT_LOCKED = 0, 1, 2, 3, 4


def printable(text: str) -> str:
    """`links.documents.printable`, imported when first needed: `pipeline --help` and the
    usage errors stay free of the markdown parser."""
    from pipeline.links.documents import printable as escape

    return escape(text)


class UsageError(Exception):
    """Bad arguments or input, found before anything runs (exit 2)."""


def _output_file(path: Path) -> Path:
    if path.is_dir():
        raise UsageError(f"{path} is a folder; give a file name such as {path / 'links.parquet'}")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise UsageError(f"{parent} is a file, so {path} cannot be written")
    return path


def _output_dir(path: Path, what: str) -> Path:
    if path.exists() and not path.is_dir():
        raise UsageError(f"{what} {path} is a file, not a folder")
    return path


def _documents_arguments(parser: argparse.ArgumentParser, paths: str, sources: str) -> None:
    """PATH and --sources, with the help of the command: `run` reads them once, `serve`
    makes them its runs' defaults."""
    parser.add_argument("paths", nargs="*", metavar="PATH", help=paths)
    parser.add_argument("--sources", type=Path, metavar="FILE", help=sources)


def _location(value: str) -> str:
    """`--out`/`--raw`: a folder, or an object-store URL kept as given (`Path` would fold
    the `//` of `s3://bucket`)."""
    from pipeline.objectstore import location

    return str(location(value))


def _output_location(value: str, what: str) -> str:
    """A folder that is not a file, or an object-store URL whose scheme has a driver."""
    from pipeline.objectstore import checked_location

    try:
        where = checked_location(value)
    except ValueError as exc:
        raise UsageError(f"{what} {exc}") from None
    return where if isinstance(where, str) else _output_dir(where, what).as_posix()


def _cmd_extract(args: argparse.Namespace) -> int:
    import pyarrow.parquet as pq

    from pipeline.arrow_memory import use_system_allocator
    from pipeline.links.documents import discover_documents
    from pipeline.night import ThreadExecutor
    from pipeline.snapshot.schemas import LINKS_SCHEMA

    out = _output_file(args.output)
    if args.workers < 1:
        raise UsageError(f"--workers: at least 1, not {args.workers}")
    try:
        named = discover_documents(args.paths)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    use_system_allocator()
    links = read = failed = 0
    # Each document's batches are written as they come, in document order: the links
    # table is never whole in memory.
    with (
        ThreadExecutor(workers=args.workers) as executor,
        pq.ParquetWriter(tmp, LINKS_SCHEMA, compression="zstd") as writer,
    ):
        for document, table in executor.extract(named):
            if document.error:
                failed += 1
                print(
                    f"error: {printable(document.name)}: {printable(document.error)}",
                    file=sys.stderr,
                )
                continue
            read += 1
            links += table.num_rows
            if table.num_rows:
                writer.write_table(table)
    tmp.replace(out)
    print(f"{links} links from {read} documents -> {printable(str(out))}")
    return EXIT_FAILED if failed else EXIT_OK


def _run_parameters(args: argparse.Namespace) -> RunParameters:
    from pydantic import ValidationError

    from pipeline.parameters import ALL_RESOLVERS, RunParameters

    try:
        params = RunParameters(
            documents=args.paths or [DEFAULT_SEEDS_DIR.as_posix()],
            sources=_sources_file(args),
            backfill=args.backfill,
            out_dir=args.out,
            raw_dir=args.raw,
            refresh=(
                RefreshPolicy.OFFLINE
                if args.offline
                else RefreshPolicy.REFRESH
                if args.refresh
                else RefreshPolicy.TTL
            ),
            resolvers=args.resolvers or list(ALL_RESOLVERS),
            limit=args.limit,
            snapshot_date=args.date,
            deadline_minutes=args.deadline_minutes,
            sandbox_faults=args.faults or "",
            dry_run=args.dry_run,
            sandbox=args.sandbox,
            workers=args.workers,
        )
    except ValidationError as exc:
        problems = "; ".join(_problem(error) for error in exc.errors())
        raise UsageError(problems) from None
    _check_documents(params.documents)
    _output_location(params.resolved_out_dir, "--out")
    _output_location(params.resolved_raw_dir, "--raw")
    return params


def _sources_file(args: argparse.Namespace, *, nightly: bool = False) -> str | None:
    """`--sources FILE`. Without documents, the sources file of the working directory is
    read by a sandbox run (the demo shows live lists) and by the nightly deployment
    (`nightly`); `pipeline run` alone keeps reading raw/seeds/."""
    if args.sources is not None:
        if args.paths:
            raise UsageError(
                f"--sources {args.sources} and PATH {' '.join(args.paths)}: the sources file"
                " names every list a night reads; give one or the other"
            )
        if not args.sources.is_file():
            raise UsageError(f"no such sources file: {args.sources}")
        return str(args.sources.resolve().as_posix())
    wanted = nightly or getattr(args, "sandbox", False)
    if wanted and not args.paths and DEFAULT_SOURCES_FILE.is_file():
        return (
            DEFAULT_SOURCES_FILE.resolve().as_posix()
            if nightly
            else DEFAULT_SOURCES_FILE.as_posix()
        )
    return None


def _check_documents(documents: Sequence[str]) -> None:
    """Local documents must exist; GitHub ones are checked by their syntax alone."""
    from pipeline.sources.spec import is_github

    for path in documents:
        if not is_github(path) and not Path(path).exists():
            raise UsageError(f"no such document or folder: {path}")


def _problem(error: Mapping[str, Any]) -> str:
    """One validation problem: where (when it has a place) and what, without pydantic's
    "Value error, " prefix."""
    where = ".".join(str(part) for part in error.get("loc", ()))
    what = str(error.get("msg", "")).removeprefix("Value error, ")
    return f"{where}: {what}" if where else what


def _cmd_run(args: argparse.Namespace) -> int:
    params = _run_parameters(args)
    if args.prefect or os.environ.get("PREFECT_API_URL"):
        summary = _run_with_prefect(params)
    else:
        summary = _run_directly(params)
    from pipeline.report import short_summary

    print(short_summary(summary))
    if summary.status == "failed":
        return EXIT_FAILED
    if summary.status == "partial":
        return EXIT_PARTIAL
    return EXIT_OK


def _run_directly(params: RunParameters) -> RunSummary:
    """The night in this process, no Prefect: starts at once, nothing to outlive it."""
    from pipeline.night import run_night

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s | %(levelname)-7s | %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )

    return run_night(params).summary


def _run_with_prefect(params: RunParameters) -> RunSummary:
    """The night as a Prefect flow run: reported to PREFECT_API_URL, or to a temporary
    server started for this run. The lock is checked before Prefect starts, so a second
    run is refused at once."""
    from pipeline.snapshot.store import snapshot_lock

    if not params.dry_run:
        with snapshot_lock(params.resolved_out_dir, "lock-check"):
            pass
    from pipeline.prefect_server import quiet_prefect_environment

    quiet_prefect_environment()
    with contextlib.ExitStack() as stack:
        if not os.environ.get("PREFECT_API_URL"):
            from prefect.settings import PREFECT_API_URL, temporary_settings

            from pipeline.prefect_server import temporary_server

            url = stack.enter_context(temporary_server())
            stack.enter_context(temporary_settings(updates={PREFECT_API_URL: url}))
        from pipeline.flow import run_once

        summary, state = run_once(params)
        _drain_prefect_clients()
        if state.is_failed() or state.is_crashed():
            try:
                state.result()
            except Exception as exc:
                raise RunFailed(exc, summary) from exc
        if summary is None:
            raise RunFailed(RuntimeError(f"the flow run ended {state.type.value}"), None)
        return summary


def _drain_prefect_clients() -> None:
    """Send the logs and events still queued while the server is there to take them
    (the temporary server stops right after the run)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    EventsWorker.drain_all(timeout=5)


class RunFailed(Exception):
    """The run failed; `cause` says why, `summary` what it did before."""

    def __init__(self, cause: BaseException, summary: RunSummary | None) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.summary = summary


def _cmd_status(args: argparse.Namespace) -> int:
    from pipeline.snapshot.read import read_manifest

    out = _output_location(args.out, "--out")
    manifest = read_manifest(out)
    if manifest.empty:
        print(f"no snapshots under {printable(str(out))}")
        return EXIT_OK
    columns = [
        c
        for c in (
            "snapshot_date",
            "status",
            "run_id",
            "finished_at",
            "published",
            "links_rows",
            "papers_rows",
            "models_rows",
            "repos_rows",
            "status_reason",
        )
        if c in manifest.columns
    ]
    latest = manifest.sort_values("finished_at").tail(args.limit)
    print(latest[columns].to_string(index=False))
    return EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    from pipeline.report.nightly import write_report
    from pipeline.snapshot.store import SnapshotError

    out = _output_location(args.out, "--out")
    output = _output_file(args.output) if args.output else None
    try:
        written = write_report(out, args.date, output)
    except SnapshotError as exc:  # no such night: the arguments' fault, not a failure
        raise UsageError(str(exc)) from None
    print(f"report -> {printable(str(written))}")
    return EXIT_OK


def _cmd_serve(args: argparse.Namespace) -> int:
    from pipeline.deploy import serve
    from pipeline.objectstore import is_remote
    from pipeline.parameters import RunParameters
    from pipeline.prefect_server import quiet_prefect_environment
    from pipeline.sources.spec import is_github

    _check_documents(args.paths)
    documents = [p if is_github(p) else Path(p).resolve().as_posix() for p in args.paths]
    values: dict[str, object] = {"sandbox": args.sandbox, "backfill": args.backfill}
    if documents:
        values["documents"] = documents
    sources = _sources_file(args, nightly=True)
    if sources:
        values["sources"] = sources
    for given, field in ((args.out, "out_dir"), (args.raw, "raw_dir")):
        if given:
            where = _output_location(given, f"--{field.removesuffix('_dir')}")
            # Runs start in another working directory: a local folder is made absolute.
            values[field] = where if is_remote(where) else Path(where).resolve().as_posix()
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url:
        # Without a server the runs' schedule would live in a temporary one that stops
        # with this process: nothing would run at night.
        raise UsageError(
            "pipeline serve needs a Prefect server: start one (`prefect server start`) and set"
            " PREFECT_API_URL (e.g. http://127.0.0.1:4200/api)"
        )
    quiet_prefect_environment()
    try:
        serve(cron=args.cron, timezone=args.timezone, params=RunParameters.model_validate(values))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return EXIT_OK


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from pipeline.sandbox import Sandbox, faults_from_spec

    try:
        faults = faults_from_spec(args.faults or "")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    with Sandbox(latency_seconds=args.latency_ms / 1000, faults=faults) as sandbox:
        print("Loopback API double serving SAMPLE data. Point the pipeline at it with:")
        for name, value in sandbox.env().items():
            print(f"  export {name}={value}")
        print("Ctrl-C to stop.", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return EXIT_OK


WORKERS_ARGS = ("--workers",)
WORKERS_OPTIONS = {
    "type": int,
    "default": 1,
    "metavar": "N",
    "help": "extract the documents on N processes (default 1: in this process); with "
    "PIPELINE_DASK_ADDRESS set, on that Dask cluster",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipeline",
        description="Extract, resolve and snapshot what multimodal-LLM reading lists mention.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", help="show the traceback of an error, not one line"
    )
    # What a night reads and writes: `run` runs one, `serve` makes them its runs' defaults.
    night_inputs = argparse.ArgumentParser(add_help=False)
    night_inputs.add_argument(
        "--backfill",
        type=int,
        default=0,
        metavar="N",
        help="also read N earlier versions of each GitHub document, so that first_listed "
        "dates entries from their commit (default 0)",
    )
    night_inputs.add_argument(
        "--out",
        type=_location,
        metavar="DIR|URL",
        help="snapshot root: a folder or an fsspec URL such as s3://bucket/prefix "
        "(default: enriched/)",
    )
    night_inputs.add_argument(
        "--raw",
        type=_location,
        metavar="DIR|URL",
        help="raw-response store: a folder or an fsspec URL (default: raw/)",
    )
    night_inputs.add_argument(
        "--sandbox",
        action="store_true",
        help="use the loopback API double with sample data (default dirs: raw/sandbox/, "
        "enriched/sandbox/)",
    )

    extract = commands.add_parser(
        "extract",
        parents=[common],
        help="write the links table of markdown files or folders to one Parquet file",
    )
    extract.add_argument(
        "paths",
        nargs="*",
        type=Path,
        default=[DEFAULT_SEEDS_DIR],
        metavar="PATH",
        help="markdown documents or folders (default: raw/seeds/)",
    )
    extract.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        metavar="FILE.parquet",
        help="where to write the links table",
    )
    extract.add_argument(*WORKERS_ARGS, **WORKERS_OPTIONS)  # type: ignore[arg-type]
    extract.set_defaults(func=_cmd_extract)

    run = commands.add_parser(
        "run",
        parents=[common, night_inputs],
        help="run the whole pipeline once, in the foreground",
    )
    _documents_arguments(
        run,
        "markdown documents or folders, or files on GitHub: github:OWNER/REPO/PATH[@REF] or "
        "https://github.com/OWNER/REPO/blob/REF/PATH (default: raw/seeds/; with --sandbox: "
        "the lists of sources.toml)",
        "a sources file listing the reading lists by name (e.g. sources.toml), read instead "
        "of PATH (not with PATH; default with --sandbox and no PATH: sources.toml)",
    )
    policy = run.add_mutually_exclusive_group()
    policy.add_argument(
        "--offline", action="store_true", help="ask no API; answer from the raw store alone"
    )
    policy.add_argument(
        "--refresh", action="store_true", help="ask again about everything, ignoring time-to-live"
    )
    run.add_argument(
        "--date",
        type=date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="snapshot date (default: today, UTC)",
    )
    run.add_argument(
        "--resolvers",
        nargs="+",
        choices=["arxiv", "arxiv_titles", "hub", "paper_pages", "github_repos"],
        help="run only these lookups (default: all)",
    )
    run.add_argument("--limit", type=int, metavar="N", help="trial run: at most N entities each")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="read the documents and report what would be asked; ask and write nothing",
    )
    run.add_argument(
        "--faults",
        metavar="SPEC",
        help="with --sandbox: faults for the double to inject (see `pipeline sandbox --faults`)",
    )
    run.add_argument(
        "--deadline-minutes",
        type=float,
        metavar="N",
        help="how long the run may take, waits on rate limits and backoffs included (default 360)",
    )
    run.add_argument(
        "--prefect",
        action="store_true",
        help="run as a Prefect flow run (also when PREFECT_API_URL is set); without a server "
        "configured, a temporary one is started for the run",
    )
    run.add_argument(*WORKERS_ARGS, **WORKERS_OPTIONS)  # type: ignore[arg-type]
    run.set_defaults(func=_cmd_run)

    status = commands.add_parser(
        "status", parents=[common], help="print the latest snapshots from the manifest"
    )
    status.add_argument(
        "--out",
        type=_location,
        default=DEFAULT_OUT_DIR.as_posix(),
        metavar="DIR|URL",
        help="snapshot root: a folder or an fsspec URL (default: enriched/)",
    )
    status.add_argument("--limit", type=int, default=10, metavar="N", help="rows (default 10)")
    status.set_defaults(func=_cmd_status)

    report = commands.add_parser(
        "report",
        parents=[common],
        help="write the HTML report of a published night (rebuilds the nightly one)",
    )
    report.add_argument(
        "--date",
        type=date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="the snapshot's date (default: the latest published)",
    )
    report.add_argument(
        "--out",
        type=_location,
        default=DEFAULT_OUT_DIR.as_posix(),
        metavar="DIR|URL",
        help="snapshot root: a folder or an fsspec URL (default: enriched/)",
    )
    report.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE.html",
        help="where to write it (default: DIR/reports/YYYY-MM-DD.html)",
    )
    report.set_defaults(func=_cmd_report)

    serve = commands.add_parser(
        "serve",
        parents=[common, night_inputs],
        help="register the nightly deployment and run its scheduled and UI runs",
    )
    _documents_arguments(
        serve,
        "documents or folders the runs read, or files on GitHub (default: the lists of "
        "sources.toml in the folder serve runs in, else raw/seeds/)",
        "the sources file the runs read (not with PATH; default without PATH: sources.toml "
        "in the folder serve runs in, when there is one)",
    )
    serve.add_argument("--cron", default="0 3 * * *", help="cron schedule (default: 0 3 * * *)")
    serve.add_argument(
        "--timezone", default="UTC", help="IANA timezone of the schedule (default: UTC)"
    )
    serve.set_defaults(func=_cmd_serve)

    sandbox = commands.add_parser(
        "sandbox",
        parents=[common],
        help="serve the loopback API double (sample data) until interrupted",
    )
    sandbox.add_argument(
        "--latency-ms", type=float, default=0.0, help="added to every answer (default 0)"
    )
    sandbox.add_argument(
        "--faults",
        metavar="SPEC",
        help="faults to inject, e.g. arxiv:503:0.25,hub:quota:150,seed:7 (see README)",
    )
    sandbox.set_defaults(func=_cmd_sandbox)
    return parser


INTERRUPT_GRACE_SECONDS = 10.0
"""After Ctrl-C, how long the run may take to record itself as interrupted and let go
of the lock before the process ends regardless."""
EXIT_INTERRUPTED = 130


def _interrupted() -> None:
    print("error: interrupted; published nights are intact", file=sys.stderr, flush=True)
    # Resolver threads may be mid-request; they hold nothing that outlives the process
    # (the lock is a file lock, raw answers are written atomically), so end now rather
    # than wait for them.
    os._exit(EXIT_INTERRUPTED)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """First Ctrl-C (or SIGTERM): unwind the run, bounded by a grace period; second: end."""
    if getattr(_on_signal, "armed", False):
        _interrupted()
    _on_signal.armed = True  # type: ignore[attr-defined]
    timer = threading.Timer(INTERRUPT_GRACE_SECONDS, _interrupted)
    timer.daemon = True
    timer.start()
    raise KeyboardInterrupt


def _exit_code(exc: BaseException) -> int:
    from pipeline.snapshot.store import SnapshotLockedError

    if isinstance(exc, RunFailed):
        return _exit_code(exc.cause)
    if isinstance(exc, UsageError):
        return EXIT_USAGE
    if isinstance(exc, SnapshotLockedError):
        return EXIT_LOCKED
    return EXIT_FAILED


def _describe(exc: BaseException) -> str:
    cause = exc.cause if isinstance(exc, RunFailed) else exc
    from pipeline.snapshot.store import SnapshotError

    known = isinstance(cause, UsageError | SnapshotError | OSError) or type(
        cause
    ).__module__.startswith("pipeline")
    text = str(cause) if known and str(cause) else f"{type(cause).__name__}: {cause}"
    return printable(" ".join(text.split()))[:ERROR_MAX_CHARS]


ERROR_MAX_CHARS = 500
"""An error is one line, however large the message it carries."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run" and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        _interrupted()
        raise  # unreachable: _interrupted ends the process
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        summary = exc.summary if isinstance(exc, RunFailed) else None
        if summary is not None:
            from pipeline.report import short_summary

            print(short_summary(summary))
        hint = "" if args.debug else " (--debug shows the traceback)"
        code = _exit_code(exc)
        print(f"error: {_describe(exc)}" + (hint if code == EXIT_FAILED else ""), file=sys.stderr)
    return code
