"""pixels: checks on pixel data that need its length and structure, never its content.

The inventory reads headers only. What it can still check about the pixel data:

* native pixel data: its value length against Rows, Columns, Samples per Pixel, Bits Allocated
  and Number of Frames (:func:`check_native_length`);
* encapsulated pixel data: the item structure, from the 8-byte item headers and the Basic
  Offset Table alone (:func:`check_fragments` on bytes in memory,
  :func:`check_fragments_in_file` on a seekable file, which reads nothing else: it seeks over
  the fragments' data);
* lossy compression, done or declared (:func:`lossy`).

Every check returns ``None`` when all is well, else a message naming what is wrong.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Callable
from typing import BinaryIO

from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    JPEG2000MC,
    UID,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLSNearLossless,
    MPEGTransferSyntaxes,
)

ITEM, SEQUENCE_END = 0xFFFEE000, 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF
ITEM_HEADER = 8
YBR_FULL_422 = "YBR_FULL_422"

# Transfer syntaxes whose encoding loses information (or may: JPEG 2000 and HTJ2K without the
# "lossless only" restriction are lossy unless proven otherwise, as are the video codecs).
# pydicom 3.0 has no ``UID.is_lossy``; this is the list of PS3.5 Table A-1 lossy syntaxes.
LOSSY_TRANSFER_SYNTAXES = frozenset({
    JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLSNearLossless, JPEG2000, JPEG2000MC, HTJ2K,
    *MPEGTransferSyntaxes,
    "1.2.840.10008.1.2.4.52", "1.2.840.10008.1.2.4.53", "1.2.840.10008.1.2.4.54",  # retired
    "1.2.840.10008.1.2.4.55", "1.2.840.10008.1.2.4.56", "1.2.840.10008.1.2.4.59",  # JPEG
    "1.2.840.10008.1.2.4.60", "1.2.840.10008.1.2.4.61", "1.2.840.10008.1.2.4.62",  # lossy
    "1.2.840.10008.1.2.4.63", "1.2.840.10008.1.2.4.64",                            # processes
})


def expected_native_length(rows: int, columns: int, samples_per_pixel: int, bits_allocated: int,
                           number_of_frames: int = 1, *, ybr_full_422: bool = False) -> int:
    """Bytes of native pixel data, before padding.

    ``rows * columns * samples * frames * bits_allocated / 8``; Bits Allocated 1 is bit-packed
    across frames, ``ceil(total bits / 8)``. YBR_FULL_422 data holds two values per pixel, not
    three. The value in the file is padded to even length: the acceptable lengths are this one
    and, when it is odd, this one + 1 (:func:`acceptable_lengths`).
    """
    samples = 2 if ybr_full_422 and samples_per_pixel == 3 else samples_per_pixel
    total_bits = rows * columns * samples * number_of_frames * bits_allocated
    return -(-total_bits // 8)


def acceptable_lengths(expected: int) -> tuple[int, ...]:
    """The value lengths a native Pixel Data of ``expected`` bytes may have (even padding)."""
    return (expected, expected + 1) if expected % 2 else (expected,)


def check_native_length(actual: int, rows: int | None, columns: int | None,
                        samples: int | None, bits: int | None, frames: int | None = 1,
                        float_pixel: bool = False, *,
                        photometric_interpretation: str | None = None) -> str | None:
    """None when native pixel data of ``actual`` bytes fits the Image Pixel attributes.

    ``frames`` None means Number of Frames is absent (one frame). ``float_pixel``: the value
    is Float (Bits Allocated 32) or Double Float (64) Pixel Data. ``photometric_interpretation``
    None (not known) accepts both the plain and the YBR_FULL_422 length for 3 samples; given,
    only the one it implies.
    """
    element = _element_name(float_pixel, bits)
    missing = _missing_attribute(rows, columns, samples, bits, frames)
    if missing:
        return f"{element} holds {actual} bytes, but {missing}: its length cannot be checked"
    assert rows and columns and samples and bits  # for the type checker
    frames = frames or 1
    if float_pixel and bits not in (32, 64):
        return f"{element} needs BitsAllocated 32 or 64, found {bits}"
    candidates = _candidate_layouts(samples, photometric_interpretation)
    for ybr_422 in candidates:
        expected = expected_native_length(rows, columns, samples, bits, frames,
                                          ybr_full_422=ybr_422)
        if actual in acceptable_lengths(expected):
            return None
    return _length_message(element, actual, rows, columns, samples, bits, frames, candidates[0])


def _element_name(float_pixel: bool, bits: int | None) -> str:
    if not float_pixel:
        return "Pixel Data"
    return "Double Float Pixel Data" if bits == 64 else "Float Pixel Data"


def _missing_attribute(rows: int | None, columns: int | None, samples: int | None,
                       bits: int | None, frames: int | None) -> str | None:
    """Which attribute the length check lacks: absent (None) or zero."""
    for name, value in (("Rows", rows), ("Columns", columns), ("SamplesPerPixel", samples),
                        ("BitsAllocated", bits)):
        if value is None:
            return f"{name} is missing"
        if value <= 0:
            return f"{name} is {value}"
    if frames is not None and frames <= 0:
        return f"NumberOfFrames is {frames}"
    return None


def _candidate_layouts(samples: int, photometric: str | None) -> tuple[bool, ...]:
    """The YBR_FULL_422 flags to try, the most likely first."""
    if samples != 3:
        return (False,)
    if photometric is None:
        return (False, True)
    return (photometric.strip() == YBR_FULL_422,)


def _length_message(element: str, actual: int, rows: int, columns: int, samples: int,
                    bits: int, frames: int, ybr_422: bool) -> str:
    expected = expected_native_length(rows, columns, samples, bits, frames, ybr_full_422=ybr_422)
    values = 2 if ybr_422 else samples
    if bits == 1:
        formula = (f"ceil(Rows x Columns x SamplesPerPixel x NumberOfFrames / 8) = "
                   f"ceil({rows} x {columns} x {values} x {frames} / 8)")
    else:
        formula = (f"Rows x Columns x SamplesPerPixel x BitsAllocated/8 x NumberOfFrames = "
                   f"{rows} x {columns} x {values} x {bits // 8 if bits % 8 == 0 else bits / 8}"
                   f" x {frames}")
    note = " (YBR_FULL_422: 2 values per pixel)" if ybr_422 else ""
    padded = f" (or {expected + 1} padded to even length)" if expected % 2 else ""
    return f"{element} holds {actual} bytes, {formula} = {expected}{padded}{note}"


# Encapsulated pixel data ------------------------------------------------------------------

Reader = Callable[[int, int], bytes]


def check_fragments(buf: bytes | memoryview, little_endian: bool = True,
                    number_of_frames: int | None = None) -> str | None:
    """Check the item structure of an encapsulated Pixel Data value held in memory.

    ``buf`` runs from the first item tag to the end of the sequence delimiter. Expected: a
    Basic Offset Table item (may be empty; else a multiple of 4 bytes of increasing offsets,
    the first 0, each at a fragment item), one or more non-empty, even-length fragment items,
    and a zero-length sequence delimiter ending exactly at the end. When ``number_of_frames``
    is given, a non-empty table has one entry per frame and there are at least as many
    fragments as frames. Returns None when sane, else the first problem found.
    """
    view = memoryview(buf).cast("B")
    return _check_items(lambda pos, n: bytes(view[pos:pos + n]), len(view), little_endian,
                        number_of_frames)


def check_fragments_in_file(fp: BinaryIO, offset: int, length: int, little_endian: bool = True,
                            number_of_frames: int | None = None) -> str | None:
    """:func:`check_fragments` on a value in a seekable file, reading only item headers.

    ``offset`` is the file position of the value's first item tag: the Pixel Data element's
    offset + 12 (explicit VR) or + 8 (implicit VR); ``length`` runs to the end of the
    sequence delimiter. Only the 8-byte item headers and the Basic Offset Table are read (one
    positioned read each, ``os.pread`` on a real file so that no read-ahead buffer fills with
    pixel data); the fragments' data is never read. This is the design chosen over returning a
    compact copy of the headers for :func:`check_fragments`: same reads, no second pass.
    """
    return _check_items(_file_reader(fp, offset), length, little_endian, number_of_frames)


def _file_reader(fp: BinaryIO, offset: int) -> Reader:
    """``read(pos, n)``: n bytes at offset + pos (fewer at the end of the file)."""
    try:
        fd = fp.fileno()
        os.pread(fd, 0, 0)
    except (AttributeError, OSError, io.UnsupportedOperation):
        def read(pos: int, n: int) -> bytes:
            fp.seek(offset + pos)
            return fp.read(n)
        return read
    return lambda pos, n: os.pread(fd, n, offset + pos)


def _check_items(read: Reader, size: int, little_endian: bool,
                 number_of_frames: int | None) -> str | None:
    """The structure check over ``read``, a positioned reader of a value of ``size`` bytes."""
    header = struct.Struct("<HHI" if little_endian else ">HHI")
    first = _item_header(read, 0, size, header)
    if isinstance(first, str):
        return f"no Basic Offset Table item: {first}"
    tag, bot_length = first
    if tag != ITEM:
        return f"Pixel Data does not start with an item (Basic Offset Table): found {_tag(tag)}"
    problem = _bot_problem(bot_length, size)
    if problem:
        return problem
    bot = read(ITEM_HEADER, bot_length)
    if len(bot) < bot_length:
        return "the Basic Offset Table runs past the end of the value"
    walked = _walk_fragments(read, ITEM_HEADER + bot_length, size, header)
    if isinstance(walked, str):
        return walked
    return _offsets_problem(bot, walked, little_endian, number_of_frames)


def _item_header(read: Reader, pos: int, size: int, header: struct.Struct
                 ) -> tuple[int, int] | str:
    """``(tag, length)`` of the item header at pos, or a message when there is none."""
    if pos + ITEM_HEADER > size:
        return f"the value ends at byte {size}, inside or before an item header at byte {pos}"
    raw = read(pos, ITEM_HEADER)
    if len(raw) < ITEM_HEADER:
        return f"the file ends inside the item header at byte {pos} of the value"
    group, element, length = header.unpack(raw)
    return group << 16 | element, length


def _bot_problem(length: int, size: int) -> str | None:
    if length == UNDEFINED:
        return "the Basic Offset Table item has undefined length"
    if length % 4:
        return f"the Basic Offset Table is {length} bytes long, not a multiple of 4"
    if ITEM_HEADER + length > size:
        return f"the Basic Offset Table ({length} bytes) runs past the end of the value"
    return None


def _walk_fragments(read: Reader, pos: int, size: int, header: struct.Struct
                    ) -> list[int] | str:
    """Offsets of the fragment items (from the first one), or the first problem found."""
    start, starts = pos, list[int]()
    while True:
        item = _item_header(read, pos, size, header)
        if isinstance(item, str):
            return f"no sequence delimiter (FFFE,E0DD): {item}"
        tag, length = item
        if tag == SEQUENCE_END:
            return _delimiter_problem(length, pos, size) or _fragments_or_problem(starts)
        if tag != ITEM:
            return f"expected a fragment item or the sequence delimiter at byte {pos} of the " \
                   f"value, found {_tag(tag)}"
        problem = _fragment_problem(len(starts) + 1, length, pos, size)
        if problem:
            return problem
        starts.append(pos - start)
        pos += ITEM_HEADER + length


def _fragment_problem(number: int, length: int, pos: int, size: int) -> str | None:
    if length == UNDEFINED:
        return f"fragment {number} has undefined length"
    if length == 0:
        return f"fragment {number} is empty"
    if length % 2:
        return f"fragment {number} has odd length {length} (fragments must be of even length)"
    if pos + ITEM_HEADER + length > size:
        return f"fragment {number} ({length} bytes at byte {pos}) runs past the end of the " \
               f"value ({size} bytes)"
    return None


def _delimiter_problem(length: int, pos: int, size: int) -> str | None:
    if length != 0:
        return f"the sequence delimiter has length {length}, not 0"
    if pos + ITEM_HEADER != size:
        return f"the sequence delimiter at byte {pos} is followed by " \
               f"{size - pos - ITEM_HEADER} bytes inside the value"
    return None


def _fragments_or_problem(starts: list[int]) -> list[int] | str:
    return starts if starts else "no fragments: the Pixel Data holds no compressed data"


def _offsets_problem(bot: bytes, starts: list[int], little_endian: bool,
                     frames: int | None) -> str | None:
    """The Basic Offset Table against the fragments found and Number of Frames."""
    if frames is not None and len(starts) < frames:
        return f"{len(starts)} fragment(s) for NumberOfFrames {frames}: a frame has at least one"
    if not bot:
        return None
    offsets = struct.unpack(f"{'<>'[not little_endian]}{len(bot) // 4}I", bot)
    if frames is not None and len(offsets) != frames:
        return f"the Basic Offset Table has {len(offsets)} entries, NumberOfFrames is {frames}"
    if offsets[0] != 0:
        return f"the Basic Offset Table's first offset is {offsets[0]}, not 0"
    known = set(starts)
    for frame, (previous, offset) in enumerate(zip((-1, *offsets), offsets, strict=False), start=1):
        if offset <= previous:
            return f"the Basic Offset Table is not increasing at frame {frame} ({offset} after " \
                   f"{previous})"
        if offset not in known:
            return f"the Basic Offset Table's offset {offset} (frame {frame}) is not the start " \
                   f"of a fragment item"
    return None


def _tag(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


# Lossy compression -------------------------------------------------------------------------


def lossy(transfer_syntax: str, lossy_image_compression: str | None) -> str | None:
    """A message when the object is, or once was, lossy compressed; None otherwise.

    Lossy: a transfer syntax of :data:`LOSSY_TRANSFER_SYNTAXES`, or Lossy Image Compression
    (0028,2110) ``01`` (compressed lossily at some point, whatever the encoding now).
    """
    syntax = (transfer_syntax or "").strip("\x00 ")
    if syntax in LOSSY_TRANSFER_SYNTAXES:
        return f"lossy transfer syntax {UID(syntax).name} ({syntax})"
    if (lossy_image_compression or "").strip("\x00 ") == "01":
        return "Lossy Image Compression is 01: the pixel data was lossy compressed before"
    return None
