"""values: repair rules for element values, pure functions of the value the inventory recorded.

:func:`suspect` is the inventory's byte-level pre-check (is this value worth recording?),
:func:`check_value` the plan's full check: a list of :class:`Finding`, one per rule that applies,
each with the repaired value or None. Repairs are conservative: an ambiguous value (1/2/2001
without a configured day/month order, 1,500 as a decimal string) is reported, never guessed,
and every change is a whole new value that the plan records next to the old one.

Value rules, in the order :func:`check_value` applies them (one finding per rule and element; a
multi-valued element is repaired only when every bad value in it can be):

* ``trailing_nul``: text values ending in NUL bytes lose them (UI values are NUL-padded legally);
  the other rules judge the value without them.
* ``date_format`` (DA), ``time_format`` (TM), ``datetime_format`` (DT), ``decimal_string`` (DS),
  ``integer_string`` (IS), ``code_string`` (CS): the VR's format, repaired where the intent is
  certain.
* ``value_too_long``: a value (a PN component group) longer than its VR allows is truncated
  (lossy: the plan applies it only when the configuration asks). AS is reported only; the length
  of DA, DS, DT, IS and TM values is part of their format rule.
* ``invalid_uid``: :func:`uid_problem`, :func:`remap_uid` and :func:`generated_uid`. In
  :func:`check_value` an invalid UID has no new value: the remap needs the run's namespace.

Lengths are counted without trailing spaces (padding, insignificant in every text VR).
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from pydicom.datadict import dictionary_VM, tag_for_keyword
from pydicom.valuerep import format_number_as_ds

# Text VRs whose values may end in NUL bytes that are not theirs (UI pads with one NUL legally).
NUL_TRIMMED_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH",
                             "ST", "TM", "UC", "UT", "UR"})
# VRs whose values are separated by a backslash (LT, ST, UT, UR are single-valued).
MULTI_VALUED_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "PN", "SH", "TM",
                              "UC", "UI"})
# Maximum length in characters of one value (PN: of one component group) for value_too_long.
MAX_LENGTH: dict[str, int] = {"AE": 16, "AS": 4, "CS": 16, "LO": 64, "LT": 10240, "PN": 64,
                              "SH": 16, "ST": 1024}
# VRs whose values are in the default repertoire only (PS3.5 6.2): bytes that are not ASCII
# (decoded as Latin-1 by the rules) cannot be repaired into one of their values.
ASCII_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI", "UR"})
TRUNCATED_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST"})  # AS: reported only
DS_MAX = 16
IS_MAX_CHARS = 12
IS_RANGE = (-2**31, 2**31 - 1)
UID_MAX = 64
UID_PREFIX = "2.25."  # UUID-derived UIDs (PS3.5 B.2)
DATE_ORDERS = ("DMY", "MDY")

# --- suspect(): byte patterns of values that are certainly clean --------------------------------

_YEAR = rb"(?!0000)[0-9]{4}"
# Month and day; 29 February is left to check_value (leap years).
_MONTH_DAY = (rb"(?:(?:0[1-9]|1[0-2])(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])(?:29|30)"
              rb"|(?:0[13578]|1[02])31)")
_DATE = _YEAR + _MONTH_DAY
_TIME = rb"(?:[01][0-9]|2[0-3])(?:[0-5][0-9](?:(?:[0-5][0-9]|60)(?:\.[0-9]{1,6})?)?)?"
_OFFSET = rb"(?:[+-](?:0[0-9]|1[0-4])[0-5][0-9])"
_DATETIME = (_YEAR + rb"(?:" + _MONTH_DAY + rb"(?:" + _TIME + rb")?|0[1-9]|1[0-2])?"
             + _OFFSET + rb"?")
# One UID (components without leading zeros) and its NUL pad; with the 64-byte limit. Several
# UIDs in one element (rare) are left to check_value.
_UID_BYTES = rb"(?:(?!0[0-9])[0-9]++(?:\.(?!0[0-9])[0-9]++)*+)?\x00?"
_PRINTABLE = rb"[\x20-\x5b\x5d-\x7e]"  # printable ASCII but backslash
_PN_GROUP = rb"[\x20-\x3c\x3e-\x5b\x5d-\x7e]{0,64}"  # ... and '='
_TEXT = rb"[\t\n\f\r\x20-\x7e]*"  # LT ST UT UC: ASCII text without NUL or ESC
_DS_BYTES = (rb"(?=[^\\]{0,16}(?![^\\])) *(?:[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
             rb"(?:[eE][+-]?[0-9]+)?)? *")
_IS_BYTES = rb"(?=[^\\]{0,12}(?![^\\])) *(?:[+-]?[0-9]{1,9})? *"  # 9 digits: always in range


def _values(one: bytes) -> bytes:
    return one + rb"(?:\\" + one + rb")*"


def _ranged(one: bytes) -> bytes:
    return _values(rb"(?:" + one + rb"(?:-(?:" + one + rb")?)?|-" + one + rb")?") + b" ?"


_NO_LIMIT = sys.maxsize


def _clean_pattern(pattern: bytes, limit: int) -> Callable[[bytes], object]:
    """The fullmatch of ``pattern``, with the length limit (in bytes) folded in."""
    if limit != _NO_LIMIT:
        pattern = rb"(?=.{0,%d}\Z)" % limit + pattern
    return re.compile(pattern, re.DOTALL).fullmatch


# VR -> fullmatch of the clean values (a value longer than its VR's byte limit does not match).
# Charset VRs are clean only as ASCII without ESC: other bytes are decoded with the character
# set, the inventory records them.
CLEAN: dict[str, Callable[[bytes], object]] = {
    vr: _clean_pattern(pattern, limit) for vr, pattern, limit in (
        ("AE", _values(_PRINTABLE + rb"{0,16}"), _NO_LIMIT),
        ("AS", _values(_PRINTABLE + rb"{0,4}"), _NO_LIMIT),
        ("CS", _values(rb"[A-Z0-9 _]{0,16}"), _NO_LIMIT),
        ("DA", _ranged(_DATE), _NO_LIMIT),
        ("DS", _values(_DS_BYTES), _NO_LIMIT),
        ("DT", _ranged(_DATETIME), _NO_LIMIT),
        ("IS", _values(_IS_BYTES), _NO_LIMIT),
        ("LO", _values(_PRINTABLE + rb"{0,64}"), _NO_LIMIT),
        ("LT", _TEXT, MAX_LENGTH["LT"]),
        ("PN", _values(_PN_GROUP + rb"(?:=" + _PN_GROUP + rb"){0,2}"), _NO_LIMIT),
        ("SH", _values(_PRINTABLE + rb"{0,16}"), _NO_LIMIT),
        ("ST", _TEXT, MAX_LENGTH["ST"]),
        ("TM", _ranged(_TIME), _NO_LIMIT),
        ("UC", _TEXT, _NO_LIMIT),
        ("UI", _UID_BYTES, UID_MAX),
        ("UR", rb"[^\x00]*", _NO_LIMIT),
        ("UT", _TEXT, _NO_LIMIT),
    )
}
# The same, keyed by the VR's two bytes as an explicit VR header holds them: the walker's table.
CLEAN_BYTES: dict[bytes, Callable[[bytes], object]] = {
    vr.encode(): clean for vr, clean in CLEAN.items()}


def suspect(vr: str, raw: bytes) -> bool:
    """True when :func:`check_value` could find something in ``raw`` (the inventory's hot path).

    Never False where a rule applies; False for typical valid values. A value of a charset VR
    that is not ASCII, or holds ESC, is always suspect. VRs without rules: False.
    """
    clean = CLEAN.get(vr)
    return clean is not None and clean(raw) is None


# --- findings ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    """One rule's verdict on one element value."""

    rule: str  # a key of config.RULES, whose code the finding is
    message: str  # which value and why
    new: str | None  # the whole repaired element value, or None when it cannot be repaired


# A per-value check: None when the value is valid, else (reason, repaired value or None).
Check = Callable[[str], tuple[str, str | None] | None]


def _show(value: str, limit: int = 80) -> str:
    """repr of a value for a message, shortened when long."""
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}... ({len(value)} chars)"


def _apply(rule: str, name: str, values: list[str], check: Check) -> list[Finding]:
    """Run a per-value check over an element's values: no finding, or one for the element."""
    bad: list[tuple[int, str, str]] = []
    out: list[str] = []
    repairable = True
    for i, value in enumerate(values):
        result = check(value)
        if result is None:
            out.append(value)
            continue
        reason, new = result
        bad.append((i, value, reason))
        repairable = repairable and new is not None
        out.append(value if new is None else new)
    if not bad:
        return []
    if len(values) == 1:
        message = f"{name} {_show(values[0])} {bad[0][2]}"
    else:
        message = f"{name} " + "; ".join(f"value {i + 1} {_show(v)} {r}" for i, v, r in bad)
    return [Finding(rule, message, "\\".join(out) if repairable else None)]


def check_value(vr: str, value: str, keyword: str = "", *, date_order: str | None = None,
                max_length: bool = True) -> list[Finding]:
    """All findings for one element value (decoded, trailing padding included), in rule order.

    ``date_order`` ("DMY", "MDY" or None) resolves dates such as 1/2/2001; ``keyword`` names the
    element in messages and gives its multiplicity (a comma in a DS that should hold more values
    than it has may be a value separator); ``max_length`` False skips ``value_too_long``.
    """
    if date_order not in (None, "", *DATE_ORDERS):
        raise ValueError(f"date_order must be 'DMY', 'MDY' or None, not {date_order!r}")
    order = date_order or None
    name = keyword or vr
    findings: list[Finding] = []
    text = value
    if vr in NUL_TRIMMED_VRS and value.endswith("\x00"):
        text = value.rstrip("\x00")
        count = len(value) - len(text)
        findings.append(Finding("trailing_nul", f"{name} {_show(value)} ends in "
                                f"{count} NUL byte{'s' if count > 1 else ''}", text))
    if vr == "UI":
        text = value.removesuffix("\x00")
        if not text:
            return findings
    values = text.split("\\") if vr in MULTI_VALUED_VRS else [text]
    rule_check = _format_check(vr, order, keyword, len(values))
    if rule_check is not None:
        findings += _apply(rule_check[0], name, values, rule_check[1])
    if max_length and vr in MAX_LENGTH:
        check = _check_pn_length if vr == "PN" else _length_check(vr)
        findings += _apply("value_too_long", name, values, check)
    if vr in ASCII_VRS and not value.isascii():  # no repair can make it a value of its VR
        findings = [Finding(f.rule, f.message, None) if f.new is not None and not f.new.isascii()
                    else f for f in findings]
    return findings


def _format_check(vr: str, order: str | None, keyword: str,
                  count: int) -> tuple[str, Check] | None:
    """The format rule of a VR and its per-value check (DA and DT depend on the date order, DS
    on whether a comma may be a value separator: fewer than ``keyword``'s ``count`` values)."""
    if vr == "DA":
        return "date_format", lambda v: _check_da(v, order)
    if vr == "DT":
        return "datetime_format", lambda v: _check_dt(v, order)
    if vr == "DS":
        comma_ok = count >= _min_multiplicity(keyword)
        return "decimal_string", lambda v: _check_ds(v, comma_ok)
    return _FORMAT_CHECKS.get(vr)


# --- DA, TM, DT -------------------------------------------------------------------------------

_DA = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})", re.ASCII)
_DA_YMD = re.compile(r"([0-9]{4})([./-])([0-9]{1,2})\2([0-9]{1,2})", re.ASCII)
_DA_XYY = re.compile(r"([0-9]{1,2})([./:-])([0-9]{1,2})\2([0-9]{4})", re.ASCII)
_TM = re.compile(r"([0-9]{2})(?:([0-9]{2})(?:([0-9]{2})(?:\.([0-9]{1,6}))?)?)?", re.ASCII)
_TM_COLON = re.compile(r"([0-9]{1,2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]*))?)?", re.ASCII)
_DT = re.compile(r"([0-9]{4})(?:([0-9]{2})(?:([0-9]{2})(?:([0-9]{2}(?:[0-9]{2}(?:[0-9]{2}"
                 r"(?:\.[0-9]{1,6})?)?)?))?)?)?(?:[+-]([0-9]{2})([0-9]{2}))?", re.ASCII)
_DT_PARTS = re.compile(r"(?P<date>[0-9]{8}|[0-9]{4}([./-])[0-9]{1,2}\2[0-9]{1,2}"
                       r"|[0-9]{1,2}([./:-])[0-9]{1,2}\3[0-9]{4})"
                       r"(?:[ T](?P<time>[0-9]{2,6}(?:\.[0-9]*)?|[0-9]{1,2}:[0-9:.]*))?"
                       r" ?(?P<offset>Z|[+-][0-9]{2}:?[0-9]{2})?", re.ASCII)
NOT_DA = "is not YYYYMMDD"
NOT_TM = "is not HHMMSS.FFFFFF"
NOT_DT = "is not YYYYMMDDHHMMSS.FFFFFF&ZZXX"
AMBIGUOUS_DATE = (f"{NOT_DA}; day and month are ambiguous: set date_order "
                  f"({' or '.join(DATE_ORDERS)}) in [charset] of the rules config")


def _ymd(year: int, month: int, day: int) -> str | None:
    """YYYYMMDD for a real calendar date, else None."""
    try:
        date(year, month, day)
    except ValueError:
        return None
    return f"{year:04d}{month:02d}{day:02d}"


def _da_ok(s: str) -> bool:
    m = _DA.fullmatch(s)
    return m is not None and _ymd(int(m[1]), int(m[2]), int(m[3])) is not None


def _tm_ok(s: str) -> bool:
    m = _TM.fullmatch(s)
    return m is not None and int(m[1]) < 24 and int(m[2] or 0) < 60 and int(m[3] or 0) <= 60


def _dt_ok(s: str) -> bool:
    m = _DT.fullmatch(s)
    if m is None:
        return False
    year, month, day, time, off_h, off_m = m.groups()
    if int(year) < 1 or (month and not 1 <= int(month) <= 12):
        return False
    if day and _ymd(int(year), int(month), int(day)) is None:
        return False
    return (not time or _tm_ok(time)) and (not off_h or (int(off_h) <= 14 and int(off_m) < 60))


def _ranged_ok(s: str, ok: Callable[[str], bool]) -> bool:
    """A valid value, or a DICOM range A-B, A- or -B of valid values."""
    if ok(s):
        return True
    for i, c in enumerate(s):
        if c == "-":
            a, b = s[:i], s[i + 1:]
            if (a or b) and (not a or ok(a)) and (not b or ok(b)):
                return True
    return False


def _repair_date(s: str, order: str | None) -> tuple[str | None, str]:
    """(YYYYMMDD or None, reason) for a date written another way."""
    if _DA.fullmatch(s):
        return None, "is not a calendar date"
    if m := _DA_YMD.fullmatch(s):
        new = _ymd(int(m[1]), int(m[3]), int(m[4]))
        return new, NOT_DA if new else f"{NOT_DA} and not a calendar date"
    if m := _DA_XYY.fullmatch(s):
        a, b, year = int(m[1]), int(m[3]), int(m[4])
        if order is None:
            if a == b or a > 12 >= b:
                order = "DMY"
            elif b > 12 >= a:
                order = "MDY"
            elif a <= 12 and b <= 12:
                return None, AMBIGUOUS_DATE
            else:
                return None, f"{NOT_DA} and not a calendar date"
            new = _ymd(year, b, a) if order == "DMY" else _ymd(year, a, b)
            return new, NOT_DA if new else f"{NOT_DA} and not a calendar date"
        new = _ymd(year, b, a) if order == "DMY" else _ymd(year, a, b)
        return new, NOT_DA if new else f"{NOT_DA} and not a calendar date in {order} order"
    return None, NOT_DA


def _repair_time(s: str) -> tuple[str | None, str]:
    """(HHMMSS.FFFFFF or None, reason) for a time written another way."""
    if m := _TM_COLON.fullmatch(s):
        hh, mm, ss, frac = m.groups()
        if frac and len(frac) > 6:
            return None, f"{NOT_TM} and has more than 6 fraction digits"
        new = f"{int(hh):02d}{mm}{ss or ''}" + (f".{frac}" if frac else "")
        return (new, NOT_TM) if _tm_ok(new) else (None, f"{NOT_TM} and is out of range")
    if s.endswith(".") and len(s) == 7 and _tm_ok(s[:-1]):
        return s[:-1], f"{NOT_TM}: '.' without fraction digits"
    if _TM.fullmatch(s):
        return None, f"{NOT_TM}: hours, minutes or seconds out of range"
    if re.fullmatch(r"[0-9]{6}\.[0-9]{7,}", s, re.ASCII):
        return None, f"{NOT_TM}: more than 6 fraction digits"
    return None, NOT_TM


def _repair_datetime(s: str, order: str | None) -> tuple[str | None, str]:
    """(YYYYMMDDHHMMSS.FFFFFF&ZZXX or None, reason) for a date-time written another way."""
    m = _DT_PARTS.fullmatch(s)
    if m is None:
        return None, NOT_DT
    day, reason = (m["date"], "") if _DA.fullmatch(m["date"]) else _repair_date(m["date"], order)
    if day is None or not _da_ok(day):
        return None, f"{NOT_DT}: its date {reason or 'is not a calendar date'}"
    time = m["time"] or ""
    if ":" in time or time.endswith("."):
        time, reason = _repair_time(time)
        if time is None:
            return None, f"{NOT_DT}: its time {reason}"
    offset = m["offset"] or ""
    offset = "+0000" if offset == "Z" else offset.replace(":", "")
    new = day + time + offset
    return (new, NOT_DT) if _dt_ok(new) else (None, NOT_DT)


def _check_temporal(v: str, ok: Callable[[str], bool], not_valid: str,
                    repair: Callable[[str], tuple[str | None, str]]
                    ) -> tuple[str, str | None] | None:
    """A DA, TM or DT value (ranges allowed): None when valid, else (reason, repaired)."""
    s = v.rstrip(" ")
    if not s or _ranged_ok(s, ok):
        return None
    t = s.strip()
    if _ranged_ok(t, ok):
        return f"{not_valid}: leading spaces", t
    new, reason = repair(t)
    return reason, new


def _check_da(v: str, order: str | None) -> tuple[str, str | None] | None:
    return _check_temporal(v, _da_ok, NOT_DA, lambda t: _repair_date(t, order))


def _check_tm(v: str) -> tuple[str, str | None] | None:
    return _check_temporal(v, _tm_ok, NOT_TM, _repair_time)


def _check_dt(v: str, order: str | None) -> tuple[str, str | None] | None:
    return _check_temporal(v, _dt_ok, NOT_DT, lambda t: _repair_datetime(t, order))


# --- DS, IS, CS --------------------------------------------------------------------------------

_DS = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_THOUSANDS = re.compile(r"[+-]?[1-9][0-9]{0,2},[0-9]{3}", re.ASCII)
_NON_FINITE = frozenset({"nan", "inf", "infinity", "-nan", "-inf", "-infinity", "+nan", "+inf",
                         "+infinity"})
_IS = re.compile(r"[+-]?[0-9]+", re.ASCII)
_IS_WHOLE = re.compile(r"([+-]?[0-9]+)\.0*", re.ASCII)
_CS = re.compile(r"[A-Z0-9 _]*", re.ASCII)
_CS_ANY_CASE = re.compile(r"[A-Za-z0-9 _]*", re.ASCII)
DS_PRECISION = Decimal("1e-8")  # largest relative change a reformatted DS may make


@lru_cache(maxsize=4096)
def _min_multiplicity(keyword: str) -> int:
    """The least number of values the element's VM allows (1 when unknown)."""
    tag = tag_for_keyword(keyword) if keyword else None
    if tag is None:
        return 1
    vm = dictionary_VM(tag)
    digits = re.match(r"[0-9]+", vm)
    return int(digits[0]) if digits else 1


def _reformat_ds(s: str) -> tuple[str, str | None]:
    """A valid decimal string longer than 16 characters, in 16 (when the number fits)."""
    too_long = f"is {len(s)} characters, longer than {DS_MAX}"
    try:
        old = Decimal(s)
        new = format_number_as_ds(old)
    except (ValueError, OverflowError, InvalidOperation):
        return f"{too_long} and cannot be written in {DS_MAX}", None
    if "e" not in new.lower() and "." in new:
        new = new.rstrip("0").rstrip(".")
    if (not _DS.fullmatch(new) or len(new) > DS_MAX
            or abs(Decimal(new) - old) > abs(old) * DS_PRECISION):
        return f"{too_long} and cannot be written in {DS_MAX}", None
    exact = "" if Decimal(new) == old else ", rounded"
    return f"{too_long}: reformatted as {new!r}{exact}", new


def _check_ds(v: str, comma_ok: bool) -> tuple[str, str | None] | None:
    s = v.strip(" ")
    if not s:
        return None
    if _DS.fullmatch(s):
        if len(v.rstrip(" ")) <= DS_MAX:
            return None
        if len(s) <= DS_MAX:
            return f"is longer than {DS_MAX} characters with its leading spaces", s
        return _reformat_ds(s)
    fixed = s.replace(",", ".")
    if s.count(",") == 1 and "." not in s and _DS.fullmatch(fixed):
        if _THOUSANDS.fullmatch(s):
            return "has a ',' that may be a decimal or a thousands separator", None
        if not comma_ok:
            return "has a ',' that may be a decimal or a value separator", None
        if len(fixed) <= DS_MAX:
            return "has ',' as decimal separator", fixed
        reason, new = _reformat_ds(fixed)
        return f"has ',' as decimal separator and {reason}", new
    if s.lower() in _NON_FINITE:
        return "is not a finite number", None
    return "is not a decimal string", None


def _check_is(v: str) -> tuple[str, str | None] | None:
    s = v.strip(" ")
    if not s:
        return None
    low, high = IS_RANGE
    if _IS.fullmatch(s):
        if not low <= int(s) <= high:
            return "is out of the IS range [-2**31, 2**31-1]", None
        if len(v.rstrip(" ")) <= IS_MAX_CHARS:
            return None
        if len(s) <= IS_MAX_CHARS:
            return f"is longer than {IS_MAX_CHARS} characters with its leading spaces", s
        return f"is longer than {IS_MAX_CHARS} characters", None
    if m := _IS_WHOLE.fullmatch(s):
        number = int(m[1])
        if not low <= number <= high:
            return "is not an integer string and out of the IS range", None
        return "is not an integer string (a whole number with a decimal point)", str(number)
    return "is not an integer string", None


def _check_cs(v: str) -> tuple[str, str | None] | None:
    if _CS.fullmatch(v):
        return None
    if _CS_ANY_CASE.fullmatch(v):
        return "has lowercase letters", v.upper()
    bad = "".join(sorted({c for c in v if not _CS_ANY_CASE.fullmatch(c)}))
    return f"has characters not allowed in CS: {bad!r}", None


# --- value_too_long ----------------------------------------------------------------------------

def _length_check(vr: str) -> Check:
    limit = MAX_LENGTH[vr]

    def check(v: str) -> tuple[str, str | None] | None:
        n = len(v.rstrip(" "))
        if n <= limit:
            return None
        return (f"is {n} characters, over the {vr} maximum of {limit}",
                v[:limit] if vr in TRUNCATED_VRS else None)
    return check


def _check_pn_length(v: str) -> tuple[str, str | None] | None:
    limit = MAX_LENGTH["PN"]
    groups = v.split("=")
    long = [len(g.rstrip(" ")) for g in groups if len(g.rstrip(" ")) > limit]
    if not long:
        return None
    new = "=".join(g[:limit] if len(g.rstrip(" ")) > limit else g for g in groups)
    return f"has a component group of {max(long)} characters, over the PN maximum of {limit}", new


# --- UIDs --------------------------------------------------------------------------------------

_UID = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*", re.ASCII)
_UID_CHARS = frozenset("0123456789.")


def uid_problem(value: str) -> str | None:
    """None for a valid UID, else a short reason. ``value`` is without its one NUL pad."""
    if len(value) <= UID_MAX and _UID.fullmatch(value):
        return None
    if not value:
        return "empty"
    if value[-1] in " \x00":
        return "trailing space or NUL"
    if "\\" in value:
        return "multiple values"
    bad = next((c for c in value if c not in _UID_CHARS), None)
    if bad is not None:
        return f"invalid character {bad!r}"
    components = value.split(".")
    if "" in components:
        return "empty component"
    if any(len(c) > 1 and c[0] == "0" for c in components):
        return "component with a leading zero"
    return f"longer than {UID_MAX} characters"


def _check_uid(v: str) -> tuple[str, str | None] | None:
    reason = uid_problem(v) if v else None
    return None if reason is None else (f"is not a valid UID: {reason}", None)


@lru_cache(maxsize=64)
def _namespace(namespace: str) -> uuid.UUID:
    """The namespace as a UUID: itself if it is one, else uuid5(NAMESPACE_URL, namespace)."""
    try:
        return uuid.UUID(namespace)
    except ValueError:
        return uuid.uuid5(uuid.NAMESPACE_URL, namespace)


def remap_uid(old: str, namespace: str) -> str:
    """The deterministic replacement of an invalid UID: 2.25.<uuid5(namespace, old)>."""
    return f"{UID_PREFIX}{uuid.uuid5(_namespace(namespace), old).int}"


def generated_uid(namespace: str, *parts: str) -> str:
    """A deterministic UID for a missing attribute, from what identifies it (same scheme)."""
    return remap_uid(json.dumps(list(parts)), namespace)


# The VRs whose format check depends on nothing but the value.
_FORMAT_CHECKS: dict[str, tuple[str, Check]] = {
    "TM": ("time_format", _check_tm), "IS": ("integer_string", _check_is),
    "CS": ("code_string", _check_cs), "UI": ("invalid_uid", _check_uid)}
