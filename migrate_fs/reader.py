"""reader: decide what a source object is and parse its header, up to the pixel data.

``read_header(fp, size)`` takes a binary file object positioned at the object's first byte and
returns a :class:`~migrate_fs.header.Header`: the kind of object (Part 10, raw dataset,
DICOMDIR, not DICOM), how it is encoded, the attributes the manifest needs, where the Pixel Data
element starts and how long its value is, and the problems found. It reads the header only: one
read covers a typical header, the pixel data is skipped by seeking (for encapsulated pixel data
only the 8-byte item headers are read).

This is the hot path of the inventory: a struct-level walk over the top-level elements
(:mod:`migrate_fs.elements`). What the walk declines goes to :mod:`migrate_fs.pydicom_reader`,
which gives the same result more slowly (a test holds the two to that).

It never raises for bad bytes: whatever goes wrong reading an object is a problem on its
header (an OSError from reading the file itself propagates: the caller's to handle).
"""

from __future__ import annotations

from typing import BinaryIO

from pydicom.charset import convert_encodings
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import DeflatedExplicitVRLittleEndian

from migrate_fs.elements import (
    UNDEFINED,
    VALID_VRS,
    Invalid,
    Malformed,
    Truncated,
    Unsupported,
    Walk,
    Window,
    decode_element_header,
    walk_dataset,
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
    check_file_meta,
    check_inflated_pixel_data,
    check_pixel_data,
    check_pixel_data_present,
    check_repeated,
    check_un_elements,
    classify,
    declared_encoding,
    inflate,
    note_presence,
    settle_encoding,
    sniff_encoding,
    text_value,
)
from migrate_fs.pydicom_reader import read_header_with_pydicom
from migrate_fs.scan import Scanner
from migrate_fs.transcode import tag_text

__all__ = ["ATTRIBUTES", "Header", "read_header", "read_header_with_pydicom"]


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
    except OSError:
        raise  # reading the file failed, not its bytes
    except Exception as exc:  # noqa: BLE001 - one bad object never stops a run
        header.problem("unreadable_header", f"{type(exc).__name__}: {exc}")
        return header


# Tags whose raw values the lean walk keeps: the manifest attributes and what classifies.
_KEYWORD_TAGS = {keyword: int(Tag(keyword)) for keyword in ATTRIBUTES.values()}
_ROWS, _COLUMNS = int(Tag("Rows")), int(Tag("Columns"))
_DIRECTORY_RECORDS = int(Tag("DirectoryRecordSequence"))
_CHARSET = int(Tag("SpecificCharacterSet"))
_REQUIRED_TAGS = {keyword: int(Tag(keyword)) for keyword in REQUIRED_CANDIDATES}
_PIXEL_TAGS = {keyword: int(Tag(keyword)) for keyword in PIXEL_KEYWORDS}
WANTED = frozenset([*_KEYWORD_TAGS.values(), *_REQUIRED_TAGS.values(), *_PIXEL_TAGS.values(),
                    _DIRECTORY_RECORDS])
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
            meta, offset = _lean_file_meta(win, offset, header)
        except Truncated:
            header.problem("truncated", "the file ends inside the file meta")
            return
        except Invalid as exc:
            header.problem(exc.code, str(exc))
            return
        header.media_storage_sop_class_uid = _uid_text(meta.get(_META_MEDIA_CLASS))
        header.transfer_syntax = _uid_text(meta.get(_META_TRANSFER_SYNTAX))
        if header.transfer_syntax:
            declared = declared_encoding(header.transfer_syntax, header)
            if declared is None:
                return
    elif not header.has_preamble and sniff_encoding(first) is None:
        header.problem("not_dicom", "no 'DICM' prefix and the bytes are not a DICOM dataset")
        return
    header.kind = "part10" if header.has_file_meta else "raw"
    header.dataset_offset = offset
    if header.transfer_syntax == DeflatedExplicitVRLittleEndian:
        inflated = inflate(win.bytes(offset, size - offset), header)
        if inflated is not None:
            header.is_implicit_vr, header.is_little_endian = False, True
            _walk(Window(inflated, inflated.size), 0, Encoding(False, True),  # type: ignore[arg-type]
                  header, in_file=False)
        return
    at_end = offset + 8 > size
    actual = None if at_end else sniff_encoding(win.bytes(offset, 8),
                                                strict=not header.has_file_meta)
    if not settle_encoding(header, declared, actual, offset == size):
        return
    assert actual is not None
    _walk(win, offset, actual, header, in_file=True)


def _walk(win: Window, offset: int, enc: Encoding, header: Header, *, in_file: bool) -> None:
    """Walk the dataset at ``offset`` (in the file, or in the inflated dataset: not
    ``in_file``, where the pixel data has no file offset), then decode, classify and check
    what it holds."""
    walk, scan = Walk(), Scanner()
    try:
        walk_dataset(win, offset, enc.is_implicit_vr, enc.is_little_endian, WANTED, walk, scan)
    except Truncated as exc:
        header.problem("truncated", str(exc))
    except Malformed as exc:
        header.problem("unreadable_header", str(exc))
    except Invalid as exc:
        header.problem(exc.code, str(exc))
    _lean_attributes(walk, header, enc)
    classify(header, _DIRECTORY_RECORDS in walk.values)
    header.elements = scan.elements
    note_presence(header, {k: walk.values[t][1] for k, t in _REQUIRED_TAGS.items()
                           if t in walk.values})
    if header.kind in ("part10", "raw") and in_file:
        header.pixel_data_offset = walk.pixel_data_offset
        header.pixel_data_length = walk.pixel_data_length
        header.pixel_data_encapsulated = walk.pixel_data_encapsulated
    check_pixel_data_present(header, walk.pixel_data_offset is not None,
                              _ROWS in walk.values and _COLUMNS in walk.values)
    if in_file:
        check_pixel_data(header, _image_pixel(walk, enc.is_little_endian), win.fp)
    else:
        check_inflated_pixel_data(header, _image_pixel(walk, enc.is_little_endian),
                                  walk.pixel_data_length, walk.pixel_data_encapsulated)
    check_un_elements(header, walk.un_tags)
    check_repeated(header, [tag_text(t) for t in walk.repeated] + scan.repeated)


def _image_pixel(walk: Walk, little: bool) -> ImagePixel:
    """Rows, Columns, SamplesPerPixel, BitsAllocated (US) and NumberOfFrames (IS)."""
    found: dict[str, int | None] = {}
    for keyword, tag in _PIXEL_TAGS.items():
        raw = walk.values.get(tag, (None, None))[1]
        value = None
        if raw and keyword == "NumberOfFrames":
            text = raw.decode("latin-1").strip("\x00 ")
            value = int(text) if text.isdecimal() and text.isascii() else None
        elif raw and len(raw) >= 2:
            value = int.from_bytes(raw[:2], "little" if little else "big")
        found[keyword] = value
    return ImagePixel(found["Rows"], found["Columns"], found["SamplesPerPixel"],
                      found["BitsAllocated"], found["NumberOfFrames"])


def _lean_file_meta(win: Window, pos: int, header: Header) -> tuple[dict[int, bytes], int]:
    """The (0002,xxxx) elements' raw values and the offset after them (lengths checked)."""
    meta: dict[int, bytes] = {}
    elements: list[tuple[int, str, int]] = []
    while pos + 8 <= win.size and win.bytes(pos, 2) == b"\x02\x00":
        tag, vr, length, value = decode_element_header(win, pos, False, True)
        if length == UNDEFINED or vr is None:
            raise Unsupported("unusual file meta")
        meta[tag] = win.bytes(value, length)
        elements.append((tag, vr.decode(), length))
        pos = value + length
    if pos > win.size:
        raise Truncated("file meta")
    check_file_meta(header, elements)
    return meta, pos


def _uid_text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    return raw.decode("latin-1").rstrip("\x00 ") or None


def _lean_attributes(walk: Walk, header: Header, enc: Encoding) -> None:
    """Decode the kept raw values as pydicom would (ASCII directly, anything else by pydicom)."""
    values, attributes = walk.values, header.attributes
    raw_charset = values.get(_CHARSET, (None, None))[1]
    charsets = None
    for column, keyword, tag in _COLUMN_TAGS:
        vr, raw = values.get(tag, _ABSENT)
        if not raw:
            attributes[column] = None
            continue
        if raw.isascii() and b"\x1b" not in raw:  # the common case: no codec to look up
            text: str | None = raw.decode("ascii")
        else:
            codec = _SINGLE_BYTE_OR_UTF8.get(raw_charset.strip() if raw_charset else b"")
            text = _decode(raw, codec) if codec else None
        if text is not None:
            text = text.strip() if keyword in _NUMBER_STRINGS else text.rstrip("\x00 ")
            if "\\" in text:
                text = "\\".join(v.strip() if keyword in _NUMBER_STRINGS else v.rstrip("\x00 ")
                                  for v in text.split("\\"))
            if keyword in _PERSON_NAMES:  # pydicom drops empty trailing component groups
                text = "\\".join(v.rstrip("=") for v in text.split("\\"))
        else:
            if charsets is None:
                charsets = convert_encodings(_charset_values(raw_charset))
            ds = Dataset()
            ds._dict[Tag(_KEYWORD_TAGS[keyword])] = RawDataElement(  # type: ignore[assignment]
                Tag(_KEYWORD_TAGS[keyword]), vr.decode() if vr else None, len(raw), raw, 0,
                enc.is_implicit_vr, enc.is_little_endian)
            ds.set_original_encoding(enc.is_implicit_vr, enc.is_little_endian, charsets)
            text = text_value(ds, keyword, header)
        attributes[column] = text or None


_COLUMN_TAGS = tuple((column, keyword, _KEYWORD_TAGS[keyword])
                     for column, keyword in ATTRIBUTES.items())
_ABSENT: tuple[None, None] = (None, None)
_NUMBER_STRINGS = {"SeriesNumber", "InstanceNumber"}
_PERSON_NAMES = {"PatientName"}
# Declared character sets whose values decode as a whole, exactly as pydicom decodes them.
_SINGLE_BYTE_OR_UTF8 = {b"ISO_IR 100": "latin_1", b"ISO_IR 192": "utf_8"}


def _decode(raw: bytes, codec: str) -> str | None:
    try:
        return raw.decode(codec)
    except UnicodeDecodeError:
        return None  # pydicom decides: replacement characters and an undecodable_text problem


def _charset_values(raw: bytes | None) -> list[str] | str:
    """The declared values as pydicom reads them (trailing NULs and spaces removed); a NUL
    inside a value, which makes Python's codec lookup raise, becomes '?': an unknown set."""
    if not raw:
        return ""
    values = [v.strip().replace("\x00", "?")
              for v in raw.decode("latin-1").rstrip("\x00 ").split("\\")]
    return values if len(values) > 1 else values[0]
