"""Generate a deterministic sample of a legacy PACS storage export.

The tree imitates what comes off an old archive's disks: extension-less files in
nested vendor folders, ``OUT/volNN/YYYY/MM/DD/<series hex id>/<8-digit number>``,
where the volume and date folders come from the study's index in the export (one
date folder per study) and the hex id from the series' index, never from DICOM
values.

Content, with the default arguments (6 patients x 2 studies x 2 series x 4 images):

* CT studies (512x512) and MR studies (256x256) alternating per patient, plus CR
  images (2500x2000, ``--cr``) in one CR study per patient that gets any. All
  images are 16-bit allocated, 12 bits stored, MONOCHROME2, with a Frame of
  Reference; every third image carries an ``ACME 1.1`` private block in group 0009.
* In the first study: a Basic Text SR (deflated explicit VR little endian), a
  Grayscale Softcopy Presentation State referencing the images of the study's
  first series, and a Key Object Selection document referencing two of them.
* Patients whose name is not ASCII (e.g. ``Müller^Jürgen``) are encoded with
  Specific Character Set ``ISO_IR 100`` (Latin-1).
* Image encodings cycle deterministically (see ``ENCODING_CYCLE``): mostly Part 10
  explicit VR little endian, some Part 10 implicit VR little endian, Part 10
  explicit VR big endian, raw datasets without preamble or file meta (implicit and
  explicit VR little endian), and two RLE Lossless and two JPEG 2000 Lossless
  images. A compression that fails here falls back to explicit VR little endian.
* Hostile patients (``--no-hostile`` drops them): PatientIDs ``../../etc``,
  ``a/b``, ``CON`` and an empty one, each with one MR series; valid DICOM.
* Junk (``--no-junk`` drops it): ``Thumbs.db`` (OLE signature), ``export.log``, a
  zero-byte file, a CT file cut inside its pixel data and a DICOM file cut inside
  its header; the last three are named like the DICOM files beside them.
* Legacy pitfalls (``--no-pitfalls`` drops them; see :func:`plan_pitfalls`): eight studies
  of 24 objects after the others, each with what migrate-fs's rules are for, written
  byte for byte (explicit or implicit VR little endian, Part 10):

  - values of an old MR console (dates ``2001.01.02``, times ``12:30:45``, SliceThickness
    ``2,5``, a StationName ending in NULs, a SeriesDescription of odd length) and of a US
    workstation (dates ``1/2/2001``, ambiguous, and ``12/31/1999``, PatientSex ``m``,
    InstanceNumber ``1.0``, a StudyDescription over 64 characters);
  - a study whose Study, Series, SOP Instance and Frame of Reference UIDs are invalid (over
    64 characters, leading zeros), with a Grayscale Presentation State and a Key Object
    Selection referencing its images by those UIDs;
  - a Latin-1 PatientName with ``ISO_IR 100`` (fine) and, same patient, without Specific
    Character Set; a Specific Character Set ``Not Supplied`` over ASCII text;
  - an image whose Pixel Data is one row short, and a series without SeriesInstanceUID;
  - a study stored under an emergency PatientID and an ASCII-typed name, which the legacy
    database merged into the first regular patient.

  Outside the export (``--corrections``, ``--rules``; default ``OUT_DIR.corrections.csv``
  and ``OUT_DIR.rules.toml``, replaced if present): the legacy database corrections CSV
  (that merge with the name corrected, and a merge of a PatientID not in the export: an
  orphan row) and example rules that fix the pitfalls (``date_order = "MDY"``, overrides
  for no charset and ``Not Supplied``, generated SeriesInstanceUIDs), listing where each
  pitfall is.

Options for benchmark exports (each left out, the content above is unchanged):

* ``--matrix N``: CT and MR images of NxN pixels instead of 512x512 and 256x256.
* ``--compressed-share F``: a fraction F of the CT and MR images is compressed,
  alternately RLE Lossless and JPEG 2000 Lossless (no cap of two each). pydicom
  cannot encode JPEG Lossless (Process 14), so that syntax is never produced.
* ``--raw-share F``: a fraction F of all images (CT, MR, CR) is written as raw
  datasets without preamble or file meta, alternately implicit and explicit VR
  little endian. A compressed image is never raw; a raw slot that meets one moves to
  the next image.
  Either share replaces the compressed or raw slots of ``ENCODING_CYCLE``, which then
  become explicit VR little endian; the rest of the cycle (implicit VR, big endian)
  stays. Images are picked evenly: image k is picked when ``floor(k * F)`` grows.
* ``--header-only-share F``: a fraction F of the DICOM objects are header-only SR,
  Grayscale Presentation State and Key Object Selection objects, spread evenly over the
  regular CT/MR studies (in place of the three objects of the first study).
* ``--multiframe-gb X``: one extra Enhanced CT object of about X GB (10^9 bytes) in a
  study of its own for the first patient: 512x512 frames of 16 bits, explicit VR little
  endian, with per-frame functional groups. Its pixel data is streamed to the file in
  chunks after a header written by pydicom, so memory use does not grow with X.
* ``--realistic-headers``: every CT, MR and CR image (the junk files cut from one too)
  carries the attribute set of a real scanner's object, about 200-230 elements with nested
  ones (:func:`realistic_image`): General Equipment, patient and study extras from the RIS
  order (OtherPatientIDsSequence, PatientAge/Size/Weight, ProcedureCodeSequence,
  ReferencedStudySequence...), series extras (operators, protocol, BodyPartExamined,
  RequestAttributesSequence, ReferencedPerformedProcedureStepSequence...), acquisition and
  instance creation times, the general image attributes (LossyImageCompression ``00``,
  AnatomicRegionSequence, the pixel value range, a ReferencedImageSequence to the instances
  before and after it in its series), the modality module's full attribute set (CT: a helical
  scan with CTDIvol and its phantom; MR: a 2D spin echo; CR: plate and exposure) and two
  vendor private blocks: ``ACME <modality> HEADER`` in group 0019 (28 elements of mixed
  VRs) and ``ACME IMAGE INFO`` in group 0043 (scalars, an OB record of 320 bytes and a
  sequence of undefined length whose items have private blocks of their own). SR, PR and KO
  objects get a workstation's equipment, the same patient and study extras and richer content
  (:func:`realistic_header_only`): an SR report tree of 26 content items, a presentation
  state with graphic layers and annotations and a displayed area per image, a key object
  selection flagging up to three images of every image series of its study. Values stay valid
  for their VR and IOD, all text is ASCII, and the encodings and shares are those of the
  export without the flag (the multi-frame object is unchanged).

Output is byte-for-byte identical for the same arguments: UIDs are 2.25 UIDs of
name-based UUIDs of the seed and the object's indices, dates and times are fixed,
preambles are zeros and pixel data comes from a numpy RNG seeded by the SOP
Instance UID (see :func:`synthetic_pixels`).

This module only writes test data: it imports nothing from ``migrate_fs`` (stdlib, pydicom, numpy
only), so the sample never depends on the code it is meant to test, and it never writes into
a non-empty output directory. ``scripts/make_sample_export.py`` is its command line
(:func:`main`); tests import :func:`make_sample_export`.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import math
import struct
import sys
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from enum import StrEnum
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset, PrivateBlock
from pydicom.tag import Tag
from pydicom.uid import (
    UID,
    BasicTextSRStorage,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    EnhancedCTImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    GrayscaleSoftcopyPresentationStateStorage,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    KeyObjectSelectionDocumentStorage,
    MRImageStorage,
    RLELossless,
)

UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:migrate-fs:sample-export:v1")
ImplementationVersionName = "ACME_PACS_7"
Preamble = bytes(128)
Manufacturer = "ACME Medical"
InstitutionName = "St. Example Hospital"
ImplementationClassUID = UID(f"2.25.{UID_NAMESPACE.int}")
SpecificCharacterSetLatin1 = "ISO_IR 100"
PrivateGroup = 0x0009
PrivateCreator = "ACME 1.1"
BitsStored = 12

ARCHIVE_EPOCH = date(2003, 7, 14)  # archive date of the first study; drives the date folders
DAYS_BETWEEN_STUDIES = 3
STUDIES_PER_VOLUME = 8
PRIVATE_BLOCK_EVERY = 3  # every n-th image gets the ACME private block
COMPRESSED_QUOTA = 2  # "a couple" of RLE and of JPEG 2000 images
TRUNCATED_HEADER_BYTES = 300
OLE_SIGNATURE = bytes.fromhex("D0CF11E0A1B11AE1")
THUMBS_DB_BYTES = 4096
RESIZABLE = ("CT", "MR")  # modalities whose image size --matrix overrides
GB = 10**9
MULTIFRAME_SIZE = 512  # rows and columns of the multi-frame object's frames
MULTIFRAME_CHUNK_FRAMES = 32  # frames per write: 16 MiB, whatever the object's size
MAX_ELEMENT_LENGTH = 0xFFFFFFFE  # largest even defined length of one element
PIXEL_DATA_EMPTY_OW = b"\xe0\x7f\x10\x00OW\x00\x00\x00\x00\x00\x00"  # (7FE0,0010) OW, length 0

# --realistic-headers: the attribute set of a real scanner's objects (see realistic_image)
InstitutionAddress = "1 Example Road, Springfield"
InstitutionalDepartmentName = "Radiology"
TimezoneOffsetFromUTC = "+0100"
IssuerOfPatientID = "ST EXAMPLE HIS"
ReadingPhysician, RequestingPhysician = "HOUSE^GREGORY", "KILDARE^JAMES"
OperatorName, PerformingPhysician = "TECH^ALEX", "QUINN^MICHAELA"
StudyManagementSOPClass = UID("1.2.840.10008.3.1.2.3.1")  # what ReferencedStudySequence names
PerformedProcedureStepSOPClass = UID("1.2.840.10008.3.1.2.3.3")  # Modality Performed Proc. Step
LocalCodingScheme = "99ACME"  # the site's own codes (procedures, protocols, persons)
PrivateAcquisitionGroup = 0x0019  # creator "ACME <modality> HEADER"
PrivateImageGroup, PrivateImageCreator = 0x0043, "ACME IMAGE INFO"
PRIVATE_OB_BYTES = 320  # the opaque reconstruction record of the image info block
PRIVATE_SQ_ITEMS = 3  # items of the private reconstruction steps sequence
REFERENCED_NEIGHBOURS = 1  # an image references this many instances each side in its series
SR_FINDINGS = 3  # findings of a realistic SR, each inferred from one image
GSPS_ANNOTATED_IMAGES = 3  # images of a realistic GSPS that carry graphic annotations
KEY_IMAGES_PER_SERIES = 3  # images a realistic KOS flags in each image series of its study
BODY_PARTS = (  # (BodyPartExamined, SNOMED CT code, meaning) by study serial
    ("CHEST", "51185008", "Thorax"),
    ("HEAD", "69536005", "Head"),
    ("ABDOMEN", "818981001", "Abdomen"),
)
WINDOW_EXPLANATION = {"CT": "SOFT TISSUE", "MR": "T1 DEFAULT", "CR": "CHEST DEFAULT"}
REPORT_FINDINGS = (  # the findings of a realistic SR
    "No acute abnormality.",
    "Degenerative changes without interval progression.",
    "Small nodule, unchanged compared with the prior study.",
)
# The VRs of the acquisition private block's elements, 0x01 on (values: PRIVATE_VALUES) ...
PRIVATE_ACQUISITION_VRS = ("LO", "SH", "DS", "DS", "IS", "SL", "US", "US", "FD", "FD", "SS",
                           "UL", "FL", "LO", "SH", "DS", "IS", "SL", "US", "FD", "CS", "LT",
                           "DS", "IS", "FD", "SS")
# ... of the image info block's (then come its OB record and its sequence) ...
PRIVATE_IMAGE_VRS = ("LO", "SH", "DS", "IS", "US", "US", "SL", "FD", "FL", "DS", "IS", "SS",
                     "LO", "UL")
PRIVATE_STEP_VRS = ("LO", "DS", "US", "FD")  # ... and of each item of that sequence
PRIVATE_VALUES: dict[str, Callable[[int, int], object]] = {  # VR -> f(element, instance)
    "LO": lambda e, n: f"ACME PARAMETER SET {e:02X}.{n % 4}",
    "SH": lambda e, n: f"P{e:02X}-{n % 100:02d}",
    "CS": lambda e, n: ("ON", "OFF")[n % 2],
    "LT": lambda e, n: f"Acquisition note {e:02X}: parameters checked by the console.",
    "DS": lambda e, n: f"{e * 1.5 + n % 10 * 0.25:.2f}",
    "IS": lambda e, n: str(e * 10 + n % 1000),
    "SL": lambda e, n: -(e * 1000 + n % 1000),
    "SS": lambda e, n: e - 64,
    "US": lambda e, n: (e * 97 + n) % 0x10000,
    "UL": lambda e, n: e * 100000 + n % 100000,
    "FD": lambda e, n: e / 8 + n % 1000 / 1000,
    "FL": lambda e, n: e / 4,
}

PATIENT_NAMES = (
    "Müller^Jürgen",
    "DOE^JANE",
    "Lefèvre^Zoé",
    "SMITH^JOHN^A",
    "Ångström^Åsa",
    "NAKAMURA^KEN",
    "Peña^José",
    "BROWN^EMILY",
)
PATIENT_SEXES = ("M", "F", "O")
HOSTILE_PATIENTS = (  # (PatientID, PatientName)
    ("../../etc", "TRAVERSAL^DOTDOT"),
    ("a/b", "TRAVERSAL^SLASH"),
    ("CON", "RESERVED^DEVICE"),
    ("", "EMPTY^ID"),
)


class Encoding(StrEnum):
    """How one object is written to disk."""

    EXPLICIT_LE = "part10-explicit-le"
    IMPLICIT_LE = "part10-implicit-le"
    EXPLICIT_BE = "part10-explicit-be"
    DEFLATED = "part10-deflated-explicit-le"
    RLE = "part10-rle-lossless"
    J2K = "part10-jpeg2000-lossless"
    RAW_IMPLICIT_LE = "raw-implicit-le"
    RAW_EXPLICIT_LE = "raw-explicit-le"


TRANSFER_SYNTAX: dict[Encoding, UID] = {
    Encoding.EXPLICIT_LE: ExplicitVRLittleEndian,
    Encoding.IMPLICIT_LE: ImplicitVRLittleEndian,
    Encoding.EXPLICIT_BE: ExplicitVRBigEndian,
    Encoding.DEFLATED: DeflatedExplicitVRLittleEndian,
    Encoding.RLE: RLELossless,
    Encoding.J2K: JPEG2000Lossless,
}
RAW_IMPLICIT_VR: dict[Encoding, bool] = {
    Encoding.RAW_IMPLICIT_LE: True,
    Encoding.RAW_EXPLICIT_LE: False,
}
COMPRESSED = (Encoding.RLE, Encoding.J2K)
ENCODING_CYCLE = (
    Encoding.EXPLICIT_LE, Encoding.IMPLICIT_LE, Encoding.EXPLICIT_LE, Encoding.EXPLICIT_BE,
    Encoding.EXPLICIT_LE, Encoding.RLE, Encoding.EXPLICIT_LE, Encoding.RAW_IMPLICIT_LE,
    Encoding.EXPLICIT_LE, Encoding.J2K, Encoding.EXPLICIT_LE, Encoding.RAW_EXPLICIT_LE,
)


@dataclass(frozen=True)
class ImageKind:
    """Per-modality image geometry and SOP Class."""

    Modality: str
    SOPClassUID: UID
    Rows: int
    Columns: int
    PixelSpacing: float

    def resized(self, matrix: int | None) -> ImageKind:
        """This kind with ``matrix`` x ``matrix`` pixels (None: unchanged)."""
        if matrix is None:
            return self
        return replace(self, Rows=matrix, Columns=matrix)


CT = ImageKind("CT", CTImageStorage, 512, 512, 0.7)
MR = ImageKind("MR", MRImageStorage, 256, 256, 0.9)
CR = ImageKind("CR", ComputedRadiographyImageStorage, 2500, 2000, 0.15)
IMAGE_KINDS = {kind.Modality: kind for kind in (CT, MR, CR)}
NON_IMAGE_SOP_CLASS = {
    "SR": BasicTextSRStorage,
    "PR": GrayscaleSoftcopyPresentationStateStorage,
    "KO": KeyObjectSelectionDocumentStorage,
}
NON_IMAGE_ENCODING = {
    "SR": Encoding.DEFLATED,
    "PR": Encoding.EXPLICIT_LE,
    "KO": Encoding.IMPLICIT_LE,
}


@dataclass(frozen=True)
class Equipment:
    """The device whose General Equipment module a realistic header carries."""

    ManufacturerModelName: str
    StationName: str
    DeviceSerialNumber: str
    SoftwareVersions: tuple[str, ...]
    days_since_calibration: int


EQUIPMENT = {
    "CT": Equipment("Aquila 64", "CTSCAN01", "CT64-10423", ("AQ 5.1.2", "RECON 4.2"), 2),
    "MR": Equipment("Magnus 1.5T", "MRSCAN02", "MR15-20817", ("MG 3.0.4",), 9),
    "CR": Equipment("Lumen CR 900", "CRROOM03", "CR9-30552", ("LUMEN 2.8",), 30),
}
WORKSTATION = Equipment("Vista Workstation", "RADWS07", "WS-40977", ("VISTA 7.2.1",), 60)


class OutputNotEmptyError(FileExistsError):
    """The output directory already holds something."""


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class Patient:
    """One patient; ``PatientID`` may be hostile."""

    PatientID: str
    PatientName: str
    PatientBirthDate: str
    PatientSex: str

    @property
    def charset(self) -> str | None:
        """Specific Character Set needed for the name, None for plain ASCII."""
        return None if self.PatientName.isascii() else SpecificCharacterSetLatin1


@dataclass
class Study:
    """One study; ``serial`` is its index in the export and decides its folders."""

    patient: Patient
    serial: int
    seed: int
    series: list[Series] = field(default_factory=list)

    @property
    def archive_date(self) -> date:
        return ARCHIVE_EPOCH + timedelta(days=DAYS_BETWEEN_STUDIES * self.serial)

    @property
    def folder(self) -> Path:
        day = self.archive_date
        return Path(f"vol{self.serial // STUDIES_PER_VOLUME + 1:02d}", f"{day:%Y}", f"{day:%m}",
                    f"{day:%d}")

    @property
    def StudyInstanceUID(self) -> str:
        return derive_uid(self.seed, "study", self.serial)

    @property
    def StudyDate(self) -> str:
        return (self.archive_date - timedelta(days=self.serial % 2)).strftime("%Y%m%d")

    @property
    def StudyTime(self) -> str:
        return f"{8 + self.serial % 10:02d}{self.serial * 7 % 60:02d}00"

    @property
    def AccessionNumber(self) -> str:
        return f"A{self.seed % 1000:03d}{self.serial + 1:05d}"


@dataclass
class Series:
    """One series of ``size`` instances of one modality."""

    study: Study
    SeriesNumber: int
    Modality: str
    size: int
    references: Series | None = None  # image series a PR/KO/SR object points at
    matrix: int | None = None  # CT/MR image size override (--matrix)
    # Legacy pitfalls (see plan_pitfalls): what is wrong, as the example rules describe it; a
    # fixed encoding (not from the schedule); an edit writing bad values byte for byte; and the
    # instances whose Pixel Data lacks its last row.
    pitfall: str = ""
    encoding: Encoding | None = None
    edit: Callable[[Dataset, Series, int], None] | None = None
    short_pixels: frozenset[int] = frozenset()

    @property
    def kind(self) -> ImageKind:
        """Geometry and SOP Class of this series' images."""
        kind = IMAGE_KINDS[self.Modality]
        return kind.resized(self.matrix) if self.Modality in RESIZABLE else kind

    @property
    def folder(self) -> Path:
        key = f"{self.study.seed}/{self.study.serial}/{self.SeriesNumber}".encode()
        return self.study.folder / hashlib.sha256(key).hexdigest()[:8].upper()

    @property
    def SeriesInstanceUID(self) -> str:
        return derive_uid(self.study.seed, "series", self.study.serial, self.SeriesNumber)

    @property
    def FrameOfReferenceUID(self) -> str:
        return derive_uid(self.study.seed, "frame", self.study.serial, self.SeriesNumber)

    @property
    def SOPClassUID(self) -> UID:
        if self.Modality in IMAGE_KINDS:
            return IMAGE_KINDS[self.Modality].SOPClassUID
        return NON_IMAGE_SOP_CLASS[self.Modality]

    def sop_instance_uid(self, instance_number: int) -> str:
        """SOP Instance UID of the instance numbered ``instance_number`` (1-based)."""
        return derive_uid(self.study.seed, "instance", self.study.serial, self.SeriesNumber,
                          instance_number)

    def path(self, instance_number: int) -> Path:
        """File path, relative to the export root, of an instance."""
        return self.folder / f"{instance_number:08d}"


def derive_uid(*parts: object) -> str:
    """A 2.25 UID from a name-based (SHA-1, version 5) UUID of ``parts``.

    ``generate_uid(prefix=None, ...)`` would ignore its entropy sources and be random.
    """
    return f"2.25.{uuid.uuid5(UID_NAMESPACE, '/'.join(map(str, parts))).int}"


def make_patient(seed: int, index: int) -> Patient:
    """The regular patient number ``index``."""
    birth = date(1930, 1, 1) + timedelta(days=(seed * 7919 + index * 4513) % 25000)
    return Patient(
        PatientID=f"{seed % 1000:03d}{index + 1:05d}",
        PatientName=PATIENT_NAMES[index % len(PATIENT_NAMES)],
        PatientBirthDate=birth.strftime("%Y%m%d"),
        PatientSex=PATIENT_SEXES[index % len(PATIENT_SEXES)],
    )


def plan_export(*, patients: int, studies_per_patient: int, series_per_study: int,
                images_per_series: int, cr: int, seed: int, hostile: bool,
                matrix: int | None = None,
                header_only_share: float | None = None) -> list[Study]:
    """All studies of the export, in the order they are written."""
    studies: list[Study] = []
    regular: list[Study] = []  # the CT/MR studies of the regular patients

    def new_study(patient: Patient) -> Study:
        studies.append(Study(patient, serial=len(studies), seed=seed))
        return studies[-1]

    for p in range(patients):
        patient = make_patient(seed, p)
        for s in range(studies_per_patient):
            study = new_study(patient)
            regular.append(study)
            modality = "CT" if (p + s) % 2 == 0 else "MR"
            study.series = [Series(study, n + 1, modality, images_per_series, matrix=matrix)
                            for n in range(series_per_study)]
            if header_only_share is None and p == 0 and s == 0:
                add_non_image_series(study)
        cr_images = len(range(p, cr, patients))
        if cr_images:
            study = new_study(patient)
            study.series = [Series(study, 1, "CR", cr_images)]
    if hostile:
        for i, (patient_id, name) in enumerate(HOSTILE_PATIENTS):
            patient = Patient(patient_id, name, f"{1950 + i * 10}0101", PATIENT_SEXES[i % 3])
            study = new_study(patient)
            study.series = [Series(study, 1, "MR", images_per_series, matrix=matrix)]
    if header_only_share is not None:
        images = sum(series.size for series in iter_series(studies))
        spread_header_only(regular, header_only_objects(images, header_only_share))
    return studies


def header_only_objects(images: int, share: float) -> int:
    """How many header-only objects make them ``share`` of all objects, with ``images``."""
    return round(images * share / (1 - share))


def even_split(total: int, parts: int, index: int) -> int:
    """Size of part ``index`` when ``total`` items are split as evenly as possible."""
    return (index + 1) * total // parts - index * total // parts


def spread_header_only(studies: Sequence[Study], total: int) -> None:
    """Spread ``total`` SR/PR/KO objects evenly over ``studies``, in that order."""
    for index, study in enumerate(studies):
        count = even_split(total, len(studies), index)
        sizes = tuple(len(range(k, count, len(NON_IMAGE_SOP_CLASS))) for k in range(3))
        add_non_image_series(study, sizes)


def add_non_image_series(study: Study, sizes: Sequence[int] = (1, 1, 1)) -> None:
    """Append the SR, presentation state and key object series of ``sizes`` objects."""
    images = study.series[0]
    for modality, size in zip(("SR", "PR", "KO"), sizes, strict=True):
        if size:
            number = 100 + len(study.series)
            study.series.append(Series(study, number, modality, size, references=images))


def multiframe_series(studies: Sequence[Study], seed: int) -> Series:
    """The one-object series of the multi-frame image: a new study of the first patient."""
    patient = studies[0].patient
    study = Study(patient, serial=len(studies), seed=seed)
    study.series = [Series(study, 1, "CT", 1, matrix=MULTIFRAME_SIZE)]
    return study.series[0]


# --------------------------------------------------------------------------- datasets


def synthetic_pixels(modality: str, instance_number: int, sop_instance_uid: str,
                     shape: tuple[int, int] | None = None) -> np.ndarray:
    """The uint16 pixel array of an image, from values stored in the image itself.

    ``shape`` is (Rows, Columns); by default the modality's standard size.
    """
    kind = IMAGE_KINDS[modality]
    digest = hashlib.sha256(sop_instance_uid.encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    rows, cols = shape or (kind.Rows, kind.Columns)
    y, x = np.ogrid[:rows, :cols]
    radius = 0.30 + 0.03 * (instance_number % 4)
    dy, dx = (y - rows / 2) / (rows * radius), (x - cols / 2) / (cols * radius * 0.8)
    body = dy**2 + dx**2 < 1
    pixels = rng.integers(0, 64, size=(rows, cols), dtype=np.uint16)
    if modality == "CR":
        pixels += np.linspace(300, 2300, rows, dtype=np.float32).astype(np.uint16)[:, None]
        pixels[body] += 900
    else:
        pixels[body] += 1000 + 20 * (instance_number % 10)
    return pixels


def base_dataset(series: Series, instance_number: int) -> Dataset:
    """Patient, study, series and SOP attributes shared by every object."""
    study, patient = series.study, series.study.patient
    ds = Dataset()
    if patient.charset:
        ds.SpecificCharacterSet = patient.charset
    ds.SOPClassUID = series.SOPClassUID
    ds.SOPInstanceUID = series.sop_instance_uid(instance_number)
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study.StudyDate
    ds.StudyTime = study.StudyTime
    ds.SeriesTime = ds.ContentTime = f"{study.StudyTime[:4]}{series.SeriesNumber % 60:02d}"
    ds.AccessionNumber = study.AccessionNumber
    ds.Modality = series.Modality
    ds.Manufacturer = Manufacturer
    ds.InstitutionName = InstitutionName
    ds.ReferringPhysicianName = "WELBY^MARCUS"
    ds.StudyDescription = f"{series.study.series[0].Modality} EXAM"
    ds.SeriesDescription = f"{series.Modality} SERIES {series.SeriesNumber}"
    ds.PatientName = patient.PatientName
    ds.PatientID = patient.PatientID
    ds.PatientBirthDate = patient.PatientBirthDate
    ds.PatientSex = patient.PatientSex
    ds.StudyInstanceUID = study.StudyInstanceUID
    ds.SeriesInstanceUID = series.SeriesInstanceUID
    ds.StudyID = str(study.serial + 1)
    ds.SeriesNumber = series.SeriesNumber
    ds.InstanceNumber = instance_number
    return ds


def image_dataset(series: Series, instance_number: int, private_block: bool) -> Dataset:
    """An image object without its Pixel Data."""
    kind = series.kind
    ds = base_dataset(series, instance_number)
    ds.ImageType = (["ORIGINAL", "PRIMARY"] if kind.Modality == "CR"
                    else ["ORIGINAL", "PRIMARY", "AXIAL"])
    ds.FrameOfReferenceUID = series.FrameOfReferenceUID
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = kind.Rows, kind.Columns
    ds.PixelSpacing = [kind.PixelSpacing, kind.PixelSpacing]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, BitsStored, BitsStored - 1
    ds.PixelRepresentation = 0
    if kind.Modality == "CR":
        ds.BodyPartExamined, ds.ViewPosition, ds.PatientOrientation = "CHEST", "PA", ["L", "F"]
        ds.WindowCenter, ds.WindowWidth = 1800, 3000
    else:
        add_cross_sectional(ds, kind, instance_number)
    if private_block:
        block = ds.private_block(PrivateGroup, PrivateCreator, create=True)
        block.add_new(0x01, "LO", "ACME RECON 4.2")
        block.add_new(0x02, "DS", "1.5")
    return ds


def add_cross_sectional(ds: Dataset, kind: ImageKind, instance_number: int) -> None:
    """Plane geometry and modality specifics of CT and MR slices."""
    half_width = kind.Columns * kind.PixelSpacing / 2
    z = 5.0 * instance_number
    ds.PatientPosition = "HFS"
    ds.SliceThickness = 5
    ds.ImagePositionPatient = [-half_width, -half_width, z]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceLocation = z
    if kind.Modality == "CT":
        ds.KVP = 120
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 400
    else:
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = "SE", "NONE", ""
        ds.MRAcquisitionType = "2D"
        ds.RepetitionTime, ds.EchoTime, ds.MagneticFieldStrength = 500, 15, 1.5
        ds.WindowCenter, ds.WindowWidth = 1100, 1400


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    """A code sequence item."""
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def referenced_images(series: Series) -> Series:
    """The image series a PR/KO/SR series points at; ValueError if it has none."""
    if series.references is None:
        raise ValueError(f"{series.Modality} series {series.SeriesNumber} references no images")
    return series.references


def evidence_sequence(images: Series, count: int) -> list[Dataset]:
    """Hierarchical SOP instance references to the first ``count`` images of a series."""
    study_item = Dataset()
    study_item.StudyInstanceUID = images.study.StudyInstanceUID
    study_item.ReferencedSeriesSequence = [series_evidence(images, count)]
    return [study_item]


def series_evidence(images: Series, count: int) -> Dataset:
    """The ReferencedSeriesSequence item of the first ``count`` images of a series."""
    series_item = Dataset()
    series_item.SeriesInstanceUID = images.SeriesInstanceUID
    series_item.ReferencedSOPSequence = [sop_reference(images, n) for n in range(1, count + 1)]
    return series_item


def sop_reference(images: Series, instance_number: int) -> Dataset:
    """A ReferencedSOPClassUID/ReferencedSOPInstanceUID item."""
    item = Dataset()
    item.ReferencedSOPClassUID = images.SOPClassUID
    item.ReferencedSOPInstanceUID = images.sop_instance_uid(instance_number)
    return item


def content_item(relationship: str, value_type: str, concept: Dataset | None = None) -> Dataset:
    """An SR content item without its value."""
    item = Dataset()
    item.RelationshipType, item.ValueType = relationship, value_type
    if concept is not None:
        item.ConceptNameCodeSequence = [concept]
    return item


def sr_document(series: Series, instance_number: int = 1) -> Dataset:
    """A Basic Text SR report with a few TEXT findings."""
    ds = base_dataset(series, instance_number)
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = [code_item("18748-4", "LN", "Diagnostic Imaging Report")]
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
    ds.ReferencedPerformedProcedureStepSequence = []
    ds.PerformedProcedureCodeSequence = []
    ds.CurrentRequestedProcedureEvidenceSequence = evidence_sequence(referenced_images(series), 1)
    findings = ("No acute abnormality.", "Degenerative changes of the spine.",
                "Compared with prior study: stable.")
    ds.ContentSequence = []
    for text in findings:
        item = content_item("CONTAINS", "TEXT", code_item("121071", "DCM", "Finding"))
        item.TextValue = text
        ds.ContentSequence.append(item)
    return ds


def presentation_state(series: Series, instance_number: int = 1) -> Dataset:
    """A Grayscale Softcopy Presentation State applying to every image of a series."""
    images = referenced_images(series)
    kind = images.kind
    ds = base_dataset(series, instance_number)
    ds.ContentLabel, ds.ContentDescription = "SAMPLE_GSPS", "Window for soft tissue"
    ds.PresentationCreationDate, ds.PresentationCreationTime = ds.ContentDate, ds.ContentTime
    ds.ContentCreatorName = "WELBY^MARCUS"
    series_item = Dataset()
    series_item.SeriesInstanceUID = images.SeriesInstanceUID
    series_item.ReferencedImageSequence = [sop_reference(images, n)
                                           for n in range(1, images.size + 1)]
    ds.ReferencedSeriesSequence = [series_item]
    area = Dataset()
    area.DisplayedAreaTopLeftHandCorner = [1, 1]
    area.DisplayedAreaBottomRightHandCorner = [kind.Columns, kind.Rows]
    area.PresentationSizeMode = "SCALE TO FIT"
    area.PresentationPixelAspectRatio = [1, 1]
    ds.DisplayedAreaSelectionSequence = [area]
    voi = Dataset()
    voi.WindowCenter, voi.WindowWidth = 40, 350
    ds.SoftcopyVOILUTSequence = [voi]
    ds.PresentationLUTShape = "IDENTITY"
    return ds


def key_object_selection(series: Series, instance_number: int = 1) -> Dataset:
    """A Key Object Selection document flagging the first two images of a series."""
    images = referenced_images(series)
    count = min(2, images.size)
    ds = base_dataset(series, instance_number)
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = [code_item("113000", "DCM", "Of Interest")]
    ds.ContinuityOfContent = "SEPARATE"
    template = Dataset()
    template.MappingResource, template.TemplateIdentifier = "DCMR", "2010"
    ds.ContentTemplateSequence = [template]
    ds.ReferencedPerformedProcedureStepSequence = []
    ds.ReferencedRequestSequence = []
    ds.CurrentRequestedProcedureEvidenceSequence = evidence_sequence(images, count)
    description = content_item("CONTAINS", "TEXT",
                               code_item("113012", "DCM", "Key Object Description"))
    description.TextValue = "Images flagged for the tumour board."
    ds.ContentSequence = [description]
    for n in range(1, count + 1):
        item = content_item("CONTAINS", "IMAGE")
        item.ReferencedSOPSequence = [sop_reference(images, n)]
        ds.ContentSequence.append(item)
    return ds


NON_IMAGE_BUILDERS = {"SR": sr_document, "PR": presentation_state, "KO": key_object_selection}


# --------------------------------------------------------------------------- realistic headers
# --realistic-headers: what a real scanner or reading workstation writes besides the basics
# above, so that a benchmark parses headers of the size an archive holds (150-250 elements with
# sequences and private blocks). Each helper adds one module's (or block's) attributes.


def realistic_image(ds: Dataset, series: Series, instance_number: int,
                    pixels: np.ndarray) -> None:
    """Give a CT, MR or CR image the attribute set of a real scanner's object: equipment,
    patient, study and series extras, acquisition timing, general image attributes with the
    value range of ``pixels``, the modality module and two vendor private blocks."""
    equipment = EQUIPMENT[series.Modality]
    add_equipment(ds, equipment, series.study)
    add_patient_study_extras(ds, series.study)
    add_series_extras(ds, series)
    add_instance_creation(ds, series, instance_number, equipment)
    ds.AcquisitionDate = series.study.StudyDate
    ds.AcquisitionTime = clock(ds.SeriesTime, instance_number)
    ds.AcquisitionNumber = 1
    add_image_extras(ds, series, instance_number, pixels)
    MODALITY_EXTRAS[series.Modality](ds, series.kind, instance_number)
    add_acquisition_private_block(ds, series.Modality, instance_number)
    add_image_private_block(ds, instance_number)


def realistic_header_only(ds: Dataset, series: Series, instance_number: int) -> None:
    """Give an SR, PR or KO object a reading workstation's equipment, the patient and study
    extras of the images and the richer content of a real one (see ``REALISTIC_CONTENT``)."""
    add_equipment(ds, WORKSTATION, series.study)
    add_patient_study_extras(ds, series.study)
    add_instance_creation(ds, series, instance_number, WORKSTATION)
    REALISTIC_CONTENT[series.Modality](ds, series)


def stable_int(*parts: object) -> int:
    """A non-negative integer derived from ``parts``, the same in every run."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def shift_date(yyyymmdd: str, days: int) -> str:
    """The DA value ``days`` after ``yyyymmdd`` (before, for negative ``days``)."""
    day = date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    return (day + timedelta(days=days)).strftime("%Y%m%d")


def clock(hhmmss: str, seconds: int) -> str:
    """The TM value ``seconds`` after ``hhmmss`` (HHMM or HHMMSS), wrapping at midnight."""
    start = int(hhmmss[:2]) * 3600 + int(hhmmss[2:4]) * 60 + int(hhmmss[4:6] or 0)
    total = (start + seconds) % 86400
    return f"{total // 3600:02d}{total // 60 % 60:02d}{total % 60:02d}"


def patient_age(birth: str, on: str) -> str:
    """The AS value (``nnnY``) of a patient born on ``birth`` at the date ``on`` (both DA)."""
    years = int(on[:4]) - int(birth[:4]) - (on[4:8] < birth[4:8])
    return f"{max(0, years):03d}Y"


def body_part(study: Study) -> tuple[str, str, str]:
    """(BodyPartExamined, SNOMED CT code, meaning) of a study; a CR study is a chest X-ray."""
    if study.series and study.series[0].Modality == "CR":
        return BODY_PARTS[0]
    return BODY_PARTS[study.serial % len(BODY_PARTS)]


def procedure_code(study: Study) -> Dataset:
    """The site's code of the study's procedure, e.g. ``CT-CHEST`` "CT Thorax"."""
    modality, (part, _, meaning) = study.series[0].Modality, body_part(study)
    return code_item(f"{modality}-{part}", LocalCodingScheme, f"{modality} {meaning}")


def protocol_code(series: Series) -> Dataset:
    """The site's code of the protocol a series was acquired with."""
    part, _, meaning = body_part(series.study)
    return code_item(f"{series.Modality}-{part}-R", LocalCodingScheme,
                     f"{series.Modality} {meaning} routine")


def instance_reference(sop_class: str, sop_instance: str) -> Dataset:
    """A ReferencedSOPClassUID/ReferencedSOPInstanceUID item for any SOP instance."""
    item = Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = sop_class, sop_instance
    return item


def study_reference(study: Study) -> Dataset:
    """The ReferencedStudySequence item of the RIS's study management instance."""
    return instance_reference(StudyManagementSOPClass,
                              derive_uid(study.seed, "study-management", study.serial))


def add_equipment(ds: Dataset, equipment: Equipment, study: Study) -> None:
    """The General Equipment module beyond Manufacturer and InstitutionName."""
    ds.StationName = equipment.StationName
    ds.ManufacturerModelName = equipment.ManufacturerModelName
    ds.DeviceSerialNumber = equipment.DeviceSerialNumber
    ds.SoftwareVersions = list(equipment.SoftwareVersions)
    ds.InstitutionAddress = InstitutionAddress
    ds.InstitutionalDepartmentName = InstitutionalDepartmentName
    ds.DateOfLastCalibration = shift_date(study.StudyDate, -equipment.days_since_calibration)
    ds.TimeOfLastCalibration = "071500"


def add_patient_study_extras(ds: Dataset, study: Study) -> None:
    """Patient, Patient Study and General Study attributes that come with a RIS order."""
    patient = study.patient
    key = stable_int(study.seed, "patient", patient.PatientID, patient.PatientName)
    other = Dataset()
    other.PatientID = f"MRN{key % 10**7:07d}"
    other.IssuerOfPatientID, other.TypeOfPatientID = "ST EXAMPLE MRN", "TEXT"
    ds.IssuerOfPatientID = IssuerOfPatientID
    ds.OtherPatientIDsSequence = [other]
    ds.PatientComments = "Patient consented to the examination."
    ds.PatientAge = patient_age(patient.PatientBirthDate, study.StudyDate)
    ds.PatientSize = f"{1.50 + key % 45 / 100:.2f}"  # metres
    ds.PatientWeight = str(48 + key % 55)  # kilograms
    ds.AdmittingDiagnosesDescription = "Follow-up of known findings"
    ds.AdditionalPatientHistory = "No prior surgery. No known allergies."
    ds.NameOfPhysiciansReadingStudy = ReadingPhysician
    ds.PhysiciansOfRecord = "WELBY^MARCUS"
    ds.ProcedureCodeSequence = [procedure_code(study)]
    ds.ReferencedStudySequence = [study_reference(study)]
    scheme = Dataset()
    scheme.CodingSchemeDesignator, scheme.CodingSchemeName = LocalCodingScheme, "ACME codes"
    scheme.CodingSchemeResponsibleOrganization = InstitutionName
    ds.CodingSchemeIdentificationSequence = [scheme]


def request_item(study: Study) -> Dataset:
    """The requested procedure of a study, as a request item names it."""
    item = Dataset()
    item.AccessionNumber = study.AccessionNumber
    item.StudyInstanceUID = study.StudyInstanceUID
    item.RequestedProcedureID = f"RP{study.serial + 1:05d}"
    item.RequestedProcedureDescription = procedure_code(study).CodeMeaning
    item.RequestedProcedureCodeSequence = [procedure_code(study)]
    item.ReasonForTheRequestedProcedure = "Follow-up"
    return item


def request_attributes(series: Series) -> Dataset:
    """The RequestAttributesSequence item of a series acquired from a worklist entry."""
    item = request_item(series.study)
    item.ScheduledProcedureStepID = f"SPS{series.study.serial + 1:05d}"
    item.ScheduledProcedureStepDescription = item.RequestedProcedureDescription
    item.ScheduledProtocolCodeSequence = [protocol_code(series)]
    return item


def referenced_request(study: Study) -> Dataset:
    """The ReferencedRequestSequence item of an SR or KO document made for the study's order."""
    item = request_item(study)
    item.ReferencedStudySequence = [study_reference(study)]
    item.PlacerOrderNumberImagingServiceRequest = f"PO{study.AccessionNumber}"
    item.FillerOrderNumberImagingServiceRequest = f"FO{study.AccessionNumber}"
    return item


def add_series_extras(ds: Dataset, series: Series) -> None:
    """General Series attributes of an acquisition: who, which protocol, which request and
    which performed procedure step."""
    study = series.study
    ds.OperatorsName, ds.PerformingPhysicianName = OperatorName, PerformingPhysician
    ds.RequestingPhysician = RequestingPhysician
    ds.ProtocolName = protocol_code(series).CodeMeaning
    ds.BodyPartExamined = body_part(study)[0]  # unpaired: no Laterality
    ds.PerformedProcedureStepStartDate = study.StudyDate
    ds.PerformedProcedureStepStartTime = study.StudyTime
    ds.PerformedProcedureStepID = f"PPS{study.serial + 1:05d}"
    ds.PerformedProcedureStepDescription = procedure_code(study).CodeMeaning
    ds.PerformedProtocolCodeSequence = [protocol_code(series)]
    ds.RequestAttributesSequence = [request_attributes(series)]
    ds.ReferencedPerformedProcedureStepSequence = [instance_reference(
        PerformedProcedureStepSOPClass, derive_uid(study.seed, "mpps", study.serial))]


def add_instance_creation(ds: Dataset, series: Series, instance_number: int,
                          equipment: Equipment) -> None:
    """SOP Common: when and by which device the instance was made."""
    ds.InstanceCreationDate = series.study.StudyDate
    ds.InstanceCreationTime = clock(ds.SeriesTime, 60 + instance_number)
    ds.InstanceCreatorUID = derive_uid(series.study.seed, "device", equipment.DeviceSerialNumber)
    ds.TimezoneOffsetFromUTC = TimezoneOffsetFromUTC


def add_image_extras(ds: Dataset, series: Series, instance_number: int,
                     pixels: np.ndarray) -> None:
    """General Image and VOI LUT attributes, the pixel value range (US: PixelRepresentation 0)
    and references to the neighbouring instances of the series."""
    _, code, meaning = body_part(series.study)
    ds.ImageComments = f"{meaning} {series.Modality} image {instance_number}"
    ds.LossyImageCompression = "00"
    ds.BurnedInAnnotation = ds.RecognizableVisualFeatures = "NO"
    ds.PresentationLUTShape = "IDENTITY"
    ds.WindowCenterWidthExplanation = WINDOW_EXPLANATION[series.Modality]
    ds.AnatomicRegionSequence = [code_item(code, "SCT", meaning)]
    if pixels.size:
        ds.add_new(Tag("SmallestImagePixelValue"), "US", int(pixels.min()))
        ds.add_new(Tag("LargestImagePixelValue"), "US", int(pixels.max()))
    near = range(instance_number - REFERENCED_NEIGHBOURS,
                 instance_number + REFERENCED_NEIGHBOURS + 1)
    neighbours = [n for n in near if n != instance_number and 1 <= n <= series.size]
    if neighbours:
        ds.ReferencedImageSequence = [sop_reference(series, n) for n in neighbours]


def add_ct_acquisition(ds: Dataset, kind: ImageKind, instance_number: int) -> None:
    """The CT Image module's attributes of a helical scan with tube current modulation."""
    z = 5.0 * instance_number  # as ImagePositionPatient (add_cross_sectional)
    current = 180 + 10 * (instance_number % 5)
    ds.ScanOptions = "HELICAL MODE"
    ds.DataCollectionDiameter = 500
    ds.DataCollectionCenterPatient = [0.0, -150.5, z]
    ds.ReconstructionDiameter = round(kind.Columns * kind.PixelSpacing, 2)
    ds.ReconstructionTargetCenterPatient = [0.0, 0.0, z]
    ds.DistanceSourceToDetector, ds.DistanceSourceToPatient = 1085.6, 595
    ds.GantryDetectorTilt, ds.TableHeight, ds.RotationDirection = 0, 150.5, "CW"
    ds.ExposureTime, ds.XRayTubeCurrent, ds.Exposure = 500, current, current // 2
    ds.FilterType, ds.GeneratorPower, ds.FocalSpots = "BODY FILTER", 120 * current // 1000, 1.2
    ds.ConvolutionKernel = "STANDARD"
    ds.RevolutionTime, ds.SingleCollimationWidth, ds.TotalCollimationWidth = 0.5, 0.625, 40.0
    ds.SpiralPitchFactor, ds.TableFeedPerRotation, ds.TableSpeed = 0.984375, 39.375, 78.75
    ds.ExposureModulationType = "XYZ_EC"
    ds.CTDIvol = round(current * 0.045, 3)
    ds.CTDIPhantomTypeCodeSequence = [code_item("113691", "DCM", "IEC Body Dosimetry Phantom")]


def add_mr_acquisition(ds: Dataset, kind: ImageKind, instance_number: int) -> None:
    """The MR Image module's attributes of a 2D spin echo acquisition."""
    phase_steps = max(1, kind.Rows * 3 // 4)
    ds.SequenceName, ds.AngioFlag = "*se2d1", "N"
    ds.NumberOfAverages, ds.ImagingFrequency, ds.ImagedNucleus = 2, 63.87, "1H"
    ds.EchoNumbers, ds.EchoTrainLength, ds.SpacingBetweenSlices = 1, 1, 5
    ds.NumberOfPhaseEncodingSteps = phase_steps
    ds.PercentSampling, ds.PercentPhaseFieldOfView, ds.PixelBandwidth = 75, 100, 130
    ds.ReceiveCoilName, ds.TransmitCoilName = "HEAD 8CH", "BODY"
    ds.AcquisitionMatrix = [0, kind.Columns, phase_steps, 0]
    ds.InPlanePhaseEncodingDirection = "ROW"
    ds.FlipAngle, ds.VariableFlipAngleFlag = 90, "N"
    ds.SAR = round(0.8 + 0.01 * (instance_number % 10), 2)
    ds.dBdt = 0


def add_cr_acquisition(ds: Dataset, kind: ImageKind, instance_number: int) -> None:
    """The CR Series and CR Image modules' attributes of a chest exposure."""
    ds.KVP, ds.PlateID = 125, f"PLATE{instance_number % 8 + 1:02d}"
    ds.DistanceSourceToDetector, ds.DistanceSourceToPatient = 1800, 1650
    ds.ExposureTime, ds.XRayTubeCurrent, ds.Exposure = 10, 400, 4
    ds.ImagerPixelSpacing = [kind.PixelSpacing, kind.PixelSpacing]
    ds.GeneratorPower, ds.FocalSpots, ds.FilterType = 50, 1.2, "NONE"
    ds.CollimatorGridName, ds.PlateType, ds.PhosphorType = "GRID 10:1", "ST-VN", "BaFBr:Eu"
    ds.AcquisitionDeviceProcessingDescription = "CHEST PA"
    ds.AcquisitionDeviceProcessingCode = "CH-PA-01"
    ds.CassetteOrientation, ds.CassetteSize, ds.ExposuresOnPlate = "PORTRAIT", "35CMX43CM", 1
    ds.RelativeXRayExposure = 1200 + 10 * (instance_number % 10)
    ds.Sensitivity, ds.ExposureIndex, ds.TargetExposureIndex = 200, 410, 400
    ds.DeviationIndex = 0.1


MODALITY_EXTRAS: dict[str, Callable[[Dataset, ImageKind, int], None]] = {
    "CT": add_ct_acquisition, "MR": add_mr_acquisition, "CR": add_cr_acquisition,
}


def add_private_elements(block: PrivateBlock, vrs: Sequence[str], instance_number: int) -> None:
    """One element per VR of ``vrs`` in ``block``, at element 0x01 on."""
    for element, vr in enumerate(vrs, start=1):
        block.add_new(element, vr, PRIVATE_VALUES[vr](element, instance_number))


def add_acquisition_private_block(ds: Dataset, modality: str, instance_number: int) -> None:
    """The vendor's acquisition block in group 0019 (``ACME <modality> HEADER``): scalar
    parameters of every common VR, two multi-valued ones."""
    block = ds.private_block(PrivateAcquisitionGroup, f"ACME {modality} HEADER", create=True)
    add_private_elements(block, PRIVATE_ACQUISITION_VRS, instance_number)
    block.add_new(0x40, "DS", ["0.5", "1.25", f"{instance_number % 100}.5"])
    block.add_new(0x41, "US", [1, 2, 3, instance_number % 0x10000])


def add_image_private_block(ds: Dataset, instance_number: int) -> None:
    """The vendor's image info block in group 0043: scalars, an opaque OB record of a few
    hundred bytes and a sequence of reconstruction steps with private items of their own."""
    block = ds.private_block(PrivateImageGroup, PrivateImageCreator, create=True)
    add_private_elements(block, PRIVATE_IMAGE_VRS, instance_number)
    record = hashlib.shake_256(f"{ds.SOPInstanceUID}/recon".encode()).digest(PRIVATE_OB_BYTES)
    block.add_new(0x30, "OB", record)
    steps = []
    for step in range(1, PRIVATE_SQ_ITEMS + 1):
        item = Dataset()
        add_private_elements(item.private_block(PrivateImageGroup, PrivateImageCreator,
                                                create=True), PRIVATE_STEP_VRS, step)
        item.is_undefined_length_sequence_item = True
        steps.append(item)
    block.add_new(0x31, "SQ", steps)
    # Undefined lengths, as vendors write them: an implicit VR reader without the vendor's
    # dictionary still sees a sequence (PS3.5 7.5), not UN bytes.
    block[0x31].is_undefined_length = True


# ----- realistic header-only content


def content_text(relationship: str, concept: Dataset, text: str) -> Dataset:
    """A TEXT content item."""
    item = content_item(relationship, "TEXT", concept)
    item.TextValue = text
    return item


def content_code(relationship: str, concept: Dataset, value: Dataset) -> Dataset:
    """A CODE content item."""
    item = content_item(relationship, "CODE", concept)
    item.ConceptCodeSequence = [value]
    return item


def content_container(relationship: str, concept: Dataset,
                      children: Sequence[Dataset]) -> Dataset:
    """A CONTAINER content item holding ``children``."""
    item = content_item(relationship, "CONTAINER", concept)
    item.ContinuityOfContent = "SEPARATE"
    item.ContentSequence = list(children)
    return item


def content_image(relationship: str, images: Series, instance_number: int) -> Dataset:
    """An IMAGE content item referencing one image of ``images``."""
    item = content_item(relationship, "IMAGE")
    item.ReferencedSOPSequence = [sop_reference(images, instance_number)]
    return item


def observer_context() -> list[Dataset]:
    """The language and person observer items of a document's root (TID 1204, TID 1002)."""
    language = content_code("HAS CONCEPT MOD",
                            code_item("121049", "DCM", "Language of Content Item and Descendants"),
                            code_item("en-US", "RFC5646", "English (United States)"))
    observer = content_code("HAS OBS CONTEXT", code_item("121005", "DCM", "Observer Type"),
                            code_item("121006", "DCM", "Person"))
    name = content_item("HAS OBS CONTEXT", "PNAME",
                        code_item("121008", "DCM", "Person Observer Name"))
    name.PersonName = ReadingPhysician
    return [language, observer, name]


def report_context(study: Study) -> list[Dataset]:
    """Observer context and the study the report is about (TID 1001)."""
    organization = content_text("HAS OBS CONTEXT", code_item(
        "121009", "DCM", "Person Observer's Organization Name"), InstitutionName)
    uid = content_item("HAS OBS CONTEXT", "UIDREF",
                       code_item("110180", "DCM", "Study Instance UID"))
    uid.UID = study.StudyInstanceUID
    day = content_item("HAS OBS CONTEXT", "DATE", code_item("111060", "DCM", "Study Date"))
    day.Date = study.StudyDate
    time = content_item("HAS OBS CONTEXT", "TIME", code_item("111061", "DCM", "Study Time"))
    time.Time = study.StudyTime
    return [*observer_context(), organization, uid, day, time]


def report_findings(images: Series, count: int) -> Dataset:
    """The Findings container: ``count`` findings, each with its site and the image it is
    inferred from."""
    _, code, meaning = body_part(images.study)
    findings = []
    for k in range(count):
        finding = content_text("CONTAINS", code_item("121071", "DCM", "Finding"),
                               REPORT_FINDINGS[k % len(REPORT_FINDINGS)])
        site = content_code("HAS CONCEPT MOD", code_item("363698007", "SCT", "Finding Site"),
                            code_item(code, "SCT", meaning))
        finding.ContentSequence = [site, content_image("INFERRED FROM", images, k + 1)]
        findings.append(finding)
    return content_container("CONTAINS", code_item("121070", "DCM", "Findings"), findings)


def realistic_sr(ds: Dataset, series: Series) -> None:
    """A report tree of about 25 content items (TID 2000-like): observer context, clinical
    information, procedure, findings inferred from images, impression, recommendation."""
    images, study = referenced_images(series), series.study
    count = min(SR_FINDINGS, images.size)
    ds.PerformedProcedureCodeSequence = [procedure_code(study)]
    ds.ReferencedRequestSequence = [referenced_request(study)]
    ds.CurrentRequestedProcedureEvidenceSequence = evidence_sequence(images, count)
    clinical = content_container("CONTAINS", code_item("55752-0", "LN", "Clinical Information"), [
        content_text("CONTAINS", code_item("121060", "DCM", "History"),
                     "Known pulmonary nodule, follow-up examination."),
        content_text("CONTAINS", code_item("121109", "DCM", "Indications for Procedure"),
                     "Follow-up"),
    ])
    procedure = content_container("CONTAINS", code_item(
        "55111-9", "LN", "Current Procedure Descriptions"),
        [content_code("CONTAINS", code_item("121023", "DCM", "Procedure Code"),
                      procedure_code(study))])
    impression = content_container("CONTAINS", code_item("121072", "DCM", "Impressions"), [
        content_text("CONTAINS", code_item("121073", "DCM", "Impression"),
                     "Stable findings. No evidence of progression.")])
    recommendation = content_container("CONTAINS", code_item("121074", "DCM", "Recommendations"),
                                       [content_text("CONTAINS", code_item(
                                           "121075", "DCM", "Recommendation"),
                                           "Follow-up examination in 12 months.")])
    ds.ContentSequence = [*report_context(study), clinical, procedure,
                          report_findings(images, count), impression, recommendation]


def graphic_layer(name: str, order: int, description: str, gray: int) -> Dataset:
    """A GraphicLayerSequence item."""
    item = Dataset()
    item.GraphicLayer, item.GraphicLayerOrder = name, order
    item.GraphicLayerRecommendedDisplayGrayscaleValue = gray
    item.GraphicLayerDescription = description
    return item


def graphic_object(graphic_type: str, points: Sequence[tuple[float, float]]) -> Dataset:
    """A GraphicObjectSequence item in pixel coordinates (an ELLIPSE is not filled)."""
    item = Dataset()
    item.GraphicAnnotationUnits, item.GraphicDimensions = "PIXEL", 2
    item.NumberOfGraphicPoints = len(points)
    item.GraphicData = [float(c) for point in points for c in point]
    item.GraphicType = graphic_type
    if graphic_type == "ELLIPSE":
        item.GraphicFilled = "N"
    return item


def text_object(text: str, top_left: tuple[float, float],
                bottom_right: tuple[float, float]) -> Dataset:
    """A TextObjectSequence item in a pixel bounding box."""
    item = Dataset()
    item.UnformattedTextValue = text
    item.BoundingBoxAnnotationUnits = "PIXEL"
    item.BoundingBoxTopLeftHandCorner = [float(c) for c in top_left]
    item.BoundingBoxBottomRightHandCorner = [float(c) for c in bottom_right]
    item.BoundingBoxTextHorizontalJustification = "LEFT"
    return item


def image_annotations(images: Series, instance_number: int) -> list[Dataset]:
    """The annotations of one image: a text label, and a measured distance with its ellipse."""
    kind = images.kind
    w, h = float(kind.Columns), float(kind.Rows)
    label = Dataset()
    label.ReferencedImageSequence = [sop_reference(images, instance_number)]
    label.GraphicLayer = "ANNOTATIONS"
    label.TextObjectSequence = [text_object(f"Key finding {instance_number}", (w * 0.05, h * 0.05),
                                            (w * 0.45, h * 0.12))]
    ruler = Dataset()
    ruler.ReferencedImageSequence = [sop_reference(images, instance_number)]
    ruler.GraphicLayer = "MEASUREMENTS"
    length = round(w * 0.4 * kind.PixelSpacing, 1)
    ruler.TextObjectSequence = [text_object(f"{length} mm", (w * 0.3, h * 0.55),
                                            (w * 0.7, h * 0.62))]
    ruler.GraphicObjectSequence = [
        graphic_object("POLYLINE", [(w * 0.3, h * 0.5), (w * 0.7, h * 0.5)]),
        graphic_object("ELLIPSE", [(w * 0.3, h * 0.5), (w * 0.7, h * 0.5),
                                   (w * 0.5, h * 0.4), (w * 0.5, h * 0.6)]),
    ]
    return [label, ruler]


def displayed_area(images: Series, instance_number: int) -> Dataset:
    """The DisplayedAreaSelectionSequence item of one image: the whole image, scaled to fit."""
    kind = images.kind
    area = Dataset()
    area.ReferencedImageSequence = [sop_reference(images, instance_number)]
    area.DisplayedAreaTopLeftHandCorner = [1, 1]
    area.DisplayedAreaBottomRightHandCorner = [kind.Columns, kind.Rows]
    area.PresentationSizeMode = "SCALE TO FIT"
    area.PresentationPixelAspectRatio = [1, 1]
    return area


def realistic_gsps(ds: Dataset, series: Series) -> None:
    """Graphic layers and annotations on the first images, a displayed area per image, the
    spatial transformation and, for CT, the modality LUT."""
    images = referenced_images(series)
    ds.GraphicLayerSequence = [
        graphic_layer("ANNOTATIONS", 1, "Text annotations", 0xFFFF),
        graphic_layer("MEASUREMENTS", 2, "Distance measurements", 0xC000),
    ]
    ds.GraphicAnnotationSequence = [
        item for n in range(1, min(GSPS_ANNOTATED_IMAGES, images.size) + 1)
        for item in image_annotations(images, n)]
    ds.DisplayedAreaSelectionSequence = [displayed_area(images, n)
                                         for n in range(1, images.size + 1)]
    ds.ImageRotation, ds.ImageHorizontalFlip = 0, "N"
    ds.SoftcopyVOILUTSequence[0].WindowCenterWidthExplanation = "SOFT TISSUE"
    if images.Modality == "CT":
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"


def realistic_kos(ds: Dataset, series: Series) -> None:
    """Key images from every image series of the study (up to ``KEY_IMAGES_PER_SERIES`` each),
    the order they answer, language and observer context."""
    study = series.study
    keys = [(images, min(KEY_IMAGES_PER_SERIES, images.size)) for images in study.series
            if images.Modality in IMAGE_KINDS]
    evidence = Dataset()
    evidence.StudyInstanceUID = study.StudyInstanceUID
    evidence.ReferencedSeriesSequence = [series_evidence(images, count) for images, count in keys]
    ds.CurrentRequestedProcedureEvidenceSequence = [evidence]
    ds.ReferencedRequestSequence = [referenced_request(study)]
    description = content_text("CONTAINS", code_item("113012", "DCM", "Key Object Description"),
                               "Images flagged for the tumour board.")
    ds.ContentSequence = [*observer_context(), description,
                          *(content_image("CONTAINS", images, n) for images, count in keys
                            for n in range(1, count + 1))]


REALISTIC_CONTENT: dict[str, Callable[[Dataset, Series], None]] = {
    "SR": realistic_sr, "PR": realistic_gsps, "KO": realistic_kos,
}


def multiframe_dataset(series: Series, frames: int) -> Dataset:
    """An Enhanced CT image of ``frames`` axial frames, without its Pixel Data."""
    kind = series.kind
    ds = base_dataset(series, 1)
    ds.SOPClassUID = EnhancedCTImageStorage
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.AcquisitionDateTime = f"{ds.StudyDate}{ds.StudyTime}"
    ds.FrameOfReferenceUID = series.FrameOfReferenceUID
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = frames
    ds.Rows, ds.Columns = kind.Rows, kind.Columns
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, BitsStored, BitsStored - 1
    ds.PixelRepresentation = 0
    ds.ContentQualification, ds.BurnedInAnnotation = "PRODUCT", "NO"
    ds.PresentationLUTShape = "IDENTITY"
    ds.DimensionOrganizationType = "3D"
    ds.SharedFunctionalGroupsSequence = [shared_functional_groups(kind)]
    half_width = kind.Columns * kind.PixelSpacing / 2
    ds.PerFrameFunctionalGroupsSequence = [frame_functional_groups(index, half_width)
                                           for index in range(frames)]
    return ds


def shared_functional_groups(kind: ImageKind) -> Dataset:
    """Pixel measures, orientation, window and rescale shared by every frame."""
    measures = Dataset()
    measures.PixelSpacing, measures.SliceThickness = [kind.PixelSpacing] * 2, 1
    orientation = Dataset()
    orientation.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    voi = Dataset()
    voi.WindowCenter, voi.WindowWidth = 40, 400
    rescale = Dataset()
    rescale.RescaleIntercept, rescale.RescaleSlope, rescale.RescaleType = -1024, 1, "HU"
    group = Dataset()
    group.PixelMeasuresSequence = [measures]
    group.PlaneOrientationSequence = [orientation]
    group.FrameVOILUTSequence = [voi]
    group.PixelValueTransformationSequence = [rescale]
    return group


def frame_functional_groups(index: int, half_width: float) -> Dataset:
    """Frame content and plane position of frame ``index`` (0-based), 1 mm apart."""
    content = Dataset()
    content.StackID, content.InStackPositionNumber = "1", index + 1
    content.DimensionIndexValues = [1, index + 1]
    position = Dataset()
    position.ImagePositionPatient = [-half_width, -half_width, float(index)]
    group = Dataset()
    group.FrameContentSequence = [content]
    group.PlanePositionSequence = [position]
    return group


def multiframe_frames(gigabytes: float) -> int:
    """Frames of 512x512x2 bytes that make about ``gigabytes`` GB of pixel data."""
    frame_bytes = MULTIFRAME_SIZE * MULTIFRAME_SIZE * 2
    frames = max(1, round(gigabytes * GB / frame_bytes))
    if frames * frame_bytes > MAX_ELEMENT_LENGTH:
        raise ValueError(f"--multiframe-gb {gigabytes} exceeds the 4 GB limit of one element")
    return frames


def multiframe_chunks(pixels: np.ndarray, frames: int) -> Iterator[bytes]:
    """Little endian frame bytes, a few frames at a time; frame k is ``pixels + k % 64``."""
    for start in range(0, frames, MULTIFRAME_CHUNK_FRAMES):
        offsets = np.arange(start, min(start + MULTIFRAME_CHUNK_FRAMES, frames)) % 64
        chunk = pixels[None, :, :] + offsets.astype(np.uint16)[:, None, None]
        yield chunk.astype("<u2", copy=False).tobytes()


# --------------------------------------------------------------------------- encoding


class EncodingSchedule:
    """Hands out image encodings from ``ENCODING_CYCLE``, capping the compressed ones.

    With ``compressed_share`` (of CT/MR images) or ``raw_share`` (of all images) given, that
    category is no longer taken from the cycle: image k of the category's population is
    picked when ``floor(k * share)`` grows, so picks are evenly spread and exact in total.
    """

    def __init__(self, compressed_share: float | None = None,
                 raw_share: float | None = None) -> None:
        self._next = 0
        self._used: Counter[Encoding] = Counter()
        self.compressed_share = compressed_share
        self.raw_share = raw_share
        self._seen: Counter[str] = Counter()  # images seen: "cross-sectional", "all"

    def next(self, modality: str = "CT") -> Encoding:
        encoding = ENCODING_CYCLE[self._next % len(ENCODING_CYCLE)]
        self._next += 1
        if self.compressed_share is not None and encoding in COMPRESSED:
            encoding = Encoding.EXPLICIT_LE
        if self.raw_share is not None and encoding in RAW_IMPLICIT_VR:
            encoding = Encoding.EXPLICIT_LE
        encoding = self._by_share(encoding, modality)
        if (self.compressed_share is None and encoding in COMPRESSED
                and self._used[encoding] >= COMPRESSED_QUOTA):
            encoding = Encoding.EXPLICIT_LE
        self._used[encoding] += 1
        return encoding

    def _by_share(self, encoding: Encoding, modality: str) -> Encoding:
        """``encoding``, or the compressed or raw encoding whose turn it is."""
        self._seen["all"] += 1
        if self.compressed_share is not None and modality in RESIZABLE:
            self._seen["cross-sectional"] += 1
            done = self._used[Encoding.RLE] + self._used[Encoding.J2K]
            if self._due(self._seen["cross-sectional"], self.compressed_share, done):
                return COMPRESSED[done % len(COMPRESSED)]
        if self.raw_share is not None:
            raw = tuple(RAW_IMPLICIT_VR)
            done = sum(self._used[e] for e in raw)
            if self._due(self._seen["all"], self.raw_share, done):
                return raw[done % len(raw)]
        return encoding

    @staticmethod
    def _due(seen: int, share: float, done: int) -> bool:
        """True when ``done`` picks are fewer than ``share`` of the ``seen`` items."""
        return math.floor(seen * share + 1e-9) > done


def file_meta(ds: Dataset, transfer_syntax: UID) -> FileMetaDataset:
    """Part 10 file meta information with fixed implementation identifiers."""
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = ImplementationClassUID
    meta.ImplementationVersionName = ImplementationVersionName
    return meta


def set_pixel_data(ds: Dataset, pixels: np.ndarray | None, big_endian: bool) -> None:
    """Store native Pixel Data (OW) in the byte order of the target encoding."""
    if pixels is not None:
        ds.PixelData = pixels.astype(">u2" if big_endian else "<u2").tobytes()
        ds["PixelData"].VR = "OW"


def compress(ds: Dataset, pixels: np.ndarray | None, encoding: Encoding) -> bool:
    """Compress in place; False (dataset left uncompressed) if this syntax is unavailable."""
    try:
        ds.compress(TRANSFER_SYNTAX[encoding], pixels, generate_instance_uid=False)
    except Exception as exc:  # missing plugin or encoder failure: skip this syntax
        print(f"warning: {encoding.value} unavailable ({exc}); using explicit VR LE",
              file=sys.stderr)
        set_pixel_data(ds, pixels, big_endian=False)
        return False
    return True


def encode(ds: Dataset, pixels: np.ndarray | None, encoding: Encoding) -> tuple[bytes, Encoding]:
    """The file bytes of ``ds`` in ``encoding``, and the encoding actually used."""
    set_pixel_data(ds, pixels, big_endian=encoding is Encoding.EXPLICIT_BE)
    if encoding in COMPRESSED and not compress(ds, pixels, encoding):
        encoding = Encoding.EXPLICIT_LE
    buffer = io.BytesIO()
    if encoding in RAW_IMPLICIT_VR:
        pydicom.dcmwrite(buffer, ds, implicit_vr=RAW_IMPLICIT_VR[encoding], little_endian=True,
                         enforce_file_format=False)
    else:
        ds.file_meta = file_meta(ds, TRANSFER_SYNTAX[encoding])
        ds.preamble = Preamble
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue(), encoding


# --------------------------------------------------------------------------- writing


@dataclass
class ExportWriter:
    """Writes files under ``root`` one by one and keeps the counts."""

    root: Path
    schedule: EncodingSchedule = field(default_factory=EncodingSchedule)
    images_written: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    encodings: Counter[str] = field(default_factory=Counter)
    modalities: Counter[str] = field(default_factory=Counter)
    pitfalls: dict[str, list[str]] = field(default_factory=dict)  # pitfall -> file paths
    realistic: bool = False  # --realistic-headers

    def write_file(self, relative: Path, data: bytes, *, junk: bool) -> None:
        """Write one file; it must not exist yet."""
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("xb") as fp:
            fp.write(data)
        self._count(len(data), junk=junk)

    def write_streamed(self, relative: Path, header: bytes, chunks: Iterable[bytes]) -> None:
        """Write ``header``, which ends in an empty Pixel Data element, then ``chunks`` as
        that element's value, and set its length once the value is written."""
        if not header.endswith(PIXEL_DATA_EMPTY_OW):
            raise ValueError("the header must end with an empty OW Pixel Data element")
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        length = 0
        with path.open("xb") as fp:
            fp.write(header)
            for chunk in chunks:
                fp.write(chunk)
                length += len(chunk)
            if length > MAX_ELEMENT_LENGTH or length % 2:
                raise ValueError(f"pixel data of {length} bytes cannot be one element")
            fp.seek(len(header) - 4)
            fp.write(struct.pack("<I", length))
        self._count(len(header) + length, junk=False)

    def _count(self, size: int, *, junk: bool) -> None:
        self.counts["files"] += 1
        self.counts["junk" if junk else "dicom"] += 1
        self.counts["bytes"] += size

    def write_series(self, series: Series) -> None:
        """Write every instance of a series."""
        for number in range(1, series.size + 1):
            with warnings.catch_warnings():
                if series.pitfall:  # pydicom warns about the invalid values on purpose
                    warnings.simplefilter("ignore")
                data, used = self.encoded(series, number)
            self.write_file(series.path(number), data, junk=False)
            self.encodings[used.value] += 1
            self.modalities[series.Modality] += 1
            if series.pitfall:
                self.pitfalls.setdefault(series.pitfall, []).append(
                    series.path(number).as_posix())

    def encoded(self, series: Series, number: int) -> tuple[bytes, Encoding]:
        """The file bytes of one instance of ``series`` and the encoding used."""
        if series.Modality in IMAGE_KINDS:
            ds, pixels, encoding = self.next_image(series, number)
        else:
            ds = NON_IMAGE_BUILDERS[series.Modality](series, number)
            if self.realistic:
                realistic_header_only(ds, series, number)
            pixels, encoding = None, series.encoding or NON_IMAGE_ENCODING[series.Modality]
        if series.edit is not None:
            series.edit(ds, series, number)
            keep_raw_values(ds, encoding)
        return encode(ds, pixels, encoding)

    def next_image(self, series: Series, number: int) -> tuple[Dataset, np.ndarray, Encoding]:
        """Dataset, pixels and scheduled encoding of the next image (a pitfall series has its
        own encoding, no private block, and leaves the schedule alone)."""
        if series.encoding is not None:
            ds = image_dataset(series, number, private_block=False)
            encoding = series.encoding
        else:
            private = self.images_written % PRIVATE_BLOCK_EVERY == 0
            self.images_written += 1
            ds = image_dataset(series, number, private_block=private)
            encoding = self.schedule.next(series.Modality)
        pixels = synthetic_pixels(series.Modality, number, ds.SOPInstanceUID,
                                  (series.kind.Rows, series.kind.Columns))
        if number in series.short_pixels:
            pixels = pixels[:-1]  # Rows still says one row more
        if self.realistic:
            realistic_image(ds, series, number, pixels)
        return ds, pixels, encoding

    def write_multiframe(self, series: Series, gigabytes: float) -> None:
        """Write the multi-frame object of ``series``, streaming its pixel data."""
        frames = multiframe_frames(gigabytes)
        ds = multiframe_dataset(series, frames)
        ds.PixelData = b""
        ds["PixelData"].VR = "OW"
        header, used = encode(ds, None, Encoding.EXPLICIT_LE)
        kind = series.kind
        pixels = synthetic_pixels("CT", 1, ds.SOPInstanceUID, (kind.Rows, kind.Columns))
        self.write_streamed(series.path(1), header, multiframe_chunks(pixels, frames))
        self.encodings[used.value] += 1
        self.modalities[series.Modality] += 1


def write_junk(writer: ExportWriter, studies: Sequence[Study], seed: int,
               logged: Sequence[Study] | None = None) -> None:
    """Add the non-DICOM and broken files a real export carries, next to ``studies``; the
    export log lists ``logged`` (default: ``studies``)."""
    first, last = studies[0].series[0], studies[-1].series[-1]
    ct = next((s for st in studies for s in st.series if s.Modality == "CT"), first)
    header_victim = studies[0].series[min(1, len(studies[0].series) - 1)]
    last_number = {id(s): s.size for s in (first, last, ct, header_victim)}

    def next_number(series: Series) -> int:
        last_number[id(series)] += 1
        return last_number[id(series)]

    writer.write_file(first.folder / "Thumbs.db", thumbs_db(seed), junk=True)
    writer.write_file(Path(studies[0].folder.parts[0], "export.log"),
                      export_log(logged or studies), junk=True)
    writer.write_file(last.path(next_number(last)), b"", junk=True)
    number = next_number(ct)
    writer.write_file(ct.path(number), truncated_in_pixels(ct, number, writer.realistic),
                      junk=True)
    number = next_number(header_victim)
    data, _ = full_image(header_victim, number, writer.realistic)
    writer.write_file(header_victim.path(number), data[:TRUNCATED_HEADER_BYTES], junk=True)


def full_image(series: Series, number: int, realistic: bool = False) -> tuple[bytes, int]:
    """An explicit VR LE image file of ``series`` (with a realistic header if asked), and its
    pixel data length."""
    source = series if series.Modality in IMAGE_KINDS else referenced_images(series)
    ds = image_dataset(source, number, private_block=False)
    pixels = synthetic_pixels(source.Modality, number, ds.SOPInstanceUID,
                              (source.kind.Rows, source.kind.Columns))
    if realistic:
        realistic_image(ds, source, number, pixels)
    data, _ = encode(ds, pixels, Encoding.EXPLICIT_LE)
    return data, pixels.nbytes


def truncated_in_pixels(series: Series, number: int, realistic: bool = False) -> bytes:
    """A valid image file cut in the middle of its pixel data."""
    data, pixel_bytes = full_image(series, number, realistic)
    return data[: len(data) - pixel_bytes // 2]


def thumbs_db(seed: int) -> bytes:
    """A Windows thumbnail cache: OLE compound file signature, then filler."""
    rng = np.random.default_rng([seed, 0x7B])
    header = OLE_SIGNATURE + bytes(16) + b"\x3e\x00\x03\x00\xfe\xff\x09\x00"
    body = rng.integers(0, 256, THUMBS_DB_BYTES - len(header), dtype=np.uint8).tobytes()
    return header + body


def export_log(studies: Sequence[Study]) -> bytes:
    """The archive's export log: one line per study, fixed timestamps."""
    lines = [f"{ARCHIVE_EPOCH:%Y-%m-%d} 22:00:00 EXPORT START label=ARCHIVE01"]
    for study in studies:
        files = sum(s.size for s in study.series)
        lines.append(f"{study.archive_date:%Y-%m-%d} 22:{study.serial % 60:02d}:00 EXPORTED "
                     f"study={study.serial + 1} accession={study.AccessionNumber} "
                     f"path={study.folder.as_posix()} files={files}")
    lines.append(f"{studies[-1].archive_date:%Y-%m-%d} 23:59:00 EXPORT END status=OK")
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


# --------------------------------------------------------------------------- legacy pitfalls

LEGACY_UID_ROOT = "1.2.840.99999.4"  # the old PACS's own (made-up) UID root
TEMPORARY_ID = "TMP{seed:03d}{number:04d}"  # emergency registrations of the old RIS
PITFALL_PATIENT_ID = 9001  # pitfall patient k gets number PITFALL_PATIENT_ID + k


def put_raw(ds: Dataset, keyword: str, vr: str, value: bytes) -> None:
    """Store ``value`` byte for byte, as a legacy archive has it (no validation, no padding:
    an odd length stays odd). :func:`keep_raw_values` makes pydicom write it as it is."""
    tag = Tag(keyword)
    ds._dict[tag] = RawDataElement(tag, vr, len(value), value, 0, False, True)


def keep_raw_values(ds: Dataset, encoding: Encoding) -> None:
    """Have pydicom write the raw elements of ``ds`` (little endian ``encoding``) unchanged.

    pydicom re-encodes raw elements (and parses, and may reject, their values) unless the
    dataset's original encoding and character set are the ones it writes with.
    """
    implicit = encoding in (Encoding.IMPLICIT_LE, Encoding.RAW_IMPLICIT_LE)
    for tag, elem in list(ds._dict.items()):
        if isinstance(elem, RawDataElement):
            ds._dict[tag] = elem._replace(is_implicit_VR=implicit, is_little_endian=True)
    ds.set_original_encoding(implicit, True, ds._character_set)


@dataclass
class LegacyUIDStudy(Study):
    """A study whose old PACS made a StudyInstanceUID of more than 64 characters."""

    @property
    def StudyInstanceUID(self) -> str:
        tail = uuid.uuid5(UID_NAMESPACE, f"legacy-study/{self.seed}/{self.serial}").int
        return (f"{LEGACY_UID_ROOT}.{self.seed}.{self.serial}.{self.StudyDate}{self.StudyTime}"
                f".{10**30 + tail % 10**30}")  # 31 digits: always over 64 characters in all


@dataclass
class LegacyUIDSeries(Series):
    """An image series whose old PACS zero-padded UID components (``.001``, ``.0003``)."""

    @property
    def _legacy_root(self) -> str:
        return (f"{LEGACY_UID_ROOT}.{self.study.seed}.{self.study.serial}."
                f"{self.study.StudyDate}.{self.SeriesNumber:03d}")

    @property
    def SeriesInstanceUID(self) -> str:
        return self._legacy_root

    @property
    def FrameOfReferenceUID(self) -> str:
        return f"{self._legacy_root}.0"

    def sop_instance_uid(self, instance_number: int) -> str:
        return f"{self._legacy_root}.{instance_number:04d}"


def european_console(ds: Dataset, series: Series, number: int) -> None:
    """An old MR console: dotted dates, times with colons, a decimal comma, a NUL-padded
    StationName and a SeriesDescription of odd length."""
    for keyword in ("StudyDate", "SeriesDate", "ContentDate"):
        put_raw(ds, keyword, "DA", b"2001.01.02")
    put_raw(ds, "StudyTime", "TM", b"12:30:45")
    for keyword in ("SeriesTime", "ContentTime"):
        put_raw(ds, keyword, "TM", b"12:31:07")
    put_raw(ds, "SliceThickness", "DS", b"2,5 ")
    put_raw(ds, "StationName", "SH", b"MRC40\x00\x00\x00")
    put_raw(ds, "SeriesDescription", "LO", b"T2 TSE AX")  # 9 bytes, unpadded


LONG_STUDY_DESCRIPTION = (b"CT HEAD WITHOUT CONTRAST - PEDIATRIC LOW DOSE PROTOCOL - "
                          b"REQUESTED BY DR WELBY - FOLLOW-UP")


def us_workstation(ds: Dataset, series: Series, number: int) -> None:
    """A US workstation: M/D/YYYY dates (1/2/2001 is ambiguous, 12/31/1999 is not), a
    lowercase PatientSex, InstanceNumbers like 3.0 and a StudyDescription over 64 characters."""
    for keyword in ("StudyDate", "SeriesDate", "ContentDate"):
        put_raw(ds, keyword, "DA", b"1/2/2001")
    put_raw(ds, "PatientBirthDate", "DA", b"12/31/1999")
    put_raw(ds, "PatientSex", "CS", b"m ")
    put_raw(ds, "InstanceNumber", "IS", f"{number}.0 ".encode())
    put_raw(ds, "StudyDescription", "LO", LONG_STUDY_DESCRIPTION)


def no_character_set(ds: Dataset, series: Series, number: int) -> None:
    """An old modality that writes Latin-1 names and no Specific Character Set."""
    del ds.SpecificCharacterSet
    put_raw(ds, "PatientName", "PN", series.study.patient.PatientName.encode("latin-1"))


def not_supplied_character_set(ds: Dataset, series: Series, number: int) -> None:
    """A modality that declares Specific Character Set 'Not Supplied' (its text is ASCII)."""
    put_raw(ds, "SpecificCharacterSet", "CS", b"Not Supplied")


def latin1_declared(ds: Dataset, series: Series, number: int) -> None:
    """A modality that always declares ISO_IR 100, even for an ASCII name."""
    ds.SpecificCharacterSet = SpecificCharacterSetLatin1


def no_series_uid(ds: Dataset, series: Series, number: int) -> None:
    """A series whose images lost their SeriesInstanceUID."""
    del ds.SeriesInstanceUID


def pitfall_patient(seed: int, k: int, name: str, birth: str, sex: str) -> Patient:
    return Patient(f"{seed % 1000:03d}{PITFALL_PATIENT_ID + k:05d}", name, birth, sex)


def temporary_id(seed: int, number: int) -> str:
    """A PatientID the old RIS gave an emergency patient before the real one was known."""
    return TEMPORARY_ID.format(seed=seed % 1000, number=number)


def plan_pitfalls(seed: int, first_serial: int) -> list[Study]:
    """The legacy pitfall studies, numbered from ``first_serial`` (see the module docstring).

    Every pitfall series has a fixed encoding (explicit VR little endian unless an old device
    wrote implicit VR) so that its bad values are written byte for byte.
    """
    studies: list[Study] = []
    explicit, implicit = Encoding.EXPLICIT_LE, Encoding.IMPLICIT_LE

    def new_study(patient: Patient, kind: type[Study] = Study) -> Study:
        studies.append(kind(patient, serial=first_serial + len(studies), seed=seed))
        return studies[-1]

    study = new_study(pitfall_patient(seed, 0, "KOWALSKI^ANNA", "19620415", "F"))
    study.series = [Series(study, 1, "MR", 3, encoding=explicit, edit=european_console,
                           pitfall="values: dates 2001.01.02, times 12:30:45, SliceThickness "
                                   "'2,5', StationName with trailing NULs, SeriesDescription of "
                                   "odd length")]
    study = new_study(pitfall_patient(seed, 1, "JOHNSON^LIAM", "19991231", "M"))
    study.series = [Series(study, 1, "CT", 3, encoding=implicit, edit=us_workstation,
                           pitfall="values: dates 1/2/2001 (ambiguous) and 12/31/1999, "
                                   "PatientSex 'm', InstanceNumber '1.0', StudyDescription over "
                                   "64 characters (implicit VR)")]
    study = new_study(pitfall_patient(seed, 2, "NGUYEN^LAN", "19480203", "F"), LegacyUIDStudy)
    images = LegacyUIDSeries(study, 1, "MR", 3, encoding=explicit,
                             pitfall="UIDs: StudyInstanceUID over 64 characters, Series, "
                                     "SOP Instance and Frame of Reference UIDs with leading "
                                     "zeros")
    study.series = [images]
    for number, modality in ((101, "PR"), (102, "KO")):
        study.series.append(Series(study, number, modality, 1, references=images,
                                   pitfall=f"UIDs: {modality} referencing the images by their "
                                           "invalid UIDs"))
    schroeder = pitfall_patient(seed, 3, "Schröder^Käthe", "19570822", "F")
    study = new_study(schroeder)
    study.series = [Series(study, 1, "MR", 2, encoding=explicit,
                           pitfall="charset: Latin-1 PatientName, ISO_IR 100 declared (fine)")]
    study = new_study(schroeder)
    study.series = [Series(study, 1, "MR", 2, encoding=implicit, edit=no_character_set,
                           pitfall="charset: Latin-1 PatientName, no SpecificCharacterSet "
                                   "(implicit VR)")]
    study = new_study(pitfall_patient(seed, 4, "PATEL^RAJ", "19700101", "M"))
    study.series = [Series(study, 1, "MR", 2, encoding=explicit,
                           edit=not_supplied_character_set,
                           pitfall="charset: SpecificCharacterSet 'Not Supplied', ASCII text")]
    study = new_study(pitfall_patient(seed, 5, "OKAFOR^GRACE", "19850612", "F"))
    study.series = [
        Series(study, 1, "MR", 2, encoding=explicit, short_pixels=frozenset({2}),
               pitfall="pixels: Pixel Data one row shorter than Rows x Columns x 2 (image 2; "
                       "image 1 is fine)"),
        Series(study, 2, "MR", 3, encoding=explicit, edit=no_series_uid,
               pitfall="required: no SeriesInstanceUID in the series")]
    regular = make_patient(seed, 0)
    emergency = Patient(temporary_id(seed, 815), ascii_name(regular.PatientName),
                        regular.PatientBirthDate, regular.PatientSex)
    study = new_study(emergency)
    study.series = [Series(study, 1, "CT", 2, encoding=explicit, edit=latin1_declared,
                           pitfall=f"corrections: emergency PatientID {emergency.PatientID} "
                                   f"and name {emergency.PatientName} (the legacy database "
                                   f"merged it into {regular.PatientID})")]
    return studies


def ascii_name(name: str) -> str:
    """A name as typed at a console without umlauts: Müller^Jürgen -> MUELLER^JUERGEN."""
    table = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "AE", "Ö": "OE", "Ü": "UE",
                           "ß": "ss"})
    return name.translate(table).encode("ascii", "ignore").decode().upper()


def side_file_paths(out_dir: Path, corrections: Path | str | None,
                    rules: Path | str | None) -> tuple[Path, Path]:
    """The corrections CSV and example rules paths; ValueError if one is inside ``out_dir``
    (it would be migrated as an object of the export) or both are the same file."""
    base = out_dir if out_dir.name else out_dir.resolve()
    paths = (Path(corrections) if corrections else base.with_name(f"{base.name}.corrections.csv"),
             Path(rules) if rules else base.with_name(f"{base.name}.rules.toml"))
    root = out_dir.resolve()
    for path in paths:
        if path.resolve() == root or root in path.resolve().parents:
            raise ValueError(f"{path} is inside the export {out_dir}; write it outside")
        if path.is_dir():
            raise ValueError(f"{path} is a directory")
    if paths[0].resolve() == paths[1].resolve():
        raise ValueError("the corrections and rules files must be two different files")
    return paths


def write_side_files(paths: tuple[Path, Path], out_dir: Path, studies: Sequence[Study],
                     written: dict[str, list[str]], seed: int) -> None:
    """Write the legacy database corrections CSV and the example rules beside the export."""
    corrections, rules = paths
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
    corrections.write_text(corrections_csv(seed), encoding="utf-8", newline="")
    rules.write_text(rules_toml(out_dir, paths, studies, written), encoding="utf-8")


def corrections_csv(seed: int) -> str:
    """The legacy database's corrections: the emergency patient merged into the real one with
    the name spelled right, and a merge whose objects are not in the export (an orphan)."""
    regular, orphan_target = make_patient(seed, 0), make_patient(seed, 2)
    rows = [("StudyInstanceUID", "AccessionNumber", "OldPatientID", "PatientID", "PatientName"),
            ("", "", temporary_id(seed, 815), regular.PatientID, regular.PatientName),
            ("", "", temporary_id(seed, 816), orphan_target.PatientID, "")]
    return "".join(",".join(row) + "\r\n" for row in rows)


def rules_toml(out_dir: Path, paths: tuple[Path, Path], studies: Sequence[Study],
               written: dict[str, list[str]]) -> str:
    """The example rules for the pitfalls, with where each pitfall is in the export."""
    corrections, rules = paths
    folders = {s.pitfall: s.folder.as_posix() for st in studies for s in st.series if s.pitfall}
    listing = "\n".join(f"#   {folders[p]}/: {p}" for p in written)
    return f"""\
# Example migrate-fs rules for the legacy pitfalls of the sample export {out_dir.name!r}
# (written by scripts/make_sample_export.py; every other setting keeps its default):
#
#   migrate-fs run {out_dir} --out OUT --config {rules} --corrections {corrections}
#
# The pitfalls (folder below the export: what is wrong):
{listing}
#
# With the defaults: the values are fixed except 1/2/2001 (reported), the over-long
# StudyDescription is a warning, the invalid UIDs are remapped in every object that names
# them; the files without SpecificCharacterSet, with 'Not Supplied', without
# SeriesInstanceUID or with a short Pixel Data are quarantined. This file fixes all but the
# last; the corrections file merges the emergency PatientID and corrects the name.

[charset]
# The workstation that wrote 12/31/1999 writes the month first: 1/2/2001 is 2 January 2001.
date_order = "MDY"

[charset.overrides]
# The old modality that writes no SpecificCharacterSet writes Latin-1 names.
"" = "ISO_IR 100"
# The modality that declares 'Not Supplied' writes ASCII text (Latin-1 holds it).
"Not Supplied" = "ISO_IR 100"

[required]
# A series without SeriesInstanceUID gets one, generated from StudyInstanceUID, Modality and
# SeriesNumber (the same for every image of the series, in every run).
SeriesInstanceUID = "generate"
"""


# --------------------------------------------------------------------------- entry points


def check_output_dir(out_dir: Path) -> None:
    """Refuse an output path that exists and is not an empty directory."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise OutputNotEmptyError(f"{out_dir} exists and is not empty; refusing to mix data")


def make_sample_export(out_dir: Path, *, patients: int = 6, studies_per_patient: int = 2,
                       series_per_study: int = 2, images_per_series: int = 4, cr: int = 2,
                       seed: int = 0, junk: bool = True, hostile: bool = True,
                       pitfalls: bool = True, corrections: Path | str | None = None,
                       rules: Path | str | None = None,
                       matrix: int | None = None, compressed_share: float | None = None,
                       header_only_share: float | None = None,
                       raw_share: float | None = None,
                       multiframe_gb: float | None = None,
                       realistic_headers: bool = False) -> dict:
    """Write the sample export to ``out_dir`` and return its counts.

    ``pitfalls`` adds the legacy pitfall studies and writes, outside the export, the legacy
    database corrections CSV (``corrections``, default ``<out_dir>.corrections.csv``) and the
    example rules (``rules``, default ``<out_dir>.rules.toml``), replacing earlier ones.
    The keyword arguments after ``rules`` are the benchmark options of the module
    docstring (``--matrix`` ... ``--realistic-headers``); None (False) leaves the content
    unchanged.
    Returns ``{"files", "dicom", "junk", "bytes"}`` totals plus ``"encodings"``
    and ``"modalities"`` dicts counting the DICOM objects, ``"pitfalls"`` (pitfall ->
    paths of its files, relative to ``out_dir``) and the paths of the ``"corrections"``
    and ``"rules"`` files (None without pitfalls).
    Raises OutputNotEmptyError if ``out_dir`` holds anything, ValueError on bad counts or
    side file paths inside ``out_dir``.
    """
    if min(patients, studies_per_patient, series_per_study, images_per_series) < 1:
        raise ValueError("patients, studies, series and images per series must be >= 1")
    if cr < 0 or seed < 0:
        raise ValueError("cr and seed must be >= 0")
    check_options(matrix=matrix, compressed_share=compressed_share,
                  header_only_share=header_only_share, raw_share=raw_share,
                  multiframe_gb=multiframe_gb)
    out_dir = Path(out_dir)
    side_files = side_file_paths(out_dir, corrections, rules) if pitfalls else None
    check_output_dir(out_dir)
    studies = plan_export(patients=patients, studies_per_patient=studies_per_patient,
                          series_per_study=series_per_study, images_per_series=images_per_series,
                          cr=cr, seed=seed, hostile=hostile, matrix=matrix,
                          header_only_share=header_only_share)
    legacy = plan_pitfalls(seed, first_serial=len(studies)) if pitfalls else []
    everything = [*studies, *legacy]
    out_dir.mkdir(parents=True, exist_ok=True)
    writer = ExportWriter(out_dir, EncodingSchedule(compressed_share, raw_share),
                          realistic=realistic_headers)
    for series in iter_series(everything):
        writer.write_series(series)
    if junk:
        write_junk(writer, studies, seed, logged=everything)
    if multiframe_gb is not None:
        writer.write_multiframe(multiframe_series(everything, seed), multiframe_gb)
    if side_files is not None:
        write_side_files(side_files, out_dir, legacy, writer.pitfalls, seed)
    counts = {key: writer.counts[key] for key in ("files", "dicom", "junk", "bytes")}
    return {**counts, "encodings": dict(sorted(writer.encodings.items())),
            "modalities": dict(sorted(writer.modalities.items())),
            "pitfalls": writer.pitfalls,
            "corrections": str(side_files[0]) if side_files else None,
            "rules": str(side_files[1]) if side_files else None}


def check_options(*, matrix: int | None, compressed_share: float | None,
                  header_only_share: float | None, raw_share: float | None,
                  multiframe_gb: float | None) -> None:
    """Raise ValueError for a benchmark option out of range (None is always fine)."""
    if matrix is not None and not 1 <= matrix <= 0xFFFF:
        raise ValueError("matrix must be between 1 and 65535")
    for name, share in (("compressed share", compressed_share), ("raw share", raw_share)):
        if share is not None and not 0 <= share <= 1:
            raise ValueError(f"{name} must be between 0 and 1")
    if header_only_share is not None and not 0 <= header_only_share < 1:
        raise ValueError("header-only share must be at least 0 and below 1")
    if multiframe_gb is not None:
        if not multiframe_gb > 0:
            raise ValueError("multiframe size must be above 0 GB")
        multiframe_frames(multiframe_gb)


def iter_series(studies: Sequence[Study]) -> Iterator[Series]:
    """Every series of every study, in writing order."""
    for study in studies:
        yield from study.series


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR",
                        help="output directory; must not exist or be empty")
    parser.add_argument("--patients", type=int, default=6, metavar="N",
                        help="regular patients (default: 6)")
    parser.add_argument("--studies-per-patient", type=int, default=2, metavar="N",
                        help="CT/MR studies per patient (default: 2)")
    parser.add_argument("--series-per-study", type=int, default=2, metavar="N",
                        help="image series per study (default: 2)")
    parser.add_argument("--images-per-series", type=int, default=4, metavar="N",
                        help="images per series (default: 4)")
    parser.add_argument("--cr", type=int, default=2, metavar="N",
                        help="CR images of 2500x2000 pixels (default: 2)")
    parser.add_argument("--seed", type=int, default=0, metavar="N",
                        help="seed for UIDs, IDs and pixel data (default: 0)")
    parser.add_argument("--no-junk", dest="junk", action="store_false",
                        help="leave out the non-DICOM and truncated files")
    parser.add_argument("--no-hostile", dest="hostile", action="store_false",
                        help="leave out the patients with hostile PatientIDs")
    parser.add_argument("--no-pitfalls", dest="pitfalls", action="store_false",
                        help="leave out the legacy pitfall studies, the corrections CSV and "
                             "the example rules")
    parser.add_argument("--corrections", type=Path, metavar="FILE",
                        help="where to write the legacy database corrections CSV, outside "
                             "OUT_DIR (default: OUT_DIR.corrections.csv)")
    parser.add_argument("--rules", type=Path, metavar="FILE",
                        help="where to write the example rules config, outside OUT_DIR "
                             "(default: OUT_DIR.rules.toml)")
    bench = parser.add_argument_group("benchmark options (left out: the default content)")
    bench.add_argument("--matrix", type=int, metavar="N",
                       help="CT and MR images of NxN pixels (e.g. 64 for tiny objects)")
    bench.add_argument("--compressed-share", type=float, metavar="F",
                       help="fraction of CT/MR images compressed, RLE and JPEG 2000 alternately")
    bench.add_argument("--header-only-share", type=float, metavar="F",
                       help="fraction of objects that are header-only SR/PR/KO objects")
    bench.add_argument("--raw-share", type=float, metavar="F",
                       help="fraction of images written as raw datasets without file meta")
    bench.add_argument("--multiframe-gb", type=float, metavar="X",
                       help="add one multi-frame Enhanced CT image of about X GB (streamed)")
    bench.add_argument("--realistic-headers", action="store_true",
                       help="give every CT/MR/CR image and SR/PR/KO object the attribute set "
                            "of a real scanner's or workstation's (150-250 elements with "
                            "sequences and private blocks)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        counts = make_sample_export(
            args.out_dir, patients=args.patients, studies_per_patient=args.studies_per_patient,
            series_per_study=args.series_per_study, images_per_series=args.images_per_series,
            cr=args.cr, seed=args.seed, junk=args.junk, hostile=args.hostile,
            pitfalls=args.pitfalls, corrections=args.corrections, rules=args.rules,
            matrix=args.matrix, compressed_share=args.compressed_share,
            header_only_share=args.header_only_share, raw_share=args.raw_share,
            multiframe_gb=args.multiframe_gb, realistic_headers=args.realistic_headers)
    except (OutputNotEmptyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.out_dir}: {counts['files']} files ({counts['dicom']} DICOM, "
          f"{counts['junk']} junk), {counts['bytes'] / 1e6:.1f} MB")
    if counts["corrections"]:
        legacy = sum(len(paths) for paths in counts["pitfalls"].values())
        print(f"legacy pitfalls: {legacy} DICOM objects (listed in the example rules)")
        print(f"legacy database corrections: {counts['corrections']}")
        print(f"example rules: {counts['rules']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
