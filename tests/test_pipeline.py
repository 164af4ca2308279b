"""pipeline: the library API does what the command does, run-level checks first.

A Python caller gets the same checks as ``migrate-fs``: those that need no reading fail before
any object is read (no inventory part is written), with a MigrateError whose message says what
to do; the plan's statistics come back from the call, not from a process-wide counter.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from migrate_fs import manifest, pipeline
from migrate_fs.errors import (
    MigrateError,
    OutputError,
    SourceError,
    StageMissing,
    UsageError,
)
from migrate_fs.summary import count_by


@pytest.fixture()
def export(tmp_path: Path) -> Path:
    root = tmp_path / "export"
    root.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm"):
        shutil.copy(get_testdata_file(name), root / name)
    shutil.copy(get_testdata_file("MR_small.dcm"), root / "copy_of_MR_small.dcm")
    return root


def nothing_read(manifests: Path, run: str) -> bool:
    folder = manifest.stage_dir(manifests, run, "inventory")
    return not folder.exists() or not manifest.part_names(folder)


def test_output_inside_a_source_fails_before_any_reading(export: Path, tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="read-only; choose an output folder outside it"):
        pipeline.run([export], out=export / "out", run="r", manifests=tmp_path / "m")
    assert nothing_read(tmp_path / "m", "r") and not (export / "out").exists()
    with pytest.raises(OutputError, match="overlaps source"):  # the output holds the source
        pipeline.run([export], out=tmp_path, run="r", manifests=tmp_path / "m2")
    assert nothing_read(tmp_path / "m2", "r")


def test_other_checks_that_need_no_reading(export: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_bytes(b"x")
    with pytest.raises(UsageError, match="is not a folder"):
        pipeline.run([export], out=a_file, run="r", manifests=tmp_path / "m")
    with pytest.raises(OutputError, match="--manifests outside it"):
        pipeline.inventory([export], run="r", manifests=export / "manifests")
    assert not (export / "manifests").exists()
    with pytest.raises(OutputError, match="plain name"):
        pipeline.inventory([export], run="../escape", manifests=tmp_path / "m")
    with pytest.raises(SourceError, match="mounted"):
        pipeline.inventory([export, tmp_path / "missing"], run="r", manifests=tmp_path / "m")
    with pytest.raises(SourceError, match="matches no file"):
        pipeline.inventory([], volumes=[[str(tmp_path / "dump.tar.*")]], run="r",
                           manifests=tmp_path / "m")
    assert nothing_read(tmp_path / "m", "r")
    with pytest.raises(StageMissing, match="plan"):
        pipeline.write(run="r", out=tmp_path / "out", manifests=tmp_path / "m")
    for error in (OutputError, SourceError, StageMissing):
        assert issubclass(error, MigrateError) and error.exit_code == 1


def test_steps_return_what_they_did(export: Path, tmp_path: Path) -> None:
    done, planned, written = pipeline.run([export], out=tmp_path / "out", run="r",
                                          manifests=tmp_path / "m")
    assert done.objects == 3 and done.tally.objects == 3
    assert dict(count_by(planned.tally, ["action"])) == {("migrate",): 2,
                                                         ("skip_duplicate",): 1}
    # the two copies of MR_small collide by UID: both are hashed, and the call says so
    assert planned.hashed is not None and planned.hashed["objects"] == 2
    assert planned.hashed["bytes_read"] >= 2 * 64 * 64 * 2  # both copies' pixel data, at least
    again = pipeline.plan(run="r", manifests=tmp_path / "m")
    # per call, not accumulated in the process (bytes_read counts this process's reads, the
    # /proc/self/io reads of the measurement included: equal within a few bytes)
    assert again.hashed is not None
    assert (again.hashed["objects"], again.hashed["decoded"]) == \
        (planned.hashed["objects"], planned.hashed["decoded"])
    assert abs(again.hashed["bytes_read"] - planned.hashed["bytes_read"]) < 1000
    assert written.objects == 3
    assert written.bytes_written == sum(p.stat().st_size for p in (tmp_path / "out").rglob("*.dcm"))
    info = manifest.read_run_info(tmp_path / "m", "r")
    assert info["plan"]["content_hashes"] == again.hashed  # the last plan's figures
    assert info["write"]["bytes_written"] == written.bytes_written


def test_errors_raised_in_workers_or_late_are_one_line_too(export: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    """A decoder that cannot start (in a worker) and an unreadable legacy DB file list (in the
    plan) end the command with exit code 1 and one line saying what to change."""
    from migrate_fs.cli.main import main

    bad_decoder = tmp_path / "decoder.toml"
    bad_decoder.write_text('[pixel]\ndecoder = "no_such_module:decode"\ndecode_check = "first"\n')
    missing = tmp_path / "missing.csv"
    bad_list = tmp_path / "list.toml"
    bad_list.write_text(f'[duplicates]\nconflict = "keep_legacy_db"\nlegacy_db_files = '
                        f'"{missing}"\n')
    edited = pydicom.dcmread(export / "copy_of_MR_small.dcm")  # same UID, other content
    edited.PatientName = "Other^Name"
    edited.save_as(export / "copy_of_MR_small.dcm")
    for config, expected in ((bad_decoder, "check [pixel] decoder"), (bad_list, str(missing))):
        code = main(["run", str(export), "--out", str(tmp_path / config.stem), "--run",
                     config.stem, "--manifests", str(tmp_path / "m"), "--config", str(config),
                     "--workers", "1", "--quiet"])
        err = capsys.readouterr().err.strip()
        assert code == 1 and err.startswith("migrate-fs: ") and expected in err
        assert "\n" not in err and "Traceback" not in err
