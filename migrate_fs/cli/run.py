"""cli.run: ``migrate-fs run``, inventory, plan and write in one go."""

from __future__ import annotations

import argparse

from migrate_fs.cli import common, inventory, plan, write

HELP = "inventory, plan and write in one go"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    subparsers.add_parser("run", help=HELP, description=HELP, parents=[
        common.sources_parent(), common.run_parent(run_required=False),
        common.workers_parent(), common.decode_parent(), common.plan_parent(),
        common.output_parent(), common.shard_parent(), common.json_parent()])


def handle(args: argparse.Namespace) -> int:
    """The three steps; with ``--shard I/N`` each is this shard's share, and the shards meet
    after the inventory (the plan needs all of it) and between the plan's phases."""
    from migrate_fs import manifest, pipeline

    args.run = args.run or pipeline.default_run_name(args.out)
    pipeline.check_run(args.manifests, args.run, args.sources, args.out)
    shard = args.shard
    with manifest.run_lock(args.manifests, args.run, "migrate-fs run",
                           None if shard is None else (shard.index, shard.count)):
        inventory.handle(args)
        if shard is None:
            plan.handle(args)
        else:
            barrier = pipeline.inventory_barrier(args.manifests, args.run, shard,
                                                 None if args.quiet else plan.say)
            plan.handle(args)
            pipeline.leave_barrier(barrier)
        return write.handle(args)
