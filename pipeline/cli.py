"""The `pipeline` command.

Every subcommand is documented in the README (a test fails when one is not).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.config import DEFAULT_SEEDS_DIR, __version__


def _cmd_extract(args: argparse.Namespace) -> int:
    from pipeline.links import extract_links, links_table

    try:
        extraction = extract_links(args.paths)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for doc in extraction.errors:
        print(f"error: {doc.name}: {doc.error}", file=sys.stderr)
    out: Path = args.output
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    pq.write_table(links_table(extraction.links), tmp)
    tmp.replace(out)
    read = len(extraction.documents) - len(extraction.errors)
    print(f"{len(extraction.links)} links from {read} documents -> {out}")
    return 1 if extraction.errors else 0


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
        "paths", nargs="*", type=Path, default=[DEFAULT_SEEDS_DIR], metavar="PATH",
        help="markdown documents or folders (default: raw/seeds/)",
    )
    extract.add_argument(
        "-o", "--output", type=Path, required=True, metavar="FILE.parquet",
        help="where to write the links table",
    )
    extract.set_defaults(func=_cmd_extract)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code
