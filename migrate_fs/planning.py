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
executes the run's own plan only. Nothing here decides: :mod:`.plan` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from joblib import delayed

from migrate_fs import manifest
from migrate_fs.config import Config
from migrate_fs.errors import IncompleteStage
from migrate_fs.execution.backends import run_tasks
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


def plan_run(run: str, manifests: str | Path, settings: Config, table: pa.Table | None,
             corrections: str | Path | None, *, workers: int = 1, buckets: int | None = None,
             trial: str | None = None, scheduler: str | None = None) -> PlanOutcome:
    """Plan every inventory row of ``run`` into its plan folder (the run's, or a trial's)."""
    source = manifest.stage_dir(manifests, run, "inventory")
    names = manifest.stage_parts(manifests, run, "inventory")
    folder = plan_folder(manifests, run, trial)
    manifest.sweep_temporary(folder)
    rows = manifest.stage_rows(manifests, run, "inventory", names)
    count = buckets or bucket_count(rows)
    groups = [_Parts(i, str(source), str(folder), tuple(names[start:start + GROUP_PARTS]))
              for i, start in enumerate(range(0, len(names), GROUP_PARTS))]
    store = DiskStore(str(manifest.run_dir(manifests, run) / WORK))
    store.clear()
    old = manifest.part_names(folder)
    running = folder.parent / RUNNING
    running.parent.mkdir(parents=True, exist_ok=True)
    running.touch()  # until the last part is written: the plan folder mixes two plans
    done = plan_groups(groups, store, _runner(workers, scheduler), settings, table, count)
    store.clear()
    manifest.remove_parts(folder, old - set(names))
    if done.tally.objects != rows:
        raise IncompleteStage(f"the plan decided {done.tally.objects} of {rows} objects: run "
                              "the same command again")
    orphans = None
    if done.orphans is not None:
        orphans = folder.parent / "corrections_orphans.parquet"
        manifest.write_table(orphans, done.orphans)
    info = {"config": settings.as_dict(), "content_hashes": done.hashed, "buckets": count,
            "corrections": str(Path(corrections).resolve()) if corrections is not None else None}
    if trial is None:
        manifest.write_run_info(manifests, run, plan=info)
    else:
        trials = manifest.read_run_info(manifests, run).get("trials", {})
        trials[trial] = {**info, "folder": str(folder)}
        manifest.write_run_info(manifests, run, trials=trials)
    running.unlink()
    return PlanOutcome(done.tally, orphans,
                       done.orphans.num_rows if done.orphans is not None else 0, done.hashed,
                       folder)
