"""inventory: one manifest row per source object, from its header alone.

``inventory_row`` opens an object, lets :mod:`migrate_fs.reader` identify and parse it and turns
the result into the inventory columns. Nothing here reads pixel data or writes outside the run's
manifest folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

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
from migrate_fs.sources import SourceObject, object_id

READ_BUFFER = 16 * 1024  # one read covers a typical header; pixel data is skipped by seeking

ENTRY_KINDS = {"not_regular_file": "not_regular_file", "unreadable_source": "unreadable",
               "undecodable_path": "unreadable"}


MAX_MEMBER_DECODE = 256 << 20  # an archive member is decode-checked from memory up to this size


def inventory_row(obj: SourceObject, decode_check: str = "none",
                  decoder_name: str | None = None) -> dict[str, Any]:
    """The inventory row of one source object; never raises for a bad object.

    ``decode_check`` (``first`` or ``all``) also decodes the pixel data, in the worker's
    decoder process (:mod:`migrate_fs.decode`), recording what went wrong as a problem.
    """
    row: dict[str, Any] = {"object_id": obj.object_id, "locator": obj.locator,
                           "source": obj.source, "size": obj.size, "mtime_ns": obj.mtime_ns}
    if obj.entry_problem:
        row["kind"] = ENTRY_KINDS[obj.entry_problem]
        row["problems"] = [_problem(obj.entry_problem, obj.entry_message)]
        return row
    try:
        with open(obj.locator, "rb", buffering=READ_BUFFER) as f:
            header = read_header(f, obj.size)
    except OSError as exc:
        row["kind"] = "unreadable"
        row["problems"] = [_problem("unreadable_source", exc.strerror or str(exc))]
        return row
    _header_columns(row, header)
    if header.kind == "not_dicom" and obj.size >= TAR_MAGIC_OFFSET + 5:
        archive_row_kind(obj, row)
    elif decode_check != "none" and _decodable(header):
        try:
            _decode_problem(row, shared_guard(decoder_name).check(decode_check, path=obj.locator))
        except OSError as exc:  # the file went away between the header read and the check
            row["problems"] = [*row["problems"],
                               _problem("unreadable_source", f"decode check: {exc}")]
    return row


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


def archive_row_kind(obj: SourceObject, row: dict[str, Any]) -> None:
    """Mark a file that is a tar archive (plain or compressed): its members are objects."""
    try:
        with open(obj.locator, "rb") as f:
            head = f.read(TAR_MAGIC_OFFSET + 5)
    except OSError:
        return
    if archive_kind(head, obj.locator) is not None:
        row["kind"] = "archive"
        row["problems"] = [_problem("archive", "an archive (tar or zip): its members are "
                                              "inventoried as objects of their own")]


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
