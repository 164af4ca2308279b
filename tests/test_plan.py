"""plan: actions and reasons, decided the same way whatever order the inventory came in."""

from __future__ import annotations

import random
from typing import Any

import pyarrow as pa

from migrate_fs.config import parse_config
from migrate_fs.manifest import SCHEMAS
from migrate_fs.plan import make_plan as decide_run
from migrate_fs.plan.hashes import Digest


def plan_table(inventory: pa.Table, *args: Any, **kwargs: Any) -> pa.Table:
    """The plan table of an inventory table, as the plan manifest holds it."""
    return decide_run(inventory, *args, **kwargs).table(inventory)


def contents(by_locator: dict[str, str]):
    """A content hasher for objects that exist only as inventory rows: ``by_locator`` gives
    each object's content label (objects not listed have content of their own)."""
    def hashes(rows: list[dict]) -> dict[str, Digest]:
        return {r["object_id"]: Digest(by_locator.get(r["locator"], r["locator"]), "pixels",
                                       {"(0010,0010)": by_locator.get(r["locator"], "x")})
                for r in rows}
    return hashes


def inventory(rows: list[dict]) -> pa.Table:
    base = {"kind": "part10", "size": 10, "mtime_ns": 1, "transfer_syntax": "1.2.840.10008.1.2",
            "sop_class_uid": "1.2.840.10008.5.1.4.1.1.7", "study_instance_uid": "1.2.3",
            "series_instance_uid": "1.2.3.4", "patient_id": "P1", "problems": []}
    full = [{**base, "object_id": f"id{r['locator']}", **r} for r in rows]
    return pa.Table.from_pylist(full, schema=SCHEMAS["inventory"])


def by_locator(plan: pa.Table) -> dict[str, dict]:
    return {r["locator"]: r for r in plan.to_pylist()}


def test_first_copy_by_locator_order_is_kept_whatever_the_input_order() -> None:
    rows = [{"locator": f"/x/{c}", "sop_instance_uid": "1.2.3.4.5"} for c in "dbca"]
    rows.append({"locator": "/x/e", "sop_instance_uid": "1.2.3.4.6"})
    plans = []
    for seed in range(5):
        random.Random(seed).shuffle(rows)
        plans.append(by_locator(plan_table(inventory(rows), hashes=contents(
            {f"/x/{c}": "same" for c in "abcd"}))))
    assert all(p == plans[0] for p in plans)
    plan = plans[0]
    assert plan["/x/a"]["action"] == "migrate" and plan["/x/e"]["action"] == "migrate"
    for c in "bcd":
        assert plan[f"/x/{c}"]["action"] == "skip_duplicate"
        assert plan[f"/x/{c}"]["reason"] == "duplicate"
        assert plan[f"/x/{c}"]["duplicate_of"] == "id/x/a"
        assert plan[f"/x/{c}"]["output_path"] is None


def test_actions_follow_problem_severity() -> None:
    plan = by_locator(plan_table(inventory([
        {"locator": "/a", "sop_instance_uid": "1.1", "problems": [
            {"code": "missing_file_meta", "message": "raw"}]},
        {"locator": "/b", "kind": "not_dicom", "problems": [{"code": "not_dicom", "message": ""}]},
        {"locator": "/c", "kind": "dicomdir", "problems": [{"code": "dicomdir", "message": ""}]},
        {"locator": "/d", "sop_instance_uid": "1.2", "transfer_syntax": "1.2.840.10008.1.2.4.90"},
    ])))
    assert (plan["/a"]["action"], plan["/a"]["reason"]) == ("migrate", None)
    assert plan["/a"]["output_transfer_syntax"] == "1.2.840.10008.1.2.1"
    assert (plan["/b"]["action"], plan["/b"]["reason"]) == ("quarantine", "not_dicom")
    assert (plan["/c"]["action"], plan["/c"]["reason"]) == ("skip", "dicomdir")
    assert plan["/d"]["output_transfer_syntax"] == "1.2.840.10008.1.2.4.90"
    assert plan["/a"]["output_path"] == "P1/1.2.3/1.2.3.4/1.1.dcm"


def test_paths_differing_only_in_case_are_not_both_migrated() -> None:
    plan = by_locator(plan_table(inventory([
        {"locator": "/a", "sop_instance_uid": "1.2.A"},
        {"locator": "/b", "sop_instance_uid": "1.2.a"},
    ])))
    assert plan["/a"]["action"] == "migrate"
    assert (plan["/b"]["action"], plan["/b"]["reason"]) == ("quarantine", "output_path_collision")


def test_empty_inventory_gives_empty_plan() -> None:
    assert plan_table(inventory([])).num_rows == 0


def test_same_uid_with_different_content_is_a_conflict_decided_by_policy() -> None:
    rows = inventory([{"locator": f"/x/{c}", "sop_instance_uid": "1.9", "mtime_ns": t}
                      for c, t in (("a", 5), ("b", 9), ("c", 1))])
    hashes = contents({"/x/a": "one", "/x/b": "two", "/x/c": "one"})
    plan = by_locator(plan_table(rows, hashes=hashes))
    assert {r["reason"] for r in plan.values()} == {"uid_conflict"}
    assert {r["action"] for r in plan.values()} == {"quarantine"}
    assert plan["/x/b"]["differs"] == ["PatientName"]
    assert plan["/x/a"]["duplicate_group"] == "1.9"
    newest = by_locator(plan_table(rows, parse_config({"duplicates": {
        "conflict": "keep_newest_file"}}), hashes=hashes))
    assert newest["/x/b"]["action"] == "migrate"
    assert newest["/x/a"]["reason"] == newest["/x/c"]["reason"] == "uid_conflict"
    keep_all = by_locator(plan_table(rows, parse_config({"duplicates": {"conflict": "keep_all"}}),
                                    hashes=hashes))
    assert keep_all["/x/b"]["action"] == "migrate"
    assert keep_all["/x/b"]["output_sop_instance_uid"] != "1.9"
    assert keep_all["/x/c"]["action"] == "skip_duplicate"  # an identical copy of a


def test_existing_problems_are_kept_when_a_duplicate_is_added() -> None:
    plan = by_locator(plan_table(inventory([
        {"locator": "/a", "sop_instance_uid": "1.1", "problems": [
            {"code": "missing_file_meta", "message": "raw"}]},
        {"locator": "/b", "sop_instance_uid": "1.1", "problems": [
            {"code": "transfer_syntax_mismatch", "message": "lies"}]},
        {"locator": "/c", "sop_instance_uid": "1.2", "patient_id": None},
        {"locator": "/d", "sop_instance_uid": "1.3", "patient_id": None},
    ]), parse_config({"required": {"PatientID": "warn"}}),
        hashes=contents({"/a": "same", "/b": "same"})))
    assert [p["code"] for p in plan["/a"]["problems"]] == ["missing_file_meta"]
    assert [p["code"] for p in plan["/b"]["problems"]] == ["transfer_syntax_mismatch",
                                                           "duplicate"]
    assert plan["/c"]["output_path"].split("/")[0] == plan["/d"]["output_path"].split("/")[0]
    assert plan["/c"]["output_path"].startswith("_empty~")
