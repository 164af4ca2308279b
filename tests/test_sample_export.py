"""Tests for migrate_fs.sample_export, the deterministic sample PACS export generator, and its
command line scripts/make_sample_export.py."""

from __future__ import annotations

import hashlib
import re
import struct
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import pydicom
import pytest
from conftest import content_digest, files_below
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    BasicTextSRStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    GrayscaleSoftcopyPresentationStateStorage,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    KeyObjectSelectionDocumentStorage,
    RLELossless,
)

from migrate_fs import sample_export

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_sample_export.py"
# 25 images (12 regular + 1 CR + 12 hostile): enough for every encoding of the cycle; and the
# 24 objects of the legacy pitfalls.
SMALL = dict(patients=2, studies_per_patient=1, series_per_study=2, images_per_series=3, cr=1)
PITFALL_MODALITIES = {"CT": 5, "KO": 1, "MR": 17, "PR": 1}
HOSTILE_IDS = {"../../etc", "a/b", "CON", ""}
OLE_SIGNATURE = bytes.fromhex("D0CF11E0A1B11AE1")
PIXEL_DATA_OW = b"\xe0\x7f\x10\x00OW\x00\x00"  # (7FE0,0010) OW, explicit VR little endian
IDENTIFYING = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    return sample_export


@dataclass
class Export:
    root: Path
    counts: dict


@pytest.fixture(scope="module")
def export(gen: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Export:
    root = tmp_path_factory.mktemp("export") / "out"
    return Export(root, gen.make_sample_export(root, **SMALL))


@dataclass
class Obj:
    """One file of the export as a reader sees it."""

    path: Path
    data: bytes
    ds: Dataset | None

    @property
    def part10(self) -> bool:
        return self.data[128:132] == b"DICM"

    @property
    def transfer_syntax(self) -> str:
        """Transfer syntax from the file meta, or ``raw-implicit``/``raw-explicit``."""
        if self.part10:
            return self.ds.file_meta.TransferSyntaxUID
        return "raw-explicit" if self.data[4:6].isalpha() else "raw-implicit"


def read(path: Path) -> Obj:
    data = path.read_bytes()
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception:
        ds = None
    return Obj(path, data, ds)


def decoded_pixels(obj: Obj) -> np.ndarray:
    """pixel_array, telling pydicom the transfer syntax of raw datasets first."""
    if not obj.part10:
        obj.ds.file_meta = FileMetaDataset()
        obj.ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if obj.transfer_syntax == "raw-implicit"
            else ExplicitVRLittleEndian)
    return obj.ds.pixel_array


def is_complete_object(gen: ModuleType, obj: Obj) -> bool:
    """Parses, has the identifying UIDs and, for images, decodes to the expected pixels."""
    if obj.ds is None or not all(k in obj.ds for k in IDENTIFYING):
        return False
    if "PixelData" not in obj.ds:
        return True
    try:
        pixels = decoded_pixels(obj)
    except Exception:
        return False
    expected = gen.synthetic_pixels(obj.ds.Modality, obj.ds.InstanceNumber,
                                    obj.ds.SOPInstanceUID)
    return np.array_equal(pixels, expected)


def pitfall_paths(export: Export) -> set[Path]:
    return {export.root / p for paths in export.counts["pitfalls"].values() for p in paths}


@pytest.fixture(scope="module")
def objects(gen: ModuleType, export: Export) -> dict[str, list[Obj]]:
    """Files split into good DICOM objects, the legacy pitfalls and the rest."""
    split: dict[str, list[Obj]] = {"dicom": [], "pitfall": [], "other": []}
    legacy = pitfall_paths(export)
    for path in files_below(export.root):
        obj = read(path)
        if path in legacy:
            split["pitfall"].append(obj)
        else:
            split["dicom" if is_complete_object(gen, obj) else "other"].append(obj)
    return split


def test_same_seed_gives_identical_tree(gen, export, tmp_path):
    again = tmp_path / export.root.name  # the rules name the export and its side files
    counts = gen.make_sample_export(again, **SMALL)
    assert content_digest(again) == content_digest(export.root)
    assert counts["pitfalls"] == export.counts["pitfalls"]
    first, second = Path(export.counts["corrections"]), Path(counts["corrections"])
    assert first.read_bytes() == second.read_bytes()
    rules = Path(export.counts["rules"]).read_text().replace(str(export.root.parent), "ROOT")
    assert Path(counts["rules"]).read_text().replace(str(tmp_path), "ROOT") == rules


def test_different_seed_differs(gen, export, tmp_path):
    other = content_digest(_run(gen, tmp_path / "seed1", **SMALL, seed=1))
    mine = content_digest(export.root)
    assert other != mine
    shared = set(other.values()) & set(mine.values())
    assert shared <= {hashlib.sha256(b"").hexdigest()}  # only the zero-byte junk file


def _run(gen: ModuleType, root: Path, **kwargs) -> Path:
    gen.make_sample_export(root, **kwargs)
    return root


def test_counts_match_files_on_disk(export, objects):
    paths, counts = files_below(export.root), export.counts
    assert counts["files"] == len(paths)
    assert counts["bytes"] == sum(p.stat().st_size for p in paths)
    assert counts["dicom"] + counts["junk"] == counts["files"]
    assert counts["dicom"] == len(objects["dicom"]) + len(objects["pitfall"])
    assert len(objects["pitfall"]) == 24
    assert counts["junk"] == len(objects["other"]) == 5
    assert sum(counts["encodings"].values()) == counts["dicom"]
    regular = Counter({"CR": 1, "CT": 6, "KO": 1, "MR": 18, "PR": 1, "SR": 1})
    assert counts["modalities"] == dict(regular + Counter(PITFALL_MODALITIES))


def test_layout_is_a_vendor_store_without_extensions(export):
    series_file = r"vol\d\d/\d{4}/\d\d/\d\d/[0-9A-F]{8}/(\d{8}|Thumbs\.db)"
    pattern = re.compile(rf"{series_file}|vol\d\d/export\.log")
    for rel in content_digest(export.root):
        assert pattern.fullmatch(rel), rel
    assert len({Path(rel).parent for rel in content_digest(export.root)}) > 10


def test_every_object_reads_with_identifying_uids(objects):
    uids = [obj.ds.SOPInstanceUID for obj in objects["dicom"]]
    assert len(uids) == len(set(uids))
    for obj in objects["dicom"]:
        assert obj.ds.file_meta.get("MediaStorageSOPInstanceUID", obj.ds.SOPInstanceUID) \
            == obj.ds.SOPInstanceUID
        for keyword in ("PatientID", "PatientName", "StudyDate", "Modality", "InstanceNumber"):
            assert keyword in obj.ds, (obj.path, keyword)
        if "PixelData" in obj.ds:
            assert "FrameOfReferenceUID" in obj.ds


def test_every_encoding_is_present(export, objects):
    by_syntax: dict[str, list[Obj]] = {}
    for obj in objects["dicom"] + objects["pitfall"]:
        by_syntax.setdefault(obj.transfer_syntax, []).append(obj)
    assert set(by_syntax) == {
        ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian,
        DeflatedExplicitVRLittleEndian, RLELossless, JPEG2000Lossless,
        "raw-implicit", "raw-explicit",
    }
    assert max(by_syntax, key=lambda ts: len(by_syntax[ts])) == ExplicitVRLittleEndian
    for obj in by_syntax["raw-implicit"] + by_syntax["raw-explicit"]:
        assert not obj.part10 and obj.data[:2] == b"\x08\x00"  # starts at group 0008, no meta
        assert "PixelData" in obj.ds
    for obj in objects["dicom"] + objects["pitfall"]:
        if obj.part10:
            assert obj.data[:128] == bytes(128)
    assert {o.transfer_syntax for o in objects["pitfall"]} == {ExplicitVRLittleEndian,
                                                               ImplicitVRLittleEndian}
    assert [o.ds.SOPClassUID for o in by_syntax[DeflatedExplicitVRLittleEndian]] == [
        BasicTextSRStorage]
    names = {
        ExplicitVRLittleEndian: "part10-explicit-le", ImplicitVRLittleEndian: "part10-implicit-le",
        ExplicitVRBigEndian: "part10-explicit-be",
        DeflatedExplicitVRLittleEndian: "part10-deflated-explicit-le",
        RLELossless: "part10-rle-lossless", JPEG2000Lossless: "part10-jpeg2000-lossless",
        "raw-implicit": "raw-implicit-le", "raw-explicit": "raw-explicit-le",
    }
    on_disk = {names[ts]: len(objs) for ts, objs in by_syntax.items()}
    assert export.counts["encodings"] == on_disk
    assert on_disk["part10-rle-lossless"] == on_disk["part10-jpeg2000-lossless"] == 2


def test_big_endian_pixels_are_byte_swapped_on_disk(gen, objects):
    big = [o for o in objects["dicom"] if o.transfer_syntax == ExplicitVRBigEndian]
    assert big
    for obj in big:
        expected = gen.synthetic_pixels(obj.ds.Modality, obj.ds.InstanceNumber,
                                        obj.ds.SOPInstanceUID)
        assert obj.ds.PixelData == expected.astype(">u2").tobytes()
        pixels = obj.ds.pixel_array
        assert pixels.shape == (obj.ds.Rows, obj.ds.Columns)
        assert int(pixels.max()) < 2 ** obj.ds.BitsStored  # swapped bytes would overflow 12 bits
        assert np.array_equal(pixels, expected)


def test_non_image_objects_reference_existing_images(objects):
    by_class = {obj.ds.SOPClassUID: obj.ds for obj in objects["dicom"]}
    images = {obj.ds.SOPInstanceUID for obj in objects["dicom"] if "PixelData" in obj.ds}
    sr = by_class[BasicTextSRStorage]
    assert [item.ValueType for item in sr.ContentSequence] == ["TEXT"] * 3
    gsps = by_class[GrayscaleSoftcopyPresentationStateStorage]
    refs = {item.ReferencedSOPInstanceUID
            for series in gsps.ReferencedSeriesSequence for item in series.ReferencedImageSequence}
    kos = by_class[KeyObjectSelectionDocumentStorage]
    refs |= {item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
             for item in kos.ContentSequence if item.ValueType == "IMAGE"}
    assert len(refs) == 3 and refs <= images


def test_patients_charset_and_private_block(objects):
    datasets = [obj.ds for obj in objects["dicom"]]
    assert HOSTILE_IDS <= {ds.PatientID for ds in datasets}
    latin1 = [o for o in objects["dicom"] if o.ds.PatientName == "Müller^Jürgen"]
    assert latin1 and all(o.ds.SpecificCharacterSet == "ISO_IR 100" for o in latin1)
    assert all(b"M\xfcller^J\xfcrgen" in o.data for o in latin1
               if o.transfer_syntax != DeflatedExplicitVRLittleEndian)
    private = [ds for ds in datasets if (0x0009, 0x0010) in ds]
    assert 0 < len(private) < len(datasets)
    assert all(ds[0x0009, 0x0010].value == "ACME 1.1" and (0x0009, 0x1001) in ds
               for ds in private)


def test_junk_files_have_the_described_shape(export, objects):
    named = {obj.path.name: obj.data for obj in objects["other"] if not obj.path.name.isdigit()}
    numbered = sorted((obj.data for obj in objects["other"] if obj.path.name.isdigit()), key=len)
    assert set(named) == {"Thumbs.db", "export.log"} and len(numbered) == 3
    assert named["Thumbs.db"].startswith(OLE_SIGNATURE)
    assert "EXPORT" in named["export.log"].decode("ascii")
    empty, header, data = numbered
    assert empty == b""
    assert len(header) == 300 and header[128:132] == b"DICM"
    offset = data.index(PIXEL_DATA_OW)
    (declared,) = struct.unpack("<I", data[offset + 8: offset + 12])
    assert declared == 512 * 512 * 2
    assert offset + 12 < len(data) < offset + 12 + declared


def test_no_junk_no_hostile_no_pitfalls(gen, tmp_path):
    counts = gen.make_sample_export(tmp_path / "clean", patients=1, studies_per_patient=1,
                                    series_per_study=1, images_per_series=1, cr=0,
                                    junk=False, hostile=False, pitfalls=False)
    assert counts["junk"] == 0 and counts["dicom"] == counts["files"] == 4  # 1 CT, SR, PR, KO
    ids = {pydicom.dcmread(p, force=True).PatientID for p in files_below(tmp_path / "clean")}
    assert not ids & HOSTILE_IDS
    assert counts["pitfalls"] == {} and counts["corrections"] is counts["rules"] is None
    assert [p.name for p in tmp_path.iterdir()] == ["clean"]  # no corrections, no rules


def test_refuses_non_empty_output_dir(gen, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.me").write_text("other data")
    with pytest.raises(FileExistsError):
        gen.make_sample_export(out, **SMALL)
    assert [p.name for p in out.iterdir()] == ["keep.me"]
    assert [p.name for p in tmp_path.iterdir()] == ["busy"]  # no corrections or rules either


def test_cli_writes_summary_then_refuses_second_run(tmp_path):
    out = tmp_path / "cli"
    args = [sys.executable, str(SCRIPT), str(out), "--patients", "1", "--cr", "0",
            "--images-per-series", "1", "--no-hostile"]
    first = subprocess.run(args, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    summary, legacy, corrections, rules = first.stdout.strip().splitlines()
    assert "files" in summary and "24 DICOM objects" in legacy
    assert corrections.endswith(str(tmp_path / "cli.corrections.csv"))
    assert rules.endswith(str(tmp_path / "cli.rules.toml"))
    second = subprocess.run(args, capture_output=True, text=True, check=False)
    assert second.returncode == 2
    assert "not empty" in second.stderr


# --------------------------------------------------------------------------- legacy pitfalls

LATIN1_NAME = "Schröder^Käthe".encode("latin-1")
TEXT_VRS = ("AE", "CS", "LO", "LT", "PN", "SH", "ST", "UT")


@pytest.fixture(scope="module")
def pitfalls(export: Export) -> dict[str, list[Path]]:
    """Pitfall (its description) -> its files, in writing order."""
    return {label: [export.root / p for p in paths]
            for label, paths in export.counts["pitfalls"].items()}


def pitfall(pitfalls: dict[str, list[Path]], *words: str) -> list[Path]:
    """The files of the one pitfall whose description holds every word."""
    found = [paths for label, paths in pitfalls.items() if all(w in label for w in words)]
    assert len(found) == 1, (words, list(pitfalls))
    return found[0]


def header(path: Path) -> Dataset:
    """A fresh read: its elements are still the raw bytes of the file."""
    return pydicom.dcmread(path, stop_before_pixels=True)


def raw(ds: Dataset, keyword: str) -> bytes:
    """The value of an element byte for byte, as stored in the file."""
    elem = ds.get_item(keyword)
    assert elem is not None and elem.is_raw, keyword
    return elem.value


def test_pitfalls_each_have_their_files(pitfalls):
    sizes = {label.split(":")[0]: 0 for label in pitfalls}
    for label, paths in pitfalls.items():
        sizes[label.split(":")[0]] += len(paths)
        assert len({p.parent for p in paths}) == 1  # one series folder each
    assert sizes == {"values": 6, "UIDs": 5, "charset": 6, "pixels": 2, "required": 3,
                     "corrections": 2}


def test_pitfall_values_of_an_old_console(pitfalls):
    paths = pitfall(pitfalls, "2001.01.02")
    assert len(paths) == 3
    for path in paths:
        ds = header(path)
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        for keyword in ("StudyDate", "SeriesDate", "ContentDate"):
            assert raw(ds, keyword) == b"2001.01.02"
        assert raw(ds, "StudyTime") == b"12:30:45"
        assert raw(ds, "SliceThickness") == b"2,5 "  # a decimal comma
        station = raw(ds, "StationName")
        assert ds["StationName"].VR == "SH" and station.endswith(b"\x00\x00")
        assert station.rstrip(b"\x00").isalnum()
        description = raw(ds, "SeriesDescription")
        assert ds["SeriesDescription"].VR == "LO" and len(description) % 2 == 1
        assert not description.endswith(b" ")  # odd length, not padded


def test_pitfall_values_of_a_us_workstation(pitfalls):
    paths = pitfall(pitfalls, "1/2/2001")
    assert len(paths) == 3
    for number, path in enumerate(paths, 1):
        ds = header(path)
        assert ds.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
        assert raw(ds, "StudyDate") == b"1/2/2001"  # 1 February or 2 January?
        assert raw(ds, "PatientBirthDate") == b"12/31/1999"  # month first: the only reading
        assert raw(ds, "PatientSex") == b"m "
        assert raw(ds, "InstanceNumber") == f"{number}.0 ".encode()
        assert len(raw(ds, "StudyDescription").rstrip(b" ")) > 64  # LO holds 64


def test_pitfall_invalid_uids_and_their_references(pitfalls):
    from migrate_fs.values import uid_problem

    images = [header(p) for p in pitfall(pitfalls, "StudyInstanceUID over 64")]
    assert len(images) == 3
    study = images[0].StudyInstanceUID
    assert uid_problem(study) == "longer than 64 characters"
    assert len({ds.SeriesInstanceUID for ds in images}) == 1
    sops = {ds.SOPInstanceUID for ds in images}
    for ds in images:
        assert ds.StudyInstanceUID == study
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        for uid in (ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.FrameOfReferenceUID):
            assert uid_problem(uid) == "component with a leading zero", uid
    (gsps_path,) = pitfall(pitfalls, "PR referencing")
    gsps = header(gsps_path)
    assert gsps.SOPClassUID == GrayscaleSoftcopyPresentationStateStorage
    assert gsps.StudyInstanceUID == study and uid_problem(gsps.SOPInstanceUID) is None
    (series,) = gsps.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == images[0].SeriesInstanceUID
    assert {i.ReferencedSOPInstanceUID for i in series.ReferencedImageSequence} == sops
    (kos_path,) = pitfall(pitfalls, "KO referencing")
    kos = header(kos_path)
    assert kos.SOPClassUID == KeyObjectSelectionDocumentStorage and kos.StudyInstanceUID == study
    refs = {i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
            for i in kos.ContentSequence if i.ValueType == "IMAGE"}
    (evidence,) = kos.CurrentRequestedProcedureEvidenceSequence
    assert evidence.StudyInstanceUID == study
    assert refs and refs <= sops


def test_pitfall_character_sets(pitfalls):
    declared = [header(p) for p in pitfall(pitfalls, "ISO_IR 100 declared")]
    undeclared = [header(p) for p in pitfall(pitfalls, "no SpecificCharacterSet")]
    assert declared and undeclared
    for ds in declared:
        assert ds.SpecificCharacterSet == "ISO_IR 100" and raw(ds, "PatientName") == LATIN1_NAME
    for ds in undeclared:
        assert "SpecificCharacterSet" not in ds and raw(ds, "PatientName") == LATIN1_NAME
        assert ds.PatientID == declared[0].PatientID  # the same patient, an older modality
    for path in pitfall(pitfalls, "Not Supplied"):
        ds = header(path)
        assert ds.SpecificCharacterSet == "Not Supplied"  # pydicom decodes it on reading
        assert b"\x08\x00\x05\x00CS\x0c\x00Not Supplied" in path.read_bytes()
        texts = [e.value for e in ds.elements() if e.is_raw and e.VR in TEXT_VRS]
        assert texts and all(isinstance(t, bytes) and t.isascii() for t in texts)


def test_pitfall_pixel_data_one_row_short(gen, pitfalls):
    good, short = pitfall(pitfalls, "Pixel Data one row shorter")
    for path, rows in ((good, 256), (short, 255)):
        ds = pydicom.dcmread(path)
        assert (ds.Rows, ds.Columns, ds.BitsAllocated, ds.SamplesPerPixel) == (256, 256, 16, 1)
        assert len(ds.PixelData) == rows * 256 * 2
        expected = gen.synthetic_pixels(ds.Modality, ds.InstanceNumber, ds.SOPInstanceUID)
        assert ds.PixelData == expected[:rows].astype("<u2").tobytes()


def test_pitfall_series_without_series_uid(pitfalls):
    paths = pitfall(pitfalls, "no SeriesInstanceUID")
    neighbour = header(pitfall(pitfalls, "Pixel Data one row shorter")[0])
    assert len(paths) == 3
    for path in paths:
        ds = header(path)
        assert "SeriesInstanceUID" not in ds
        assert ds.StudyInstanceUID == neighbour.StudyInstanceUID and ds.SeriesNumber == 2


def test_corrections_csv_merges_the_emergency_patient(export, objects, pitfalls):
    from migrate_fs.plan.corrections import load_corrections

    path = Path(export.counts["corrections"])
    assert path.parent == export.root.parent and path.name == "out.corrections.csv"
    rows = load_corrections(path).to_pylist()
    assert len(rows) == 2
    merge, orphan = rows
    emergency = [header(p) for p in pitfall(pitfalls, "corrections:")]
    assert {ds.PatientID for ds in emergency} == {merge["OldPatientID"]}
    assert {str(ds.PatientName) for ds in emergency} == {"MUELLER^JUERGEN"}
    assert {ds.SpecificCharacterSet for ds in emergency} == {"ISO_IR 100"}
    real = [o.ds for o in objects["dicom"] if o.ds.PatientName == "Müller^Jürgen"]
    assert real and {ds.PatientID for ds in real} == {merge["PatientID"]}
    assert merge["PatientName"] == "Müller^Jürgen"
    assert {ds.PatientBirthDate for ds in emergency} == {ds.PatientBirthDate for ds in real}
    ids = {read(p).ds.PatientID for p in files_below(export.root) if read(p).ds is not None
           and "PatientID" in read(p).ds}
    assert orphan["OldPatientID"] not in ids and orphan["PatientID"]  # matches no object


def test_rules_toml_is_a_valid_config_listing_the_pitfalls(export):
    from migrate_fs.config import load_config

    path = Path(export.counts["rules"])
    assert path.parent == export.root.parent and path.name == "out.rules.toml"
    config = load_config(path)
    assert config.date_order == "MDY"
    assert config.overrides == {"": "ISO_IR 100", "Not Supplied": "ISO_IR 100"}
    assert config.required["SeriesInstanceUID"] == "generate"
    text = path.read_text(encoding="utf-8")
    for label, paths in export.counts["pitfalls"].items():
        assert f"#   {Path(paths[0]).parent.as_posix()}/: {label}" in text
    assert f"--corrections {export.counts['corrections']}" in text


def test_pitfalls_in_a_migration(export, tmp_path):
    """What the demo shows: the rules at work by default, and with the example config and
    corrections everything but the short Pixel Data migrated."""
    from migrate_fs import manifest
    from migrate_fs.cli import main

    def plan(run: str, *extra: str) -> dict[str, dict]:
        args = ["run", str(export.root), "--out", str(tmp_path / run), "--run", run,
                "--manifests", str(tmp_path / "m"), "--workers", "1", "--quiet", *extra]
        assert main(args) == 0
        rows = manifest.read_stage(tmp_path / "m", run, "plan").to_pylist()
        return {Path(r["locator"]).relative_to(export.root).as_posix(): r for r in rows}

    legacy = {p: label for label, paths in export.counts["pitfalls"].items() for p in paths}
    default = plan("default")
    codes = {p["code"] for path in legacy for p in default[path]["problems"] or []}
    assert codes >= {"invalid_date", "invalid_time", "invalid_decimal_string",
                     "invalid_integer_string", "invalid_code_string", "trailing_nul",
                     "value_too_long", "odd_length_value", "invalid_uid",
                     "missing_character_set", "invalid_character_set",
                     "pixel_data_length_mismatch", "missing_attribute"}
    quarantined = {legacy[p] for p in legacy if default[p]["action"] == "quarantine"}
    assert {label.split(":")[0] for label in quarantined} == {"charset", "pixels", "required"}
    fixed = plan("fixed", "--config", export.counts["rules"],
                 "--corrections", export.counts["corrections"])
    still = [p for p in legacy if fixed[p]["action"] == "quarantine"]
    assert [fixed[p]["reason"] for p in still] == ["pixel_data_length_mismatch"]
    merged = [fixed[p] for p, label in legacy.items() if label.startswith("corrections:")]
    assert merged and all(r["output_path"].startswith("00000001/") for r in merged)


def test_side_files_are_never_inside_the_export(gen, tmp_path):
    out = tmp_path / "export"
    for bad in (dict(corrections=out / "fixes.csv"), dict(rules=out / "x" / "rules.toml"),
                dict(corrections=tmp_path / "same", rules=tmp_path / "same")):
        with pytest.raises(ValueError):
            gen.make_sample_export(out, **BENCH_SMALL_PITFALLS, **bad)
        assert list(tmp_path.iterdir()) == []
    counts = gen.make_sample_export(out, **BENCH_SMALL_PITFALLS,
                                    corrections=tmp_path / "db" / "fixes.csv",
                                    rules=tmp_path / "rules.toml")
    assert counts["corrections"] == str(tmp_path / "db" / "fixes.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db", "export", "rules.toml"]
    again = gen.make_sample_export(tmp_path / "again", **BENCH_SMALL_PITFALLS,
                                   corrections=tmp_path / "db" / "fixes.csv",
                                   rules=tmp_path / "rules.toml")  # replaced, not refused
    assert again["rules"] == str(tmp_path / "rules.toml")


def test_cli_side_file_options(tmp_path):
    base = [sys.executable, str(SCRIPT), "--patients", "1", "--cr", "0", "--images-per-series",
            "1", "--no-hostile", "--no-junk"]
    done = subprocess.run([*base, str(tmp_path / "e"), "--corrections", str(tmp_path / "c.csv"),
                           "--rules", str(tmp_path / "r.toml")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert f"legacy database corrections: {tmp_path / 'c.csv'}" in done.stdout
    assert f"example rules: {tmp_path / 'r.toml'}" in done.stdout
    inside = subprocess.run([*base, str(tmp_path / "f"), "--rules", str(tmp_path / "f" / "r")],
                            capture_output=True, text=True, check=False)
    assert inside.returncode == 2 and "inside the export" in inside.stderr
    assert not (tmp_path / "f").exists()
    none = subprocess.run([*base, str(tmp_path / "g"), "--no-pitfalls"],
                          capture_output=True, text=True, check=False)
    assert none.returncode == 0 and len(none.stdout.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.csv", "e", "g", "r.toml"]


BENCH_SMALL_PITFALLS = dict(patients=1, studies_per_patient=1, series_per_study=1,
                            images_per_series=1, cr=0, junk=False, hostile=False)


# --------------------------------------------------------------------------- benchmark options

# 12 CT/MR images of 32x32 pixels: a CT study, then an MR study; no CR, junk or hostile IDs.
BENCH_SMALL = dict(patients=2, studies_per_patient=1, series_per_study=2, images_per_series=3,
                   cr=0, junk=False, hostile=False, pitfalls=False, matrix=32)
NATIVE_OR_RAW = {ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian,
                 "raw-implicit", "raw-explicit"}


def bench_objects(gen: ModuleType, root: Path, **kwargs) -> list[Obj]:
    """Generate an export with benchmark options; every file must be a complete object."""
    gen.make_sample_export(root, **kwargs)
    objs = [read(p) for p in files_below(root)]
    for obj in objs:
        assert obj.ds is not None and all(k in obj.ds for k in IDENTIFYING), obj.path
        if "PixelData" in obj.ds and "NumberOfFrames" not in obj.ds:
            expected = gen.synthetic_pixels(obj.ds.Modality, obj.ds.InstanceNumber,
                                            obj.ds.SOPInstanceUID, (obj.ds.Rows, obj.ds.Columns))
            assert np.array_equal(decoded_pixels(obj), expected), obj.path
    return objs


def written_order(obj: Obj) -> tuple[int, int, int]:
    """Sort key: the order the generator writes objects in (study, series, instance)."""
    return int(obj.ds.StudyID), int(obj.ds.SeriesNumber), int(obj.ds.InstanceNumber)


def images_of(objs: list[Obj], modalities: tuple[str, ...] = ("CT", "MR", "CR")) -> list[Obj]:
    return [o for o in objs if "PixelData" in o.ds and o.ds.Modality in modalities]


def test_matrix_resizes_ct_and_mr_only(gen, tmp_path):
    objs = bench_objects(gen, tmp_path / "m", **{**BENCH_SMALL, "cr": 1, "matrix": 16})
    sizes = {(o.ds.Modality, o.ds.Rows, o.ds.Columns) for o in images_of(objs)}
    assert sizes == {("CT", 16, 16), ("MR", 16, 16), ("CR", 2500, 2000)}
    gsps = next(o.ds for o in objs if o.ds.Modality == "PR")
    assert gsps.DisplayedAreaSelectionSequence[0].DisplayedAreaBottomRightHandCorner == [16, 16]


def test_compressed_share_alternates_rle_and_jpeg2000(gen, tmp_path):
    objs = bench_objects(gen, tmp_path / "c", **BENCH_SMALL, compressed_share=1 / 3)
    cross = sorted(images_of(objs, ("CT", "MR")), key=written_order)
    syntaxes = [o.transfer_syntax for o in cross]
    assert len(cross) == 12
    compressed = [i for i, ts in enumerate(syntaxes) if ts in (RLELossless, JPEG2000Lossless)]
    assert compressed == [2, 5, 8, 11]  # every third image, evenly spread
    assert [syntaxes[i] for i in compressed] == [RLELossless, JPEG2000Lossless] * 2
    # the cycle's other slots stay: implicit VR, big endian and a raw dataset
    assert {ImplicitVRLittleEndian, ExplicitVRBigEndian, "raw-implicit"} <= set(syntaxes)


def test_raw_share_replaces_the_cycles_raw_and_never_compresses(gen, tmp_path):
    objs = bench_objects(gen, tmp_path / "r", **{**BENCH_SMALL, "cr": 2}, raw_share=0.3,
                         compressed_share=0.25)
    images = images_of(objs)
    syntaxes = [o.transfer_syntax for o in images]
    raw = [o for o in images if not o.part10]
    assert len(images) == 14 and len(raw) == 4  # floor(14 * 0.3); one moved off a compressed
    assert sorted(o.transfer_syntax for o in raw) == ["raw-explicit"] * 2 + ["raw-implicit"] * 2
    compressed = [s for s in syntaxes if s in (RLELossless, JPEG2000Lossless)]
    assert len(compressed) == 3  # floor(12 CT/MR images * 0.25); CR is never compressed
    assert all(o.ds.Modality != "CR" for o in images if o.transfer_syntax not in NATIVE_OR_RAW)
    for obj in raw:
        assert obj.data[:2] == b"\x08\x00"


def test_zero_shares_give_plain_native_images(gen, tmp_path):
    objs = bench_objects(gen, tmp_path / "z", **BENCH_SMALL, compressed_share=0, raw_share=0)
    syntaxes = {o.transfer_syntax for o in images_of(objs)}
    assert syntaxes == {ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian}


def test_header_only_share_spreads_sr_pr_ko(gen, tmp_path):
    objs = bench_objects(gen, tmp_path / "h", **BENCH_SMALL, header_only_share=0.5)
    header_only = [o for o in objs if "PixelData" not in o.ds]
    assert len(objs) == 24 and len(header_only) == 12
    assert {o.ds.Modality for o in header_only} == {"SR", "PR", "KO"}
    assert len({o.ds.StudyInstanceUID for o in header_only}) == 2  # both regular studies
    uids = [o.ds.SOPInstanceUID for o in objs]
    assert len(uids) == len(set(uids))
    images = {o.ds.SOPInstanceUID for o in images_of(objs)}
    for obj in header_only:
        if obj.ds.Modality == "KO":
            refs = {i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
                    for i in obj.ds.ContentSequence if i.ValueType == "IMAGE"}
            assert refs and refs <= images
    no_header_only = bench_objects(gen, tmp_path / "h0", **BENCH_SMALL, header_only_share=0)
    assert all("PixelData" in o.ds for o in no_header_only)


def test_benchmark_options_are_deterministic(gen, tmp_path):
    options = dict(**BENCH_SMALL, compressed_share=0.3, raw_share=0.2, header_only_share=0.2)
    first, second = tmp_path / "a", tmp_path / "b"
    gen.make_sample_export(first, **options)
    gen.make_sample_export(second, **options)
    assert content_digest(first) == content_digest(second)


def test_multiframe_is_streamed_and_reads_back(gen, tmp_path):
    import tracemalloc

    frame_bytes = 512 * 512 * 2
    root = tmp_path / "mf"
    tracemalloc.start()
    try:
        counts = gen.make_sample_export(root, **{**BENCH_SMALL, "patients": 1},
                                        multiframe_gb=0.1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    frames = round(0.1e9 / frame_bytes)
    assert peak < 60e6  # chunks of 32 frames, never the 100 MB of pixel data
    big = max(files_below(root), key=lambda p: p.stat().st_size)
    assert counts["bytes"] == sum(p.stat().st_size for p in files_below(root))
    ds = pydicom.dcmread(big)
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2.1"  # Enhanced CT Image Storage
    assert ds.NumberOfFrames == frames == len(ds.PerFrameFunctionalGroupsSequence)
    assert len(ds.PixelData) == frames * frame_bytes
    data = big.read_bytes()
    offset = data.rindex(PIXEL_DATA_OW)
    (declared,) = struct.unpack("<I", data[offset + 8: offset + 12])
    assert declared == frames * frame_bytes == len(data) - offset - 12
    base = gen.synthetic_pixels("CT", 1, ds.SOPInstanceUID, (512, 512))
    pixels = ds.pixel_array
    for k in (0, 1, 63, 64, frames - 1):
        assert np.array_equal(pixels[k], base + k % 64)


def test_benchmark_options_are_validated(gen, tmp_path):
    for bad in (dict(matrix=0), dict(compressed_share=1.5), dict(raw_share=-0.1),
                dict(header_only_share=1.0), dict(multiframe_gb=0), dict(multiframe_gb=5)):
        with pytest.raises(ValueError):
            gen.make_sample_export(tmp_path / "bad", **{**BENCH_SMALL, **bad})
        assert not (tmp_path / "bad").exists()


def test_cli_benchmark_flags_match_the_function(gen, tmp_path):
    options = dict(**BENCH_SMALL, compressed_share=0.3, raw_share=0.2, header_only_share=0.2)
    gen.make_sample_export(tmp_path / "api", **options)
    args = [sys.executable, str(SCRIPT), str(tmp_path / "cli"), "--patients", "2",
            "--studies-per-patient", "1", "--series-per-study", "2", "--images-per-series", "3",
            "--cr", "0", "--no-junk", "--no-hostile", "--no-pitfalls", "--matrix", "32",
            "--compressed-share", "0.3",
            "--raw-share", "0.2", "--header-only-share", "0.2"]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert content_digest(tmp_path / "cli") == content_digest(tmp_path / "api")
    bad = subprocess.run([*args[:3], "--compressed-share", "2"], capture_output=True, text=True,
                         check=False)
    assert bad.returncode == 2 and "share" in bad.stderr
