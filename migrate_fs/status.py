"""status: where a run stands, per stage, from its manifests alone.

For each stage (inventory, plan, result): the objects it holds and the objects it must reach,
pending and failed objects, bytes, the rate at which its parts were written and an estimate of
the time left; whether a process holds the run now; and the command to run next. It reads the
Parquet metadata of every part and one or two small columns (never a whole stage in memory),
``run.json`` and the lock; it never writes, and never reads a source or an output.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from migrate_fs import manifest

# what each stage counts as its bytes, and as failed
_BYTES = {"inventory": "size", "plan": "size", "result": "output_size"}


@dataclass
class StageStatus:
    stage: str
    parts: int = 0
    objects: int = 0  # rows the stage holds
    expected: int | None = None  # rows it must reach (None: not known yet)
    failed: int = 0  # result rows whose write failed (retried by a re-run)
    bytes: int = 0  # inventory and plan: source bytes; result: bytes written
    first_written: float | None = None  # the stage's first and last part, as Unix times
    last_written: float | None = None
    rate: float | None = None  # objects per second while its parts were written
    eta_seconds: float | None = None  # at that rate, for the pending objects

    @property
    def pending(self) -> int | None:
        return None if self.expected is None else max(self.expected - self.objects, 0)

    @property
    def complete(self) -> bool:
        return self.expected is not None and self.objects == self.expected and self.parts > 0


@dataclass
class RunStatus:
    run: str
    folder: str
    stages: list[StageStatus] = field(default_factory=list)
    busy: str | None = None  # the process that holds the run now (or each shard's)
    shards: dict[str, dict[str, Any]] = field(default_factory=dict)  # step -> shard -> figures
    plan_interrupted: bool = False
    next_step: str = ""

    def as_dict(self) -> dict[str, Any]:
        found = asdict(self)
        for stage, data in zip(self.stages, found["stages"], strict=True):
            data["pending"], data["complete"] = stage.pending, stage.complete
        return found


def run_status(manifests: str | Path, run: str) -> RunStatus:
    """The status of ``run`` (see the module docstring)."""
    folder = manifest.run_dir(manifests, run)
    status = RunStatus(run, str(folder.resolve()))
    if not folder.is_dir():
        status.next_step = f"no run {run!r} in {manifest.run_dir(manifests, '_').parent}: " \
                           f"start it with migrate-fs inventory SRC --run {run}"
        return status
    info = manifest.read_run_info(manifests, run)
    status.shards = {step: info[f"{step}_shards"] for step in ("inventory", "plan", "write")
                     if info.get(f"{step}_shards")}
    inventory = _stage(manifests, run, "inventory")
    if inventory.parts and info.get("inventory"):
        inventory.expected = info["inventory"].get("objects")
    elif inventory.parts and _all_shards(status.shards.get("inventory", {})):
        inventory.expected = sum(s["objects"] for s in status.shards["inventory"].values())
    plan = _stage(manifests, run, "plan")
    plan.expected = inventory.objects if inventory.complete else None
    result = _stage(manifests, run, "result")
    result.expected = plan.objects if plan.complete else None
    for stage in (inventory, plan, result):
        if stage.rate and stage.pending:
            stage.eta_seconds = stage.pending / stage.rate
    status.stages = [inventory, plan, result]
    status.busy = manifest.lock_holder(manifests, run)
    status.plan_interrupted = (folder / ".plan.running").exists()
    status.next_step = _next_step(status, run)
    return status


def _all_shards(done: dict[str, Any]) -> bool:
    """Whether every shard of one count recorded its step (``{"i/N": figures}``)."""
    counts = {label.split("/")[1] for label in done}
    return len(counts) == 1 and len(done) == int(counts.pop())


def _shards_left(status: RunStatus, step: str) -> str:
    """For a sharded step that is not complete, which shards to run (else "")."""
    done = status.shards.get(step, {})
    counts = {int(label.split("/")[1]) for label in done}
    missing = [f"{i}/{n}" for n in sorted(counts) for i in range(n) if f"{i}/{n}" not in done]
    return f" --shard I/N for the shards that have not finished: {', '.join(missing)}" \
        if missing else ""


def _stage(manifests: str | Path, run: str, stage: str) -> StageStatus:
    found = StageStatus(stage)
    folder = manifest.stage_dir(manifests, run, stage)
    names = sorted(manifest.part_names(folder))
    if not names:
        return found
    found.parts = len(names)
    times = [os.stat(folder / f"{name}.parquet").st_mtime for name in names]
    found.first_written, found.last_written = min(times), max(times)
    columns = [_BYTES[stage]] + (["status"] if stage == "result" else [])
    for _, part in manifest.iter_stage(manifests, run, stage, columns):
        found.objects += part.num_rows
        found.bytes += pc.sum(part.column(_BYTES[stage])).as_py() or 0
        if stage == "result":
            found.failed += pc.sum(pc.equal(part.column("status"), "failed")).as_py() or 0
    elapsed = found.last_written - found.first_written
    if len(names) > 1 and elapsed > 0:
        first_rows = manifest.part_rows(folder, names[times.index(found.first_written)])
        found.rate = (found.objects - first_rows) / elapsed  # the first part's work is unseen
    return found


def _next_step(status: RunStatus, run: str) -> str:
    inventory, plan, result = status.stages
    if status.busy:
        return f"wait: {status.busy} is working on this run"
    if not inventory.parts:
        return f"migrate-fs inventory SRC --run {run}"
    if not inventory.complete:
        return f"migrate-fs inventory SRC --run {run}" + (
            _shards_left(status, "inventory") or " again (the same sources): it resumes")
    if status.plan_interrupted or not plan.complete:
        return f"migrate-fs plan --run {run}" + _shards_left(status, "plan")
    if not result.complete:
        return f"migrate-fs write --run {run} --out OUT" + (
            _shards_left(status, "write") or ": it resumes") + \
            f" ({result.pending} objects pending)"
    if result.failed:
        return f"fix the cause of the {result.failed} failed objects (see the result's " \
               f"result_message), then migrate-fs write --run {run} --out OUT again"
    return "nothing: every object is accounted for in the result"
