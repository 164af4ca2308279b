"""plan: decide, for every object of the run at once, what will happen to it and why.

The plan is a whole-run computation over the inventory table: an action per object
(``migrate``, ``quarantine`` or ``skip``) with the reason code, the output path, the output
transfer syntax, and which kept object a duplicate loses to. Ties are broken by locator order, so
the same inventory always gives the same plan, whatever order the workers finished in.

It is written column-wise with pyarrow and numpy, so that a plan over 10^7 objects takes seconds:
Python-level work is done once per distinct patient, study and series value, not per object.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from migrate_fs.manifest import CHANGE, PROBLEM
from migrate_fs.paths import sanitize_component
from migrate_fs.problems import CATALOGUE

NATIVE_SYNTAXES = [ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian,
                   DeflatedExplicitVRLittleEndian]
BLOCKING = pa.array(sorted(c for c, code in CATALOGUE.items() if code.severity != "warning"))
SKIPPING = pa.array(sorted(c for c, code in CATALOGUE.items() if code.severity == "skip"))


def output_transfer_syntax(source_syntax: str) -> str:
    """Native encodings become explicit VR little endian; encapsulated ones are kept."""
    return ExplicitVRLittleEndian if source_syntax in NATIVE_SYNTAXES else source_syntax


# The inventory columns the decisions need: the plan reads only these for the whole run.
DECISION_INPUT = ["object_id", "locator", "size", "problems", "patient_id",
                  "study_instance_uid", "series_instance_uid", "sop_instance_uid",
                  "transfer_syntax"]
DECISIONS = ["problems", "action", "reason", "output_path", "output_transfer_syntax",
             "duplicate_of", "changes"]


def make_plan(inventory: pa.Table) -> pa.Table:
    """The plan table: the inventory's columns plus action, reason, output path and more."""
    return attach(inventory, decide(inventory.select(DECISION_INPUT)))


def attach(inventory: pa.Table, decided: pa.Table) -> pa.Table:
    """Inventory rows with their decisions (``decided`` is row for row the same objects)."""
    table = inventory.set_column(inventory.schema.get_field_index("problems"), "problems",
                                 decided.column("problems"))
    for name in DECISIONS[1:]:
        table = table.append_column(name, decided.column(name))
    return table


def decide(table: pa.Table) -> pa.Table:
    """The decision columns (see DECISIONS) for each row of ``table``, in the same row order.

    "First" (of duplicates) means first in locator order, whatever order the rows come in.
    """
    n = table.num_rows
    problems = table.column("problems").combine_chunks() if n else pa.array([], pa.list_(PROBLEM))
    order = pc.sort_indices(table.column("locator")).to_numpy()
    reason = _first_blocking_code(problems, n)
    candidate = np.fromiter((r is None for r in reason), dtype=bool, count=n)
    path = _output_paths(table, candidate)
    object_id = table.column("object_id").combine_chunks()
    duplicate_of = np.full(n, -1, dtype=np.int64)
    added: dict[int, tuple[str, str]] = {}
    for code, what, key in (
            ("duplicate_sop_instance_uid", "same SOPInstanceUID as",
             table.column("sop_instance_uid")),
            ("output_path_collision", "output path differs only in letter case from that of",
             pc.utf8_lower(path))):
        later, kept = _later_copies(key, order[candidate[order]])
        reason[later] = code
        candidate[later] = False
        duplicate_of[later] = kept
        for row, kept_id in zip(later.tolist(), object_id.take(pa.array(kept)).to_pylist()):
            added[row] = (code, f"{what} object {kept_id}")
    reasons = pa.array(reason, pa.string())
    keep = pa.array(candidate)
    ts = table.column("transfer_syntax").combine_chunks() if n else pa.array([], pa.string())
    out_ts = pc.if_else(pc.is_in(ts, pa.array(NATIVE_SYNTAXES)), ExplicitVRLittleEndian, ts)
    return pa.table({
        "problems": _append_problems(problems, added),
        "action": pc.if_else(pc.is_null(reasons), "migrate",
                             pc.if_else(pc.is_in(reasons, SKIPPING), "skip", "quarantine")),
        "reason": reasons,
        "output_path": pc.if_else(keep, path, pa.scalar(None, pa.string())),
        "output_transfer_syntax": pc.if_else(keep, out_ts, pa.scalar(None, pa.string())),
        "duplicate_of": _take_or_null(object_id, duplicate_of),
        "changes": pa.array([[]] * n, pa.list_(CHANGE)),
    })


def _take_or_null(values: pa.Array, indices: np.ndarray) -> pa.Array:
    """``values[indices]``, null where an index is negative."""
    return values.take(pa.array(np.maximum(indices, 0), mask=indices < 0))


def _first_blocking_code(problems: pa.ListArray, n: int) -> np.ndarray:
    """Per row, the first problem code that stops migration (None where there is none)."""
    reason = np.full(n, None, dtype=object)
    if n == 0 or len(problems.flatten()) == 0:
        return reason
    codes = problems.flatten().field("code")
    parents = pc.list_parent_indices(problems).to_numpy()
    blocking = pc.is_in(codes, BLOCKING).to_numpy(zero_copy_only=False)
    rows, first = np.unique(parents[blocking], return_index=True)
    reason[rows] = np.array(codes.filter(pa.array(blocking)).to_pylist(), dtype=object)[first]
    return reason


def _sanitized(values: pa.Array) -> pa.Array:
    """Values as path components, sanitized once per distinct value."""
    encoded = pc.dictionary_encode(values, null_encoding="encode")
    names = pa.array([sanitize_component(v) for v in encoded.dictionary.to_pylist()], pa.string())
    return names.take(encoded.indices)


def _output_paths(table: pa.Table, candidate: np.ndarray, chunk: int = 500_000) -> pa.Array:
    """``P/ST/SE/SOP.dcm`` for the candidate rows (null elsewhere)."""
    n = table.num_rows
    rows = np.flatnonzero(candidate)
    if len(rows) == 0:
        return pa.nulls(n, pa.string())
    take = pa.array(rows)
    parts = [_sanitized(table.column(c).take(take).combine_chunks()) for c in
             ("patient_id", "study_instance_uid", "series_instance_uid")]
    sop_uids = table.column("sop_instance_uid").take(take).combine_chunks()
    sop = pa.concat_arrays([  # every SOP UID is distinct: sanitized in chunks, bounded memory
        pa.array([sanitize_component(v) + ".dcm" for v in
                  sop_uids.slice(i, chunk).to_pylist()], pa.string())
        for i in range(0, len(sop_uids), chunk)])
    joined = pc.binary_join_element_wise(*parts, sop, "/")
    position = np.full(n, -1, dtype=np.int64)
    position[rows] = np.arange(len(rows))
    return _take_or_null(joined, position)


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


def _append_problems(problems: pa.ListArray, added: dict[int, tuple[str, str]]) -> pa.Array:
    """``problems`` with one more entry at the end of each row listed in ``added``."""
    if not added:
        return problems
    offsets = problems.offsets.to_numpy()
    offsets = offsets - offsets[0]
    lengths = np.diff(offsets)
    extra = np.zeros(len(lengths), dtype=np.int64)
    rows = np.array(sorted(added))
    extra[rows] = 1
    new_offsets = np.concatenate([[0], np.cumsum(lengths + extra)])
    old_values = problems.flatten()
    # Where each old value and each added value goes in the new flat values.
    parents = np.repeat(np.arange(len(lengths)), lengths)
    take = np.empty(new_offsets[-1], dtype=np.int64)
    take[new_offsets[parents] + (np.arange(len(old_values)) - offsets[parents])] = \
        np.arange(len(old_values))
    take[new_offsets[rows] + lengths[rows]] = len(old_values) + np.arange(len(rows))
    new_values = pa.array([{"code": added[r][0], "message": added[r][1]} for r in rows], PROBLEM)
    values = pa.concat_arrays([old_values, new_values]).take(pa.array(take))
    return pa.ListArray.from_arrays(pa.array(new_offsets, pa.int32()), values)


def count_by(table: pa.Table, keys: list[str]) -> list[tuple[tuple[str | None, ...], int]]:
    """Row counts grouped by ``keys``, most frequent first."""
    if table.num_rows == 0:
        return []
    grouped = table.group_by(keys).aggregate([([], "count_all")])
    rows = grouped.to_pylist()
    rows.sort(key=lambda r: (-r["count_all"], tuple(str(r[k]) for k in keys)))
    return [(tuple(r[k] for k in keys), r["count_all"]) for r in rows]
