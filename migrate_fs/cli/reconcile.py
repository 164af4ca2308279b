"""cli.reconcile: ``migrate-fs reconcile``, a run's studies against the legacy database's counts
(``--expected``) and against the new PACS (``--dicomweb``), or both.

Exit code 0 when every study is ok, 4 (``EXIT_AUDIT_FAILED``) when any is not; 1 for an
unusable file. The work is :func:`migrate_fs.audit.reconcile.reconcile` and
:func:`migrate_fs.audit.pacs.check_pacs`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from migrate_fs.cli import common

if TYPE_CHECKING:
    from migrate_fs.audit.pacs import PacsDone
    from migrate_fs.audit.reconcile import ReconcileDone

HELP = ("compare a run, study by study, with the legacy database's export (instances expected, "
        "found in the source, migrated and quarantined) and with the new PACS over DICOMweb "
        "(instances missing or extra)")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("reconcile", help=HELP, description=HELP, parents=[
        common.run_parent(), common.json_parent()])
    p.add_argument("--expected", type=Path, metavar="FILE",
                   help="the legacy database's studies (CSV or Parquet): StudyInstanceUID "
                        "and/or AccessionNumber, NumberOfStudyRelatedInstances; optionally "
                        "PatientID, NumberOfStudyRelatedSeries, ModalitiesInStudy")
    p.add_argument("--dicomweb", metavar="URL",
                   help="the new PACS's DICOMweb root (such as http://pacs:8042/dicom-web): "
                        "list each written study's instances there (QIDO-RS) and report "
                        "the missing and extra ones")
    p.add_argument("--requests", type=common.positive, default=8, metavar="N",
                   help="DICOMweb queries at once (default 8)")
    p.add_argument("--memory-limit", default="1GB", metavar="SIZE",
                   help="DuckDB's memory limit (default 1GB); beyond it, it spills to "
                        "MANIFESTS/RUN/reconcile/")


def handle(args: argparse.Namespace) -> int:
    if args.expected is None and args.dicomweb is None:
        from migrate_fs.errors import UsageError

        raise UsageError("give --expected FILE (the legacy database's studies), --dicomweb URL "
                         "(the new PACS), or both")
    ok = True
    if args.expected is not None:
        from migrate_fs.audit.reconcile import reconcile

        done = reconcile(args.manifests, args.run, args.expected,
                         memory_limit=args.memory_limit)
        ok = done.ok
        if args.json:
            print(json.dumps(done.as_dict(), sort_keys=True))
        else:
            report(done, args.run)
    if args.dicomweb is not None:
        from migrate_fs.audit.pacs import check_pacs

        pacs = check_pacs(args.manifests, args.run, args.dicomweb, workers=args.requests,
                          memory_limit=args.memory_limit)
        ok = ok and pacs.ok
        if args.json:
            print(json.dumps({"step": "reconcile-dicomweb", **pacs.as_dict()}, sort_keys=True))
        else:
            report_pacs(pacs, args.run)
    return 0 if ok else common.EXIT_AUDIT_FAILED


def report_pacs(done: PacsDone, run: str) -> None:
    from migrate_fs.summary import aligned

    t = done.totals
    print(f"reconcile: run {run} against the PACS at {done.url}: "
          f"{sum(done.statuses.values())} studies written, "
          f"{sum(done.statuses.values()) - done.statuses['ok']} not as planned")
    print(aligned([["studies", "status"], *([str(n), s] for s, n in done.statuses.items())]))
    print(f"instances: {t['expected']} written, {t['found']} in the PACS's studies, "
          f"{t['missing']} missing, {t['extra']} extra")
    if done.problems:
        print(f"not as planned (the first {len(done.problems)}):")
        rows = [[p["status"], _cell(p["expected_instances"]), _cell(p["found_instances"]),
                 p["study_instance_uid"], ", ".join(p["missing_sop_instance_uids"])
                 or (p["error"] or "-")] for p in done.problems]
        print(aligned([["status", "written", "in PACS", "study_instance_uid",
                        "missing (first 3) or error"], *rows]))
    print(f"output: {done.folder}")


def report(done: ReconcileDone, run: str) -> None:
    from migrate_fs.summary import aligned

    t = done.totals
    bad = done.studies - done.statuses["ok"]
    print(f"reconcile: run {run} against {done.expected_file}: {done.studies} studies, "
          f"{bad} not ok")
    print(aligned([["studies", "status"],
                    *([str(n), status] for status, n in done.statuses.items())]))
    print(f"instances: {t['expected_instances']} expected, {t['found_instances']} found, "
          f"{t['migrated_instances']} migrated (from the {done.migrated_from}), "
          f"{t['quarantined_instances']} quarantined, {t['skipped_instances']} skipped as "
          "duplicates")
    if t["objects_without_study"]:
        print(f"{t['objects_without_study']} source objects have no StudyInstanceUID and match "
              "no row: they are in no study")
    notes = [f"{t[key]} studies have other {what} than the file"
             for key, what in (("modalities_differ", "modalities"),
                               ("patient_differs", "PatientIDs")) if t[key]]
    if notes:
        print("; ".join(notes) + " (reported, not a status)")
    if done.problems:
        print(f"not ok (the first {len(done.problems)} of {bad}, by status and file row):")
        columns = ["expected_row", "status", "expected_instances", "found_instances",
                   "migrated_instances", "quarantined_instances", "study_instance_uid",
                   "accession_number"]
        header = ["row", "status", "expected", "found", "migrated", "quarantined",
                  "study_instance_uid", "accession"]
        print(aligned([header, *([_cell(p[c]) for c in columns] for p in done.problems)]))
    print(f"output: {done.output}")


def _cell(value: object) -> str:
    return "-" if value is None else str(value)
