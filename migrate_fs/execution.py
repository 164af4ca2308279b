"""execution: run the per-object steps over batches of objects, in parallel and resumably.

Objects go to joblib workers (loky processes, started once per run) in batches, so per-object
overhead stays small; each batch writes its own manifest part after the files it describes.
A part's name carries a hash of what the batch holds, so a re-run skips the batches whose part
is already there (the work a crash did not lose) and redoes the rest.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
from joblib import Parallel, delayed
from tqdm import tqdm

from migrate_fs import manifest
from migrate_fs.config import Config
from migrate_fs.inventory import inventory_members, inventory_row
from migrate_fs.sources import SourceObject, iter_sources
from migrate_fs.writer import execute, execute_members

INVENTORY_BATCH = 256
ARCHIVE_PART_ROWS = 1024
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


def _inventory_batch(batch: list[SourceObject], folder: Path, name: str,
                     decode_check: str = "none", decoder: str | None = None) -> tuple[int, int]:
    _quiet_worker()
    before = bytes_read_so_far()
    rows = [inventory_row(o, decode_check, decoder) for o in batch]
    read = bytes_read_so_far() - before
    manifest.write_part(folder, name, rows, "inventory")
    return len(batch), read


def _inventory_archive(paths: list[str], folder: Path, key: str,
                       decode_check: str = "none", decoder: str | None = None) -> tuple[int, int]:
    """Inventory the members of one dump, front to back; parts are named after the dump."""
    _quiet_worker()
    before = bytes_read_so_far()
    _forget_archive(folder, key)
    count = 0
    for index, rows in enumerate(batched(inventory_members(paths, decode_check, decoder),
                                         ARCHIVE_PART_ROWS)):
        manifest.write_part(folder, f"a{key}-{index:06d}", rows, "inventory")
        count += len(rows)
    (folder / f".a{key}.done").write_text(str(count))
    return count, bytes_read_so_far() - before


def _forget_archive(folder: Path, key: str) -> None:
    manifest.remove_parts(folder, {n for n in manifest.part_names(folder)
                                   if n.startswith(f"a{key}-")})
    (folder / f".a{key}.done").unlink(missing_ok=True)


def _archive_tasks(archives: list[list[str]], folder: Path,
                   make_task: Callable[[list[str], str], Any],
                   key_of: Callable[[list[str]], str]) -> tuple[list[Any], int]:
    """Tasks for the archives whose parts are not complete; the rows of those that are."""
    tasks, resumed, keys = [], 0, set()
    for paths in archives:
        key = key_of(paths)
        keys.add(key)
        done = folder / f".a{key}.done"
        if done.exists():
            resumed += int(done.read_text() or 0)
        else:
            tasks.append(make_task(paths, key))
    for name in manifest.part_names(folder):  # parts of archives no longer in the run
        if name.startswith("a") and name[1:].split("-")[0] not in keys:
            _forget_archive(folder, name[1:].split("-")[0])
    return tasks, resumed


def _file_key(paths: list[str]) -> str:
    return _key((p, os.path.getsize(p), os.stat(p).st_mtime_ns) for p in paths)


def run_inventory(roots: list[str], manifests: Path, run: str, *, workers: int,
                  quiet: bool = False, volume_sets: list[list[str]] | None = None,
                  decode_check: str = "none", decoder: str | None = None) -> tuple[int, int]:
    """Inventory every object below ``roots`` and in every archive found there or given as
    ``volume_sets``; returns (objects, bytes the readers read)."""
    folder = manifest.stage_dir(manifests, run, "inventory")
    existing = {n for n in manifest.part_names(folder) if n.startswith("part-")}
    current: set[str] = set()
    resumed = 0

    def tasks() -> Iterator[Any]:
        nonlocal resumed
        for index, batch in enumerate(batched(iter_sources(roots), INVENTORY_BATCH)):
            name = f"part-{index:06d}-{_key((o.locator, o.size, o.mtime_ns) for o in batch)}" \
                + ("" if decode_check == "none" else f"-d{decode_check}")
            current.add(name)
            if name in existing:
                resumed += len(batch)
                continue
            yield delayed(_inventory_batch)(batch, folder, name, decode_check, decoder)

    done = read = 0
    with _progress("inventory", quiet) as bar:
        for count, batch_read in _parallel(workers)(tasks()):
            done += count
            read += batch_read
            bar.update(count)
        manifest.remove_parts(folder, existing - current)
        found = manifest.read_stage(manifests, run, "inventory", ["locator", "kind"]) \
            if manifest.part_names(folder) else None
        archives = [[loc] for loc, kind in zip(*(found.column(c).to_pylist() for c in
                                                 ("locator", "kind"))) if kind == "archive"] \
            if found is not None else []
        archives += [list(v) for v in volume_sets or []]
        archive_tasks, archive_resumed = _archive_tasks(
            archives, folder,
            lambda p, k: delayed(_inventory_archive)(p, folder, k, decode_check, decoder),
            lambda p: _file_key(p) + ("" if decode_check == "none" else decode_check[0]))
        for count, batch_read in _parallel(workers)(archive_tasks):
            done += count
            read += batch_read
            bar.update(count)
    return done + resumed + archive_resumed, read


def _write_batch(rows: list[dict[str, Any]], out: Path, folder: Path, name: str,
                 fsync: bool) -> tuple[int, int, int]:
    _quiet_worker()
    written = 0
    before = bytes_read_so_far()
    for row in rows:
        written += execute(row, out, fsync=fsync)["output_size"] or 0
    read = bytes_read_so_far() - before
    manifest.write_part(folder, name, rows, "result")
    return len(rows), written, read


def run_write(manifests: Path, run: str, out: Path, *, workers: int, quiet: bool = False,
              fsync: bool = False) -> tuple[int, int, int]:
    """Execute the plan; returns (objects accounted for, bytes written, bytes read) by this call."""
    plan = manifest.read_stage(manifests, run, "plan")
    folder = manifest.stage_dir(manifests, run, "result")
    existing = {n for n in manifest.part_names(folder) if n.startswith("part-")}
    in_archive = pc.is_valid(plan.column("archive"))
    members = plan.filter(in_archive)
    plan = plan.filter(pc.invert(in_archive))
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

    # Each dump's planned rows as an Arrow table in member order (compact; its worker turns
    # them into dicts a chunk at a time).
    by_archive: dict[tuple[str, ...], pa.Table] = {}
    if members.num_rows:
        members = members.sort_by([("archive", "ascending"), ("member_offset", "ascending")])
        volumes = members.column("archive_volumes").to_pylist()
        keys = [tuple(v) if v else (a,) for v, a in
                zip(volumes, members.column("archive").to_pylist())]
        start = 0
        for end in range(1, len(keys) + 1):
            if end == len(keys) or keys[end] != keys[start]:
                by_archive[keys[start]] = members.slice(start, end - start)
                start = end
    done = written = read = 0
    with _progress("write", quiet, plan.num_rows + members.num_rows) as bar:
        for count, size, batch_read in _parallel(workers)(tasks()):
            done += count
            written += size
            read += batch_read
            bar.update(count)
        manifest.remove_parts(folder, existing - current)

        def rows_key(paths: list[str]) -> str:
            rows = by_archive[tuple(paths)].select(["object_id", "action", "output_path"])
            return _key(zip(*(rows.column(c).to_pylist() for c in rows.column_names)))

        archive_tasks, archive_resumed = _archive_tasks(
            [list(p) for p in by_archive], folder,
            lambda p, k: delayed(_write_archive)(p, by_archive[tuple(p)], out, fsync, folder, k),
            rows_key)
        for count, size, batch_read in _parallel(workers)(archive_tasks):
            done += count
            written += size
            read += batch_read
            bar.update(count)
    return done + resumed + archive_resumed, written, read


def _write_archive(paths: list[str], rows: pa.Table, out: Path, fsync: bool,
                   folder: Path, key: str) -> tuple[int, int, int]:
    """Write the planned members of one dump in one pass; result parts named after it."""
    _quiet_worker()
    before = bytes_read_so_far()
    _forget_archive(folder, key)
    count = written = 0
    results = execute_members(paths, _iter_rows(rows, ARCHIVE_PART_ROWS), out, fsync=fsync)
    for index, rows in enumerate(batched(results, ARCHIVE_PART_ROWS)):
        manifest.write_part(folder, f"a{key}-{index:06d}", rows, "result")
        count += len(rows)
        written += sum(r["output_size"] or 0 for r in rows)
    (folder / f".a{key}.done").write_text(str(count))
    return count, written, bytes_read_so_far() - before


def _iter_rows(table: pa.Table, chunk: int = 4096) -> Iterator[dict[str, Any]]:
    for start in range(0, table.num_rows, chunk):
        yield from table.slice(start, chunk).to_pylist()


def run_plan(manifests: Path, run: str, config: Config | None = None,
             corrections: pa.Table | None = None) -> tuple[pa.Table, pa.Table | None]:
    """Decide for the whole run and write the plan, one part per inventory part.

    Only the columns the decisions need are held for the whole run; each part is then read in
    full, joined with its decisions and written. Returns the action, reason and size columns,
    and the corrections rows that matched no object (None without corrections).
    """
    from migrate_fs.corrections import apply_corrections
    from migrate_fs.plan import CORRECTION_INPUT, DECISION_INPUT, attach, decide

    narrow = manifest.read_stage(manifests, run, "inventory", DECISION_INPUT)
    applied = apply_corrections(narrow.select(CORRECTION_INPUT), corrections) \
        if corrections is not None else None
    decided = decide(narrow, config, applied)
    orphans = applied.orphans if applied is not None else None
    source = manifest.stage_dir(manifests, run, "inventory")
    folder = manifest.stage_dir(manifests, run, "plan")
    old = manifest.part_names(folder)
    names = sorted(manifest.part_names(source))  # the order read_stage read them in
    offset = 0
    for name in names:
        part = manifest.read_part(source, name, "inventory")
        manifest.write_part(folder, name, attach(part, decided.slice(offset, part.num_rows)),
                            "plan")
        offset += part.num_rows
    manifest.remove_parts(folder, old - set(names))
    summary = decided.select(["action", "reason", "problems"]).append_column(
        "size", narrow.column("size"))
    return summary, orphans
