"""Ready to import, proven against a real PACS: pydicom's test files laid out as a legacy export,
migrated with legacy database corrections, imported into Orthanc (Debian's) with DCMTK's
dcmsend over DICOM and, into a second Orthanc, with its REST API; then checked through Orthanc's
REST API (every migrated instance there, none quarantined, the plan's counts of patients,
studies, series and instances, the corrected demographics, the planned transfer syntaxes, every
element and the pixel data as written; over REST the stored files byte for byte) and through
its DICOMweb plugin with
``migrate-fs reconcile --dicomweb`` (a deleted and a foreign instance are found). Every Orthanc
is stopped by its PID at the end. Skipped only when Orthanc, its DICOMweb plugin or dcmsend is
not installed (``.ci/run`` installs them)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pydicom
import pytest
from conftest import PYDICOM_DATA, ROOT

from migrate_fs import manifest
from migrate_fs.cli.main import main

sys.path.insert(0, str(ROOT / "scripts"))
from throwaway_orthanc import ThrowawayOrthanc, available  # noqa: E402

WHY = available() or (None if shutil.which("dcmsend") else "dcmsend (DCMTK) is not installed")
pytestmark = pytest.mark.skipif(WHY is not None, reason=WHY or "")
CORRECTED_NAME = "CORRECTED^BY LEGACY DB"


class Migrated:
    """The migration the PACS receives, and what its manifests say."""

    def __init__(self, base: Path) -> None:
        self.export, self.out, self.m = base / "export", base / "out", base / "m"
        shutil.copytree(PYDICOM_DATA / "test_files", self.export / "test_files")
        ct = pydicom.dcmread(self.export / "test_files" / "CT_small.dcm", stop_before_pixels=True)
        self.corrected_study = str(ct.StudyInstanceUID)
        self.corrections = base / "legacy_db.csv"
        with open(self.corrections, "w", newline="") as f:
            csv.writer(f).writerows([["StudyInstanceUID", "PatientName"],
                                     [self.corrected_study, CORRECTED_NAME]])
        self.code = main(["run", str(self.export), "--out", str(self.out), "--run", "e2e",
                          "--manifests", str(self.m), "--corrections", str(self.corrections),
                          "--workers", "2", "--quiet"])
        self.rows = manifest.read_stage(self.m, "e2e", "result").to_pylist()
        self.written = {r["output_sop_instance_uid"]: r for r in self.rows
                        if r["status"] == "written"}

    def counts(self) -> dict[str, int]:
        rows = self.written.values()
        # a PACS files an absent PatientID (objects whose IOD has no patient module, such as
        # palettes) and an empty one as one patient, ''
        return {"CountPatients": len({r["output_patient_id"] or "" for r in rows}),
                "CountStudies": len({r["output_study_instance_uid"] for r in rows}),
                "CountSeries": len({r["output_series_instance_uid"] for r in rows}),
                "CountInstances": len(rows)}

    def quarantined_only(self) -> set[str]:
        """SOPInstanceUIDs of quarantined objects that no migrated object carries."""
        return {r["sop_instance_uid"] for r in self.rows if r["action"] == "quarantine"
                and r["sop_instance_uid"]} - set(self.written)


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Migrated:
    done = Migrated(tmp_path_factory.mktemp("e2e"))
    assert done.code == 0 and len(done.written) > 50
    return done


def stored(orthanc: ThrowawayOrthanc) -> dict[str, dict[str, Any]]:
    """Orthanc's instances by SOPInstanceUID: its id and main tags."""
    found = {}
    for item in orthanc.get("/instances?expand"):
        found[item["MainDicomTags"]["SOPInstanceUID"]] = item
    return found


def content(data: bytes) -> tuple[pydicom.Dataset, bytes | None]:
    """A Part 10 file's dataset (its file meta apart) and its pixel data bytes. A DIMSE sender
    may re-encode what it sends, never change a value: DCMTK sends sequences with undefined
    lengths, computes the group lengths anew, drops DataSetTrailingPadding (no meaning) and
    writes encapsulated pixel data as OB where the source said OW; so those are set aside."""
    ds = pydicom.dcmread(io.BytesIO(data))
    for tag in [t for t in ds.keys() if t.element == 0] + [0xFFFCFFFC]:
        ds.pop(tag, None)
    pixels = ds.pop(0x7FE00010, None)
    return ds, None if pixels is None else pixels.value


def check_pacs(orthanc: ThrowawayOrthanc, migrated: Migrated) -> dict[str, dict[str, Any]]:
    """The assertions a migration lead makes after an import (see the module docstring)."""
    found = stored(orthanc)
    assert set(found) == set(migrated.written), (
        f"missing {sorted(set(migrated.written) - set(found))[:5]}, "
        f"extra {sorted(set(found) - set(migrated.written))[:5]}")
    assert not migrated.quarantined_only() & set(found)
    statistics = orthanc.get("/statistics")
    assert {k: statistics[k] for k in migrated.counts()} == migrated.counts()
    for uid, item in found.items():
        row = migrated.written[uid]
        syntax = orthanc.request("GET", f"/instances/{item['ID']}/metadata/TransferSyntax")
        assert syntax.decode() == row["output_transfer_syntax"], row["locator"]
        ours = content((migrated.out / row["output_path"]).read_bytes())
        theirs = content(orthanc.request("GET", f"/instances/{item['ID']}/file"))
        assert theirs == ours, row["locator"]  # every element's value, the pixel data's bytes
    study = [s for s in orthanc.get("/studies?expand")
             if s["MainDicomTags"]["StudyInstanceUID"] == migrated.corrected_study]
    patient = orthanc.get(f"/patients/{study[0]['ParentPatient']}")
    assert patient["MainDicomTags"]["PatientName"] == CORRECTED_NAME
    return found


def test_dcmsend_imports_every_migrated_instance(migrated: Migrated, tmp_path: Path) -> None:
    with ThrowawayOrthanc(tmp_path / "orthanc") as orthanc:
        sent = subprocess.run(
            ["dcmsend", "--scan-directories", "--recurse", "--scan-pattern", "*.dcm",
             "-aec", orthanc.aet, "127.0.0.1", str(orthanc.dicom_port), str(migrated.out)],
            capture_output=True, text=True, check=False, timeout=600)
        assert sent.returncode == 0, sent.stderr[-2000:]
        check_pacs(orthanc, migrated)


def test_rest_import_stores_every_file_as_written(migrated: Migrated, tmp_path: Path) -> None:
    with ThrowawayOrthanc(tmp_path / "orthanc") as orthanc:
        answers = Counter()
        for row in migrated.written.values():
            data = (migrated.out / row["output_path"]).read_bytes()
            answer = json.loads(orthanc.request("POST", "/instances", data))
            answers[answer["Status"]] += 1
            stored_file = orthanc.request("GET", f"/instances/{answer['ID']}/file")
            assert hashlib.sha256(stored_file).hexdigest() == row["output_sha256"]
        assert answers == {"Success": len(migrated.written)}
        check_pacs(orthanc, migrated)


def test_the_dicomweb_check_finds_what_is_missing_and_extra(migrated: Migrated, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    m = str(migrated.m)
    with ThrowawayOrthanc(tmp_path / "orthanc") as orthanc:
        for row in migrated.written.values():
            orthanc.request("POST", "/instances", (migrated.out / row["output_path"]).read_bytes())
        assert main(["reconcile", "--run", "e2e", "--manifests", m, "--dicomweb",
                     orthanc.dicomweb, "--json"]) == 0
        clean = json.loads(capsys.readouterr().out)
        assert clean["statuses"]["ok"] == migrated.counts()["CountStudies"]
        assert clean["totals"]["found"] == clean["totals"]["expected"] == len(migrated.written)
        # the PACS loses one instance and gets one that was never planned, in another study
        found = stored(orthanc)
        lost, other = sorted(found)[0], sorted(found)[-1]
        orthanc.request("DELETE", f"/instances/{found[lost]['ID']}")
        ds = pydicom.dcmread(migrated.out / migrated.written[other]["output_path"])
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4.5.6.7.8.9"
        extra = tmp_path / "extra.dcm"
        ds.save_as(extra, enforce_file_format=True)
        orthanc.request("POST", "/instances", extra.read_bytes())
        code = main(["reconcile", "--run", "e2e", "--manifests", m, "--dicomweb",
                     orthanc.dicomweb, "--json"])
        found_now = json.loads(capsys.readouterr().out)
    assert code == 4
    assert found_now["totals"]["missing"] == 1 and found_now["totals"]["extra"] == 1
    rows = _pacs_rows(Path(found_now["output"]))
    lost_study = migrated.written[lost]["output_study_instance_uid"]
    other_study = migrated.written[other]["output_study_instance_uid"]
    assert rows[lost_study]["missing_sop_instance_uids"] == [lost]
    assert rows[other_study]["extra_sop_instance_uids"] == ["1.2.3.4.5.6.7.8.9"]
    statuses = {s: r["status"] for s, r in rows.items() if r["status"] != "ok"}
    assert set(statuses) == {lost_study, other_study}


def _pacs_rows(folder: Path) -> dict[str, dict[str, Any]]:
    import pyarrow.parquet as pq

    return {r["study_instance_uid"]: r for r in pq.read_table(folder).to_pylist()}


def test_the_throwaway_orthanc_script_starts_answers_and_stops() -> None:
    import signal
    import urllib.request

    script = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "throwaway_orthanc.py")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [script.stdout.readline() for _ in range(7)]  # type: ignore[union-attr]
        assert lines[0].startswith("Orthanc 1.") and "on 127.0.0.1" in lines[0], lines
        dicomweb = lines[2].split()[-1]
        storage = Path(lines[6].split()[-1])
        with urllib.request.urlopen(f"{dicomweb}/studies", timeout=10) as answer:
            assert answer.status in (200, 204)
        assert storage.is_dir()
    finally:
        script.send_signal(signal.SIGTERM)  # as a kill would, or Ctrl-C (SIGINT) in a terminal
        script.wait(30)
    assert script.returncode == 0 and not storage.exists()  # Orthanc stopped, storage gone
