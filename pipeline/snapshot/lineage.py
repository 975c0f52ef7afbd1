"""Lineage: where in the reading lists each entity is named. Pure.

For every paper, Hub repo and GitHub repo the links name: the documents that link to it,
the heading paths it is linked under (joined by ` > `), and how many links lead to it.

Built in one pass over the links' columns, a record batch at a time, as integer codes:
each document, heading and entity gets a number the first time it is seen, and a batch
leaves only its distinct (entity, document) and (entity, heading) pairs. At 1 GB of lists
those pairs number in the millions; as Python lists of names per entity they were most of
a night's memory, as pairs of 4-byte codes they are a few tens of MB. The columns come out
as lists of dictionary-encoded strings sharing one dictionary (the schema's
`list<dictionary<int32, string>>`), each list sorted by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.links.identify import HUB_REPO_TYPES
from pipeline.snapshot.schemas import REPEATED_TEXT

EntityKey = tuple[str, str]
"""(entity type, entity ID): `paper`, a Hub repo type (`model`, `dataset`, `space`,
`collection`) or `github_repo`, and the ID as the tables key it."""

HEADING_SEPARATOR = " > "
ARXIV_KINDS = frozenset({"arxiv", "arxiv_mention"})
"""The link kinds whose entity is a paper."""

COMPACT_ROWS = 2_000_000
"""Partial pairs kept before they are merged (distinct again): bounds the partials of a
large night without merging after every batch."""

_LINEAGE_LIST = pa.list_(REPEATED_TEXT)

COLUMNS = (
    "document",
    "heading_path",
    "kind",
    "entity_id",
    "id_valid",
    "resolved_arxiv_id",
    "resolved_by",
)
"""The links columns `LineageBuilder.add` reads."""


class _Codes:
    """Text -> a number, in order of first sight."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}

    def of(self, column: pa.Array | pa.ChunkedArray) -> pa.Array:
        """The codes of a column of strings (dictionary-encoded or not); null stays null."""
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        if not pa.types.is_dictionary(column.type):
            column = pc.dictionary_encode(column)
        codes = self.codes
        mapped = pa.array(
            [codes.setdefault(value, len(codes)) for value in column.dictionary.to_pylist()],
            pa.int32(),
        )
        return pc.take(mapped, column.indices)

    def names(self) -> pa.Array:
        return pa.array(list(self.codes), pa.string())


class _Pairs:
    """Distinct (entity code, value code) pairs, each one int64 (entity in the high 32
    bits): sorting and deduplicating plain integers in place costs 8 bytes a pair, where
    a hash group-by over two columns costs several times that. At 1 GB of lists there are
    millions of pairs, so every step below works in place where numpy lets it."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.rows = 0
        self._merged_rows = 0

    def add(self, entity: pa.Array, value: pa.Array) -> None:
        valid = pc.is_valid(value)
        keys = entity.filter(valid).to_numpy().astype(np.int64)
        keys <<= 32
        keys |= value.filter(valid).to_numpy()
        self.parts.append(_distinct(keys))
        self.rows += len(self.parts[-1])
        if self.rows - self._merged_rows > COMPACT_ROWS:
            self.parts = [self._all()]
            self.rows = self._merged_rows = len(self.parts[0])

    def _all(self) -> np.ndarray:
        """Every pair, distinct and sorted; the parts are let go as they are copied."""
        keys = np.empty(sum(len(part) for part in self.parts), dtype=np.int64)
        at = 0
        while self.parts:
            part = self.parts.pop(0)
            keys[at : at + len(part)] = part
            at += len(part)
        return _distinct(keys)

    def merged(self, remap: np.ndarray, rank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(entities, value ranks): every pair with its entity moved to the code `remap`
        gives it and its value replaced by its rank in name order, distinct and sorted."""
        keys = self._all()
        self.rows = self._merged_rows = 0
        entity = keys >> 32
        np.take(remap, entity, out=entity, mode="clip")
        keys &= 0xFFFFFFFF
        np.take(rank, keys, out=keys, mode="clip")
        entity <<= 32
        entity |= keys
        del keys
        entity = _distinct(entity)
        return entity >> 32, entity & 0xFFFFFFFF


def _distinct(keys: np.ndarray) -> np.ndarray:
    """`keys` sorted (in place) without repeats."""
    if len(keys) < 2:
        return keys
    keys.sort()
    keep = np.empty(len(keys), dtype=bool)
    keep[0] = True
    np.not_equal(keys[1:], keys[:-1], out=keep[1:])
    return keys[keep]


class LineageBuilder:
    """Lineage gathered a batch of links at a time (`add`), then made (`finish`)."""

    def __init__(self) -> None:
        self._entities = _Codes()
        self._documents = _Codes()
        self._headings = _Codes()
        self._pairs_documents = _Pairs()
        self._pairs_headings = _Pairs()
        self._mentions = np.zeros(0, dtype=np.int64)

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        """One batch of the links table (schema `LINKS_SCHEMA`)."""
        documents: pa.Array | None = None
        headings: pa.Array | None = None
        for types, ids in _named(batch):
            named = pc.is_valid(ids)
            if not pc.any(named).as_py():
                continue
            if documents is None or headings is None:
                documents = self._documents.of(batch.column("document"))
                headings = self._headings.of(_heading(batch))
            keys = pc.binary_join_element_wise(types.filter(named), ids.filter(named), "\x00")
            entity = self._entities.of(keys)
            counts = np.bincount(entity.to_numpy(), minlength=len(self._entities.codes))
            self._mentions = np.pad(self._mentions, (0, len(counts) - len(self._mentions)))
            self._mentions += counts
            self._pairs_documents.add(entity, documents.filter(named))
            self._pairs_headings.add(entity, headings.filter(named))

    def finish(self, same_entity: Mapping[EntityKey, EntityKey] | None = None) -> Lineage:
        """The lineage; `same_entity` names entities that are one (a Hub repo written
        under an old name or another case: its canonical key), whose lineages merge."""
        codes = self._entities.codes
        remap = list(range(len(codes)))
        for written, canonical in (same_entity or {}).items():
            code = codes.get(_joined(written))
            if code is None or written == canonical:
                continue
            target = codes.setdefault(_joined(canonical), len(codes))
            if target == len(remap):
                remap.append(target)
            remap[code] = target
        moved = np.array(remap, dtype=np.int64)
        size = len(codes)
        mentions = np.zeros(size + 1, dtype=np.int64)
        np.add.at(mentions, moved[: len(self._mentions)], self._mentions)
        lists = []
        for pairs, names in (
            (self._pairs_documents, self._documents.names()),
            (self._pairs_headings, self._headings.names()),
        ):
            rank, in_order = _order(names)
            lists.append(_lists(pairs.merged(moved, rank), size, in_order))
        return Lineage(codes, moved == np.arange(size), lists[0], pa.array(mentions), lists[1])


def _joined(key: EntityKey) -> str:
    """An entity key as `_Codes` holds it (one string: a night has 100,000s of them)."""
    return f"{key[0]}\x00{key[1]}"


def papers_named(rows: pa.RecordBatch | pa.Table) -> tuple[pa.Array, pa.Array]:
    """Per link, the paper it leads to and how (`id`, or the title match's `resolved_by`):
    the paper a title led to, else an arXiv link's own ID; null for neither."""
    kinds = _plain(rows.column("kind"))
    entity_ids = _plain(rows.column("entity_id"))
    resolved = _plain(rows.column("resolved_arxiv_id"))
    by_title = pc.fill_null(pc.not_equal(resolved, ""), False)
    arxiv = pc.and_(
        pc.is_in(kinds, value_set=pa.array(sorted(ARXIV_KINDS))), pc.not_equal(entity_ids, "")
    )
    written = pc.if_else(pc.fill_null(arxiv, False), entity_ids, None)
    how = pc.fill_null(_plain(rows.column("resolved_by")), "id")
    return pc.if_else(by_title, resolved, written), pc.if_else(by_title, how, "id")


def github_repos_named(rows: pa.RecordBatch | pa.Table) -> pa.Array:
    """Per link, the GitHub repo it names; null for none. Only a name that keeps GitHub's
    rules is a repo (`github.com/../../etc/passwd` stays a row of `links`)."""
    kinds = _plain(rows.column("kind"))
    entity_ids = _plain(rows.column("entity_id"))
    github = pc.and_(
        pc.and_(pc.equal(kinds, "github_repo"), _plain(rows.column("id_valid"))),
        pc.not_equal(entity_ids, ""),
    )
    return pc.if_else(pc.fill_null(github, False), entity_ids, None)


def hub_repos_named(rows: pa.RecordBatch | pa.Table) -> tuple[pa.Array, pa.Array]:
    """Per link, (the Hub repo type, the ID as written) it names; nulls for none."""
    kinds = _plain(rows.column("kind"))
    repo_types = pc.take(
        pa.array(list(HUB_REPO_TYPES.values()), pa.string()),
        pc.index_in(kinds, value_set=pa.array(list(HUB_REPO_TYPES), pa.string())),
    )
    entity_ids = _plain(rows.column("entity_id"))
    return repo_types, pc.if_else(pc.is_valid(repo_types), entity_ids, None)


def _plain(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One array, strings decoded: what the compute kernels above compare."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return column


def _named(batch: pa.RecordBatch | pa.Table) -> Iterable[tuple[pa.Array, pa.Array]]:
    """(entity types, entity IDs) per family of entity a link can name, null where it
    names none; a link can name two (a Hub link whose text matched a paper's title)."""
    rows = len(batch)
    yield pa.repeat("paper", rows).cast(pa.string()), papers_named(batch)[0]
    yield hub_repos_named(batch)
    yield pa.repeat("github_repo", rows).cast(pa.string()), github_repos_named(batch)


def _heading(rows: pa.RecordBatch | pa.Table) -> pa.Array:
    """Each link's heading path joined by ` > `; null for a link under no heading."""
    paths = rows.column("heading_path")
    if isinstance(paths, pa.ChunkedArray):
        paths = paths.combine_chunks()
    paths = paths.cast(pa.list_(pa.string()))
    joined = pc.binary_join(paths, HEADING_SEPARATOR)
    return pc.if_else(
        pc.greater(pc.list_value_length(paths), 0), joined, pa.scalar(None, pa.string())
    )


def _order(names: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """(rank of each code in name order, the names in name order)."""
    order = pc.sort_indices(names).to_numpy()
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    return rank, names.take(pa.array(order))


def _lists(pairs: tuple[np.ndarray, np.ndarray], size: int, names: pa.Array) -> pa.ListArray:
    """Per entity code 0..size (the last: none, empty), its values in name order, as
    lists of dictionary-encoded strings over `names` (sorted: a value's code is its rank)."""
    entity, rank = pairs
    offsets = np.searchsorted(entity, np.arange(size + 2)).astype(np.int32)
    values = pa.DictionaryArray.from_arrays(pa.array(rank, pa.int32()), names)
    return pa.ListArray.from_arrays(pa.array(offsets), values, type=_LINEAGE_LIST)


class Lineage:
    """Every entity's lineage (`LineageBuilder`), taken by key for a table's rows."""

    def __init__(
        self,
        codes: dict[str, int],
        own: np.ndarray,
        documents: pa.ListArray,
        mentions: pa.Array,
        headings: pa.ListArray,
    ) -> None:
        self._codes = codes  # `_joined` key -> code
        self._own = own  # per code: False for a name merged into another entity
        self._documents = documents
        self._mentions = mentions
        self._headings = headings
        self._none = len(mentions) - 1

    @classmethod
    def of(
        cls,
        batches: Iterable[pa.RecordBatch],
        same_entity: Mapping[EntityKey, EntityKey] | None = None,
    ) -> Lineage:
        builder = LineageBuilder()
        for batch in batches:
            builder.add(batch)
        return builder.finish(same_entity)

    def ids(self, entity_type: str) -> list[str]:
        """The IDs of the entities of one type the links name, sorted."""
        prefix = f"{entity_type}\x00"
        return sorted(
            key[len(prefix) :]
            for key, code in self._codes.items()
            if key.startswith(prefix) and self._own[code]
        )

    def columns(self, keys: Iterable[EntityKey]) -> dict[str, pa.Array]:
        """`documents`, `mention_count` and `headings` for these entities, in order
        (empty lists and 0 for an entity no link names)."""
        at = pa.array([self._code(key) for key in keys], pa.int64())
        return {
            "documents": self._documents.take(at),
            "mention_count": self._mentions.take(at),
            "headings": self._headings.take(at),
        }

    def _code(self, key: EntityKey) -> int:
        code = self._codes.get(_joined(key))
        return self._none if code is None or not self._own[code] else code
