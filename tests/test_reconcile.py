"""migrate-fs reconcile, end to end: real runs of the sample export against legacy database
exports built from their plan manifest (the reference counts are computed here, in plain
Python, from the plan rows) and then perturbed as a real database export differs."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pv
import pyarrow.parquet as pq
import pytest
from conftest import Migration

from migrate_fs.cli.main import main
from migrate_fs.sample_export import make_sample_export

KEYWORDS = {"study_instance_uid": "StudyInstanceUID", "accession_number": "AccessionNumber",
            "patient_id": "PatientID", "instances": "NumberOfStudyRelatedInstances",
            "series": "NumberOfStudyRelatedSeries", "modalities": "ModalitiesInStudy"}
SNAKE = {"study_instance_uid": "study_instance_uid", "accession_number": "Accession_Number",
         "patient_id": "patient_id", "instances": "expected_instances", "series": "series",
         "modalities": "modality"}


def reference(migration: Migration) -> dict[str, dict[str, Any]]:
    """Per stored StudyInstanceUID, from the plan rows: what a faithful legacy database says
    (the objects migrated or quarantined, once each), and how many were quarantined."""
    studies: dict[str, dict[str, Any]] = defaultdict(lambda: {
        "instances": 0, "series": set(), "modalities": set(), "quarantined": 0})
    for row in migration.stage("plan"):
        if row["study_instance_uid"] is None or row["action"] not in ("migrate", "quarantine"):
            continue
        study = studies[row["study_instance_uid"]]
        study.update(accession_number=row["accession_number"], patient_id=row["patient_id"])
        study["instances"] += 1
        study["quarantined"] += row["action"] == "quarantine"
        study["series"].add(row["series_instance_uid"])
        study["modalities"].add(row["modality"])
    return dict(studies)


def export_rows(studies: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The database's rows: modalities lower-cased in another order, as databases write them."""
    return [{"study_instance_uid": uid, "accession_number": s["accession_number"],
             "patient_id": s["patient_id"], "instances": s["instances"],
             "series": len(s["series"] - {None}),
             "modalities": "\\".join(sorted((m for m in s["modalities"] if m), reverse=True)
                                     ).lower()}
            for uid, s in sorted(studies.items())]


def write_export(rows: list[dict[str, Any]], path: Path, names: dict[str, str] = KEYWORDS,
                 counts: pa.DataType | None = None) -> Path:
    """The rows as CSV or Parquet (by suffix), columns named by ``names``; counts as
    ``counts`` (strings, as a CSV holds them, or integers)."""
    counts = counts or pa.string()
    types = {"instances": counts, "series": counts}
    table = pa.table({names[c]: pa.array([None if r[c] is None else
                                          (str(r[c]) if types.get(c) == pa.string() else r[c])
                                          for r in rows], types.get(c, pa.string()))
                      for c in KEYWORDS})
    if path.suffix == ".csv":
        pv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return path


def reconcile(migration: Migration, expected: Path, *extra: str) -> int:
    return main(["reconcile", "--run", migration.run, "--manifests", str(migration.manifests),
                 "--expected", str(expected), *extra])


def studies_table(migration: Migration) -> list[dict[str, Any]]:
    path = migration.manifests / migration.run / "reconcile" / "studies.parquet"
    return pq.read_table(path).to_pylist()


def by_status(rows: list[dict[str, Any]]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        found[row["status"]].add(row["study_instance_uid"])
    return dict(found)


@pytest.fixture(scope="module")
def migration(sample_export: Path, tmp_path_factory: pytest.TempPathFactory) -> Migration:
    """A run of its own: reconcile writes into the run's folder."""
    done = Migration(sample_export, tmp_path_factory.mktemp("reconcile_run"))
    assert done.exit_code == 0
    return done


@pytest.fixture(scope="module")
def perturbed(migration: Migration) -> dict[str, Any]:
    """The database export of the run, perturbed: which studies must come out how."""
    studies = reference(migration)
    incomplete = {uid for uid, s in studies.items() if s["quarantined"]}
    clean = sorted(uid for uid, s in studies.items() if not s["quarantined"])
    assert len(incomplete) >= 2 and len(clean) >= 8  # the sample export has both kinds
    rows = {r["study_instance_uid"]: r for r in export_rows(studies)}
    removed, changed, by_accession, series = clean[0:2], clean[2:4], clean[4], clean[5]
    for uid in removed:
        del rows[uid]
    rows[changed[0]]["instances"] += 1
    rows[changed[1]]["instances"] -= 1
    rows[series]["series"] += 1
    rows[by_accession]["study_instance_uid"] = None
    added = ["2.25.1000000000000000000001", "2.25.1000000000000000000002"]
    listed = list(rows.values()) + [
        {"study_instance_uid": uid, "accession_number": f"X{i}", "patient_id": "P404",
         "instances": 5, "series": None, "modalities": "CT"} for i, uid in enumerate(added)]
    return {"rows": listed, "studies": studies, "orphan": set(removed), "missing": set(added),
            "count_mismatch": {*changed, series}, "incomplete": incomplete,
            "by_accession": by_accession}


VARIANTS = {  # the same export as a user may get it from the database
    "csv": lambda rows, tmp: write_export(rows, tmp / "legacy.csv"),
    "parquet": lambda rows, tmp: write_export(rows, tmp / "legacy.parquet"),
    "parquet, snake_case names, integer counts": lambda rows, tmp: write_export(
        rows, tmp / "legacy_db.pq", SNAKE, pa.int64()),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_difference_is_found_and_nothing_else(variant, migration, perturbed, tmp_path,
                                                   capsys):
    expected = VARIANTS[variant](perturbed["rows"], tmp_path)
    assert reconcile(migration, expected) == 4
    out = capsys.readouterr().out
    rows = studies_table(migration)
    statuses = by_status(rows)
    everything = set(perturbed["studies"]) | perturbed["missing"]
    problems = set().union(*(perturbed[s] for s in ("orphan", "missing", "count_mismatch",
                                                    "incomplete")))
    assert {s: statuses.get(s, set()) for s in ("orphan", "missing", "count_mismatch",
                                                 "incomplete")} == {
        s: perturbed[s] for s in ("orphan", "missing", "count_mismatch", "incomplete")}
    assert statuses["ok"] == everything - problems
    assert len(rows) == len(everything)  # one row per study, none twice

    row = {r["study_instance_uid"]: r for r in rows}
    studies = perturbed["studies"]
    accession = row[perturbed["by_accession"]]  # shown with the source's UID
    assert accession["matched_by"] == "accession_number" and accession["status"] == "ok"
    assert accession["found_instances"] == studies[perturbed["by_accession"]]["instances"]
    for uid in perturbed["orphan"]:
        assert row[uid]["expected_instances"] is None and row[uid]["expected_row"] is None
        assert row[uid]["found_instances"] == row[uid]["migrated_instances"] \
            == studies[uid]["instances"]
    for uid in perturbed["missing"]:
        assert (row[uid]["expected_instances"], row[uid]["found_instances"],
                row[uid]["migrated_instances"]) == (5, 0, 0)
    for uid in perturbed["incomplete"]:
        r = row[uid]
        assert r["found_instances"] == r["expected_instances"] == studies[uid]["instances"]
        assert r["quarantined_instances"] == studies[uid]["quarantined"] > 0
        assert r["migrated_instances"] == r["found_instances"] - r["quarantined_instances"]
    for uid in statuses["ok"]:
        r = row[uid]
        assert r["expected_instances"] == r["found_instances"] == r["migrated_instances"]
        assert r["expected_series"] == r["found_series"]
        assert r["modalities_expected"] == r["modalities_found"]  # case and order normalized

    # the console: counts by status, then every problem study (fewer than 20 here)
    assert f"{len(statuses['ok']):>7}  ok" in out
    assert f"{len(perturbed['incomplete']):>7}  incomplete" in out
    for uid in problems:
        assert uid in out
    assert "output: " in out and "studies.parquet" in out


def test_csv_and_parquet_give_the_same_table(migration, perturbed, tmp_path):
    tables = []
    for variant in VARIANTS:
        assert reconcile(migration, VARIANTS[variant](perturbed["rows"], tmp_path)) == 4
        tables.append(studies_table(migration))
    assert tables[0] == tables[1] == tables[2]


def test_json_summary(migration, perturbed, tmp_path, capsys):
    expected = VARIANTS["csv"](perturbed["rows"], tmp_path)
    assert reconcile(migration, expected, "--json") == 4
    summary = json.loads(capsys.readouterr().out)
    studies = perturbed["studies"]
    assert summary["statuses"] == {
        "ok": len(studies) - 2 - len(perturbed["count_mismatch"]) - len(perturbed["incomplete"]),
        "missing": 2, "orphan": 2, "count_mismatch": len(perturbed["count_mismatch"]),
        "incomplete": len(perturbed["incomplete"])}
    assert summary["ok"] is False and summary["migrated_from"] == "result"
    assert summary["totals"]["found_instances"] == sum(s["instances"] for s in studies.values())
    assert summary["totals"]["quarantined_instances"] == sum(
        s["quarantined"] for s in studies.values())
    # the junk of the export (no StudyInstanceUID) is counted, in no study
    no_study = sum(1 for r in migration.stage("plan")
                   if r["study_instance_uid"] is None and r["action"] != "skip")
    assert summary["totals"]["objects_without_study"] == no_study > 0
    assert Path(summary["output"]) == (migration.manifests / migration.run / "reconcile"
                                       / "studies.parquet")


@pytest.mark.parametrize("lines, message", [
    (["StudyDate,PatientID,NumberOfStudyRelatedInstances", "20010101,P1,3"],
     "no key column; add StudyInstanceUID or AccessionNumber"),
    (["StudyInstanceUID,PatientID", "1.2.3,P1"], "no instance count column"),
    (["study_instance_uid,instances", "1.2.3,4", "1.2.4,three"],
     "column instances, row 2 has a value that is not a whole number ('three')"),
    (["StudyInstanceUID,instances", "1.2.3,4", "1.2.3,5"], "'1.2.3' is in rows 1, 2"),
])
def test_an_unusable_file_is_one_line_and_exit_1(migration, tmp_path, capsys, lines, message):
    path = tmp_path / "legacy.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert reconcile(migration, path) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.err.startswith(f"migrate-fs: {path}: ") and message in captured.err


@pytest.fixture(scope="module")
def clean_migration(tmp_path_factory: pytest.TempPathFactory) -> Migration:
    """A run in which every object is migrated: no junk, no pitfalls."""
    base = tmp_path_factory.mktemp("reconcile_clean")
    make_sample_export(base / "export", patients=2, cr=1, junk=False, pitfalls=False)
    done = Migration(base / "export", base)
    assert done.exit_code == 0
    return done


def test_a_perfect_file_exits_0(clean_migration, tmp_path, capsys):
    studies = reference(clean_migration)
    assert studies and not any(s["quarantined"] for s in studies.values())
    expected = write_export(export_rows(studies), tmp_path / "legacy.csv")
    assert reconcile(clean_migration, expected) == 0
    out = capsys.readouterr().out
    assert f"{len(studies)} studies, 0 not ok" in out and "not ok (" not in out
    assert {r["status"] for r in studies_table(clean_migration)} == {"ok"}


def test_before_the_write_the_plan_counts_and_older_parts_read(clean_migration, tmp_path,
                                                                capsys):
    """A run planned but not written (no result) by a release whose plan parts lack the
    output_* columns (schema 2): reconcile counts the objects planned 'migrate'."""
    run = tmp_path / "m" / "old"
    shutil.copytree(clean_migration.manifests / clean_migration.run / "plan", run / "plan")
    for part in (run / "plan").glob("*.parquet"):
        table = pq.read_table(part)
        pq.write_table(table.drop_columns([c for c in table.column_names
                                           if c.startswith("output_")]), part)
    studies = reference(clean_migration)
    expected = write_export(export_rows(studies), tmp_path / "legacy.csv")
    assert main(["reconcile", "--run", "old", "--manifests", str(tmp_path / "m"),
                 "--expected", str(expected), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["migrated_from"] == "plan"
    assert summary["totals"]["migrated_instances"] == sum(
        s["instances"] for s in studies.values())
    rows = pq.read_table(run / "reconcile" / "studies.parquet").to_pylist()
    assert all(r["patient_id_found"] == studies[r["study_instance_uid"]]["patient_id"]
               for r in rows)
