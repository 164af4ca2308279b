#!/usr/bin/env python3
"""Replicate a real inventory manifest to N rows: the benchmark's 10^6-10^7-object inventories.

Usage::

    python scripts/replicate_inventory.py BASE_RUN_DIR OUT_RUN_DIR --rows 10000000

``BASE_RUN_DIR`` is the run folder of a real ``migrate-fs inventory`` (its ``inventory/`` parts
and ``run.json``); ``OUT_RUN_DIR`` becomes a run folder that ``migrate-fs plan --run <name>
--manifests <its parent>`` accepts: ``inventory/part-NNNNNNN.parquet`` parts of 1,024 rows and a
``run.json`` whose ``sources`` are the base run's (``replica`` says how it was made).

The base rows are repeated as copies k = 0, 1, ... until there are N rows; the last copy is cut
where N ends. Copy 0 is the base inventory row for row, unchanged. Copy k >= 1 has, row for row:

- ``locator`` ``/replica-<k, 6 digits><original locator>`` (and ``source``, ``archive`` and
  ``archive_volumes`` with the same prefix); ``object_id`` the base id's first 14 hex digits and
  k in 10 hex digits (the base ids' 14-digit prefixes are checked to be distinct);
- ``sop_instance_uid``, ``study_instance_uid``, ``series_instance_uid``: ``<uid>.<k>``; where
  that would pass 64 characters (or would equal a UID of the base), ``2.25.<int>`` with the
  integer the decimal of the first 96 bits of the SHA-256 of the UID followed by k in 8
  digits. A UID already over 64 characters keeps ``<uid>.<k>`` (it stays invalid, as the
  original is); an empty or null one stays as it is;
- ``patient_id`` (LO, 64 characters) and ``accession_number`` (SH, 16): ``<value>-<k>``, the
  value cut at its end to leave room for the suffix (a value already too long keeps all of it);
  empty or null stays;
- the same replacement in the ``elements`` column (the raw values a rule must see) for the
  entries whose last tag is one of those attributes, or another instance, series, study or frame
  of reference UID (Referenced SOP Instance UID, Frame of Reference UID...), so that a
  reference inside a copy points at the object of the same copy; the value's trailing padding
  is kept and its length parity too.

So duplicates inside a copy still collide (same SOPInstanceUID in the same copy) and across
copies nothing does; problems, kinds, sizes, charsets and every other column are the base's.
Only copy 0's locators exist: where the plan reads a file (content hashes of objects whose
SOPInstanceUID or pixel signature collides), the rows of copies k >= 1 fail with
``unreadable_source``, a quick failed open, instead of being read; their decision is still made.

Built one copy at a time with vectorized pyarrow (memory is the base table's and one copy's,
flat in N) and written to a temporary folder renamed into place; :func:`cached_replica`
regenerates only when the base, N or :data:`VERSION` changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

VERSION = 1  # of the replication scheme: a change regenerates every cached replica
PART_ROWS = 1024  # rows per inventory part, as migrate-fs inventory writes them
UID_MAX = 64
ID_LIMITS = {"patient_id": 64, "accession_number": 16}  # LO and SH value lengths
UID_COLUMNS = ("sop_instance_uid", "study_instance_uid", "series_instance_uid")
PREFIXED_COLUMNS = ("locator", "source", "archive")
# Element tags (the last step of a tag path) replaced in the elements column: the UIDs that
# name an instance, series, study or frame of reference, and the two identifiers.
UID_TAGS = frozenset({
    "(0008,0018)", "(0020,000D)", "(0020,000E)", "(0020,0052)",  # SOP, study, series, frame
    "(0008,1155)", "(0004,1511)", "(0008,3001)", "(3006,0024)",  # references to them
    "(0020,0200)", "(0040,A124)"})  # synchronization frame of reference, UID (SR)
ID_TAGS = {"(0010,0020)": 64, "(0008,0050)": 16}
OBJECT_ID_PREFIX = 14  # hex digits of the base id kept; k fills the other 10 of 24


def read_base(inventory: Path) -> pa.Table:
    """Every part of an inventory folder, in the order migrate-fs reads them, one table."""
    from migrate_fs import manifest

    names = sorted(manifest.part_names(inventory))
    if not names:
        raise FileNotFoundError(f"no inventory parts in {inventory}")
    table = pa.concat_tables(manifest.read_part(inventory, name, "inventory") for name in names)
    return table.combine_chunks()


def long_prefixes(values: list[str | None]) -> pa.Array:
    """``2.25.<int>`` without its copy digits, for each UID (None stays None)."""
    def prefix(uid: str | None) -> str | None:
        if uid is None:
            return None
        number = int(hashlib.sha256(uid.encode()).hexdigest()[:24], 16) or 1
        return f"2.25.{number}"
    return pa.array([prefix(v) for v in values], pa.string())


def copy_uids(values: pa.Array, prefixes: pa.Array, k: int, base: pa.Array) -> pa.Array:
    """Copy k's UIDs: ``<uid>.<k>``, or ``2.25.<hash><k:08d>`` where that is too long or is a
    UID of the base (``base``); empty and null values stay, over-long ones stay over-long."""
    suffix = f".{k}"
    suffixed = pc.binary_join_element_wise(values, suffix, "")
    length = pc.utf8_length(values)
    too_long = pc.and_(pc.less_equal(length, UID_MAX),
                       pc.greater(pc.add(length, len(suffix)), UID_MAX))
    clash = pc.is_in(suffixed, value_set=base)
    derived = pc.binary_join_element_wise(prefixes, f"{k:08d}", "")
    out = pc.if_else(pc.or_(too_long, clash), derived, suffixed)
    return pc.if_else(pc.equal(length, 0), values, out)


def copy_ids(values: pa.Array, k: int, limit: int) -> pa.Array:
    """Copy k's identifiers: ``<value>-<k>`` within ``limit`` characters (the value cut at its
    end); a value already over the limit keeps all of it; empty and null values stay."""
    suffix = f"-{k}"
    length = pc.utf8_length(values)
    cut = pc.utf8_slice_codeunits(values, 0, max(limit - len(suffix), 0))
    out = pc.if_else(pc.greater(length, limit), pc.binary_join_element_wise(values, suffix, ""),
                     pc.binary_join_element_wise(cut, suffix, ""))
    return pc.if_else(pc.equal(length, 0), values, out)


def hex_ids(prefixes: np.ndarray, k: int) -> pa.Array:
    """``<prefix><k in 10 hex digits>`` for each 14-hex-digit prefix (a fixed-width array)."""
    return pc.binary_join_element_wise(pa.array(prefixes, pa.string()), f"{k:010x}", "")


@dataclass
class ElementEdits:
    """The entries of the base's flattened ``elements`` that each copy replaces."""

    flat: pa.StructArray  # every entry (tag, vr, value) of every row, in order
    offsets: pa.Array  # the list offsets (from 0)
    validity: pa.Array  # the rows' list is not null
    uid_index: np.ndarray  # entries holding a UID replaced, their stripped values (latin-1)
    uid_values: pa.Array
    uid_prefixes: pa.Array
    uid_pad: pa.Array  # the trailing padding stripped, as text
    uid_parity: np.ndarray  # the raw value's length parity
    id_index: dict[int, np.ndarray]  # limit -> entries holding an identifier replaced
    id_values: dict[int, pa.Array]
    id_pad: dict[int, pa.Array]
    id_parity: dict[int, np.ndarray]

    @property
    def empty(self) -> bool:
        return not len(self.uid_index) and not any(len(i) for i in self.id_index.values())


def element_edits(elements: pa.ListArray) -> ElementEdits:
    """Find the replaced entries of the base's elements column (a Python pass over the base
    only: they are few)."""
    flat = elements.flatten()
    offsets = pc.subtract(elements.offsets, elements.offsets[0])
    tags, vrs = flat.field("tag").to_pylist(), flat.field("vr").to_pylist()
    raw = flat.field("value").to_pylist()
    uid: list[int] = []
    ids: dict[int, list[int]] = {limit: [] for limit in set(ID_TAGS.values())}
    for i, (tag, vr) in enumerate(zip(tags, vrs, strict=True)):
        last = (tag or "").rsplit(".", 1)[-1]
        if raw[i] is None:
            continue
        if vr == "UI" and last in UID_TAGS:
            uid.append(i)
        elif last in ID_TAGS and vr in ("LO", "SH"):
            ids[ID_TAGS[last]].append(i)

    def split(index: list[int]) -> tuple[pa.Array, pa.Array, np.ndarray]:
        text = [raw[i].decode("latin-1") for i in index]
        stripped = [t.rstrip("\x00 ") for t in text]
        pads = [t[len(s):] for t, s in zip(text, stripped, strict=True)]
        return (pa.array(stripped, pa.string()), pa.array(pads, pa.string()),
                np.array([len(t) % 2 for t in text], np.int64))

    uid_values, uid_pad, uid_parity = split(uid)
    id_parts = {limit: split(index) for limit, index in ids.items()}
    return ElementEdits(
        flat, offsets, pc.is_valid(elements), np.array(uid, np.int64), uid_values,
        long_prefixes(uid_values.to_pylist()), uid_pad, uid_parity,
        {limit: np.array(index, np.int64) for limit, index in ids.items()},
        {limit: p[0] for limit, p in id_parts.items()},
        {limit: p[1] for limit, p in id_parts.items()},
        {limit: p[2] for limit, p in id_parts.items()})


def padded(values: pa.Array, pad: pa.Array, parity: np.ndarray, fill: str) -> pa.Array:
    """``values`` with their original trailing padding, one ``fill`` more where the length's
    parity would change, as raw bytes (latin-1: the bytes the base held)."""
    text = pc.binary_join_element_wise(values, pad, "")
    odd = pc.bit_wise_and(pc.utf8_length(text), 1).to_numpy(zero_copy_only=False)
    text = pc.if_else(pa.array(odd != parity), pc.binary_join_element_wise(text, fill, ""), text)
    return pa.array([None if t is None else t.encode("latin-1") for t in text.to_pylist()],
                    pa.binary())


def copy_elements(edits: ElementEdits, k: int, base_uids: pa.Array,
                  list_type: pa.DataType) -> pa.Array:
    """Copy k's elements column: the base's with the replaced entries' values changed."""
    replaced_index = [edits.uid_index]
    replaced = [padded(copy_uids(edits.uid_values, edits.uid_prefixes, k, base_uids),
                       edits.uid_pad, edits.uid_parity, "\x00")]
    for limit, index in edits.id_index.items():
        replaced_index.append(index)
        replaced.append(padded(copy_ids(edits.id_values[limit], k, limit), edits.id_pad[limit],
                               edits.id_parity[limit], " "))
    values = edits.flat.field("value")
    order = np.arange(len(values), dtype=np.int64)
    order[np.concatenate(replaced_index)] = len(values) + np.arange(
        sum(len(i) for i in replaced_index), dtype=np.int64)
    new_values = pa.concat_arrays([values, *replaced]).take(pa.array(order))
    flat = pa.StructArray.from_arrays(
        [edits.flat.field("tag"), edits.flat.field("vr"), new_values],
        fields=list(list_type.value_type))
    return pa.ListArray.from_arrays(edits.offsets, flat, type=list_type,
                                    mask=pc.invert(edits.validity))


def prefixed(values: pa.Array, prefix: str) -> pa.Array:
    return pc.binary_join_element_wise(prefix, values, "")


def prefixed_lists(values: pa.ListArray, prefix: str) -> pa.Array:
    """Each string of a list column with ``prefix`` in front (nulls stay)."""
    flat = prefixed(values.flatten(), prefix)
    offsets = pc.subtract(values.offsets, values.offsets[0])
    return pa.ListArray.from_arrays(offsets, flat, type=values.type,
                                    mask=pc.invert(pc.is_valid(values)))


class Replicator:
    """The copies of one base inventory table."""

    def __init__(self, base: pa.Table) -> None:
        if not base.num_rows:
            raise ValueError("the base inventory has no rows")
        self.base = base
        ids = base.column("object_id").to_pylist()
        self.id_prefixes = np.array([i[:OBJECT_ID_PREFIX] for i in ids], str)
        if len(set(self.id_prefixes.tolist())) != len(set(ids)):
            raise ValueError(f"the base's object ids are not distinct in their first "
                             f"{OBJECT_ID_PREFIX} hex digits")
        self.uid_prefixes = {c: long_prefixes(base.column(c).to_pylist()) for c in UID_COLUMNS}
        self.elements = element_edits(base.column("elements").chunk(0))
        known = set().union(*(base.column(c).to_pylist() for c in UID_COLUMNS),
                            self.elements.uid_values.to_pylist())
        self.base_uids = pa.array(sorted(u for u in known if u), pa.string())

    @property
    def rows(self) -> int:
        return self.base.num_rows

    def copy(self, k: int, rows: int | None = None) -> pa.Table:
        """Copy ``k`` (0: the base itself), its first ``rows`` rows (default: all)."""
        table = self.base if rows is None else self.base.slice(0, rows)
        if k == 0:
            return table
        n = table.num_rows
        prefix = f"/replica-{k:06d}"
        columns: dict[str, Any] = {"object_id": hex_ids(self.id_prefixes[:n], k)}
        for name in PREFIXED_COLUMNS:
            columns[name] = prefixed(table.column(name).chunk(0), prefix)
        columns["archive_volumes"] = prefixed_lists(table.column("archive_volumes").chunk(0),
                                                    prefix)
        for name in UID_COLUMNS:
            columns[name] = copy_uids(table.column(name).chunk(0),
                                      self.uid_prefixes[name][:n], k, self.base_uids)
        for name, limit in ID_LIMITS.items():
            columns[name] = copy_ids(table.column(name).chunk(0), k, limit)
        if not self.elements.empty:
            elements = copy_elements(self.elements, k, self.base_uids,
                                     table.schema.field("elements").type)
            columns["elements"] = elements.slice(0, n)
        for name, values in columns.items():
            table = table.set_column(table.schema.get_field_index(name), name, values)
        return table


def write_replica(base_run: Path, out_run: Path, rows: int, part_rows: int = PART_ROWS,
                  progress: bool = False) -> dict[str, Any]:
    """Write ``rows`` rows replicated from ``base_run``'s inventory into the run folder
    ``out_run`` (replaced: built beside it and renamed into place); returns what was done."""
    from migrate_fs.manifest import SCHEMAS

    start = time.perf_counter()
    base = read_base(base_run / "inventory")
    replicator = Replicator(base)
    info = json.loads((base_run / "run.json").read_text()) if (base_run / "run.json").exists() \
        else {}
    tmp = out_run.with_name(f".tmp-{out_run.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "inventory").mkdir(parents=True)
    schema = SCHEMAS["inventory"]
    parts = 0
    pending: pa.Table | None = None
    copies = -(-rows // replicator.rows)
    for k in range(copies):
        copy = replicator.copy(k, min(replicator.rows, rows - k * replicator.rows))
        pending = copy if pending is None else pa.concat_tables([pending, copy])
        last = k == copies - 1
        offset = 0
        while pending.num_rows - offset >= part_rows or (last and offset < pending.num_rows):
            part = pending.slice(offset, part_rows).combine_chunks()
            pq.write_table(part.cast(schema), tmp / "inventory" / f"part-{parts:07d}.parquet")
            parts += 1
            offset += part.num_rows
        pending = pending.slice(offset)
        if progress and (k % 50 == 49 or last):
            print(f"  copy {k + 1}/{copies}: {parts:,} parts, "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
    done = {"version": VERSION, "rows": rows, "part_rows": part_rows, "parts": parts,
            "copies": copies, "base_rows": replicator.rows, "base": str(base_run),
            "seconds": time.perf_counter() - start}
    run_info = {"sources": info.get("sources", []), "replica": done}
    (tmp / "run.json").write_text(json.dumps(run_info, indent=2, sort_keys=True))
    shutil.rmtree(out_run, ignore_errors=True)
    os.replace(tmp, out_run)
    return done


def cached_replica(base_run: Path, base_key: str, out_run: Path, rows: int,
                   part_rows: int = PART_ROWS, progress: bool = False) -> dict[str, Any]:
    """:func:`write_replica` unless ``out_run`` already holds this replica (same base key, rows,
    part size and :data:`VERSION`, every part present); ``cached`` says which."""
    key = {"version": VERSION, "base_key": base_key, "rows": rows, "part_rows": part_rows}
    stamp = out_run / "replica.json"
    if stamp.is_file():
        found = json.loads(stamp.read_text())
        parts = len(list((out_run / "inventory").glob("part-*.parquet")))
        if {k: found.get(k) for k in key} == key and parts == found.get("parts"):
            return {**found, "cached": True}
    done = {**write_replica(base_run, out_run, rows, part_rows, progress), **key}
    stamp.write_text(json.dumps(done, indent=2, sort_keys=True))
    return {**done, "cached": False}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_run", type=Path, help="run folder of a real inventory")
    parser.add_argument("out_run", type=Path, help="run folder to write (replaced)")
    parser.add_argument("--rows", type=int, required=True, metavar="N")
    parser.add_argument("--part-rows", type=int, default=PART_ROWS, metavar="N")
    args = parser.parse_args(argv)
    done = write_replica(args.base_run, args.out_run, args.rows, args.part_rows, progress=True)
    print(json.dumps(done, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
