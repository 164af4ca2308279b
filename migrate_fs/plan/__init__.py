"""plan: decide, for every object of the run at once, what will happen to it and why.

The legacy database corrections are joined (:mod:`.corrections`), the rules applied
(:mod:`.rules`), duplicates decided with content hashes read only for colliding objects
(:mod:`.duplicates`, :mod:`.hashes`, :mod:`.proof`), and the action, reason and output path of
every object set (:mod:`.decide`), in the phases of :mod:`.buckets`, which a run's plan step
runs over part groups and hash buckets on disk and :func:`make_plan` runs in memory. Everything
here is a function of the inventory columns, the configuration and the corrections; nothing here
writes a manifest or an output file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from migrate_fs.config import Config
from migrate_fs.plan.buckets import MemoryStore, Task, plan_groups
from migrate_fs.plan.decide import DECISION_INPUT, DECISIONS, attach, output_transfer_syntax
from migrate_fs.plan.duplicates import Hashes
from migrate_fs.plan.hashes import read_hashes
from migrate_fs.plan.proof import Fingerprints

__all__ = ["DECISION_INPUT", "DECISIONS", "Planned", "attach", "make_plan",
           "output_transfer_syntax"]


@dataclass
class Planned:
    """The whole-run decisions, row for row the inventory rows they were made for."""

    decisions: pa.Table  # the DECISIONS columns
    orphans: pa.Table | None  # corrections rows that match no object (None without corrections)
    hashed: dict[str, int] = field(
        default_factory=lambda: {"objects": 0, "bytes_read": 0, "decoded": 0})

    def table(self, inventory: pa.Table) -> pa.Table:
        """The plan table: ``inventory`` (the same rows, all columns) with its decisions."""
        return attach(inventory, self.decisions)


@dataclass
class _Whole:
    """A whole inventory table as the one part of one group."""

    table: pa.Table
    index: int = 0
    decided: list[pa.Table] = field(default_factory=list)

    def read(self, columns: list[str] | None) -> list[pa.Table]:
        return [self.table.select(columns) if columns is not None else self.table]

    def write(self, decided: list[pa.Table]) -> None:
        self.decided = decided


def _in_order(tasks: list[Task]) -> Iterator[Any]:
    return (function(*arguments) for function, arguments in tasks)


def make_plan(inventory: pa.Table, config: Config | None = None,
              corrections: pa.Table | None = None, hashes: Hashes = read_hashes,
              fingerprints: Fingerprints | None = None, buckets: int = 1,
              group_rows: int | None = None) -> Planned:
    """Decide for every row of ``inventory`` (at least its DECISION_INPUT columns), in this
    process and in memory: the same phases as a run's plan (:mod:`.buckets`), for a table
    that fits in memory (tests, a small run), in groups of ``group_rows`` rows (default: one
    group) and ``buckets`` hash buckets.

    ``corrections`` is the legacy database's corrections table (see
    :func:`migrate_fs.plan.corrections.load_corrections`); ``hashes`` reads content hashes for
    the rows it is given (default: from the sources) and ``fingerprints`` decodes them to prove
    variants (default: in the guarded decoder process). The objects hashed, the bytes that
    read and the objects decoded are in ``Planned.hashed``.
    """
    narrow = inventory.select(DECISION_INPUT)
    size = group_rows or max(narrow.num_rows, 1)
    groups = [_Whole(narrow.slice(start, size), i)
              for i, start in enumerate(range(0, narrow.num_rows, size))] or [_Whole(narrow)]
    done = plan_groups(groups, MemoryStore(), _in_order, config or Config(), corrections,
                       buckets, hashes, fingerprints)
    decided = pa.concat_tables(g.decided[0] for g in groups)
    return Planned(decided, done.orphans, done.hashed)
