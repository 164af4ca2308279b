"""execution.batches: run per-object work over batches, in parallel and resumably.

Items go to a backend's workers (:mod:`.loky`, or :mod:`.dask` on a cluster: :mod:`.backends`)
in batches, so per-object overhead stays small; each batch writes its own manifest part after
the work it describes. A part's name carries a hash of what the batch holds, so a re-run skips
the batches whose part is already there (the work a crash did not lose) and redoes the rest. A
stream (an archive, read front to back by one worker) writes numbered parts and a ``.done``
marker when it is complete.

This module knows nothing of DICOM: the work is a function given by the caller.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
from joblib import delayed
from tqdm import tqdm

from migrate_fs import manifest
from migrate_fs.execution.backends import run_tasks
from migrate_fs.execution.shards import Shard
from migrate_fs.iostats import bytes_read_so_far

STREAM_PART_ROWS = 1024
T = TypeVar("T")
# work on a batch: items -> manifest rows; work on a stream: (paths, payload) -> manifest rows
BatchWork = Callable[[list[Any]], list[dict[str, Any]]]
StreamWork = Callable[[list[str], Any], Iterable[dict[str, Any]]]
# a committed part (as a table) -> whether its work still holds (False: redo it)
Check = Callable[[pa.Table], bool]


@dataclass
class Outcome:
    """What a task, or a whole step, did."""

    objects: int = 0  # rows written (or found already written, for a step)
    bytes_read: int = 0  # what the workers read
    total: int = 0  # the sum of the caller's ``total_of`` column over the rows written

    def add(self, other: Outcome) -> None:
        self.objects += other.objects
        self.bytes_read += other.bytes_read
        self.total += other.total


def batched(items: Iterable[T], size: int, weight: Callable[[T], int] | None = None,
            max_weight: int = 0) -> Iterator[list[T]]:
    """Consecutive batches of at most ``size`` items (and ``max_weight`` total weight)."""
    batch: list[T] = []
    total = 0
    for item in items:
        batch.append(item)
        total += weight(item) if weight else 0
        if len(batch) >= size or (weight and total >= max_weight):
            yield batch
            batch, total = [], 0
    if batch:
        yield batch


def part_key(*parts: Iterable[Any]) -> str:
    """A short stable hash of the values: what makes a part name change with its content."""
    h = hashlib.sha256()
    for values in parts:
        for value in values:
            h.update(repr(value).encode())
    return h.hexdigest()[:12]


def named_batches(batches: Iterable[list[T]], identity: Callable[[T], Any],
                  suffix: str = "", shard: Shard | None = None) -> Iterator[tuple[str, list[T]]]:
    """``(part name, batch)``: the name holds the batch's index and a hash of its items'
    identities, so that a changed batch gets a new part (and the shard's name, if any)."""
    prefix = shard.prefix if shard is not None else "part-"
    for index, batch in enumerate(batches):
        yield f"{prefix}{index:06d}-{part_key(map(identity, batch))}{suffix}", batch


def table_rows(table: pa.Table, chunk: int = 4096) -> Iterator[dict[str, Any]]:
    """The rows of an Arrow table as dicts, a chunk at a time (never the whole table)."""
    for start in range(0, table.num_rows, chunk):
        yield from table.slice(start, chunk).to_pylist()


def progress(desc: str, quiet: bool, total: int | None = None) -> tqdm:
    """A progress bar on stderr, off when quiet or when stderr is not a terminal."""
    return tqdm(desc=desc, total=total, unit="obj", disable=quiet or not sys.stderr.isatty(),
                smoothing=0.1)


_HOME_PID: int | None = None  # the process that hands out the tasks (see _quiet_worker)


def _quiet_worker() -> None:
    """Libraries warn and log about every oddity; here the manifest is where problems go. A
    Ctrl-C is the main process's to handle (it stops the workers): a worker process ignores it
    (a dask worker runs tasks in threads, where signals cannot be set: its own process decides).
    A task run in the process that hands them out (``--workers 1``) leaves Ctrl-C alone: that
    process must still stop on it."""
    if threading.current_thread() is threading.main_thread() and os.getpid() != _HOME_PID:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    warnings.simplefilter("ignore")
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)


def _at_home() -> None:
    global _HOME_PID
    _HOME_PID = os.getpid()


def _total(rows: list[dict[str, Any]], column: str | None) -> int:
    return sum(r[column] or 0 for r in rows) if column else 0


def _batch_task(work: BatchWork, items: list[Any], folder: Path, name: str, stage: str,
                total_of: str | None) -> Outcome:
    _quiet_worker()
    before = bytes_read_so_far()
    rows = work(items)
    read = bytes_read_so_far() - before
    manifest.write_part(folder, name, rows, stage)
    return Outcome(len(rows), read, _total(rows, total_of))


def run_batches(batches: Iterable[tuple[str, list[Any]]], work: BatchWork, folder: Path,
                stage: str, *, workers: int, bar: tqdm, total_of: str | None = None,
                check: Check | None = None, scheduler: str | None = None,
                shard: Shard | None = None) -> Outcome:
    """Run ``work`` on every named batch whose part is not in ``folder`` yet, or whose part
    ``check`` finds no longer holds; parts of batches no longer named are removed (with a
    ``shard``, the parts of the other shards of its count are left alone). Returns the
    outcome of the work done plus the rows resumed."""
    _at_home()
    existing = {n for n in manifest.part_names(folder) if n.startswith("part-")
                and not (shard is not None and shard.keeps(n))}
    current: set[str] = set()
    resumed = 0

    def tasks() -> Iterator[Any]:
        nonlocal resumed
        for name, items in batches:
            current.add(name)
            if name in existing and (check is None
                                     or check(manifest.read_part(folder, name, stage))):
                resumed += len(items)
                continue
            yield delayed(_batch_task)(work, items, folder, name, stage, total_of)

    outcome = Outcome()
    for done in run_tasks(tasks(), workers, scheduler):
        outcome.add(done)
        bar.update(done.objects)
    manifest.remove_parts(folder, existing - current)
    outcome.objects += resumed
    return outcome


def _stream_holds(folder: Path, names: list[str], stage: str, check: Check) -> bool:
    return all(check(manifest.read_part(folder, name, stage)) for name in names)


def _stream_key(name: str) -> str:
    """The key of a stream's part ``a<key>-NNNNNN``."""
    return name[1:].split("-")[0]


def _forget_stream(folder: Path, key: str, names: Iterable[str]) -> None:
    manifest.remove_parts(folder, names)
    (folder / f".a{key}.done").unlink(missing_ok=True)


def _stream_task(work: StreamWork, paths: list[str], payload: Any, folder: Path, key: str,
                 stage: str, total_of: str | None, stale: list[str]) -> Outcome:
    """Work through one stream front to back; its parts are named after its key (``stale``:
    the parts an earlier, unfinished or no longer valid pass left)."""
    _quiet_worker()
    before = bytes_read_so_far()
    _forget_stream(folder, key, stale)
    outcome = Outcome()
    for index, rows in enumerate(batched(work(paths, payload), STREAM_PART_ROWS)):
        manifest.write_part(folder, f"a{key}-{index:06d}", rows, stage)
        outcome.add(Outcome(len(rows), 0, _total(rows, total_of)))
    (folder / f".a{key}.done").write_text(str(outcome.objects))
    outcome.bytes_read = bytes_read_so_far() - before
    return outcome


def run_streams(streams: Iterable[tuple[list[str], str, Any]], work: StreamWork, folder: Path,
                stage: str, *, workers: int, bar: tqdm, total_of: str | None = None,
                check: Check | None = None, scheduler: str | None = None,
                owned: Callable[[list[str], str], bool] | None = None) -> Outcome:
    """Run ``work`` on every ``(paths, key, payload)`` stream whose parts are not complete (or
    whose parts ``check`` finds no longer hold), of those ``owned(paths, key)`` gives this
    process (a shard: the others are neither run nor counted); the parts of streams no
    longer in the run are removed. ``streams`` is taken one stream at a time, as workers free
    up (never all at once: computing a stream's key may take a pass over its rows), and the
    folder is listed once."""
    _at_home()
    found: dict[str, list[str]] = {}
    for name in sorted(manifest.part_names(folder)):
        if name.startswith("a"):
            found.setdefault(_stream_key(name), []).append(name)
    keys: set[str] = set()
    resumed = 0

    def tasks() -> Iterator[Any]:
        nonlocal resumed
        for paths, key, payload in streams:
            keys.add(key)
            if owned is not None and not owned(paths, key):
                continue
            done = folder / f".a{key}.done"
            if done.exists() and (check is None
                                  or _stream_holds(folder, found.get(key, []), stage, check)):
                resumed += int(done.read_text() or 0)
                continue
            yield delayed(_stream_task)(work, paths, payload, folder, key, stage, total_of,
                                        found.get(key, []))

    outcome = Outcome()
    for result in run_tasks(tasks(), workers, scheduler):
        outcome.add(result)
        bar.update(result.objects)
    for key in set(found) - keys:
        _forget_stream(folder, key, found[key])
    outcome.objects += resumed
    return outcome
