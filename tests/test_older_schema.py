"""An output folder written by schema version 1 (`tests/fixtures/schema1-enriched`, made by
the pipeline at commit c5b937d from `schema1-input/tiny.md` in the sandbox) stays readable, and
the next night publishes over it."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.cli import EXIT_OK, main
from pipeline.snapshot.build import LISTING_COLUMNS
from pipeline.snapshot.read import (
    latest_snapshot,
    load,
    previous_tables,
    read_manifest,
)
from pipeline.snapshot.schemas import MANIFEST_SCHEMA, SCHEMA_VERSION, TABLE_SCHEMAS
from pipeline.snapshot.store import MANIFEST_FILE, SnapshotError, manifest_table

FIXTURES = Path(__file__).parent / "fixtures"
V1_NIGHT = date(2026, 11, 1)


@pytest.fixture
def v1_out(tmp_path: Path) -> Path:
    out = tmp_path / "enriched"
    shutil.copytree(FIXTURES / "schema1-enriched", out)
    return out


def test_the_manifest_of_schema_1_reads_with_the_columns_added_since_as_null(
    v1_out: Path,
) -> None:
    manifest = read_manifest(v1_out)

    assert manifest["schema_version"].tolist() == [1]
    assert manifest["snapshot_date"].tolist() == [V1_NIGHT]
    assert manifest["documents_rows"].isna().all()
    assert manifest["papers_rows"].tolist() == [3]
    assert manifest["current"].tolist() == [True]


def test_a_manifest_of_a_newer_schema_version_is_refused_naming_it(v1_out: Path) -> None:
    written = pq.read_table(v1_out / MANIFEST_FILE)
    newer = written.set_column(
        written.schema.get_field_index("schema_version"),
        "schema_version",
        pa.array([SCHEMA_VERSION + 1], pa.int32()),
    )
    pq.write_table(newer, v1_out / MANIFEST_FILE)

    with pytest.raises(SnapshotError, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        manifest_table(v1_out)


def test_the_baseline_of_a_schema_1_night_has_every_table(v1_out: Path) -> None:
    tables = previous_tables(v1_out)

    assert tables is not None and set(tables) == set(TABLE_SCHEMAS)
    assert tables["documents"].num_rows == 0
    assert tables["documents"].schema.equals(TABLE_SCHEMAS["documents"], check_metadata=False)
    assert tables["papers"].num_rows == 3
    assert (tables["documents"].schema.metadata or {})[b"snapshot_date"] == b"2026-11-01"


def test_a_baseline_of_listing_columns_reads_those_a_schema_1_night_has(v1_out: Path) -> None:
    whole = previous_tables(v1_out)
    tables = previous_tables(v1_out, columns={"links": LISTING_COLUMNS})

    assert whole is not None and tables is not None
    # Schema 1 had no first_listed: the other three columns, every row.
    assert tables["links"].column_names == ["document", "kind", "entity_id"]
    assert tables["links"].num_rows == whole["links"].num_rows > 0
    assert tables["links"].column("entity_id").equals(whole["links"].column("entity_id"))


def test_loading_a_table_of_a_schema_1_night_names_the_version(v1_out: Path) -> None:
    with pytest.raises(SnapshotError, match="written with schema version 1"):
        load("papers", v1_out)
    with pytest.raises(SnapshotError, match=r"no table documents .*2026-11-01.*schema version 1"):
        load("documents", v1_out)


def test_the_latest_snapshot_of_schema_1_lists_the_tables_it_has(v1_out: Path) -> None:
    latest = latest_snapshot(v1_out)

    assert latest is not None and latest.snapshot_date == V1_NIGHT
    assert set(latest.rows) == set(TABLE_SCHEMAS) - {"documents"}


def test_status_and_report_read_a_schema_1_folder(
    v1_out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--out", str(v1_out)]) == EXIT_OK
    assert "2026-11-01" in capsys.readouterr().out
    assert main(["report", "--out", str(v1_out)]) == EXIT_OK
    assert (v1_out / "reports" / "2026-11-01.html").is_file()


def test_the_next_night_publishes_over_a_schema_1_folder(
    v1_out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "--sandbox", "--date", "2026-11-02", str(FIXTURES / "schema1-input" / "tiny.md")]

    code = main([*argv, "--out", str(v1_out), "--raw", str(tmp_path / "raw")])

    assert code == EXIT_OK, capsys.readouterr().err
    manifest = read_manifest(v1_out)
    assert manifest["schema_version"].tolist() == [1, SCHEMA_VERSION]
    assert manifest["current"].tolist() == [True, True]
    assert pq.read_schema(v1_out / MANIFEST_FILE).equals(MANIFEST_SCHEMA, check_metadata=False)
    changes = load("changes", v1_out)
    assert changes.attrs["snapshot_date"] == "2026-11-02"
    # The same list a night later: nothing added or removed; the only changes are the
    # first values of github_repos columns schema 1 did not have (read as null in its
    # baseline), never a field both nights have.
    v1_run = FIXTURES / "schema1-enriched" / ".runs" / "20261130T012111Z-2d6cb3be"
    v1_columns = set(pq.read_schema(v1_run / "github_repos.parquet").names)
    assert set(changes["change"]) == {"changed"}
    assert set(changes["entity_type"]) == {"github_repo"}
    assert not set(changes["field"]) & v1_columns
    assert load("documents", v1_out)["document"].tolist() == ["tiny.md"]
    assert main(["report", "--out", str(v1_out), "--date", "2026-11-02"]) == EXIT_OK
    assert main(["status", "--out", str(v1_out)]) == EXIT_OK
