"""cli.diff: ``migrate-fs diff``, what differs between two runs or two plans, object by object.

``RUN`` names a run's own plan (its result with ``--stage result``), ``RUN:PLAN`` a trial plan
made with ``plan --run RUN --as PLAN``. The comparison is :mod:`migrate_fs.audit.diff`'s; this
module prints the summary.
Differences are the answer, not an error: the exit code is 0 unless a side is missing (1)
or a trial plan's result is asked for (2).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from migrate_fs.cli import common

HELP = "compare two runs, or two plans of a run, object by object"
DESCRIPTION = (
    f"{HELP} (matched by object_id): the objects added, removed and changed (action, reason, "
    "output path and transfer syntax, duplicate_of, changes, problem codes; with --stage "
    "result also status and output sha256). RUN is a run's own plan (its result with --stage "
    "result), RUN:PLAN the trial plan `migrate-fs plan --run RUN --as PLAN` made. Prints the "
    "counts and the first changed objects, and writes the full diff as Parquet to "
    "MANIFESTS/<run of B>/diff/.")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("diff", help=HELP, description=DESCRIPTION,
                              parents=[common.json_parent()])
    p.add_argument("a", metavar="RUN_A[:PLAN]", help="the run (or run:trial plan) to compare from")
    p.add_argument("b", metavar="RUN_B[:PLAN]", help="the run (or run:trial plan) to compare to")
    p.add_argument("--manifests", type=Path, default=Path("manifests"), metavar="DIR",
                   help="where run manifests live (default: ./manifests)")
    p.add_argument("--stage", choices=("plan", "result"), default="plan",
                   help="compare the plans (default) or the results of two runs")
    p.add_argument("--limit", type=common.non_negative, default=20, metavar="N",
                   help="changed objects to print (default: 20; the diff file has them all)")



def handle(args: argparse.Namespace) -> int:
    from migrate_fs.audit.diff import diff_path, first_rows, sides, write_diff
    from migrate_fs.planning import RUNNING

    a, b = sides(args.manifests, [args.a, args.b], args.stage)
    for side in (a, b):
        if args.stage == "plan" and (side.folder.parent / RUNNING).exists():
            print(f"migrate-fs: warning: the plan in {side.folder} is being written, or its "
                  "writing was interrupted: it may hold parts of two plans (run that plan "
                  "again)", file=sys.stderr)
    summary = write_diff(a.folder, b.folder, diff_path(args.manifests, a, b, args.stage),
                         stage=args.stage, names=(a.name, b.name))
    first = first_rows(summary.path, change="changed", limit=args.limit) if args.limit else []
    if args.json:
        print(json.dumps({"step": "diff", **summary.as_dict(), "first_changed": first},
                         default=str))  # one line, as every step's --json
        return 0
    print_summary(summary.as_dict(), first)
    return 0


def print_summary(found: dict[str, Any], first: list[dict[str, Any]]) -> None:
    from migrate_fs.summary import aligned

    a, b = found["a"], found["b"]
    print(f"diff of {found['stage']}s: {a['name']} ({a['objects']} objects, {a['folder']}) -> "
          f"{b['name']} ({b['objects']} objects, {b['folder']})")
    print(f"added {found['added']}, removed {found['removed']}, changed {found['changed']}, "
          f"unchanged {found['unchanged']}")
    if found["changed"]:
        print("changed objects by decision:")
        print(aligned([["objects", "action", "reason"], *(
            [str(d["objects"]), _arrow(d["action_a"], d["action_b"]),
             _arrow(d["reason_a"], d["reason_b"])] for d in found["changed_by_decision"])]))
        print("columns changed (objects): " + ", ".join(
            f"{column} {n}" for column, n in found["columns_changed"].items()))
    if first:
        print(f"first {len(first)} of {found['changed']} changed objects:")
        for row in first:
            print(f"  {_shown(row['locator'])}")
            for column in row["columns_changed"]:
                print(f"    {column}: {_change(column, row[f'{column}_a'], row[f'{column}_b'])}")
    rows = found["added"] + found["removed"] + found["changed"]
    print(f"full diff ({rows} rows, pandas.read_parquet or DuckDB): {found['diff']}")


def _change(column: str, a: Any, b: Any) -> str:
    """One column's change, for the listing: a list column (changes, problems: compact text)
    as the entries only one side has."""
    if column not in LISTS:
        return _arrow(a, b)
    separator = LISTS[column]
    entries_a, entries_b = ((text or "").split(separator) if text else [] for text in (a, b))
    only_a = [e for e in entries_a if e not in entries_b] or ["-"]
    only_b = [e for e in entries_b if e not in entries_a] or ["-"]
    if only_a == only_b == ["-"]:  # the same entries in another order, or repeated
        return _arrow(a, b)
    return (f"only in A: {_shown(separator.join(only_a), 300)} | "
            f"only in B: {_shown(separator.join(only_b), 300)}")


LISTS = {"changes": "; ", "problems": ", "}  # list columns as the diff's compact text


def _arrow(a: Any, b: Any, width: int = 300) -> str:
    return f"{_shown(a, width)} -> {_shown(b, width)}"


def _shown(value: Any, width: int = 1000) -> str:
    """A value as one printable line: '-' for none, control characters escaped, cut at
    ``width``."""
    if value is None:
        return "-"
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(value))
    return text if len(text) <= width else text[: width - 3] + "..."
