"""cli.common: the flags several verbs share, as parent parsers, and the summary printers.

Never runs a step itself: the verb modules call :mod:`migrate_fs.pipeline`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

EXIT_FAILED_OBJECTS = 3  # objects failed at write time: a re-run retries them
EXIT_AUDIT_FAILED = 4  # an audit (verify, reconcile) found differences: see its report


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def run_parent(*, run_required: bool = True) -> argparse.ArgumentParser:
    """--run, --manifests, --quiet: every step's flags."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--run", required=run_required, metavar="NAME",
                   help="run name: its manifests go to MANIFESTS/NAME")
    p.add_argument("--manifests", type=Path, default=Path("manifests"), metavar="DIR",
                   help="where run manifests live (default: ./manifests)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def sources_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("sources", nargs="*", metavar="SRC",
                   help="export folders, files or tar archives (plain, .gz, .bz2, .xz); "
                        "read-only, archives are never extracted")
    p.add_argument("--volumes", nargs="+", action="append", default=[], metavar="FILE",
                   help="the volumes of one split dump, in order (or one quoted glob, sorted); "
                        "repeat the option for several dumps")
    return p


def workers_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--workers", type=positive, default=os.cpu_count() or 1, metavar="N",
                   help="worker processes (default: all cores)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the work on the dask.distributed cluster of this scheduler "
                        "(tcp://HOST:PORT) instead of local workers; see the README's "
                        "'Cluster' section")
    return p


def decode_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--decode-check", choices=("none", "first", "all"), default=None,
                   help="decode pixel data in a separate process during the inventory "
                        "(default: the config's pixel.decode_check, 'none')")
    return p


def plan_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="rules configuration (TOML); `migrate-fs rules --defaults` prints one")
    p.add_argument("--corrections", type=Path, metavar="FILE",
                   help="legacy database corrections (CSV or Parquet): see the README")
    p.add_argument("--layout", metavar="PRESET_OR_PATTERN",
                   help="output layout, beating the config's [output] layout: 'uids' (the "
                        "default), 'study-folders', 'readable', or a pattern such as "
                        "'{PatientID}/{StudyDate}_{Modality}/{SeriesNumber:03d}/"
                        "{InstanceNumber:05d}.dcm' (`migrate-fs rules --defaults` lists the "
                        "fields)")
    return p


def output_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output root")
    p.add_argument("--fsync", action="store_true", help="fsync every output file (slower)")
    return p


def _shard(text: str) -> object:
    from migrate_fs.errors import UsageError
    from migrate_fs.execution.shards import Shard

    try:
        return Shard.parse(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[1]) from None


def shard_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--shard", type=_shard, metavar="I/N",
                   help="do only shard I of N (0 <= I < N) of this step: each object (an "
                        "archive: each archive) belongs to one shard; start one process per "
                        "shard, on any machines that share the export, output and manifests")
    return p


def json_parent() -> argparse.ArgumentParser:
    """--json: the command's summary as one JSON object on stdout (for scripts), instead of
    the tables."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--json", action="store_true",
                   help="print the summary as JSON (for scripts) instead of tables")
    return p
