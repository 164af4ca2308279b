"""A migration on a real dask.distributed cluster (a scheduler and two workers on 127.0.0.1)
gives the local run's output bytes and manifest rows, also when a worker is killed mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import content_digest

from migrate_fs import manifest, pipeline
from migrate_fs.cli.main import main
from migrate_fs.errors import ClusterError

DASK = Path(sys.executable).parent / "dask"


class Cluster:
    """`dask scheduler` and `dask worker` processes, loopback only, stopped by PID."""

    def __init__(self, folder: Path, workers: int = 2) -> None:
        self.folder = folder
        self.file = folder / "scheduler.json"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs = []
        self._start(["scheduler", "--host", "127.0.0.1", "--port", "0",
                     "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(self.file)])
        deadline = time.monotonic() + 60
        while not self.file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.address = json.loads(self.file.read_text())["address"]
        self.workers = [self.start_worker() for _ in range(workers)]
        self.wait_for(workers)

    def _start(self, args: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.folder / f"{len(self.processes)}.log", "wb")  # noqa: SIM115
        self.logs.append(log)
        process = subprocess.Popen([str(DASK), *args], stdout=log, stderr=subprocess.STDOUT,
                                   cwd=self.folder)
        self.processes.append(process)
        return process

    def start_worker(self) -> subprocess.Popen[bytes]:
        # no nanny: the worker is a plain process, whose tasks may start the decoder process
        return self._start(["worker", "--scheduler-file", str(self.file), "--host", "127.0.0.1",
                            "--nthreads", "1", "--no-nanny", "--no-dashboard",
                            "--local-directory", str(self.folder)])

    def wait_for(self, n: int) -> None:
        from distributed import Client

        with Client(self.address, timeout="60s") as client:
            client.wait_for_workers(n, timeout=60)
        assert self.address.startswith("tcp://127.0.0.1:")

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
        for log in self.logs:
            log.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = Cluster(tmp_path_factory.mktemp("dask"))
    try:
        yield running
    finally:
        running.stop()


def result_rows(manifests: Path, run: str, *, placed: bool = False) -> dict[str, dict[str, Any]]:
    """The result rows by object_id (part names and row order aside); with ``placed``, an
    output found already in place (a batch run again after its worker died) counts as
    written."""
    rows = manifest.read_stage(manifests, run, "result").to_pylist()
    if placed:
        for r in rows:
            if r["status"] == "already_present":
                r["status"], r["result_message"] = "written", None
    return {r["object_id"]: r for r in rows}


@pytest.fixture(scope="module")
def local(sample_export: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("local")
    assert main(["run", str(sample_export), "--out", str(base / "out"), "--run", "r",
                 "--manifests", str(base / "m"), "--workers", "2", "--quiet"]) == 0
    return base


def test_a_run_on_the_cluster_equals_the_local_run(cluster: Cluster, sample_export: Path,
                                                   local: Path, tmp_path: Path) -> None:
    code = main(["run", str(sample_export), "--out", str(tmp_path / "out"), "--run", "r",
                 "--manifests", str(tmp_path / "m"), "--scheduler", cluster.address, "--quiet"])
    assert code == 0
    assert content_digest(tmp_path / "out") == content_digest(local / "out")
    assert result_rows(tmp_path / "m", "r") == result_rows(local / "m", "r")
    # the audit's per-object work runs there too: verify on the cluster equals verify here
    for m, where in ((tmp_path / "m", ["--scheduler", cluster.address]), (local / "m", [])):
        assert main(["verify", "--run", "r", "--manifests", str(m), "--all", "--quiet",
                     *where]) == 0
    verified = [{r["object_id"]: (r["verify_status"], r["pixel_compared"], r["output_sha256"])
                 for r in manifest.read_stage(m, "r", "verify").to_pylist()}
                for m in (tmp_path / "m", local / "m")]
    assert verified[0] == verified[1] and len(verified[0]) > 100


def test_a_killed_worker_loses_only_its_batch(cluster: Cluster, sample_export: Path,
                                              local: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "INVENTORY_BATCH", 4)  # many small batches to kill one of
    monkeypatch.setattr(pipeline, "WRITE_BATCH", 4)
    m, out = tmp_path / "m", tmp_path / "out"
    pipeline.inventory([sample_export], run="r", manifests=m, scheduler=cluster.address)
    pipeline.plan(run="r", manifests=m, scheduler=cluster.address)
    results = manifest.stage_dir(m, "r", "result")
    victim = cluster.workers[0]
    killed = threading.Event()

    def kill_when_writing() -> None:
        while not manifest.part_names(results) and not killed.is_set():
            time.sleep(0.01)
        os.kill(victim.pid, signal.SIGKILL)
        killed.set()

    killer = threading.Thread(target=kill_when_writing)
    killer.start()
    try:
        pipeline.write(run="r", out=out, manifests=m, scheduler=cluster.address)
    except Exception:  # noqa: BLE001 - the step may fail with its worker: a re-run resumes
        pass
    killed.set()
    killer.join()
    assert victim.wait(timeout=10) == -signal.SIGKILL
    written = pipeline.write(run="r", out=out, manifests=m, scheduler=cluster.address)
    assert written.failed == 0
    assert content_digest(out) == content_digest(local / "out")
    assert result_rows(m, "r", placed=True) == result_rows(local / "m", "r")
    cluster.workers[0] = cluster.start_worker()  # for the tests after this one
    cluster.wait_for(2)


def test_an_unreachable_scheduler_is_a_clear_error(sample_export: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from migrate_fs.execution import dask

    monkeypatch.setattr(dask, "CONNECT_TIMEOUT", "2s")
    with pytest.raises(ClusterError, match="cannot reach the dask scheduler at tcp://127.0.0.1:9"):
        pipeline.inventory([sample_export], run="r", manifests=tmp_path,
                           scheduler="tcp://127.0.0.1:9")
