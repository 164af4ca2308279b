"""sources: turn the export roots the user names into a stream of source objects.

A directory source walks its tree in a deterministic order (names sorted at every level), never
follows symbolic links and never writes. Every entry that is not a folder becomes exactly one
:class:`SourceObject`, including links, devices and files it cannot read: the manifest accounts
for all of them.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from migrate_fs.errors import SourceError

OBJECT_ID_HEX = 24  # 96 bits: collision-free in practice for 10^8 objects
HEAD_BYTES = 4096  # head_sha256 covers the first min(size, HEAD_BYTES) bytes of an object
try:
    PATH_MAX = os.pathconf("/", "PC_PATH_MAX")  # a longer path cannot be opened by name
except (OSError, ValueError, AttributeError):
    PATH_MAX = 4096


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
    # The identity the walk's lstat gave (None where it has none): the inventory checks that it
    # opens this file, the writer that it is still the same one.
    device: int | None = None
    inode: int | None = None
    ctime_ns: int | None = None

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


def _int64(value: int) -> int:
    """An unsigned 64-bit stat value as the manifest's int64 holds it (two's complement): some
    network and FUSE file systems hand out inode numbers with the top bit set."""
    return value - (1 << 64) if value >= 1 << 63 else value


def file_identity(st: os.stat_result) -> tuple[int, int]:
    """``(device, inode)`` of a stat result as the manifest records them."""
    return _int64(st.st_dev), _int64(st.st_ino)


def head_digest(data: bytes | memoryview) -> str:
    """The ``head_sha256`` of an object whose first bytes are ``data``: the SHA-256 of its first
    min(size, HEAD_BYTES) bytes (``data`` may be longer; it is not copied)."""
    return hashlib.sha256(memoryview(data)[:HEAD_BYTES]).hexdigest()


def distinct_roots(roots: Iterable[str | Path]) -> tuple[list[str], list[tuple[str, str]]]:
    """The roots to walk (absolute, in the order given) and each dropped root with the walked
    root that covers it: a root given again, or one inside another root's tree, resolved with
    :func:`os.path.realpath` so that an alias through a symbolic link is caught too.

    A folder root covers its whole tree; any other root (a file, or a symbolic link, which the
    walk records and never follows) covers only itself. A later root that covers earlier ones
    replaces them (at its own place in the order).
    """
    kept: list[tuple[str, str, bool]] = []  # absolute, resolved, is a folder
    dropped: list[tuple[str, str]] = []
    for root in roots:
        absolute = os.path.abspath(root)
        resolved, folder = _resolved(absolute)
        cover = next((k[0] for k in kept if _covers(k[1], k[2], resolved)), None)
        if cover is not None:
            dropped.append((absolute, cover))
            continue
        inside = {k[0] for k in kept if _covers(resolved, folder, k[1])}
        if inside:
            kept = [k for k in kept if k[0] not in inside]
            dropped = [(d, absolute if c in inside else c) for d, c in dropped]
            dropped += [(k, absolute) for k in sorted(inside)]
        kept.append((absolute, resolved, folder))
    return [k[0] for k in kept], dropped


def _resolved(absolute: str) -> tuple[str, bool]:
    """The path with every link resolved but a final one (which the walk does not follow), and
    whether the walk descends into it (a real folder)."""
    try:
        folder = stat.S_ISDIR(os.stat(absolute, follow_symlinks=False).st_mode)
    except OSError:
        folder = False
    if folder:
        return os.path.realpath(absolute), True
    head, name = os.path.split(absolute)
    return os.path.join(os.path.realpath(head), name), False


def _covers(root: str, folder: bool, path: str) -> bool:
    if path == root:
        return True
    return folder and path.startswith(root if root.endswith(os.sep) else root + os.sep)


def iter_sources(roots: Iterable[str | Path]) -> Iterator[SourceObject]:
    """Every object below each root, roots in the order given (each object once: see
    :func:`distinct_roots`), each tree in sorted order."""
    for root in distinct_roots(roots)[0]:
        root_bytes = os.fsencode(root)
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


# A folder is opened relative to its parent's descriptor and never through a link, so that a
# folder swapped for a link during the walk is not followed and no path is too long to reach.
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_Listing = list[tuple[bytes, os.stat_result | OSError | None]]  # None: a folder
_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()


class _Folder:
    """A folder being walked: its sorted entries (non-folders already lstat'ed) and, while a
    subfolder is still to be opened from it, its descriptor."""

    __slots__ = ("fd", "prefix", "entries", "index", "last_folder")

    def __init__(self, fd: int, path: bytes) -> None:
        self.fd: int | None = fd
        self.prefix = path if path.endswith(b"/") else path + b"/"
        self.index = 0
        try:
            self.entries, self.last_folder = _listing(fd)
        except BaseException:
            self.close()
            raise
        if self.last_folder < 0:
            self.close()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _listing(fd: int) -> tuple[_Listing, int]:
    """The entries of an open folder sorted by name (bytes; os.fsencode's, as a bytes path's
    scandir gives them), each non-folder lstat'ed; and the index of the last folder (or -1)."""
    with os.scandir(fd) as it:
        named = [(e.name.encode(_FS_ENCODING, _FS_ERRORS), e) for e in it]
    named.sort()
    entries: _Listing = []
    last_folder = -1
    for name, entry in named:
        if entry.is_dir(follow_symlinks=False):
            last_folder = len(entries)
            entries.append((name, None))
            continue
        try:
            entries.append((name, entry.stat(follow_symlinks=False)))
        except OSError as exc:
            entries.append((name, exc))
    return entries, last_folder


def _walk(root: bytes, source: str) -> Iterator[SourceObject]:
    """Depth first, names sorted at every level (the order of a recursive walk), without
    recursion: any depth, and paths longer than the system allows to open are still listed."""
    stack: list[_Folder] = []
    try:
        try:
            stack.append(_Folder(os.open(root, _DIR_FLAGS), root))
        except OSError as exc:
            yield _unlisted(root, source, exc)
            return
        while stack:
            folder = stack[-1]
            if folder.index == len(folder.entries):
                stack.pop().close()
                continue
            index = folder.index
            folder.index += 1
            name, st = folder.entries[index]
            path = folder.prefix + name
            if isinstance(st, OSError):
                text, _ = _text(path)
                yield SourceObject(text, source, 0, 0, "unreadable_source",
                                   st.strerror or str(st))
            elif st is not None:
                yield _entry(path, st, source)
            else:
                assert folder.fd is not None
                child = _open_folder(folder.fd, name, path, source)
                if index == folder.last_folder:
                    folder.close()  # its files are lstat'ed: it is not needed any more
                if isinstance(child, _Folder):
                    stack.append(child)
                else:
                    yield child
    finally:
        for folder in stack:
            folder.close()


def _open_folder(parent: int, name: bytes, path: bytes, source: str) -> _Folder | SourceObject:
    """The subfolder ``name`` of the open folder ``parent``, or the row that says why not."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # no longer a folder: a link, a file
            try:
                return _entry(path, os.stat(name, dir_fd=parent, follow_symlinks=False), source)
            except OSError:
                pass
        return _unlisted(path, source, exc)
    try:
        return _Folder(fd, path)
    except OSError as exc:
        return _unlisted(path, source, exc)


def _unlisted(path: bytes, source: str, exc: OSError) -> SourceObject:
    text, _ = _text(path)
    return SourceObject(text, source, 0, 0, "unreadable_source",
                        f"folder cannot be listed: {exc.strerror}")


def _entry(path: bytes, st: os.stat_result, source: str) -> SourceObject:
    text, ok = _text(path)
    device, inode = _int64(st.st_dev), _int64(st.st_ino)
    if not stat.S_ISREG(st.st_mode):
        kind = "symbolic link" if stat.S_ISLNK(st.st_mode) else "special file"
        return SourceObject(text, source, 0, st.st_mtime_ns, "not_regular_file",
                            f"{kind}: not followed", device, inode, st.st_ctime_ns)
    if len(path) >= PATH_MAX:
        return SourceObject(text, source, st.st_size, st.st_mtime_ns, "path_too_long",
                            f"the path is {len(path)} bytes long; the system opens paths of at "
                            f"most {PATH_MAX - 1}", device, inode, st.st_ctime_ns)
    if not ok:
        return SourceObject(text, source, st.st_size, st.st_mtime_ns, "undecodable_path",
                            "file name is not valid UTF-8", device, inode, st.st_ctime_ns)
    return SourceObject(text, source, st.st_size, st.st_mtime_ns, None, None, device, inode,
                        st.st_ctime_ns)
