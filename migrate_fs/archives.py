"""archives: tape dumps (tar, compressed or not, single or multi-volume; zip) read as streams.

Members are never extracted: each regular member is handed over as a read-only stream, read
front to back once, in archive order. Names are locators only. Links, devices, FIFOs and
directories, absolute names and names with ``..`` are reported, never followed or opened. In a
damaged tar, reading goes on at the next valid header: each region that could not be read is
an entry of its own (with its offset and length), and every member after it is read as usual;
where reading cannot go on (the archive or its compressed stream is cut), one entry says so.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Self

# Compression by magic bytes; "" is a plain tar ('ustar' at byte 257, or a valid v7 header).
MAGIC = {b"\x1f\x8b": "gz", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz"}
TAR_MAGIC_OFFSET = 257
ZIP_MAGIC = b"PK\x03\x04"


def archive_kind(head: bytes, path: str | BinaryIO | None = None) -> str | None:
    """'' for a plain tar, 'gz'/'bz2'/'xz' for a compressed tar, None for anything else.

    ``head`` is the first bytes of the object (512 or more). A compressed file is only an
    archive if a tar header can be read from it (``path``, or the open file, lets this check
    read it; an open file is read from its start and left anywhere).
    """
    if head[TAR_MAGIC_OFFSET:TAR_MAGIC_OFFSET + 5] == b"ustar":
        return ""
    if head.startswith(ZIP_MAGIC):
        return "zip" if path is None or zipfile.is_zipfile(path) else None
    for magic, kind in MAGIC.items():
        if head.startswith(magic):
            if path is None:
                return kind
            try:
                if isinstance(path, str):
                    tf = tarfile.open(path, f"r|{kind}")  # type: ignore[call-overload]
                else:
                    path.seek(0)
                    tf = tarfile.open(fileobj=path, mode=f"r|{kind}")  # type: ignore[call-overload]
                with tf:
                    return kind if tf.next() is not None else None
            except (tarfile.TarError, OSError, EOFError):
                return None
    return None


class VolumeSet(io.RawIOBase):
    """Several files read as one (the volumes of one split dump), seekable."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths
        self.sizes = [os.path.getsize(p) for p in paths]
        self.starts = [sum(self.sizes[:i]) for i in range(len(paths))]
        self.size = sum(self.sizes)
        self.pos = 0
        self._index = -1
        self._file: BinaryIO | None = None
        self.name = paths[0]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        view = memoryview(buffer)
        done = 0
        while done < len(view) and self.pos < self.size:
            index = max(i for i, s in enumerate(self.starts) if s <= self.pos)
            if index != self._index:
                if self._file:
                    self._file.close()
                self._file, self._index = open(self.paths[index], "rb"), index
            assert self._file is not None
            self._file.seek(self.pos - self.starts[index])
            want = min(len(view) - done, self.starts[index] + self.sizes[index] - self.pos)
            got = self._file.readinto(view[done:done + want])  # type: ignore[attr-defined]
            if not got:
                break
            done += got
            self.pos += got
        return done

    def close(self) -> None:
        if self._file:
            self._file.close()
        super().close()


@dataclass
class Member:
    """One entry of an archive, and its problem code if it is not a readable regular file."""

    name: str
    offset: int  # of its header block: unique in the archive, stable across runs
    size: int
    mtime_ns: int
    problem: str | None = None
    message: str | None = None
    stream: BinaryIO | None = None  # only for regular members without a problem
    damages_previous: bool = False  # this entry reports that the member before it is cut


def open_archive(paths: list[str]) -> tuple[tarfile.TarFile, BinaryIO]:
    """Open a dump (one file or the volumes of one) for reading front to back."""
    raw: BinaryIO = VolumeSet(paths) if len(paths) > 1 else open(paths[0], "rb")  # type: ignore[assignment]
    head = raw.read(TAR_MAGIC_OFFSET + 5)
    raw.seek(0)
    kind = archive_kind(head)
    if kind is None:
        raw.close()
        raise tarfile.ReadError(f"{paths[0]} is not a tar archive (plain, gz, bz2 or xz)")
    fileobj: BinaryIO = io.BufferedReader(raw, 1 << 20) if len(paths) > 1 else raw  # type: ignore[arg-type, type-var]
    try:
        if kind == "":  # seekable: members can be skipped and re-read
            return _TarFile.open(fileobj=fileobj, mode="r:", ignore_zeros=True), fileobj
        return _TarFile.open(fileobj=fileobj, mode=f"r|{kind}",  # type: ignore[call-overload]
                             ignore_zeros=True), fileobj
    except BaseException:
        fileobj.close()
        raise


class _Unread:
    """The blocks tarfile (reading with ``ignore_zeros``) skipped since it last found a valid
    header: where the run started, and its first and last blocks that are not all zeros."""

    __slots__ = ("start", "bad_start", "bad_end", "cut")

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.start: int | None = None
        self.bad_start: int | None = None
        self.bad_end = 0
        self.cut = False

    def add(self, offset: int, length: int, zeros: bool = False, cut: bool = False) -> None:
        self.start = offset if self.start is None else min(self.start, offset)
        if not zeros:
            self.bad_start = offset if self.bad_start is None else min(self.bad_start, offset)
            self.bad_end = max(self.bad_end, offset + length)
        self.cut = self.cut or cut

    def take(self, resumed: int | None) -> tuple[int, int, str] | None:
        """``(offset, length, what)`` of the run skipped before the valid header at byte
        ``resumed`` (None: before the end), if there is one to report, and forget it.

        Before a header, every skipped block counts (``what`` is ``zeros`` if all are zeros,
        else ``damaged``). At the end, zero blocks are the end-of-archive marker and its padding:
        only the blocks from the first to the last non-zero one count (``damaged``, or ``cut``
        when the last block is cut short); only zeros is the normal end.
        """
        start, bad_start, bad_end, cut = self.start, self.bad_start, self.bad_end, self.cut
        self._reset()
        if start is None:
            return None
        if resumed is not None:
            return start, resumed - start, "zeros" if bad_start is None else "damaged"
        if bad_start is None:
            return None
        return bad_start, bad_end - bad_start, "cut" if cut else "damaged"


# tarfile's kinds of header error (not in its __all__ nor in typeshed; unchanged since 3.2)
_EMPTY: type[Exception] = tarfile.EmptyHeaderError  # type: ignore[attr-defined]
_ZEROS: type[Exception] = tarfile.EOFHeaderError  # type: ignore[attr-defined]
_CUT_SHORT: type[Exception] = tarfile.TruncatedHeaderError  # type: ignore[attr-defined]


class _TarInfo(tarfile.TarInfo):
    """Reports every header block it cannot read to its archive's :class:`_Unread`."""

    @classmethod
    def fromtarfile(cls, archive: tarfile.TarFile) -> Self:
        offset = archive.fileobj.tell()  # type: ignore[union-attr]
        try:
            return super().fromtarfile(archive)
        except _EMPTY:  # the end
            raise
        except _ZEROS:  # a zero block
            archive.unread.add(offset, tarfile.BLOCKSIZE, zeros=True)  # type: ignore[attr-defined]
            raise
        except _CUT_SHORT:  # the last block is cut short
            archive.unread.add(offset, archive.fileobj.tell() - offset,  # type: ignore[attr-defined, union-attr]
                               cut=True)
            raise
        except tarfile.HeaderError:  # a damaged header (or one that follows a GNU/pax header)
            archive.unread.add(offset, tarfile.BLOCKSIZE)  # type: ignore[attr-defined]
            raise


class _TarFile(tarfile.TarFile):
    """A tar read past damaged blocks to the next valid header, noting what it skipped in
    ``unread``: tarfile's ``ignore_zeros`` skips zero and damaged header blocks; this class
    also goes on after a damaged header that follows a GNU long name or a pax header."""

    tarinfo = _TarInfo

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.unread = _Unread()  # before __init__ reads the first header
        super().__init__(*args, **kwargs)

    def next(self) -> tarfile.TarInfo | None:
        while True:
            try:
                info = super().next()
                self.members.clear()  # type: ignore[attr-defined]  # no growing list of TarInfo
                return info
            except tarfile.ReadError as exc:
                if not isinstance(exc.__context__, tarfile.HeaderError):
                    raise  # the archive or its compressed stream is cut or broken
                assert self.fileobj is not None
                resume = -(-self.fileobj.tell() // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
                if resume <= self.offset:
                    raise
                self.unread.add(self.offset, resume - self.offset)
                self.offset = resume


STREAM_ERRORS = (tarfile.TarError, EOFError, OSError, ValueError)  # zlib/lzma/bz2 errors too


def iter_members(paths: list[str]) -> Iterator[Member]:
    """Every entry of the dump in archive order; a stream for each readable regular member.

    A stream must be consumed (or dropped) before the next member is asked for. Blocks that
    cannot be read as a header (a damaged header, the data it described, trailing garbage) are
    skipped up to the next valid header, each such region an entry of its own: problem
    ``archive_corrupt``, ``offset`` where it starts, ``size`` its length in bytes. When reading
    cannot go on, the last entry has problem ``archive_truncated`` (the data of the member
    before it ends early: ``damages_previous`` is set) or ``archive_corrupt``.
    """
    if len(paths) == 1 and _is_zip(paths[0]):
        yield from _zip_members(paths[0])
        return
    try:
        tf, raw = open_archive(paths)
    except STREAM_ERRORS as exc:
        yield Member("", 0, 0, 0, "archive_corrupt", f"the archive cannot be read: {exc}")
        return
    size = VolumeSet(paths).size if len(paths) > 1 else os.path.getsize(paths[0])
    seekable = not isinstance(tf.fileobj, tarfile._Stream)  # type: ignore[attr-defined]
    unread: _Unread = tf.unread  # type: ignore[attr-defined]
    previous: Member | None = None
    try:
        while True:
            try:
                info = tf.next()
            except STREAM_ERRORS as exc:
                region = unread.take(None)
                yield _unread(region, None, exc) if region else _damage(previous, exc)
                return
            region = unread.take(info.offset if info else None)
            if region:
                yield _unread(region, info.offset if info else None)
            if info is None:
                return
            member = _member(tf, info)
            if seekable and info.isreg() and info.offset_data + info.size > size:
                member.problem, member.stream = "archive_truncated", None
                member.message = (f"the archive ends {info.offset_data + info.size - size} bytes "
                                  "before this member's data does")
            previous = member
            yield member
    finally:
        tf.close()
        raw.close()


def _cut(exc: BaseException) -> bool:
    return isinstance(exc, EOFError) or "unexpected end" in str(exc) or "ended before" in str(exc)


def _unread(region: tuple[int, int, str], resumed: int | None,
            stopped: BaseException | None = None) -> Member:
    """The entry for a region of the tar stream that could not be read."""
    offset, length, what = region
    if what == "zeros":
        message = (f"{length} bytes of zeros from byte {offset} of the tar stream, where a "
                   "header should be: a region zeroed by damage (a member may be lost here), "
                   "or the end of one tar and the start of another written after it")
    elif what == "cut":
        message = (f"{length} bytes from byte {offset} of the tar stream could not be read: "
                   "they end before a whole block (the archive is cut short, or has trailing "
                   "garbage)")
    else:
        message = (f"{length} bytes from byte {offset} of the tar stream could not be read (a "
                   "damaged header and the data it described, or garbage)")
    if stopped is not None:
        message += f"; reading stopped after them: {stopped}"
    elif resumed is None:
        message += "; nothing valid follows them"
    else:
        message += f"; the next valid header is at byte {resumed}"
    return Member("", offset, length, 0, "archive_corrupt", message)


def _damage(previous: Member | None, exc: BaseException) -> Member:
    """The entry for damage met while looking for the next member."""
    cut = _cut(exc)
    if cut and previous is not None:
        return Member(previous.name, previous.offset, previous.size, previous.mtime_ns,
                      "archive_truncated", f"the archive ends inside this member: {exc}",
                      damages_previous=True)
    offset = previous.offset + 512 if previous else 0
    return Member("", offset, 0, 0, "archive_corrupt",
                  f"the archive cannot be read after byte {offset}: {exc}")


def unsafe_name(name: str) -> bool:
    """An absolute member name (POSIX, Windows drive or UNC) or one with a '..' component."""
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or ".." in parts or name[1:2] == ":"


def _unsafe_message(name: str) -> str:
    return (f"member name {name!r} is absolute or leaves the archive's root: recorded, never "
            "used as a path")


def _member(tf: tarfile.TarFile, info: tarfile.TarInfo) -> Member:
    member = Member(info.name, info.offset, info.size if info.isreg() else 0,
                    int(info.mtime * 1_000_000_000))
    if unsafe_name(info.name):
        member.problem, member.message = "unsafe_member_path", _unsafe_message(info.name)
    elif info.isdir():
        member.problem, member.message = "archive_directory", "a directory entry"
    elif info.issym():
        member.problem = "archive_symlink"
        member.message = f"symbolic link to {info.linkname!r}: not followed"
    elif info.islnk():
        member.problem = "archive_hardlink"
        member.message = f"hard link to {info.linkname!r}: its content is that member's"
    elif not info.isreg():
        member.problem, member.message = "archive_special", "a device, FIFO or other special entry"
    else:
        stream = tf.extractfile(info)
        if isinstance(tf.fileobj, tarfile._Stream):  # type: ignore[attr-defined]
            member.stream = RewindablePrefix(stream)  # type: ignore[arg-type, assignment]
        else:
            member.stream = stream  # type: ignore[assignment]
    return member


class RewindablePrefix(io.RawIOBase):
    """A forward-only member stream that can seek back within its first ``keep`` bytes.

    The reader's pydicom fallback starts again from byte 0; that works while the header lies in
    the kept prefix. Seeking forward reads and discards (memory stays bounded).
    """

    def __init__(self, stream: BinaryIO, keep: int = 4 << 20) -> None:
        self.stream, self.keep = stream, keep
        self.prefix = bytearray()
        self.pos = 0  # our position
        self.stream_pos = 0  # the stream's position

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self.pos
        elif whence != io.SEEK_SET:
            raise io.UnsupportedOperation("seek from the end of a streamed member")
        if offset < self.stream_pos and offset > len(self.prefix):
            raise io.UnsupportedOperation(f"cannot seek back to byte {offset} of a streamed "
                                          "member; extract it to migrate it")
        self.pos = offset
        return offset

    def read(self, n: int = -1) -> bytes:  # type: ignore[override]
        """Up to ``n`` bytes (all that is left if n < 0), fewer only at the end."""
        chunks, want = [], n if n >= 0 else 1 << 62
        while want > 0:
            buffer = bytearray(min(want, 1 << 20))
            got = self.readinto(buffer)
            if not got:
                break
            chunks.append(bytes(buffer[:got]))
            want -= got
        return b"".join(chunks)

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        view = memoryview(buffer)
        if self.pos < self.stream_pos:  # within the kept prefix
            n = min(len(view), self.stream_pos - self.pos)
            view[:n] = self.prefix[self.pos:self.pos + n]
            self.pos += n
            return n
        while self.stream_pos < self.pos:  # skip forward
            skipped = self.stream.read(min(1 << 20, self.pos - self.stream_pos))
            if not skipped:
                return 0
            self._keep(skipped)
        data = self.stream.read(len(view))
        self._keep(data)
        view[:len(data)] = data
        self.pos += len(data)
        return len(data)

    def _keep(self, data: bytes) -> None:
        if len(self.prefix) < self.keep and len(self.prefix) == self.stream_pos:
            self.prefix += data[:self.keep - len(self.prefix)]
        self.stream_pos += len(data)


def _is_zip(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == ZIP_MAGIC


def _zip_members(path: str) -> Iterator[Member]:
    """The entries of a zip export in the order they are stored (media order)."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        yield Member("", 0, 0, 0, "archive_corrupt", f"the zip directory cannot be read: {exc}")
        return
    with zf:
        for info in sorted(zf.infolist(), key=lambda i: i.header_offset):
            member = Member(info.filename, info.header_offset, info.file_size, 0)
            mode = info.external_attr >> 16
            if unsafe_name(info.filename):
                member.problem = "unsafe_member_path"
                member.message = _unsafe_message(info.filename)
            elif info.is_dir():
                member.problem, member.message = "archive_directory", "a directory entry"
            elif stat.S_ISLNK(mode):
                member.problem, member.message = "archive_symlink", "symbolic link: not followed"
            else:
                try:
                    member.stream = zf.open(info)  # type: ignore[assignment]
                except (zipfile.BadZipFile, NotImplementedError, OSError) as exc:
                    member.problem, member.message = "archive_corrupt", f"cannot be read: {exc}"
            yield member


def members_at(paths: list[str], rows: list[dict[str, Any]]
               ) -> Iterator[tuple[dict[str, Any], Member | None, str]]:
    """The members that ``rows`` (each with a ``member_offset``) name, found in one front-to-
    back pass over the dump: ``(row, member, "")``, or ``(row, None, why)`` for a row whose
    member can no longer be reached. A consumer reading a member's stream handles the
    STREAM_ERRORS of that read itself."""
    pending = {r["member_offset"]: r for r in rows}
    try:
        for member in iter_members(paths):
            row = pending.pop(member.offset, None)
            if row is None:
                continue
            if member.stream is None:
                yield row, None, "the member can no longer be read"
            else:
                yield row, member, ""
    except STREAM_ERRORS as exc:
        for row in pending.values():
            yield row, None, f"the archive could not be read: {exc}"
        return
    for row in pending.values():
        yield row, None, "the member is no longer in the archive"
