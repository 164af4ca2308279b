"""transcode: re-encode implicit VR and big endian datasets as explicit VR little endian.

Works on the bytes of the source: element headers are rewritten (a VR is added from the DICOM
dictionary, the length field takes its explicit VR form), values are copied byte for byte and,
for big endian sources, binary values are byte-swapped as their VR requires. Text is never
decoded and re-encoded, so a wrong or missing Specific Character Set cannot change a byte.
Sequences are written with undefined length. Group length elements are dropped, since their
values no longer hold once headers change size; that is recorded as a change. When asked
(``known_vrs``: the object has the problem ``standard_element_as_un``), standard elements an
explicit VR source encodes as UN are written with their dictionary VR, each a change.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from typing import Any, BinaryIO, Protocol

import numpy as np
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filewriter import correct_ambiguous_vr_element
from pydicom.tag import Tag

from migrate_fs import charsets
from migrate_fs.charsets import CHARSET_VRS
from migrate_fs.elements import ITEM, ITEM_END, PIXEL_DATA_TAGS, SEQUENCE_END, UNDEFINED, Malformed
from migrate_fs.values import NUL_TRIMMED_VRS

# Bytes per value unit to swap when converting from big endian, by VR.
SWAP_UNIT = {"US": 2, "SS": 2, "OW": 2, "AT": 2, "UL": 4, "SL": 4, "FL": 4, "OF": 4, "OL": 4,
             "FD": 8, "OD": 8, "SV": 8, "UV": 8, "OV": 8}
VR_LENGTH_32 = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
ITEM_START = struct.pack("<HHI", 0xFFFE, 0xE000, UNDEFINED)
ITEM_STOP = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
SEQUENCE_STOP = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
# Elements that decide ambiguous VRs (US or SS, OB or OW, ...), kept as they go by.
CONTEXT_TAGS = frozenset(int(Tag(k)) for k in (
    "PixelRepresentation", "BitsAllocated", "WaveformBitsAllocated", "LUTDescriptor"))

Change = dict[str, Any]
Write = Callable[[bytes], Any]


def swap(value: bytes, unit: int) -> bytes:
    """Reverse the byte order of each ``unit``-byte value (a trailing odd byte is kept)."""
    if unit <= 1 or len(value) < unit:
        return value
    whole = len(value) - len(value) % unit
    swapped = np.frombuffer(value, dtype=f">u{unit}", count=whole // unit).astype(f"<u{unit}")
    return swapped.tobytes() + value[whole:]


def encode_element_header(tag: int, vr: str, length: int) -> bytes:
    """An explicit VR little endian element header."""
    if vr in VR_LENGTH_32:
        return struct.pack("<HH2sHI", tag >> 16, tag & 0xFFFF, vr.encode(), 0, length)
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), length)


@functools.lru_cache(maxsize=4096)
def dictionary_vr(tag: int) -> str:
    """The VR the dictionary gives a tag: private creators LO, unknown (private) tags UN."""
    if tag >> 16 & 1 and 0x0010 <= tag & 0xFFFF <= 0x00FF:
        return "LO"
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


# Text VRs: a value of odd length takes one pad byte (NUL for UI, a space for the others).
PADDED_VRS = NUL_TRIMMED_VRS | {"UI"}


def un_known_vr(tag: int, little: bool = True) -> str | None:
    """The dictionary VR of a standard element an explicit VR source encodes as UN, or None
    where it stays UN: private (odd group), file meta, group length or pixel data elements,
    tags the dictionary does not know, and in a big endian source binary VRs (the byte order
    of a UN value is not defined there; text has none)."""
    group = tag >> 16
    if group & 1 or group == 0x0002 or not tag & 0xFFFF or tag in PIXEL_DATA_TAGS:
        return None
    vr = dictionary_vr(tag)
    if vr == "UN" or not little and vr not in PADDED_VRS:
        return None
    return vr


def _resolve_ambiguous(tag: int, vr: str, value: bytes, context: dict[int, bytes]) -> str:
    """Pick one VR of 'US or SS', 'OB or OW', ... as pydicom's writer would."""
    ds = Dataset()
    for ctag, raw in context.items():
        ds._dict[Tag(ctag)] = RawDataElement(Tag(ctag), None, len(raw), raw, 0, True, True)  # type: ignore[assignment]
    try:
        fixed = correct_ambiguous_vr_element(
            RawDataElement(Tag(tag), vr, len(value), value, 0, True, True), ds, True)
        if fixed.VR and " or " not in fixed.VR:
            return str(fixed.VR)
    except Exception:  # noqa: BLE001 - no context to decide: take the first candidate
        pass
    return vr.split(" or ")[0]


Edits = dict[str, tuple[str, bytes | None]]  # tag path -> (VR, new value; None: remove)


def tag_text(tag: int) -> str:
    """``(GGGG,EEEE)``, as pydicom prints a tag: one step of a tag path."""
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def last_tag(path: str) -> int:
    """The tag of the last step of a tag path such as ``(0008,1115)[0].(0008,1155)``."""
    last = path.rsplit(".", 1)[-1]
    return int(last[1:5] + last[6:10], 16)


class Transcoder:
    """Writes datasets held in a bytes buffer as explicit VR little endian through ``write``.

    ``edits`` (tag path -> VR and new encoded value) replace element values as they go by; a
    top-level edit whose element the source lacks is inserted in tag order
    (:meth:`flush_inserts` writes those that remain at the end of the header). ``known_vrs``
    writes standard elements encoded as UN with their dictionary VR (:meth:`_un`).
    """

    def __init__(self, write: Write, implicit: bool, little: bool,
                 edits: Edits | None = None, known_vrs: bool = False) -> None:
        self.write, self.implicit, self.little = write, implicit, little
        self.known_vrs = known_vrs
        self.edits = dict(edits or {})
        self._inserts = sorted((last_tag(p), p) for p in self.edits if "." not in p)
        self._head = struct.Struct("<HHI" if little else ">HHI")
        self._length16 = struct.Struct("<H" if little else ">H")
        self._length32 = struct.Struct("<I" if little else ">I")
        self.context: dict[int, bytes] = {}
        self.changes: list[Change] = []

    def dataset(self, buf: bytes, pos: int, end: int, path: str = "",
                implicit: bool | None = None) -> int:
        """Transcode elements from ``pos`` until ``end`` or an item delimiter; returns the offset
        after what was consumed."""
        implicit = self.implicit if implicit is None else implicit
        head = self._head
        while pos < end:
            if pos + 8 > len(buf):
                raise Malformed(f"element header past the end of the data at byte {pos}")
            group, number, length = head.unpack_from(buf, pos)
            tag = group << 16 | number
            if tag == ITEM_END:
                return pos + 8
            if self._inserts and not path:
                self.flush_inserts(tag)
            if implicit or group == 0xFFFE:
                vr, value = dictionary_vr(tag), pos + 8
            else:
                vr = buf[pos + 4:pos + 6].decode("latin-1")
                if vr in VR_LENGTH_32:
                    length, value = self._length32.unpack_from(buf, pos + 8)[0], pos + 12
                else:
                    length, value = self._length16.unpack_from(buf, pos + 6)[0], pos + 8
            if number == 0 and group not in (0x0000, 0x0002, 0xFFFE):
                self.changes.append(_change(path, tag, "group length", "(removed)",
                                            "drop_group_length"))
                pos = value + length
                continue
            if vr == "UN" and self.known_vrs and not implicit and \
                    (after := self._un(buf, tag, value, length, path)) is not None:
                pos = after
                continue
            if length == UNDEFINED:
                pos = self._undefined(buf, tag, vr, value, path, implicit)
                continue
            if value + length > len(buf):
                raise Malformed(f"element {Tag(tag)} runs past the end of the data")
            if vr == "SQ":
                self._sequence(buf, tag, value, value + length, path, implicit)
            else:
                self._value(tag, vr, buf[value:value + length], path, implicit)
            pos = value + length
        return pos

    def flush_inserts(self, before: int = 0xFFFFFFFF) -> None:
        """Write the pending top-level edits for tags below ``before`` the source lacked."""
        while self._inserts and self._inserts[0][0] < before:
            tag, key = self._inserts.pop(0)
            edit = self.edits.pop(key, None)
            if edit is not None and edit[1] is not None:
                self.write(encode_element_header(tag, edit[0], len(edit[1])))
                self.write(edit[1])

    def _value(self, tag: int, vr: str, data: bytes, path: str, implicit: bool) -> None:
        if self.edits:
            edit = self.edits.pop(path + tag_text(tag), None)
            if edit is not None:
                if edit[1] is not None:
                    vr = vr if " or " not in vr and vr != "UN" else edit[0]
                    self.write(encode_element_header(tag, vr, len(edit[1])))
                    self.write(edit[1])
                return
        if " or " in vr:
            vr = _resolve_ambiguous(tag, vr, data, self.context)
        if tag in CONTEXT_TAGS and not path:
            self.context[tag] = data if self.little else swap(data, 2)
        if not self.little and not implicit:
            data = swap(data, SWAP_UNIT.get(vr, 1))
        if len(data) > 0xFFFF and vr not in VR_LENGTH_32:
            self.changes.append(_change(path, tag, vr, "UN", "vr_too_long_for_explicit_length"))
            vr = "UN"
        self.write(encode_element_header(tag, vr, len(data)))
        self.write(data)

    def _un(self, buf: bytes, tag: int, value: int, length: int, path: str) -> int | None:
        """Write a standard element encoded as UN with its dictionary VR (ambiguous VRs
        resolved as for any element), its value unchanged but for the padding the VR defines;
        return the offset after it, or None where it stays UN: see :func:`un_known_vr`, and a
        value too long for the VR's 16-bit length or a sequence whose items do not parse.

        A UN sequence's items are implicit VR little endian (PS3.5 6.2.2, whether its length is
        defined or not); they are re-encoded in explicit VR, as pydicom writes them."""
        vr = un_known_vr(tag, self.little)
        if vr is None:
            return None
        if length == UNDEFINED:
            if vr != "SQ":
                return None  # written as any undefined-length UN is (see _undefined)
            self.changes.append(_change(path, tag, "UN", vr, "un_to_known_vr"))
            return self._sequence(buf, tag, value, None, path, True)
        end = value + length
        if end > len(buf):
            return None  # the caller reports it
        data = buf[value:end]
        if vr == "SQ":
            return end if self._un_sequence(tag, data, path) else None
        if " or " in vr:
            vr = _resolve_ambiguous(tag, vr, data, self.context)
        if vr in PADDED_VRS:
            data = pad_text(vr, data)
        if len(data) > 0xFFFF and vr not in VR_LENGTH_32:
            return None
        edit = self.edits.get(path + tag_text(tag)) if self.edits else None
        if edit is None or edit[1] is not None:  # a removed element changes no VR
            self.changes.append(_change(path, tag, "UN", vr, "un_to_known_vr"))
        self._value(tag, vr, data, path, False)
        return end

    def _un_sequence(self, tag: int, data: bytes, path: str) -> bool:
        """Write a defined-length UN value the dictionary calls a sequence as SQ, its items
        re-encoded; False, with nothing written or recorded, when they do not parse as
        implicit VR little endian items filling the value."""
        parts: list[bytes] = []
        write, changes, edits = self.write, len(self.changes), dict(self.edits)
        self.write = parts.append
        try:
            end = self._sequence(data, tag, 0, len(data), path, True)
        except (Malformed, struct.error, ValueError):
            end = -1
        finally:
            self.write = write
        if end != len(data):
            del self.changes[changes:]
            self.edits = edits
            return False
        self.changes.insert(changes, _change(path, tag, "UN", "SQ", "un_to_known_vr"))
        write(b"".join(parts))
        return True

    def _undefined(self, buf: bytes, tag: int, vr: str, pos: int, path: str,
                   implicit: bool) -> int:
        """An undefined-length value: a sequence (items transcoded) or items copied as they are."""
        if vr in ("SQ", "UN") or " or " not in vr and vr not in ("OB", "OW"):
            # A sequence; an undefined-length UN holds implicit VR little endian content.
            return self._sequence(buf, tag, pos, None, path, implicit or vr == "UN")
        start = pos
        while True:  # encapsulated-style items: copy verbatim
            group, number, length = self._head.unpack_from(buf, pos)
            pos += 8 if (group << 16 | number) == SEQUENCE_END else 8 + length
            if (group << 16 | number) == SEQUENCE_END:
                break
        self.write(encode_element_header(tag, "OB", UNDEFINED))
        self.write(buf[start:pos])
        return pos

    def _sequence(self, buf: bytes, tag: int, pos: int, end: int | None, path: str,
                  implicit: bool) -> int:
        """Write a sequence with undefined length; its items from ``pos`` to ``end`` (or the
        sequence delimiter). Returns the offset after the source sequence."""
        self.write(encode_element_header(tag, "SQ", UNDEFINED))
        index = 0
        while end is None or pos < end:
            group, number, length = self._head.unpack_from(buf, pos)
            item = group << 16 | number
            if item == SEQUENCE_END:
                pos += 8
                break
            if item != ITEM:
                raise Malformed(f"expected an item in {Tag(tag)} at byte {pos}")
            self.write(ITEM_START)
            item_path = f"{path}{Tag(tag)}[{index}]."
            if length == UNDEFINED:
                pos = self.dataset(buf, pos + 8, len(buf), item_path, implicit)
            else:
                self.dataset(buf, pos + 8, pos + 8 + length, item_path, implicit)
                pos += 8 + length
            self.write(ITEM_STOP)
            index += 1
        self.write(SEQUENCE_STOP)
        return pos


def pad_text(vr: str, value: bytes) -> bytes:
    """A text value with the padding its VR defines: one byte to an even length (NUL for UI,
    a space otherwise); a trailing NUL pad of a VR padded with spaces becomes a space."""
    if len(value) & 1:
        return value + (b"\x00" if vr == "UI" else b" ")
    if vr != "UI" and value[-1:] == b"\x00":
        return value[:-1] + b" "
    return value


def _change(path: str, tag: int, old: str, new: str, rule: str) -> Change:
    return {"tag": f"{path}{Tag(tag)}", "keyword": keyword_for_tag(tag) or "", "old": old,
            "new": new, "rule": rule}


# --- Datasets from a source stream: the writer's and the content hash's encoder -------------

CHUNK = 1 << 20
BITS_ALLOCATED = 0x00280100
SPECIFIC_CHARACTER_SET = "(0008,0005)"


class WriteError(Exception):
    """A failure to migrate one object; ``reason`` is its problem code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Sink(Protocol):
    """Where bytes of the output go (a file with its hash, or only a hash)."""

    def write(self, data: bytes | memoryview) -> None: ...


_BUFFER = memoryview(bytearray(CHUNK))  # one per worker process: no allocation per chunk


def read_first(src: BinaryIO) -> memoryview:
    """The first bytes of ``src`` (up to CHUNK; all of a typical header and a small object),
    read into the worker's buffer with one call: valid until the buffer's next use."""
    got = src.readinto(_BUFFER)  # type: ignore[attr-defined]
    return _BUFFER[:got or 0]


def copy_range(src: BinaryIO, sink: Sink, length: int | None, unit: int = 1) -> int:
    """Copy ``length`` bytes (all, if None) from ``src``, swapping ``unit``-byte values."""
    copied, step = 0, CHUNK - CHUNK % max(unit, 1)
    while length is None or copied < length:
        want = step if length is None else min(step, length - copied)
        got = src.readinto(_BUFFER[:want])  # type: ignore[attr-defined]
        if not got:
            break
        chunk = _BUFFER[:got]
        sink.write(swap(chunk.tobytes(), unit) if unit > 1 else chunk)
        copied += got
    if length is not None and copied != length:
        raise WriteError("truncated", f"source ended after {copied} of {length} bytes")
    return copied


def edits_for(row: dict[str, Any]) -> Edits:
    """The plan's changes as encoded element values (text in the output character set)."""
    changes = row.get("changes") or []
    if not changes:
        return {}
    charset = next((c["new"] for c in changes if c["tag"] == SPECIFIC_CHARACTER_SET),
                   row.get("specific_character_set"))
    terms = charsets.resolve(charset, {}).terms
    edits: Edits = {}
    for change in changes:
        path, new = change["tag"], change["new"]
        vr = dictionary_vr(last_tag(path))
        if new is None:
            edits[path] = (vr, None)
            continue
        data = charsets.encode(new, vr, terms) if vr in CHARSET_VRS else \
            new.encode("ascii", "strict") if new.isascii() else None
        if data is None:
            raise WriteError("write_failed", f"{change['keyword']} {new!r} cannot be written "
                                             f"in the character set {charset!r}: plan again")
        if len(data) % 2:
            data += b"\x00" if vr == "UI" else b" "
        edits[path] = (vr, data)
    return edits


UN_PROBLEM = "standard_element_as_un"


def writes_known_vrs(row: dict[str, Any]) -> bool:
    """Whether the object's standard elements encoded as UN are written with their dictionary
    VR (its problems include ``standard_element_as_un``): then it is never spliced."""
    return any(p["code"] == UN_PROBLEM for p in row.get("problems") or [])


def transcode_buffer(data: bytes, implicit: bool, little: bool, edits: Edits,
                     sink: Sink, known_vrs: bool = False) -> list[dict[str, Any]]:
    parts: list[bytes] = []
    coder = Transcoder(parts.append, implicit, little, edits, known_vrs)
    coder.dataset(data, 0, len(data))
    coder.flush_inserts()
    sink.write(b"".join(parts))
    return coder.changes


def transcode(src: BinaryIO, row: dict[str, Any], sink: Sink, edits: Edits,
              pixel_sink: Sink | None = None) -> list[dict[str, Any]]:
    """Re-encode the header (with the plan's changes, standard UN elements with their
    dictionary VR where :func:`writes_known_vrs`); the pixel data element is copied (to
    ``pixel_sink`` if given, so that it can be hashed apart)."""
    parts: list[bytes] = []  # collected and written at once: one hash update, one write
    coder = Transcoder(parts.append, bool(row["is_implicit_vr"]), bool(row["is_little_endian"]),
                       edits, writes_known_vrs(row))
    pixel, size = row["pixel_data_offset"], row["size"]
    header = src.read((pixel if pixel is not None else size) - row["dataset_offset"])
    coder.dataset(header, 0, len(header))
    coder.flush_inserts()
    sink.write(b"".join(parts))
    parts.clear()
    if pixel is not None:
        raw_bits = coder.context.get(BITS_ALLOCATED)
        bits = struct.unpack("<H", raw_bits[:2])[0] if raw_bits and len(raw_bits) >= 2 else None
        after = copy_pixel_data(src, row, bits, pixel_sink or sink)
        if after < size:
            src.seek(after)
            tail = src.read(size - after)
            coder.dataset(tail, 0, len(tail))
            sink.write(b"".join(parts))
    if coder.edits:
        raise WriteError("write_failed", "planned changes to elements the source does not "
                                         "have: " + ", ".join(sorted(coder.edits)))
    return coder.changes


def copy_pixel_data(src: BinaryIO, row: dict[str, Any], bits_allocated: int | None,
                    sink: Sink) -> int:
    """Copy the Pixel Data element; return the source offset just after it."""
    endian = "<" if row["is_little_endian"] else ">"
    src.seek(row["pixel_data_offset"])
    head = src.read(12)
    group, number = struct.unpack_from(endian + "HH", head)
    tag = group << 16 | number
    if row["is_implicit_vr"]:
        default = "OW" if (bits_allocated or 8) > 8 else "OB"
        vr = {0x7FE00008: "OF", 0x7FE00009: "OD"}.get(tag, default)
        length, header_length = struct.unpack_from("<I", head, 4)[0], 8
    else:
        vr = head[4:6].decode("ascii")
        if vr in VR_LENGTH_32:
            length, header_length = struct.unpack_from(endian + "I", head, 8)[0], 12
        else:
            length, header_length = struct.unpack_from(endian + "H", head, 6)[0], 8
    src.seek(row["pixel_data_offset"] + header_length)
    if length == UNDEFINED:  # encapsulated: always little endian, items copied as they are
        sink.write(encode_element_header(tag, "OB", UNDEFINED))
        copy_range(src, sink, row["pixel_data_length"])
        return row["pixel_data_offset"] + header_length + row["pixel_data_length"]
    unit = 1
    if not row["is_little_endian"]:
        unit = max((bits_allocated or 8) // 8, 2 if vr == "OW" else 1)
        unit = {"OF": 4, "OD": 8}.get(vr, unit)
    sink.write(encode_element_header(tag, vr, length))
    copy_range(src, sink, length, unit)
    return row["pixel_data_offset"] + header_length + length
