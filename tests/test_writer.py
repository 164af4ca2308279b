"""writer: every readable pydicom test file written as Part 10 and compared with its source."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from conftest import PYDICOM_DATA
from dicom_compare import compare_migrated

from migrate_fs import writer
from migrate_fs.inventory import inventory_row
from migrate_fs.plan import output_transfer_syntax
from migrate_fs.problems import first_blocking
from migrate_fs.sources import iter_sources
from migrate_fs.writer import write_object

ROWS = [inventory_row(o) for o in iter_sources([PYDICOM_DATA / "test_files",
                                                 PYDICOM_DATA / "charset_files"])]
MIGRATABLE = [r for r in ROWS if first_blocking(r["problems"]) is None]


def planned(row: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    return {**row, "output_path": f"P/ST/SE/{name or row['object_id']}.dcm",
            "output_transfer_syntax": output_transfer_syntax(row["transfer_syntax"]),
            "changes": []}


def test_corpus_covers_every_source_encoding() -> None:
    syntaxes = {r["transfer_syntax"] for r in MIGRATABLE}
    assert {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
            "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.90"} <= syntaxes
    assert any(not r["has_file_meta"] for r in MIGRATABLE)


@pytest.mark.parametrize("row", MIGRATABLE, ids=lambda r: Path(r["locator"]).name)
def test_output_equals_source_except_listed_changes(row: dict[str, Any], tmp_path: Path) -> None:
    row = planned(row)
    result = write_object(row, tmp_path)
    assert result["status"] == "written", result["result_message"]
    row.update(result)
    assert compare_migrated(row["locator"], str(tmp_path / row["output_path"]), row) == []
    if row["is_implicit_vr"] or not row["is_little_endian"]:
        source = pydicom.dcmread(row["locator"], force=True)
        listed = {c["tag"] for c in row["changes"] if c["rule"] == "drop_group_length"}
        assert listed == {str(t) for t in source.keys() if t.element == 0 and t.group != 2}


def test_comparison_catches_a_changed_pixel(tmp_path: Path) -> None:
    row = planned(next(r for r in MIGRATABLE if r["locator"].endswith("/CT_small.dcm")))
    row.update(write_object(row, tmp_path))
    path = tmp_path / row["output_path"]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert compare_migrated(row["locator"], str(path), row) != []


@pytest.mark.parametrize("little,big", [("MR_small.dcm", "MR_small_bigendian.dcm"),
                                        ("rtdose.dcm", "rtdose_expb.dcm"),
                                        ("SC_rgb_small_odd.dcm",
                                         "SC_rgb_small_odd_big_endian.dcm")])
def test_big_endian_pixels_are_swapped_as_the_vr_requires(little: str, big: str,
                                                          tmp_path: Path) -> None:
    row = planned(next(r for r in ROWS if r["locator"].endswith("/" + big)))
    assert write_object(row, tmp_path)["status"] == "written"
    out = pydicom.dcmread(tmp_path / row["output_path"])
    reference = pydicom.dcmread(PYDICOM_DATA / "test_files" / little)
    assert out.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert out.PixelData == reference.PixelData
    assert np.array_equal(out.pixel_array, reference.pixel_array)


def test_file_meta_is_regenerated(tmp_path: Path) -> None:
    row = planned(next(r for r in MIGRATABLE if not r["has_file_meta"]))
    write_object(row, tmp_path)
    meta = pydicom.dcmread(tmp_path / row["output_path"]).file_meta
    assert meta.MediaStorageSOPInstanceUID == row["sop_instance_uid"]
    assert meta.MediaStorageSOPClassUID == row["sop_class_uid"]
    assert meta.ImplementationClassUID == writer.ImplementationClassUID
    assert meta.ImplementationVersionName == writer.ImplementationVersionName
    assert meta.FileMetaInformationGroupLength == len(writer.file_meta(
        row["sop_class_uid"], row["sop_instance_uid"], row["output_transfer_syntax"])) - 144


def test_interrupted_write_leaves_no_partial_file(tmp_path: Path, monkeypatch) -> None:
    row = planned(next(r for r in MIGRATABLE if r["locator"].endswith("/CT_small.dcm")))

    def dies_midway(src: io.BufferedReader, sink: Any, length: int | None, unit: int = 1) -> int:
        sink.write(src.read(100))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "copy_range", dies_midway)
    result = write_object(row, tmp_path)
    assert (result["status"], result["reason"]) == ("failed", "write_failed")
    assert "No space left" in result["result_message"]
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_existing_files_are_never_overwritten(tmp_path: Path) -> None:
    row = planned(next(r for r in MIGRATABLE if r["locator"].endswith("/CT_small.dcm")))
    assert write_object(row, tmp_path)["status"] == "written"
    assert write_object(row, tmp_path)["status"] == "already_present"
    target = tmp_path / row["output_path"]
    target.write_bytes(b"somebody else's file")
    result = write_object(row, tmp_path)
    assert (result["status"], result["reason"]) == ("failed", "output_exists_different")
    assert target.read_bytes() == b"somebody else's file"


def test_changed_source_is_not_migrated(tmp_path: Path) -> None:
    source = tmp_path / "src.dcm"
    source.write_bytes((PYDICOM_DATA / "test_files" / "CT_small.dcm").read_bytes())
    row = planned(inventory_row(next(iter_sources([source]))))
    with open(source, "ab") as f:
        f.write(b"\0\0")
    result = write_object(row, tmp_path / "out")
    assert (result["status"], result["reason"]) == ("failed", "source_changed")
    assert not (tmp_path / "out" / row["output_path"]).exists()


def test_output_path_outside_the_root_is_refused(tmp_path: Path) -> None:
    row = planned(MIGRATABLE[0])
    row["output_path"] = "../escaped.dcm"
    result = write_object(row, tmp_path / "out")
    assert (result["status"], result["reason"]) == ("failed", "unsafe_path")
    assert not (tmp_path / "escaped.dcm").exists()


def _refuse_tmpfile(monkeypatch: pytest.MonkeyPatch) -> None:
    """A file system without unnamed files (NFS, older kernels): O_TMPFILE fails."""
    real_open = writer.os.open

    def no_tmpfile(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & writer.os.O_TMPFILE == writer.os.O_TMPFILE:
            raise OSError(95, "Operation not supported", path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(writer.os, "open", no_tmpfile)


def _refuse_links_to_unnamed(monkeypatch: pytest.MonkeyPatch) -> None:
    """No privilege for AT_EMPTY_PATH and no usable /proc: an unnamed file cannot be named."""
    real_link = writer.os.link

    def no_proc(src: Any, dst: Any, **kwargs: Any) -> None:
        if str(src).startswith("/proc/"):
            raise OSError(18, "Invalid cross-device link", src)
        real_link(src, dst, **kwargs)

    monkeypatch.setattr(writer.os, "link", no_proc)
    monkeypatch.setattr(writer, "_naming", ["proc"])


@pytest.mark.parametrize("file_system", ["as it is", "no unnamed files", "unnamed, no way to "
                                         "name them"])
def test_every_way_of_creating_the_output_gives_the_same_files(
        file_system: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outputs are the same bytes however the file system lets them be created, none is left
    half-named or as a temporary file, and none replaces an existing file."""
    rows = [planned(r) for r in MIGRATABLE[:12]]
    reference = {r["output_path"]: write_object(dict(r), tmp_path / "ref")["output_sha256"]
                 for r in rows}
    monkeypatch.setattr(writer, "_naming", ["empty_path", "proc"])
    if file_system == "no unnamed files":
        _refuse_tmpfile(monkeypatch)
    elif file_system != "as it is":
        _refuse_links_to_unnamed(monkeypatch)
    out = tmp_path / "out"
    results = {r["output_path"]: write_object(dict(r), out) for r in rows}
    assert {p: r["status"] for p, r in results.items()} == dict.fromkeys(reference, "written")
    assert {p: r["output_sha256"] for p, r in results.items()} == reference
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == sorted(reference)
    target = out / rows[0]["output_path"]
    target.write_bytes(b"somebody else's file")
    result = write_object(dict(rows[0]), out)
    assert (result["status"], result["reason"]) == ("failed", "output_exists_different")
    assert target.read_bytes() == b"somebody else's file"
    assert write_object(dict(rows[1]), out)["status"] == "already_present"
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == files


@pytest.mark.parametrize("file_system", ["as it is", "no unnamed files"])
def test_outputs_get_the_permissions_the_umask_gives(file_system: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """As with any file a program creates: a group-writable umask gives group-writable
    outputs, however the output was created."""
    monkeypatch.setattr(writer, "_naming", ["empty_path", "proc"])
    if file_system != "as it is":
        _refuse_tmpfile(monkeypatch)
    row = planned(next(r for r in MIGRATABLE if r["locator"].endswith("/CT_small.dcm")))
    old = os.umask(0o002)
    try:
        assert write_object(row, tmp_path)["status"] == "written"
    finally:
        os.umask(old)
    assert (tmp_path / row["output_path"]).stat().st_mode & 0o777 == 0o664


@pytest.mark.parametrize("file_system", ["as it is", "no unnamed files"])
def test_an_output_folder_removed_between_objects_is_made_again(
        file_system: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker remembers the folders it made; one removed meanwhile (a cleanup between runs)
    is made again, not a write_failed."""
    import shutil

    monkeypatch.setattr(writer, "_naming", ["empty_path", "proc"])
    if file_system != "as it is":
        _refuse_tmpfile(monkeypatch)
    first, second = planned(MIGRATABLE[0], "a"), planned(MIGRATABLE[1], "b")
    assert write_object(first, tmp_path)["status"] == "written"
    shutil.rmtree(tmp_path / "P")
    assert write_object(second, tmp_path)["status"] == "written"
    assert sorted(p.name for p in (tmp_path / "P" / "ST" / "SE").iterdir()) == ["b.dcm"]
