"""cli.status: ``migrate-fs status``, where a run stands and what to run next."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "show where a run stands, per stage, and what to run next"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("status", help=HELP, description=HELP)
    p.add_argument("--run", required=True, metavar="NAME", help="the run's name")
    p.add_argument("--manifests", type=Path, default=Path("manifests"), metavar="DIR",
                   help="where run manifests live (default: ./manifests)")
    p.add_argument("--json", action="store_true", help="print the status as JSON, for scripts")


def handle(args: argparse.Namespace) -> int:
    from migrate_fs.status import run_status

    status = run_status(args.manifests, args.run)
    if args.json:
        print(json.dumps(status.as_dict(), indent=2, sort_keys=True))
        return 0
    from migrate_fs.summary import bytes_text

    print(f"run {status.run} ({status.folder})")
    header = ["stage", "parts", "objects", "expected", "pending", "failed", "bytes", "objects/s",
              "time left"]
    rows = [header]
    for s in status.stages:
        rows.append([s.stage, str(s.parts), str(s.objects), _or_dash(s.expected),
                     _or_dash(s.pending), str(s.failed), bytes_text(s.bytes),
                     f"{s.rate:.0f}" if s.rate else "-", _duration(s.eta_seconds)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip())
    for step, done in status.shards.items():
        print(f"{step} shards: " + ", ".join(
            f"{label} {figures.get('objects', 0)} objects"
            + (f" on {figures['host']}" if figures.get("host") else "")
            for label, figures in sorted(done.items())))
    if status.busy:
        print(f"busy: {status.busy}")
    if status.plan_interrupted:
        print("the last plan did not finish: its plan folder may hold parts of two plans")
    print(f"next: {status.next_step}")
    return 0


def _or_dash(value: int | None) -> str:
    return "-" if value is None else str(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
