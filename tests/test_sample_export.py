"""Tests for scripts/make_sample_export.py, the deterministic sample PACS export generator."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import pydicom
import pytest
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

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_sample_export.py"
# 25 images (12 regular + 1 CR + 12 hostile): enough for every encoding of the cycle.
SMALL = dict(patients=2, studies_per_patient=1, series_per_study=2, images_per_series=3, cr=1)
HOSTILE_IDS = {"../../etc", "a/b", "CON", ""}
OLE_SIGNATURE = bytes.fromhex("D0CF11E0A1B11AE1")
PIXEL_DATA_OW = b"\xe0\x7f\x10\x00OW\x00\x00"  # (7FE0,0010) OW, explicit VR little endian
IDENTIFYING = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_sample_export", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


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


def files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in files(root)}


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


@pytest.fixture(scope="module")
def objects(gen: ModuleType, export: Export) -> dict[str, list[Obj]]:
    """Files split into good DICOM objects and the rest."""
    split: dict[str, list[Obj]] = {"dicom": [], "other": []}
    for path in files(export.root):
        obj = read(path)
        split["dicom" if is_complete_object(gen, obj) else "other"].append(obj)
    return split


def test_same_seed_gives_identical_tree(gen, export, tmp_path):
    again = tmp_path / "again"
    gen.make_sample_export(again, **SMALL)
    assert tree_digest(again) == tree_digest(export.root)


def test_different_seed_differs(gen, export, tmp_path):
    other = tree_digest(_run(gen, tmp_path / "seed1", **SMALL, seed=1))
    mine = tree_digest(export.root)
    assert other != mine
    shared = set(other.values()) & set(mine.values())
    assert shared <= {hashlib.sha256(b"").hexdigest()}  # only the zero-byte junk file


def _run(gen: ModuleType, root: Path, **kwargs) -> Path:
    gen.make_sample_export(root, **kwargs)
    return root


def test_counts_match_files_on_disk(export, objects):
    paths, counts = files(export.root), export.counts
    assert counts["files"] == len(paths)
    assert counts["bytes"] == sum(p.stat().st_size for p in paths)
    assert counts["dicom"] + counts["junk"] == counts["files"]
    assert counts["dicom"] == len(objects["dicom"])
    assert counts["junk"] == len(objects["other"]) == 5
    assert sum(counts["encodings"].values()) == counts["dicom"]
    assert counts["modalities"] == {"CR": 1, "CT": 6, "KO": 1, "MR": 18, "PR": 1, "SR": 1}


def test_layout_is_a_vendor_store_without_extensions(export):
    series_file = r"vol\d\d/\d{4}/\d\d/\d\d/[0-9A-F]{8}/(\d{8}|Thumbs\.db)"
    pattern = re.compile(rf"{series_file}|vol\d\d/export\.log")
    for rel in tree_digest(export.root):
        assert pattern.fullmatch(rel), rel
    assert len({Path(rel).parent for rel in tree_digest(export.root)}) > 10


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
    for obj in objects["dicom"]:
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
    for obj in objects["dicom"]:
        if obj.part10:
            assert obj.data[:128] == bytes(128)
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


def test_no_junk_no_hostile(gen, tmp_path):
    counts = gen.make_sample_export(tmp_path / "clean", patients=1, studies_per_patient=1,
                                    series_per_study=1, images_per_series=1, cr=0,
                                    junk=False, hostile=False)
    assert counts["junk"] == 0 and counts["dicom"] == counts["files"] == 4  # 1 CT, SR, PR, KO
    ids = {pydicom.dcmread(p, force=True).PatientID for p in files(tmp_path / "clean")}
    assert not ids & HOSTILE_IDS


def test_refuses_non_empty_output_dir(gen, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.me").write_text("other data")
    with pytest.raises(FileExistsError):
        gen.make_sample_export(out, **SMALL)
    assert [p.name for p in out.iterdir()] == ["keep.me"]


def test_cli_writes_summary_then_refuses_second_run(tmp_path):
    out = tmp_path / "cli"
    args = [sys.executable, str(SCRIPT), str(out), "--patients", "1", "--cr", "0",
            "--images-per-series", "1", "--no-hostile"]
    first = subprocess.run(args, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    assert len(first.stdout.strip().splitlines()) == 1 and "files" in first.stdout
    second = subprocess.run(args, capture_output=True, text=True, check=False)
    assert second.returncode == 2
    assert "not empty" in second.stderr


# --------------------------------------------------------------------------- benchmark options

# 12 CT/MR images of 32x32 pixels: a CT study, then an MR study; no CR, junk or hostile IDs.
BENCH_SMALL = dict(patients=2, studies_per_patient=1, series_per_study=2, images_per_series=3,
                   cr=0, junk=False, hostile=False, matrix=32)
NATIVE_OR_RAW = {ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian,
                 "raw-implicit", "raw-explicit"}


def bench_objects(gen: ModuleType, root: Path, **kwargs) -> list[Obj]:
    """Generate an export with benchmark options; every file must be a complete object."""
    gen.make_sample_export(root, **kwargs)
    objs = [read(p) for p in files(root)]
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
    assert tree_digest(first) == tree_digest(second)


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
    big = max(files(root), key=lambda p: p.stat().st_size)
    assert counts["bytes"] == sum(p.stat().st_size for p in files(root))
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
            "--cr", "0", "--no-junk", "--no-hostile", "--matrix", "32", "--compressed-share", "0.3",
            "--raw-share", "0.2", "--header-only-share", "0.2"]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert tree_digest(tmp_path / "cli") == tree_digest(tmp_path / "api")
    bad = subprocess.run([*args[:3], "--compressed-share", "2"], capture_output=True, text=True,
                         check=False)
    assert bad.returncode == 2 and "share" in bad.stderr
