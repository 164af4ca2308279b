"""writer: execute one planned object, writing a Part 10 file.

The output is preamble + regenerated file meta + the source dataset. An explicit VR little
endian source (which includes every encapsulated transfer syntax) is copied byte for byte after
its file meta: a splice, no element is decoded; unless the plan changes its header or it has
standard elements encoded as UN (problem ``standard_element_as_un``: they are written with
their dictionary VR), and then its header is re-encoded. Implicit VR and big endian sources go
through :mod:`migrate_fs.transcode`; their pixel data value is copied in chunks, byte-swapped
for big endian. Deflated sources are inflated as a stream. Bytes go to a temporary file in the
target folder, hashed as they are written, and the file is linked into place only when
complete, never over an existing file.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import stat
import struct
import uuid
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from pydicom.uid import DeflatedExplicitVRLittleEndian

from migrate_fs import __version__
from migrate_fs.archives import STREAM_ERRORS, iter_members
from migrate_fs.paths import resolve_inside
from migrate_fs.sources import HEAD_BYTES, file_identity, head_digest
from migrate_fs.transcode import (
    CHUNK,
    WriteError,
    copy_range,
    edits_for,
    encode_element_header,
    transcode,
    transcode_buffer,
    writes_known_vrs,
)

OUT_BUFFER = 64 << 10  # small: a large buffer costs an mmap per file; big chunks bypass it
PREAMBLE = bytes(128) + b"DICM"
ImplementationClassUID = "2.25." + str(
    uuid.uuid5(uuid.NAMESPACE_URL, "migrate-fs:implementation").int)
ImplementationVersionName = f"MIGRATEFS_{__version__}"[:16]


class _HashingWriter:
    """Writes to a file while computing the SHA-256 and size of what was written."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.sha256, self.size = f, hashlib.sha256(), 0

    def write(self, data: bytes | memoryview) -> None:
        self.f.write(data)
        self.sha256.update(data)
        self.size += len(data)


def _uid(value: str) -> bytes:
    data = value.encode("ascii", "replace")
    return data + b"\x00" * (len(data) % 2)


def file_meta(sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str) -> bytes:
    """Preamble, 'DICM' and a file meta group for the given dataset identifiers."""
    version = ImplementationVersionName.encode("ascii")
    elements = [(0x0001, "OB", b"\x00\x01"), (0x0002, "UI", _uid(sop_class_uid)),
                (0x0003, "UI", _uid(sop_instance_uid)), (0x0010, "UI", _uid(transfer_syntax)),
                (0x0012, "UI", _uid(ImplementationClassUID)),
                (0x0013, "SH", version + b" " * (len(version) % 2))]
    body = b"".join(encode_element_header(0x00020000 | e, vr, len(v)) + v for e, vr, v in elements)
    length = encode_element_header(0x00020000, "UL", 4) + struct.pack("<I", len(body))
    return PREAMBLE + length + body


def execute(row: dict[str, Any], out_root: Path, *, fsync: bool = False,
            source: BinaryIO | None = None) -> dict[str, Any]:
    """Carry out one plan row; return it with the result columns filled in."""
    if row["action"] != "migrate":
        row.update(status="not_written", output_size=None, output_sha256=None,
                   result_message=None)
        return row
    row.update(write_object(row, out_root, fsync=fsync, source=source))
    if row["status"] == "failed":
        row["problems"] = [*(row["problems"] or []),
                           {"code": row["reason"], "message": row["result_message"]}]
    return row


def execute_members(paths: list[str], rows: Iterable[dict[str, Any]], out_root: Path, *,
                    fsync: bool = False) -> Iterator[dict[str, Any]]:
    """Carry out the plan rows of one archive (given in member order) in a single front-to-back
    pass over it, stepping through rows and members together: no row is held longer than its
    member takes."""
    pending = iter(rows)
    row = next(pending, None)
    try:
        for member in iter_members(paths):
            while row is not None and row["member_offset"] < member.offset:
                yield _missing(row, out_root, "the member is no longer in the archive: run "
                                              "inventory and plan again")
                row = next(pending, None)
            if row is None:
                break
            if row["member_offset"] != member.offset or member.damages_previous:
                continue
            current, row = row, next(pending, None)
            if current["action"] == "migrate" and (
                    member.stream is None or member.name != current["member"]
                    or member.size != current["size"]):
                current.update(_result("failed", reason="source_changed",
                                       message=f"member at byte {member.offset} is not the one "
                                               "the inventory saw: run inventory and plan again"))
                yield current
                continue
            yield execute(current, out_root, fsync=fsync, source=member.stream)
    except STREAM_ERRORS as exc:
        message = f"the archive could not be read to this member: {exc}"
    else:
        message = "the member is no longer in the archive: run inventory and plan again"
    while row is not None:
        yield _missing(row, out_root, message)
        row = next(pending, None)


def _missing(row: dict[str, Any], out_root: Path, message: str) -> dict[str, Any]:
    """The result of a planned row whose member could not be reached."""
    if row["action"] == "migrate":
        row.update(_result("failed", reason="source_changed", message=message))
        return row
    return execute(row, out_root)


def write_object(row: dict[str, Any], out_root: Path, *, fsync: bool = False,
                 source: BinaryIO | None = None) -> dict[str, Any]:
    """Migrate one planned object; return its result columns (status, size, hash, changes).

    ``source`` is the object's stream when it is an archive member; a file is opened by path.
    """
    changes = list(row.get("changes") or [])
    try:
        folder_path, _, name = row["output_path"].rpartition("/")
        if not name or name in (".", "..") or "\\" in name or "\x00" in name:
            raise WriteError("unsafe_path", f"output file name {name!r} is not a plain name")
        folder = _output_folder(str(out_root), folder_path)
        target = folder / name
        tmp = folder / temporary_name(name)
        try:
            if not folder.is_dir():  # removed since it was cached (a new run, a cleanup)
                _output_folder.cache_clear()
                folder = _output_folder(str(out_root), folder_path)
            opened = open_source(row) if source is None else contextlib.nullcontext(source)
            with opened as src, open(tmp, "wb", buffering=OUT_BUFFER) as out:
                sink = _HashingWriter(out)
                sink.write(file_meta(row["sop_class_uid"],
                                     row.get("output_sop_instance_uid") or row["sop_instance_uid"],
                                     row["output_transfer_syntax"]))
                changes += _copy_dataset(src, row, sink)
                if fsync:
                    out.flush()
                    os.fsync(out.fileno())
            status, message = _place(tmp, target, sink.sha256.hexdigest())
        finally:
            tmp.unlink(missing_ok=True)
    except WriteError as exc:
        return _result("failed", message=str(exc), reason=exc.reason, changes=changes)
    except OSError as exc:
        return _result("failed", message=f"{type(exc).__name__}: {exc}", reason="write_failed",
                       changes=changes)
    except Exception as exc:  # noqa: BLE001 - a header pydicom cannot re-read: the run goes on
        return _result("failed", message=f"{type(exc).__name__}: {exc}",
                       reason="unreadable_header", changes=changes)
    return _result(status, size=sink.size, sha256=sink.sha256.hexdigest(), message=message,
                   changes=changes)


TEMPORARY_SUFFIX = ".migrate-fs.tmp"


def temporary_name(name: str) -> str:
    """The temporary file an output is written to before it is linked into place: one name
    per output (a resumed write reuses it, truncating what a killed one left), hidden, and
    with a suffix nothing else uses, so that a sweep removes only migrate-fs's own files."""
    return f".{name}{TEMPORARY_SUFFIX}"


def open_source(row: dict[str, Any]) -> BinaryIO:
    """Open the inventoried file, never through a symbolic link, and check that it is the
    same file: device, inode, size, mtime and ctime as the inventory saw them, and the same
    first bytes. Otherwise ``source_changed``: run inventory and plan again."""
    try:
        fd = os.open(row["locator"], os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise WriteError("source_changed", "the source is now a symbolic link; it is not "
                             "followed: run inventory and plan again") from None
        raise
    src = os.fdopen(fd, "rb", buffering=0)
    try:
        _same_file(os.fstat(fd), row)
        expected = row.get("head_sha256")
        if expected is not None and head_digest(os.pread(fd, HEAD_BYTES, 0)) != expected:
            raise WriteError("source_changed", "the source's first bytes differ from what the "
                             "inventory read: run inventory and plan again")
    except BaseException:
        src.close()
        raise
    return src  # type: ignore[return-value]


def _same_file(st: os.stat_result, row: dict[str, Any]) -> None:
    device, inode = file_identity(st)
    seen = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "device": device, "inode": inode,
            "ctime_ns": st.st_ctime_ns}
    changed = [f"{k} {row[k]} -> {v}" for k, v in seen.items()
               if row.get(k) is not None and row[k] != v]
    if changed or not stat.S_ISREG(st.st_mode):
        raise WriteError("source_changed", "the source is not the file the inventory saw ("
                         + (", ".join(changed) or "not a regular file")
                         + "): run inventory and plan again")


@functools.lru_cache(maxsize=8192)
def _output_folder(out_root: str, folder_path: str) -> Path:
    """The output folder for a planned path, checked to be inside the root and created once
    per worker (a cache: the hot path makes no per-object mkdir or realpath calls)."""
    try:
        folder = resolve_inside(Path(out_root), folder_path) if folder_path else Path(out_root)
    except ValueError as exc:
        raise WriteError("unsafe_path", str(exc)) from None
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _result(status: str, *, size: int | None = None, sha256: str | None = None,
            message: str | None = None, reason: str | None = None,
            changes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    result = {"status": status, "output_size": size, "output_sha256": sha256,
              "result_message": message, "changes": changes or []}
    if reason:
        result["reason"] = reason
    return result


def _place(tmp: Path, target: Path, sha256: str) -> tuple[str, str | None]:
    """Link the complete temporary file into place; never replace an existing file."""
    try:
        os.link(tmp, target)
        return "written", None
    except FileExistsError:
        if _sha256(target) == sha256:
            return "already_present", "an identical file was already at the output path"
        raise WriteError("output_exists_different",
                         f"{target} exists with different content; not overwritten") from None
    except OSError:  # file systems without hard links: check, then rename
        if target.exists():
            raise WriteError("output_exists_different",
                             f"{target} exists; not overwritten") from None
        os.rename(tmp, target)
        return "written", None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _copy_dataset(src: BinaryIO, row: dict[str, Any], sink: _HashingWriter) -> list[dict[str, Any]]:
    """Write the dataset in explicit VR little endian; return the changes this made.

    Without header changes an explicit VR little endian dataset is spliced and a deflated one
    inflated as a stream; with changes, standard elements encoded as UN (or another encoding)
    the header is re-encoded element by element and the pixel data value copied.
    """
    edits, known_vrs = edits_for(row), writes_known_vrs(row)
    src.seek(row["dataset_offset"])
    if row["transfer_syntax"] == DeflatedExplicitVRLittleEndian:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        if edits or known_vrs:  # deflated datasets are small: inflate, then re-encode
            data = inflater.decompress(src.read()) + inflater.flush()
            return transcode_buffer(data, False, True, edits, sink, known_vrs)
        while chunk := src.read(CHUNK):
            sink.write(inflater.decompress(chunk))
        sink.write(inflater.flush())
        return []
    if not row["is_implicit_vr"] and row["is_little_endian"] and not edits and not known_vrs:
        copy_range(src, sink, None)
        return []
    return transcode(src, row, sink, edits)


