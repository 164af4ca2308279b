"""audit.pacs: did everything arrive? The run's migrated instances against the new PACS, study by
study, over DICOMweb (QIDO-RS).

``migrate-fs reconcile --run NAME --dicomweb URL`` (:func:`check_pacs`) lists, for every study
the run wrote (the result rows ``written`` or ``already_present``, by their output
StudyInstanceUID), the SOPInstanceUIDs the PACS holds in that study (QIDO-RS
``/studies/{uid}/instances``, paged) and compares them with the planned
ones (the output SOPInstanceUIDs): ``missing`` instances (planned, not in the PACS: rejected,
filed elsewhere, not sent yet), ``extra`` ones (in the PACS's study, not planned: another
source, an earlier import), and the study's status:

* ``ok``: the PACS holds exactly the planned instances of the study;
* ``missing_study``: the PACS has nothing of it;
* ``missing_instances`` / ``extra_instances``: some planned instances are not there, or the
  PACS holds others too; ``count_mismatch``: both;
* ``error``: the PACS did not answer for this study (the message says how); the check goes on
  with the next study.

Acceptance is no proof of content (a PACS may answer "already stored" for another object with
the same UID and keep the old one): this check proves presence and filing; ``verify`` and the
end-to-end test compare content.

**Scale.** The planned instances are sorted by study once, with DuckDB, into a temporary
Parquet file in ``<run>/reconcile/``, and read back a batch at a time: the studies of a chunk
are queried in parallel (``workers`` HTTP requests at once; 10^5 studies at 20 ms a query and 8
at once take about 4 minutes) and written as one part of ``<run>/reconcile/pacs/``, so no
process holds a whole run's UIDs. Nothing here writes to the PACS, an output or a source; it
prints nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from migrate_fs import manifest
from migrate_fs.audit.reconcile import MIGRATED, configure_duckdb, part_paths, select_parts
from migrate_fs.errors import ReconcileError, StageMissing

STATUSES = ("ok", "missing_study", "missing_instances", "extra_instances", "count_mismatch",
            "error")
FOLDER = "pacs"  # <run>/reconcile/pacs/: one part per chunk of studies
CHUNK_STUDIES = 2000
LISTED = 1000  # UIDs listed per study and side at most (the counts are always whole)
PROBLEMS_SHOWN = 20
SOP_INSTANCE_UID = "00080018"
PAGE = 1000  # instances per QIDO-RS request
STUDY = pa.schema([("study_instance_uid", pa.string()), ("expected_instances", pa.int64()),
                   ("found_instances", pa.int64()), ("missing_instances", pa.int64()),
                   ("extra_instances", pa.int64()),
                   ("missing_sop_instance_uids", pa.list_(pa.string())),
                   ("extra_sop_instance_uids", pa.list_(pa.string())),
                   ("status", pa.string()), ("error", pa.string())])
# (study UID) -> the SOPInstanceUIDs the PACS holds in it
Lookup = Callable[[str], set[str]]


@dataclass
class PacsDone:
    """What :func:`check_pacs` found: studies per status, instance totals, the output folder
    and the first problem studies (rows of the output, UID lists cut to a few)."""

    url: str
    folder: Path
    statuses: dict[str, int] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return sum(self.statuses.values()) == self.statuses.get("ok", 0)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "url": self.url, "studies": sum(self.statuses.values()),
                "statuses": self.statuses, "totals": self.totals, "output": str(self.folder),
                "problems": self.problems}


def dicomweb_lookup(url: str, page: int = PAGE, timeout: float = 60.0) -> Lookup:
    """The SOPInstanceUIDs of a study, from QIDO-RS at ``url``: ``GET
    {url}/studies/{uid}/instances?includefield=00080018`` as DICOM JSON, ``page`` instances a
    request (``limit``/``offset``) until a page comes back short. (A GET and a JSON answer: the
    standard library does it; dicomweb-client would bring pillow, which pydicom then uses as a
    second decoder, changing what the decode check reports.)"""
    root = url.rstrip("/")

    def lookup(study: str) -> set[str]:
        found: set[str] = set()
        offset = 0
        while True:
            query = urllib.parse.urlencode({"includefield": SOP_INSTANCE_UID, "limit": page,
                                            "offset": offset})
            request = urllib.request.Request(
                f"{root}/studies/{urllib.parse.quote(study, safe='')}/instances?{query}",
                headers={"Accept": "application/dicom+json"})
            try:
                with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
                    body = answer.read()
            except urllib.error.HTTPError as exc:
                if exc.code == 404:  # some servers: no such study
                    return found
                raise
            items = json.loads(body) if body.strip() else []  # 204: no match
            before = len(found)
            found.update(uid for item in items
                         for uid in item.get(SOP_INSTANCE_UID, {}).get("Value", [])[:1])
            if len(items) < page or len(found) == before:
                return found
            offset += len(items)
    return lookup


def check_pacs(manifests: str | Path, run: str, url: str, *, workers: int = 8,
               lookup: Lookup | None = None, memory_limit: str = "1GB") -> PacsDone:
    """Compare the run's migrated instances with what the PACS at ``url`` (a DICOMweb root,
    such as ``http://pacs:8042/dicom-web``) holds, study by study (see the module docstring);
    ``lookup`` replaces the QIDO-RS query (tests)."""
    names = manifest.part_names(manifest.stage_dir(manifests, run, "result"))
    if not names:
        raise StageMissing(f"run {run!r} has no result yet: run migrate-fs write first, then "
                           "import the output into the PACS, then check it")
    out = manifest.run_dir(manifests, run) / "reconcile"
    folder = out / FOLDER
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    planned = out / f".pacs-planned-{os.getpid()}.parquet"
    spill = out / f".duckdb-{os.getpid()}"
    done = PacsDone(url, folder, {s: 0 for s in STATUSES},
                    {"expected": 0, "found": 0, "missing": 0, "extra": 0})
    try:
        _planned(part_paths(manifests, run, "result", names), planned, spill, memory_limit)
        ask = lookup or dicomweb_lookup(url)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for index, chunk in enumerate(_chunks(planned)):
                found = list(pool.map(lambda study: _ask(ask, study), chunk))
                rows = [_row(study, uids, answer) for (study, uids), answer
                        in zip(chunk.items(), found, strict=True)]
                manifest.write_table(folder / f"part-{index:06d}.parquet",
                                     pa.Table.from_pylist(rows, schema=STUDY))
                _count(done, rows)
    finally:
        planned.unlink(missing_ok=True)
        shutil.rmtree(spill, ignore_errors=True)
    return done


def _planned(parts: list[str], path: Path, spill: Path, memory_limit: str) -> None:
    """The migrated instances (output study and SOP instance UIDs), sorted by study, into
    ``path``: DuckDB sorts out of core."""
    con = duckdb.connect()
    try:
        configure_duckdb(con, memory_limit, spill)
        params: dict[str, list[str]] = {}
        rows = select_parts(con, parts, ("output_study_instance_uid",
                                          "output_sop_instance_uid", "status"), "result", params)
        con.execute(f"""COPY (SELECT output_study_instance_uid AS study,
                                     output_sop_instance_uid AS sop
                              FROM ({rows}) WHERE status IN {MIGRATED}
                              ORDER BY study, sop)
                        TO '{str(path).replace("'", "''")}' (FORMAT parquet)""", params)
    except duckdb.Error as exc:
        raise ReconcileError(f"the result manifest cannot be read ({str(exc).splitlines()[0]}); "
                             "check it with migrate-fs status") from exc
    finally:
        con.close()


def _chunks(path: Path) -> Iterator[dict[str, set[str]]]:
    """Studies and their planned SOPInstanceUIDs, about CHUNK_STUDIES studies at a time (a
    study is never split between two chunks)."""
    chunk: dict[str, set[str]] = {}
    for batch in pq.ParquetFile(path).iter_batches(batch_size=65536):
        for study, sop in zip(batch.column("study").to_pylist(), batch.column("sop").to_pylist(),
                              strict=True):
            if study not in chunk and len(chunk) >= CHUNK_STUDIES:
                yield chunk
                chunk = {}
            chunk.setdefault(study, set()).add(sop)
    if chunk:
        yield chunk


def _ask(lookup: Lookup, study: str) -> set[str] | str:
    """The PACS's instances of ``study``, or why it did not say."""
    try:
        return lookup(study)
    except Exception as exc:  # noqa: BLE001 - a study's failed query is that study's row
        return f"{type(exc).__name__}: {exc}"[:500]


def _row(study: str, planned: set[str], answer: set[str] | str) -> dict[str, Any]:
    if isinstance(answer, str):
        return {"study_instance_uid": study, "expected_instances": len(planned),
                "found_instances": None, "missing_instances": None, "extra_instances": None,
                "missing_sop_instance_uids": None, "extra_sop_instance_uids": None,
                "status": "error", "error": answer}
    missing, extra = sorted(planned - answer), sorted(answer - planned)
    status = ("ok" if not missing and not extra else "missing_study" if not answer
              else "count_mismatch" if missing and extra
              else "missing_instances" if missing else "extra_instances")
    return {"study_instance_uid": study, "expected_instances": len(planned),
            "found_instances": len(answer), "missing_instances": len(missing),
            "extra_instances": len(extra), "missing_sop_instance_uids": missing[:LISTED],
            "extra_sop_instance_uids": extra[:LISTED], "status": status, "error": None}


def _count(done: PacsDone, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        done.statuses[row["status"]] += 1
        done.totals["expected"] += row["expected_instances"]
        for key in ("found", "missing", "extra"):
            done.totals[key] += row[f"{key}_instances"] or 0
        if row["status"] != "ok" and len(done.problems) < PROBLEMS_SHOWN:
            done.problems.append({**row, **{k: (row[k] or [])[:3] for k in (
                "missing_sop_instance_uids", "extra_sop_instance_uids")}})
