"""Hostile inputs, crafted byte by byte: one bad object never stops a run.

Each case is a real file next to a good CT_small.dcm, run end to end through ``migrate-fs run``:
exit code 0, one row per file in every stage, the expected problem code on the hostile row, the
good file migrated. Both readers (the lean walker and the pydicom fallback) give the same code.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pydicom
import pytest
from conftest import PYDICOM_DATA, ROOT, Migration
from pydicom.errors import BytesLengthException

from migrate_fs import charsets
from migrate_fs.config import Config
from migrate_fs.elements import MAX_NESTING, Inflated, Truncated, inflated_size
from migrate_fs.plan import rules
from migrate_fs.plan.rules import RuleInput, apply_rules
from migrate_fs.reader import read_header, read_header_with_pydicom

CT_SMALL = PYDICOM_DATA / "test_files" / "CT_small.dcm"
SC_CLASS = b"1.2.840.10008.5.1.4.1.1.7\x00"  # Secondary Capture Image Storage
EXPLICIT_LE, DEFLATED = b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.1.2.1.99"
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT",
            b"UV"}
UNDEFINED = 0xFFFFFFFF


def element(tag: int, vr: bytes, value: bytes, length: int | None = None) -> bytes:
    """An explicit VR little endian element, its bytes exactly as given (no padding)."""
    n = len(value) if length is None else length
    if vr in LONG_VRS:
        return struct.pack("<HH2sHI", tag >> 16, tag & 0xFFFF, vr, 0, n) + value
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr, n) + value


def item(content: bytes, length: int | None = None) -> bytes:
    return struct.pack("<HHI", 0xFFFE, 0xE000, len(content) if length is None else length) \
        + content


ITEM_END = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
SEQUENCE_END = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)


def part10(dataset: bytes, ts: bytes = EXPLICIT_LE, meta_extra: bytes = b"",
           group_length: bytes | None = None) -> bytes:
    """Preamble, file meta (``meta_extra`` appended to it) and ``dataset``."""
    body = (element(0x00020001, b"OB", b"\x00\x01") + element(0x00020002, b"UI", SC_CLASS)
            + element(0x00020003, b"UI", b"1.2.3.4\x00") + element(0x00020010, b"UI", ts)
            + meta_extra)
    length = struct.pack("<I", len(body)) if group_length is None else group_length
    return bytes(128) + b"DICM" + element(0x00020000, b"UL", length) + body + dataset


def identity(sop_instance: bytes = b"1.2.3.4\x00", charset: bytes | None = None,
             name: bytes = b"Doe^Jane") -> bytes:
    """The top-level elements of a secondary capture header, in ascending order up to (0010)."""
    return ((element(0x00080005, b"CS", charset) if charset is not None else b"")
            + element(0x00080016, b"UI", SC_CLASS) + element(0x00080018, b"UI", sop_instance)
            + element(0x00080060, b"CS", b"OT") + element(0x00100010, b"PN", name)
            + element(0x00100020, b"LO", b"PID1"))


STUDY_SERIES = element(0x0020000D, b"UI", b"1.2.3\x00") + element(0x0020000E, b"UI", b"1.2.3.5\x00")


def export_with(tmp_path: Path, hostile: dict[str, bytes]) -> Path:
    """An export holding the hostile files and a good CT_small.dcm after them."""
    root = tmp_path / "export"
    root.mkdir()
    for name, data in hostile.items():
        (root / name).write_bytes(data)
    shutil.copy(CT_SMALL, root / "z_good.dcm")
    return root


def migrate(tmp_path: Path, hostile: dict[str, bytes]) -> tuple[Migration, dict]:
    """Run ``migrate-fs run`` (2 workers) and check what every hostile case must give."""
    export = export_with(tmp_path, hostile)
    started = time.monotonic()
    run = Migration(export, tmp_path, 2)
    assert run.exit_code == 0
    files = len(hostile) + 1
    for stage in ("inventory", "plan", "result"):
        assert len(run.stage(stage)) == files, stage
    rows = run.by_name()
    good = rows["z_good.dcm"]
    assert (good["action"], good["status"]) == ("migrate", "written"), good["problems"]
    pydicom.dcmread(run.out / good["output_path"])
    assert time.monotonic() - started < 120
    return run, rows


def codes(data: bytes) -> tuple[list[str], list[str]]:
    """The problem codes of the lean reader and of the pydicom fallback; neither raises."""
    lean = read_header(io.BytesIO(data), len(data))
    slow = read_header_with_pydicom(io.BytesIO(data), len(data))
    return [p.code for p in lean.problems], [p.code for p in slow.problems]


def assert_quarantined(rows: dict, name: str, code: str) -> None:
    row = rows[name]
    assert (row["action"], row["reason"], row["status"]) == ("quarantine", code, "not_written"), \
        row["problems"]


# 1. Deeply nested sequences -------------------------------------------------------------------

def nested_undefined(depth: int) -> bytes:
    """(0040,0275) sequences, each in the one item of the one above, all of undefined length."""
    opening = (struct.pack("<HH2sHI", 0x0040, 0x0275, b"SQ", 0, UNDEFINED)
               + struct.pack("<HHI", 0xFFFE, 0xE000, UNDEFINED))
    return opening * depth + (ITEM_END + SEQUENCE_END) * depth


def nested_defined(depth: int) -> bytes:
    """The same with every sequence and item of defined length (built from the inside out)."""
    inner = element(0x00400009, b"SH", b"SPS1")
    for _ in range(depth):
        inner = element(0x00400275, b"SQ", item(inner))
    return inner


@pytest.mark.parametrize("nesting", [nested_undefined, nested_defined])
def test_sequences_nested_10000_deep_are_refused_not_recursed(tmp_path: Path, nesting) -> None:
    data = part10(identity() + STUDY_SERIES + nesting(10_000))
    assert codes(data) == (["nesting_too_deep"], ["nesting_too_deep"])
    real = part10(identity() + STUDY_SERIES + nesting(8))  # as deep as real data gets: fine
    assert "nesting_too_deep" not in codes(real)[0] + codes(real)[1]
    limit = part10(identity() + STUDY_SERIES + nesting(MAX_NESTING))
    over = part10(identity() + STUDY_SERIES + nesting(MAX_NESTING + 1))
    assert "nesting_too_deep" not in codes(limit)[0] + codes(limit)[1]
    assert codes(over) == (["nesting_too_deep"], ["nesting_too_deep"])
    _, rows = migrate(tmp_path, {"nested.dcm": data})
    assert_quarantined(rows, "nested.dcm", "nesting_too_deep")


# 2. A file meta element whose length is not a multiple of its VR's size ---------------------

def test_odd_length_file_meta_is_recorded_and_the_object_migrates(tmp_path: Path) -> None:
    data = part10(identity() + STUDY_SERIES, group_length=b"\xbc\x00\x00")  # a 3-byte UL
    with pytest.raises(BytesLengthException):
        pydicom.dcmread(io.BytesIO(data))  # what pydicom makes of the source
    assert codes(data) == (["invalid_file_meta", "missing_pixel_data"],) * 2
    run, rows = migrate(tmp_path, {"odd_meta.dcm": data})
    row = rows["odd_meta.dcm"]
    assert row["action"] == "migrate" and row["status"] == "written"
    assert "invalid_file_meta" in [p["code"] for p in row["problems"]]
    out = pydicom.dcmread(run.out / row["output_path"])  # the file meta was regenerated
    assert out.file_meta.FileMetaInformationGroupLength > 0 and out.SOPInstanceUID == "1.2.3.4"


# 3. NUL bytes in values the reader decodes ----------------------------------------------------

def test_nul_bytes_in_uids_and_the_transfer_syntax_are_contained(tmp_path: Path) -> None:
    nul_ts = part10(identity() + STUDY_SERIES, ts=b"1.2.840\x0010008.1.2.1\x00")
    nul_uid = part10(identity(sop_instance=b"1.2\x00.3.4\x00") + STUDY_SERIES)
    nul_meta_class = part10(identity() + STUDY_SERIES,
                            meta_extra=element(0x00020012, b"UI", b"1.2\x00\x00"))
    assert codes(nul_ts) == (["unsupported_transfer_syntax"],) * 2
    for data in (nul_uid, nul_meta_class):
        lean, slow = codes(data)
        assert lean == slow and "unreadable_header" not in lean
    run, rows = migrate(tmp_path, {"nul_ts.dcm": nul_ts, "nul_uid.dcm": nul_uid,
                                   "nul_meta.dcm": nul_meta_class})
    assert_quarantined(rows, "nul_ts.dcm", "unsupported_transfer_syntax")
    row = rows["nul_uid.dcm"]  # an invalid UID: remapped (rule invalid_uid), then migrated
    assert "invalid_uid" in [p["code"] for p in row["problems"]]
    for name in ("nul_uid.dcm", "nul_meta.dcm"):
        if rows[name]["status"] == "written":
            pydicom.dcmread(run.out / rows[name]["output_path"])


# 4. A Specific Character Set with a NUL, and rules that raise ---------------------------------

@pytest.mark.parametrize("declared", [b"ISO_IR\x00100", b"Not\x00Supplied", b"\x00\x00"])
def test_a_character_set_with_a_nul_is_invalid_not_an_abort(tmp_path: Path,
                                                           declared: bytes) -> None:
    data = part10(identity(charset=declared, name=b"M\xfcller^J\xf6rg") + STUDY_SERIES)
    lean, _ = codes(data)  # pydicom itself raises on such a set; the lean reader reads on
    assert "unreadable_header" not in lean
    resolved = charsets.resolve(declared.decode("latin-1").rstrip("\x00 "), {})
    if declared.strip(b"\x00"):
        assert resolved.problem == "invalid_character_set"
    _, rows = migrate(tmp_path, {"charset.dcm": data})
    row = rows["charset.dcm"]
    found = [p["code"] for p in row["problems"]]
    if declared.strip(b"\x00"):
        assert_quarantined(rows, "charset.dcm", "invalid_character_set")
    else:  # only NULs: absent, and non-ASCII text with no character set
        assert row["reason"] == "missing_character_set", found


def test_a_character_set_with_a_nul_is_never_copied_even_under_warn(tmp_path: Path) -> None:
    data = part10(identity(charset=b"ISO_IR\x00100", name=b"M\xfcller") + STUDY_SERIES)
    export = export_with(tmp_path, {"charset.dcm": data})
    (tmp_path / "rules.toml").write_text('[rules]\ncharacter_set = "warn"\n')
    run = Migration(export, tmp_path, 1, "--config", str(tmp_path / "rules.toml"))
    row = run.by_name()["charset.dcm"]
    assert (row["status"], row["reason"]) == ("not_written", "invalid_character_set")
    assert any("NUL byte" in p["message"] for p in row["problems"])


def test_rules_that_raise_give_rule_error_and_the_plan_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(declared, overrides):  # type: ignore[no-untyped-def]
        if declared and "KOI8" in declared:
            raise ValueError("a value no codec lookup survives")
        return resolve(declared, overrides)

    resolve = charsets.resolve
    monkeypatch.setattr(rules.charsets, "resolve", broken)
    out = apply_rules(RuleInput(charset="KOI8"), Config())
    assert out.changes == [] and [(c, stops) for c, _, stops in out.problems] == \
        [("rule_error", True)]
    assert "ValueError: a value no codec lookup survives" in out.problems[0][1]
    data = part10(identity(charset=b"KOI8") + STUDY_SERIES)
    export = export_with(tmp_path, {"koi8.dcm": data})
    run = Migration(export, tmp_path, 1)  # one worker: the plan runs in this process
    assert run.exit_code == 0
    rows = run.by_name()
    assert_quarantined(rows, "koi8.dcm", "rule_error")
    assert rows["z_good.dcm"]["status"] == "written"


# 5. Unknown VRs and 6. descending tags ----------------------------------------------------------

REQUEST = 0x00400275  # Request Attributes Sequence: items hold (0040,0009) and (0040,1001)
BAD_VR = struct.pack("<HH2sH", 0x0020, 0x0010, b"XX", 4) + b"S1  "
NOT_LETTERS = struct.pack("<HH2sH", 0x0020, 0x0010, b"\x13\x37", 4) + b"S1  "
IN_ITEM = element(REQUEST, b"SQ", item(element(0x00400009, b"SH", b"SPS1")
                                       + struct.pack("<HH2sH", 0x0040, 0x1001, b"Q1", 4)
                                       + b"RP01"))
IMPLICIT_ITEM = element(REQUEST, b"SQ", item(struct.pack("<HHI", 0x0040, 0x0009, 4) + b"SPS1"))
IN_UNDEFINED_ITEM = element(REQUEST, b"SQ", item(
    element(0x00400009, b"SH", b"SPS1") + struct.pack("<HH2sH", 0x0040, 0x1001, b"\x00\x01", 4)
    + b"RP01" + ITEM_END, length=UNDEFINED) + SEQUENCE_END, length=UNDEFINED)


@pytest.mark.parametrize("bad", [BAD_VR, NOT_LETTERS, IN_ITEM, IMPLICIT_ITEM, IN_UNDEFINED_ITEM],
                         ids=["XX", "not_letters", "in_item", "implicit_item",
                              "in_undefined_length_item"])
def test_unknown_vrs_are_refused(tmp_path: Path, bad: bytes) -> None:
    data = part10(identity() + STUDY_SERIES + bad)
    assert codes(data) == (["invalid_vr"], ["invalid_vr"])
    message = read_header(io.BytesIO(data), len(data)).problems[0].message
    assert "at byte" in message and "(00" in message
    _, rows = migrate(tmp_path, {"bad_vr.dcm": data})
    assert_quarantined(rows, "bad_vr.dcm", "invalid_vr")


DESCENDING = (element(0x00080016, b"UI", SC_CLASS) + element(0x00100020, b"LO", b"PID1")
              + element(0x00080018, b"UI", b"1.2.3.4\x00") + STUDY_SERIES)
IN_ITEM_DESCENDING = identity() + STUDY_SERIES + element(REQUEST, b"SQ", item(
    element(0x00401001, b"SH", b"RP01") + element(0x00400009, b"SH", b"SPS1")))
REPEAT_DIFFERENT = identity() + element(0x00100020, b"LO", b"PID2") + STUDY_SERIES


@pytest.mark.parametrize("dataset", [DESCENDING, IN_ITEM_DESCENDING, REPEAT_DIFFERENT],
                         ids=["top_level", "in_item", "repeat_with_other_bytes"])
def test_tags_out_of_order_are_refused(tmp_path: Path, dataset: bytes) -> None:
    data = part10(dataset)
    lean, slow = codes(data)
    assert lean[0] == slow[0] == "tag_order"
    message = read_header(io.BytesIO(data), len(data)).problems[0].message
    assert " follows " in message or " repeats" in message
    _, rows = migrate(tmp_path, {"order.dcm": data})
    assert_quarantined(rows, "order.dcm", "tag_order")


def implicit(tag: int, value: bytes) -> bytes:
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(value)) + value


def test_a_sequence_encoded_as_un_is_checked_as_the_sequence_the_writer_writes(
        tmp_path: Path) -> None:
    """A standard sequence encoded as UN (implicit VR items inside) is written as an SQ (rule
    un_to_known_vr): its items must be in order too (found by the fuzz test: a flipped bit in a
    nested tag came out of the writer as a tag_order)."""
    def as_un(*nested: bytes) -> bytes:
        inner = implicit(0x00400009, b"SPS1") + b"".join(nested)
        return element(REQUEST, b"UN", item(inner))
    good = part10(identity() + STUDY_SERIES + as_un(implicit(0x00401001, b"RP01")))
    bad = part10(identity() + STUDY_SERIES + as_un(implicit(0x00400001, b"AE01")))
    deep_bad = part10(identity() + STUDY_SERIES + as_un(implicit(0x00400275, item(
        implicit(0x00401001, b"RP01") + implicit(0x00400009, b"SPS1")))))
    assert codes(good) == (["missing_pixel_data", "standard_element_as_un"],) * 2
    assert codes(bad) == (["tag_order"], ["tag_order"])
    assert codes(deep_bad) == (["tag_order"], ["tag_order"])
    run, rows = migrate(tmp_path, {"good_un.dcm": good, "bad_un.dcm": bad,
                                   "deep_bad_un.dcm": deep_bad})
    assert_quarantined(rows, "bad_un.dcm", "tag_order")
    assert_quarantined(rows, "deep_bad_un.dcm", "tag_order")
    out = pydicom.dcmread(run.out / rows["good_un.dcm"]["output_path"])
    assert out[REQUEST].VR == "SQ" and out[REQUEST].value[0][0x00401001].value == "RP01"


def test_an_exact_repeat_is_recorded_and_migrated() -> None:
    """pydicom's palettes/winter.dcm repeats SOPInstanceUID byte for byte: every reader keeps
    one value, so it migrates with a warning (repeated_element)."""
    data = (PYDICOM_DATA / "palettes" / "winter.dcm").read_bytes()
    assert codes(data) == (["repeated_element"], ["repeated_element"])


@pytest.mark.parametrize("sequence", [
    # An item whose length says 200 bytes but whose delimiter ends it after 16 (found by the
    # fuzz test: pydicom follows the delimiter, the writer followed the length and failed).
    element(REQUEST, b"SQ", item(element(0x00400009, b"SH", b"SPS1") + ITEM_END, length=200)
            + item(element(0x00400009, b"SH", b"SPS2")) + SEQUENCE_END, length=UNDEFINED)
    + element(0x00401400, b"LT", b"comments " * 40),
    # An item of known length that runs past the end of its sequence of known length.
    element(REQUEST, b"SQ", item(element(0x00400009, b"SH", b"SPS1"), length=40))
    + element(0x00400275 + 1, b"SH", b"X" * 40),
], ids=["length_and_delimiter", "item_past_its_sequence"])
def test_items_that_do_not_fit_their_sequence_are_refused(tmp_path: Path, sequence: bytes) -> None:
    data = part10(identity() + STUDY_SERIES + sequence)
    assert codes(data) == (["unreadable_header"], ["unreadable_header"])
    _, rows = migrate(tmp_path, {"items.dcm": data})
    assert_quarantined(rows, "items.dcm", "unreadable_header")


# 7. Deflated datasets: a bomb, and the pixel data length checked --------------------------------

def deflated(dataset_pieces, level: int = 1) -> bytes:
    """A deflated Part 10 file from the dataset bytes that ``dataset_pieces`` yields."""
    squeeze = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = b"".join(squeeze.compress(p) for p in dataset_pieces) + squeeze.flush()
    return part10(body, ts=DEFLATED)


def image_header(rows: int, columns: int, frames: bytes | None = None) -> bytes:
    return (identity() + STUDY_SERIES
            + element(0x00280002, b"US", struct.pack("<H", 1))
            + element(0x00280004, b"CS", b"MONOCHROME2 ")
            + (element(0x00280008, b"IS", frames) if frames is not None else b"")
            + element(0x00280010, b"US", struct.pack("<H", rows))
            + element(0x00280011, b"US", struct.pack("<H", columns))
            + element(0x00280100, b"US", struct.pack("<H", 16))
            + element(0x00280101, b"US", struct.pack("<H", 16))
            + element(0x00280102, b"US", struct.pack("<H", 15))
            + element(0x00280103, b"US", struct.pack("<H", 0)))


def bomb() -> bytes:
    """A deflated image whose 1 GiB of pixel data (zeros) compresses to about 5 MB."""
    size = 1 << 30
    header = image_header(32768, 16384) + element(0x7FE00010, b"OW", b"", length=size)
    zeros = bytes(1 << 20)
    return deflated([header, *(zeros for _ in range(size >> 20))])


def peak_rss_mb(args: list[str]) -> tuple[float, float]:
    """Run ``migrate-fs`` in a fresh interpreter that measures its one child: (MB, seconds)."""
    probe = ("import resource, subprocess, sys, time; t = time.monotonic(); "
             "code = subprocess.run(sys.argv[1:]).returncode; "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
             "time.monotonic() - t, code)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "migrate_fs.cli",
                           *args], capture_output=True, text=True, env=env, check=True)
    kb, seconds, code = done.stdout.split()[-3:]
    assert code == "0", done.stderr
    return int(kb) / 1024, float(seconds)


def test_a_deflate_bomb_is_refused_in_little_memory(tmp_path: Path) -> None:
    data = bomb()
    assert len(data) < 8 << 20
    assert codes(data) == (["deflate_bomb"], ["deflate_bomb"])
    export = export_with(tmp_path, {"bomb.dcm": data})
    mb, seconds = peak_rss_mb(["inventory", str(export), "--run", "t", "--manifests",
                               str(tmp_path / "m_inv"), "--workers", "1", "--quiet"])
    print(f"\ndeflate bomb: inventory (1 worker, in process) peak RSS {mb:.0f} MB, {seconds:.1f} s")
    assert mb < 400 and seconds < 60
    (tmp_path / "run").mkdir()
    _, rows = migrate(tmp_path / "run", {"bomb.dcm": data})
    assert_quarantined(rows, "bomb.dcm", "deflate_bomb")


def test_deflated_pixel_data_of_the_wrong_length_is_found(tmp_path: Path) -> None:
    short = deflated([image_header(8, 8), element(0x7FE00010, b"OW", bytes(100))])
    right = deflated([image_header(8, 8), element(0x7FE00010, b"OW", bytes(128))])
    assert codes(short) == (["pixel_data_length_mismatch"],) * 2
    assert codes(right) == ([], [])
    _, rows = migrate(tmp_path, {"short.dcm": short, "right.dcm": right})
    assert_quarantined(rows, "short.dcm", "pixel_data_length_mismatch")
    assert rows["right.dcm"]["status"] == "written"


# 8. Garbage --------------------------------------------------------------------------------------

GARBAGE = {
    "random.dcm": bytes((i * 7919 + 13) % 251 for i in range(5000)),
    "meta_then_random.dcm": part10(bytes((i * 31 + 7) % 256 for i in range(3000))),
    "huge_length.dcm": part10(identity() + element(0x00100030, b"DA", b"", length=0xFFFF)
                              + b"x" * 10),
    "huge_long_length.dcm": part10(identity() + element(0x00104000, b"LT", b"", length=0xFFFF)
                                   + element(0x7FE00010, b"OB", b"", length=0xFFFFFFF0)),
    "item_at_top.dcm": part10(identity() + ITEM_END + STUDY_SERIES),
    "bad_deflate.dcm": part10(b"\xff" * 64, ts=DEFLATED),
    "cut_deflate.dcm": deflated([image_header(8, 8), element(0x7FE00010, b"OW", bytes(128))])[:-9],
    "binary_charset.dcm": part10(element(0x00080005, b"US", b"\x01\x00") + identity()
                                 + STUDY_SERIES),
    # A date whose bytes are not ASCII and end in a NUL: no repair can make it a DA (the
    # writer could not encode one): migrated as it is, never a write failure.
    "binary_date.dcm": part10(element(0x00080016, b"UI", SC_CLASS)
                              + element(0x00080018, b"UI", b"1.2.3.99")
                              + element(0x00080020, b"DA", b"2004\xff\x08!\x00")
                              + element(0x00080060, b"CS", b"OT")
                              + element(0x00100020, b"LO", b"PID1") + STUDY_SERIES),
    "number_of_frames.dcm": part10(image_header(2, 2, frames=b"\xb2 ")  # '²': a digit, no int
                                   + element(0x7FE00010, b"OW", bytes(8))),
}


GARBAGE_REASONS = {"random.dcm": "not_dicom", "meta_then_random.dcm": "truncated",
                   "huge_length.dcm": "truncated", "huge_long_length.dcm": "truncated",
                   "item_at_top.dcm": "unreadable_header", "bad_deflate.dcm": "unreadable_header",
                   "cut_deflate.dcm": "truncated", "binary_charset.dcm": "unreadable_header"}


def test_garbage_gets_a_code_and_the_run_goes_on(tmp_path: Path) -> None:
    for name, data in GARBAGE.items():
        lean, slow = codes(data)
        assert lean == slow, name
    _, rows = migrate(tmp_path, GARBAGE)
    for name, reason in GARBAGE_REASONS.items():
        assert_quarantined(rows, name, reason)
    assert rows["binary_date.dcm"]["status"] == "written"
    assert rows["number_of_frames.dcm"]["status"] == "written"
    for name in GARBAGE:
        row = rows[name]
        assert row["action"] == "quarantine" or row["status"] == "written", (name, row)
        if row["action"] == "quarantine":
            assert row["reason"], name


def test_the_inflating_file_reads_and_seeks_like_the_inflated_bytes() -> None:
    """Forward reads, seeks over megabytes and back (inflating again from the start)."""
    rng = random.Random(7)
    plain = bytes(rng.randrange(4) for _ in range(3 << 20)) + bytes(5 << 20)
    squeeze = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    compressed = squeeze.compress(plain) + squeeze.flush()
    assert inflated_size(compressed) == len(plain)
    f = Inflated(compressed, len(plain))
    for pos, n in [(0, 10), (5, 100), (2 << 20, 70000), (100, 8), (len(plain) - 3, 10),
                   (len(plain), 4), (7 << 20, 1 << 20), (1, 1)]:
        f.seek(pos)
        assert f.read(n) == plain[pos:pos + n] and f.tell() == min(pos + n, len(plain))
    with pytest.raises(Truncated):
        inflated_size(compressed[:len(compressed) // 2])
