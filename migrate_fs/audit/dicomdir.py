"""audit.dicomdir: ``migrate-fs dicomdir``, a media file-set (PS3.10/PS3.11, General Purpose
media: a DICOMDIR and the instances) from a run's migrated outputs, for a CD, DVD or USB stick
that goes to another hospital.

What it does (:func:`make_dicomdir`):

- reads the result manifest part by part and selects the migrated objects (status ``written``
  or ``already_present``), optionally only those of some studies (``studies``: output
  StudyInstanceUIDs) and/or patients (``patients``: output PatientIDs); the outputs are at
  ``<out>/<output_path>`` (``out`` from run.json, or ``source``);
- reads each output's header (never the pixel data) with pydicom and gives it to pydicom's
  :class:`~pydicom.fileset.FileSet`, which makes the directory records (PATIENT, STUDY, SERIES
  and an IMAGE, RT DOSE, SR DOCUMENT... record; a single PALETTE or HANGING PROTOCOL record for
  the IODs without a patient) and names the files on the medium with its own layout:
  ``PT000000/ST000000/SE000000/IM000000`` (patient, study, series, instance: the index among
  its siblings, in the order added; ``PA000000`` for a palette at the top level). Every file
  ID is at most 8 components of 8 characters of ``A-Z 0-9 _``. ``FileSet.write`` writes the
  files and the DICOMDIR (explicit VR little endian) and reads the DICOMDIR back;
- the files on the medium are the outputs byte for byte. ``FileSet.add`` stores a copy of the
  dataset it was given re-encoded by pydicom (``save_as``) in a staging folder and copies that
  copy to the medium: not the output's bytes, and a second copy of everything in the temporary
  folder. Here it is given the header only, and the staged file is then replaced by a symbolic
  link to the output, so that ``write`` copies the output itself (``shutil.copyfile`` follows
  the link). Every file on the medium is hashed afterwards and compared with the result's
  ``output_sha256``;
- where an output lacks a value the directory record requires (Type 1 in PS3.3 Annex F) and
  pydicom would refuse it, the record (never the file) gets a fallback, as DCMTK's dcmmkdir
  does: StudyDate/StudyTime from the SeriesDate/Time, AcquisitionDate/Time or ContentDate/Time
  (else the day and time the medium is made), StudyID ``MFSSTUDY000001`` (numbered per study of
  the medium), SeriesNumber and InstanceNumber numbered on the medium, Modality ``OT``,
  PatientID ``MFSPAT000001`` (numbered per study without a PatientID, so that two patients are
  never merged). Each fallback is listed in the medium's table (``fallbacks``);
- objects that cannot go on the medium are reported, never fatal: ``no_directory_record``
  (pydicom cannot make their records: the message is pydicom's), ``output_unreadable`` (the
  output is missing or pydicom cannot read it), ``output_uid_mismatch`` (the output's
  SOPInstanceUID is not the result's: run verify), ``duplicate_sop_instance_uid`` (an object
  with the same SOPInstanceUID is on the medium already: a file-set holds a UID once);
- writes ``manifests/<run>/dicomdir/<medium name>.parquet`` (atomically): one row per selected
  object, its ``file_id`` on the medium or the reason it is not there, so that the medium is
  accountable like every stage; and the summary in run.json under ``dicomdir.<medium name>``.

**Scale.** A FileSet holds every directory record in memory, and ``write`` reads the DICOMDIR
back into a second tree: measured with pydicom 3.0.2, 7 KB per instance while adding and 17 KB
at the peak of ``write`` (340 MB for 20,000 instances). Adding an instance compares its record
with each of its siblings' (in pydicom's tree), so the time grows with the square of a series'
size: about 6 ms per instance in series of 1,000 (2 minutes for 20,000 instances, 20 s more
for ``write``). A medium holds thousands to some tens of thousands of instances; a whole run
of 10^8 does not fit on one. ``max_instances`` (default :data:`MAX_INSTANCES`, about 1.7 GB)
refuses a larger selection before anything is copied: make one medium per patient or study.

It never changes the output tree or a source (it reads them), and refuses a medium folder that
exists and is not empty, or that lies inside the output tree. It prints nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from migrate_fs import manifest
from migrate_fs.audit.checks import MIGRATED
from migrate_fs.audit.verify import output_root, write_finished
from migrate_fs.errors import MediaError, OutputError, UsageError

FOLDER = "dicomdir"  # manifests/<run>/dicomdir/<medium name>.parquet
MAX_INSTANCES = 100_000
LISTED = 100  # objects not on the medium listed in the summary (all are in the table)
FILE_ID = re.compile(r"[A-Z0-9_]{1,8}")  # one component of a file ID (PS3.10 8.5)
REASONS = ("no_directory_record", "output_unreadable", "output_uid_mismatch",
           "duplicate_sop_instance_uid")
COLUMNS = ["object_id", "status", "output_path", "output_sha256", "output_size",
           "output_sop_instance_uid", "output_study_instance_uid", "output_series_instance_uid",
           "output_patient_id", "instance_number"]
TABLE = pa.schema([
    ("object_id", pa.string()), ("output_path", pa.string()),
    ("sop_instance_uid", pa.string()), ("study_instance_uid", pa.string()),
    ("patient_id", pa.string()),
    ("on_medium", pa.bool_()),  # false: see reason
    ("file_id", pa.string()),  # on the medium, components joined with "/"
    ("record_type", pa.string()),  # the leaf record: IMAGE, RT DOSE, PALETTE...
    ("medium_sha256", pa.string()),  # of the file on the medium, hashed after writing
    ("sha256_matches", pa.bool_()),  # medium_sha256 == the result's output_sha256
    ("fallbacks", pa.list_(pa.string())),  # record attributes given a fallback value
    ("reason", pa.string()), ("message", pa.string()),
])


@dataclass
class DicomdirDone:
    """What :func:`make_dicomdir` made: the medium, its table, and the counts."""

    run: str
    name: str
    media: Path
    out: Path
    table: Path
    studies: tuple[str, ...] = ()
    patients: tuple[str, ...] = ()
    selected: int = 0
    on_medium: int = 0
    bytes: int = 0
    levels: dict[str, int] = field(default_factory=dict)  # patients, studies, series
    record_types: dict[str, int] = field(default_factory=dict)
    not_on_medium: dict[str, int] = field(default_factory=dict)  # by reason
    listed: list[dict[str, Any]] = field(default_factory=list)  # the first LISTED of them
    fallbacks: dict[str, int] = field(default_factory=dict)  # records per attribute
    sha256_mismatch: int = 0
    file_set_uid: str = ""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.sha256_mismatch

    def as_dict(self) -> dict[str, Any]:
        return {"step": "dicomdir", "run": self.run, "name": self.name,
                "media": str(self.media), "dicomdir": str(self.media / "DICOMDIR"),
                "out": str(self.out), "table": str(self.table),
                "filters": {"studies": list(self.studies), "patients": list(self.patients)},
                "selected": self.selected, "on_medium": self.on_medium, "bytes": self.bytes,
                "patients": self.levels.get("PATIENT", 0), "studies": self.levels.get("STUDY", 0),
                "series": self.levels.get("SERIES", 0), "record_types": self.record_types,
                "not_on_medium": self.not_on_medium,
                "not_on_medium_count": sum(self.not_on_medium.values()),
                "not_on_medium_listed": self.listed, "fallbacks": self.fallbacks,
                "sha256_mismatch": self.sha256_mismatch, "passed": self.passed,
                "file_set_uid": self.file_set_uid, "seconds": round(self.seconds, 3)}


def make_dicomdir(manifests: str | Path, run: str, media: str | Path, *,
                  studies: Iterable[str] = (), patients: Iterable[str] = (),
                  source: str | Path | None = None,
                  max_instances: int = MAX_INSTANCES) -> DicomdirDone:
    """Make the file-set of run ``run``'s migrated outputs (those of ``studies`` and/or
    ``patients`` when given: an object must match both filters given) in the new or empty
    folder ``media`` (see the module docstring); ``source`` is the output root when it is not
    the one run.json records."""
    start = time.perf_counter()
    manifests = Path(manifests)
    manifest.stage_parts(manifests, run, "result")  # StageMissing: run write first
    out = output_root(manifests, run, source, "--from")
    target = Path(os.path.abspath(media))
    name = _medium_name(target)
    _check_media(target, out)
    wanted = (tuple(dict.fromkeys(studies)), tuple(dict.fromkeys(patients)))
    with manifest.run_lock(manifests, run, "migrate-fs dicomdir"):
        write_finished(manifests, run, "dicomdir")
        rows = _selected(manifests, run, *wanted, max_instances)
        done = DicomdirDone(run, name, target, out,
                            manifest.stage_dir(manifests, run, FOLDER) / f"{name}.parquet",
                            *wanted, selected=len(rows))
        target.mkdir(parents=True, exist_ok=True)
        table = _make(rows, out, target, done)
        manifest.stage_dir(manifests, run, FOLDER).mkdir(parents=True, exist_ok=True)
        manifest.write_table(done.table, table)
        done.seconds = time.perf_counter() - start
        recorded = manifest.read_run_info(manifests, run).get(FOLDER) or {}
        summary = {k: v for k, v in done.as_dict().items()
                   if k not in ("step", "run", "not_on_medium_listed")}
        manifest.write_run_info(manifests, run, **{FOLDER: {**recorded, name: summary}})
    if not done.on_medium:
        raise MediaError(f"none of the {done.selected} selected objects could go on the medium "
                         f"(no DICOMDIR written): see the reasons in {done.table}")
    return done


# --- checks and selection ------------------------------------------------------------------

def _medium_name(media: Path) -> str:
    name = media.name
    if not name or name.startswith("."):
        raise UsageError(f"medium folder {media}: give a folder with a plain name (it names "
                         f"the medium's table in manifests/<run>/{FOLDER}/)")
    return name


def _check_media(media: Path, out: Path) -> None:
    if media.exists() and not media.is_dir():
        raise OutputError(f"medium folder {media} is a file: give a new or empty folder")
    if media.is_dir() and any(media.iterdir()):
        raise OutputError(f"medium folder {media} is not empty: give a new or empty folder "
                          "(a medium is made whole, never added to)")
    resolved = media.resolve()
    if resolved == out or out in resolved.parents:
        raise OutputError(f"medium folder {media} is inside the output tree {out}: put it "
                          "elsewhere (the output tree holds only migrated files)")


def _selected(manifests: Path, run: str, studies: tuple[str, ...], patients: tuple[str, ...],
              limit: int) -> list[dict[str, Any]]:
    """The migrated rows the filters select, read part by part (a few columns), in the order
    they go on the medium: patient, study, series, instance number, SOPInstanceUID."""
    rows: list[dict[str, Any]] = []
    for _, part in manifest.iter_stage(manifests, run, "result", COLUMNS):
        keep = pc.is_in(part.column("status"), pa.array(MIGRATED, pa.string()))
        if studies:
            keep = pc.and_(keep, pc.is_in(part.column("output_study_instance_uid"),
                                          pa.array(studies, pa.string())))
        if patients:
            keep = pc.and_(keep, pc.is_in(part.column("output_patient_id"),
                                          pa.array(patients, pa.string())))
        chosen = part.filter(pc.fill_null(keep, False))
        if len(rows) + chosen.num_rows > limit:
            raise MediaError(f"more than {limit} migrated objects selected for one medium "
                             f"(run {run!r}): make one medium per patient or study (--patient, "
                             "--study), or raise --max-instances if the machine has the memory "
                             "(about 17 KB per instance)")
        rows.extend(chosen.to_pylist())
    if not rows:
        what = " and ".join(f"{flag} {' '.join(values)}" for flag, values in
                            (("--study", studies), ("--patient", patients)) if values)
        raise UsageError(f"no migrated object of run {run!r} matches {what}: give output UIDs "
                         "and PatientIDs (the result's output_study_instance_uid and "
                         "output_patient_id)" if what else
                         f"run {run!r} has no migrated object to put on a medium")
    rows.sort(key=_order)
    return rows


def _order(row: dict[str, Any]) -> tuple[str, str, str, int, str]:
    number = (row["instance_number"] or "").strip()
    return (row["output_patient_id"] or "", row["output_study_instance_uid"] or "",
            row["output_series_instance_uid"] or "",
            int(number) if number.isdigit() else 1 << 62, row["output_sop_instance_uid"] or "")


# --- the file-set ----------------------------------------------------------------------------

def _file_set_class() -> type:
    from pydicom.fileset import FileSet

    class MediaFileSet(FileSet):  # type: ignore[misc]
        """pydicom's FileSet, but ``add`` does not scan every instance added so far for the
        same SOPInstanceUID (a linear scan per add, quadratic over a medium): the caller keeps
        the UIDs in a set."""

        adding = False

        def __iter__(self) -> Iterator[Any]:
            return iter(()) if self.adding else super().__iter__()

        def add_new(self, ds: Any) -> Any:
            self.adding = True
            try:
                return self.add(ds)
            finally:
                self.adding = False

    return MediaFileSet


@dataclass
class _Counters:
    """The medium's numbering of fallback values."""

    numbers: dict[str, dict[str, int]] = field(default_factory=dict)

    def next(self, kind: str, key: str) -> int:
        seen = self.numbers.setdefault(kind, {})
        return seen.setdefault(key, len(seen) + 1)


def _make(rows: list[dict[str, Any]], out: Path, media: Path, done: DicomdirDone) -> pa.Table:
    """Add every selected output to a FileSet, write it to ``media``, read the DICOMDIR back
    and hash the files on the medium: the medium's table, one row per selected object."""
    import pydicom

    fs = _file_set_class()()
    counters = _Counters()
    now = time.strftime("%Y%m%d"), time.strftime("%H%M%S")
    uids: set[str] = set()
    table: list[dict[str, Any]] = []
    for row in rows:
        entry = {"object_id": row["object_id"], "output_path": row["output_path"],
                 "sop_instance_uid": row["output_sop_instance_uid"],
                 "study_instance_uid": row["output_study_instance_uid"],
                 "patient_id": row["output_patient_id"], "on_medium": False, "fallbacks": []}
        table.append(entry)
        path = out / row["output_path"]
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            uid = str(ds.SOPInstanceUID)
            ds.file_meta.TransferSyntaxUID  # noqa: B018 (a record names it)
        except Exception as exc:  # noqa: BLE001 (any unreadable output is reported)
            entry.update(reason="output_unreadable", message=f"{type(exc).__name__}: {exc}")
            continue
        if uid != row["output_sop_instance_uid"]:
            entry.update(reason="output_uid_mismatch", message=(
                f"the output's SOPInstanceUID is {uid}, the result's "
                f"{row['output_sop_instance_uid']}: run migrate-fs verify"))
            continue
        if uid in uids:
            entry.update(reason="duplicate_sop_instance_uid", message=(
                "an object with this SOPInstanceUID is on the medium already"))
            continue
        _sr_record_values(ds)
        try:
            instance = _add(fs, ds, counters, now, entry["fallbacks"])
        except Exception as exc:  # noqa: BLE001 (pydicom: ValueError, KeyError, AttributeError)
            entry.update(reason="no_directory_record", message=str(exc).split(". See DICOM")[0],
                         fallbacks=[])
            continue
        uids.add(uid)
        entry["record_type"] = instance.node.record_type
        staged = Path(instance.path)  # the header pydicom re-encoded: the output instead
        staged.unlink()
        staged.symlink_to(path.resolve())
    if uids:
        fs.write(media)  # copies the outputs, writes the DICOMDIR, reads it back
    _account(fs, media, rows, table, done)
    return pa.Table.from_pylist(table, schema=TABLE)


# Record attributes pydicom requires (Type 1 in PS3.3 Annex F) that get a fallback when absent
# or empty. It goes into the dataset given to FileSet.add (a header read for the records),
# never into a file on the medium.
_DATES = {"StudyDate": ("SeriesDate", "AcquisitionDate", "ContentDate"),
          "StudyTime": ("SeriesTime", "AcquisitionTime", "ContentTime")}
_NUMBERED = {"PatientID": ("patient", "MFSPAT{:06d}"), "StudyID": ("study", "MFSSTUDY{:06d}"),
             "SeriesNumber": ("series", "{}"), "InstanceNumber": ("instance", "{}")}
_TAG = re.compile(r"\(([0-9A-F]{4}),([0-9A-F]{4})\)")


def _add(fs: Any, ds: Any, counters: _Counters, now: tuple[str, str], filled: list[str]) -> Any:
    """``fs.add_new(ds)``; when pydicom refuses ``ds`` for an attribute a record requires,
    fill it with its fallback (noted in ``filled``) and try again. Raises what pydicom raised
    when there is no fallback."""
    from pydicom.datadict import keyword_for_tag

    while True:
        try:
            return fs.add_new(ds)
        except ValueError as exc:
            text = str(exc)
            if not text.startswith("Unable to use the default"):  # failed after the records
                _forget(fs, str(ds.SOPInstanceUID))
                raise
            found = _TAG.search(text)
            keyword = keyword_for_tag(int(found[1] + found[2], 16)) if found else ""
            if keyword in filled or not _fallback(ds, keyword, counters, now):
                raise
            filled.append(keyword)
        except Exception:
            _forget(fs, str(ds.SOPInstanceUID))
            raise


def _fallback(ds: Any, keyword: str, counters: _Counters, now: tuple[str, str]) -> bool:
    """Set ``keyword`` in ``ds`` to its fallback value; False when it has none."""
    key = {"patient": "StudyInstanceUID", "study": "StudyInstanceUID",
           "series": "SeriesInstanceUID", "instance": "SOPInstanceUID"}
    if keyword in _DATES:
        found = [ds[a].value for a in _DATES[keyword] if a in ds and ds[a].VM]
        setattr(ds, keyword, found[0] if found else now[keyword == "StudyTime"])
    elif keyword in _NUMBERED:
        kind, form = _NUMBERED[keyword]
        setattr(ds, keyword, form.format(counters.next(kind, str(ds.get(key[kind], "")))))
    elif keyword == "Modality":
        ds.Modality = "OT"
    else:
        return False
    return True


def _sr_record_values(ds: Any) -> None:
    """What an SR DOCUMENT or KEY OBJECT DOC record may hold (PS3.3 F.5): pydicom copies the
    whole Content Sequence of the document into the record, but the record takes only its
    ``HAS CONCEPT MOD`` items (dciodvfy: "Unrecognized enumerated value <CONTAINS> for ...
    Relationship Type"); and a VERIFIED document's VerificationDateTime, which the document
    holds in its Verifying Observer Sequence (the last verification), not at the top level."""
    if "ContentSequence" in ds:
        kept = [item for item in ds.ContentSequence
                if item.get("RelationshipType") == "HAS CONCEPT MOD"]
        if kept:
            ds.ContentSequence = kept
        else:
            del ds.ContentSequence
    if ds.get("VerificationFlag") == "VERIFIED" and "VerificationDateTime" not in ds:
        times = [item.VerificationDateTime for item in ds.get("VerifyingObserverSequence", [])
                 if item.get("VerificationDateTime")]
        if times:
            ds.VerificationDateTime = max(times)


def _forget(fs: Any, uid: str) -> None:
    """Take back an instance that ``add`` put in the tree before it failed (saving it)."""
    for instance in fs.find(SOPInstanceUID=uid):
        fs.remove(instance)


def _account(fs: Any, media: Path, rows: list[dict[str, Any]], table: list[dict[str, Any]],
             done: DicomdirDone) -> None:
    """The medium as read back from its DICOMDIR: each instance's file ID, the hash of its
    file compared with the result's; and the counts."""
    listed = {str(i.SOPInstanceUID): i for i in fs} if fs.path else {}
    levels: dict[str, set[str]] = {"PATIENT": set(), "STUDY": set(), "SERIES": set()}
    for instance in listed.values():
        for level, keyword in (("PATIENT", "PatientID"), ("STUDY", "StudyInstanceUID"),
                               ("SERIES", "SeriesInstanceUID")):
            if keyword in instance:  # a record's (a palette has none of these)
                levels[level].add(str(instance[keyword].value))
    done.levels = {level: len(keys) for level, keys in levels.items()}
    if fs.path:
        done.file_set_uid = str(fs.UID)
    types: Counter[str] = Counter()
    fallbacks: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for row, entry in zip(rows, table, strict=True):
        if entry.get("reason"):
            reasons[entry["reason"]] += 1
            if len(done.listed) < LISTED:
                done.listed.append({k: entry[k] for k in ("object_id", "output_path", "reason",
                                                          "message")})
            continue
        instance = listed.pop(entry["sop_instance_uid"], None)
        if instance is None:  # pydicom took it but did not write it: not ours to hide
            raise MediaError(f"the DICOMDIR written to {media} does not list "
                             f"{entry['output_path']} (SOPInstanceUID "
                             f"{entry['sop_instance_uid']}): the medium is incomplete; remove "
                             "it and report this")
        file_id = Path(instance.FileID).as_posix()
        if not conformant(file_id):
            raise MediaError(f"pydicom named {entry['output_path']} {file_id!r} on the medium, "
                             "not a file ID PS3.10 allows: report this")
        digest, size = _sha256(media / file_id)
        entry.update(on_medium=True, file_id=file_id, medium_sha256=digest,
                     sha256_matches=digest == row["output_sha256"])
        done.on_medium += 1
        done.bytes += size
        done.sha256_mismatch += not entry["sha256_matches"]
        types[entry["record_type"]] += 1
        fallbacks.update(entry["fallbacks"])
    done.record_types = dict(sorted(types.items()))
    done.fallbacks = dict(sorted(fallbacks.items()))
    done.not_on_medium = dict(sorted(reasons.items()))


def _sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def conformant(file_id: str) -> bool:
    """Whether a file ID (components joined with "/") is one PS3.10 allows on media: at most
    8 components of 1 to 8 characters A-Z, 0-9 and _."""
    parts = file_id.split("/")
    return len(parts) <= 8 and all(FILE_ID.fullmatch(p) for p in parts)


