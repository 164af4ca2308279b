"""Hostile exports, end to end: a folder tree too deep to walk recursively (and one whose paths
are longer than the system opens), the same source named twice or inside another, a tar with a
damaged header between members, a file swapped for a link between the walk and the read; and
the identity every inventory row records (device, inode, ctime, a hash of the first bytes)."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest
from conftest import PYDICOM_DATA

from migrate_fs import manifest
from migrate_fs.archives import iter_members
from migrate_fs.cli.main import main
from migrate_fs.inventory import archive_damage, archive_problem, inventory_row
from migrate_fs.sources import (
    HEAD_BYTES,
    PATH_MAX,
    SourceObject,
    distinct_roots,
    head_digest,
    iter_sources,
)

CT = PYDICOM_DATA / "test_files" / "CT_small.dcm"
MR = PYDICOM_DATA / "test_files" / "MR_small.dcm"
RTPLAN = PYDICOM_DATA / "test_files" / "rtplan.dcm"
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY


def run(tmp_path: Path, *sources: Path | str, name: str = "t") -> tuple[int, list[dict[str, Any]]]:
    """``migrate-fs run`` on the sources; its exit code and its result rows."""
    manifests = tmp_path / f"m_{name}"
    code = main(["run", *map(str, sources), "--out", str(tmp_path / f"out_{name}"), "--run",
                 name, "--manifests", str(manifests), "--workers", "2", "--quiet"])
    return code, manifest.read_stage(manifests, name, "result").to_pylist()


def deep_tree(base: Path, depth: int, name: bytes) -> list[bytes]:
    """``depth`` nested folders ``name`` below base, made relative to each parent's descriptor
    (a path may be longer than PATH_MAX); the top and the bottom folder each get a DICOM file.
    Returns the folder chain, for :func:`remove_deep_tree`."""
    (base / "top.dcm").write_bytes(CT.read_bytes())
    fd = os.open(base, DIR_FLAGS)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
        out = os.open("bottom.dcm", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        with os.fdopen(out, "wb") as f:
            f.write(MR.read_bytes())
    finally:
        os.close(fd)
    return [name] * depth


def remove_deep_tree(base: Path, chain: list[bytes]) -> None:
    """Remove the tree bottom up, without recursion (shutil.rmtree and os.walk recurse on
    Python 3.11 and would fail in pytest's clean-up)."""
    fds = [os.open(base, DIR_FLAGS)]
    for name in chain:
        fds.append(os.open(name, DIR_FLAGS, dir_fd=fds[-1]))
    os.unlink("bottom.dcm", dir_fd=fds[-1])
    for name in reversed(chain):
        os.close(fds.pop())
        os.rmdir(name, dir_fd=fds[-1])
    os.close(fds.pop())


def relative(row: dict[str, Any], root: Path) -> str:
    return row["locator"][len(str(root)) + 1:]


def test_a_1500_level_tree_is_walked_and_migrated(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    chain = deep_tree(export, 1500, b"d")
    try:
        assert len(str(export)) + 2 * 1500 + len("/bottom.dcm") < PATH_MAX
        code, rows = run(tmp_path, export)
        assert code == 0
        by_name = {relative(r, export): r for r in rows}
        assert set(by_name) == {"top.dcm", "d/" * 1500 + "bottom.dcm"}
        assert all(r["status"] == "written" for r in rows), [r["reason"] for r in rows]
    finally:
        remove_deep_tree(export, chain)


def test_paths_longer_than_path_max_are_a_problem_of_their_own(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    chain = deep_tree(export, 1500, b"ddd")  # the bottom file's path: over 6000 bytes
    try:
        code, rows = run(tmp_path, export)
        assert code == 0
        by_name = {relative(r, export): r for r in rows}
        bottom = by_name.pop("ddd/" * 1500 + "bottom.dcm")
        assert bottom["reason"] == "path_too_long" and bottom["size"] == MR.stat().st_size
        assert bottom["status"] == "not_written"
        assert by_name["top.dcm"]["status"] == "written" and len(by_name) == 1
    finally:
        remove_deep_tree(export, chain)


def test_the_same_source_twice_or_inside_another_gives_one_row_per_object(
        tmp_path: Path) -> None:
    export = tmp_path / "export"
    (export / "inner").mkdir(parents=True)
    (export / "ct.dcm").write_bytes(CT.read_bytes())
    (export / "inner" / "mr.dcm").write_bytes(MR.read_bytes())
    alias = tmp_path / "alias"
    os.symlink(tmp_path, alias)  # the same export through a link in its path
    for name, sources in [("twice", [export, export]),
                          ("nested", [export / "inner", export]),
                          ("inside", [export, export / "inner", alias / "export" / "inner"])]:
        code, rows = run(tmp_path, *sources, name=name)
        assert code == 0, name
        assert sorted(relative(r, export) for r in rows) == ["ct.dcm", "inner/mr.dcm"], name
        assert len({r["object_id"] for r in rows}) == 2, name
        assert all(r["status"] == "written" for r in rows), name


def test_distinct_roots_keeps_the_order_and_names_the_covering_root(tmp_path: Path) -> None:
    for folder in ("a/b/c", "x"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "x" / "f").write_bytes(b"")
    os.symlink(tmp_path / "a", tmp_path / "link")
    a, b, c, x = (str(tmp_path / p) for p in ("a", "a/b", "a/b/c", "x"))
    assert distinct_roots([a, a]) == ([a], [(a, a)])
    assert distinct_roots([c, x, b, a]) == ([x, a], [(c, a), (b, a)])
    assert distinct_roots([a, str(tmp_path / "link" / "b")]) == ([a], [(str(tmp_path / "link/b"),
                                                                        a)])
    # a root that is itself a link is recorded, never followed: it covers only itself
    assert distinct_roots([str(tmp_path / "link"), a]) == ([str(tmp_path / "link"), a], [])
    assert distinct_roots([x, f"{x}/f", f"{x}/../x/f"]) == ([x], [(f"{x}/f", x), (f"{x}/f", x)])
    assert distinct_roots([f"{a}/b/../b", b]) == ([b], [(b, b)])
    # the walk order is today's: sorted, depth first, per root in the order kept
    (tmp_path / "a" / "b" / "c" / "z").write_bytes(b"")
    (tmp_path / "a" / "y").write_bytes(b"")
    found = [o.locator for o in iter_sources([c, x, a])]
    assert found == [f"{x}/f", f"{a}/b/c/z", f"{a}/y"]


def dicom_tar(compress: bool) -> tuple[bytes, list[tarfile.TarInfo]]:
    """A tar of three DICOM members whose middle header is damaged (its checksum no longer
    matches), gzipped or not; and the members as written. (ustar: no pax header, which would
    be the block damaged and the member recovered from the ustar header that follows it.)"""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for path in (CT, RTPLAN, MR):
            tf.add(path, arcname=f"export/{path.name}")
    data = bytearray(buf.getvalue())
    with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tf:
        infos = tf.getmembers()
    victim = infos[1].offset
    data[victim + 148:victim + 156] = b"garbage!"  # the checksum field
    return (gzip.compress(bytes(data)) if compress else bytes(data)), infos


@pytest.mark.parametrize("compress", [False, True], ids=["tar", "tar.gz"])
def test_a_damaged_header_between_members_loses_only_that_member(tmp_path: Path,
                                                                 compress: bool) -> None:
    data, infos = dicom_tar(compress)
    archive = tmp_path / "src" / "dump"
    archive.parent.mkdir()
    archive.write_bytes(data)
    code, rows = run(tmp_path, archive)
    assert code == 0
    members = {r["member"]: r for r in rows if r["archive"]}
    assert len(rows) == (len(infos) - 1) + 1 + 1  # members left, the damage, the archive
    assert [r["reason"] for r in rows if not r["archive"]] == ["archive"]
    assert members["export/CT_small.dcm"]["status"] == "written"
    assert members["export/MR_small.dcm"]["status"] == "written"
    damage = members[""]
    lost = infos[2].offset - infos[1].offset  # the damaged header and the data it described
    assert damage["reason"] == "archive_corrupt" and damage["member_offset"] == infos[1].offset
    assert damage["size"] == lost
    assert f"{lost} bytes from byte {infos[1].offset}" in damage["problems"][0]["message"]
    inventory = manifest.read_stage(tmp_path / "m_t", "t", "inventory")
    assert archive_damage(inventory) == {str(archive): lost}
    assert f"; {lost} bytes of it could not be read" in archive_problem(lost)["message"]


@pytest.mark.parametrize("compression", ["bz2", "xz"])
def test_bz2_and_xz_streams_recover_alike(tmp_path: Path, compression: str) -> None:
    plain, infos = dicom_tar(False)
    archive = tmp_path / "dump"
    archive.write_bytes(bz2.compress(plain) if compression == "bz2" else lzma.compress(plain))
    found = [(m.name, m.offset, m.size, m.problem) for m in iter_members([str(archive)])]
    assert found == [(infos[0].name, 0, infos[0].size, None),
                     ("", infos[1].offset, infos[2].offset - infos[1].offset, "archive_corrupt"),
                     (infos[2].name, infos[2].offset, infos[2].size, None)]


def test_a_volume_set_recovers_past_damage(tmp_path: Path) -> None:
    data, infos = dicom_tar(False)
    cut = infos[1].offset + 700  # the split falls inside the damaged region
    (tmp_path / "dump.001").write_bytes(data[:cut])
    (tmp_path / "dump.002").write_bytes(data[cut:])
    manifests = tmp_path / "m"
    assert main(["run", "--volumes", str(tmp_path / "dump.00*"), "--out", str(tmp_path / "out"),
                 "--manifests", str(manifests), "--run", "v", "--quiet", "--workers", "1"]) == 0
    rows = {r["member"]: r for r in manifest.read_stage(manifests, "v", "result").to_pylist()}
    assert {k: (r["reason"], r["status"]) for k, r in rows.items()} == {
        infos[0].name: (None, "written"), "": ("archive_corrupt", "not_written"),
        infos[2].name: (None, "written")}
    assert rows[""]["size"] == infos[2].offset - infos[1].offset


def test_damage_at_the_end_of_a_tar_is_never_silent(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        tf.add(CT, arcname="ct.dcm")
        tf.add(MR, arcname="mr.dcm")
    whole = buf.getvalue()
    with tarfile.open(fileobj=io.BytesIO(whole)) as tf:
        last = tf.getmembers()[-1].offset
    damaged_last = bytearray(whole)
    damaged_last[last + 148] ^= 0xFF
    cases = {"damaged_last": bytes(damaged_last), "garbage": whole + b"\x7f" * 1024,
             "partial": whole + b"x" * 100}
    for name, data in cases.items():
        archive = tmp_path / f"src_{name}" / "dump.tar"
        archive.parent.mkdir()
        archive.write_bytes(data)
        code, rows = run(tmp_path, archive, name=name)
        assert code == 0, name
        damage = [r for r in rows if r["reason"] == "archive_corrupt"]
        assert len(damage) == 1, name
        assert damage[0]["size"] > 0 and "bytes from byte" in damage[0]["problems"][0]["message"]
        written = {r["member"] for r in rows if r["status"] == "written"}
        assert written == ({"ct.dcm"} if name == "damaged_last" else {"ct.dcm", "mr.dcm"}), name


def walked(path: Path) -> SourceObject:
    (obj,) = iter_sources([path])
    return obj


def test_a_file_swapped_for_a_link_after_the_walk_is_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "outside.dcm"
    secret.write_bytes(MR.read_bytes())
    target = tmp_path / "export" / "ct.dcm"
    target.parent.mkdir()
    target.write_bytes(CT.read_bytes())
    obj = walked(target)
    target.unlink()
    os.symlink(secret, target)
    row = inventory_row(obj)
    assert row["kind"] == "not_regular_file" and row["problems"][0]["code"] == "not_regular_file"
    assert row.get("head_sha256") is None and row.get("sop_instance_uid") is None
    target.unlink()
    os.mkfifo(target)  # swapped for a FIFO: opened without blocking, not read
    assert inventory_row(obj)["problems"][0]["code"] == "not_regular_file"
    target.unlink()
    target.mkdir()  # swapped for a folder: not read either
    assert inventory_row(obj)["problems"][0]["code"] == "not_regular_file"
    target.rmdir()
    os.link(secret, target)  # another file (another inode) at the same path
    (problem,) = inventory_row(obj)["problems"]
    assert problem["code"] == "source_changed" and "inode" in problem["message"]
    target.unlink()
    target.write_bytes(MR.read_bytes())  # a new file, whatever inode it gets: its size differs
    assert inventory_row(obj)["problems"][0]["code"] == "source_changed"


def test_identity_columns_are_filled(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    small = export / "small.bin"
    small.write_bytes(b"not DICOM")
    (export / "ct.dcm").write_bytes(CT.read_bytes())
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(MR, arcname="mr.dcm")
    (export / "dump.tgz").write_bytes(buf.getvalue())
    manifests = tmp_path / "m"
    assert main(["inventory", str(export), "--run", "t", "--manifests", str(manifests),
                 "--workers", "1", "--quiet"]) == 0
    rows = {Path(r["locator"]).name if not r["archive"] else r["member"]: r
            for r in manifest.read_stage(manifests, "t", "inventory").to_pylist()}
    assert set(rows) == {"small.bin", "ct.dcm", "dump.tgz", "mr.dcm"}
    for name in ("small.bin", "ct.dcm", "dump.tgz"):
        st = os.stat(export / name)
        row = rows[name]
        assert (row["device"], row["inode"], row["ctime_ns"]) == (st.st_dev, st.st_ino,
                                                                   st.st_ctime_ns), name
        head = (export / name).read_bytes()[:HEAD_BYTES]
        assert row["head_sha256"] == hashlib.sha256(head).hexdigest() == head_digest(head), name
    member = rows["mr.dcm"]
    assert member["device"] is None and member["inode"] is None and member["ctime_ns"] is None
    assert member["head_sha256"] == hashlib.sha256(MR.read_bytes()[:HEAD_BYTES]).hexdigest()
    assert len(CT.read_bytes()) > HEAD_BYTES  # the head is a prefix, not the whole file
