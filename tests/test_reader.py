"""reader: identification and header parsing, checked against pydicom on its own test files."""

from __future__ import annotations

import io
import struct
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


def _general_only(win, pos, last, last_at, *args):  # noqa: ANN001, ANN202 - plain_run's form
    return pos, last, last_at


def _header_facts(data: bytes) -> tuple:
    header = read_header(io.BytesIO(data), len(data))
    return tuple(getattr(header, n) for n in HEADER_FIELDS) + tuple(
        (p.code, p.message) for p in header.problems)


def _mutations(data: bytes, count: int = 40) -> list[bytes]:
    """Cuts and single flipped bytes across the header: what breaks a walk half-way."""
    header_end = min(len(data), 4096)
    step = max(1, header_end // count)
    cuts = [data[:cut] for cut in range(132, header_end, step)]
    flips = [data[:at] + bytes([data[at] ^ 0x5A]) + data[at + 1:]
             for at in range(132, header_end, step)]
    return cuts + flips


def _element(tag: int, vr: bytes, value: bytes) -> bytes:
    """An explicit VR little endian element, its value as given (no padding)."""
    head = struct.pack("<HH2s", tag >> 16, tag & 0xFFFF, vr)
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT", b"UC", b"UR"):
        return head + struct.pack("<HI", 0, len(value)) + value
    return head + struct.pack("<H", len(value)) + value


def _rule_bait(charset_vr: bytes = b"CS") -> bytes:
    """A Part 10 file whose header holds what the scanner must record, and what it must not:
    odd lengths, non-ASCII text, bad dates and numbers, private text, a sequence, UN, binary."""
    item = _element(0x00080020, b"DA", b"1.2.2001") + _element(0x00100010, b"PN", b"Doe")
    sequence = b"\xfe\xff\x00\xe0" + struct.pack("<I", len(item)) + item
    dataset = b"".join([
        _element(0x00080005, charset_vr, b"ISO_IR 100"), _element(0x00080016, b"UI", b"1.2.3\x00"),
        _element(0x00080018, b"UI", b"1.2.3.4"), _element(0x00080020, b"DA", b"2001"),
        _element(0x00080060, b"CS", b"CT"), _element(0x00080090, b"PN", b"Doe"),
        _element(0x00081030, b"LO", "Müller".encode("latin-1")),
        _element(0x00081115, b"SQ", sequence), _element(0x00090010, b"LO", b"ACME"),
        _element(0x00091001, b"LO", b"x\xe9z"), _element(0x00100010, b"PN", b"Doe^J\xf6rg "),
        _element(0x00100020, b"LO", b"ID 1"), _element(0x00180050, b"DS", b"1,5 "),
        _element(0x00181030, b"UN", b"ABC "), _element(0x0020000D, b"UI", b"1.2.3.5"),
        _element(0x0020000E, b"UI", b"1.02.3.6"), _element(0x00200013, b"IS", b"1 "),
        _element(0x00204000, b"LT", b"x" * 11000), _element(0x00280010, b"US", b"\x02\x00"),
        _element(0x00280011, b"US", b"\x02\x00"), _element(0x00290010, b"OB", b"\x00\x01"),
        _element(0x7FE00010, b"OW", bytes(8))])
    meta = _element(0x00020010, b"UI", ExplicitVRLittleEndian.encode() + b"\x00")
    return bytes(128) + b"DICM" + _element(0x00020000, b"UL", struct.pack("<I", len(meta))) \
        + meta + dataset


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "rtstruct.dcm",
                                  "reportsi.dcm", "image_dfl.dcm", "JPEG2000.dcm",
                                  "SC_rgb_small_odd.dcm", "nested_priv_SQ.dcm", "rule bait",
                                  "character set as OB"])
def test_fast_path_and_general_walk_agree(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The walker's run of plain elements (explicit VR little endian, no call per element) and
    its general case give the same header, problems and messages, also where a cut or a
    flipped byte breaks the object."""
    from migrate_fs import elements, scan

    data = _rule_bait() if name == "rule bait" else _rule_bait(b"OB") if name.endswith("OB") \
        else (PYDICOM_DATA / "test_files" / name).read_bytes()
    cases = [data, *_mutations(data)]
    fast = [_header_facts(case) for case in cases]
    monkeypatch.setattr(elements, "plain_run", _general_only)
    monkeypatch.setattr(scan, "plain_run", _general_only)
    assert [_header_facts(case) for case in cases] == fast
    if name == "rule bait":  # what the walk records, spelled out
        header = read_header(io.BytesIO(data), len(data))
        assert [tag for tag, _, _ in header.elements] == [
            "(0008,0018)", "(0008,0020)", "(0008,0090)", "(0008,1030)",
            "(0008,1115)[0].(0008,0020)", "(0008,1115)[0].(0010,0010)", "(0010,0010)",
            "(0018,0050)", "(0020,000D)", "(0020,000E)", "(0020,4000)"]
