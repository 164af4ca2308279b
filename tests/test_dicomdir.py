"""migrate-fs dicomdir: a medium for another hospital, made from a real migration of pydicom's
test files, checked as the receiving side would: pydicom reads the DICOMDIR back and it lists
every migrated instance (but those reported as not on the medium, with their reason), every
file ID is one PS3.10 allows, the files are the outputs byte for byte, dciodvfy finds no error
and dcmdump reads it; a filter makes a medium of one study; a non-empty folder is refused.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pydicom
import pytest
from conftest import PYDICOM_DATA, Migration, tree_digest
from pydicom.fileset import FileSet

from migrate_fs.cli.main import main

MIGRATED = ("written", "already_present")
COMPONENT = re.compile(r"[A-Z0-9_]{1,8}")


def make(migration: Migration, media: Path, *extra: str) -> int:
    return main(["dicomdir", "--run", migration.run, "--manifests", str(migration.manifests),
                 "--out", str(media), *extra])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def migrated(migration: Migration) -> list[dict[str, Any]]:
    return [r for r in migration.stage("result") if r["status"] in MIGRATED]


def test_the_medium_lists_every_migrated_instance(pydicom_migration: Migration, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    media = tmp_path / "CD1"
    before = tree_digest(pydicom_migration.out)
    assert make(pydicom_migration, media, "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    rows = migrated(pydicom_migration)
    table = pq.read_table(pydicom_migration.manifests / pydicom_migration.run / "dicomdir"
                          / "CD1.parquet").to_pylist()
    assert sorted(r["object_id"] for r in table) == sorted(r["object_id"] for r in rows)
    off = [r for r in table if not r["on_medium"]]

    # pydicom reads the DICOMDIR back: it lists exactly the migrated instances that the table
    # and the summary do not report as off the medium
    fs = FileSet(pydicom.dcmread(media / "DICOMDIR"))
    listed = [str(i.SOPInstanceUID) for i in fs]
    assert len(listed) == len(set(listed))
    expected = ({r["output_sop_instance_uid"] for r in rows}
                - {r["sop_instance_uid"] for r in off})
    assert set(listed) == expected
    assert summary["on_medium"] == len(listed) == len(rows) - len(off)
    assert summary["selected"] == len(rows)
    assert summary["not_on_medium"] == dict(Counter(r["reason"] for r in off))

    # pydicom's test files all go on the medium (the SR, RT, waveform and charset files too);
    # records lacking a value the standard requires got a fallback, never the file
    assert off == [] and summary["not_on_medium"] == {}
    assert summary["fallbacks"]
    for entry in table:
        if entry["fallbacks"]:
            header = pydicom.dcmread(pydicom_migration.out / entry["output_path"],
                                     stop_before_pixels=True)
            for keyword in entry["fallbacks"]:
                assert keyword not in header or header[keyword].VM == 0, keyword

    # each file on the medium is its output, byte for byte, at a file ID PS3.10 allows
    by_uid = {r["output_sop_instance_uid"]: r for r in rows}
    on = {r["sop_instance_uid"]: r for r in table if r["on_medium"]}
    for instance in fs:
        file_id = Path(instance.FileID)
        assert len(file_id.parts) <= 8
        assert all(COMPONENT.fullmatch(part) for part in file_id.parts), file_id
        uid = str(instance.SOPInstanceUID)
        assert on[uid]["file_id"] == file_id.as_posix()
        assert sha256(media / file_id) == by_uid[uid]["output_sha256"]
    assert summary["sha256_mismatch"] == 0 and summary["passed"]
    # pydicom's own layout: patient/study/series/instance
    assert any(re.fullmatch(r"PT\d{6}/ST\d{6}/SE\d{6}/IM\d{6}", r["file_id"])
               for r in on.values())
    # the medium holds the DICOMDIR and the instances, nothing else
    assert sorted(p.relative_to(media).as_posix() for p in media.rglob("*") if p.is_file()) \
        == sorted(["DICOMDIR", *(r["file_id"] for r in on.values())])
    assert tree_digest(pydicom_migration.out) == before  # the output tree is only read

    # DCMTK reads it; dicom3tools finds no error in it
    dump = subprocess.run(["dcmdump", str(media / "DICOMDIR")], capture_output=True,  # noqa: S607
                          text=True, errors="replace", check=False)
    assert dump.returncode == 0, dump.stderr
    assert dump.stdout.count("(0004,1511)") == len(listed)  # ReferencedSOPInstanceUIDInFile
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    check = subprocess.run(["dciodvfy", str(media / "DICOMDIR")], capture_output=True,  # noqa: S607
                           text=True, errors="replace", check=False)
    said = check.stdout + check.stderr
    assert "BasicDirectory" in said or "Directory" in said, said  # it knew what it checked
    assert not [line for line in said.splitlines() if line.startswith("Error")], said


def test_objects_without_a_directory_record_are_reported(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    """A palette (no patient: a top-level PALETTE record) goes on the medium; an SR without
    its Completion Flag (Type 1) gets no record: reported with pydicom's reason, not fatal."""
    export = tmp_path / "export"
    export.mkdir()
    shutil.copy(PYDICOM_DATA / "palettes" / "hotiron.dcm", export)
    shutil.copy(PYDICOM_DATA / "test_files" / "CT_small.dcm", export)
    sr = pydicom.dcmread(PYDICOM_DATA / "test_files" / "test-SR.dcm")
    del sr.CompletionFlag
    sr.save_as(export / "sr.dcm")
    migration = Migration(export, tmp_path, 1)
    assert migration.exit_code == 0
    capsys.readouterr()
    assert make(migration, tmp_path / "CD", "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["not_on_medium"] == {"no_directory_record": 1}
    assert summary["on_medium"] == 2 and summary["selected"] == 3
    [listed] = summary["not_on_medium_listed"]
    assert "Completion Flag" in listed["message"]
    fs = FileSet(pydicom.dcmread(tmp_path / "CD" / "DICOMDIR"))
    ids = {str(i.SOPInstanceUID): Path(i.FileID).as_posix() for i in fs}
    assert str(sr.SOPInstanceUID) not in ids and len(ids) == 2
    assert sorted(re.sub(r"\d", "0", f) for f in ids.values()) == \
        ["PA000000", "PT000000/ST000000/SE000000/IM000000"]


def test_a_study_filter_makes_a_medium_of_that_study(pydicom_migration: Migration,
                                                     tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    rows = migrated(pydicom_migration)
    studies = Counter(r["output_study_instance_uid"] for r in rows)
    study, count = studies.most_common(1)[0]
    assert count > 1 and len(studies) > 1
    media = tmp_path / "STUDY"
    assert make(pydicom_migration, media, "--study", study, "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    fs = FileSet(pydicom.dcmread(media / "DICOMDIR"))
    assert {str(i.StudyInstanceUID) for i in fs} == {study}
    ours = {r["output_sop_instance_uid"] for r in rows if r["output_study_instance_uid"] == study}
    assert {str(i.SOPInstanceUID) for i in fs} == ours - {
        r["sop_instance_uid"] for r in pq.read_table(
            pydicom_migration.manifests / pydicom_migration.run / "dicomdir" / "STUDY.parquet"
        ).to_pylist() if not r["on_medium"]}
    assert summary["selected"] == count and summary["studies"] == 1
    assert summary["filters"] == {"studies": [study], "patients": []}

    # a filter that matches nothing is a usage error, and makes no medium
    assert make(pydicom_migration, tmp_path / "NONE", "--study", "1.2.3.4") == 2
    assert "no migrated object" in capsys.readouterr().err
    assert not (tmp_path / "NONE").exists()


def test_a_folder_that_is_not_empty_is_refused(pydicom_migration: Migration, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    media = tmp_path / "USB"
    media.mkdir()
    (media / "notes.txt").write_text("mine")
    assert make(pydicom_migration, media) == 1
    err = capsys.readouterr().err
    assert err.startswith("migrate-fs: ") and err.count("\n") == 1
    assert "not empty" in err
    assert [p.name for p in media.iterdir()] == ["notes.txt"]
    assert not (pydicom_migration.manifests / pydicom_migration.run / "dicomdir"
                / "USB.parquet").exists()


def test_the_text_summary_names_the_medium(pydicom_migration: Migration, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    rows = migrated(pydicom_migration)
    patient = Counter(r["output_patient_id"] for r in rows if r["output_patient_id"]
                      ).most_common(1)[0][0]
    media = tmp_path / "PAT"
    assert make(pydicom_migration, media, "--patient", patient) == 0
    out = capsys.readouterr().out
    assert re.match(r"dicomdir: \d+ of \d+ selected objects on the medium \(1 patients", out)
    assert f"DICOMDIR: {media / 'DICOMDIR'}" in out
    assert "identical to the outputs" in out
