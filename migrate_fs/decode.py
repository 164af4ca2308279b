"""decode: the optional decode check, run in a child process that may crash.

Native decoders can crash the process that calls them, so pixel data is never decoded in the
process that holds the run's state. :class:`DecoderGuard` keeps one child process
(``python -m migrate_fs.decode``, started on first use, reused for every object, started again
only after it died) and talks to it over its stdin and stdout pipes: length-prefixed pickled
messages, plus the raw bytes of an object passed by value. A child that dies (a signal, an exit)
or does not answer in time costs one object a ``decoder_crash`` outcome naming the signal, and
nothing else. Being a plain subprocess, it works from any caller, joblib's loky workers
included.

Outcomes (:class:`DecodeOutcome`): ``None`` decoded; ``decode_failed`` the decoder rejected the
data (corrupt or non-conformant); ``decoder_unavailable`` nothing installed here decodes it
(cannot check here: a different thing from corrupt); ``decoder_crash`` the child died or hung.
See :func:`classify` for how exceptions map to codes.
"""

from __future__ import annotations

import atexit
import faulthandler
import hashlib
import importlib
import io
import logging
import os
import pickle
import re
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from migrate_fs.errors import DecoderError

DECODE_FAILED = "decode_failed"
DECODER_UNAVAILABLE = "decoder_unavailable"
DECODER_CRASH = "decoder_crash"
MODES = ("first", "all")
DEFAULT_DECODER = "migrate_fs.decode:decode_pixels"
STARTUP_TIMEOUT = 60.0
STDERR_TAIL = 8192
MAX_MESSAGE = 600
_LENGTH = struct.Struct(">Q")
_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+) in (\S+)', re.MULTILINE)
DUMP_SIGNAL = signal.SIGUSR1  # the child dumps its Python stack on it (before a timeout kill)

DecodeFunction = Callable[[BinaryIO, str], Iterable[object]]


@dataclass(frozen=True)
class DecodeOutcome:
    """What the decode check found for one object."""

    code: str | None  # None | decode_failed | decoder_unavailable | decoder_crash
    message: str | None
    frames_checked: int
    # With ``fingerprint``: the SHA-256 of the decoded pixel values (every frame, as the decoder
    # returns them) and their geometry: (frames, frame shape, dtype), e.g. (2, (64, 64), "<u2").
    values_sha256: str | None = None
    geometry: tuple[int, tuple[int, ...], str] | None = None


class Unavailable(Exception):
    """No installed decoder can decode this pixel data: it cannot be checked here."""


class DecoderCrash(Exception):
    """The child process died or hung; the message says how."""


# The parent side -------------------------------------------------------------------------


class DecoderGuard:
    """Decode checks in a long-lived child process, restarted only after it crashed.

    ``timeout``: seconds one check may take before the child is killed (``decoder_crash``).
    ``decoder``: a ``'module:function'`` the child uses instead of :func:`decode_pixels`
    (same signature); the child sees this process's ``sys.path``. Not thread-safe: one guard
    per process or thread. A context manager; :meth:`close` stops the child.
    """

    def __init__(self, timeout: float = 60.0, decoder: str | None = None) -> None:
        self.timeout = timeout
        self.decoder = decoder or DEFAULT_DECODER
        self.started = 0  # child processes started so far
        self._child: _Child | None = None

    def __enter__(self) -> DecoderGuard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """The child's process id (None before the first check and after a crash)."""
        return self._child.proc.pid if self._child else None

    def start(self) -> None:
        """Start the child now rather than on the first check."""
        if self._child is None:
            self._child = _Child.start(self.decoder)
            self.started += 1

    def close(self) -> None:
        """Stop the child (idempotent)."""
        child, self._child = self._child, None
        if child is not None:
            child.stop()

    def check(self, mode: str, *, path: str | os.PathLike[str] | None = None,
              data: bytes | bytearray | memoryview | None = None,
              fingerprint: bool = False) -> DecodeOutcome:
        """Decode the first frame (``first``) or every frame, one at a time (``all``).

        The object is a file ``path`` (the child opens it: nothing goes through the pipe) or
        the ``data`` of a whole object; Part 10 or a raw dataset. Raises ``OSError`` when the
        child cannot open ``path``. ``fingerprint`` also hashes the decoded values (to prove
        that two encodings hold the same image: see ``DecodeOutcome.values_sha256``).
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if (path is None) == (data is None):
            raise ValueError("give exactly one of path and data")
        self.start()
        assert self._child is not None
        request = {"mode": mode, "path": None if path is None else os.fspath(path),
                   "size": None if data is None else len(data), "fingerprint": fingerprint}
        try:
            kind, payload = self._child.ask(request, data, self.timeout)
        except DecoderCrash as exc:
            self.close()
            return DecodeOutcome(DECODER_CRASH, str(exc), 0)
        if kind == "oserror":
            raise OSError(*payload)
        return DecodeOutcome(*payload)


_SHARED: dict[str | None, DecoderGuard] = {}


def shared_guard(name: str | None = None) -> DecoderGuard:
    """This process's decoder guard for the decode function ``name`` ('module:function'),
    created on first use and reused; its child starts on the first check, is restarted after a
    crash and stopped when the process exits."""
    guard = _SHARED.get(name)
    if guard is None:
        guard = _SHARED[name] = DecoderGuard(decoder=name or None)
        atexit.register(guard.close)
    return guard


class _Child:
    """One child process and its pipes."""

    def __init__(self, proc: subprocess.Popen[bytes], stderr: BinaryIO) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self.proc, self.stderr = proc, stderr
        self.requests, self.answers = proc.stdin.fileno(), proc.stdout.fileno()
        self._finalizer = weakref.finalize(self, _stop_process, proc, stderr)

    @classmethod
    def start(cls, decoder: str) -> _Child:
        """Start ``python -m migrate_fs.decode`` and wait until it is ready to decode."""
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 - the child's, closed by stop()
        proc = subprocess.Popen([sys.executable, "-m", "migrate_fs.decode"], bufsize=0,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                                env=_child_environment(), close_fds=True,
                                start_new_session=True)  # a terminal's Ctrl-C is not for it
        child = cls(proc, stderr)
        try:
            kind, payload = child.ask({"decoder": decoder, "sys_path": sys.path}, None,
                                      STARTUP_TIMEOUT)
        except DecoderCrash as exc:
            child.stop()
            raise DecoderError(f"the decoder process did not start: {exc}; check [pixel] "
                               "decoder in the rules configuration") from None
        if kind != "ready":
            child.stop()
            raise DecoderError(f"the decoder process did not start: {payload}; check [pixel] "
                               "decoder in the rules configuration")
        return child

    def ask(self, request: dict[str, Any], data: bytes | bytearray | memoryview | None,
            timeout: float) -> tuple[str, Any]:
        """Send a request (and data), wait for the answer; DecoderCrash if the child died."""
        self._clear_stderr()
        try:
            _send(self.requests, pickle.dumps(request), data)
            raw = _receive(self.answers, time.monotonic() + timeout)
        except TimeoutError:
            self._kill_hung()
            raise DecoderCrash(f"the decoder did not answer within {timeout:g} s and was "
                               f"killed{self._where()}") from None
        except (BrokenPipeError, EOFError):
            raise DecoderCrash(self._death()) from None
        return pickle.loads(raw)

    def stop(self) -> None:
        self._finalizer()

    def _kill_hung(self) -> None:
        """Have the child dump its stack (to say where it hung), then kill it."""
        try:
            self.proc.send_signal(DUMP_SIGNAL)
            self.proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            pass
        self.proc.kill()
        self.proc.wait()

    def _death(self) -> str:
        """How the child died (it closed its pipes: it is exiting or gone)."""
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"the decoder process was killed by {name}{self._where()}"
        return f"the decoder process exited with code {code}{self._where()}"

    def _clear_stderr(self) -> None:
        """Forget what the child wrote to stderr so far (it shares this file's offset)."""
        fd = self.stderr.fileno()
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)

    def _where(self) -> str:
        """Where the child was: the innermost frame of faulthandler's report, else the last
        line it wrote to stderr (an uncaught exception, a Rust panic); empty if none."""
        fd = self.stderr.fileno()
        size = os.fstat(fd).st_size
        tail = os.pread(fd, STDERR_TAIL, max(0, size - STDERR_TAIL)).decode("utf-8", "replace")
        report = tail.find("(most recent call first)")  # faulthandler's, not a traceback's
        frame = _FRAME.search(tail, max(report, 0))
        if report >= 0 and frame:
            return f" in {frame.group(3)} ({Path(frame.group(1)).name}, line {frame.group(2)})"
        lines = tail.strip().splitlines()
        return f": {_one_line(lines[-1])}" if lines else ""


def _stop_process(proc: subprocess.Popen[bytes], stderr: BinaryIO) -> None:
    """Close the child's stdin (it exits at end of input), kill it if it lingers."""
    for pipe in (proc.stdin, proc.stdout):
        try:
            if pipe is not None:
                pipe.close()
        except OSError:
            pass
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    stderr.close()


def _child_environment() -> dict[str, str]:
    """This environment, with this package importable whatever the working directory."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


# Framing ----------------------------------------------------------------------------------


def _send(fd: int, message: bytes, data: bytes | bytearray | memoryview | None) -> None:
    """A length-prefixed message, then the raw data (its length is in the message)."""
    _write_all(fd, _LENGTH.pack(len(message)) + message)
    if data is not None:
        _write_all(fd, data)


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view):]


def _receive(fd: int, deadline: float | None = None) -> bytes:
    """One length-prefixed message; EOFError at end of input, TimeoutError past deadline."""
    (length,) = _LENGTH.unpack(_read_exact(fd, _LENGTH.size, deadline))
    return _read_exact(fd, length, deadline)


def _read_exact(fd: int, n: int, deadline: float | None = None) -> bytes:
    chunks, missing = [], n
    poller = select.poll() if deadline is not None else None
    if poller is not None:
        poller.register(fd, select.POLLIN)
    while missing:
        if poller is not None and deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not poller.poll(remaining * 1000):
                raise TimeoutError
        chunk = os.read(fd, min(missing, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


# The child side ---------------------------------------------------------------------------


def main() -> int:
    """The child's loop: read requests from stdin until it closes, answer on stdout."""
    source, sink = _claim_pipes()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; the child ends with its pipe
    faulthandler.enable()
    faulthandler.register(DUMP_SIGNAL, all_threads=False)
    warnings.simplefilter("ignore")
    try:
        config = pickle.loads(_receive(source))
    except EOFError:
        return 0
    sys.path[:0] = [p for p in config["sys_path"] if p not in sys.path]
    try:
        decode = _load(config["decoder"])
    except Exception as exc:
        _answer(sink, "error", f"cannot load decoder {config['decoder']!r}: {exc}")
        return 1
    errors = _PluginErrors.install()
    _warm_up()
    _answer(sink, "ready", os.getpid())
    while True:
        try:
            request = pickle.loads(_receive(source))
            size = request["size"]
            data = None if size is None else _read_exact(source, size)
        except EOFError:
            return 0
        _answer(sink, *_serve(decode, request, data, errors))


def _warm_up() -> None:
    """Import pydicom's decoders and their plugins now, not during the first check."""
    import pydicom.pixels.decoders.pylibjpeg  # noqa: F401
    from pydicom.pixels import get_decoder
    from pydicom.uid import RLELossless

    get_decoder(RLELossless)


def _claim_pipes() -> tuple[int, int]:
    """Keep stdin and stdout for the protocol; anything else printing goes to stderr."""
    source, sink = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    return source, sink


def _answer(sink: int, kind: str, payload: Any) -> None:
    message = pickle.dumps((kind, payload))
    _write_all(sink, _LENGTH.pack(len(message)) + message)


def _load(name: str) -> DecodeFunction:
    module, _, function = name.partition(":")
    return getattr(importlib.import_module(module), function)


def _serve(decode: DecodeFunction, request: dict[str, Any], data: bytes | None,
           errors: _PluginErrors) -> tuple[str, Any]:
    """Open the object, decode it, and say how it went."""
    path = request["path"]
    try:
        fp = _open(path, data)
    except OSError as exc:
        return "oserror", (exc.errno, exc.strerror or str(exc), path)
    frames = 0
    errors.clear()
    values = _Values() if request.get("fingerprint") else None
    with fp:
        try:
            for frame in decode(fp, request["mode"]):
                frames += 1
                if values is not None:
                    values.add(frame)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            code, message = classify(exc, errors.exceptions)
            return "outcome", (code, message, frames)
    if values is not None:
        return "outcome", (None, None, frames, values.sha256.hexdigest(), values.geometry(frames))
    return "outcome", (None, None, frames)


class _Values:
    """The hash and geometry of decoded frames (C order, the decoder's dtype)."""

    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.shape: tuple[int, ...] = ()
        self.dtype = ""

    def add(self, frame: object) -> None:
        import numpy as np

        array = np.ascontiguousarray(frame)
        if array.dtype.byteorder == ">" or (array.dtype.byteorder == "=" and sys.byteorder
                                            == "big"):
            array = array.astype(array.dtype.newbyteorder("<"))
        self.shape, self.dtype = array.shape, array.dtype.str
        self.sha256.update(f"{array.shape}{array.dtype.str}".encode())
        self.sha256.update(array.data)

    def geometry(self, frames: int) -> tuple[int, tuple[int, ...], str]:
        return frames, tuple(int(n) for n in self.shape), self.dtype


def _open(path: str | None, data: bytes | None) -> BinaryIO:
    """The object: its file, or its bytes (never copied)."""
    if path is None:
        return io.BytesIO(data or b"")
    return open(path, "rb")  # closed by the caller


class _PluginErrors(logging.Handler):
    """The exceptions pydicom's decoding plugins raised (pydicom logs each, then raises one
    RuntimeError listing their messages: the types are only here)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.exceptions: list[BaseException] = []

    @classmethod
    def install(cls) -> _PluginErrors:
        handler = cls()
        logger = logging.getLogger("pydicom")
        logger.addHandler(handler)
        logger.propagate = False
        return handler

    def clear(self) -> None:
        self.exceptions = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.exceptions.append(record.exc_info[1])


# Outcome classification -------------------------------------------------------------------

_UNSUPPORTED = re.compile(
    r"not implemented|not supported|unsupported|"
    r"error code '-10(29|34|40)'",  # libjpeg: does not apply, not available, not in profile
    re.IGNORECASE)


def classify(exc: BaseException, plugin_errors: list[BaseException]) -> tuple[str | None, str]:
    """``(code, message)`` for an exception raised while decoding (a Rust panic included).

    * ``decoder_unavailable``: :class:`Unavailable` (no decoder for the transfer syntax, no
      plugin installed, encapsulated data of unknown compression), ``NotImplementedError``
      (pydicom: an unsupported transfer syntax or pixel layout), or every decoding plugin
      failed saying so (``NotImplementedError``, "not supported", libjpeg errors -1029,
      -1034, -1040, openjpeg's "not implemented").
    * ``None``: the object has no pixel data (nothing to decode, nothing wrong with it here).
    * ``decode_failed``: anything else; a plugin rejected the stream, a frame decoded to the
      wrong size, the Image Pixel attributes are missing or invalid, the data ends early.
    """
    text = _one_line(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, Unavailable):
        return DECODER_UNAVAILABLE, _one_line(str(exc))
    if isinstance(exc, NotImplementedError) or (plugin_errors and all(
            isinstance(e, NotImplementedError) or _UNSUPPORTED.search(str(e))
            for e in plugin_errors)):
        return DECODER_UNAVAILABLE, text
    if isinstance(exc, AttributeError) and "no pixel data to decode" in str(exc):
        return None, "no Pixel Data: nothing to decode"
    return DECODE_FAILED, text


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 3] + "..."


# The default decode function (runs in the child) ------------------------------------------


def decode_pixels(fp: BinaryIO, mode: str) -> Iterator[object]:
    """Decode the pixel data of the object in ``fp`` with pydicom 3 and its plugins (pylibjpeg
    here), one frame at a time: frame 0 only for ``first``. Yields each decoded frame.

    The file is read through (no whole-object copy) except when deflated. A dataset without a
    Transfer Syntax UID is read as pydicom reads it (implicit or explicit VR, byte order from
    its first element); if its Pixel Data is encapsulated, the compression is unknown.
    """
    from pydicom import dcmread
    from pydicom.pixels import iter_pixels
    from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

    indices = [0] if mode == "first" else None
    syntax = _declared_transfer_syntax(fp)
    if syntax == DeflatedExplicitVRLittleEndian:
        dataset = dcmread(fp, force=True)  # inflated in memory: there is no other way
        yield from iter_pixels(dataset, indices=indices)
        return
    syntax = UID(syntax) if syntax else _detected_transfer_syntax(fp)
    _require_decoder(syntax)
    fp.seek(0)
    yield from iter_pixels(fp, transfer_syntax_uid=syntax, indices=indices)


def _declared_transfer_syntax(fp: BinaryIO) -> str | None:
    """The file meta's Transfer Syntax UID, if any."""
    from pydicom.filereader import _read_file_meta_info, read_preamble

    fp.seek(0)
    read_preamble(fp, force=True)
    syntax = _read_file_meta_info(fp).get("TransferSyntaxUID")
    fp.seek(0)
    return str(syntax).strip("\x00 ") if syntax else None


def _detected_transfer_syntax(fp: BinaryIO) -> str:
    """The encoding of a dataset without a Transfer Syntax UID, guessed as pydicom does."""
    from pydicom import dcmread
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    fp.seek(0)
    implicit, little = dcmread(fp, force=True, stop_before_pixels=True).original_encoding[:2]
    head = fp.read(12)  # the Pixel Data element's header, if there is one
    fp.seek(0)
    if len(head) == 12 and head[:4] in (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10"):
        length = head[4:8] if implicit else head[8:12]
        if length == b"\xff\xff\xff\xff":
            raise Unavailable("no Transfer Syntax UID and encapsulated Pixel Data: the "
                              "compression is not known")
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def _require_decoder(syntax: str) -> None:
    """Unavailable unless pydicom has a decoder with an installed plugin for ``syntax``."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import UID

    uid = UID(syntax)
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise Unavailable(f"no decoder for transfer syntax {uid.name} ({uid})") from None
    if uid.is_encapsulated and not decoder.available_plugins:
        missing = "; ".join(decoder.missing_dependencies)
        raise Unavailable(f"no installed plugin decodes {uid.name}: {missing}")


if __name__ == "__main__":  # run as migrate_fs.decode, not __main__: one set of classes
    from migrate_fs.decode import main as _main

    sys.exit(_main())
