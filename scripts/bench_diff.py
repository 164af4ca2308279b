#!/usr/bin/env python3
"""Benchmark ``migrate-fs diff`` on two plan manifests of 1,000,000 rows each.

Usage::

    python scripts/bench_diff.py [--rows 1000000] [--repeat 3] [--memory]

What it does, all of it below ``bench/diff/`` (git-ignored):

1. A real plan: the sample export (``migrate_fs.sample_export``, 24 patients: about 430
   objects with every pitfall and junk file) and ``migrate-fs inventory`` + ``plan`` of it, in
   ``bench/diff/sample``.
2. Run ``a``: that plan's rows replicated to ``--rows`` rows with
   ``scripts/replicate_inventory.py``'s ``Replicator`` (copy k: locators under
   ``/replica-<k>``, unique object ids and UIDs, every other column the base's), in parts of
   1,024 rows, as ``migrate-fs plan`` writes them.
3. Run ``b``: the same rows, then, by the row's number i in ``a``: every row with i % 100 == 37
   changed (action migrate <-> quarantine, reason to another code, output_path prefixed: 1%),
   every row with i % 1000 == 500 dropped (0.1%), and rows/1000 rows of further copies added
   (0.1%); written in parts of 1,000 rows, each part's rows in reverse order, so that no part
   boundary or row order matches ``a``'s.
   Both runs are cached (``bench/diff/manifests/{a,b}``, with ``made.json``: the counts made)
   until ``--rows``, the scheme or the sample changes.
4. Times ``migrate-fs diff a b --manifests bench/diff/manifests --json`` ``--repeat`` times:
   wall time, user + system CPU of the process and every descendant it waited for, and peak
   RSS of the largest process (``os.wait4``; DuckDB works in threads of that one process),
   takes the medians, checks that the counts found equal the counts made (and that each
   changed row differs in action, reason and output_path), and prints a Markdown row.
   ``--memory`` adds, from ``/proc`` sampling, the largest resident size seen.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from replicate_inventory import Replicator  # noqa: E402

SCHEME = 1  # of the generation below: a change regenerates the cache
BENCH = ROOT / "bench" / "diff"
PART_ROWS_A, PART_ROWS_B = 1024, 1000
CHANGED, DROPPED = (100, 37), (1000, 500)  # row i of a: i % m == r


def sample_plan(folder: Path) -> pa.Table:
    """The plan of the sample export (made once): the base rows."""
    from migrate_fs import manifest
    from migrate_fs.cli.main import main
    from migrate_fs.sample_export import make_sample_export

    manifests = folder / "manifests"
    if not (folder / "done").exists():
        shutil.rmtree(folder, ignore_errors=True)
        make_sample_export(folder / "export", patients=24)
        for argv in (["inventory", str(folder / "export")], ["plan"]):
            with contextlib.redirect_stdout(sys.stderr):
                code = main([*argv, "--run", "sample", "--manifests", str(manifests),
                             "--quiet", "--workers", "2"])
            if code != 0:
                raise SystemExit(f"migrate-fs {argv[0]} of the sample failed ({code})")
        (folder / "done").touch()
    return manifest.read_stage(manifests, "sample", "plan")


def changed(table: pa.Table, mask: pa.Array) -> pa.Table:
    """``table`` with action, reason and output_path changed where ``mask`` is true."""
    action, reason, path = (table.column(c) for c in ("action", "reason", "output_path"))
    new = {
        "action": pc.if_else(pc.equal(action, "migrate"), "quarantine", "migrate"),
        "reason": pc.if_else(pc.equal(pc.fill_null(reason, ""), "uid_conflict"), "truncated",
                             "uid_conflict"),
        "output_path": pc.binary_join_element_wise("changed/", pc.fill_null(path, "none"), ""),
    }
    for name, values in new.items():
        table = table.set_column(table.schema.get_field_index(name), name,
                                 pc.if_else(mask, values, table.column(name)))
    return table


class Parts:
    """Rows written as parts of ``size`` rows (each in reverse order when ``reverse``)."""

    def __init__(self, folder: Path, size: int, reverse: bool) -> None:
        self.folder, self.size, self.reverse = folder, size, reverse
        folder.mkdir(parents=True)
        self.pending: list[pa.Table] = []
        self.rows = self.parts = 0

    def add(self, table: pa.Table, last: bool = False) -> None:
        self.pending.append(table)
        self.rows += table.num_rows
        rows = pa.concat_tables(self.pending)
        offset = 0
        while rows.num_rows - offset >= self.size or (last and offset < rows.num_rows):
            part = rows.slice(offset, self.size).combine_chunks()
            if self.reverse:
                part = part.take(pa.array(range(part.num_rows - 1, -1, -1)))
            pq.write_table(part, self.folder / f"part-{self.parts:07d}.parquet")
            self.parts += 1
            offset += part.num_rows
        self.pending = [rows.slice(offset)]


def make_runs(rows: int, manifests: Path) -> dict[str, int]:
    """Runs ``a`` and ``b`` (see the module's docstring), unless cached; the counts made."""
    base = sample_plan(BENCH / "sample")
    key = {"scheme": SCHEME, "rows": rows, "base_rows": base.num_rows}
    stamp = manifests / "made.json"
    if stamp.exists() and {k: v for k, v in json.loads(stamp.read_text()).items()
                           if k in key} == key:
        return json.loads(stamp.read_text())
    shutil.rmtree(manifests, ignore_errors=True)
    started = time.perf_counter()
    replicator = Replicator(base)
    a = Parts(manifests / "a" / "plan", PART_ROWS_A, reverse=False)
    b = Parts(manifests / "b" / "plan", PART_ROWS_B, reverse=True)
    copies, made = -(-rows // base.num_rows), {"changed": 0, "removed": 0, "added": 0}
    for k in range(copies):
        copy = replicator.copy(k, min(base.num_rows, rows - k * base.num_rows))
        index = np.arange(k * base.num_rows, k * base.num_rows + copy.num_rows)
        change = pa.array(index % CHANGED[0] == CHANGED[1])
        keep = pa.array(index % DROPPED[0] != DROPPED[1])
        a.add(copy, last=k == copies - 1)
        made["changed"] += pc.sum(change).as_py() or 0
        made["removed"] += copy.num_rows - (pc.sum(keep).as_py() or 0)
        b.add(changed(copy, change).filter(keep))
    added, k = rows // 1000, copies
    while made["added"] < added:  # further copies: objects only b has
        copy = replicator.copy(k, min(base.num_rows, added - made["added"]))
        made["added"] += copy.num_rows
        k += 1
        b.add(copy)
    b.add(copy.slice(0, 0), last=True)
    done = {**key, **made, "rows_a": a.rows, "rows_b": b.rows, "parts_a": a.parts,
            "parts_b": b.parts, "seconds": round(time.perf_counter() - started, 1)}
    stamp.write_text(json.dumps(done, indent=2))
    return done


def run_diff(manifests: Path, sample: bool) -> dict[str, Any]:
    """One timed ``migrate-fs diff a b`` (fork + exec, reaped with wait4 for its rusage)."""
    argv = [sys.executable, "-m", "migrate_fs", "diff", "a", "b", "--manifests",
            str(manifests), "--json"]
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: the command, its output to files
        out = os.open(manifests / "diff.out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(manifests / "diff.err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.execv(argv[0], argv)
    seen = _sample_rss(pid) if sample else 0.0
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"migrate-fs diff failed ({code}): "
                         f"{(manifests / 'diff.err').read_text()}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
            "user": usage.ru_utime, "system": usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024, "sampled_rss_mb": seen,
            "found": json.loads((manifests / "diff.out").read_text())}


def _sample_rss(pid: int) -> float:
    """The largest VmRSS of ``pid`` seen every 20 ms until it exits (MB)."""
    seen = 0
    while True:
        try:
            with open(f"/proc/{pid}/status") as f:
                status = f.read()
        except OSError:
            break
        if "State:\tZ" in status:
            break
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                seen = max(seen, int(line.split()[1]))
        time.sleep(0.02)
    return seen / 1024


def check(found: dict[str, Any], made: dict[str, int]) -> list[str]:
    """What the diff found that the generation did not make (empty: it found exactly that)."""
    wrong = [f"{what}: found {found[what]}, made {made[what]}"
             for what in ("added", "removed", "changed") if found[what] != made[what]]
    wrong += [f"objects of {side}: found {found[side]['objects']}, made {made['rows_' + side]}"
              for side in "ab" if found[side]["objects"] != made["rows_" + side]]
    wrong += [f"column {column}: changed in {found['columns_changed'].get(column, 0)} objects, "
              f"made {made['changed']}" for column in ("action", "reason", "output_path")
              if found["columns_changed"].get(column, 0) != made["changed"]]
    return wrong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, metavar="N")
    parser.add_argument("--repeat", type=int, default=3, metavar="N")
    parser.add_argument("--memory", action="store_true",
                        help="also sample the process's RSS from /proc every 20 ms")
    args = parser.parse_args(argv)
    manifests = BENCH / f"manifests-{args.rows}"
    made = make_runs(args.rows, manifests)
    print(f"runs a ({made['rows_a']:,} rows, {made['parts_a']} parts) and b "
          f"({made['rows_b']:,} rows, {made['parts_b']} parts) in {manifests}: made "
          f"{made['changed']:,} changed, {made['removed']:,} removed, {made['added']:,} added",
          file=sys.stderr)
    runs = [run_diff(manifests, args.memory) for _ in range(args.repeat)]
    wrong = sorted({w for r in runs for w in check(r["found"], made)})
    median = {k: statistics.median(r[k] for r in runs)
              for k in ("wall", "cpu", "user", "system", "peak_rss_mb", "sampled_rss_mb")}
    print("| rows A | rows B | added | removed | changed | wall s | CPU s | user s | system s "
          "| peak RSS MB | counts |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    found = runs[0]["found"]
    print(f"| {made['rows_a']:,} | {made['rows_b']:,} | {found['added']:,} | "
          f"{found['removed']:,} | {found['changed']:,} | {median['wall']:.2f} | "
          f"{median['cpu']:.2f} | {median['user']:.2f} | {median['system']:.2f} | "
          f"{median['peak_rss_mb']:.0f} | {'as made' if not wrong else 'WRONG'} |")
    print(f"median of {len(runs)}: `{sys.executable} -m migrate_fs diff a b --manifests "
          f"{manifests} --json`; each run's wall s: "
          + ", ".join(f"{r['wall']:.2f}" for r in runs)
          + (f"; largest RSS sampled from /proc: {median['sampled_rss_mb']:.0f} MB"
             if args.memory else ""))
    for line in wrong:
        print(f"WRONG: {line}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
