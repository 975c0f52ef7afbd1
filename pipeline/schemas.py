"""The declared pyarrow schema of every Parquet table the pipeline writes.

One schema per table, declared once; `docs/data-contract.md` documents each column.
Bump `SCHEMA_VERSION` on any change to a column's name, type or meaning.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1

LINKS_SCHEMA = pa.schema(
    [
        pa.field("document", pa.string(), nullable=False),
        pa.field("position", pa.int32(), nullable=False),
        pa.field("line", pa.int32(), nullable=False),
        pa.field("heading_path", pa.list_(pa.string()), nullable=False),
        pa.field("item_date", pa.string()),
        pa.field("link_text", pa.string(), nullable=False),
        pa.field("annotation", pa.string(), nullable=False),
        pa.field("is_main_link", pa.bool_(), nullable=False),
        pa.field("syntax", pa.string(), nullable=False),
        pa.field("url", pa.string(), nullable=False),
        pa.field("url_normalized", pa.string(), nullable=False),
        pa.field("host", pa.string()),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("entity_id", pa.string()),
        pa.field("arxiv_version", pa.int32()),
        pa.field("asset_repo", pa.string()),
        pa.field("id_valid", pa.bool_(), nullable=False),
        pa.field("id_problem", pa.string()),
        pa.field("resolved_arxiv_id", pa.string()),
        pa.field("resolved_by", pa.string()),
    ],
    metadata={"table": "links"},
)
