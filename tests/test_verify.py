"""migrate-fs verify: a clean migration verifies, and each kind of damage a user can meet in an
output tree is caught with its problem code and exit code 4.

Each test works on its own copy of a real migration (outputs and manifests; the export is only
read), damages it the way it happens in the field, and runs the verb as a user does.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pydicom
import pytest
from conftest import PYDICOM_DATA, Migration

from migrate_fs import manifest
from migrate_fs.audit import verify as verify_audit
from migrate_fs.cli import verify as verify_cli
from migrate_fs.cli.main import main

MIGRATED = ("written", "already_present")


@pytest.fixture(scope="module")
def migration(sample_export: Path, tmp_path_factory: pytest.TempPathFactory) -> Migration:
    done = Migration(sample_export, tmp_path_factory.mktemp("verify_run"), 2)
    assert done.exit_code == 0
    return done


# Members a compressed dump streams forward only: native, encapsulated, big endian (its pixel
# values swapped on writing), deflated (located in the inflated dataset) and without pixels.
TAPE = ("CT_small.dcm", "JPEG2000.dcm", "ExplVR_BigEnd.dcm", "image_dfl.dcm", "rtplan.dcm")


@pytest.fixture(scope="module")
def tape_migration(tmp_path_factory: pytest.TempPathFactory) -> Migration:
    """An export that is one gzip-compressed tape dump of some of pydicom's files."""
    root = tmp_path_factory.mktemp("verify_tape") / "export"
    root.mkdir()
    with tarfile.open(root / "dump.tar.gz", "w:gz") as tar:
        for name in TAPE:
            tar.add(PYDICOM_DATA / "test_files" / name, arcname=f"tape/{name}")
    done = Migration(root, root.parent, 1)
    assert done.exit_code == 0
    return done


@dataclass
class Copy:
    """A copy of a migration's outputs and manifests that a test may damage."""

    out: Path
    manifests: Path
    run: str

    def verify(self, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, Any]]:
        """Run the verb (JSON summary); its exit code and summary."""
        capsys.readouterr()
        code = main(["verify", "--run", self.run, "--manifests", str(self.manifests), "--out",
                     str(self.out), "--workers", "1", "--quiet", "--json", *extra])
        return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    def rows(self, stage: str = "verify") -> dict[str, dict[str, Any]]:
        return {r["object_id"]: r for r in
                manifest.read_stage(self.manifests, self.run, stage).to_pylist()}

    def migrated(self) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in self.rows("result").items() if r["status"] in MIGRATED}


def copy_of(done: Migration, base: Path) -> Copy:
    shutil.copytree(done.out, base / "out")
    shutil.copytree(done.manifests, base / "m")
    return Copy(base / "out", base / "m", done.run)


@pytest.fixture
def damaged(migration: Migration, tmp_path: Path) -> Copy:
    return copy_of(migration, tmp_path)


def codes(row: dict[str, Any]) -> set[str]:
    return {p["code"] for p in row["problems"]}


def failed(rows: dict[str, dict[str, Any]]) -> dict[str, set[str]]:
    """object_id -> the codes of each row that failed."""
    return {k: codes(r) for k, r in rows.items() if r["verify_status"] != "ok"}


def pixel_value_at(path: Path) -> int:
    """Where the output's Pixel Data value starts (explicit VR little endian, OB/OW header)."""
    with open(path, "rb") as f:
        pydicom.dcmread(f, stop_before_pixels=True)
        return f.tell() + 12


def native_image(copy: Copy) -> dict[str, Any]:
    return next(r for r in sorted(copy.migrated().values(), key=lambda r: r["object_id"])
                if r["pixel_data_offset"] is not None and not r["pixel_data_encapsulated"]
                and r["pixel_data_length"] > 1000)


def flip_pixel_byte(copy: Copy, row: dict[str, Any]) -> None:
    path = copy.out / row["output_path"]
    data = bytearray(path.read_bytes())
    data[pixel_value_at(path) + 500] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_clean_migration_verifies(migration: Migration, capsys: pytest.CaptureFixture[str]
                                    ) -> None:
    # as a user runs it after `migrate-fs run`: the output folder comes from run.json
    assert main(["verify", "--run", migration.run, "--manifests", str(migration.manifests),
                 "--workers", "2", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "verify_status" in text and "strays: none" in text
    result = manifest.read_stage(migration.manifests, migration.run, "result").to_pylist()
    migrated = {r["object_id"] for r in result if r["status"] in MIGRATED}
    assert len(migrated) > 100
    rows = manifest.read_stage(migration.manifests, migration.run, "verify").to_pylist()
    assert sorted(r["object_id"] for r in rows) == sorted(migrated)  # one row each, no other
    assert {r["verify_status"] for r in rows} == {"ok"}
    assert all(r["problems"] == [] for r in rows)
    recorded = {r["object_id"]: (r["output_size"], r["output_sha256"]) for r in result}
    assert all((r["output_size"], r["output_sha256"]) == recorded[r["object_id"]] for r in rows)
    # the default sample: the 100 migrated objects with the smallest object_id
    assert {r["object_id"] for r in rows if r["pixel_compared"]} == set(sorted(migrated)[:100])
    assert (migration.manifests / migration.run / "verify_strays.parquet").exists()


def test_the_summary_counts_what_was_and_was_not_verified(
        damaged: Copy, capsys: pytest.CaptureFixture[str]) -> None:
    code, summary = damaged.verify(capsys, "--all")
    assert code == 0
    result = damaged.rows("result").values()
    migrated = sum(r["status"] in MIGRATED for r in result)
    assert summary["objects"] == summary["pixel_compared"] == migrated
    assert summary["by_status"] == {"ok": migrated}
    assert summary["problems"] == {} and summary["strays"] == {} and summary["passed"]
    assert summary["not_verified"] == {"not_written": len(result) - migrated}
    assert summary["manifest"] == str(manifest.stage_dir(damaged.manifests, damaged.run,
                                                         "verify"))
    # run.json keeps the summary, for status and reports
    assert manifest.read_run_info(damaged.manifests, damaged.run)["verify"]["passed"] is True


def test_a_flipped_pixel_byte_is_caught(damaged: Copy, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    row = native_image(damaged)
    flip_pixel_byte(damaged, row)
    code, summary = damaged.verify(capsys, "--all")
    assert code == verify_cli.EXIT_AUDIT_FAILED == 4
    assert failed(damaged.rows()) == {row["object_id"]: {"output_sha256_mismatch",
                                                         "pixel_data_differs"}}
    assert summary["problems"] == {"output_sha256_mismatch": 1, "pixel_data_differs": 1}
    assert summary["by_status"]["failed"] == 1
    # without a pixel comparison the changed hash still catches it, but not where it is
    code, _ = damaged.verify(capsys, "--sample", "0")
    assert code == 4
    assert failed(damaged.rows()) == {row["object_id"]: {"output_sha256_mismatch"}}
    assert not any(r["pixel_compared"] for r in damaged.rows().values())


def test_a_missing_output_is_caught_by_the_next_verify(
        damaged: Copy, capsys: pytest.CaptureFixture[str]) -> None:
    assert damaged.verify(capsys)[0] == 0
    row = native_image(damaged)
    (damaged.out / row["output_path"]).unlink()  # the verify before does not hide it
    code, summary = damaged.verify(capsys)
    assert code == 4
    assert failed(damaged.rows()) == {row["object_id"]: {"output_missing"}}
    assert summary["problems"] == {"output_missing": 1} and summary["strays"] == {}


@pytest.mark.parametrize("bucket", [verify_audit.STRAY_BUCKET, 10])  # held in memory, spilled
def test_stray_files_are_listed(damaged: Copy, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch, bucket: int) -> None:
    monkeypatch.setattr(verify_audit, "STRAY_BUCKET", bucket)
    series = (damaged.out / native_image(damaged)["output_path"]).parent
    (series / ".x.dcm.migrate-fs.tmp").write_bytes(b"half an output")
    (damaged.out / "notes.txt").write_text("copied here by hand")
    code, summary = damaged.verify(capsys)
    assert code == 4
    assert summary["strays"] == {"foreign": 1, "temporary": 1}
    assert summary["by_status"] == {"ok": summary["objects"]}  # the outputs themselves are fine
    table = sorted((r["path"], r["size"], r["kind"])
                   for r in pq.read_table(summary["strays_file"]).to_pylist())
    temporary = str((series / ".x.dcm.migrate-fs.tmp").relative_to(damaged.out))
    assert table == sorted([("notes.txt", 19, "foreign"), (temporary, 14, "temporary")])


def rewrite(path: Path, **values: str) -> None:
    """Rewrite an output with pydicom, as a hand-made fix would, with ``values`` set."""
    ds = pydicom.dcmread(path)
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    if "SOPInstanceUID" in values:
        ds.file_meta.MediaStorageSOPInstanceUID = values["SOPInstanceUID"]
    ds.save_as(path, enforce_file_format=True)


def test_an_output_with_another_uid_is_caught(damaged: Copy,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    row = native_image(damaged)
    rewrite(damaged.out / row["output_path"], SOPInstanceUID="1.2.826.0.1.3680043.8.498.1")
    code, summary = damaged.verify(capsys)
    assert code == 4
    found = failed(damaged.rows())
    assert list(found) == [row["object_id"]]
    assert "output_uid_mismatch" in found[row["object_id"]]
    assert "file_meta_mismatch" not in found[row["object_id"]]  # meta and dataset agree
    message = next(p["message"] for p in damaged.rows()[row["object_id"]]["problems"]
                   if p["code"] == "output_uid_mismatch")
    assert "1.2.826.0.1.3680043.8.498.1" in message and row["output_sop_instance_uid"] in message


def test_a_planned_change_undone_is_caught(damaged: Copy,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    # a top-level value a rule fixed (a date), and a nested reference a rule remapped
    rows = sorted(damaged.migrated().values(), key=lambda r: r["object_id"])
    dated = next(r for r in rows if any(c["rule"] == "date_format" and "." not in c["tag"]
                                        for c in r["changes"]))
    change = next(c for c in dated["changes"] if c["rule"] == "date_format")
    rewrite(damaged.out / dated["output_path"], **{change["keyword"]: "19990101"})
    nested = next(r for r in rows if r is not dated
                  and any("." in c["tag"] for c in r["changes"]))
    inner = next(c for c in nested["changes"] if "." in c["tag"])
    ds = pydicom.dcmread(damaged.out / nested["output_path"])
    steps = inner["tag"].split(".")
    item = ds
    for step in steps[:-1]:
        tag, index = step.split("[")
        item = item[int(tag[1:5] + tag[6:10], 16)].value[int(index[:-1])]
    item[int(steps[-1][1:5] + steps[-1][6:10], 16)].value = inner["old"]
    ds.save_as(damaged.out / nested["output_path"], enforce_file_format=True)
    code, _ = damaged.verify(capsys)
    assert code == 4
    found = failed(damaged.rows())
    assert set(found) == {dated["object_id"], nested["object_id"]}
    assert all("output_change_missing" in c for c in found.values())
    message = next(p["message"] for p in damaged.rows()[nested["object_id"]]["problems"]
                   if p["code"] == "output_change_missing")
    assert inner["tag"] in message


def test_archive_members_verify_with_their_pixel_data(
        tape_migration: Migration, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy = copy_of(tape_migration, tmp_path)
    members = {Path(r["member"]).name: r for r in copy.migrated().values()}
    assert sorted(members) == sorted(TAPE)
    code, summary = copy.verify(capsys, "--all")
    assert code == 0 and summary["passed"]
    rows = {name: copy.rows()[r["object_id"]] for name, r in members.items()}
    assert all(r["verify_status"] == "ok" and r["pixel_compared"] for r in rows.values())
    assert {name for name, r in rows.items() if r["pixel_sha256"]} == set(TAPE) - {"rtplan.dcm"}
    # and the comparison reads the member: a changed pixel byte of one is found
    image = next(r for r in sorted(members.values(), key=lambda r: r["object_id"])
                 if r["pixel_data_offset"] is not None and not r["pixel_data_encapsulated"])
    flip_pixel_byte(copy, image)
    assert copy.verify(capsys, "--all")[0] == 4
    assert failed(copy.rows()) == {image["object_id"]: {"output_sha256_mismatch",
                                                        "pixel_data_differs"}}


def test_two_workers_give_the_same_rows_as_one(damaged: Copy,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    flip_pixel_byte(damaged, native_image(damaged))  # a failed row among them
    assert damaged.verify(capsys, "--all", "--workers", "1")[0] == 4
    one = damaged.rows()
    assert damaged.verify(capsys, "--all", "--workers", "2")[0] == 4
    assert damaged.rows() == one


def test_verify_before_write_says_to_run_write(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--run", "r", "--manifests", str(tmp_path), "--quiet"]) == 1
    assert "run the write step first" in capsys.readouterr().err


def test_verify_after_a_stopped_write_says_to_finish_it(
        damaged: Copy, capsys: pytest.CaptureFixture[str]) -> None:
    (damaged.manifests / damaged.run / ".write.running").touch()  # what a killed write leaves
    before = sorted(p.name for p in (damaged.manifests / damaged.run).rglob("*"))
    assert main(["verify", "--run", damaged.run, "--manifests", str(damaged.manifests),
                 "--out", str(damaged.out), "--quiet"]) == 1
    assert "run migrate-fs write again" in capsys.readouterr().err
    assert sorted(p.name for p in (damaged.manifests / damaged.run).rglob("*")) == before


def test_an_interrupted_verify_resumes_and_a_finished_one_is_redone(
        damaged: Copy, capsys: pytest.CaptureFixture[str]) -> None:
    assert damaged.verify(capsys, "--all")[0] == 0
    folder = manifest.stage_dir(damaged.manifests, damaged.run, "verify")
    first = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.parquet")}
    rows = damaged.rows()
    # killed half-way: its marker stays, a part is missing
    (damaged.manifests / damaged.run / ".verify.running").touch()
    lost = sorted(first)[0]
    (folder / lost).unlink()
    assert damaged.verify(capsys, "--all")[0] == 0
    again = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.parquet")}
    assert set(again) == set(first) and damaged.rows() == rows
    assert [n for n in first if again[n] != first[n]] == [lost]  # only the lost part redone
    assert not (damaged.manifests / damaged.run / ".verify.running").exists()
    # a verify after a finished one checks everything again
    assert damaged.verify(capsys, "--all")[0] == 0
    redone = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.parquet")}
    assert all(redone[n] != again[n] for n in again)
