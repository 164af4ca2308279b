"""pipeline: the steps of a migration as a library API, with the run-level checks.

``inventory``, ``plan``, ``write`` and ``run`` are what the ``migrate-fs`` verbs call, and what a
Python caller calls to get the same checks: every check that needs no reading (a bad run name, an
output folder that is a file or overlaps a source, manifests inside a source, a missing source or
volume) runs before any object is read, and every step ends by checking that its manifest holds
one row per object. Each step records what it did in ``run.json`` and returns it.

The per-object work lives in the stage modules (:mod:`.inventory`, :mod:`.plan`,
:mod:`.writer`); :mod:`.execution` runs it. Nothing here prints.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import itertools
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from migrate_fs import manifest
from migrate_fs.config import Config, checked_layout, load_config
from migrate_fs.errors import IncompleteStage, OutputError, SourceError, UsageError
from migrate_fs.execution import (
    Outcome,
    PhaseBarrier,
    Shard,
    ShardWork,
    batched,
    named_batches,
    part_key,
    progress,
    run_batches,
    run_streams,
    table_rows,
)
from migrate_fs.inventory import inventory_members, inventory_row
from migrate_fs.sources import SourceObject, distinct_roots, iter_sources
from migrate_fs.summary import Tally, count_by
from migrate_fs.writer import TEMPORARY_SUFFIX, execute, execute_members

INVENTORY_BATCH = 1024
WRITE_BATCH = 512
WRITE_BATCH_BYTES = 256 << 20
DEFAULT_MANIFESTS = Path("manifests")


@dataclass
class StepDone:
    """What a step did: the counts of its stage (see :class:`Tally`) and its figures."""

    tally: Tally
    objects: int
    seconds: float
    bytes_read: int = 0
    bytes_written: int = 0
    failed: int = 0  # objects whose write failed (a re-run retries them)
    repaired: int = 0  # outputs found missing or damaged and written again


@dataclass
class PlanDone(StepDone):
    orphans: Path | None = None  # corrections rows that match no object, when there are any
    orphan_count: int = 0
    hashed: dict[str, int] | None = None  # content hashes: objects hashed, bytes read
    folder: Path | None = None  # where the plan was written (the run's, or a trial's)
    layout: str | None = None  # the output layout planned (a preset name or a pattern)


# --- run-level checks: none of them reads an object ---------------------------------------

def volume_sets(groups: Iterable[Sequence[str]]) -> list[list[str]]:
    """Each group of volumes of one dump as absolute paths, a lone glob pattern expanded in
    sorted order; every volume must be a file."""
    sets = []
    for group in groups:
        paths = list(group)
        if len(paths) == 1 and glob.has_magic(paths[0]):
            pattern, paths = paths[0], sorted(glob.glob(paths[0]))
            if not paths:
                raise SourceError(f"--volumes pattern {pattern!r} matches no file")
        missing = [v for v in paths if not os.path.isfile(v)]
        if missing:
            raise SourceError(f"volume {missing[0]} is not a file; check the path")
        sets.append([os.path.abspath(v) for v in paths])
    return sets


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def check_run(manifests: str | Path, run: str, sources: Iterable[str | Path] = (),
              out: str | Path | None = None, *, recorded: bool = False) -> None:
    """The checks that need no reading: a plain run name, sources that exist (unless they are
    the ``recorded`` sources of the run), an output folder that is not a file and neither
    inside a source nor holding one, and manifests outside every source."""
    manifest.run_dir(manifests, run)
    roots = []
    for source in sources:
        if not recorded and not os.path.lexists(source):
            raise SourceError(f"source {source} cannot be read: it does not exist; check the "
                              "path and that the export is mounted")
        roots.append(Path(source).resolve())
    where = Path(manifests).resolve()
    for root in roots:
        if root == where or root in where.parents:
            raise OutputError(f"manifests folder {where} is inside source {root}: the source "
                              "is read-only; choose --manifests outside it")
    if out is None:
        return
    target = Path(out).resolve()
    if target.exists() and not target.is_dir():
        raise UsageError(f"--out {target} is not a folder; name a folder (it is created if "
                         "needed)")
    for root in roots:
        if _overlaps(target, root):
            raise OutputError(f"output {target} overlaps source {root}: the source is "
                              "read-only; choose an output folder outside it")


def _recorded_sources(manifests: str | Path, run: str) -> list[str]:
    return list(manifest.read_run_info(manifests, run).get("sources", []))


def _check_rows(rows: int, expected: int, what: str) -> None:
    if rows != expected:
        raise IncompleteStage(f"the {what} manifest holds {rows} rows for {expected} "
                              "objects: run the same command again to redo the missing parts")


# --- inventory -----------------------------------------------------------------------------

def _inventory_rows(batch: list[SourceObject], decode_check: str,
                    decoder: str | None) -> list[dict[str, Any]]:
    return [inventory_row(o, decode_check, decoder) for o in batch]


def _inventory_stream(paths: list[str], _: Any, decode_check: str,
                      decoder: str | None) -> Iterator[dict[str, Any]]:
    return inventory_members(paths, decode_check, decoder)


def _source_identity(obj: SourceObject) -> tuple[str, int | None, int | None, int | None]:
    """What names an inventory part: a file changed in place (a new ctime, even with the same
    size and mtime) is read again on resume, never trusted from an older part."""
    return obj.locator, obj.size, obj.mtime_ns, obj.ctime_ns


def _file_key(paths: list[str]) -> str:
    return part_key((p, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
                    for p, st in ((p, os.stat(p)) for p in paths))


def _found_archives(manifests: str | Path, run: str) -> list[list[str]]:
    """The archives the walk found (their inventory rows' locators), read part by part."""
    folder = manifest.stage_dir(manifests, run, "inventory")
    if not manifest.part_names(folder):
        return []
    found: list[list[str]] = []
    for _, part in manifest.iter_stage(manifests, run, "inventory", ["kind", "locator"]):
        archives = part.filter(pc.equal(part.column("kind"), "archive"))
        found.extend([locator] for locator in archives.column("locator").to_pylist())
    return found


def _absolute(manifests: str | Path) -> Path:
    """The manifests folder as an absolute path: tasks may run in other processes, on other
    machines (a cluster), in other working folders."""
    return Path(os.path.abspath(manifests))


def _load(config: Config | str | Path | None) -> Config:
    return config if isinstance(config, Config) else load_config(config)


def inventory(sources: Sequence[str | Path], *, run: str,
              manifests: str | Path = DEFAULT_MANIFESTS, volumes: Iterable[Sequence[str]] = (),
              workers: int = 1, quiet: bool = True, config: Config | str | Path | None = None,
              decode_check: str | None = None, scheduler: str | None = None,
              shard: Shard | None = None) -> StepDone:
    """Read every object's header below ``sources`` and in every archive found there or given
    as ``volumes`` (the volume groups of split dumps) into the inventory manifest; on the dask
    cluster at ``scheduler`` when one is given; only the objects (and archives) of ``shard``
    when one is given (see :mod:`migrate_fs.execution.shards`)."""
    start = time.perf_counter()
    manifests = _absolute(manifests)  # workers may run elsewhere, in another folder
    check_run(manifests, run, sources)
    if not sources and not volumes:
        raise SourceError("name at least one source (SRC or --volumes)")
    sets = volume_sets(volumes)
    settings = _load(config)
    with manifest.run_lock(manifests, run, "migrate-fs inventory", _lock_shard(shard)):
        return _inventory(sources, sets, run, manifests, workers, quiet, settings,
                          decode_check, start, scheduler, shard)


def _inventory(sources: Sequence[str | Path], sets: list[list[str]], run: str,
               manifests: str | Path, workers: int, quiet: bool, settings: Config,
               decode_check: str | None, start: float, scheduler: str | None = None,
               shard: Shard | None = None) -> StepDone:
    decode = decode_check or settings.decode_check
    decoder = settings.decoder or None
    suffix = "" if decode == "none" else f"-d{decode}"
    folder = manifest.stage_dir(manifests, run, "inventory")
    manifest.sweep_temporary(folder, shard.prefix if shard is not None else None)
    roots, covered = distinct_roots([str(s) for s in sources])
    outcome = Outcome()
    objects = iter_sources(roots)
    if shard is not None:
        objects = (o for o in objects if shard.owns(o.locator))
    mine = ShardWork(shard)
    with progress("inventory", quiet) as bar:
        outcome.add(run_batches(
            named_batches(batched(objects, INVENTORY_BATCH), _source_identity, suffix, shard),
            functools.partial(_inventory_rows, decode_check=decode, decoder=decoder),
            folder, "inventory", workers=workers, bar=bar, scheduler=scheduler, shard=shard))
        streams: dict[str, tuple[list[str], str, None]] = {}
        for paths in _found_archives(manifests, run) + sets:  # a dump found and named: once
            key = _file_key(paths) + ("" if decode == "none" else decode[0])
            streams.setdefault(key, (paths, key, None))
        outcome.add(run_streams(
            streams.values(),
            functools.partial(_inventory_stream, decode_check=decode, decoder=decoder),
            folder, "inventory", workers=workers, bar=bar, scheduler=scheduler,
            owned=mine.stream if shard is not None else None))
    seconds = time.perf_counter() - start
    tally = _stage_tally(manifests, run, "inventory", ["kind", "size"], mine.parts(folder))
    _check_rows(tally.objects, outcome.objects, "inventory")
    done = {"objects": outcome.objects, "bytes_read": outcome.bytes_read, "seconds": seconds,
            "export_bytes": tally.total("size")}
    manifest.write_run_info(manifests, run,
                            sources=[os.path.abspath(s) for s in roots]
                            + [v for vs in sets for v in vs],
                            covered_sources=[{"source": a, "inside": b} for a, b in covered],
                            **_step_info(manifests, run, "inventory", done, shard))
    return StepDone(tally, outcome.objects, seconds, outcome.bytes_read)


def _lock_shard(shard: Shard | None) -> tuple[int, int] | None:
    return None if shard is None else (shard.index, shard.count)


def _step_info(manifests: str | Path, run: str, step: str, done: dict[str, Any],
               shard: Shard | None) -> dict[str, Any]:
    """What a step records in run.json: under its name, or per shard (``<step>_shards``)."""
    if shard is None:
        return {step: done}
    shards = manifest.read_run_info(manifests, run).get(f"{step}_shards", {})
    shards[shard.label] = {**done, "host": socket.gethostname()}
    return {f"{step}_shards": shards}


def _stage_tally(manifests: str | Path, run: str, stage: str, columns: list[str],
                 names: list[str] | None = None) -> Tally:
    """The counts of a stage (its rows: ``objects``), or of its parts ``names``, counted part
    by part."""
    tally = Tally()
    if names is not None and not names:  # a shard with no work of its own
        return tally
    for _, part in manifest.iter_stage(manifests, run, stage, columns, names):
        tally.add(part)
    return tally


# --- plan ----------------------------------------------------------------------------------

def plan(*, run: str, manifests: str | Path = DEFAULT_MANIFESTS,
         config: Config | str | Path | None = None, corrections: str | Path | None = None,
         workers: int = 1, buckets: int | None = None, trial: str | None = None,
         scheduler: str | None = None, shard: Shard | None = None,
         waiting: Callable[[str], None] | None = None, layout: str | None = None) -> PlanDone:
    """Decide for the whole run and write the plan, one part per inventory part.

    Row-local decisions run per group of inventory parts, whole-run ones per hash bucket of
    their key (``buckets``: default one per million objects), on ``workers`` processes; no
    process holds a column of the whole run. ``trial`` names a trial plan, written next to the
    run's own (``<run>/trials/<trial>/plan``) and never executed by ``write``. With ``shard``,
    this process runs its share of each phase, and waits for the other shards between phases
    (``waiting`` is told for which): start every shard's process, with the same options.
    ``layout`` (a preset name or a pattern, see :mod:`migrate_fs.paths`) overrides the
    configuration's ``[output] layout``; a layout is a plan input, so changing it needs a new
    plan, never a new inventory.
    """
    start = time.perf_counter()
    manifests = _absolute(manifests)
    check_run(manifests, run, _recorded_sources(manifests, run), recorded=True)
    settings = _with_layout(_load(config), layout)
    from migrate_fs.plan.corrections import load_corrections  # only a plan imports the plan

    table = load_corrections(Path(corrections)) if corrections is not None else None
    with manifest.run_lock(manifests, run, "migrate-fs plan", _lock_shard(shard)):
        from migrate_fs.planning import plan_run

        done = plan_run(run, manifests, settings, table, corrections, workers=workers,
                        buckets=buckets, trial=trial, scheduler=scheduler, shard=shard,
                        waiting=waiting)
        if shard is not None:
            manifest.write_run_info(manifests, run, **_step_info(
                manifests, run, "plan", {"objects": done.tally.objects,
                                         "seconds": time.perf_counter() - start}, shard))
    return PlanDone(done.tally, done.tally.objects, time.perf_counter() - start,
                    orphans=done.orphans, orphan_count=done.orphan_count, hashed=done.hashed,
                    folder=done.folder, layout=settings.layout)


def _with_layout(settings: Config, layout: str | None) -> Config:
    """The settings with ``layout`` (``--layout``: it beats the configuration), validated."""
    if layout is None:
        return settings
    return dataclasses.replace(settings, layout=checked_layout(layout, "--layout"))


# --- write ---------------------------------------------------------------------------------

def _write_rows(rows: list[dict[str, Any]], out: Path, fsync: bool) -> list[dict[str, Any]]:
    return [execute(row, out, fsync=fsync) for row in rows]


STREAM_CHUNK = 1024
# what the main process reads of a dump's plan parts: the stream key, the order, the dump
_STREAM_COLUMNS = ["object_id", "action", "output_path", "member_offset", "archive",
                   "archive_volumes"]


@dataclass(frozen=True)
class _PlanStream:
    """One dump's share of the plan, as its worker gets it: the plan folder and the names of
    the dump's plan parts in index order. The worker reads the rows itself, a part at a time
    (a dump of a million members is never one table, nor sent to a worker)."""

    folder: Path
    parts: tuple[str, ...]
    ordered: bool = True  # the parts' rows are in member order (the inventory's order)

    def rows(self) -> Iterator[dict[str, Any]]:
        if self.ordered:
            for name in self.parts:
                yield from table_rows(manifest.read_part(self.folder, name, "plan"),
                                      STREAM_CHUNK)
            return
        whole = pa.concat_tables(manifest.read_part(self.folder, name, "plan")
                                 for name in self.parts)  # one dump, never the run
        yield from table_rows(whole.sort_by("member_offset"), STREAM_CHUNK)


def _write_stream(paths: list[str], stream: _PlanStream, out: Path,
                  fsync: bool) -> Iterator[dict[str, Any]]:
    return execute_members(paths, stream.rows(), out, fsync=fsync)


def _plan_identity(row: dict[str, Any]) -> tuple[str, str, str | None]:
    return row["object_id"], row["action"], row["output_path"]


def _is_stream_part(name: str) -> bool:
    """Whether a plan part holds members of a dump (``a<key>-NNNNNN``, one inventory stream's
    part) rather than a batch of files (``part-NNNNNN-<hash>``)."""
    return not name.startswith("part-")


def _file_rows(folder: Path, names: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The planned rows of files (not archive members), one part's rows at a time, in part
    order: the order of the whole-run table earlier releases batched, so the batches (and their
    result parts' names) are the same."""
    for name in names:
        part = manifest.read_part(folder, name, "plan")
        yield from table_rows(part.filter(pc.is_null(part.column("archive"))))


def _plan_streams(folder: Path, names: Iterable[str]) -> Iterator[tuple[list[str], str,
                                                                          _PlanStream]]:
    """``(paths, key, stream)`` for each dump: its plan parts grouped by inventory stream, the
    stream key hashing the rows' identities in member order (as :func:`_rows_key` always
    did), read part by part, a few columns only."""
    by_stream: dict[str, list[str]] = {}
    for name in sorted(names):
        by_stream.setdefault(name[1:].split("-")[0], []).append(name)
    for parts in by_stream.values():
        scan = _StreamScan(folder, parts)
        key = _rows_key(scan.parts())
        if not scan.ordered:  # never from the inventory: the rows are sorted, one dump only
            whole = pa.concat_tables(scan.parts()).sort_by("member_offset")
            key = _rows_key([whole])
        if scan.paths:
            yield scan.paths, key, _PlanStream(folder, tuple(parts), scan.ordered)


class _StreamScan:
    """A pass over one dump's plan parts (a few columns): its paths, and whether its rows are
    in member order."""

    def __init__(self, folder: Path, names: list[str]) -> None:
        self.folder, self.names = folder, names
        self.paths: list[str] = []
        self.ordered = True

    def parts(self) -> Iterator[pa.Table]:
        last = -1
        for name in self.names:
            part = manifest.read_part(self.folder, name, "plan", _STREAM_COLUMNS)
            if not part.num_rows:
                continue
            if not self.paths:
                volumes, archive = part.column("archive_volumes")[0].as_py(), \
                    part.column("archive")[0].as_py()
                self.paths = list(volumes) if volumes else [archive]
            same = pc.fill_null(pc.equal(part.column("archive"), self.paths[0]), False)
            if not pc.all(same).as_py():
                raise IncompleteStage(f"plan part {name} holds rows of more than one archive "
                                      "(or of files): run inventory and plan again")
            offsets = part.column("member_offset").to_pylist()
            self.ordered = self.ordered and all(
                a <= b for a, b in itertools.pairwise([last, *offsets]))
            last = offsets[-1]
            yield part


def _rows_key(parts: Iterable[pa.Table]) -> str:
    """The stream key of a dump's rows (given in member order, in any number of tables): a
    hash of their (object_id, action, output_path)."""
    return part_key(itertools.chain.from_iterable(
        zip(*(part.column(c).to_pylist() for c in ("object_id", "action", "output_path")),
            strict=True) for part in parts))


def write(*, run: str, out: str | Path, manifests: str | Path = DEFAULT_MANIFESTS,
          workers: int = 1, quiet: bool = True, fsync: bool = False,
          scheduler: str | None = None, shard: Shard | None = None) -> StepDone:
    """Execute the plan: write the Part 10 files below ``out`` and the result manifest (only
    the plan parts and archives of ``shard``, when one is given)."""
    start = time.perf_counter()
    manifests = _absolute(manifests)
    target = Path(out).resolve()
    check_run(manifests, run, _recorded_sources(manifests, run), target, recorded=True)
    with manifest.run_lock(manifests, run, "migrate-fs write", _lock_shard(shard)):
        return _write(run, target, manifests, workers, quiet, fsync, start, scheduler, shard)


def _write(run: str, target: Path, manifests: str | Path, workers: int, quiet: bool,
           fsync: bool, start: float, scheduler: str | None = None,
           shard: Shard | None = None) -> StepDone:
    """The plan is read part by part, never as one table: file rows stream into the batches,
    each dump's worker reads its own plan parts, the result is counted part by part."""
    if (manifest.run_dir(manifests, run) / ".plan.running").exists():
        raise IncompleteStage(f"the last plan of run {run!r} did not finish (its plan folder may "
                              "hold parts of two plans): run migrate-fs plan again, then write")
    names = manifest.stage_parts(manifests, run, "plan")
    plan_folder = manifest.stage_dir(manifests, run, "plan")
    files = [n for n in names if not _is_stream_part(n)
             and (shard is None or shard.owns_part(n))]
    planned = manifest.stage_rows(manifests, run, "plan", files if shard is not None else names)
    running = manifest.run_dir(manifests, run) / (
        ".write.running" if shard is None else f".write.running-{shard.prefix[5:-1]}")
    # the last write did not finish: its temporary files go (a shard leaves them to an
    # unsharded write: the other shards may be writing theirs now)
    swept = sweep_outputs(target) if running.exists() and shard is None else 0
    running.touch()
    manifest.sweep_temporary(manifest.stage_dir(manifests, run, "result"),
                             shard.prefix if shard is not None else None)
    intact = _Intact(target)
    folder = manifest.stage_dir(manifests, run, "result")
    outcome = Outcome()
    mine = ShardWork(shard)
    stream_parts: dict[str, tuple[str, ...]] = {}

    def streams() -> Iterator[tuple[list[str], str, _PlanStream]]:
        for paths, key, stream in _plan_streams(plan_folder,
                                                [n for n in names if _is_stream_part(n)]):
            stream_parts[key] = stream.parts
            yield paths, key, stream

    with progress("write", quiet, planned) as bar:
        batches = batched(_file_rows(plan_folder, files), WRITE_BATCH,
                          lambda r: r["size"] or 0, WRITE_BATCH_BYTES)
        outcome.add(run_batches(
            named_batches(batches, _plan_identity, shard=shard),
            functools.partial(_write_rows, out=target, fsync=fsync),
            folder, "result", workers=workers, bar=bar, total_of="output_size", check=intact,
            scheduler=scheduler, shard=shard))
        outcome.add(run_streams(
            streams(), functools.partial(_write_stream, out=target, fsync=fsync),
            folder, "result", workers=workers, bar=bar, total_of="output_size", check=intact,
            scheduler=scheduler, owned=mine.stream if shard is not None else None))
    if shard is not None:  # this shard's dumps: their plan rows too
        planned += sum(manifest.part_rows(plan_folder, n) for key in mine.keys
                       for n in stream_parts[key])
    seconds = time.perf_counter() - start
    tally = _stage_tally(manifests, run, "result",
                         ["action", "reason", "status", "size", "output_size"],
                         mine.parts(folder))
    _check_rows(tally.objects, planned, "result")
    failed = dict(count_by(tally, ["status"])).get(("failed",), 0)
    done = {"objects": outcome.objects, "bytes_read": outcome.bytes_read,
            "bytes_written": outcome.total, "seconds": seconds, "failed": failed,
            "redone_for_missing_outputs": intact.missing, "temporary_files_swept": swept}
    manifest.write_run_info(manifests, run, out=str(target),
                            **_step_info(manifests, run, "write", done, shard))
    running.unlink(missing_ok=True)
    return StepDone(tally, outcome.objects, seconds, outcome.bytes_read, outcome.total,
                    failed=failed, repaired=intact.missing)


class _Intact:
    """Whether a committed result part still holds: no row failed (a retry may succeed: a full
    disk, an unreadable source) and every written output is there with its recorded size. A
    damaged output of ours (another size than recorded) is removed, so that it is written
    again; a stat per written object, nothing is read."""

    def __init__(self, out: Path) -> None:
        self.out, self.missing = out, 0

    def __call__(self, part: pa.Table) -> bool:
        holds = True
        for status, path, size in zip(*(part.column(c).to_pylist() for c in
                                         ("status", "output_path", "output_size")), strict=True):
            if status == "failed":
                holds = False
            elif status in ("written", "already_present") and path:
                target = self.out / path
                try:
                    found = os.stat(target, follow_symlinks=False).st_size
                except FileNotFoundError:
                    found = None
                if found != size:
                    self.missing += 1
                    holds = False
                    if found is not None:
                        target.unlink()
        return holds


def sweep_outputs(out: Path) -> int:
    """Remove the temporary files a killed write left below ``out`` (only names the writer
    gives them: ``.<name>.migrate-fs.tmp``, and ``.<name>.<pid>.tmp`` of earlier releases);
    returns how many."""
    removed = 0
    stack = [str(out)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
            elif _is_temporary(entry.name):
                os.unlink(entry.path)
                removed += 1
    return removed


def _is_temporary(name: str) -> bool:
    if not name.startswith("."):
        return False
    if name.endswith(TEMPORARY_SUFFIX):
        return True
    parts = name.rsplit(".", 3)  # legacy: .<name>.dcm.<pid>.tmp
    return len(parts) == 4 and parts[1] == "dcm" and parts[2].isdigit() and parts[3] == "tmp"


# --- run -----------------------------------------------------------------------------------

def run(sources: Sequence[str | Path], *, out: str | Path, run: str | None = None,
        manifests: str | Path = DEFAULT_MANIFESTS, volumes: Iterable[Sequence[str]] = (),
        workers: int = 1, quiet: bool = True, config: Config | str | Path | None = None,
        corrections: str | Path | None = None, decode_check: str | None = None,
        fsync: bool = False, scheduler: str | None = None, layout: str | None = None
        ) -> tuple[StepDone, PlanDone, StepDone]:
    """Inventory, plan and write in one go; the run name defaults to the output folder's."""
    name = run or default_run_name(out)
    check_run(manifests, name, sources, out)
    settings = _with_layout(_load(config), layout)
    with manifest.run_lock(manifests, name, "migrate-fs run"):
        done = inventory(sources, run=name, manifests=manifests, volumes=volumes,
                         workers=workers, quiet=quiet, config=settings,
                         decode_check=decode_check, scheduler=scheduler)
        planned = plan(run=name, manifests=manifests, config=settings, corrections=corrections,
                       workers=workers, scheduler=scheduler)
        written = write(run=name, out=out, manifests=manifests, workers=workers, quiet=quiet,
                        fsync=fsync, scheduler=scheduler)
    return done, planned, written


INVENTORIED = ".inventory-shards"  # <run>/.inventory-shards-<N>: where `run --shard` shards meet


def inventory_barrier(manifests: str | Path, run: str, shard: Shard,
                      waiting: Callable[[str], None] | None = None) -> PhaseBarrier:
    """Mark this shard's inventory done and wait until every shard of its count has marked
    its own (``run --shard``: the plan needs the whole inventory); returns the barrier, whose
    :meth:`~PhaseBarrier.finish` the shard calls once its plan is done (every shard has then
    passed the barrier: the last to finish removes its folder, see :func:`leave_barrier`)."""
    folder = manifest.run_dir(_absolute(manifests), run) / f"{INVENTORIED}-{shard.count}"
    barrier = PhaseBarrier(folder, shard, lambda tasks: iter(()), waiting)
    barrier([])
    return barrier


def leave_barrier(barrier: PhaseBarrier) -> None:
    if barrier.finish():
        shutil.rmtree(barrier.folder, ignore_errors=True)


def default_run_name(out: str | Path) -> str:
    return Path(out).resolve().name or "run"
