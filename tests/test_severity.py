"""Each problem entry's severity says what the problem meant for its object (info, fixed,
warning, blocking), so that SQL filters on a column instead of parsing messages; older parts
read with a null severity."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from conftest import Migration

from migrate_fs import manifest
from migrate_fs.cli.main import main
from migrate_fs.problems import CATALOGUE, SEVERITIES


def test_every_plan_and_result_entry_says_what_it_meant(pydicom_migration: Migration) -> None:
    assert all(p["severity"] is None for r in pydicom_migration.stage("inventory")
               for p in r["problems"] or [])  # the inventory decides nothing
    for stage in ("plan", "result"):
        rows = pydicom_migration.stage(stage)
        entries = [(r, p) for r in rows for p in r["problems"] or []]
        assert entries and {p["severity"] for _, p in entries} == set(SEVERITIES)
        for row, p in entries:
            if CATALOGUE[p["code"]].severity == "skip":
                assert p["severity"] == "info", (row["locator"], p)
            elif row["action"] == "migrate":  # nothing stopped a migrated object
                assert p["severity"] == ("fixed" if p["message"].startswith("fixed:")
                                         else "warning"), (row["locator"], p)
            elif p["code"] == row["reason"]:  # what stopped it
                assert p["severity"] == "blocking", (row["locator"], p)


def test_sql_finds_the_blocked_objects_by_severity(pydicom_migration: Migration) -> None:
    parts = manifest.stage_dir(pydicom_migration.manifests, pydicom_migration.run, "result")
    blocked = {r[0] for r in duckdb.sql(
        f"select distinct object_id from (select object_id, unnest(problems) p from "
        f"read_parquet('{parts}/*.parquet')) where p.severity = 'blocking'").fetchall()}
    quarantined = {r["object_id"] for r in pydicom_migration.stage("result")
                   if r["action"] == "quarantine"}
    assert quarantined and quarantined <= blocked
    assert not any(r["object_id"] in blocked for r in pydicom_migration.stage("result")
                   if r["action"] == "migrate")


def test_a_rule_change_changes_the_severity(pydicom_migration: Migration, tmp_path: Path
                                            ) -> None:
    config = tmp_path / "warn.toml"
    config.write_text('[problems]\npixel_data_length_mismatch = "warn"\n')
    m, run = str(pydicom_migration.manifests), pydicom_migration.run
    assert main(["plan", "--run", run, "--manifests", m, "--as", "warn", "--config",
                 str(config), "--workers", "1", "--quiet"]) == 0
    trial = manifest.run_dir(m, run) / "trials" / "warn" / "plan"
    found = [p["severity"] for r in pq.read_table(trial).to_pylist()
             for p in r["problems"] or [] if p["code"] == "pixel_data_length_mismatch"]
    before = [p["severity"] for r in pydicom_migration.stage("plan")
              for p in r["problems"] or [] if p["code"] == "pixel_data_length_mismatch"]
    assert before and set(before) == {"blocking"}
    assert found == ["warning"] * len(before)


def test_parts_of_schema_4_read_with_a_null_severity(tmp_path: Path) -> None:
    old = pa.struct([("code", pa.string()), ("message", pa.string())])
    pq.write_table(pa.table({"object_id": ["o1"], "problems": pa.array(
        [[{"code": "not_dicom", "message": "junk"}]], pa.list_(old))}), tmp_path / "p.parquet")
    row = manifest.read_part(tmp_path, "p", "inventory").to_pylist()[0]
    assert row["problems"] == [{"code": "not_dicom", "message": "junk", "severity": None}]
