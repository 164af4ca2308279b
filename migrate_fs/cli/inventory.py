"""cli.inventory: ``migrate-fs inventory``, read every object's header into the inventory."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from migrate_fs.cli import common

if TYPE_CHECKING:  # the step and its tables are imported when the verb runs, not at start-up
    from migrate_fs.pipeline import StepDone

HELP = "read every object's header into the inventory manifest"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("inventory", help=HELP, description=HELP, parents=[
        common.sources_parent(), common.run_parent(), common.workers_parent(),
        common.decode_parent(), common.shard_parent(), common.json_parent()])
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="rules configuration (TOML): its [pixel] settings apply here")


def handle(args: argparse.Namespace) -> int:
    from migrate_fs import pipeline

    done = pipeline.inventory(args.sources, run=args.run, manifests=args.manifests,
                              volumes=args.volumes, workers=args.workers, quiet=args.quiet,
                              config=args.config, decode_check=args.decode_check,
                              scheduler=args.scheduler, shard=getattr(args, "shard", None))
    report(done, args)
    return 0


def report(done: StepDone, args: argparse.Namespace) -> None:
    from migrate_fs import manifest
    from migrate_fs.summary import table_text, totals

    if getattr(args, "json", False):
        from migrate_fs.summary import as_json

        print(as_json(done.tally, "inventory", seconds=round(done.seconds, 3),
                      bytes_read=done.bytes_read,
                      manifest=str(manifest.stage_dir(args.manifests, args.run, "inventory"))))
        return
    size = done.tally.total("size")
    print(f"inventory: {totals(done.tally)} in {done.seconds:.1f} s; read "
          f"{done.bytes_read / 1e6:.1f} MB ({100 * done.bytes_read / max(size, 1):.1f}% of the "
          "export)")
    print(table_text(done.tally, ["kind"]))
    print(f"manifest: {manifest.stage_dir(args.manifests, args.run, 'inventory')}\n")
