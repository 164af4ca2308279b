"""pydicom_reader: the reader's fallback, parsing headers with pydicom.

Slower than the lean walker of :mod:`migrate_fs.reader`, but it handles whatever pydicom
handles (deflated datasets, unknown VRs, odd file meta). It adds what pydicom does not check on
read (see DESIGN.md's known traps): truncation anywhere in the object, a pixel data element that
does not fit in the file, elements after the pixel data.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from typing import BinaryIO

from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import _read_file_meta_info, read_dataset
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from migrate_fs.elements import (
    ITEM,
    PIXEL_DATA_TAGS,
    SEQUENCE_END,
    UNDEFINED,
    VALID_VRS,
    VR_LENGTH_32,
)
from migrate_fs.header import (
    ATTRIBUTES,
    MAGIC,
    PIXEL_KEYWORDS,
    PREAMBLE_LENGTH,
    REQUIRED_CANDIDATES,
    Encoding,
    Header,
    ImagePixel,
    check_pixel_data,
    check_pixel_data_present,
    check_un_elements,
    classify,
    declared_encoding,
    note_presence,
    settle_encoding,
    sniff_encoding,
    text_value,
)
from migrate_fs.scan import Scanner
from migrate_fs.transcode import dictionary_vr, tag_text


class _TruncationGuard:
    """A file wrapper that notes reads cut short by the end of the file.

    pydicom ends a dataset silently when an element header is cut, and returns short values
    without raising; this wrapper is how the reader tells a truncated object from a complete one.
    A zero-byte read of a tag header (8 bytes) or a one-byte peek is the normal end of a dataset.
    """

    def __init__(self, fp: BinaryIO) -> None:
        self._fp = fp
        self.seek = fp.seek
        self.tell = fp.tell
        self.short_read = False
        self.name = getattr(fp, "name", "<object>")

    def read(self, n: int = -1) -> bytes:
        data = self._fp.read(n)
        if 0 <= len(data) < n and (data or n not in (1, 8)):
            self.short_read = True
        return data


def read_header_with_pydicom(fp: BinaryIO, size: int) -> Header:
    """The same as :func:`read_header`, parsing with pydicom (slower; handles every oddity)."""
    header = Header()
    if size == 0:
        header.kind = "empty"
        header.problem("empty_file", "zero bytes")
        return header
    start = fp.read(PREAMBLE_LENGTH + 4)
    if len(start) == PREAMBLE_LENGTH + 4 and start[PREAMBLE_LENGTH:] == MAGIC:
        header.has_preamble = True
        header.kind = "part10"  # until the dataset says otherwise (a DICOMDIR, say)
        offset = PREAMBLE_LENGTH + 4
    else:
        offset = 0
    fp.seek(offset)
    guard = _TruncationGuard(fp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            _read(guard, size, offset, header)
        except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError,
                struct.error, zlib.error, NotImplementedError, IndexError) as exc:
            if guard.short_read or isinstance(exc, EOFError):
                header.problem("truncated", f"file ends inside the header ({exc})")
            else:
                header.problem("unreadable_header", f"{type(exc).__name__}: {exc}")
    return header


def _read(fp: _TruncationGuard, size: int, offset: int, header: Header) -> None:
    """Parse file meta and dataset into ``header``; raises on a broken structure."""
    first = fp.read(8)
    fp.seek(offset)
    declared: Encoding | None = None
    if first[:2] == b"\x02\x00" and first[4:6] in VALID_VRS:
        file_meta = _read_file_meta_info(fp)  # type: ignore[arg-type]
        header.has_file_meta = True
        if fp.short_read:
            header.problem("truncated", "the file ends inside the file meta")
            return
        media_class = file_meta.get("MediaStorageSOPClassUID")
        header.media_storage_sop_class_uid = str(media_class) if media_class else None
        ts = file_meta.get("TransferSyntaxUID")
        header.transfer_syntax = str(ts) if ts else None
        offset = fp.tell()
        if ts:
            declared = declared_encoding(UID(ts), header)
            if declared is None:
                return
    elif not header.has_preamble and sniff_encoding(first) is None:
        header.problem("not_dicom", "no 'DICM' prefix and the bytes are not a DICOM dataset")
        return
    header.kind = "part10" if header.has_file_meta else "raw"
    header.dataset_offset = offset
    if header.transfer_syntax == DeflatedExplicitVRLittleEndian:
        _read_deflated(fp, header)
        return
    actual = sniff_encoding(fp.read(8), strict=not header.has_file_meta)
    fp.seek(offset)
    if not settle_encoding(header, declared, actual, offset == size):
        return
    assert actual is not None
    ds = read_dataset(fp, actual.is_implicit_vr, actual.is_little_endian,  # type: ignore[arg-type]
                      stop_when=lambda tag, vr, length: tag in PIXEL_DATA_TAGS)
    end = fp.tell()
    un_tags = _un_tags(ds, fp, actual.is_implicit_vr)
    _check_complete(ds, fp, header)
    _finish(ds, header)
    broken = any(p.code in ("truncated", "unreadable_header") for p in header.problems)
    if header.kind in ("part10", "raw") and end < size and not broken:
        after = _locate_pixel_data(fp, end, size, actual, header)
        if after is not None and after < size:  # elements after the pixel data: check them too
            fp.seek(after)
            tail = read_dataset(fp, actual.is_implicit_vr,  # type: ignore[arg-type]
                                actual.is_little_endian)
            un_tags += _un_tags(tail, fp, actual.is_implicit_vr)
            _check_complete(tail, fp, header)
    check_pixel_data_present(header, header.pixel_data_offset is not None,
                              "Rows" in ds and "Columns" in ds)
    check_pixel_data(header, _image_pixel(ds), fp._fp)  # type: ignore[arg-type]
    check_un_elements(header, un_tags)


def _image_pixel(ds: Dataset) -> ImagePixel:
    """The Image Pixel attributes, None where absent or unreadable."""
    found: dict[str, int | None] = {}
    for keyword in PIXEL_KEYWORDS:
        try:
            value = ds.get(keyword)
            found[keyword] = int(value) if value not in (None, "") else None
        except Exception:  # noqa: BLE001 - pydicom raises its own errors for bad lengths
            found[keyword] = None
    return ImagePixel(found["Rows"], found["Columns"], found["SamplesPerPixel"],
                      found["BitsAllocated"], found["NumberOfFrames"])


def _read_deflated(fp: _TruncationGuard, header: Header) -> None:
    """Inflate a deflated dataset into memory and parse it (pixel data offsets do not apply)."""
    try:
        inflated = zlib.decompress(fp.read(), -zlib.MAX_WBITS)
    except zlib.error as exc:
        header.problem("truncated" if "incomplete" in str(exc) else "unreadable_header",
                       f"deflated dataset: {exc}")
        return
    inner = _TruncationGuard(io.BytesIO(inflated))  # type: ignore[arg-type]
    header.is_implicit_vr, header.is_little_endian = False, True
    ds = read_dataset(inner, False, True)  # type: ignore[arg-type]
    un_tags = _un_tags(ds, inner, False)
    _check_complete(ds, inner, header)
    _finish(ds, header)
    check_pixel_data_present(header, any(t in ds._dict for t in PIXEL_DATA_TAGS),
                              "Rows" in ds and "Columns" in ds)
    check_un_elements(header, un_tags)


def _un_tags(ds: Dataset, fp: _TruncationGuard, implicit: bool) -> list[int]:
    """The top-level elements of an explicit VR dataset encoded with VR UN, as the lean walker
    notes them. Called before any value is read: pydicom replaces UN with the dictionary VR when
    an element is first accessed (``config.replace_un_with_known_vr``), and already on read for
    an undefined-length UN, which it parses as a sequence (``config.settings.infer_sq_for_un_vr``):
    for those undefined-length sequences the VR is read back from the file."""
    if implicit:
        return []
    found = []
    for tag, elem in ds._dict.items():
        if elem.VR == "UN":
            found.append(int(tag))
        elif elem.VR == "SQ" and getattr(elem, "is_undefined_length", False) \
                and (value_at := getattr(elem, "file_tell", None)):
            here = fp.tell()
            fp.seek(value_at - 8)  # explicit VR: tag, VR, 2 reserved bytes, length
            vr = fp._fp.read(2)
            fp.seek(here)
            if vr == b"UN":
                found.append(int(tag))
    return found


def _check_complete(ds: Dataset, fp: _TruncationGuard, header: Header) -> None:
    """Record ``truncated`` when a read came up short or a raw value is shorter than declared."""
    if fp.short_read:
        header.problem("truncated", "the file ends inside a header element")
        return
    for elem in ds.elements():
        value = getattr(elem, "value", None)
        length = getattr(elem, "length", None)
        if isinstance(value, bytes) and length not in (None, UNDEFINED) \
                and len(value) != length:
            header.problem("truncated", f"element {elem.tag} declares {length} bytes, "
                                        f"the file holds {len(value)}")
            return


def _finish(ds: Dataset, header: Header) -> None:
    """Extract the manifest attributes from a pydicom dataset, then classify the object."""
    header.dataset = ds
    scan = Scanner()  # first: reading attributes below converts their raw values
    _scan(ds, "", scan)
    present = {k: _raw(ds, k) for k in REQUIRED_CANDIDATES if k in ds}
    for column, keyword in ATTRIBUTES.items():
        header.attributes[column] = text_value(ds, keyword, header)
    classify(header, "DirectoryRecordSequence" in ds)
    header.elements = scan.elements
    note_presence(header, present)


def _raw(ds: Dataset, keyword: str) -> bytes | None:
    """The raw value of a (top-level, still raw) element, or None."""
    elem = ds.get_item(keyword)
    value = getattr(elem, "value", None)
    return value if isinstance(value, bytes) else None


def _scan(ds: Dataset, path: str, scan: Scanner) -> None:
    """Show every element of a pydicom dataset (items included) to ``scan``."""
    for tag, elem in ds._dict.items():
        if tag >> 16 & 1 or tag in PIXEL_DATA_TAGS:
            continue
        vr = elem.VR or dictionary_vr(int(tag))
        value = elem.value
        if vr == "SQ":
            value = ds[tag].value  # pydicom parses a sequence when it is first accessed
        if isinstance(value, bytes):
            scan.value(path, int(tag), vr, value)
        elif vr == "SQ" or isinstance(value, list):
            for index, item in enumerate(value or []):
                if isinstance(item, Dataset):
                    _scan(item, f"{path}{tag_text(int(tag))}[{index}].", scan)


def _locate_pixel_data(fp: _TruncationGuard, offset: int, size: int, enc: Encoding,
                       header: Header) -> int | None:
    """Read the Pixel Data element header at ``offset``; check the value fits in the file.

    Returns the offset just after the element, or None when it does not fit.
    """
    endian = "<" if enc.is_little_endian else ">"
    raw = fp.read(12)
    group, number = struct.unpack_from(endian + "HH", raw)
    if group << 16 | number not in PIXEL_DATA_TAGS:
        header.problem("unreadable_header", f"the dataset stops at ({group:04X},{number:04X}), "
                                            f"byte {offset}, before its end")
        return None
    if enc.is_implicit_vr:
        length, value_offset = struct.unpack_from(endian + "I", raw, 4)[0], offset + 8
    elif raw[4:6] in VR_LENGTH_32:
        length, value_offset = struct.unpack_from(endian + "I", raw, 8)[0], offset + 12
    else:
        length, value_offset = struct.unpack_from(endian + "H", raw, 6)[0], offset + 8
    header.pixel_data_offset = offset
    if length == UNDEFINED:
        header.pixel_data_encapsulated = True
        end = _end_of_fragments(fp, value_offset, size, endian, header)
        if end is None:
            return None
        header.pixel_data_length = end - value_offset
        return end
    header.pixel_data_encapsulated = False
    header.pixel_data_length = length
    if value_offset + length > size:
        header.problem("truncated", f"pixel data declares {length} bytes, the file holds "
                                    f"{max(size - value_offset, 0)}")
        return None
    return value_offset + length


def _end_of_fragments(fp: _TruncationGuard, pos: int, size: int, endian: str,
                      header: Header) -> int | None:
    """Walk encapsulated pixel data item headers; the offset after the sequence delimiter."""
    item_struct = struct.Struct(endian + "HHI")
    while True:
        fp.seek(pos)
        raw = fp.read(8)
        if len(raw) < 8:
            header.problem("truncated", "encapsulated pixel data ends without a sequence delimiter")
            return None
        group, elem, length = item_struct.unpack(raw)
        tag = group << 16 | elem
        if tag == SEQUENCE_END:
            return pos + 8
        if tag != ITEM or length == UNDEFINED:
            header.problem("unreadable_header",
                           f"encapsulated pixel data: unexpected tag {tag:08X} at byte {pos}")
            return None
        pos += 8 + length
        if pos > size:
            header.problem("truncated", "a pixel data fragment runs past the end of the file")
            return None
