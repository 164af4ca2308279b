"""plan.buckets: the plan of a whole run with no process holding a whole-run column.

The run's inventory comes as *part groups* (consecutive inventory parts, :class:`Group`); its
rows are numbered ``rid = group << 32 | row within the group``. The plan runs in phases, each
a set of independent tasks handed to a runner (loky workers, or one after another in this
process), which exchange their data through a :class:`Store` (Parquet files in a hidden work
folder, or memory):

1. **local**, per group: blocking codes, corrections, rules, output identifiers
   (:func:`.decide.local_decisions`); each candidate's SOPInstanceUID and pixel signature go to
   the hash bucket of their value.
2. **collide**, per bucket: the keys held by two or more rows; those rows are *wanted*.
3. **gather**, per group: the wanted rows' hashing inputs, by source (one set per archive, so
   that each archive is read front to back once; files by group).
4. **hash**, per source: the content hashes (:mod:`.hashes`), sent to the rows' buckets.
5. **uid**, per bucket: each SOPInstanceUID group decided (:func:`.duplicates.uid_group`).
6. **signature**, per bucket: each pixel signature group decided, with what the uid phase left.
7. **settle**, per group: the decisions joined, new UIDs, output paths (in the configured
   layout); each candidate's path (lowercased) goes to its bucket.
8. **path**, per bucket: later copies of one path in letter case (locator order).
9. **finish**, per group: the DECISIONS columns, handed to the group to write; a
   :class:`~migrate_fs.summary.Tally` of them returned. A later copy of a path is
   quarantined (``output_path_collision``) under the ``uids`` layout, and given a suffixed
   path (:func:`~migrate_fs.paths.suffixed`, ``output_path_suffixed``) under any other. A
   suffixed path ends in ``~<object_id>.dcm``, a shape no unsuffixed path has and no other
   object's suffixed path can share (object ids are distinct): it cannot collide again, so
   one round of phase 8 is enough, whatever the bucket of the new path.

A group of rows with one key is always in one bucket and ordered by locator there, so the plan
is the same for any bucket count, group size and worker count. Nothing here knows where the
inventory lives or how the plan is stored: :class:`Group` does.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from migrate_fs.config import Config
from migrate_fs.iostats import bytes_read_so_far
from migrate_fs.plan.decide import (
    DECISION_INPUT,
    DUPLICATE,
    SETTLED,
    STATE,
    final_decisions,
    local_decisions,
    new_sop_uid,
    settle,
)
from migrate_fs.plan.duplicates import (
    DUPLICATE_INPUT,
    Decisions,
    Hashes,
    signature,
    signature_group,
    uid_group,
)
from migrate_fs.plan.hashes import Digest, read_hashes
from migrate_fs.plan.proof import Fingerprints, read_fingerprints
from migrate_fs.problems import PROBLEM
from migrate_fs.summary import Tally

ROWS_PER_BUCKET = 1_000_000  # the default bucket count: one per this many objects
GROUP_SHIFT = 32
KEYS = pa.schema([("hash", pa.uint64()), ("key", pa.string()), ("locator", pa.string()),
                  ("rid", pa.int64())])
PATH_KEYS = pa.schema([*KEYS, ("object_id", pa.string())])
REFS = pa.schema([("rid", pa.int64()), ("uid_bucket", pa.int64()),
                  ("signature_bucket", pa.int64())])
UID_INFO = pa.schema([("rid", pa.int64()), ("decided", pa.bool_()), ("group", pa.string())])
COLLISIONS = pa.schema([("rid", pa.int64()), ("kept", pa.string())])
# One task: a module-level function and its (picklable) arguments.
Task = tuple[Callable[..., Any], tuple[Any, ...]]
Runner = Callable[[list[Task]], Iterable[Any]]


class Group(Protocol):
    """Consecutive inventory parts: what a task reads and where its plan rows go."""

    @property
    def index(self) -> int:
        """The group's number: its rows are numbered from ``index << GROUP_SHIFT``."""

    def read(self, columns: list[str] | None) -> list[pa.Table]:
        """The group's inventory parts (those columns; all with None), in order."""

    def write(self, decided: list[pa.Table]) -> None:
        """Store the DECISIONS columns of each part (as :meth:`read` gave them)."""


def bucket_count(rows: int) -> int:
    return max(1, -(-rows // ROWS_PER_BUCKET))


def key_hash(keys: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A stable 64-bit hash per string: FNV-1a over its UTF-8 bytes with a final mix,
    vectorized one byte position at a time (the same on every machine; a null hashes as the
    empty string)."""
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    n = len(keys)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    keys = pc.fill_null(keys.cast(pa.large_string()), "")
    offsets = np.frombuffer(keys.buffers()[1], dtype=np.int64)[keys.offset:keys.offset + n + 1]
    data = keys.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    order = np.argsort(-lengths, kind="stable")  # longest first: the live rows are a prefix
    starts, by_length = offsets[:-1][order], lengths[order]
    hashes = np.full(n, 0xCBF29CE484222325, dtype=np.uint64)
    live = n
    with np.errstate(over="ignore"):
        for position in range(int(by_length[0]) if n else 0):
            while by_length[live - 1] <= position:
                live -= 1
            head = hashes[:live]
            head ^= raw[starts[:live] + position].astype(np.uint64)
            head *= np.uint64(0x100000001B3)
        hashes ^= hashes >> np.uint64(31)
        hashes *= np.uint64(0x94D049BB133111EB)
        hashes ^= hashes >> np.uint64(29)
    found = np.empty(n, dtype=np.uint64)
    found[order] = hashes
    return found


def bucket_of(keys: pa.Array | pa.ChunkedArray, buckets: int) -> np.ndarray:
    """The bucket of each string: its :func:`key_hash` modulo ``buckets``."""
    if buckets == 1:
        return np.zeros(len(keys), dtype=np.int64)
    return _modulo(key_hash(keys), buckets)


def _modulo(hashes: np.ndarray, buckets: int) -> np.ndarray:
    return (hashes % np.uint64(buckets)).astype(np.int64)


# --- where the phases exchange their data --------------------------------------------------

class Store(Protocol):
    def write(self, area: str, key: int | str, name: str, table: pa.Table) -> None:
        """Keep ``table`` (if it has rows) as ``name`` under ``area``/``key``."""

    def read(self, area: str, key: int | str, schema: pa.Schema | None = None,
             columns: list[str] | None = None,
             keep: Callable[[pa.Table], Any] | None = None) -> pa.Table:
        """Every table written under ``area``/``key``, as one (only ``columns``; only the rows
        ``keep`` gives a true mask for, applied table by table); with no ``schema``, their own
        (which must then be one: they exist and were made by one function)."""

    def keys(self, area: str) -> list[str]:
        """The keys something was written under in ``area``."""


@dataclass(frozen=True)
class DiskStore:
    """Parquet files ``<root>/<area>/<key>/<name>.parquet``, each written under a dot name and
    renamed; ``root`` is a dot-prefixed work folder that a dataset reader skips."""

    root: str

    def write(self, area: str, key: int | str, name: str, table: pa.Table) -> None:
        if not table.num_rows:
            return
        folder = Path(self.root, area, str(key))
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{name}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, folder / f"{name}.parquet")

    def read(self, area: str, key: int | str, schema: pa.Schema | None = None,
             columns: list[str] | None = None,
             keep: Callable[[pa.Table], Any] | None = None) -> pa.Table:
        folder = Path(self.root, area, str(key))
        files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
        tables = (pq.read_table(f, schema=schema, columns=columns) for f in files)
        return _one([t.filter(keep(t)) if keep else t for t in tables],
                    _projected(schema, columns))

    def keys(self, area: str) -> list[str]:
        folder = Path(self.root, area)
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class MemoryStore:
    """The same in memory, for a plan run in this process (tests, small tables)."""

    tables: dict[tuple[str, str], dict[str, pa.Table]] = field(default_factory=dict)

    def write(self, area: str, key: int | str, name: str, table: pa.Table) -> None:
        if table.num_rows:
            self.tables.setdefault((area, str(key)), {})[name] = table

    def read(self, area: str, key: int | str, schema: pa.Schema | None = None,
             columns: list[str] | None = None,
             keep: Callable[[pa.Table], Any] | None = None) -> pa.Table:
        found = self.tables.get((area, str(key)), {})
        tables = (found[k] if schema is None else found[k].cast(schema) for k in sorted(found))
        tables = (t.select(columns) if columns else t for t in tables)
        return _one([t.filter(keep(t)) if keep else t for t in tables],
                    _projected(schema, columns))

    def keys(self, area: str) -> list[str]:
        return sorted(k for a, k in self.tables if a == area)


def _projected(schema: pa.Schema | None, columns: list[str] | None) -> pa.Schema | None:
    if schema is None or columns is None:
        return schema
    return pa.schema([schema.field(c) for c in columns])


def _one(tables: list[pa.Table], schema: pa.Schema | None) -> pa.Table:
    if tables:
        return pa.concat_tables(tables)
    if schema is None:
        raise ValueError("nothing was written there, and no schema says what it would hold")
    return schema.empty_table()


def _by_key(store: Store, area: str, name: str, table: pa.Table, keys: np.ndarray) -> None:
    """Write ``table``'s rows to ``area``, each under its key (a bucket or a group)."""
    if not table.num_rows:
        return
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    ends = np.r_[starts[1:], len(order)]
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        store.write(area, int(sorted_keys[start]), name, table.take(pa.array(order[start:end])))


def _group_of(rids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.shift_right(rids, GROUP_SHIFT).to_numpy(zero_copy_only=False),
                      dtype=np.int64)


# --- the driver ----------------------------------------------------------------------------

@dataclass
class Outcome:
    """What the plan did, besides writing its rows."""

    tally: Tally
    orphans: pa.Table | None
    hashed: dict[str, int]


def plan_groups(groups: Sequence[Group], store: Store, run: Runner, config: Config,
                corrections: pa.Table | None, buckets: int, hashes: Hashes = read_hashes,
                fingerprints: Fingerprints | None = None) -> Outcome:
    """Plan every row of ``groups`` (see the module docstring), writing each group's decisions
    through the group."""
    fingerprints = fingerprints or functools.partial(read_fingerprints,
                                                     decoder=config.decoder or None)
    orphans: pa.Table | None = None
    seen = False
    for found in run([(_local, (store, g, config, corrections, buckets)) for g in groups]):
        if corrections is None:
            continue
        orphans = found if not seen else orphans.filter(  # type: ignore[union-attr]
            pc.is_in(orphans.column("row"), found.column("row")))  # type: ignore[union-attr]
        seen = True
    if corrections is not None and not seen:
        from migrate_fs.plan.corrections import apply_corrections
        from migrate_fs.plan.decide import CORRECTION_INPUT

        orphans = apply_corrections(pa.table({c: pa.array([], pa.string())
                                              for c in CORRECTION_INPUT}), corrections).orphans
    hashed = {"objects": 0, "bytes_read": 0, "decoded": 0}
    bucket_keys = sorted(set(store.keys("uid-keys")) | set(store.keys("signature-keys")))
    list(run([(_collide, (store, int(b))) for b in bucket_keys]))
    by_index = {g.index: g for g in groups}
    wanted = [by_index[int(g)] for g in store.keys("refs")]
    if wanted:
        list(run([(_gather, (store, g)) for g in wanted]))
        for counts in run([(_hash, (store, source, hashes)) for source in
                           store.keys("requests")]):
            for key in ("objects", "bytes_read"):
                hashed[key] += counts[key]
        for decoded in run([(_uid, (store, int(b), config, fingerprints))
                            for b in store.keys("uid-hashed")]):
            hashed["decoded"] += decoded
        list(run([(_signature, (store, int(b), config))
                  for b in store.keys("signature-hashed")]))
    list(run([(_settle, (store, g, config, buckets)) for g in groups]))
    list(run([(_paths, (store, int(b))) for b in store.keys("path-keys")]))
    tally = Tally()
    for part in run([(_finish, (store, g, config)) for g in groups]):
        tally.merge(part)
    return Outcome(tally, orphans, hashed)


# --- the phases (module-level functions: a worker process runs them) -----------------------

def _rids(index: int, n: int) -> np.ndarray:
    return (np.int64(index) << np.int64(GROUP_SHIFT)) + np.arange(n, dtype=np.int64)


def _local(store: Store, group: Group, config: Config, corrections: pa.Table | None,
           buckets: int) -> pa.Table | None:
    table = pa.concat_tables(group.read(DECISION_INPUT))
    state, orphans = local_decisions(table, _rids(group.index, table.num_rows), config,
                                     corrections)
    store.write("state", group.index, "state", state)
    candidate = pc.is_null(state.column("reason"))
    name = f"g{group.index:06d}"
    _keys(store, "uid-keys", name, state.column("output_sop_instance_uid"), state, candidate,
          buckets)
    if config.content_duplicates != "off":
        _keys(store, "signature-keys", name, signature(table), state, candidate, buckets)
    return orphans


def _keys(store: Store, area: str, name: str, key: pa.ChunkedArray | pa.Array,
          state: pa.Table, candidate: pa.Array, buckets: int) -> None:
    """Each candidate row with a (non-null) key, to the bucket of its key."""
    mask = pc.and_(candidate, pc.is_valid(key))
    _hashed_keys(store, area, name, {"key": key, "locator": state.column("locator"),
                                     "rid": state.column("rid")}, mask, KEYS, buckets)


def _hashed_keys(store: Store, area: str, name: str, columns: dict[str, Any], mask: pa.Array,
                 schema: pa.Schema, buckets: int) -> None:
    """Keyed rows with their key's hash, each to the bucket of its key."""
    kept = {name: pc.filter(values, mask) for name, values in columns.items()}
    hashes = key_hash(kept["key"])
    rows = pa.table({"hash": pa.array(hashes, pa.uint64()), **kept}, schema=schema)
    _by_key(store, area, name, rows, _modulo(hashes, buckets))


def _colliding(store: Store, area: str, bucket: int, schema: pa.Schema) -> pa.Table:
    """The rows of a bucket whose key another row has too, ordered by (key, locator). Only
    the keys' hashes are held for the whole bucket; the rows are read where a hash repeats."""
    hashes = np.sort(store.read(area, bucket, schema, columns=["hash"]).column("hash")
                     .to_numpy())
    repeated = np.unique(hashes[1:][hashes[1:] == hashes[:-1]])
    del hashes
    if not len(repeated):
        return schema.empty_table()
    wanted = pa.array(repeated, pa.uint64())
    rows = store.read(area, bucket, schema,
                      keep=lambda t: pc.is_in(t.column("hash"), value_set=wanted))
    counts = rows.group_by("key").aggregate([([], "count_all")])
    shared = counts.filter(pc.greater(counts.column("count_all"), 1)).column("key")
    found = rows.filter(pc.is_in(rows.column("key"), value_set=shared))
    return found.sort_by([("key", "ascending"), ("locator", "ascending")])


def _collide(store: Store, bucket: int) -> None:
    name = f"b{bucket:06d}"
    for area, column in (("uid-keys", "uid_bucket"), ("signature-keys", "signature_bucket")):
        rows = _colliding(store, area, bucket, KEYS)
        rids = rows.column("rid")
        refs = pa.table({"rid": rids,
                         "uid_bucket": pa.repeat(pa.scalar(bucket if column == "uid_bucket"
                                                           else -1), rows.num_rows),
                         "signature_bucket": pa.repeat(pa.scalar(
                             bucket if column == "signature_bucket" else -1), rows.num_rows)},
                        schema=REFS)
        _by_key(store, "refs", f"{name}-{column[0]}", refs, _group_of(rids))


def _source_key(row: dict[str, Any], group: int) -> str:
    """Where a wanted row is read from: its archive (by its volumes), or the files of its
    group (``f<group>``)."""
    if not row["archive"]:
        return f"f{group:06d}"
    volumes = row["archive_volumes"] or [row["archive"]]
    return "a" + hashlib.sha256("\0".join(volumes).encode()).hexdigest()[:16]


def _gather(store: Store, group: Group) -> None:
    refs = store.read("refs", group.index, REFS)
    refs = refs.group_by("rid").aggregate([("uid_bucket", "max"), ("signature_bucket", "max")])
    base = group.index << GROUP_SHIFT
    rows = pc.subtract(refs.column("rid"), base)
    table = pa.concat_tables(group.read(DUPLICATE_INPUT)).take(rows)
    state = store.read("state", group.index, STATE).take(rows)
    requests = table.append_column("changes", state.column("changes")) \
        .append_column("rid", refs.column("rid")) \
        .append_column("uid_bucket", refs.column("uid_bucket_max")) \
        .append_column("signature_bucket", refs.column("signature_bucket_max")) \
        .append_column("uid", state.column("output_sop_instance_uid")) \
        .append_column("signature", signature(table))
    sources = [_source_key(r, group.index) for r in requests.select(
        ["archive", "archive_volumes"]).to_pylist()]
    for source in sorted(set(sources)):
        mask = pa.array([s == source for s in sources])
        store.write("requests", source, f"g{group.index:06d}", requests.filter(mask))


def _hash(store: Store, source: str, hashes: Hashes) -> dict[str, int]:
    requests = store.read("requests", source)
    if source.startswith("a"):  # an archive: its members in the order they are stored
        requests = requests.sort_by("member_offset")
    rows = requests.to_pylist()  # changes as dicts of CHANGE_FIELDS, as hashing wants them
    before = bytes_read_so_far()
    found = hashes(rows)
    read = bytes_read_so_far() - before
    digests = [found.get(r["object_id"], "no content hash was computed") for r in rows]
    hashed = requests
    for name, values in _digest_columns(digests).items():
        hashed = hashed.append_column(name, values)
    name = f"h{source}"
    for area, column in (("uid-hashed", "uid_bucket"), ("signature-hashed", "signature_bucket")):
        keys = np.asarray(hashed.column(column).to_numpy(zero_copy_only=False), dtype=np.int64)
        _by_key(store, area, name, hashed.filter(pa.array(keys >= 0)), keys[keys >= 0])
    decided = _decided_table({rid: {"content": d.content} if isinstance(d, Digest) else
                              {"reason": "unreadable_source", "skip": False,
                               "problems": [("unreadable_source", f"content hash: {d}")]}
                              for rid, d in zip(hashed.column("rid").to_pylist(), digests,
                                                strict=True)})
    _by_key(store, "hash-decided", name, decided, _group_of(decided.column("rid")))
    return {"objects": len(found), "bytes_read": read}


def _digest_columns(digests: list[Digest | str]) -> dict[str, pa.Array]:
    ok = [d if isinstance(d, Digest) else None for d in digests]
    return {
        "header": pa.array([d.header if d else None for d in ok], pa.string()),
        "pixel": pa.array([d.pixel if d else None for d in ok], pa.string()),
        "elements": pa.array([list(d.elements.items()) if d else None for d in ok],
                             pa.map_(pa.string(), pa.string())),
        "error": pa.array([None if isinstance(d, Digest) else d for d in digests], pa.string()),
    }


def _digests(table: pa.Table) -> dict[int, Digest]:
    """The readable rows' digests, by rid."""
    found = {}
    for rid, header, pixel, elements, error in zip(
            *(table.column(c).to_pylist() for c in ("rid", "header", "pixel", "elements",
                                                    "error")), strict=True):
        if error is None:
            found[rid] = Digest(header, pixel, dict(elements or []))
    return found


def _rows(table: pa.Table) -> dict[int, dict[str, Any]]:
    rows = {}
    for row in table.select([*DUPLICATE_INPUT, "rid"]).to_pylist():
        rows[row["rid"]] = row
    return rows


def _runs(keys: list[Any]) -> Iterator[tuple[int, int]]:
    """(start, end) of each run of equal consecutive keys."""
    start = 0
    for end in range(1, len(keys) + 1):
        if end == len(keys) or keys[end] != keys[start]:
            yield start, end
            start = end


def _uid(store: Store, bucket: int, config: Config, fingerprints: Fingerprints) -> int:
    table = store.read("uid-hashed", bucket).sort_by(
        [("uid", "ascending"), ("locator", "ascending")])
    digests, rows = _digests(table), _rows(table)
    rids, uids = table.column("rid").to_pylist(), table.column("uid").to_pylist()
    decoded = 0

    def counted(found: list[dict[str, Any]]) -> dict[str, Any]:
        nonlocal decoded
        decoded += len(found)
        return fingerprints(found)

    out = Decisions()
    for start, end in _runs(uids):
        group = [r for r in rids[start:end] if r in digests]
        uid_group(group, uids[start], digests, rows, config, counted, out)
    name = f"u{bucket:06d}"
    decided = _decided_table(_decisions_by_row(out, rows, config, uids, rids))
    _by_key(store, "uid-decided", name, decided, _group_of(decided.column("rid")))
    sig = table.filter(pc.greater_equal(table.column("signature_bucket"), 0))
    info = pa.table({"rid": sig.column("rid"),
                     "decided": pa.array([r in out.reason for r in sig.column("rid")
                                          .to_pylist()], pa.bool_()),
                     "group": pa.array([out.group.get(r) for r in sig.column("rid")
                                        .to_pylist()], pa.string())}, schema=UID_INFO)
    _by_key(store, "uid-info", name, info, np.asarray(
        sig.column("signature_bucket").to_numpy(zero_copy_only=False), dtype=np.int64))
    return decoded


def _signature(store: Store, bucket: int, config: Config) -> None:
    table = store.read("signature-hashed", bucket).sort_by(
        [("signature", "ascending"), ("locator", "ascending")])
    info = store.read("uid-info", bucket, UID_INFO)
    decided_before = set(info.filter(info.column("decided")).column("rid").to_pylist())
    digests, rows = _digests(table), _rows(table)
    out = Decisions()
    out.group.update((r, g) for r, g in zip(info.column("rid").to_pylist(),
                                            info.column("group").to_pylist(), strict=True)
                     if g is not None)
    rids, keys = table.column("rid").to_pylist(), table.column("signature").to_pylist()
    for start, end in _runs(keys):
        group = [r for r in rids[start:end] if r in digests and r not in decided_before]
        signature_group(group, digests, rows, config, out)
    out.group.clear()  # the uid phase's, not this phase's
    decided = _decided_table(_decisions_by_row(out, rows, config, None, None))
    _by_key(store, "signature-decided", f"s{bucket:06d}", decided,
            _group_of(decided.column("rid")))


def _decisions_by_row(out: Decisions, rows: dict[int, dict[str, Any]], config: Config,
                      uids: list[str | None] | None, rids: list[int] | None
                      ) -> dict[int, dict[str, Any]]:
    """The Decisions of a phase as DUPLICATE records by rid (row numbers become object ids)."""
    uid_of = dict(zip(rids, uids, strict=True)) if rids is not None and uids is not None \
        else {}
    found: dict[int, dict[str, Any]] = {}
    touched = (set(out.reason) | set(out.duplicate_of) | set(out.problems) | set(out.group)
               | set(out.kind) | set(out.differs) | set(out.new_uid))
    for rid in touched:
        found[rid] = {
            "reason": out.reason.get(rid), "skip": rid in out.skip,
            "duplicate_of": rows[out.duplicate_of[rid]]["object_id"]
            if rid in out.duplicate_of else None,
            "problems": out.problems.get(rid, []), "group": out.group.get(rid),
            "kind": out.kind.get(rid), "differs": out.differs.get(rid),
            "new_uid": new_sop_uid(config, uid_of.get(rid), out.new_uid[rid])
            if rid in out.new_uid else None}
    return found


def _decided_table(records: dict[int, dict[str, Any]]) -> pa.Table:
    rids = sorted(records)
    column = lambda name: [records[r].get(name) for r in rids]  # noqa: E731
    return pa.table({
        "rid": pa.array(rids, pa.int64()), "reason": pa.array(column("reason"), pa.string()),
        "skip": pa.array([bool(records[r].get("skip")) for r in rids], pa.bool_()),
        "duplicate_of": pa.array(column("duplicate_of"), pa.string()),
        "problems": pa.array([[{"code": c, "message": m} for c, m in records[r].get("problems")
                               or []] for r in rids], pa.list_(PROBLEM)),
        "group": pa.array(column("group"), pa.string()),
        "kind": pa.array(column("kind"), pa.string()),
        "differs": pa.array(column("differs"), pa.list_(pa.string())),
        "new_uid": pa.array(column("new_uid"), pa.string()),
        "content": pa.array(column("content"), pa.string())}, schema=DUPLICATE)


def _settle(store: Store, group: Group, config: Config, buckets: int) -> None:
    state = store.read("state", group.index, STATE)
    decided = [store.read(area, group.index, DUPLICATE)
               for area in ("hash-decided", "uid-decided", "signature-decided")]
    settled = settle(state, [d.sort_by("rid") for d in decided], config)
    store.write("settled", group.index, "settled", settled)
    path = settled.column("output_path")
    _hashed_keys(store, "path-keys", f"g{group.index:06d}", {
        "key": pc.utf8_lower(path), "locator": settled.column("locator"),
        "rid": settled.column("rid"), "object_id": settled.column("object_id")},
        pc.is_valid(path), PATH_KEYS, buckets)


def _paths(store: Store, bucket: int) -> None:
    rows = _colliding(store, "path-keys", bucket, PATH_KEYS)
    keys = rows.column("key").to_pylist()
    rids, ids = rows.column("rid").to_pylist(), rows.column("object_id").to_pylist()
    later, kept = [], []
    for start, end in _runs(keys):
        later += rids[start + 1:end]
        kept += [ids[start]] * (end - start - 1)
    table = pa.table({"rid": pa.array(later, pa.int64()), "kept": pa.array(kept, pa.string())},
                     schema=COLLISIONS)
    _by_key(store, "path-decided", f"p{bucket:06d}", table, _group_of(table.column("rid")))


def _finish(store: Store, group: Group, config: Config) -> Tally:
    parts = group.read(["problems", "transfer_syntax", "size"])
    settled = store.read("settled", group.index, SETTLED)
    collisions = store.read("path-decided", group.index, COLLISIONS)
    base = group.index << GROUP_SHIFT
    found = {rid - base: kept for rid, kept in zip(collisions.column("rid").to_pylist(),
                                                   collisions.column("kept").to_pylist(),
                                                   strict=True)}
    tally = Tally()
    decided_parts = []
    offset = 0
    policies = config.code_policies()
    suffix = not config.output_layout().is_uids  # else: quarantined as output_path_collision
    for part in parts:
        n = part.num_rows
        here = {row - offset: kept for row, kept in found.items() if offset <= row < offset + n}
        decided = final_decisions(
            part.column("problems").combine_chunks() if n else pa.array([], pa.list_(PROBLEM)),
            part.column("transfer_syntax").combine_chunks() if n else pa.array([], pa.string()),
            settled.slice(offset, n), here, policies, suffix)
        decided_parts.append(decided)
        tally.add(decided.select(["action", "reason", "problems"]).append_column(
            "size", part.column("size")))
        offset += n
    group.write(decided_parts)
    return tally
