"""cli.main: the ``migrate-fs`` command: the verbs, in order, and the exit codes.

Exit codes: 0 when every source object is accounted for in the manifest and ended as planned;
1 on a run-level error (:class:`migrate_fs.errors.MigrateError`: a missing source, a step run
out of order, output inside the source, a run another process holds), printed as one line
saying what to do next; 2 on a usage error (an option that cannot work, such as an --out that
is a file); 3 when objects failed at write time (a full disk, an unreadable source: the summary
names the reasons, and running the same command again retries them); 4 when an audit found
differences (verify: an output failing a check, a stray file; reconcile: a study that does not
reconcile); 130 when interrupted (Ctrl-C: running the same command again resumes; a second
Ctrl-C stops at once).
Each verb is one module with ``HELP``, ``add_parser(subparsers)`` and ``handle(args) -> int``.
"""

from __future__ import annotations

import _thread
import argparse
import contextlib
import io
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from migrate_fs import __version__
from migrate_fs.cli import (
    dicomdir,
    diff,
    inventory,
    plan,
    reconcile,
    report,
    rules,
    run,
    status,
    verify,
    write,
)
from migrate_fs.errors import MigrateError

COMMANDS = [inventory, plan, write, run, status, verify, reconcile, diff, report, dicomdir,
            rules]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="migrate-fs", description=(
        "Migrate a legacy DICOM storage export into Part 10 folders, with Parquet manifests "
        "that account for every source object."))
    parser.add_argument("--version", action="version", version=f"migrate-fs {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", module="pydicom")  # the manifest is where problems go
    handlers = {c.__name__.rsplit(".", 1)[-1]: c.handle for c in COMMANDS}
    watching = _watch_interrupts()
    try:
        with _quiet_when_closed():
            return handlers[args.command](args)
    except MigrateError as exc:
        print(f"migrate-fs: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("\nmigrate-fs: interrupted; run the same command again to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if watching:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


_WATCHER: list[threading.Thread] = []


def _watch_interrupts() -> bool:
    """Take Ctrl-C away from every thread and process this command starts, and give it to one
    watcher thread: the first Ctrl-C interrupts the main thread (a clean stop, exit 130), a
    second one ends the process at once. A terminal sends Ctrl-C to the whole process group;
    worker and decoder processes inherit the blocked signal, so none of them dies half-way
    through its start-up printing a traceback: the main process stops them."""
    if threading.current_thread() is not threading.main_thread():
        return False
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    if not _WATCHER:
        _WATCHER.append(threading.Thread(target=_watch, daemon=True, name="interrupts"))
        _WATCHER[0].start()
    return True


def _watch() -> None:
    while True:
        signal.sigwait({signal.SIGINT})
        _thread.interrupt_main()
        signal.sigwait({signal.SIGINT})
        os.write(2, b"\nmigrate-fs: interrupted again: stopped at once\n")
        os._exit(EXIT_INTERRUPTED)


@contextlib.contextmanager
def _quiet_when_closed() -> Iterator[None]:
    """A closed stdout (``| head``) must not stop a migration: once writing to it fails, the
    rest of the output goes nowhere and the work goes on."""
    stdout = sys.stdout
    sys.stdout = _Closable(stdout)
    try:
        yield
    finally:
        sys.stdout = stdout
        if isinstance(stdout, io.TextIOWrapper) and _Closable.closed_fd:
            os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())


class _Closable(io.TextIOBase):
    closed_fd = False

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        if not _Closable.closed_fd:
            try:
                self.stream.write(text)
                self.stream.flush()
            except BrokenPipeError:
                _Closable.closed_fd = True
        return len(text)

    def flush(self) -> None:
        if not _Closable.closed_fd:
            try:
                self.stream.flush()
            except BrokenPipeError:
                _Closable.closed_fd = True

    def isatty(self) -> bool:
        return bool(self.stream.isatty()) if not _Closable.closed_fd else False


if __name__ == "__main__":
    sys.exit(main())
