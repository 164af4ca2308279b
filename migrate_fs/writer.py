"""writer: execute one planned object, writing a Part 10 file.

The output is preamble + regenerated file meta + the source dataset. An explicit VR little
endian source (which includes every encapsulated transfer syntax) is copied byte for byte after
its file meta: a splice, no element is decoded; unless the plan changes its header or it has
standard elements encoded as UN (problem ``standard_element_as_un``: they are written with
their dictionary VR), and then its header is re-encoded. Implicit VR and big endian sources go
through :mod:`migrate_fs.transcode`; their pixel data value is copied in chunks, byte-swapped
for big endian. Deflated sources are inflated as a stream. Bytes go to an unnamed file in the
target folder (a temporary file where the file system has none: :class:`_Output`), hashed as
they are written, and the file is linked into place only when complete, never over an existing
file. The source is read once: its first bytes both prove it is the file the inventory saw and
start the splice.
"""

from __future__ import annotations

import contextlib
import ctypes
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
from migrate_fs.sources import file_identity, head_digest
from migrate_fs.transcode import (
    CHUNK,
    WriteError,
    copy_range,
    edits_for,
    encode_element_header,
    read_first,
    transcode,
    transcode_buffer,
    writes_known_vrs,
)

OUT_BUFFER = 64 << 10  # small: a large buffer costs an mmap per file; big chunks bypass it
FILE_MODE = 0o666  # of a new output file: the umask decides, as for any new file
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


def _meta_element(element: int, vr: str, value: bytes) -> bytes:
    return encode_element_header(0x00020000 | element, vr, len(value)) + value


_META_VERSION = _meta_element(0x0001, "OB", b"\x00\x01")
_META_IMPLEMENTATION = _meta_element(0x0012, "UI", _uid(ImplementationClassUID)) + _meta_element(
    0x0013, "SH", ImplementationVersionName.encode("ascii")
    + b" " * (len(ImplementationVersionName) % 2))
_UI_HEADER = struct.Struct("<HH2sH")  # an explicit VR little endian header of a short value


def file_meta(sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str) -> bytes:
    """Preamble, 'DICM' and a file meta group for the given dataset identifiers (the constant
    elements encoded once per process)."""
    parts = [_META_VERSION]
    for element, value in ((0x0002, sop_class_uid), (0x0003, sop_instance_uid),
                           (0x0010, transfer_syntax)):
        data = _uid(value)
        parts += (_UI_HEADER.pack(0x0002, element, b"UI", len(data)), data)
    parts.append(_META_IMPLEMENTATION)
    body = b"".join(parts)
    return PREAMBLE + _UI_HEADER.pack(0x0002, 0x0000, b"UL", 4) + struct.pack("<I", len(body)) \
        + body


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
                           {"code": row["reason"], "message": row["result_message"],
                            "severity": "blocking"}]
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
        first: memoryview | None = None
        if source is None:
            opened, first = open_source(row)
        else:
            opened = contextlib.nullcontext(source)  # type: ignore[assignment]
        with opened as src:
            out = _Output(folder, name, str(out_root), folder_path)
            try:
                with open(out.fd, "wb", buffering=OUT_BUFFER, closefd=False) as f:
                    sink = _HashingWriter(f)
                    sink.write(file_meta(row["sop_class_uid"],
                                         row.get("output_sop_instance_uid")
                                         or row["sop_instance_uid"],
                                         row["output_transfer_syntax"]))
                    changes += _copy_dataset(src, row, sink, first)
                if fsync:
                    os.fsync(out.fd)
                status, message = out.place(sink.sha256.hexdigest())
            finally:
                out.close()
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
    """The temporary file an output is written to before it is linked into place where the
    file system has no unnamed files (see :class:`_Output`): one name per output (a resumed
    write reuses it, truncating what a killed one left), hidden, and with a suffix nothing else
    uses, so that a sweep removes only migrate-fs's own files."""
    return f".{name}{TEMPORARY_SUFFIX}"


_AT_FDCWD, _AT_EMPTY_PATH = -100, 0x1000
# The ways this process may still name an unnamed output file, in order: "empty_path"
# (linkat AT_EMPTY_PATH, which needs CAP_DAC_READ_SEARCH) and "proc" (a link to
# /proc/self/fd/N). A way that fails is dropped (_Output._link_unnamed); empty: no unnamed
# files (the file system has none, or no way works), a named temporary file instead.
_naming: list[str] = ["empty_path", "proc"]


class _Output:
    """The file an output is written to, and how it gets its name once complete.

    Where the file system has unnamed files (``O_TMPFILE``: ext4, XFS, Btrfs, tmpfs) the output
    is one: it has no name until :meth:`place` links it, so an interrupted write leaves nothing
    behind, and creating it costs no directory entry to add and remove (measured with
    ``scripts/bench_create.py``). Elsewhere it is the temporary file :func:`temporary_name`,
    linked into place and then removed. Neither way ever replaces an existing file.
    """

    def __init__(self, folder: str, name: str, out_root: str, folder_path: str) -> None:
        self.folder, self.target = folder, f"{folder}/{name}"
        self.tmp: str | None = None  # the temporary file's path, where there is one
        try:
            self.fd = self._open(folder, name)
        except FileNotFoundError:  # the folder was removed since it was made (a cleanup)
            _output_folder.cache_clear()
            self.folder = folder = _output_folder(out_root, folder_path)
            self.fd = self._open(folder, name)

    def _open(self, folder: str, name: str) -> int:
        if _naming:
            try:
                return os.open(folder, os.O_RDWR | os.O_TMPFILE | os.O_CLOEXEC, FILE_MODE)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                    raise
                _naming.clear()  # this file system has no unnamed files
        self.tmp = f"{folder}/{temporary_name(name)}"
        return os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                       | os.O_CLOEXEC, FILE_MODE)

    def place(self, sha256: str) -> tuple[str, str | None]:
        """Give the complete file its name; ``already_present`` if an identical file has it,
        :class:`WriteError` ``output_exists_different`` if another file does."""
        try:
            if self.tmp is None:
                self._link_unnamed()
            else:
                _link_named(self.tmp, self.target)
            return "written", None
        except FileExistsError:
            if _sha256(self.target) == sha256:
                return "already_present", "an identical file was already at the output path"
            raise WriteError("output_exists_different",
                             f"{self.target} exists with different content; not "
                             "overwritten") from None

    def _link_unnamed(self) -> None:
        """Link the unnamed file to the target, the first way of :data:`_naming` that works
        (a way that fails for want of a privilege or of /proc is not tried again); where none
        does, its bytes go to a named temporary file that is linked instead."""
        target = self.target.encode()
        while _naming:
            try:
                if _naming[0] == "empty_path":
                    if _libc().linkat(self.fd, b"", _AT_FDCWD, target, _AT_EMPTY_PATH) != 0:
                        code = ctypes.get_errno()
                        raise OSError(code, os.strerror(code), self.target)
                else:
                    os.link(f"/proc/self/fd/{self.fd}", self.target, follow_symlinks=True)
                return
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.EPERM, errno.EXDEV, errno.EACCES,
                                     errno.EINVAL, errno.ENOSYS) or not os.path.isdir(self.folder):
                    raise
                _naming.pop(0)
        self._name_by_copy()

    def _name_by_copy(self) -> None:
        """No way to name an unnamed file: copy it to a named temporary file, link that."""
        folder, _, name = self.target.rpartition("/")
        self.tmp = tmp = f"{folder}/{temporary_name(name)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                     | os.O_CLOEXEC, FILE_MODE)
        try:
            offset = 0
            while chunk := os.pread(self.fd, CHUNK, offset):
                offset += len(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        _link_named(tmp, self.target)

    def close(self) -> None:
        os.close(self.fd)
        if self.tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _link_named(tmp: str, target: str) -> None:
    """Link a complete temporary file into place; never replace an existing file."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise
    except OSError:  # file systems without hard links: check, then rename
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "exists", target) from None
        os.rename(tmp, target)


def open_source(row: dict[str, Any]) -> tuple[BinaryIO, memoryview]:
    """Open the inventoried file, never through a symbolic link, and check that it is the
    same file: device, inode, size, mtime and ctime as the inventory saw them, and the same
    first bytes. Otherwise ``source_changed``: run inventory and plan again.

    Returns the file, positioned after its first bytes, and those bytes (up to CHUNK, in the
    worker's buffer, valid until its next use): the one read that both checks the file and
    starts the copy."""
    try:
        fd = os.open(row["locator"], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise WriteError("source_changed", "the source is now a symbolic link; it is not "
                             "followed: run inventory and plan again") from None
        raise
    src = os.fdopen(fd, "rb", buffering=0)
    try:
        _same_file(os.fstat(fd), row)
        first = read_first(src)
        expected = row.get("head_sha256")
        if expected is not None and head_digest(first) != expected:
            raise WriteError("source_changed", "the source's first bytes differ from what the "
                             "inventory read: run inventory and plan again")
    except BaseException:
        src.close()
        raise
    return src, first  # type: ignore[return-value]


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
def _output_folder(out_root: str, folder_path: str) -> str:
    """The output folder for a planned path, checked to be inside the root and created once
    per worker (a cache: the hot path makes no per-object mkdir or realpath calls)."""
    try:
        folder = resolve_inside(Path(out_root), folder_path) if folder_path else Path(out_root)
    except ValueError as exc:
        raise WriteError("unsafe_path", str(exc)) from None
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)


def _result(status: str, *, size: int | None = None, sha256: str | None = None,
            message: str | None = None, reason: str | None = None,
            changes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    result = {"status": status, "output_size": size, "output_sha256": sha256,
              "result_message": message, "changes": changes or []}
    if reason:
        result["reason"] = reason
    return result


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _copy_dataset(src: BinaryIO, row: dict[str, Any], sink: _HashingWriter,
                  first: memoryview | None = None) -> list[dict[str, Any]]:
    """Write the dataset in explicit VR little endian; return the changes this made.

    Without header changes an explicit VR little endian dataset is spliced and a deflated one
    inflated as a stream; with changes, standard elements encoded as UN (or another encoding)
    the header is re-encoded element by element and the pixel data value copied.
    """
    edits, known_vrs = edits_for(row), writes_known_vrs(row)
    offset = row["dataset_offset"]
    deflated = row["transfer_syntax"] == DeflatedExplicitVRLittleEndian
    splice = not deflated and not row["is_implicit_vr"] and row["is_little_endian"] \
        and not edits and not known_vrs
    if splice and first is not None and offset < len(first):
        sink.write(first[offset:])  # from the bytes the source check read: no second read
        copy_range(src, sink, None)
        return []
    src.seek(offset)
    if deflated:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        if edits or known_vrs:  # deflated datasets are small: inflate, then re-encode
            data = inflater.decompress(src.read()) + inflater.flush()
            return transcode_buffer(data, False, True, edits, sink, known_vrs)
        while chunk := src.read(CHUNK):
            sink.write(inflater.decompress(chunk))
        sink.write(inflater.flush())
        return []
    if splice:
        copy_range(src, sink, None)
        return []
    return transcode(src, row, sink, edits)


