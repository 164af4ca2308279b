"""Safe output paths: how header values become folder and file names.

Every migrated instance is written to::

    <out>/<PatientID>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm

The four values come from legacy headers and may be empty, missing, very long, or
hostile (``../../etc``, ``a/b``, ``CON``, NUL bytes, control characters, ``Müller``...).
Each one goes through :func:`sanitize_component`, which follows these rules.

**Clean values are used unchanged.** A value is clean when all of these hold:

* it is not empty and has at most ``max_length`` characters (64, the DICOM limit for UIDs
  and for LO values such as PatientID, so every valid UID is clean);
* every character is in the POSIX portable filename set ``A-Z a-z 0-9 . _ -``. ``^``,
  ``=`` and ``+`` are *not* accepted: they are legal on common filesystems, but ``^`` is
  the escape character of ``cmd.exe`` (and the DICOM name separator), ``+`` is read as a
  space in URLs and ``=`` turns a word into an assignment in shells and ``make``. The
  portable set is safe everywhere the output tree is likely to be copied, served or scripted;
* it does not start with ``.`` (so never ``.``, ``..`` or a hidden name) and does not end
  with ``.`` (Windows drops trailing dots and spaces, which would merge names);
* it is not a Windows reserved device name, in any case, alone or before the first dot:
  ``CON PRN AUX NUL COM0-COM9 LPT0-LPT9`` (so ``con``, ``Nul.txt`` and ``lpt1.a.b`` are
  not clean).

**Any other value is changed** into ``<readable>~<hash>``:

* ``<hash>`` is the first 16 lowercase hex digits (64 bits) of the SHA-256 of the
  *original* value encoded as UTF-8 with ``surrogatepass`` (lone surrogates, as produced by
  ``surrogateescape`` decoding, are hashed too; ``surrogateescape`` encoding is not used
  because it maps some distinct strings to the same bytes);
* ``<readable>`` is a hint for humans: the value normalised with NFKD, accents dropped
  (``Müller`` -> ``Muller``), every other character outside the portable set replaced by
  ``_``, a leading ``.`` replaced by ``_``, a leading ``_`` added if it would start with a
  reserved device name, and cut so that the whole component fits in ``max_length``;
* an empty value and ``None`` (a missing attribute) both become ``_empty~<hash of "">``:
  the migrator treats "absent" and "present but empty" the same way for naming.

**Why this never merges two values.** A changed component always contains ``~`` and a
clean one never does, so a changed value cannot take a clean value's name. Two changed
values share a name only if their 64-bit hashes collide (about 3e-10 for 10^5 changed
names in one folder). The readable part is never relied upon for uniqueness, so long values
that share their first 64 characters still get distinct names. Changed names are at least
18 characters long and end in hex digits, so they can neither look like Windows 8.3 short
names (``PROGRA~1``) nor lose a trailing dot or space.

**Case.** Values are compared exactly: ``PAT001`` and ``pat001`` are different values
and, both being clean, keep their own spelling. On a case-insensitive filesystem (NTFS and
APFS by default) those two would share a folder. This is the only possible merge: changed
names differ in their lowercase hex hash, and a changed name never equals a clean one in any
case. Write the output to a case-sensitive filesystem, or have the writer refuse to reuse an
existing path that belongs to a different value.

Every component is therefore non-empty, at most ``max_length`` characters, made of
``A-Z a-z 0-9 . _ - ~`` only, never ``.`` or ``..``, never starting with ``.``, and never a
reserved device name. :func:`output_relpath` joins four such components (the file name is
the SOP component plus ``.dcm``) with ``/``, so the result is always exactly four levels
deep and at most 263 characters long (Windows needs long-path support for deep roots).
:func:`resolve_inside` is the writer's last line of defence: it refuses any relative path
that would land outside the output root, including through existing symbolic links.

**Layouts.** The four-level path above is the ``uids`` layout, the default. A layout
(:func:`parse_layout`) is either a preset name (:data:`PRESETS`) or a pattern over the
output values named by their DICOM keyword (:data:`LAYOUT_FIELDS`), with Python format specs
and ``|`` fallbacks: ``{PatientID}/{StudyDate}_{Modality}/{SeriesNumber:03d}/{InstanceNumber|
SOPInstanceUID:05d}.dcm``. The pattern's ``/`` separates components; a value can never add one.
Each component is rendered (a missing or empty value as :data:`MISSING`; a numeric spec on a
value that is not a number gives the value's text) and the rendered text goes through
:func:`sanitize_component` as a whole, so every rule above holds for every layout; the file
name's stem is sanitized without its ``.dcm``. The ``uids`` preset is :func:`output_relpath`
itself (a missing value is ``_empty~<hash>`` there, as it always was). A pattern may map two
objects to one path: the plan gives the later ones :func:`suffixed` names.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import string
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

__all__ = [
    "COMPONENT_MAX_LENGTH",
    "HASH_HEX_DIGITS",
    "LAYOUT_FIELDS",
    "MISSING",
    "PRESETS",
    "Layout",
    "output_relpath",
    "parse_layout",
    "resolve_inside",
    "sanitize_component",
    "suffixed",
]

#: Default and output-path limit for one component; every valid DICOM UID (<= 64) fits.
COMPONENT_MAX_LENGTH = 64
#: Hex digits of SHA-256 kept in the ``~<hash>`` suffix of a changed component.
HASH_HEX_DIGITS = 16

_SUFFIX_LENGTH = 1 + HASH_HEX_DIGITS
_RESERVED = r"(?i:CON|PRN|AUX|NUL|COM[0-9]|LPT[0-9])(?:\.|\Z)"
# Clean: portable characters only, no leading '.', not a reserved device name (alone or
# before the first dot). The trailing-dot rule is checked separately (cheaper than a regex
# that backtracks). re.ASCII matters: with Unicode case folding, [A-Za-z] under (?i) would
# also match the Kelvin sign and the long s.
_CLEAN = re.compile(r"(?!" + _RESERVED + r")[A-Za-z0-9_-][A-Za-z0-9._-]*", re.ASCII)
_RESERVED_PREFIX = re.compile(_RESERVED, re.ASCII)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]", re.ASCII)


def sanitize_component(value: str | None, *, max_length: int = COMPONENT_MAX_LENGTH) -> str:
    """Return ``value`` as one safe path component (see the module docstring for the rules).

    Clean values are returned unchanged; any other value (including ``None`` and ``""``,
    which share a mapping) becomes ``<readable>~<16 hex digits of SHA-256>``, at most
    ``max_length`` characters. Raises ``ValueError`` if ``max_length`` is below 18 (no room
    for the suffix) and ``TypeError`` if ``value`` is neither ``str`` nor ``None``.
    """
    if (
        value
        and len(value) <= max_length
        and value[-1] != "."
        and _CLEAN.fullmatch(value) is not None
    ):
        return value
    return _changed(value, max_length)


def _changed(value: str | None, max_length: int) -> str:
    """Build ``<readable>~<hash>`` for a value that is not clean."""
    if max_length <= _SUFFIX_LENGTH:
        raise ValueError(
            f"max_length must be at least {_SUFFIX_LENGTH + 1} to fit the ~hash suffix, "
            f"got {max_length}"
        )
    if value is None:
        value = ""
    elif not isinstance(value, str):
        raise TypeError(f"path component must be str or None, not {type(value).__name__}")
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    budget = max_length - _SUFFIX_LENGTH
    if not value:
        readable = "_empty"
    else:
        # Only a bounded prefix is normalised: hostile values may be huge.
        decomposed = unicodedata.normalize("NFKD", value[: budget * 2])
        readable = "".join(c for c in decomposed if not unicodedata.combining(c))
        readable = _UNSAFE.sub("_", readable) or "_"
        if readable[0] == ".":
            readable = "_" + readable[1:]
        if _RESERVED_PREFIX.match(readable[:budget]):
            readable = "_" + readable
    return f"{readable[:budget]}~{digest[:HASH_HEX_DIGITS]}"


def output_relpath(
    patient_id: str | None,
    study_uid: str | None,
    series_uid: str | None,
    sop_uid: str | None,
) -> str:
    """Return the relative POSIX path ``Patient/Study/Series/SOP.dcm`` for one instance.

    Each value is passed through :func:`sanitize_component` with ``max_length=64``, so the
    result always has exactly four ``/``-separated levels and cannot leave the output root.
    """
    return (
        f"{sanitize_component(patient_id)}/{sanitize_component(study_uid)}/"
        f"{sanitize_component(series_uid)}/{sanitize_component(sop_uid)}.dcm"
    )


def resolve_inside(root: Path, relpath: str) -> Path:
    """Join ``relpath`` to ``root`` and return the resolved path, refusing to leave ``root``.

    ``relpath`` must be a non-empty relative POSIX path without NUL bytes or backslashes.
    The joined path must lie strictly below ``root`` both lexically (``os.path.abspath``,
    which normalises ``..``) and after resolving existing symbolic links
    (``os.path.realpath``; neither the target nor its folders need to exist). Raises
    ``ValueError`` otherwise. This does not guard against links created concurrently: the
    writer should still open files exclusively.
    """
    if not isinstance(relpath, str) or not relpath:
        raise ValueError(f"refusing output path {relpath!r}: empty or not a string")
    if "\x00" in relpath:
        raise ValueError(f"refusing output path {relpath!r}: contains a NUL byte")
    if "\\" in relpath:
        raise ValueError(
            f"refusing output path {relpath!r}: backslashes are separators on Windows"
        )
    if (
        PurePosixPath(relpath).is_absolute()
        or PureWindowsPath(relpath).drive
        or PureWindowsPath(relpath).root
    ):
        raise ValueError(f"refusing output path {relpath!r}: it is absolute, not relative")
    joined = os.path.join(root, relpath)
    lexical_root, lexical = os.path.abspath(root), os.path.abspath(joined)
    real_root, real = os.path.realpath(root), os.path.realpath(joined)
    for label, base, candidate in (
        ("lexically", lexical_root, lexical),
        ("after resolving links", real_root, real),
    ):
        if candidate == base or os.path.commonpath([base, candidate]) != base:
            raise ValueError(
                f"refusing output path {relpath!r}: it resolves {label} to {candidate!r}, "
                f"which is not inside the output root {base!r}"
            )
    return Path(real)


# --- layouts -------------------------------------------------------------------------------

#: What a missing or empty value renders as in a layout pattern (not in the ``uids`` preset).
MISSING = "UNKNOWN"
#: The fields a layout pattern may name: the plan's output values, by DICOM keyword.
LAYOUT_FIELDS = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex",
                 "IssuerOfPatientID", "StudyInstanceUID", "StudyDate", "StudyTime",
                 "AccessionNumber", "StudyDescription", "SeriesInstanceUID", "Modality",
                 "SeriesNumber", "SOPInstanceUID", "SOPClassUID", "InstanceNumber")
#: The named layouts: ``uids`` (the default, one folder per patient, study and series),
#: ``study-folders`` (one folder per study) and ``readable`` (dicomsort style).
PRESETS = {
    "uids": "{PatientID}/{StudyInstanceUID}/{SeriesInstanceUID}/{SOPInstanceUID}.dcm",
    "study-folders": "{StudyInstanceUID}/{SOPInstanceUID}.dcm",
    "readable": "{PatientID}/{StudyDate}_{AccessionNumber|StudyInstanceUID}/"
                "{SeriesNumber:03d}_{Modality}/{InstanceNumber|SOPInstanceUID:05d}.dcm",
}
EXTENSION = ".dcm"
_INT_TYPES, _FLOAT_TYPES = set("bcdoxXn"), set("eEfFgG%")
_MAX_FIELD = 255  # a format spec that renders wider than this is refused


@dataclass(frozen=True)
class _Field:
    names: tuple[str, ...]  # the first with a value is used
    spec: str
    kind: str  # "int", "float" or "str": what the spec formats


Piece = str | _Field


@dataclass(frozen=True)
class Layout:
    """A parsed layout: ``name`` (a preset's, or ``pattern`` for a pattern) and its
    components, each a sequence of literal text and fields (the last without ``.dcm``)."""

    name: str
    pattern: str
    components: tuple[tuple[Piece, ...], ...]

    @property
    def is_uids(self) -> bool:
        return self.name == "uids"

    @property
    def fields(self) -> tuple[str, ...]:
        """Every field the pattern names, in :data:`LAYOUT_FIELDS` order."""
        used = {n for c in self.components for p in c if isinstance(p, _Field) for n in p.names}
        return tuple(f for f in LAYOUT_FIELDS if f in used)

    def render(self, values: Mapping[str, str | None]) -> str:
        """The relative output path of one object from its output values (by keyword)."""
        if self.is_uids:
            return output_relpath(values.get("PatientID"), values.get("StudyInstanceUID"),
                                  values.get("SeriesInstanceUID"), values.get("SOPInstanceUID"))
        return self.render_many({f: [values.get(f)] for f in self.fields}, 1)[0]

    def render_many(self, columns: Mapping[str, Sequence[str | None]], n: int) -> list[str]:
        """The paths of ``n`` objects from their value columns (by keyword; every field of
        the pattern): each component rendered and sanitized once per distinct set of values."""
        parts: list[list[str]] = []
        last = len(self.components) - 1
        for index, pieces in enumerate(self.components):
            names = sorted({m for p in pieces if isinstance(p, _Field) for m in p.names})
            cache: dict[tuple[str | None, ...], str] = {}
            rendered = []
            for row in range(n):
                key = tuple(columns[m][row] for m in names)
                text = cache.get(key)
                if text is None:
                    values = dict(zip(names, key, strict=True))
                    raw = "".join(p if isinstance(p, str) else _render(p, values)
                                  for p in pieces)
                    text = cache[key] = sanitize_component(raw) + (EXTENSION if index == last
                                                                   else "")
                rendered.append(text)
            parts.append(rendered)
        return ["/".join(row) for row in zip(*parts, strict=True)] if parts else []


def _render(field: _Field, values: Mapping[str, str | None]) -> str:
    value = next((v for v in (values.get(n) for n in field.names) if v), None)
    if value is None:
        return MISSING
    try:
        if field.kind == "int":
            return format(int(value.strip()), field.spec)
        if field.kind == "float":
            return format(float(value.strip()), field.spec)
        return format(value, field.spec)
    except (ValueError, TypeError, OverflowError):  # not a number: the text, sanitized later
        return value


def _kind(spec: str) -> str:
    if spec and spec[-1] in _INT_TYPES:
        return "int"
    if spec and spec[-1] in _FLOAT_TYPES:
        return "float"
    return "str"


@functools.lru_cache(maxsize=64)
def parse_layout(text: str) -> Layout:
    """The layout a setting names: a preset (:data:`PRESETS`) or a pattern. Raises
    ``ValueError`` with a message that names what is wrong (an unknown field with the fields
    there are, a bad format spec, a pattern that is not a relative ``.dcm`` path)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"layout {text!r}: give a preset ({', '.join(PRESETS)}) or a pattern "
                         f"such as {PRESETS['readable']!r}")
    if text in PRESETS:
        return Layout(text, PRESETS[text], _components(PRESETS[text], text))
    if "{" not in text:
        raise ValueError(f"layout {text!r}: not a preset ({', '.join(PRESETS)}) and no "
                         f"{{Field}} in it; a pattern looks like {PRESETS['readable']!r}")
    return Layout(text, text, _components(text, text))


def _components(pattern: str, text: str) -> tuple[tuple[Piece, ...], ...]:
    where = f"layout {text!r}"
    _check_shape(pattern, where)
    try:
        parsed = list(string.Formatter().parse(pattern[:-len(EXTENSION)]))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc} (write a literal brace as '{{{{' or '}}}}')") from None
    components: list[list[Piece]] = [[]]
    for literal, name, spec, conversion in parsed:
        for i, chunk in enumerate(literal.split("/")):
            if i:
                components.append([])
            if chunk:
                components[-1].append(chunk)
        if name is None:
            continue
        if conversion is not None:
            raise ValueError(f"{where}: field {name!r} has a conversion !{conversion}; "
                             "conversions are not supported (use a format spec after ':')")
        names = tuple(n.strip() for n in name.split("|"))
        for n in names:
            if n not in LAYOUT_FIELDS:
                raise ValueError(f"{where}: unknown field {n!r}; the fields are "
                                 + ", ".join(LAYOUT_FIELDS))
        components[-1].append(_field(names, spec or "", where))
    return tuple(_checked(c, where) for c in components)


def _check_shape(pattern: str, where: str) -> None:
    if "\x00" in pattern or "\\" in pattern:
        raise ValueError(f"{where}: no NUL bytes or backslashes; '/' separates folders")
    if pattern.startswith("/"):
        raise ValueError(f"{where}: it must be a relative path (below the output root), "
                         "not start with '/'")
    if not pattern.endswith(EXTENSION):
        raise ValueError(f"{where}: the file name must end in {EXTENSION} "
                         f"(e.g. {{SOPInstanceUID}}{EXTENSION})")


def _checked(pieces: list[Piece], where: str) -> tuple[Piece, ...]:
    if not pieces:
        raise ValueError(f"{where}: an empty folder name ('//', or '/' at the start or "
                         "before the file name)")
    if "".join(p for p in pieces if isinstance(p, str)) in (".", "..") and \
            all(isinstance(p, str) for p in pieces):
        raise ValueError(f"{where}: '.' and '..' are not folder names here")
    return tuple(pieces)


def _field(names: tuple[str, ...], spec: str, where: str) -> _Field:
    kind = _kind(spec)
    if "{" in spec or "}" in spec:
        raise ValueError(f"{where}: field {names[0]!r}: nested fields in a format spec "
                         f"({spec!r}) are not supported")
    sample = {"int": 7, "float": 7.0, "str": "7"}[kind]
    try:
        width = len(format(sample, spec))  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: field {'|'.join(names)!r} has a bad format spec "
                         f"{spec!r} ({exc}); e.g. {{SeriesNumber:03d}}, {{StudyTime:.4}}") \
            from None
    if width > _MAX_FIELD:
        raise ValueError(f"{where}: field {'|'.join(names)!r}: format spec {spec!r} is wider "
                         f"than {_MAX_FIELD} characters")
    return _Field(names, spec, kind)


def suffixed(relpath: str, object_id: str) -> str:
    """``relpath`` with the object's id before ``.dcm``: ``a/b/name~<object_id>.dcm``, the
    path of an object whose layout path another object (first in locator order) has.

    It can equal no other path of the plan: an unsuffixed name has no ``~`` (clean) or ends in
    ``~`` and 16 hex digits (changed), while this one ends in ``~`` and the object's id (24 hex
    digits), which no other object has; so no second collision check is needed."""
    folder, _, name = relpath.rpartition("/")
    stem = name[:-len(EXTENSION)] if name.endswith(EXTENSION) else name
    new = f"{stem}~{sanitize_component(object_id)}{EXTENSION}"
    return f"{folder}/{new}" if folder else new
