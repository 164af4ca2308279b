"""Static shards: N processes, started in any order, each doing one shard of a step, give the
local run's outputs and manifest rows; two processes never work on one shard."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from conftest import PYDICOM_DATA, content_digest, lock_held

from migrate_fs import manifest
from migrate_fs.cli.main import main


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "migrate_fs", *args], capture_output=True,
                          text=True, check=False)


def status(m: Path) -> dict[str, Any]:
    done = cli("status", "--run", "r", "--manifests", str(m), "--json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    return {**found, **{s["stage"]: s for s in found["stages"]}}


def rows(m: Path, stage: str) -> dict[str, dict[str, Any]]:
    return {r["object_id"]: r for r in manifest.read_stage(m, "r", stage).to_pylist()}


@pytest.fixture(scope="module")
def export(sample_export: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample export with a tape dump of some of pydicom's files beside its folders."""
    root = tmp_path_factory.mktemp("sharded") / "export"
    shutil.copytree(sample_export, root)
    with tarfile.open(root / "dump.tar", "w") as tar:
        for name in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm"):
            tar.add(PYDICOM_DATA / "test_files" / name, arcname=f"tape/{name}")
    return root


def test_three_shards_in_any_order_equal_the_local_run(export: Path, tmp_path: Path) -> None:
    local, sharded = tmp_path / "local", tmp_path / "sharded"
    assert main(["run", str(export), "--out", str(local / "out"), "--run", "r", "--manifests",
                 str(local / "m"), "--workers", "1", "--quiet"]) == 0
    m = str(sharded / "m")
    for i in (2, 0, 1):
        done = cli("inventory", str(export), "--run", "r", "--manifests", m, "--shard",
                   f"{i}/3", "--workers", "1", "--quiet")
        assert done.returncode == 0, done.stderr
    names = manifest.part_names(manifest.stage_dir(m, "r", "inventory"))
    assert {n[:14] for n in names if n.startswith("part-")} == \
        {f"part-s00{i}of003" for i in range(3)}  # each shard wrote its own parts
    assert rows(sharded / "m", "inventory") == rows(local / "m", "inventory")
    # each part names the host and process that wrote it: one process per shard
    folder = manifest.stage_dir(m, "r", "inventory")
    writers = {n[:14]: manifest.written_by(folder, n) for n in names if n.startswith("part-")}
    assert len(set(writers.values())) == 3
    assert all(w and w.startswith(f"{socket.gethostname()} pid ") for w in writers.values())
    assert cli("plan", "--run", "r", "--manifests", m, "--workers", "1").returncode == 0
    assert status(sharded / "m")["result"]["pending"] == len(rows(local / "m", "result"))
    for i in (1, 2, 0):
        if i == 0:  # two of three written: status names the shard left (if it has work)
            left = status(sharded / "m")
            assert left["result"]["pending"] == 0 or "not finished: 0/3" in left["next_step"]
        done = cli("write", "--run", "r", "--manifests", m, "--out", str(sharded / "out"),
                   "--shard", f"{i}/3", "--workers", "1", "--quiet")
        assert done.returncode == 0, done.stderr
    assert content_digest(sharded / "out") == content_digest(local / "out")
    assert rows(sharded / "m", "result") == rows(local / "m", "result")
    info = manifest.read_run_info(sharded / "m", "r")
    assert sorted(info["inventory_shards"]) == sorted(info["write_shards"]) == \
        ["0/3", "1/3", "2/3"]
    assert {s["host"] for s in info["write_shards"].values()} == {socket.gethostname()}
    assert sum(s["objects"] for s in info["write_shards"].values()) == len(rows(local / "m",
                                                                             "result"))
    # a shard run again redoes nothing and duplicates nothing
    again = cli("write", "--run", "r", "--manifests", m, "--out", str(sharded / "out"),
                "--shard", "1/3", "--workers", "1", "--quiet")
    assert again.returncode == 0, again.stderr
    assert rows(sharded / "m", "result") == rows(local / "m", "result")


def test_two_processes_never_work_on_one_shard(export: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    m = tmp_path / "m"
    with lock_held(m, "r", "migrate-fs inventory", (1, 3)):
        code = main(["inventory", str(export), "--run", "r", "--manifests", str(m),
                     "--shard", "1/3", "--workers", "1", "--quiet"])
        assert code == 1
        assert "shard 1/3 of run 'r' is busy: migrate-fs inventory (pid" in \
            capsys.readouterr().err
        assert status(m)["busy"].startswith("shard 1/3: migrate-fs inventory (pid")
        # another shard goes ahead meanwhile; an unsharded step waits for the shards
        assert main(["inventory", str(export), "--run", "r", "--manifests", str(m),
                     "--shard", "0/3", "--workers", "1", "--quiet"]) == 0
        assert main(["inventory", str(export), "--run", "r", "--manifests", str(m),
                     "--workers", "1", "--quiet"]) == 1
        assert "run 'r' is busy" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad:
        main(["inventory", str(export), "--run", "r", "--manifests", str(m), "--shard", "3/3",
              "--quiet"])
    assert bad.value.code == 2 and "0 <= i < N" in capsys.readouterr().err


def test_a_shard_with_no_work_of_its_own_ends_cleanly(export: Path, tmp_path: Path) -> None:
    m = str(tmp_path / "m")
    assert main(["inventory", str(export), "--run", "r", "--manifests", m, "--workers", "1",
                 "--quiet"]) == 0
    assert main(["plan", "--run", "r", "--manifests", m, "--workers", "1"]) == 0
    parts = len(manifest.part_names(manifest.stage_dir(m, "r", "plan")))
    many = parts * 50  # far more shards than plan parts and dumps: most own nothing
    idle = [i for i in range(many) if not any(
        __import__("migrate_fs.execution.shards", fromlist=["Shard"]).Shard(i, many).owns_part(n)
        for n in manifest.part_names(manifest.stage_dir(m, "r", "plan")))]
    assert idle
    assert main(["write", "--run", "r", "--manifests", m, "--out", str(tmp_path / "out"),
                 "--shard", f"{idle[0]}/{many}", "--workers", "1", "--quiet"]) == 0


@pytest.mark.parametrize("layout", [[], ["--layout", "readable"]], ids=["uids", "readable"])
def test_run_on_three_shards_at_once_equals_the_local_run(export: Path, tmp_path: Path,
                                                          layout: list[str]) -> None:
    """One command per machine: `run --shard I/N` takes its inventory share, waits for the
    other shards, plans its share of each phase with them and writes its share; in any
    output layout."""
    local, sharded = tmp_path / "local", tmp_path / "sharded"
    assert main(["run", str(export), "--out", str(local / "out"), "--run", "r", "--manifests",
                 str(local / "m"), "--workers", "1", "--quiet", *layout]) == 0
    procs = []
    for i in (2, 0, 1):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "migrate_fs", "run", str(export), "--out",
             str(sharded / "out"), "--run", "r", "--manifests", str(sharded / "m"),
             "--workers", "1", "--shard", f"{i}/3", *layout],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert any("waiting for shard(s)" in err for _, err in outputs)
    assert content_digest(sharded / "out") == content_digest(local / "out")
    for stage in ("inventory", "plan", "result"):
        assert rows(sharded / "m", stage) == rows(local / "m", stage), stage
    run = manifest.run_dir(sharded / "m", "r")
    assert not list(run.glob(".plan-work*")) and not list(run.glob(".inventory-shards*"))
    assert status(sharded / "m")["next_step"].startswith("nothing")
    assert main(["verify", "--run", "r", "--manifests", str(sharded / "m"), "--all",
                 "--quiet"]) == 0  # every output where the result says, as planned


def test_plan_parts_go_to_shards_evenly_and_follow_the_inventory_split() -> None:
    from migrate_fs.execution.shards import Shard

    plain = [f"part-{i:06d}-abcdef{i:06d}" for i in range(20)]
    sharded = [f"part-s{s:03d}of003-{i:06d}-0123456789ab" for s in range(3) for i in range(7)]
    for names in (plain, sharded, ["a1f2e3d4c5b6a7f8-000001"]):
        owners = [[i for i in range(3) if Shard(i, 3).owns_part(n)] for n in names]
        assert all(len(o) == 1 for o in owners)  # every part has exactly one shard
    counts = [sum(Shard(i, 3).owns_part(n) for n in plain) for i in range(3)]
    assert counts == [7, 7, 6]  # round robin: 20 parts as evenly as they go
    # a part of an inventory sharded the same way is written by the shard that read it
    assert all(Shard(int(n[6:9]), 3).owns_part(n) for n in sharded)
    other = [sum(Shard(i, 2).owns_part(n) for n in sharded) for i in range(2)]
    assert sorted(other) == [10, 11]  # another count: round robin over the index and shard


def test_a_shard_sweeps_only_its_own_temporary_parts(tmp_path: Path) -> None:
    """Shards write at the same time into one stage folder: a shard starting its step removes
    the temporary parts a killed run of its own left, never another shard's part being
    written (a race `run --shard` hit: a shard lost its part mid-write)."""
    from migrate_fs.execution.shards import Shard

    names = [".part-s000of003-000000-aaaa.parquet.tmp", ".part-s001of003-000000-bbbb.parquet.tmp",
             ".part-000000-cccc.parquet.tmp"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    assert manifest.sweep_temporary(tmp_path, Shard(1, 3).prefix) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [names[2], names[0]]
    assert manifest.sweep_temporary(tmp_path) == 2  # an unsharded step: every one


def test_verify_on_two_shards_equals_one_verify(export: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Each shard verifies the result parts and archives its write would own; together they
    give one verify's rows; the stray walk is shard 0's."""
    from migrate_fs import pipeline

    monkeypatch.setattr(pipeline, "WRITE_BATCH", 8)  # result parts enough for two shards
    m, out = tmp_path / "m", tmp_path / "out"
    assert main(["run", str(export), "--out", str(out), "--run", "r", "--manifests", str(m),
                 "--workers", "1", "--quiet"]) == 0
    (out / ".left.dcm.migrate-fs.tmp").write_bytes(b"x")  # a stray
    one = tmp_path / "one"
    shutil.copytree(m, one)
    assert main(["verify", "--run", "r", "--manifests", str(one), "--all", "--quiet"]) == 4
    codes = [cli("verify", "--run", "r", "--manifests", str(m), "--all", "--quiet", "--shard",
                 f"{i}/2").returncode for i in (1, 0)]
    assert codes == [0, 4]  # shard 1 found nothing wrong; shard 0 walked the tree: the stray
    verified = {r["object_id"]: r for r in manifest.read_stage(m, "r", "verify").to_pylist()}
    assert verified == {r["object_id"]: r
                        for r in manifest.read_stage(one, "r", "verify").to_pylist()}
    assert all(r["verify_status"] == "ok" and r["pixel_compared"] for r in verified.values())
    parts = manifest.part_names(manifest.stage_dir(m, "r", "verify"))
    assert all(n.startswith(("part-s000of002", "part-s001of002", "a")) for n in parts)
    info = manifest.read_run_info(m, "r")["verify_shards"]
    assert sum(s["objects"] for s in info.values()) == len(verified)
    assert all(s["objects"] > 0 for s in info.values())  # both did a share
    assert info["0/2"]["strays"] == {"temporary": 1} and info["1/2"]["strays"] == {}
    # run again, a shard checks anew and duplicates nothing
    assert cli("verify", "--run", "r", "--manifests", str(m), "--all", "--quiet", "--shard",
               "1/2").returncode == 0
    assert len(manifest.read_stage(m, "r", "verify")) == len(verified)
