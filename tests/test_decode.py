"""The decode check in a guarded child process (migrate_fs.decode): real files, real crashes."""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import joblib
import pydicom
import pydicom.data
import pytest
from crashing_decoder import EXIT_MARKER, HANG_MARKER, NAME, SEGFAULT_MARKER, check_in_worker

from migrate_fs.decode import (
    DECODE_FAILED,
    DECODER_CRASH,
    DECODER_UNAVAILABLE,
    DecodeOutcome,
    DecoderGuard,
    Unavailable,
    classify,
    decode_pixels,
)
from migrate_fs.errors import DecoderError

TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"
OK = DecodeOutcome(None, None, 1)

# pydicom test files with Pixel Data that pydicom + pylibjpeg cannot decode, and why.
NOT_DECODABLE = {
    "JPEG-lossy.dcm": "libjpeg error code '-1038'",  # SOS Se = 0 in a sequential DCT scan
    "JPEG2000-embedded-sequence-delimiter.dcm": "failed to read the header",  # SIZ overwritten
    "MR_truncated.dcm": "cannot reshape array of size 4065",  # the file ends in the pixel data
    "SC_rgb_jpeg.dcm": "when parsing the Basic Offset Table",  # implicit Pixel Data header
    "badVR.dcm": "invalid literal for int() with base 10: '1A'",  # NumberOfFrames '1A'
    "meta_missing_tsyntax.dcm": "Missing required element: (0028,0100)",
    "nested_priv_SQ.dcm": "Missing required element: (0028,0100)",
}


@pytest.fixture(scope="module")
def guard() -> Iterator[DecoderGuard]:
    with DecoderGuard() as shared:
        yield shared


def in_process(path: Path, mode: str) -> tuple[bool, int]:
    """(decoded, frames) with the same decode function, in this process."""
    frames = 0
    try:
        with open(path, "rb") as fp:
            for _ in decode_pixels(fp, mode):
                frames += 1
    except Exception:
        return False, frames
    return True, frames


def with_pixels() -> list[Path]:
    found = []
    for path in sorted(TEST_FILES.glob("*.dcm")):
        ds = pydicom.dcmread(path, force=True, defer_size=64)
        if any(tag in ds for tag in (0x7FE00010, 0x7FE00008, 0x7FE00009)):
            found.append(path)
    return found


def first_fragment(data: bytes) -> tuple[int, int]:
    """(offset, length) of the first fragment's data in a single-fragment Part 10 object."""
    fp = io.BytesIO(data)
    pydicom.dcmread(fp, stop_before_pixels=True)
    bot = fp.tell() + 12
    start = bot + 8 + struct.unpack_from("<I", data, bot + 4)[0]
    return start + 8, struct.unpack_from("<I", data, start + 4)[0]


def with_marker(tmp_path: Path, marker: bytes, name: str = "marked.dcm") -> Path:
    path = tmp_path / name
    path.write_bytes((TEST_FILES / "MR_small.dcm").read_bytes() + marker)
    return path


def without_file_meta(name: str) -> bytes:
    """The object's dataset alone: a raw dataset, as old archives store them."""
    data = (TEST_FILES / name).read_bytes()
    meta_length = struct.unpack_from("<I", data, 140)[0]
    return data[144 + meta_length:]


def replace_transfer_syntax(name: str, old: bytes, new: bytes) -> bytes:
    data = (TEST_FILES / name).read_bytes()
    assert len(old) == len(new) and data.count(old) == 1
    return data.replace(old, new)


# Decoding pydicom's files ----------------------------------------------------------------


def test_every_test_file_decodes_as_in_process(guard: DecoderGuard) -> None:
    files = with_pixels()
    assert len(files) >= 60
    failed = {}
    for path in files:
        for mode in ("first", "all"):
            decoded, frames = in_process(path, mode)
            outcome = guard.check(mode, path=path)
            if decoded:
                assert outcome == DecodeOutcome(None, None, frames), (path.name, mode)
            else:
                assert outcome.code == DECODE_FAILED and outcome.message, (path.name, mode)
                failed[path.name] = outcome.message
    assert set(failed) == set(NOT_DECODABLE)
    for name, text in NOT_DECODABLE.items():
        assert text in failed[name]
    assert guard.started == 1


@pytest.mark.parametrize(("name", "frames"), [
    ("JPEG2000.dcm", 1), ("MR_small_jp2klossless.dcm", 1), ("JPGExtended.dcm", 1),
    ("MR_small_jpeg_ls_lossless.dcm", 1), ("SC_rgb_jpeg_gdcm.dcm", 1), ("SC_rgb_rle.dcm", 1),
    ("MR_small.dcm", 1), ("rtdose_rle.dcm", 15), ("examples_ybr_color.dcm", 30),
    ("image_dfl.dcm", 1), ("MR_small_bigendian.dcm", 1),
])
def test_first_and_all(guard: DecoderGuard, name: str, frames: int) -> None:
    assert guard.check("first", path=TEST_FILES / name) == OK
    assert guard.check("all", path=TEST_FILES / name) == DecodeOutcome(None, None, frames)


def test_data_works_like_path(guard: DecoderGuard) -> None:
    for name in ("MR_small.dcm", "JPEG2000.dcm", "rtdose_rle.dcm", "image_dfl.dcm",
                 "JPEG-lossy.dcm", "MR_truncated.dcm"):
        path = TEST_FILES / name
        for mode in ("first", "all"):
            assert guard.check(mode, data=path.read_bytes()) == guard.check(mode, path=path)
    assert guard.check("all", data=memoryview((TEST_FILES / "MR_small.dcm").read_bytes())) == OK


@pytest.mark.parametrize("name", ["MR_small.dcm", "MR_small_implicit.dcm",
                                  "MR_small_bigendian.dcm", "rtdose.dcm"])
def test_raw_datasets_without_file_meta(guard: DecoderGuard, name: str) -> None:
    frames = 15 if name == "rtdose.dcm" else 1
    assert guard.check("all", data=without_file_meta(name)) == DecodeOutcome(None, None, frames)


def test_no_pixel_data_is_nothing_to_decode(guard: DecoderGuard) -> None:
    assert guard.check("first", path=TEST_FILES / "rtplan.dcm") == DecodeOutcome(
        None, "no Pixel Data: nothing to decode", 0)


# Corrupt data ----------------------------------------------------------------------------


def test_cut_jpeg2000_fails(guard: DecoderGuard) -> None:
    data = (TEST_FILES / "MR_small_jp2klossless.dcm").read_bytes()
    start, length = first_fragment(data)
    half = length // 2 & ~1
    cut = data[:start - 4] + struct.pack("<I", half) + data[start:start + half] \
        + data[start + length:]
    outcome = guard.check("first", data=cut)
    assert outcome.code == DECODE_FAILED and outcome.frames_checked == 0
    assert outcome.message == ("RuntimeError: Unable to decode as exceptions were raised by all "
                               "available plugins: pylibjpeg: Error decoding the J2K data: "
                               "failed to decode image")


@pytest.mark.parametrize(("name", "text"), [
    ("SC_rgb_jpeg_dcmtk.dcm", "invalid huffman code in entropy coded segment"),
    ("JPEG2000.dcm", "failed to read the header"),
    ("MR_small_RLE.dcm", "PanicException: index out of bounds"),  # pylibjpeg-rle panics
])
def test_garbled_data_fails(guard: DecoderGuard, name: str, text: str) -> None:
    data = bytearray((TEST_FILES / name).read_bytes())
    start, length = first_fragment(bytes(data))
    for i in range(start + length // 3, start + length // 3 + 64):
        data[i] ^= 0x5A
    outcome = guard.check("all", data=bytes(data))
    assert outcome.code == DECODE_FAILED and text in (outcome.message or "")


def test_garbled_file_on_disk(guard: DecoderGuard, tmp_path: Path) -> None:
    data = bytearray((TEST_FILES / "JPEG2000.dcm").read_bytes())
    start, _ = first_fragment(bytes(data))
    data[start:start + 16] = bytes(16)
    (tmp_path / "bad.dcm").write_bytes(data)
    outcome = guard.check("first", path=tmp_path / "bad.dcm")
    assert outcome.code == DECODE_FAILED and "No matching JPEG 2000 format" in outcome.message


# Cannot decode here ----------------------------------------------------------------------


def test_a_transfer_syntax_nobody_decodes(guard: DecoderGuard) -> None:
    data = replace_transfer_syntax("MR_small_jp2klossless.dcm", b"1.2.840.10008.1.2.4.90",
                                   b"1.2.840.10008.1.2.4.92")  # JPEG 2000 Part 2 multi-component
    assert guard.check("first", data=data) == DecodeOutcome(
        DECODER_UNAVAILABLE, "no decoder for transfer syntax JPEG 2000 Part 2 Multi-component "
        "Image Compression (Lossless Only) (1.2.840.10008.1.2.4.92)", 0)


def test_a_private_transfer_syntax(guard: DecoderGuard) -> None:
    data = replace_transfer_syntax("MR_small_jp2klossless.dcm", b"1.2.840.10008.1.2.4.90",
                                   b"1.2.840.10008.9.9.9.90")
    outcome = guard.check("all", data=data)
    assert outcome.code == DECODER_UNAVAILABLE and "1.2.840.10008.9.9.9.90" in outcome.message


def test_encapsulated_raw_dataset_has_unknown_compression(guard: DecoderGuard) -> None:
    assert guard.check("first", data=without_file_meta("JPEG2000.dcm")) == DecodeOutcome(
        DECODER_UNAVAILABLE, "no Transfer Syntax UID and encapsulated Pixel Data: the "
        "compression is not known", 0)


def test_classification_of_plugin_failures() -> None:
    listed = RuntimeError("Unable to decode as exceptions were raised by all available plugins")
    libjpeg = RuntimeError("libjpeg error code '-1040' returned from Decode(): not supported by "
                           "the selected profile")
    corrupt = RuntimeError("Error decoding the J2K data: failed to decode image")
    assert classify(listed, [NotImplementedError("12 bits"), libjpeg])[0] == DECODER_UNAVAILABLE
    assert classify(listed, [NotImplementedError("12 bits"), corrupt])[0] == DECODE_FAILED
    assert classify(listed, [])[0] == DECODE_FAILED
    assert classify(NotImplementedError("no numpy dtype"), [])[0] == DECODER_UNAVAILABLE
    assert classify(Unavailable("no plugin"), []) == (DECODER_UNAVAILABLE, "no plugin")
    assert classify(ValueError("a\n  b"), []) == (DECODE_FAILED, "ValueError: a b")


# Crashes ---------------------------------------------------------------------------------


def test_segfault_is_a_crash_and_the_guard_goes_on(tmp_path: Path) -> None:
    crash = with_marker(tmp_path, SEGFAULT_MARKER)
    with DecoderGuard(decoder=NAME) as guard:
        assert guard.check("first", path=TEST_FILES / "MR_small.dcm") == OK
        first_pid = guard.pid
        outcome = guard.check("first", path=crash)
        assert outcome.code == DECODER_CRASH and outcome.frames_checked == 0
        assert outcome.message is not None and outcome.message.startswith(
            "the decoder process was killed by SIGSEGV in string_at (__init__.py, line ")
        assert guard.pid is None
        assert guard.check("all", path=TEST_FILES / "rtdose_rle.dcm") == DecodeOutcome(
            None, None, 15)
        assert guard.started == 2 and guard.pid != first_pid
        assert guard.check("first", data=crash.read_bytes()).code == DECODER_CRASH
        assert guard.check("first", data=(TEST_FILES / "JPEG2000.dcm").read_bytes()) == OK
        assert guard.started == 3


def test_exit_is_a_crash(tmp_path: Path) -> None:
    with DecoderGuard(decoder=NAME) as guard:
        outcome = guard.check("first", path=with_marker(tmp_path, EXIT_MARKER))
        assert outcome == DecodeOutcome(DECODER_CRASH, "the decoder process exited with code 3",
                                        0)
        assert guard.check("first", path=TEST_FILES / "MR_small.dcm") == OK


def test_hang_times_out(tmp_path: Path) -> None:
    with DecoderGuard(timeout=1.0, decoder=NAME) as guard:
        outcome = guard.check("first", path=with_marker(tmp_path, HANG_MARKER))
        assert outcome.code == DECODER_CRASH
        assert outcome.message is not None and outcome.message.startswith(
            "the decoder did not answer within 1 s and was killed in decode "
            "(crashing_decoder.py, line")
        assert guard.check("first", path=TEST_FILES / "MR_small.dcm") == OK


def test_inside_joblib_loky_workers(tmp_path: Path) -> None:
    crash = with_marker(tmp_path, SEGFAULT_MARKER, "crash.dcm")
    paths = [str(TEST_FILES / name) for name in (
        "MR_small.dcm", "JPEG2000.dcm", "SC_rgb_rle.dcm", "rtdose_rle.dcm", "CT_small.dcm",
        "MR_small_jpeg_ls_lossless.dcm")]
    paths.insert(3, str(crash))
    results = joblib.Parallel(n_jobs=2, backend="loky")(
        joblib.delayed(check_in_worker)(path) for path in paths)
    codes = {path: code for path, code, _ in results}
    assert codes == {path: (DECODER_CRASH if path == str(crash) else None) for path in paths}
    assert max(started for *_, started in results) <= 2  # one restart, in one worker at most


# The guard itself ------------------------------------------------------------------------


def test_bad_arguments(guard: DecoderGuard, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode"):
        guard.check("some", path=TEST_FILES / "MR_small.dcm")
    with pytest.raises(ValueError, match="exactly one"):
        guard.check("first")
    with pytest.raises(ValueError, match="exactly one"):
        guard.check("first", path=TEST_FILES / "MR_small.dcm", data=b"")
    with pytest.raises(FileNotFoundError):
        guard.check("first", path=tmp_path / "missing.dcm")
    assert guard.check("first", path=TEST_FILES / "MR_small.dcm") == OK


def test_unknown_decoder_function() -> None:
    with pytest.raises(DecoderError, match="cannot load decoder 'crashing_decoder:nothing'"):
        DecoderGuard(decoder="crashing_decoder:nothing").start()


def test_close_stops_the_child() -> None:
    guard = DecoderGuard()
    guard.start()
    pid = guard.pid
    assert pid is not None and os.path.exists(f"/proc/{pid}")
    guard.close()
    guard.close()
    assert guard.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_not_dicom_data_has_nothing_to_decode(guard: DecoderGuard) -> None:
    """Read with force=True, anything parses to a dataset without Pixel Data (the caller only
    asks about objects whose header shows pixel data)."""
    nothing = DecodeOutcome(None, "no Pixel Data: nothing to decode", 0)
    assert guard.check("first", data=b"not a dicom object at all" * 10) == nothing
    assert guard.check("first", data=b"") == nothing
