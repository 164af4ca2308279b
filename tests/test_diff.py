"""``migrate-fs diff``: two plans of a real migration (the sample export) compared object by
object, checked against a plain-Python comparison of the two plans' rows."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import Migration

from migrate_fs.audit.diff import COMPARED, diff, diff_runs
from migrate_fs.cli.main import main

RULE_CODE = "invalid_date"  # the code rule date_format governs: quarantined by STRICT
STRICT = '[rules]\ndate_format = "quarantine"\n'


def planned(export: Path, manifests: Path, run: str) -> None:
    """Inventory and plan of ``export`` as run ``run``."""
    assert main(["inventory", str(export), "--run", run, "--manifests", str(manifests),
                 "--workers", "2", "--quiet"]) == 0
    assert main(["plan", "--run", run, "--manifests", str(manifests), "--workers", "1",
                 "--quiet"]) == 0


@pytest.fixture(scope="module")
def plans(sample_export: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run 'base' of the sample export (inventory and plan) and its trial plan 'strict'."""
    manifests = tmp_path_factory.mktemp("diff") / "m"
    planned(sample_export, manifests, "base")
    config = manifests.parent / "strict.toml"
    config.write_text(STRICT)
    assert main(["plan", "--run", "base", "--manifests", str(manifests), "--as", "strict",
                 "--config", str(config), "--workers", "1", "--quiet"]) == 0
    return manifests


def rows(folder: Path) -> dict[str, dict[str, Any]]:
    """A plan's rows by object_id, read with pyarrow as a user would."""
    return {r["object_id"]: r for r in pq.read_table(folder).to_pylist()}


def compared(row: dict[str, Any]) -> tuple[Any, ...]:
    """What diff compares, computed independently: the plain columns, the change entries, the
    problem codes in order."""
    return (row["action"], row["reason"], row["output_path"], row["output_transfer_syntax"],
            row["duplicate_of"], row["changes"] or [],
            [p["code"] for p in row["problems"] or []])


def expected(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> dict[str, set[str]]:
    return {"added": set(b) - set(a), "removed": set(a) - set(b),
            "changed": {i for i in set(a) & set(b) if compared(a[i]) != compared(b[i])}}


def found(path: Path) -> dict[str, set[str]]:
    table = pq.read_table(path).to_pylist()
    return {c: {r["object_id"] for r in table if r["change"] == c}
            for c in ("added", "removed", "changed")}


def json_diff(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["diff", *argv, "--json"]) == 0
    line, = capsys.readouterr().out.splitlines()  # one JSON object on one line
    summary = json.loads(line)
    assert summary["step"] == "diff"
    return summary


def test_a_trial_plan_differs_in_exactly_the_objects_its_rule_quarantines(
        plans: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base, strict = (rows(f) for f in (plans / "base" / "plan",
                                      plans / "base" / "trials" / "strict" / "plan"))
    with_code = {i for i, r in base.items()
                 if RULE_CODE in [p["code"] for p in r["problems"] or []]}
    want = expected(base, strict)
    assert with_code and want["changed"] == with_code
    assert not want["added"] and not want["removed"]

    capsys.readouterr()
    assert main(["diff", "base", "base:strict", "--manifests", str(plans)]) == 0
    out = capsys.readouterr().out
    path = plans / "base" / "diff" / "base__base@strict.parquet"
    assert found(path) == want
    assert f"added 0, removed 0, changed {len(with_code)}, unchanged {len(base) - len(with_code)}" \
        in out
    assert f"{len(with_code)}  migrate -> quarantine  - -> {RULE_CODE}" in out
    assert str(path) in out
    for row in pq.read_table(path).to_pylist():  # each side's values are its plan's
        a, b = base[row["object_id"]], strict[row["object_id"]]
        assert row["locator"] == a["locator"] and row["locator"] in out
        for column in ("action", "reason", "output_path", "duplicate_of"):
            assert (row[f"{column}_a"], row[f"{column}_b"]) == (a[column], b[column])
        assert (row["action_b"], row["reason_b"]) == ("quarantine", RULE_CODE)
        assert row["problems_a"] == ", ".join(p["code"] for p in a["problems"])
        assert {"action", "reason", "output_path", "changes"} <= set(row["columns_changed"])
        dropped = [c for c in a["changes"] if c not in b["changes"]]  # the dates not fixed
        assert dropped and all(c["rule"] == "date_format" for c in dropped)
        assert all(f"{c['keyword']} '{c['old']}' -> '{c['new']}' (date_format)"
                   in row["changes_a"] for c in dropped)

    summary = json_diff(capsys, "base", "base:strict", "--manifests", str(plans), "--limit", "2")
    assert (summary["added"], summary["removed"], summary["changed"]) == (0, 0, len(with_code))
    assert summary["changed_by_decision"] == [
        {"action_a": "migrate", "action_b": "quarantine", "reason_a": None,
         "reason_b": RULE_CODE, "objects": len(with_code)}]
    assert summary["a"]["objects"] == summary["b"]["objects"] == len(base)
    assert [r["object_id"] for r in summary["first_changed"]] == \
        [r["object_id"] for r in pq.read_table(path).to_pylist()[:2]]


def test_two_runs_of_an_export_differ_in_the_files_removed_and_added(
        sample_export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export, manifests = tmp_path / "export", tmp_path / "m"
    shutil.copytree(sample_export, export)
    planned(export, manifests, "before")
    before = rows(manifests / "before" / "plan")
    plain = sorted((r["locator"], i) for i, r in before.items() if r["action"] == "migrate"
                   and r["duplicate_group"] is None
                   and not any(o["duplicate_of"] == i for o in before.values()))
    removed = plain[:2]
    for locator, _ in removed:
        Path(locator).unlink()
    (export / "added").mkdir()
    (export / "added" / "notes.txt").write_text("not a DICOM file\n")
    planned(export, manifests, "after")
    after = rows(manifests / "after" / "plan")

    want = expected(before, after)
    assert want["removed"] == {i for _, i in removed}
    assert [after[i]["locator"] for i in want["added"]] == [str(export / "added" / "notes.txt")]
    summary = json_diff(capsys, "before", "after", "--manifests", str(manifests))
    assert (summary["added"], summary["removed"], summary["changed"]) == (1, 2,
                                                                          len(want["changed"]))
    path = manifests / "after" / "diff" / "before__after.parquet"
    assert summary["diff"] == str(path) and found(path) == want
    by_change = {r["change"]: r for r in pq.read_table(path).to_pylist()}
    assert (by_change["added"]["action_a"], by_change["added"]["action_b"],
            by_change["added"]["reason_b"]) == (None, "quarantine", "not_dicom")
    assert (by_change["removed"]["action_a"], by_change["removed"]["action_b"]) == \
        ("migrate", None)
    assert by_change["added"]["columns_changed"] == []


def test_a_plan_diffed_with_itself_or_reordered_shows_nothing(
        plans: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summary = json_diff(capsys, "base", "base", "--manifests", str(plans))
    assert (summary["added"], summary["removed"], summary["changed"]) == (0, 0, 0)
    assert summary["unchanged"] == summary["a"]["objects"] > 0
    assert pq.read_table(summary["diff"]).num_rows == 0

    # the same rows in other parts, in another order: still the same plan
    table = pq.read_table(plans / "base" / "plan")
    order = list(range(table.num_rows))
    random.Random(1).shuffle(order)
    shuffled = table.take(pa.array(order))
    folder = plans / "base" / "trials" / "shuffled" / "plan"
    folder.mkdir(parents=True)
    for k, start in enumerate(range(0, table.num_rows, 17)):
        pq.write_table(shuffled.slice(start, 17), folder / f"part-{k:03d}.parquet")
    (folder / ".part-999.parquet.tmp").write_bytes(b"a part being written")  # never read
    summary = json_diff(capsys, "base", "base:shuffled", "--manifests", str(plans))
    assert (summary["added"], summary["removed"], summary["changed"]) == (0, 0, 0)
    running = folder.parent / ".plan.running"  # as a plan that did not finish leaves it
    running.touch()
    assert main(["diff", "base", "base:shuffled", "--manifests", str(plans)]) == 0
    assert f"the plan in {folder} is being written" in capsys.readouterr().err
    running.unlink()

    # and changed rows among them are found wherever they land (a null that gets a value too)
    moved = shuffled.to_pylist()
    clean = next(i for i in range(34, 51) if moved[i]["reason"] is None)
    other = next(i for i in range(34, 51) if i != clean)
    moved[clean]["reason"] = "uid_conflict"
    moved[other]["output_path"] = "elsewhere.dcm"
    pq.write_table(pa.Table.from_pylist(moved[34:51], schema=table.schema),
                   folder / "part-002.parquet")
    summary = json_diff(capsys, "base", "base:shuffled", "--manifests", str(plans))
    assert (summary["changed"], summary["columns_changed"]) == (2, {"output_path": 1,
                                                                    "reason": 1})
    first = {r["object_id"]: r for r in summary["first_changed"]}
    assert (first[moved[clean]["object_id"]]["reason_a"],
            first[moved[clean]["object_id"]]["reason_b"]) == (None, "uid_conflict")
    assert first[moved[other]["object_id"]]["output_path_b"] == "elsewhere.dcm"


def test_parts_of_an_older_release_without_a_column_are_read(
        plans: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A part without a compared column (written before the column existed) reads as null,
    and a missing list as an empty one; parts with other columns read side by side."""
    table = pq.read_table(plans / "base" / "plan")
    half = table.num_rows // 2
    rest = table.slice(half).to_pylist()
    folder = plans / "base" / "trials" / "older" / "plan"
    folder.mkdir(parents=True)
    pq.write_table(table.slice(0, half), folder / "part-0.parquet")
    for k, keep in enumerate((lambda r: not r["changes"], lambda r: bool(r["changes"]))):
        part = pa.Table.from_pylist([r for r in rest if keep(r)], schema=table.schema)
        gone = ["output_transfer_syntax", "changes"] if k == 0 else ["output_transfer_syntax"]
        pq.write_table(part.drop_columns(gone), folder / f"part-{k + 1}.parquet")
    assert pq.read_schema(folder / "part-1.parquet").get_field_index("changes") == -1
    lost = {r["object_id"] for r in rest if r["output_transfer_syntax"] is not None}
    summary = json_diff(capsys, "base", "base:older", "--manifests", str(plans))
    assert lost and (summary["added"], summary["removed"]) == (0, 0)
    assert (summary["changed"], summary["columns_changed"]) == (
        len(lost), {"output_transfer_syntax": len(lost)})
    assert found(Path(summary["diff"]))["changed"] == lost


def test_the_parquet_file_holds_the_rows_of_the_dataframe(
        plans: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folders = plans / "base" / "plan", plans / "base" / "trials" / "strict" / "plan"
    out = plans / "library.parquet"
    frame = diff(*folders, out)
    assert list(frame.columns) == ["object_id", "locator", "change", *(
        f"{c}_{s}" for c in COMPARED["plan"] for s in "ab"), "columns_changed"]
    assert len(frame) > 0
    summary = json_diff(capsys, "base", "base:strict", "--manifests", str(plans))

    def plain(df: pd.DataFrame) -> list[dict[str, Any]]:  # missing values as None
        return [{k: list(v) if k == "columns_changed" else None if pd.isna(v) else v
                 for k, v in r.items()} for r in df.to_dict("records")]

    assert plain(pd.read_parquet(out)) == plain(frame) == plain(pd.read_parquet(summary["diff"]))
    assert plain(diff(*folders, limit=3)) == plain(frame)[:3]
    # by run names, as the command takes them
    assert plain(diff_runs("base", "base:strict", manifests=plans)) == plain(frame)


def test_results_differ_in_the_bytes_written(sample_migration: Migration, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """--stage result compares the results: status and output_sha256 too."""
    manifests = tmp_path / "m"
    for run in ("t", "u"):
        shutil.copytree(sample_migration.manifests / sample_migration.run, manifests / run)
    result = manifests / "u" / "result"
    part = sorted(result.glob("*.parquet"))[0]
    table = pq.read_table(part).to_pylist()
    written = next(r for r in table if r["status"] == "written")
    written["output_sha256"] = "0" * 64
    pq.write_table(pa.Table.from_pylist(table, schema=pq.read_schema(part)), part)
    summary = json_diff(capsys, "t", "u", "--stage", "result", "--manifests", str(manifests))
    assert (summary["added"], summary["removed"], summary["changed"]) == (0, 0, 1)
    assert summary["columns_changed"] == {"output_sha256": 1}
    assert summary["diff"] == str(manifests / "u" / "diff" / "t__u.result.parquet")
    row = summary["first_changed"][0]
    assert (row["object_id"], row["output_sha256_b"], row["status_a"], row["status_b"]) == (
        written["object_id"], "0" * 64, "written", "written")
    plans = json_diff(capsys, "t", "u", "--manifests", str(manifests))  # the plans are equal
    assert (plans["changed"], plans["diff"]) == (0, str(manifests / "u" / "diff" /
                                                          "t__u.parquet"))


def test_a_missing_run_or_plan_is_a_one_line_error(
        plans: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = str(plans)
    cases = {
        ("nosuchrun", "base"): ["no run 'nosuchrun'", str(plans / "nosuchrun"),
                                "migrate-fs inventory"],
        ("base", "base:lenient"): ["no trial plan 'lenient' of run 'base'",
                                   str(plans / "base" / "trials" / "lenient" / "plan"),
                                   "its trial plans: ", "strict",
                                   "migrate-fs plan --run base --as lenient"],
        ("base", "base", "--stage", "result"): ["no result for run 'base'",
                                                str(plans / "base" / "result"),
                                                "migrate-fs write --run base"],
    }
    for argv, words in cases.items():
        capsys.readouterr()
        assert main(["diff", *argv, "--manifests", m]) == 1, argv
        captured = capsys.readouterr()
        assert captured.out == "" and len(captured.err.strip().splitlines()) == 1, captured
        assert all(w in captured.err for w in words), (words, captured.err)
    assert main(["diff", "base", "base:strict", "--stage", "result", "--manifests", m]) == 2
    assert "trial plan has no result" in capsys.readouterr().err
    assert not (plans / "nosuchrun").exists()
