"""Output layouts (``[output] layout``, ``--layout``): presets and patterns end to end, paths
that never leave the output root, collisions suffixed (never overwritten) the same way for
any bucket count, and a layout that needs a new plan only."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pydicom
import pytest

from migrate_fs import manifest, pipeline, planning
from migrate_fs.cli.main import main
from migrate_fs.config import ConfigError, default_toml, load_config, parse_config
from migrate_fs.paths import (
    LAYOUT_FIELDS,
    MISSING,
    PRESETS,
    output_relpath,
    parse_layout,
    resolve_inside,
    suffixed,
)
from migrate_fs.plan import make_plan

sys.path.insert(0, str(Path(__file__).parent))
from test_plan_buckets import crafted, labelled, rows_by_id  # noqa: E402

COLLIDING = "{PatientID}.dcm"
MIGRATED = ("written", "already_present")


def run_cli(export: Path, base: Path, *extra: str) -> tuple[int, Path, Path]:
    out, m = base / "out", base / "m"
    code = main(["run", str(export), "--out", str(out), "--run", "r", "--manifests", str(m),
                 "--workers", "2", "--quiet", *extra])
    return code, out, m


def migrated(m: Path) -> list[dict[str, Any]]:
    return [r for r in manifest.read_stage(m, "r", "result").to_pylist()
            if r["status"] in MIGRATED]


def check_tree(out: Path, rows: list[dict[str, Any]]) -> None:
    """Every migrated object has its own path (case-insensitively), inside the root, with its
    file there; and the tree holds nothing else."""
    paths = [r["output_path"] for r in rows]
    assert len({p.lower() for p in paths}) == len(paths)
    root = out.resolve()
    for path in paths:
        resolved = (out / path).resolve()
        assert resolved.is_relative_to(root) and resolved != root, path
        assert ".." not in Path(path).parts and not Path(path).is_absolute()
        assert resolved.is_file(), path
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) == len(rows)


# --- the pattern language -------------------------------------------------------------------

def test_presets_and_patterns_render_as_documented() -> None:
    values = {"PatientID": "P1", "StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.4",
              "SOPInstanceUID": "1.2.3.4.5", "StudyDate": "20010101", "Modality": "CT",
              "SeriesNumber": "3", "InstanceNumber": "12", "AccessionNumber": "A7"}
    assert parse_layout("uids").render(values) == "P1/1.2.3/1.2.3.4/1.2.3.4.5.dcm"
    assert parse_layout("study-folders").render(values) == "1.2.3/1.2.3.4.5.dcm"
    assert parse_layout("readable").render(values) == "P1/20010101_A7/003_CT/00012.dcm"
    # fallbacks, the placeholder, a numeric spec on a value that is no number
    fewer = {**values, "AccessionNumber": None, "SeriesNumber": "", "InstanceNumber": "x1"}
    assert parse_layout("readable").render(fewer) == \
        f"P1/20010101_1.2.3/{MISSING}_CT/x1.dcm"
    assert parse_layout("readable").render({**fewer, "InstanceNumber": None}).endswith(
        "/1.2.3.4.5.dcm")
    # uids is today's function, byte for byte (a missing value is _empty~<hash> there)
    assert parse_layout("uids").render({"SOPInstanceUID": "9"}) == \
        output_relpath(None, None, None, "9")
    assert parse_layout("{StudyTime:.4}/{SeriesNumber:03d}-{SeriesNumber:.1f}.dcm").render(
        {"StudyTime": "123456.78", "SeriesNumber": " 7 "}) == "1234/007-7.0.dcm"
    assert set(parse_layout("readable").fields) <= set(LAYOUT_FIELDS)


@pytest.mark.parametrize("pattern, message", [
    ("{Foo}/{SOPInstanceUID}.dcm", "unknown field 'Foo'; the fields are PatientID"),
    ("{SeriesNumber:.2d}.dcm", "bad format spec '.2d'"),
    ("{PatientID:q}.dcm", "bad format spec 'q'"),
    ("/{PatientID}.dcm", "relative path"),
    ("{PatientID}/../{SOPInstanceUID}.dcm", "'..'"),
    ("{PatientID}//{SOPInstanceUID}.dcm", "empty folder name"),
    ("{PatientID}", "must end in .dcm"),
    ("{PatientID!r}.dcm", "conversion"),
    ("{PatientID:{StudyDate}}.dcm", "nested"),
    ("{PatientID}}.dcm", "Single '}'"),
    ("nonsense", "not a preset"),
    ("{0}.dcm", "unknown field '0'"),
    ("{PatientID.real}.dcm", "unknown field"),
])
def test_bad_layouts_are_config_errors_naming_the_problem(pattern: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("{", r"\{")
                       .replace("}", r"\}").replace(".", r"\.")):
        parse_config({"output": {"layout": pattern}})


def test_the_output_table_is_documented_and_strict(tmp_path: Path) -> None:
    text = default_toml()
    assert "[output]" in text and 'layout = "uids"' in text
    for name in PRESETS:
        assert f'"{name}"' in text
    rules = tmp_path / "rules.toml"
    rules.write_text(text)
    assert load_config(rules).layout == "uids"
    rules.write_text('[output]\nlayout = "readable"\n')
    assert load_config(rules).output_layout().pattern == PRESETS["readable"]
    with pytest.raises(ConfigError, match="unknown key output.'layuot'"):
        parse_config({"output": {"layuot": "uids"}})
    with pytest.raises(ConfigError, match="must be a string"):
        parse_config({"output": {"layout": 3}})


HOSTILE = ["../..", "..", ".", "/etc", "/etc/passwd", "a/b", "a\\b", "C:\\x", "CON", "nul.txt",
           "x\x00y", "\x00", "", "  ", "~", "a~0123456789abcdef", "Müller^Jörg", "\udcff\udcfe",
           "\u202e", "x" * 5000, "." * 70, "-rf", "*?<>|\"'", "\n\r\t"]


@pytest.mark.parametrize("layout", [*PRESETS, COLLIDING,
                                    "{PatientName}_{StudyDescription}/{StudyDate}"
                                    "{AccessionNumber:>70}/{InstanceNumber:05d}.dcm"])
def test_hostile_values_stay_inside_the_root(layout: str, tmp_path: Path) -> None:
    parsed = parse_layout(layout)
    depth = None
    for value in HOSTILE:
        path = parsed.render({f: value for f in LAYOUT_FIELDS})
        parts = path.split("/")
        depth = depth or len(parts)
        assert len(parts) == depth, path  # a value never adds or removes a level
        assert all(p and p not in (".", "..") and not p.startswith(".") for p in parts), path
        assert path.endswith(".dcm") and "\x00" not in path and "\\" not in path
        assert all(len(p) <= 68 for p in parts), path
        assert resolve_inside(tmp_path, path).is_relative_to(tmp_path.resolve())
        long = suffixed(path, "0123456789abcdef01234567")
        assert resolve_inside(tmp_path, long).parent == resolve_inside(tmp_path, path).parent


def test_a_suffixed_path_cannot_be_another_path() -> None:
    clean, changed = "a/P1.dcm", parse_layout(COLLIDING).render({"PatientID": "Müller"})
    assert suffixed(clean, "ab" * 12) == "a/P1~" + "ab" * 12 + ".dcm"
    # no ~ (clean) or ~ and 16 hex digits (changed): a suffixed stem ends in ~ and the id
    assert "~" not in clean and len(changed.rsplit("~", 1)[1]) == 16 + len(".dcm")
    assert len(suffixed(changed, "ab" * 12).rsplit("~", 1)[1]) == 24 + len(".dcm")


# --- in memory: the plan's collisions, for any bucket count and group size -----------------

@pytest.mark.parametrize("layout", [COLLIDING, "readable", "study-folders"])
def test_colliding_layouts_plan_the_same_for_any_buckets(layout: str) -> None:
    table, labels = crafted(600, seed=5)
    config = parse_config({"output": {"layout": layout}})
    reference = make_plan(table, config, hashes=labelled(labels)).table(table).to_pylist()
    for buckets, group_rows in ((7, 50), (64, 7), (3, 599), (1, 1)):
        found = make_plan(table, config, hashes=labelled(labels), buckets=buckets,
                          group_rows=group_rows).table(table).to_pylist()
        assert found == reference, (buckets, group_rows)
    kept = [r for r in reference if r["action"] == "migrate"]
    paths = [r["output_path"] for r in kept]
    assert len({p.lower() for p in paths}) == len(paths)  # never one path for two objects
    assert not any(r["reason"] == "output_path_collision" for r in reference)
    suffixed_rows = [r for r in kept if any(p["code"] == "output_path_suffixed"
                                            for p in r["problems"])]
    if layout != "study-folders":  # one study UID, distinct SOP UIDs: no collision
        assert suffixed_rows
    by_id = {r["object_id"]: r for r in reference}
    for row in suffixed_rows:
        problem = next(p for p in row["problems"] if p["code"] == "output_path_suffixed")
        assert problem["severity"] == "warning"
        assert row["output_path"].endswith(f"~{row['object_id']}.dcm")
        other = problem["message"].split("which object ")[1].split(" ")[0]
        first = by_id[other]  # the object it collided with keeps the plain path, sorts first
        assert first["locator"] < row["locator"]
        assert first["output_path"].lower() == \
            row["output_path"].replace(f"~{row['object_id']}", "").lower()


def test_uids_keeps_quarantining_case_twins_and_patterns_suffix_them() -> None:
    table, labels = crafted(200, seed=1)
    uids = make_plan(table, parse_config({}), hashes=labelled(labels)).table(table)
    assert "output_path_collision" in uids.column("reason").to_pylist()
    explicit = make_plan(table, parse_config({"output": {"layout": "uids"}}),
                         hashes=labelled(labels)).table(table)
    assert explicit.equals(uids)
    pattern = make_plan(table, parse_config({"output": {"layout": PRESETS["uids"]}}),
                        hashes=labelled(labels)).table(table).to_pylist()
    assert "output_path_collision" not in {r["reason"] for r in pattern}
    assert any(p["code"] == "output_path_suffixed" for r in pattern for p in r["problems"])


@pytest.mark.parametrize("layout", [*PRESETS, COLLIDING])
def test_objects_without_a_patient_go_below_no_patient_in_every_layout(layout: str) -> None:
    table, labels = crafted(40, seed=2)
    rows = table.to_pylist()
    palette = "1.2.840.10008.5.1.4.39.1"  # Color Palette Storage: no patient in its IOD
    for row in rows[:10]:
        row["sop_class_uid"] = palette
    table = table.from_pylist(rows, schema=table.schema)
    plan = make_plan(table, parse_config({"output": {"layout": layout}}),
                     hashes=labelled(labels)).table(table).to_pylist()
    palettes = [r for r in plan if r["sop_class_uid"] == palette and r["action"] == "migrate"]
    assert palettes
    for r in palettes:
        assert r["output_path"].startswith("_no_patient/ColorPaletteStorage/"), r
        assert r["output_path"].count("/") == 2


# --- end to end -------------------------------------------------------------------------------

@pytest.mark.parametrize("preset", list(PRESETS))
def test_each_preset_on_pydicom_files(preset: str, pydicom_export: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, out, m = run_cli(pydicom_export, tmp_path, "--layout", preset)
    assert code == 0
    plan = manifest.read_stage(m, "r", "plan").to_pylist()
    suffixes = sum(any(p["code"] == "output_path_suffixed" for p in r["problems"])
                   for r in plan)
    # readable: pydicom's SC_rgb files share study, series and InstanceNumber 1
    assert (suffixes > 0) == (preset == "readable")
    assert f"output layout: {preset}; {suffixes} paths suffixed" in capsys.readouterr().out
    rows = migrated(m)
    assert len(rows) > 100
    check_tree(out, rows)
    depth = {"uids": 4, "study-folders": 2, "readable": 4}[preset]
    assert {len(r["output_path"].split("/")) for r in rows
            if not r["output_path"].startswith("_no_patient/")} == {depth}
    info = manifest.read_run_info(m, "r")
    assert info["plan"]["config"]["layout"] == preset
    assert info["plan"]["layout"] == PRESETS[preset]
    assert main(["verify", "--run", "r", "--manifests", str(m), "--all", "--quiet"]) == 0


def test_a_colliding_pattern_suffixes_and_writes_every_object(
        sample_export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, m = run_cli(sample_export, tmp_path, "--layout", COLLIDING)
    assert code == 0
    plan = manifest.read_stage(m, "r", "plan").to_pylist()
    suffixed_rows = [r for r in plan if any(p["code"] == "output_path_suffixed"
                                            for p in r["problems"])]
    assert suffixed_rows
    assert f"output layout: {COLLIDING}; {len(suffixed_rows)} paths suffixed" in \
        capsys.readouterr().out
    rows = migrated(m)
    assert len(rows) == sum(r["action"] == "migrate" for r in plan)
    check_tree(out, rows)  # one file per migrated object: nothing was overwritten
    plain = {r["output_path"] for r in rows if "~" not in r["output_path"]}
    assert len(plain) < len(rows)
    assert main(["verify", "--run", "r", "--manifests", str(m), "--all", "--quiet"]) == 0
    # a re-run resumes: everything is already there, nothing is rewritten
    assert main(["write", "--run", "r", "--manifests", str(m), "--out", str(out),
                 "--quiet", "--workers", "2"]) == 0
    assert len([p for p in out.rglob("*") if p.is_file()]) == len(rows)
    # the plan --json summary counts them too
    capsys.readouterr()
    assert main(["plan", "--run", "r", "--manifests", str(m), "--layout", COLLIDING,
                 "--json", "--quiet", "--workers", "1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["suffixed_paths"] == len(suffixed_rows)
    assert summary["layout"] == COLLIDING


def test_an_unknown_field_is_exit_1_with_one_line(sample_export: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    m = str(tmp_path / "m")
    assert main(["inventory", str(sample_export), "--run", "r", "--manifests", m,
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["plan", "--run", "r", "--manifests", m, "--layout",
                 "{PatientID}/{SeriesDescription}.dcm"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown field 'SeriesDescription'" in err
    assert "--layout" in err and "InstanceNumber" in err
    rules = tmp_path / "rules.toml"
    rules.write_text('[output]\nlayout = "{PatientID:zz}.dcm"\n')
    assert main(["plan", "--run", "r", "--manifests", m, "--config", str(rules)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "output.layout" in err and "'zz'" in err
    assert not (tmp_path / "m" / "r" / "plan").exists()  # nothing was planned


def test_the_flag_beats_the_config_and_a_trial_changes_only_paths(
        pydicom_export: Path, tmp_path: Path) -> None:
    m = str(tmp_path / "m")
    assert main(["inventory", str(pydicom_export), "--run", "r", "--manifests", m,
                 "--quiet", "--workers", "2"]) == 0
    rules = tmp_path / "rules.toml"
    rules.write_text('[output]\nlayout = "study-folders"\n')
    assert main(["plan", "--run", "r", "--manifests", m, "--config", str(rules),
                 "--quiet", "--workers", "2"]) == 0
    own = rows_by_id(tmp_path / "m" / "r" / "plan")
    assert main(["plan", "--run", "r", "--manifests", m, "--config", str(rules), "--as",
                 "readable", "--layout", "readable", "--quiet", "--workers", "2"]) == 0
    trial = rows_by_id(tmp_path / "m" / "r" / "trials" / "readable" / "plan")
    info = manifest.read_run_info(tmp_path / "m", "r")
    assert info["plan"]["config"]["layout"] == "study-folders"
    assert info["trials"]["readable"]["config"]["layout"] == "readable"
    assert own.keys() == trial.keys()
    changed = 0
    for object_id, row in own.items():
        other = trial[object_id]
        if row["output_path"] is not None and "output_path_suffixed" not in {
                p["code"] for p in other["problems"]}:
            assert {k for k in row if row[k] != other[k]} <= {"output_path"}, object_id
            changed += row["output_path"] != other["output_path"]
        assert row["action"] == other["action"]
    assert changed > 100
    depths = {len(r["output_path"].split("/")) for r in own.values()
              if r["output_path"] and not r["output_path"].startswith("_no_patient/")}
    assert depths == {2}


def test_a_colliding_pattern_plans_the_same_for_1_and_7_buckets(
        pydicom_export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "INVENTORY_BATCH", 16)  # many parts, so many groups
    pipeline.inventory([pydicom_export], run="r", manifests=tmp_path, workers=2)
    plans = {}
    for buckets, workers, group_parts in ((1, 1, 1000), (7, 2, 2)):
        monkeypatch.setattr(planning, "GROUP_PARTS", group_parts)
        done = pipeline.plan(run="r", manifests=tmp_path, workers=workers, buckets=buckets,
                             trial=f"b{buckets}", layout=COLLIDING)
        assert done.layout == COLLIDING
        plans[buckets] = rows_by_id(done.folder)
    assert plans[1] == plans[7]
    rows = [r for r in plans[1].values() if r["action"] == "migrate"]
    assert sum(any(p["code"] == "output_path_suffixed" for p in r["problems"])
               for r in rows) > 10
    assert len({r["output_path"].lower() for r in rows}) == len(rows)


def hostile_export(root: Path) -> Path:
    """CT_small under hostile header values, one object each (distinct SOPInstanceUIDs)."""
    root.mkdir(parents=True)
    source = pydicom.dcmread(Path(pydicom.__file__).parent / "data" / "test_files" /
                             "CT_small.dcm")
    values = ["../..", "/etc", "..", "a/b\\c", "CON", "x" * 300, "Müller", "~~", ".hidden",
              "\u202e\u00e9"]
    for i, value in enumerate(values):
        ds = source.copy()
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientID = value
        ds.StudyDescription = value
        ds.AccessionNumber = value[:16]
        ds.PatientName = value
        ds.SeriesNumber = str(i)
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.{i + 1}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(root / f"f{i}.dcm", enforce_file_format=True)
    return root


def test_hostile_header_values_are_written_inside_the_root(tmp_path: Path) -> None:
    export = hostile_export(tmp_path / "export")
    layout = ("{PatientID}/{StudyDescription}_{AccessionNumber}/{PatientName}"
              "{SeriesNumber:03d}/{InstanceNumber:05d}.dcm")
    code, out, m = run_cli(export, tmp_path / "run", "--layout", layout)
    assert code == 0
    rows = migrated(m)
    assert len(rows) == len(os.listdir(export))
    check_tree(out, rows)
    assert main(["verify", "--run", "r", "--manifests", str(m), "--all", "--quiet"]) == 0
