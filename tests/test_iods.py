"""migrate_fs.iods and its table: in step with highdicom, and the standard's facts users check."""

from __future__ import annotations

import ast
import json
import sys
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import UID

from migrate_fs import config, iods

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "migrate_fs" / "iods.json"
sys.path.insert(0, str(ROOT / "scripts"))

import make_iod_table  # noqa: E402

CT = "1.2.840.10008.5.1.4.1.1.2"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
COLOR_PALETTE = "1.2.840.10008.5.1.4.39.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
GSPS = "1.2.840.10008.5.1.4.1.1.11.1"
PRIVATE = "1.2.826.0.1.3680043.8.498.1"  # a private SOP class no table knows


def _highdicom_standard() -> make_iod_table.Standard:
    try:
        return make_iod_table.load_standard()
    except ModuleNotFoundError:
        pytest.skip(f"highdicom is not installed ({make_iod_table.INSTALL}): the check that "
                    "migrate_fs/iods.json is in step with the standard's tables is skipped")


# (a) the checked-in table is what highdicom's tables give

def test_table_is_in_step_with_highdicom() -> None:
    text = make_iod_table.generate(_highdicom_standard())
    assert TABLE.read_text(encoding="utf-8") == text, (
        f"migrate_fs/iods.json is not the table {json.loads(text)['source']} gives: run "
        "`python scripts/make_iod_table.py` and commit the file")


def test_check_mode_reports_a_stale_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _highdicom_standard()
    stale = tmp_path / "iods.json"
    stale.write_text(TABLE.read_text(encoding="utf-8").replace('"1"', '"3"', 1), encoding="utf-8")
    assert make_iod_table.main(["--check", "--out", str(stale)]) == 1
    assert "differs from the table from highdicom" in capsys.readouterr().err
    assert make_iod_table.main(["--check", "--out", str(tmp_path / "missing.json")]) == 1
    assert make_iod_table.main(["--out", str(stale)]) == 0
    assert make_iod_table.main(["--check", "--out", str(stale)]) == 0


def test_build_table_takes_the_strictest_top_level_type_of_mandatory_modules() -> None:
    modules = {
        "a": [{"keyword": "InstanceNumber", "type": "3", "path": []},
              {"keyword": "PatientID", "type": "1", "path": ["OtherPatientIDsSequence"]}],
        "b": [{"keyword": "InstanceNumber", "type": "2", "path": []},
              {"keyword": "Modality", "type": "1C", "path": []}],
        "c": [{"keyword": "PatientID", "type": "1", "path": []},      # conditional module
              {"keyword": "Modality", "type": "1", "path": []}],
        "u": [{"keyword": "StudyID", "type": "1", "path": []}],       # user-optional module
    }
    refs = [{"key": "a", "usage": "M", "ie": "Image"}, {"key": "b", "usage": "M", "ie": "Series"},
            {"key": "c", "usage": "C", "ie": "Patient"}, {"key": "u", "usage": "U", "ie": "Study"},
            {"key": "no-table", "usage": "M", "ie": "Image"}]
    table = make_iod_table.build_table({"1.2.3": "x"}, {"x": refs}, modules, "test")
    assert table == {"source": "test", "attributes": list(make_iod_table.TRACKED),
                     "sop_classes": {"1.2.3": "x"},
                     "iods": {"x": {"ies": ["Image", "Series"],
                                    "types": {"InstanceNumber": "2", "Modality": "1C"}}}}
    assert make_iod_table.missing_modules({"x": refs}, modules) == ["x: no-table"]
    text = make_iod_table.render(table)
    assert text.endswith("}\n") and text == make_iod_table.render(json.loads(text))


def test_build_table_refuses_what_it_cannot_place() -> None:
    refs = [{"key": "a", "usage": "M", "ie": "Patient"}]
    modules = {"a": [{"keyword": "PatientID", "type": "None", "path": []}]}
    with pytest.raises(ValueError, match="PatientID the type 'None'"):
        make_iod_table.build_table({}, {"x": refs}, modules, "test")
    with pytest.raises(ValueError, match="without a module list: y"):
        make_iod_table.build_table({"1.2.3": "y"}, {}, {}, "test")


# (b) facts from the standard (PS3.3 Annex A and the modules of C.7, C.12, C.17)

def test_ct_image() -> None:
    assert iods.iod_of(CT) == "ct-image" and iods.known(CT)
    assert iods.requirement(CT, "PatientID") == "2"          # Patient Module
    assert iods.requirement(CT, "StudyInstanceUID") == "1"   # General Study Module
    assert iods.requirement(CT, "Modality") == "1"           # General Series Module
    assert iods.requirement(CT, "SeriesNumber") == "2"
    assert iods.requirement(CT, "InstanceNumber") == "2"     # General Image (SOP Common: 3)
    assert all(iods.has_entity(CT, ie) for ie in ("Patient", "Study", "Series"))


def test_basic_text_sr() -> None:
    # SR Document Series Module: Series Number Type 1; SR Document General: Instance Number 1.
    assert iods.requirement(BASIC_TEXT_SR, "SeriesNumber") == "1"
    assert iods.requirement(BASIC_TEXT_SR, "InstanceNumber") == "1"
    assert iods.requirement(BASIC_TEXT_SR, "Modality") == "1"
    assert iods.has_entity(BASIC_TEXT_SR, "SR Document")


def test_color_palette_has_no_patient_study_or_series() -> None:
    assert iods.iod_of(COLOR_PALETTE) == "color-palette"
    assert not any(iods.has_entity(COLOR_PALETTE, ie) for ie in ("Patient", "Study", "Series"))
    assert iods.requirement(COLOR_PALETTE, "PatientID") is None
    assert iods.requirement(COLOR_PALETTE, "StudyInstanceUID") is None
    assert iods.requirement(COLOR_PALETTE, "SOPInstanceUID") == "1"
    assert iods.requirement(COLOR_PALETTE, "InstanceNumber") == "1"  # Color Palette Definition


def test_secondary_capture() -> None:
    assert iods.requirement(SECONDARY_CAPTURE, "PatientID") == "2"
    assert iods.requirement(SECONDARY_CAPTURE, "Modality") == "1"  # SC Equipment's 3 is looser


def test_grayscale_softcopy_presentation_state() -> None:
    assert all(iods.has_entity(GSPS, ie) for ie in ("Patient", "Study", "Series"))
    assert iods.requirement(GSPS, "InstanceNumber") == "1"  # Presentation State Identification


@pytest.mark.parametrize("uid", [PRIVATE, None, "", "1.2.840.10008.5.1.4.1.1.5"])  # last: retired
def test_unknown_sop_class_gets_the_generic_composite_image_fallback(uid: str | None) -> None:
    assert iods.iod_of(uid) is None and not iods.known(uid)
    assert [ie for ie in ("Patient", "Study", "Series", "Image") if iods.has_entity(uid, ie)] == [
        "Patient", "Study", "Series"]
    type_1 = {"SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "Modality"}
    assert dict(iods.requirements(uid)) == {
        k: "1" if k in type_1 else "2" for k in iods.attributes()}
    assert iods.requirement(uid, "PatientID") == "2"
    assert iods.requirement(uid, "Modality") == "1"


def test_padding_untracked_keywords_and_read_only_answers() -> None:
    assert iods.iod_of(CT + "\x00") == "ct-image"
    with pytest.raises(ValueError, match="not a tracked attribute"):
        iods.requirement(CT, "Rows")
    with pytest.raises(TypeError):
        iods.requirements(CT)["PatientID"] = "1"  # type: ignore[index]
    assert iods.source().startswith("highdicom ")


def test_tracked_attributes_are_the_required_settings() -> None:
    assert set(iods.attributes()) == set(config.REQUIRED)
    assert iods.attributes() == make_iod_table.TRACKED


def test_iods_is_a_stdlib_leaf() -> None:
    tree = ast.parse((ROOT / "migrate_fs" / "iods.py").read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and not node.level}
    assert not any(isinstance(node, ast.ImportFrom) and node.level for node in ast.walk(tree))
    assert imported <= sys.stdlib_module_names, imported - sys.stdlib_module_names


# (c) every SOP class in the table is one pydicom knows (or it is reported, not failed)

def test_pydicom_knows_the_sop_classes() -> None:
    sop_classes = json.loads(TABLE.read_text(encoding="utf-8"))["sop_classes"]
    assert all(UID(uid).is_valid for uid in sop_classes)
    unknown = sorted(uid for uid in sop_classes if UID(uid).name == uid)
    if unknown:
        warnings.warn(f"{len(unknown)} of {len(sop_classes)} SOP classes in iods.json are unknown "
                      f"to pydicom {pydicom.__version__}: {', '.join(unknown)}",
                      stacklevel=1)
