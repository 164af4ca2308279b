"""Scripts read every step's summary as JSON (--json), and the manifests in pandas keep their
nullable integer columns as integers (dtype_backend, as the README shows)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
from conftest import Migration

from migrate_fs import manifest
from migrate_fs.cli.main import main


def test_run_json_prints_one_summary_per_step(sample_export: Path, tmp_path: Path,
                                              capsys) -> None:
    m = tmp_path / "m"
    assert main(["run", str(sample_export), "--out", str(tmp_path / "out"), "--run", "j",
                 "--manifests", str(m), "--workers", "1", "--quiet", "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    steps = [json.loads(line) for line in lines]  # every line is one JSON object
    assert [s["step"] for s in steps] == ["inventory", "plan", "write"]
    for summary, stage in zip(steps, ("inventory", "plan", "result"), strict=True):
        rows = manifest.read_stage(m, "j", stage).to_pylist()
        assert summary["objects"] == len(rows) == sum(g["objects"] for g in summary["by"])
        assert summary["manifest"] == str(manifest.stage_dir(m, "j", stage))
        assert summary["size"] == sum(r["size"] or 0 for r in rows)
    plan, write = steps[1], steps[2]
    rows = manifest.read_stage(m, "j", "result").to_pylist()
    by_action = Counter()
    for group in plan["by"]:
        by_action[group["action"]] += group["objects"]
    assert by_action == Counter(r["action"] for r in rows)
    written = sum(g["objects"] for g in write["by"] if g["status"] == "written")
    assert written == sum(r["status"] == "written" for r in rows) > 0
    assert write["output_size"] == sum(r["output_size"] or 0 for r in rows)
    codes = Counter(c for r in rows for c in {p["code"] for p in r["problems"] or []})
    assert plan["problems"] == dict(codes)


def test_nullable_integers_read_as_integers_in_pandas(sample_migration: Migration) -> None:
    folder = manifest.stage_dir(sample_migration.manifests, sample_migration.run, "result")
    plain = pd.read_parquet(folder)
    assert plain["output_size"].dtype == "float64"  # what the README warns about
    typed = pd.read_parquet(folder, dtype_backend="numpy_nullable")
    assert str(typed["output_size"].dtype) == "Int64"
    assert typed["output_size"].isna().sum() == plain["output_size"].isna().sum() > 0
    arrow = pd.read_parquet(folder, dtype_backend="pyarrow")
    assert str(arrow["output_size"].dtype) == "int64[pyarrow]"
