#!/usr/bin/env python3
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

Output is byte-for-byte identical for the same arguments: UIDs are 2.25 UIDs of
name-based UUIDs of the seed and the object's indices, dates and times are fixed,
preambles are zeros and pixel data comes from a numpy RNG seeded by the SOP
Instance UID (see :func:`synthetic_pixels`).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import Enum
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    BasicTextSRStorage,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
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
ImplementationClassUID = f"2.25.{UID_NAMESPACE.int}"
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


class Encoding(str, Enum):
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
                images_per_series: int, cr: int, seed: int, hostile: bool) -> list[Study]:
    """All studies of the export, in the order they are written."""
    studies: list[Study] = []

    def new_study(patient: Patient) -> Study:
        studies.append(Study(patient, serial=len(studies), seed=seed))
        return studies[-1]

    for p in range(patients):
        patient = make_patient(seed, p)
        for s in range(studies_per_patient):
            study = new_study(patient)
            modality = "CT" if (p + s) % 2 == 0 else "MR"
            study.series = [Series(study, n + 1, modality, images_per_series)
                            for n in range(series_per_study)]
            if p == 0 and s == 0:
                add_non_image_series(study)
        cr_images = len(range(p, cr, patients))
        if cr_images:
            study = new_study(patient)
            study.series = [Series(study, 1, "CR", cr_images)]
    if hostile:
        for i, (patient_id, name) in enumerate(HOSTILE_PATIENTS):
            patient = Patient(patient_id, name, f"{1950 + i * 10}0101", PATIENT_SEXES[i % 3])
            study = new_study(patient)
            study.series = [Series(study, 1, "MR", images_per_series)]
    return studies


def add_non_image_series(study: Study) -> None:
    """Append the SR, presentation state and key object series, each of one object."""
    images = study.series[0]
    for modality in ("SR", "PR", "KO"):
        number = 100 + len(study.series)
        study.series.append(Series(study, number, modality, 1, references=images))


# --------------------------------------------------------------------------- datasets


def synthetic_pixels(modality: str, instance_number: int, sop_instance_uid: str) -> np.ndarray:
    """The uint16 pixel array of an image, from values stored in the image itself."""
    kind = IMAGE_KINDS[modality]
    digest = hashlib.sha256(sop_instance_uid.encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    rows, cols = kind.Rows, kind.Columns
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
    kind = IMAGE_KINDS[series.Modality]
    ds = base_dataset(series, instance_number)
    ds.ImageType = ["ORIGINAL", "PRIMARY"] if kind is CR else ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.FrameOfReferenceUID = series.FrameOfReferenceUID
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = kind.Rows, kind.Columns
    ds.PixelSpacing = [kind.PixelSpacing, kind.PixelSpacing]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, BitsStored, BitsStored - 1
    ds.PixelRepresentation = 0
    if kind is CR:
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
    if kind is CT:
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


def evidence_sequence(images: Series, count: int) -> list[Dataset]:
    """Hierarchical SOP instance references to the first ``count`` images of a series."""
    series_item = Dataset()
    series_item.SeriesInstanceUID = images.SeriesInstanceUID
    series_item.ReferencedSOPSequence = [sop_reference(images, n) for n in range(1, count + 1)]
    study_item = Dataset()
    study_item.StudyInstanceUID = images.study.StudyInstanceUID
    study_item.ReferencedSeriesSequence = [series_item]
    return [study_item]


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


def sr_document(series: Series) -> Dataset:
    """A Basic Text SR report with a few TEXT findings."""
    ds = base_dataset(series, 1)
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = [code_item("18748-4", "LN", "Diagnostic Imaging Report")]
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
    ds.ReferencedPerformedProcedureStepSequence = []
    ds.PerformedProcedureCodeSequence = []
    ds.CurrentRequestedProcedureEvidenceSequence = evidence_sequence(series.references, 1)
    findings = ("No acute abnormality.", "Degenerative changes of the spine.",
                "Compared with prior study: stable.")
    ds.ContentSequence = []
    for text in findings:
        item = content_item("CONTAINS", "TEXT", code_item("121071", "DCM", "Finding"))
        item.TextValue = text
        ds.ContentSequence.append(item)
    return ds


def presentation_state(series: Series) -> Dataset:
    """A Grayscale Softcopy Presentation State applying to every image of a series."""
    images = series.references
    kind = IMAGE_KINDS[images.Modality]
    ds = base_dataset(series, 1)
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


def key_object_selection(series: Series) -> Dataset:
    """A Key Object Selection document flagging the first two images of a series."""
    images = series.references
    count = min(2, images.size)
    ds = base_dataset(series, 1)
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


# --------------------------------------------------------------------------- encoding


class EncodingSchedule:
    """Hands out image encodings from ``ENCODING_CYCLE``, capping the compressed ones."""

    def __init__(self) -> None:
        self._next = 0
        self._used: Counter[Encoding] = Counter()

    def next(self) -> Encoding:
        encoding = ENCODING_CYCLE[self._next % len(ENCODING_CYCLE)]
        self._next += 1
        if encoding in COMPRESSED and self._used[encoding] >= COMPRESSED_QUOTA:
            encoding = Encoding.EXPLICIT_LE
        self._used[encoding] += 1
        return encoding


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


def compress(ds: Dataset, pixels: np.ndarray, encoding: Encoding) -> bool:
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

    def write_file(self, relative: Path, data: bytes, *, junk: bool) -> None:
        """Write one file; it must not exist yet."""
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("xb") as fp:
            fp.write(data)
        self.counts["files"] += 1
        self.counts["junk" if junk else "dicom"] += 1
        self.counts["bytes"] += len(data)

    def write_series(self, series: Series) -> None:
        """Write every instance of a series."""
        for number in range(1, series.size + 1):
            if series.Modality in IMAGE_KINDS:
                ds, pixels, encoding = self.next_image(series, number)
            else:
                ds = NON_IMAGE_BUILDERS[series.Modality](series)
                pixels, encoding = None, NON_IMAGE_ENCODING[series.Modality]
            data, used = encode(ds, pixels, encoding)
            self.write_file(series.path(number), data, junk=False)
            self.encodings[used.value] += 1
            self.modalities[series.Modality] += 1

    def next_image(self, series: Series, number: int) -> tuple[Dataset, np.ndarray, Encoding]:
        """Dataset, pixels and scheduled encoding of the next image."""
        private = self.images_written % PRIVATE_BLOCK_EVERY == 0
        self.images_written += 1
        ds = image_dataset(series, number, private_block=private)
        pixels = synthetic_pixels(series.Modality, number, ds.SOPInstanceUID)
        return ds, pixels, self.schedule.next()


def write_junk(writer: ExportWriter, studies: Sequence[Study], seed: int) -> None:
    """Add the non-DICOM and broken files a real export carries."""
    first, last = studies[0].series[0], studies[-1].series[-1]
    ct = next((s for st in studies for s in st.series if s.Modality == "CT"), first)
    header_victim = studies[0].series[min(1, len(studies[0].series) - 1)]
    last_number = {id(s): s.size for s in (first, last, ct, header_victim)}

    def next_number(series: Series) -> int:
        last_number[id(series)] += 1
        return last_number[id(series)]

    writer.write_file(first.folder / "Thumbs.db", thumbs_db(seed), junk=True)
    writer.write_file(Path(studies[0].folder.parts[0], "export.log"), export_log(studies),
                      junk=True)
    writer.write_file(last.path(next_number(last)), b"", junk=True)
    number = next_number(ct)
    writer.write_file(ct.path(number), truncated_in_pixels(ct, number), junk=True)
    number = next_number(header_victim)
    data, _ = full_image(header_victim, number)
    writer.write_file(header_victim.path(number), data[:TRUNCATED_HEADER_BYTES], junk=True)


def full_image(series: Series, number: int) -> tuple[bytes, int]:
    """An explicit VR LE image file of ``series``, and its pixel data length."""
    source = series if series.Modality in IMAGE_KINDS else series.references
    ds = image_dataset(source, number, private_block=False)
    pixels = synthetic_pixels(source.Modality, number, ds.SOPInstanceUID)
    data, _ = encode(ds, pixels, Encoding.EXPLICIT_LE)
    return data, pixels.nbytes


def truncated_in_pixels(series: Series, number: int) -> bytes:
    """A valid image file cut in the middle of its pixel data."""
    data, pixel_bytes = full_image(series, number)
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


# --------------------------------------------------------------------------- entry points


def check_output_dir(out_dir: Path) -> None:
    """Refuse an output path that exists and is not an empty directory."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise OutputNotEmptyError(f"{out_dir} exists and is not empty; refusing to mix data")


def make_sample_export(out_dir: Path, *, patients: int = 6, studies_per_patient: int = 2,
                       series_per_study: int = 2, images_per_series: int = 4, cr: int = 2,
                       seed: int = 0, junk: bool = True, hostile: bool = True) -> dict:
    """Write the sample export to ``out_dir`` and return its counts.

    Returns ``{"files", "dicom", "junk", "bytes"}`` totals plus ``"encodings"``
    and ``"modalities"`` dicts counting the DICOM objects.
    Raises OutputNotEmptyError if ``out_dir`` holds anything, ValueError on bad counts.
    """
    if min(patients, studies_per_patient, series_per_study, images_per_series) < 1:
        raise ValueError("patients, studies, series and images per series must be >= 1")
    if cr < 0 or seed < 0:
        raise ValueError("cr and seed must be >= 0")
    out_dir = Path(out_dir)
    check_output_dir(out_dir)
    studies = plan_export(patients=patients, studies_per_patient=studies_per_patient,
                          series_per_study=series_per_study, images_per_series=images_per_series,
                          cr=cr, seed=seed, hostile=hostile)
    out_dir.mkdir(parents=True, exist_ok=True)
    writer = ExportWriter(out_dir)
    for series in iter_series(studies):
        writer.write_series(series)
    if junk:
        write_junk(writer, studies, seed)
    counts = {key: writer.counts[key] for key in ("files", "dicom", "junk", "bytes")}
    return {**counts, "encodings": dict(sorted(writer.encodings.items())),
            "modalities": dict(sorted(writer.modalities.items()))}


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
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        counts = make_sample_export(
            args.out_dir, patients=args.patients, studies_per_patient=args.studies_per_patient,
            series_per_study=args.series_per_study, images_per_series=args.images_per_series,
            cr=args.cr, seed=args.seed, junk=args.junk, hostile=args.hostile)
    except (OutputNotEmptyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.out_dir}: {counts['files']} files ({counts['dicom']} DICOM, "
          f"{counts['junk']} junk), {counts['bytes'] / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
