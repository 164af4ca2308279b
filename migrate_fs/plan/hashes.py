"""content: what "the same content" means for two objects, and the hashes that decide it.

Two objects have the same content when the datasets migrate-fs would write for them are equal,
file meta excluded: each object's header is re-encoded exactly as the writer does (explicit VR
little endian, sequences with undefined length, group lengths dropped, the plan's changes
applied; Data Set Trailing Padding is not content), so an implicit VR, a big endian and an
explicit VR copy of one dataset are the same content, while a copy with another PatientName is
not. The pixel data value is hashed on its own (byte-swapped to little endian where the source
is big endian; encapsulated fragments as they are), so that copies with equal pixels and
different headers can be found too.

Hashes are computed only for the objects the plan asks about (those whose SOPInstanceUID or
pixel signature collides with another's): the inventory stays header-only.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from pydicom.uid import DeflatedExplicitVRLittleEndian

from migrate_fs.archives import STREAM_ERRORS, members_at
from migrate_fs.elements import UNDEFINED, Window, decode_element_header, skip_items
from migrate_fs.transcode import (
    edits_for,
    tag_text,
    transcode,
    transcode_buffer,
    writes_known_vrs,
)

DATA_SET_TRAILING_PADDING = 0xFFFCFFFC
# Columns of a plan row that hashing needs.
HASH_INPUT = ["object_id", "locator", "size", "archive", "archive_volumes", "member_offset",
              "transfer_syntax", "is_implicit_vr", "is_little_endian", "dataset_offset",
              "pixel_data_offset", "pixel_data_length", "specific_character_set", "problems"]


@dataclass(frozen=True)
class Digest:
    """The content hashes of one object."""

    header: str  # the dataset as written, pixel data value excluded
    pixel: str | None  # the pixel data value; None without pixel data
    elements: dict[str, str] = field(default_factory=dict)  # top-level tag -> value hash

    @property
    def content(self) -> str:
        return hashlib.sha256(f"{self.header}:{self.pixel}".encode()).hexdigest()


class _Hasher:
    def __init__(self) -> None:
        self.sha256, self.size = hashlib.sha256(), 0

    def write(self, data: bytes | memoryview) -> None:
        self.sha256.update(data)
        self.size += len(data)


def digest(src: BinaryIO, row: dict[str, Any]) -> Digest:
    """Hash one object read from ``src`` (positioned anywhere; it is seeked): its dataset as
    the writer would write it, the pixel data element hashed apart."""
    edits = edits_for(row)
    header = _Collector()
    src.seek(row["dataset_offset"])
    if row["transfer_syntax"] == DeflatedExplicitVRLittleEndian:
        data = zlib.decompress(src.read(), -zlib.MAX_WBITS)
        transcode_buffer(data, False, True, edits, header, writes_known_vrs(row))
        return _digest(b"".join(header.parts), None)
    pixel = _Hasher()
    transcode(src, row, header, edits, pixel_sink=pixel)
    has_pixels = row["pixel_data_offset"] is not None
    return _digest(b"".join(header.parts), pixel.sha256.hexdigest() if has_pixels else None)


class _Collector:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes | memoryview) -> None:
        self.parts.append(bytes(data))


def _digest(header: bytes, pixel: str | None) -> Digest:
    """The digest of a re-encoded header, with one hash per top-level element."""
    elements: dict[str, str] = {}
    whole = hashlib.sha256()
    win = Window(io.BytesIO(header), len(header), len(header))
    pos = 0
    while pos < len(header):
        tag, vr, length, value = decode_element_header(win, pos, False, True)
        end = skip_items(win, value, True, vr == b"UN") if length == UNDEFINED \
            else value + length
        if tag != DATA_SET_TRAILING_PADDING:  # padding, not content
            whole.update(header[pos:end])
            elements[tag_text(tag)] = hashlib.sha256(header[pos:end]).hexdigest()[:16]
        pos = end
    return Digest(whole.hexdigest(), pixel, elements)


def read_hashes(rows: list[dict[str, Any]]) -> dict[str, Digest | str]:
    """Content hashes of ``rows``, read from the sources (the plan's default ``hashes``)."""
    return dict(digests(rows))


def digests(rows: Iterable[dict[str, Any]]) -> Iterator[tuple[str, Digest | str]]:
    """``(object_id, Digest)`` for each row, or ``(object_id, error message)`` when the object
    cannot be read. Files are opened one by one; archive members are read in one pass over
    each archive."""
    by_archive: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("archive"):
            key = tuple(row["archive_volumes"] or [row["archive"]])
            by_archive.setdefault(key, []).append(row)
            continue
        try:
            with open(row["locator"], "rb") as f:
                yield row["object_id"], digest(f, row)
        except Exception as exc:  # noqa: BLE001 - recorded on the object, the plan goes on
            yield row["object_id"], f"{type(exc).__name__}: {exc}"
    for paths, members in by_archive.items():
        yield from _member_digests(list(paths), members)


def _member_digests(paths: list[str], rows: list[dict[str, Any]]
                    ) -> Iterator[tuple[str, Digest | str]]:
    for row, member, why in members_at(paths, rows):
        if member is None:
            yield row["object_id"], why
            continue
        assert member.stream is not None  # members_at gives readable members only
        try:
            yield row["object_id"], digest(member.stream, row)
        except STREAM_ERRORS as exc:  # a member of a compressed dump: cannot seek back far
            yield row["object_id"], f"{type(exc).__name__}: {exc}"
