"""Pixel data checks from lengths and item headers (migrate_fs.pixels), on pydicom's files."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pydicom
import pydicom.data
import pytest
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    MPEG2MPML,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from migrate_fs import pixels

TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"
PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
ITEM, END = b"\xfe\xff\x00\xe0", b"\xfe\xff\xdd\xe0"

# Native files whose Pixel Data length does not fit their Image Pixel attributes, and why.
NATIVE_MISMATCHES = {
    "MR_small_padded.dcm": "8320 bytes for 64 x 64 x 16 bits: 128 bytes of padding",
    "MR_truncated.dcm": "the file ends 62 bytes before the end of its 8192-byte Pixel Data",
    "badVR.dcm": "NumberOfFrames is '1A' (not a number): read as absent, 1 frame of 15",
    "meta_missing_tsyntax.dcm": "no Rows (a 2-byte Pixel Data without Image Pixel module)",
    "nested_priv_SQ.dcm": "no Rows (a 2-byte Pixel Data without Image Pixel module)",
}


def locate(path: Path) -> tuple[int, int, int, bool, bool, pydicom.Dataset] | None:
    """(tag, value offset, value length to the end of the delimiter, encapsulated,
    little endian, dataset without pixels) of an object's pixel data; None when it has none."""
    with open(path, "rb") as fp:
        ds = pydicom.dcmread(fp, force=True, stop_before_pixels=True)
        pos = fp.tell()
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax is not None and syntax.is_deflated:
        return None
    implicit, little = ds.original_encoding[:2]
    data = path.read_bytes()
    e = "<" if little else ">"
    if pos + 8 > len(data):
        return None
    group, element = struct.unpack_from(e + "HH", data, pos)
    tag = group << 16 | element
    if tag not in PIXEL_TAGS:
        return None
    if implicit or not data[pos + 4:pos + 6].isalpha():  # SC_rgb_jpeg: an implicit header
        length, value = struct.unpack_from(e + "I", data, pos + 4)[0], pos + 8
    else:
        length, value = struct.unpack_from(e + "I", data, pos + 8)[0], pos + 12
    if length != 0xFFFFFFFF:
        return tag, value, length, False, little, ds
    end = value
    while data[end:end + 4] != (END if little else b"\xff\xfe\xe0\xdd"):
        end += 8 + struct.unpack_from(e + "I", data, end + 4)[0]
    return tag, value, end + 8 - value, True, little, ds


def frames_of(ds: pydicom.Dataset) -> int | None:
    try:
        return int(ds.NumberOfFrames) if "NumberOfFrames" in ds else None
    except ValueError:
        return None


def pixel_files(encapsulated: bool) -> list[Path]:
    found = []
    for path in sorted(TEST_FILES.glob("*.dcm")):
        where = locate(path)
        if where is not None and where[3] == encapsulated:
            found.append(path)
    return found


NATIVE = pixel_files(encapsulated=False)
ENCAPSULATED = pixel_files(encapsulated=True)


def encaps(bot: list[int] | bytes, fragments: list[bytes], *, delimiter: bytes = END + bytes(4),
           little: bool = True) -> bytes:
    """An encapsulated Pixel Data value from a Basic Offset Table and fragments."""
    e = "<" if little else ">"
    table = bot if isinstance(bot, bytes) else struct.pack(f"{e}{len(bot)}I", *bot)
    item = ITEM if little else b"\xff\xfe\xe0\x00"
    out = item + struct.pack(e + "I", len(table)) + table
    for fragment in fragments:
        out += item + struct.pack(e + "I", len(fragment)) + fragment
    return out + delimiter


# Native lengths --------------------------------------------------------------------------


def test_expected_native_length() -> None:
    assert pixels.expected_native_length(512, 512, 1, 16) == 524288
    assert pixels.expected_native_length(512, 512, 3, 8, 10) == 7864320
    assert pixels.expected_native_length(3, 3, 1, 1) == 2  # 9 bits
    assert pixels.expected_native_length(5, 5, 1, 1, 2) == 7  # packed across frames: 50 bits
    assert pixels.expected_native_length(3, 3, 1, 8) == 9
    assert pixels.expected_native_length(10, 10, 3, 8, ybr_full_422=True) == 200


def test_acceptable_lengths_pad_odd_values_to_even() -> None:
    assert pixels.acceptable_lengths(9) == (9, 10)
    assert pixels.acceptable_lengths(8) == (8,)


def test_length_message_names_the_formula() -> None:
    assert pixels.check_native_length(1000, 512, 512, 1, 16, 1) == (
        "Pixel Data holds 1000 bytes, Rows x Columns x SamplesPerPixel x BitsAllocated/8 x "
        "NumberOfFrames = 512 x 512 x 1 x 2 x 1 = 524288")
    assert pixels.check_native_length(524288, 512, 512, 1, 16, 1) is None
    assert pixels.check_native_length(524288, 512, 512, 1, 16, None) is None


def test_odd_lengths_may_carry_one_pad_byte() -> None:
    assert pixels.check_native_length(9, 3, 3, 1, 8) is None
    assert pixels.check_native_length(10, 3, 3, 1, 8) is None
    message = pixels.check_native_length(11, 3, 3, 1, 8)
    assert message is not None and "= 9 (or 10 padded to even length)" in message
    assert pixels.check_native_length(2, 3, 3, 1, 1) is None
    one_bit = pixels.check_native_length(4, 3, 3, 1, 1)
    assert one_bit is not None and "ceil(3 x 3 x 1 x 1 / 8) = 2" in one_bit


@pytest.mark.parametrize(("args", "missing"), [
    ((None, 512, 1, 16, 1), "Rows is missing"),
    ((512, 0, 1, 16, 1), "Columns is 0"),
    ((512, 512, None, 16, 1), "SamplesPerPixel is missing"),
    ((512, 512, 1, None, 1), "BitsAllocated is missing"),
    ((512, 512, 1, 16, 0), "NumberOfFrames is 0"),
])
def test_missing_attributes_are_named(args: tuple, missing: str) -> None:
    message = pixels.check_native_length(524288, *args)
    assert message == f"Pixel Data holds 524288 bytes, but {missing}: its length cannot be checked"


def test_float_pixel_data() -> None:
    assert pixels.check_native_length(400, 10, 10, 1, 32, 1, True) is None
    assert pixels.check_native_length(800, 10, 10, 1, 64, 1, True) is None
    message = pixels.check_native_length(400, 10, 10, 1, 16, 1, True)
    assert message == "Float Pixel Data needs BitsAllocated 32 or 64, found 16"
    short = pixels.check_native_length(700, 10, 10, 1, 64, 1, True)
    assert short is not None and short.startswith("Double Float Pixel Data holds 700 bytes")


def test_ybr_full_422_holds_two_values_per_pixel() -> None:
    assert pixels.check_native_length(200, 10, 10, 3, 8, photometric_interpretation=
                                      "YBR_FULL_422") is None
    assert pixels.check_native_length(200, 10, 10, 3, 8) is None  # photometric not known
    rgb = pixels.check_native_length(200, 10, 10, 3, 8, photometric_interpretation="RGB")
    assert rgb is not None and rgb.endswith("= 300")
    ybr = pixels.check_native_length(300, 10, 10, 3, 8, photometric_interpretation="YBR_FULL_422")
    assert ybr is not None and "(YBR_FULL_422: 2 values per pixel)" in ybr


def _native_check(path: Path, delta: int = 0) -> str | None:
    """The check on the Pixel Data length pydicom reads (+ delta)."""
    ds = pydicom.dcmread(path, force=True)
    tag = next(tag for tag in PIXEL_TAGS if tag in ds)
    return pixels.check_native_length(
        len(ds[tag].value) + delta, ds.get("Rows"), ds.get("Columns"), ds.get("SamplesPerPixel"),
        ds.get("BitsAllocated"), frames_of(ds), tag != 0x7FE00010,
        photometric_interpretation=ds.get("PhotometricInterpretation"))


def test_every_native_test_file_has_the_expected_length() -> None:
    assert len(NATIVE) >= 20
    mismatches = {path.name for path in NATIVE if _native_check(path)}
    assert mismatches == set(NATIVE_MISMATCHES)


@pytest.mark.parametrize("path", [p for p in NATIVE if p.name not in NATIVE_MISMATCHES],
                         ids=lambda p: p.name)
def test_native_lengths_agree_with_pydicom(path: Path) -> None:
    ds = pydicom.dcmread(path, force=True)
    actual = next(len(ds[tag].value) for tag in PIXEL_TAGS if tag in ds)
    where = locate(path)
    assert where is not None and where[2] == actual
    expected = get_expected_length(ds)
    assert actual in pixels.acceptable_lengths(expected)
    assert _native_check(path, delta=-2) is not None  # cut
    assert _native_check(path, delta=+2) is not None  # extended


# Encapsulated structure ------------------------------------------------------------------


def _value(path: Path) -> tuple[bytes, bool, int | None, int]:
    where = locate(path)
    assert where is not None
    _, offset, length, _, little, ds = where
    return path.read_bytes()[offset:offset + length], little, frames_of(ds), offset


def test_every_encapsulated_test_file_is_sane() -> None:
    assert len(ENCAPSULATED) >= 35
    problems = {}
    for path in ENCAPSULATED:
        value, little, frames, offset = _value(path)
        problem = pixels.check_fragments(value, little, frames)
        with open(path, "rb") as fp:
            assert pixels.check_fragments_in_file(fp, offset, len(value), little, frames) \
                == problem
        if problem:
            problems[path.name] = problem
    # JPEG2000-embedded-sequence-delimiter.dcm (delimiter bytes inside a fragment) and
    # SC_rgb_jpeg.dcm (implicit VR Pixel Data header) are sane too: items are walked by length.
    assert problems == {}


def test_multiframe_files_have_one_offset_per_frame() -> None:
    value, little, frames, _ = _value(TEST_FILES / "examples_ybr_color.dcm")
    assert frames == 30 and pixels.check_fragments(value, little, frames) is None
    assert pixels.check_fragments(value, little, 29) == (
        "the Basic Offset Table has 30 entries, NumberOfFrames is 29")
    assert pixels.check_fragments(value, little, 31) == (
        "30 fragment(s) for NumberOfFrames 31: a frame has at least one")


def test_a_cut_real_value_is_reported() -> None:
    value, little, frames, _ = _value(TEST_FILES / "JPEG2000.dcm")
    message = pixels.check_fragments(value[:-20], little, frames)
    assert message is not None and message.startswith("fragment 1 (250 bytes at byte 8) runs "
                                                       "past the end of the value")
    assert pixels.check_fragments(value[:-8], little, frames) == (
        "no sequence delimiter (FFFE,E0DD): the value ends at byte 266, inside or before an "
        "item header at byte 266")


def test_file_check_reads_item_headers_and_the_table_only() -> None:
    data = (TEST_FILES / "examples_ybr_color.dcm").read_bytes()
    value, little, frames, offset = _value(TEST_FILES / "examples_ybr_color.dcm")
    reads: list[int] = []

    class Recording(io.BytesIO):
        def read(self, n: int | None = -1) -> bytes:
            chunk = super().read(n)
            reads.append(len(chunk))
            return chunk

    assert pixels.check_fragments_in_file(Recording(data), offset, len(value), little,
                                          frames) is None
    assert sorted(set(reads)) == [8, 30 * 4]  # 8-byte headers, the table; no fragment data
    assert sum(reads) == 8 * (1 + 30 + 1) + 30 * 4


@pytest.mark.parametrize(("value", "frames", "message"), [
    (encaps(b"", [b"\xff\xd8"], delimiter=b""), None,
     "no sequence delimiter (FFFE,E0DD): the value ends at byte 18, inside or before an item "
     "header at byte 18"),
    (encaps(b"", [b"abc"]), None,
     "fragment 1 has odd length 3 (fragments must be of even length)"),
    (encaps(b"", [b"ab", b""]), None, "fragment 2 is empty"),
    (encaps(b"", []), None, "no fragments: the Pixel Data holds no compressed data"),
    (encaps(b"\x00\x00\x00", [b"ab"]), None,
     "the Basic Offset Table is 3 bytes long, not a multiple of 4"),
    (encaps([0, 7], [b"ab", b"cd"]), 2,
     "the Basic Offset Table's offset 7 (frame 2) is not the start of a fragment item"),
    (encaps([4], [b"ab"]), None, "the Basic Offset Table's first offset is 4, not 0"),
    (encaps([0, 10, 0], [b"ab", b"cd", b"ef"]), None,
     "the Basic Offset Table is not increasing at frame 3 (0 after 10)"),
    (encaps([0, 10], [b"ab", b"cd"]), 3, "2 fragment(s) for NumberOfFrames 3: a frame has at "
                                         "least one"),
    (encaps([0], [b"ab", b"cd"]), 2, "the Basic Offset Table has 1 entries, NumberOfFrames is 2"),
    (encaps(b"", [b"ab"], delimiter=END + b"\x04\x00\x00\x00"), None,
     "the sequence delimiter has length 4, not 0"),
    (encaps(b"", [b"ab"]) + bytes(8), None,
     "the sequence delimiter at byte 18 is followed by 8 bytes inside the value"),
    (END + bytes(4), None, "Pixel Data does not start with an item (Basic Offset Table): found "
                           "(FFFE,E0DD)"),
    (b"\xfe\xff", None, "no Basic Offset Table item: the value ends at byte 2, inside or before "
                        "an item header at byte 0"),
    (ITEM + b"\xff\xff\xff\xff" + END + bytes(4), None,
     "the Basic Offset Table item has undefined length"),
    (encaps(b"", [b"ab"])[:-8] + b"\x08\x00\x10\x00" + bytes(4) + END + bytes(4), None,
     "expected a fragment item or the sequence delimiter at byte 18 of the value, found "
     "(0008,0010)"),
    (ITEM + bytes(4) + ITEM + b"\x10\x00\x00\x00ab" + END + bytes(4), None,
     "fragment 1 (16 bytes at byte 8) runs past the end of the value (26 bytes)"),
])
def test_broken_structures_are_named(value: bytes, frames: int | None, message: str) -> None:
    assert pixels.check_fragments(value, True, frames) == message
    assert pixels.check_fragments_in_file(io.BytesIO(b"pre" + value), 3, len(value), True,
                                          frames) == message


def test_sane_crafted_structures() -> None:
    assert pixels.check_fragments(encaps(b"", [b"ab"])) is None
    assert pixels.check_fragments(encaps([0, 10], [b"ab", b"cd"]), True, 2) is None
    assert pixels.check_fragments(encaps([0, 20], [b"ab", b"cd", b"ef"]), True, 2) is None
    big = encaps([0, 10], [b"ab", b"cd"], little=False, delimiter=b"\xff\xfe\xe0\xdd" + bytes(4))
    assert pixels.check_fragments(big, False, 2) is None
    assert pixels.check_fragments(memoryview(big), False, 2) is None


def test_file_check_past_the_end_of_the_file(tmp_path: Path) -> None:
    value = encaps(b"", [b"ab"])
    path = tmp_path / "cut.bin"
    path.write_bytes(value[:-4])
    with open(path, "rb") as fp:
        assert pixels.check_fragments_in_file(fp, 0, len(value)) == (
            "no sequence delimiter (FFFE,E0DD): the file ends inside the item header at byte 18 "
            "of the value")


# Lossy compression -----------------------------------------------------------------------


@pytest.mark.parametrize("syntax", [JPEGBaseline8Bit, JPEGExtended12Bit, JPEG2000,
                                    JPEGLSNearLossless, HTJ2K, MPEG2MPML,
                                    "1.2.840.10008.1.2.4.55", JPEG2000 + "\x00"])
def test_lossy_transfer_syntaxes(syntax: str) -> None:
    message = pixels.lossy(syntax, None)
    assert message is not None and message.startswith("lossy transfer syntax ")


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, JPEGLosslessSV1, JPEGLSLossless,
                                    JPEG2000Lossless, HTJ2KLossless, RLELossless, ""])
def test_lossless_transfer_syntaxes(syntax: str) -> None:
    assert pixels.lossy(syntax, None) is None
    assert pixels.lossy(syntax, "00") is None


def test_lossy_image_compression_attribute() -> None:
    assert pixels.lossy(ExplicitVRLittleEndian, "01") == (
        "Lossy Image Compression is 01: the pixel data was lossy compressed before")
    assert pixels.lossy(JPEGLSLossless, "01 ") is not None
    assert pixels.lossy(JPEGBaseline8Bit, "01") == (
        "lossy transfer syntax JPEG Baseline (Process 1) (1.2.840.10008.1.2.4.50)")
