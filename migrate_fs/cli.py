"""cli: the ``migrate-fs`` command. Parses arguments, calls the library, prints a summary.

Exit codes: 0 when every source object is accounted for in the manifest; 1 on a run-level error
(a missing source, a step run out of order, output inside the source); 2 on a usage error.
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from migrate_fs import __version__, manifest
from migrate_fs.execution import run_inventory, run_plan, run_write
from migrate_fs.config import ConfigError, default_toml, describe, load_config
from migrate_fs.corrections import load_corrections
from migrate_fs.plan import HASH_STATS
from migrate_fs.summary import problem_counts, table_text, totals


class RunError(Exception):
    """A run-level error: printed as one line, exit code 1."""


def _common(p: argparse.ArgumentParser, *, run_required: bool = True) -> None:
    p.add_argument("--run", required=run_required, metavar="NAME",
                   help="run name: its manifests go to MANIFESTS/NAME")
    p.add_argument("--manifests", type=Path, default=Path("manifests"), metavar="DIR",
                   help="where run manifests live (default: ./manifests)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _sources(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="*", metavar="SRC",
                   help="export folders, files or tar archives (plain, .gz, .bz2, .xz); "
                        "read-only, archives are never extracted")
    p.add_argument("--volumes", nargs="+", action="append", default=[], metavar="FILE",
                   help="the volumes of one split dump, in order (or one quoted glob, sorted); "
                        "repeat the option for several dumps")


def _volume_sets(groups: list[list[str]]) -> list[list[str]]:
    """Each --volumes group as a list of paths, a lone glob pattern expanded in sorted order."""
    sets = []
    for group in groups:
        if len(group) == 1 and glob.has_magic(group[0]):
            pattern, group = group[0], sorted(glob.glob(group[0]))
            if not group:
                raise RunError(f"--volumes pattern {pattern!r} matches no file")
        missing = [v for v in group if not os.path.isfile(v)]
        if missing:
            raise RunError(f"volume {missing[0]} is not a file; check the path")
        sets.append([os.path.abspath(v) for v in group])
    return sets


def _workers(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                   help="worker processes (default: all cores)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="migrate-fs", description=(
        "Migrate a legacy DICOM storage export into Part 10 folders, with Parquet manifests "
        "that account for every source object."))
    parser.add_argument("--version", action="version", version=f"migrate-fs {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inventory", help="read every object's header into the inventory manifest")
    _sources(p)
    _common(p)
    _workers(p)
    _decode_check(p)
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="rules configuration (TOML): its [pixel] settings apply here")
    p = sub.add_parser("plan", help="decide what happens to every object; print the report")
    _common(p)
    _plan_options(p)
    p = sub.add_parser("write", help="execute the plan: write Part 10 files and the result")
    _common(p)
    _workers(p)
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output root")
    p.add_argument("--fsync", action="store_true", help="fsync every output file (slower)")
    p = sub.add_parser("run", help="inventory, plan and write in one go")
    _sources(p)
    _common(p, run_required=False)
    _workers(p)
    _decode_check(p)
    _plan_options(p)
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output root")
    p.add_argument("--fsync", action="store_true", help="fsync every output file (slower)")
    p = sub.add_parser("rules", help="print the effective rule set (or --defaults: a config "
                                     "file with every default)")
    p.add_argument("--config", type=Path, metavar="FILE", help="rules configuration (TOML)")
    p.add_argument("--defaults", action="store_true",
                   help="print the default configuration file, documented")
    return parser


def _plan_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="rules configuration (TOML); `migrate-fs rules --defaults` prints one")
    p.add_argument("--corrections", type=Path, metavar="FILE",
                   help="legacy database corrections (CSV or Parquet): see the README")


def _decode_check(p: argparse.ArgumentParser) -> None:
    p.add_argument("--decode-check", choices=("none", "first", "all"), default=None,
                   help="decode pixel data in a separate process during the inventory "
                        "(default: the config's pixel.decode_check, 'none')")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    if getattr(args, "workers", 1) < 1:
        print("migrate-fs: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.command == "rules":
        return _rules(args)
    if args.command == "run" and not args.run:
        args.run = args.out.resolve().name or "run"
    try:
        manifest.run_dir(args.manifests, args.run)
        steps = {"inventory": [_inventory], "plan": [_plan], "write": [_write],
                 "run": [_inventory, _plan, _write]}[args.command]
        for step in steps:
            step(args)
    except (RunError, manifest.RunNotFound, FileNotFoundError, ValueError,
            ConfigError) as exc:  # CorrectionsError is a ValueError
        print(f"migrate-fs: {exc}", file=sys.stderr)
        return 1
    return 0


def _inventory(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    if not args.sources and not args.volumes:
        raise RunError("name at least one source (SRC or --volumes)")
    volume_sets = _volume_sets(args.volumes)
    config = load_config(args.config)
    decode = args.decode_check or config.decode_check
    count, read = run_inventory(args.sources, args.manifests, args.run, workers=args.workers,
                                quiet=args.quiet, volume_sets=volume_sets, decode_check=decode,
                                decoder=config.decoder or None)
    seconds = time.perf_counter() - start
    table = manifest.read_stage(args.manifests, args.run, "inventory", ["kind", "size"])
    if table.num_rows != count:
        raise RunError(f"inventory holds {table.num_rows} rows for {count} source objects")
    size = sum(table.column("size").to_pylist())
    manifest.write_run_info(args.manifests, args.run,
                            sources=[os.path.abspath(s) for s in args.sources]
                            + [v for vs in volume_sets for v in vs],
                            inventory={"objects": count, "bytes_read": read, "seconds": seconds,
                                       "export_bytes": size})
    print(f"inventory: {totals(table)} in {seconds:.1f} s; read {read / 1e6:.1f} MB "
          f"({100 * read / max(size, 1):.1f}% of the export)")
    print(table_text(table, ["kind"]))
    print(f"manifest: {manifest.stage_dir(args.manifests, args.run, 'inventory')}\n")


def _rules(args: argparse.Namespace) -> int:
    if args.defaults:
        print(default_toml(), end="")
        return 0
    try:
        print(describe(load_config(args.config)))
    except ConfigError as exc:
        print(f"migrate-fs: {exc}", file=sys.stderr)
        return 1
    return 0


def _plan(args: argparse.Namespace) -> None:
    config = load_config(args.config)
    corrections = load_corrections(args.corrections) if args.corrections else None
    hashed = dict(HASH_STATS)
    plan, orphans = run_plan(args.manifests, args.run, config, corrections)
    hashed = {k: HASH_STATS[k] - hashed[k] for k in hashed}
    manifest.write_run_info(args.manifests, args.run, plan={
        "config": config.as_dict(), "content_hashes": hashed,
        "corrections": str(args.corrections.resolve()) if args.corrections else None})
    print(f"plan: {totals(plan)}")
    print(f"content hashes: {hashed['objects']} objects (their UID or pixel signature collides), "
          f"{hashed['bytes_read'] / 1e6:.1f} MB read")
    print(table_text(plan, ["action", "reason"]))
    report = problem_counts(plan)
    if report:
        print("problems found (objects per code, including those fixed or only recorded):")
        print(report)
    if orphans is not None:
        path = manifest.run_dir(args.manifests, args.run) / "corrections_orphans.parquet"
        manifest.write_table(path, orphans)
        print(f"corrections: {orphans.num_rows} rows match no object (orphans): {path}")
    print(f"manifest: {manifest.stage_dir(args.manifests, args.run, 'plan')}\n")


def _write(args: argparse.Namespace) -> None:
    out = args.out.resolve()
    for source in manifest.read_run_info(args.manifests, args.run).get("sources", []):
        src = Path(source).resolve()
        if out == src or src in out.parents or out in src.parents:
            raise RunError(f"output {out} overlaps source {src}: the source is read-only; "
                           "choose an output folder outside it")
    start = time.perf_counter()
    count, written, read = run_write(args.manifests, args.run, out, workers=args.workers,
                                     quiet=args.quiet, fsync=args.fsync)
    seconds = time.perf_counter() - start
    manifest.write_run_info(args.manifests, args.run, out=str(out), write={
        "objects": count, "bytes_read": read, "bytes_written": written, "seconds": seconds})
    result = manifest.read_stage(args.manifests, args.run, "result",
                                 ["action", "reason", "status", "size", "output_size"])
    plan_rows = manifest.read_stage(args.manifests, args.run, "plan", ["action"]).num_rows
    if result.num_rows != plan_rows:
        raise RunError(f"result holds {result.num_rows} rows for {plan_rows} planned objects")
    print(f"write: {totals(result)}; {written / 1e6:.1f} MB written now in {seconds:.1f} s")
    print(table_text(result, ["action", "status", "reason"]))
    print(f"output: {out}")
    print(f"manifest: {manifest.stage_dir(args.manifests, args.run, 'result')}")


if __name__ == "__main__":
    sys.exit(main())
