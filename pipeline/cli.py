"""The `pipeline` command.

Every subcommand is documented in the README (a test fails when one is not).
Exit codes: 0 success, 1 the run failed, 2 bad usage or input, 3 the run published a
snapshot in which some entities could not be resolved (partial), 4 another run holds
the snapshot lock.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from pipeline.config import DEFAULT_OUT_DIR, DEFAULT_SEEDS_DIR, RefreshPolicy, __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL, EXIT_LOCKED = 0, 1, 2, 3, 4


def _cmd_extract(args: argparse.Namespace) -> int:
    import pyarrow.parquet as pq

    from pipeline.links.documents import extract_links
    from pipeline.snapshot.build import links_table

    try:
        extraction = extract_links(args.paths)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for doc in extraction.errors:
        print(f"error: {doc.name}: {doc.error}", file=sys.stderr)
    out: Path = args.output
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    pq.write_table(links_table(extraction.links), tmp)
    tmp.replace(out)
    read = len(extraction.documents) - len(extraction.errors)
    print(f"{len(extraction.links)} links from {read} documents -> {out}")
    return EXIT_FAILED if extraction.errors else EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from pipeline.parameters import ALL_RESOLVERS, RunParameters

    try:
        params = RunParameters(
            documents=[p.as_posix() for p in args.paths] or [DEFAULT_SEEDS_DIR.as_posix()],
            out_dir=args.out.as_posix() if args.out else None,
            raw_dir=args.raw.as_posix() if args.raw else None,
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
            dry_run=args.dry_run,
            sandbox=args.sandbox,
        )
    except ValidationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for path in params.documents:
        if not Path(path).exists():
            print(f"error: no such document or folder: {path}", file=sys.stderr)
            return EXIT_USAGE

    from pipeline.flow import run_once
    from pipeline.report import short_summary
    from pipeline.snapshot.store import SnapshotLockedError

    summary, state = run_once(params)
    if summary is not None:
        print(short_summary(summary))
    if state.is_failed() or state.is_crashed():
        try:
            state.result()
        except SnapshotLockedError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_LOCKED
        except Exception as exc:
            print(f"error: the run failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if summary is not None and summary.status == "partial":
        return EXIT_PARTIAL
    return EXIT_OK


def _cmd_status(args: argparse.Namespace) -> int:
    from pipeline.snapshot.read import read_manifest

    manifest = read_manifest(args.out)
    if manifest.empty:
        print(f"no snapshots under {args.out}")
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


def _cmd_serve(args: argparse.Namespace) -> int:
    from pipeline.deploy import serve

    try:
        serve(cron=args.cron, timezone=args.timezone)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from pipeline.sandbox import Sandbox

    with Sandbox(latency_seconds=args.latency_ms / 1000) as sandbox:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipeline",
        description="Extract, resolve and snapshot what multimodal-LLM reading lists mention.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    extract = commands.add_parser(
        "extract", help="write the links table of markdown files or folders to one Parquet file"
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
    extract.set_defaults(func=_cmd_extract)

    run = commands.add_parser("run", help="run the whole pipeline once, in the foreground")
    run.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="markdown documents or folders (default: raw/seeds/)",
    )
    run.add_argument("--out", type=Path, metavar="DIR", help="snapshot root (default: enriched/)")
    run.add_argument("--raw", type=Path, metavar="DIR", help="raw-response store (default: raw/)")
    run.add_argument(
        "--sandbox",
        action="store_true",
        help="use the loopback API double with sample data (default dirs: raw/sandbox/, "
        "enriched/sandbox/)",
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
        choices=["arxiv", "arxiv_titles", "hub", "paper_pages"],
        help="run only these lookups (default: all)",
    )
    run.add_argument("--limit", type=int, metavar="N", help="trial run: at most N entities each")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="read the documents and report what would be asked; ask and write nothing",
    )
    run.set_defaults(func=_cmd_run)

    status = commands.add_parser("status", help="print the latest snapshots from the manifest")
    status.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT_DIR,
        metavar="DIR",
        help="snapshot root (default: enriched/)",
    )
    status.add_argument("--limit", type=int, default=10, metavar="N", help="rows (default 10)")
    status.set_defaults(func=_cmd_status)

    serve = commands.add_parser(
        "serve", help="register the nightly deployment and run its scheduled and UI runs"
    )
    serve.add_argument("--cron", default="0 3 * * *", help="cron schedule (default: 0 3 * * *)")
    serve.add_argument(
        "--timezone", default="UTC", help="IANA timezone of the schedule (default: UTC)"
    )
    serve.set_defaults(func=_cmd_serve)

    sandbox = commands.add_parser(
        "sandbox", help="serve the loopback API double (sample data) until interrupted"
    )
    sandbox.add_argument(
        "--latency-ms", type=float, default=0.0, help="added to every answer (default 0)"
    )
    sandbox.set_defaults(func=_cmd_sandbox)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code
