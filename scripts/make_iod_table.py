"""make_iod_table: the DICOM requirements per IOD, from highdicom's copy of the standard.

Its responsibility is turning the standard's tables that highdicom ships (``highdicom/_standard``:
``sop_class_iod_map.json``, ``iod_module_map.json``, ``module_attribute_map.json``) into the small
table ``migrate_fs/iods.json`` that :mod:`migrate_fs.iods` reads at run time, so that the package
needs no highdicom and no one types the standard's tables in by hand. It reads only the installed
highdicom's data files (it never imports highdicom's code) and writes only that one file; with
``--check`` it writes nothing.

The table, deterministic (sorted keys, indent 1, trailing newline)::

    {"source": "highdicom <version>",
     "attributes": [the tracked keywords, in TRACKED order],
     "sop_classes": {SOP Class UID: IOD key},
     "iods": {IOD key: {"ies": [sorted IEs that have at least one mandatory module],
                        "types": {keyword: type}}}}

For each IOD and each tracked keyword the type is the strictest one ("1" < "1C" < "2" < "2C" <
"3") the keyword has at the top level of the data set (not inside a sequence) over the IOD's
mandatory ("M") modules. Conditional ("C") and user-optional ("U") modules are not counted: an
attribute only they hold is left out, as is one that no mandatory module holds. A tracked keyword
at the top level of a mandatory module with a type outside that order is an error (the table would
otherwise drop it silently). A mandatory module that highdicom has no attribute table for (0.28.2:
a few functional group and waveform presentation modules) adds nothing and is named on stderr.

    python scripts/make_iod_table.py [--out PATH]   # write the table (default migrate_fs/iods.json)
    python scripts/make_iod_table.py --check        # exit 1 if the checked-in table is out of date

It needs highdicom installed (`make venv` installs it), but only its data files: it finds them
without importing highdicom, so ``pip install --no-deps`` is enough, and it keeps pillow, which
highdicom depends on and which pydicom would then use as one more decoding plugin, out of the
environment the tests run in.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "migrate_fs" / "iods.json"

# The attributes the plan's [required] settings are about (migrate_fs.config.REQUIRED's keys).
TRACKED: tuple[str, ...] = (
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
    "PatientID", "PatientName", "PatientBirthDate", "PatientSex",
    "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
    "Modality", "SeriesNumber", "InstanceNumber",
)
TYPE_ORDER: tuple[str, ...] = ("1", "1C", "2", "2C", "3")  # strictest first
MANDATORY = "M"
INSTALL = "pip install --no-deps 'highdicom>=0.28.2,<0.29'"  # the data files need no dependency
STANDARD_FILES = ("sop_class_iod_map.json", "iod_module_map.json", "module_attribute_map.json")

Standard = tuple[dict[str, str], dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]


def highdicom_version() -> str:
    """The installed highdicom's version (PackageNotFoundError if it is not installed)."""
    return metadata.version("highdicom")


def standard_folder() -> Path:
    """``highdicom/_standard`` of the installed highdicom, found without importing highdicom.

    ``importlib.resources.files("highdicom")`` would run highdicom's ``__init__`` (numpy, pillow,
    pyjpegls, pydicom's handlers); the data files need none of it, so a ``pip install --no-deps
    highdicom`` is enough. ModuleNotFoundError without highdicom.
    """
    spec = importlib.util.find_spec("highdicom")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("No module named 'highdicom'", name="highdicom")
    return Path(next(iter(spec.submodule_search_locations))) / "_standard"


def load_standard() -> Standard:
    """The three tables (SOP classes, IOD modules, module attributes) of the installed highdicom.

    Reads ``highdicom/_standard/*.json`` (see :func:`standard_folder`).
    """
    folder = standard_folder()
    sop_classes, iods, modules = (json.loads(folder.joinpath(name).read_text(encoding="utf-8"))
                                  for name in STANDARD_FILES)
    return sop_classes, iods, modules


def strictest(types: Iterable[str]) -> str | None:
    """The strictest of ``types`` in TYPE_ORDER, or None for none."""
    ranks = [TYPE_ORDER.index(t) for t in types]
    return TYPE_ORDER[min(ranks)] if ranks else None


def iod_entry(iod: str, module_refs: Sequence[Mapping[str, Any]],
              modules: Mapping[str, Sequence[Mapping[str, Any]]],
              tracked: Sequence[str] = TRACKED) -> dict[str, Any]:
    """``{"ies": [...], "types": {...}}`` for one IOD from its module list (see the docstring)."""
    mandatory = [ref for ref in module_refs if ref["usage"] == MANDATORY]
    found: dict[str, list[str]] = {}
    for ref in mandatory:
        for attribute in modules.get(ref["key"], ()):
            keyword = attribute["keyword"]
            if keyword not in tracked or attribute["path"]:
                continue
            if attribute["type"] not in TYPE_ORDER:
                raise ValueError(f"{iod}: module {ref['key']} gives {keyword} the type "
                                 f"{attribute['type']!r}, not one of {', '.join(TYPE_ORDER)}")
            found.setdefault(keyword, []).append(attribute["type"])
    types = {keyword: strictest(found[keyword]) for keyword in tracked if keyword in found}
    return {"ies": sorted({ref["ie"] for ref in mandatory}), "types": types}


def build_table(sop_classes: Mapping[str, str],
                iods: Mapping[str, Sequence[Mapping[str, Any]]],
                modules: Mapping[str, Sequence[Mapping[str, Any]]],
                source: str, tracked: Sequence[str] = TRACKED) -> dict[str, Any]:
    """The table ``migrate_fs/iods.json`` holds, from the standard's three tables."""
    unknown = sorted({iod for iod in sop_classes.values() if iod not in iods})
    if unknown:
        raise ValueError(f"SOP classes refer to IODs without a module list: {', '.join(unknown)}")
    return {
        "source": source,
        "attributes": list(tracked),
        "sop_classes": dict(sop_classes),
        "iods": {iod: iod_entry(iod, refs, modules, tracked) for iod, refs in iods.items()},
    }


def missing_modules(iods: Mapping[str, Sequence[Mapping[str, Any]]],
                    modules: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[str]:
    """'iod: module' for every mandatory module without an attribute table, sorted."""
    return sorted(f"{iod}: {ref['key']}" for iod, refs in iods.items() for ref in refs
                  if ref["usage"] == MANDATORY and ref["key"] not in modules)


def render(table: Mapping[str, Any]) -> str:
    """The table as the file's text: sorted keys, indent 1, a trailing newline."""
    return json.dumps(table, sort_keys=True, indent=1, ensure_ascii=True) + "\n"


def generate(standard: Standard | None = None) -> str:
    """The table's text, from ``standard`` (default: the installed highdicom's tables)."""
    sop_classes, iods, modules = standard if standard is not None else load_standard()
    return render(build_table(sop_classes, iods, modules, f"highdicom {highdicom_version()}"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=TABLE, help=f"the table (default {TABLE})")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if the file differs from what highdicom gives")
    args = parser.parse_args(argv)
    try:
        standard = load_standard()
        text = generate(standard)
    except (ModuleNotFoundError, metadata.PackageNotFoundError):
        print(f"make_iod_table: highdicom is not installed ({INSTALL})", file=sys.stderr)
        return 2
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else None
        if current != text:
            state = "is missing" if current is None else "differs from"
            print(f"make_iod_table: {args.out} {state} the table from "
                  f"{json.loads(text)['source']}; run `python scripts/make_iod_table.py` to "
                  "regenerate it", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date ({json.loads(text)['source']})")
        return 0
    for gap in missing_modules(standard[1], standard[2]):
        print(f"make_iod_table: no attribute table for mandatory module {gap}", file=sys.stderr)
    args.out.write_text(text, encoding="utf-8", newline="\n")
    table = json.loads(text)
    print(f"wrote {args.out}: {len(table['sop_classes'])} SOP classes, {len(table['iods'])} IODs "
          f"({table['source']}, {len(text.encode())} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
