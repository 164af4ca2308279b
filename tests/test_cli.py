"""End to end: `migrate-fs run` on real exports, checked the way a migration engineer would."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pydicom
import pytest
from conftest import Migration, count_entries, tree_digest
from dicom_compare import compare_migrated

from migrate_fs.cli import main

EXPECTED_REASONS = {
    "test_files/MR_truncated.dcm": "truncated",
    "test_files/rtplan_truncated.dcm": "truncated",
    "test_files/README.txt": "not_dicom",
    "test_files/zipMR.gz": "not_dicom",
    "test_files/crayons.icc": "not_dicom",
    "test_files/dicomdirtests/DICOMDIR": "dicomdir",
    "test_files/dicomdirtests/DICOMDIR-bigEnd": "dicomdir",
    "test_files/MR_small_bigendian.dcm": "duplicate",
    "test_files/MR_small_implicit.dcm": "duplicate",
    "test_files/JPEG2000.dcm": "uid_conflict",
    "test_files/meta_missing_tsyntax.dcm": "missing_uid",
}


@pytest.mark.parametrize("which", ["pydicom_migration", "sample_migration"])
def test_every_source_object_has_one_row_in_every_stage(which: str,
                                                        request: pytest.FixtureRequest) -> None:
    run: Migration = request.getfixturevalue(which)
    assert run.exit_code == 0
    expected = count_entries(run.export)
    for stage in ("inventory", "plan", "result"):
        table = pd.read_parquet(run.manifests / run.run / stage)
        assert len(table) == expected, stage
        assert table["object_id"].is_unique
        assert table["action"].notna().all() if stage != "inventory" else True


@pytest.mark.parametrize("which", ["pydicom_migration", "sample_migration"])
def test_migrated_files_are_part10_and_equal_their_source(which: str,
                                                          request: pytest.FixtureRequest) -> None:
    run: Migration = request.getfixturevalue(which)
    written = [r for r in run.stage("result") if r["status"] == "written"]
    assert written
    for row in written:
        path = run.out / row["output_path"]
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["output_sha256"]
        assert len(data) == row["output_size"]
        assert compare_migrated(row["locator"], str(path), row) == [], row["locator"]


def test_output_tree_holds_exactly_the_migrated_files(pydicom_migration: Migration) -> None:
    rows = pydicom_migration.stage("result")
    expected = {r["output_path"] for r in rows if r["status"] == "written"}
    on_disk = {str(p.relative_to(pydicom_migration.out)) for p in pydicom_migration.out.rglob("*")
               if p.is_file()}
    assert on_disk == expected  # no temporary or partial files left behind
    sop_uids = [pydicom.dcmread(pydicom_migration.out / p, stop_before_pixels=True).SOPInstanceUID
                for p in expected]
    assert len(sop_uids) == len(set(sop_uids))


def test_bad_input_gets_its_specific_reason(pydicom_migration: Migration) -> None:
    rows = pydicom_migration.by_name()
    for name, reason in EXPECTED_REASONS.items():
        assert rows[name]["reason"] == reason, name
        assert rows[name]["status"] == "not_written"
        assert reason in [p["code"] for p in rows[name]["problems"]]
    duplicate = rows["test_files/MR_small_bigendian.dcm"]
    assert duplicate["duplicate_of"] == rows["test_files/MR_small.dcm"]["object_id"]


def test_image_headers_without_pixel_data_migrate_with_a_warning(
        pydicom_migration: Migration) -> None:
    """The old PACS held them and a new PACS accepts them ([problems] missing_pixel_data)."""
    headers = [r for r in pydicom_migration.by_name().values()
               if "missing_pixel_data" in [p["code"] for p in r["problems"]]]
    written = [r for r in headers if r["status"] == "written"]
    assert len(written) >= 40
    assert all(r["reason"] in (None, "duplicate", "uid_conflict") for r in headers)
    for row in written[:10]:
        assert "PixelData" not in pydicom.dcmread(pydicom_migration.out / row["output_path"])


def test_junk_in_the_sample_export_is_quarantined_with_reasons(sample_migration: Migration) -> None:
    rows = sample_migration.stage("result")
    reasons = {r["reason"] for r in rows}
    assert {"empty_file", "not_dicom", "truncated"} <= reasons
    for row in rows:
        if row["size"] == 0:
            assert row["reason"] == "empty_file"
        if Path(row["locator"]).name == "Thumbs.db":
            assert row["reason"] == "not_dicom"


def test_every_encoding_of_the_sample_export_is_migrated(sample_migration: Migration) -> None:
    written = [r for r in sample_migration.stage("result") if r["status"] == "written"]
    syntaxes = {r["transfer_syntax"] for r in written}
    assert {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"} <= syntaxes
    assert any(not r["has_file_meta"] for r in written)
    for row in written:
        native = row["transfer_syntax"] in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1",
                                            "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99")
        assert row["output_transfer_syntax"] == ("1.2.840.10008.1.2.1" if native
                                                 else row["transfer_syntax"])


def test_hostile_patient_ids_stay_inside_the_output_root(sample_migration: Migration) -> None:
    out = sample_migration.out.resolve()
    rows = sample_migration.stage("result")
    hostile = [r for r in rows if r["status"] == "written"
               and r["patient_id"] in ("../../etc", "a/b", "CON")]
    assert len({r["patient_id"] for r in hostile}) == 3
    # PatientID is Type 2: an absent or empty one is a warning, and the object migrates to a
    # readable, collision-free folder ([required] PatientID = "quarantine" stops it).
    nameless = [r for r in rows if r["kind"] == "part10" and r["patient_id"] is None
                and r["reason"] in (None, "missing_attribute")]
    assert nameless and all(r["status"] == "written" for r in nameless)
    assert all("missing_attribute" in [p["code"] for p in r["problems"]] for r in nameless)
    assert {r["output_path"].split("/")[0] for r in nameless} == {"_empty~e3b0c44298fc1c14"}
    for row in rows:
        if row["output_path"]:
            path = (out / row["output_path"]).resolve()
            assert out in path.parents and len(Path(row["output_path"]).parts) == 4
    outside = [p for p in sample_migration.out.parent.rglob("*")
               if p.is_file() and out not in p.resolve().parents
               and sample_migration.manifests not in p.parents]
    assert outside == []


@pytest.mark.parametrize("which", ["pydicom_migration", "sample_migration"])
def test_source_tree_is_unchanged(which: str, request: pytest.FixtureRequest) -> None:
    run: Migration = request.getfixturevalue(which)
    assert tree_digest(run.export) == run.before


def test_rerun_resumes_without_rewriting(sample_export: Path, tmp_path: Path) -> None:
    run = Migration(sample_export, tmp_path)  # its own run: the shared one stays as it was
    written = sorted(p for p in run.out.rglob("*.dcm"))
    stamps = {p: p.stat().st_mtime_ns for p in written}
    parts = sorted((run.manifests / run.run / "result").glob("*.parquet"))
    victim = parts[0]
    victim.unlink()  # as if the run had been killed before committing this batch
    assert main(["write", "--run", run.run, "--manifests", str(run.manifests), "--out",
                 str(run.out), "--workers", "1", "--quiet"]) == 0
    rows = run.stage("result")
    assert len(rows) == count_entries(run.export)
    redone = [r for r in rows if r["status"] == "already_present"]
    assert redone and all(r["output_sha256"] for r in redone)
    assert {p: p.stat().st_mtime_ns for p in written} == stamps  # nothing was overwritten


def test_results_do_not_depend_on_worker_count(pydicom_export: Path, tmp_path: Path,
                                               pydicom_migration: Migration) -> None:
    single = Migration(pydicom_export, tmp_path, workers=1)
    key = ["object_id", "action", "reason", "output_path", "output_sha256"]
    a = pd.DataFrame(single.stage("result"))[key].sort_values("object_id").reset_index(drop=True)
    b = pd.DataFrame(pydicom_migration.stage("result"))[key].sort_values("object_id")
    pd.testing.assert_frame_equal(a, b.reset_index(drop=True))


def test_exit_codes_and_errors(tmp_path: Path, pydicom_export: Path) -> None:
    cli = [sys.executable, "-m", "migrate_fs.cli"]
    usage = subprocess.run([*cli, "run"], capture_output=True, text=True)
    assert usage.returncode == 2
    missing = subprocess.run([*cli, "inventory", str(tmp_path / "nope"), "--run", "x",
                              "--manifests", str(tmp_path / "m")], capture_output=True, text=True)
    assert missing.returncode == 1 and "cannot be read" in missing.stderr
    no_plan = subprocess.run([*cli, "write", "--run", "x", "--out", str(tmp_path / "o"),
                              "--manifests", str(tmp_path / "m2")], capture_output=True, text=True)
    assert no_plan.returncode == 1 and "plan" in no_plan.stderr
    inside = subprocess.run([*cli, "run", str(pydicom_export), "--out",
                             str(pydicom_export / "out"), "--manifests", str(tmp_path / "m3"),
                             "--quiet", "--workers", "1"], capture_output=True, text=True)
    assert inside.returncode == 1 and "read-only" in inside.stderr
    assert not (pydicom_export / "out").exists()


def test_steps_print_summary_and_manifest_locations(tmp_path: Path, sample_export: Path) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run([sys.executable, "-m", "migrate_fs.cli", "run", str(sample_export),
                             "--out", str(tmp_path / "out"), "--workers", "2"], cwd=tmp_path,
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert "objects  action" in result.stdout and "quarantine" in result.stdout
    # default manifests folder and run name: ./manifests/<name of the output folder>
    assert (tmp_path / "manifests" / "out" / "result").is_dir()
    assert "manifests/out/result" in result.stdout
