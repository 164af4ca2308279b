"""planning: the plan step over the run's parts, in parallel, with the whole-run decisions made
per hash bucket on disk.

What :mod:`.pipeline` calls for ``migrate-fs plan`` once the run-level checks are done. The
inventory parts are handed out in groups of consecutive parts; the phases of
:mod:`.plan.buckets` run as tasks on the execution backend and exchange their data through
Parquet files in ``<run>/.plan-work/`` (hidden: a dataset reader skips it; removed when the plan
is complete, and at the start of the next). Each group writes one plan part per inventory part;
until the last is written, ``.plan.running`` beside the plan folder says that it may hold parts
of two plans, and ``write`` refuses to start.
The main process holds the part names and the counts, never a column of the run.

A trial plan (``plan --as NAME``) is the same plan written to ``<run>/trials/NAME/plan``, next to
the run's own, so that plans of one inventory under other rules can be compared; ``write``
executes the run's own plan only. With ``--shard i/N`` (several machines sharing the manifests),
each shard runs its share of every phase and the shards meet between phases in
``<run>/.plan-work-<N>-<key>/`` (:class:`~migrate_fs.execution.shards.PhaseBarrier`); each ends
with the whole plan's outcome. Nothing here decides: :mod:`.plan` does.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from joblib import delayed

from migrate_fs import manifest
from migrate_fs.config import Config
from migrate_fs.errors import IncompleteStage, MigrateError, ShardsDisagree
from migrate_fs.execution.backends import run_tasks
from migrate_fs.execution.shards import PhaseBarrier, Shard, write_marker
from migrate_fs.plan import attach
from migrate_fs.plan.buckets import DiskStore, Task, bucket_count, plan_groups
from migrate_fs.summary import Tally

GROUP_PARTS = 64  # inventory parts per task: about 64k objects
WORK = ".plan-work"
RUNNING = ".plan.running"  # beside a plan folder while it is being written


@dataclass
class PlanOutcome:
    """What the plan step did: its counts, the corrections orphans, the content hashes."""

    tally: Tally
    orphans: Path | None
    orphan_count: int
    hashed: dict[str, int]
    folder: Path


@dataclass(frozen=True)
class _Parts:
    """One group of inventory parts (see :class:`migrate_fs.plan.buckets.Group`)."""

    index: int
    inventory: str
    plan: str
    names: tuple[str, ...]

    def read(self, columns: list[str] | None) -> list[pa.Table]:
        return [manifest.read_part(Path(self.inventory), name, "inventory", columns)
                for name in self.names]

    def write(self, decided: list[pa.Table]) -> None:
        for name, decisions in zip(self.names, decided, strict=True):
            part = manifest.read_part(Path(self.inventory), name, "inventory")
            manifest.write_part(Path(self.plan), name, attach(part, decisions), "plan")


def trial_dir(manifests: str | Path, run: str, trial: str) -> Path:
    """The folder of trial plan ``trial`` of a run; the name must be a plain folder name."""
    manifest.run_dir(manifests, trial)  # the same rule as for run names
    return manifest.run_dir(manifests, run) / "trials" / trial


def plan_folder(manifests: str | Path, run: str, trial: str | None) -> Path:
    return manifest.stage_dir(manifests, run, "plan") if trial is None else \
        trial_dir(manifests, run, trial) / "plan"


def _runner(workers: int, scheduler: str | None) -> Any:
    def run(tasks: list[Task]) -> Iterator[Any]:
        if workers <= 1 and scheduler is None:
            return (function(*arguments) for function, arguments in tasks)
        return run_tasks((delayed(function)(*arguments) for function, arguments in tasks),
                         workers, scheduler)
    return run


def _work_folder(manifests: str | Path, run: str, names: list[str], settings: Config,
                 corrections: str | Path | None, count: int, trial: str | None,
                 shard: Shard | None) -> Path:
    """Where the phases exchange their data: ``.plan-work``; for a sharded plan, a folder
    named after everything the shards must agree on (the inventory parts, the settings with
    the output layout, the corrections' content, the bucket count, the trial), so that shards
    started anywhere, in any order, meet in one folder, and a shard run again after a crash
    finds its work."""
    root = manifest.run_dir(manifests, run)
    if shard is None:
        return root / WORK
    digest = hashlib.sha256(json.dumps(
        [names, settings.as_dict(), count, trial, shard.count], sort_keys=True,
        default=str).encode())
    if corrections is not None:
        digest.update(Path(corrections).read_bytes())
    return root / f"{WORK}-{shard.count}-{digest.hexdigest()[:16]}"


def _watch(manifests: str | Path, run: str, work: Path, shard: Shard) -> Callable[[], None]:
    """Announce this shard's work folder (``<run>/.plan-shard-<i>of<N>``) and return the check
    that a waiting shard makes: no other shard is still taking its inventory, and none is
    planning with another work folder (other inventory parts or options: they would wait for
    each other for ever)."""
    root = manifest.run_dir(manifests, run)
    write_marker(root / f".plan-shard-{shard.index}of{shard.count}", work.name)

    def watch() -> None:
        for label, holder in manifest.shard_holders(manifests, run).items():
            index, count = (int(n) for n in label.split("/"))
            if "inventory" in holder:
                raise ShardsDisagree(f"shard {label} is still taking its inventory ({holder}): "
                                     "plan once every inventory shard has finished")
            try:
                theirs = (root / f".plan-shard-{index}of{count}").read_text()
            except FileNotFoundError:
                continue
            if count == shard.count and index != shard.index and "plan" in holder \
                    and theirs != work.name:
                raise ShardsDisagree(
                    f"shard {label} plans other inventory parts or with other options "
                    f"({holder}): give every shard the same --config, --corrections, "
                    "--buckets and --as, once every inventory shard has finished")
    watch()
    return watch


def plan_run(run: str, manifests: str | Path, settings: Config, table: pa.Table | None,
             corrections: str | Path | None, *, workers: int = 1, buckets: int | None = None,
             trial: str | None = None, scheduler: str | None = None,
             shard: Shard | None = None,
             waiting: Callable[[str], None] | None = None) -> PlanOutcome:
    """Plan every inventory row of ``run`` into its plan folder (the run's, or a trial's).

    With ``shard``, this process runs its share of each phase's tasks and meets the other
    shards between phases (:class:`~migrate_fs.execution.shards.PhaseBarrier`; ``waiting`` is
    told whom it waits for); every shard ends with the whole plan's outcome, and the last to
    finish removes the work folder."""
    source = manifest.stage_dir(manifests, run, "inventory")
    names = manifest.stage_parts(manifests, run, "inventory")
    folder = plan_folder(manifests, run, trial)
    manifest.sweep_temporary(folder)
    rows = manifest.stage_rows(manifests, run, "inventory", names)
    count = buckets or bucket_count(rows)
    groups = [_Parts(i, str(source), str(folder), tuple(names[start:start + GROUP_PARTS]))
              for i, start in enumerate(range(0, len(names), GROUP_PARTS))]
    work = _work_folder(manifests, run, names, settings, corrections, count, trial, shard)
    store = DiskStore(str(work / "store"))
    if shard is None:  # no shard runs (the run's lock is exclusive): every work folder goes
        for stale in manifest.run_dir(manifests, run).glob(f"{WORK}*"):
            shutil.rmtree(stale, ignore_errors=True)
    old = manifest.part_names(folder)
    running = folder.parent / RUNNING
    running.parent.mkdir(parents=True, exist_ok=True)
    running.touch()  # until the last part is written: the plan folder mixes two plans
    runner = _runner(workers, scheduler)
    barrier = None if shard is None else PhaseBarrier(
        work / "phases", shard, runner, waiting, _watch(manifests, run, work, shard))
    try:
        done = plan_groups(groups, store, barrier or runner, settings, table, count)
    except MigrateError as exc:
        if barrier is not None:  # the other shards would wait for this one for ever
            barrier.stop(str(exc))
        raise
    # every shard has done every phase: the plan folder is complete (each shard removes the
    # stale parts and the running marker, so that its own write may start at once)
    manifest.remove_parts(folder, old - set(names))
    if barrier is None or barrier.finish():  # the last shard to get here: the work is done
        shutil.rmtree(work, ignore_errors=True)
    if done.tally.objects != rows:
        raise IncompleteStage(f"the plan decided {done.tally.objects} of {rows} objects: run "
                              "the same command again")
    orphans = None
    if done.orphans is not None:
        orphans = folder.parent / "corrections_orphans.parquet"
        manifest.write_table(orphans, done.orphans)
    info = {"config": settings.as_dict(), "layout": settings.output_layout().pattern,
            "content_hashes": done.hashed, "buckets": count,
            "corrections": str(Path(corrections).resolve()) if corrections is not None else None}
    if trial is None:
        manifest.write_run_info(manifests, run, plan=info)
    else:
        trials = manifest.read_run_info(manifests, run).get("trials", {})
        trials[trial] = {**info, "folder": str(folder)}
        manifest.write_run_info(manifests, run, trials=trials)
    running.unlink(missing_ok=True)
    return PlanOutcome(done.tally, orphans,
                       done.orphans.num_rows if done.orphans is not None else 0, done.hashed,
                       folder)
