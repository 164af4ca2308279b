"""execution: run the per-object steps over batches of objects, in parallel and resumably.

Objects go to joblib workers (loky processes, started once per run) in batches, so per-object
overhead stays small; each batch writes its own manifest part after the files it describes.
A part's name carries a hash of what the batch holds, so a re-run skips the batches whose part
is already there (the work a crash did not lose) and redoes the rest.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
from joblib import Parallel, delayed
from tqdm import tqdm

from migrate_fs import manifest
from migrate_fs.inventory import inventory_row
from migrate_fs.sources import SourceObject, iter_sources
from migrate_fs.writer import write_object

INVENTORY_BATCH = 256
WRITE_BATCH = 128
WRITE_BATCH_BYTES = 256 << 20
T = TypeVar("T")


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


def _key(*parts: Iterable[Any]) -> str:
    h = hashlib.sha256()
    for values in parts:
        for value in values:
            h.update(repr(value).encode())
    return h.hexdigest()[:12]


def _progress(desc: str, quiet: bool, total: int | None = None) -> tqdm:
    return tqdm(desc=desc, total=total, unit="obj", disable=quiet or not sys.stderr.isatty(),
                smoothing=0.1)


def _parallel(workers: int) -> Parallel:
    return Parallel(n_jobs=workers, backend="loky", return_as="generator_unordered")


def _quiet_worker() -> None:
    """pydicom warns and logs about every oddity; here the manifest is where problems go."""
    warnings.simplefilter("ignore")
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)


def bytes_read_so_far() -> int:
    """Bytes this process has asked read calls for (``rchar`` of /proc/self/io; 0 elsewhere)."""
    try:
        with open("/proc/self/io", "rb") as f:
            for line in f:
                if line.startswith(b"rchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _inventory_batch(batch: list[SourceObject], folder: Path, name: str) -> tuple[int, int]:
    _quiet_worker()
    before = bytes_read_so_far()
    rows = [inventory_row(o) for o in batch]
    read = bytes_read_so_far() - before
    manifest.write_part(folder, name, rows, "inventory")
    return len(batch), read


def run_inventory(roots: list[str], manifests: Path, run: str, *, workers: int,
                  quiet: bool = False) -> tuple[int, int]:
    """Inventory every object below ``roots``; returns (objects, bytes the readers read)."""
    folder = manifest.stage_dir(manifests, run, "inventory")
    existing = manifest.part_names(folder)
    current: set[str] = set()
    resumed = 0

    def tasks() -> Iterator[Any]:
        nonlocal resumed
        for index, batch in enumerate(batched(iter_sources(roots), INVENTORY_BATCH)):
            name = f"part-{index:06d}-{_key((o.locator, o.size, o.mtime_ns) for o in batch)}"
            current.add(name)
            if name in existing:
                resumed += len(batch)
                continue
            yield delayed(_inventory_batch)(batch, folder, name)

    done = read = 0
    with _progress("inventory", quiet) as bar:
        for count, batch_read in _parallel(workers)(tasks()):
            done += count
            read += batch_read
            bar.update(count)
    manifest.remove_parts(folder, existing - current)
    return done + resumed, read


def _write_batch(rows: list[dict[str, Any]], out: Path, folder: Path, name: str,
                 fsync: bool) -> tuple[int, int, int]:
    _quiet_worker()
    written = 0
    before = bytes_read_so_far()
    for row in rows:
        if row["action"] == "migrate":
            row.update(write_object(row, out, fsync=fsync))
            written += row["output_size"] or 0
            if row["status"] == "failed":
                row["problems"] = [*(row["problems"] or []),
                                   {"code": row["reason"], "message": row["result_message"]}]
        else:
            row.update(status="not_written", output_size=None, output_sha256=None,
                       result_message=None)
    read = bytes_read_so_far() - before
    manifest.write_part(folder, name, rows, "result")
    return len(rows), written, read


def run_write(manifests: Path, run: str, out: Path, *, workers: int, quiet: bool = False,
              fsync: bool = False) -> tuple[int, int, int]:
    """Execute the plan; returns (objects accounted for, bytes written, bytes read) by this call."""
    plan = manifest.read_stage(manifests, run, "plan")
    folder = manifest.stage_dir(manifests, run, "result")
    existing = manifest.part_names(folder)
    current: set[str] = set()
    resumed = 0

    def tasks() -> Iterator[Any]:
        nonlocal resumed
        rows = _iter_rows(plan)
        for index, batch in enumerate(batched(rows, WRITE_BATCH, lambda r: r["size"] or 0,
                                              WRITE_BATCH_BYTES)):
            name = f"part-{index:06d}-" + _key(
                (r["object_id"], r["action"], r["output_path"]) for r in batch)
            current.add(name)
            if name in existing:
                resumed += len(batch)
                continue
            yield delayed(_write_batch)(batch, out, folder, name, fsync)

    done = written = read = 0
    with _progress("write", quiet, plan.num_rows) as bar:
        for count, size, batch_read in _parallel(workers)(tasks()):
            done += count
            written += size
            read += batch_read
            bar.update(count)
    manifest.remove_parts(folder, existing - current)
    return done + resumed, written, read


def _iter_rows(table: pa.Table, chunk: int = 4096) -> Iterator[dict[str, Any]]:
    for start in range(0, table.num_rows, chunk):
        yield from table.slice(start, chunk).to_pylist()


def run_plan(manifests: Path, run: str) -> pa.Table:
    """Compute the plan from the inventory and write it; returns the plan table."""
    from migrate_fs.plan import make_plan

    plan = make_plan(manifest.read_stage(manifests, run, "inventory"))
    folder = manifest.stage_dir(manifests, run, "plan")
    old = manifest.part_names(folder)
    names = []
    for index, start in enumerate(range(0, max(plan.num_rows, 1), PLAN_PART_ROWS)):
        name = f"part-{index:06d}"
        manifest.write_part(folder, name, plan.slice(start, PLAN_PART_ROWS), "plan")
        names.append(name)
    manifest.remove_parts(folder, old - set(names))
    return plan


PLAN_PART_ROWS = 1_000_000
