"""sources: turn the export roots the user names into a stream of source objects.

A directory source walks its tree in a deterministic order (names sorted at every level), never
follows symbolic links and never writes. Every entry that is not a folder becomes exactly one
:class:`SourceObject`, including links, devices and files it cannot read: the manifest accounts
for all of them.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from migrate_fs.errors import SourceError

OBJECT_ID_HEX = 24  # 96 bits: collision-free in practice for 10^8 objects


@dataclass(frozen=True, slots=True)
class SourceObject:
    """One object of a legacy export, located so that every run finds it again.

    ``locator`` is the absolute path of the file (its text form: names that are not valid
    UTF-8 are shown with backslash escapes and cannot be opened through it). ``entry_problem``
    is a problem code when the entry cannot be read as a file at all.
    """

    locator: str
    source: str
    size: int
    mtime_ns: int
    entry_problem: str | None = None
    entry_message: str | None = None

    @property
    def object_id(self) -> str:
        return object_id(self.locator)


def object_id(locator: str) -> str:
    """The stable key of a source object: a hash of its locator."""
    return hashlib.sha256(locator.encode("utf-8")).hexdigest()[:OBJECT_ID_HEX]


def _text(path: bytes) -> tuple[str, bool]:
    """A path's text for the manifest, and whether it is valid UTF-8."""
    try:
        return path.decode("utf-8"), True
    except UnicodeDecodeError:
        return path.decode("utf-8", "backslashreplace"), False


def iter_sources(roots: Iterable[str | Path]) -> Iterator[SourceObject]:
    """Every object below each root, roots in the order given, each tree in sorted order."""
    for root in roots:
        root_bytes = os.fsencode(os.path.abspath(root))
        source, _ = _text(root_bytes)
        try:
            st = os.stat(root_bytes, follow_symlinks=False)
        except OSError as exc:
            raise SourceError(f"source {root!s} cannot be read: {exc.strerror}; "
                              "check the path and that the export is mounted") from exc
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(root_bytes, source)
        else:
            yield _entry(root_bytes, st, source)


def _walk(folder: bytes, source: str) -> Iterator[SourceObject]:
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        text, _ = _text(folder)
        yield SourceObject(text, source, 0, 0, "unreadable_source",
                           f"folder cannot be listed: {exc.strerror}")
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(entry.path, source)
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            text, _ = _text(entry.path)
            yield SourceObject(text, source, 0, 0, "unreadable_source", exc.strerror or str(exc))
            continue
        yield _entry(entry.path, st, source)


def _entry(path: bytes, st: os.stat_result, source: str) -> SourceObject:
    text, ok = _text(path)
    if not stat.S_ISREG(st.st_mode):
        kind = "symbolic link" if stat.S_ISLNK(st.st_mode) else "special file"
        return SourceObject(text, source, 0, st.st_mtime_ns, "not_regular_file",
                            f"{kind}: not followed")
    if not ok:
        return SourceObject(text, source, st.st_size, st.st_mtime_ns, "undecodable_path",
                            "file name is not valid UTF-8")
    return SourceObject(text, source, st.st_size, st.st_mtime_ns)
