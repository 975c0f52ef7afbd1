"""The links stage, the lowest of the three: documents in, one typed `Link` per occurrence out.

Its public surface is three modules, imported by name (nothing is re-exported here, so a
resolver that only needs `identify` does not load the markdown parser):

- `pipeline.links.documents`: the edge with the disk. `discover_documents` names the
  documents of files and folders, `extract_document_links` reads one into a `Document`
  and its `Link`s, `extract_links` does both for a set; `printable` makes a name (or any
  text from outside) safe to print or log.
- `pipeline.links.extract` (pure): where a link stands and what surrounds it,
  `extract_document` -> `Occurrence`s; `decode_document` turns bytes into text or a
  `DocumentError`.
- `pipeline.links.identify` (pure): what a destination points at, `identify` ->
  `Identity`, and the identifier rules the resolvers apply to what the APIs send back
  (`parse_arxiv_id`, `is_valid_hub_repo_id`, ...).

The private modules (`_markdown`, `_autolink`, `_html_links`) are the GFM parser behind
`extract`. This package imports nothing of the pipeline but `pipeline.records`, never a
later stage (`pipeline.resolve`, `pipeline.snapshot`).
"""
