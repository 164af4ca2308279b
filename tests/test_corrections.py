"""corrections: legacy database corrections read from real CSV and Parquet files and applied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from migrate_fs.config import RULES
from migrate_fs.plan.corrections import (
    Applied,
    CorrectionsError,
    apply_corrections,
    load_corrections,
)
from migrate_fs.problems import CATALOGUE

FIELDS = ["study_instance_uid", "accession_number", "patient_id", "patient_name",
          "issuer_of_patient_id", "patient_birth_date", "patient_sex"]


def csv_file(tmp_path: Path, *lines: str, name: str = "legacy_db.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def objects(*rows: dict[str, Any]) -> pa.Table:
    """Objects with the given attributes (study_instance_uid as 'study', etc.), null elsewhere."""
    short = {"study": "study_instance_uid", "accession": "accession_number", "pid": "patient_id",
             "name": "patient_name", "issuer": "issuer_of_patient_id",
             "birth": "patient_birth_date", "sex": "patient_sex"}
    full = [{f: None for f in FIELDS} | {short.get(k, k): v for k, v in r.items()} for r in rows]
    return pa.Table.from_pylist(full, schema=pa.schema([(f, pa.string()) for f in FIELDS]))


def apply(path: Path, *rows: dict[str, Any]) -> Applied:
    return apply_corrections(objects(*rows), load_corrections(path))


def changes(applied: Applied, row: int) -> dict[str, tuple[str | None, str, str]]:
    """keyword -> (old, new, rule) for one object."""
    return {c["keyword"]: (c["old"], c["new"], c["rule"])
            for c in applied.changes.to_pylist()[row]}


def codes(applied: Applied, row: int) -> list[str]:
    return [p["code"] for p in applied.problems.to_pylist()[row]]


def messages(applied: Applied, row: int, code: str) -> list[str]:
    return [p["message"] for p in applied.problems.to_pylist()[row] if p["code"] == code]


# -- joining by each key -------------------------------------------------------------------


def test_study_rows_correct_the_objects_of_their_study(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "StudyInstanceUID,PatientID,PatientName,PatientBirthDate",
                    "1.2.3,00123,Doe^Jane,19700131")
    applied = apply(path, {"study": "1.2.3", "pid": "P1", "name": "DOE^J"},
                    {"study": "1.2.3", "pid": "P1", "name": "DOE^J", "birth": "19700131"},
                    {"study": "1.2.4", "pid": "P1"})
    assert changes(applied, 0) == {
        "PatientName": ("DOE^J", "Doe^Jane", "legacy_db_correction"),
        "PatientID": ("P1", "00123", "legacy_db_correction"),
        "PatientBirthDate": (None, "19700131", "legacy_db_correction")}
    assert "PatientBirthDate" not in changes(applied, 1)  # already right: no change
    assert changes(applied, 2) == {}
    tags = {c["keyword"]: c["tag"] for c in applied.changes.to_pylist()[0]}
    assert tags == {"PatientName": "(0010,0010)", "PatientID": "(0010,0020)",
                    "PatientBirthDate": "(0010,0030)"}
    assert applied.values["patient_id"].to_pylist() == ["00123", "00123", "P1"]
    assert applied.values["patient_name"].to_pylist() == ["Doe^Jane", "Doe^Jane", None]


def test_accession_rows_correct_the_objects_with_that_accession(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "AccessionNumber,PatientSex,IssuerOfPatientID,NewAccessionNumber",
                    "ACC1,F,HOSP,ACC1-NEW")
    applied = apply(path, {"study": "1.2.3", "accession": "ACC1", "sex": "M"},
                    {"study": "1.2.4", "accession": "ACC2"})
    assert changes(applied, 0) == {
        "AccessionNumber": ("ACC1", "ACC1-NEW", "legacy_db_correction"),
        "IssuerOfPatientID": (None, "HOSP", "legacy_db_correction"),
        "PatientSex": ("M", "F", "legacy_db_correction")}
    assert [c["tag"] for c in applied.changes.to_pylist()[0]] == \
        ["(0008,0050)", "(0010,0021)", "(0010,0040)"]
    assert changes(applied, 1) == {}
    assert applied.values["accession_number"].to_pylist() == ["ACC1-NEW", "ACC2"]


def test_patient_rows_merge_and_correct_the_patients_objects(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "OldPatientID,PatientID,PatientName", "OLD-7,00456,Ærø^Ole",
                    "OLD-8,,Smith^Al")
    applied = apply(path, {"study": "1", "pid": "OLD-7"}, {"study": "2", "pid": "OLD-8"},
                    {"study": "3", "pid": "OTHER"})
    assert changes(applied, 0) == {"PatientName": (None, "Ærø^Ole", "legacy_db_correction"),
                                   "PatientID": ("OLD-7", "00456", "patient_merge")}
    assert changes(applied, 1) == {"PatientName": (None, "Smith^Al", "legacy_db_correction")}
    assert changes(applied, 2) == {}
    assert applied.values["patient_id"].to_pylist() == ["00456", "OLD-8", "OTHER"]
    # Only patient rows: nothing says which studies the legacy database has.
    assert all(codes(applied, row) == [] for row in range(3))


def test_a_row_is_keyed_by_its_first_filled_key(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "StudyInstanceUID,AccessionNumber,OldPatientID,PatientSex",
                    "1.2.3,ACC9,P9,F", ",ACC1,P9,O")
    applied = apply(path, {"study": "1.2.3", "accession": "ACC1", "pid": "P1"},
                    {"study": "1.2.5", "accession": "ACC9", "pid": "P9"})
    assert changes(applied, 0) == {"PatientSex": (None, "F", "legacy_db_correction")}
    assert changes(applied, 1) == {}  # ACC9 and P9 are for reference only on the first row
    assert applied.orphans.num_rows == 0  # the accession row matched object 0 (and lost)


# -- precedence and merges ----------------------------------------------------------------


def test_study_rows_beat_accession_rows_beat_patient_rows(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "StudyInstanceUID,AccessionNumber,OldPatientID,PatientID,"
                              "PatientName,PatientSex",
                    "1.2.3,,,S-ID,,", ",ACC1,,A-ID,Acc^Name,", ",,P1,M-ID,Pat^Name,O")
    applied = apply(path, {"study": "1.2.3", "accession": "ACC1", "pid": "P1"},
                    {"study": "1.2.4", "accession": "ACC1", "pid": "P1"},
                    {"study": "1.2.5", "accession": "ACC2", "pid": "P1"})
    assert changes(applied, 0) == {
        "PatientName": (None, "Acc^Name", "legacy_db_correction"),
        "PatientID": ("P1", "S-ID", "legacy_db_correction"),
        "PatientSex": (None, "O", "legacy_db_correction")}
    assert changes(applied, 1)["PatientID"] == ("P1", "A-ID", "legacy_db_correction")
    assert changes(applied, 2)["PatientID"] == ("P1", "M-ID", "patient_merge")
    assert changes(applied, 2)["PatientName"] == (None, "Pat^Name", "legacy_db_correction")


def test_a_study_row_beats_a_patient_merge(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "StudyInstanceUID,OldPatientID,PatientID", "1.2.3,,KEEP",
                    ",OLD,MERGED")
    applied = apply(path, {"study": "1.2.3", "pid": "OLD"}, {"study": "1.2.3", "pid": "OTHER"},
                    {"study": "1.2.4", "pid": "OLD"})
    assert changes(applied, 0) == {"PatientID": ("OLD", "KEEP", "legacy_db_correction")}
    assert changes(applied, 1) == {"PatientID": ("OTHER", "KEEP", "legacy_db_correction")}
    assert changes(applied, 2) == {"PatientID": ("OLD", "MERGED", "patient_merge")}


def test_merge_chains_resolve_to_the_surviving_patient(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "OldPatientID,PatientID", "A,B", "B,C", "X,X")
    applied = apply(path, {"pid": "A"}, {"pid": "B"}, {"pid": "C"}, {"pid": "X"})
    assert changes(applied, 0) == {"PatientID": ("A", "C", "patient_merge")}
    assert changes(applied, 1) == {"PatientID": ("B", "C", "patient_merge")}
    assert changes(applied, 2) == {} and changes(applied, 3) == {}
    assert applied.values["patient_id"].to_pylist() == ["C", "C", "C", "X"]
    assert applied.orphans.num_rows == 0


def test_a_row_used_only_through_a_merge_chain_is_not_an_orphan(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "OldPatientID,PatientID", "A,B", "B,C")
    applied = apply(path, {"pid": "A"})
    assert changes(applied, 0) == {"PatientID": ("A", "C", "patient_merge")}
    assert applied.orphans.num_rows == 0


def test_a_merge_cycle_is_an_error(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "OldPatientID,PatientID", "Z,A", "A,B", "B,C", "C,A")
    with pytest.raises(CorrectionsError) as error:
        load_corrections(path)
    message = str(error.value)
    assert str(path) in message and "cycle" in message
    assert "'A' -> 'B' -> 'C' -> 'A'" in message or "'B' -> 'C' -> 'A' -> 'B'" in message \
        or "'C' -> 'A' -> 'B' -> 'C'" in message
    assert "rows 2, 3, 4" in message
    table = pa.table({"OldPatientID": ["A", "B"], "PatientID": ["B", "A"]})
    with pytest.raises(CorrectionsError, match="cycle"):
        apply_corrections(objects({"pid": "A"}), table)


# -- conflicts, orphans, objects missing from the file --------------------------------------


def test_conflicting_rows_for_one_study_are_reported_not_guessed(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "StudyInstanceUID,OldPatientID,PatientID,PatientName",
                    "1.2.3,,111,Doe^Jane", "1.2.4,,333,", "1.2.3,,222,Doe^Jane",
                    ",P1,MERGED,")
    applied = apply(path, {"study": "1.2.3", "pid": "P1", "name": "X"},
                    {"study": "1.2.3", "pid": "P1"}, {"study": "1.2.4", "pid": "P1"})
    for row in (0, 1):
        assert codes(applied, row) == ["correction_conflict"]
        [message] = messages(applied, row, "correction_conflict")
        assert "'111' (row 1)" in message and "'222' (row 3)" in message
        assert "StudyInstanceUID '1.2.3'" in message and "PatientID" in message
        # No change for PatientID (not even the patient merge), the name is still corrected.
        assert changes(applied, row) == {
            "PatientName": ("X" if row == 0 else None, "Doe^Jane", "legacy_db_correction")}
    assert codes(applied, 2) == []
    assert changes(applied, 2) == {"PatientID": ("P1", "333", "legacy_db_correction")}
    assert applied.values["patient_id"].to_pylist() == ["P1", "P1", "333"]


def test_same_value_twice_is_no_conflict(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "AccessionNumber,PatientID", "ACC1,7", "ACC1,7")
    applied = apply(path, {"accession": "ACC1", "pid": "1"})
    assert codes(applied, 0) == []
    assert changes(applied, 0) == {"PatientID": ("1", "7", "legacy_db_correction")}


def test_conflicting_merges_are_reported_along_the_chain(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "OldPatientID,PatientID", "A,B", "A,C", "X,A")
    applied = apply(path, {"pid": "A"}, {"pid": "X"})
    for row in (0, 1):
        assert changes(applied, row) == {}
        [message] = messages(applied, row, "correction_conflict")
        assert "'B' (row 1)" in message and "'C' (row 2)" in message
    assert "merge chain of OldPatientID 'X'" in messages(applied, 1, "correction_conflict")[0]


def test_rows_matching_no_object_are_orphans_with_their_row_numbers(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "StudyInstanceUID,AccessionNumber,OldPatientID,PatientSex",
                    "1.2.3,,,F", "9.9.9,,,F", ",ACC-GONE,,M", ",,P-GONE,O", ",,P1,O")
    applied = apply(path, {"study": "1.2.3", "pid": "P1"})
    assert applied.orphans.to_pylist() == [
        {"key": "StudyInstanceUID", "value": "9.9.9", "row": 2},
        {"key": "AccessionNumber", "value": "ACC-GONE", "row": 3},
        {"key": "OldPatientID", "value": "P-GONE", "row": 4}]
    assert applied.orphans.schema.names == ["key", "value", "row"]


def test_objects_whose_study_is_not_in_the_file_are_reported(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "StudyInstanceUID,AccessionNumber,OldPatientID,PatientSex",
                    "1.2.3,,,F", ",ACC1,,F", ",,P1,O")
    applied = apply(path, {"study": "1.2.3"}, {"study": "1.2.4", "accession": "ACC1"},
                    {"study": "1.2.5", "pid": "P1"}, {})
    assert [codes(applied, row) for row in range(4)] == [[], [], ["not_in_legacy_db"], []]
    assert "1.2.5" in messages(applied, 2, "not_in_legacy_db")[0]
    assert changes(applied, 2) == {"PatientSex": (None, "O", "legacy_db_correction")}


# -- reading files ---------------------------------------------------------------------------


def test_csv_ids_keep_their_leading_zeros(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "OldPatientID,PatientID,PatientBirthDate", "00123,000456,00010101")
    table = load_corrections(path)
    assert table.column("OldPatientID").to_pylist() == ["00123"]
    applied = apply_corrections(objects({"pid": "00123"}, {"pid": "123"}), table)
    assert changes(applied, 0)["PatientID"] == ("00123", "000456", "patient_merge")
    assert changes(applied, 1) == {}


def test_non_ascii_names_in_a_utf8_csv(tmp_path: Path) -> None:
    path = tmp_path / "legacy_db.csv"
    yamada = "山田^太郎=やまだ^たろう"
    path.write_bytes(f"\ufeffStudyInstanceUID,PatientName\n1.2.3,Müller^Anna\n"
                     f"1.2.4,{yamada}\n".encode())
    applied = apply(path, {"study": "1.2.3"}, {"study": "1.2.4", "name": "Yamada^Taro"})
    assert changes(applied, 0)["PatientName"][1] == "Müller^Anna"
    assert changes(applied, 1)["PatientName"] == ("Yamada^Taro", yamada, "legacy_db_correction")


def test_empty_cells_mean_no_correction(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "StudyInstanceUID,PatientID,PatientName,PatientSex",
                    "1.2.3,, ,F", '1.2.4,"",,  M  ')
    applied = apply(path, {"study": "1.2.3", "pid": "P", "name": "A^B"},
                    {"study": "1.2.4", "pid": "Q", "name": "C^D"})
    assert changes(applied, 0) == {"PatientSex": (None, "F", "legacy_db_correction")}
    assert changes(applied, 1) == {"PatientSex": (None, "M", "legacy_db_correction")}
    assert applied.values["patient_name"].to_pylist() == ["A^B", "C^D"]


def test_a_correction_to_the_same_value_is_no_change(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "StudyInstanceUID,PatientID,PatientSex", "1.2.3,P,F")
    applied = apply(path, {"study": "1.2.3", "pid": "P", "sex": "F"})
    assert changes(applied, 0) == {}
    assert codes(applied, 0) == [] and applied.orphans.num_rows == 0


def test_parquet_files_are_read(tmp_path: Path) -> None:
    path = tmp_path / "legacy_db.parquet"
    pq.write_table(pa.table({"StudyInstanceUID": ["1.2.3", None],
                             "OldPatientID": [None, "007"],
                             "PatientID": pa.array(["00123", "008"]).dictionary_encode(),
                             "PatientName": pa.array(["Müller^Anna", ""], pa.large_string())}),
                   path)
    applied = apply(path, {"study": "1.2.3", "pid": "X"}, {"study": "1.2.4", "pid": "007"})
    assert changes(applied, 0) == {"PatientName": (None, "Müller^Anna", "legacy_db_correction"),
                                   "PatientID": ("X", "00123", "legacy_db_correction")}
    assert changes(applied, 1) == {"PatientID": ("007", "008", "patient_merge")}
    assert codes(applied, 1) == ["not_in_legacy_db"]


def test_numbers_in_a_parquet_file_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "legacy_db.parquet"
    pq.write_table(pa.table({"OldPatientID": ["A"], "PatientID": pa.array([123], pa.int64())}),
                   path)
    with pytest.raises(CorrectionsError, match="PatientID has type int64.*leading zeros"):
        load_corrections(path)


@pytest.mark.parametrize(("lines", "expected"), [
    (["PatientID,PatientName", "1,A"], r"no key column; add one of StudyInstanceUID"),
    (["StudyInstanceUID,AccessionNumber", "1.2.3,A1"],
     r"no value column.*NewAccessionNumber"),
    (["StudyInstanceUID,PatientsName", "1.2.3,A^B"],
     r"unknown column 'PatientsName' \(did you mean 'PatientName'\?\)"),
    (["StudyInstanceUID,patient_id", "1.2.3,7"], r"did you mean 'PatientID'"),
    (["StudyInstanceUID,PatientID,PatientName", "1.2.3,7,", "1.2.4,,"],
     r"row 2 has a key but no value; fill in at least one of PatientID"),
    (["StudyInstanceUID,OldPatientID,PatientID", "1.2.3,,7", ",,8"],
     r"row 2 has no key; fill in StudyInstanceUID, AccessionNumber, OldPatientID"),
    (["StudyInstanceUID,PatientSex", "1.2.3,male"], r"PatientSex must be M, F or O"),
    (["StudyInstanceUID,PatientBirthDate", "1.2.3,1970-01-31"], r"YYYYMMDD"),
    (["StudyInstanceUID,PatientID", "1.2.3,A\\B"], r"no backslash"),
    (["StudyInstanceUID,PatientID,PatientID", "1.2.3,1,2"], r"more than once"),
    (["StudyInstanceUID;PatientID", "1.2.3;1"], r"separate the columns with commas"),
    (["StudyInstanceUID,PatientID", "1.2.3,1,2"], r"one cell per column"),
    (["StudyInstanceUID,PatientID"], r"no rows"),
])
def test_invalid_files_say_what_to_fix(tmp_path: Path, lines: list[str], expected: str) -> None:
    path = csv_file(tmp_path, *lines)
    with pytest.raises(CorrectionsError, match=expected) as error:
        load_corrections(path)
    assert str(error.value).startswith(str(path))


def test_unreadable_files_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(CorrectionsError, match="no such file"):
        load_corrections(tmp_path / "missing.csv")
    with pytest.raises(CorrectionsError, match=r"\*\.csv"):
        load_corrections(csv_file(tmp_path, "StudyInstanceUID,PatientID", name="db.xlsx"))
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("StudyInstanceUID,PatientName\n1.2.3,Müller\n".encode("latin-1"))
    with pytest.raises(CorrectionsError, match="UTF-8"):
        load_corrections(latin1)


# -- shapes -----------------------------------------------------------------------------------


def test_no_objects_and_untouched_objects(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "StudyInstanceUID,PatientID", "1.2.3,7")
    empty = apply(path)
    assert len(empty.changes) == len(empty.problems) == 0
    assert empty.orphans.to_pylist() == [{"key": "StudyInstanceUID", "value": "1.2.3", "row": 1}]
    assert set(empty.values) == set(FIELDS) - {"study_instance_uid"}
    applied = apply(path, {"study": "1.2.3"}, {"study": "1.2.3", "pid": "7"})
    assert applied.changes.type == pa.list_(pa.struct([
        ("tag", pa.string()), ("keyword", pa.string()), ("old", pa.string()),
        ("new", pa.string()), ("rule", pa.string())]))
    assert applied.problems.type == pa.list_(pa.struct([("code", pa.string()),
                                                        ("message", pa.string()),
                                                        ("severity", pa.string())]))
    assert changes(applied, 0) == {"PatientID": (None, "7", "legacy_db_correction")}
    assert changes(applied, 1) == {}


def test_the_codes_and_rules_are_catalogued() -> None:
    codes = RULES["legacy_db_correction"].codes
    assert set(codes) == {"correction_conflict", "not_in_legacy_db"}
    assert CATALOGUE["correction_conflict"].severity == "error"
    assert CATALOGUE["not_in_legacy_db"].severity == "warning"
    # rules that only name changes: no policy of their own in [rules]
    assert RULES["legacy_db_correction"].default is None and RULES["patient_merge"].default is None


# -- the vectorized code against a plain, per-object reading of the rules ----------------------

KEYS = ["StudyInstanceUID", "AccessionNumber", "OldPatientID"]
KEY_FIELDS = ["study_instance_uid", "accession_number", "patient_id"]
ATTRIBUTES = [("NewAccessionNumber", "accession_number"), ("PatientName", "patient_name"),
              ("PatientID", "patient_id"), ("IssuerOfPatientID", "issuer_of_patient_id"),
              ("PatientBirthDate", "patient_birth_date"), ("PatientSex", "patient_sex")]


def reference(objs: list[dict[str, Any]], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What the module docstring says, one object and one attribute at a time."""
    level = [next(i for i, k in enumerate(KEYS) if r[k]) for r in rows]

    def matching(i: int, key: str | None) -> list[dict[str, Any]]:
        return [r for r, lv in zip(rows, level, strict=True)
                if lv == i and key and r[KEYS[i]] == key]

    def targets(pid: str) -> set[str]:
        return {r["PatientID"] for r in matching(2, pid) if r["PatientID"]}

    def merged(pid: str, seen: tuple[str, ...] = ()) -> str | None:  # None: a conflict
        if pid in seen:
            raise CorrectionsError("cycle")
        found = targets(pid)
        if len(found) > 1:
            return None
        if not found or found == {pid}:
            return pid
        (target,) = found
        return merged(target, (*seen, pid)) if targets(target) else target

    for r, lv in zip(rows, level, strict=True):  # a cycle anywhere in the file is an error
        if lv == 2:
            merged(r["OldPatientID"])
    out: dict[str, Any] = {"changes": [], "codes": [], "values": {f: [] for _, f in ATTRIBUTES}}
    for obj in objs:
        entries, codes_ = [], []
        for column, field in ATTRIBUTES:
            value, rule = obj[field], None
            for i, key_field in enumerate(KEY_FIELDS):
                given = {r[column] for r in matching(i, obj[key_field]) if r[column]}
                if column == "PatientID" and i == 2 and given:
                    given = {merged(obj[key_field])} if len(given) == 1 else given
                if given:
                    if len(given) == 1 and None not in given:
                        (value,) = given
                        rule = "patient_merge" if column == "PatientID" and i == 2 else \
                            "legacy_db_correction"
                    else:
                        codes_.append("correction_conflict")
                    break
            if value != obj[field]:
                entries.append((column, obj[field], value, rule))
            out["values"][field].append(value)
        if any(lv < 2 for lv in level) and (obj["study_instance_uid"] or obj["accession_number"]) \
                and not matching(0, obj["study_instance_uid"]) \
                and not matching(1, obj["accession_number"]):
            codes_.append("not_in_legacy_db")
        out["changes"].append(entries)
        out["codes"].append(codes_)
    reached = {o["patient_id"] for o in objs if o["patient_id"]}
    while True:
        more = {t for p in reached for t in targets(p)  # merge rows a chain goes on through
                if len(targets(p)) == 1 and targets(t)} - reached
        if not more:
            break
        reached |= more
    out["orphans"] = [number for number, (r, lv) in enumerate(zip(rows, level, strict=True), 1)
                      if r[KEYS[lv]] not in ({o[KEY_FIELDS[lv]] for o in objs}
                                             | (reached if lv == 2 else set()))]
    return out


def test_random_corrections_match_the_plain_reading() -> None:
    import random

    rng = random.Random(7)
    choices = {"StudyInstanceUID": ["S0", "S1", "S2", "S3"], "AccessionNumber": ["A0", "A1", "A2"],
               "OldPatientID": ["P0", "P1", "P2", "P3"], "PatientID": ["P0", "P1", "P2", "P3",
                                                                       "P4"],
               "IssuerOfPatientID": ["I0", "I1"], "PatientName": ["N^0", "N^1"],
               "PatientBirthDate": ["19700101", "19800101"], "PatientSex": ["M", "F"],
               "NewAccessionNumber": ["A0", "A9"]}
    fields = dict(zip(KEYS, KEY_FIELDS, strict=True)) | dict(ATTRIBUTES)
    cycles = 0
    for case in range(300):
        rows = []
        for _ in range(rng.randint(1, 8)):
            row = {c: rng.choice(v) if rng.random() < 0.3 else None for c, v in choices.items()}
            level = rng.randrange(3)
            row |= {k: None for k in KEYS[:level]} | {KEYS[level]: rng.choice(choices[KEYS[level]])}
            column = "PatientID" if rng.random() < 0.3 else rng.choice(list(choices)[3:])
            row[column] = row[column] or rng.choice(choices[column])
            rows.append(row)
        objs = [{f: rng.choice(choices[c]) if rng.random() < 0.8 else None
                 for c, f in fields.items() if c in KEYS or c in ("PatientName", "PatientSex")}
                | {f: None for f in ("issuer_of_patient_id", "patient_birth_date")}
                for _ in range(rng.randint(0, 8))]
        table = pa.table({c: pa.array([r[c] for r in rows], pa.string()) for c in choices})
        try:
            expected = reference(objs, rows)
        except CorrectionsError:
            cycles += 1
            with pytest.raises(CorrectionsError, match="cycle"):
                apply_corrections(objects(*objs), table)
            continue
        applied = apply_corrections(objects(*objs), table)
        got = [[({"AccessionNumber": "NewAccessionNumber"}.get(e["keyword"], e["keyword"]),
                 e["old"], e["new"], e["rule"]) for e in entries]
               for entries in applied.changes.to_pylist()]
        assert got == expected["changes"], (case, rows, objs)
        assert [[p["code"] for p in ps] for ps in applied.problems.to_pylist()] == \
            expected["codes"], (case, rows, objs)
        assert {f: a.to_pylist() for f, a in applied.values.items()} == expected["values"]
        assert applied.orphans.column("row").to_pylist() == expected["orphans"], (case, rows)
    assert 0 < cycles < 150
