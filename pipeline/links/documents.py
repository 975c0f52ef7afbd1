"""The links stage: documents in, one typed `Link` per occurrence out.

It joins extraction (where a link stands and what surrounds it) with identification
(what it points at), names the documents, and records per-document failures without
stopping the others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.links.extract import DocumentError, Occurrence, extract_document, read_document
from pipeline.links.identify import HUB_REPO_TYPES, Identity, identify
from pipeline.records import Document, RepoType, ResolvedBy

DOCUMENT_SUFFIXES = (".md", ".markdown", ".mdown", ".mkd", ".txt")
"""What a folder scan reads; the seeds are markdown saved as `.txt`."""


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
    """
    found: dict[str, Path] = {}
    for root in paths:
        root = Path(root)
        if root.is_dir():
            candidates = [
                (p.relative_to(root).as_posix(), p)
                for p in sorted(root.rglob("*"))
                if p.is_file()
                and p.suffix.lower() in DOCUMENT_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(root).parts)
            ]
        elif root.exists():
            candidates = [(root.name, root)]
        else:
            raise FileNotFoundError(f"no such document or folder: {root}")
        for name, path in candidates:
            if name in found and found[name].resolve() != path.resolve():
                name = path.as_posix()  # two inputs with one name: fall back to the path given
            found[name] = path
    return sorted(found.items())


def link_for(occurrence: Occurrence) -> Link:
    """Identify one occurrence; arXiv links lead to their paper by ID."""
    identity = identify(occurrence.url)
    if identity.kind in ("arxiv", "arxiv_mention") and identity.valid and identity.entity_id:
        return Link(occurrence, identity, identity.entity_id, "id")
    return Link(occurrence, identity)


def extract_document_links(name: str, path: Path) -> tuple[Document, list[Link]]:
    """Links of one document; a document that cannot be read yields its error, no links."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return Document(name, path, error=f"cannot read: {exc.strerror or exc}"), []
    digest = hashlib.sha256(data).hexdigest()
    try:
        text = read_document(path, name)
        links = [link_for(occurrence) for occurrence in extract_document(text, name)]
    except DocumentError as exc:
        return Document(name, path, digest, len(data), error=exc.reason), []
    return Document(name, path, digest, len(data), links=len(links)), links


def extract_links(paths: Sequence[Path]) -> Extraction:
    """Links of every document; a document that cannot be read is reported, not fatal."""
    result = Extraction()
    for name, path in discover_documents(paths):
        document, links = extract_document_links(name, path)
        result.documents.append(document)
        result.links.extend(links)
    return result


@dataclass(frozen=True, slots=True)
class Entities:
    """The distinct things a set of links asks the resolvers about, each in sorted order."""

    arxiv_ids: list[str]
    """Valid arXiv IDs without version (links and mentions)."""
    hub_repos: list[tuple[RepoType, str]]
    """(repo type, repo ID as written) of valid Hub repo links."""


def entities_of(links: Iterable[Link]) -> Entities:
    """What the resolvers are to be asked about; invalid identifiers are never included."""
    arxiv_ids: set[str] = set()
    hub_repos: set[tuple[RepoType, str]] = set()
    for link in links:
        ident = link.identity
        if not ident.valid or ident.entity_id is None:
            continue
        if ident.kind in ("arxiv", "arxiv_mention"):
            arxiv_ids.add(ident.entity_id)
        elif ident.kind in HUB_REPO_TYPES:
            hub_repos.add((HUB_REPO_TYPES[ident.kind], ident.entity_id))
    return Entities(sorted(arxiv_ids), sorted(hub_repos))
