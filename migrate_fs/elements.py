"""elements: a lean walker over the top-level elements of a dataset, for the inventory's hot path.

It reads the object through a :class:`Window` (one ``read`` call covers a typical header; later
reads only where the walk needs bytes it does not have) and steps from element to element with
``struct.unpack_from``, keeping the raw values of the tags asked for and skipping every other
value, sequences included, without decoding it. It does not interpret values: the reader does.
Anything unusual (an unknown VR, a file meta it cannot read) raises :class:`Unsupported`, and the
reader falls back to pydicom's parser, which gives the same results more slowly.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
PIXEL_DATA_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
VR_LENGTH_32 = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN",
                          b"UR", b"UT", b"UV"})
VALID_VRS = VR_LENGTH_32 | {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS",
                            b"LO", b"LT", b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL",
                            b"US"}
FIRST_READ = 16 * 1024
LATER_READ = 64 * 1024
_LE = struct.Struct("<HHI")
_BE = struct.Struct(">HHI")
_U32LE = struct.Struct("<I")
_U32BE = struct.Struct(">I")


class Truncated(Exception):
    """The object ends before an element (or the pixel data) it declares."""


class Malformed(Exception):
    """The element structure is broken (an unexpected tag where an item must be)."""


class Unsupported(Exception):
    """Something the lean walker leaves to pydicom (the reader falls back)."""


class Window:
    """The bytes of an object of known size, read from ``fp`` in as few calls as possible."""

    __slots__ = ("fp", "size", "base", "data", "bytes_read")

    def __init__(self, fp: BinaryIO, size: int, first: int = FIRST_READ) -> None:
        self.fp, self.size, self.base = fp, size, 0
        self.data = fp.read(min(first, size))
        self.bytes_read = len(self.data)

    def view(self, pos: int, n: int) -> tuple[bytes, int]:
        """``(buffer, index)``: ``buffer[index:index + n]`` are the object's bytes at pos."""
        index = pos - self.base
        if index >= 0 and index + n <= len(self.data):
            return self.data, index
        if pos + n > self.size:
            raise Truncated(f"needs bytes {pos}..{pos + n}, the object has {self.size}")
        self.fp.seek(pos)
        self.data = self.fp.read(max(n, LATER_READ))
        self.bytes_read += len(self.data)
        self.base = pos
        if len(self.data) < n:
            raise Truncated(f"needs bytes {pos}..{pos + n}, could read {len(self.data)}")
        return self.data, 0

    def bytes(self, pos: int, n: int) -> bytes:
        data, index = self.view(pos, n)
        return data[index:index + n]


class ElementScan(Protocol):
    """What :func:`walk_dataset` calls for each element (see :mod:`migrate_fs.scan`)."""

    def element(self, win: Window, path: str, tag: int, vr: bytes | None, length: int,
                pos: int, implicit: bool, little: bool) -> int: ...


@dataclass
class Walk:
    """What a walk over one dataset found."""

    values: dict[int, tuple[bytes | None, bytes | None]] = field(default_factory=dict)
    pixel_data_offset: int | None = None
    pixel_data_length: int | None = None
    pixel_data_encapsulated: bool | None = None
    end: int = 0
    # Top-level elements encoded with VR UN in explicit VR (any group: the reader filters).
    un_tags: list[int] = field(default_factory=list)


def decode_element_header(win: Window, pos: int, implicit: bool, little: bool
                   ) -> tuple[int, bytes | None, int, int]:
    """``(tag, vr, length, value position)`` of the element at ``pos``."""
    data, i = win.view(pos, 8)
    group, number, length = (_LE if little else _BE).unpack_from(data, i)
    if implicit or group == 0xFFFE:  # items and delimiters have no VR in any encoding
        return group << 16 | number, None, length, pos + 8
    vr = data[i + 4:i + 6]
    length = length >> 16 if little else length & 0xFFFF
    if vr in VR_LENGTH_32:
        data, i = win.view(pos + 8, 4)
        length = struct.unpack_from("<I" if little else ">I", data, i)[0]
        return group << 16 | number, vr, length, pos + 12
    if vr not in VALID_VRS:
        raise Unsupported(f"unknown VR {vr!r} at byte {pos}")
    return group << 16 | number, vr, length, pos + 8


def walk_dataset(win: Window, pos: int, implicit: bool, little: bool,  # noqa: C901 - the hot loop, inlined
                 wanted: frozenset[int], walk: Walk, scan: ElementScan | None = None) -> Walk:
    """Walk the top-level elements from ``pos`` to the end of the object into ``walk``.

    ``scan`` (a :class:`migrate_fs.scan.Scanner`) is shown every element but the pixel data,
    sequences included, so that values the rules need are noted in the same pass.

    ``walk`` keeps what was found before an exception: the UIDs of a truncated object.
    """
    size = win.size
    unpack = (_LE if little else _BE).unpack_from
    length32 = (_U32LE if little else _U32BE).unpack_from
    while pos < size:
        data, i = win.data, pos - win.base
        if 0 <= i and i + 12 <= len(data):  # the common case, inlined: no call per element
            group, number, length = unpack(data, i)
            if implicit or group == 0xFFFE:
                vr, value = None, pos + 8
            else:
                vr = data[i + 4:i + 6]
                if vr in VR_LENGTH_32:
                    length, value = length32(data, i + 8)[0], pos + 12
                    if vr == b"UN":  # the one check: only elements with a 32-bit length
                        walk.un_tags.append(group << 16 | number)
                elif vr in VALID_VRS:
                    length, value = (length >> 16 if little else length & 0xFFFF), pos + 8
                else:
                    raise Unsupported(f"unknown VR {vr!r} at byte {pos}")
            tag = group << 16 | number
        else:
            tag, vr, length, value = decode_element_header(win, pos, implicit, little)
            if vr == b"UN":
                walk.un_tags.append(tag)
        if tag in PIXEL_DATA_TAGS and walk.pixel_data_offset is None:
            walk.pixel_data_offset = pos
            walk.pixel_data_encapsulated = length == UNDEFINED
            end = skip_items(win, value, little) if length == UNDEFINED else value + length
            walk.pixel_data_length = end - value
            if end > size:
                raise Truncated(f"pixel data declares {length} bytes, the object holds "
                                f"{size - value}")
            pos = end
            continue
        if tag == ITEM_END or tag == SEQUENCE_END:
            raise Malformed(f"delimiter ({tag >> 16:04X},{tag & 0xFFFF:04X}) at top level, "
                            f"byte {pos}")
        if length == UNDEFINED:
            if tag in wanted:
                walk.values[tag] = (vr, None)
            # Undefined length: a sequence, or UN whose content is implicit VR little endian.
            pos = skip_items(win, value, little, implicit or vr == b"UN") if scan is None else \
                scan.element(win, "", tag, vr, length, value, implicit, little)
            continue
        if value + length > size:
            raise Truncated(f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) declares {length} "
                            f"bytes, the object holds {size - value}")
        if tag in wanted:
            walk.values[tag] = (vr, win.bytes(value, length))
        if scan is not None:
            scan.element(win, "", tag, vr, length, value, implicit, little)
        pos = value + length
    walk.end = pos
    return walk


def skip_items(win: Window, pos: int, little: bool, implicit: bool = False) -> int:
    """Step over the items of an undefined-length value; the offset after its delimiter."""
    item = _LE if little else _BE
    while True:
        data, i = win.view(pos, 8)
        group, number, length = item.unpack_from(data, i)
        tag = group << 16 | number
        if tag == SEQUENCE_END:
            return pos + 8
        if tag != ITEM:
            raise Malformed(f"expected an item at byte {pos}, found "
                            f"({group:04X},{number:04X})")
        pos = pos + 8 + length if length != UNDEFINED else skip_item(win, pos + 8, implicit,
                                                                        little)


def skip_item(win: Window, pos: int, implicit: bool, little: bool) -> int:
    """Step over the elements of an undefined-length item; the offset after its delimiter."""
    while True:
        tag, vr, length, value = decode_element_header(win, pos, implicit, little)
        if tag == ITEM_END:
            return value
        if length == UNDEFINED:
            pos = skip_items(win, value, little, implicit or vr == b"UN")
        else:
            pos = value + length
            if pos > win.size:
                raise Truncated("a nested element ends past the end of the object")
