"""cli.write: ``migrate-fs write``, execute the plan into Part 10 files and the result."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from migrate_fs.cli import common
from migrate_fs.cli.common import EXIT_FAILED_OBJECTS

if TYPE_CHECKING:  # the step and its tables are imported when the verb runs, not at start-up
    from migrate_fs.pipeline import StepDone

HELP = "execute the plan: write Part 10 files and the result"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    subparsers.add_parser("write", help=HELP, description=HELP, parents=[
        common.run_parent(), common.workers_parent(), common.output_parent(),
        common.shard_parent(), common.json_parent()])


def handle(args: argparse.Namespace) -> int:
    from migrate_fs import pipeline

    done = pipeline.write(run=args.run, out=args.out, manifests=args.manifests,
                          workers=args.workers, quiet=args.quiet, fsync=args.fsync,
                          scheduler=args.scheduler, shard=getattr(args, "shard", None))
    report(done, args)
    return failed(done)


def failed(done: StepDone) -> int:
    """Exit code 3 (and a line saying what to do) when objects failed to be written."""
    if not done.failed:
        return 0
    from migrate_fs.summary import count_by

    reasons = ", ".join(f"{n} {reason}" for (status, reason), n in
                        count_by(done.tally, ["status", "reason"]) if status == "failed")
    print(f"migrate-fs: {done.failed} objects failed to be written ({reasons}); fix the cause "
          "(disk space, permissions, a source that changed) and run the same command again: "
          "failed objects are retried", file=sys.stderr)
    return EXIT_FAILED_OBJECTS


def report(done: StepDone, args: argparse.Namespace) -> None:
    from migrate_fs import manifest
    from migrate_fs.summary import table_text, totals

    if getattr(args, "json", False):
        from migrate_fs.summary import as_json

        print(as_json(done.tally, "write", seconds=round(done.seconds, 3),
                      bytes_written=done.bytes_written, failed=done.failed,
                      repaired=done.repaired, output=str(args.out.resolve()),
                      manifest=str(manifest.stage_dir(args.manifests, args.run, "result"))))
        return
    print(f"write: {totals(done.tally)}; {done.bytes_written / 1e6:.1f} MB written now in "
          f"{done.seconds:.1f} s" + (f"; {done.repaired} missing or damaged outputs written "
                                     "again" if done.repaired else ""))
    print(table_text(done.tally, ["action", "status", "reason"]))
    print(f"output: {args.out.resolve()}")
    print(f"manifest: {manifest.stage_dir(args.manifests, args.run, 'result')}")
