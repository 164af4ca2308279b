"""duplicates: the three-way model on real files (copies, re-encoded, edited and re-UIDed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file
from test_rules import Run, configured, save

from migrate_fs.cli import main


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two sources holding every kind of duplicate, built from pydicom's files."""
    root = tmp_path_factory.mktemp("dups")
    a, b = root / "vol_a", root / "vol_b"
    for folder in (a, b):
        folder.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), a / "ct.dcm")
    shutil.copy(get_testdata_file("CT_small.dcm"), b / "ct_copy.dcm")  # identical copy
    shutil.copy(get_testdata_file("MR_small.dcm"), a / "mr.dcm")
    save(pydicom.dcmread(get_testdata_file("MR_small.dcm")), b / "mr_implicit.dcm",
         implicit=True)  # the same dataset re-encoded
    shutil.copy(get_testdata_file("MR_small_jp2klossless.dcm"), b / "mr_j2k.dcm")  # variant
    edited = pydicom.dcmread(get_testdata_file("rtplan.dcm"))
    shutil.copy(get_testdata_file("rtplan.dcm"), a / "plan.dcm")
    edited.PatientName = "Changed^Later"
    save(edited, b / "plan_edited.dcm")  # same UID, different content
    reuid = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    reuid.SOPInstanceUID = reuid.SOPInstanceUID + ".42"
    save(reuid, b / "ct_reuid.dcm")  # same content under another UID
    shutil.copy(get_testdata_file("rtdose.dcm"), a / "unique.dcm")
    return root


def decisions(run: Run) -> dict[str, tuple]:
    """File name -> (action, reason, file name of the object it duplicates)."""
    rows = run.rows("plan")
    names = {r["object_id"]: name for name, r in rows.items()}
    return {name: (r["action"], r["reason"], names.get(r["duplicate_of"]))
            for name, r in rows.items()}


def test_each_kind_of_duplicate_is_classified(export: Path, tmp_path: Path) -> None:
    run = Run(export, tmp_path)
    assert run.exit_code == 0
    got = decisions(run)
    assert got["ct.dcm"] == ("migrate", None, None)
    assert got["ct_copy.dcm"] == ("skip_duplicate", "duplicate", "ct.dcm")
    assert got["mr.dcm"] == ("migrate", None, None)
    assert got["mr_implicit.dcm"] == ("skip_duplicate", "duplicate", "mr.dcm")
    assert got["mr_j2k.dcm"] == ("skip_duplicate", "transfer_syntax_variant", "mr.dcm")
    assert got["plan.dcm"][:2] == got["plan_edited.dcm"][:2] == ("quarantine", "uid_conflict")
    assert got["ct_reuid.dcm"] == ("migrate", None, "ct.dcm")
    assert got["unique.dcm"] == ("migrate", None, None)
    rows = run.rows("plan")
    assert rows["plan_edited.dcm"]["differs"] == ["PatientName", "TransferSyntaxUID"]
    assert "content_duplicate" in [p["code"] for p in rows["ct_reuid.dcm"]["problems"]]
    # The migrated output holds each SOPInstanceUID at most once.
    written = [r for r in run.rows().values() if r["status"] == "written"]
    uids = [pydicom.dcmread(run.out / r["output_path"]).SOPInstanceUID for r in written]
    assert len(uids) == len(set(uids)) == 4
    # A user resolves conflicts in pandas: one row per copy, what differs listed.
    plan = pd.read_parquet(run.manifests / run.run / "plan")
    conflicts = plan[plan.duplicate_kind == "conflict"]
    assert conflicts.groupby("duplicate_group").size().tolist() == [2]


def test_only_colliding_objects_are_hashed(export: Path, tmp_path: Path) -> None:
    run = Run(export, tmp_path)
    info = json.loads((run.manifests / run.run / "run.json").read_text())
    hashed = info["plan"]["content_hashes"]
    assert hashed["objects"] == 8  # every object but unique.dcm collides with another
    plan = run.rows("plan")
    assert plan["unique.dcm"]["content_sha256"] is None
    alone = Run(export / "vol_a", tmp_path / "alone")  # no duplicates there
    info = json.loads((alone.manifests / alone.run / "run.json").read_text())
    assert info["plan"]["content_hashes"] == {"objects": 0, "bytes_read": 0, "decoded": 0}


def test_policies_keep_newest_or_all_and_drop_content_duplicates(export: Path,
                                                                tmp_path: Path) -> None:
    run = Run(export, tmp_path, *configured(tmp_path, '[duplicates]\nconflict = "keep_all"\n'
                                                     'content_duplicates = "skip"\n'))
    got = decisions(run)
    assert got["plan.dcm"][0] == got["plan_edited.dcm"][0] == "migrate"
    out = {name: run.output(name).SOPInstanceUID for name in ("plan.dcm", "plan_edited.dcm")}
    assert out["plan.dcm"] != out["plan_edited.dcm"]
    assert got["ct_reuid.dcm"] == ("skip_duplicate", "content_duplicate", "ct.dcm")


def test_decisions_do_not_depend_on_source_order_or_workers(export: Path,
                                                            tmp_path: Path) -> None:
    results = []
    for order, workers in (((export / "vol_a", export / "vol_b"), 1),
                           ((export / "vol_b", export / "vol_a"), 2)):
        base = tmp_path / f"w{workers}"
        assert main(["run", *map(str, order), "--out", str(base / "out"), "--run", "r",
                     "--manifests", str(base / "m"), "--workers", str(workers), "--quiet"]) == 0
        plan = pd.read_parquet(base / "m" / "r" / "plan").set_index("object_id").sort_index()
        results.append(plan[["action", "reason", "duplicate_of", "output_path"]])
    pd.testing.assert_frame_equal(results[0], results[1])


def test_the_copy_the_legacy_database_lists_is_kept(export: Path, tmp_path: Path) -> None:
    listing = tmp_path / "legacy_files.csv"
    listing.write_text("path,sop_instance_uid\nvol_b/plan_edited.dcm,x\nvol_a/other.dcm,y\n")
    run = Run(export, tmp_path, *configured(
        tmp_path, f'[duplicates]\nconflict = "keep_legacy_db"\nlegacy_db_files = "{listing}"\n'))
    got = decisions(run)
    assert got["plan_edited.dcm"][0] == "migrate"
    assert got["plan.dcm"] == ("quarantine", "uid_conflict", "plan_edited.dcm")
