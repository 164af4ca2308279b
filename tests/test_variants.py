"""Same UID, different content: a variant only when decoding proves it, else a conflict.

The groups are built from pydicom's MR_small: a damaged native copy (a few pixel bytes XOR-ed)
that sorts before the genuine copies, a big endian copy of the genuine pixels, a lossless RLE
copy, lossy JPEG 2000 copies at two ratios, and a lossy copy whose code stream is broken.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import JPEG2000, ExplicitVRLittleEndian
from test_rules import Run, codes

MR = "MR_small.dcm"


def damaged(path: Path) -> Path:
    """A native copy of MR_small with a few pixel bytes changed: the kind of copy that must
    never be migrated silently in place of the genuine one."""
    ds = pydicom.dcmread(get_testdata_file(MR))
    pixels = bytearray(ds.PixelData)
    for i in range(100, 140):
        pixels[i] ^= 0x5A
    ds.PixelData = bytes(pixels)
    ds.save_as(path)
    return path


def lossy(path: Path, ratio: int) -> Path:
    ds = pydicom.dcmread(get_testdata_file(MR))
    ds.compress(JPEG2000, j2k_cr=[ratio], generate_instance_uid=False)
    ds.save_as(path)
    return path


def broken_lossy(path: Path) -> Path:
    """A lossy copy whose JPEG 2000 code stream is cut: it no longer decodes."""
    ds = pydicom.dcmread(lossy(path, 20))
    data = bytearray(ds.PixelData)
    frame_start = 8 + 8 + 4  # basic offset table item (empty), then the fragment's header
    del data[frame_start + 60:-2]
    data[frame_start - 4:frame_start] = (len(data) - frame_start - 8 + 8).to_bytes(4, "little")
    ds.PixelData = bytes(data[:len(data) - 8]) + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    ds.save_as(path)
    return path


def export(root: Path, files: dict[str, Any]) -> Path:
    root.mkdir(parents=True)
    for name, make in files.items():
        if isinstance(make, str):
            shutil.copy(get_testdata_file(make), root / name)
        else:
            make(root / name)
    return root


def decisions(run: Run) -> dict[str, tuple[str, str | None, str | None]]:
    rows = run.rows("plan")
    names = {r["object_id"]: name for name, r in rows.items()}
    return {name: (r["action"], r["reason"], names.get(r["duplicate_of"]))
            for name, r in rows.items()}


def assert_reasons_are_problems(run: Run) -> None:
    for name, row in run.rows("plan").items():
        if row["reason"] is not None:
            assert row["reason"] in codes(row), (name, row["reason"], codes(row))


def test_a_damaged_copy_that_sorts_first_makes_a_conflict(tmp_path: Path) -> None:
    root = export(tmp_path / "e", {"a_damaged.dcm": damaged, "b_genuine.dcm": MR,
                                   "c_big_endian.dcm": "MR_small_bigendian.dcm",
                                   "d_rle.dcm": "MR_small_RLE.dcm"})
    run = Run(root, tmp_path)
    assert run.exit_code == 0
    got = decisions(run)
    assert {d[:2] for d in got.values()} == {("quarantine", "uid_conflict")}, got
    plan = run.rows("plan")
    assert "PixelData" in plan["a_damaged.dcm"]["differs"]
    message = next(p["message"] for p in plan["a_damaged.dcm"]["problems"]
                   if p["code"] == "uid_conflict")
    assert "decoded pixel values differ" in message
    assert not list(run.out.rglob("*.dcm"))  # nothing with that UID reached the output
    assert_reasons_are_problems(run)


def test_a_lossless_variant_is_proven_by_decoding(tmp_path: Path) -> None:
    root = export(tmp_path / "e", {"b_genuine.dcm": MR,
                                   "c_big_endian.dcm": "MR_small_bigendian.dcm",
                                   "d_rle.dcm": "MR_small_RLE.dcm",
                                   "e_j2k_lossless.dcm": "MR_small_jp2klossless.dcm",
                                   "f_lossy.dcm": lambda p: lossy(p, 20)})
    run = Run(root, tmp_path)
    got = decisions(run)
    assert got["b_genuine.dcm"] == ("migrate", None, None)
    assert got["c_big_endian.dcm"] == ("skip_duplicate", "duplicate", "b_genuine.dcm")
    for name in ("d_rle.dcm", "e_j2k_lossless.dcm", "f_lossy.dcm"):
        assert got[name] == ("skip_duplicate", "transfer_syntax_variant", "b_genuine.dcm")
    plan = run.rows("plan")
    kept = next(p["message"] for p in plan["b_genuine.dcm"]["problems"]
                if p["code"] == "kept_over_variant")
    for name in ("d_rle.dcm", "e_j2k_lossless.dcm", "f_lossy.dcm"):
        assert plan[name]["object_id"] in kept
    assert "proven by decoding" in next(p["message"] for p in plan["d_rle.dcm"]["problems"]
                                        if p["code"] == "transfer_syntax_variant")
    out = run.output("b_genuine.dcm")
    assert out.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert out.PixelData == pydicom.dcmread(get_testdata_file(MR)).PixelData
    assert_reasons_are_problems(run)


def test_lossy_copies_without_a_lossless_one_are_a_conflict(tmp_path: Path) -> None:
    root = export(tmp_path / "e", {"a_lossy20.dcm": lambda p: lossy(p, 20),
                                   "b_lossy40.dcm": lambda p: lossy(p, 40)})
    run = Run(root, tmp_path)
    got = decisions(run)
    assert {d[:2] for d in got.values()} == {("quarantine", "uid_conflict")}, got
    assert_reasons_are_problems(run)


def test_a_lossy_copy_that_does_not_decode_is_reported(tmp_path: Path) -> None:
    root = export(tmp_path / "e", {"a_broken_lossy.dcm": broken_lossy, "b_genuine.dcm": MR})
    run = Run(root, tmp_path)
    got = decisions(run)
    assert got["b_genuine.dcm"] == ("migrate", None, None)
    assert got["a_broken_lossy.dcm"] == ("quarantine", "decode_failed", "b_genuine.dcm")
    assert_reasons_are_problems(run)


def test_conflict_policies_never_choose_by_locator_order(tmp_path: Path) -> None:
    """keep_newest_file with two copies of the same age keeps neither."""
    root = export(tmp_path / "e", {"a.dcm": damaged, "b.dcm": MR})
    for name in ("a.dcm", "b.dcm"):
        (root / name).touch()
    import os
    stamp = (root / "a.dcm").stat().st_mtime_ns
    for name in ("a.dcm", "b.dcm"):
        os.utime(root / name, ns=(stamp, stamp))
    config = tmp_path / "rules.toml"
    config.write_text('[duplicates]\nconflict = "keep_newest_file"\n')
    run = Run(root, tmp_path, "--config", str(config))
    got = decisions(run)
    assert {d[:2] for d in got.values()} == {("quarantine", "uid_conflict")}, got
    assert any("equally new" in p["message"] for p in run.rows("plan")["a.dcm"]["problems"])
    later = stamp + 10**9
    os.utime(root / "b.dcm", ns=(later, later))
    again = Run(root, tmp_path / "again", "--config", str(config))
    got = decisions(again)
    assert got["b.dcm"] == ("migrate", None, None)
    assert got["a.dcm"] == ("quarantine", "uid_conflict", "b.dcm")
    assert "kept_over_conflict" in codes(again.rows("plan")["b.dcm"])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_source_order_never_changes_which_content_is_migrated(tmp_path: Path,
                                                              seed: int) -> None:
    files = {"genuine.dcm": MR, "big_endian.dcm": "MR_small_bigendian.dcm",
             "rle.dcm": "MR_small_RLE.dcm", "lossy.dcm": lambda p: lossy(p, 20),
             "ct.dcm": "CT_small.dcm", "ct_lossy.dcm": "JPEG2000.dcm",
             "jpeg_lossy.dcm": "JPEG-lossy.dcm", "jpeg_ext.dcm": "JPGExtended.dcm"}
    names = list(files)
    results = []
    for attempt, order in enumerate([names, random.Random(seed).sample(names, len(names))]):
        prefixed = {f"{i:02d}_{name}": files[name] for i, name in enumerate(order)}
        run = Run(export(tmp_path / f"e{attempt}", prefixed), tmp_path / f"r{attempt}")
        migrated = set()
        for row in run.rows("result").values():
            if row["status"] == "written":
                ds = pydicom.dcmread(run.out / row["output_path"])
                migrated.add((str(ds.SOPInstanceUID), ds.pixel_array.tobytes()))
        quarantined = {(r["sop_instance_uid"], r["reason"]) for r in run.rows("plan").values()
                       if r["action"] == "quarantine"}
        results.append((migrated, quarantined))
    assert results[0] == results[1]
