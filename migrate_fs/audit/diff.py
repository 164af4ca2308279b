"""audit.diff: what differs between two manifests of one export, object by object.

Two plans (two runs of the same export, or a run's own plan and a trial plan made with other
rules) or two results are matched by ``object_id`` (a hash of the locator, so stable across runs
of an export read at the same path) and compared on the columns of :data:`COMPARED`:

- plan: ``action``, ``reason``, ``output_path``, ``output_transfer_syntax``, ``duplicate_of``,
  ``changes`` (the whole list of change entries) and ``problems`` (the list of problem codes,
  in order; messages and severities are not compared);
- result: the same, plus ``status`` and ``output_sha256`` (the bytes written).

The diff is one row per object that was added (only in B), removed (only in A) or changed (a
compared column differs, nulls included): ``object_id``, ``locator``, ``change``, then
``<column>_a`` and ``<column>_b`` for each compared column (``changes_*`` and ``problems_*`` as
compact text: ``Keyword 'old' -> 'new' (rule); ...`` and ``code, code``), and
``columns_changed`` (the names of the compared columns that differ; empty for added and removed
objects), in locator order. It is written as one Parquet file; objects with no difference are
not in it.

DuckDB does the work out of core: it reads only the compared columns of each side's part files
(``*.parquet``: temporary ``.x.parquet.tmp`` parts never match), whatever their boundaries and
row order, in groups of parts that hold the same columns (a column that older parts lack reads
as null, a list as empty), joins them on ``object_id`` (a full outer join, ``IS DISTINCT FROM``
comparisons) within a memory limit (1 GB by default), spilling to a temporary folder beside the
output (``.diff-spill-*``, removed at the end), and writes the result straight to Parquet. No
Python process holds a side: two plans of 10^7 rows diff within a peak RSS of about 1.3 GB.
The summary (:class:`DiffSummary`) is counted from the diff file; a DataFrame is made only on
request (:func:`diff`, :func:`read_diff`), and may be large: two runs of 10^7 objects that
differ everywhere give a diff of 2 x 10^7 rows. pandas is needed for the DataFrame only.

It reads folders of part files; which folder a run or trial plan is, is the caller's (the
``migrate-fs diff`` command's) business. It never changes a manifest, a source or an output.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from migrate_fs import manifest
from migrate_fs.errors import StageMissing, UsageError
from migrate_fs.planning import plan_folder
from migrate_fs.problems import CHANGE

if TYPE_CHECKING:
    import pandas as pd

TEXT_COLUMNS = ("action", "reason", "output_path", "output_transfer_syntax", "duplicate_of")
COMPARED: dict[str, tuple[str, ...]] = {
    "plan": (*TEXT_COLUMNS, "changes", "problems"),
    "result": (*TEXT_COLUMNS, "changes", "problems", "status", "output_sha256"),
}
MEMORY_LIMIT = "1GB"
_CHANGE_TYPE = "STRUCT(" + ", ".join(f'"{f.name}" VARCHAR' for f in CHANGE) + ")[]"


@dataclass
class DiffSummary:
    """What a diff found: the counts, and where the full diff is."""

    a: str  # the sides' names (a run, ``run:plan``, or a folder)
    b: str
    folder_a: Path
    folder_b: Path
    stage: str
    objects_a: int  # rows of each side
    objects_b: int
    added: int
    removed: int
    changed: int
    # changed objects by (action_a, action_b, reason_a, reason_b), most first
    decisions: list[tuple[tuple[str | None, ...], int]] = field(default_factory=list)
    columns: dict[str, int] = field(default_factory=dict)  # changed objects per column
    path: Path = Path()  # the diff's Parquet file
    seconds: float = 0.0

    @property
    def unchanged(self) -> int:
        return self.objects_a - self.removed - self.changed

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "a": {"name": self.a, "folder": str(self.folder_a), "objects": self.objects_a},
            "b": {"name": self.b, "folder": str(self.folder_b), "objects": self.objects_b},
            "added": self.added, "removed": self.removed, "changed": self.changed,
            "unchanged": self.unchanged,
            "changed_by_decision": [
                {"action_a": k[0], "action_b": k[1], "reason_a": k[2], "reason_b": k[3],
                 "objects": n} for k, n in self.decisions],
            "columns_changed": self.columns,
            "diff": str(self.path), "seconds": round(self.seconds, 3),
        }


def part_files(folder: str | Path) -> list[str]:
    """The complete part files of a stage folder (``*.parquet``, no dot names), sorted;
    :class:`StageMissing` when there are none."""
    found = sorted(str(p) for p in Path(folder).glob("*.parquet") if not p.name.startswith("."))
    if not found:
        raise StageMissing(f"no manifest parts (*.parquet) in {folder}: make that stage first")
    return found


def write_diff(folder_a: str | Path, folder_b: str | Path, out: str | Path, *,
               stage: str = "plan", names: tuple[str, str] | None = None,
               memory_limit: str = MEMORY_LIMIT, threads: int | None = None) -> DiffSummary:
    """Compare the stage manifests in ``folder_a`` and ``folder_b`` (part files of a plan or a
    result) and write the diff to ``out`` (Parquet, atomically: a dot-named temporary file
    renamed at the end). Returns the counts; reads no side into Python."""
    if stage not in COMPARED:
        raise UsageError(f"stage {stage!r} cannot be compared: use one of {', '.join(COMPARED)}")
    started = time.monotonic()
    files = part_files(folder_a), part_files(folder_b)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    spill = Path(tempfile.mkdtemp(prefix=".diff-spill-", dir=out.parent))
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with _connect(spill, memory_limit, threads) as con:
            parameters: dict[str, Any] = {}
            sides = [_side(con, side, f, stage, parameters) for side, f in zip("ab", files,
                                                                                strict=True)]
            con.execute(f"COPY ({_diff_query(stage, *sides)}) TO '{_quoted(tmp)}' "
                        "(FORMAT parquet)", parameters)
            os.replace(tmp, out)
            summary = _summarize(con, out, files)
    finally:
        tmp.unlink(missing_ok=True)
        shutil.rmtree(spill, ignore_errors=True)
    a, b = names or (str(folder_a), str(folder_b))
    return DiffSummary(a=a, b=b, folder_a=Path(folder_a), folder_b=Path(folder_b), stage=stage,
                       path=out, seconds=time.monotonic() - started, **summary)


def read_diff(path: str | Path, *, change: str | None = None,
              limit: int | None = None) -> pd.DataFrame:
    """The rows of a diff file as a DataFrame (only ``change``'s: 'added', 'removed' or
    'changed', when given; the first ``limit``, in locator order, when given). Without a limit
    this is the whole diff in memory: see the module's note on size."""
    with _connect(None, MEMORY_LIMIT, None) as con:
        query, parameters = _rows_query(path, change, limit)
        return con.execute(query, parameters).df()


def first_rows(path: str | Path, *, change: str | None = None,
               limit: int = 20) -> list[dict[str, Any]]:
    """The first ``limit`` rows of a diff file (of one ``change``, when given) as dicts, in
    locator order: what a command prints, without pandas."""
    with _connect(None, MEMORY_LIMIT, None) as con:
        query, parameters = _rows_query(path, change, limit)
        result = con.execute(query, parameters)
        columns = [d[0] for d in result.description or []]
        return [dict(zip(columns, row, strict=True)) for row in result.fetchall()]


def diff(folder_a: str | Path, folder_b: str | Path, out: str | Path | None = None, *,
         stage: str = "plan", limit: int | None = None, **options: Any) -> pd.DataFrame:
    """The diff of two stage folders as a pandas DataFrame (columns: see the module's
    docstring), written to ``out`` as well (or to a temporary file, removed after). With
    ``limit``, only the first ``limit`` rows in locator order; without, every row: a diff of two
    large runs that differ widely can be millions of rows, so prefer :func:`write_diff` and
    :func:`read_diff` with a ``change`` or ``limit`` there. ``options`` go to
    :func:`write_diff` (``memory_limit``, ``threads``, ``names``)."""
    if out is not None:
        summary = write_diff(folder_a, folder_b, out, stage=stage, **options)
        return read_diff(summary.path, limit=limit)
    with tempfile.TemporaryDirectory(prefix="migrate-fs-diff-") as folder:
        summary = write_diff(folder_a, folder_b, Path(folder) / "diff.parquet", stage=stage,
                             **options)
        return read_diff(summary.path, limit=limit)


class _connect:
    """An in-memory DuckDB connection within ``memory_limit``, spilling to ``spill``."""

    def __init__(self, spill: Path | None, memory_limit: str, threads: int | None) -> None:
        self.con = duckdb.connect()
        self.con.execute(f"SET memory_limit = '{_quoted(memory_limit)}'")
        if spill is not None:
            self.con.execute(f"SET temp_directory = '{_quoted(spill)}'")
        if threads is not None:
            self.con.execute(f"SET threads = {int(threads)}")

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        return self.con

    def __exit__(self, *exc: object) -> None:
        self.con.close()


def _quoted(text: str | Path) -> str:
    return str(text).replace("'", "''")


def _side(con: duckdb.DuckDBPyConnection, side: str, files: list[str], stage: str,
          parameters: dict[str, Any]) -> str:
    """One side's rows as SQL: object_id, locator and the compared columns (a missing list is
    an empty one; problems reduced to their codes). Files are read in groups by the columns
    they hold (one group, unless parts of older releases lack a column), each group without
    ``union_by_name``, which would keep every file's reader open (1.5 GB for 10^4 parts)."""
    wanted = ["object_id", "locator", *COMPARED[stage]]  # no nested field has these names
    held = con.execute(
        "SELECT file_name, list(name) FILTER (name IN $wanted) FROM parquet_schema($files) "
        "GROUP BY file_name", {"wanted": wanted, "files": files}).fetchall()
    groups: dict[frozenset[str], list[str]] = {}
    for name, columns in sorted(held):
        groups.setdefault(frozenset(columns or []), []).append(name)
    selects = []
    for index, (present, names) in enumerate(groups.items()):
        parameters[f"{side}{index}"] = names
        columns = [_column(c, c in present) for c in wanted]
        selects.append(f"SELECT {', '.join(columns)} FROM read_parquet(${side}{index})")
    return " UNION ALL ".join(selects)


def _column(column: str, present: bool) -> str:
    """A compared column as one side reads it."""
    if column == "changes":
        value = "coalesce(changes, [])" if present else f"[]::{_CHANGE_TYPE}"
    elif column == "problems":
        value = "coalesce(list_transform(problems, lambda p: p.code), [])" if present \
            else "[]::VARCHAR[]"
    else:
        value = column if present else "NULL::VARCHAR"
    return f"{value} AS {column}"


def _text(side: str, column: str) -> str:
    """A compared column of one side as the diff holds it (lists as compact text)."""
    if column == "changes":
        entry = ("concat(coalesce(c.keyword, c.tag), ' ', coalesce('''' || c.old || '''', "
                 "'absent'), ' -> ', coalesce('''' || c.new || '''', 'absent'), ' (', c.rule, "
                 "')')")
        return f"array_to_string(list_transform({side}.changes, lambda c: {entry}), '; ')"
    if column == "problems":
        return f"array_to_string({side}.problems, ', ')"
    return f"{side}.{column}"


def _diff_query(stage: str, side_a: str, side_b: str) -> str:
    columns = COMPARED[stage]
    differs = {c: f"a.{c} IS DISTINCT FROM b.{c}" for c in columns}
    values = ", ".join(f"{_text(side, c)} AS {c}_{side}" for c in columns for side in "ab")
    flags = ", ".join(f"CASE WHEN {differs[c]} THEN '{c}' END" for c in columns)
    return (
        f"WITH a AS ({side_a}), b AS ({side_b}) "
        "SELECT coalesce(a.object_id, b.object_id) AS object_id, "
        "coalesce(b.locator, a.locator) AS locator, "
        "CASE WHEN a.object_id IS NULL THEN 'added' WHEN b.object_id IS NULL THEN 'removed' "
        f"ELSE 'changed' END AS change, {values}, "
        "CASE WHEN a.object_id IS NULL OR b.object_id IS NULL THEN []::VARCHAR[] "
        f"ELSE list_filter([{flags}], lambda x: x IS NOT NULL) END AS columns_changed "
        "FROM a FULL OUTER JOIN b ON a.object_id = b.object_id "
        "WHERE a.object_id IS NULL OR b.object_id IS NULL OR "
        f"{' OR '.join(differs.values())} "
        "ORDER BY locator, object_id")


def _rows_query(path: str | Path, change: str | None,
                limit: int | None) -> tuple[str, dict[str, Any]]:
    query, parameters = "SELECT * FROM read_parquet($path)", {"path": str(path)}
    if change is not None:
        query += " WHERE change = $change"
        parameters["change"] = change
    query += " ORDER BY locator, object_id"  # as written; a read in parallel need not keep it
    if limit is not None:
        query += f" LIMIT {int(limit)}"
    return query, parameters


def _summarize(con: duckdb.DuckDBPyConnection, path: Path,
               files: Sequence[list[str]]) -> dict[str, Any]:
    """The counts of a diff file, and each side's rows (from the Parquet metadata)."""
    sizes = [con.execute("SELECT sum(num_rows) FROM parquet_file_metadata($f)",
                         {"f": f}).fetchall()[0][0] for f in files]
    source = {"path": str(path)}
    counts = dict(con.execute("SELECT change, count(*) FROM read_parquet($path) GROUP BY change",
                              source).fetchall())
    decisions = con.execute(
        "SELECT action_a, action_b, reason_a, reason_b, count(*) AS n FROM read_parquet($path) "
        "WHERE change = 'changed' GROUP BY ALL ORDER BY n DESC, action_a, action_b, reason_a, "
        "reason_b", source).fetchall()
    columns = con.execute(
        "SELECT c, count(*) AS n FROM (SELECT unnest(columns_changed) AS c "
        "FROM read_parquet($path)) GROUP BY c ORDER BY n DESC, c", source).fetchall()
    return {"objects_a": int(sizes[0]), "objects_b": int(sizes[1]),
            "added": int(counts.get("added", 0)), "removed": int(counts.get("removed", 0)),
            "changed": int(counts.get("changed", 0)),
            "decisions": [(tuple(row[:4]), int(row[4])) for row in decisions],
            "columns": {c: int(n) for c, n in columns}}


@dataclass(frozen=True)
class Side:
    """One side of a diff: a run's plan or result, or a trial plan of a run."""

    run: str
    trial: str | None
    folder: Path

    @property
    def name(self) -> str:
        return self.run if self.trial is None else f"{self.run}:{self.trial}"

    @property
    def stem(self) -> str:  # the name in a file name (no ':', which SMB shares refuse)
        return self.run if self.trial is None else f"{self.run}@{self.trial}"


def sides(manifests: Path, names: list[str], stage: str) -> list[Side]:
    """The folders ``RUN`` or ``RUN:PLAN`` name: :class:`UsageError` for a trial plan's
    result; :class:`StageMissing` (saying what to run) for a folder without manifest parts."""
    found = []
    for name in names:
        run, _, trial = name.partition(":")
        if trial and stage == "result":
            raise UsageError(f"{name}: a trial plan has no result (write executes the run's "
                             "own plan only): compare trial plans with --stage plan")
        folder = plan_folder(manifests, run, trial or None) if stage == "plan" else \
            manifest.stage_dir(manifests, run, "result")
        found.append(Side(run, trial or None, folder))
    for side in found:
        if not manifest.part_names(side.folder):
            raise StageMissing(_missing(manifests, side, stage))
    return found


def _missing(manifests: Path, side: Side, stage: str) -> str:
    where = "" if manifests == Path("manifests") else f" --manifests {manifests}"
    root = manifest.run_dir(manifests, side.run)
    if not root.is_dir():
        return (f"no run {side.run!r} in {manifests} (no folder {root}): check the name and "
                f"--manifests, or make it (`migrate-fs inventory SRC --run {side.run}{where}`, "
                "then `migrate-fs plan`)")
    if side.trial is not None:
        trials = sorted(p.name for p in (root / "trials").glob("*") if p.is_dir())
        known = f" (its trial plans: {', '.join(trials)})" if trials else ""
        return (f"no trial plan {side.trial!r} of run {side.run!r} in {side.folder}{known}: "
                f"make it with `migrate-fs plan --run {side.run} --as {side.trial} --config "
                f"FILE{where}`")
    if stage == "plan":
        return (f"no plan for run {side.run!r} in {side.folder}: run `migrate-fs plan --run "
                f"{side.run}{where}` first")
    return (f"no result for run {side.run!r} in {side.folder}: run `migrate-fs write --run "
            f"{side.run} --out DIR{where}` first, or compare the plans (--stage plan)")


def diff_path(manifests: Path, a: Side, b: Side, stage: str) -> Path:
    """Where the diff of ``a`` and ``b`` is written: in the folder of B's run."""
    suffix = ".parquet" if stage == "plan" else f".{stage}.parquet"
    return manifest.run_dir(manifests, b.run) / "diff" / f"{a.stem}__{b.stem}{suffix}"


def diff_runs(a: str, b: str, *, manifests: str | Path = Path("manifests"), stage: str = "plan",
              limit: int | None = None) -> pd.DataFrame:
    """:func:`diff` of two runs by name (``RUN``: its plan, or its result with ``stage``
    "result"; ``RUN:PLAN``: a trial plan), the diff written where ``migrate-fs diff`` writes it
    (``<manifests>/<run of b>/diff/``); the first ``limit`` rows (all with None)."""
    side_a, side_b = sides(Path(manifests), [a, b], stage)
    return diff(side_a.folder, side_b.folder, diff_path(Path(manifests), side_a, side_b, stage),
                stage=stage, limit=limit, names=(side_a.name, side_b.name))
