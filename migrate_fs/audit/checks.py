"""audit.checks: re-read the outputs of a finished write and check each against its result row
and, for the objects asked, its pixel data against the source.

For each migrated object (result status ``written`` or ``already_present``):

1. the output is at ``<out>/<output_path>`` (a regular file, not a link), with the recorded
   ``output_size`` and ``output_sha256``;
2. pydicom reads it as Part 10 (``stop_before_pixels``: the header only; the Pixel Data element
   is located at the file position where pydicom stopped, as highdicom's ``ImageFileReader``
   does: no third parser), and its file meta agrees with the dataset and the plan
   (MediaStorageSOPClassUID = SOPClassUID, MediaStorageSOPInstanceUID = SOPInstanceUID,
   TransferSyntaxUID = ``output_transfer_syntax``);
3. SOPClassUID, SOPInstanceUID, StudyInstanceUID, SeriesInstanceUID and PatientID are the
   plan's (``output_*``; none of them encoded as UN), and every entry of ``changes`` holds, at
   any depth of its tag path (``(0040,A375)[0].(0020,000D)``): a value change is compared with
   the raw bytes of the element as found (pydicom's raw element: no UN-to-known-VR conversion
   hides what a splice copied) against the value the writer encodes for it
   (:func:`~migrate_fs.transcode.edits_for`), a removal (``new`` null) and a dropped group
   length as absent, a VR change (``un_to_known_vr``, ``vr_too_long_for_explicit_length``) as
   the element's VR;
4. when the row asks for it (``compare_pixels``), the Pixel Data element's value (for
   encapsulated data the whole encapsulated value, fragments and delimiter) is hashed from the
   output's pixel data offset and compared with the hash of the source's value as the writer
   writes it (the element's header is not compared: a splice keeps the source's, OW for
   encapsulated data in some files, where a re-encoding writes OB): read with the writer's
   own functions (:func:`~migrate_fs.writer.open_source`, which also proves
   the source is the file the inventory saw; archive members from
   :func:`~migrate_fs.archives.iter_members`; :func:`~migrate_fs.transcode.copy_pixel_data`,
   which swaps big endian values; a deflated source inflated and located by
   :func:`~migrate_fs.reader.read_header`). Neither side is held in memory (but a deflated
   dataset, inflated whole as the writer inflates it). An object without pixel data must have
   none in its output either.

Every failed check is a problem (a catalogue code, severity ``blocking``) on the object's verify
row. The stray walk lists the files below the output root that are no recorded output.

Nothing here writes a manifest, an output or a source (the caller writes the verify parts and
the strays table; :func:`find_strays` spills only to the work folder it is given); outputs and
sources are opened read-only.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import re
import stat
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import DeflatedExplicitVRLittleEndian

from migrate_fs.archives import STREAM_ERRORS, Member, iter_members
from migrate_fs.elements import PIXEL_DATA_TAGS, UNDEFINED
from migrate_fs.paths import resolve_inside
from migrate_fs.reader import read_header
from migrate_fs.transcode import CHUNK, VR_LENGTH_32, WriteError, copy_pixel_data, edits_for
from migrate_fs.writer import TEMPORARY_SUFFIX, open_source

MIGRATED = ("written", "already_present")  # result statuses with an output to verify
COMPARE = "compare_pixels"  # the key a caller sets on a row: compare its pixel data too
# The result columns a verify reads.
VERIFY_INPUT = ["object_id", "locator", "status", "output_path", "output_size", "output_sha256",
                "output_transfer_syntax", "sop_class_uid", "sop_instance_uid",
                "study_instance_uid", "series_instance_uid", "patient_id",
                "output_sop_instance_uid", "output_study_instance_uid",
                "output_series_instance_uid", "output_patient_id", "specific_character_set",
                "changes", "archive", "archive_volumes", "member", "member_offset", "size",
                "mtime_ns", "device", "inode", "ctime_ns", "head_sha256", "transfer_syntax",
                "is_implicit_vr", "is_little_endian", "dataset_offset", "pixel_data_offset",
                "pixel_data_length"]
# Changes the writer makes to the encoding, not to a value: checked on the element's VR.
VR_CHANGES = {"un_to_known_vr", "vr_too_long_for_explicit_length"}
REMOVED = "drop_group_length"
# Identifying attributes: the output's value must be the plan's (output_<column>).
IDENTITY = {"sop_instance_uid": "SOPInstanceUID", "study_instance_uid": "StudyInstanceUID",
            "series_instance_uid": "SeriesInstanceUID", "patient_id": "PatientID"}


class _Unavailable(Exception):
    """The source cannot be read for the pixel data comparison: ``code`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# A row's source, opened only when the comparison is made: a context manager of its stream.
Opener = Callable[[], contextlib.AbstractContextManager[BinaryIO]]


class _Found:
    """What verifying one object found: the verify row, built up check by check."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.row = {"object_id": row["object_id"], "locator": row["locator"],
                    "output_path": row["output_path"], "verify_status": "ok", "problems": [],
                    "pixel_compared": False, "output_size": None, "output_sha256": None,
                    "pixel_sha256": None}

    def fail(self, code: str, message: str) -> None:
        self.row["problems"].append({"code": code, "message": message, "severity": "blocking"})
        self.row["verify_status"] = "failed"


def verify_rows(rows: list[dict[str, Any]], out: Path) -> list[dict[str, Any]]:
    """Verify result rows of file sources (each source opened by path, only to compare)."""
    return [verify_object(row, out, _file_opener(row)) for row in rows]


def _file_opener(row: dict[str, Any]) -> Opener:
    def opened() -> contextlib.AbstractContextManager[BinaryIO]:
        try:
            return open_source(row)[0]  # type: ignore[return-value]
        except WriteError as exc:
            raise _Unavailable(exc.reason, str(exc)) from None
        except OSError as exc:
            raise _Unavailable("unreadable_source", f"{type(exc).__name__}: {exc}") from None
    return opened


def verify_members(paths: list[str], rows: Iterable[dict[str, Any]], out: Path
                   ) -> Iterator[dict[str, Any]]:
    """Verify the result rows of one archive's members (given in member order). The archive is
    read only as far as the last member whose pixel data is compared, in one front-to-back
    pass (another pass only if a row comes out of order)."""
    members = _Members(paths)
    try:
        for row in rows:
            if not row.get(COMPARE):
                yield verify_object(row, out, None)
                continue
            member, why = members.at(row["member_offset"])
            yield verify_object(row, out, _member_opener(row, member, why))
    finally:
        members.close()


class _Members:
    """Steps through an archive's entries to the offsets asked for, in order."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths
        self.entries: Iterator[Member] | None = None
        self.current: Member | None = None
        self.broken: str | None = None
        self.last = -1  # the offset asked for last

    def at(self, offset: int) -> tuple[Member | None, str]:
        if self.entries is None or offset < self.last:  # a row out of order: a new pass
            self.close()
            self.entries, self.current, self.broken = iter_members(self.paths), None, None
        self.last = offset
        if self.broken:
            return None, self.broken
        try:
            while self.current is None or self.current.offset < offset \
                    or self.current.damages_previous:
                self.current = next(self.entries, None)
                if self.current is None or self.current.offset > offset:
                    break
        except STREAM_ERRORS as exc:
            self.broken = f"the archive could not be read to this member: {exc}"
            return None, self.broken
        if self.current is None or self.current.offset != offset:
            return None, "the member is no longer in the archive: run inventory and plan again"
        return self.current, ""

    def close(self) -> None:
        if self.entries is not None:
            self.entries.close()  # type: ignore[attr-defined]


def _member_opener(row: dict[str, Any], member: Member | None, why: str) -> Opener:
    def opened() -> contextlib.AbstractContextManager[BinaryIO]:
        if member is None:
            raise _Unavailable("source_changed", why)
        if member.stream is None:
            raise _Unavailable("unreadable_source", f"the member can no longer be read "
                               f"({member.problem}: {member.message})")
        if member.name != row["member"] or member.size != row["size"]:
            raise _Unavailable("source_changed", f"member at byte {member.offset} is not the "
                               "one the inventory saw: run inventory and plan again")
        return contextlib.nullcontext(member.stream)
    return opened


def verify_object(row: dict[str, Any], out: Path, source: Opener | None) -> dict[str, Any]:
    """The verify row of one migrated object: the checks of the module docstring, each failed
    one a problem; the pixel data compared when ``row[COMPARE]`` (``source`` opens the
    source)."""
    found = _Found(row)
    try:
        path = resolve_inside(out, row["output_path"])
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (ValueError, OSError) as exc:
        found.fail("output_missing", _missing(exc, row["output_path"]))
        return found.row
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            found.fail("output_missing", f"{row['output_path']} is not a regular file")
            return found.row
        _check_bytes(f, row, found)
        f.seek(0)
        try:
            ds = dcmread(f, stop_before_pixels=True)
            if not len(ds) or not ds.file_meta:  # pydicom can return a partial dataset
                raise ValueError("pydicom read no dataset or no file meta")
        except Exception as exc:  # noqa: BLE001 - whatever pydicom makes of it, it is a finding
            found.fail("output_not_part10", f"{type(exc).__name__}: {exc}")
            return found.row
        pixel_at = f.tell()  # pydicom stopped before the Pixel Data element's header
        _check_changes(ds, row, found)  # first: on raw elements, before any is converted
        _check_identity(ds, row, found)
        if row.get(COMPARE):
            _compare_pixels(f, pixel_at, ds, row, source, found)
    return found.row


def _missing(exc: Exception, output_path: str) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"no file at {output_path}"
    if isinstance(exc, OSError) and exc.errno == errno.ELOOP:
        return f"{output_path} is a symbolic link: not followed"
    return f"{output_path} cannot be opened: {exc}"


def _check_bytes(f: BinaryIO, row: dict[str, Any], found: _Found) -> None:
    digest = hashlib.file_digest(f, "sha256").hexdigest()  # type: ignore[arg-type]
    size = f.tell()
    found.row.update(output_size=size, output_sha256=digest)
    if size != row["output_size"]:
        found.fail("output_size_mismatch", f"{size} bytes, the result records "
                                           f"{row['output_size']}")
    if digest != row["output_sha256"]:
        found.fail("output_sha256_mismatch", f"sha256 {digest}, the result records "
                                             f"{row['output_sha256']}")


def _text(ds: Dataset, keyword: str) -> str | None:
    """An attribute's value as text (multiple values joined by backslashes), None when it is
    absent or empty; ``(UN)`` when it is encoded as UN (which pydicom would hide)."""
    raw = ds.get_item(keyword)
    if raw is None:
        return None
    if raw.VR == "UN":
        return "(UN)"
    value = ds[keyword].value
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    return "\\".join(str(v) for v in value) if not isinstance(value, bytes) else repr(value)


def _check_identity(ds: Dataset, row: dict[str, Any], found: _Found) -> None:
    """File meta against the dataset and the plan; the identifying attributes against the
    plan's output values."""
    meta = ds.file_meta
    sop_class, sop_instance = _text(ds, "SOPClassUID"), _text(ds, "SOPInstanceUID")
    wrong = [f"{name} {got!r} != {want_name} {want!r}" for name, got, want_name, want in (
        ("MediaStorageSOPClassUID", _text(meta, "MediaStorageSOPClassUID"), "SOPClassUID",
         sop_class),
        ("MediaStorageSOPInstanceUID", _text(meta, "MediaStorageSOPInstanceUID"),
         "SOPInstanceUID", sop_instance),
        ("TransferSyntaxUID", _text(meta, "TransferSyntaxUID"), "the plan's",
         row["output_transfer_syntax"])) if got != want]
    if wrong:
        found.fail("file_meta_mismatch", "; ".join(wrong))
    expected = {"SOPClassUID": row["sop_class_uid"],
                **{keyword: row[f"output_{column}"] or row[column]
                   for column, keyword in IDENTITY.items()}}
    got = {"SOPClassUID": sop_class, "SOPInstanceUID": sop_instance,
           **{k: _text(ds, k) for k in ("StudyInstanceUID", "SeriesInstanceUID", "PatientID")}}
    wrong = [f"{k} {got[k]!r}, the plan's {v!r}" for k, v in expected.items() if got[k] != v]
    if wrong:
        found.fail("output_uid_mismatch", "; ".join(wrong))


_STEP = re.compile(r"\(([0-9A-Fa-f]{4}),([0-9A-Fa-f]{4})\)(?:\[(\d+)\])?")


def _element(ds: Dataset, path: str) -> Any:
    """The element at a tag path (``(0040,A375)[0].(0020,000D)``), raw where pydicom has not
    converted it; None when it (or a sequence item on the way) is absent."""
    steps = [(int(g + e, 16), int(i) if i else None) for g, e, i in _STEP.findall(path)]
    current = ds
    for tag, index in steps[:-1]:
        if tag not in current or index is None:
            return None
        items = current[tag].value
        if not isinstance(items, Sequence) or index >= len(items):
            return None
        current = items[index]
    return current.get_item(steps[-1][0])


def _check_changes(ds: Dataset, row: dict[str, Any], found: _Found) -> None:
    """Every ``changes`` entry holds in the output (see the module docstring)."""
    changes = row.get("changes") or []
    if not changes:
        return
    valued = [c for c in changes if c["rule"] not in VR_CHANGES and c["rule"] != REMOVED]
    wrong = []
    try:
        edits = edits_for({**row, "changes": valued})
    except WriteError as exc:
        wrong.append(f"the planned values cannot be encoded: {exc}")
        edits = {}
    for change in changes:
        path, rule = change["tag"], change["rule"]
        try:
            element = _element(ds, path)
        except Exception as exc:  # noqa: BLE001 - a sequence pydicom cannot parse
            wrong.append(f"{path} cannot be read: {type(exc).__name__}: {exc}")
            continue
        if rule == REMOVED or (rule not in VR_CHANGES and edits.get(path, ("", b""))[1] is None):
            if element is not None:
                wrong.append(f"{path} {change['keyword']} is still there ({rule})")
        elif element is None:
            wrong.append(f"{path} {change['keyword']} is absent, the plan sets {change['new']!r}")
        elif rule in VR_CHANGES:
            if element.VR != change["new"]:
                wrong.append(f"{path} {change['keyword']} has VR {element.VR}, not "
                             f"{change['new']} ({rule})")
        elif path in edits and _raw_value(element) != edits[path][1]:
            wrong.append(f"{path} {change['keyword']} is {_raw_value(element)!r}, the plan "
                         f"sets {change['new']!r} ({rule})")
    if wrong:
        found.fail("output_change_missing", "; ".join(wrong))


def _raw_value(element: Any) -> bytes:
    value = element.value
    if value is None:  # an empty element, as pydicom reads it
        return b""
    return bytes(value) if isinstance(value, bytes | bytearray) else \
        str(value).encode("utf-8", "replace")


class _Digest:
    """A sink that keeps only the SHA-256 and the length of what it is given (but for its
    first ``skip`` writes: the element header :func:`copy_pixel_data` writes first)."""

    def __init__(self, skip: int = 0) -> None:
        self.sha256, self.size, self.skip = hashlib.sha256(), 0, skip

    def write(self, data: bytes | memoryview) -> None:
        if self.skip:
            self.skip -= 1
            return
        self.sha256.update(data)
        self.size += len(data)


def _compare_pixels(f: BinaryIO, pixel_at: int, ds: Dataset, row: dict[str, Any],
                    source: Opener | None, found: _Found) -> None:
    """The Pixel Data element of the output against the source's, as the writer writes it."""
    if source is None:
        return
    try:
        with source() as src:
            expected = _source_pixels(src, row, ds.get("BitsAllocated"))
    except _Unavailable as exc:
        found.fail(exc.code, f"pixel data not compared: {exc}")
        return
    except (WriteError, *STREAM_ERRORS) as exc:
        code = exc.reason if isinstance(exc, WriteError) and exc.reason == "source_changed" \
            else "unreadable_source"
        found.fail(code, f"pixel data not compared: {type(exc).__name__}: {exc}")
        return
    except Exception as exc:  # noqa: BLE001 - a source the reader cannot parse any more
        found.fail("unreadable_source", f"pixel data not compared: {type(exc).__name__}: {exc}")
        return
    found.row["pixel_compared"] = True
    f.seek(pixel_at)
    head = f.read(12).ljust(12, b"\0")
    group, element, vr = struct.unpack_from("<HH2s", head)
    if group << 16 | element not in PIXEL_DATA_TAGS:
        if expected is not None:
            found.fail("pixel_data_differs", f"the output has no Pixel Data (at byte "
                                             f"{pixel_at}), the source has")
        return
    if expected is None:
        found.fail("pixel_data_differs", "the output has pixel data, the source has none")
        return
    long = vr.decode("latin-1") in VR_LENGTH_32
    length = struct.unpack_from("<I" if long else "<H", head, 8 if long else 6)[0]
    f.seek(pixel_at + (12 if long else 8))
    got, left = _Digest(), expected.size if length == UNDEFINED else length
    while left and (chunk := f.read(min(CHUNK, left))):
        got.write(chunk)
        left -= len(chunk)
    found.row["pixel_sha256"] = got.sha256.hexdigest()
    if got.size != expected.size or got.sha256.digest() != expected.sha256.digest():
        found.fail("pixel_data_differs", f"the Pixel Data value at byte {pixel_at}: sha256 "
                   f"{got.sha256.hexdigest()} of {got.size} bytes; the source's as written: "
                   f"sha256 {expected.sha256.hexdigest()} of {expected.size} bytes")


def _source_pixels(src: BinaryIO, row: dict[str, Any], bits: int | None) -> _Digest | None:
    """The hash of the source's Pixel Data value as the writer writes it, None without one.
    A deflated source is inflated (as the writer does) and the element located by the reader."""
    if row["transfer_syntax"] == DeflatedExplicitVRLittleEndian:
        src.seek(row["dataset_offset"])
        data = zlib.decompress(src.read(), -zlib.MAX_WBITS)
        header = read_header(io.BytesIO(data), len(data))
        if header.pixel_data_offset is None:
            return None
        src = io.BytesIO(data)
        row = {**row, "pixel_data_offset": header.pixel_data_offset,
               "pixel_data_length": header.pixel_data_length, "is_little_endian": True,
               "is_implicit_vr": False}
    elif row["pixel_data_offset"] is None:
        return None
    sink = _Digest(skip=1)  # the value only
    copy_pixel_data(src, row, bits, sink)
    return sink


# --- strays: files below the output root that are no recorded output ---------------------

STRAYS = pa.schema([("path", pa.string()), ("size", pa.int64()), ("kind", pa.string())])


def walk_outputs(out: Path, skip: Path | None = None) -> Iterator[tuple[str, int]]:
    """``(path relative to out, size)`` of every entry below ``out`` that is not a folder
    (links are entries, never followed), in a fixed order; ``skip`` (a folder below ``out``,
    such as the manifests) is not entered. A name that is not valid UTF-8 is given with
    ``\\xNN`` escapes, as locators are."""
    stack = [str(out)]
    root = len(str(out)) + 1
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if skip is None or entry.path != str(skip):
                    stack.append(entry.path)
                continue
            try:
                size = entry.stat(follow_symlinks=False).st_size
            except OSError:
                size = 0
            yield entry.path[root:].encode("utf-8", "surrogateescape").decode(
                "utf-8", "backslashreplace"), size


def stray_kind(path: str) -> str:
    """``temporary`` for a file the writer names while writing (``.<name>.migrate-fs.tmp``),
    ``foreign`` for anything else."""
    name = path.rsplit("/", 1)[-1]
    return "temporary" if name.startswith(".") and name.endswith(TEMPORARY_SUFFIX) \
        else "foreign"


def find_strays(out: Path, recorded: Callable[[], Iterable[list[str]]], *, buckets: int = 1,
                work: Path | None = None, skip: Path | None = None
                ) -> Iterator[dict[str, Any]]:
    """Every entry below ``out`` that is not among the ``recorded`` output paths (given in
    chunks), as STRAYS rows; the tree is walked once. With ``buckets`` > 1 neither side is
    held whole: both are spilled to that many hash buckets below ``work`` (a folder this
    function owns), and compared bucket by bucket."""
    if buckets <= 1:
        known: set[str] = set()
        for chunk in recorded():
            known.update(chunk)
        for path, size in walk_outputs(out, skip):
            if path not in known:
                yield {"path": path, "size": size, "kind": stray_kind(path)}
        return
    assert work is not None
    found, listed = _Spill(work / "found", buckets), _Spill(work / "recorded", buckets)
    for path, size in walk_outputs(out, skip):
        found.add(path, size)
    for chunk in recorded():
        for path in chunk:
            listed.add(path, 0)
    found.flush()
    listed.flush()
    for bucket in range(buckets):
        known = set(listed.read(bucket).column("path").to_pylist())
        table = found.read(bucket)
        for path, size in zip(table.column("path").to_pylist(),
                              table.column("size").to_pylist(), strict=True):
            if path not in known:
                yield {"path": path, "size": size, "kind": stray_kind(path)}


class _Spill:
    """Paths (and sizes) written to hash buckets on disk, a buffer at a time."""

    SCHEMA = pa.schema([("path", pa.string()), ("size", pa.int64())])
    BUFFER = 100_000

    def __init__(self, folder: Path, buckets: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.buckets = folder, buckets
        self.pending: list[tuple[list[str], list[int]]] = [([], []) for _ in range(buckets)]
        self.held, self.files = 0, 0

    def add(self, path: str, size: int) -> None:
        paths, sizes = self.pending[zlib.crc32(path.encode()) % self.buckets]
        paths.append(path)
        sizes.append(size)
        self.held += 1
        if self.held >= self.BUFFER:
            self.flush()

    def flush(self) -> None:
        for bucket, (paths, sizes) in enumerate(self.pending):
            if paths:
                pq.write_table(pa.table([paths, sizes], schema=self.SCHEMA),
                               self.folder / f"{bucket}-{self.files}.parquet")
        self.pending = [([], []) for _ in range(self.buckets)]
        self.held, self.files = 0, self.files + 1

    def read(self, bucket: int) -> pa.Table:
        parts = [pq.read_table(p) for p in sorted(self.folder.glob(f"{bucket}-*.parquet"))]
        return pa.concat_tables(parts) if parts else self.SCHEMA.empty_table()
