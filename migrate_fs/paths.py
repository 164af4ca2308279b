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
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from pathlib import Path, PurePosixPath, PureWindowsPath

__all__ = [
    "COMPONENT_MAX_LENGTH",
    "HASH_HEX_DIGITS",
    "output_relpath",
    "resolve_inside",
    "sanitize_component",
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
