"""Standard elements encoded as VR UN: detected in the inventory, written with their dictionary VR.

Explicit VR sources can carry standard elements as UN (pydicom's rtdose RLE files do): a DIMSE
receiver then cannot read the SOP class, and a PACS files a NUL-padded PatientID as another
patient. Each test migrates an export end to end (``migrate-fs run``) and reads the output back
with pydicom's ``replace_un_with_known_vr`` off, so that a UN left in the bytes is seen.
"""

from __future__ import annotations

import io
import shutil
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pydicom
import pytest
from conftest import PYDICOM_DATA
from pydicom import config
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.filereader import read_sequence
from pydicom.tag import Tag
from test_rules import Run, ct, dciodvfy_errors, put_raw, save

from migrate_fs.reader import read_header, read_header_with_pydicom

RTDOSE_RLE = ["rtdose_rle.dcm", "rtdose_rle_1frame.dcm"]  # the pydicom files with UN elements
TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC",
            "UI", "UR", "UT"}
UN_RULE = "un_to_known_vr"


@contextmanager
def raw_vrs() -> Iterator[None]:
    """pydicom keeping UN as UN (it replaces UN with the dictionary VR by default)."""
    old = config.replace_un_with_known_vr
    config.replace_un_with_known_vr = False
    try:
        yield
    finally:
        config.replace_un_with_known_vr = old


def read(path: Path) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path)


def leaves(ds: Dataset, path: str = "") -> dict[str, tuple[str | None, bytes | None]]:
    """Tag path -> (VR as encoded, raw value) of every element, items of sequences included
    (a sequence itself has value None). A UN element the dictionary calls a sequence is walked
    as the implicit VR little endian items it holds. Read before any value is converted (but
    those pydicom converts on reading, such as SpecificCharacterSet)."""
    found: dict[str, tuple[str | None, bytes | None]] = {}
    for tag in sorted(ds._dict):
        raw = ds.get_item(tag)
        key = f"{path}{Tag(tag)}"
        vr = raw.VR
        if (vr or dictionary_VR(tag)) == "SQ":  # implicit VR items: the dictionary says
            items = ds[tag].value
        elif vr == "UN" and not Tag(tag).is_private and dictionary_VR(tag) == "SQ":
            value = raw.value or b""
            items = read_sequence(io.BytesIO(value), True, True, len(value), "iso8859")
        else:
            found[key] = (vr, raw.value or b"")
            continue
        found[key] = (vr, None)
        for index, item in enumerate(items):
            found.update(leaves(item, f"{key}[{index}]."))
    return found


def same_but_padding(vr: str, before: bytes, after: bytes) -> bool:
    """``after`` is ``before`` or ``before`` with the padding ``vr`` defines."""
    if before == after:
        return True
    if vr not in TEXT_VRS:
        return False
    if len(before) % 2:
        return after == before + (b"\x00" if vr == "UI" else b" ")
    return vr != "UI" and before[-1:] == b"\x00" and after == before[:-1] + b" "


def standard_un(found: dict[str, tuple[str | None, bytes | None]]) -> list[str]:
    return [path for path, (vr, _) in found.items()
            if vr == "UN" and not Tag(_last(path)).is_private]


def _last(path: str) -> int:
    last = path.rsplit(".", 1)[-1]
    return int(last[1:5] + last[6:10], 16)


def codes(row: dict[str, Any]) -> list[str]:
    return [p["code"] for p in row["problems"]]


def converted(row: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["tag"]: c for c in row["changes"] if c["rule"] == UN_RULE}


def tail(path: Path) -> bytes:
    """The bytes of an object from its Pixel Data value to its end (explicit VR: the element
    header is 12 bytes; its VR is the writer's, OB for encapsulated pixel data)."""
    data = path.read_bytes()
    header = read_header(io.BytesIO(data), len(data))
    assert header.pixel_data_offset is not None and not header.is_implicit_vr
    return data[header.pixel_data_offset + 12:]


@pytest.mark.parametrize("name", RTDOSE_RLE)
def test_rtdose_rle_is_written_with_dictionary_vrs(name: str, tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    shutil.copy(PYDICOM_DATA / "test_files" / name, export / name)  # one: they share a UID
    run = Run(export, tmp_path)
    assert run.exit_code == 0
    row = run.rows()[name]
    assert row["status"] == "written", (row["reason"], row["problems"])
    assert "standard_element_as_un" in codes(run.rows("inventory")[name])
    output = run.out / row["output_path"]
    with raw_vrs():
        before, after = leaves(read(export / name)), leaves(read(output))
    assert standard_un(after) == []
    changed = converted(row)
    assert set(changed) == set(standard_un(before)) and len(changed) == 35
    for path, (vr, value) in before.items():
        out_vr, out_value = after[path]
        if path in changed:
            assert vr == "UN" and out_vr == changed[path]["new"] != "UN", path
            assert changed[path]["old"] == "UN" and changed[path]["keyword"], path
        if value is None:
            assert out_value is None and out_vr == "SQ", path
            continue
        assert out_value is not None
        assert out_vr is not None and same_but_padding(out_vr, value, out_value), \
            (path, vr, value, out_vr, out_value)
    assert set(after) == set(before)
    assert after["(300C,0002)"][0] == "SQ"  # a defined-length UN sequence, items re-encoded
    assert after["(300C,0002)[0].(0008,1155)"][0] == "UI"
    assert after["(0028,0009)"] == ("AT", before["(0028,0009)"][1])
    assert after["(7FE0,0010)"][1] == before["(7FE0,0010)"][1]
    assert tail(output) == tail(export / name)  # pixel data spliced, byte for byte


@pytest.mark.skipif(shutil.which("dciodvfy") is None,
                    reason="dciodvfy (Debian package dicom3tools) is not installed")
@pytest.mark.parametrize("name", RTDOSE_RLE)
def test_rtdose_rle_output_has_no_more_dciodvfy_errors(name: str, tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    shutil.copy(PYDICOM_DATA / "test_files" / name, export / name)
    run = Run(export, tmp_path)
    row = run.rows()[name]
    assert row["status"] == "written", (row["reason"], row["problems"])
    before = dciodvfy_errors(export / name)
    assert len(dciodvfy_errors(run.out / row["output_path"])) <= len(before), before


# An undefined-length UN sequence (items in implicit VR little endian, as PS3.5 6.2.2 has it).
REFERENCED_STUDY = 0x00081110
_ITEM = (struct.pack("<HHI", 0x0008, 0x1150, 24) + b"1.2.840.10008.3.1.2.3.1\x00"
         + struct.pack("<HHI", 0x0008, 0x1155, 8) + b"1.2.3.4\x00")
UN_SEQUENCE = (struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + _ITEM
               + struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
PRIVATE_UN = b"AB\x00\x01"


def crafted(path: Path) -> Path:
    """CT_small (explicit VR little endian) with PatientID, Rows, a private element and an
    undefined-length sequence encoded as UN, written byte for byte."""
    ds = ct(PatientID=("UN", b"12345\x00"), Rows=("UN", b"\x80\x00"))
    assert "ReferencedStudySequence" not in ds and Tag(0x00990010) not in ds
    put_raw(ds, 0x00990010, "LO", b"ACME 1.0")
    put_raw(ds, 0x00991001, "UN", PRIVATE_UN)
    put_raw(ds, REFERENCED_STUDY, "UN", UN_SEQUENCE)
    save(ds, path)
    data = bytearray(path.read_bytes())
    at = data.index(struct.pack("<HH", 0x0008, 0x1110) + b"UN\x00\x00")
    data[at + 8:at + 12] = struct.pack("<I", 0xFFFFFFFF)  # the value's delimiter is in it
    path.write_bytes(bytes(data))
    return path


def test_crafted_un_elements_get_their_vr_and_private_ones_stay(tmp_path: Path) -> None:
    export = tmp_path / "export"
    source = crafted(export / "un.dcm")
    data = source.read_bytes()
    lean, slow = (reader(io.BytesIO(data), len(data))
                  for reader in (read_header, read_header_with_pydicom))
    assert [(p.code, p.message) for p in lean.problems] == \
        [(p.code, p.message) for p in slow.problems] == [
            ("standard_element_as_un", "(0008,1110) ReferencedStudySequence, (0010,0020) "
             "PatientID, (0028,0010) Rows encoded as VR UN: written with their dictionary VR")]
    run = Run(export, tmp_path)
    assert run.exit_code == 0
    assert "standard_element_as_un" in codes(run.rows("inventory")["un.dcm"])
    row = run.rows()["un.dcm"]
    assert row["status"] == "written", (row["reason"], row["problems"])
    output = run.out / row["output_path"]
    with raw_vrs():
        before, after = leaves(read(source)), leaves(read(output))
    assert after["(0010,0020)"] == ("LO", b"12345 ")  # the NUL pad becomes a space
    assert after["(0028,0010)"] == ("US", b"\x80\x00")
    assert after["(0099,1001)"] == ("UN", PRIVATE_UN)  # private: stays UN, unchanged
    assert after["(0008,1110)"] == ("SQ", None)
    assert after["(0008,1110)[0].(0008,1150)"] == ("UI", b"1.2.840.10008.3.1.2.3.1\x00")
    assert after["(0008,1110)[0].(0008,1155)"] == ("UI", b"1.2.3.4\x00")
    assert standard_un(after) == []
    assert {t: (c["old"], c["new"]) for t, c in converted(row).items()} == {
        "(0008,1110)": ("UN", "SQ"), "(0010,0020)": ("UN", "LO"), "(0028,0010)": ("UN", "US")}
    for path, (vr, value) in before.items():  # everything else as it was
        if path.startswith(("(0008,1110)", "(0010,0020)", "(0028,0010)")):
            continue
        if isinstance(value, bytes) and isinstance(after[path][1], bytes):
            assert after[path] == (vr, value), path
        else:  # a value pydicom converted on read (SpecificCharacterSet, PixelRepresentation)
            assert after[path][0] == vr, path
    assert tail(output) == tail(source)


def test_un_and_proper_vr_copies_are_the_same_content(tmp_path: Path) -> None:
    export = tmp_path / "export"
    save(ct(PatientID=("UN", b"12345\x00"), Rows=("UN", b"\x80\x00")), export / "a_un.dcm")
    save(ct(PatientID=("LO", b"12345 ")), export / "b_proper.dcm")
    run = Run(export, tmp_path)
    rows = run.rows()
    assert rows["a_un.dcm"]["status"] == "written"
    assert (rows["b_proper.dcm"]["action"], rows["b_proper.dcm"]["reason"]) == \
        ("skip_duplicate", "duplicate")
    written = (run.out / rows["a_un.dcm"]["output_path"]).read_bytes()
    assert written[written.index(b"\x10\x00\x20\x00"):][:14] == \
        b"\x10\x00\x20\x00LO\x06\x0012345 "


def test_explicit_vr_without_un_is_still_spliced(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    shutil.copy(PYDICOM_DATA / "test_files" / "CT_small.dcm", export / "ct.dcm")
    run = Run(export, tmp_path)
    row = run.rows()["ct.dcm"]
    assert row["status"] == "written" and row["changes"] == []
    assert "standard_element_as_un" not in codes(row)
    source, output = (export / "ct.dcm").read_bytes(), \
        (run.out / row["output_path"]).read_bytes()
    start = read_header(io.BytesIO(output), len(output)).dataset_offset
    assert output[start:] == source[row["dataset_offset"]:]
