"""inventory: one manifest row per source object, from its header alone.

``inventory_row`` opens an object, lets :mod:`migrate_fs.reader` identify and parse it and turns
the result into the inventory columns. Nothing here reads pixel data or writes outside the run's
manifest folder.
"""

from __future__ import annotations

from typing import Any

from migrate_fs.reader import ATTRIBUTES, read_header
from migrate_fs.sources import SourceObject

READ_BUFFER = 16 * 1024  # one read covers a typical header; pixel data is skipped by seeking

ENTRY_KINDS = {"not_regular_file": "not_regular_file", "unreadable_source": "unreadable",
               "undecodable_path": "unreadable"}


def inventory_row(obj: SourceObject) -> dict[str, Any]:
    """The inventory row of one source object; never raises for a bad object."""
    row: dict[str, Any] = {"object_id": obj.object_id, "locator": obj.locator,
                           "source": obj.source, "size": obj.size, "mtime_ns": obj.mtime_ns}
    if obj.entry_problem:
        row["kind"] = ENTRY_KINDS[obj.entry_problem]
        row["problems"] = [{"code": obj.entry_problem, "message": obj.entry_message or ""}]
        return row
    try:
        with open(obj.locator, "rb", buffering=READ_BUFFER) as f:
            header = read_header(f, obj.size)
    except OSError as exc:
        row["kind"] = "unreadable"
        row["problems"] = [{"code": "unreadable_source", "message": exc.strerror or str(exc)}]
        return row
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
    )
    for column in ATTRIBUTES:
        row[column] = header.attributes.get(column)
    return row
