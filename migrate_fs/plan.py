"""plan: decide, for every object of the run at once, what will happen to it and why.

The plan is a whole-run computation over the inventory table: an action per object
(``migrate``, ``quarantine`` or ``skip``) with the reason code, the output path, the output
transfer syntax, and which kept object a duplicate loses to. Ties are broken by locator order, so
the same inventory always gives the same plan, whatever the order the workers finished in.
"""

from __future__ import annotations

import pyarrow as pa
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from migrate_fs.manifest import CHANGE
from migrate_fs.paths import output_relpath
from migrate_fs.problems import CATALOGUE, first_blocking

NATIVE_SYNTAXES = {ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian,
                   DeflatedExplicitVRLittleEndian}
ACTION_BY_SEVERITY = {"error": "quarantine", "skip": "skip"}


def output_transfer_syntax(source_syntax: str) -> str:
    """Native encodings become explicit VR little endian; encapsulated ones are kept."""
    return ExplicitVRLittleEndian if source_syntax in NATIVE_SYNTAXES else source_syntax


def make_plan(inventory: pa.Table) -> pa.Table:
    """The plan table: the inventory's columns plus action, reason, output path and more."""
    table = inventory.sort_by([("locator", "ascending")])
    columns = {name: table.column(name).to_pylist() for name in
               ("object_id", "problems", "patient_id", "study_instance_uid",
                "series_instance_uid", "sop_instance_uid", "transfer_syntax")}
    n = table.num_rows
    action: list[str] = [""] * n
    reason: list[str | None] = [None] * n
    output_path: list[str | None] = [None] * n
    output_ts: list[str | None] = [None] * n
    duplicate_of: list[str | None] = [None] * n
    kept_by_uid: dict[str, str] = {}
    kept_by_path: dict[str, str] = {}
    for i in range(n):
        problems = columns["problems"][i] = columns["problems"][i] or []
        code = first_blocking(problems)
        if code is None:
            sop_uid = columns["sop_instance_uid"][i]
            path = output_relpath(columns["patient_id"][i], columns["study_instance_uid"][i],
                                  columns["series_instance_uid"][i], sop_uid)
            folded = path.casefold()
            if sop_uid in kept_by_uid:
                code, duplicate_of[i] = "duplicate_sop_instance_uid", kept_by_uid[sop_uid]
                problems.append({"code": code, "message": f"same SOPInstanceUID as object "
                                                          f"{kept_by_uid[sop_uid]}"})
            elif folded in kept_by_path:
                code, duplicate_of[i] = "output_path_collision", kept_by_path[folded]
                problems.append({"code": code, "message": f"output path {path} collides with "
                                                          f"object {kept_by_path[folded]}"})
            else:
                kept_by_uid[sop_uid] = kept_by_path[folded] = columns["object_id"][i]
                output_path[i] = path
                output_ts[i] = output_transfer_syntax(columns["transfer_syntax"][i])
        if code is None:
            action[i] = "migrate"
        else:
            action[i], reason[i] = ACTION_BY_SEVERITY[CATALOGUE[code].severity], code
    table = table.set_column(table.schema.get_field_index("problems"), "problems",
                             pa.array(columns["problems"], table.schema.field("problems").type))
    for name, values in (("action", action), ("reason", reason), ("output_path", output_path),
                         ("output_transfer_syntax", output_ts), ("duplicate_of", duplicate_of)):
        table = table.append_column(name, pa.array(values, pa.string()))
    return table.append_column("changes", pa.array([[]] * n, pa.list_(CHANGE)))


def count_by(table: pa.Table, keys: list[str]) -> list[tuple[tuple[str | None, ...], int]]:
    """Row counts grouped by ``keys``, most frequent first."""
    if table.num_rows == 0:
        return []
    grouped = table.group_by(keys).aggregate([([], "count_all")])
    rows = grouped.to_pylist()
    rows.sort(key=lambda r: (-r["count_all"], tuple(str(r[k]) for k in keys)))
    return [(tuple(r[k] for k in keys), r["count_all"]) for r in rows]

