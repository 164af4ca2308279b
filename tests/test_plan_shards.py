"""A sharded plan: N processes (here threads, and processes through the CLI) each run their
share of every phase and meet between phases; together they write the plan one process
writes, a shard run again after a crash does not redo its finished tasks, and shards that see
different work stop instead of waiting for ever."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from conftest import lock_held
from test_plan_buckets import crafted, labelled

from migrate_fs import manifest
from migrate_fs.config import parse_config
from migrate_fs.errors import ShardsDisagree
from migrate_fs.execution.shards import PhaseBarrier, Shard
from migrate_fs.plan import _in_order, _Whole, make_plan
from migrate_fs.plan.buckets import DiskStore, plan_groups
from migrate_fs.plan.decide import DECISION_INPUT


class Recorder:
    """A runner that runs tasks in this thread and records how many each phase got."""

    def __init__(self) -> None:
        self.counts: list[int] = []

    def __call__(self, tasks: list[Any]) -> Any:
        self.counts.append(len(tasks))
        return _in_order(tasks)


def shard_plan(work: Path, table: pa.Table, shard: Shard, config: Any, labels: dict[str, str],
               runner: Recorder, found: dict[int, pa.Table], errors: list[BaseException],
               watch: Any = None, delay: float = 0.0) -> None:
    time.sleep(delay)
    narrow = table.select(DECISION_INPUT)
    groups = [_Whole(narrow.slice(start, 50), i)
              for i, start in enumerate(range(0, narrow.num_rows, 50))]
    barrier = PhaseBarrier(work / "phases", shard, runner, watch=watch)
    try:
        done = plan_groups(groups, DiskStore(str(work / "store")), barrier, config, None, 7,
                           labelled(labels))
    except BaseException as exc:  # noqa: BLE001 - the test reports it
        errors.append(exc)
        return
    found.update({g.index: g.decided[0] for g in groups if g.decided})
    found[-1 - shard.index] = done.tally.objects  # type: ignore[assignment]


def run_shards(work: Path, table: pa.Table, count: int, config: Any, labels: dict[str, str],
               order: list[int], watches: dict[int, Any] | None = None
               ) -> tuple[dict[int, Any], list[BaseException], list[Recorder]]:
    found: dict[int, Any] = {}
    errors: list[BaseException] = []
    runners = [Recorder() for _ in range(count)]
    threads = [threading.Thread(target=shard_plan, args=(
        work, table, Shard(i, count), config, labels, runners[i], found, errors,
        (watches or {}).get(i), 0.05 * position)) for position, i in enumerate(order)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return found, errors, runners


@pytest.mark.parametrize("count", [2, 3])
def test_shards_together_make_the_plan_one_process_makes(tmp_path: Path, count: int) -> None:
    table, labels = crafted(600, seed=1)
    config = parse_config({})
    reference = make_plan(table, config, hashes=labelled(labels)).decisions.to_pylist()
    found, errors, runners = run_shards(tmp_path, table, count, config, labels,
                                        list(range(count))[::-1])
    assert not errors
    decided = pa.concat_tables(found[g] for g in sorted(g for g in found if g >= 0))
    assert decided.to_pylist() == reference
    # every shard ends with the whole plan's counts, and each ran only a share of the tasks
    assert [found[-1 - i] for i in range(count)] == [600] * count
    totals = [sum(r.counts) for r in runners]
    assert all(0 < t < sum(totals) for t in totals), totals


def test_a_shard_run_again_after_a_crash_keeps_its_finished_tasks(tmp_path: Path) -> None:
    table, labels = crafted(300, seed=2)
    config = parse_config({})

    def crash() -> None:
        raise KeyboardInterrupt  # shard 0 stops while it waits after its first phase

    _, errors, first = run_shards(tmp_path, table, 2, config, labels, [0], {0: crash})
    assert len(errors) == 1 and isinstance(errors[0], KeyboardInterrupt)
    assert first[0].counts == [3]  # 6 groups: shard 0 ran its 3 local tasks, then stopped
    found, errors, again = run_shards(tmp_path, table, 2, config, labels, [1, 0])
    assert not errors
    assert again[0].counts[0] == 0 and again[1].counts[0] == 3  # not run twice
    decided = pa.concat_tables(found[g] for g in sorted(g for g in found if g >= 0))
    assert decided.to_pylist() == make_plan(table, config,
                                            hashes=labelled(labels)).decisions.to_pylist()


def test_shards_that_see_different_work_stop(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def shard(index: int, tasks: int) -> None:
        barrier = PhaseBarrier(tmp_path, Shard(index, 2), _in_order)
        try:
            barrier([(int, ("7",))] * tasks)
        except ShardsDisagree as exc:
            errors.append(exc)

    threads = [threading.Thread(target=shard, args=(i, 3 + i)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert errors and "the shards see different manifests" in str(errors[0])


# --- through the CLI: processes, as on several workstations ----------------------------------

def cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "migrate_fs", *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def plan_rows(m: Path) -> dict[str, dict[str, Any]]:
    return {r["object_id"]: r for r in manifest.read_stage(m, "r", "plan").to_pylist()}


def test_three_plan_shards_as_processes_equal_one_plan(sample_export: Path,
                                                       tmp_path: Path) -> None:
    m = tmp_path / "m"
    inv = cli("inventory", str(sample_export), "--run", "r", "--manifests", str(m), "--quiet",
              "--workers", "1")
    assert inv.wait() == 0, inv.communicate()
    one = cli("plan", "--run", "r", "--manifests", str(m), "--workers", "1", "--buckets", "5",
              "--quiet")
    assert one.wait() == 0, one.communicate()
    reference = plan_rows(m)
    manifest.remove_parts(manifest.stage_dir(m, "r", "plan"),
                          manifest.part_names(manifest.stage_dir(m, "r", "plan")))
    procs = []
    for i in (2, 0, 1):
        procs.append(cli("plan", "--run", "r", "--manifests", str(m), "--workers", "1",
                         "--buckets", "5", "--shard", f"{i}/3"))
        time.sleep(0.3)
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert any("waiting for shard(s)" in err for _, err in outputs)  # they met between phases
    for out, _ in outputs:  # each prints the whole plan's report
        assert f"plan: {len(reference)} source objects" in out
    assert plan_rows(m) == reference
    run = manifest.run_dir(m, "r")
    assert not list(run.glob(".plan-work*")) and not (run / ".plan.running").exists()
    assert sorted(manifest.read_run_info(m, "r")["plan_shards"]) == ["0/3", "1/3", "2/3"]


def test_a_plan_shard_refuses_while_an_inventory_shard_runs(sample_export: Path,
                                                            tmp_path: Path) -> None:
    m = tmp_path / "m"
    inv = cli("inventory", str(sample_export), "--run", "r", "--manifests", str(m), "--quiet",
              "--workers", "1")
    assert inv.wait() == 0
    with lock_held(m, "r", "migrate-fs inventory", (1, 2)):
        plan = cli("plan", "--run", "r", "--manifests", str(m), "--workers", "1", "--shard",
                   "0/2")
        _, err = plan.communicate(timeout=60)
    assert plan.returncode == 1
    assert "shard 1/2 is still taking its inventory" in err and "Traceback" not in err


def test_a_shard_that_stops_on_an_error_stops_the_others(tmp_path: Path) -> None:
    stale = PhaseBarrier(tmp_path, Shard(0, 2), _in_order)
    stale.stop("an earlier attempt")  # before shard 1 starts: not a reason to stop
    time.sleep(0.05)
    errors: list[BaseException] = []

    def waiting() -> None:
        barrier = PhaseBarrier(tmp_path, Shard(1, 2), _in_order)
        try:
            barrier([(int, ("7",))] * 2)
        except ShardsDisagree as exc:
            errors.append(exc)

    thread = threading.Thread(target=waiting)
    thread.start()
    time.sleep(0.5)
    assert thread.is_alive() and not errors  # shard 1 waits for shard 0, despite the stale stop
    PhaseBarrier(tmp_path, Shard(0, 2), _in_order).stop("the plan decided 3 of 4 objects")
    thread.join(10)
    assert not thread.is_alive()
    assert errors and "shard 0/2 stopped (the plan decided 3 of 4 objects)" in str(errors[0])
