"""Which documents a night reads, and what the sources stage hands the links stage: local
files by path, GitHub files as tonight's bytes written to a scratch folder, and for the
`documents` table where each came from."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from pipeline.links.documents import discover_documents, link_for, read_document
from pipeline.links.extract import DocumentError, decode_document, extract_document
from pipeline.records import Document, DocumentSource
from pipeline.snapshot.first_listed import Listing, listed_since
from pipeline.snapshot.listings import document_title
from pipeline.sources.fetch import FetchedDocument
from pipeline.sources.spec import GithubSource, SourceError, parse_document, read_sources_file


@dataclass
class Inputs:
    """A night's documents: local (name, path) and GitHub (name, source)."""

    local: list[tuple[str, Path]] = field(default_factory=list)
    remote: list[tuple[str, GithubSource]] = field(default_factory=list)


def inputs_of(documents: Sequence[str], sources_file: str | None = None) -> Inputs:
    """The documents of a run: the sources file's lists when one is given, else the
    document arguments (paths, `github:` specs, github.com URLs). `SourceError` or
    `FileNotFoundError` naming what is wrong."""
    inputs = Inputs()
    if sources_file is not None:
        for entry in read_sources_file(Path(sources_file)):
            if isinstance(entry.location, GithubSource):
                inputs.remote.append((entry.name or entry.location.default_name, entry.location))
            elif entry.location.is_dir():
                inputs.local.extend(discover_documents([entry.location]))
            elif entry.location.exists() or entry.location.is_symlink():
                inputs.local.append((entry.name or entry.location.name, entry.location))
            else:
                raise SourceError(f"sources file {sources_file}: no such file {entry.location}")
    else:
        paths: list[Path] = []
        for text in documents:
            location = parse_document(text)
            if isinstance(location, GithubSource):
                inputs.remote.append((location.default_name, location))
            else:
                paths.append(location)
        if paths:
            inputs.local = discover_documents(paths)
    names = [name for name, _ in inputs.local] + [name for name, _ in inputs.remote]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise SourceError(f"two documents named {', '.join(twice)}: name them apart")
    return inputs


def materialise(
    fetched: Iterable[FetchedDocument], folder: Path
) -> tuple[list[tuple[str, Path]], list[Document]]:
    """GitHub documents with bytes, as files the links stage reads (`folder` is scratch,
    named by content); those without any version, as unreadable documents."""
    named: list[tuple[str, Path]] = []
    unreadable: list[Document] = []
    for document in fetched:
        if document.data is None:
            reason = document.status_reason or "not fetched"
            unreadable.append(Document(document.name, Path(document.source.url), error=reason))
            continue
        path = folder / hashlib.sha256(document.data).hexdigest()
        path.write_bytes(document.data)
        named.append((document.name, path))
    return named, unreadable


def document_sources(
    named: Sequence[tuple[str, Path]], fetched: Iterable[FetchedDocument]
) -> dict[str, DocumentSource]:
    """Where each document came from and its title, for the `documents` table."""
    remote = {document.name: document for document in fetched}
    sources: dict[str, DocumentSource] = {}
    for name, path in named:
        title = _title(path, name)
        found = remote.get(name)
        if found is None:
            sources[name] = DocumentSource(name, title=title)
            continue
        sources[name] = _remote_source(found, title)
    for name, found in remote.items():
        sources.setdefault(name, _remote_source(found, None))
    return sources


def _remote_source(found: FetchedDocument, title: str | None) -> DocumentSource:
    source = found.source
    return DocumentSource(
        found.name,
        status=found.status,
        status_reason=found.status_reason,
        source_url=source.url,
        ref=source.ref,
        commit_sha=found.commit_sha,
        committed_at=found.committed_at,
        fetched_at=found.fetched_at,
        title=title,
    )


def _title(path: Path, name: str) -> str | None:
    try:
        return document_title(decode_document(read_document(path, name), name))
    except DocumentError:
        return None


def _entities(data: bytes, name: str) -> set[str]:
    try:
        occurrences = list(extract_document(decode_document(data, name), name))
    except DocumentError:
        return set()
    found: set[str] = set()
    for occurrence in occurrences:
        identity = link_for(occurrence).identity
        if identity.entity_id is not None:  # as the links table keys first_listed
            found.add(identity.entity_id)
    return found


def backfill_facts(fetched: Iterable[FetchedDocument]) -> dict[Listing, date]:
    """(document, entity) -> the commit date since which the document's history lists it
    without a break (`--backfill`): tonight's version and the past ones fetched."""
    facts: dict[Listing, date] = {}
    for document in fetched:
        if not document.history or document.data is None or document.committed_at is None:
            continue
        versions = [(document.committed_at.date(), _entities(document.data, document.name))]
        versions += [
            (past.committed_at.date(), _entities(past.data, document.name))
            for past in document.history
        ]
        for entity, since in listed_since(versions).items():
            facts[(document.name, entity)] = since
    return facts
