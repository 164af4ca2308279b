"""cli.main: the ``migrate-fs`` command: the verbs, in order, and the exit codes.

Exit codes: 0 when every source object is accounted for in the manifest; 1 on a run-level error
(:class:`migrate_fs.errors.MigrateError`: a missing source, a step run out of order, output
inside the source), printed as one line saying what to do next; 2 on a usage error.
Each verb is one module with ``HELP``, ``add_parser(subparsers)`` and ``handle(args) -> int``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from migrate_fs import __version__
from migrate_fs.cli import inventory, plan, rules, run, write
from migrate_fs.errors import MigrateError

COMMANDS = [inventory, plan, write, run, rules]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="migrate-fs", description=(
        "Migrate a legacy DICOM storage export into Part 10 folders, with Parquet manifests "
        "that account for every source object."))
    parser.add_argument("--version", action="version", version=f"migrate-fs {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    handlers = {c.__name__.rsplit(".", 1)[-1]: c.handle for c in COMMANDS}
    try:
        return handlers[args.command](args)
    except MigrateError as exc:
        print(f"migrate-fs: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
