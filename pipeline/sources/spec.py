"""Where a document comes from: a local file or folder, or a file on GitHub.

A document argument (CLI `PATH`, the UI form's `documents`, `prefect.yaml`) is one of:

    raw/seeds/                                        a local folder or file
    github:OWNER/REPO/PATH[@REF]                      a file on GitHub (default branch
                                                      when REF is left out)
    https://github.com/OWNER/REPO/blob/REF/PATH       the same, as a browser shows it

A sources file (TOML, `sources.toml` at the top of the project) lists the reading lists,
each with a readable name, which becomes its `document` in the tables:

    [[list]]
    name = "PromptExpert: MLLM papers"
    source = "github:PromptExpert/blogs/docs/mllm/mllm_papers.md"
    seed = "raw/seeds/000_d178590c888f63f5.txt"   # optional: an older copy of it

Pure parsing: nothing here reads the network.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

GITHUB_PREFIX = "github:"
_OWNER = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})"
_REPO = r"[A-Za-z0-9._-]{1,100}"
_SPEC = re.compile(r"([^/@]+)/([^/@]+)/([^@]+?)(?:@([^@]+))?")
_REF = re.compile(r"[A-Za-z0-9._/-]{1,255}")


class SourceError(ValueError):
    """A document source that cannot be read as one; says which and why."""


@dataclass(frozen=True, slots=True)
class GithubSource:
    """A file in a GitHub repository, at a branch, tag or commit (None: the default branch)."""

    owner: str
    repo: str
    path: str
    ref: str | None = None

    @property
    def key(self) -> str:
        """How the raw store knows it: one key per file and ref."""
        return f"{self.owner}/{self.repo}/{self.path}@{self.ref or ''}"

    @property
    def url(self) -> str:
        """The file as a browser shows it on github.com (`HEAD`: the default branch). A
        `github:` spec names a github.com file (github.com URLs are what documents and
        sources files give); with Enterprise Server (`GITHUB_API_URL` elsewhere) the file
        is fetched from that server, and this address stays its github.com form."""
        return f"https://github.com/{self.owner}/{self.repo}/blob/{self.ref or 'HEAD'}/{self.path}"

    @property
    def default_name(self) -> str:
        """Its document name when no sources file names it."""
        return f"{self.owner}/{self.repo}/{self.path}" + (f"@{self.ref}" if self.ref else "")


@dataclass(frozen=True, slots=True)
class SourceEntry:
    """One reading list: its document name and where it comes from."""

    name: str | None
    """The readable name; None: named as a plain argument is (file name, or OWNER/REPO/PATH)."""
    location: GithubSource | Path
    seed: Path | None = None
    """A local copy (the sandbox serves it as the upstream file)."""


def is_github(text: str) -> bool:
    """Whether a document argument names a GitHub file rather than a local path."""
    return text.startswith(GITHUB_PREFIX) or text.startswith(
        ("https://github.com/", "http://github.com/")
    )


def parse_github(text: str) -> GithubSource:
    """A `github:` spec or a github.com blob URL; `SourceError` naming it otherwise."""
    if text.startswith(GITHUB_PREFIX):
        match = _SPEC.fullmatch(text[len(GITHUB_PREFIX) :])
        if match is None:
            raise SourceError(f"{text!r}: expected github:OWNER/REPO/PATH[@REF]")
        owner, repo, path, ref = match.groups()
        return _checked(text, owner, repo, path, ref)
    parts = urlsplit(text)
    if parts.netloc.lower() not in ("github.com", "www.github.com"):
        raise SourceError(f"{text!r}: not a github.com URL")
    segments = [unquote(s) for s in parts.path.strip("/").split("/")]
    if len(segments) < 5 or segments[2] != "blob":
        raise SourceError(f"{text!r}: expected https://github.com/OWNER/REPO/blob/REF/PATH")
    owner, repo, _, ref, *path = segments
    return _checked(text, owner, repo, "/".join(path), ref)


def _checked(text: str, owner: str, repo: str, path: str, ref: str | None) -> GithubSource:
    if not re.fullmatch(_OWNER, owner) or not re.fullmatch(_REPO, repo) or repo in (".", ".."):
        raise SourceError(f"{text!r}: {owner}/{repo} is not a GitHub repository name")
    segments = path.split("/")
    if not path or any(s in ("", ".", "..") for s in segments):
        raise SourceError(f"{text!r}: {path!r} is not a file path in a repository")
    if ref is not None and (not _REF.fullmatch(ref) or ".." in ref):
        raise SourceError(f"{text!r}: {ref!r} is not a branch, tag or commit")
    return GithubSource(owner, repo, path, ref)


def parse_document(text: str) -> GithubSource | Path:
    """A document argument: a GitHub file, or a local path (not checked here)."""
    return parse_github(text) if is_github(text) else Path(text)


def read_sources_file(path: Path) -> list[SourceEntry]:
    """The entries of a sources file, relative paths read from the file's folder;
    `SourceError` naming the file and the entry for anything amiss."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SourceError(f"cannot read the sources file {path}: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SourceError(f"sources file {path}: not TOML: {exc}") from exc
    lists = data.get("list")
    if not isinstance(lists, list) or not lists:
        raise SourceError(f"sources file {path}: no [[list]] entry")
    entries: list[SourceEntry] = []
    names: set[str] = set()
    for number, item in enumerate(lists, start=1):
        where = f"sources file {path}, list {number}"
        if not isinstance(item, dict):
            raise SourceError(f"{where}: not a table")
        unknown = set(item) - {"name", "source", "seed"}
        if unknown:
            raise SourceError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        name, source, seed = item.get("name"), item.get("source"), item.get("seed")
        if not isinstance(name, str) or not name.strip():
            raise SourceError(f"{where}: `name` must be a non-empty text")
        if name in names:
            raise SourceError(f"{where}: the name {name!r} is used twice")
        names.add(name)
        if not isinstance(source, str) or not source:
            raise SourceError(f"{where}: `source` must be a github: spec, URL or path")
        if seed is not None and not isinstance(seed, str):
            raise SourceError(f"{where}: `seed` must be a path")
        try:
            location = parse_document(source)
        except SourceError as exc:
            raise SourceError(f"{where}: {exc}") from None
        if isinstance(location, Path) and not location.is_absolute():
            location = path.parent / location
        entries.append(
            SourceEntry(name, location, path.parent / seed if seed is not None else None)
        )
    return entries
