"""A whole night with `--out` and `--raw` on S3 (moto's server), as `pipeline.night`
runs it: the same tables as on a local disk, and a second night that asks nothing the
shared raw store already holds."""

from __future__ import annotations

from pathlib import Path

import fsspec
import pyarrow as pa
from nights import NIGHT_1, NIGHT_2, fast_settings, run_night, write_reading_list

from pipeline.config import RefreshPolicy
from pipeline.sandbox import Sandbox
from pipeline.snapshot.read import load
from pipeline.snapshot.schemas import TABLE_KEYS, TABLE_SCHEMAS


def _comparable(table: pa.Table) -> pa.Table:
    """Without the times answers were received: the one thing two runs cannot share."""
    return table.select([name for name in table.column_names if not name.endswith("fetched_at")])


def test_a_night_on_s3_publishes_the_tables_of_the_same_night_on_disk(
    sandbox: Sandbox, s3_bucket: str, tmp_path: Path
) -> None:
    documents = [write_reading_list(tmp_path / "docs")]
    settings = fast_settings(sandbox)
    local = run_night(documents, tmp_path / "enriched", tmp_path / "raw", settings, NIGHT_1)
    remote = run_night(documents, f"{s3_bucket}/enriched", f"{s3_bucket}/raw", settings, NIGHT_1)

    assert local.status == remote.status == "ok"
    for name in TABLE_SCHEMAS:
        on_disk = pa.Table.from_pandas(load(name, tmp_path / "enriched"), preserve_index=False)
        on_s3 = pa.Table.from_pandas(load(name, f"{s3_bucket}/enriched"), preserve_index=False)
        assert on_s3.num_rows == on_disk.num_rows > 0 or name == "changes", name
        a, b = _comparable(on_s3), _comparable(on_disk)
        assert a.equals(b), (name, [c for c in a.column_names if not a[c].equals(b[c])])

    # The night's HTML report is an object beside the snapshot, the same page as on disk.
    assert remote.report_path == f"{s3_bucket}/enriched/reports/{NIGHT_1.isoformat()}.html"
    assert local.report_path is not None and remote.report_path is not None
    with fsspec.open(remote.report_path, "rt", encoding="utf-8") as handle:
        page = handle.read()
    on_disk_page = Path(local.report_path).read_text("utf-8")
    assert page.replace(remote.run_id, "RUN") == on_disk_page.replace(local.run_id, "RUN")


def test_a_second_night_on_s3_asks_nothing_the_shared_raw_store_holds(
    sandbox: Sandbox, s3_bucket: str, tmp_path: Path
) -> None:
    documents = [write_reading_list(tmp_path / "docs")]
    out, raw = f"{s3_bucket}/enriched", f"{s3_bucket}/raw"
    first = run_night(documents, out, raw, fast_settings(sandbox), NIGHT_1)
    assert first.status == "ok" and sandbox.requests()
    sandbox.reset_log()

    reuse = fast_settings(sandbox).replace(refresh=RefreshPolicy.TTL)
    second = run_night(documents, out, raw, reuse, NIGHT_2)

    assert sandbox.requests() == []
    assert sum(s.requests for s in second.api) == 0
    assert sum(s.from_store for s in second.api) > 0
    for name in ("papers", "models", "repos"):
        # The same entities with the same answers (only their dates moved on a night).
        columns = [*TABLE_KEYS[name], "status"]
        assert second.tables[name].select(columns).equals(first.tables[name].select(columns))
