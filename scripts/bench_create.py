#!/usr/bin/env python3
"""Measure the ways the writer can create an output file atomically (issue 13).

Usage::

    python scripts/bench_create.py [FOLDER] [--files 5000] [--size 7000] [--repeat 3]

Each method creates ``--files`` files of ``--size`` bytes in fresh folders (100 files per
folder, as an output tree of series holds them) below FOLDER (default: ``bench/tmp``, on the
file system the outputs go to), never replacing an existing file:

- ``temp+link+unlink``: write a hidden temporary file, ``link`` it to its name, ``unlink`` the
  temporary name (the writer before issue 13);
- ``O_TMPFILE+linkat``: write an unnamed file (``O_TMPFILE``), then give it its name with
  ``linkat``, through ``/proc/self/fd`` or with ``AT_EMPTY_PATH`` (which needs
  CAP_DAC_READ_SEARCH); an interrupted write leaves nothing behind;
- ``temp+renameat2``: write a hidden temporary file and ``renameat2(RENAME_NOREPLACE)`` it;
- ``O_EXCL``: write the file under its final name with ``O_CREAT | O_EXCL`` (not atomic: a
  reader may see a partial file; the floor, for comparison).

Prints wall and CPU (user + system) microseconds per file, the best of ``--repeat`` rounds.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AT_FDCWD = -100
RENAME_NOREPLACE = 1
AT_EMPTY_PATH = 0x1000
PER_FOLDER = 100
_libc = ctypes.CDLL(None, use_errno=True)


def _named_temporary(folder: str, name: str, data: bytes) -> str:
    """Write ``data`` to the hidden temporary file of ``name``; its path."""
    tmp = f"{folder}/.{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return tmp


def _unnamed(folder: str, data: bytes, name_it: Callable[[int], None]) -> None:
    """Write ``data`` to an unnamed file in ``folder``; ``name_it(fd)`` links it."""
    fd = os.open(folder, os.O_WRONLY | os.O_TMPFILE, 0o644)
    try:
        os.write(fd, data)
        name_it(fd)
    finally:
        os.close(fd)


def temp_link_unlink(folder: str, name: str, data: bytes) -> None:
    tmp = _named_temporary(folder, name, data)
    os.link(tmp, f"{folder}/{name}")
    os.unlink(tmp)


def tmpfile_linkat(folder: str, name: str, data: bytes) -> None:
    _unnamed(folder, data, lambda fd: os.link(f"/proc/self/fd/{fd}", f"{folder}/{name}",
                                              follow_symlinks=True))


def tmpfile_empty_path(folder: str, name: str, data: bytes) -> None:
    def name_it(fd: int) -> None:
        if _libc.linkat(fd, b"", AT_FDCWD, f"{folder}/{name}".encode(), AT_EMPTY_PATH) != 0:
            raise OSError(ctypes.get_errno(), "linkat(AT_EMPTY_PATH)")

    _unnamed(folder, data, name_it)


def temp_renameat2(folder: str, name: str, data: bytes) -> None:
    tmp = _named_temporary(folder, name, data)
    if _libc.renameat2(AT_FDCWD, tmp.encode(), AT_FDCWD, f"{folder}/{name}".encode(),
                       RENAME_NOREPLACE) != 0:
        raise OSError(ctypes.get_errno(), "renameat2")


def exclusive(folder: str, name: str, data: bytes) -> None:
    fd = os.open(f"{folder}/{name}", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


METHODS: dict[str, Callable[[str, str, bytes], None]] = {
    "temp+link+unlink": temp_link_unlink, "O_TMPFILE+linkat /proc": tmpfile_linkat,
    "O_TMPFILE+linkat AT_EMPTY_PATH": tmpfile_empty_path,
    "temp+renameat2": temp_renameat2, "O_EXCL": exclusive}


def one_round(base: Path, method: Callable[[str, str, bytes], None], files: int,
              data: bytes) -> tuple[float, float]:
    """(wall, cpu) seconds to create ``files`` files below a fresh ``base``."""
    shutil.rmtree(base, ignore_errors=True)
    folders = [base / f"s{i}" for i in range((files + PER_FOLDER - 1) // PER_FOLDER)]
    for folder in folders:
        folder.mkdir(parents=True)
    os.sync()
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(files):
        method(str(folders[i // PER_FOLDER]), f"{i:08d}.dcm", data)
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=ROOT / "bench" / "tmp")
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--size", type=int, default=7000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    data = os.urandom(args.size)
    print(f"{args.files} files of {args.size} bytes in {args.folder}, best of {args.repeat}")
    print("| method | wall us/file | CPU us/file |\n|---|---|---|")
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in METHODS}
    failed: dict[str, str] = {}
    base = args.folder / f"create-{os.getpid()}"
    try:
        for _ in range(args.repeat):  # round-robin: drift hits every method alike
            for name, method in METHODS.items():
                if name in failed:
                    continue
                try:
                    results[name].append(one_round(base, method, args.files, data))
                except OSError as exc:
                    failed[name] = str(exc)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    for name, rounds in results.items():
        if name in failed:
            print(f"| {name} | failed: {failed[name]} | |")
            continue
        wall, cpu = min(rounds, key=lambda r: r[1])
        print(f"| {name} | {wall / args.files * 1e6:.1f} | {cpu / args.files * 1e6:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
