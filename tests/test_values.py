"""values: the repair table, the values of pydicom's test files, and property tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.charset import convert_encodings, decode_bytes
from pydicom.data import get_testdata_files
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from migrate_fs.config import RULES
from migrate_fs.problems import CATALOGUE
from migrate_fs.values import (
    MAX_LENGTH,
    Finding,
    check_value,
    generated_uid,
    remap_uid,
    suspect,
    uid_problem,
)

ROOT = Path(__file__).resolve().parent.parent
TEXT_VRS = ("AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC",
            "UI", "UR", "UT")
CHARSET_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})
UID_REGEX = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
NAMESPACE = "6ba7b811-9dad-11d1-80b4-00c04fd430c8"
DS20 = "3.141592653589793238"  # pi in 20 characters


def found(vr: str, value: str, keyword: str = "", order: str | None = None,
          max_length: bool = True) -> list[tuple[str, str | None]]:
    return [(f.rule, f.new) for f in check_value(vr, value, keyword, date_order=order,
                                                 max_length=max_length)]


# vr, value, keyword, date_order, expected [(rule, new)]
TABLE = [
    # date_format
    ("DA", "2001.01.01", "StudyDate", None, [("date_format", "20010101")]),
    ("DA", "2001-01-01", "StudyDate", None, [("date_format", "20010101")]),
    ("DA", "2001/1/5", "StudyDate", None, [("date_format", "20010105")]),
    ("DA", "1/2/2001", "PatientBirthDate", "DMY", [("date_format", "20010201")]),
    ("DA", "1/2/2001", "PatientBirthDate", "MDY", [("date_format", "20010102")]),
    ("DA", "1.2.2001", "PatientBirthDate", "DMY", [("date_format", "20010201")]),
    ("DA", "13/2/2001", "PatientBirthDate", None, [("date_format", "20010213")]),
    ("DA", "2/13/2001", "PatientBirthDate", None, [("date_format", "20010213")]),
    ("DA", "13-02-2001", "PatientBirthDate", "MDY", [("date_format", None)]),  # not MDY
    ("DA", "5/5/2001", "PatientBirthDate", None, [("date_format", "20010505")]),
    ("DA", "20010230", "StudyDate", None, [("date_format", None)]),
    ("DA", "00000000", "StudyDate", None, [("date_format", None)]),
    ("DA", "2001.02.30", "StudyDate", None, [("date_format", None)]),
    ("DA", "1/2/01", "StudyDate", "DMY", [("date_format", None)]),  # century unknown
    ("DA", "2001-01-01 12:00", "StudyDate", None, [("date_format", None)]),
    ("DA", " 20010101", "StudyDate", None, [("date_format", "20010101")]),
    ("DA", "20010101 ", "StudyDate", None, []),
    ("DA", "20000229", "StudyDate", None, []),
    ("DA", "20010101-20011231", "StudyDate", None, []),
    ("DA", "20010101-", "StudyDate", None, []),
    ("DA", "", "StudyDate", None, []),
    ("DA", "20010101\\2001.01.02", "CalibrationDate", None,
     [("date_format", "20010101\\20010102")]),
    ("DA", "2001.01.01\\1/2/2001", "CalibrationDate", None, [("date_format", None)]),
    # time_format
    ("TM", "12:30:45", "StudyTime", None, [("time_format", "123045")]),
    ("TM", "12:30:45.123", "StudyTime", None, [("time_format", "123045.123")]),
    ("TM", "12:30", "StudyTime", None, [("time_format", "1230")]),
    ("TM", "9:05:00", "StudyTime", None, [("time_format", "090500")]),
    ("TM", "123045.", "StudyTime", None, [("time_format", "123045")]),
    ("TM", "25:00:00", "StudyTime", None, [("time_format", None)]),
    ("TM", "12:61", "StudyTime", None, [("time_format", None)]),
    ("TM", "12:30:45.1234567", "StudyTime", None, [("time_format", None)]),
    ("TM", "246000", "StudyTime", None, [("time_format", None)]),
    ("TM", "123045.123456 ", "StudyTime", None, []),
    ("TM", "235960", "StudyTime", None, []),  # a leap second
    ("TM", "1200-1300", "StudyTime", None, []),
    # datetime_format
    ("DT", "2001-01-01 12:30:45", "AcquisitionDateTime", None,
     [("datetime_format", "20010101123045")]),
    ("DT", "2001-01-01T12:30:45", "AcquisitionDateTime", None,
     [("datetime_format", "20010101123045")]),
    ("DT", "2001-01-01 12:30", "AcquisitionDateTime", None,
     [("datetime_format", "200101011230")]),
    ("DT", "2001-01-01T12:30:45.5+01:00", "AcquisitionDateTime", None,
     [("datetime_format", "20010101123045.5+0100")]),
    ("DT", "2001-01-01 12:30:45 -0500", "AcquisitionDateTime", None,
     [("datetime_format", "20010101123045-0500")]),
    ("DT", "2001-01-01T12:30:45Z", "AcquisitionDateTime", None,
     [("datetime_format", "20010101123045+0000")]),
    ("DT", "2001-01-01", "AcquisitionDateTime", None, [("datetime_format", "20010101")]),
    ("DT", "1/2/2001 12:30", "AcquisitionDateTime", None, [("datetime_format", None)]),
    ("DT", "1/2/2001 12:30", "AcquisitionDateTime", "DMY",
     [("datetime_format", "200102011230")]),
    ("DT", "2001-02-30 12:30", "AcquisitionDateTime", None, [("datetime_format", None)]),
    ("DT", "2001-01-01 12:30+15:00", "AcquisitionDateTime", None, [("datetime_format", None)]),
    ("DT", "20010101123045.123456+0100", "AcquisitionDateTime", None, []),
    ("DT", "2001", "AcquisitionDateTime", None, []),
    ("DT", "20010101-20020101", "AcquisitionDateTime", None, []),
    # decimal_string
    ("DS", "1,5", "SliceThickness", None, [("decimal_string", "1.5")]),
    ("DS", "1,5 ", "SliceThickness", None, [("decimal_string", "1.5")]),
    ("DS", "-0,25\\1,5", "PixelSpacing", None, [("decimal_string", "-0.25\\1.5")]),
    ("DS", "0,5", "PixelSpacing", None, [("decimal_string", None)]),  # or '0\\5'?
    ("DS", "1,500", "SliceThickness", None, [("decimal_string", None)]),  # or 1500?
    ("DS", "0,500", "SliceThickness", None, [("decimal_string", "0.500")]),
    ("DS", DS20, "SliceThickness", None, [("decimal_string", "3.14159265358979")]),
    ("DS", "0.30000000000000004", "SliceThickness", None, [("decimal_string", "0.3")]),
    ("DS", "1.0000000000000000", "SliceThickness", None, [("decimal_string", "1")]),
    ("DS", "      0.123456789", "SliceThickness", None, [("decimal_string", "0.123456789")]),
    ("DS", "-1.2345678901234e-10", "SliceThickness", None,
     [("decimal_string", "-1.234567890e-10")]),
    ("DS", "1" * 400, "SliceThickness", None, [("decimal_string", None)]),
    ("DS", "NaN", "SliceThickness", None, [("decimal_string", None)]),
    ("DS", "-inf", "SliceThickness", None, [("decimal_string", None)]),
    ("DS", "1.5mm", "SliceThickness", None, [("decimal_string", None)]),
    ("DS", " -1.5e-3 ", "SliceThickness", None, []),
    ("DS", ".5\\5.\\+1E+2", "ImagePositionPatient", None, []),
    ("DS", "", "SliceThickness", None, []),
    # integer_string
    ("IS", "1.0", "InstanceNumber", None, [("integer_string", "1")]),
    ("IS", "+7.000", "InstanceNumber", None, [("integer_string", "7")]),
    ("IS", "1.5", "InstanceNumber", None, [("integer_string", None)]),
    ("IS", "1A", "NumberOfFrames", None, [("integer_string", None)]),
    ("IS", "2147483648", "InstanceNumber", None, [("integer_string", None)]),
    ("IS", "-2147483648", "InstanceNumber", None, []),
    ("IS", "0000000000001", "InstanceNumber", None, [("integer_string", None)]),
    ("IS", "        12", "InstanceNumber", None, []),
    ("IS", " " * 11 + "12", "InstanceNumber", None, [("integer_string", "12")]),
    ("IS", "1\\2.0\\3", "ReferencedFrameNumber", None, [("integer_string", "1\\2\\3")]),
    # code_string
    ("CS", "mr", "Modality", None, [("code_string", "MR")]),
    ("CS", "m ", "PatientSex", None, [("code_string", "M ")]),
    ("CS", "original\\PRIMARY", "ImageType", None, [("code_string", "ORIGINAL\\PRIMARY")]),
    ("CS", "Mr-X", "Modality", None, [("code_string", None)]),
    ("CS", "\u00e9", "Modality", None, [("code_string", None)]),
    ("CS", "ORIGINAL\\PRIMARY\\AXIAL", "ImageType", None, []),
    ("CS", "ISO_IR 100", "SpecificCharacterSet", None, []),
    # trailing_nul
    ("SH", "A12\x00", "AccessionNumber", None, [("trailing_nul", "A12")]),
    ("LO", "Head \x00\x00", "StudyDescription", None, [("trailing_nul", "Head ")]),
    ("DA", "2001.01.01\x00", "StudyDate", None,
     [("trailing_nul", "2001.01.01"), ("date_format", "20010101")]),
    ("PN", "Doe^John\x00", "PatientName", None, [("trailing_nul", "Doe^John")]),
    ("UI", "1.2.3\x00", "SOPInstanceUID", None, []),
    ("UT", "text\x00", "TextValue", None, [("trailing_nul", "text")]),
    # value_too_long
    ("LO", "x" * 70, "StudyDescription", None, [("value_too_long", "x" * 64)]),
    ("LO", "short\\" + "y" * 65, "OtherPatientIDs", None,
     [("value_too_long", "short\\" + "y" * 64)]),
    ("LO", "x" * 64 + "    ", "StudyDescription", None, []),
    ("SH", "ABCDEFGHIJKLMNOPQ", "AccessionNumber", None, [("value_too_long", "ABCDEFGHIJKLMNOP")]),
    ("PN", "A" * 65 + "^B", "PatientName", None, [("value_too_long", "A" * 64)]),
    ("PN", "Doe^John=" + "Z" * 70, "PatientName", None,
     [("value_too_long", "Doe^John=" + "Z" * 64)]),
    ("PN", "A" * 60 + "=" + "B" * 60 + "=" + "C" * 60, "PatientName", None, []),
    ("AE", "A_VERY_LONG_AE_TITLE", "StationAETitle", None,
     [("value_too_long", "A_VERY_LONG_AE_T")]),
    ("AS", "45 years", "PatientAge", None, [("value_too_long", None)]),
    ("ST", "s" * 1025, "InstitutionAddress", None, [("value_too_long", "s" * 1024)]),
    ("CS", "Original_Primary_Axial", "ImageType", None,
     [("code_string", "ORIGINAL_PRIMARY_AXIAL"), ("value_too_long", "Original_Primary")]),
    ("UT", "u" * 100000, "TextValue", None, []),
    # invalid_uid (reported by check_value; remapped by the rules with the namespace)
    ("UI", "1.2.03", "SOPInstanceUID", None, [("invalid_uid", None)]),
    ("UI", "1.2.3 ", "SOPInstanceUID", None, [("invalid_uid", None)]),
    ("UI", "", "SOPInstanceUID", None, []),
]


@pytest.mark.parametrize(("vr", "value", "keyword", "order", "expected"), TABLE,
                         ids=[f"{r[0]}-{r[1][:24]!r}-{r[3]}" for r in TABLE])
def test_repairs(vr: str, value: str, keyword: str, order: str | None,
                 expected: list[tuple[str, str | None]]) -> None:
    findings = check_value(vr, value, keyword, date_order=order)
    assert [(f.rule, f.new) for f in findings] == expected
    for f in findings:
        assert RULES[f.rule].codes[0] in CATALOGUE
        assert f.message.startswith(keyword)
        if f.new is not None:  # a repair is final for its rule
            assert f.rule not in {g.rule for g in check_value(vr, f.new, date_order=order)}
    assert suspect(vr, value.encode("utf-8")) or not findings


def test_messages_name_the_value_and_the_reason() -> None:
    (f,) = check_value("DA", "2001.01.01", "StudyDate")
    assert f == Finding("date_format", "StudyDate '2001.01.01' is not YYYYMMDD",
                        "20010101")
    (f,) = check_value("DA", "1/2/2001", "PatientBirthDate")
    assert f.new is None and "ambiguous" in f.message and "date_order" in f.message
    (f,) = check_value("DA", "20010230", "StudyDate")
    assert f.message == "StudyDate '20010230' is not a calendar date"
    (f,) = check_value("DS", DS20, "SliceThickness")
    assert "'3.14159265358979'" in f.message and "rounded" in f.message
    (f,) = check_value("DA", "20010101\\2001.13.01", "CalibrationDate")
    assert f.message.startswith("CalibrationDate value 2 '2001.13.01'")
    (f,) = check_value("CS", "Mr-X", "Modality")
    assert "'-'" in f.message
    (f,) = check_value("UI", "1.2.03\x00", "SOPInstanceUID")
    assert f.message == "SOPInstanceUID '1.2.03' is not a valid UID: component with a leading zero"


def test_options() -> None:
    assert found("LO", "x" * 70, max_length=False) == []
    assert found("DA", "1/2/2001", order="") == [("date_format", None)]
    with pytest.raises(ValueError, match="date_order"):
        check_value("DA", "1/2/2001", date_order="YMD")
    assert check_value("OB", "\x00\x00") == [] and check_value("SQ", "anything") == []


def test_rules_catalogue() -> None:
    names = {"trailing_nul", "date_format", "time_format", "datetime_format", "decimal_string",
             "integer_string", "code_string", "value_too_long", "invalid_uid"}
    assert names <= set(RULES)
    assert RULES["date_format"].codes == ("invalid_date",)
    assert RULES["invalid_uid"].codes == ("invalid_uid",)
    assert all(RULES[n].codes[0] in CATALOGUE and RULES[n].description for n in names)


# --- suspect ---------------------------------------------------------------------------------

CLEAN = [("DA", b"20010101"), ("DA", b"20010101 "), ("DA", b"20010101-20011231"),
         ("TM", b"123045.123 "), ("TM", b"1230"), ("DT", b"20010101123045.123+0100"),
         ("DS", b"0.5\\0.5 "), ("DS", b"-1.5e-3"), ("IS", b"12 "), ("IS", b"-100"),
         ("CS", b"ORIGINAL\\PRIMARY\\AXIAL"), ("CS", b"ISO_IR 100"), ("LO", b"SOME DESCRIPTION"),
         ("SH", b"ACC12345"), ("PN", b"Doe^John^^Dr=Y^Z"), ("AE", b"STORESCP"), ("AS", b"045Y"),
         ("UI", b"1.2.840.10008.5.1.4.1.1.2\x00"), ("UI", b"1.2.3.0.44"), ("UI", b""),
         ("UI", b"1." + b"2" * 62), ("UI", b"1." + b"2" * 61 + b"\x00"),
         ("LT", b"Line 1\r\nLine 2"), ("UT", b"x" * 20000), ("UR", b"http://example.com/a "),
         ("OB", b"\x00\x01"), ("US", b"\x01\x00"), ("SQ", b"")]


@pytest.mark.parametrize(("vr", "raw"), CLEAN)
def test_typical_valid_values_are_not_suspect(vr: str, raw: bytes) -> None:
    assert not suspect(vr, raw)
    assert check_value(vr, raw.decode("latin-1")) == []


@pytest.mark.parametrize(("vr", "raw"), [
    ("LO", "Müller".encode()), ("PN", b"\x1b$B;3ED\x1b(B"), ("LT", b"x" * 10241),
    ("ST", b"x" * 1025), ("UI", b"1.2.3\x00\x00"), ("UI", b"1.2.3\\1.2.4"),
    ("UI", b"1." + b"2" * 63), ("DA", b"20000229"), ("IS", b"1234567890")])
def test_suspect_is_conservative(vr: str, raw: bytes) -> None:
    """Non-ASCII text, several UIDs, 29 February, ten-digit integers: left to check_value."""
    assert suspect(vr, raw)


@pytest.mark.parametrize("vr", sorted(CHARSET_VRS))
@pytest.mark.parametrize("raw", [b"Abc\xe9", "Müller".encode(), b"\x1b$B;3ED\x1b(B", b"A\x1b"])
def test_text_of_a_charset_vr_that_is_not_ascii_is_suspect(vr: str, raw: bytes) -> None:
    """The scanner records such a value because its VR's clean pattern refuses it: there is
    no check of the character set beside the pattern (the walker's one check per value)."""
    assert suspect(vr, raw)


# --- the values of pydicom's test files --------------------------------------------------------

def _dictionary_vr(tag: int) -> str | None:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return None


def _walk(ds: Dataset, encodings: list[str], path: str = "") -> Iterator[tuple[str, str, bytes,
                                                                             str]]:
    """(path, VR, raw bytes, text) for every non-empty text element, at any depth."""
    charset = ds.get_item(0x00080005)
    if isinstance(charset, RawDataElement) and charset.value:
        terms = charset.value.decode("latin-1").rstrip("\x00 ").split("\\")
        encodings = convert_encodings([t.strip() for t in terms])
    for tag in list(ds.keys()):
        elem = ds.get_item(tag)
        if not isinstance(elem, RawDataElement) or elem.value is None:
            continue  # converted while reading: all of them are empty
        vr = elem.VR if elem.VR not in (None, "UN") else _dictionary_vr(tag)
        if vr == "SQ":
            for i, item in enumerate(ds[tag].value):
                yield from _walk(item, encodings, f"{path}{tag}[{i}].")
        elif vr in TEXT_VRS:
            raw = elem.value
            if vr in CHARSET_VRS and (not raw.isascii() or b"\x1b" in raw):
                delimiters = {0x5C, 0x5E, 0x3D} if vr == "PN" else {0x5C}
                text = decode_bytes(raw, encodings, delimiters)
            else:
                text = raw.decode("latin-1")
            yield f"{path}{tag}", vr, raw, text


def _test_file_values() -> Iterator[tuple[str, str, str, bytes, str]]:
    for name in get_testdata_files():
        if not os.path.isfile(name):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(name, force=True)
                values = list(_walk(ds.file_meta, ["iso8859"])) + list(_walk(ds, ["iso8859"]))
            except Exception:  # noqa: BLE001 - pydicom cannot read it: not a test of ours
                values = []
        for path, vr, raw, text in values:
            yield Path(name).name, path, vr, raw, text


def test_values_of_pydicom_test_files() -> None:
    values = list(_test_file_values())
    assert len(values) > 5000
    findings = []
    flagged = 0
    for name, path, vr, raw, text in values:
        flagged += suspect(vr, raw)
        keyword = keyword_for_tag(int(path[-10:-6] + path[-5:-1], 16)) or ""
        for f in check_value(vr, text, keyword):
            findings.append((name, path, vr, f))
            print(name, path, f.rule, f.message, repr(f.new))
            assert suspect(vr, raw) or not raw.isascii() or b"\x1b" in raw
            if f.new is not None:
                assert check_value(vr, f.new, keyword) == []
    # Explained: badVR.dcm's deliberate '1A', an ACR-NEMA style date and time, a NUL-padded
    # ImplementationVersionName, a referenced UID with a leading zero in the RT dose examples.
    rules = {(name, f.rule) for name, _, _, f in findings}
    assert {("ExplVR_BigEnd.dcm", "date_format"), ("ExplVR_BigEnd.dcm", "time_format"),
            ("badVR.dcm", "integer_string"), ("rtdose.dcm", "invalid_uid")} <= rules
    assert {f.rule for *_, f in findings} <= {"date_format", "time_format", "integer_string",
                                              "invalid_uid", "trailing_nul"}
    assert len(findings) <= 20
    assert {f.new for _, _, vr, f in findings if vr in ("DA", "TM")} == {"19970424", "140438"}
    assert flagged < len(values) // 20  # the inventory records few clean values


# --- properties ---------------------------------------------------------------------------------

DIGITS = "0123456789"
ALPHABET = DIGITS + ".-/: ,+eETZ\\=^_\x00aAmMx\u00e9"


def _joined(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """One or a few values, backslash-separated, maybe padded with a space or NULs."""
    return st.tuples(st.lists(strategy, min_size=1, max_size=3),
                     st.sampled_from(["", " ", "\x00", "\x00\x00", " \x00"])).map(
        lambda t: "\\".join(t[0]) + t[1])


def _pattern(regex: str) -> st.SearchStrategy[str]:
    return st.from_regex(re.compile(regex, re.ASCII), fullmatch=True)


DATES = st.one_of(_pattern(r"[0-9]{8}"), _pattern(r"(19|20)[0-9]{2}(0[0-9]|1[0-3])[0-3][0-9]"),
                  _pattern(r"[0-9]{4}[./-][0-9]{1,2}[./-][0-9]{1,2}"),
                  _pattern(r"[0-9]{1,2}[./:-][0-9]{1,2}[./:-][0-9]{2,4}"),
                  _pattern(r"[0-9]{8}-[0-9]{0,8}"), _pattern(r" ?-?[0-9]{8}"))
TIMES = st.one_of(_pattern(r"[0-2][0-9]([0-6][0-9]([0-6][0-9](\.[0-9]{0,7})?)?)?"),
                  _pattern(r"[0-9]{1,2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{0,7})?)?"),
                  _pattern(r"[0-9]{2,6}-[0-9]{0,6}"))
OFFSETS = st.sampled_from(["", "Z", "+0100", "-0500", "+01:00", "+1500", " +0000", "-"])
DATETIMES = st.one_of(
    st.tuples(DATES, st.sampled_from(["", " ", "T"]), st.one_of(st.just(""), TIMES), OFFSETS)
    .map("".join),
    _pattern(r"[0-9]{4,14}(\.[0-9]{1,6})?([+-][0-9]{4})?(-[0-9]{4,14})?"))
DECIMALS = st.one_of(
    _pattern(r" ?[+-]?[0-9]{0,18}[.,]?[0-9]{0,18}([eE][+-]?[0-9]{1,4})? ?"),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["NaN", "inf", "-Infinity", "1,500", "0,5"]))
INTEGERS = st.one_of(st.integers(-2**33, 2**33).map(str),
                     st.integers(-2**33, 2**33).map(lambda n: f"{n}.0"),
                     _pattern(r" {0,4}[+-]?[0-9]{0,13}(\.[0-9]{0,2})? {0,4}"))
UIDS = st.one_of(_pattern(r"[0-9]{1,3}(\.[0-9]{1,20}){0,8}"),
                 _pattern(r"(0|[1-9][0-9]{0,30})(\.(0|[1-9][0-9]{0,30})){0,10}"),
                 st.text(DIGITS + ". \x00a\\", max_size=70))
TEXTS = st.one_of(st.text(ALPHABET, max_size=30),
                  st.text(st.characters(max_codepoint=255), max_size=30),
                  st.text(st.characters(codec="utf-8"), max_size=20),
                  st.integers(0, 80).map(lambda n: "x" * n),
                  st.tuples(st.integers(0, 70), st.integers(0, 70), st.sampled_from(" =^"))
                  .map(lambda t: "A" * t[0] + t[2] + "B" * t[1]))
BY_VR = {"DA": DATES, "TM": TIMES, "DT": DATETIMES, "DS": DECIMALS, "IS": INTEGERS,
         "UI": UIDS, "CS": st.text("AZaz09 _-\u00e9", max_size=20)}
LONG_TEXT = st.tuples(st.sampled_from(["LT", "ST"]), st.integers(-3, 3), st.sampled_from("x \x00"))


@st.composite
def vr_values(draw: st.DrawFn) -> tuple[str, str]:
    vr = draw(st.sampled_from(TEXT_VRS))
    strategy = BY_VR.get(vr)
    values = st.one_of(strategy, TEXTS) if strategy is not None else TEXTS
    return vr, draw(_joined(values))


def _encodings(vr: str, value: str) -> list[bytes]:
    """The raw bytes a decoded value may come from: latin-1 (what the rules decode plain bytes
    with), and UTF-8 for the charset VRs."""
    raws = [value.encode("latin-1")] if max(value, default="\x00") <= "\xff" else []
    if vr in CHARSET_VRS:
        raws.append(value.encode("utf-8"))
    return raws


@settings(max_examples=1000, deadline=None)
@given(vr_values(), st.sampled_from([None, "DMY", "MDY"]), st.sampled_from(["", "PixelSpacing"]))
def test_suspect_never_misses_a_finding(case: tuple[str, str], order: str | None,
                                        keyword: str) -> None:
    vr, value = case
    if check_value(vr, value, keyword, date_order=order):
        for raw in _encodings(vr, value):
            assert suspect(vr, raw), (vr, value)


@settings(max_examples=300, deadline=None)
@given(LONG_TEXT)
def test_suspect_at_the_length_limits(case: tuple[str, int, str]) -> None:
    vr, delta, tail = case
    value = "y" * (MAX_LENGTH[vr] + delta) + tail
    if check_value(vr, value):
        assert suspect(vr, value.encode("latin-1"))


@settings(max_examples=1000, deadline=None)
@given(vr_values(), st.sampled_from([None, "DMY", "MDY"]), st.sampled_from(["", "PixelSpacing"]))
def test_repairs_are_idempotent(case: tuple[str, str], order: str | None, keyword: str) -> None:
    vr, value = case
    for f in check_value(vr, value, keyword, date_order=order):
        assert RULES[f.rule].codes[0] in CATALOGUE and f.message
        if f.new is not None:
            again = check_value(vr, f.new, keyword, date_order=order)
            assert f.rule not in {g.rule for g in again}, (value, f, again)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80), st.text(max_size=80), st.text(max_size=40))
def test_remap_uid(old: str, other: str, namespace: str) -> None:
    new = remap_uid(old, namespace)
    assert uid_problem(new) is None and len(new) <= 64 and new.startswith("2.25.")
    assert UID_REGEX.fullmatch(new)
    assert remap_uid(old, namespace) == new
    assert (remap_uid(other, namespace) == new) == (other == old)
    assert remap_uid(old, namespace + "x") != new
    generated = generated_uid(namespace, "SeriesInstanceUID", old, other)
    assert uid_problem(generated) is None and len(generated) <= 64
    assert generated == generated_uid(namespace, "SeriesInstanceUID", old, other)
    assert generated != generated_uid(namespace, "StudyInstanceUID", old, other)
    assert generated_uid(namespace, old + "\\" + other) != generated_uid(namespace, old, other)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(UIDS, st.text(DIGITS + ".", max_size=80), st.text(max_size=10)))
def test_uid_problem_agrees_with_the_standard(value: str) -> None:
    valid = UID_REGEX.fullmatch(value) is not None and len(value) <= 64
    reason = uid_problem(value)
    assert (reason is None) == valid, (value, reason)
    assert reason is None or reason
    raws = _encodings("UI", value)
    if check_value("UI", value) and raws:
        assert suspect("UI", raws[0])


def test_uid_problem_reasons() -> None:
    assert uid_problem("") == "empty"
    assert uid_problem("1." + "2" * 63) == "longer than 64 characters"
    assert uid_problem("1.2.a") == "invalid character 'a'"
    assert uid_problem("1.2.03") == "component with a leading zero"
    assert uid_problem("1..2") == "empty component"
    assert uid_problem("1.2.") == "empty component"
    assert uid_problem("1.2 ") == "trailing space or NUL"
    assert uid_problem("1.2\x00") == "trailing space or NUL"
    assert uid_problem("1.2\\1.3") == "multiple values"
    assert uid_problem("0") is None and uid_problem("1." + "2" * 62) is None


def test_remap_uid_is_the_same_in_another_process() -> None:
    old = "1.2.826.0.1.3680043.2.1125.01.2"
    code = ("from migrate_fs.values import generated_uid, remap_uid; "
            f"print(remap_uid({old!r}, 'run-1')); print(remap_uid({old!r}, {NAMESPACE!r})); "
            "print(generated_uid('run-1', 'SeriesInstanceUID', '1.2.3', 'CT', '4'))")
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT, env=env).stdout.split()
    assert out == [remap_uid(old, "run-1"), remap_uid(old, NAMESPACE),
                   generated_uid("run-1", "SeriesInstanceUID", "1.2.3", "CT", "4")]
    assert out[0] != out[1]
