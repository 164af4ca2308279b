"""pydicom_reader: the reader's fallback, parsing headers with pydicom.

Slower than the lean walker of :mod:`migrate_fs.reader`, but it handles whatever pydicom
handles (odd file meta). It adds what pydicom does not check on read (see DESIGN.md's known
traps): truncation anywhere in the object, a pixel data element that does not fit in the file,
elements after the pixel data; and it refuses what the lean walker refuses (unknown VRs, tags out
of order, sequences nested past MAX_NESTING, deflate bombs), with the same problem codes. It never
raises for bad bytes: whatever pydicom raises becomes a problem (OSError from the file itself
propagates).
"""

from __future__ import annotations

import contextlib
import struct
import warnings
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from pydicom import config as pydicom_config
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset
from pydicom.sequence import Sequence
from pydicom.uid import DeflatedExplicitVRLittleEndian

from migrate_fs.elements import (
    ITEM,
    MAX_NESTING,
    PIXEL_DATA_TAGS,
    SEQUENCE_END,
    UNDEFINED,
    VALID_VRS,
    VR_LENGTH_32,
    Inflated,
    Invalid,
    Malformed,
    NestingTooDeep,
    Truncated,
    Window,
    order_error,
    tag_name,
    vr_error,
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
from migrate_fs.scan import Scanner
from migrate_fs.transcode import dictionary_vr, tag_text


class _TruncationGuard:
    """A file wrapper that notes reads cut short by the end of the file.

    pydicom ends a dataset silently when an element header is cut, and returns short values
    without raising; this wrapper is how the reader tells a truncated object from a complete one.
    A zero-byte read of a tag header (8 bytes) or a one-byte peek is the normal end of a dataset.
    """

    def __init__(self, fp: BinaryIO | Inflated, size: int) -> None:
        self._fp = fp
        self.seek = fp.seek
        self.tell = fp.tell
        self.size = size
        self.little = True  # the byte order of the dataset being read (set by _read_dataset)
        self.short_read = False
        self.name = getattr(fp, "name", "<object>")

    def read(self, n: int = -1) -> bytes:
        if n > 0 and n > self.size - self.tell():  # a huge declared length: read what is there
            data = self._fp.read(max(self.size - self.tell(), 0))
            self.short_read = self.short_read or bool(data) or n not in (1, 8)
            return data
        data = self._fp.read(n)
        if 0 <= len(data) < n and (data or n not in (1, 8)):
            self.short_read = True
        return data


@contextlib.contextmanager
def _strict_vrs() -> Iterator[None]:
    """pydicom keeps the VR bytes it reads (as the lean walker sees them) instead of assuming
    that an element whose VR bytes are not letters switched to implicit VR."""
    saved = pydicom_config.assume_implicit_vr_switch
    pydicom_config.assume_implicit_vr_switch = False
    try:
        yield
    finally:
        pydicom_config.assume_implicit_vr_switch = saved


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
    guard = _TruncationGuard(fp, size)
    with warnings.catch_warnings(), _strict_vrs():
        warnings.simplefilter("ignore")
        try:
            _read(guard, size, offset, header)
        except Invalid as exc:
            header.problem(exc.code, str(exc))
        except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError,
                struct.error, zlib.error, NotImplementedError, IndexError,
                RecursionError) as exc:
            if _from_recursion(exc):
                header.problem("nesting_too_deep", "sequences nested too deep for pydicom's "
                                                   f"parser (more than {MAX_NESTING} levels)")
            elif guard.short_read or isinstance(exc, EOFError):
                header.problem("truncated", f"file ends inside the header ({exc})")
            else:
                header.problem("unreadable_header", f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001 - whatever pydicom raises on garbage is a problem
            header.problem("unreadable_header", f"{type(exc).__name__}: {exc}")
    return header


def _read(fp: _TruncationGuard, size: int, offset: int, header: Header) -> None:
    """Parse file meta and dataset into ``header``; raises on a broken structure."""
    first = fp.read(8)
    fp.seek(offset)
    declared: Encoding | None = None
    if first[:2] == b"\x02\x00" and first[4:6] in VALID_VRS:
        header.has_file_meta = True
        file_meta = _read_file_meta(fp, header)
        if file_meta is None:
            return
        header.media_storage_sop_class_uid = _uid_text(file_meta, 0x00020002)
        ts = header.transfer_syntax = _uid_text(file_meta, 0x00020010)
        offset = fp.tell()
        if ts:
            declared = declared_encoding(ts, header)
            if declared is None:
                return
    elif not header.has_preamble and sniff_encoding(first) is None:
        header.problem("not_dicom", "no 'DICM' prefix and the bytes are not a DICOM dataset")
        return
    header.kind = "part10" if header.has_file_meta else "raw"
    header.dataset_offset = offset
    if header.transfer_syntax == DeflatedExplicitVRLittleEndian:
        inflated = inflate(fp.read(size - offset), header)
        if inflated is not None:
            header.is_implicit_vr, header.is_little_endian = False, True
            _read_dataset(_TruncationGuard(inflated, inflated.size), 0, inflated.size,
                          Encoding(False, True), header, in_file=False)
        return
    actual = sniff_encoding(fp.read(8), strict=not header.has_file_meta)
    fp.seek(offset)
    if not settle_encoding(header, declared, actual, offset == size):
        return
    assert actual is not None
    _read_dataset(fp, offset, size, actual, header, in_file=True)


def _read_file_meta(fp: _TruncationGuard, header: Header) -> Dataset | None:
    """The (0002,xxxx) elements, still raw (pydicom's own file meta reader converts the group
    length and raises for one of the wrong length); None (problem recorded) if cut short."""
    meta = read_dataset(fp, False, True,  # type: ignore[arg-type]
                        stop_when=lambda tag, vr, length: tag >> 16 != 2)
    if fp.short_read:
        header.problem("truncated", "the file ends inside the file meta")
        return None
    elements = []
    for tag, elem in meta._dict.items():
        if elem.VR not in VR_NAMES:
            raise vr_error(int(tag), (elem.VR or "").encode("latin-1"),
                           _offset(elem, 0, True))
        elements.append((int(tag), elem.VR, getattr(elem, "length", 0)))
    check_file_meta(header, elements)
    return meta


def _uid_text(meta: Dataset, tag: int) -> str | None:
    """A file meta UID as the lean reader decodes it (one string, even if it holds a
    backslash: pydicom would make it a list, which is no transfer syntax either)."""
    raw = getattr(meta._dict.get(tag), "value", None)  # type: ignore[call-overload]
    if not isinstance(raw, bytes):
        return None
    return raw.decode("latin-1").rstrip("\x00 ") or None


def _read_dataset(fp: _TruncationGuard, offset: int, size: int, enc: Encoding, header: Header,
                  *, in_file: bool) -> None:
    """Parse the dataset at ``offset`` (in the file, or the inflated dataset: not ``in_file``,
    where the pixel data is checked but has no file offset) and check what it holds."""
    fp.little = enc.is_little_endian
    top = _TopLevel(fp, enc)
    ds = _read_top(fp, enc, top)
    end = fp.tell()
    un_tags = _un_tags(ds, fp, enc.is_implicit_vr)
    _check_structure(ds, top, fp, enc, header)
    _finish(ds, header)
    broken = any(p.code in BROKEN for p in header.problems)
    repeated_after: list[int] = []
    if header.kind in ("part10", "raw") and end < size and not broken:
        after = _locate_pixel_data(fp, end, size, enc, header)
        if after is not None and after < size:  # elements after the pixel data: check them too
            fp.seek(after)
            tail_top = _TopLevel(fp, enc, last=top.stopped_at, pixels=False)
            tail = _read_top(fp, enc, tail_top)
            un_tags += _un_tags(tail, fp, enc.is_implicit_vr)
            _check_structure(tail, tail_top, fp, enc, header)
            repeated_after = tail_top.repeated
    present = header.pixel_data_offset is not None
    if in_file:
        check_pixel_data_present(header, present, "Rows" in ds and "Columns" in ds)
        check_pixel_data(header, _image_pixel(ds), fp._fp)  # type: ignore[arg-type]
    else:
        length, encapsulated = header.pixel_data_length, header.pixel_data_encapsulated
        header.pixel_data_offset = header.pixel_data_length = None
        header.pixel_data_encapsulated = None
        check_pixel_data_present(header, present, "Rows" in ds and "Columns" in ds)
        check_inflated_pixel_data(header, _image_pixel(ds), length, encapsulated)
    check_un_elements(header, un_tags)
    check_repeated(header, [tag_text(t) for t in top.repeated + repeated_after])


# Problems after which the reader does not look for the pixel data.
BROKEN = frozenset({"truncated", "unreadable_header", "invalid_vr", "tag_order",
                    "nesting_too_deep"})
VR_NAMES = frozenset(vr.decode() for vr in VALID_VRS)
_VR_NAMES_32 = frozenset(vr.decode() for vr in VR_LENGTH_32)


class _TopLevel:
    """pydicom's ``stop_when`` for a top-level dataset, shown every element before its value
    is read: it stops before the pixel data (``pixels``) and before an element the lean walker
    refuses (an unknown VR, a tag not above its predecessor's, or ``culprit``: the element in
    which pydicom's recursive parser failed), noting why in ``problem``."""

    def __init__(self, fp: _TruncationGuard, enc: Encoding, last: int | None = None,
                 pixels: bool = True) -> None:
        self.fp, self.explicit, self.pixels, self.first = fp, not enc.is_implicit_vr, pixels, last
        self.restart(None)

    def restart(self, culprit: int | None) -> None:
        self.culprit, self.last = culprit, -1 if self.first is None else self.first
        self.problem: Invalid | None = None
        self.current: tuple[int, int] | None = None  # the element being read: tag, offset
        self.stopped_at: int | None = None
        self.repeated: list[int] = []  # repeats of the element before, byte for byte

    def __call__(self, tag: int, vr: str | None, length: int) -> bool:
        tag = int(tag)
        pos = self.fp.tell() - (12 if self.explicit and vr in _VR_NAMES_32 else 8)
        if self.explicit and vr not in VR_NAMES:
            self.problem = vr_error(tag, _written_vr(self.fp, pos + 4), pos)
        elif tag <= self.last and not self._repeat(tag, pos, length):
            self.problem = order_error(tag, self.last, pos, length == UNDEFINED)
        elif tag == self.culprit:
            self.problem = NestingTooDeep(f"element {tag_name(tag)} at byte {pos} nests "
                                          "sequences deeper than pydicom's parser can follow "
                                          f"(more than {MAX_NESTING} levels)")
        if self.problem is not None:
            return True
        if tag == self.last:
            self.repeated.append(tag)
        self.last, self.current = tag, (tag, pos)
        if self.pixels and tag in PIXEL_DATA_TAGS:
            self.stopped_at = tag
            return True
        return False

    def _repeat(self, tag: int, pos: int, length: int) -> bool:
        """True if the element at ``pos`` repeats the one before it byte for byte."""
        if tag != self.last or self.current is None or length == UNDEFINED:
            return False
        value_at, previous_at = self.fp.tell(), self.current[1]
        self.fp.seek(previous_at)
        previous = self.fp._fp.read(pos - previous_at)
        this = self.fp._fp.read(value_at + length - pos)
        self.fp.seek(value_at)
        return previous == this


def _read_top(fp: _TruncationGuard, enc: Encoding, top: _TopLevel) -> Dataset:
    """pydicom's parse of a top-level dataset up to where ``top`` stops it. When its recursion
    fails (sequences nested thousands deep), read again up to the element it failed in."""
    start = fp.tell()
    try:
        return read_dataset(fp, enc.is_implicit_vr, enc.is_little_endian,  # type: ignore[arg-type]
                            stop_when=top)
    except (RecursionError, OSError) as exc:
        if top.current is None or not _from_recursion(exc):
            raise
        top.restart(top.current[0])
        fp.seek(start)
        return read_dataset(fp, enc.is_implicit_vr, enc.is_little_endian,  # type: ignore[arg-type]
                            stop_when=top)


def _from_recursion(exc: BaseException) -> bool:
    """A RecursionError, or an error pydicom raised in its place: its sequence reader turns
    any exception into ``OSError('No tag to read ...')``, keeping it as the context."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, RecursionError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _check_structure(ds: Dataset, top: _TopLevel, fp: _TruncationGuard, enc: Encoding,
                     header: Header) -> None:
    """Record what the lean walker would refuse in ``ds`` (at the top level, as ``top`` saw
    it, or inside its sequences), dropping that element and those after it, as the lean walk
    stops there; else check that nothing was cut short."""
    problem: Exception | None = top.problem
    for tag, elem in list(ds._dict.items()) if problem is None else []:
        try:
            _check_element(ds, int(tag), elem, fp, not enc.is_implicit_vr, 0, 0, True)
            continue
        except (Invalid, Truncated, Malformed) as exc:
            problem = exc
        except (RecursionError, OSError) as exc:
            if not _from_recursion(exc):
                raise
            problem = NestingTooDeep(f"element {tag_name(int(tag))} nests sequences deeper "
                                     f"than pydicom's parser can follow (more than "
                                     f"{MAX_NESTING} levels)")
        for later in [t for t in ds._dict if t >= tag]:
            del ds._dict[later]
        break
    if problem is not None:
        code = problem.code if isinstance(problem, Invalid) else \
            "truncated" if isinstance(problem, Truncated) else "unreadable_header"
        header.problem(code, str(problem))
    else:
        _check_complete(ds, fp, header)


def _check_dataset(ds: Dataset, fp: _TruncationGuard, explicit: bool, base: int, depth: int,
                   recorded: bool) -> None:
    """Raise what the lean walker raises inside an item ``depth`` sequences deep (``base``:
    the file offset pydicom's offsets in it count from; ``recorded``: False inside a private
    sequence, where the lean walker follows only undefined-length values)."""
    last = -1
    for key, elem in ds._dict.items():
        tag = int(key)
        if tag <= last:
            raise order_error(tag, last, _offset(elem, base, explicit))
        last = tag
        if explicit and elem.VR not in VR_NAMES:
            pos = _offset(elem, base, explicit)
            raise vr_error(tag, _written_vr(fp, pos + 4), pos)
        _check_element(ds, tag, elem, fp, explicit, base, depth, recorded)


def _check_element(ds: Dataset, tag: int, elem: object, fp: _TruncationGuard, explicit: bool,
                   base: int, depth: int, recorded: bool) -> None:
    """Check the items of element ``tag`` of ``ds`` where the lean walker walks them."""
    found = _items(ds, tag, elem, fp, explicit, base, depth, recorded)
    if found is None:
        return
    items, item_base = found
    if depth + 1 > MAX_NESTING:
        raise NestingTooDeep(f"a sequence at byte {_offset(elem, base, explicit)} is nested "
                             f"{depth + 1} levels deep (more than {MAX_NESTING})")
    for item in items:
        item_explicit = explicit
        if explicit and item.original_encoding[0]:  # pydicom read the item as implicit VR
            first = next(iter(item._dict.values()), None)
            is_un = _written_vr(fp, _offset(elem, base, explicit) + 4) == b"UN"
            if first is not None and not is_un:
                pos = _offset(first, item_base, False)
                raise vr_error(int(first.tag), _written_vr(fp, pos + 4), pos)
            item_explicit = False
        _check_dataset(item, fp, item_explicit, item_base, depth + 1,
                       recorded and not tag >> 16 & 1)


def _items(ds: Dataset, tag: int, elem: object, fp: _TruncationGuard, explicit: bool,
           base: int, depth: int, recorded: bool) -> tuple[Sequence, int] | None:
    """The items of an element the lean walker walks, as pydicom parsed them, and the file
    offset their offsets count from; None where it steps over the value. Their structure is
    checked as the lean walker checks it (pydicom reads on where an item's length and its
    delimiter disagree): at the top level for undefined lengths (nested ones included), for
    each sequence of known length as it is reached."""
    value = getattr(elem, "value", None)
    if isinstance(value, Sequence):  # undefined length: parsed from the file as it was read
        if depth == 0:
            at = _offset(elem, base, explicit)
            un = explicit and _written_vr(fp, at + 4) == b"UN"
            _check_items(fp, at + (12 if explicit else 8), None, not explicit or un)
        return value, base
    if not recorded or not isinstance(elem, RawDataElement) or elem.length == UNDEFINED:
        return None
    vr = elem.VR or dictionary_vr(tag)
    if vr == "UN" and not tag >> 16 & 1 and elem.length and dictionary_vr(tag) == "SQ":
        _check_items(fp, base + elem.value_tell, elem.length, True, "")  # as the writer will
        return None
    if vr != "SQ":
        return None
    _check_items(fp, base + elem.value_tell, elem.length, not explicit)
    try:
        return ds[tag].value, base + elem.value_tell  # parsed from the value's bytes
    except Exception as exc:  # noqa: BLE001 - odd items in a sequence of known length: stepped over
        if _from_recursion(exc):
            raise
        return None


def _check_items(fp: _TruncationGuard, start: int, length: int | None, implicit: bool,
                 path: str | None = None) -> None:
    """The items of a sequence (``length`` None: to its delimiter) walked by the lean walker,
    which raises Truncated or Malformed where they do not fit their sequence and item (with a
    ``path``, into the sequences of known length inside too; nothing is recorded)."""
    here = fp.tell()
    try:
        win = Window(fp._fp, fp.size, 0)  # type: ignore[arg-type]  # reads where it looks
        Scanner().items(win, start, None if length is None else start + length, implicit,
                        fp.little, path)
    finally:
        fp.seek(here)


def _offset(elem: object, base: int, explicit: bool) -> int:
    """The file offset of an element pydicom read (its header's first byte)."""
    vr = getattr(elem, "VR", None)
    header = 12 if explicit and vr in _VR_NAMES_32 else 8
    value_at = getattr(elem, "value_tell", None)
    if value_at is None:
        value_at = getattr(elem, "file_tell", None) or 0
    return base + value_at - header


def _written_vr(fp: _TruncationGuard, pos: int) -> bytes:
    """The two bytes at ``pos`` (where an explicit VR element has its VR)."""
    here = fp.tell()
    fp.seek(pos)
    vr = fp._fp.read(2)
    fp.seek(here)
    return vr


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
