"""duplicates: the three-way duplicate model, decided once for the whole run.

1. Same SOPInstanceUID, same content (see :mod:`migrate_fs.plan.hashes`): one copy is migrated, the
   others are ``skip_duplicate`` (reason ``duplicate``) with ``duplicate_of`` the kept copy.
2. Same SOPInstanceUID, different content. Copies that differ only in the pixel data and the
   attributes that describe its encoding (:data:`PIXEL_ENCODING`) are *variants* when decoding
   proves it (:mod:`migrate_fs.plan.proof`): the decoded values of every lossless copy are
   equal, and every lossy copy decodes to the same geometry. The first lossless copy in
   locator order among them is kept (``kept_over_variant``) and the others are
   ``skip_duplicate`` (reason ``transfer_syntax_variant``); a lossy copy that does not decode
   is quarantined (``decode_failed``). Anything else is a *conflict* (reason
   ``uid_conflict``): by default every copy is quarantined; ``[duplicates] conflict`` can keep
   the newest (by InstanceCreationDate/Time or by file time) or the copy the legacy database
   lists (``kept_over_conflict``), and quarantine the rest, or keep all, giving the later copies
   new deterministic SOPInstanceUIDs. Locator order never chooses between different contents:
   a policy that cannot choose keeps none.
3. Different SOPInstanceUID, same content (same pixel data and identifying attributes): the
   later copies get ``content_duplicate`` (a warning) and are migrated, or skipped when
   ``[duplicates] content_duplicates = "skip"``.

Content hashes are computed lazily: only for objects whose SOPInstanceUID collides with
another's, or whose pixel signature (identifying attributes, pixel data length and transfer
syntax, all from the inventory) does. "First" always means first in locator order, so the
decisions do not depend on the order of the sources or the number of workers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydicom.uid import UID

from migrate_fs.config import Config
from migrate_fs.errors import ConfigError
from migrate_fs.pixels import lossy
from migrate_fs.plan.hashes import HASH_INPUT, Digest
from migrate_fs.plan.proof import Fingerprints
from migrate_fs.transcode import last_tag

# Identifying attributes that, with the pixel data, make two objects "the same image".
SIGNATURE = ["patient_id", "patient_name", "patient_birth_date", "patient_sex", "study_date",
             "study_time", "accession_number", "modality", "series_number", "instance_number",
             "transfer_syntax", "pixel_data_length"]
DUPLICATE_INPUT = sorted(set(HASH_INPUT + SIGNATURE + [
    "instance_creation_date", "instance_creation_time", "mtime_ns"]))

# What may differ between two encodings of one image ("variants"); anything else is a conflict.
PIXEL_ENCODING = frozenset({"PixelData", "TransferSyntaxUID", "PhotometricInterpretation",
                            "PlanarConfiguration", "LossyImageCompression",
                            "LossyImageCompressionRatio", "LossyImageCompressionMethod"})

CHANGE_FIELDS = ("tag", "keyword", "old", "new", "rule")
Hashes = Callable[[list[dict[str, Any]]], dict[str, "Digest | str"]]


@dataclass
class Decisions:
    """What the duplicate model decided, by row (a row's number in the run, see
    :mod:`.buckets`)."""

    reason: dict[int, str] = field(default_factory=dict)  # rows that are not migrated
    skip: set[int] = field(default_factory=set)  # of those, the ones skipped (not quarantined)
    duplicate_of: dict[int, int] = field(default_factory=dict)
    problems: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    group: dict[int, str] = field(default_factory=dict)
    kind: dict[int, str] = field(default_factory=dict)
    differs: dict[int, list[str]] = field(default_factory=dict)
    content: dict[int, str] = field(default_factory=dict)
    new_uid: dict[int, str] = field(default_factory=dict)  # keep_all: a new SOPInstanceUID

    def note(self, row: int, code: str, message: str) -> None:
        self.problems.setdefault(row, []).append((code, message))


def signature(table: pa.Table) -> pa.Array:
    """Identifying attributes + pixel data length + transfer syntax, as one string (null for
    objects without pixel data: they have no pixel signature)."""
    parts = [pc.cast(table.column(c), pa.string()).combine_chunks() for c in SIGNATURE]
    joined = pc.binary_join_element_wise(*[pc.fill_null(p, "") for p in parts], "\x1f")
    return pc.if_else(pc.is_null(table.column("pixel_data_length").combine_chunks()),
                      pa.scalar(None, pa.string()), joined)


def _lossless(ts: str | None, lossy_flag: str | None) -> bool:
    return not lossy(ts or "", lossy_flag)


def uid_group(group: list[int], uid: str, digests: dict[int, Digest],
              rows: dict[int, dict[str, Any]], config: Config, fingerprints: Fingerprints,
              out: Decisions) -> None:
    """One SOPInstanceUID held by several objects (``group``, in locator order, those whose
    content hash could be read): identical copies, variants or a conflict."""
    if len(group) < 2:
        return
    distinct: dict[str, int] = {}  # content -> first row with it
    for row in group:
        first = distinct.setdefault(digests[row].content, row)
        out.group[row] = uid
        if first != row:
            out.kind[row] = "identical"
            _skip(out, row, first, "duplicate", f"same SOPInstanceUID and content as object "
                                                f"{rows[first]['object_id']}")
    if len(distinct) == 1:
        out.kind[group[0]] = "identical"
        return
    heads = list(distinct.values())
    base = heads[0]
    for row in group:
        out.differs[row] = _differs(digests[base], digests[row], rows[base], rows[row])
    for row in group:  # the first copy differs from the others in all they differ in
        if not out.differs[row]:
            out.differs[row] = list(dict.fromkeys(n for r in heads for n in out.differs[r]))
    why = "they differ in more than the pixel data's encoding"
    if all(set(out.differs[r]) <= PIXEL_ENCODING for r in heads):
        if config.variants != "keep_lossless":
            why = "[duplicates] variants = \"conflict\""
        else:
            proof = _prove_variants(heads, rows, fingerprints)
            if isinstance(proof, Variants):
                _variants(proof, rows, out)
                return
            why = proof
    _conflict(heads, digests, rows, config, out, why)
    _follow_conflicts(group, rows, out)


def _follow_conflicts(group: list[int], rows: dict[int, dict[str, Any]], out: Decisions) -> None:
    """Identical copies of a quarantined content are quarantined with it."""
    for row in group:
        if out.kind.get(row) == "identical" and \
                out.reason.get(out.duplicate_of[row]) == "uid_conflict":
            out.reason[row] = "uid_conflict"
            out.skip.discard(row)
            out.note(row, "uid_conflict", f"an identical copy of object "
                     f"{rows[out.duplicate_of[row]]['object_id']}, which is in conflict")


@dataclass
class Variants:
    """Encodings of one image, proven by decoding: the copy to keep and what the others are."""

    keep: int
    skipped: list[int]
    undecodable: dict[int, str]  # lossy copies that do not decode -> why


def _prove_variants(heads: list[int], rows: dict[int, dict[str, Any]],
                    fingerprints: Fingerprints) -> Variants | str:
    """Variants when decoding proves them (lossless copies: equal decoded values; lossy
    copies: the geometry of the lossless one); else why not, for the conflict message."""
    lossless = [r for r in heads if _lossless(rows[r]["transfer_syntax"], None)]
    if not lossless:
        return "no lossless copy shows that the lossy copies hold one image"
    found = fingerprints([rows[r] for r in heads])
    outcome = {r: found[rows[r]["object_id"]] for r in heads}
    for row in lossless:
        if outcome[row].code:
            return (f"object {rows[row]['object_id']} could not be decoded to compare its "
                    f"pixel values ({outcome[row].code}: {outcome[row].message})")
    if len({outcome[r].values_sha256 for r in lossless}) > 1:
        return "their decoded pixel values differ"
    keep, undecodable = lossless[0], {}
    for row in heads:
        if row in lossless:
            continue
        if outcome[row].code:
            undecodable[row] = f"{outcome[row].code}: {outcome[row].message}"
        elif outcome[row].geometry != outcome[keep].geometry:
            return (f"the lossy copy {rows[row]['object_id']} has frames, shape and type "
                    f"{outcome[row].geometry}, the lossless one {outcome[keep].geometry}")
    return Variants(keep, [r for r in heads if r != keep], undecodable)


def _variants(proof: Variants, rows: dict[int, dict[str, Any]], out: Decisions) -> None:
    keep = rows[proof.keep]
    kept_syntax = UID(keep["transfer_syntax"] or "").name
    for row in [proof.keep, *proof.skipped]:
        out.kind[row] = "variant"
    for row in proof.skipped:
        syntax = UID(rows[row]["transfer_syntax"] or "").name
        if row in proof.undecodable:
            out.reason[row] = "decode_failed"
            out.duplicate_of[row] = proof.keep
            out.note(row, "decode_failed", f"a lossy copy ({syntax}) of object "
                     f"{keep['object_id']} whose pixel data does not decode "
                     f"({proof.undecodable[row]}); object {keep['object_id']} is migrated")
            continue
        _skip(out, row, proof.keep, "transfer_syntax_variant",
              f"the same image as object {keep['object_id']} in {kept_syntax}, proven by "
              f"decoding; this copy is {syntax}")
    others = ", ".join(f"{rows[r]['object_id']} ({UID(rows[r]['transfer_syntax'] or '').name})"
                       for r in proof.skipped)
    out.note(proof.keep, "kept_over_variant", f"kept ({kept_syntax}, lossless) over the other "
             f"encodings of this image: {others}")


def _conflict(heads: list[int], digests: dict[int, Digest], rows: dict[int, dict[str, Any]],
              config: Config, out: Decisions, why: str) -> None:
    """Distinct contents under one SOPInstanceUID, decided by ``[duplicates] conflict``."""
    policy = config.conflict
    keep, tie = _policy_choice(heads, rows, config)
    for row in heads:
        out.kind[row] = "conflict"
        what = ", ".join(out.differs[row] or out.differs[heads[0]]) or "content"
        message = (f"{len(heads)} different objects share SOPInstanceUID {out.group[row]}; "
                   f"they differ in {what} ({why})")
        others = ", ".join(rows[r]["object_id"] for r in heads if r != row)
        if policy == "keep_all":
            note = "this copy keeps the SOPInstanceUID" if row == heads[0] else \
                "this copy gets a new SOPInstanceUID"
            if row != heads[0]:
                out.new_uid[row] = digests[row].content
            out.note(row, "kept_over_conflict", f"{message}; {note} (policy keep_all; the "
                     f"others: {others})")
        elif row == keep:
            out.note(row, "kept_over_conflict", f"{message}; kept by policy {policy} over "
                     f"{others}")
        else:
            out.reason[row] = "uid_conflict"
            out.note(row, "uid_conflict", message + (f"; {tie}" if tie else ""))
            if keep is not None:
                out.duplicate_of[row] = keep


def _policy_choice(heads: list[int], rows: dict[int, dict[str, Any]],
                   config: Config) -> tuple[int | None, str]:
    """The copy ``[duplicates] conflict`` keeps (None: quarantine all), and, when the policy
    could not choose, why. Locator order never decides between different contents."""
    policy = config.conflict
    if policy in ("quarantine", "keep_all"):
        return None, ""
    if policy == "keep_legacy_db":
        listed = [r for r in heads if listed_in_legacy_db(rows[r]["locator"], config)]
        if len(listed) == 1:
            return listed[0], ""
        return None, (f"policy keep_legacy_db: the legacy database lists {len(listed)} of the "
                      "copies, not one")

    def key(row: int) -> tuple[Any, ...]:
        if policy == "keep_newest_instance":
            return (rows[row]["instance_creation_date"] or "",
                    rows[row]["instance_creation_time"] or "")
        return (rows[row]["mtime_ns"] or 0,)

    newest = max(key(r) for r in heads)
    best = [r for r in heads if key(r) == newest]
    if len(best) == 1:
        return best[0], ""
    return None, f"policy {policy}: {len(best)} copies are equally new, none is kept"


def listed_in_legacy_db(locator: str, config: Config) -> bool:
    """True when the legacy database's file list names this object (by a path it ends with)."""
    paths = _legacy_db_paths(config.legacy_db_files)
    parts = locator.split("/")
    return any("/".join(parts[i:]) in paths for i in range(len(parts)))


@functools.lru_cache(maxsize=4)
def _legacy_db_paths(csv_path: str) -> frozenset[str]:
    """The 'path' column of the legacy database's file list, leading slashes removed."""
    import pyarrow.csv as pacsv

    try:
        table = pacsv.read_csv(csv_path, convert_options=pacsv.ConvertOptions(
            column_types={"path": pa.string()}))
    except (OSError, pa.ArrowInvalid) as exc:
        raise ConfigError(f"[duplicates] legacy_db_files {csv_path}: cannot be read ({exc}); "
                          "give a CSV file with a 'path' column") from None
    if "path" not in table.column_names:
        raise ConfigError(f"{csv_path}: no 'path' column (the legacy database's storage paths)")
    return frozenset(p.strip().lstrip("/") for p in table.column("path").to_pylist() if p)


def signature_group(group: list[int], digests: dict[int, Digest],
                    rows: dict[int, dict[str, Any]], config: Config, out: Decisions) -> None:
    """Objects with equal identifying attributes (``group``, in locator order, those whose
    content hash could be read and that the SOPInstanceUID groups left to migrate; ``out.group``
    holds the SOPInstanceUID groups of its rows): same pixel data under another UID?"""
    first_by_pixel: dict[str | None, int] = {}
    for row in group:
        pixel = digests[row].pixel
        if pixel is None:
            continue
        first = first_by_pixel.setdefault(pixel, row)
        if first == row or out.group.get(row) == out.group.get(first) is not None:
            continue  # the first of its pixels, or the same UID (decided above)
        out.kind.setdefault(row, "content_duplicate")
        message = (f"same pixel data and identifying attributes as object "
                   f"{rows[first]['object_id']}, under another SOPInstanceUID")
        if config.content_duplicates == "skip":
            _skip(out, row, first, "content_duplicate", message)
        else:
            out.note(row, "content_duplicate", message)
            out.duplicate_of.setdefault(row, first)


def _skip(out: Decisions, row: int, kept: int, code: str, message: str) -> None:
    out.reason[row] = code
    out.skip.add(row)
    out.duplicate_of[row] = kept
    out.note(row, code, message)


def _differs(a: Digest, b: Digest, row_a: dict[str, Any], row_b: dict[str, Any]) -> list[str]:
    """The top-level elements (by keyword where known), pixel data and encoding that differ."""
    from pydicom.datadict import keyword_for_tag

    names = []
    for tag in sorted(set(a.elements) | set(b.elements)):
        if a.elements.get(tag) != b.elements.get(tag):
            names.append(keyword_for_tag(last_tag(tag)) or tag)
    if a.pixel != b.pixel:
        names.append("PixelData")
    if row_a["transfer_syntax"] != row_b["transfer_syntax"]:
        names.append("TransferSyntaxUID")
    return names
