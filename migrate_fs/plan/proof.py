"""plan.proof: the decoded pixel values of objects, to prove that two encodings hold one image.

Two copies with the same SOPInstanceUID whose pixel data bytes differ are the same image in
another encoding only if decoding says so: equal decoded values for lossless encodings, equal
geometry (frames, rows, columns, samples, bits) for a lossy one next to a lossless one.
Decoding runs in the guarded decoder process (:func:`migrate_fs.decode.shared_guard`), never in
the plan's own process, and only for the objects the duplicate model asks about. Archive
members are read in one pass over each archive. Nothing here decides or writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from migrate_fs.archives import STREAM_ERRORS, members_at
from migrate_fs.decode import DECODE_FAILED, DECODER_UNAVAILABLE, DecodeOutcome, shared_guard

MAX_MEMBER = 256 << 20  # an archive member is decoded from memory up to this size
UNREADABLE = "unreadable_source"
# object rows -> {object_id: what decoding them found}
Fingerprints = Callable[[list[dict[str, Any]]], dict[str, DecodeOutcome]]


def read_fingerprints(rows: list[dict[str, Any]], decoder: str | None = None
                      ) -> dict[str, DecodeOutcome]:
    """Decode every frame of each row's object, with the values hashed (``decoder``: the
    configured 'module:function', default pydicom's)."""
    guard = shared_guard(decoder)
    found: dict[str, DecodeOutcome] = {}
    by_archive: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("archive"):
            by_archive.setdefault(tuple(row["archive_volumes"] or [row["archive"]]),
                                  []).append(row)
            continue
        try:
            found[row["object_id"]] = guard.check("all", path=row["locator"], fingerprint=True)
        except OSError as exc:
            found[row["object_id"]] = DecodeOutcome(UNREADABLE, str(exc), 0)
    for paths, members in by_archive.items():
        for object_id, data in _member_data(list(paths), members):
            found[object_id] = data if isinstance(data, DecodeOutcome) else \
                guard.check("all", data=data, fingerprint=True)
    return found


def _member_data(paths: list[str], rows: list[dict[str, Any]]
                 ) -> Iterator[tuple[str, bytes | DecodeOutcome]]:
    """Each wanted member's bytes, or the outcome that says why they cannot be decoded."""
    for row, member, why in members_at(paths, rows):
        if member is None or member.stream is None:
            yield row["object_id"], DecodeOutcome(UNREADABLE, why, 0)
        elif member.size > MAX_MEMBER:
            yield row["object_id"], DecodeOutcome(DECODER_UNAVAILABLE, "the member is too "
                                                  "large to decode from memory", 0)
        else:
            try:
                yield row["object_id"], member.stream.read(member.size)
            except STREAM_ERRORS as exc:
                yield row["object_id"], DecodeOutcome(DECODE_FAILED, f"the archive could not "
                                                      f"be read: {exc}", 0)
