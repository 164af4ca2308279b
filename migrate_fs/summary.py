"""summary: the tables a user reads at the end of each step."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


def table_text(table: pa.Table, keys: list[str]) -> str:
    """Counts of rows by ``keys`` as an aligned text table (objects, then the keys)."""
    counts = count_by(table, keys)
    header = ["objects", *keys]
    lines = [[str(n), *("-" if v is None else str(v) for v in values)] for values, n in counts]
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.rjust(w) if i == 0 else c.ljust(w)  # noqa: E731
                              for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, lines)])


def bytes_text(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1000  # type: ignore[assignment]
    return f"{n} B"


def totals(table: pa.Table) -> str:
    """Objects and bytes of a stage table, for the line under the summary."""
    size = pc.sum(table.column("size")).as_py() or 0
    line = f"{table.num_rows} source objects, {bytes_text(size)} in the export"
    if "output_size" in table.column_names:
        out = pc.sum(table.column("output_size")).as_py() or 0
        line += f"; {bytes_text(out)} in output files"
    return line


def problem_counts(table: pa.Table) -> str:
    """Objects per problem code (an object counted once per code), as an aligned table."""
    problems = table.column("problems").combine_chunks()
    if len(problems.flatten()) == 0:
        return ""
    pairs = pa.table({"row": pc.list_parent_indices(problems),
                      "code": problems.flatten().field("code")})
    distinct = pairs.group_by(["row", "code"]).aggregate([])
    return table_text(distinct, ["code"])


def count_by(table: pa.Table, keys: list[str]) -> list[tuple[tuple[str | None, ...], int]]:
    """Row counts grouped by ``keys``, most frequent first."""
    if table.num_rows == 0:
        return []
    grouped = table.group_by(keys).aggregate([([], "count_all")])
    rows = grouped.to_pylist()
    rows.sort(key=lambda r: (-r["count_all"], tuple(str(r[k]) for k in keys)))
    return [(tuple(r[k] for k in keys), r["count_all"]) for r in rows]
