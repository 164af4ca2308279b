"""iods: what the DICOM standard requires of an object, per IOD, by its SOP Class UID.

Its responsibility is answering, from the table ``iods.json`` shipped with the package, which IOD
a SOP class belongs to, which information entities (Patient, Study, Series, ...) that IOD has, and
the Type ("1", "1C", "2", "2C", "3") of each tracked attribute (:func:`attributes`: the keywords of
the plan's ``[required]`` settings) in it. The table is generated from highdicom's copy of the
standard by ``scripts/make_iod_table.py`` (``tests/test_iods.py`` holds the two in step): a type is
the strictest one the attribute has at the top level of the data set over the IOD's *mandatory*
modules, and an attribute no mandatory module holds has no type (:func:`requirement` gives None).

A SOP class the table does not know (private, retired, newer than the table, or None for an object
without one) gets the fallback of a generic composite image IOD: Patient, Study and Series present
(no other IE); SOPClassUID, SOPInstanceUID, StudyInstanceUID, SeriesInstanceUID and Modality Type
1; every other tracked attribute Type 2; and :func:`iod_of` gives None, :func:`known` False.

It is a leaf: it imports only the standard library and nothing of migrate_fs, reads only its own
package data (once, on first use), and never reads a DICOM object, decides a policy or reports a
problem: what a missing Type 1 or Type 2 attribute means for the migration is the plan's business.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from types import MappingProxyType
from typing import Any, Final

__all__ = ["ENTITIES", "FALLBACK_IES", "TYPES", "attributes", "has_entity", "iod_of", "known",
           "requirement", "requirements", "source"]

TYPES: Final = ("1", "1C", "2", "2C", "3")  # strictest first
ENTITIES: Final = ("Patient", "Study", "Series")  # the hierarchy levels an archive files under
FALLBACK_IES: Final = frozenset(ENTITIES)
_FALLBACK_TYPE_1: Final = frozenset(
    {"SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "Modality"})
_PADDING: Final = "\x00 "  # a UID value's trailing padding, as read from a file


@dataclass(frozen=True)
class _Iod:
    ies: frozenset[str]
    types: Mapping[str, str]


@dataclass(frozen=True)
class _Table:
    source: str
    attributes: tuple[str, ...]
    sop_classes: Mapping[str, str]
    iods: Mapping[str, _Iod]
    fallback: _Iod


@cache
def _table() -> _Table:
    """The table in ``iods.json``, read once."""
    text = files(__package__ or "migrate_fs").joinpath("iods.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    tracked = tuple(data["attributes"])
    fallback = _Iod(FALLBACK_IES, MappingProxyType(
        {k: "1" if k in _FALLBACK_TYPE_1 else "2" for k in tracked}))
    iods = {key: _Iod(frozenset(entry["ies"]), MappingProxyType(dict(entry["types"])))
            for key, entry in data["iods"].items()}
    return _Table(str(data["source"]), tracked, MappingProxyType(dict(data["sop_classes"])),
                  MappingProxyType(iods), fallback)


def _iod(sop_class_uid: str | None) -> _Iod:
    table = _table()
    key = iod_of(sop_class_uid)
    return table.fallback if key is None else table.iods[key]


def source() -> str:
    """Where the table comes from: ``"highdicom <version>"``."""
    return _table().source


def attributes() -> tuple[str, ...]:
    """The tracked keywords, the ones :func:`requirement` answers for."""
    return _table().attributes


def iod_of(sop_class_uid: str | None) -> str | None:
    """The IOD key (highdicom's, e.g. ``"ct-image"``) of a SOP class; None if the table has none.

    Trailing NUL and space padding of the UID is ignored.
    """
    if sop_class_uid is None:
        return None
    return _table().sop_classes.get(sop_class_uid.rstrip(_PADDING))


def known(sop_class_uid: str | None) -> bool:
    """Whether the table knows the SOP class (if not, every answer is the fallback's)."""
    return iod_of(sop_class_uid) is not None


def requirement(sop_class_uid: str | None, keyword: str) -> str | None:
    """The Type of a tracked attribute in the SOP class's IOD: "1", "1C", "2", "2C" or "3".

    None when no mandatory module of the IOD holds the attribute (e.g. Color Palette Storage has
    no PatientID). ValueError for a keyword that is not tracked (:func:`attributes`): the table
    cannot tell whether the IOD has it.
    """
    if keyword not in _table().attributes:
        raise ValueError(f"{keyword!r} is not a tracked attribute; the IOD table "
                         f"({source()}) knows {', '.join(_table().attributes)}")
    return _iod(sop_class_uid).types.get(keyword)


def requirements(sop_class_uid: str | None) -> Mapping[str, str]:
    """Tracked keyword -> Type for the SOP class's IOD, for the attributes it has (read-only)."""
    return _iod(sop_class_uid).types


def has_entity(sop_class_uid: str | None, ie: str) -> bool:
    """Whether the SOP class's IOD has the information entity ``ie`` in a mandatory module.

    ``ie`` is named as the standard does: "Patient", "Study", "Series" (also "Equipment",
    "Image", "SR Document", ... for a known SOP class; the fallback has only the three).
    """
    return ie in _iod(sop_class_uid).ies
