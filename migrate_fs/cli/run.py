"""cli.run: ``migrate-fs run``, inventory, plan and write in one go."""

from __future__ import annotations

import argparse

from migrate_fs.cli import common, inventory, plan, write

HELP = "inventory, plan and write in one go"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    subparsers.add_parser("run", help=HELP, description=HELP, parents=[
        common.sources_parent(), common.run_parent(run_required=False),
        common.workers_parent(), common.decode_parent(), common.plan_parent(),
        common.output_parent()])


def handle(args: argparse.Namespace) -> int:
    from migrate_fs import manifest, pipeline

    args.run = args.run or pipeline.default_run_name(args.out)
    pipeline.check_run(args.manifests, args.run, args.sources, args.out)
    with manifest.run_lock(args.manifests, args.run, "migrate-fs run"):
        inventory.handle(args)
        plan.handle(args)
        return write.handle(args)
