"""The declared pyarrow schema of every Parquet table the pipeline writes.

One schema per table, declared once; `docs/data-contract.md` documents each column.
Bump `SCHEMA_VERSION` on any change to a column's name, type or meaning.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 3

TIMESTAMP = pa.timestamp("us", tz="UTC")
"""Every timestamp the pipeline writes: microseconds, timezone-aware UTC."""

_TEXTS = pa.list_(pa.string())

REPEATED_TEXT = pa.dictionary(pa.int32(), pa.string())
"""Text that repeats from row to row (a document's name, a list item's annotation shared
by its links, heading paths, kinds): each distinct value stored once per batch, the rows
holding 4-byte indices. Readers see strings (pandas: categories)."""


def _texts(name: str) -> pa.Field:
    """A list of strings that is never null (empty when there is nothing to list)."""
    return pa.field(name, _TEXTS, nullable=False)


def plain_type(kind: pa.DataType) -> pa.DataType:
    """`kind` with every dictionary replaced by its values' type: what a reader that
    ignores encodings sees."""
    if pa.types.is_dictionary(kind):
        return plain_type(kind.value_type)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return pa.list_(plain_type(kind.value_type))
    if pa.types.is_struct(kind):
        return pa.struct([field.with_type(plain_type(field.type)) for field in kind.fields])
    return kind


def _schema(table: str, fields: list[pa.Field]) -> pa.Schema:
    return pa.schema(fields, metadata={"table": table, "schema_version": str(SCHEMA_VERSION)})


LINKS_SCHEMA = pa.schema(
    [
        pa.field("document", REPEATED_TEXT, nullable=False),
        pa.field("position", pa.int32(), nullable=False),
        pa.field("line", pa.int32(), nullable=False),
        pa.field("heading_path", pa.list_(REPEATED_TEXT), nullable=False),
        pa.field("item_date", pa.string()),
        pa.field("link_text", pa.string(), nullable=False),
        pa.field("annotation", REPEATED_TEXT, nullable=False),
        pa.field("is_main_link", pa.bool_(), nullable=False),
        pa.field("syntax", REPEATED_TEXT, nullable=False),
        pa.field("url", pa.string(), nullable=False),
        pa.field("url_normalized", pa.string(), nullable=False),
        pa.field("host", REPEATED_TEXT),
        pa.field("kind", REPEATED_TEXT, nullable=False),
        pa.field("entity_id", pa.string()),
        pa.field("arxiv_version", pa.int32()),
        pa.field("asset_repo", pa.string()),
        pa.field("id_valid", pa.bool_(), nullable=False),
        pa.field("id_problem", pa.string()),
        pa.field("resolved_arxiv_id", pa.string()),
        pa.field("resolved_by", REPEATED_TEXT),
        pa.field("first_listed", pa.date32()),
    ],
    metadata={"table": "links"},
)

# Lineage: where in the reading lists an entity is mentioned, and since when. Its names
# repeat across entities (a thousand documents, tens of thousands of heading paths, for
# millions of entries at 1 GB of lists): as plain strings the papers' headings alone
# would be most of a large night's memory.
_LINEAGE = [
    pa.field("documents", pa.list_(REPEATED_TEXT), nullable=False),
    pa.field("mention_count", pa.int64(), nullable=False),
    pa.field("headings", pa.list_(REPEATED_TEXT), nullable=False),
    pa.field("first_seen", pa.date32(), nullable=False),
    pa.field("last_seen", pa.date32(), nullable=False),
]


def _status(prefix: str, fetched_at: str) -> list[pa.Field]:
    """The outcome of one lookup: its status, why, and when its data was fetched."""
    return [
        pa.field(f"{prefix}status", pa.string(), nullable=False),
        pa.field(f"{prefix}status_reason", pa.string()),
        pa.field(fetched_at, TIMESTAMP),
    ]


CODE_REPO_TYPE = pa.struct(
    [
        pa.field("url", pa.string(), nullable=False),
        pa.field("repo", pa.string()),
        pa.field("sources", pa.list_(pa.string()), nullable=False),
    ]
)
"""A paper's code: its URL, the GitHub `owner/name` when on GitHub, and where it came from."""

HF_MODEL_TYPE = pa.struct(
    [
        pa.field("repo_id", pa.string(), nullable=False),
        pa.field("params_total", pa.int64()),
        pa.field("size_label", pa.string()),
        pa.field("pipeline_tag", pa.string()),
        pa.field("downloads", pa.int64()),
    ]
)
"""One Hugging Face model that cites a paper (`papers.hf_models`)."""

PAPERS_SCHEMA = _schema(
    "papers",
    [
        pa.field("arxiv_id", pa.string(), nullable=False),
        pa.field("title", pa.string()),
        _texts("authors"),
        pa.field("author_affiliations", pa.list_(_TEXTS), nullable=False),
        pa.field("abstract", pa.string()),
        pa.field("published", TIMESTAMP),
        pa.field("updated", TIMESTAMP),
        pa.field("latest_version", pa.int32()),
        pa.field("primary_category", pa.string()),
        _texts("categories"),
        pa.field("doi", pa.string()),
        pa.field("journal_ref", pa.string()),
        pa.field("comment", pa.string()),
        pa.field("abs_url", pa.string()),
        pa.field("pdf_url", pa.string()),
        _texts("code_urls"),
        pa.field("resolved_by", pa.string()),
        _texts("title_queries"),
        pa.field("hf_models", pa.list_(HF_MODEL_TYPE), nullable=False),
        pa.field("hf_upvotes", pa.int64()),
        pa.field("hf_github_repo", pa.string()),
        pa.field("hf_github_stars", pa.int64()),
        pa.field("hf_project_page", pa.string()),
        pa.field("hf_num_models", pa.int64()),
        *_status("hf_page_", "hf_page_fetched_at"),
        _texts("github_repos"),
        pa.field("code_repos", pa.list_(CODE_REPO_TYPE), nullable=False),
        *_LINEAGE,
        *_status("", "data_fetched_at"),
    ],
)

PARAMS_BY_DTYPE_TYPE = pa.struct(
    [pa.field("dtype", pa.string(), nullable=False), pa.field("params", pa.int64())]
)

MODELS_SCHEMA = _schema(
    "models",
    [
        pa.field("repo_id", pa.string(), nullable=False),
        _texts("written_as"),
        pa.field("author", pa.string()),
        pa.field("params_total", pa.int64()),
        pa.field("params_by_dtype", pa.list_(PARAMS_BY_DTYPE_TYPE), nullable=False),
        pa.field("params_source", pa.string()),
        pa.field("size_label", pa.string()),
        pa.field("params_stored", pa.int64()),
        pa.field("base_model", pa.string()),
        pa.field("base_model_relation", pa.string()),
        pa.field("family", pa.string()),
        pa.field("downloads", pa.int64()),
        pa.field("likes", pa.int64()),
        pa.field("license", pa.string()),
        pa.field("pipeline_tag", pa.string()),
        pa.field("library_name", pa.string()),
        pa.field("gated", pa.string()),
        pa.field("private", pa.bool_()),
        pa.field("created_at", TIMESTAMP),
        pa.field("last_modified", TIMESTAMP),
        _texts("tags"),
        _texts("arxiv_ids"),
        _texts("collections"),
        *_LINEAGE,
        *_status("", "data_fetched_at"),
    ],
)

COLLECTION_ITEM_TYPE = pa.struct(
    [pa.field("item_type", pa.string(), nullable=False), pa.field("item_id", pa.string())]
)

REPOS_SCHEMA = _schema(
    "repos",
    [
        pa.field("repo_type", pa.string(), nullable=False),
        pa.field("repo_id", pa.string(), nullable=False),
        _texts("written_as"),
        pa.field("title", pa.string()),
        pa.field("author", pa.string()),
        pa.field("downloads", pa.int64()),
        pa.field("likes", pa.int64()),
        pa.field("license", pa.string()),
        pa.field("gated", pa.string()),
        pa.field("private", pa.bool_()),
        pa.field("sdk", pa.string()),
        pa.field("created_at", TIMESTAMP),
        pa.field("last_modified", TIMESTAMP),
        _texts("tags"),
        _texts("arxiv_ids"),
        pa.field("items", pa.list_(COLLECTION_ITEM_TYPE), nullable=False),
        *_LINEAGE,
        *_status("", "data_fetched_at"),
    ],
)

GITHUB_REPOS_SCHEMA = _schema(
    "github_repos",
    [
        pa.field("repo", pa.string(), nullable=False),
        pa.field("url", pa.string(), nullable=False),
        _texts("arxiv_ids"),
        *_LINEAGE,
        pa.field("full_name", pa.string()),
        pa.field("stars", pa.int64()),
        pa.field("forks", pa.int64()),
        pa.field("open_issues", pa.int64()),
        pa.field("pushed_at", TIMESTAMP),
        pa.field("archived", pa.bool_()),
        pa.field("license", pa.string()),
        pa.field("description", pa.string()),
        _texts("topics"),
        pa.field("language", pa.string()),
        *_status("", "data_fetched_at"),
    ],
)

CHANGES_SCHEMA = _schema(
    "changes",
    [
        pa.field("entity_type", pa.string(), nullable=False),
        pa.field("entity_id", pa.string(), nullable=False),
        pa.field("change", pa.string(), nullable=False),
        pa.field("field", pa.string()),
        pa.field("old_value", pa.string()),
        pa.field("new_value", pa.string()),
        pa.field("previous_snapshot_date", pa.date32()),
    ],
)

DOCUMENTS_SCHEMA = _schema(
    "documents",
    [
        pa.field("document", pa.string(), nullable=False),
        pa.field("source_url", pa.string()),
        pa.field("ref", pa.string()),
        pa.field("commit_sha", pa.string()),
        pa.field("committed_at", TIMESTAMP),
        pa.field("sha256", pa.string()),
        pa.field("size_bytes", pa.int64()),
        pa.field("fetched_at", TIMESTAMP),
        pa.field("status", pa.string(), nullable=False),
        pa.field("status_reason", pa.string()),
        pa.field("title", pa.string()),
        pa.field("links", pa.int64(), nullable=False),
    ],
)

TABLE_SCHEMAS: dict[str, pa.Schema] = {
    "links": LINKS_SCHEMA,
    "papers": PAPERS_SCHEMA,
    "models": MODELS_SCHEMA,
    "repos": REPOS_SCHEMA,
    "github_repos": GITHUB_REPOS_SCHEMA,
    "changes": CHANGES_SCHEMA,
    "documents": DOCUMENTS_SCHEMA,
}
"""Every table of a snapshot, in publishing order."""

TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "links": ("document", "position"),
    "papers": ("arxiv_id",),
    "models": ("repo_id",),
    "repos": ("repo_type", "repo_id"),
    "github_repos": ("repo",),
    "changes": ("entity_type", "entity_id", "change", "field"),
    "documents": ("document",),
}
"""The columns that identify a row: unique in every published snapshot."""

DOCUMENT_TYPE = pa.struct(
    [
        pa.field("document", pa.string(), nullable=False),
        pa.field("sha256", pa.string()),
        pa.field("size_bytes", pa.int64()),
        pa.field("links", pa.int64(), nullable=False),
        pa.field("error", pa.string()),
    ]
)

HTTP_STATUS_COUNT_TYPE = pa.struct(
    [
        pa.field("http_status", pa.int32(), nullable=False),
        pa.field("responses", pa.int64(), nullable=False),
    ]
)

API_STATS_TYPE = pa.struct(
    [
        pa.field("api", pa.string(), nullable=False),
        pa.field("requests", pa.int64(), nullable=False),
        pa.field("from_store", pa.int64(), nullable=False),
        pa.field("retries", pa.int64(), nullable=False),
        pa.field("seconds", pa.float64(), nullable=False),
        pa.field("by_status", pa.list_(HTTP_STATUS_COUNT_TYPE), nullable=False),
    ]
)

MANIFEST_SCHEMA = _schema(
    "_snapshots",
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("flow_run_id", pa.string()),
        pa.field("snapshot_date", pa.date32(), nullable=False),
        pa.field("started_at", TIMESTAMP, nullable=False),
        pa.field("finished_at", TIMESTAMP, nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("status_reason", pa.string()),
        pa.field("published", pa.bool_(), nullable=False),
        pa.field("schema_version", pa.int32(), nullable=False),
        pa.field("pipeline_version", pa.string(), nullable=False),
        *(pa.field(f"{table}_rows", pa.int64()) for table in TABLE_SCHEMAS),
        pa.field("documents", pa.list_(DOCUMENT_TYPE), nullable=False),
        pa.field("api_stats", pa.list_(API_STATS_TYPE), nullable=False),
        pa.field("arxiv_api_url", pa.string()),
        pa.field("hf_endpoint", pa.string()),
    ],
)
"""`_snapshots.parquet`: one row per run that published a snapshot or failed to."""
