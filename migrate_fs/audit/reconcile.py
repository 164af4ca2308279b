"""audit.reconcile: a run's studies against the legacy database's export, study by study.

``migrate-fs reconcile --run NAME --expected FILE`` (:func:`reconcile`) counts, per study, what
the legacy database says the study holds, what the export holds of it and what the run migrated,
and writes one row per study to ``<run>/reconcile/studies.parquet``. It reads the plan and result
manifests (never a source file or an output file) and changes nothing but that folder; it prints
nothing.

**The expected file** (:func:`load_expected`): a CSV file (UTF-8, comma-separated, one header
line, every cell read as text) or a Parquet file (``*.csv``, ``*.parquet``, ``*.pq``), one row per
study. Column names are compared case-insensitively and without ``_``, ``-`` or spaces, so the
DICOM keyword (``StudyInstanceUID``) and snake case (``study_instance_uid``) both work:

* keys, at least one column: ``StudyInstanceUID``, ``AccessionNumber``; every row needs one;
* ``NumberOfStudyRelatedInstances`` (or ``instances``, ``expected_instances``): required, a
  whole number in every row;
* optional: ``PatientID``; ``NumberOfStudyRelatedSeries`` (``series``, ``expected_series``), a
  whole number or empty; ``ModalitiesInStudy`` (``modality``, ``modalities``), one modality or
  several separated by backslashes. Other columns are ignored.

Rows are numbered from 1 (the header not counted) in error messages. A StudyInstanceUID given
twice, or an AccessionNumber given twice among the rows without a StudyInstanceUID, is an error.

**Matching.** The run is grouped into units of the objects that share a stored
StudyInstanceUID and AccessionNumber (the plan's ``study_instance_uid`` and
``accession_number``: the values the legacy objects carry, which are what the legacy database
knows). A unit matches the file's row with its StudyInstanceUID; failing that, the row without
a StudyInstanceUID that has its AccessionNumber; failing that, it is part of an orphan study
(its units grouped by StudyInstanceUID). Objects without a StudyInstanceUID that match no row
by accession number belong to no study: they are counted (``objects_without_study``) and have
no row. Corrections (``plan --corrections``) never change the key: a study is matched by the
UID and accession number stored in its objects, before any correction (a ``NewAccessionNumber``
correction, a patient merge) and before any UID remap (an invalid study UID is written under a
new UID: ``output_study_instance_uid`` shows it). ``patient_id_found`` is the PatientID as
written, after corrections and merges, for comparison with the file's ``PatientID`` (a
difference is counted in ``patient_differs``, not a status).

**Counts**, per study (row of the file, or orphan; summed over its units):
``found_instances``, the source objects
planned ``migrate`` or ``quarantine`` (copies skipped as duplicates are ``skipped_instances``,
not found: the database counts an instance once); ``found_series``, distinct series UIDs among
the found objects; ``quarantined_instances``, those planned ``quarantine``;
``migrated_instances``, the result rows ``written`` or ``already_present`` -- or, when the run
has no result yet, the objects planned ``migrate`` (``migrated_from`` says which).

**Statuses**, the first that applies:

* ``orphan``: objects in the source, no row in the file;
* ``missing``: a row in the file, no object of the source matches it;
* ``count_mismatch``: found_instances != expected_instances, or found_series != expected_series
  (when the file gives it), or migrated_instances > expected_instances: the export does not hold
  what the database says;
* ``incomplete``: found as expected, but migrated_instances < expected_instances: some are
  quarantined, failed to write or are not written yet;
* ``ok``: expected == found == migrated (and the series as given).

Modalities (the file's and the found objects', each upper-cased, sorted, backslash-joined) are
reported, and a difference counted in ``modalities_differ``, but they decide no status: a
legacy database's ModalitiesInStudy often leaves out SR, PR or KO.

**Output**: ``studies.parquet``, one row per study, file rows first (in file order), then
orphans by UID: ``study_instance_uid``, ``accession_number``, ``patient_id`` (the file's; for
an orphan or a key the file leaves empty, the source's, several joined with backslashes),
``expected_instances``, ``expected_series`` (null when not given), ``found_instances``,
``found_series``, ``migrated_instances``, ``quarantined_instances``, ``skipped_instances``,
``modalities_expected``, ``modalities_found``, ``status``, and: ``matched_by``
(``study_instance_uid``, ``accession_number``, or null), ``expected_row`` (the file's row, null
for an orphan), ``patient_id_found``, ``output_study_instance_uid`` (the UIDs as written).

**Scale.** DuckDB reads only the columns needed of the plan and result parts and counts them
with plain GROUP BYs, which spill to a temporary folder in ``<run>/reconcile/`` beyond
``memory_limit`` instead of growing; what is then joined with the file is per unit and per
series, not per object. Parts are read by column name in groups of the same schema version
(a column an older part lacks reads as null), not with DuckDB's ``union_by_name``, which holds
every part's metadata (about 140 KB a part: 1.4 GB for 10,000 parts). The expected file and
the output table (one row per study each) are held in memory. :func:`compare` takes its found
side as two tables, so that another source of found objects (the new PACS over DICOMweb) can use
it as it is.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from migrate_fs import manifest
from migrate_fs.errors import CorrectionsError, ReconcileError, UsageError
from migrate_fs.plan.corrections import _rows, _text, _valid
from migrate_fs.tablefiles import read_table_file

STATUSES = ("ok", "missing", "orphan", "count_mismatch", "incomplete")
MIGRATED = ("written", "already_present")
OUTPUT = "studies.parquet"
PROBLEMS_SHOWN = 20

# The expected file's fields and the column names accepted for each (compared normalized).
NAMES = {
    "study_instance_uid": ("StudyInstanceUID",),
    "accession_number": ("AccessionNumber",),
    "patient_id": ("PatientID",),
    "expected_instances": ("NumberOfStudyRelatedInstances", "instances", "expected_instances"),
    "expected_series": ("NumberOfStudyRelatedSeries", "series", "expected_series"),
    "modalities_expected": ("ModalitiesInStudy", "modality", "modalities"),
}
KEY_FIELDS = ("study_instance_uid", "accession_number")
TEXT_FIELDS = (*KEY_FIELDS, "patient_id", "modalities_expected")
EXPECTED = pa.schema([("row", pa.int64()), *((f, pa.string()) for f in TEXT_FIELDS),
                      ("expected_instances", pa.int64()), ("expected_series", pa.int64())])

# What compare() needs of each unit of found objects (one study UID and accession number).
UNIT_COLUMNS = {
    "study_instance_uid": "VARCHAR", "accession_number": "VARCHAR",
    "found": "BIGINT", "migrated": "BIGINT", "quarantined": "BIGINT", "skipped": "BIGINT",
}
# ... and of the found objects' distinct identifying values (one row per combination).
SERIES_COLUMNS = {
    "study_instance_uid": "VARCHAR", "accession_number": "VARCHAR",
    "series_instance_uid": "VARCHAR", "modality": "VARCHAR", "patient_id": "VARCHAR",
    "output_study_instance_uid": "VARCHAR",
}
# The plan and result columns read (older parts may lack some: they read as nulls).
PLAN_COLUMNS = ("study_instance_uid", "accession_number", "patient_id", "output_patient_id",
                "output_study_instance_uid", "series_instance_uid", "modality", "action")
RESULT_COLUMNS = ("study_instance_uid", "accession_number", "status")


@dataclass
class ReconcileDone:
    """What :func:`reconcile` found: studies per status, instance totals, the output file,
    and the first problem studies (rows of the output, as dicts)."""

    output: Path
    expected_file: Path
    statuses: dict[str, int]
    totals: dict[str, int]
    migrated_from: str  # "result" or "plan"
    problems: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(n == 0 for status, n in self.statuses.items() if status != "ok")

    @property
    def studies(self) -> int:
        return sum(self.statuses.values())

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "studies": self.studies, "statuses": self.statuses,
                "totals": self.totals, "migrated_from": self.migrated_from,
                "expected_file": str(self.expected_file), "output": str(self.output)}


def reconcile(manifests: str | Path, run: str, expected: str | Path, *,
              memory_limit: str = "1GB") -> ReconcileDone:
    """Compare the run ``run`` with the legacy database's export ``expected`` (see the module
    docstring); write ``<manifests>/<run>/reconcile/studies.parquet`` atomically. Raises
    :class:`ReconcileError` for an unusable file (or too little memory) and
    :class:`~migrate_fs.errors.StageMissing` when the run has no plan."""
    plan = part_paths(manifests, run, "plan", manifest.stage_parts(manifests, run, "plan"))
    result = part_paths(manifests, run, "result",
                    manifest.part_names(manifest.stage_dir(manifests, run, "result")))
    table = load_expected(expected)
    out = manifest.run_dir(manifests, run) / "reconcile"
    out.mkdir(parents=True, exist_ok=True)
    spill = out / f".duckdb-{os.getpid()}"
    con = duckdb.connect()
    try:
        configure_duckdb(con, memory_limit, spill)
        con.register("expected_file", table)
        try:
            run_units(con, plan, result, "units", "unit_series")
            compare(con, "expected_file", "units", "unit_series", "studies")
            studies = con.sql("SELECT * FROM studies ORDER BY expected_row NULLS LAST, "
                              "study_instance_uid").to_arrow_table()
        except duckdb.Error as exc:
            raise _failed(exc, run, memory_limit) from exc
        manifest.write_table(out / OUTPUT, studies)  # one row per study: small
        return ReconcileDone(output=out / OUTPUT, expected_file=Path(expected),
                             statuses=_statuses(con), totals=_totals(con),
                             migrated_from="result" if result else "plan",
                             problems=_problems(con))
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


def _failed(exc: duckdb.Error, run: str, memory_limit: str) -> ReconcileError:
    """The run-level error for a failed query: out of memory, or a part that cannot be read."""
    if isinstance(exc, duckdb.OutOfMemoryException):
        return ReconcileError(f"run {run!r}: the comparison needs more memory than its limit "
                              f"({memory_limit}); give it more (migrate-fs reconcile "
                              "--memory-limit 4GB)")
    return ReconcileError(f"run {run!r}: its manifests cannot be read ({str(exc).splitlines()[0]}"
                          "); check them with migrate-fs status, and plan or write again")


def part_paths(manifests: str | Path, run: str, stage: str, names: Iterable[str]) -> list[str]:
    """The paths of a stage's complete parts ``names``, sorted."""
    folder = manifest.stage_dir(manifests, run, stage)
    return [str(folder / f"{name}.parquet") for name in sorted(names)]


def configure_duckdb(con: duckdb.DuckDBPyConnection, memory_limit: str, spill: Path) -> None:
    try:
        con.execute(f"SET memory_limit = {_literal(memory_limit)}")
    except duckdb.Error as exc:
        raise UsageError(f"memory limit {memory_limit!r} is not a size; give one such as "
                         "'1GB' or '500MB'") from exc
    con.execute(f"SET temp_directory = {_literal(spill)}")
    con.execute("SET preserve_insertion_order = false")


def _literal(value: object) -> str:
    """A SQL string literal (for the statements that take no parameters: SET, COPY)."""
    return "'" + str(value).replace("'", "''") + "'"


# -- the run's side ----------------------------------------------------------------------------


def run_units(con: duckdb.DuckDBPyConnection, plan: list[str], result: list[str],
              units: str, series: str) -> None:
    """Create the tables ``units`` (:data:`UNIT_COLUMNS`) and ``series``
    (:data:`SERIES_COLUMNS`) from the plan parts ``plan`` and result parts ``result`` (file
    paths). Objects planned ``skip`` (archives, folders, DICOMDIRs) are not instances and not
    counted. Without result parts, the objects planned ``migrate`` count as migrated.

    Both are plain GROUP BYs over the objects (which DuckDB spills to disk); the distinct
    values are per series, not per object, so the lists built from them later stay small."""
    found = "action IN ('migrate', 'quarantine')"
    migrated = "NOT planned" if result else "planned AND action = 'migrate'"
    params: dict[str, list[str]] = {}
    plan_rows = (f"SELECT * FROM ({select_parts(con, plan, PLAN_COLUMNS, 'plan', params)}) "
                 "WHERE action IS DISTINCT FROM 'skip'")
    results = (f"UNION ALL BY NAME SELECT *, FALSE AS planned FROM "
               f"({select_parts(con, result, RESULT_COLUMNS, 'result', params)}) "
               f"WHERE status IN {MIGRATED}") if result else ""
    con.execute(f"""
        CREATE TEMP TABLE {units} AS
        WITH objects AS (
            SELECT study_instance_uid, accession_number, action, TRUE AS planned
            FROM ({plan_rows})
            {results}
        )
        SELECT study_instance_uid, accession_number,
               count(*) FILTER (planned AND {found}) AS found,
               count(*) FILTER ({migrated}) AS migrated,
               count(*) FILTER (planned AND action = 'quarantine') AS quarantined,
               count(*) FILTER (planned AND action = 'skip_duplicate') AS skipped
        FROM objects
        GROUP BY ALL""", params)
    con.execute(f"""
        CREATE TEMP TABLE {series} AS
        SELECT DISTINCT study_instance_uid, accession_number, series_instance_uid,
               upper(trim(modality)) AS modality,
               coalesce(output_patient_id, patient_id) AS patient_id, output_study_instance_uid
        FROM ({plan_rows}) WHERE {found}""",
                {k: v for k, v in params.items() if k.startswith("plan")})


def select_parts(con: duckdb.DuckDBPyConnection, files: list[str], wanted: tuple[str, ...],
                  name: str, params: dict[str, list[str]]) -> str:
    """SQL: the rows of the part ``files`` with the columns ``wanted``, NULL where a part lacks
    one (parts of older schema versions). The parts are grouped by which of the columns they
    hold (one group per schema version: usually one), each group read by column name; the file
    lists go into ``params`` (as ``name0``, ``name1``...). Cheaper than DuckDB's
    ``union_by_name``, which keeps every part's metadata in memory (about 140 KB a part)."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for file, names in con.execute("SELECT file_name, list(name) FROM parquet_schema($files) "
                                   "GROUP BY file_name", {"files": files}).fetchall():
        groups.setdefault(tuple(c for c in wanted if c in names), []).append(file)
    selects = []
    for i, (held, group) in enumerate(sorted(groups.items())):
        params[f"{name}{i}"] = group
        columns = ", ".join(c if c in held else f"NULL::VARCHAR AS {c}" for c in wanted)
        selects.append(f"SELECT {columns} FROM read_parquet(${name}{i})")
    return " UNION ALL ".join(selects)


# -- the comparison ----------------------------------------------------------------------------


def compare(con: duckdb.DuckDBPyConnection, expected: str, units: str, series: str,
            name: str) -> None:
    """Create the table ``name``, one row per study, by the matching rules and statuses of the
    module docstring, from the tables ``expected`` (the columns of :data:`EXPECTED`),
    ``units`` (:data:`UNIT_COLUMNS`: the counts of any source of found objects, per stored
    study UID and accession number) and ``series`` (:data:`SERIES_COLUMNS`: the distinct
    series UIDs, modalities, PatientIDs and output study UIDs of each unit's found objects)."""
    con.execute(f"""
        CREATE TEMP TABLE {name} AS
        WITH matched AS (
            SELECT u.*, coalesce(by_uid.row, by_accession.row) AS row,
                   CASE WHEN by_uid.row IS NOT NULL THEN 'study_instance_uid'
                        WHEN by_accession.row IS NOT NULL THEN 'accession_number'
                   END AS matched_by
            FROM {units} u
            LEFT JOIN {expected} by_uid ON u.study_instance_uid = by_uid.study_instance_uid
            LEFT JOIN (SELECT row, accession_number FROM {expected}
                       WHERE study_instance_uid IS NULL) by_accession
                   ON by_uid.row IS NULL AND u.accession_number = by_accession.accession_number
        ), keyed AS (  -- a study: a row of the file, or the unmatched units of one study UID
            SELECT *, CASE WHEN row IS NOT NULL THEN 'row ' || row::VARCHAR
                           ELSE 'uid ' || study_instance_uid END AS study
            FROM matched
        ), counted AS (
            SELECT study, any_value(row) AS row, any_value(matched_by) AS matched_by,
                   sum(found)::BIGINT AS found, sum(migrated)::BIGINT AS migrated,
                   sum(quarantined)::BIGINT AS quarantined, sum(skipped)::BIGINT AS skipped,
                   {_joined("list(study_instance_uid)")} AS study_uids,
                   {_joined("list(accession_number)")} AS accessions
            FROM keyed WHERE study IS NOT NULL GROUP BY study
        ), described AS (
            SELECT k.study, count(DISTINCT s.series_instance_uid) AS series,
                   {_joined("list(s.modality)")} AS modalities,
                   {_joined("list(s.patient_id)")} AS patient_ids,
                   {_joined("list(s.output_study_instance_uid)")} AS output_study_uids
            FROM {series} s JOIN keyed k
              ON s.study_instance_uid IS NOT DISTINCT FROM k.study_instance_uid
             AND s.accession_number IS NOT DISTINCT FROM k.accession_number
            WHERE k.study IS NOT NULL GROUP BY k.study
        ), studies AS (
            SELECT * FROM counted LEFT JOIN described USING (study)
        ), joined AS (
            SELECT coalesce(e.study_instance_uid, s.study_uids) AS study_instance_uid,
                   coalesce(e.accession_number, s.accessions) AS accession_number,
                   coalesce(e.patient_id, s.patient_ids) AS patient_id,
                   e.expected_instances, e.expected_series,
                   coalesce(s.found, 0) AS found_instances,
                   coalesce(s.series, 0)::BIGINT AS found_series,
                   coalesce(s.migrated, 0) AS migrated_instances,
                   coalesce(s.quarantined, 0) AS quarantined_instances,
                   coalesce(s.skipped, 0) AS skipped_instances,
                   {MODALITIES_EXPECTED} AS modalities_expected,
                   s.modalities AS modalities_found,
                   CASE WHEN e.row IS NULL THEN 'orphan'
                        WHEN s.found IS NULL THEN 'missing'
                   END AS unmatched,
                   s.matched_by, e.row AS expected_row, s.patient_ids AS patient_id_found,
                   s.output_study_uids AS output_study_instance_uid
            FROM {expected} e FULL OUTER JOIN studies s ON e.row = s.row
        )
        SELECT study_instance_uid, accession_number, patient_id, expected_instances,
               expected_series, found_instances, found_series, migrated_instances,
               quarantined_instances, skipped_instances, modalities_expected,
               modalities_found,
               CASE WHEN unmatched IS NOT NULL THEN unmatched
                    WHEN found_instances <> expected_instances
                         OR found_series <> coalesce(expected_series, found_series)
                         OR migrated_instances > expected_instances THEN 'count_mismatch'
                    WHEN migrated_instances < expected_instances THEN 'incomplete'
                    ELSE 'ok'
               END AS status,
               matched_by, expected_row, patient_id_found, output_study_instance_uid
        FROM joined""")


def _joined(values: str) -> str:
    """SQL: the distinct non-null values of a list, sorted, joined with backslashes (NULL for
    none), as DICOM joins the values of a multi-valued element."""
    return f"nullif(array_to_string(list_sort(list_distinct({values})), '\\'), '')"


MODALITIES_EXPECTED = _joined("list_transform(string_split(e.modalities_expected, '\\'), "
                              "lambda m: nullif(upper(trim(m)), ''))")


def _statuses(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    counts = dict(con.execute("SELECT status, count(*) FROM studies GROUP BY status").fetchall())
    return {status: int(counts.get(status, 0)) for status in STATUSES}


def _totals(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    names = ("expected_instances", "found_instances", "migrated_instances",
             "quarantined_instances", "skipped_instances")
    row = con.execute(
        f"SELECT {', '.join(f'coalesce(sum({n}), 0)::BIGINT' for n in names)}, "
        "count(*) FILTER (modalities_expected IS NOT NULL AND status NOT IN ('missing', "
        "'orphan') AND modalities_expected IS DISTINCT FROM modalities_found), "
        "count(*) FILTER (status NOT IN ('missing', 'orphan') AND patient_id IS DISTINCT "
        "FROM patient_id_found) FROM studies").fetchone()
    units = con.execute("SELECT coalesce(sum(found + skipped), 0)::BIGINT FROM units"
                        ).fetchone()
    assert row is not None and units is not None
    totals = {n: int(v) for n, v in zip(names, row, strict=False)}
    return {**totals, "modalities_differ": int(row[-2]), "patient_differs": int(row[-1]),
            # every unit is in a study's row but those without a study UID that match no row
            "objects_without_study": int(units[0]) - totals["found_instances"]
            - totals["skipped_instances"]}


def _problems(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The first problem studies: by status (in :data:`STATUSES` order), then file row."""
    order = ", ".join(f"'{s}'" for s in STATUSES)
    cursor = con.execute(f"SELECT * FROM studies WHERE status <> 'ok' ORDER BY "
                         f"list_position([{order}], status), expected_row NULLS LAST, "
                         f"study_instance_uid LIMIT {PROBLEMS_SHOWN}")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


# -- the expected file -------------------------------------------------------------------------


def load_expected(path: str | Path) -> pa.Table:
    """Read and check the legacy database's export (see the module docstring): a table with
    the columns of :data:`EXPECTED` (``row`` numbered from 1), one row per file row."""
    path = Path(path)
    source = str(path)
    table = _read(path)
    columns = _fields(table.column_names, source)
    if table.num_rows == 0:
        raise ReconcileError(f"{source}: the file has no rows; add one row per study the "
                             "legacy database holds")
    n = table.num_rows
    fields: dict[str, pa.Array] = {"row": pa.array(np.arange(1, n + 1, dtype=np.int64))}
    for name in TEXT_FIELDS:
        fields[name] = (_as_text(table.column(columns[name]), columns[name], source)
                        if name in columns else pa.nulls(n, pa.string()))
    fields["expected_instances"] = _count(table, columns["expected_instances"], source,
                                          required=True)
    fields["expected_series"] = (_count(table, columns["expected_series"], source,
                                        required=False)
                                 if "expected_series" in columns else pa.nulls(n, pa.int64()))
    expected = pa.table(fields, schema=EXPECTED)
    _check_keys(expected, columns, source)
    return expected


def _read(path: Path) -> pa.Table:
    return read_table_file(path, "the legacy database's export of its studies",
                           ReconcileError,
                           "StudyInstanceUID,PatientID,NumberOfStudyRelatedInstances")


def _normal(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _fields(names: list[str], source: str) -> dict[str, str]:
    """Field -> the file's column for it; an error for a field given twice or a required
    field missing."""
    accepted = {_normal(alias): f for f, aliases in NAMES.items() for alias in (f, *aliases)}
    columns: dict[str, list[str]] = {}
    for name in names:
        if _normal(name) in accepted:
            columns.setdefault(accepted[_normal(name)], []).append(name)
    repeated = [given for given in columns.values() if len(given) > 1]
    if repeated:
        raise ReconcileError(f"{source}: columns {' and '.join(map(repr, repeated[0]))} are the "
                             "same field; keep one of them")

    def required(what: str, fields: tuple[str, ...]) -> None:
        if not set(fields) & set(columns):
            wanted = " or ".join(NAMES[f][0] for f in fields)
            others = "; ".join(f"{NAMES[f][0]} may also be named {', '.join(NAMES[f][1:])}"
                               for f in fields if len(NAMES[f]) > 1)
            raise ReconcileError(
                f"{source}: no {what} column; add {wanted}"
                f"{f' ({others})' if others else ''} (names are case-insensitive, snake_case "
                f"accepted); the file has: {', '.join(map(repr, names)) or 'no columns'}")

    required("key", KEY_FIELDS)
    required("instance count", ("expected_instances",))
    return {f: given[0] for f, given in columns.items()}


def _as_text(column: pa.ChunkedArray, name: str, source: str) -> pa.Array:
    """Trimmed strings, null for empty cells (the corrections file's rules)."""
    try:
        return _text(column, name, source)
    except CorrectionsError as exc:
        raise ReconcileError(str(exc)) from None


def _count(table: pa.Table, name: str, source: str, *, required: bool) -> pa.Array:
    """A column of whole numbers (integers, integral floats or digits as text) as int64."""
    column = table.column(name).combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        whole = pc.greater_equal(column, 0)
        if pa.types.is_floating(kind):
            whole = pc.and_(whole, pc.equal(pc.floor(column), column))
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        column = _as_text(column, name, source)
        whole = pc.match_substring_regex(column, r"^[0-9]{1,18}$")
    else:
        raise ReconcileError(f"{source}: column {name} has type {kind}; write the counts as "
                             "whole numbers")
    rows = np.flatnonzero(~np.asarray(pc.fill_null(whole, True)))
    if len(rows):
        shown = ", ".join(repr(v) for v in column.take(pa.array(rows[:3])).to_pylist())
        raise ReconcileError(f"{source}: column {name}, {_rows(rows)} a value that is not a "
                             f"whole number ({shown}{', ...' if len(rows) > 3 else ''}); "
                             "write the count of the study's instances or series")
    values = column.cast(pa.int64())
    empty = np.flatnonzero(~_valid(values)) if required else np.array([], dtype=np.int64)
    if len(empty):
        raise ReconcileError(f"{source}: column {name}, {_rows(empty)} no value; fill in the "
                             "number of the study's instances, or delete the row")
    return values


def _check_keys(expected: pa.Table, columns: dict[str, str], source: str) -> None:
    """Every row has a key; no study UID twice; no accession number twice among the rows
    that are matched by it."""
    uid, accession = expected.column("study_instance_uid"), expected.column("accession_number")
    keyless = np.flatnonzero(~_valid(uid) & ~_valid(accession))
    if len(keyless):
        keys = " or ".join(columns.get(f, NAMES[f][0]) for f in KEY_FIELDS)
        raise ReconcileError(f"{source}: {_rows(keyless)} no key; fill in {keys}, or delete "
                             "the row")
    by_accession = pc.and_(pc.is_null(uid), pc.is_valid(accession))
    for name, values, where in (("study_instance_uid", uid, pc.is_valid(uid)),
                                ("accession_number", accession, by_accession)):
        keyed = pa.table({"key": values, "row": expected.column("row")}).filter(where)
        counted = keyed.group_by("key").aggregate([("row", "list")])
        twice = counted.filter(pc.greater(pc.list_value_length(counted.column("row_list")), 1))
        if twice.num_rows:
            key, rows = twice.column("key")[0].as_py(), twice.column("row_list")[0].as_py()
            extra = (" (among the rows without a StudyInstanceUID, which are matched by it)"
                     if name == "accession_number" else "")
            raise ReconcileError(
                f"{source}: {columns[name]} {key!r} is in rows {', '.join(map(str, rows))}"
                f"{extra}; keep one row per study")
