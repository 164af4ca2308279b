"""cli.report: ``migrate-fs report``, a self-contained HTML report of a run (issue 16).

Thin: :mod:`migrate_fs.audit.report` counts and draws; this module writes the file and prints
where it went (or the numbers as JSON).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from migrate_fs.cli.common import json_parent, run_parent

HELP = ("write a self-contained HTML report of a run (totals, modalities, study years, "
        "problems, verification, reconciliation, throughput) to forward")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report", help=HELP, parents=[run_parent(), json_parent()],
        description=HELP + ". It reads the result manifest (the plan's, before any write) part "
        "by part, and opens in a browser without a server or network.")
    p.add_argument("--html", type=Path, metavar="FILE",
                   help="where to write the report (default: MANIFESTS/NAME/report/report.html)")


def handle(args: argparse.Namespace) -> int:
    from migrate_fs.audit.report import collect, default_path, render_html, write_html
    from migrate_fs.errors import UsageError
    from migrate_fs.summary import bytes_text

    path = args.html or default_path(args.manifests, args.run)
    if path.is_dir():
        raise UsageError(f"--html {path} is a folder: give the report's file name, such as "
                         f"{path / 'report.html'}")
    report = collect(args.manifests, args.run)
    write_html(path, render_html(report))
    if args.json:
        print(json.dumps({"html": str(path), **report.as_dict()}, indent=2, sort_keys=True))
        return 0
    total = report.total
    print(f"report of run {report.run} ({report.stage} manifest): {total.objects} source "
          f"objects, {bytes_text(total.size)}; "
          + ", ".join(f"{n} {name}" for name, n in report.outcomes.items()))
    print(f"html: {path}")
    return 0
