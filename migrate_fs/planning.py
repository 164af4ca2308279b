"""planning: the plan step over the run's parts, in parallel, with whole-run decisions made
per hash bucket on disk.

What :mod:`.pipeline` calls for ``migrate-fs plan``, once the run-level checks are done. The
decisions themselves are :mod:`.plan`'s; this module reads the inventory parts, runs the work
through :mod:`.execution` and writes one plan part per inventory part. Nothing here decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from migrate_fs import manifest
from migrate_fs.config import Config
from migrate_fs.plan import DECISION_INPUT, Planned, make_plan
from migrate_fs.summary import Tally


@dataclass
class PlanOutcome:
    """What the plan step did: its counts, the corrections orphans, the content hashes."""

    tally: Tally
    orphans: Path | None = None
    orphan_count: int = 0
    hashed: dict[str, int] = field(default_factory=dict)


def plan_run(run: str, manifests: str | Path, settings: Config, table: pa.Table | None,
             corrections: str | Path | None) -> PlanOutcome:
    manifest.sweep_temporary(manifest.stage_dir(manifests, run, "plan"))
    narrow = manifest.read_stage(manifests, run, "inventory", DECISION_INPUT)
    planned = make_plan(narrow, settings, table)
    _write_plan_parts(manifests, run, planned)
    orphans = None
    if planned.orphans is not None:
        orphans = manifest.run_dir(manifests, run) / "corrections_orphans.parquet"
        manifest.write_table(orphans, planned.orphans)
    manifest.write_run_info(manifests, run, plan={
        "config": settings.as_dict(), "content_hashes": planned.hashed,
        "corrections": str(Path(corrections).resolve()) if corrections is not None else None})
    tally = Tally()
    tally.add(planned.decisions.select(["action", "reason", "problems"]).append_column(
        "size", narrow.column("size")))
    return PlanOutcome(tally, orphans,
                       planned.orphans.num_rows if planned.orphans is not None else 0,
                       planned.hashed)


def _write_plan_parts(manifests: str | Path, run: str, planned: Planned) -> None:
    source = manifest.stage_dir(manifests, run, "inventory")
    folder = manifest.stage_dir(manifests, run, "plan")
    old = manifest.part_names(folder)
    names = sorted(manifest.part_names(source))  # the order read_stage read them in
    offset = 0
    for name in names:
        part = manifest.read_part(source, name, "inventory")
        decided = planned.decisions.slice(offset, part.num_rows)
        manifest.write_part(folder, name, Planned(decided, None).table(part), "plan")
        offset += part.num_rows
    manifest.remove_parts(folder, old - set(names))
