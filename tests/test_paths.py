"""Tests for migrate_fs.paths: hostile header values must never escape, merge or vanish."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from migrate_fs import paths
from migrate_fs.paths import output_relpath, resolve_inside, sanitize_component

ALLOWED = re.compile(r"[A-Za-z0-9._~-]+")
SUFFIX = re.compile(r"~[0-9a-f]{16}\Z")
RESERVED_STEMS = ["CON", "PRN", "AUX", "NUL"]
RESERVED_STEMS += [f"{d}{i}" for d in ("COM", "LPT") for i in range(10)]

HOSTILE = [
    "../../etc", "..", ".", "/", "//", "a/b", "a\\b", "/etc/passwd", "C:\\Windows", "C:",
    "\\\\server\\share", "CON", "con", "nul.txt", "LPT1", "com9.tar.gz", "ＣＯＮ", "COM¹",
    ".hidden", "...", "", None, "\x00", "a\x00b", "\x01\x1f\x7f", "\n", "\t", " ", "abc ",
    "abc.", "abc. ", "Müller", "患者", "\u0301", "\u212a", "\u017f", "~", "a~0123456789abcdef",
    "x" * 300, "*", "?", "<>|\"':", "%2e%2e", "\u202e", "\ufeff",
]

# Alphabet biased towards the dangerous pieces, so hypothesis explores them often.
_TOKENS = [
    ".", "..", "/", "\\", "\x00", " ", "~", ":", "CON", "nul", "Com1", "lpt9", "a", "A",
    "1", "-", "_", "ü", "\u0301", "\u212a", "\n", "\x7f", "ＣＯＮ", "¹",
]
hostile_text = st.one_of(
    st.text(),  # any unicode except surrogates: control chars, NUL, '/', '\\' included
    st.lists(st.sampled_from(_TOKENS), max_size=12).map("".join),
    st.text(alphabet="abAB./\\~\x00 ", max_size=8),
    st.text(min_size=60, max_size=300),
)
values = st.one_of(st.none(), hostile_text)


def assert_safe_component(comp: str, max_length: int = 64) -> None:
    assert isinstance(comp, str) and comp
    assert len(comp) <= max_length
    assert ALLOWED.fullmatch(comp), comp
    assert "/" not in comp and "\\" not in comp and "\x00" not in comp
    assert comp not in (".", "..")
    assert not comp.startswith(".")
    assert not comp.endswith((".", " "))
    assert comp.split(".", 1)[0].upper() not in RESERVED_STEMS


# --- component invariants -------------------------------------------------------------


@given(values)
@settings(max_examples=1000)
def test_component_is_always_safe(value):
    assert_safe_component(sanitize_component(value))


@given(values, st.integers(min_value=18, max_value=255))
def test_component_respects_any_max_length(value, max_length):
    assert_safe_component(sanitize_component(value, max_length=max_length), max_length)


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_examples_are_safe_and_changed(value):
    comp = sanitize_component(value)
    assert_safe_component(comp)
    assert comp != value
    assert SUFFIX.search(comp)


@given(values)
def test_changed_component_is_readable_plus_hash_of_original(value):
    comp = sanitize_component(value)
    if comp != value:
        raw = (value or "").encode("utf-8", "surrogatepass")
        assert comp.endswith("~" + hashlib.sha256(raw).hexdigest()[:16])
        assert comp.count("~") == 1


def test_readable_part_examples():
    assert sanitize_component("Müller").startswith("Muller~")
    assert sanitize_component("a/b").startswith("a_b~")
    assert sanitize_component("../../etc").startswith("_._.._etc~")
    assert sanitize_component("").startswith("_empty~")
    assert sanitize_component("CON").startswith("_CON~")
    assert sanitize_component("ＣＯＮ").startswith("_CON~")  # full-width folds to CON
    assert sanitize_component("COM¹").startswith("_COM1~")  # superscript folds to 1


# --- clean values ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "1.2.840.10008.5.1.4.1.1.2", "PAT001", "AB-12_x", "pat001", "0", "a.b.c", "_x", "-",
        "CONx", "CON_1", "COM10", "LPT", "xcon", "-rf", "1." + "2" * 62,  # a 64-char UID
    ],
)
def test_clean_values_unchanged(value):
    assert sanitize_component(value) == value


@given(st.from_regex(r"\A[A-Za-z0-9_-][A-Za-z0-9._-]{0,62}[A-Za-z0-9_-]\Z"))
def test_clean_pattern_unchanged_unless_reserved(value):
    reserved = value.split(".", 1)[0].upper() in RESERVED_STEMS
    assert (sanitize_component(value) == value) is not reserved


@given(st.from_regex(r"\A[1-9][0-9]{0,10}(\.(0|[1-9][0-9]{0,10})){1,8}\Z"))
def test_valid_uids_unchanged(uid):
    assume(len(uid) <= 64)
    assert sanitize_component(uid) == uid


def test_clean_values_are_not_hashed(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("hashed a clean value")

    monkeypatch.setattr(paths.hashlib, "sha256", boom)
    relpath = output_relpath("PAT001", "1.2.3", "1.2.3.4", "1.2.3.4.5")
    assert relpath == "PAT001/1.2.3/1.2.3.4/1.2.3.4.5.dcm"


# --- reserved names -------------------------------------------------------------------


@pytest.mark.parametrize("stem", RESERVED_STEMS)
@pytest.mark.parametrize("form", ["{}", "{l}", "{t}", "{}.txt", "{l}.dcm", "{}.a.b", "{}."])
def test_reserved_names_changed(stem, form):
    value = form.format(stem, l=stem.lower(), t=stem.title())
    comp = sanitize_component(value)
    assert comp != value
    assert_safe_component(comp)


# --- injectivity ----------------------------------------------------------------------


@given(values, values)
@settings(max_examples=1000)
def test_distinct_values_distinct_components(a, b):
    assume((a or "") != (b or ""))  # None and "" deliberately share a mapping
    assert sanitize_component(a) != sanitize_component(b)


@given(st.lists(hostile_text, unique=True, max_size=50))
def test_batch_is_injective(batch):
    assert len({sanitize_component(v) for v in batch}) == len(batch)


@given(st.text(min_size=1, max_size=6))
def test_clean_value_cannot_collide_with_changed_one(value):
    # "a_b" (clean) vs "a/b" (changed to a_b~...): the '~' keeps them apart.
    comp = sanitize_component(value)
    underscored = re.sub(r"[^A-Za-z0-9._-]", "_", value)
    if underscored != value and sanitize_component(underscored) == underscored:
        assert comp != underscored


@pytest.mark.parametrize(
    "group",
    [
        ["a/b", "a_b", "a\\b", "a\x00b", "a b", "a:b", "a~b", "a__b"],
        [".", "..", "_", "__", "_.", "...", ".hidden", "_hidden"],
        ["CON", "_CON", "con", "Con", "CON.", "CON "],
        ["Müller", "Muller", "Mu\u0308ller", "M_ller", "MÜLLER"],  # NFC vs NFD are distinct
        ["K", "\u212a", "k", "s", "\u017f"],  # Kelvin sign, long s: never clean
        ["é", "\udcc3\udca9", "e", "\udce9"],  # surrogateescape bytes vs real text
        ["x" * 64, "x" * 65, "x" * 300, "x" * 299 + "y", "x" * 64 + "y" * 236],
        ["", " ", "\x00", "\t", "_empty", "_"],
    ],
)
def test_explicit_collision_candidates_stay_distinct(group):
    comps = [sanitize_component(v) for v in group]
    assert len(set(comps)) == len(group), dict(zip(group, comps, strict=True))
    for comp in comps:
        assert_safe_component(comp)


def test_long_values_sharing_a_64_char_prefix():
    prefix = "1.2.840.113619.2.55.3.604688119.969.1268071029.320.9999999999999"
    assert len(prefix) == 64
    a, b = prefix + "1" * 236, prefix + "2" * 236
    assert sanitize_component(prefix) == prefix
    ca, cb = sanitize_component(a), sanitize_component(b)
    assert len(ca) == len(cb) == 64
    assert ca != cb and ca != prefix and cb != prefix


def test_none_and_empty_share_a_mapping():
    assert sanitize_component(None) == sanitize_component("")
    assert sanitize_component(None).startswith("_empty~")


def test_case_decision():
    # Values that differ in case are different values and get different components.
    assert sanitize_component("PAT001") != sanitize_component("pat001")
    # Documented limit: both are clean, so on a case-insensitive filesystem they would
    # share a folder. A changed component never does, thanks to its lowercase hex hash.
    assert sanitize_component("a/b").lower() != sanitize_component("A/B").lower()


@given(values, values)
@settings(max_examples=1000)
def test_case_insensitive_merges_only_between_clean_values(a, b):
    assume((a or "") != (b or ""))
    ca, cb = sanitize_component(a), sanitize_component(b)
    if ca.casefold() == cb.casefold():
        assert ca == a and cb == b  # both clean, differing only in ASCII case


# --- arguments ------------------------------------------------------------------------


@pytest.mark.parametrize("max_length", [0, 1, 17])
def test_too_small_max_length_rejected_when_suffix_needed(max_length):
    with pytest.raises(ValueError, match="max_length"):
        sanitize_component("a/b", max_length=max_length)


@pytest.mark.parametrize("value", [b"abc", b"a/b", 12, 1.5])
def test_non_text_rejected(value):
    with pytest.raises(TypeError):
        sanitize_component(value)  # type: ignore[arg-type]


# --- output_relpath -------------------------------------------------------------------


def _check_written_inside(root: Path, relpath: str) -> None:
    parts = relpath.split("/")
    assert len(parts) == 4 and all(parts)
    assert parts[3].endswith(".dcm")
    target = root / relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"DICM")
    real_root = os.path.realpath(root)
    real = os.path.realpath(target)
    assert os.path.commonpath([real_root, real]) == real_root
    assert len(Path(os.path.relpath(real, real_root)).parts) == 4
    assert resolve_inside(root, relpath) == Path(real)


@pytest.mark.parametrize("value", HOSTILE)
def test_output_relpath_hostile_stays_inside(tmp_path, value):
    _check_written_inside(tmp_path, output_relpath(value, value, value, value))


@pytest.mark.parametrize(
    "ids",
    [
        ("../../etc", "..", ".", "passwd"),
        ("/", "/tmp", "a/b/c/d", "x\\..\\..\\y"),
        (None, None, None, None),
        ("CON", "PRN", "AUX", "NUL"),
        ("x" * 300, "1." * 150, "9" * 65, "." * 300),
    ],
)
def test_output_relpath_mixed_stays_inside(tmp_path, ids):
    _check_written_inside(tmp_path, output_relpath(*ids))


@given(values, values, values, values)
@settings(max_examples=200, deadline=None)
def test_output_relpath_property_stays_inside(p, st_, se, sop):
    relpath = output_relpath(p, st_, se, sop)
    assert len(relpath) <= 4 * 64 + 3 + 4
    with tempfile.TemporaryDirectory() as tmp:
        _check_written_inside(Path(tmp), relpath)


def test_output_relpath_clean():
    assert (
        output_relpath("PAT001", "1.2.3", "1.2.3.4", "1.2.840.10008.5.1.4.1.1.2")
        == "PAT001/1.2.3/1.2.3.4/1.2.840.10008.5.1.4.1.1.2.dcm"
    )


def test_output_relpath_distinct_series_get_distinct_folders():
    assert output_relpath("P", "S", "a/b", "x") != output_relpath("P", "S", "a_b", "x")
    assert output_relpath("P", "S", "a/b", "x").count("/") == 3


# --- resolve_inside -------------------------------------------------------------------


@pytest.mark.parametrize(
    "relpath",
    [
        "../x", "..", "a/../../x", "a/b/../../../x", "/etc/passwd", "/", "//server/share",
        "C:\\x", "C:x", "c:/x", "\\\\server\\share\\x", "a\\..\\..\\x", "", ".", "./",
        "a/..", "a\x00b",
    ],
)
def test_resolve_inside_rejects(tmp_path, relpath):
    with pytest.raises(ValueError, match="refusing output path"):
        resolve_inside(tmp_path, relpath)


def test_resolve_inside_rejects_absolute_path_even_under_root(tmp_path):
    with pytest.raises(ValueError):
        resolve_inside(tmp_path, str(tmp_path / "a.dcm"))


def test_resolve_inside_rejects_symlink_escape(tmp_path):
    root = tmp_path / "out"
    outside = tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    (root / "P").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match="after resolving links"):
        resolve_inside(root, "P/S/SE/x.dcm")


def test_resolve_inside_accepts_and_follows_root_symlink(tmp_path):
    real_root = tmp_path / "real"
    real_root.mkdir()
    link_root = tmp_path / "link"
    link_root.symlink_to(real_root, target_is_directory=True)
    got = resolve_inside(link_root, "P/S/SE/x.dcm")
    assert got == Path(os.path.realpath(real_root)) / "P/S/SE/x.dcm"


@pytest.mark.parametrize("relpath", ["a/b/c/d.dcm", "a/../b.dcm", "./a.dcm", "a//b.dcm"])
def test_resolve_inside_accepts_paths_that_stay_inside(tmp_path, relpath):
    got = resolve_inside(tmp_path, relpath)
    real_root = os.path.realpath(tmp_path)
    assert os.path.commonpath([real_root, got]) == real_root and str(got) != real_root


def test_resolve_inside_relative_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_inside(Path("."), "P/x.dcm") == Path(os.path.realpath(tmp_path)) / "P/x.dcm"
    with pytest.raises(ValueError):
        resolve_inside(Path("."), "../x.dcm")
