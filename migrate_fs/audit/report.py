"""audit.report: ``migrate-fs report``, one self-contained HTML file that sums up a run for a
migration lead to forward: the run's name, sources and dates; objects and bytes by action and
reason, by modality and by study year; the problems by code and severity with example objects;
the verification and reconciliation results when those steps have run; the throughput of each
step over time. :func:`collect` counts (a :class:`Report`, also what ``--json`` prints),
:func:`render_html` draws it: inline CSS and inline SVG charts drawn here, no script, no font,
no image, no link to anything outside the file, and a Content-Security-Policy that forbids
loading any, so that it opens from a mail attachment without a server or network. Every text
that comes from the manifests (locators, messages, values read from hostile files) goes
through :func:`_text` (``html.escape``, control characters and lone surrogates made visible).

How it reads: the result stage (the plan when nothing has been written yet: a test
migration's report) one part at a time with :func:`migrate_fs.manifest.iter_stage`, only the
columns it counts (never ``elements`` or ``changes``), aggregating each part with pyarrow into
small counters: the :class:`migrate_fs.summary.Tally` the steps print their summaries from (so
the report's totals are the summary's), groups by modality and study year (distinct labels
capped at :data:`MAX_LABELS`, so that an export full of invented Modality values cannot grow
them), and objects per problem code and severity with the first :data:`EXAMPLES` objects of
each, in part order. Not DuckDB: ``iter_stage`` reads every part with the current schema
(older parts get nulls in newer columns, such as ``severity`` before schema 5, where a query
over ``read_parquet(..., union_by_name=true)`` fails on a column no part has yet), memory is
bounded by one part without tuning a ``memory_limit``, and 'the first three examples of each
code' needs no window over the whole run. The verification and reconciliation tables, written
by other steps, are read with ``pyarrow.parquet`` batch by batch, with the columns they have.
Throughput comes from the part files' modification times and row counts (their Parquet
metadata) and from ``run.json``'s per-step figures.

It never writes anything but the report file (:func:`write_html`), never reads a source or an
output, and prints nothing.
"""

from __future__ import annotations

import html
import math
import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from migrate_fs import __version__, manifest
from migrate_fs.summary import SUMS, TALLY_KEYS, Tally, bytes_text

EXAMPLES = 3  # example objects per problem code and severity
MAX_LABELS = 1000  # distinct modalities (years) counted; further ones count as OTHER
OTHER, NONE, NOT_A_DATE = "(other)", "(none)", "(not a date)"
# a plausible year anywhere in a StudyDate as stored ('20010102', '1/2/2001', '2001.01.02')
YEAR = r"(?P<year>18[5-9]\d|19\d\d|20\d\d)"
STAGE_COLUMNS = ["locator", "kind", "action", "reason", "size", "modality", "study_date",
                 "problems"]
RESULT_COLUMNS = ["status", "output_size"]
# what happened to an object: its action, or 'failed' for a write that failed
OUTCOMES = ("migrate", "failed", "quarantine", "skip_duplicate", "skip")
SEVERITIES = ("blocking", "warning", "fixed", "info")
STEPS = (("inventory", "inventory"), ("plan", "plan"), ("result", "write"))
VERIFY_HINT = "not run yet: migrate-fs verify --run {run}"
RECONCILE_HINT = "not run yet: migrate-fs reconcile --run {run}"
STUDY_STATUSES = ("ok", "missing", "orphan", "count_mismatch", "incomplete")
INSTANCE_COLUMNS = ("expected_instances", "found_instances", "migrated_instances",
                    "quarantined_instances")
STUDY_IDS = ("study_instance_uid", "patient_id", "accession_number")
MAX_POINTS = 400  # points of a throughput chart


# --- the numbers -----------------------------------------------------------------------------

@dataclass
class Amount:
    """Objects and their bytes: in the source (``size``) and in output files."""

    objects: int = 0
    size: int = 0
    output_size: int = 0

    def add(self, objects: int, size: int | None, output_size: int | None) -> None:
        self.objects += objects
        self.size += size or 0
        self.output_size += output_size or 0


@dataclass
class ActionRow:
    action: str | None
    reason: str | None
    amount: Amount


@dataclass
class Breakdown:
    """One bar: a modality or a study year, its objects and bytes, objects per outcome."""

    label: str
    amount: Amount
    outcomes: dict[str, int]


@dataclass
class Example:
    locator: str
    message: str


@dataclass
class Problem:
    """Objects with one problem code at one severity (an object counted once per pair)."""

    code: str
    severity: str | None
    objects: int = 0
    examples: list[Example] = field(default_factory=list)


@dataclass
class StepTiming:
    """When a stage's parts were written and how fast; ``points`` are (seconds since the step
    started, objects done), one per part (thinned to MAX_POINTS)."""

    stage: str
    parts: int
    objects: int
    first_written: float
    last_written: float
    started: float
    recorded_objects: int | None  # run.json: the step's own figures (its last run)
    recorded_seconds: float | None
    per_minute: float | None  # objects per minute: run.json's figures, else the parts'
    points: list[tuple[float, int]]


@dataclass
class Strays:
    """Files in the output tree that no result row accounts for (``verify_strays.parquet``)."""

    files: int = 0
    size: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    examples: list[Example] = field(default_factory=list)


@dataclass
class Verification:
    objects: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    strays: Strays | None = None


@dataclass
class Reconciliation:
    studies: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    instances: dict[str, int] = field(default_factory=dict)  # INSTANCE_COLUMNS summed
    examples: list[dict[str, Any]] = field(default_factory=list)  # studies not ok


@dataclass
class Report:
    run: str
    folder: str
    stage: str  # what the numbers are counted from: 'result', or 'plan' before any write
    generated: float
    sources: list[str]
    out: str | None
    total: Amount
    planned: int | None  # objects in the plan (the result holds fewer while a write runs)
    outcomes: dict[str, int]
    by_action: list[ActionRow]
    by_modality: list[Breakdown]
    by_year: list[Breakdown]
    problems: list[Problem]
    timings: list[StepTiming]
    shards: dict[str, dict[str, Any]]
    verification: Verification | None
    reconciliation: Reconciliation | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def collect(manifests: str | Path, run: str) -> Report:
    """Count the report's numbers from the run's manifests (see the module docstring);
    :class:`migrate_fs.errors.StageMissing` when the run has no plan yet."""
    folder = manifest.run_dir(manifests, run)
    stage = "result" if manifest.part_names(folder / "result") else "plan"
    columns = STAGE_COLUMNS + (RESULT_COLUMNS if stage == "result" else [])
    counts = _Counts()
    for _, part in manifest.iter_stage(manifests, run, stage, columns):
        counts.add(part)
    info = manifest.read_run_info(manifests, run)
    planned = manifest.stage_rows(manifests, run, "plan") if stage == "result" \
        and manifest.part_names(folder / "plan") else None
    return Report(
        run=run, folder=str(folder.resolve()), stage=stage, generated=time.time(),
        sources=[str(s) for s in info.get("sources", [])], out=info.get("out"),
        total=Amount(counts.tally.objects, counts.tally.total("size"),
                     counts.tally.total("output_size")),
        planned=planned, outcomes=counts.outcomes(), by_action=counts.by_action(),
        by_modality=_breakdowns(counts.modality, by_label=False),
        by_year=_breakdowns(counts.year, by_label=True),
        problems=counts.problems.sorted(), timings=_timings(manifests, run, info),
        shards={step: info[f"{step}_shards"] for step in ("inventory", "plan", "write")
                if info.get(f"{step}_shards")},
        verification=_verification(folder), reconciliation=_reconciliation(folder))


def _outcome(action: str | None, status: str | None) -> str:
    return "failed" if status == "failed" else action or NONE


class _Counts:
    """The counters one stage is read into, part by part."""

    def __init__(self) -> None:
        self.tally = Tally()
        self.modality: dict[str, dict[str, Amount]] = {}
        self.year: dict[str, dict[str, Amount]] = {}
        self.problems = _Problems()

    def add(self, part: pa.Table) -> None:
        self.tally.add(part.select([c for c in (*TALLY_KEYS, *SUMS) if c in part.column_names]))
        if not part.num_rows:
            return
        failed = pc.fill_null(pc.equal(part.column("status"), "failed"), False) \
            if "status" in part.column_names else pa.repeat(False, part.num_rows)
        outcome = pc.if_else(failed, "failed", pc.fill_null(part.column("action"), NONE))
        output_size = part.column("output_size") if "output_size" in part.column_names \
            else pa.nulls(part.num_rows, pa.int64())
        study_date = part.column("study_date")
        year = pc.if_else(pc.is_null(study_date), NONE, pc.fill_null(
            pc.struct_field(pc.extract_regex(study_date, YEAR), "year"), NOT_A_DATE))
        for into, labels in ((self.modality, pc.fill_null(part.column("modality"), NONE)),
                             (self.year, year)):
            grouped = pa.table({"label": labels, "outcome": outcome, "size": part["size"],
                                "output_size": output_size}).group_by(["label", "outcome"])
            for row in grouped.aggregate([([], "count_all"), ("size", "sum"),
                                          ("output_size", "sum")]).to_pylist():
                label = row["label"] if row["label"] in into or len(into) < MAX_LABELS \
                    else OTHER
                into.setdefault(label, {}).setdefault(row["outcome"], Amount()).add(
                    row["count_all"], row["size_sum"], row["output_size_sum"])
        self.problems.add(part.column("problems"), part.column("locator"))

    def outcomes(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for key, counts in self.tally.groups.items():
            values = dict(zip(self.tally.keys, key, strict=True))
            name = _outcome(values.get("action"), values.get("status"))
            found[name] = found.get(name, 0) + counts[0]
        return dict(sorted(found.items(), key=lambda kv: _rank(kv[0], OUTCOMES)))

    def by_action(self) -> list[ActionRow]:
        rows: dict[tuple[str | None, str | None], Amount] = {}
        sums = self.tally.sums
        for key, counts in self.tally.groups.items():
            values = dict(zip(self.tally.keys, key, strict=True))
            amount = rows.setdefault((values.get("action"), values.get("reason")), Amount())
            amount.add(counts[0], counts[1 + sums.index("size")] if "size" in sums else 0,
                       counts[1 + sums.index("output_size")] if "output_size" in sums else 0)
        return [ActionRow(action, reason, amount) for (action, reason), amount in sorted(
            rows.items(), key=lambda kv: (_rank(kv[0][0], OUTCOMES), -kv[1].objects,
                                          kv[0][1] or ""))]


def _rank(value: str | None, order: tuple[str, ...]) -> int:
    return order.index(value) if value in order else len(order)


def _breakdowns(groups: dict[str, dict[str, Amount]], *, by_label: bool) -> list[Breakdown]:
    found = []
    for label, outcomes in groups.items():
        total = Amount()
        for amount in outcomes.values():
            total.add(amount.objects, amount.size, amount.output_size)
        found.append(Breakdown(label, total, {o: a.objects for o, a in sorted(
            outcomes.items(), key=lambda kv: _rank(kv[0], OUTCOMES))}))
    if by_label:  # years in order, then the rows without one
        return sorted(found, key=lambda b: (b.label.startswith("("), b.label))
    return sorted(found, key=lambda b: (b.label.startswith("("), -b.amount.objects, b.label))


class _Problems:
    """Objects per (code, severity), and the first EXAMPLES objects of each, part by part."""

    def __init__(self) -> None:
        self.found: dict[tuple[str, str | None], Problem] = {}

    def add(self, problems: pa.ChunkedArray | pa.Array, locators: pa.ChunkedArray | pa.Array
            ) -> None:
        if isinstance(problems, pa.ChunkedArray):
            problems = problems.combine_chunks()
        flat = problems.flatten()
        if not len(flat):
            return
        if pa.types.is_struct(flat.type):  # code, message[, severity]
            names = {flat.type.field(i).name for i in range(flat.type.num_fields)}
            code = pc.struct_field(flat, "code")
            message = pc.struct_field(flat, "message") if "message" in names \
                else pa.nulls(len(flat), pa.string())
            severity = pc.struct_field(flat, "severity") if "severity" in names \
                else pa.nulls(len(flat), pa.string())
        else:  # a list of codes
            code, message = flat.cast(pa.string()), pa.nulls(len(flat), pa.string())
            severity = pa.nulls(len(flat), pa.string())
        entries = pa.table({"row": pc.list_parent_indices(problems), "code": code,
                            "severity": severity, "message": message})
        distinct = entries.group_by(["row", "code", "severity"]).aggregate([])
        for row in distinct.group_by(["code", "severity"]).aggregate(
                [([], "count_all")]).to_pylist():
            key = (row["code"] or NONE, row["severity"])
            self.found.setdefault(key, Problem(*key)).objects += row["count_all"]
        wanting = {key for key, p in self.found.items() if len(p.examples) < EXAMPLES}
        if wanting:
            self._examples(entries, locators, wanting)

    def _examples(self, entries: pa.Table, locators: pa.ChunkedArray | pa.Array,
                  wanting: set[tuple[str, str | None]]) -> None:
        """The first objects of each wanting pair, reading only the entries of its codes and
        stopping as soon as every pair has its examples."""
        chosen = entries.filter(pc.is_in(entries.column("code"),
                                         value_set=pa.array(sorted({c for c, _ in wanting}))))
        for batch in chosen.to_batches(max_chunksize=256):
            for entry in batch.to_pylist():
                key = (entry["code"] or NONE, entry["severity"])
                if key not in wanting:
                    continue
                problem = self.found[key]
                locator = str(locators[entry["row"]].as_py())
                if all(e.locator != locator for e in problem.examples):
                    problem.examples.append(Example(locator, entry["message"] or ""))
                if len(problem.examples) >= EXAMPLES:
                    wanting.discard(key)
                    if not wanting:
                        return

    def sorted(self) -> list[Problem]:
        """Worst severity first, then most objects."""
        return sorted(self.found.values(), key=lambda p: (
            _rank(p.severity, SEVERITIES), -p.objects, p.code))


def _timings(manifests: str | Path, run: str, info: dict[str, Any]) -> list[StepTiming]:
    """Per stage: its parts' modification times and row counts (Parquet metadata only)."""
    found = []
    for stage, step in STEPS:
        folder = manifest.stage_dir(manifests, run, stage)
        parts = sorted((os.stat(folder / f"{name}.parquet").st_mtime,
                        manifest.part_rows(folder, name))
                       for name in manifest.part_names(folder))
        if not parts:
            continue
        first, last = parts[0][0], parts[-1][0]
        objects = sum(rows for _, rows in parts)
        recorded = info.get(step)
        recorded = recorded if isinstance(recorded, dict) else {}
        seconds, done = recorded.get("seconds"), recorded.get("objects")
        # the step began before its first part was written: by its own seconds, if recorded
        started = min(first, last - seconds) if seconds else first
        if seconds and done:
            per_minute: float | None = done / seconds * 60
        elif len(parts) > 1 and last > first:  # the first part's work is unseen
            per_minute = (objects - parts[0][1]) / (last - first) * 60
        else:
            per_minute = None
        points, cumulative = [(0.0, 0)], 0
        for written, rows in parts:
            cumulative += rows
            points.append((written - started, cumulative))
        found.append(StepTiming(stage, len(parts), objects, first, last, started, done,
                                seconds, per_minute, _thin(points)))
    return found


def _thin(points: list[tuple[float, int]]) -> list[tuple[float, int]]:
    if len(points) <= MAX_POINTS:
        return points
    step = math.ceil(len(points) / MAX_POINTS)
    return points[::step] + ([points[-1]] if (len(points) - 1) % step else [])


def _batches(path: Path, wanted: Iterable[str]) -> Iterator[pa.RecordBatch]:
    """A side table written by another step, batch by batch, with those of ``wanted``'s
    columns it has (a table of an older or newer release may lack some)."""
    table = pq.ParquetFile(path)
    names = set(table.schema_arrow.names)
    yield from table.iter_batches(batch_size=65536, columns=[c for c in wanted if c in names])


def _value_counts(column: pa.Array, into: dict[str, int]) -> None:
    for entry in pc.value_counts(pc.fill_null(column.cast(pa.string()), NONE)).to_pylist():
        into[entry["values"]] = into.get(entry["values"], 0) + entry["counts"]


def _verification(folder: Path) -> Verification | None:
    """``verify/*.parquet`` (verify_status, problems: the failed checks) and
    ``verify_strays.parquet`` (path, size, kind); None when verify has not run."""
    names = sorted(manifest.part_names(folder / "verify"))
    strays_path = folder / "verify_strays.parquet"
    if not names and not strays_path.exists():
        return None
    found, problems = Verification(), _Problems()
    for name in names:
        for batch in _batches(folder / "verify" / f"{name}.parquet",
                              ["verify_status", "problems", "locator", "output_path",
                               "object_id"]):
            found.objects += batch.num_rows
            if "verify_status" in batch.schema.names:
                _value_counts(batch.column("verify_status"), found.by_status)
            where = next((c for c in ("locator", "output_path", "object_id")
                          if c in batch.schema.names), None)
            if "problems" in batch.schema.names and where:
                problems.add(batch.column("problems"), batch.column(where))
    found.by_status = dict(sorted(found.by_status.items(),
                                  key=lambda kv: (_rank(kv[0], ("ok", "failed")), kv[0])))
    found.problems = problems.sorted()
    if strays_path.exists():
        strays = found.strays = Strays()
        for batch in _batches(strays_path, ["path", "size", "kind"]):
            strays.files += batch.num_rows
            if "size" in batch.schema.names:
                strays.size += pc.sum(batch.column("size")).as_py() or 0
            if "kind" in batch.schema.names:
                _value_counts(batch.column("kind"), strays.by_kind)
            for row in batch.slice(0, EXAMPLES - len(strays.examples)).to_pylist():
                strays.examples.append(Example(str(row.get("path")), ", ".join(
                    f"{k}: {row[k]}" for k in ("kind", "size") if row.get(k) is not None)))
    return found


def _reconciliation(folder: Path) -> Reconciliation | None:
    """``reconcile/studies.parquet``: one row per study with its status and instance
    counts; None when reconcile has not run."""
    path = folder / "reconcile" / "studies.parquet"
    if not path.exists():
        return None
    found = Reconciliation()
    shown: dict[str, int] = {}
    for batch in _batches(path, ["status", *INSTANCE_COLUMNS, *STUDY_IDS]):
        found.studies += batch.num_rows
        if "status" not in batch.schema.names:
            continue
        _value_counts(batch.column("status"), found.by_status)
        for column in INSTANCE_COLUMNS:
            if column in batch.schema.names:
                found.instances[column] = found.instances.get(column, 0) + (
                    pc.sum(batch.column(column)).as_py() or 0)
        for status in found.by_status:
            wanted = 0 if status == "ok" else EXAMPLES - shown.get(status, 0)
            if wanted > 0:
                rows = batch.filter(pc.equal(batch.column("status"), status)).slice(0, wanted)
                shown[status] = shown.get(status, 0) + rows.num_rows
                found.examples += rows.to_pylist()
    found.by_status = dict(sorted(found.by_status.items(),
                                  key=lambda kv: (_rank(kv[0], STUDY_STATUSES), kv[0])))
    found.examples.sort(key=lambda row: _rank(row["status"], STUDY_STATUSES))
    return found


# --- the HTML --------------------------------------------------------------------------------

def default_path(manifests: str | Path, run: str) -> Path:
    """Where the report goes without --html: beside the run's manifests."""
    return manifest.run_dir(manifests, run) / "report" / "report.html"


def write_html(path: Path, text: str) -> None:
    """Write the report atomically (a temporary name in the same folder, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _text(value: object, limit: int = 400) -> str:
    """Any text for HTML: escaped, with control characters and lone surrogates shown as
    escapes (they come from hostile files), cut at ``limit`` characters."""
    text = "" if value is None else str(value)
    if len(text) > limit:
        text = text[:limit] + "\u2026"
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return html.escape(text, quote=True)


def _n(value: int) -> str:
    return f"{value:,}"


def _when(stamp: float | None) -> str:
    return "-" if stamp is None else time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(stamp))


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


STYLE = """
:root{--ink:#1f2933;--muted:#5f6c7b;--line:#e3e8ee;--migrate:#2e7d32;--failed:#6a1b9a;
--quarantine:#c62828;--skip_duplicate:#90a4ae;--skip:#cfd8dc;--blocking:#c62828;
--warning:#ef8f00;--fixed:#1565c0;--info:#90a4ae;--accent:#1f5fa8}
*{box-sizing:border-box}
body{margin:0;background:#f3f5f8;color:var(--ink);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1160px;margin:0 auto;padding:24px 28px 40px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:0 0 10px}
h3{font-size:14px;margin:14px 0 6px;color:var(--muted);text-transform:uppercase;
letter-spacing:.04em}
header{background:#fff;border:1px solid var(--line);border-top:4px solid var(--accent);
border-radius:8px;padding:18px 22px}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px 22px;
margin:16px 0;break-inside:avoid}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:10px 0 0}
dl.meta dt{color:var(--muted)}dl.meta dd{margin:0}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(135px,1fr));gap:12px;
margin:16px 0}
.card{background:#fff;border:1px solid var(--line);border-left:5px solid var(--c,#607d8b);
border-radius:8px;padding:10px 14px}
.card .label{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .value{font-size:24px;font-weight:600;font-variant-numeric:tabular-nums}
.card .sub{color:var(--muted);font-size:12px}
table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{font-size:12px;color:var(--muted);font-weight:600;background:#f8fafc}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.total td{font-weight:600;border-top:2px solid #c5ced8}
.loc{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;
word-break:break-all}
.msg{color:var(--muted);font-size:12px}
ul.examples{margin:0;padding-left:16px}
.badge{display:inline-block;padding:0 8px;border-radius:9px;color:#fff;font-size:12px;
background:var(--b,#607d8b)}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:20px}
.grid3{display:grid;grid-template-columns:repeat(3,1fr);gap:16px}
.note{color:var(--muted)}.banner{background:#fff4e5;border:1px solid #ffcc80;border-radius:8px;
padding:10px 16px;margin:16px 0}
.legend{display:flex;flex-wrap:wrap;gap:14px;font-size:12px;color:var(--muted);margin:4px 0}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px;
background:var(--c)}
svg{display:block;max-width:100%;height:auto}
svg text{font:11px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;fill:var(--ink)}
svg .axis{stroke:#9aa5b1;stroke-width:1}svg .gridline{stroke:#edf0f3;stroke-width:1}
svg .dim{fill:var(--muted)}svg .line{fill:none;stroke:var(--accent);stroke-width:2}
footer{color:var(--muted);font-size:12px;text-align:center;margin-top:20px}
@media print{body{background:#fff}section,header{border-color:#ccc}}
"""
FILLS = {**{o: f"var(--{o})" for o in OUTCOMES}, **{s: f"var(--{s})" for s in SEVERITIES}}
LABELS = {"migrate": "migrated", "failed": "failed", "quarantine": "quarantined",
          "skip_duplicate": "duplicate", "skip": "skipped"}


def render_html(report: Report) -> str:
    """The report as one HTML document (a string): nothing outside it is loaded."""
    body = [_header(report), _banner(report), _cards(report), _totals(report),
            _breakdown_section(report), _problems(report), _verification_section(report),
            _reconciliation_section(report), _throughput(report)]
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        'style-src \'unsafe-inline\'; img-src data:">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>migrate-fs report: {_text(report.run)}</title>",
        f"<style>{STYLE}</style></head><body><main>",
        *[part for part in body if part],
        f"<footer>migrate-fs {_text(__version__)} &middot; generated {_when(report.generated)}"
        f" from {_text(report.folder)}</footer>",
        "</main></body></html>", ""])


def _header(report: Report) -> str:
    timings = report.timings
    started = min((t.started for t in timings), default=None)
    finished = max((t.last_written for t in timings), default=None)
    sources = "<br>".join(f'<span class="loc">{_text(s)}</span>' for s in report.sources)
    rows = [("run", f'<b id="run-name">{_text(report.run)}</b>'),
            ("sources", sources or "-"),
            ("output", f'<span class="loc">{_text(report.out)}</span>' if report.out else "-"),
            ("manifests", f'<span class="loc">{_text(report.folder)}</span>'),
            ("counted from", f"the {report.stage} manifest"),
            ("dates", f"{_when(started)} &ndash; {_when(finished)}"
             if started is not None else "-"),
            ("report made", _when(report.generated))]
    return ('<header><h1>Migration report: ' + _text(report.run) + "</h1>"
            '<dl class="meta">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
            + "</dl></header>")


def _banner(report: Report) -> str:
    if report.stage == "plan":
        return ('<div class="banner" id="plan-only">No object has been written yet: these are '
                "the plan's numbers (a test migration). Write with <code>migrate-fs write "
                f"--run {_text(report.run)} --out OUT</code>.</div>")
    if report.planned is not None and report.total.objects < report.planned:
        return ('<div class="banner" id="write-unfinished">The write has not finished: '
                f"{_n(report.total.objects)} of {_n(report.planned)} planned objects have a "
                "result; the numbers below count those.</div>")
    return ""


def _card(key: str, label: str, value: int, text: str, color: str, sub: str = "") -> str:
    return (f'<div class="card" style="--c:{color}"><div class="label">{label}</div>'
            f'<div class="value" id="total-{key}" data-value="{value}">{text}</div>'
            f'<div class="sub">{sub}</div></div>')


def _cards(report: Report) -> str:
    o, total = report.outcomes, report.total
    migrated = "migrated" if report.stage == "result" else "to migrate"
    cards = [
        _card("objects", "source objects", total.objects, _n(total.objects), "var(--accent)",
              "files in the export"),
        _card("size", "source bytes", total.size, bytes_text(total.size), "var(--accent)",
              f"{_n(total.size)} bytes"),
        _card("migrate", migrated, o.get("migrate", 0), _n(o.get("migrate", 0)),
              "var(--migrate)", _share(o.get("migrate", 0), total.objects)),
        _card("quarantine", "quarantined", o.get("quarantine", 0),
              _n(o.get("quarantine", 0)), "var(--quarantine)",
              _share(o.get("quarantine", 0), total.objects)),
        _card("skip", "skipped", o.get("skip", 0) + o.get("skip_duplicate", 0),
              _n(o.get("skip", 0) + o.get("skip_duplicate", 0)), "var(--skip_duplicate)",
              f"{_n(o.get('skip_duplicate', 0))} duplicates"),
    ]
    if report.stage == "result":
        cards.append(_card("failed", "failed writes", o.get("failed", 0),
                           _n(o.get("failed", 0)), "var(--failed)", "retried by a re-run"))
        cards.append(_card("output-size", "output bytes", total.output_size,
                           bytes_text(total.output_size), "var(--migrate)",
                           f"{_n(total.output_size)} bytes"))
    return '<div class="cards">' + "".join(cards) + "</div>"


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}% of all" if whole else ""


def _legend(names: Iterable[str], labels: dict[str, str] | None = None) -> str:
    return '<div class="legend">' + "".join(
        f'<span><i style="--c:{FILLS.get(n, "#607d8b")}"></i>{_text((labels or {}).get(n, n))}'
        "</span>" for n in names) + "</div>"


def _totals(report: Report) -> str:
    out = report.stage == "result"
    head = ("<tr><th>action</th><th>reason</th><th class=n>objects</th>"
            "<th class=n>source bytes</th>" + ("<th class=n>output bytes</th>" if out else "")
            + "</tr>")
    rows = []
    for row in report.by_action:
        a = row.amount
        rows.append(
            f'<tr data-action="{_text(row.action or "")}" data-reason="{_text(row.reason or "")}"'
            f' data-objects="{a.objects}" data-size="{a.size}" data-output-size="'
            f'{a.output_size}"><td><span class="badge" style="--b:'
            f'{FILLS.get(row.action or "", "#607d8b")}">{_text(row.action or "-")}</span></td>'
            f"<td>{_text(row.reason or '-')}</td><td class=n>{_n(a.objects)}</td>"
            f'<td class=n title="{_n(a.size)} bytes">{bytes_text(a.size)}</td>'
            + (f'<td class=n title="{_n(a.output_size)} bytes">{bytes_text(a.output_size)}</td>'
               if out else "") + "</tr>")
    t = report.total
    rows.append(
        f'<tr class="total" data-total><td>total</td><td></td>'
        f'<td class=n id="sum-objects" data-value="{t.objects}">{_n(t.objects)}</td>'
        f'<td class=n id="sum-size" data-value="{t.size}">{bytes_text(t.size)}</td>'
        + (f'<td class=n id="sum-output-size" data-value="{t.output_size}">'
           f"{bytes_text(t.output_size)}</td>" if out else "") + "</tr>")
    chart = bar_chart([(LABELS.get(name, name), [(name, n)], _n(n))
                       for name, n in report.outcomes.items()], label_width=110)
    return ('<section id="totals"><h2>Objects by action and reason</h2><div class="grid2">'
            f"<div><table>{head}{''.join(rows)}</table></div>"
            f"<div><h3>Outcome</h3>{chart}</div></div></section>")


def _breakdown_chart(rows: list[Breakdown], top: int = 24) -> str:
    shown = rows[:top]
    rest = rows[top:]
    if rest:
        merged = Breakdown(f"{len(rest)} more", Amount(), {})
        for b in rest:
            merged.amount.add(b.amount.objects, b.amount.size, b.amount.output_size)
            for k, v in b.outcomes.items():
                merged.outcomes[k] = merged.outcomes.get(k, 0) + v
        shown.append(merged)
    return bar_chart([(b.label, list(b.outcomes.items()),
                       f"{_n(b.amount.objects)} \u00b7 {bytes_text(b.amount.size)}")
                      for b in shown], label_width=110)


def _breakdown_section(report: Report) -> str:
    used = [o for o in OUTCOMES if any(o in b.outcomes for b in report.by_modality)]
    return ('<section id="breakdown"><h2>By modality and by study year</h2>'
            + _legend(used, LABELS)
            + '<div class="grid2"><div><h3>Modality</h3>' + _breakdown_chart(report.by_modality)
            + "</div><div><h3>Study year (StudyDate as stored)</h3>"
            + _breakdown_chart(report.by_year, top=40) + "</div></div>"
            '<p class="note">Objects and source bytes; bars split by what happened to the '
            "objects. Objects that are not DICOM have no modality or date.</p></section>")


def _problem_rows(problems: list[Problem], prefix: str) -> str:
    rows = []
    for p in problems:
        examples = "".join(f'<li><span class="loc">{_text(e.locator)}</span><br>'
                           f'<span class="msg">{_text(e.message)}</span></li>'
                           for e in p.examples)
        severity = (f'<span class="badge" style="--b:{FILLS.get(p.severity, "#607d8b")}">'
                    f"{_text(p.severity)}</span>") if p.severity else "-"
        rows.append(f'<tr data-{prefix}-code="{_text(p.code)}" data-severity="'
                    f'{_text(p.severity or "")}" data-objects="{p.objects}">'
                    f"<td><b>{_text(p.code)}</b></td><td>{severity}</td>"
                    f'<td class=n>{_n(p.objects)}</td><td><ul class="examples">{examples}</ul>'
                    "</td></tr>")
    return ("<table><tr><th>code</th><th>severity</th><th class=n>objects</th>"
            f"<th>examples (locator, message)</th></tr>{''.join(rows)}</table>")


def _problems(report: Report) -> str:
    if not report.problems:
        return '<section id="problems"><h2>Problems</h2><p>No problems found.</p></section>'
    top = report.problems[:20]
    chart = bar_chart([(p.code, [(p.severity or "", p.objects)], _n(p.objects)) for p in top],
                      label_width=200, width=760)
    used = [s for s in SEVERITIES if any(p.severity == s for p in report.problems)]
    return ('<section id="problems"><h2>Problems</h2><p class="note">Objects per problem code '
            "and what it meant for them (an object counted once per code and severity): "
            "<b>blocking</b> stopped the object, <b>warning</b>: migrated as it is, "
            "<b>fixed</b>: a rule repaired it, <b>info</b>: deliberately not migrated.</p>"
            + _legend(used) + chart + _problem_rows(report.problems, "problem") + "</section>")


def _counts_table(counts: dict[str, int], what: str, key: str) -> str:
    rows = "".join(f'<tr data-{key}="{_text(k)}" data-value="{v}"><td>{_text(k)}</td>'
                   f"<td class=n>{_n(v)}</td></tr>" for k, v in counts.items())
    return f"<table><tr><th>{what}</th><th class=n>count</th></tr>{rows}</table>"


def _verification_section(report: Report) -> str:
    v = report.verification
    if v is None:
        return ('<section id="verification"><h2>Verification</h2><p class="note" '
                f'id="verify-missing">{_text(VERIFY_HINT.format(run=report.run))}</p></section>')
    parts = ['<section id="verification"><h2>Verification</h2>',
             f'<p>{_n(v.objects)} objects re-read and checked against the result manifest.</p>',
             '<div class="grid2"><div><h3>Objects by verification status</h3>',
             _counts_table(v.by_status, "status", "verify-status"), "</div><div>"]
    if v.strays is not None:
        s = v.strays
        parts += [f'<h3>Strays in the output tree</h3><p id="verify-strays" data-value='
                  f'"{s.files}">{_n(s.files)} files ({bytes_text(s.size)}) that no result row'
                  " accounts for.</p>", _counts_table(s.by_kind, "kind", "stray-kind")]
        parts += ['<ul class="examples">'] + [
            f'<li><span class="loc">{_text(e.locator)}</span> <span class="msg">'
            f"{_text(e.message)}</span></li>" for e in s.examples] + ["</ul>"]
    parts.append("</div></div>")
    if v.problems:
        parts += ["<h3>Failed checks</h3>", _problem_rows(v.problems, "verify")]
    return "".join(parts) + "</section>"


def _reconciliation_section(report: Report) -> str:
    r = report.reconciliation
    if r is None:
        return ('<section id="reconciliation"><h2>Reconciliation</h2><p class="note" '
                f'id="reconcile-missing">{_text(RECONCILE_HINT.format(run=report.run))}</p>'
                "</section>")
    colors = {"ok": "var(--migrate)", "missing": "var(--quarantine)", "orphan": "var(--warning)",
              "count_mismatch": "var(--failed)", "incomplete": "var(--fixed)"}
    chart = bar_chart([(k, [(k, v)], _n(v)) for k, v in r.by_status.items()], label_width=120,
                      fills=colors)
    instances = "".join(f'<tr data-instances="{_text(k)}" data-value="{v}"><td>'
                        f"{_text(k.replace('_', ' '))}</td><td class=n>{_n(v)}</td></tr>"
                        for k, v in r.instances.items())
    parts = ['<section id="reconciliation"><h2>Reconciliation</h2>',
             f"<p>{_n(r.studies)} studies compared with the legacy database.</p>",
             '<div class="grid2"><div><h3>Studies by status</h3>',
             _counts_table(r.by_status, "status", "study-status"), chart, "</div><div>",
             "<h3>Instances</h3><table><tr><th>instances</th><th class=n>count</th></tr>",
             instances, "</table></div></div>"]
    if r.examples:
        columns = [c for c in (*STUDY_IDS, *INSTANCE_COLUMNS) if any(c in e for e in r.examples)]
        parts += ["<h3>Studies that are not ok (first three of each status)</h3><table><tr>"
                  "<th>status</th>", *(f"<th>{_text(c.replace('_', ' '))}</th>"
                                       for c in columns), "</tr>"]
        for e in r.examples:
            parts += [f"<tr><td>{_text(e.get('status'))}</td>", *(
                f'<td class="{"n" if c in INSTANCE_COLUMNS else "loc"}">'
                f"{_text(e.get(c) if e.get(c) is not None else '-')}</td>" for c in columns),
                "</tr>"]
        parts.append("</table>")
    return "".join(parts) + "</section>"


def _throughput(report: Report) -> str:
    if not report.timings:
        return ""
    names = {"inventory": "inventory", "plan": "plan", "result": "write"}
    charts, rows = [], []
    for t in report.timings:
        span = t.last_written - t.started
        charts.append(f"<div><h3>{names[t.stage]}</h3>" + step_chart(
            t.points, y_label="objects done") + "</div>")
        rows.append(
            f"<tr><td>{names[t.stage]}</td><td class=n>{_n(t.parts)}</td>"
            f"<td class=n>{_n(t.objects)}</td><td>{_when(t.first_written)}</td>"
            f"<td>{_when(t.last_written)}</td><td class=n>{_duration(span)}</td>"
            f"<td class=n>{_duration(t.recorded_seconds) if t.recorded_seconds else '-'}</td>"
            f'<td class=n data-rate="{names[t.stage]}">'
            f"{_n(round(t.per_minute)) if t.per_minute else '-'}</td></tr>")
    shards = "".join(
        f"<tr><td>{_text(step)}</td><td>{_text(label)}</td><td>{_text(f.get('host', '-'))}</td>"
        f"<td class=n>{_n(int(f.get('objects', 0)))}</td><td class=n>"
        f"{_duration(float(f['seconds'])) if f.get('seconds') else '-'}</td></tr>"
        for step, done in report.shards.items() for label, f in sorted(done.items()))
    return ('<section id="throughput"><h2>Throughput</h2><p class="note">Objects done over '
            "time, from each stage's part files (a part is committed when its batch is done, so "
            "the curve rises in steps; its slope is the rate). Objects per minute: the step's "
            "own figures in run.json (its last run), else the parts' times.</p>"
            f'<div class="grid3">{"".join(charts)}</div>'
            "<table><tr><th>step</th><th class=n>parts</th><th class=n>objects</th>"
            "<th>first part</th><th>last part</th><th class=n>span</th>"
            "<th class=n>recorded time</th><th class=n>objects/min</th></tr>"
            + "".join(rows) + "</table>"
            + ("<h3>Shards</h3><table><tr><th>step</th><th>shard</th><th>host</th>"
               f"<th class=n>objects</th><th class=n>time</th></tr>{shards}</table>"
               if shards else "") + "</section>")


# --- charts: inline SVG ----------------------------------------------------------------------

def bar_chart(rows: list[tuple[str, list[tuple[str, int]], str]], *, width: int = 540,
              label_width: int = 130, fills: dict[str, str] | None = None) -> str:
    """Horizontal bars, one per ``(label, [(series, value), ...] stacked, text at its end)``;
    a series' colour is its entry in ``fills`` (outcomes and severities by default)."""
    if not rows:
        return '<p class="note">nothing to show</p>'
    colours = {**FILLS, **(fills or {})}
    bar, gap, text_room = 16, 6, 120
    plot = width - label_width - text_room
    largest = max(sum(v for _, v in segments) for _, segments, _ in rows) or 1
    height = len(rows) * (bar + gap) + gap
    out = [f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
           'role="img">']
    for i, (label, segments, end) in enumerate(rows):
        y = gap + i * (bar + gap)
        out.append(f'<text x="{label_width - 8}" y="{y + 12}" text-anchor="end">'
                   f"<title>{_text(label)}</title>{_text(_cut(label, label_width // 7))}</text>")
        x = float(label_width)
        for series, value in segments:
            if value <= 0:
                continue
            w = max(value / largest * plot, 1.5)
            out.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar}" rx="2" '
                       f'fill="{colours.get(series, "#607d8b")}"><title>{_text(label)}: '
                       f"{_n(value)} {_text(LABELS.get(series, series))}</title></rect>")
            x += w
        out.append(f'<text x="{x + 6:.1f}" y="{y + 12}" class="dim">{_text(end)}</text>')
    out.append("</svg>")
    return "".join(out)


def _cut(text: str, length: int) -> str:
    return text if len(text) <= length else text[: max(length - 1, 1)] + "\u2026"


def _ticks(top: float, count: int = 4) -> list[float]:
    """Round tick values from 0 to at least ``top``."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(math.ceil(top / step - 1e-9) + 1)]


def step_chart(points: list[tuple[float, int]], *, width: int = 340, height: int = 190,
               y_label: str = "") -> str:
    """A step line of ``(seconds, value)`` points (rising at each point), with axes."""
    left, right, top, bottom = 54, 26, 10, 34
    xs = _time_ticks(max((x for x, _ in points), default=0.0))
    ys = _ticks(float(max((y for _, y in points), default=0)))
    pw, ph = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + x / xs[-1] * pw

    def py(y: float) -> float:
        return top + ph - y / ys[-1] * ph

    out = [f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
           'role="img">']
    for y in ys:
        out.append(f'<line class="gridline" x1="{left}" x2="{width - right}" y1="{py(y):.1f}" '
                   f'y2="{py(y):.1f}"/><text x="{left - 6}" y="{py(y) + 4:.1f}" '
                   f'text-anchor="end" class="dim">{_short(y)}</text>')
    for x in xs:
        out.append(f'<text x="{px(x):.1f}" y="{top + ph + 16}" text-anchor="middle" '
                   f'class="dim">{_tick_time(x)}</text>')
    out.append(f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{top + ph}"/>'
               f'<line class="axis" x1="{left}" x2="{width - right}" y1="{top + ph}" '
               f'y2="{top + ph}"/>')
    path = [f"M{px(points[0][0]):.1f},{py(points[0][1]):.1f}"] if points else []
    for x, y in points[1:]:
        path.append(f"H{px(x):.1f}V{py(y):.1f}")
    if path:
        out.append(f'<path class="line" d="{"".join(path)}"/>')
        x, y = points[-1]
        out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="var(--accent)">'
                   f"<title>{_n(y)} objects after {_text(_duration(x))}</title></circle>")
    out.append(f'<text x="{left + pw / 2:.1f}" y="{height - 4}" text-anchor="middle" '
               f'class="dim">time since the step started</text>')
    if y_label:
        out.append(f'<text x="12" y="{top + ph / 2:.1f}" text-anchor="middle" class="dim" '
                   f'transform="rotate(-90 12 {top + ph / 2:.1f})">{_text(y_label)}</text>')
    out.append("</svg>")
    return "".join(out)


TIME_STEPS = (15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def _time_ticks(top: float, count: int = 4) -> list[float]:
    """Tick values in seconds, on round minutes and hours once the span has them."""
    if top < 60:
        return _ticks(top, count)
    step = next((s for s in TIME_STEPS if s * count >= top),
                86400 * math.ceil(top / count / 86400))
    return [float(i * step) for i in range(math.ceil(top / step - 1e-9) + 1)]


def _tick_time(seconds: float) -> str:
    if not seconds:
        return "0"
    if seconds < 60:
        return f"{seconds:.3g} s"
    if seconds % 3600 == 0:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 60:.0f} min" if seconds % 60 == 0 else _duration(seconds)


def _short(value: float) -> str:
    """A tick label: 1500 -> 1.5k, 2000000 -> 2M."""
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.3g}"
