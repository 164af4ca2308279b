"""summary: the tables a user reads at the end of each step, counted part by part.

A step never holds its stage for the whole run to print a summary: each part is counted into a
:class:`Tally` (rows by the stage's key columns, with their bytes, and objects per problem
code), tallies of parts and tasks are merged, and the text tables are printed from the counts.
Nothing here reads or writes a manifest.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

# The columns a tally counts by, where the stage has them.
TALLY_KEYS = ("kind", "action", "status", "reason")
SUMS = ("size", "output_size")


@dataclass
class Tally:
    """Objects (and their bytes) by the key columns a stage has, and objects per problem
    code; small whatever the number of objects, and picklable (a task returns one)."""

    keys: tuple[str, ...] = ()
    groups: dict[tuple[str | None, ...], list[int]] = field(default_factory=dict)
    codes: Counter[str] = field(default_factory=Counter)
    sums: tuple[str, ...] = ()

    def add(self, part: pa.Table) -> None:
        """Count the rows of one part (any columns; those it lacks are not counted)."""
        keys = tuple(k for k in TALLY_KEYS if k in part.column_names)
        sums = tuple(s for s in SUMS if s in part.column_names)
        if not self.groups:
            self.keys, self.sums = keys, sums
        elif (keys, sums) != (self.keys, self.sums):
            raise ValueError(f"a part with columns {keys + sums} added to a tally of "
                             f"{self.keys + self.sums}")
        if part.num_rows:
            grouped = part.select([*keys, *sums]).group_by(list(keys)).aggregate(
                [([], "count_all"), *((s, "sum") for s in sums)])
            for row in grouped.to_pylist():
                counts = self.groups.setdefault(tuple(row[k] for k in keys),
                                                [0] * (1 + len(sums)))
                counts[0] += row["count_all"]
                for i, s in enumerate(sums, 1):
                    counts[i] += row[f"{s}_sum"] or 0
        if "problems" in part.column_names:
            self.codes.update(_codes_per_object(part.column("problems")))

    def merge(self, other: Tally) -> None:
        if not other.groups and not other.codes:
            return
        if not self.groups:
            self.keys, self.sums = other.keys, other.sums
        for key, counts in other.groups.items():
            mine = self.groups.setdefault(key, [0] * len(counts))
            for i, n in enumerate(counts):
                mine[i] += n
        self.codes.update(other.codes)

    @property
    def objects(self) -> int:
        return sum(c[0] for c in self.groups.values())

    def total(self, column: str) -> int:
        """The sum of ``column`` (``size`` or ``output_size``) over every object counted."""
        if column not in self.sums:
            return 0
        i = 1 + self.sums.index(column)
        return sum(c[i] for c in self.groups.values())

    def table(self) -> pa.Table:
        """One row per distinct key: the keys, ``objects`` and the sums."""
        rows = sorted(self.groups.items(), key=lambda kv: tuple(str(v) for v in kv[0]))
        columns = {k: pa.array([key[i] for key, _ in rows], pa.string())
                   for i, k in enumerate(self.keys)}
        columns["objects"] = pa.array([c[0] for _, c in rows], pa.int64())
        for i, s in enumerate(self.sums, 1):
            columns[s] = pa.array([c[i] for _, c in rows], pa.int64())
        return pa.table(columns)


def as_json(tally: Tally, step: str, **extra: Any) -> str:
    """A step's summary as one line of JSON, for scripts: its objects and bytes, the objects
    (and sums) by each combination of the stage's keys, and objects per problem code; with
    ``extra`` (figures of the step, paths) beside them."""
    by = [{**dict(zip(tally.keys, key, strict=True)), "objects": counts[0],
           **dict(zip(tally.sums, counts[1:], strict=True))}
          for key, counts in sorted(tally.groups.items(),
                                    key=lambda kv: (-kv[1][0], tuple(map(str, kv[0]))))]
    return json.dumps({"step": step, "objects": tally.objects,
                       **{s: tally.total(s) for s in tally.sums}, "by": by,
                       "problems": dict(sorted(tally.codes.items())), **extra},
                      default=str)


def _codes_per_object(problems: pa.ChunkedArray | pa.Array) -> Counter[str]:
    """Objects per problem code (an object counted once per code)."""
    if isinstance(problems, pa.ChunkedArray):
        problems = problems.combine_chunks()
    flat = problems.flatten()
    if len(flat) == 0:
        return Counter()
    pairs = pa.table({"row": pc.list_parent_indices(problems), "code": flat.field("code")})
    distinct = pairs.group_by(["row", "code"]).aggregate([])
    return Counter(distinct.column("code").to_pylist())


def table_text(tally: Tally, keys: list[str]) -> str:
    """Objects by ``keys`` as an aligned text table (objects, then the keys)."""
    counts = count_by(tally, keys)
    header = ["objects", *keys]
    lines = [[str(n), *("-" if v is None else str(v) for v in values)] for values, n in counts]
    return aligned([header, *lines])


def aligned(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    fmt = lambda r: "  ".join(c.rjust(w) if i == 0 else c.ljust(w)  # noqa: E731
                              for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
    return "\n".join([fmt(rows[0]), fmt(["-" * w for w in widths]), *map(fmt, rows[1:])])


def bytes_text(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1000  # type: ignore[assignment]
    return f"{n} B"


def totals(tally: Tally) -> str:
    """Objects and bytes of a stage, for the line under the summary."""
    line = f"{tally.objects} source objects, {bytes_text(tally.total('size'))} in the export"
    if "output_size" in tally.sums:
        line += f"; {bytes_text(tally.total('output_size'))} in output files"
    return line


def problem_counts(tally: Tally) -> str:
    """Objects per problem code (an object counted once per code), as an aligned table."""
    if not tally.codes:
        return ""
    rows = sorted(tally.codes.items(), key=lambda kv: (-kv[1], kv[0]))
    return aligned([["objects", "code"], *([str(n), code] for code, n in rows)])


def count_by(tally: Tally, keys: list[str]) -> list[tuple[tuple[str | None, ...], int]]:
    """Objects grouped by ``keys`` (some of the tally's keys), most frequent first."""
    merged: Counter[tuple[str | None, ...]] = Counter()
    if not tally.groups:  # nothing counted (a shard with no work of its own)
        return []
    where = [tally.keys.index(k) for k in keys]
    for key, counts in tally.groups.items():
        merged[tuple(key[i] for i in where)] += counts[0]
    return sorted(merged.items(), key=lambda kv: (-kv[1], tuple(str(v) for v in kv[0])))
