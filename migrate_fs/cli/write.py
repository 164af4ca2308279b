"""cli.write: ``migrate-fs write``, execute the plan into Part 10 files and the result."""

from __future__ import annotations

import argparse

from migrate_fs import manifest, pipeline
from migrate_fs.cli import common
from migrate_fs.pipeline import StepDone
from migrate_fs.summary import table_text, totals

HELP = "execute the plan: write Part 10 files and the result"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    subparsers.add_parser("write", help=HELP, description=HELP, parents=[
        common.run_parent(), common.workers_parent(), common.output_parent()])


def handle(args: argparse.Namespace) -> int:
    report(pipeline.write(run=args.run, out=args.out, manifests=args.manifests,
                          workers=args.workers, quiet=args.quiet, fsync=args.fsync), args)
    return 0


def report(done: StepDone, args: argparse.Namespace) -> None:
    print(f"write: {totals(done.table)}; {done.bytes_written / 1e6:.1f} MB written now in "
          f"{done.seconds:.1f} s")
    print(table_text(done.table, ["action", "status", "reason"]))
    print(f"output: {args.out.resolve()}")
    print(f"manifest: {manifest.stage_dir(args.manifests, args.run, 'result')}")
