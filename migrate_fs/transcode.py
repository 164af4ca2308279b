"""transcode: re-encode implicit VR and big endian datasets as explicit VR little endian.

Works on the bytes of the source: element headers are rewritten (a VR is added from the DICOM
dictionary, the length field takes its explicit VR form), values are copied byte for byte and,
for big endian sources, binary values are byte-swapped as their VR requires. Text is never
decoded and re-encoded, so a wrong or missing Specific Character Set cannot change a byte.
Sequences are written with undefined length. Group length elements are dropped, since their
values no longer hold once headers change size; that is recorded as a change.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filewriter import correct_ambiguous_vr_element
from pydicom.tag import Tag

from migrate_fs.elements import ITEM, ITEM_END, SEQUENCE_END, UNDEFINED, Malformed

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


def element_header(tag: int, vr: str, length: int) -> bytes:
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


def _resolve_ambiguous(tag: int, vr: str, value: bytes, context: dict[int, bytes]) -> str:
    """Pick one VR of 'US or SS', 'OB or OW', ... as pydicom's writer would."""
    ds = Dataset()
    for ctag, raw in context.items():
        ds._dict[Tag(ctag)] = RawDataElement(Tag(ctag), None, len(raw), raw, 0, True, True)  # type: ignore[assignment]
    try:
        fixed = correct_ambiguous_vr_element(
            RawDataElement(Tag(tag), vr, len(value), value, 0, True, True), ds, True)
        if " or " not in (fixed.VR or ""):
            return fixed.VR
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
    (:meth:`flush_inserts` writes those that remain at the end of the header).
    """

    def __init__(self, write: Write, implicit: bool, little: bool,
                 edits: Edits | None = None) -> None:
        self.write, self.implicit, self.little = write, implicit, little
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
                self.write(element_header(tag, edit[0], len(edit[1])))
                self.write(edit[1])

    def _value(self, tag: int, vr: str, data: bytes, path: str, implicit: bool) -> None:
        if self.edits:
            edit = self.edits.pop(path + tag_text(tag), None)
            if edit is not None:
                if edit[1] is not None:
                    vr = vr if " or " not in vr and vr != "UN" else edit[0]
                    self.write(element_header(tag, vr, len(edit[1])))
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
        self.write(element_header(tag, vr, len(data)))
        self.write(data)

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
        self.write(element_header(tag, "OB", UNDEFINED))
        self.write(buf[start:pos])
        return pos

    def _sequence(self, buf: bytes, tag: int, pos: int, end: int | None, path: str,
                  implicit: bool) -> int:
        """Write a sequence with undefined length; its items from ``pos`` to ``end`` (or the
        sequence delimiter). Returns the offset after the source sequence."""
        self.write(element_header(tag, "SQ", UNDEFINED))
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


def _change(path: str, tag: int, old: str, new: str, rule: str) -> Change:
    return {"tag": f"{path}{Tag(tag)}", "keyword": keyword_for_tag(tag) or "", "old": old,
            "new": new, "rule": rule}
