"""cli.rules: ``migrate-fs rules``, the effective rule set, or a documented default config."""

from __future__ import annotations

import argparse
from pathlib import Path

from migrate_fs.config import default_toml, describe, load_config

HELP = "print the effective rule set (or --defaults: a config file with every default)"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("rules", help=HELP, description=HELP)
    p.add_argument("--config", type=Path, metavar="FILE", help="rules configuration (TOML)")
    p.add_argument("--defaults", action="store_true",
                   help="print the default configuration file, documented")


def handle(args: argparse.Namespace) -> int:
    print(default_toml() if args.defaults else describe(load_config(args.config)),
          end="" if args.defaults else "\n")
    return 0
