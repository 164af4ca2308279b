"""header: what the reader learns about an object, and the decisions both parsers share.

:class:`Header` is the reader's result (the kind of object, its encoding, the manifest
attributes, where the pixel data is, the problems found). The functions here are the rules both
parsers apply to what they parsed: detecting a raw dataset's encoding, comparing it with the
declared transfer syntax, classifying the object and checking its identifying attributes.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from migrate_fs import pixels
from migrate_fs.elements import (
    UNDEFINED,
    VALID_VRS,
    DeflateBomb,
    Inflated,
    Truncated,
    inflated_size,
)
from migrate_fs.problems import Problem, blocks
from migrate_fs.transcode import tag_text, un_known_vr

PREAMBLE_LENGTH = 128


MAGIC = b"DICM"


MediaStorageDirectoryStorage = "1.2.840.10008.1.3.10"


MAX_FIRST_GROUP = 0x0010


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
    "issuer_of_patient_id": "IssuerOfPatientID",
    "lossy_image_compression": "LossyImageCompression",
    "instance_creation_date": "InstanceCreationDate",
    "instance_creation_time": "InstanceCreationTime",
}


# Attributes of the patient, study, series and instance modules whose presence the
# required-attributes rule checks (which of them are required, and how a missing one is fixed,
# is the rules configuration's business: see migrate_fs/config.py).
REQUIRED_CANDIDATES = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                       "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName",
                       "StudyID", "AccessionNumber", "Modality", "SeriesInstanceUID",
                       "SeriesNumber", "SOPClassUID", "SOPInstanceUID", "InstanceNumber")

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
    # (tag path, VR, raw value) of the elements the rules must see (see migrate_fs/scan.py).
    elements: list[tuple[str, str, bytes]] = field(default_factory=list)
    # REQUIRED_CANDIDATES keywords that are absent, and those present with an empty value.
    missing: list[str] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)

    def problem(self, code: str, message: str) -> None:
        self.problems.append(Problem(code, message))

    def problems_blocking(self) -> bool:
        """True when a problem already stops this object from being migrated."""
        return any(blocks(p.code) for p in self.problems)


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


def settle_encoding(header: Header, declared: Encoding | None, actual: Encoding | None,
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
                       f"{where}; detected {UID(actual.transfer_syntax or '').name}")
    elif declared != actual:
        header.problem("transfer_syntax_mismatch",
                       f"{UID(header.transfer_syntax or '').name} declares "
                       f"{UID(declared.transfer_syntax or '').name}, the dataset is "
                       f"{UID(actual.transfer_syntax or '').name}")
        if not UID(header.transfer_syntax or "").is_compressed:
            header.transfer_syntax = actual.transfer_syntax
    header.is_implicit_vr, header.is_little_endian = actual.is_implicit_vr, actual.is_little_endian
    return True


def declared_encoding(ts: str, header: Header) -> Encoding | None:
    """The encoding a transfer syntax declares, or None (problem recorded) if unsupported."""
    encoding = _declared(ts)
    if encoding is None:
        header.problem("unsupported_transfer_syntax",
                       f"TransferSyntaxUID {UID(ts)!r} is not a known transfer syntax")
    return encoding


@functools.lru_cache(maxsize=256)
def _declared(ts: str) -> Encoding | None:
    """:func:`declared_encoding` without the problem: one lookup per transfer syntax a run
    meets, not one per object."""
    uid = UID(ts)
    if uid == DeflatedExplicitVRLittleEndian:
        return Encoding(False, True)
    if not uid.is_transfer_syntax:
        return None
    return Encoding(uid.is_implicit_VR, uid.is_little_endian)


def classify(header: Header, has_directory_records: bool) -> None:
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
    missing = [ATTRIBUTES[c] for c in ("sop_class_uid", "sop_instance_uid") if not attrs[c]]
    if missing and not header.problems_blocking():
        header.problem("missing_uid", "missing or empty: " + ", ".join(missing))


def note_presence(header: Header, present: dict[str, bytes | None]) -> None:
    """Fill ``missing`` and ``empty`` from the raw values of REQUIRED_CANDIDATES found."""
    if header.kind not in ("part10", "raw"):
        return
    for keyword in REQUIRED_CANDIDATES:
        if keyword not in present:
            header.missing.append(keyword)
        elif not (present[keyword] or b"").strip(b"\x00 "):
            header.empty.append(keyword)


@functools.lru_cache(maxsize=1024)
def is_image_storage(sop_class_uid: str | None) -> bool:
    """True for SOP classes whose instances must carry pixel data (any '... Image Storage')."""
    return bool(sop_class_uid) and "Image Storage" in UID(sop_class_uid or "").name


@dataclass(frozen=True)
class ImagePixel:
    """The Image Pixel attributes the pixel data length depends on (None: absent)."""

    rows: int | None = None
    columns: int | None = None
    samples_per_pixel: int | None = None
    bits_allocated: int | None = None
    number_of_frames: int | None = None


PIXEL_KEYWORDS = ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated", "NumberOfFrames")


def check_pixel_data(header: Header, image: ImagePixel, fp: BinaryIO | None = None) -> None:
    """Native pixel data of the wrong length, encapsulated pixel data whose item structure is
    broken (item headers read from ``fp``, never the fragments), lossy compression."""
    if header.kind not in ("part10", "raw") or header.problems_blocking():
        return
    if header.pixel_data_encapsulated and fp is not None and header.pixel_data_length:
        start = header.pixel_data_offset + (8 if header.is_implicit_vr else 12)  # type: ignore[operator]
        try:
            broken = pixels.check_fragments_in_file(fp, start, header.pixel_data_length,
                                                    bool(header.is_little_endian),
                                                    image.number_of_frames)
        except (OSError, ValueError):  # a stream that cannot seek back: not checked here
            broken = None
        if broken:
            header.problem("pixel_data_corrupt", broken)
    native = header.pixel_data_offset is not None and not header.pixel_data_encapsulated
    _check_native_and_lossy(header, image, header.pixel_data_length if native else None)


def check_inflated_pixel_data(header: Header, image: ImagePixel, length: int | None,
                              encapsulated: bool | None) -> None:
    """:func:`check_pixel_data` for a deflated dataset, whose pixel data (``length`` bytes,
    None: absent) is in the inflated dataset, at no file offset."""
    if header.kind not in ("part10", "raw") or header.problems_blocking():
        return
    _check_native_and_lossy(header, image, None if encapsulated else length)


def _check_native_and_lossy(header: Header, image: ImagePixel, native: int | None) -> None:
    """Native pixel data (``native`` bytes) of the wrong length; lossy compression."""
    if native is not None:
        message = pixels.check_native_length(
            native, image.rows, image.columns, image.samples_per_pixel,
            image.bits_allocated, image.number_of_frames)
        if message:
            header.problem("pixel_data_length_mismatch", message)
    lossy = pixels.lossy(header.transfer_syntax or "", header.attributes.get(
        "lossy_image_compression"))
    if lossy:
        header.problem("lossy_compression", lossy)


def inflate(compressed: bytes, header: Header) -> Inflated | None:
    """A deflated dataset as a file that inflates as it is read; None (problem recorded) when
    the stream is corrupt, cut short, or inflates past :func:`migrate_fs.elements.deflate_limit`
    (counted first, nothing kept, so a bomb costs time up to the limit but no memory)."""
    try:
        return Inflated(compressed, inflated_size(compressed))
    except DeflateBomb as exc:
        header.problem(exc.code, str(exc))
    except Truncated as exc:
        header.problem("truncated", str(exc))
    except zlib.error as exc:
        header.problem("unreadable_header", f"deflated dataset: {exc}")
    return None


# Bytes per value of the binary VRs: a value's length must be a multiple.
VR_UNITS = {"AT": 4, "FD": 8, "FL": 4, "OD": 8, "OF": 4, "OL": 4, "OV": 8, "OW": 2, "SL": 4,
            "SS": 2, "SV": 8, "UL": 4, "US": 2, "UV": 8}


def check_file_meta(header: Header, elements: Iterable[tuple[int, str, int]]) -> None:
    """File meta elements ``(tag, VR, length)`` whose length is not a multiple of their VR's
    size (a 3-byte group length): pydicom refuses to read such a file. The writer regenerates
    the file meta, so the object is migrated; the problem is recorded."""
    bad = [f"{tag_text(tag)} {vr} has {length} bytes, not a multiple of {VR_UNITS[vr]}"
           for tag, vr, length in elements
           if vr in VR_UNITS and length != UNDEFINED and length % VR_UNITS[vr]]
    if bad:
        header.problem("invalid_file_meta", "; ".join(bad) + " (the file meta is regenerated)")


def check_pixel_data_present(header: Header, present: bool, has_rows_columns: bool) -> None:
    """An image without Pixel Data: usually a file cut at an element boundary."""
    if present or header.kind not in ("part10", "raw") or header.problems_blocking():
        return
    if has_rows_columns or is_image_storage(header.attributes["sop_class_uid"]):
        header.problem("missing_pixel_data", "the object is an image (by SOP class or Rows and "
                                             "Columns) but has no Pixel Data")


UN_NAMED = 4  # the standard_element_as_un message names this many elements


def check_repeated(header: Header, repeated: list[str]) -> None:
    """Elements (tag paths) that repeat the element before them byte for byte."""
    if repeated:
        more = f" and {len(repeated) - UN_NAMED} more" if len(repeated) > UN_NAMED else ""
        header.problem("repeated_element", ", ".join(repeated[:UN_NAMED]) + more
                       + " repeated with identical bytes: kept as they are")


def check_un_elements(header: Header, un_tags: list[int]) -> None:
    """Standard top-level elements encoded as UN whose dictionary VR is known (``un_tags``:
    every top-level element of an explicit VR dataset with VR UN; see
    :func:`migrate_fs.transcode.un_known_vr` for which the writer converts)."""
    if not un_tags or header.kind not in ("part10", "raw") or header.problems_blocking():
        return
    little = bool(header.is_little_endian)
    known = sorted({tag for tag in un_tags if un_known_vr(tag, little)})
    if not known:
        return
    named = ", ".join(f"{tag_text(tag)} {keyword_for_tag(tag)}".rstrip()
                      for tag in known[:UN_NAMED])
    more = f" and {len(known) - UN_NAMED} more" if len(known) > UN_NAMED else ""
    header.problem("standard_element_as_un",
                   f"{named}{more} encoded as VR UN: written with their dictionary VR")


def text_value(ds: Dataset, keyword: str, header: Header) -> str | None:
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
