"""Tests for ``--realistic-headers`` of the sample export generator (migrate_fs.sample_export):
headers of the size a real scanner writes (sequences, private blocks, 150-250 elements), values
of the right VR and VM, the output without the flag unchanged, and a migration that treats the
realistic export exactly as the plain one."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import Migration, content_digest, files_below
from pydicom.datadict import dictionary_VM, dictionary_VR
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from migrate_fs import sample_export

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_sample_export.py"
# A CT and an MR study of 2 x 3 images of 32x32 pixels, a CR image, 6 SR/PR/KO objects spread
# over the two studies, raw and compressed images, the junk files and the 24 legacy pitfalls.
SMALL = dict(patients=2, studies_per_patient=1, series_per_study=2, images_per_series=3, cr=1,
             hostile=False, matrix=32, header_only_share=0.3, raw_share=0.2,
             compressed_share=0.2)
SMALL_ARGS = ["--patients", "2", "--studies-per-patient", "1", "--series-per-study", "2",
              "--images-per-series", "3", "--cr", "1", "--no-hostile", "--matrix", "32",
              "--header-only-share", "0.3", "--raw-share", "0.2", "--compressed-share", "0.2"]
IMAGES = ("CT", "MR", "CR")
HEADER_ONLY = ("SR", "PR", "KO")
# Reference targets that are not objects of an export: the RIS's study and the modality's
# performed procedure step.
NOT_IN_EXPORT = {"1.2.840.10008.3.1.2.3.1", "1.2.840.10008.3.1.2.3.3"}
# Basic Text SR relationship constraints (PS3.3 Table A.35.1-2): (source, relationship) ->
# the target value types allowed.
ANY = ("TEXT", "CODE", "DATETIME", "DATE", "TIME", "UIDREF", "PNAME")
REFERENCES = ("IMAGE", "WAVEFORM", "COMPOSITE")
BASIC_TEXT_SR = {
    ("CONTAINER", "CONTAINS"): (*ANY, *REFERENCES, "CONTAINER"),
    ("CONTAINER", "HAS OBS CONTEXT"): (*ANY, "COMPOSITE"),
    ("TEXT", "INFERRED FROM"): (*ANY, *REFERENCES),
    ("TEXT", "HAS PROPERTIES"): (*ANY, *REFERENCES),
}
KEY_OBJECT = {  # Key Object Selection Document (PS3.3 Table A.35.4-2)
    ("CONTAINER", "CONTAINS"): ("TEXT", *REFERENCES),
    ("CONTAINER", "HAS OBS CONTEXT"): ("TEXT", "CODE", "UIDREF", "PNAME"),
    ("CONTAINER", "HAS CONCEPT MOD"): ("CODE",),
}
FORMATS = {  # VR -> the form of one value
    "DA": r"\d{8}", "TM": r"\d{6}(\.\d{1,6})?", "AS": r"\d{3}[DWMY]",
    "IS": r"[+-]?\d{1,12}", "CS": r"[A-Z0-9 _]{0,16}", "SH": r"[^\\]{0,16}",
    "LO": r"[^\\]{0,64}", "UI": r"(0|[1-9]\d*)(\.(0|[1-9]\d*))*",
}


@dataclass
class Export:
    root: Path
    counts: dict
    objects: dict[str, Dataset]  # relative path -> dataset, for every readable DICOM object

    def of(self, *modalities: str, pitfalls: bool = False) -> list[Dataset]:
        """The datasets of these modalities (without the legacy pitfalls unless asked)."""
        legacy = {p for paths in self.counts["pitfalls"].values() for p in paths}
        return [ds for path, ds in self.objects.items()
                if ds.Modality in modalities and (pitfalls or path not in legacy)]


def cut_in_pixels(ds: Dataset) -> bool:
    """Native Pixel Data shorter than Rows x Columns x 2 bytes."""
    syntax = ds.file_meta.get("TransferSyntaxUID")
    native = syntax is None or not syntax.is_encapsulated
    return "PixelData" in ds and native and len(ds.PixelData) < ds.Rows * ds.Columns * 2


def load(root: Path, counts: dict) -> Export:
    """The export's DICOM objects: its files but the junk (the one cut in its pixel data, too,
    unlike the legacy pitfall that lacks a row)."""
    legacy = {p for paths in counts["pitfalls"].values() for p in paths}
    objects = {}
    for path in files_below(root):
        name = path.relative_to(root).as_posix()
        try:
            ds = pydicom.dcmread(path, force=True)
            _ = ds.SOPInstanceUID, ds.Modality  # junk does not parse that far
        except Exception:
            continue
        if name in legacy or not cut_in_pixels(ds):
            objects[name] = ds
    return Export(root, counts, objects)


@pytest.fixture(scope="module")
def realistic(tmp_path_factory: pytest.TempPathFactory) -> Export:
    root = tmp_path_factory.mktemp("realistic") / "export"
    return load(root, sample_export.make_sample_export(root, **SMALL, realistic_headers=True))


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Export:
    root = tmp_path_factory.mktemp("plain") / "export"
    return load(root, sample_export.make_sample_export(root, **SMALL))


def walk(ds: Dataset, depth: int = 0) -> Iterator[tuple[pydicom.DataElement, int]]:
    """Every element of ``ds`` and of its sequences' items, with its nesting depth."""
    for elem in ds:
        yield elem, depth
        if elem.VR == "SQ":
            for item in elem.value:
                yield from walk(item, depth + 1)


def element_count(ds: Dataset) -> int:
    return sum(1 for _ in walk(ds))


def private_block_size(ds: Dataset, group: int, creator: str) -> int:
    """Elements of the private block of ``creator`` in ``group`` (creator element excluded)."""
    block = ds.private_block(group, creator)
    return sum(1 for elem in ds if elem.tag.group == group
               and elem.tag.element >> 8 == block.block_start >> 8)


def with_pixels_decoded(ds: Dataset) -> np.ndarray:
    """pixel_array, telling pydicom the transfer syntax of raw datasets first."""
    if "TransferSyntaxUID" not in ds.get("file_meta", {}):
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = (ImplicitVRLittleEndian if ds.is_implicit_VR
                                          else ExplicitVRLittleEndian)
    return ds.pixel_array


def test_cli_flag_matches_the_function(realistic, tmp_path):
    out = tmp_path / "export"
    done = subprocess.run([sys.executable, str(SCRIPT), str(out), *SMALL_ARGS,
                           "--realistic-headers"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert content_digest(out) == content_digest(realistic.root)  # and deterministic
    usage = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True,
                           text=True, check=True).stdout
    assert usage.rindex("--realistic-headers") > usage.index("benchmark options")


def test_images_carry_a_scanner_sized_header(realistic):
    images = realistic.of(*IMAGES, pitfalls=True)
    assert {ds.Modality for ds in images} == set(IMAGES)
    for ds in images:
        count = element_count(ds)
        assert 120 <= count <= 300, (ds.Modality, count)
        assert sum(elem.VR == "SQ" for elem, _ in walk(ds)) >= 8
        for keyword in ("StationName", "ManufacturerModelName", "DeviceSerialNumber",
                        "SoftwareVersions", "InstitutionAddress", "OperatorsName",
                        "ProtocolName", "BodyPartExamined", "PatientAge", "PatientWeight",
                        "AcquisitionDate", "AcquisitionTime", "AcquisitionNumber",
                        "InstanceCreationDate", "LossyImageCompression",
                        "RequestAttributesSequence", "ProcedureCodeSequence",
                        "ReferencedPerformedProcedureStepSequence", "ReferencedStudySequence",
                        "AnatomicRegionSequence", "SmallestImagePixelValue"):
            assert keyword in ds, (ds.Modality, keyword)
    by_modality = {m: [ds for ds in images if ds.Modality == m] for m in IMAGES}
    assert all("CTDIPhantomTypeCodeSequence" in ds and "ConvolutionKernel" in ds
               for ds in by_modality["CT"])
    assert all("ImagingFrequency" in ds and "AcquisitionMatrix" in ds for ds in by_modality["MR"])
    assert all("PlateID" in ds and "ImagerPixelSpacing" in ds for ds in by_modality["CR"])
    means = {m: np.mean([element_count(ds) for ds in objs]) for m, objs in by_modality.items()}
    assert all(150 <= mean <= 250 for mean in means.values()), means


def test_private_blocks_as_vendors_write_them(realistic):
    for ds in realistic.of(*IMAGES):
        creator = f"ACME {ds.Modality} HEADER"
        assert private_block_size(ds, 0x0019, creator) >= 20
        info = ds.private_block(0x0043, "ACME IMAGE INFO")
        assert private_block_size(ds, 0x0043, "ACME IMAGE INFO") >= 10
        steps = info[0x31]  # undefined length: a sequence even in implicit VR
        assert steps.VR == "SQ" and len(steps.value) >= 2
        assert all(item.private_block(0x0043, "ACME IMAGE INFO")[0x01].value
                   for item in steps.value)  # items with private blocks of their own
        assert 200 <= len(info[0x30].value) <= 1000  # the OB record
        if not ds.is_implicit_VR:  # implicit VR files do not say the private VRs
            vrs = {elem.VR for elem in ds if elem.tag.group in (0x0019, 0x0043)}
            assert vrs >= {"LO", "SH", "DS", "IS", "SL", "US", "FD", "OB", "SQ"}


def check_value(elem: pydicom.DataElement, where: str) -> None:
    """The element has its dictionary VR and VM, and each value the form of its VR."""
    vr, vm = dictionary_VR(elem.tag), dictionary_VM(elem.tag)
    assert elem.VR in vr.split(" or "), where
    low, _, high = vm.partition("-")
    assert elem.VM >= int(low) or elem.VM == 0, where
    if high.isdigit() or not high:
        assert elem.VM <= int(high or low), where
    values = elem.value if elem.VM > 1 else [elem.value] if elem.VM else []
    for value in values:
        text = str(value)
        if elem.VR in FORMATS:
            assert re.fullmatch(FORMATS[elem.VR], text), where
        if elem.VR == "DS":
            assert len(text) <= 16 and float(text) == float(text), where
        if elem.VR == "DA":
            datetime.strptime(text, "%Y%m%d")
        if elem.VR == "UI":
            assert len(text) <= 64, where


def test_values_have_their_vr_and_vm(realistic):
    objects = realistic.of(*IMAGES, *HEADER_ONLY)
    for ds in objects:
        for elem, _ in walk(ds):
            if elem.tag.is_private or elem.VR in ("SQ", "OB", "OW", "UN") or elem.tag.group == 2:
                continue
            check_value(elem, f"{ds.Modality} {elem.keyword}")
            if elem.keyword.endswith("CodeSequence"):
                assert all(item.CodeValue and item.CodingSchemeDesignator and item.CodeMeaning
                           for item in elem.value), elem.keyword
    for ds in realistic.of(*IMAGES):
        assert ds.PixelRepresentation == 0 and ds["SmallestImagePixelValue"].VR == "US"
        pixels = with_pixels_decoded(ds)
        expected = sample_export.synthetic_pixels(ds.Modality, ds.InstanceNumber,
                                                  ds.SOPInstanceUID, (ds.Rows, ds.Columns))
        assert np.array_equal(pixels, expected)  # raw, implicit and compressed still decode
        assert (ds.SmallestImagePixelValue, ds.LargestImagePixelValue) == (
            int(pixels.min()), int(pixels.max()))


def content_tree(ds: Dataset, depth: int = 1) -> Iterator[tuple[Dataset, Dataset, int]]:
    """(source, target, depth) for every content item of an SR document's tree."""
    for item in ds.get("ContentSequence", []):
        yield ds, item, depth
        yield from content_tree(item, depth + 1)


def check_relationships(ds: Dataset, table: dict[tuple[str, str], tuple[str, ...]]) -> int:
    """Every relationship of the tree is one the IOD allows; returns the items' count."""
    items = 0
    for source, target, _ in content_tree(ds):
        items += 1
        allowed = table.get((source.ValueType, target.RelationshipType))
        if target.RelationshipType == "HAS CONCEPT MOD":
            allowed = table.get((source.ValueType, "HAS CONCEPT MOD"), ("TEXT", "CODE"))
        assert allowed and target.ValueType in allowed, (source.ValueType,
                                                         target.RelationshipType,
                                                         target.ValueType)
    return items


def test_header_only_objects_have_rich_nested_content(realistic):
    images = {ds.SOPInstanceUID for ds in realistic.of(*IMAGES, pitfalls=True)}
    for ds in realistic.of(*HEADER_ONLY, pitfalls=True):
        assert "StationName" in ds and "PatientAge" in ds and "ProcedureCodeSequence" in ds
        assert max(depth for _, depth in walk(ds)) >= 2, ds.Modality
        assert element_count(ds) >= 120, ds.Modality
    for sr in realistic.of("SR"):
        assert 20 <= check_relationships(sr, BASIC_TEXT_SR) <= 50
        assert max(depth for _, _, depth in content_tree(sr)) >= 3
        assert "ReferencedRequestSequence" in sr
    for gsps in realistic.of("PR"):
        layers = {item.GraphicLayer for item in gsps.GraphicLayerSequence}
        annotations = gsps.GraphicAnnotationSequence
        assert len(annotations) >= 2 and {a.GraphicLayer for a in annotations} <= layers
        assert any("GraphicObjectSequence" in a and "TextObjectSequence" in a
                   for a in annotations)
        listed = [i.ReferencedSOPInstanceUID for s in gsps.ReferencedSeriesSequence
                  for i in s.ReferencedImageSequence]
        shown = [i.ReferencedSOPInstanceUID for area in gsps.DisplayedAreaSelectionSequence
                 for i in area.ReferencedImageSequence]
        assert shown == listed and set(listed) <= images
    for kos in realistic.of("KO", pitfalls=True):
        check_relationships(kos, KEY_OBJECT)
        flagged = [i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
                   for i in kos.ContentSequence if i.ValueType == "IMAGE"]
        evidence = [i.ReferencedSOPInstanceUID
                    for study in kos.CurrentRequestedProcedureEvidenceSequence
                    for series in study.ReferencedSeriesSequence
                    for i in series.ReferencedSOPSequence]
        assert len(flagged) >= 3 and flagged == evidence and set(flagged) <= images


def items(ds: Dataset) -> Iterator[Dataset]:
    """Every sequence item of ``ds``, at any depth."""
    for elem, _ in walk(ds):
        if elem.VR == "SQ":
            yield from elem.value


def test_references_name_instances_of_the_export(realistic):
    instances = {ds.SOPInstanceUID: ds for ds in realistic.objects.values()}
    references = 0
    for ds in realistic.of(*IMAGES, *HEADER_ONLY, pitfalls=True):
        for item in items(ds):
            if "ReferencedSOPInstanceUID" in item:
                references += 1
                assert (item.ReferencedSOPClassUID in NOT_IN_EXPORT
                        or item.ReferencedSOPClassUID
                        == instances[item.ReferencedSOPInstanceUID].SOPClassUID)
    assert references > 2 * len(realistic.objects)
    for ds in realistic.of(*IMAGES):
        for item in ds.get("ReferencedImageSequence", []):
            target = instances[item.ReferencedSOPInstanceUID]
            assert target.SeriesInstanceUID == ds.SeriesInstanceUID
            assert abs(int(target.InstanceNumber) - int(ds.InstanceNumber)) == 1


def test_without_the_flag_the_output_is_unchanged(realistic, plain):
    assert set(realistic.objects) == set(plain.objects)
    assert sorted(p.relative_to(realistic.root) for p in files_below(realistic.root)) == sorted(
        p.relative_to(plain.root) for p in files_below(plain.root))
    for key in ("files", "dicom", "junk", "encodings", "modalities", "pitfalls"):
        assert realistic.counts[key] == plain.counts[key], key
    for path, ds in plain.objects.items():
        assert element_count(ds) < 80 and (0x0019, 0x0010) not in ds, path  # the basic set
        if ds.Modality in IMAGES:  # the realistic image only adds to the plain one
            rich = realistic.objects[path]
            for elem in ds:
                assert rich[elem.tag].value == elem.value, (path, elem.keyword)


def test_migration_treats_realistic_objects_like_plain_ones(realistic, plain, tmp_path):
    runs = {name: Migration(export.root, tmp_path / name, 1)
            for name, export in (("plain", plain), ("realistic", realistic))}
    assert [run.exit_code for run in runs.values()] == [0, 0]
    rows = {name: run.by_name("plan") for name, run in runs.items()}
    assert set(rows["plain"]) == set(rows["realistic"])

    def decisions(row: dict) -> tuple:
        codes = sorted({p["code"] for p in row["problems"] or []})
        return row["action"], row["reason"], codes

    for path, row in rows["plain"].items():
        assert decisions(rows["realistic"][path]) == decisions(row), path
    actions = {name: Counter((r["action"], r["reason"]) for r in table.values())
               for name, table in rows.items()}
    assert actions["plain"] == actions["realistic"]
    migrated = [p for p, r in rows["realistic"].items() if r["action"] == "migrate"]
    legacy = {p for paths in realistic.counts["pitfalls"].values() for p in paths}
    assert set(realistic.objects) - legacy <= set(migrated)  # all but quarantined pitfalls
    results = {name: run.by_name("result") for name, run in runs.items()}
    assert {results["realistic"][p]["status"] for p in migrated} == {"written"}

    def added(name: str, export: Export, path: str) -> int:
        """Elements the migration added to the object (removed: negative)."""
        out = runs[name].out / results[name][path]["output_path"]
        return element_count(pydicom.dcmread(out)) - element_count(export.objects[path])

    for path in migrated:  # the sequences and private blocks are migrated as they are
        assert added("realistic", realistic, path) == added("plain", plain, path), path
