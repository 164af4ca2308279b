"""cli.verify: ``migrate-fs verify``, check a finished write's outputs against its manifests
(:mod:`migrate_fs.audit.verify` does it; see there what is checked when).

Exit codes: 0 when every check passed and there is no stray; 4 (``EXIT_AUDIT_FAILED``) when a
check failed or a stray exists; 3 (``EXIT_FAILED_OBJECTS``) when all checks passed but objects
failed at write time (they have no output: run write again); 1 on a run-level error (no result:
run write first).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from migrate_fs.cli import common
from migrate_fs.cli.common import EXIT_AUDIT_FAILED, EXIT_FAILED_OBJECTS

if TYPE_CHECKING:  # imported when the verb runs, not at start-up
    from migrate_fs.audit.verify import Verified

HELP = "check the outputs of a write against the result manifest and the sources"
DEFAULT_SAMPLE = 100  # as audit.verify's (not imported at start-up)



def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("verify", help=HELP, description=(
        f"{HELP}: every output is re-read and checked against the result manifest (present, "
        "size, SHA-256, Part 10, file meta, UIDs, planned changes), the pixel data compared "
        "with the source for a sample (or --all), and stray files in the output tree listed. "
        "Writes manifests/RUN/verify/ and manifests/RUN/verify_strays.parquet. Exit code 4 "
        "when a check fails or a stray exists."), parents=[
        common.run_parent(), common.workers_parent(), common.json_parent(),
        common.shard_parent()])
    which = p.add_mutually_exclusive_group()
    which.add_argument("--sample", type=common.non_negative, default=DEFAULT_SAMPLE, metavar="N",
                       help="compare the pixel data with the source for N objects, the same "
                            f"ones on every run (default: {DEFAULT_SAMPLE}; 0: none)")
    which.add_argument("--all", action="store_true",
                       help="compare every object's pixel data with its source (reads the "
                            "whole export again)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="the output root (default: the one the write recorded in run.json)")


def handle(args: argparse.Namespace) -> int:
    from migrate_fs.audit.verify import verify_run

    done = verify_run(run=args.run, manifests=args.manifests, out=args.out,
                      sample=None if args.all else args.sample, workers=args.workers,
                      scheduler=args.scheduler, quiet=args.quiet, shard=args.shard)
    if args.json:
        print(json.dumps(done.as_dict(), sort_keys=True))
    else:
        report(done)
    if not done.passed:
        print(f"migrate-fs: verify failed (outputs that failed a check: {done.failed}; stray "
              f"files: {sum(done.strays.values())}); see {done.folder} and {done.strays_file}",
              file=sys.stderr)
        return EXIT_AUDIT_FAILED
    if done.not_verified.get("failed"):
        print(f"migrate-fs: {done.not_verified['failed']} objects failed at write time and "
              "have no output: run migrate-fs write again, then verify", file=sys.stderr)
        return EXIT_FAILED_OBJECTS
    return 0


def report(done: Verified) -> None:
    from collections import Counter

    from migrate_fs.summary import Tally, problem_counts, table_text

    compared = "every object" if done.sample is None else f"a sample of {done.sample}"
    print(f"verify: {done.objects} outputs checked in {done.seconds:.1f} s; pixel data compared "
          f"with the source for {done.pixel_compared} ({compared})")
    tally = Tally(keys=("verify_status",), codes=Counter(done.problems),
                  groups={(status,): [n] for status, n in done.by_status.items()})
    if done.objects:
        print(table_text(tally, ["verify_status"]))
    if done.problems:
        print(problem_counts(tally))
    strays = ", ".join(f"{n} {kind}" for kind, n in sorted(done.strays.items())) or "none"
    print(f"strays: {strays}" + (f" (listed in {done.strays_file})" if done.strays else ""))
    if done.not_verified:
        print("not verified (no output to check): " + ", ".join(
            f"{n} {status}" for status, n in sorted(done.not_verified.items())))
    print(f"output: {done.out}")
    print(f"manifest: {done.folder}")
