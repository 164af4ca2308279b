"""plan: decide, for every object of the run at once, what will happen to it and why.

The plan is composed here, once: the legacy database corrections are joined
(:mod:`.corrections`), the rules applied (:mod:`.rules`), duplicates decided with content
hashes read only for colliding objects (:mod:`.duplicates`, :mod:`.hashes`), and the action,
reason and output path of every object set (:mod:`.decide`). Everything here is a function of
the inventory columns, the configuration and the corrections; nothing here writes a manifest
or an output file.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from migrate_fs.config import Config
from migrate_fs.decode import DecodeOutcome
from migrate_fs.iostats import bytes_read_so_far
from migrate_fs.plan.corrections import apply_corrections
from migrate_fs.plan.decide import (
    CORRECTION_INPUT,
    DECISION_INPUT,
    DECISIONS,
    attach,
    decide,
    output_transfer_syntax,
)
from migrate_fs.plan.duplicates import Hashes
from migrate_fs.plan.hashes import Digest, read_hashes
from migrate_fs.plan.proof import Fingerprints, read_fingerprints

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


def make_plan(inventory: pa.Table, config: Config | None = None,
              corrections: pa.Table | None = None, hashes: Hashes = read_hashes,
              fingerprints: Fingerprints | None = None) -> Planned:
    """Decide for every row of ``inventory`` (at least its DECISION_INPUT columns).

    ``corrections`` is the legacy database's corrections table (see
    :func:`migrate_fs.plan.corrections.load_corrections`); ``hashes`` reads content hashes for
    the rows it is given (default: from the sources) and ``fingerprints`` decodes them to prove
    variants (default: in the guarded decoder process). The objects hashed, the bytes that
    read and the objects decoded are in ``Planned.hashed``.
    """
    narrow = inventory.select(DECISION_INPUT)
    applied = apply_corrections(narrow.select(CORRECTION_INPUT), corrections) \
        if corrections is not None else None
    planned = Planned(pa.table({}), applied.orphans if applied is not None else None)

    def counted(rows: list[dict[str, Any]]) -> dict[str, Digest | str]:
        before = bytes_read_so_far()
        found = hashes(rows)
        planned.hashed["objects"] += len(found)
        planned.hashed["bytes_read"] += bytes_read_so_far() - before
        return found

    def decoded(rows: list[dict[str, Any]]) -> dict[str, DecodeOutcome]:
        planned.hashed["decoded"] += len(rows)
        return (fingerprints or functools.partial(
            read_fingerprints, decoder=(config or Config()).decoder or None))(rows)

    planned.decisions = decide(narrow, config, applied, counted, decoded)
    return planned
