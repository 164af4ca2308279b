"""inventory: one manifest row per source object, from its header alone.

``inventory_row`` opens an object, lets :mod:`migrate_fs.reader` identify and parse it and turns
the result into the inventory columns. Nothing here reads pixel data or writes outside the run's
manifest folder.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Iterator
from typing import Any, BinaryIO, cast

import pyarrow as pa
import pyarrow.compute as pc
from pydicom.uid import DeflatedExplicitVRLittleEndian

from migrate_fs.archives import (
    STREAM_ERRORS,
    TAR_MAGIC_OFFSET,
    Member,
    archive_kind,
    iter_members,
)
from migrate_fs.decode import DecodeOutcome, shared_guard
from migrate_fs.header import ATTRIBUTES, Header
from migrate_fs.problems import Problem
from migrate_fs.reader import read_header
from migrate_fs.sources import HEAD_BYTES, SourceObject, file_identity, head_digest, object_id

READ_BUFFER = 16 * 1024  # one read covers a typical header; pixel data is skipped by seeking
# Never through a link (a file swapped for one after the walk), never blocking (nor a FIFO).
OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)

ENTRY_KINDS = {"not_regular_file": "not_regular_file", "unreadable_source": "unreadable",
               "undecodable_path": "unreadable", "path_too_long": "unreadable"}


MAX_MEMBER_DECODE = 256 << 20  # an archive member is decode-checked from memory up to this size


def inventory_row(obj: SourceObject, decode_check: str = "none",
                  decoder_name: str | None = None) -> dict[str, Any]:
    """The inventory row of one source object; never raises for a bad object.

    ``decode_check`` (``first`` or ``all``) also decodes the pixel data, in the worker's
    decoder process (:mod:`migrate_fs.decode`), recording what went wrong as a problem.
    """
    row: dict[str, Any] = {"object_id": obj.object_id, "locator": obj.locator,
                           "source": obj.source, "size": obj.size, "mtime_ns": obj.mtime_ns,
                           "device": obj.device, "inode": obj.inode, "ctime_ns": obj.ctime_ns}
    if obj.entry_problem:
        row["kind"] = ENTRY_KINDS[obj.entry_problem]
        row["problems"] = [_problem(obj.entry_problem, obj.entry_message)]
        return row
    try:
        fd = os.open(obj.locator, OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            row["kind"] = "not_regular_file"
            row["problems"] = [_problem("not_regular_file", "replaced by a symbolic link after "
                                                            "the walk: not followed")]
        else:
            row["kind"] = "unreadable"
            row["problems"] = [_problem("unreadable_source", exc.strerror or str(exc))]
        return row
    try:
        changed = _not_walked(obj, os.fstat(fd))
    except OSError as exc:
        changed = "unreadable", [_problem("unreadable_source", exc.strerror or str(exc))]
    if changed:
        os.close(fd)
        row["kind"], row["problems"] = changed
        return row
    try:
        with cast(io.BufferedReader, os.fdopen(fd, "rb", buffering=READ_BUFFER)) as f:
            head = f.peek(HEAD_BYTES)  # the buffer's first fill, which the reader reads from
            if len(head) < min(obj.size, HEAD_BYTES):  # a short read (a network file system)
                head = os.pread(fd, HEAD_BYTES, 0)
            header = read_header(f, obj.size)
            archive = (header.kind == "not_dicom" and obj.size >= TAR_MAGIC_OFFSET + 5
                       and _is_archive(head, f))
    except OSError as exc:
        row["kind"] = "unreadable"
        row["problems"] = [_problem("unreadable_source", exc.strerror or str(exc))]
        return row
    row["head_sha256"] = head_digest(head)
    _header_columns(row, header)
    if archive:
        row["kind"] = "archive"
        row["problems"] = [archive_problem()]
    elif decode_check != "none" and _decodable(header):
        try:
            _decode_problem(row, shared_guard(decoder_name).check(decode_check, path=obj.locator))
        except OSError as exc:  # the file went away between the header read and the check
            row["problems"] = [*row["problems"],
                               _problem("unreadable_source", f"decode check: {exc}")]
    return row


def _not_walked(obj: SourceObject, st: os.stat_result
                ) -> tuple[str, list[dict[str, str]]] | None:
    """Kind and problems of an opened file that is not the one the walk found, else None."""
    if not stat.S_ISREG(st.st_mode):
        return "not_regular_file", [_problem("not_regular_file", "replaced by a folder or a "
                                                                 "special file after the walk: "
                                                                 "not read")]
    if obj.inode is not None and file_identity(st) != (obj.device, obj.inode):
        return "unreadable", [_problem(
            "source_changed", f"the path names another file (device {st.st_dev}, inode "
                              f"{st.st_ino}) than the walk found (device {obj.device}, inode "
                              f"{obj.inode}): not read; run inventory again")]
    if st.st_size != obj.size or st.st_mtime_ns != obj.mtime_ns:
        return "unreadable", [_problem(
            "source_changed", f"the file changed between the walk and the read (size "
                              f"{obj.size} -> {st.st_size}, mtime_ns {obj.mtime_ns} -> "
                              f"{st.st_mtime_ns}): not read; run inventory again")]
    return None


def _problem(code: str, message: str | None) -> dict[str, str]:
    """A problems entry, its code checked against the catalogue."""
    return Problem(code, message or "").as_row()


def _decodable(header: Header) -> bool:
    """An instance with pixel data and nothing that already stops it."""
    return header.kind in ("part10", "raw") and not header.problems_blocking() and (
        header.pixel_data_offset is not None
        or header.transfer_syntax == DeflatedExplicitVRLittleEndian)


def _decode_problem(row: dict[str, Any], outcome: DecodeOutcome) -> None:
    if outcome.code:
        row["problems"] = [*row["problems"], _problem(outcome.code, outcome.message)]


def _header_columns(row: dict[str, Any], header: Header) -> None:
    """Copy what the reader found into the row's columns."""
    row.update(
        kind=header.kind,
        has_preamble=header.has_preamble,
        has_file_meta=header.has_file_meta,
        transfer_syntax=header.transfer_syntax,
        is_implicit_vr=header.is_implicit_vr,
        is_little_endian=header.is_little_endian,
        dataset_offset=header.dataset_offset,
        pixel_data_offset=header.pixel_data_offset,
        pixel_data_length=header.pixel_data_length,
        pixel_data_encapsulated=header.pixel_data_encapsulated,
        problems=[p.as_row() for p in header.problems],
        elements=[{"tag": t, "vr": vr, "value": v} for t, vr, v in header.elements],
        missing=header.missing,
        empty=header.empty,
    )
    for column in ATTRIBUTES:
        row[column] = header.attributes.get(column)


def _is_archive(head: bytes, f: BinaryIO) -> bool:
    """Whether the open file (first bytes ``head``) is an archive whose members are objects."""
    return archive_kind(head, f) is not None


def archive_problem(unreadable: int = 0) -> dict[str, str]:
    """The ``archive`` problem entry of an archive's own row; ``unreadable`` is the number of
    bytes of it that could not be read (the sum of ``size`` over its ``archive_corrupt`` rows,
    known once its members have been read)."""
    message = "an archive (tar or zip): its members are inventoried as objects of their own"
    if unreadable:
        message += (f"; {unreadable} bytes of it could not be read (its archive_corrupt rows "
                    "say where)")
    return _problem("archive", message)


def archive_damage(rows: pa.Table) -> dict[str, int]:
    """Bytes that could not be read, per archive (its path, the rows' ``archive``): the sum of
    ``size`` over its ``archive_corrupt`` rows. ``rows`` needs the columns archive, member,
    size and problems (the inventory, or part of it). An archive's own row then gets
    ``archive_problem(damage.get(row["locator"], 0))``."""
    damaged = rows.filter(pc.and_(pc.equal(rows["member"], ""), pc.greater(rows["size"], 0)))
    found: dict[str, int] = {}
    for row in damaged.select(["archive", "size", "problems"]).to_pylist():
        if any(p["code"] == "archive_corrupt" for p in row["problems"] or ()):
            found[row["archive"]] = found.get(row["archive"], 0) + row["size"]
    return found


def member_locator(archive: str, name: str, offset: int) -> str:
    """Archive path, member name and header offset: stable, and unique within the archive."""
    return f"{archive}::{name}@{offset}"


def inventory_members(paths: list[str], decode_check: str = "none",
                      decoder_name: str | None = None) -> Iterator[dict[str, Any]]:
    """One inventory row per entry of a dump, streamed front to back, nothing extracted."""
    archive = paths[0]
    volumes = paths if len(paths) > 1 else None
    last: dict[str, Any] | None = None
    for member in iter_members(paths):
        if member.damages_previous and last is not None and last["member_offset"] == member.offset:
            if not any(p["code"] == "archive_truncated" for p in last["problems"]):
                last["problems"] = [_problem("archive_truncated", member.message),
                                    *last["problems"]]
                last["kind"] = "unreadable"
            continue
        locator = member_locator(archive, member.name, member.offset)
        row: dict[str, Any] = {"object_id": object_id(locator), "locator": locator,
                               "source": archive, "size": member.size,
                               "mtime_ns": member.mtime_ns, "archive": archive,
                               "archive_volumes": volumes, "member": member.name,
                               "member_offset": member.offset}
        if member.problem:
            row["kind"] = MEMBER_KINDS.get(member.problem, "unreadable")
            row["problems"] = [_problem(member.problem, member.message)]
        else:
            _read_member(member, row, decode_check, decoder_name)
        if last is not None:
            yield last
        last = row
    if last is not None:
        yield last


MEMBER_KINDS = {"archive_directory": "not_regular_file", "archive_symlink": "not_regular_file",
                "archive_hardlink": "not_regular_file", "archive_special": "not_regular_file"}


def _read_member(member: Member, row: dict[str, Any], decode_check: str,
                 decoder_name: str | None) -> None:
    assert member.stream is not None
    try:
        head = member.stream.read(HEAD_BYTES)  # read from its start anyway: kept, then reused
        member.stream.seek(0)
        row["head_sha256"] = head_digest(head)
        header = read_header(member.stream, member.size)
        data = None
        if decode_check != "none" and _decodable(header) and member.size <= MAX_MEMBER_DECODE:
            member.stream.seek(0)
            data = member.stream.read(member.size)
    except STREAM_ERRORS as exc:
        row["kind"] = "unreadable"
        row["problems"] = [_problem("archive_truncated",
                                     f"the member cannot be read to its end: {exc}")]
        return
    except OSError:  # a member of a compressed dump cannot be re-read past its first 4 MB
        data = None
    _header_columns(row, header)
    if decode_check != "none" and _decodable(header):
        if data is None:
            row["problems"].append(_problem(
                "decoder_unavailable",
                "decode check skipped: the member is too large to check from memory"))
        else:
            _decode_problem(row, shared_guard(decoder_name).check(decode_check, data=data))
