"""Tape dumps: tar archives (plain, gz, bz2, xz, split in volumes, damaged, hostile) migrated
straight from the archive, with the same output as the extracted tree."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest
from conftest import PYDICOM_DATA, Migration, tree_digest

from migrate_fs.cli import main

DICOM = sorted((PYDICOM_DATA / "test_files").glob("*.dcm"))


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small export: pydicom's test files in two folders, junk included."""
    root = tmp_path_factory.mktemp("tree") / "export"
    for i, path in enumerate(DICOM):
        target = root / f"vol{i % 2}" / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    (root / "vol0" / "export.log").write_text("copied by the old archive\n")
    return root


@pytest.fixture(scope="module")
def tree_run(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Migration:
    return Migration(tree, tmp_path_factory.mktemp("tree_run"))


def make_tar(tree: Path, path: Path, mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tf:
        tf.add(tree, arcname="export")
    return path


def outputs(out: Path) -> dict[str, str]:
    return {k: v[0] for k, v in tree_digest(out).items()}


def members_of(path: Path) -> int:
    with tarfile.open(path) as tf:
        return len(tf.getmembers())


@pytest.mark.parametrize("mode,name", [("w", "dump.tar"), ("w:gz", "dump.tar.gz"),
                                       ("w:bz2", "dump.tbz"), ("w:xz", "dump.bin")])
def test_tar_migrates_exactly_like_the_extracted_tree(tree: Path, tree_run: Migration,
                                                      tmp_path: Path, mode: str,
                                                      name: str) -> None:
    archive = make_tar(tree, tmp_path / name, mode)  # detected by content, not by name
    before = tree_digest(tmp_path)
    run = Migration(archive, tmp_path / "run")
    assert run.exit_code == 0
    assert outputs(run.out) == outputs(tree_run.out)
    rows = run.stage("result")
    assert len(rows) == members_of(archive) + 1  # every member, and the archive itself
    assert len({r["object_id"] for r in rows}) == len(rows)
    members = [r for r in rows if r["archive"]]
    assert all(r["locator"] == f"{archive}::{r['member']}@{r['member_offset']}" for r in members)
    assert [r for r in rows if not r["archive"]][0]["reason"] == "archive"
    assert {k: v for k, v in tree_digest(tmp_path).items() if not k.startswith("run/")} == before


def test_archive_inside_an_export_folder_is_expanded(tree: Path, tree_run: Migration,
                                                     tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    make_tar(tree, export / "tape01", "w:gz")
    (export / "loose.dcm").write_bytes((PYDICOM_DATA / "test_files" / "CT_small.dcm").read_bytes())
    run = Migration(export, tmp_path / "run")
    rows = run.stage("result")
    assert len(rows) == members_of(export / "tape01") + 2
    assert set(outputs(tree_run.out)) <= set(outputs(run.out))


def test_locators_and_ids_are_stable_across_runs(tree: Path, tmp_path: Path) -> None:
    archive = make_tar(tree, tmp_path / "dump.tar")
    first = Migration(archive, tmp_path / "one").stage("plan")
    second = Migration(archive, tmp_path / "two").stage("plan")
    key = lambda rows: sorted((r["object_id"], r["locator"], r["action"]) for r in rows)  # noqa: E731
    assert key(first) == key(second)


def test_volume_set_is_one_export(tree: Path, tree_run: Migration, tmp_path: Path) -> None:
    data = make_tar(tree, tmp_path / "whole.tar").read_bytes()
    cut = len(data) // 2 + 1234  # inside a member, as a tape split falls
    (tmp_path / "dump.001").write_bytes(data[:cut])
    (tmp_path / "dump.002").write_bytes(data[cut:])
    out, manifests = tmp_path / "out", tmp_path / "m"
    assert main(["run", "--volumes", str(tmp_path / "dump.0*"), "--out", str(out),
                 "--manifests", str(manifests), "--run", "v", "--quiet", "--workers", "2"]) == 0
    assert outputs(out) == outputs(tree_run.out)


@pytest.mark.parametrize("mode", ["w", "w:gz"])
def test_damaged_archive_keeps_what_comes_before_the_damage(tree: Path, tmp_path: Path,
                                                            mode: str) -> None:
    whole = make_tar(tree, tmp_path / "whole", mode)
    with tarfile.open(whole) as tf:
        infos = [i for i in tf.getmembers() if i.isreg()]
    victim = infos[len(infos) // 2]
    data = whole.read_bytes()
    if mode == "w":
        cut = victim.offset_data + victim.size // 2
    else:  # a compressed stream cut: somewhere past the start of the victim's data
        cut = len(data) * 6 // 10
    (tmp_path / "cut").mkdir()
    damaged = tmp_path / "cut" / "dump"
    damaged.write_bytes(data[:cut])
    run = Migration(damaged, tmp_path / "run")
    assert run.exit_code == 0
    rows = {r["member"]: r for r in run.stage("result") if r["archive"]}
    damage = [r for r in rows.values() if r["reason"] in ("archive_truncated", "archive_corrupt")]
    assert len(damage) == 1
    before = [i for i in infos if i.offset < damage[0]["member_offset"]]
    assert before and all(rows[i.name]["reason"] not in ("archive_truncated",) for i in before)
    written = [r for r in rows.values() if r["status"] == "written"]
    assert written and all(r["member_offset"] < damage[0]["member_offset"] for r in written)
    if mode == "w":
        assert damage[0]["member"] == victim.name
        assert damage[0]["reason"] == "archive_truncated"


def test_hostile_members_are_recorded_never_followed(tmp_path: Path) -> None:
    dicom = (PYDICOM_DATA / "test_files" / "CT_small.dcm").read_bytes()
    archive = tmp_path / "hostile.tar"
    with tarfile.open(archive, "w") as tf:
        def add(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"",
                link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.size = kind, link, len(data)
            tf.addfile(info, io.BytesIO(data) if data else None)
        add("ok/ct.dcm", data=dicom)
        add("../evil.dcm", data=dicom)
        add("/etc/evil.dcm", data=dicom)
        add("ok/link", tarfile.SYMTYPE, link="/etc/passwd")
        add("ok/hard", tarfile.LNKTYPE, link="ok/ct.dcm")
        add("ok/fifo", tarfile.FIFOTYPE)
        add("ok/dir", tarfile.DIRTYPE)
    before = set(os.listdir(tmp_path))
    run = Migration(archive, tmp_path / "run")
    rows = {r["member"]: r for r in run.stage("result") if r["archive"]}
    assert {k: v["reason"] for k, v in rows.items()} == {
        "ok/ct.dcm": None, "../evil.dcm": "unsafe_member_path",
        "/etc/evil.dcm": "unsafe_member_path", "ok/link": "archive_symlink",
        "ok/hard": "archive_hardlink", "ok/fifo": "archive_special", "ok/dir": "archive_directory"}
    assert rows["ok/ct.dcm"]["status"] == "written"
    assert set(os.listdir(tmp_path)) == before | {"run"}
    assert not Path("/etc/evil.dcm").exists()
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert all((tmp_path / "run" / "out") in p.parents or (tmp_path / "run" / "m") in p.parents
               for p in files)


def test_zip_export_migrates_like_the_tree(tree: Path, tree_run: Migration, tmp_path: Path) -> None:
    import zipfile

    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(tree.rglob("*")):
            zf.write(path, "export/" + str(path.relative_to(tree)))
        zf.writestr("../escape.dcm", DICOM[0].read_bytes())
    run = Migration(archive, tmp_path / "run")
    rows = {r["member"]: r for r in run.stage("result") if r["archive"]}
    assert rows["../escape.dcm"]["reason"] == "unsafe_member_path"
    assert outputs(run.out) == outputs(tree_run.out)
