"""transcode: re-encode implicit VR and big endian datasets as explicit VR little endian.

Values are copied byte for byte; only element headers change (a VR is added, the length field
takes its explicit VR form) and, for big endian sources, binary values are byte-swapped as their
VR requires. Text is never decoded and re-encoded, so a wrong or missing Specific Character Set
cannot turn into changed bytes. Group length elements are dropped, since their values no longer
hold once headers change size; that is recorded as a change.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filereader import read_sequence
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import correct_ambiguous_vr_element, write_data_element
from pydicom.tag import Tag

# Bytes per value unit to swap when converting from big endian, by VR.
SWAP_UNIT = {"US": 2, "SS": 2, "OW": 2, "AT": 2, "UL": 4, "SL": 4, "FL": 4, "OF": 4, "OL": 4,
             "FD": 8, "OD": 8, "SV": 8, "UV": 8, "OV": 8}
VR_LENGTH_32 = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
UNDEFINED = 0xFFFFFFFF
ITEM = struct.pack("<HHI", 0xFFFE, 0xE000, UNDEFINED)
ITEM_END = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
SEQUENCE_END = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)

# Elements that decide ambiguous VRs (US or SS, OB or OW, ...).
CONTEXT_TAGS = {Tag(k) for k in ("PixelRepresentation", "BitsAllocated", "WaveformBitsAllocated",
                                 "LUTDescriptor", "SmallestImagePixelValue")}
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


def implicit_vr(tag: int, elem: RawDataElement, root: Dataset, little: bool) -> str:
    """The VR of an element read without one: dictionary, private creator, else UN."""
    group, number = tag >> 16, tag & 0xFFFF
    if group % 2 and 0x0010 <= number <= 0x00FF:
        return "LO"  # private creator
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return "UN"
    if " or " in vr:
        try:
            fixed = correct_ambiguous_vr_element(RawDataElement(
                elem.tag, vr, elem.length, elem.value, elem.value_tell, elem.is_implicit_VR,
                elem.is_little_endian), root, little)
            vr = fixed.VR if " or " not in fixed.VR else vr.split(" or ")[0]
        except Exception:  # noqa: BLE001 - any failure means: take the first candidate
            vr = vr.split(" or ")[0]
    return vr


class Transcoder:
    """Writes one dataset's elements as explicit VR little endian through ``write``."""

    def __init__(self, write: Write, little_endian: bool, encoding: Any, root: Dataset) -> None:
        self.write = write
        self.little = little_endian
        self.encoding = encoding
        # Resolving an ambiguous VR converts the elements it looks at: give it copies.
        self.root = Dataset({t: root._dict[t] for t in CONTEXT_TAGS if t in root._dict})
        self.changes: list[Change] = []

    def dataset(self, ds: Dataset, path: str = "") -> None:
        for elem in ds.elements():
            self.element(elem, path)

    def element(self, elem: RawDataElement | DataElement, path: str = "") -> None:
        tag = int(elem.tag)
        if tag & 0xFFFF == 0 and tag >> 16 != 0x0000:
            self.changes.append(_change(path, tag, "group length", "(removed)",
                                        "drop_group_length"))
            return
        vr = elem.VR or implicit_vr(tag, elem, self.root, self.little)  # type: ignore[arg-type]
        if vr == "SQ" or isinstance(elem, DataElement) and elem.VR == "SQ":
            self.sequence(tag, elem, path)
            return
        if isinstance(elem, DataElement):  # converted by pydicom: let it encode the value
            self.write(_encode_converted(elem, self.encoding))
            return
        value: bytes = elem.value if isinstance(elem.value, bytes) else b""
        if elem.length == UNDEFINED:
            self.write(element_header(tag, "UN" if vr not in ("OB", "OW", "UN") else vr,
                                      UNDEFINED))
            self.write(value)
            self.write(SEQUENCE_END)
            return
        if not self.little:
            value = swap(value, SWAP_UNIT.get(vr, 1))
        if len(value) > 0xFFFF and vr not in VR_LENGTH_32:
            self.changes.append(_change(path, tag, vr, "UN", "vr_too_long_for_explicit_length"))
            vr = "UN"
        self.write(element_header(tag, vr, len(value)))
        self.write(value)

    def sequence(self, tag: int, elem: RawDataElement | DataElement, path: str) -> None:
        items = elem.value
        if isinstance(items, bytes) or items is None:  # defined length: items not parsed yet
            raw = items or b""
            implicit = bool(getattr(elem, "is_implicit_VR", False))
            items = read_sequence(io.BytesIO(raw), implicit, self.little,  # type: ignore[arg-type]
                                  len(raw), self.encoding) if raw else []
        self.write(element_header(tag, "SQ", UNDEFINED))
        for index, item in enumerate(items):
            self.write(ITEM)
            self.dataset(item, f"{path}{Tag(tag)}[{index}].")
            self.write(ITEM_END)
        self.write(SEQUENCE_END)


def _encode_converted(elem: DataElement, encoding: Any) -> bytes:
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_data_element(buffer, elem, encoding)
    return buffer.getvalue()


def _change(path: str, tag: int, old: str, new: str, rule: str) -> Change:
    return {"tag": f"{path}{Tag(tag)}", "keyword": _keyword(tag), "old": old, "new": new,
            "rule": rule}


def _keyword(tag: int) -> str:
    from pydicom.datadict import keyword_for_tag

    return keyword_for_tag(tag) or ""
