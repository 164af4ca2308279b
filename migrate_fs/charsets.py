"""charsets: decode text with the declared Specific Character Set, detect the common lies, and
encode text for writing (in the declared set, or UTF-8).

The inventory records the raw bytes of every text value that is not plain ASCII, and the
object's declared (0008,0005) Specific Character Set. :func:`resolve` turns the declared value
(and the config's ``[charset.overrides]``) into a :class:`CharacterSet`; :func:`decode` decodes
one value with it and :func:`encode` writes text back. Nothing is ever guessed: a value that
cannot be decoded strictly is a problem (``text=None``), never replacement characters.

Decoding follows pydicom (``pydicom.charset.decode_bytes``) and gives the same text for valid
data, including ISO 2022 code extensions (escape sequences, multi-valued sets, PN component
groups). It differs only where pydicom guesses or is lenient:

* the default repertoire (no value 1, ``ISO 2022 IR 6``) is ASCII, not Latin-1;
* the ISO 8859 sets reject the C1 bytes 0x80-0x9F (no DICOM repertoire has them: such bytes
  are Windows code pages or UTF-8 declared as ISO 8859), ``ISO_IR 13`` is JIS X 0201 only;
* an escape sequence for a set that is not declared is an error (pydicom decodes it with the
  first set and replacement characters);
* as PS3.5 6.1.2.5.3 requires, value 1 is active again after the delimiters CR, LF, FF, TAB,
  the value separator (SH, LO, UC, PN) and the PN delimiters ``^`` and ``=`` (pydicom resets only
  at CR, LF, FF and TAB when reading; its own writer relies on the reset at ``^``, ``=``, ``\\``);
* ``ISO 2022 IR 58`` (GB 2312) is decoded without leaving its escape sequence in the text.

A value whose bytes are valid in the declared set but were written in another (UTF-8 bytes
declared ``ISO_IR 100`` without C1 bytes, say) decodes without error: that lie cannot be seen in
the bytes, only fixed with an override.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

CHARSET_VRS: frozenset[str] = frozenset({"SH", "LO", "ST", "LT", "UT", "UC", "PN"})
UTF8 = ("ISO_IR 192",)
ESC = b"\x1b"

MISSING = "missing_character_set"
INVALID = "invalid_character_set"
OVERRIDE = "character_set_override"
UNDECODABLE = "undecodable_text"

CONTROL_DELIMS = frozenset({0x09, 0x0A, 0x0C, 0x0D})  # TAB, LF, FF, CR
DELIMITED_VRS = frozenset({"SH", "LO", "UC", "PN"})  # a backslash separates their values
PN_DELIMS = frozenset({0x5E, 0x3D})  # '^' and '='


@dataclass(frozen=True)
class _Set:
    """One character set as ISO 2022 sees it: a Python codec and its escape sequences."""

    name: str
    codec: str
    g0: bytes = b""  # escape designating it to G0 (ASCII, JIS X 0201 Roman, JIS X 0208/0212)
    g1: bytes = b""  # escape designating it to G1 (ISO 8859 sets, katakana, KS X 1001, GB 2312)
    stateful: bool = False  # the Python codec reads the escape itself (ISO-2022-JP)
    no_c1: bool = False  # an ISO 8859 / TIS 620 set: bytes 0x80-0x9F are not characters
    jis_x0201: bool = False  # only single bytes: 0x00-0x7F and katakana 0xA1-0xDF

    def decode_plain(self, data: bytes) -> str:
        """Decode bytes in this set (no escape sequences); UnicodeDecodeError if invalid."""
        bad = (_C1 if self.no_c1 else _NOT_JIS_X0201 if self.jis_x0201 else None)
        if bad is not None and (m := bad.search(data)) is not None:
            raise UnicodeDecodeError(self.codec, data, m.start(), m.start() + 1,
                                     f"byte 0x{data[m.start()]:02X} is not a character of "
                                     f"{self.name}")
        return data.decode(self.codec)


_C1 = re.compile(rb"[\x80-\x9f]")
_NOT_JIS_X0201 = re.compile(rb"[\x80-\xa0\xe0-\xff]")
_ASCII = _Set("ISO 2022 IR 6", "ascii", g0=b"\x1b(B")

_ISO8859 = {  # IR number -> (Python codec, G1 escape final byte)
    "100": ("latin_1", b"A"), "101": ("iso8859_2", b"B"), "109": ("iso8859_3", b"C"),
    "110": ("iso8859_4", b"D"), "144": ("iso8859_5", b"L"), "127": ("iso8859_6", b"G"),
    "126": ("iso8859_7", b"F"), "138": ("iso8859_8", b"H"), "148": ("iso8859_9", b"M"),
    "203": ("iso8859_15", b"b"), "166": ("tis_620", b"T"),
}


def _defined_sets() -> dict[str, _Set]:
    sets: dict[str, _Set] = {"ISO 2022 IR 6": _ASCII}
    for ir, (codec, final) in _ISO8859.items():
        for name in (f"ISO_IR {ir}", f"ISO 2022 IR {ir}"):
            sets[name] = _Set(name, codec, g1=b"\x1b-" + final, no_c1=True)
    for name in ("ISO_IR 13", "ISO 2022 IR 13"):
        sets[name] = _Set(name, "shift_jis", g0=b"\x1b(J", g1=b"\x1b)I", jis_x0201=True)
    sets["ISO 2022 IR 87"] = _Set("ISO 2022 IR 87", "iso2022_jp", g0=b"\x1b$B", stateful=True)
    sets["ISO 2022 IR 159"] = _Set("ISO 2022 IR 159", "iso2022_jp_2", g0=b"\x1b$(D",
                                   stateful=True)
    sets["ISO 2022 IR 149"] = _Set("ISO 2022 IR 149", "euc_kr", g1=b"\x1b$)C")
    sets["ISO 2022 IR 58"] = _Set("ISO 2022 IR 58", "gb2312", g1=b"\x1b$)A")
    for name, codec in (("ISO_IR 192", "utf_8"), ("GB18030", "gb18030"), ("GBK", "gbk")):
        sets[name] = _Set(name, codec)
    return sets


DEFINED_SETS = _defined_sets()
DEFINED_TERMS = frozenset(DEFINED_SETS)  # every DICOM defined term of (0008,0005)
STAND_ALONE = frozenset({"ISO_IR 192", "GB18030", "GBK"})  # no code extensions allowed


def _canonical(value: str) -> str:
    return re.sub(r"[^0-9A-Z]", "", value.upper())


# Misspellings with a known meaning: canonical spelling -> defined term ("" = default).
ALIASES: dict[str, str] = {_canonical(t): t for t in DEFINED_TERMS}
ALIASES.update({
    "ISOIR6": "", "ASCII": "", "USASCII": "", "UTF8": "ISO_IR 192", "ISO202258": "ISO 2022 IR 58",
    "ISO2022GBK": "GBK", "LATIN1": "ISO_IR 100", "LATIN2": "ISO_IR 101", "LATIN5": "ISO_IR 148",
    "LATIN9": "ISO_IR 203", "TIS620": "ISO_IR 166",
    **{f"ISO8859{n}": f"ISO_IR {ir}" for n, ir in (
        ("1", "100"), ("2", "101"), ("3", "109"), ("4", "110"), ("5", "144"), ("6", "127"),
        ("7", "126"), ("8", "138"), ("9", "148"), ("15", "203"))},
})


@dataclass(frozen=True)
class CharacterSet:
    """The character set an object's text is decoded with."""

    terms: tuple[str, ...]  # defined terms (or one Python codec name); () = default repertoire
    declared: tuple[str, ...]  # what the file declared, values stripped; () if absent
    problem: str | None  # None, "invalid_character_set" or "character_set_override"
    message: str | None

    @property
    def dicom_terms(self) -> bool:
        """True if every term is a DICOM defined term (the set can be written as declared)."""
        return all(t in DEFINED_TERMS or (t == "" and i == 0 and len(self.terms) > 1)
                   for i, t in enumerate(self.terms))


@dataclass(frozen=True)
class Decoded:
    """One decoded value: the text, or None with the problem and what to do about it."""

    text: str | None
    problem: str | None
    message: str | None


def needs_charset(raw: bytes) -> bool:
    """True when the bytes are not plain ASCII text: any byte >= 0x80, or ESC (ISO 2022)."""
    return not raw.isascii() or ESC in raw


def _split(declared: str | None) -> tuple[str, ...]:
    """The declared values, stripped; () when absent or empty."""
    values = tuple(v.strip() for v in (declared or "").split("\\"))
    return () if not any(values) else values


@lru_cache(maxsize=256)
def _text_codec(name: str) -> str | None:
    """The Python codec ``name`` if it is an ASCII-compatible text encoding, else None (also
    for a name Python's codec lookup refuses to look up: one with a NUL, say)."""
    if not name.isprintable():
        return None
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        return None
    if not getattr(info, "_is_text_encoding", True) or "escape" in info.name:
        return None
    probe = bytes(b for b in range(0x20, 0x7F) if b != 0x5C) + b"\t\r\n+-\\"
    try:
        return name if probe.decode(info.name) == probe.decode("ascii") else None
    except (UnicodeError, ValueError):
        return None


def resolve(declared: str | None, overrides: dict[str, str]) -> CharacterSet:
    """The character set to decode an object's text with.

    ``declared`` is (0008,0005) as the manifest stores it (values joined with a backslash; None
    or "" when absent). ``overrides`` maps a declared value (stripped values joined with "\\";
    "" for absent) to the actual set: defined terms joined with "\\", or a Python codec name
    such as "cp1251". A misspelling with a known meaning ("ISO_IR100", "ISO IR 100", "UTF-8")
    is read as the term it names (as pydicom does) with problem ``invalid_character_set``; an
    unknown value ("Not Supplied") gives terms () and the same problem.
    """
    values = _split(declared)
    key = "\\".join(values)
    if key in overrides:
        return _overridden(values, key, overrides[key])
    if not values:
        return CharacterSet((), (), None, None)
    terms, note = _corrected(values)
    if note is None:
        return CharacterSet(terms or (), values, None, None)
    if terms is None:
        codec = _text_codec(key) if len(values) == 1 else None
        if codec is not None:
            return CharacterSet((codec,), values, INVALID,
                                f"SpecificCharacterSet {key!r} is not a DICOM defined term; it "
                                f"names the Python codec {codec!r} (pydicom decodes with it): "
                                f"confirm it with an override for {key!r} in [charset.overrides] "
                                "of the rules config")
        return CharacterSet((), values, INVALID,
                            f"SpecificCharacterSet {key!r} is not a DICOM defined term; text "
                            "with non-ASCII bytes cannot be decoded: add an override for "
                            f"{key!r} in [charset.overrides] of the rules config")
    new = "\\".join(terms) or "absent (default repertoire)"
    return CharacterSet(terms, values, INVALID,
                        f"SpecificCharacterSet {key!r} is not a DICOM defined term ({note}); "
                        f"read as {new!r}")


def _corrected_single(value: str) -> tuple[tuple[str, ...] | None, str | None]:
    """:func:`_corrected` for a single-valued Specific Character Set."""
    if value in DEFINED_TERMS:
        return (value,), None
    term = ALIASES.get(_canonical(value))
    if term is None:
        return None, "unknown"
    correct = repr(term) if term else "none: absent means the default repertoire"
    return ((term,) if term else ()), f"the correct term is {correct}"


def _corrected(values: tuple[str, ...]) -> tuple[tuple[str, ...] | None, str | None]:
    """(terms, note): the defined terms meant by ``values`` and why they differ (None if they
    do not); terms None when a value has no known meaning."""
    if len(values) == 1:
        return _corrected_single(values[0])
    notes: list[str] = []
    terms: list[str] = []
    for i, value in enumerate(values):
        if value == "":
            if i:
                notes.append("an empty value after value 1")
            else:
                terms.append("")
            continue
        term = value if value in DEFINED_TERMS else ALIASES.get(_canonical(value))
        if term is None:
            return None, "unknown"
        if term != value:
            notes.append(f"{value!r} means " + (repr(term) if term else "the default repertoire"))
        if term in STAND_ALONE:
            if i == 0:
                return (term,), f"{term} allows no code extensions"
            notes.append(f"{term} cannot be a code extension")
            continue
        if not term.startswith("ISO 2022") and term != "":
            ext = "ISO 2022 IR" + term[len("ISO_IR"):] if term.startswith("ISO_IR ") else ""
            if ext not in DEFINED_TERMS:
                return None, "unknown"
            notes.append(f"with code extensions {term!r} is {ext!r}")
            term = ext
        elif term == "":  # the default repertoire, misspelled ('ISO_IR 6')
            term = "ISO 2022 IR 6"
        terms.append(term)
    return tuple(terms), ("; ".join(notes) or None)


def _overridden(values: tuple[str, ...], key: str, actual: str) -> CharacterSet:
    parts = tuple(v.strip() for v in actual.split("\\")) if actual.strip() else ()
    parts = tuple(p if p in DEFINED_TERMS or not p else ALIASES.get(_canonical(p), p)
                  for p in parts)  # 'latin1', 'ISO IR 100', 'UTF-8' name defined terms
    parts = () if parts == ("",) else parts
    ok = all(p in DEFINED_TERMS or (p == "" and i == 0 and len(parts) > 1)
             for i, p in enumerate(parts))
    if not ok and len(parts) == 1 and _text_codec(parts[0]):
        ok = True
    if not ok:
        return CharacterSet((), values, INVALID,
                            f"the override for {key!r} in [charset.overrides] ({actual!r}) is "
                            "neither DICOM defined terms nor a Python text codec: correct it")
    return CharacterSet(parts, values, OVERRIDE,
                        f"SpecificCharacterSet {key or '(absent)'!r} overridden by the rules "
                        f"config: text decoded as {actual or '(default repertoire)'!r}")


@lru_cache(maxsize=256)
def _sets(terms: tuple[str, ...]) -> tuple[_Set, ...]:
    """The sets for ``terms``; LookupError for a term that is neither defined nor a codec."""
    if not terms:
        return (_ASCII,)
    sets = []
    for i, term in enumerate(terms):
        if term in DEFINED_SETS:
            sets.append(DEFINED_SETS[term])
        elif term == "" and i == 0:
            sets.append(_ASCII)
        elif len(terms) == 1 and (codec := _text_codec(term)) is not None:
            sets.append(_Set(term, codec))
        else:
            raise LookupError(f"unknown character set {term!r}")
    return tuple(sets)


def _delimiters(vr: str) -> frozenset[int]:
    delims = CONTROL_DELIMS | {0x5C} if vr in DELIMITED_VRS else CONTROL_DELIMS
    return delims | PN_DELIMS if vr == "PN" else delims


_FRAGMENTS = re.compile(rb"(^[^\x1b]+|\x1b[^\x1b]*)")


def _decode_strict(raw: bytes, sets: tuple[_Set, ...], delims: frozenset[int]) -> str:
    """Decode like pydicom's decode_bytes, strictly: UnicodeDecodeError or ValueError."""
    first = sets[0]
    if ESC not in raw:
        return first.decode_plain(raw)
    by_escape: dict[bytes, _Set] = {b"\x1b(B": first}
    for s in reversed(sets):  # value 1 wins for its own escapes
        by_escape.update({e: s for e in (s.g0, s.g1) if e})
    parts = []
    for fragment in _FRAGMENTS.findall(raw):
        if not fragment.startswith(ESC):
            parts.append(first.decode_plain(fragment))
            continue
        length = 4 if fragment[1:3] in (b"$(", b"$)") else 3
        found = by_escape.get(fragment[:length])
        if found is None:
            raise ValueError(f"escape sequence {_show(fragment[:length])} is not one of the "
                             "declared character sets")
        if found.stateful:
            parts.append(fragment.decode(found.codec))
            continue
        body = fragment[length:]
        cut = next((i for i, b in enumerate(body) if b in delims), len(body))
        parts.append(found.decode_plain(body[:cut]) + first.decode_plain(body[cut:]))
    return "".join(parts)


def _show(seq: bytes) -> str:
    return "ESC " + " ".join(chr(b) for b in seq[1:])


def _describe(charset: CharacterSet) -> str:
    terms, key = "\\".join(charset.terms), "\\".join(charset.declared)
    if charset.problem == OVERRIDE:
        return f"{terms or 'the default repertoire'!r} (the override for {key!r})"
    return f"{terms!r}" if terms else "the default repertoire (ASCII)"


def decode(raw: bytes, vr: str, charset: CharacterSet, keyword: str = "") -> Decoded:
    """Decode one element value (all its values, backslash-separated, as one string; trailing
    spaces and NULs are kept). Bytes that are not valid in the set give ``text=None`` with
    problem ``undecodable_text`` (``missing_character_set`` when nothing was declared)."""
    if not needs_charset(raw):
        return Decoded(raw.decode("ascii"), None, None)
    name = keyword or "the value"
    try:
        sets = _sets(charset.terms)
    except LookupError:
        return Decoded(None, UNDECODABLE, f"{name} cannot be decoded: {charset.message}")
    try:
        return Decoded(_decode_strict(raw, sets, _delimiters(vr)), None, None)
    except (UnicodeDecodeError, ValueError) as exc:
        reason = _reason(exc)
    hint = detect_hint(raw)
    key = "\\".join(charset.declared)
    advice = f"add an override for {key!r} in [charset.overrides] of the rules config"
    if not charset.declared and charset.problem is None:
        return Decoded(None, MISSING, f"{name} has non-ASCII bytes but no SpecificCharacterSet; "
                                      f"the bytes: {hint}: {advice}")
    if charset.problem == INVALID and not charset.terms:  # 'Not Supplied', a bad override
        return Decoded(None, UNDECODABLE,
                       f"{name} has non-ASCII bytes (the bytes: {hint}): {charset.message}")
    if charset.problem == OVERRIDE:
        advice = f"correct the override for {key!r} in [charset.overrides]"
    return Decoded(None, UNDECODABLE,
                   f"{name} is not valid text in {_describe(charset)}: {reason}; the bytes: "
                   f"{hint}: if the declared set is wrong, {advice}; the value is never guessed")


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"{exc.reason} ({exc.object[exc.start:exc.end]!r})"
    return str(exc)


def encode(text: str, vr: str, terms: tuple[str, ...]) -> bytes | None:
    """The value encoded for writing with the defined terms ``terms`` (ISO 2022 escape sequences
    as pydicom's encode_string writes them); None if the text cannot be written in that set
    without loss. The result always decodes back to ``text``; it is not padded."""
    if "\x1b" in text:
        return None
    if text.isascii():
        return text.encode("ascii")
    try:
        sets = _sets(terms)
    except LookupError:
        return None
    delims = _delimiters(vr)
    try:
        data: bytes | None
        if len(sets) == 1 and not sets[0].stateful:
            data = text.encode(sets[0].codec)
        else:
            data = _encode_iso2022(text, sets, delims)
        if data is None or _decode_strict(data, sets, delims) != text:
            return None
    except (UnicodeError, ValueError):
        return None
    return data


def _encode_iso2022(text: str, sets: tuple[_Set, ...], delims: frozenset[int]) -> bytes | None:
    pattern = "([" + re.escape("".join(chr(d) for d in sorted(delims))) + "])"
    out = bytearray()
    for i, piece in enumerate(re.split(pattern, text)):
        if i % 2:
            out += piece.encode("ascii")
            continue
        encoded = _encode_segment(piece, sets)
        if encoded is None:
            return None
        out += encoded
    return bytes(out)


def _encode_segment(segment: str, sets: tuple[_Set, ...]) -> bytes | None:
    """One segment between delimiters: runs of characters, each in the first set that can
    encode it (staying in the current set while it can), with the escape sequences needed;
    value 1 is active again at the end."""
    first = sets[0]
    home_g0 = b"\x1b(J" if first.jis_x0201 else b"\x1b(B"
    home_g1 = first.g1
    g0, g1, current = home_g0, home_g1, first
    out = bytearray()
    for char in segment:
        if not _can_encode(current, char):
            found = next((s for s in sets if _can_encode(s, char)), None)
            if found is None:
                return None
            if found.stateful:
                out += found.g0
                g0 = found.g0
            elif found is first:
                out += home_g0
                g0 = home_g0
                if home_g1 and g1 != home_g1:
                    out += home_g1
                    g1 = home_g1
            else:
                if g0 not in (b"\x1b(B", b"\x1b(J"):
                    out += home_g0
                    g0 = home_g0
                out += found.g1 or found.g0
                g1 = found.g1 or g1
            current = found
        out += _encode_char(current, char)
    if g0 != home_g0:
        out += home_g0
    if home_g1 and g1 != home_g1:
        out += home_g1
    return bytes(out)


@lru_cache(maxsize=65536)
def _encode_char(s: _Set, char: str) -> bytes:
    data = char.encode(s.codec)
    return data[len(s.g0):-3] if s.stateful else data


@lru_cache(maxsize=65536)
def _can_encode(s: _Set, char: str) -> bool:
    try:
        data = char.encode(s.codec)
    except UnicodeEncodeError:
        return False
    if s.stateful:  # a JIS X 0208/0212 character: ESC $ B xx xx ESC ( B, nothing else
        return data.startswith(s.g0) and len(data) == len(s.g0) + 5 and data.count(ESC) == 2
    try:
        return s.decode_plain(data) == char
    except UnicodeDecodeError:
        return False


_HINTS = (("shift_jis", ("HIRAGANA", "KATAKANA", "CJK"), "looks like Shift_JIS (Japanese; not a "
           "DICOM character set: override with 'shift_jis')"),
          ("euc_kr", ("HANGUL",), "looks like EUC-KR (Korean) without escape sequences"),
          ("cp1251", ("CYRILLIC",), "looks like Windows-1251 (Cyrillic; override with "
           "'cp1251') or another single-byte non-Latin set"),
          ("gb18030", ("CJK",), "looks like GB18030/GBK (Chinese)"))


def _plausible(text: str, codec: str, scripts: tuple[str, ...]) -> bool:
    """Every non-ASCII character is of ``scripts``; words of an alphabet are cased like words."""
    if not all(unicodedata.name(c, "").startswith(scripts) for c in text if ord(c) >= 0x80):
        return False
    words = [w for w in re.findall(r"[^\W\d_]+", text) if not w.isascii()]
    return codec != "cp1251" or all(w.isupper() or w.islower() or w.istitle() for w in words)


def detect_hint(raw: bytes) -> str:
    """A short human hint for a message ('valid UTF-8', 'looks like Latin-1 (ISO_IR 100)', ...).
    Heuristic: only used in messages, never to decode."""
    if ESC in raw:
        found = sorted({_show(m) for m in re.findall(rb"\x1b(?:\$[()]?.|[()\-].)", raw)})
        return f"ISO 2022 escape sequences ({', '.join(found) or 'ESC'})"
    if raw.isascii():
        return "plain ASCII"
    try:
        raw.decode("utf-8")
        return "valid UTF-8 (ISO_IR 192)"
    except UnicodeDecodeError:
        pass
    high = [i for i, b in enumerate(raw) if b >= 0x80]
    adjacent = sum(1 for i in high if (i + 1 < len(raw) and raw[i + 1] >= 0x80)
                   or (i > 0 and raw[i - 1] >= 0x80))
    if adjacent * 2 >= len(high):  # runs of high bytes: multi-byte or a non-Latin alphabet
        for codec, scripts, hint in _HINTS:
            try:
                text = raw.decode(codec)
            except UnicodeDecodeError:
                continue
            if _plausible(text, codec, scripts):
                return hint
    if any(0x80 <= b <= 0x9F for b in raw):
        try:
            raw.decode("cp1252")
            return "looks like Windows-1252 (Latin-1 with Windows punctuation; override with " \
                   "'cp1252')"
        except UnicodeDecodeError:
            return "not valid in any common set"
    return "looks like Latin-1 (ISO_IR 100)"
