"""Required attributes per IOD, and the two profiles: faithful (default) and strict.

Real objects that a real PACS accepts as they are: a Color Palette (no patient at all), an SR,
a secondary capture without PatientID, a CT header without pixel data, an RT Dose with
standard elements encoded as UN. With the default profile they migrate with their warnings;
with ``profile = "strict"`` every Type 1/2 violation of the IOD is quarantined, naming the
IOD's rule.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from test_rules import Run, codes, configured, save

from migrate_fs import iods

PALETTES = Path(pydicom.__file__).parent / "data" / "palettes"


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("iod") / "export"
    root.mkdir()
    shutil.copy(PALETTES / "hotiron.dcm", root / "palette.dcm")
    shutil.copy(get_testdata_file("test-SR.dcm"), root / "sr.dcm")
    sc = pydicom.dcmread(get_testdata_file("image_dfl.dcm"))
    del sc.PatientID
    save(sc, root / "sc_without_patient_id.dcm")
    header = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del header.PixelData
    save(header, root / "ct_header_only.dcm")
    shutil.copy(get_testdata_file("rtdose_rle_1frame.dcm"), root / "rtdose_un.dcm")
    no_study = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    del no_study.StudyInstanceUID
    save(no_study, root / "mr_without_study_uid.dcm")
    return root


def message(row: dict, code: str) -> str:
    return next(p["message"] for p in row["problems"] if p["code"] == code)


def test_faithful_migrates_what_a_pacs_can_hold(export: Path, tmp_path: Path) -> None:
    run = Run(export, tmp_path)
    assert run.exit_code == 0
    rows = run.rows()
    for name in ("palette.dcm", "sr.dcm", "sc_without_patient_id.dcm", "ct_header_only.dcm",
                 "rtdose_un.dcm"):
        assert rows[name]["status"] == "written", (name, rows[name]["reason"])
    palette = rows["palette.dcm"]
    assert palette["output_path"].startswith("_no_patient/ColorPaletteStorage/")
    assert "will not index" in message(palette, "no_patient_study")
    assert "missing_attribute" not in codes(palette)  # it has no patient to miss
    sc = rows["sc_without_patient_id.dcm"]
    assert "Type 2 in secondary-capture-image" in message(sc, "missing_attribute")
    assert {(c["keyword"], c["new"]) for c in sc["changes"]} >= {("PatientID", "")}
    assert run.output("sc_without_patient_id.dcm").PatientID == ""
    assert sc["output_path"].split("/")[0] == "_empty~e3b0c44298fc1c14"
    assert "missing_pixel_data" in codes(rows["ct_header_only.dcm"])
    assert "PixelData" not in run.output("ct_header_only.dcm")
    # a missing StudyInstanceUID cannot be filed: it stays blocking, and says how to change it
    mr = rows["mr_without_study_uid.dcm"]
    assert (mr["status"], mr["reason"]) == ("not_written", "missing_attribute")
    assert '[required] StudyInstanceUID = "generate"' in message(mr, "missing_attribute")


def test_strict_quarantines_every_violation_naming_the_rule(export: Path,
                                                            tmp_path: Path) -> None:
    run = Run(export, tmp_path, *configured(tmp_path, 'profile = "strict"\n'))
    assert run.exit_code == 0
    rows = run.rows("plan")
    sc = rows["sc_without_patient_id.dcm"]
    assert (sc["action"], sc["reason"]) == ("quarantine", "missing_attribute")
    assert "PatientID is absent (Type 2 in secondary-capture-image)" in \
        message(sc, "missing_attribute")
    header = rows["ct_header_only.dcm"]
    assert (header["action"], header["reason"]) == ("quarantine", "missing_pixel_data")
    assert rows["palette.dcm"]["reason"] == "no_patient_study"
    assert rows["rtdose_un.dcm"]["reason"] == "standard_element_as_un"
    assert rows["sr.dcm"]["action"] == "migrate"  # an empty PatientID is no violation
    for row in rows.values():
        if row["reason"] is not None:
            assert row["reason"] in codes(row)
    # an explicit setting overrides the profile
    relaxed = Run(export, tmp_path / "relaxed", *configured(
        tmp_path, 'profile = "strict"\n[problems]\nmissing_pixel_data = "warn"\n'))
    assert relaxed.rows()["ct_header_only.dcm"]["status"] == "written"


def test_requirements_follow_the_sop_class(export: Path, tmp_path: Path) -> None:
    """InstanceNumber is Type 1 in an SR, Type 2 in a CT image: the same absence is a
    quarantine in strict for the one and an added empty element for the other."""
    sr = pydicom.dcmread(get_testdata_file("test-SR.dcm"))
    del sr.InstanceNumber
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ct.InstanceNumber
    root = tmp_path / "e"
    save(sr, root / "sr.dcm")
    save(ct, root / "ct.dcm")
    assert iods.requirement(sr.SOPClassUID, "InstanceNumber") == "1"
    assert iods.requirement(ct.SOPClassUID, "InstanceNumber") == "2"
    run = Run(root, tmp_path / "faithful")
    rows = run.rows()
    assert rows["sr.dcm"]["status"] == rows["ct.dcm"]["status"] == "written"
    assert "Type 1 in" in message(rows["sr.dcm"], "missing_attribute")
    assert ("InstanceNumber", "") in {(c["keyword"], c["new"]) for c in rows["ct.dcm"]["changes"]}
    assert "InstanceNumber" not in {c["keyword"] for c in rows["sr.dcm"]["changes"]}


def test_generated_study_uids_never_merge_unrelated_objects(tmp_path: Path) -> None:
    """Two objects with no study UID and nothing that identifies their study get a study
    each; two with the same accession number and date share one."""
    root = tmp_path / "e"
    for i, (accession, date) in enumerate([("", ""), ("", ""), ("A1", "20200101"),
                                           ("A1", "20200101")]):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        del ds.StudyInstanceUID
        for keyword in ("StudyDate", "StudyTime", "AccessionNumber"):
            if keyword in ds:
                delattr(ds, keyword)
        if accession:
            ds.AccessionNumber, ds.StudyDate = accession, date
        ds.SOPInstanceUID = f"{ds.SOPInstanceUID}.{i}"
        ds.SeriesInstanceUID = f"{ds.SeriesInstanceUID}.{i}"
        save(ds, root / f"ct{i}.dcm")
    run = Run(root, tmp_path, *configured(tmp_path, '[required]\nStudyInstanceUID = '
                                                    '"generate"\n'))
    rows = run.rows()
    study = {name: r["output_study_instance_uid"] for name, r in rows.items()}
    assert study["ct0.dcm"] != study["ct1.dcm"]
    assert study["ct2.dcm"] == study["ct3.dcm"]
    assert "for this series alone" in message(rows["ct0.dcm"], "missing_attribute")
    assert "AccessionNumber='A1'" in message(rows["ct2.dcm"], "missing_attribute")


def test_the_plan_report_says_which_line_would_migrate_them(export: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture
                                                            ) -> None:
    Run(export, tmp_path, *configured(tmp_path, 'profile = "strict"\n'))
    out = capsys.readouterr().out
    assert "to migrate them instead" in out
    assert 'missing_pixel_data: [problems] missing_pixel_data = "warn"' in out
    assert "missing_attribute: [required] <attribute> = \"warn\"" in out


def test_every_decision_is_on_the_row(pydicom_migration) -> None:
    """On pydicom's files: a reason is always one of the row's problem codes, a skipped copy
    names the copy it lost to, and a migrated copy that won over other contents says so."""
    plan = pydicom_migration.stage("plan")
    by_id = {r["object_id"]: r for r in plan}
    for row in plan:
        if row["reason"] is not None:
            assert row["reason"] in codes(row), row["locator"]
        if row["action"] == "skip_duplicate":
            assert by_id[row["duplicate_of"]]["action"] == "migrate", row["locator"]
        if row["duplicate_kind"] == "variant" and row["action"] == "migrate":
            assert "kept_over_variant" in codes(row)


def test_an_invalid_character_set_on_ascii_text_is_normalized(sample_migration) -> None:
    rows = [r for r in sample_migration.stage("result")
            if any(c["keyword"] == "SpecificCharacterSet" and c["old"] == "Not Supplied"
                   for c in r["changes"])]
    assert rows and all(r["status"] == "written" for r in rows)
    for row in rows:
        change = next(c for c in row["changes"] if c["keyword"] == "SpecificCharacterSet")
        assert change["new"] is None and change["rule"] == "character_set"
        assert "SpecificCharacterSet" not in pydicom.dcmread(sample_migration.out
                                                             / row["output_path"])
