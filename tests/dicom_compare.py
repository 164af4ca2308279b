"""Compare a migrated Part 10 file with its source, as a user checking the migration would."""

from __future__ import annotations

from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset

SWAP_UNIT = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def _swap(value: bytes, unit: int) -> bytes:
    whole = len(value) - len(value) % unit
    return np.frombuffer(value[:whole], f">u{unit}").astype(f"<u{unit}").tobytes() + value[whole:]


def pixel_swap_unit(ds: Dataset, vr: str) -> int:
    bits = int(ds.get("BitsAllocated", 8) or 8)
    return max(bits // 8, 2 if vr == "OW" else 1)


def differences(source: Dataset, output: Dataset, changed_tags: set[str],
                source_big_endian: bool, path: str = "") -> list[str]:
    """Elements that differ between source and output datasets, other than listed changes."""
    found: list[str] = []
    tags = {t for t in source.keys() if t.group not in (0x0002,)} | set(output.keys())
    for tag in sorted(tags):
        name = f"{path}{tag}"
        if tag.element == 0 or name in changed_tags:
            continue
        if tag not in source or tag not in output:
            found.append(f"{name} only in {'source' if tag in source else 'output'}")
            continue
        a, b = source[tag], output[tag]
        if a.VR == "SQ" or b.VR == "SQ":
            if len(a.value) != len(b.value):
                found.append(f"{name} item count {len(a.value)} != {len(b.value)}")
                continue
            for i, (x, y) in enumerate(zip(a.value, b.value, strict=True)):
                found += differences(x, y, changed_tags, source_big_endian, f"{name}[{i}].")
            continue
        va: Any = a.value
        vb: Any = b.value
        if isinstance(va, bytes) and source_big_endian and a.VR in SWAP_UNIT:
            unit = pixel_swap_unit(source, a.VR) if tag == 0x7FE00010 else SWAP_UNIT[a.VR]
            va = _swap(va, unit)
        if va != vb:
            found.append(f"{name} {a.VR}:{str(va)[:40]!r} != {b.VR}:{str(vb)[:40]!r}")
    return found


def compare_migrated(source_path: str, output_path: str, row: dict[str, Any]) -> list[str]:
    """Problems with one migrated file: file meta, dataset, pixel data (empty list: all good)."""
    out = pydicom.dcmread(output_path)  # strict: must be Part 10 with preamble and file meta
    src = pydicom.dcmread(source_path, force=True)
    meta = out.file_meta
    issues = []
    if meta.MediaStorageSOPClassUID != out.SOPClassUID:
        issues.append("MediaStorageSOPClassUID differs from SOPClassUID")
    if meta.MediaStorageSOPInstanceUID != out.SOPInstanceUID:
        issues.append("MediaStorageSOPInstanceUID differs from SOPInstanceUID")
    if meta.TransferSyntaxUID != row["output_transfer_syntax"]:
        issues.append(f"TransferSyntaxUID {meta.TransferSyntaxUID} != planned")
    version = meta.ImplementationVersionName
    if not meta.ImplementationClassUID or not version.startswith("MIGRATEFS"):
        issues.append("implementation identifiers are not migrate-fs's")
    changes = row.get("changes")
    changed = {c["tag"] for c in (changes if changes is not None else [])}
    big = not src.original_encoding[1]
    issues += differences(src, out, changed, big)
    return issues
