"""manifest: the Parquet audit trail of a run, one dataset per stage.

``<manifests>/<run>/inventory``, ``.../plan`` and ``.../result`` each hold part files written by
independent workers; ``pandas.read_parquet(folder)`` reads one as a single table, and a step
reads it one part at a time (:func:`iter_stage`). Every source object has exactly one row per
stage, joined by ``object_id``. Parts are written under a dot-prefixed temporary name and
renamed when complete, so a reader never sees half a part. The columns are documented in
``manifests/SCHEMA.md``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from migrate_fs.errors import OutputError, RunLocked, StageMissing
from migrate_fs.header import ATTRIBUTES
from migrate_fs.problems import CHANGE, PROBLEM

SCHEMA_VERSION = "5"
STAGES = ("inventory", "plan", "result")

ELEMENT = pa.struct([("tag", pa.string()), ("vr", pa.string()), ("value", pa.binary())])

_INVENTORY = [
    ("object_id", pa.string()),
    ("locator", pa.string()),
    ("source", pa.string()),
    ("size", pa.int64()),
    ("mtime_ns", pa.int64()),
    # The file's identity when it was inventoried (since version 4): the writer checks that
    # it opens the same file (device, inode, size, mtime, ctime and its first bytes).
    ("device", pa.int64()),
    ("inode", pa.int64()),
    ("ctime_ns", pa.int64()),
    ("head_sha256", pa.string()),
    ("archive", pa.string()),
    ("archive_volumes", pa.list_(pa.string())),
    ("member", pa.string()),
    ("member_offset", pa.int64()),
    ("kind", pa.string()),
    ("has_preamble", pa.bool_()),
    ("has_file_meta", pa.bool_()),
    ("transfer_syntax", pa.string()),
    ("is_implicit_vr", pa.bool_()),
    ("is_little_endian", pa.bool_()),
    ("dataset_offset", pa.int64()),
    ("pixel_data_offset", pa.int64()),
    ("pixel_data_length", pa.int64()),
    ("pixel_data_encapsulated", pa.bool_()),
    *[(column, pa.string()) for column in ATTRIBUTES],
    ("elements", pa.list_(ELEMENT)),
    ("missing", pa.list_(pa.string())),
    ("empty", pa.list_(pa.string())),
    ("problems", pa.list_(PROBLEM)),
]
_PLAN = [
    ("output_patient_id", pa.string()),
    ("output_study_instance_uid", pa.string()),
    ("output_series_instance_uid", pa.string()),
    ("output_sop_instance_uid", pa.string()),
    ("action", pa.string()),
    ("reason", pa.string()),
    ("output_path", pa.string()),
    ("output_transfer_syntax", pa.string()),
    ("duplicate_of", pa.string()),
    ("duplicate_group", pa.string()),
    ("duplicate_kind", pa.string()),
    ("differs", pa.list_(pa.string())),
    ("content_sha256", pa.string()),
    ("changes", pa.list_(CHANGE)),
]
_RESULT = [
    ("status", pa.string()),
    ("output_size", pa.int64()),
    ("output_sha256", pa.string()),
    ("result_message", pa.string()),
]
# The verify stage (``migrate-fs verify``): one row per migrated object checked, with only
# these columns (join the result on object_id for the rest). Since version 5.
_VERIFY = [
    ("object_id", pa.string()),
    ("locator", pa.string()),
    ("output_path", pa.string()),
    ("verify_status", pa.string()),  # ok | failed
    ("problems", pa.list_(PROBLEM)),  # the failed checks, severity "blocking"
    ("pixel_compared", pa.bool_()),
    ("output_size", pa.int64()),  # as found
    ("output_sha256", pa.string()),  # as found
    ("pixel_sha256", pa.string()),  # of the output's Pixel Data value, when compared
]
_META = {b"migrate_fs_schema_version": SCHEMA_VERSION.encode()}
WRITTEN_BY = b"migrate_fs_written_by"  # a part's metadata: "<host> pid <pid>"
SCHEMAS: dict[str, pa.Schema] = {
    "inventory": pa.schema(_INVENTORY, metadata=_META),
    "plan": pa.schema(_INVENTORY + _PLAN, metadata=_META),
    "result": pa.schema(_INVENTORY + _PLAN + _RESULT, metadata=_META),
    "verify": pa.schema(_VERIFY, metadata=_META),
}


RunNotFound = StageMissing  # the name of earlier releases


def run_dir(manifests: str | Path, run: str) -> Path:
    """The folder of one run's manifests; the run name must be a plain folder name."""
    if not run or run in (".", "..") or "/" in run or "\\" in run or run.startswith("."):
        raise OutputError(f"run name {run!r} must be a plain name such as 'trial' or "
                          "'2026-11-pacs'")
    return Path(manifests) / run


def stage_dir(manifests: str | Path, run: str, stage: str) -> Path:
    return run_dir(manifests, run) / stage


def write_part(folder: Path, name: str, rows: list[dict[str, Any]] | pa.Table,
               stage: str) -> Path:
    """Write rows as ``folder/name.parquet`` atomically (temporary dot name, fsync, rename).
    The part's metadata names the host and process that wrote it (``written_by``)."""
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(rows, pa.Table):
        table = rows.select(SCHEMAS[stage].names).cast(SCHEMAS[stage])
    else:
        table = pa.Table.from_pylist(rows, schema=SCHEMAS[stage])
    table = table.replace_schema_metadata({**_META, WRITTEN_BY: _writer()})
    final = folder / f"{name}.parquet"
    tmp = folder / f".{name}.parquet.tmp"
    pq.write_table(table, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)
    return final


def _writer() -> bytes:
    return f"{socket.gethostname()} pid {os.getpid()}".encode()


def written_by(folder: Path, name: str) -> str | None:
    """The host and process that wrote a part (None for parts of earlier releases)."""
    meta = pq.read_schema(folder / f"{name}.parquet").metadata or {}
    return meta[WRITTEN_BY].decode() if WRITTEN_BY in meta else None


def write_table(path: Path, table: pa.Table) -> None:
    """Write a side table (such as the corrections orphans) atomically (the temporary name
    is the writer's own: the shards of a plan write the same table at once)."""
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def part_names(folder: Path) -> set[str]:
    """Names (without .parquet) of the complete parts in a stage folder."""
    if not folder.is_dir():
        return set()
    return {p.name[: -len(".parquet")] for p in folder.iterdir()
            if p.name.endswith(".parquet") and not p.name.startswith(".")}


def sweep_temporary(folder: Path, prefix: str | None = None) -> int:
    """Remove the temporary files a killed writer of this stage folder left (``.<part>.parquet
    .tmp``, ``.run.json.tmp``: only migrate-fs's own naming); returns how many. With ``prefix``
    (a shard's part names), only those of parts named so: the other shards may be writing
    theirs at this moment (the rest waits for an unsharded step)."""
    if not folder.is_dir():
        return 0
    stale = [p for p in folder.iterdir() if p.name.startswith(f".{prefix or ''}")
             and p.name.endswith((".parquet.tmp", ".run.json.tmp"))]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


@contextlib.contextmanager
def run_lock(manifests: str | Path, run: str, what: str,
             shard: tuple[int, int] | None = None) -> Iterator[None]:
    """Hold the run's lock (``<run>/.lock``, an exclusive flock) while ``what`` runs, so that two
    processes never write one run's manifests at once. Re-entrant within a process.

    With ``shard`` (i, N), the run's lock is held shared, so that the other shards run at the
    same time (and no unsharded step does), and ``<run>/.lock-shard-<i>of<N>`` exclusively:
    two processes never work on one shard."""
    folder = run_dir(manifests, run)
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if shard is None:
            stack.enter_context(_locked(folder / ".lock", fcntl.LOCK_EX, what,
                                        f"run {run!r} is busy"))
        else:
            stack.enter_context(_locked(folder / ".lock", fcntl.LOCK_SH, None,
                                        f"run {run!r} is busy"))
            stack.enter_context(_locked(folder / f".lock-shard-{shard[0]}of{shard[1]}",
                                        fcntl.LOCK_EX, what,
                                        f"shard {shard[0]}/{shard[1]} of run {run!r} is busy"))
        yield


@contextlib.contextmanager
def _locked(path: Path, mode: int, what: str | None, busy: str) -> Iterator[None]:
    """An flock on ``path`` (``what``, if given, written in it as the holder's line: taken again
    by this process, for the step of ``run`` that runs now, and put back after it)."""
    key = str(path.resolve())
    if key in _HELD:  # this process holds it already (run: inventory, plan, write)
        held = _HELD[key]
        before = _holder_line(held, what)
        try:
            yield
        finally:
            if before:
                _holder_line(held, before)
        return
    with open(path, "a+") as f:
        try:
            fcntl.flock(f.fileno(), mode | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or ("another process" if mode == fcntl.LOCK_SH
                                          else "a shard's process (see the .lock-shard-* files)")
            raise RunLocked(f"{busy}: {holder} holds {path}; wait for it to end (two processes "
                            "must not write the same manifests at once), or stop it") from None
        _HELD[key] = f
        _holder_line(f, what)
        try:
            yield
        finally:
            del _HELD[key]
            if what is not None:
                f.truncate(0)
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _holder_line(f: IO[str], what: str | None) -> str | None:
    """Write ``what`` (with this process's pid and host) as the holder's line of a held lock
    file; returns the line it replaced (None, and nothing written, when ``what`` is None)."""
    if what is None:
        return None
    f.seek(0)
    before = f.read()
    line = what if what.endswith(")") and "(pid " in what else \
        f"{what} (pid {os.getpid()} on {socket.gethostname()})"
    f.seek(0)
    f.truncate()  # the file is opened for appending: empty, the line is its start
    f.write(line)
    f.flush()
    return before


_HELD: dict[str, IO[str]] = {}


def lock_holder(manifests: str | Path, run: str) -> str | None:
    """Who holds the run's lock now (the holder's line: command, pid, host), or None when no
    process does. Takes nothing: a shared lock tried and released at once."""
    folder = run_dir(manifests, run)
    path = folder / ".lock"
    if not path.exists():
        return None
    with open(path) as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return f.read().strip() or "another process"
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    holders = [f"shard {name}: {what}" for name, what in shard_holders(manifests, run).items()]
    return "; ".join(holders) or None


def shard_holders(manifests: str | Path, run: str) -> dict[str, str]:
    """The shards at work on ``run`` now: ``{"i/N": the holder's line}``. Takes nothing."""
    holders = {}
    for shard in sorted(run_dir(manifests, run).glob(".lock-shard-*")):
        with open(shard) as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                name = shard.name[len(".lock-shard-"):].replace("of", "/")
                holders[name] = f.read().strip() or "a process"
                continue
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    return holders


def remove_parts(folder: Path, names: Iterable[str]) -> None:
    for name in names:
        (folder / f"{name}.parquet").unlink(missing_ok=True)


def stage_parts(manifests: str | Path, run: str, stage: str) -> list[str]:
    """The names of a stage's complete parts in sorted order (the order every reader reads
    them in); :class:`StageMissing` when the stage has none."""
    folder = stage_dir(manifests, run, stage)
    names = sorted(part_names(folder))
    if not names:
        raise StageMissing(f"no {stage} manifest for run {run!r} in {folder}; "
                           f"run the {stage if stage != 'result' else 'write'} step first")
    return names


def iter_stage(manifests: str | Path, run: str, stage: str, columns: list[str] | None = None,
               names: Iterable[str] | None = None) -> Iterator[tuple[str, pa.Table]]:
    """``(part name, table)`` for each part of a stage in sorted part-name order (only the
    parts ``names`` lists, when given), each read with the current schema (see
    :func:`read_part`): one part in memory at a time, whatever the size of the run.

    Raises :class:`StageMissing` at the call, not at the first part, when the stage has none.
    """
    folder = stage_dir(manifests, run, stage)
    found = stage_parts(manifests, run, stage)
    chosen = found if names is None else sorted(set(names))
    return ((name, read_part(folder, name, stage, columns)) for name in chosen)


def stage_rows(manifests: str | Path, run: str, stage: str,
               names: Iterable[str] | None = None) -> int:
    """The number of rows of a stage (or of the parts ``names``), from the part files'
    Parquet metadata: no column is read."""
    folder = stage_dir(manifests, run, stage)
    chosen = stage_parts(manifests, run, stage) if names is None else names
    return sum(part_rows(folder, name) for name in chosen)


def part_rows(folder: Path, name: str) -> int:
    """The number of rows of one part, from its Parquet metadata."""
    return int(pq.read_metadata(folder / f"{name}.parquet").num_rows)


def read_stage(manifests: str | Path, run: str, stage: str,
               columns: list[str] | None = None) -> pa.Table:
    """One stage of a run as a single table, read with the current schema.

    Whole-run: it holds every row of the stage in memory, so it is for small runs, tests and
    a user's own look at a manifest; the steps read their stages part by part
    (:func:`iter_stage`, :func:`stage_rows`).
    """
    return pa.concat_tables(table for _, table in iter_stage(manifests, run, stage, columns))


def read_part(folder: Path, name: str, stage: str, columns: list[str] | None = None) -> pa.Table:
    """One part file, read with the current schema of ``stage``, explicitly: columns that
    older parts lack are filled with nulls (reading with the part's own schema would silently
    drop columns added later). Parts are read with ParquetFile: the dataset API would import
    pandas into every process that reads a manifest."""
    schema = SCHEMAS[stage]
    fields = [schema.field(c) for c in (columns or schema.names)]
    part = pq.ParquetFile(folder / f"{name}.parquet")
    names = set(part.schema_arrow.names)  # a property that converts the schema each time
    present = [f.name for f in fields if f.name in names]
    table = part.read(columns=present)
    return pa.table([table.column(f.name).cast(f.type) if f.name in present
                     else pa.nulls(table.num_rows, f.type) for f in fields],
                    schema=pa.schema(fields, metadata=schema.metadata))


def write_run_info(manifests: str | Path, run: str, **info: Any) -> None:
    """Merge ``info`` into ``run.json`` (sources, output folder, options of each step)."""
    path = run_dir(manifests, run) / "run.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(".run.json.lock"), "a") as lock:  # shards write it at once
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        current = json.loads(path.read_text()) if path.exists() else {}
        for key, value in info.items():  # per-shard records merge with the other shards'
            if key.endswith("_shards") and isinstance(current.get(key), dict):
                current[key] = {**current[key], **value}
            else:
                current[key] = value
        tmp = path.with_name(f".run.json.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(current, indent=2, sort_keys=True))
        os.replace(tmp, path)


def read_run_info(manifests: str | Path, run: str) -> dict[str, Any]:
    path = run_dir(manifests, run) / "run.json"
    return json.loads(path.read_text()) if path.exists() else {}
