"""cli.plan: ``migrate-fs plan``, decide what happens to every object and print the report."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from migrate_fs.cli import common
from migrate_fs.config import remedy

if TYPE_CHECKING:  # the step and its tables are imported when the verb runs, not at start-up
    from migrate_fs.pipeline import PlanDone
    from migrate_fs.summary import Tally

HELP = "decide what happens to every object; print the report"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("plan", help=HELP, description=HELP, parents=[
        common.run_parent(), common.workers_parent(), common.plan_parent(),
        common.shard_parent(), common.json_parent()])
    p.add_argument("--as", dest="trial", metavar="NAME",
                   help="a trial plan: write it to MANIFESTS/RUN/trials/NAME/plan, beside the "
                        "run's own plan (which `write` executes), to compare rules")
    p.add_argument("--buckets", type=common.positive, metavar="N",
                   help="hash buckets of the whole-run decisions (default: one per million "
                        "objects); any count gives the same plan")


def handle(args: argparse.Namespace) -> int:
    from migrate_fs import pipeline

    report(pipeline.plan(run=args.run, manifests=args.manifests, config=args.config,
                         corrections=args.corrections, workers=args.workers,
                         buckets=getattr(args, "buckets", None),
                         trial=getattr(args, "trial", None), scheduler=args.scheduler,
                         shard=getattr(args, "shard", None),
                         waiting=None if args.quiet else say,
                         layout=getattr(args, "layout", None)), args)
    return 0


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def blocking_remedies(tally: Tally) -> list[tuple[str, str]]:
    """(reason, the configuration line that would change it) for the quarantine reasons of
    the plan that a setting can change."""
    from migrate_fs.summary import count_by

    reasons = sorted({reason for (action, reason), _ in count_by(tally, ["action", "reason"])
                      if action == "quarantine" and reason is not None})
    return [(code, line) for code in reasons if (line := remedy(code)) is not None]


def report(done: PlanDone, args: argparse.Namespace) -> None:
    from migrate_fs import manifest
    from migrate_fs.summary import problem_counts, table_text, totals

    hashed = done.hashed or {"objects": 0, "bytes_read": 0}
    if getattr(args, "json", False):
        from migrate_fs.summary import as_json

        print(as_json(done.tally, "plan", seconds=round(done.seconds, 3), content_hashes=hashed,
                      remedies=dict(blocking_remedies(done.tally)),
                      orphans=str(done.orphans) if done.orphans else None,
                      orphan_count=done.orphan_count, layout=done.layout,
                      suffixed_paths=done.tally.codes.get("output_path_suffixed", 0),
                      manifest=str(done.folder or manifest.stage_dir(args.manifests, args.run,
                                                                     "plan"))))
        return
    print(f"plan: {totals(done.tally)}")
    print(f"content hashes: {hashed['objects']} objects (their UID or pixel signature collides), "
          f"{hashed['bytes_read'] / 1e6:.1f} MB read; {hashed.get('decoded', 0)} objects decoded "
          "to prove variants")
    print(table_text(done.tally, ["action", "reason"]))
    print(f"output layout: {done.layout or 'uids'}; "
          f"{done.tally.codes.get('output_path_suffixed', 0)} paths suffixed (another object "
          "had the path: output_path_suffixed)")
    remedies = blocking_remedies(done.tally)
    if remedies:
        print("to migrate them instead (a rules.toml line; `migrate-fs rules --defaults`):")
        print("\n".join(f"  {code}: {line}" for code, line in remedies))
    problems = problem_counts(done.tally)
    if problems:
        print("problems found (objects per code, including those fixed or only recorded):")
        print(problems)
    if done.orphans is not None:
        print(f"corrections: {done.orphan_count} rows match no object (orphans): {done.orphans}")
    print(f"manifest: {done.folder or manifest.stage_dir(args.manifests, args.run, 'plan')}\n")
