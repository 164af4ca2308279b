"""elements: a lean walker over the top-level elements of a dataset, for the inventory's hot path.

It reads the object through a :class:`Window` (one ``read`` call covers a typical header; later
reads only where the walk needs bytes it does not have) and steps from element to element with
``struct.unpack_from``, keeping the raw values of the tags asked for and skipping every other
value, sequences included, without decoding it. It does not interpret values: the reader does.
A file meta it cannot read raises :class:`Unsupported`, and the reader falls back to pydicom's
parser, which gives the same results more slowly. What a copy would carry into the output as
invalid DICOM (an unknown VR, tags out of order, sequences nested past :data:`MAX_NESTING`)
raises :class:`Invalid`, whose ``code`` names the problem. No walk here recurses: nesting
depth costs no stack. :class:`Inflated` reads a deflated dataset as a file, inflating as it is
read, never more than :func:`deflate_limit` allows.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
PIXEL_DATA_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
_FIRST_PIXEL_TAG = min(PIXEL_DATA_TAGS)
VR_LENGTH_32 = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN",
                          b"UR", b"UT", b"UV"})
VALID_VRS = VR_LENGTH_32 | {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS",
                            b"LO", b"LT", b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL",
                            b"US"}
VR_LENGTH_16 = VALID_VRS - VR_LENGTH_32  # explicit VRs whose length is a 16-bit field
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


class Invalid(Exception):
    """The dataset breaks a rule of its encoding that a byte copy would carry into the output;
    ``code`` is the problem code (:mod:`migrate_fs.problems`) the reader records."""

    code = "unreadable_header"


class InvalidVR(Invalid):
    """An explicit VR element whose two VR bytes are not a DICOM VR."""

    code = "invalid_vr"


class TagOrder(Invalid):
    """An element whose tag is not above its predecessor's (in the dataset or its item)."""

    code = "tag_order"


class NestingTooDeep(Invalid):
    """Sequences nested deeper than :data:`MAX_NESTING` levels."""

    code = "nesting_too_deep"


class DeflateBomb(Invalid):
    """A deflated dataset that inflates past :func:`deflate_limit`."""

    code = "deflate_bomb"


# Sequences nested deeper than this are refused (real data stays below 10 levels; pydicom's
# recursive parser fails near 190, the writer's encoder recurses per level too).
MAX_NESTING = 64


def tag_name(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def vr_error(tag: int, vr: bytes, pos: int) -> InvalidVR:
    """The error for element ``tag`` at byte ``pos`` whose VR bytes ``vr`` are not a VR."""
    vr = (vr + bytes(2))[:2]  # two bytes, even where the object ends first
    what = f"{vr.decode('latin-1')!r}" if vr.isalpha() and vr.isupper() else \
        f"bytes {vr[0]:02X} {vr[1]:02X} (not letters: an implicit VR element in an explicit " \
        "VR dataset, or a corrupt header)"
    return InvalidVR(f"element {tag_name(tag)} at byte {pos} has VR {what}, which is not a "
                     "DICOM VR")


def order_error(tag: int, previous: int, pos: int, undefined: bool = False) -> TagOrder:
    how = "follows" if tag != previous else "repeats, with a value of undefined length," \
        if undefined else "repeats, with other bytes,"
    return TagOrder(f"element {tag_name(tag)} at byte {pos} {how} {tag_name(previous)}: "
                    "elements must be in ascending tag order")


def check_repeat(win: Window, tag: int, previous: int, previous_at: int, pos: int, value: int,
                 length: int) -> None:
    """Called for an element whose tag is not above ``previous`` (the element at byte
    ``previous_at``, which ends at ``pos``): :class:`TagOrder` unless it repeats that element
    byte for byte (pydicom's palettes repeat SOPInstanceUID: readers keep one, both agree)."""
    if tag == previous and length != UNDEFINED and value + length <= win.size \
            and win.bytes(previous_at, pos - previous_at) == win.bytes(pos, value + length - pos):
        return
    raise order_error(tag, previous, pos, length == UNDEFINED)


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
        index = pos - self.base
        if index >= 0 and index + n <= len(self.data):  # the common case, without a call
            return self.data[index:index + n]
        data, index = self.view(pos, n)
        return data[index:index + n]


CHARSET_TAG = 0x00080005  # read by every reader before the text it decodes: must be text


class ElementScan(Protocol):
    """What :func:`walk_dataset` shows the elements to (see :mod:`migrate_fs.scan`).

    ``checks`` maps explicit VR bytes to the fullmatch of clean values: in a run of plain
    elements (:func:`plain_run`) the walker checks a value of those VRs itself and calls
    ``record`` for one that is not clean or has an odd length (never for a private one).
    ``element`` is called for every other element but the pixel data."""

    checks: dict[bytes, Callable[[bytes], object]]

    def record(self, path: str, tag: int, vr: bytes, raw: bytes) -> None: ...

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
    # Top-level elements that repeat the element before them byte for byte.
    repeated: list[int] = field(default_factory=list)


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
        raise vr_error(group << 16 | number, vr, pos)
    return group << 16 | number, vr, length, pos + 8


def walk_dataset(win: Window, pos: int, implicit: bool, little: bool,  # noqa: C901 - the hot loop, inlined
                 wanted: frozenset[int], walk: Walk, scan: ElementScan | None = None) -> Walk:
    """Walk the top-level elements from ``pos`` to the end of the object into ``walk``.

    ``scan`` (a :class:`migrate_fs.scan.Scanner`) is shown every element but the pixel data,
    sequences included, so that values the rules need are noted in the same pass.

    ``walk`` keeps what was found before an exception: the UIDs of a truncated object.
    Raises :class:`Invalid` for an unknown VR or a tag not above its predecessor's.
    """
    size = win.size
    checks = scan.checks if scan is not None else {}
    unpack = (_LE if little else _BE).unpack_from
    length32 = (_U32LE if little else _U32BE).unpack_from
    fast = little and not implicit
    last = last_at = -1
    while pos < size:
        if fast:
            pos, last, last_at = plain_run(win, pos, last, last_at, wanted, walk.values, checks,
                                           scan)
            if pos >= size:
                break
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
                    raise vr_error(group << 16 | number, vr, pos)
            tag = group << 16 | number
        else:
            tag, vr, length, value = decode_element_header(win, pos, implicit, little)
            if vr == b"UN":
                walk.un_tags.append(tag)
        if tag <= last:  # rare: raises unless a byte-for-byte repeat, which is stepped over
            check_repeat(win, tag, last, last_at, pos, value, length)
            walk.repeated.append(tag)
            last_at, pos = pos, value + length
            continue
        last, last_at = tag, pos
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


_SHORT_HEADER = struct.Struct("<HH2sH")  # explicit VR little endian: group, element, VR, length
# The VRs :func:`plain_run` takes: every VR but SQ and UN, which the scanner must see.
_PLAIN_SHORT = VR_LENGTH_16
_PLAIN_LONG = VR_LENGTH_32 - {b"SQ", b"UN"}
# Text values (VR bytes + value) a check found clean, in this process: most values of an
# archive repeat from object to object, and a set lookup costs a fraction of a pattern match.
# Short values only; emptied when full, so that it stays a few megabytes.
_CLEAN_SEEN: set[bytes] = set()
_SEEN_LENGTH = 64
_SEEN_MAX = 1 << 16


def plain_run(win: Window, pos: int, last: int, last_at: int, wanted: frozenset[int],  # noqa: C901 - the hot loop, inlined
              values: dict[int, tuple[bytes | None, bytes | None]],
              checks: dict[bytes, Callable[[bytes], object]], scan: ElementScan | None,
              path: str = "", stop: int | None = None) -> tuple[int, int, int]:
    """Step over the run of plain elements at ``pos`` (explicit VR little endian), up to
    ``stop`` (an item's end) if given: what :func:`walk_dataset` (or the scanner, in an item
    whose elements' paths start with ``path``) does for each, with no call per element. Stops,
    returning ``(pos, last, last_at)``, at the first element that is anything else (a
    sequence, UN, an undefined length, a tag not above the last, a VR that is none, the pixel
    data or a delimiter, the character set in a VR that is not text, a value past the bytes
    read or past ``stop``): the general case takes that one."""
    data, base = win.data, win.base
    n = len(data)
    limit = n if stop is None else min(n, stop - base)
    header = _SHORT_HEADER.unpack_from
    length32 = _U32LE.unpack_from
    seen = _CLEAN_SEEN
    i = pos - base
    while i >= 0 and i + 12 <= n:
        group, number, vr, length = header(data, i)
        tag = group << 16 | number
        if tag <= last or tag >= _FIRST_PIXEL_TAG:
            break
        if vr in _PLAIN_SHORT:
            value = i + 8
        elif vr in _PLAIN_LONG:
            length, value = length32(data, i + 8)[0], i + 12
            if length == UNDEFINED:
                break
        else:
            break
        end = value + length
        if end > limit:
            break
        check = checks.get(vr)
        if check is not None:
            raw = data[value:end]
            if tag in wanted:
                values[tag] = (vr, raw)
            if group & 1:
                pass  # private: never recorded
            elif length & 1:
                scan.record(path, tag, vr, raw)  # type: ignore[union-attr]
            elif length <= _SEEN_LENGTH and vr + raw in seen:
                pass  # a value already found clean (a manufacturer, a date, a code...)
            elif check(raw) is None:
                scan.record(path, tag, vr, raw)  # type: ignore[union-attr]
            elif length <= _SEEN_LENGTH:
                if len(seen) >= _SEEN_MAX:
                    seen.clear()
                seen.add(vr + raw)
        elif tag == CHARSET_TAG and scan is not None:
            break
        elif tag in wanted:
            values[tag] = (vr, data[value:end])
        last, last_at, i = tag, base + i, end
    return base + i, last, last_at


def skip_items(win: Window, pos: int, little: bool, implicit: bool = False) -> int:
    """Step over the items of an undefined-length value; the offset after its delimiter.

    Iterative: a stack of the open sequences and items, so that nesting costs no recursion."""
    item = _LE if little else _BE
    # Per open level below this one: (in an item, its implicit flag) to return to.
    stack: list[tuple[bool, bool]] = []
    in_item = False
    while True:
        if in_item:  # the elements of an undefined-length item, up to its delimiter
            tag, vr, length, value = decode_element_header(win, pos, implicit, little)
            if tag == ITEM_END:
                in_item, implicit = stack.pop()
                pos = value
            elif length == UNDEFINED:
                stack.append((True, implicit))
                in_item, implicit, pos = False, implicit or vr == b"UN", value
            else:
                pos = value + length
                if pos > win.size:
                    raise Truncated("a nested element ends past the end of the object")
            continue
        data, i = win.view(pos, 8)
        group, number, length = item.unpack_from(data, i)
        tag = group << 16 | number
        if tag == SEQUENCE_END:
            if not stack:
                return pos + 8
            in_item, implicit = stack.pop()
            pos += 8
        elif tag != ITEM:
            raise Malformed(f"expected an item at byte {pos}, found "
                            f"({group:04X},{number:04X})")
        elif length == UNDEFINED:
            stack.append((False, implicit))
            in_item, pos = True, pos + 8
        else:
            pos = pos + 8 + length


DEFLATE_MIN_LIMIT = 64 << 20  # a deflated dataset may always inflate to this many bytes
DEFLATE_MAX_RATIO = 200  # ... or to this many times its compressed size (real data: < 20)
_DEFLATE_CHUNK = 64 * 1024  # compressed bytes fed to zlib at a time
_DEFLATE_PIECE = 256 * 1024  # inflated bytes zlib returns at a time
_DEFLATE_KEEP = 1 << 20  # inflated bytes kept behind the read position (pydicom seeks back)


def deflate_limit(compressed_size: int) -> int:
    """The most a deflated dataset of ``compressed_size`` bytes may inflate to."""
    return max(DEFLATE_MIN_LIMIT, DEFLATE_MAX_RATIO * compressed_size)


def _inflate(compressed: bytes) -> Iterator[bytes]:
    """The inflated pieces of a raw deflate stream, at most ``_DEFLATE_PIECE`` bytes each.

    zlib.error for a corrupt stream, :class:`Truncated` when it ends before its last block."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    view = memoryview(compressed)
    for start in range(0, len(view), _DEFLATE_CHUNK):
        data: bytes | memoryview = view[start:start + _DEFLATE_CHUNK]
        while True:
            out = inflater.decompress(data, _DEFLATE_PIECE)
            if out:
                yield out
            if inflater.eof:
                return  # bytes after the stream's last block are ignored, as zlib.decompress does
            data = inflater.unconsumed_tail
            if not data and len(out) < _DEFLATE_PIECE:
                break  # this chunk is consumed and nothing is pending
    raise Truncated("deflated dataset: the deflate stream ends before its last block "
                    "(incomplete or truncated)")


def inflated_size(compressed: bytes) -> int:
    """The inflated size of a raw deflate stream, counted without keeping the output.

    :class:`DeflateBomb` as soon as it passes :func:`deflate_limit`; zlib.error, Truncated."""
    limit, total = deflate_limit(len(compressed)), 0
    for piece in _inflate(compressed):
        total += len(piece)
        if total > limit:
            raise DeflateBomb(f"the deflated dataset ({len(compressed)} bytes) inflates to more "
                              f"than {limit} bytes (max({DEFLATE_MIN_LIMIT >> 20} MiB, "
                              f"{DEFLATE_MAX_RATIO} x its size)): not inflated further")
    return total


class Inflated:
    """A raw deflate stream read as a binary file of its inflated ``size`` (see
    :func:`inflated_size`), inflated as it is read: reading forward (or seeking forward, over
    pixel data) holds at most about a megabyte, whatever the inflated size; seeking back further
    than that inflates again from the start."""

    def __init__(self, compressed: bytes, size: int) -> None:
        self._compressed, self.size = compressed, size
        self._pos = 0
        self._restart()

    def _restart(self) -> None:
        self._pieces = _inflate(self._compressed)
        self._base = 0  # the inflated offset of self._buffer[0]
        self._buffer = bytearray()

    def _fill(self, end: int) -> None:
        """Inflate until the buffer reaches ``end`` (or the stream ends), dropping what lies
        more than ``_DEFLATE_KEEP`` bytes behind the read position."""
        while self._base + len(self._buffer) < end:
            behind = min(self._pos - _DEFLATE_KEEP - self._base, len(self._buffer))
            if behind > 0:
                del self._buffer[:behind]
                self._base += behind
            piece = next(self._pieces, None)
            if piece is None:
                return
            self._buffer += piece

    def read(self, n: int = -1) -> bytes:
        end = self.size if n is None or n < 0 else min(self._pos + n, self.size)
        if end <= self._pos:
            return b""
        self._fill(end)
        start = self._pos - self._base
        data = bytes(self._buffer[start:end - self._base])
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        pos = offset if whence == 0 else self._pos + offset if whence == 1 else self.size + offset
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        if pos < self._base:
            self._restart()
        self._pos = pos
        return pos

    def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return True
