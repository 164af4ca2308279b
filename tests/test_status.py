"""migrate-fs status: where a run stands per stage, and the next command, from the manifests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import lock_held

from migrate_fs import manifest
from migrate_fs.cli.main import main


def status(m: Path, capsys: pytest.CaptureFixture[str], run: str = "r") -> dict[str, Any]:
    capsys.readouterr()  # what the steps before printed
    assert main(["status", "--run", run, "--manifests", str(m), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    return {**found, **{s["stage"]: s for s in found["stages"]}}


def test_status_follows_a_run_step_by_step(sample_export: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    m, out = tmp_path / "m", tmp_path / "out"
    assert status(m, capsys)["next_step"].startswith("no run 'r'")
    objects = sum(1 for p in sample_export.rglob("*") if p.is_file())
    assert main(["inventory", str(sample_export), "--run", "r", "--manifests", str(m),
                 "--quiet"]) == 0
    found = status(m, capsys)
    assert found["inventory"]["objects"] == found["inventory"]["expected"] == objects
    assert found["inventory"]["complete"] and not found["plan"]["parts"]
    assert found["next_step"] == "migrate-fs plan --run r"
    assert found["busy"] is None
    assert main(["plan", "--run", "r", "--manifests", str(m), "--workers", "1"]) == 0
    found = status(m, capsys)
    assert found["plan"]["complete"] and found["result"]["pending"] == objects
    assert found["next_step"].startswith("migrate-fs write --run r --out OUT")
    from migrate_fs import pipeline

    monkeypatch.setattr(pipeline, "WRITE_BATCH", 8)  # several result parts
    assert main(["write", "--run", "r", "--manifests", str(m), "--out", str(out), "--quiet",
                 "--workers", "1"]) == 0
    capsys.readouterr()
    found = status(m, capsys)
    assert found["result"]["complete"] and found["result"]["failed"] == 0
    assert found["result"]["bytes"] == sum(p.stat().st_size for p in out.rglob("*.dcm"))
    assert found["result"]["rate"] and found["result"]["rate"] > 0
    assert found["next_step"] == "nothing: every object is accounted for in the result"
    # an interrupted write: a result part lost; its objects are pending again
    folder = manifest.stage_dir(m, "r", "result")
    lost = sorted(manifest.part_names(folder))[1]
    rows = manifest.part_rows(folder, lost)
    (folder / f"{lost}.parquet").unlink()
    found = status(m, capsys)
    assert found["result"]["pending"] == rows and not found["result"]["complete"]
    assert found["result"]["eta_seconds"] is not None
    assert f"({rows} objects pending)" in found["next_step"]
    # the text form says the same
    assert main(["status", "--run", "r", "--manifests", str(m)]) == 0
    text = capsys.readouterr().out
    assert "next: migrate-fs write --run r" in text and "result" in text


def test_status_says_who_holds_the_run(sample_export: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    m = tmp_path / "m"
    assert main(["inventory", str(sample_export), "--run", "r", "--manifests", str(m),
                 "--quiet"]) == 0
    capsys.readouterr()
    with lock_held(m, "r", "migrate-fs write"):
        found = status(m, capsys)
        assert found["busy"].startswith("migrate-fs write (pid ")
        assert found["next_step"].startswith("wait: migrate-fs write")
    assert status(m, capsys)["busy"] is None
