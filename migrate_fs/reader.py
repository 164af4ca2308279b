"""reader: decide what a source object is and parse its header, up to the pixel data.

``read_header(fp, size)`` takes a binary file object positioned at the object's first byte and
returns a :class:`Header`: the kind of object (Part 10, raw dataset, DICOMDIR, not DICOM), how it
is encoded, the attributes the manifest needs, where the Pixel Data element starts and how long
its value is, and the problems found. It reads the header only: the pixel data value is skipped
by seeking (for encapsulated pixel data, only the 8-byte item headers are read).

pydicom parses the elements; this module adds what pydicom does not check on read (see
DESIGN.md's known traps): the byte order and VR of raw datasets, truncation anywhere in the
object, and datasets that a forced read turns into near-empty garbage.
"""

from __future__ import annotations

import functools
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO

from pydicom.charset import convert_encodings
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag
from pydicom.errors import InvalidDicomError
from pydicom.filereader import _read_file_meta_info, read_dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    UID,
)

from migrate_fs.elements import (
    Malformed,
    Truncated,
    Unsupported,
    Walk,
    Window,
    element_header,
    walk_dataset,
)
from migrate_fs.problems import Problem

PREAMBLE_LENGTH = 128
MAGIC = b"DICM"
MediaStorageDirectoryStorage = "1.2.840.10008.1.3.10"
PIXEL_DATA_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}  # PixelData, Float-, DoubleFloatPixelData
ITEM, SEQUENCE_DELIMITER = 0xFFFEE000, 0xFFFEE0DD
UNDEFINED_LENGTH = 0xFFFFFFFF
# Explicit VRs whose length field is 4 bytes (preceded by 2 reserved bytes).
VR_LENGTH_32 = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR",
                b"UT", b"UV"}
VALID_VRS = VR_LENGTH_32 | {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS",
                            b"LO", b"LT", b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL",
                            b"US"}
# The highest group a raw dataset plausibly starts with (0000 command, 0002 meta, 0008 ...).
MAX_FIRST_GROUP = 0x0010

# Manifest column -> DICOM keyword, for the attributes the inventory records.
ATTRIBUTES: dict[str, str] = {
    "sop_class_uid": "SOPClassUID",
    "sop_instance_uid": "SOPInstanceUID",
    "study_instance_uid": "StudyInstanceUID",
    "series_instance_uid": "SeriesInstanceUID",
    "patient_id": "PatientID",
    "patient_name": "PatientName",
    "patient_birth_date": "PatientBirthDate",
    "patient_sex": "PatientSex",
    "study_date": "StudyDate",
    "study_time": "StudyTime",
    "accession_number": "AccessionNumber",
    "study_description": "StudyDescription",
    "modality": "Modality",
    "series_number": "SeriesNumber",
    "instance_number": "InstanceNumber",
    "specific_character_set": "SpecificCharacterSet",
}
IDENTIFYING = ("sop_class_uid", "sop_instance_uid", "study_instance_uid", "series_instance_uid")


@dataclass(frozen=True)
class Encoding:
    """How a dataset's elements are encoded."""

    is_implicit_vr: bool
    is_little_endian: bool

    @property
    def transfer_syntax(self) -> str:
        if self.is_implicit_vr:
            return ImplicitVRLittleEndian
        return ExplicitVRLittleEndian if self.is_little_endian else ExplicitVRBigEndian


@dataclass
class Header:
    """What the reader found in one object. Offsets are from the object's first byte."""

    kind: str = "not_dicom"  # part10 | raw | dicomdir | not_dicom | empty
    has_preamble: bool = False
    has_file_meta: bool = False
    transfer_syntax: str | None = None
    dataset_offset: int | None = None
    is_implicit_vr: bool | None = None
    is_little_endian: bool | None = None
    pixel_data_offset: int | None = None
    pixel_data_length: int | None = None
    pixel_data_encapsulated: bool | None = None
    attributes: dict[str, str | None] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    media_storage_sop_class_uid: str | None = None
    dataset: Dataset | None = None

    def problem(self, code: str, message: str) -> None:
        self.problems.append(Problem(code, message))

    def problems_blocking(self) -> bool:
        """True when a problem already stops this object from being migrated."""
        return any(p.severity != "warning" for p in self.problems)


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


def sniff_encoding(first: bytes, *, strict: bool = True) -> Encoding | None:
    """Detect VR and byte order from the first 8 bytes of a dataset, or None if not DICOM-like.

    ``strict`` (for raw datasets, where nothing else says this is DICOM) also requires the first
    tag to be a plausible first element: an even group no higher than (0010,xxxx).
    Without ``strict`` (a file meta says it is DICOM) only the VR bytes and byte order are read.
    """
    if len(first) < 8:
        return None
    explicit = first[4:6] in VALID_VRS
    group_le = first[0] | first[1] << 8
    group_be = first[0] << 8 | first[1]
    if not strict:
        big = explicit and group_le >= 0x0400 and group_be < 0x0400
        return Encoding(is_implicit_vr=not explicit, is_little_endian=not big)
    if group_le <= MAX_FIRST_GROUP and group_le % 2 == 0:
        if group_le == 0 and first[2:8] == bytes(6):
            return None  # a run of zero bytes
        return Encoding(is_implicit_vr=not explicit, is_little_endian=True)
    if explicit and group_be <= MAX_FIRST_GROUP and group_be % 2 == 0:
        return Encoding(is_implicit_vr=False, is_little_endian=False)
    return None


def read_header(fp: BinaryIO, size: int) -> Header:
    """Identify the object in ``fp`` (``size`` bytes long, positioned at its start) and parse
    its header: with the lean walker, or with pydicom where the walker declines."""
    if size == 0:
        header = Header(kind="empty")
        header.problem("empty_file", "zero bytes")
        return header
    header = Header()
    try:
        _read_lean(Window(fp, size), header)
        return header
    except Unsupported:
        fp.seek(0)
        return read_header_with_pydicom(fp, size)


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
            declared = _declared_encoding(UID(ts), header)
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
    if not _settle_encoding(header, declared, actual, offset == size):
        return
    assert actual is not None
    ds = read_dataset(fp, actual.is_implicit_vr, actual.is_little_endian,  # type: ignore[arg-type]
                      stop_when=lambda tag, vr, length: tag in PIXEL_DATA_TAGS)
    end = fp.tell()
    _check_complete(ds, fp, header)
    _finish(ds, header)
    broken = any(p.code in ("truncated", "unreadable_header") for p in header.problems)
    if header.kind in ("part10", "raw") and end < size and not broken:
        after = _locate_pixel_data(fp, end, size, actual, header)
        if after is not None and after < size:  # elements after the pixel data: check them too
            fp.seek(after)
            _check_complete(read_dataset(fp, actual.is_implicit_vr,  # type: ignore[arg-type]
                                         actual.is_little_endian), fp, header)
    _check_pixel_data_present(header, header.pixel_data_offset is not None,
                              "Rows" in ds and "Columns" in ds)


def _settle_encoding(header: Header, declared: Encoding | None, actual: Encoding | None,
                     at_end: bool) -> bool:
    """Compare the declared and the detected encoding; False (problem recorded) if unusable."""
    if actual is None:
        if at_end:
            header.problem("truncated", "the file ends after the file meta: no dataset")
        else:
            header.problem("unreadable_header", "the dataset does not start with a DICOM element")
        return False
    if declared is None:
        header.transfer_syntax = actual.transfer_syntax
        where = "raw dataset" if not header.has_file_meta else "file meta has no TransferSyntaxUID"
        header.problem("missing_file_meta",
                       f"{where}; detected {UID(actual.transfer_syntax).name}")
    elif declared != actual:
        header.problem("transfer_syntax_mismatch",
                       f"{UID(header.transfer_syntax).name} declares "
                       f"{UID(declared.transfer_syntax).name}, the dataset is "
                       f"{UID(actual.transfer_syntax).name}")
        if not UID(header.transfer_syntax).is_compressed:
            header.transfer_syntax = actual.transfer_syntax
    header.is_implicit_vr, header.is_little_endian = actual.is_implicit_vr, actual.is_little_endian
    return True


def _declared_encoding(ts: UID, header: Header) -> Encoding | None:
    """The encoding a transfer syntax declares, or None (problem recorded) if unsupported."""
    if ts == DeflatedExplicitVRLittleEndian:
        return Encoding(False, True)
    if not ts.is_transfer_syntax:
        header.problem("unsupported_transfer_syntax",
                       f"TransferSyntaxUID {ts!r} is not a known transfer syntax")
        return None
    return Encoding(ts.is_implicit_VR, ts.is_little_endian)


def _read_deflated(fp: _TruncationGuard, header: Header) -> None:
    """Inflate a deflated dataset into memory and parse it (pixel data offsets do not apply)."""
    try:
        inflated = zlib.decompress(fp.read(), -zlib.MAX_WBITS)
    except zlib.error as exc:
        header.problem("truncated" if "incomplete" in str(exc) else "unreadable_header",
                       f"deflated dataset: {exc}")
        return
    import io

    inner = _TruncationGuard(io.BytesIO(inflated))  # type: ignore[arg-type]
    header.is_implicit_vr, header.is_little_endian = False, True
    ds = read_dataset(inner, False, True)  # type: ignore[arg-type]
    _check_complete(ds, inner, header)
    _finish(ds, header)
    _check_pixel_data_present(header, any(t in ds._dict for t in PIXEL_DATA_TAGS),
                              "Rows" in ds and "Columns" in ds)


def _check_complete(ds: Dataset, fp: _TruncationGuard, header: Header) -> None:
    """Record ``truncated`` when a read came up short or a raw value is shorter than declared."""
    if fp.short_read:
        header.problem("truncated", "the file ends inside a header element")
        return
    for elem in ds.elements():
        value = getattr(elem, "value", None)
        length = getattr(elem, "length", None)
        if isinstance(value, bytes) and length not in (None, UNDEFINED_LENGTH) \
                and len(value) != length:
            header.problem("truncated", f"element {elem.tag} declares {length} bytes, "
                                        f"the file holds {len(value)}")
            return


def _finish(ds: Dataset, header: Header) -> None:
    """Extract the manifest attributes from a pydicom dataset, then classify the object."""
    header.dataset = ds
    for column, keyword in ATTRIBUTES.items():
        header.attributes[column] = _text(ds, keyword, header)
    _classify(header, "DirectoryRecordSequence" in ds)


def _classify(header: Header, has_directory_records: bool) -> None:
    """Decide the kind of a parsed object and check its identifying UIDs."""
    attrs = header.attributes
    if not any(attrs[c] for c in IDENTIFYING) and not header.has_file_meta:
        header.kind = "not_dicom"
        header.problems.clear()
        header.problem("not_dicom", "parsed as a raw dataset but holds no SOP, study or series UID")
        return
    if has_directory_records or header.media_storage_sop_class_uid == MediaStorageDirectoryStorage:
        header.kind = "dicomdir"
        header.problem("dicomdir", "a DICOMDIR media directory")
        return
    header.kind = "part10" if header.has_file_meta else "raw"
    missing = [ATTRIBUTES[c] for c in IDENTIFYING if not attrs[c]]
    if missing and not header.problems_blocking():
        header.problem("missing_uid", "missing or empty: " + ", ".join(missing))


@functools.lru_cache(maxsize=1024)
def is_image_storage(sop_class_uid: str | None) -> bool:
    """True for SOP classes whose instances must carry pixel data (any '... Image Storage')."""
    return bool(sop_class_uid) and "Image Storage" in UID(sop_class_uid).name


def _check_pixel_data_present(header: Header, present: bool, has_rows_columns: bool) -> None:
    """An image without Pixel Data: usually a file cut at an element boundary."""
    if present or header.kind not in ("part10", "raw") or header.problems_blocking():
        return
    if has_rows_columns or is_image_storage(header.attributes["sop_class_uid"]):
        header.problem("missing_pixel_data", "the object is an image (by SOP class or Rows and "
                                             "Columns) but has no Pixel Data")


def _text(ds: Dataset, keyword: str, header: Header) -> str | None:
    """An attribute as text, or None when absent or empty; undecodable text is flagged."""
    try:
        elem = ds[keyword]
    except KeyError:
        return None
    value = elem.value
    if value is None or value == "":
        return None
    if isinstance(value, MultiValue | list):
        text = "\\".join(str(v) for v in value)
    else:
        text = str(value)
    if "\ufffd" in text:
        header.problem("undecodable_text", f"{keyword} is not valid in the declared character set")
    return text.rstrip("\x00 ") or None


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
    if length == UNDEFINED_LENGTH:
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
        if tag == SEQUENCE_DELIMITER:
            return pos + 8
        if tag != ITEM or length == UNDEFINED_LENGTH:
            header.problem("unreadable_header",
                           f"encapsulated pixel data: unexpected tag {tag:08X} at byte {pos}")
            return None
        pos += 8 + length
        if pos > size:
            header.problem("truncated", "a pixel data fragment runs past the end of the file")
            return None

# ---------------------------------------------------------------------------------------------
# The lean path: one read, struct-level element walking (see migrate_fs.elements).

# Tags whose raw values the lean walk keeps: the manifest attributes and what classifies.
_KEYWORD_TAGS = {keyword: int(Tag(keyword)) for keyword in ATTRIBUTES.values()}
_ROWS, _COLUMNS = int(Tag("Rows")), int(Tag("Columns"))
_DIRECTORY_RECORDS = int(Tag("DirectoryRecordSequence"))
_CHARSET = int(Tag("SpecificCharacterSet"))
WANTED = frozenset([*_KEYWORD_TAGS.values(), _ROWS, _COLUMNS, _DIRECTORY_RECORDS])
_META_MEDIA_CLASS, _META_TRANSFER_SYNTAX = 0x00020002, 0x00020010


def _read_lean(win: Window, header: Header) -> None:
    """Parse file meta and dataset with the lean walker; raises Unsupported to fall back."""
    size = win.size
    start = win.bytes(0, min(PREAMBLE_LENGTH + 4, size))
    offset = 0
    if len(start) == PREAMBLE_LENGTH + 4 and start[PREAMBLE_LENGTH:] == MAGIC:
        header.has_preamble, header.kind, offset = True, "part10", PREAMBLE_LENGTH + 4
    first = win.bytes(offset, min(8, size - offset))
    declared: Encoding | None = None
    if first[:2] == b"\x02\x00" and first[4:6] in VALID_VRS:
        header.has_file_meta = True
        try:
            meta, offset = _lean_file_meta(win, offset)
        except Truncated:
            header.problem("truncated", "the file ends inside the file meta")
            return
        header.media_storage_sop_class_uid = _uid_text(meta.get(_META_MEDIA_CLASS))
        header.transfer_syntax = _uid_text(meta.get(_META_TRANSFER_SYNTAX))
        if header.transfer_syntax:
            declared = _declared_encoding(UID(header.transfer_syntax), header)
            if declared is None:
                return
    elif not header.has_preamble and sniff_encoding(first) is None:
        header.problem("not_dicom", "no 'DICM' prefix and the bytes are not a DICOM dataset")
        return
    header.kind = "part10" if header.has_file_meta else "raw"
    header.dataset_offset = offset
    if header.transfer_syntax == DeflatedExplicitVRLittleEndian:
        raise Unsupported("deflated datasets are inflated by the pydicom path")
    at_end = offset + 8 > size
    actual = None if at_end else sniff_encoding(win.bytes(offset, 8),
                                                strict=not header.has_file_meta)
    if not _settle_encoding(header, declared, actual, offset == size):
        return
    assert actual is not None
    walk = Walk()
    try:
        walk_dataset(win, offset, actual.is_implicit_vr, actual.is_little_endian, WANTED, walk)
    except Truncated as exc:
        header.problem("truncated", str(exc))
    except Malformed as exc:
        header.problem("unreadable_header", str(exc))
    _lean_attributes(walk, header, actual)
    _classify(header, _DIRECTORY_RECORDS in walk.values)
    if header.kind in ("part10", "raw"):
        header.pixel_data_offset = walk.pixel_data_offset
        header.pixel_data_length = walk.pixel_data_length
        header.pixel_data_encapsulated = walk.pixel_data_encapsulated
    _check_pixel_data_present(header, walk.pixel_data_offset is not None,
                              _ROWS in walk.values and _COLUMNS in walk.values)


def _lean_file_meta(win: Window, pos: int) -> tuple[dict[int, bytes], int]:
    """The (0002,xxxx) elements' raw values and the offset after them."""
    meta: dict[int, bytes] = {}
    while pos + 8 <= win.size and win.bytes(pos, 2) == b"\x02\x00":
        tag, vr, length, value = element_header(win, pos, False, True)
        if length == UNDEFINED_LENGTH or vr is None:
            raise Unsupported("unusual file meta")
        meta[tag] = win.bytes(value, length)
        pos = value + length
    if pos > win.size:
        raise Truncated("file meta")
    return meta, pos


def _uid_text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    return raw.decode("latin-1").rstrip("\x00 ") or None


def _lean_attributes(walk: Walk, header: Header, enc: Encoding) -> None:
    """Decode the kept raw values as pydicom would (ASCII directly, anything else by pydicom)."""
    raw_charset = walk.values.get(_CHARSET, (None, None))[1]
    charsets = None
    for column, keyword in ATTRIBUTES.items():
        vr, raw = walk.values.get(_KEYWORD_TAGS[keyword], (None, None))
        if not raw:
            header.attributes[column] = None
            continue
        if raw.isascii() and b"\x1b" not in raw:
            text = raw.decode("ascii")
            text = text.strip() if keyword in _NUMBER_STRINGS else text.rstrip("\x00 ")
            if "\\" in text:
                text = "\\".join(v.strip() if keyword in _NUMBER_STRINGS else v.rstrip("\x00 ")
                                  for v in text.split("\\"))
        else:
            if charsets is None:
                charsets = convert_encodings(_charset_values(raw_charset))
            ds = Dataset()
            ds._dict[Tag(_KEYWORD_TAGS[keyword])] = RawDataElement(  # type: ignore[assignment]
                Tag(_KEYWORD_TAGS[keyword]), vr.decode() if vr else None, len(raw), raw, 0,
                enc.is_implicit_vr, enc.is_little_endian)
            ds.set_original_encoding(enc.is_implicit_vr, enc.is_little_endian, charsets)
            text = _text(ds, keyword, header)
        header.attributes[column] = text or None


_NUMBER_STRINGS = {"SeriesNumber", "InstanceNumber"}


def _charset_values(raw: bytes | None) -> list[str] | str:
    if not raw:
        return ""
    values = [v.strip() for v in raw.decode("latin-1").split("\\")]
    return values if len(values) > 1 else values[0]
