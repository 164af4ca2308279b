"""plan.decide: what will happen to each object and why, in the phases :mod:`.buckets` runs.

An action per object (``migrate``, ``quarantine`` or ``skip``) with the reason code, the output
path, the output transfer syntax, and which kept object a duplicate loses to. The phases here
work on the rows of one part group: :func:`local_decisions` (blocking codes, corrections,
rules, output identifiers and the other output values a layout names), :func:`settle` (the
duplicate model's decisions joined, new SOPInstanceUIDs, output paths in the configured layout)
and :func:`final_decisions` (case-insensitive path collisions: quarantined under the ``uids``
layout, suffixed under any other; the action). Whole-run groupings (same UID, same pixel
signature, same path) are :mod:`.buckets`'s; ties are broken by locator order, so the same
inventory always gives the same plan, whatever order the workers finished in and however many
buckets there are.

Column-wise with pyarrow and numpy: Python-level work is done per distinct value (patients,
studies, series, rule inputs), per object only for the objects with something to decide.
Nothing here reads or writes a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from migrate_fs import iods
from migrate_fs.config import Config, Policy
from migrate_fs.paths import Layout, sanitize_component, suffixed
from migrate_fs.plan.corrections import Applied, apply_corrections
from migrate_fs.plan.duplicates import DUPLICATE_INPUT
from migrate_fs.plan.rules import RuleInput, RuleOutput, apply_rules
from migrate_fs.problems import CATALOGUE, CHANGE, PROBLEM, blocks, outcome_severity
from migrate_fs.values import generated_uid

NO_PATIENT = "_no_patient"  # the output folder of objects whose IOD has no patient
NATIVE_SYNTAXES = [ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian,
                   DeflatedExplicitVRLittleEndian]
SKIPPING = pa.array(sorted(c for c, code in CATALOGUE.items() if code.severity == "skip"))


def output_transfer_syntax(source_syntax: str) -> str:
    """Native encodings become explicit VR little endian; encapsulated ones are kept."""
    return ExplicitVRLittleEndian if source_syntax in NATIVE_SYNTAXES else source_syntax


# The inventory columns the decisions need: the plan reads only these for the whole run.
DECISION_INPUT = sorted({"object_id", "locator", "size", "kind", "problems", "patient_id",
                         "study_instance_uid", "series_instance_uid", "sop_instance_uid",
                         "transfer_syntax", "elements", "missing", "empty",
                         "specific_character_set", "modality", "series_number",
                         "accession_number", "study_date", "patient_name",
                         "issuer_of_patient_id", "patient_birth_date", "patient_sex",
                         "sop_class_uid", "study_time", "study_description",
                         "instance_number", *DUPLICATE_INPUT})
DECISIONS = ["problems", "output_patient_id", "output_study_instance_uid",
             "output_series_instance_uid", "output_sop_instance_uid", "action", "reason",
             "output_path", "output_transfer_syntax", "duplicate_of", "duplicate_group",
             "duplicate_kind", "differs", "content_sha256", "changes"]
# Identifying columns and the top-level tag whose change gives their output value.
OUTPUT_IDS = {"patient_id": "(0010,0020)", "study_instance_uid": "(0020,000D)",
              "series_instance_uid": "(0020,000E)", "sop_instance_uid": "(0008,0018)"}
# The fields a layout names (paths.LAYOUT_FIELDS): keyword -> the inventory column and the
# top-level tag whose change gives the output value. The identifiers come from OUTPUT_IDS.
LAYOUT_COLUMNS = {"PatientID": ("patient_id", "(0010,0020)"),
                  "PatientName": ("patient_name", "(0010,0010)"),
                  "PatientBirthDate": ("patient_birth_date", "(0010,0030)"),
                  "PatientSex": ("patient_sex", "(0010,0040)"),
                  "IssuerOfPatientID": ("issuer_of_patient_id", "(0010,0021)"),
                  "StudyInstanceUID": ("study_instance_uid", "(0020,000D)"),
                  "StudyDate": ("study_date", "(0008,0020)"),
                  "StudyTime": ("study_time", "(0008,0030)"),
                  "AccessionNumber": ("accession_number", "(0008,0050)"),
                  "StudyDescription": ("study_description", "(0008,1030)"),
                  "SeriesInstanceUID": ("series_instance_uid", "(0020,000E)"),
                  "Modality": ("modality", "(0008,0060)"),
                  "SeriesNumber": ("series_number", "(0020,0011)"),
                  "SOPInstanceUID": ("sop_instance_uid", "(0008,0018)"),
                  "SOPClassUID": ("sop_class_uid", "(0008,0016)"),
                  "InstanceNumber": ("instance_number", "(0020,0013)")}
_ID_FIELDS = {k for k, (column, _) in LAYOUT_COLUMNS.items() if column in OUTPUT_IDS}


def layout_extras(layout: Layout) -> list[str]:
    """The fields of ``layout`` besides the output identifiers, in the order of the STATE
    column ``layout_values``."""
    return [f for f in layout.fields if f not in _ID_FIELDS]


def attach(inventory: pa.Table, decided: pa.Table) -> pa.Table:
    """Inventory rows with their decisions (``decided`` is row for row the same objects)."""
    table = inventory.set_column(inventory.schema.get_field_index("problems"), "problems",
                                 decided.column("problems"))
    for name in DECISIONS[1:]:
        table = table.append_column(name, decided.column(name))
    return table


# What the row-local phase keeps of each row for the phases after it (see :mod:`.buckets`).
STATE = pa.schema([("rid", pa.int64()), ("object_id", pa.string()), ("locator", pa.string()),
                   ("sop_class_uid", pa.string()), ("reason", pa.string()),
                   ("added", pa.list_(PROBLEM)), ("changes", pa.list_(CHANGE)),
                   *[(f"output_{c}", pa.string()) for c in OUTPUT_IDS],
                   # the output values of layout_extras(layout), per row (null: none)
                   ("layout_values", pa.list_(pa.string()))])
# What the duplicate model decided for one row (hashing, SOPInstanceUID or signature groups).
DUPLICATE = pa.schema([("rid", pa.int64()), ("reason", pa.string()), ("skip", pa.bool_()),
                       ("duplicate_of", pa.string()), ("problems", pa.list_(PROBLEM)),
                       ("group", pa.string()), ("kind", pa.string()),
                       ("differs", pa.list_(pa.string())), ("new_uid", pa.string()),
                       ("content", pa.string())])
# A settled row: its state with the duplicate model's decisions and its output path.
SETTLED = pa.schema([*(f for f in STATE if f.name not in ("sop_class_uid", "layout_values")),
                     ("skip", pa.bool_()),
                     ("output_path", pa.string()), ("duplicate_of", pa.string()),
                     ("duplicate_group", pa.string()), ("duplicate_kind", pa.string()),
                     ("differs", pa.list_(pa.string())), ("content_sha256", pa.string())])


def local_decisions(table: pa.Table, rids: np.ndarray, config: Config,
                    corrections: pa.Table | None) -> tuple[pa.Table, pa.Table | None]:
    """The row-local decisions of ``table`` (rows of one part group, at least DECISION_INPUT):
    blocking codes, corrections, rules and output identifiers, as a STATE table; and the
    corrections rows that match none of these rows (None without corrections)."""
    config = config or Config()
    n = table.num_rows
    problems = _problems_of(table)
    reason = _first_blocking_code(problems, n, config.code_policies())
    candidate = np.fromiter((r is None for r in reason), dtype=bool, count=n)
    applied = apply_corrections(table.select(CORRECTION_INPUT), corrections) \
        if corrections is not None else None
    added: dict[int, list[tuple[str, str]]] = {}
    per_row, ids = _rule_decisions(table, candidate, reason, added, config, applied)
    extras = layout_extras(config.output_layout())
    values = _output_values(table, per_row, extras)
    state = pa.table({
        "rid": pa.array(rids, pa.int64()), "object_id": table.column("object_id"),
        "locator": table.column("locator"), "sop_class_uid": table.column("sop_class_uid"),
        "reason": pa.array(reason, pa.string()), "added": _problem_lists(added, n),
        "changes": _changes_array(per_row, n),
        **{f"output_{c}": ids[c] for c in OUTPUT_IDS},
        "layout_values": values}, schema=STATE)
    return state, applied.orphans if applied is not None else None


def _output_values(table: pa.Table, per_row: dict[int, list[Any]],
                   extras: list[str]) -> pa.Array:
    """Per row, the output values of the ``extras`` fields (the inventory's, or the value a
    change gives the top-level element), as a list column; all null without extras."""
    n = table.num_rows
    if not extras:
        return pa.nulls(n, pa.list_(pa.string()))
    columns = {}
    for name in extras:
        column, tag = LAYOUT_COLUMNS[name]
        values = table.column(column).combine_chunks() if n else pa.array([], pa.string())
        columns[name] = _with_changes(values.cast(pa.string()), per_row, tag)
    flat = pa.StructArray.from_arrays(list(columns.values()), list(columns)).to_pylist()
    return pa.array([list(r.values()) for r in flat], pa.list_(pa.string()))


def _problems_of(table: pa.Table) -> pa.ListArray:
    if not table.num_rows:
        return pa.array([], pa.list_(PROBLEM))
    return table.column("problems").combine_chunks()


def settle(state: pa.Table, duplicates: list[pa.Table], config: Config) -> pa.Table:
    """The state of one part group with the duplicate model's decisions on its rows
    (``duplicates``: DUPLICATE tables, hashing first, then the SOPInstanceUID groups, then the
    signature groups), the new SOPInstanceUIDs of kept conflicts and the output paths."""
    n = state.num_rows
    base = state.column("rid")[0].as_py() if n else 0
    merged = _merged(duplicates)
    reason = np.array(state.column("reason").to_pylist(), dtype=object)
    skip = np.zeros(n, dtype=bool)
    added = {}
    dup: dict[str, dict[int, Any]] = {k: {} for k in ("duplicate_of", "group", "kind",
                                                      "differs", "content")}
    changes = state.column("changes").combine_chunks() if n else pa.array([], pa.list_(CHANGE))
    new_uids: dict[int, tuple[str | None, str]] = {}
    sop_uids = state.column("output_sop_instance_uid").combine_chunks() if n else \
        pa.array([], pa.string())
    for rid, m in merged.items():
        row = rid - base
        if m["reason"] is not None:
            reason[row], skip[row] = m["reason"], m["skip"]
        if m["problems"]:
            added[row] = m["problems"]
        for key in dup:
            if m[key] is not None:
                dup[key][row] = m[key]
        if m["new_uid"] is not None:
            new_uids[row] = (sop_uids[row].as_py(), m["new_uid"])
    ids = {c: state.column(f"output_{c}").combine_chunks() if n else pa.array([], pa.string())
           for c in OUTPUT_IDS}
    if new_uids:
        changes, ids["sop_instance_uid"] = _with_new_uids(changes, sop_uids, new_uids)
    candidate = np.fromiter((r is None for r in reason), dtype=bool, count=n)
    sop_classes = state.column("sop_class_uid").combine_chunks() if n else \
        pa.array([], pa.string())
    path, outside = _output_paths(config.output_layout(), ids, state.column("layout_values"),
                                  candidate, sop_classes)
    stops = blocks("no_patient_study", config.code_policies())
    for row in np.flatnonzero(outside).tolist():
        where = "quarantined" if stops else f"written under {NO_PATIENT}/"
        added.setdefault(row, []).append(("no_patient_study", f"the IOD has no patient, study or "
                                          f"series: {where}; a study-based PACS will not index "
                                          "it"))
        if stops:
            reason[row], candidate[row] = "no_patient_study", False
    return pa.table({
        "rid": state.column("rid"), "object_id": state.column("object_id"),
        "locator": state.column("locator"), "reason": pa.array(reason, pa.string()),
        "added": _concat_lists(state.column("added").combine_chunks() if n else
                               pa.array([], pa.list_(PROBLEM)), _problem_lists(added, n)),
        "changes": changes, **{f"output_{c}": ids[c] for c in OUTPUT_IDS},
        "skip": pa.array(skip),
        "output_path": pc.if_else(pa.array(candidate), path, pa.scalar(None, pa.string())),
        "duplicate_of": _sparse(dup["duplicate_of"], n, pa.string()),
        "duplicate_group": _sparse(dup["group"], n, pa.string()),
        "duplicate_kind": _sparse(dup["kind"], n, pa.string()),
        "differs": _sparse(dup["differs"], n, pa.list_(pa.string())),
        "content_sha256": _sparse(dup["content"], n, pa.string()),
    }, schema=SETTLED)


def _merged(duplicates: list[pa.Table]) -> dict[int, dict[str, Any]]:
    """Per row, the duplicate model's decisions in the order they were made: the first reason
    (with its skip) and the first duplicate_of and kind hold, the problems are appended."""
    merged: dict[int, dict[str, Any]] = {}
    for table in duplicates:
        for rec in table.to_pylist():
            m = merged.get(rec["rid"])
            if m is None:
                merged[rec["rid"]] = {**rec, "problems": list(rec["problems"] or [])}
                continue
            for key in ("reason", "duplicate_of", "group", "kind", "differs", "new_uid",
                        "content"):
                if m[key] is None and rec[key] is not None:
                    m[key] = rec[key]
                    if key == "reason":
                        m["skip"] = rec["skip"]
            m["problems"] += rec["problems"] or []
    for m in merged.values():
        m["problems"] = [(p["code"], p["message"]) for p in m["problems"]]
    return merged


def _with_new_uids(changes: pa.ListArray, sop_uids: pa.Array,
                   new_uids: dict[int, tuple[str | None, str]]) -> tuple[pa.Array, pa.Array]:
    """keep_all conflicts: the later copies get new SOPInstanceUIDs, recorded as changes."""
    rows = changes.to_pylist()
    uids = sop_uids.to_pylist()
    for row, (old, new) in new_uids.items():
        rows[row] = (rows[row] or []) + [{"tag": OUTPUT_IDS["sop_instance_uid"],
                                          "keyword": "SOPInstanceUID", "old": old, "new": new,
                                          "rule": "duplicate_new_uid"}]
        uids[row] = new
    return pa.array(rows, pa.list_(CHANGE)), pa.array(uids, pa.string())


def new_sop_uid(config: Config, uid: str | None, content: str) -> str:
    """The SOPInstanceUID a later copy of a keep_all conflict gets (deterministic)."""
    return generated_uid(config.namespace, "SOPInstanceUID", uid or "", content)


def final_decisions(problems: pa.ListArray, transfer_syntax: pa.Array, settled: pa.Table,
                    collisions: Mapping[int, str],
                    policies: Mapping[str, str] | None = None,
                    suffix: bool = False) -> pa.Table:
    """The DECISIONS columns of one part group's rows from their settled state and the rows
    whose output path equals an earlier one's in letter case (row -> the kept object's id):
    with ``suffix`` (a layout other than ``uids``) such a row gets a suffixed path, else it is
    quarantined as output_path_collision; every problem entry with its severity under the
    run's ``policies``."""
    n = settled.num_rows
    reason = np.array(settled.column("reason").to_pylist(), dtype=object)
    path = settled.column("output_path").combine_chunks() if n else pa.array([], pa.string())
    duplicate_of = settled.column("duplicate_of").to_pylist()
    added: dict[int, list[tuple[str, str]]] = {}
    renamed: dict[int, str] = {}
    for row, kept_id in collisions.items():
        if suffix:
            old = path[row].as_py()
            renamed[row] = new = suffixed(old, settled.column("object_id")[row].as_py())
            added[row] = [("output_path_suffixed", f"the layout gives this object the output "
                           f"path {old}, which object {kept_id} (first in locator order) has "
                           f"(in letter case): written to {new}")]
            continue
        reason[row] = "output_path_collision"
        duplicate_of[row] = kept_id
        added[row] = [("output_path_collision", "output path differs only in letter case from "
                       f"that of object {kept_id}")]
    if renamed:
        listed = path.to_pylist()
        for row, new in renamed.items():
            listed[row] = new
        path = pa.array(listed, pa.string())
    keep = pa.array(np.fromiter((r is None for r in reason), dtype=bool, count=n))
    reasons = pa.array(reason, pa.string())
    ts = transfer_syntax if n else pa.array([], pa.string())
    out_ts = pc.if_else(pc.is_in(ts, pa.array(NATIVE_SYNTAXES)), ExplicitVRLittleEndian, ts)
    actions = pc.if_else(pc.is_null(reasons), "migrate",
                         pc.if_else(settled.column("skip").combine_chunks() if n
                                    else pa.array([], pa.bool_()), "skip_duplicate",
                                    pc.if_else(pc.is_in(reasons, SKIPPING), "skip",
                                               "quarantine")))
    all_added = _concat_lists(settled.column("added").combine_chunks() if n else
                              pa.array([], pa.list_(PROBLEM)), _problem_lists(added, n))
    return pa.table({
        "problems": with_severity(_concat_lists(problems, all_added, keep_nulls=True),
                                  actions, reasons, policies),
        **{f"output_{c}": settled.column(f"output_{c}") for c in OUTPUT_IDS},
        "action": actions,
        "reason": reasons,
        "output_path": pc.if_else(keep, path, pa.scalar(None, pa.string())),
        "output_transfer_syntax": pc.if_else(keep, out_ts, pa.scalar(None, pa.string())),
        "duplicate_of": pa.array(duplicate_of, pa.string()),
        "duplicate_group": settled.column("duplicate_group"),
        "duplicate_kind": settled.column("duplicate_kind"),
        "differs": settled.column("differs"),
        "content_sha256": settled.column("content_sha256"),
        "changes": settled.column("changes"),
    })


def with_severity(problems: pa.ListArray, actions: pa.Array, reasons: pa.Array,
                  policies: Mapping[str, str] | None) -> pa.Array:
    """The problem lists with each entry's severity (:func:`~migrate_fs.problems.
    outcome_severity`); a Python step per problem entry, none per row without problems."""
    flat = problems.flatten()
    if not len(flat):
        return problems
    parents = pc.list_parent_indices(problems)
    migrated = pc.equal(actions.take(parents), "migrate").to_pylist()
    severity = [outcome_severity(code, message, moved, reason, policies)
                for code, message, moved, reason in zip(
                    flat.field("code").to_pylist(), flat.field("message").to_pylist(),
                    migrated, reasons.take(parents).to_pylist(), strict=True)]
    values = pa.StructArray.from_arrays(
        [flat.field("code"), flat.field("message"), pa.array(severity, pa.string())],
        fields=list(PROBLEM))
    offsets = problems.offsets.to_numpy()
    return pa.ListArray.from_arrays(pa.array(offsets - offsets[0], pa.int32()), values,
                                    mask=problems.is_null() if problems.null_count else None)


def _problem_lists(added: dict[int, list[tuple[str, str]]], n: int) -> pa.Array:
    """A list<PROBLEM> column: the entries of ``added`` at their rows, empty elsewhere."""
    lengths = np.zeros(n, dtype=np.int64)
    flat: list[dict[str, str]] = []
    for row in sorted(added):
        lengths[row] = len(added[row])
        flat += [{"code": c, "message": m} for c, m in added[row]]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(flat, PROBLEM))


def _sparse(values: dict[int, Any], n: int, type_: pa.DataType) -> pa.Array:
    """A column that is null except at the rows in ``values``."""
    position = np.full(n, -1, dtype=np.int64)
    position[np.fromiter(values, dtype=np.int64, count=len(values))] = np.arange(len(values))
    return _take_or_null(pa.array(list(values.values()), type_), position)


def _rule_decisions(table: pa.Table, candidate: np.ndarray, reason: np.ndarray,
                    added: dict[int, list[tuple[str, str]]], config: Config,
                    applied: Applied | None) -> tuple[dict[int, list[Any]], dict[str, pa.Array]]:
    """Apply corrections and rules to the candidate rows: their changes, their output
    identifiers, and (in ``reason`` and ``added``) what they found."""
    n = table.num_rows
    policies = config.code_policies()
    ids = {c: table.column(c).combine_chunks() if n else pa.array([], pa.string())
           for c in OUTPUT_IDS}
    corrected = _corrected(applied, n, reason, added, policies)
    rows = np.flatnonzero(candidate & _has_rule_input(table, corrected))
    per_row: dict[int, list[Any]] = {}
    if len(rows):
        take = pa.array(rows)
        columns = {c: table.column(c).take(take).to_pylist() for c in
                   ("elements", "missing", "empty", "specific_character_set", "sop_class_uid",
                    *CONTEXT_COLUMNS.values())}
        cache: dict[RuleInput, RuleOutput] = {}
        generated = {k for k, how in config.required.items() if how == "generate"}
        for i, row in enumerate(rows.tolist()):
            lacking = set(columns["missing"][i] or ()) | set(columns["empty"][i] or ())
            obj = RuleInput(
                elements=tuple((e["tag"], e["vr"], e["value"]) for e in columns["elements"][i]
                               or ()),
                charset=columns["specific_character_set"][i],
                missing=tuple(columns["missing"][i] or ()),
                empty=tuple(columns["empty"][i] or ()),
                context=tuple((k, columns[c][i]) for k, c in CONTEXT_COLUMNS.items())
                if lacking & generated else (),
                corrections=tuple(corrected[row]) if corrected else (),
                sop_class=columns["sop_class_uid"][i])
            result = cache.get(obj)
            if result is None:
                result = cache[obj] = apply_rules(obj, config)
            for code, message, stops in result.problems:
                added.setdefault(row, []).append((code, message))
                if stops and reason[row] is None:
                    reason[row] = code
            per_row[row] = list(result.changes)  # a cached result is shared: copy
    for row, row_changes in enumerate(corrected):  # rows the rules did not see
        if row_changes and row not in per_row:
            per_row[row] = row_changes
    _changed_ids(ids, per_row)
    return per_row, ids


def _corrected(applied: Applied | None, n: int, reason: np.ndarray,
               added: dict[int, list[tuple[str, str]]],
               policies: dict[str, Policy]) -> list[list[Any]]:
    """Per row, the changes the corrections make ([] without corrections); what they found
    goes to ``added`` and, where it blocks, to ``reason``."""
    corrected: list[list[Any]] = [[] for _ in range(n)] if applied is not None else []
    if applied is None or not n:
        return corrected
    rows = zip(applied.changes.to_pylist(), applied.problems.to_pylist(), strict=True)
    for row, (row_changes, row_problems) in enumerate(rows):
        corrected[row] = [(c["tag"], c["keyword"], c["old"], c["new"], c["rule"])
                          for c in row_changes or []]
        for p in row_problems or []:
            added.setdefault(row, []).append((p["code"], p["message"]))
            if reason[row] is None and blocks(p["code"], policies):
                reason[row] = p["code"]
    return corrected


def _changed_ids(ids: dict[str, pa.Array], per_row: dict[int, list[Any]]) -> None:
    """The output identifier columns, with the values the changes give them."""
    for column, tag in OUTPUT_IDS.items():
        ids[column] = _with_changes(ids[column], per_row, tag)


def _with_changes(values: pa.Array, per_row: dict[int, list[Any]], tag: str) -> pa.Array:
    """``values`` (a column of one group) with the value each row's change of the top-level
    element ``tag`` gives it (the last change wins)."""
    updates = {row: c[3] for row, cs in per_row.items() for c in cs if c[0] == tag}
    if not updates:
        return values
    listed = values.to_pylist()
    for row, value in updates.items():
        listed[row] = value
    return pa.array(listed, pa.string())


CORRECTION_INPUT = ["study_instance_uid", "accession_number", "patient_id", "patient_name",
                    "issuer_of_patient_id", "patient_birth_date", "patient_sex"]
CONTEXT_COLUMNS = {"StudyInstanceUID": "study_instance_uid", "Modality": "modality",
                   "SeriesNumber": "series_number", "PatientID": "patient_id",
                   "AccessionNumber": "accession_number", "StudyDate": "study_date",
                   "StudyTime": "study_time", "SeriesInstanceUID": "series_instance_uid",
                   "SOPInstanceUID": "sop_instance_uid"}


def _has_rule_input(table: pa.Table, corrected: list[list[Any]]) -> np.ndarray:
    """Rows with anything for the rules to look at (most rows of a clean archive have not)."""
    n = table.num_rows
    mask = np.zeros(n, dtype=bool)
    for column in ("elements", "missing", "empty"):
        lengths = pc.fill_null(pc.list_value_length(table.column(column)), 0)
        mask |= np.asarray(lengths.to_numpy(zero_copy_only=False)) > 0
    if corrected:
        mask |= np.fromiter((bool(c) for c in corrected), dtype=bool, count=n)
    charset = table.column("specific_character_set")
    mask |= np.asarray(pc.is_valid(charset).to_numpy(zero_copy_only=False))
    return mask


def _changes_array(per_row: dict[int, list[Any]], n: int) -> pa.Array:
    """The changes column: a list of change structs per row (empty for most)."""
    lengths = np.zeros(n, dtype=np.int64)
    flat: list[dict[str, Any]] = []
    for row in sorted(per_row):
        lengths[row] = len(per_row[row])
        flat += [{"tag": t, "keyword": k, "old": o, "new": v, "rule": r}
                 for t, k, o, v, r in per_row[row]]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(flat, CHANGE))


def _take_or_null(values: pa.Array, indices: np.ndarray) -> pa.Array:
    """``values[indices]``, null where an index is negative."""
    return values.take(pa.array(np.maximum(indices, 0), mask=indices < 0))


def _first_blocking_code(problems: pa.ListArray, n: int,
                         policies: Mapping[str, str]) -> np.ndarray:
    """Per row, the first problem code that stops migration (None where there is none)."""
    reason = np.full(n, None, dtype=object)
    if n == 0 or len(problems.flatten()) == 0:
        return reason
    codes = problems.flatten().field("code")
    parents = pc.list_parent_indices(problems).to_numpy()
    blocking_codes = {c for c in CATALOGUE if blocks(c, policies)}
    blocking = pc.is_in(codes, pa.array(sorted(blocking_codes))).to_numpy(zero_copy_only=False)
    rows, first = np.unique(parents[blocking], return_index=True)
    reason[rows] = np.array(codes.filter(pa.array(blocking)).to_pylist(), dtype=object)[first]
    return reason


def _sanitized(values: pa.Array) -> pa.Array:
    """Values as path components, sanitized once per distinct value."""
    encoded = pc.dictionary_encode(values, null_encoding="encode")
    names = pa.array([sanitize_component(v) for v in encoded.dictionary.to_pylist()], pa.string())
    return names.take(encoded.indices)


def _outside_tree(sop_classes: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Per row: whether its IOD has no Patient entity (a Color Palette, a hanging protocol...),
    and the folder such an object goes to, ``_no_patient/<SOP class keyword>``."""
    encoded = pc.dictionary_encode(sop_classes, null_encoding="encode")
    classes = encoded.dictionary.to_pylist()
    flags = np.array([not iods.has_entity(c, "Patient") for c in classes], dtype=bool)
    folders = pa.array([f"{NO_PATIENT}/{sanitize_component(UID(c or '').keyword or c)}"
                        for c in classes], pa.string())
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    return (flags[indices] if len(classes) else np.zeros(len(sop_classes), dtype=bool),
            folders.take(encoded.indices))


def _output_paths(layout: Layout, ids: dict[str, pa.Array], extras: pa.ChunkedArray,
                  candidate: np.ndarray, sop_classes: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """The output paths of the candidate rows in ``layout`` (null elsewhere), from the output
    identifiers and the other output values (``extras``: STATE's ``layout_values``);
    ``_no_patient/<SOP class>/SOP.dcm``, in every layout, for objects whose IOD has no patient
    (their rows are the mask returned)."""
    n = len(candidate)
    rows = np.flatnonzero(candidate)
    if len(rows) == 0:
        return pa.nulls(n, pa.string()), np.zeros(n, dtype=bool)
    take = pa.array(rows)
    outside, folders = _outside_tree(sop_classes.take(take))
    joined = _uid_paths(ids, take, outside, folders) if layout.is_uids else \
        _pattern_paths(layout, ids, extras, take, outside, folders)
    position = np.full(n, -1, dtype=np.int64)
    position[rows] = np.arange(len(rows))
    mask = np.zeros(n, dtype=bool)
    mask[rows[outside]] = True
    return _take_or_null(joined, position), mask


def _uid_paths(ids: dict[str, pa.Array], take: pa.Array, outside: np.ndarray,
               folders: pa.Array, chunk: int = 500_000) -> pa.Array:
    """``P/ST/SE/SOP.dcm`` (the ``uids`` layout, column-wise) for the rows ``take``."""
    parts = [_sanitized(ids[c].take(take)) for c in
             ("patient_id", "study_instance_uid", "series_instance_uid")]
    sop_uids = ids["sop_instance_uid"].take(take)
    sop = pa.concat_arrays([  # every SOP UID is distinct: sanitized in chunks, bounded memory
        pa.array([sanitize_component(v) + ".dcm" for v in
                  sop_uids.slice(i, chunk).to_pylist()], pa.string())
        for i in range(0, len(sop_uids), chunk)])
    return pc.if_else(pa.array(outside), pc.binary_join_element_wise(folders, sop, "/"),
                      pc.binary_join_element_wise(*parts, sop, "/"))


def _pattern_paths(layout: Layout, ids: dict[str, pa.Array], extras: pa.ChunkedArray,
                   take: pa.Array, outside: np.ndarray, folders: pa.Array) -> pa.Array:
    """The paths of a pattern layout (:meth:`~migrate_fs.paths.Layout.render_many`) for the
    rows ``take``."""
    listed = (extras.combine_chunks() if isinstance(extras, pa.ChunkedArray) else extras) \
        .take(take).to_pylist()
    columns: dict[str, list[str | None]] = {
        name: [(v[i] if v is not None else None) for v in listed]
        for i, name in enumerate(layout_extras(layout))}
    for name in layout.fields:
        if name in _ID_FIELDS:
            columns[name] = ids[LAYOUT_COLUMNS[name][0]].take(take).to_pylist()
    inside = layout.render_many(columns, len(take))
    if outside.any():
        sops = ids["sop_instance_uid"].take(take).to_pylist()
        folder_names = folders.to_pylist()
        for i in np.flatnonzero(outside).tolist():
            inside[i] = f"{folder_names[i]}/{sanitize_component(sops[i])}.dcm"
    return pa.array(inside, pa.string())


def _later_copies(key: pa.ChunkedArray | pa.Array, rows: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(rows, kept rows): each of ``rows`` (in priority order) whose key an earlier one has."""
    if len(rows) < 2:
        return np.array([], dtype=np.int64), np.array([], dtype=np.int64)
    values = key.take(pa.array(rows))
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    indices = pc.dictionary_encode(values).indices.to_numpy(zero_copy_only=False)
    _, first, inverse = np.unique(indices, return_index=True, return_inverse=True)
    later = np.flatnonzero(first[inverse] != np.arange(len(rows)))
    return rows[later], rows[first[inverse[later]]]


def _concat_lists(first: pa.ListArray, second: pa.ListArray,
                  keep_nulls: bool = False) -> pa.Array:
    """Row by row, the entries of ``first`` then those of ``second`` (equal lengths). With
    ``keep_nulls``, ``first`` itself (nulls included) where ``second`` adds nothing anywhere."""
    extra = np.diff(second.offsets.to_numpy())
    if keep_nulls and not extra.any():
        return first
    offsets = first.offsets.to_numpy()
    offsets = offsets - offsets[0]
    lengths = np.diff(offsets)
    new_offsets = np.concatenate([[0], np.cumsum(lengths + extra)])
    old_values, new_values = first.flatten(), second.flatten()
    take = np.empty(new_offsets[-1], dtype=np.int64)
    parents = np.repeat(np.arange(len(lengths)), lengths)
    take[new_offsets[parents] + (np.arange(len(old_values)) - offsets[parents])] = \
        np.arange(len(old_values))
    second_offsets = second.offsets.to_numpy()
    second_offsets = second_offsets - second_offsets[0]
    parents = np.repeat(np.arange(len(extra)), extra)
    take[new_offsets[parents] + lengths[parents] + (np.arange(len(new_values))
                                                    - second_offsets[parents])] = \
        len(old_values) + np.arange(len(new_values))
    values = pa.concat_arrays([old_values, new_values]).take(pa.array(take))
    return pa.ListArray.from_arrays(pa.array(new_offsets, pa.int32()), values)
