"""corrections: patient and study attributes corrected from the legacy database, in the plan.

``migrate-fs plan --corrections FILE`` reads a corrections file exported from the legacy
database: a CSV file (UTF-8, comma-separated, one header line; a UTF-8 byte order mark is
allowed) or a Parquet file (``*.csv``, ``*.parquet`` or ``*.pq``).

Columns (named by DICOM keyword, case-sensitive, any subset in any order):

* key columns, at least one: ``StudyInstanceUID``, ``AccessionNumber``, ``OldPatientID`` -- the
  values as stored in the objects (``OldPatientID`` is the PatientID the objects have now);
* value columns, at least one: ``PatientID``, ``IssuerOfPatientID``, ``PatientName``,
  ``PatientBirthDate`` (YYYYMMDD), ``PatientSex`` (M, F or O) and ``NewAccessionNumber`` (the
  corrected AccessionNumber: ``AccessionNumber`` itself is a key).

Every cell is text: CSV cells are read as strings (leading zeros are kept), Parquet columns must
be strings. Surrounding whitespace is dropped, and an empty cell means "no correction for this
attribute". Every row needs a key and a value. Rows are numbered from 1, the header and blank
lines not counted.

Each row is keyed by its first non-empty key, in the order above (the other key cells are for
reference only and not checked), which gives its level: a study row (StudyInstanceUID), an
accession row (AccessionNumber) or a patient row (OldPatientID). A row applies to every object
whose stored StudyInstanceUID, AccessionNumber or PatientID equals its key.

* Precedence, per object and attribute: study rows beat accession rows beat patient rows -- the
  first level with a value for the attribute decides. If that level's matching rows give
  different values, the object gets ``correction_conflict`` and keeps its value for that
  attribute (no lower level is tried); its other attributes are still corrected.
* Patient merges: the PatientID of a patient row is the surviving PatientID of a merge (rule
  ``patient_merge``). Merges are followed (A -> B and B -> C give C; a cycle is an error). The
  other values of a patient row correct the objects stored with that PatientID; they do not
  follow merges. A PatientID given on a study or accession row is the study's current
  PatientID, used as it is (rule ``legacy_db_correction``, like every other correction).
* When the file has study or accession rows, an object with a StudyInstanceUID or
  AccessionNumber that matches none of them gets ``not_in_legacy_db``; rows that match no
  object (a patient row counts as matched when a merge chain passes through it) are listed as
  orphans.

Every change is one manifest change entry (tag, keyword, old value, new value, rule), made only
where the value actually changes.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydicom.datadict import tag_for_keyword
from pydicom.tag import Tag

from migrate_fs.errors import CorrectionsError
from migrate_fs.problems import CHANGE, PROBLEM
from migrate_fs.tablefiles import read_table_file

KEYS = ("StudyInstanceUID", "AccessionNumber", "OldPatientID")
KEY_FIELDS = {"StudyInstanceUID": "study_instance_uid", "AccessionNumber": "accession_number",
              "OldPatientID": "patient_id"}
PATIENT_LEVEL = 2
SOURCE_KEY = b"migrate_fs_corrections_source"


@dataclass(frozen=True)
class Attribute:
    """A value column: the attribute it corrects, the objects column, what a value must be."""

    column: str
    keyword: str
    field: str
    pattern: str
    hint: str

    @property
    def tag(self) -> str:
        tag = tag_for_keyword(self.keyword)
        assert tag is not None, self.keyword  # the keywords are the module's own
        return str(Tag(tag))


ATTRIBUTES = (  # in tag order: the order of the change entries of an object
    Attribute("NewAccessionNumber", "AccessionNumber", "accession_number", r"^[^\\]{1,16}$",
              "at most 16 characters, no backslash"),
    Attribute("PatientName", "PatientName", "patient_name",
              r"^[^\\=]{0,64}(=[^\\=]{0,64}){0,2}$",
              "at most 64 characters per component group (groups separated by '='), "
              "no backslash"),
    Attribute("PatientID", "PatientID", "patient_id", r"^[^\\]{1,64}$",
              "at most 64 characters, no backslash"),
    Attribute("IssuerOfPatientID", "IssuerOfPatientID", "issuer_of_patient_id", r"^[^\\]{1,64}$",
              "at most 64 characters, no backslash"),
    Attribute("PatientBirthDate", "PatientBirthDate", "patient_birth_date",
              r"^[0-9]{4}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])$", "a date YYYYMMDD (19700131)"),
    Attribute("PatientSex", "PatientSex", "patient_sex", r"^[MFO]$", "M, F or O"),
)
VALUES = ("PatientID", "IssuerOfPatientID", "PatientName", "PatientBirthDate", "PatientSex",
          "NewAccessionNumber")
COLUMNS = KEYS + VALUES
ORPHANS = pa.schema([("key", pa.string()), ("value", pa.string()), ("row", pa.int64())])


@dataclass
class Applied:
    """What the corrections do to each object (row for row the objects table)."""

    changes: pa.Array  # list<CHANGE> per object: only real changes
    problems: pa.Array  # list<PROBLEM> per object: correction_conflict, not_in_legacy_db
    orphans: pa.Table  # rows matching no object: key (column), value, row (1-based)
    values: dict[str, pa.Array]  # objects column -> its values with the corrections applied


# -- reading and checking the file -------------------------------------------------------------


def load_corrections(path: str | Path) -> pa.Table:
    """Read and check a corrections file (see the module docstring); the table has the file's
    known columns as strings, null for empty cells, one row per data row in file order."""
    path = Path(path)
    source = str(path)
    table = _normalized(_read(path), source)
    if table.num_rows == 0:
        raise CorrectionsError(f"{source}: the file has no rows; add one row per study, "
                               "accession or patient to correct")
    _check_rows(table, source)
    _check_values(table, source)
    table = table.replace_schema_metadata({SOURCE_KEY: source.encode()})
    _check_merges(table, source)
    return table


def _read(path: Path) -> pa.Table:
    return read_table_file(path, "the corrections file", CorrectionsError,
                           "StudyInstanceUID,PatientID,PatientName", _check_columns)


def _check_columns(names: list[str], source: str) -> None:
    """Known names only, each once, at least one key and one value column."""
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        _fail(source, f"column {', '.join(map(repr, repeated))} appears more than once; "
                      "keep one of each")
    unknown = [n for n in names if n not in COLUMNS]
    if unknown:
        what = "; ".join(_unknown(n) for n in unknown)
        _fail(source, f"{what}. The columns are (case-sensitive) keys {', '.join(KEYS)} and "
                      f"values {', '.join(VALUES)}; rename or remove the others")
    if not set(names) & set(KEYS):
        _fail(source, f"no key column; add one of {', '.join(KEYS)} (the value stored in the "
                      "objects) to say which objects a row corrects")
    if not set(names) & set(VALUES):
        hint = (" (AccessionNumber is a key: a corrected accession number goes in "
                "NewAccessionNumber)" if "AccessionNumber" in names else "")
        _fail(source, f"no value column; add at least one of {', '.join(VALUES)}{hint}")


def _unknown(name: str) -> str:
    """``unknown column 'X'``, with the known column it most likely means."""
    if not name.strip():
        return "an unnamed column (a trailing comma in the header?)"
    norm = {re.sub(r"[^a-z0-9]", "", c.lower()): c for c in COLUMNS}
    wanted = re.sub(r"[^a-z0-9]", "", name.lower())
    guess = norm.get(wanted) or next(
        (norm[m] for m in difflib.get_close_matches(wanted, list(norm), n=1, cutoff=0.6)), None)
    return f"unknown column {name!r}" + (f" (did you mean {guess!r}?)" if guess else "")


def _normalized(table: pa.Table, source: str) -> pa.Table:
    """The known columns as plain string arrays, trimmed, with null for empty cells."""
    return pa.table({name: _text(table.column(name), name, source)
                     for name in table.column_names if name in COLUMNS})


def _text(column: pa.ChunkedArray | pa.Array, name: str, source: str) -> pa.Array:
    kind = column.type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
        column = column.cast(kind)
    if pa.types.is_null(kind):
        return pa.nulls(len(column), pa.string())
    if kind not in (pa.string(), pa.large_string()) and str(kind) != "string_view":
        _fail(source, f"column {name} has type {kind}, not text: numbers lose their leading "
                      "zeros (00123 becomes 123); write every column as strings")
    values = column.cast(pa.string())
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    values = pc.utf8_trim_whitespace(values)
    return pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)


def _check_rows(table: pa.Table, source: str) -> None:
    """Every row has a key and a value."""
    def filled(names: tuple[str, ...]) -> np.ndarray:
        mask = np.zeros(table.num_rows, dtype=bool)
        for name in names:
            if name in table.column_names:
                mask |= _valid(table.column(name))
        return mask

    keyless = np.flatnonzero(~filled(KEYS))
    if len(keyless):
        _fail(source, f"{_rows(keyless)} no key; fill in {', '.join(KEYS)} (the first one "
                      "filled in is used), or delete the row")
    valueless = np.flatnonzero(~filled(VALUES))
    if len(valueless):
        hint = (" (AccessionNumber is a key: a corrected accession number goes in "
                "NewAccessionNumber)" if "AccessionNumber" in table.column_names else "")
        _fail(source, f"{_rows(valueless)} a key but no value; fill in at least one of "
                      f"{', '.join(VALUES)}{hint}, or delete the row")


def _check_values(table: pa.Table, source: str) -> None:
    """No control characters anywhere; each value column's values valid for its attribute."""
    for name in table.column_names:
        column = table.column(name)
        bad = _valid(column) & _matches(column, r"[\x00-\x1f\x7f]")
        if bad.any():
            _fail(source, f"column {name}, {_rows(np.flatnonzero(bad))} a control character "
                          "(tab, line break...); remove it")
    for attribute in ATTRIBUTES:
        if attribute.column not in table.column_names:
            continue
        column = table.column(attribute.column)
        bad = np.flatnonzero(_valid(column) & ~_matches(column, attribute.pattern))
        if len(bad):
            shown = ", ".join(repr(v) for v in column.take(pa.array(bad[:3])).to_pylist())
            _fail(source, f"column {attribute.column}, {_rows(bad)} an invalid value ({shown}"
                          f"{', ...' if len(bad) > 3 else ''}); a {attribute.keyword} must be "
                          f"{attribute.hint} (or empty for no correction)")


def _check_merges(table: pa.Table, source: str) -> None:
    """Raise on a cycle of patient merges."""
    rows, level = _prepared(table)
    _merge(_match(rows, level, PATIENT_LEVEL, pa.array([], pa.string())), source)


def _fail(source: str, message: str) -> NoReturn:
    raise CorrectionsError(f"{source}: {message}")


def _rows(rows: np.ndarray) -> str:
    """``row 3 has`` / ``rows 3, 7 (and 12 more) have`` from 0-based row indices."""
    shown = ", ".join(str(r + 1) for r in rows[:10])
    more = f" (and {len(rows) - 10} more)" if len(rows) > 10 else ""
    return f"row {shown} has" if len(rows) == 1 else f"rows {shown}{more} have"


def _valid(column: pa.Array) -> np.ndarray:
    return np.asarray(pc.is_valid(column).to_numpy(zero_copy_only=False), dtype=bool)


def _matches(column: pa.Array, pattern: str) -> np.ndarray:
    found = pc.fill_null(pc.match_substring_regex(column, pattern), False)
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)


# -- applying the corrections ------------------------------------------------------------------


@dataclass
class _Level:
    """The rows of one level grouped by key, and which key each object matches."""

    name: str  # the key column
    rows: pa.Table  # the level's rows: key, row (1-based), the value columns
    keys: pa.Array  # distinct keys
    found: np.ndarray  # per object: index into keys, -1 where none matches
    values: dict[str, pa.Array]  # value column -> per key: the value (meaningless if conflict)
    conflicts: dict[str, np.ndarray]  # value column -> per key: the rows disagree
    messages: dict[str, dict[int, str]]  # value column -> key index -> conflict message
    step: np.ndarray | None = None  # patient level: key index -> the key it merges into


def apply_corrections(objects: pa.Table, corrections: pa.Table) -> Applied:
    """The changes, problems, orphans and corrected values for the objects (one row each, with
    the columns study_instance_uid, accession_number, patient_id, patient_name,
    issuer_of_patient_id, patient_birth_date, patient_sex)."""
    rows, level = _prepared(corrections)
    fields = {name: _field(objects, name) for name in
              {*KEY_FIELDS.values(), *(a.field for a in ATTRIBUTES)}}
    levels = [_match(rows, level, i, fields[KEY_FIELDS[key]]) for i, key in enumerate(KEYS)]
    _merge(levels[PATIENT_LEVEL], _source(corrections))
    n = objects.num_rows
    changed: list[np.ndarray] = []
    olds: list[pa.Array] = []
    news: list[pa.Array] = []
    merges: list[np.ndarray] = []
    problems: list[tuple[np.ndarray, pa.Array]] = []
    values: dict[str, pa.Array] = {}
    for attribute in ATTRIBUTES:
        old = fields[attribute.field]
        given, new, merged, conflicts = _choose(levels, attribute.column, n)
        before = old.take(pa.array(given))
        differs = ~_same(before, new)
        new = new.filter(pa.array(differs))
        changed.append(given[differs])
        olds.append(before.filter(pa.array(differs)))
        news.append(new)
        merges.append(merged[differs])
        values[attribute.field] = _replaced(old, given[differs], new)
        problems.append(conflicts)
    problems.append(_not_in_legacy_db(levels, fields))
    return Applied(changes=_changes(n, changed, olds, news, merges),
                   problems=_problems(n, problems), orphans=_orphans(levels), values=values)


def _source(corrections: pa.Table) -> str:
    """The file the table was loaded from, for messages."""
    return (corrections.schema.metadata or {}).get(SOURCE_KEY, b"the corrections").decode()


def _prepared(corrections: pa.Table) -> tuple[pa.Table, np.ndarray]:
    """The rows with their key, row number and every value column (normalized), and their
    level (-1: no key)."""
    table = _normalized(corrections, _source(corrections))
    m = table.num_rows
    columns = {c: table.column(c) if c in table.column_names else pa.nulls(m, pa.string())
               for c in COLUMNS}
    level = np.full(m, -1, dtype=np.int64)
    for i in reversed(range(len(KEYS))):
        level[_valid(columns[KEYS[i]])] = i
    key = pc.coalesce(*(columns[k] for k in KEYS)) if m else pa.array([], pa.string())
    rows = pa.table({"key": key, "row": pa.array(np.arange(1, m + 1, dtype=np.int64)),
                     **{c: columns[c] for c in VALUES}})
    return rows, level


def _field(objects: pa.Table, name: str) -> pa.Array:
    column = objects.column(name)
    if column.type != pa.string():
        column = column.cast(pa.string())
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _match(rows: pa.Table, level: np.ndarray, i: int, field: pa.Array) -> _Level:
    """Group the rows of level ``i`` by key; find each object's key (``field``) among them."""
    own = rows.filter(pa.array(level == i))
    grouped = own.group_by("key").aggregate(
        [(c, "count_distinct", pc.CountOptions("only_valid")) for c in VALUES]
        + [(c, "min") for c in VALUES])
    keys = grouped.column("key").combine_chunks()
    found = pc.fill_null(pc.index_in(field, value_set=keys), -1).to_numpy(zero_copy_only=False)
    result = _Level(KEYS[i], own, keys, np.asarray(found, dtype=np.int64), {}, {}, {})
    for c in VALUES:
        result.values[c] = grouped.column(f"{c}_min").combine_chunks()
        counts = grouped.column(f"{c}_count_distinct").to_numpy()
        result.conflicts[c] = np.asarray(counts > 1)
        result.messages[c] = _conflict_messages(result, c)
    return result


def _conflict_messages(level: _Level, column: str) -> dict[int, str]:
    """Key index -> message, for the keys whose rows disagree on ``column``."""
    conflicted = np.flatnonzero(level.conflicts[column])
    if not len(conflicted):
        return {}
    bad = level.keys.take(pa.array(conflicted))
    mask = pc.and_(pc.is_in(level.rows.column("key"), value_set=bad),
                   pc.is_valid(level.rows.column(column)))
    seen: dict[str, dict[str, list[int]]] = {}
    for r in level.rows.filter(mask).select(["key", "row", column]).to_pylist():
        seen.setdefault(r["key"], {}).setdefault(r[column], []).append(r["row"])
    keyword = _attribute(column).keyword
    return {int(k): f"{keyword}: the corrections rows for {level.name} {key!r} disagree: "
                    f"{_listed(seen[key])}; {keyword} is left as it is"
            for k, key in zip(conflicted, bad.to_pylist(), strict=True)}


def _listed(values: dict[str, list[int]]) -> str:
    """``'111' (row 2), '222' (rows 3, 5)``."""
    return ", ".join(f"{v!r} (row{'s' if len(rs) > 1 else ''} {', '.join(map(str, rs[:5]))}"
                     f"{', ...' if len(rs) > 5 else ''})" for v, rs in sorted(values.items()))


def _attribute(column: str) -> Attribute:
    return next(a for a in ATTRIBUTES if a.column == column)


def _merge(patient: _Level, source: str) -> None:
    """Resolve merge chains: each patient key's PatientID becomes the end of its chain (a
    conflict where the chain reaches a key whose merges disagree). Raise on a cycle."""
    target = patient.values["PatientID"]
    conflicted = patient.conflicts["PatientID"]
    k = len(target)
    if k == 0:
        return
    merging = _valid(target) & ~conflicted
    position = pc.fill_null(pc.index_in(target, value_set=patient.keys), -1).to_numpy(
        zero_copy_only=False).astype(np.int64)
    step = np.arange(k)
    follows = merging & (position >= 0)
    follows[follows] = merging[position[follows]] | conflicted[position[follows]]
    step[follows] = position[follows]
    patient.step = step
    end = step.copy()
    for _ in range(int(np.ceil(np.log2(k))) + 1):
        end = end[end]
    cycling = np.flatnonzero(step[end] != end)  # not at a chain's end
    if len(cycling):
        _cycle_error(patient, step, int(end[cycling[0]]), source)
    via = np.flatnonzero(merging & conflicted[end])
    keys = patient.keys.to_pylist() if len(via) else []
    messages = patient.messages["PatientID"]
    for i in via.tolist():
        detail = messages[int(end[i])].split(" disagree: ", 1)[1]
        messages[i] = (f"PatientID: the merge chain of OldPatientID {keys[i]!r} reaches "
                       f"{keys[int(end[i])]!r}, whose merges disagree: {detail}")
    patient.conflicts["PatientID"] = conflicted | (merging & conflicted[end])
    patient.values["PatientID"] = target.take(pa.array(end))


def _cycle_error(patient: _Level, step: np.ndarray, start: int, source: str) -> NoReturn:
    keys = patient.keys.to_pylist()
    cycle, i = [start], int(step[start])
    while i != start:
        cycle.append(i)
        i = int(step[i])
    ids = [keys[j] for j in cycle]
    own = patient.rows.filter(pc.and_(pc.is_in(patient.rows.column("key"), pa.array(ids)),
                                      pc.is_valid(patient.rows.column("PatientID"))))
    rows = ", ".join(map(str, sorted(own.column("row").to_pylist())))
    chain = " -> ".join(repr(v) for v in [*ids, ids[0]])
    _fail(source, f"the patient merges form a cycle: {chain} (rows {rows}); a merge must lead "
                  "to the surviving PatientID: fix or delete one of these rows")


def _choose(levels: list[_Level], column: str, n: int
            ) -> tuple[np.ndarray, pa.Array, np.ndarray, tuple[np.ndarray, pa.Array]]:
    """The objects a level gives a value (no conflict), that value, whether it is a patient
    merge's, and the conflict problems (object rows, entries)."""
    deciding = np.full(n, -1, dtype=np.int64)
    pick = np.full(n, -1, dtype=np.int64)
    clash = np.zeros(n, dtype=bool)
    offset = 0
    for i, level in enumerate(levels):
        values, conflicts = level.values[column], level.conflicts[column]
        gives = _valid(values) | conflicts
        if gives.any():
            key = np.maximum(level.found, 0)
            hit = (deciding < 0) & (level.found >= 0) & gives[key]
            deciding[hit] = i
            clash |= hit & conflicts[key]
            ok = hit & ~conflicts[key]
            pick[ok] = offset + level.found[ok]
        offset += len(values)
    rows = np.flatnonzero(pick >= 0)
    new = pa.concat_arrays([level.values[column] for level in levels]).take(
        pa.array(pick[rows]))
    merged = (deciding[rows] == PATIENT_LEVEL) & (column == "PatientID")
    return rows, new, merged, _conflicts(levels, column, deciding, clash)


def _conflicts(levels: list[_Level], column: str, deciding: np.ndarray, clash: np.ndarray
               ) -> tuple[np.ndarray, pa.Array]:
    """The correction_conflict entries of the objects whose deciding level disagrees."""
    rows = np.flatnonzero(clash)
    messages = pa.nulls(len(rows), pa.string())
    for i, level in enumerate(levels):
        mine = deciding[rows] == i
        if not mine.any():
            continue
        keyed = level.messages[column]
        index = np.full(len(level.keys), -1, dtype=np.int64)
        index[list(keyed)] = np.arange(len(keyed))
        which = np.where(mine, index[np.maximum(level.found[rows], 0)], -1)
        found = pa.array(list(keyed.values()), pa.string()).take(pa.array(which, mask=which < 0))
        messages = pc.coalesce(messages, found)
    return rows, _entries("correction_conflict", messages)


def _entries(code: str, messages: pa.Array) -> pa.Array:
    return pa.StructArray.from_arrays([pa.repeat(pa.scalar(code), len(messages)), messages,
                                       pa.nulls(len(messages), pa.string())],
                                      fields=list(PROBLEM))


def _same(old: pa.Array, new: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(pc.equal(old, new), False).to_numpy(zero_copy_only=False),
                      dtype=bool)


def _replaced(old: pa.Array, rows: np.ndarray, new: pa.Array) -> pa.Array:
    """``old`` with the values at ``rows`` (ascending) replaced by ``new``."""
    if not len(rows):
        return old
    mask = np.zeros(len(old), dtype=bool)
    mask[rows] = True
    return pc.replace_with_mask(old, pa.array(mask), new)


def _changes(n: int, rows: list[np.ndarray], olds: list[pa.Array], news: list[pa.Array],
             merges: list[np.ndarray]) -> pa.Array:
    """The changes column from each attribute's changed rows, old and new values and merge
    flags; the entries of an object in attribute (tag) order."""
    flat = np.concatenate(rows)
    order = np.argsort(flat, kind="stable")
    take = pa.array(order)
    attribute = np.repeat(np.arange(len(rows)), [len(r) for r in rows])[order]

    def named(names: list[str], index: np.ndarray) -> pa.Array:
        return pa.array(names, pa.string()).take(pa.array(index))

    entries = pa.StructArray.from_arrays(
        [named([a.tag for a in ATTRIBUTES], attribute),
         named([a.keyword for a in ATTRIBUTES], attribute),
         pa.concat_arrays(olds).take(take), pa.concat_arrays(news).take(take),
         named(["legacy_db_correction", "patient_merge"],
               np.concatenate(merges)[order].astype(np.int64))], fields=list(CHANGE))
    return _list(n, flat, entries)


def _problems(n: int, parts: list[tuple[np.ndarray, pa.Array]]) -> pa.Array:
    """The problems column from (rows, entries) parts, the entries of an object in part order."""
    flat = np.concatenate([r for r, _ in parts])
    order = pa.array(np.argsort(flat, kind="stable"))
    return _list(n, flat, pa.concat_arrays([e for _, e in parts]).take(order))


def _list(n: int, rows: np.ndarray, entries: pa.Array) -> pa.Array:
    """A list column of ``n`` rows: ``entries`` (sorted by row) belong to ``rows``."""
    offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), entries)


def _not_in_legacy_db(levels: list[_Level], fields: dict[str, pa.Array]
                      ) -> tuple[np.ndarray, pa.Array]:
    """Objects with a study UID or accession number that no study or accession row matches."""
    study, accession = fields["study_instance_uid"], fields["accession_number"]
    rows = np.array([], dtype=np.int64)
    if len(levels[0].keys) or len(levels[1].keys):
        missing = (levels[0].found < 0) & (levels[1].found < 0)
        rows = np.flatnonzero(missing & (_valid(study) | _valid(accession)))
    take = pa.array(rows)
    messages = pc.binary_join_element_wise(
        "study ", pc.fill_null(study.take(take), "(no StudyInstanceUID)"), " (AccessionNumber ",
        pc.fill_null(accession.take(take), "none"), ") is in no StudyInstanceUID or "
        "AccessionNumber row of the corrections file", "")
    return rows, _entries("not_in_legacy_db", messages)


def _orphans(levels: list[_Level]) -> pa.Table:
    """The rows whose key matches no object, in file order."""
    parts = []
    for level in levels:
        matched = np.zeros(len(level.keys), dtype=bool)
        matched[level.found[level.found >= 0]] = True
        _through_merges(matched, level.step)
        keys = level.rows.column("key")
        position = pc.index_in(keys, value_set=level.keys).to_numpy(zero_copy_only=False)
        lonely = pa.array(~matched[np.asarray(position, dtype=np.int64)]) if len(keys) else \
            pa.array([], pa.bool_())
        own = level.rows.filter(lonely)
        parts.append(pa.table({"key": pa.repeat(pa.scalar(level.name), own.num_rows),
                               "value": own.column("key"), "row": own.column("row")},
                              schema=ORPHANS))
    return pa.concat_tables(parts).sort_by("row").combine_chunks()


def _through_merges(matched: np.ndarray, step: np.ndarray | None) -> None:
    """Mark the keys a merge chain from a matched key passes through as matched too."""
    frontier = np.flatnonzero(matched)
    while step is not None and len(frontier):
        reached = step[frontier]
        reached = np.unique(reached[(reached != frontier) & ~matched[reached]])
        matched[reached] = True
        frontier = reached
