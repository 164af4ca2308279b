"""Nothing stops a migration, nothing is lost, nothing is trusted that was not checked.

Failed writes tell the truth in the exit code and are retried by a re-run; a re-run re-creates
missing or damaged outputs and sweeps what a killed writer left; one writer per run; Ctrl-C and
a closed stdout end cleanly; a run killed at any moment resumes to exactly the result of an
uninterrupted one; the writer writes only the file the inventory saw.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from migrate_fs import manifest
from migrate_fs.cli.main import main

CLI = [sys.executable, "-m", "migrate_fs.cli"]
FILES = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm", "SC_rgb_rle.dcm",
         "MR_small_RLE.dcm", "liver_1frame.dcm", "rtdose.dcm", "waveform_ecg.dcm"]


def make_export(root: Path, copies: int = 3) -> Path:
    """Distinct objects (each copy gets its own UIDs) from a few of pydicom's files."""
    root.mkdir(parents=True)
    n = 0
    for name in FILES:
        path = get_testdata_file(name)
        if path is None:
            continue
        for i in range(copies):
            ds = pydicom.dcmread(path)
            ds.SOPInstanceUID = f"{ds.SOPInstanceUID}.{i}"
            ds.SeriesInstanceUID = f"{ds.SeriesInstanceUID}.{i}"
            folder = root / f"vol{i}"
            folder.mkdir(exist_ok=True)
            ds.save_as(folder / f"{n:03d}_{name}")
            n += 1
    return root


def tree(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file below root (hidden files included)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file()}


def results(manifests: Path, run: str) -> dict[str, tuple]:
    rows = manifest.read_stage(manifests, run, "result").to_pylist()
    return {r["object_id"]: (r["action"], r["reason"], r["status"] in ("written",
            "already_present"), r["output_path"], r["output_sha256"]) for r in rows}


def temporaries(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob(".*") if p.is_file()
            and p.name.endswith(".tmp")]


def cli_run(export: Path, out: Path, manifests: Path, *extra: str) -> int:
    return main(["run", str(export), "--out", str(out), "--manifests", str(manifests),
                 "--run", "r", "--quiet", "--workers", "2", *extra])


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_export(tmp_path_factory.mktemp("res") / "export")


@pytest.fixture(scope="module")
def clean(export: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("clean")
    assert cli_run(export, base / "out", base / "m") == 0
    return base / "out", base / "m"


def test_missing_and_damaged_outputs_are_written_again(export: Path, tmp_path: Path,
                                                       clean: tuple[Path, Path]) -> None:
    out, m = tmp_path / "out", tmp_path / "m"
    assert cli_run(export, out, m) == 0
    victims = sorted(out.rglob("*.dcm"))
    victims[0].unlink()
    victims[1].write_bytes(victims[1].read_bytes()[:100])  # damaged: another size
    shutil.rmtree(victims[2].parent)  # a whole series folder gone
    assert main(["write", "--run", "r", "--out", str(out), "--manifests", str(m),
                 "--quiet"]) == 0
    assert tree(out) == tree(clean[0])
    assert results(m, "r") == results(clean[1], "r")
    info = manifest.read_run_info(m, "r")
    assert info["write"]["redone_for_missing_outputs"] >= 3


def test_failed_objects_exit_3_and_a_rerun_retries_them(export: Path, tmp_path: Path,
                                                        clean: tuple[Path, Path],
                                                        capsys: pytest.CaptureFixture) -> None:
    """A source that cannot be read at write time (an unmounted volume) fails its objects;
    once it is back, the same command writes them."""
    copy = tmp_path / "export"
    shutil.copytree(export, copy)
    out, m = tmp_path / "out", tmp_path / "m"
    assert main(["inventory", str(copy), "--run", "r", "--manifests", str(m), "--quiet"]) == 0
    assert main(["plan", "--run", "r", "--manifests", str(m)]) == 0
    (copy / "vol1").rename(tmp_path / "away")
    capsys.readouterr()
    assert main(["write", "--run", "r", "--out", str(out), "--manifests", str(m),
                 "--quiet"]) == 3
    err = capsys.readouterr().err
    assert "failed to be written" in err and "run the same command again" in err
    (tmp_path / "away").rename(copy / "vol1")
    assert main(["write", "--run", "r", "--out", str(out), "--manifests", str(m),
                 "--quiet"]) == 0
    assert tree(out) == tree(clean[0])
    statuses = {r["status"] for r in manifest.read_stage(m, "r", "result").to_pylist()}
    assert "failed" not in statuses


def test_a_full_disk_then_more_space(export: Path, tmp_path: Path,
                                     clean: tuple[Path, Path]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(out)],
                             capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        first = cli_run(export, out, tmp_path / "m")
        failed = [r for r in manifest.read_stage(tmp_path / "m", "r", "result").to_pylist()
                  if r["status"] == "failed"]
        assert first == 3 and failed
        assert all("No space left" in r["result_message"] for r in failed)
        subprocess.run(["mount", "-o", "remount,size=64m", str(out)], check=True)
        assert cli_run(export, out, tmp_path / "m") == 0
        assert tree(out) == tree(clean[0])
        assert results(tmp_path / "m", "r") == results(clean[1], "r")
    finally:
        subprocess.run(["umount", str(out)], check=False)


def test_a_killed_write_leaves_nothing_behind_after_resume(export: Path, tmp_path: Path,
                                                           clean: tuple[Path, Path]) -> None:
    out, m = tmp_path / "out", tmp_path / "m"
    assert cli_run(export, out, m) == 0
    some = next(out.rglob("*.dcm"))
    leftover = some.parent / f".{some.name}.migrate-fs.tmp"
    legacy = some.parent / f".{some.name}.4242.tmp"
    foreign = some.parent / ".keep"
    for path in (leftover, legacy, foreign):
        path.write_bytes(b"partial")
    (m / "r" / ".write.running").touch()  # the last write was killed
    (m / "r" / "result" / ".part-000000-x.parquet.tmp").write_bytes(b"partial")
    assert main(["write", "--run", "r", "--out", str(out), "--manifests", str(m),
                 "--quiet"]) == 0
    assert not leftover.exists() and not legacy.exists() and foreign.exists()
    assert temporaries(out, m) == []
    foreign.unlink()
    assert tree(out) == tree(clean[0])


def test_one_writer_per_run(export: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    m = tmp_path / "m"
    with manifest.run_lock(m, "r", "a test"):
        code = subprocess.run([*CLI, "run", str(export), "--out", str(tmp_path / "out"),
                               "--manifests", str(m), "--run", "r", "--quiet"],
                              capture_output=True, text=True)
    assert code.returncode == 1
    assert "is busy" in code.stderr and "a test" in code.stderr
    assert "Traceback" not in code.stderr
    assert not (tmp_path / "out").exists()


def test_out_that_is_a_file_is_a_usage_error(export: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    done = subprocess.run([*CLI, "run", str(export), "--out", str(a_file), "--manifests",
                           str(tmp_path / "m"), "--quiet"], capture_output=True, text=True)
    assert done.returncode == 2 and "not a folder" in done.stderr
    assert not (tmp_path / "m").exists()


def test_ctrl_c_then_resume(export: Path, tmp_path: Path, clean: tuple[Path, Path]) -> None:
    out, m = tmp_path / "out", tmp_path / "m"
    args = [*CLI, "run", str(export), "--out", str(out), "--manifests", str(m), "--run", "r",
            "--quiet", "--workers", "2"]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    time.sleep(1.2)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: the whole process group
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the run finished before the interrupt")
    assert proc.returncode == 130, err
    assert "interrupted; run the same command again to resume" in err
    # no traceback of migrate-fs's own (a loky worker caught starting up may print its own:
    # joblib unblocks SIGINT while it spawns workers)
    assert "/migrate_fs/" not in err, err
    assert subprocess.run(args, capture_output=True).returncode == 0
    assert tree(out) == tree(clean[0])
    assert temporaries(out, m) == []


def test_a_closed_stdout_does_not_stop_the_migration(export: Path, tmp_path: Path,
                                                     clean: tuple[Path, Path]) -> None:
    out = tmp_path / "out"
    command = " ".join([*CLI, "run", str(export), "--out", str(out), "--manifests",
                        str(tmp_path / "m"), "--run", "r", "--quiet", "--workers", "2"])
    done = subprocess.run(f"set -o pipefail; {command} | head -1", shell=True,
                          executable="/bin/bash", capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
    assert tree(out) == tree(clean[0])


@pytest.mark.parametrize("seed", range(20))
def test_killed_at_any_moment_resumes_to_the_same_result(export: Path, tmp_path: Path,
                                                         clean: tuple[Path, Path],
                                                         seed: int) -> None:
    """SIGKILL of the whole process tree at a seeded moment of a run, then the same command:
    the files and manifests equal those of a run that was never interrupted."""
    out, m = tmp_path / "out", tmp_path / "m"
    args = [*CLI, "run", str(export), "--out", str(out), "--manifests", str(m), "--run", "r",
            "--quiet", "--workers", "2"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    time.sleep(random.Random(seed).uniform(0.3, 3.0))
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    resumed = subprocess.run(args, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert tree(out) == tree(clean[0])
    assert results(m, "r") == results(clean[1], "r")
    assert temporaries(out, m) == []


def test_the_writer_reads_only_the_inventoried_file(tmp_path: Path) -> None:
    """A file swapped for a symlink, or changed in place keeping size and mtime, between
    plan and write, is source_changed: never followed, never written."""
    export = make_export(tmp_path / "export", copies=1)
    m, out = tmp_path / "m", tmp_path / "out"
    assert main(["inventory", str(export), "--run", "r", "--manifests", str(m), "--quiet"]) == 0
    assert main(["plan", "--run", "r", "--manifests", str(m)]) == 0
    migrated = {Path(r["locator"]).name for r in manifest.read_stage(m, "r", "plan").to_pylist()
                if r["action"] == "migrate"}
    files = sorted(p for p in export.rglob("*.dcm") if p.name in migrated)
    outside = tmp_path / "outside.dcm"
    shutil.copy(files[0], outside)
    files[0].unlink()
    files[0].symlink_to(outside)
    stat = files[1].stat()
    data = bytearray(files[1].read_bytes())
    data[200] ^= 0xFF  # same size
    files[1].write_bytes(bytes(data))
    os.utime(files[1], ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime
    code = main(["write", "--run", "r", "--out", str(out), "--manifests", str(m), "--quiet"])
    assert code == 3
    rows = {Path(r["locator"]).name: r for r in manifest.read_stage(m, "r", "result").to_pylist()}
    for path in files[:2]:
        row = rows[path.name]
        assert (row["status"], row["reason"]) == ("failed", "source_changed"), row
    assert len(files) > 4 and all(rows[p.name]["status"] == "written" for p in files[2:])


def test_tasks_run_in_the_commands_process_leave_ctrl_c_to_it(tmp_path: Path) -> None:
    """With --workers 1 the batches run in the command's own process: a worker's Ctrl-C
    handling (ignore it: the main process stops the workers) must not be applied there, or
    Ctrl-C would be ignored for the rest of the run."""
    from migrate_fs.execution import batched, named_batches, progress, run_batches

    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)  # as a terminal's
    try:
        with progress("test", True) as bar:
            run_batches(named_batches(batched(range(10), 3), str), _rows, tmp_path,
                        "inventory", workers=1, bar=bar)
        assert len(list(tmp_path.glob("part-*.parquet"))) == 4  # the tasks did run, here
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, inherited)


def _rows(items: list[int]) -> list[dict[str, object]]:
    return [{"object_id": str(i), "locator": f"/x/{i}", "kind": "empty", "size": 0}
            for i in items]
