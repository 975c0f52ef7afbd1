"""The links stage: documents in, one typed `Link` per occurrence out.

It joins extraction (where a link stands and what surrounds it) with identification
(what it points at), names the documents, and records per-document failures without
stopping the others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow as pa

from pipeline.extract import DocumentError, Occurrence, extract_document, read_document
from pipeline.identify import HUB_REPO_TYPES, Identity, RepoType, identify
from pipeline.records import ResolvedBy
from pipeline.schemas import LINKS_SCHEMA

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


@dataclass(frozen=True, slots=True)
class Document:
    """One input document as the run saw it."""

    name: str
    path: Path
    sha256: str | None = None
    size_bytes: int | None = None
    links: int = 0
    error: str | None = None


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


def apply_title_matches(links: Iterable[Link], matches: Mapping[str, str]) -> list[Link]:
    """Links whose text resolved to a paper by title (`matches`: link text -> arXiv ID)
    lead to that paper; links that already lead to one by ID keep it."""
    out = []
    for link in links:
        arxiv_id = matches.get(link.occurrence.link_text)
        if link.resolved_arxiv_id is None and arxiv_id is not None:
            link = replace(link, resolved_arxiv_id=arxiv_id, resolved_by="title")
        out.append(link)
    return out


def links_table(links: Iterable[Link]) -> pa.Table:
    """The links table, in document order, with its declared schema."""
    columns: dict[str, list[object]] = {name: [] for name in LINKS_SCHEMA.names}
    in_order = True
    last: tuple[str, int] | None = None
    for link in links:
        occ, ident = link.occurrence, link.identity
        key = (occ.document, occ.position)
        in_order = in_order and (last is None or last < key)
        last = key
        row: dict[str, object] = {
            "document": occ.document,
            "position": occ.position,
            "line": occ.line,
            "heading_path": list(occ.heading_path),
            "item_date": occ.item_date,
            "link_text": occ.link_text,
            "annotation": occ.annotation,
            "is_main_link": occ.is_main_link,
            "syntax": occ.syntax,
            "url": occ.url,
            "url_normalized": ident.url_normalized,
            "host": ident.host,
            "kind": ident.kind,
            "entity_id": ident.entity_id,
            "arxiv_version": ident.arxiv_version,
            "asset_repo": ident.asset_repo,
            "id_valid": ident.valid,
            "id_problem": ident.problem,
            "resolved_arxiv_id": link.resolved_arxiv_id,
            "resolved_by": link.resolved_by,
        }
        for name in LINKS_SCHEMA.names:
            columns[name].append(row[name])
    table = pa.table(columns, schema=LINKS_SCHEMA)
    if in_order:
        # As extraction gives them. Sorting copies every column, and a document whose
        # links share one long paragraph holds its ~2 kB annotation once per link.
        return table
    return table.sort_by([("document", "ascending"), ("position", "ascending")])


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
