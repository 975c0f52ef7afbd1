"""The links stage: documents in, one typed `Link` per occurrence out.

It joins extraction (where a link stands and what surrounds it) with identification
(what it points at), names the documents, and records per-document failures without
stopping the others. This module is the stage's edge with the disk: it lists folders
and reads files; extraction and identification are pure.

Document names come from the file system and may hold any character but `/` and NUL.
They stay data (table cells, manifest entries); wherever one is printed or logged it goes
through `printable`, so that a name cannot forge a log line or reorder a terminal's text.
"""

from __future__ import annotations

import errno
import hashlib
import heapq
import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pipeline.links.extract import DocumentError, Occurrence, decode_document, extract_document
from pipeline.links.identify import Identity, identify
from pipeline.records import Document, ResolvedBy

C = TypeVar("C")

DOCUMENT_SUFFIXES = (".md", ".markdown", ".mdown", ".mkd", ".txt")
"""What a folder scan reads; the seeds are markdown saved as `.txt`."""

_UNPRINTABLE = re.compile(
    r"[\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
"""What `printable` escapes: C0 and C1 controls and DEL, the bidirectional controls
(which reorder the text around them), line and paragraph separators, lone surrogates
(file names that are not UTF-8), and the backslash, so that the escaped form is
unambiguous."""
_SHORT_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    r"""`text` safe to print on one line: control characters escaped as Python writes them.

    A newline becomes the two characters `\n`, ESC `\x1b`, a right-to-left override
    `\u202e`, a backslash `\\`; everything else, non-ASCII letters included, stays.
    """
    return _UNPRINTABLE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    short = _SHORT_ESCAPES.get(char)
    if short is not None:
        return short
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


@dataclass(frozen=True, slots=True)
class Link:
    """One row of the links table."""

    occurrence: Occurrence
    identity: Identity
    resolved_arxiv_id: str | None = None
    """The paper this link leads to, by its URL or by its text (title resolution)."""
    resolved_by: ResolvedBy | None = None


@dataclass
class Extraction:
    """What the links stage produced for a set of documents."""

    links: list[Link] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)

    @property
    def errors(self) -> list[Document]:
        return [doc for doc in self.documents if doc.error is not None]


def discover_documents(paths: Sequence[Path]) -> list[tuple[str, Path]]:
    """(name, path) for every document under the given files and folders, sorted by name.

    A file given directly is named by its file name; a file found in a folder by its
    path relative to that folder, so names stay stable from night to night wherever
    the project is checked out. A path that does not exist is an error that names it.

    In a folder, every entry with a document suffix (`DOCUMENT_SUFFIXES`) is listed,
    hidden ones (a name starting with `.`, or in such a folder) aside. That includes what
    cannot be read: a dangling symlink, a symlink loop, a file without read permission, a
    pipe. Reading one yields its error (`read_document`), so the run names it and is
    partial instead of passing over it. A sub-folder that cannot be listed is listed
    itself, named with a final `/`. Symlinks to folders are followed, and every folder is
    read once: a folder in the tree under its own path, one outside it under the link to
    it whose name sorts first; a link back to a folder already read, such as an enclosing
    one, is not followed again, so loops end.
    """
    found: dict[str, Path] = {}
    for root in paths:
        root = Path(root)
        if root.is_dir():
            candidates = _folder_documents(root)
        elif root.exists() or root.is_symlink():
            candidates = [(root.name, root)]  # a dangling link given by name is read, and fails
        else:
            raise FileNotFoundError(f"no such document or folder: {root}")
        for name, path in candidates:
            if name in found and os.path.realpath(found[name]) != os.path.realpath(path):
                name = path.as_posix()  # two inputs with one name: fall back to the path given
            found[name] = path
    return sorted(found.items())


def _folder_documents(root: Path) -> list[tuple[str, Path]]:
    """(name relative to `root`, path) of the documents a folder holds (see above)."""
    found: list[tuple[str, Path]] = []
    read: set[tuple[int, int]] = set()
    linked: list[tuple[str, Path]] = []  # symlinked folders, a heap by name: read last

    def walk(prefix: str, top: Path) -> None:
        """`top` and its sub-folders, through no symlink (a stack: trees can be deep)."""
        pending = [(prefix, top)]
        while pending:
            prefix, folder = pending.pop()
            try:
                identity = _folder_identity(folder)
                if identity in read:
                    continue
                read.add(identity)
                with os.scandir(folder) as scan:
                    entries = sorted(scan, key=lambda entry: entry.name)
            except OSError:
                found.append((prefix or f"{root.as_posix()}/", folder))
                continue
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                name, path = prefix + entry.name, folder / entry.name
                if _is_folder(entry):
                    if entry.is_symlink():
                        heapq.heappush(linked, (name + "/", path))
                    else:
                        pending.append((name + "/", path))
                elif os.path.splitext(entry.name)[1].lower() in DOCUMENT_SUFFIXES:
                    found.append((name, path))

    walk("", root)
    while linked:
        walk(*heapq.heappop(linked))
    return found


def _folder_identity(folder: Path) -> tuple[int, int]:
    info = os.stat(folder)
    return info.st_dev, info.st_ino


def _is_folder(entry: os.DirEntry[str]) -> bool:
    """Whether an entry is a folder, through symlinks; a link that leads nowhere is not."""
    try:
        return entry.is_dir()
    except OSError:  # a symlink loop, or a target that cannot be looked at
        return False


def read_document(path: Path, document: str) -> bytes:
    """The bytes of one document; `DocumentError` naming why it cannot be read.

    Opened without blocking, so a pipe or a device with a document's name is refused,
    not waited on.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise DocumentError(document, _open_problem(path, exc)) from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise DocumentError(document, f"not a regular file ({_file_kind(mode)})")
        with open(fd, "rb", closefd=False) as handle:
            return handle.read()
    except OSError as exc:
        raise DocumentError(document, f"cannot read: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


def _open_problem(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if exc.errno == errno.ENOENT and os.path.islink(path):
        try:
            return f"dangling symlink -> {os.readlink(path)}"
        except OSError:
            pass  # gone meanwhile: say what open said
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = None
    if mode is not None and stat.S_ISDIR(mode):
        return f"cannot list folder: {exc.strerror or exc}"  # listed because it cannot be
    if mode is not None and not stat.S_ISREG(mode):
        return f"not a regular file ({_file_kind(mode)})"  # a socket: open says ENXIO
    return f"cannot read: {exc.strerror or exc}"


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return f"mode {stat.filemode(mode)}"


def link_for(occurrence: Occurrence) -> Link:
    """Identify one occurrence; arXiv links lead to their paper by ID."""
    identity = identify(occurrence.url)
    if identity.kind in ("arxiv", "arxiv_mention") and identity.valid and identity.entity_id:
        return Link(occurrence, identity, identity.entity_id, "id")
    return Link(occurrence, identity)


def extract_document_links(name: str, path: Path) -> tuple[Document, list[Link]]:
    """Links of one document; a document that cannot be read yields its error, no links."""
    return extract_document_into(name, path, _as_list, [])


def _as_list(links: Iterator[Link]) -> tuple[list[Link], int]:
    found = list(links)
    return found, len(found)


def extract_document_into(
    name: str, path: Path, collect: Callable[[Iterator[Link]], tuple[C, int]], empty: C
) -> tuple[Document, C]:
    """One document's links as `collect` gathers them while they are extracted (with how
    many there were): a worker makes record batches of them as they come, so a document
    of a million links is never a million Python objects at once. A document that cannot
    be read yields its error and `empty`."""
    try:
        data = read_document(path, name)
    except DocumentError as exc:
        return Document(name, path, error=exc.reason), empty
    digest, size = hashlib.sha256(data).hexdigest(), len(data)
    try:
        text = decode_document(data, name)
        del data  # the text is what is parsed: a large document need not be held twice
        collected, count = collect(
            link_for(occurrence) for occurrence in extract_document(text, name)
        )
    except DocumentError as exc:
        return Document(name, path, digest, size, error=exc.reason), empty
    return Document(name, path, digest, size, links=count), collected


def extract_links(paths: Sequence[Path]) -> Extraction:
    """Links of every document; a document that cannot be read is reported, not fatal."""
    result = Extraction()
    for name, path in discover_documents(paths):
        document, links = extract_document_links(name, path)
        result.documents.append(document)
        result.links.extend(links)
    return result
