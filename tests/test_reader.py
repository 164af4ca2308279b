"""reader: identification and header parsing, checked against pydicom on its own test files."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import PYDICOM_DATA
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from migrate_fs.reader import ATTRIBUTES, read_header

FILES = sorted(p for p in (PYDICOM_DATA / "test_files").rglob("*") if p.is_file())
CUT_SOURCES = ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
               "rtplan.dcm", "JPEG2000.dcm", "MR_small_RLE.dcm", "image_dfl.dcm"]


class CountingReader(io.BufferedReader):
    """A buffered file that counts the bytes it pulls from the disk."""

    def __init__(self, raw: io.FileIO, buffer_size: int) -> None:
        super().__init__(raw, buffer_size)
        self.raw_reader = raw


def read(path: Path, data: bytes | None = None):
    data = path.read_bytes() if data is None else data
    return read_header(io.BytesIO(data), len(data))


def pydicom_read(path: Path) -> Dataset | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path)
        except Exception:  # noqa: BLE001 - pydicom refuses: nothing to compare against
            return None
    return ds if "SOPInstanceUID" in ds else None


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PYDICOM_DATA)))
def test_attributes_and_pixel_data_location_match_pydicom(path: Path) -> None:
    ds = pydicom_read(path)
    if ds is None:
        pytest.skip("pydicom itself does not read this as a DICOM instance")
    header = read(path)
    data = path.read_bytes()
    assert header.kind in ("part10", "raw", "dicomdir")
    for column, keyword in ATTRIBUTES.items():
        value = ds.get(keyword)
        if keyword == "SpecificCharacterSet" and value is not None and not isinstance(value, str):
            value = "\\".join(value)
        expected = None if value in (None, "") else str(value).rstrip("\x00 ") or None
        assert header.attributes[column] == expected, keyword
    if "PixelData" in ds and header.pixel_data_offset is not None:
        start = header.pixel_data_offset + (12 if not header.is_implicit_vr else 8)
        value = data[start:start + header.pixel_data_length]
        if header.pixel_data_encapsulated:
            assert value[:-8] == ds.PixelData and value[-8:] == b"\xfe\xff\xdd\xe0" + bytes(4)
        elif header.is_little_endian:
            assert value == ds.PixelData
        else:
            assert len(value) == len(ds.PixelData)


def test_detects_encoding_of_raw_datasets() -> None:
    big = read(PYDICOM_DATA / "test_files" / "ExplVR_BigEndNoMeta.dcm")
    little = read(PYDICOM_DATA / "test_files" / "ExplVR_LitEndNoMeta.dcm")
    implicit = read(PYDICOM_DATA / "test_files" / "rtstruct.dcm")
    assert (big.kind, big.transfer_syntax, big.is_little_endian) == \
        ("raw", ExplicitVRBigEndian, False)
    assert (little.kind, little.transfer_syntax) == ("raw", ExplicitVRLittleEndian)
    assert (implicit.kind, implicit.transfer_syntax) == ("raw", ImplicitVRLittleEndian)
    for header in (big, little, implicit):
        assert not header.has_preamble and not header.has_file_meta
        assert [p.code for p in header.problems] == ["missing_file_meta"]


def test_transfer_syntax_that_lies_is_detected() -> None:
    header = read(PYDICOM_DATA / "test_files" / "SC_rgb_jpeg.dcm")
    assert [p.code for p in header.problems] == ["transfer_syntax_mismatch", "lossy_compression"]
    assert header.is_implicit_vr and header.pixel_data_encapsulated


@pytest.mark.parametrize("data,code", [
    (b"", "empty_file"),
    (bytes(4096), "not_dicom"),
    (b"2003-07-14 12:00:01 export started\n" * 20, "not_dicom"),
    (bytes.fromhex("D0CF11E0A1B11AE1") + bytes(600), "not_dicom"),
    (bytes(128) + b"DICM", "truncated"),
])
def test_junk_gets_a_specific_code(data: bytes, code: str) -> None:
    header = read_header(io.BytesIO(data), len(data))
    assert [p.code for p in header.problems] == [code]


def _image(rows: int, columns: int) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", "1.2.3.4"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3", "1.2.3.5"
    ds.PatientID, ds.Modality = "P1", "OT"
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = rows, columns, 16, 16, 15
    ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = np.arange(rows * columns, dtype="<u2").tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = \
        ds.SOPClassUID, ds.SOPInstanceUID
    return ds


def test_inventory_reads_the_header_not_the_pixel_data(tmp_path: Path) -> None:
    path = tmp_path / "big"
    _image(2048, 2048).save_as(path, enforce_file_format=True)  # 8 MiB of pixel data
    size = path.stat().st_size
    raw = io.FileIO(path)
    reads: list[int] = []
    original = raw.readinto

    def counting_readinto(buffer):  # type: ignore[no-untyped-def]
        n = original(buffer)
        reads.append(n or 0)
        return n

    raw.readinto = counting_readinto  # type: ignore[method-assign]
    with io.BufferedReader(raw, 16384) as f:
        header = read_header(f, size)
    assert header.pixel_data_length == 2048 * 2048 * 2 and not header.problems
    assert sum(reads) <= 32768, f"read {sum(reads)} of {size} bytes"


@pytest.mark.parametrize("name", CUT_SOURCES)
def test_a_cut_file_is_never_taken_for_a_complete_one(name: str) -> None:
    data = (PYDICOM_DATA / "test_files" / name).read_bytes()
    whole = read(Path(), data)
    assert not whole.problems_blocking()
    for cut in range(1, len(data), max(1, len(data) // 150)):
        header = read_header(io.BytesIO(data[:cut]), cut)
        codes = {p.code for p in header.problems}
        lacking = {"StudyInstanceUID", "SeriesInstanceUID"} & set(header.missing)
        assert codes & {"truncated", "unreadable_header", "not_dicom", "missing_uid",
                        "missing_pixel_data"} or lacking, f"cut at {cut} of {len(data)} " \
                                                          "looks complete"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_crash_the_reader(data: bytes) -> None:
    header = read_header(io.BytesIO(data), len(data))
    assert header.kind in ("part10", "raw", "dicomdir", "not_dicom", "empty")
    if header.kind in ("part10", "raw") and not header.problems_blocking():
        assert header.attributes["sop_instance_uid"]


HEADER_FIELDS = ("kind", "has_preamble", "has_file_meta", "transfer_syntax", "is_implicit_vr",
                 "is_little_endian", "dataset_offset", "pixel_data_offset", "pixel_data_length",
                 "pixel_data_encapsulated", "attributes", "elements", "missing", "empty")
ALL_FILES = sorted(p for p in PYDICOM_DATA.rglob("*") if p.is_file() and p.suffix != ".py")


def _both(data: bytes):
    from migrate_fs.reader import read_header_with_pydicom

    return read_header(io.BytesIO(data), len(data)), \
        read_header_with_pydicom(io.BytesIO(data), len(data))


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(PYDICOM_DATA)))
def test_lean_reader_gives_the_same_header_as_pydicom(path: Path) -> None:
    lean, slow = _both(path.read_bytes())
    for name in HEADER_FIELDS:
        if name == "elements" and lean.problems_blocking():
            continue  # a broken object: what each parser saw before the break differs
        assert getattr(lean, name) == getattr(slow, name), name
    assert [p.code for p in lean.problems] == [p.code for p in slow.problems]


def test_lean_reader_agrees_with_pydicom_on_the_sample_export(sample_export: Path) -> None:
    for path in sorted(p for p in sample_export.rglob("*") if p.is_file()):
        lean, slow = _both(path.read_bytes())
        assert {n: getattr(lean, n) for n in HEADER_FIELDS} == \
            {n: getattr(slow, n) for n in HEADER_FIELDS}, path
        assert [p.code for p in lean.problems] == [p.code for p in slow.problems], path


@pytest.mark.parametrize("name", CUT_SOURCES)
def test_lean_reader_and_pydicom_agree_that_cut_files_are_broken(name: str) -> None:
    data = (PYDICOM_DATA / "test_files" / name).read_bytes()
    for cut in range(1, len(data), max(1, len(data) // 100)):
        lean, slow = _both(data[:cut])
        for header in (lean, slow):
            assert header.problems_blocking() or {"StudyInstanceUID", "SeriesInstanceUID"} \
                & set(header.missing), cut
