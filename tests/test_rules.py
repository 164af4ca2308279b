"""rules: normalization and validation end to end, on crafted files built from pydicom's own.

Each test builds a small export of real Part 10 files whose bad values are written byte for byte
(as legacy archives hold them), runs `migrate-fs run`, and checks what a migration engineer
would: the output header, the manifest's problems and changes, and that nothing else changed.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pydicom
import pytest
from conftest import PYDICOM_DATA, Migration
from dicom_compare import compare_migrated
from pydicom.data import get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from migrate_fs import manifest
from migrate_fs.cli import main
from migrate_fs.config import RULES, ConfigError, default_toml, load_config, parse_config
from migrate_fs.problems import CATALOGUE
from migrate_fs.values import uid_problem

GSPS = "1.2.840.10008.5.1.4.1.1.11.1"
BAD_SOP = "1.2.826.0.1.3680043.2.1125.01.2"  # a component with a leading zero
BAD_SERIES = "1.2.826.0.1.3680043.2.1125.1.0003"
BAD_STUDY = "1.2.826.0.1.3680043.2.1125.1.2." + "9" * 40  # over 64 characters


def put_raw(ds: Dataset, tag: int | str, vr: str, value: bytes) -> None:
    """Store ``value`` byte for byte, as a legacy archive would have it (no validation)."""
    t = Tag(tag)
    ds._dict[t] = RawDataElement(t, vr, len(value), value, 0, False, True)  # type: ignore[assignment]


def save(ds: Dataset, path: Path, implicit: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(path, enforce_file_format=True)
    return path


def ct(**raw: tuple[str, bytes]) -> Dataset:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for keyword, (vr, value) in raw.items():
        put_raw(ds, keyword, vr, value)
    return ds


class Run(Migration):
    """``migrate-fs run`` with options (one worker); rows keyed by file name."""

    def __init__(self, export: Path, base: Path, *extra: str, run: str = "t") -> None:
        super().__init__(export, base, 1, *extra, run=run)

    def rows(self, stage: str = "result") -> dict[str, dict[str, Any]]:
        table = manifest.read_stage(self.manifests, self.run, stage).to_pylist()
        return {Path(r["locator"]).name: r for r in table}

    def output(self, name: str) -> Dataset:
        row = self.rows()[name]
        assert row["status"] == "written", (row["reason"], row["problems"])
        return pydicom.dcmread(self.out / row["output_path"])


def configured(tmp_path: Path, toml: str) -> list[str]:
    """Options for a run with this rules configuration."""
    path = tmp_path / "rules.toml"
    path.write_text(toml)
    return ["--config", str(path)]


def codes(row: dict[str, Any]) -> list[str]:
    return [p["code"] for p in row["problems"]]


def changes(row: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["tag"]: c for c in row["changes"]}


def test_bad_values_are_repaired_and_every_change_is_audited(tmp_path: Path) -> None:
    export = tmp_path / "export"
    save(ct(StudyDate=("DA", b"2001.01.01"), SliceThickness=("DS", b"1,5 "),
            PatientSex=("CS", b"m "), AccessionNumber=("SH", b"A12\x00"),
            StudyTime=("TM", b"12:30:45"), PatientBirthDate=("DA", b"1/2/1950")),
         export / "bad.dcm")
    run = Run(export, tmp_path)
    assert run.exit_code == 0
    row = run.rows()["bad.dcm"]
    found = changes(row)
    assert found["(0008,0020)"]["old"] == "2001.01.01"
    assert found["(0008,0020)"]["new"] == "20010101"
    assert found["(0008,0020)"]["rule"] == "date_format"
    assert found["(0018,0050)"]["new"].strip() == "1.5"
    assert found["(0010,0040)"]["new"].strip() == "M"
    assert found["(0008,0050)"]["new"] == "A12"
    assert found["(0008,0030)"]["new"] == "123045"
    # 1/2/1950 is ambiguous without a configured day/month order: reported, not guessed.
    assert "(0010,0030)" not in found
    assert "invalid_date" in codes(row)
    out = run.output("bad.dcm")
    assert (out.StudyDate, out.SliceThickness, out.PatientSex, out.AccessionNumber,
            out.StudyTime) == ("20010101", 1.5, "M", "A12", "123045")
    assert out.PatientBirthDate == "1/2/1950"
    assert compare_migrated(row["locator"], str(run.out / row["output_path"]), row) == []
    # "What did you change in this study and why?": one pandas filter.
    plan = pd.read_parquet(run.manifests / run.run / "plan")
    study = plan[plan.study_instance_uid == out.StudyInstanceUID]
    audit = study.explode("changes").dropna(subset=["changes"])
    assert {c["rule"] for c in audit["changes"]} >= {"date_format", "decimal_string",
                                                      "code_string", "trailing_nul",
                                                      "time_format"}


def test_date_order_from_the_config_repairs_ambiguous_dates(tmp_path: Path) -> None:
    export = tmp_path / "export"
    save(ct(PatientBirthDate=("DA", b"1/2/1950")), export / "a.dcm")
    run = Run(export, tmp_path, *configured(tmp_path, '[charset]\ndate_order = "DMY"\n'))
    assert run.output("a.dcm").PatientBirthDate == "19500201"


def test_quarantine_policy_stops_an_object_with_the_rule_named(tmp_path: Path) -> None:
    export = tmp_path / "export"
    save(ct(StudyDate=("DA", b"2001.01.01")), export / "a.dcm")
    run = Run(export, tmp_path, *configured(tmp_path, '[rules]\ndate_format = "quarantine"\n'))
    row = run.rows()["a.dcm"]
    assert (row["action"], row["reason"]) == ("quarantine", "invalid_date")
    assert not run.out.exists() or not any(run.out.rglob("*.dcm"))


def image_and_presentation_state(export: Path) -> tuple[Path, Path]:
    """A CT image with invalid UIDs and a GSPS that references it by those UIDs."""
    image = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    put_raw(image, "SOPInstanceUID", "UI", BAD_SOP.encode())
    put_raw(image, "SeriesInstanceUID", "UI", BAD_SERIES.encode())
    put_raw(image, "StudyInstanceUID", "UI", BAD_STUDY.encode())
    gsps = Dataset()
    gsps.SOPClassUID = GSPS
    gsps.SOPInstanceUID = "1.2.826.0.1.3680043.2.1125.1.77"
    gsps.StudyInstanceUID = image.StudyInstanceUID
    gsps.SeriesInstanceUID = "1.2.826.0.1.3680043.2.1125.1.78"
    gsps.PatientID, gsps.PatientName, gsps.Modality = image.PatientID, image.PatientName, "PR"
    ref_image = Dataset()
    ref_image.ReferencedSOPClassUID = image.SOPClassUID
    ref_image.ReferencedSOPInstanceUID = BAD_SOP
    ref_series = Dataset()
    ref_series.SeriesInstanceUID = BAD_SERIES
    ref_series.ReferencedImageSequence = Sequence([ref_image])
    gsps.ReferencedSeriesSequence = Sequence([ref_series])
    put_raw(gsps, "StudyInstanceUID", "UI", BAD_STUDY.encode())
    return save(image, export / "image.dcm"), save(gsps, export / "gsps.dcm", implicit=True)


def test_invalid_uids_are_remapped_and_references_follow(tmp_path: Path) -> None:
    export = tmp_path / "export"
    image_and_presentation_state(export)
    run = Run(export, tmp_path)
    image, gsps = run.output("image.dcm"), run.output("gsps.dcm")
    for uid in (image.SOPInstanceUID, image.SeriesInstanceUID, image.StudyInstanceUID):
        assert uid_problem(uid) is None and uid not in (BAD_SOP, BAD_SERIES, BAD_STUDY)
    series = gsps.ReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == image.SeriesInstanceUID
    assert series.ReferencedImageSequence[0].ReferencedSOPInstanceUID == image.SOPInstanceUID
    assert gsps.StudyInstanceUID == image.StudyInstanceUID
    assert image.file_meta.MediaStorageSOPInstanceUID == image.SOPInstanceUID
    rows = run.rows()
    nested = changes(rows["gsps.dcm"])["(0008,1115)[0].(0008,1140)[0].(0008,1155)"]
    assert (nested["old"], nested["new"], nested["rule"]) == (BAD_SOP, image.SOPInstanceUID,
                                                             "invalid_uid")
    assert rows["image.dcm"]["output_sop_instance_uid"] == image.SOPInstanceUID
    assert rows["image.dcm"]["sop_instance_uid"] == BAD_SOP  # the source value stays on record
    # Another run (a shard, a re-run) gives the same UIDs; another namespace other UIDs.
    again = Run(export, tmp_path / "again", run="other")
    assert again.output("image.dcm").SOPInstanceUID == image.SOPInstanceUID
    other = Run(export, tmp_path / "other",
                *configured(tmp_path, '[migration]\nnamespace = "x"\n'))
    assert other.output("image.dcm").SOPInstanceUID != image.SOPInstanceUID


def test_text_without_a_character_set_is_quarantined_not_guessed(tmp_path: Path) -> None:
    export = tmp_path / "export"
    ds = ct(PatientName=("PN", "Müller^Hans".encode("latin-1")))
    del ds.SpecificCharacterSet
    save(ds, export / "latin1.dcm")
    run = Run(export, tmp_path)
    row = run.rows()["latin1.dcm"]
    assert (row["action"], row["reason"]) == ("quarantine", "missing_character_set")
    message = next(p["message"] for p in row["problems"] if p["code"] == "missing_character_set")
    assert "override" in message
    fixed = Run(export, tmp_path / "fixed",
                *configured(tmp_path, '[charset.overrides]\n"" = "ISO_IR 100"\n'))
    out = fixed.output("latin1.dcm")
    assert str(out.PatientName) == "Müller^Hans"
    assert out.SpecificCharacterSet == "ISO_IR 100"


def test_cp1251_override_is_written_as_utf8(tmp_path: Path) -> None:
    export = tmp_path / "export"
    ds = ct(PatientName=("PN", "Иванов^Иван".encode("cp1251")))
    del ds.SpecificCharacterSet
    save(ds, export / "ru.dcm")
    run = Run(export, tmp_path, *configured(tmp_path, '[charset.overrides]\n"" = "cp1251"\n'))
    out = run.output("ru.dcm")
    assert out.SpecificCharacterSet == "ISO_IR 192"
    assert str(out.PatientName) == "Иванов^Иван"
    assert changes(run.rows()["ru.dcm"])["(0008,0005)"]["new"] == "ISO_IR 192"


CHARSET_FILES = sorted((PYDICOM_DATA / "charset_files").glob("chr*.dcm"))


def test_every_pydicom_charset_file_reads_the_same_after_utf8_reencoding(tmp_path: Path) -> None:
    export = tmp_path / "export"
    shutil.copytree(PYDICOM_DATA / "charset_files", export)
    run = Run(export, tmp_path, *configured(tmp_path, '[charset]\noutput = "utf8"\n'))
    migrated = 0
    for name, row in run.rows().items():
        if row["status"] != "written":
            continue
        source = pydicom.dcmread(export / name)
        out = pydicom.dcmread(run.out / row["output_path"])
        for elem in source:
            if elem.VR in ("PN", "LO", "SH", "ST", "LT", "UT", "UC") and not elem.tag.group & 1:
                assert str(out[elem.tag].value) == str(elem.value), (name, elem.keyword)
        if any(c["rule"] == "charset_utf8" for c in row["changes"]):
            assert out.SpecificCharacterSet == "ISO_IR 192"
            migrated += 1
    assert migrated >= 8  # the ISO 2022 and single-byte examples with non-ASCII text


def test_missing_attributes_quarantine_or_are_generated_as_configured(tmp_path: Path) -> None:
    export = tmp_path / "export"
    ds = ct()
    del ds.SeriesInstanceUID
    del ds.ReferringPhysicianName
    save(ds, export / "noseries.dcm")
    run = Run(export, tmp_path)
    row = run.rows()["noseries.dcm"]
    assert (row["action"], row["reason"]) == ("quarantine", "missing_attribute")
    assert any("SeriesInstanceUID" in p["message"] for p in row["problems"])
    generate = configured(tmp_path, '[required]\nSeriesInstanceUID = "generate"\n')
    fixed = Run(export, tmp_path / "fixed", *generate)
    out = fixed.output("noseries.dcm")
    assert uid_problem(out.SeriesInstanceUID) is None
    assert "ReferringPhysicianName" in out and out.ReferringPhysicianName == ""
    again = Run(export, tmp_path / "again", *generate)
    assert again.output("noseries.dcm").SeriesInstanceUID == out.SeriesInstanceUID


def test_private_blocks_survive_header_changes(tmp_path: Path) -> None:
    export = tmp_path / "export"
    source = save(ct(StudyDate=("DA", b"2001.01.01")), export / "a.dcm")
    run = Run(export, tmp_path)
    out, src = run.output("a.dcm"), pydicom.dcmread(source)
    private = [e.tag for e in src if e.tag.group & 1]
    assert private
    for tag in private:
        assert out[tag].value == src[tag].value and out[tag].VR == src[tag].VR


def test_native_pixel_data_of_the_wrong_length_is_quarantined(tmp_path: Path) -> None:
    export = tmp_path / "export"
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    put_raw(ds, "PixelData", "OW", ds.PixelData[:-100])
    save(ds, export / "short.dcm")
    run = Run(export, tmp_path)
    row = run.rows()["short.dcm"]
    assert (row["action"], row["reason"]) == ("quarantine", "pixel_data_length_mismatch")


def test_the_catalogue_names_every_code_a_rule_can_report() -> None:
    for rule, (_, rule_codes, _) in RULES.items():
        for code in rule_codes:
            assert code in CATALOGUE, (rule, code)


def test_default_config_file_round_trips_and_typos_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(default_toml())
    assert load_config(path).as_dict() | {"source": None} == \
        parse_config({}).as_dict() | {"source": None}
    with pytest.raises(ConfigError, match="date_fromat"):
        parse_config({"rules": {"date_fromat": "fix"}})
    with pytest.raises(ConfigError, match="type 1"):
        parse_config({"required": {"Modality": "empty"}})
    with pytest.raises(ConfigError, match="profile"):
        parse_config({"profile": "lenient"})


def test_rules_command_prints_the_effective_set(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "rules.toml"
    config.write_text('[rules]\nvalue_too_long = "fix"\n')
    assert main(["rules", "--config", str(config)]) == 0
    text = capsys.readouterr().out
    assert "value_too_long        fix" in text and "invalid_uid" in text
    config.write_text('[rules]\nvalue_too_long = "maybe"\n')
    assert main(["rules", "--config", str(config)]) == 1
    assert "'fix', 'warn', 'quarantine'" in capsys.readouterr().err


def dciodvfy_errors(path: Path) -> list[str]:
    import subprocess

    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True,
                            timeout=60)
    return [line for line in (result.stdout + result.stderr).splitlines()
            if line.startswith("Error")]


@pytest.mark.skipif(shutil.which("dciodvfy") is None,
                    reason="dciodvfy (Debian package dicom3tools) is not installed; "
                           ".ci/run installs it")
def test_output_has_no_more_dciodvfy_errors_than_its_source(tmp_path: Path) -> None:
    export = tmp_path / "export"
    names = ["CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
             "rtplan.dcm", "rtdose.dcm", "JPEG2000.dcm", "SC_rgb_rle.dcm", "image_dfl.dcm",
             "test-SR.dcm", "rtstruct.dcm", "ExplVR_BigEndNoMeta.dcm", "no_meta.dcm",
             "waveform_ecg.dcm", "liver_1frame.dcm"]
    export.mkdir()
    for name in names:
        shutil.copy(get_testdata_file(name), export / name)
    bad = ct(StudyDate=("DA", b"2001.01.01"), PatientSex=("CS", b"m "))
    bad.SOPInstanceUID += ".1"
    save(bad, export / "bad.dcm")
    run = Run(export, tmp_path, *configured(tmp_path, '[required]\nPatientID = "warn"\n'))
    checked = 0
    for name, row in run.rows().items():
        if row["status"] != "written":
            continue
        before = dciodvfy_errors(export / name)
        after = dciodvfy_errors(run.out / row["output_path"])
        assert len(after) <= len(before), (name, before, after)
        checked += 1
    assert checked >= 10


def test_corrections_from_the_legacy_database_are_applied_and_audited(tmp_path: Path) -> None:
    export = tmp_path / "export"
    first = ct()
    first.AccessionNumber = "ACC1"
    save(first, export / "a.dcm")
    second = ct()
    second.SOPInstanceUID = second.SOPInstanceUID + ".2"
    second.StudyInstanceUID = second.StudyInstanceUID + ".9"
    second.PatientID = "OLD-7"
    second.AccessionNumber = ""
    del second.SpecificCharacterSet
    save(second, export / "b.dcm")
    corrections = tmp_path / "legacy_db.csv"
    corrections.write_text(
        "StudyInstanceUID,AccessionNumber,OldPatientID,PatientID,PatientName,PatientSex\n"
        f"{first.StudyInstanceUID},,,00123,Müller^Anna,F\n"
        ",,OLD-7,00456,Ærø^Ole,\n"
        "1.2.3.4.5.6.7.8.9,,,999,,\n", encoding="utf-8")
    run = Run(export, tmp_path, "--corrections", str(corrections))
    assert run.exit_code == 0
    a, b = run.output("a.dcm"), run.output("b.dcm")
    assert (a.PatientID, str(a.PatientName), a.PatientSex) == ("00123", "Müller^Anna", "F")
    assert (b.PatientID, str(b.PatientName)) == ("00456", "Ærø^Ole")
    # "Ærø" cannot be written in the default repertoire b declares: b becomes UTF-8.
    assert b.SpecificCharacterSet == "ISO_IR 192"
    rows = run.rows()
    assert rows["a.dcm"]["output_path"].startswith("00123/")
    rules = {c["tag"]: c["rule"] for c in rows["a.dcm"]["changes"]}
    assert rules["(0010,0020)"] == "legacy_db_correction"
    assert {c["tag"]: c["rule"] for c in rows["b.dcm"]["changes"]}["(0010,0020)"] == \
        "patient_merge"
    # CT_small declares ISO_IR 100, which holds "ü": the declared set is kept.
    assert a.SpecificCharacterSet == "ISO_IR 100"
    orphans = pd.read_parquet(run.manifests / run.run / "corrections_orphans.parquet")
    assert "1.2.3.4.5.6.7.8.9" in set(orphans["value"])
    assert "not_in_legacy_db" in codes(rows["b.dcm"])


def test_conflicting_corrections_quarantine_the_study(tmp_path: Path) -> None:
    export = tmp_path / "export"
    ds = ct()
    save(ds, export / "a.dcm")
    corrections = tmp_path / "legacy_db.csv"
    corrections.write_text("StudyInstanceUID,PatientID\n"
                           f"{ds.StudyInstanceUID},111\n{ds.StudyInstanceUID},222\n")
    run = Run(export, tmp_path, "--corrections", str(corrections))
    row = run.rows()["a.dcm"]
    assert (row["action"], row["reason"]) == ("quarantine", "correction_conflict")
    message = next(p["message"] for p in row["problems"] if p["code"] == "correction_conflict")
    assert "111" in message and "222" in message


def test_decode_check_records_corrupt_data_and_survives_a_decoder_crash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    export = tmp_path / "export"
    export.mkdir()
    shutil.copy(get_testdata_file("JPEG2000.dcm"), export / "good_j2k.dcm")
    data = bytearray(Path(get_testdata_file("JPEG2000.dcm")).read_bytes())
    first = pydicom.dcmread(get_testdata_file("JPEG2000.dcm"))
    fragment = data.index(bytes(first.PixelData[8 + 8:8 + 8 + 32]))  # inside the codestream
    data[fragment:fragment + 16] = bytes(16)
    (export / "garbled_j2k.dcm").write_bytes(data)
    crash = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    crash.StudyDescription = "SEGFAULT-HERE"
    crash.SOPInstanceUID += ".7"
    save(crash, export / "crash.dcm")
    shutil.copy(get_testdata_file("MR_small.dcm"), export / "after.dcm")
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # for the worker's decoder
    run = Run(export, tmp_path, *configured(
        tmp_path, '[pixel]\ndecode_check = "all"\ndecoder = "crashing_decoder:decode"\n'))
    assert run.exit_code == 0
    rows = run.rows()
    assert rows["good_j2k.dcm"]["status"] == "written"
    assert rows["garbled_j2k.dcm"]["reason"] == "decode_failed"
    assert rows["crash.dcm"]["reason"] == "decoder_crash"
    assert "SIGSEGV" in next(p["message"] for p in rows["crash.dcm"]["problems"]
                             if p["code"] == "decoder_crash")
    assert rows["after.dcm"]["status"] == "written"  # the run went on
