"""charsets: decoding checked against pydicom on its own character-set files, the common lies,
overrides, and round trips (Hypothesis) for encode/decode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.charset import convert_encodings, decode_bytes
from pydicom.data import get_charset_files
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.valuerep import CUSTOMIZABLE_CHARSET_VR, TEXT_VR_DELIMS, PersonName
from pydicom.values import convert_PN

from migrate_fs.charsets import (
    CHARSET_VRS,
    UTF8,
    CharacterSet,
    Decoded,
    decode,
    detect_hint,
    encode,
    needs_charset,
    resolve,
)

CHARSET_FILES = sorted(Path(p) for p in get_charset_files("chr*.dcm"))
LATIN1 = ("ISO_IR 100",)
# Written by tools that switch back differently (a redundant ESC ( B; ESC ( B instead of the
# ESC ( J of PS3.5 Annex H when value 1 is ISO 2022 IR 13): the text is the same, not the bytes.
SWITCH_BACK_DIFFERS = {"chrKoreanMulti.dcm", "chrSQEncoding.dcm", "chrSQEncoding1.dcm"}
MIXED = ("ISO 2022 IR 100", "ISO 2022 IR 144", "ISO 2022 IR 87")  # Latin-1, Cyrillic, kanji


def text_elements(ds: Dataset, declared: str | None) -> Iterator[tuple[str | None, str, str,
                                                                        bytes, Any]]:
    """(effective declared set, keyword, VR, raw bytes, pydicom's value) of every text element,
    items included (an item without its own SpecificCharacterSet inherits its parent's)."""
    if "SpecificCharacterSet" in ds:
        value = ds["SpecificCharacterSet"].value
        declared = value if isinstance(value, str) else "\\".join(value)
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)  # still the RawDataElement: read before converting
        elem = ds[tag]
        if elem.VR == "SQ":
            for item in elem.value:
                yield from text_elements(item, declared)
        elif elem.VR in CHARSET_VRS and isinstance(raw, RawDataElement) and raw.value:
            yield declared, elem.keyword or str(elem.tag), elem.VR, raw.value, elem.value


def as_pydicom_reads(text: str, vr: str) -> list[str]:
    """``text`` (the whole value) as pydicom presents it: values split, padding stripped, and
    for PN trailing empty component groups dropped."""
    if vr in ("ST", "LT", "UT"):
        return [text.rstrip("\x00 ")]
    if vr == "PN":
        return [v.rstrip("=") for v in text.rstrip("\x00 ").split("\\")]
    return [v.rstrip("\x00 ") for v in text.split("\\")]


def pydicom_values(value: Any) -> list[str]:
    if isinstance(value, (str, PersonName)):
        return [str(value)]
    return [str(v) for v in value]


def charset_file_cases() -> list[tuple[str, str | None, str, str, bytes, Any]]:
    cases = []
    for path in CHARSET_FILES:
        for declared, keyword, vr, raw, value in text_elements(pydicom.dcmread(path), None):
            cases.append((path.name, declared, keyword, vr, raw, value))
    return cases


CASES = charset_file_cases()


def test_the_charset_files_are_all_there() -> None:
    names = {p.name for p in CHARSET_FILES}
    assert {"chrH31.dcm", "chrH32.dcm", "chrI2.dcm", "chrX1.dcm", "chrX2.dcm", "chrRuss.dcm",
            "chrJapMulti.dcm", "chrKoreanMulti.dcm", "chrSQEncoding.dcm"} <= names
    non_ascii = {c[0] for c in CASES if needs_charset(c[4])}
    assert non_ascii == names  # every file has at least one non-ASCII text value


def test_text_vrs_are_pydicoms() -> None:
    assert CHARSET_VRS == {str(vr) for vr in CUSTOMIZABLE_CHARSET_VR}


@pytest.mark.parametrize(("name", "declared", "keyword", "vr", "raw", "value"), CASES,
                         ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_decodes_every_charset_file_as_pydicom(name: str, declared: str | None, keyword: str,
                                               vr: str, raw: bytes, value: Any) -> None:
    charset = resolve(declared, {})
    assert charset.problem is None and charset.dicom_terms
    decoded = decode(raw, vr, charset, keyword)
    assert decoded.problem is None and decoded.text is not None, decoded.message
    assert as_pydicom_reads(decoded.text, vr) == pydicom_values(value)
    again = encode(decoded.text, vr, charset.terms)
    assert again is not None and decode(again, vr, charset).text == decoded.text
    if name not in SWITCH_BACK_DIFFERS:
        assert again == raw  # the bytes of the file, ISO 2022 escapes included
    utf8 = encode(decoded.text, vr, UTF8)
    assert utf8 is not None
    assert decode(utf8, vr, resolve("ISO_IR 192", {})).text == decoded.text


def test_iso2022_declared_sets_resolve_to_their_terms() -> None:
    japanese = resolve("\\ISO 2022 IR 87", {})
    assert japanese == CharacterSet(("", "ISO 2022 IR 87"), ("", "ISO 2022 IR 87"), None, None)
    assert japanese.dicom_terms
    assert resolve(" ISO_IR 100 ", {}).terms == ("ISO_IR 100",)
    assert resolve(None, {}) == resolve("", {}) == CharacterSet((), (), None, None)


def test_latin1_bytes_without_a_declared_set_are_missing_not_guessed() -> None:
    raw = "Müller^Hans".encode("latin-1")
    decoded = decode(raw, "PN", resolve(None, {}), "PatientName")
    assert decoded.text is None and decoded.problem == "missing_character_set"
    assert decoded.message is not None
    assert "PatientName" in decoded.message and "Latin-1 (ISO_IR 100)" in decoded.message
    assert "override for ''" in decoded.message and "[charset.overrides]" in decoded.message
    charset = resolve(None, {"": "ISO_IR 100"})
    assert (charset.terms, charset.declared, charset.problem) == (LATIN1, (),
                                                                   "character_set_override")
    assert charset.dicom_terms
    assert decode(raw, "PN", charset) == decode(raw, "PN", resolve("ISO_IR 100", {}))
    assert decode(raw, "PN", charset).text == "Müller^Hans"


def test_cp1251_override_decodes_with_the_python_codec() -> None:
    raw = "Иванов^Иван".encode("cp1251")
    missing = decode(raw, "PN", resolve("", {}), "PatientName")
    assert missing.problem == "missing_character_set"
    assert missing.message is not None and "Windows-1251" in missing.message
    charset = resolve("", {"": "cp1251"})
    assert charset.terms == ("cp1251",) and not charset.dicom_terms
    assert charset.problem == "character_set_override"
    assert decode(raw, "PN", charset).text == "Иванов^Иван"
    assert encode("Иванов^Иван", "PN", charset.terms) == raw


def test_not_supplied_is_an_invalid_character_set() -> None:
    charset = resolve("Not Supplied", {})
    assert charset.problem == "invalid_character_set" and charset.terms == ()
    assert charset.message is not None and "'Not Supplied'" in charset.message
    assert decode(b"SMITH^JOHN", "PN", charset).text == "SMITH^JOHN"  # ASCII is still ASCII
    decoded = decode("Jérôme".encode("latin-1"), "PN", charset, "PatientName")
    assert decoded.text is None and decoded.problem == "undecodable_text"
    assert decoded.message is not None and "override for 'Not Supplied'" in decoded.message
    fixed = resolve("Not Supplied", {"Not Supplied": "ISO_IR 100"})
    assert fixed.problem == "character_set_override" and fixed.terms == LATIN1
    assert decode("Jérôme".encode("latin-1"), "PN", fixed).text == "Jérôme"


@pytest.mark.parametrize(("declared", "terms"), [
    ("ISO_IR100", LATIN1), ("ISO IR 100", LATIN1), ("iso_ir 100", LATIN1),
    ("ISO-IR 100", LATIN1), ("ISO_IR_144", ("ISO_IR 144",)), ("UTF-8", UTF8), ("utf8", UTF8),
    ("Latin1", LATIN1), ("ISO-8859-1", LATIN1), ("ISO_IR 6", ()),
    ("ISO2022 IR 87", ("ISO 2022 IR 87",)),
    ("\\ISO_2022_IR_87", ("", "ISO 2022 IR 87")),
    ("ISO_IR 100\\ISO 2022 IR 87", ("ISO 2022 IR 100", "ISO 2022 IR 87")),
    ("ISO_IR 192\\ISO 2022 IR 87", UTF8),  # a stand-alone set: the rest ignored, as pydicom
    ("ISO 2022 IR 6\\ISO_IR 192", ("ISO 2022 IR 6",)),
])
def test_misspellings_are_read_as_the_term_they_name(declared: str,
                                                      terms: tuple[str, ...]) -> None:
    charset = resolve(declared, {})
    assert charset.terms == terms and charset.dicom_terms
    assert charset.problem == "invalid_character_set"
    assert charset.message is not None
    assert repr("\\".join(terms)) in charset.message or not terms


@pytest.mark.parametrize("declared", ["ISO IR 100", "ISO_IR 100", "ISO 2022 IR 100"])
def test_read_like_pydicom_for_its_accepted_spellings(declared: str) -> None:
    raw = "Buc^Jérôme".encode("latin-1")
    expected = str(convert_PN(raw, convert_encodings(declared)))
    assert decode(raw, "PN", resolve(declared, {})).text == expected


def test_a_declared_python_codec_is_invalid_but_used_like_pydicom() -> None:
    charset = resolve("cp1252", {})
    assert charset.problem == "invalid_character_set" and charset.terms == ("cp1252",)
    assert not charset.dicom_terms
    assert decode("“Müller”".encode("cp1252"), "LO", charset).text == "“Müller”"


def test_utf8_bytes_declared_latin1_decode_as_latin1_unless_c1() -> None:
    # UTF-8 bytes are usually valid ISO 8859-1 bytes: the lie cannot be seen, only overridden.
    raw = "Jérôme".encode()
    assert decode(raw, "PN", resolve("ISO_IR 100", {})).text == "JÃ©rÃ´me"
    overridden = resolve("ISO_IR 100", {"ISO_IR 100": "ISO_IR 192"})
    assert decode(raw, "PN", overridden).text == "Jérôme"
    # ... but UTF-8 bytes 0x80-0x9F are C1 controls, no character of ISO 8859: detected.
    c1 = decode("Ärzte".encode(), "LO", resolve("ISO_IR 100", {}), "InstitutionName")
    assert c1.text is None and c1.problem == "undecodable_text"
    assert c1.message is not None and "valid UTF-8" in c1.message


def test_latin1_bytes_declared_utf8_are_undecodable() -> None:
    decoded = decode("Müller".encode("latin-1"), "PN", resolve("ISO_IR 192", {}), "PatientName")
    assert decoded == Decoded(None, "undecodable_text", decoded.message)
    assert decoded.message is not None
    assert "'ISO_IR 192'" in decoded.message and "Latin-1" in decoded.message
    assert "override for 'ISO_IR 192'" in decoded.message


def test_windows_1252_declared_latin1_is_undecodable() -> None:
    decoded = decode("“Müller”".encode("cp1252"), "LO", resolve("ISO_IR 100", {}))
    assert decoded.text is None and decoded.message is not None
    assert "Windows-1252" in decoded.message


def test_escape_for_an_undeclared_set_is_undecodable() -> None:
    raw = b"Yamada^Tarou=\x1b$B;3ED\x1b(B"
    decoded = decode(raw, "PN", resolve("ISO_IR 100", {}), "PatientName")
    assert decoded.text is None and decoded.problem == "undecodable_text"
    assert decoded.message is not None and "ESC $ B" in decoded.message
    assert decode(raw, "PN", resolve("\\ISO 2022 IR 87", {})).text == "Yamada^Tarou=山田"
    unknown = decode(b"abc\x1b$@;3ED", "LO", resolve("\\ISO 2022 IR 87", {}))
    assert unknown.text is None


def test_non_ascii_outside_escapes_with_default_value_1_is_undecodable() -> None:
    # value 1 empty: the default repertoire is ASCII (pydicom would read Latin-1)
    decoded = decode(b"M\xfcller\x1b$B;3ED\x1b(B", "LO", resolve("\\ISO 2022 IR 87", {}))
    assert decoded.text is None and decoded.problem == "undecodable_text"


def test_gb2312_with_escapes_decodes_and_encodes() -> None:
    # pydicom leaves ESC $ ) A in the text for ISO 2022 IR 58; the escape is not text.
    raw = (b"Wang^XiaoDong=\x1b$)A" + "王".encode("gb2312") + b"^\x1b$)A"
           + "小东".encode("gb2312"))
    charset = resolve("\\ISO 2022 IR 58", {})
    assert charset.problem is None
    assert decode(raw, "PN", charset).text == "Wang^XiaoDong=王^小东"
    assert encode("Wang^XiaoDong=王^小东", "PN", charset.terms) == raw


def test_pydicom_written_values_relying_on_the_delimiter_reset() -> None:
    # pydicom writes Latin-1 after '^' without switching back from Cyrillic (PS3.5 6.1.2.5.3
    # makes value 1 active again at '^'); its reader then shows 'Mќller'. Ours reads it right.
    charset = resolve("ISO 2022 IR 100\\ISO 2022 IR 144", {})
    written = b"\x1b-L\xb8\xd2\xd0\xdd\xde\xd2^M\xfcller"
    assert decode(written, "PN", charset).text == "Иванов^Müller"
    ours = encode("Иванов^Müller", "PN", charset.terms)
    assert ours is not None
    assert str(convert_PN(ours, convert_encodings(list(charset.terms)))) == "Иванов^Müller"


def test_undecodable_never_gives_replacement_characters() -> None:
    for declared, raw in [("ISO_IR 192", b"\xff\xfe"), ("\\ISO 2022 IR 87", b"\x1b$B\xff"),
                          ("\\ISO 2022 IR 149", b"\x1b$)C\xff"), ("ISO_IR 13", b"\x82\xa0"),
                          ("GB18030", b"\x81"), ("ISO_IR 126", b"\xae")]:
        decoded = decode(raw, "LO", resolve(declared, {}))
        assert decoded.text is None and decoded.problem == "undecodable_text", declared


def test_encode_is_never_lossy() -> None:
    assert encode("Иванов", "PN", LATIN1) is None
    assert encode("山田", "PN", ("ISO_IR 100",)) is None
    assert encode("ﾔﾏﾀﾞ山田", "PN", ("ISO_IR 13",)) is None  # JIS X 0201 has no kanji
    assert encode("Müller", "PN", ()) is None  # the default repertoire is ASCII
    assert encode("a\x1b(Bb", "LO", UTF8) is None
    assert encode("\x85", "LO", LATIN1) is None  # a C1 control
    assert encode("x", "LO", ("ISO_IR100",)) == b"x"  # ASCII needs no set
    assert encode("é", "LO", ("Not Supplied",)) is None
    assert encode("Müller", "LO", ("cp1252",)) == b"M\xfcller"


def test_encode_mixed_sets_round_trips_and_pydicom_agrees() -> None:
    text = "Müller Иванов 山田^Jérôme=やまだ"
    for vr in ("PN", "LO", "LT"):
        data = encode(text, vr, MIXED)
        assert data is not None and b"\x1b-L" in data and b"\x1b$B" in data
        assert decode(data, vr, resolve("\\".join(MIXED), {})).text == text
        assert decode_bytes(data, convert_encodings(list(MIXED)), TEXT_VR_DELIMS) == text


def test_invalid_override_is_reported() -> None:
    charset = resolve("", {"": "nonsense-set"})
    assert charset.problem == "invalid_character_set" and charset.terms == ()
    assert charset.message is not None and "nonsense-set" in charset.message
    assert resolve("", {"": "latin1"}).terms == LATIN1  # a name of a defined term
    assert resolve("X", {"X": ""}).terms == ()  # 'X' is really the default repertoire


def test_detect_hint() -> None:
    assert detect_hint("Müller".encode()) == "valid UTF-8 (ISO_IR 192)"
    assert detect_hint("Müller".encode("latin-1")) == "looks like Latin-1 (ISO_IR 100)"
    assert detect_hint("Иванов".encode("cp1251")).startswith("looks like Windows-1251")
    assert "Shift_JIS" in detect_hint("やまだ".encode("shift_jis"))
    assert "EUC-KR" in detect_hint("김희중".encode("euc_kr"))
    assert "GB18030" in detect_hint("王小东".encode("gbk"))
    assert "ESC $ B" in detect_hint(b"\x1b$B;3ED\x1b(B")


@given(st.binary(max_size=40))
def test_needs_charset_is_false_exactly_for_ascii_without_esc(raw: bytes) -> None:
    assert needs_charset(raw) == any(b >= 0x80 or b == 0x1B for b in raw)


LATIN1_TEXT = st.text(st.characters(codec="latin-1"), max_size=40)


@given(LATIN1_TEXT, st.sampled_from(sorted(CHARSET_VRS)))
def test_latin1_round_trip(text: str, vr: str) -> None:
    data = encode(text, vr, LATIN1)
    if "\x1b" in text or any("\x80" <= c <= "\x9f" for c in text):
        assert data is None  # ESC and C1 controls are not text in ISO_IR 100
        return
    assert data is not None
    assert decode(data, vr, resolve("ISO_IR 100", {})).text == text


@given(st.text(max_size=40), st.sampled_from(sorted(CHARSET_VRS)))
def test_utf8_round_trip(text: str, vr: str) -> None:
    data = encode(text, vr, UTF8)
    if "\x1b" in text:
        assert data is None
        return
    assert data == text.encode("utf-8")
    assert decode(data, vr, resolve("ISO_IR 192", {})).text == text


@given(st.text(st.sampled_from("Ab ^=\\\r\néüßИвЁё山田やまダ漢"), max_size=30),
       st.sampled_from(["PN", "LO", "ST"]))
def test_iso2022_round_trip(text: str, vr: str) -> None:
    data = encode(text, vr, MIXED)
    assert data is not None
    assert decode(data, vr, resolve("\\".join(MIXED), {})).text == text


@settings(max_examples=300)
@given(st.binary(max_size=30),
       st.sampled_from(["ISO_IR 100", "\\ISO 2022 IR 87", "ISO 2022 IR 13\\ISO 2022 IR 87",
                        "\\ISO 2022 IR 149", "ISO 2022 IR 100\\ISO 2022 IR 144", "ISO_IR 126"]),
       st.sampled_from(["PN", "LO", "LT"]))
def test_arbitrary_bytes_decode_strictly_or_not_at_all(raw: bytes, declared: str,
                                                       vr: str) -> None:
    charset = resolve(declared, {})
    decoded = decode(raw, vr, charset)
    if decoded.text is None:
        assert decoded.problem == "undecodable_text" and decoded.message
        return
    assert "\ufffd" not in decoded.text
    again = encode(decoded.text, vr, charset.terms)
    assert again is None or decode(again, vr, charset).text == decoded.text
