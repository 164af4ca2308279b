"""audit.verify: ``migrate-fs verify``'s run-level steps: check a finished write's outputs against
its manifests.

What is checked when (the per-object checks are :mod:`.checks`'):

- every migrated object (result status ``written`` or ``already_present``), always: its output
  is there with the recorded size and SHA-256, pydicom reads it as Part 10 with file meta that
  agrees with the dataset and the plan, its UIDs and PatientID are the plan's and every
  ``changes`` entry holds. That reads each output once; the sources are not read.
- the pixel data, compared with the source's: by default for a sample of ``--sample N``
  objects (default 100): the N migrated objects with the smallest ``object_id``. An object_id
  is a SHA-256 of the locator, so the sample is spread evenly over the export, and the same
  result gives the same sample on every run, machine and worker count. ``--all`` compares
  every object: it reads the whole export again (and every archive front to back), so it
  costs what the write did. ``--sample 0`` compares none.
- the output tree, walked once: every file that is no recorded output is a stray (a writer's
  temporary ``.<name>.migrate-fs.tmp``, or a foreign file), listed in
  ``manifests/<run>/verify_strays.parquet``.

Objects not migrated (quarantined, skipped, failed at write time) get no verify row: the
result already says why; the summary counts them. The verify stage (``manifests/<run>/verify``)
is written part by part through :mod:`migrate_fs.execution` (``--workers``, ``--scheduler``),
like the write: one part per batch of file objects, the parts of each archive from one task
that reads the archive only as far as its last compared member. An interrupted verify resumes
(``.verify.running``); a verify run after a finished one checks everything again.


The library API is :func:`verify_run`; it prints nothing (``migrate-fs verify`` prints).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from migrate_fs import manifest
from migrate_fs.audit.checks import (
    COMPARE,
    MIGRATED,
    STRAYS,
    VERIFY_INPUT,
    find_strays,
    verify_members,
    verify_rows,
)
from migrate_fs.errors import IncompleteStage, OutputError, UsageError
from migrate_fs.execution import (
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

DEFAULT_SAMPLE = 100
VERIFY_BATCH = 256
VERIFY_BATCH_BYTES = 256 << 20
STRAY_BUCKET = 2_000_000  # recorded output paths per stray bucket (one bucket held at a time)
STRAYS_FILE = "verify_strays.parquet"



@dataclass
class Verified:
    """What a verify found: objects by verify status, objects per problem code, strays by
    kind, and the objects of the result that were not verified, by result status."""

    run: str
    out: Path
    folder: Path
    strays_file: Path
    sample: int | None  # None: --all
    by_status: dict[str, int] = field(default_factory=dict)
    problems: dict[str, int] = field(default_factory=dict)
    pixel_compared: int = 0
    strays: dict[str, int] = field(default_factory=dict)
    not_verified: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def objects(self) -> int:
        return sum(self.by_status.values())

    @property
    def failed(self) -> int:
        return self.by_status.get("failed", 0)

    @property
    def passed(self) -> bool:
        return not self.failed and not self.strays

    def as_dict(self) -> dict[str, Any]:
        return {"step": "verify", "run": self.run, "objects": self.objects,
                "by_status": self.by_status, "problems": self.problems,
                "pixel_compared": self.pixel_compared,
                "pixel_mode": "all" if self.sample is None else "sample",
                "sample": self.sample, "strays": self.strays,
                "stray_count": sum(self.strays.values()), "not_verified": self.not_verified,
                "passed": self.passed, "manifest": str(self.folder),
                "strays_file": str(self.strays_file), "out": str(self.out),
                "seconds": round(self.seconds, 3)}


# --- the run-level steps -------------------------------------------------------------------

def verify_run(*, run: str, manifests: str | Path = Path("manifests"),
               out: str | Path | None = None, sample: int | None = DEFAULT_SAMPLE,
               workers: int = 1, scheduler: str | None = None, quiet: bool = True,
               shard: Shard | None = None) -> Verified:
    """Verify the outputs of run ``run`` (see the module docstring): the pixel data of
    ``sample`` objects (None: all) compared with the source. Writes the verify stage and the
    strays table, records the summary in run.json under ``verify``, and returns it. With
    ``shard``, only the result parts and archives of that shard (as ``write`` splits them;
    the sample is the run's), and the stray walk on shard 0 only; the summary goes under
    ``verify_shards``."""
    import os
    import time

    start = time.perf_counter()
    manifests = Path(os.path.abspath(manifests))  # workers may run elsewhere
    manifest.stage_parts(manifests, run, "result")  # StageMissing: run write first
    target = output_root(manifests, run, out)
    lock = None if shard is None else (shard.index, shard.count)
    with manifest.run_lock(manifests, run, "migrate-fs verify", lock):  # a write: RunLocked
        write_finished(manifests, run)
        done = _verify(run, manifests, target, sample, workers, scheduler, quiet, shard)
        done.seconds = time.perf_counter() - start
        summary = {k: v for k, v in done.as_dict().items() if k not in ("step", "run")}
        if shard is None:
            manifest.write_run_info(manifests, run, verify=summary)
        else:
            shards = manifest.read_run_info(manifests, run).get("verify_shards", {})
            manifest.write_run_info(manifests, run, verify_shards={**shards,
                                                                   shard.label: summary})
    return done


def write_finished(manifests: Path, run: str, then: str = "verify") -> None:
    """A write that was stopped (its ``.write.running`` markers, a shard's too) left outputs
    its result does not record yet: ``then`` (verify, dicomdir) once the write is complete."""
    if any(manifest.run_dir(manifests, run).glob(".write.running*")):
        raise IncompleteStage(f"the last write of run {run!r} did not finish: run migrate-fs "
                              f"write again (it resumes), then {then}")


def output_root(manifests: Path, run: str, out: str | Path | None, flag: str = "--out") -> Path:
    """The run's output root: ``out`` when given (the command's ``flag``), else the folder
    the write recorded in run.json; it must be there."""
    recorded = manifest.read_run_info(manifests, run).get("out")
    if out is None and not recorded:
        raise UsageError(f"run {run!r} records no output folder: name it with {flag}")
    target = Path(out if out is not None else str(recorded)).resolve()
    if not target.is_dir():
        raise OutputError(f"output folder {target} is not there: check {flag} (or that the "
                          "output storage is mounted)")
    return target


def _verify(run: str, manifests: Path, target: Path, sample: int | None, workers: int,
            scheduler: str | None, quiet: bool, shard: Shard | None = None) -> Verified:
    import functools

    names = manifest.stage_parts(manifests, run, "result")
    folder = manifest.stage_dir(manifests, run, "verify")
    running = manifest.run_dir(manifests, run) / (
        ".verify.running" if shard is None else f".verify.running-{shard.prefix[5:-1]}")
    fresh = not running.exists()  # a finished verify proves nothing about now: check anew
    if fresh:
        _forget(folder, shard)
    folder.mkdir(parents=True, exist_ok=True)
    running.touch()
    manifest.sweep_temporary(folder, shard.prefix if shard is not None else None)
    census = _census(manifests, run, names, sample)
    result = manifest.stage_dir(manifests, run, "result")
    files = [n for n in names if n.startswith("part-")]
    mine = [n for n in files if shard is None or shard.owns_part(n)]
    mode = "all" if sample is None else f"sample{sample}"
    streams = _Owned(shard, folder, fresh)
    with progress("verify", quiet, census.migrated) as bar:
        batches = batched(_file_rows(result, mine, census.sample), VERIFY_BATCH,
                          lambda r: r["output_size"] or 0, VERIFY_BATCH_BYTES)
        run_batches(named_batches(batches, _identity, shard=shard),
                    functools.partial(verify_rows, out=target), folder, "verify",
                    workers=workers, bar=bar, scheduler=scheduler, shard=shard)
        run_streams(streams.of(_streams(result, [n for n in names if n not in files], mode,
                                        census.sample)),
                    functools.partial(_verify_stream, out=target), folder, "verify",
                    workers=workers, bar=bar, scheduler=scheduler,
                    owned=streams.stream if shard is not None else None)
    done = Verified(run, target, folder, manifest.run_dir(manifests, run) / STRAYS_FILE, sample,
                    not_verified=census.not_verified)
    migrated = census.migrated
    if shard is not None:  # this shard's share: its parts, its archives
        migrated = _migrated_in(manifests, run, mine + streams.result_parts)
    _count_parts(folder, done, streams.parts(folder))
    if done.objects != migrated:
        raise IncompleteStage(f"the verify manifest holds {done.objects} rows for "
                              f"{migrated} migrated objects: run the same command again "
                              "to redo the missing parts")
    if shard is None or shard.index == 0:  # one walk of the output tree per run
        done.strays = _strays(manifests, run, names, target, census.migrated, done.strays_file)
    running.unlink(missing_ok=True)
    return done


class _Owned(ShardWork):
    """A shard's archives (see :class:`~migrate_fs.execution.ShardWork`), with their result
    parts; on a fresh verify their markers of an earlier one go, so that they are checked
    anew."""

    def __init__(self, shard: Shard | None, folder: Path, fresh: bool) -> None:
        super().__init__(shard)
        self.folder, self.fresh = folder, fresh
        self.result_parts: list[str] = []

    def of(self, streams: Iterator[tuple[list[str], str, _ResultStream]]
           ) -> Iterator[tuple[list[str], str, _ResultStream]]:
        for paths, key, stream in streams:
            if self.shard is not None and self.stream(paths, key):
                self.result_parts += stream.parts
                if self.fresh:
                    (self.folder / f".a{key}.done").unlink(missing_ok=True)
            yield paths, key, stream


def _migrated_in(manifests: Path, run: str, names: list[str]) -> int:
    if not names:
        return 0
    return sum(_migrated(part).num_rows for _, part in
               manifest.iter_stage(manifests, run, "result", ["status"], names))


def _forget(folder: Path, shard: Shard | None = None) -> None:
    """Remove the parts (and stream markers) of an earlier, finished verify (a shard: its
    batch parts; its archives' markers go as they are listed, see :class:`_Owned`)."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if shard is not None:
            if path.name.startswith(shard.prefix) and path.name.endswith(".parquet"):
                path.unlink(missing_ok=True)
        elif path.name.endswith(".parquet") or (path.name.startswith(".a")
                                                and path.name.endswith(".done")):
            path.unlink(missing_ok=True)


@dataclass
class _Census:
    migrated: int
    not_verified: dict[str, int]
    sample: frozenset[str] | None  # the object_ids whose pixel data is compared; None: all


def _census(manifests: Path, run: str, names: list[str], sample: int | None) -> _Census:
    """The result's objects by status and the sample, from two columns read part by part:
    the ``sample`` migrated objects with the smallest object_id (at most that many held)."""
    import heapq

    import pyarrow.compute as pc

    statuses: Counter[str] = Counter()
    smallest: list[str] = []
    for _, part in manifest.iter_stage(manifests, run, "result", ["object_id", "status"], names):
        counts = pc.value_counts(part.column("status")).to_pylist()
        statuses.update({c["values"] or "-": c["counts"] for c in counts})
        if sample:
            ids = _migrated(part).column("object_id")
            first = pc.take(ids, pc.sort_indices(ids)[:sample]).to_pylist()
            smallest = heapq.nsmallest(sample, smallest + first)
    migrated = sum(statuses.pop(s, 0) for s in MIGRATED)
    return _Census(migrated, dict(statuses),
                   None if sample is None else frozenset(smallest))


def _migrated(part: pa.Table) -> pa.Table:
    import pyarrow as pa
    import pyarrow.compute as pc

    return part.filter(pc.is_in(part.column("status"), pa.array(MIGRATED, pa.string())))


def _flagged(part: pa.Table, sample: frozenset[str] | None) -> Iterator[dict[str, Any]]:
    """The migrated rows of a result part, each with whether its pixel data is compared."""
    for row in table_rows(_migrated(part), 1024):
        row[COMPARE] = sample is None or row["object_id"] in sample
        yield row


def _file_rows(folder: Path, names: list[str], sample: frozenset[str] | None
               ) -> Iterator[dict[str, Any]]:
    for name in names:
        yield from _flagged(manifest.read_part(folder, name, "result", VERIFY_INPUT), sample)


def _identity(row: dict[str, Any]) -> tuple[str, str | None, bool]:
    return row["object_id"], row["output_sha256"], row[COMPARE]


@dataclass(frozen=True)
class _ResultStream:
    """One archive's result parts, as its verify task gets them: the task reads the rows
    itself, a part at a time."""

    folder: Path
    parts: tuple[str, ...]
    sample: frozenset[str] | None

    def rows(self) -> Iterator[dict[str, Any]]:
        for name in self.parts:
            yield from _flagged(manifest.read_part(self.folder, name, "result", VERIFY_INPUT),
                                self.sample)


def _verify_stream(paths: list[str], stream: _ResultStream, out: Path
                   ) -> Iterator[dict[str, Any]]:
    return verify_members(paths, stream.rows(), out)


def _streams(folder: Path, names: list[str], mode: str, sample: frozenset[str] | None
             ) -> Iterator[tuple[list[str], str, _ResultStream]]:
    """``(paths, key, stream)`` per archive: its result parts (``a<key>-NNNNNN``, in member
    order) under a key of the write's stream key and the pixel mode."""
    by_key: dict[str, list[str]] = {}
    for name in sorted(names):
        by_key.setdefault(name[1:].split("-")[0], []).append(name)
    for key, parts in by_key.items():
        paths: list[str] = []
        for name in parts:
            part = manifest.read_part(folder, name, "result", ["archive", "archive_volumes"])
            if part.num_rows:
                volumes = part.column("archive_volumes")[0].as_py()
                paths = list(volumes) if volumes else [part.column("archive")[0].as_py()]
                break
        if paths:
            yield paths, part_key([key, mode]), _ResultStream(folder, tuple(parts), sample)


def _count_parts(folder: Path, done: Verified, names: list[str] | None = None) -> None:
    """Objects by verify status, objects per problem code (a row holds each code once) and
    pixel comparisons, counted part by part (of the parts ``names``; all with None)."""
    import pyarrow.compute as pc

    statuses: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    for name in sorted(manifest.part_names(folder)) if names is None else names:
        part = manifest.read_part(folder, name, "verify",
                                  ["verify_status", "problems", "pixel_compared"])
        for counter, values in ((statuses, part.column("verify_status")), (codes, pc.struct_field(
                pc.list_flatten(part.column("problems")), "code"))):
            counter.update({c["values"]: c["counts"] for c in pc.value_counts(values).to_pylist()})
        done.pixel_compared += pc.sum(part.column("pixel_compared")).as_py() or 0
    done.by_status, done.problems = dict(sorted(statuses.items())), dict(sorted(codes.items()))


def _strays(manifests: Path, run: str, names: list[str], target: Path, migrated: int,
            path: Path) -> dict[str, int]:
    """Walk the output tree once, write the strays table (streamed), count them by kind."""
    import os
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    def recorded() -> Iterator[list[str]]:
        for _, part in manifest.iter_stage(manifests, run, "result", ["status", "output_path"],
                                           names):
            yield _migrated(part).column("output_path").to_pylist()

    work = manifest.run_dir(manifests, run) / ".verify-work"
    shutil.rmtree(work, ignore_errors=True)
    inside = manifests.resolve()
    skip = inside if target in inside.parents else None  # manifests inside the output tree
    kinds: Counter[str] = Counter()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    rows: list[dict[str, Any]] = []
    with pq.ParquetWriter(tmp, STRAYS) as writer:
        for row in find_strays(target, recorded, buckets=1 + migrated // STRAY_BUCKET,
                               work=work, skip=skip):
            kinds[row["kind"]] += 1
            rows.append(row)
            if len(rows) >= 65536:
                writer.write_table(pa.Table.from_pylist(rows, schema=STRAYS))
                rows.clear()
        writer.write_table(pa.Table.from_pylist(rows, schema=STRAYS))
    os.replace(tmp, path)
    shutil.rmtree(work, ignore_errors=True)
    return dict(sorted(kinds.items()))
