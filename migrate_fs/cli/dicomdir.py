"""cli.dicomdir: ``migrate-fs dicomdir``, a media file-set (a DICOMDIR and the instances, PS3.10
General Purpose media) of a run's migrated outputs, per patient or study, for another hospital
(:mod:`migrate_fs.audit.dicomdir` makes it; see there what goes on the medium and how).

Thin: it prints the summary (or one JSON object with ``--json``). It never changes the output
tree or a source. Exit codes: 0 when the medium is made (objects that cannot go on a medium
are listed, not fatal); 4 (``EXIT_AUDIT_FAILED``) when a file on the medium is not the output
byte for byte; 1 on a run-level error (no result; a medium folder that exists and is not empty;
more objects than one medium holds; none that can go on it); 2 when the filters match nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from migrate_fs.cli.common import EXIT_AUDIT_FAILED, json_parent, positive, run_parent

if TYPE_CHECKING:  # imported when the verb runs, not at start-up
    from migrate_fs.audit.dicomdir import DicomdirDone

HELP = ("make a DICOMDIR medium (CD, DVD, USB) of a run's migrated outputs, per patient or "
        "study, for another hospital")
MAX_INSTANCES = 100_000  # as audit.dicomdir's (not imported at start-up)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("dicomdir", help=HELP, parents=[run_parent(), json_parent()],
                              description=(
        f"{HELP}: a PS3.10 file-set (General Purpose media) in MEDIA_DIR, made by pydicom's "
        "FileSet: the DICOMDIR and the outputs copied byte for byte under file IDs such as "
        "PT000000/ST000000/SE000000/IM000000. Objects that cannot go on a medium are listed. "
        "Writes manifests/RUN/dicomdir/<MEDIA_DIR's name>.parquet (each object's file ID). "
        "Never changes the output tree or a source."))
    p.add_argument("--out", type=Path, required=True, metavar="MEDIA_DIR", dest="media",
                   help="the medium's root folder: new, or empty")
    p.add_argument("--study", action="append", default=[], metavar="UID",
                   help="only this study (its output StudyInstanceUID); repeat for several")
    p.add_argument("--patient", action="append", default=[], metavar="ID",
                   help="only this patient (the output PatientID); repeat for several; with "
                        "--study, an object must match both")
    p.add_argument("--from", type=Path, dest="source", metavar="DIR",
                   help="the output root (default: the one the write recorded in run.json)")
    p.add_argument("--max-instances", type=positive, default=MAX_INSTANCES, metavar="N",
                   help="refuse a selection of more than N objects (default: "
                        f"{MAX_INSTANCES}; the DICOMDIR is built in memory, about 17 KB each)")


def handle(args: argparse.Namespace) -> int:
    from migrate_fs.audit.dicomdir import make_dicomdir

    done = make_dicomdir(args.manifests, args.run, args.media, studies=args.study,
                         patients=args.patient, source=args.source,
                         max_instances=args.max_instances)
    if args.json:
        print(json.dumps(done.as_dict(), sort_keys=True))
    else:
        report(done)
    if not done.passed:
        print(f"migrate-fs: {done.sha256_mismatch} files on the medium differ from their "
              f"outputs (the result's output_sha256): see {done.table}; run migrate-fs verify",
              file=sys.stderr)
        return EXIT_AUDIT_FAILED
    return 0


def report(done: DicomdirDone) -> None:
    from migrate_fs.summary import aligned, bytes_text

    print(f"dicomdir: {done.on_medium} of {done.selected} selected objects on the medium "
          f"({done.levels.get('PATIENT', 0)} patients, {done.levels.get('STUDY', 0)} studies, "
          f"{done.levels.get('SERIES', 0)} series; {bytes_text(done.bytes)}) in "
          f"{done.seconds:.1f} s")
    if done.record_types:
        print(aligned([["records", "type"]] + [[str(n), kind] for kind, n in
                                               done.record_types.items()]))
    if done.not_on_medium:
        print(aligned([["objects", "not on the medium because"]] + [
            [str(n), reason] for reason, n in done.not_on_medium.items()]))
        for item in done.listed:
            print(f"  {item['reason']}: {item['output_path']}: {item['message']}")
        more = sum(done.not_on_medium.values()) - len(done.listed)
        if more > 0:
            print(f"  ... and {more} more (see the table)")
    if done.fallbacks:
        print("fallback values in directory records (the files are unchanged): " + ", ".join(
            f"{keyword} {n}" for keyword, n in done.fallbacks.items()))
    print("files on the medium: " + ("identical to the outputs (SHA-256)" if done.passed else
                                     f"{done.sha256_mismatch} differ from their outputs"))
    print(f"DICOMDIR: {done.media / 'DICOMDIR'}")
    print(f"table: {done.table}")
