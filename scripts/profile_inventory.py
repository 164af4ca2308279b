#!/usr/bin/env python3
"""CPU per object of the inventory in one process, and where it goes (issue 13's lab tool).

Usage::

    python scripts/profile_inventory.py EXPORT [--repeat 5] [--profile 25]

Times :func:`migrate_fs.inventory.inventory_row` over every object of EXPORT (a folder; the
page cache warmed first) and the reader alone over the objects' bytes in memory, in this one
process: the best of ``--repeat`` rounds of ``time.process_time``, in microseconds per object.
No pool, no manifest, no start-up: the per-object cost that a run of 10^8 objects multiplies.
``--profile N`` then prints cProfile's top N entries by internal time for one round (under
the profiler a call costs several times more: use it for where, not how much).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path

from migrate_fs.inventory import inventory_row
from migrate_fs.reader import read_header
from migrate_fs.sources import iter_sources


def best_of(repeat: int, work: Callable[[], object], count: int) -> float:
    """Microseconds of CPU per object, the best of ``repeat`` rounds of ``work``."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return best / count * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    args = parser.parse_args(argv)
    objects = list(iter_sources([args.export]))
    if not objects:
        print(f"{args.export}: no files", file=sys.stderr)
        return 1
    data = []
    for obj in objects:  # warms the page cache, and the bytes for the reader alone
        with open(obj.locator, "rb") as f:
            data.append(f.read())
    rows = best_of(args.repeat, lambda: [inventory_row(o) for o in objects], len(objects))
    headers = best_of(args.repeat, lambda: [read_header(io.BytesIO(d), len(d)) for d in data],
                      len(objects))
    print(f"{len(objects)} objects: inventory_row {rows:.1f} us, read_header (bytes in memory) "
          f"{headers:.1f} us of CPU per object")
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        for obj in objects:
            inventory_row(obj)
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
