"""A decode function for DecoderGuard tests: the real one, except for objects carrying a marker.

``SEGFAULT_MARKER`` in an object: a real segmentation fault (``ctypes.string_at(0)`` reads
address 0). ``HANG_MARKER``: sleeps far past any test timeout. ``EXIT_MARKER``: ``os._exit(3)``.
Anything else decodes normally with :func:`migrate_fs.decode.decode_pixels`.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Iterator
from typing import BinaryIO

from migrate_fs.decode import DecoderGuard, decode_pixels

SEGFAULT_MARKER = b"SEGFAULT-HERE"
HANG_MARKER = b"HANG-HERE"
EXIT_MARKER = b"EXIT-HERE"
NAME = "crashing_decoder:decode"


def decode(fp: BinaryIO, mode: str) -> Iterator[object]:
    """Crash, hang or exit for a marked object; decode it normally otherwise."""
    content = fp.read()
    fp.seek(0)
    if SEGFAULT_MARKER in content:
        ctypes.string_at(0)
    if HANG_MARKER in content:
        time.sleep(3600)
    if EXIT_MARKER in content:
        os._exit(3)
    yield from decode_pixels(fp, mode)


_GUARD: DecoderGuard | None = None


def check_in_worker(path: str) -> tuple[str, str | None, int]:
    """A joblib task: check one object with this worker's (long-lived) guard.

    Returns ``(path, outcome code, guard's child process count so far)``.
    """
    global _GUARD
    if _GUARD is None:
        _GUARD = DecoderGuard(decoder=NAME)
    outcome = _GUARD.check("all", path=path)
    return path, outcome.code, _GUARD.started
