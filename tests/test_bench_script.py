"""The parts of scripts/bench.py (exports, selection, CPU per object, targets, tables; the
execution backends' shard driver and dask cluster, run for real on the sample export) and
scripts/replicate_inventory.py, the scale rows' inventories."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def measurement(bench, seconds, user, system, others=0.0, error=None):
    return bench.Measurement(1, seconds, 0, 100.0, 150.0, 100.0, 0.0, others,
                             {"cpu_user_s": user, "cpu_system_s": system}, error)


def result(bench, method, files, *runs, size=10**6):
    r = bench.MethodResult(method, method, files, size)
    r.measurements = [measurement(bench, *run) for run in runs]
    return r


def test_headers_exports_are_the_plain_ones_plus_the_flag(bench):
    for quick in (False, True):
        specs = bench.export_specs(quick, 1.0)
        for name in ("images", "tiny"):
            headers = specs[f"{name}-headers"]
            assert headers.args == (*specs[name].args, "--realistic-headers")
            assert headers.key != specs[name].key
            assert "realistic scanner header" in headers.description
    quick, full = bench.export_specs(True, 0.1), bench.export_specs(False, 1.0)
    assert quick["tiny-headers"].args != full["tiny-headers"].args  # --quick: 10x smaller


def test_only_accepts_the_new_sections_and_write_method(bench):
    args = bench.parse_args(["--only", "tiny-headers", "images-headers", "--quick"])
    sections, chosen = bench.selection(args.only)
    assert sections == ["images-headers", "tiny-headers"]
    assert "write-2" in [m.name for m in chosen]
    sections, chosen = bench.selection(["write-2"])
    assert sections == list(bench.SECTIONS)
    assert [m.name for m in chosen] == ["cp", "write-2"]
    assert bench.selection(["tar"])[0] == ["images", "tiny", "multiframe"]


def test_gdcmscanner_scans_the_15_identification_tags(bench):
    assert len(bench.GDCM_TAGS) == len(set(bench.GDCM_TAGS)) == 15
    assert {"0002,0010", "0008,0005", "0008,0018", "0020,0013"} <= set(bench.GDCM_TAGS)
    argv = next(m for m in bench.methods() if m.name == "gdcmscanner").argv(
        bench.Export(bench.export_specs(True, 0.1)["tiny"], Path("/x"), 1, 1, {}), Path("/w"))
    assert argv.count("-t") == 15


def test_write_method_is_prepared_and_writes_into_its_work_folder(bench):
    write = next(m for m in bench.methods() if m.name == "write-2")
    assert write.prepare is bench.prepare_write
    assert "write-2" in bench.MIGRATE_FS_METHODS
    work = Path("/w")
    argv = write.argv(None, work)
    assert argv[argv.index("--out") + 1] == str(work / "out")
    assert argv[argv.index("--manifests") + 1] == str(work / "manifests")
    assert argv[argv.index("--workers") + 1] == "2"


def test_a_failing_preparation_is_a_failed_run_without_the_command(bench, tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "TMP_DIR", tmp_path)

    def prepare(export, workdir):
        raise RuntimeError("untimed plan failed")

    def argv(export, workdir):
        raise AssertionError("the command must not run")

    export = bench.Export(bench.export_specs(True, 0.1)["tiny"], tmp_path / "src", 1, 1, {})
    method = bench.Method("m", "m", argv, prepare=prepare)
    m = bench.run_method(method, export, 2, timeout=5)
    assert not m.ok and "untimed plan failed" in m.error and m.repetition == 2
    assert not (tmp_path / "tiny" / "m").exists()


def test_cpu_per_object_is_the_median_of_user_plus_system_over_undisturbed_runs(bench):
    r = result(bench, "write-2", 1000, (2.0, 0.5, 0.1), (2.0, 0.3, 0.6), (2.0, 0.6, 0.5),
               (2.0, 9.0, 9.0, 0.9))  # the last run was disturbed: left out
    assert r.cpu_total_seconds == pytest.approx(0.9)  # the median of 0.6, 0.9 and 1.1
    assert r.cpu_ms_per_object == pytest.approx(0.9)
    assert r.cpu_seconds == pytest.approx((0.5, 0.5))  # the user and system medians
    assert bench.MethodResult("x", "x", 10, 10).cpu_ms_per_object is None
    json = bench.to_json(r)
    assert json["cpu_ms_per_object"] == pytest.approx(0.9)
    assert json["cpu_seconds_total"] == pytest.approx(0.9)


def test_export_table_shows_cpu_per_object_next_to_wall_time(bench):
    export = bench.Export(bench.export_specs(True, 0.1)["tiny"], Path("/x"), 2000, 10**7, {})
    results = {"cp": result(bench, "cp", 2000, (1.0, 0.1, 0.3)),
               "write-2": result(bench, "write-2", 2000, (2.0, 0.4, 0.2))}
    lines = bench.export_table(export, results).splitlines()
    headers = [c.strip() for c in lines[2].strip("|").split("|")]
    assert headers[1:5] == ["median s", "CPU ms/object", "runs s", "CPU s user+sys"]
    write = [c.strip() for c in lines[-1].strip("|").split("|")]
    assert write[1:5] == ["2.00", "0.300", "2.00", "0.4+0.2"]


def test_ratio_and_ceiling_targets(bench):
    at_most = bench.ratio_target("t", 0.2, 0.25, 1.0, "ms", at_most=True, digits=3)
    assert (at_most.met, at_most.threshold) == (True, "<= 1x")
    assert "0.200 vs 0.250 ms" in at_most.value
    assert bench.ratio_target("t", 0.3, 0.25, 1.0, "ms", at_most=True).met is False
    assert bench.ratio_target("t", 3.1, 1.0, 3.0, "files/s").met is True
    assert bench.ratio_target("t", None, 1.0, 3.0, "files/s").status == "n/a"
    assert bench.ceiling_target("w", 0.29, 0.3, "ms").met is True
    assert bench.ceiling_target("w", 0.31, 0.3, "ms").status == "not met"
    assert bench.ceiling_target("w", None, 0.3, "ms").status == "n/a"


def test_check_targets_has_the_issue_13_rows(bench):
    tiny = {"inventory": result(bench, "inventory", 1000, (1.0, 0.15, 0.05)),
            "gdcmscanner": result(bench, "gdcmscanner", 999, (0.5, 0.2, 0.05)),
            "write-2": result(bench, "write-2", 1000, (1.0, 0.25, 0.1)),
            "run-2": result(bench, "run-2", 1000, (1.0, 1.0, 0.1)),
            "naive-2": result(bench, "naive-2", 1000, (2.5, 4.0, 0.1))}
    targets = {t.name: t for t in bench.check_targets({}, {"tiny": tiny}, None)}
    inventory = targets["inventory CPU per object on 'tiny' vs gdcmscanner (15 tags)"]
    assert inventory.met is True  # 0.2 vs 0.25 ms per object
    write = targets["write CPU per object on 'tiny' (migrate-fs write, 2 workers)"]
    assert (write.met, write.value, write.threshold) == (False, "0.350 ms", "<= 0.3 ms")
    naive = targets["full run on 'tiny' vs naive pydicom (files/s, 2 workers each)"]
    assert naive.met is False and naive.value.startswith("2.50x")
    for name in ("images", "images-headers", "tiny-headers"):
        assert targets[f"full run on '{name}' vs naive pydicom (files/s, 2 workers each)"].met \
            is None
    assert targets["inventory CPU per object on 'tiny-headers' vs gdcmscanner (15 tags)"].met \
        is None
    main = "peak RSS per migrate-fs process, main included (issue 14: the plan in memory)"
    assert targets[main].met is True
    assert targets["peak RSS per worker"].status == "n/a"  # no worker was sampled
    run = tiny["run-2"]
    run.measurements[0].details["sampled_worker_rss_mb"] = 310.0
    targets = {t.name: t for t in bench.check_targets({}, {"tiny": tiny}, None)}
    assert targets["peak RSS per worker"].met is False
    assert targets["peak RSS per worker"].value == "310 MB (tiny/run-2)"


def test_cpu_milliseconds_keep_their_precision_where_the_targets_need_it(bench):
    assert bench.fmt_ms(0.2874) == "0.287"
    assert bench.fmt_ms(1375.0) == "1,375.0"
    assert bench.fmt_ms(None) == "n/a"


# --------------------------------------------------------------------------- scale rows


REPLICATE = SCRIPT.with_name("replicate_inventory.py")


@pytest.fixture(scope="module")
def replicate():
    spec = importlib.util.spec_from_file_location("replicate_inventory_test", REPLICATE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def repeated(values):
    """How many values repeat an earlier one (nulls and empty values left out)."""
    present = [v for v in values if v]
    return len(present) - len(set(present))


def test_a_real_inventory_replicated_keeps_each_copys_duplicates_and_nothing_else(
        replicate, pydicom_export, tmp_path):
    import pyarrow.parquet as pq

    from migrate_fs import manifest
    from migrate_fs.cli import main

    manifests = tmp_path / "m"
    assert main(["inventory", str(pydicom_export), "--run", "base", "--manifests",
                 str(manifests), "--workers", "1", "--quiet"]) == 0
    base = manifest.read_stage(manifests, "base", "inventory")
    n = base.num_rows
    rows = 15 * n + n // 3  # about 3,000: the last copy is cut
    assert rows % n and repeated(base.column("sop_instance_uid").to_pylist()) > 0
    done = replicate.write_replica(manifests / "base", manifests / "big", rows)
    assert (done["rows"], done["copies"], done["base_rows"]) == (rows, 16, n)
    parts = sorted((manifests / "big" / "inventory").glob("*.parquet"))
    sizes = [pq.read_metadata(p).num_rows for p in parts]
    assert sum(sizes) == rows and set(sizes[:-1]) == {1024} and sizes[-1] <= 1024
    assert (json.loads((manifests / "big" / "run.json").read_text())["sources"]
            == manifest.read_run_info(manifests, "base")["sources"])

    table = manifest.read_stage(manifests, "big", "inventory")
    assert table.num_rows == rows and table.slice(0, n).equals(base)  # copy 0 is the base
    for column in ("object_id", "locator"):
        assert len(set(table.column(column).to_pylist())) == rows
    copies = [table.slice(k * n, n) for k in range(16)]
    assert copies[-1].num_rows == rows - 15 * n
    seen: set[str] = set()
    for k, copy in enumerate(copies):
        uids = copy.column("sop_instance_uid").to_pylist()
        original = base.column("sop_instance_uid").to_pylist()[:copy.num_rows]
        assert repeated(uids) == repeated(original)  # duplicates inside a copy collide
        distinct = {u for u in uids if u}
        assert not distinct & seen  # ... and across copies nothing does
        seen |= distinct
        assert all(len(u) <= 64 for u, o in zip(uids, original, strict=True)
                   if u and len(o) <= 64)
        for column in ("study_instance_uid", "series_instance_uid", "patient_id"):
            values = copy.column(column).to_pylist()
            assert [bool(v) for v in values] == [bool(v) for v in
                                                 base.column(column).to_pylist()[:len(values)]]
        assert copy.column("problems").equals(base.column("problems").slice(0, copy.num_rows))
        if k:
            assert all(loc.startswith(f"/replica-{k:06d}/")
                       for loc in copy.column("locator").to_pylist())
    # A UID inside the elements column (a reference to an instance) is replaced like the
    # columns, its padding and length parity kept.
    def references(copy):
        return [(e["tag"], e["value"]) for row in copy.column("elements").to_pylist()
                for e in row if e["tag"].endswith("(0008,1155)")]

    originals, copied = references(copies[0]), references(copies[3])
    assert originals and len(copied) == len(originals)
    for (tag, old), (new_tag, new) in zip(originals, copied, strict=True):
        assert tag == new_tag and new != old and len(new) % 2 == len(old) % 2
        assert new.rstrip(b"\0") == old.rstrip(b"\0") + b".3" or new.startswith(b"2.25.")

    assert main(["plan", "--run", "big", "--manifests", str(manifests), "--quiet"]) == 0
    plan = manifests / "big" / "plan"
    assert sum(pq.read_metadata(p).num_rows for p in plan.glob("*.parquet")) == rows
    actions = manifest.read_stage(manifests, "big", "plan", ["action"]).column("action")
    assert actions.null_count == 0


def test_a_cached_replica_is_reused_until_its_key_changes(replicate, pydicom_export, tmp_path):
    from migrate_fs.cli import main

    manifests = tmp_path / "m"
    assert main(["inventory", str(pydicom_export / "charset_files"), "--run", "base",
                 "--manifests", str(manifests), "--workers", "1", "--quiet"]) == 0
    out = manifests / "r"
    first = replicate.cached_replica(manifests / "base", "k1", out, 100)
    assert first["cached"] is False and first["rows"] == 100
    assert replicate.cached_replica(manifests / "base", "k1", out, 100)["cached"] is True
    assert replicate.cached_replica(manifests / "base", "k2", out, 100)["cached"] is False
    assert replicate.cached_replica(manifests / "base", "k2", out, 101)["cached"] is False
    next(out.glob("inventory/*.parquet")).unlink()  # an incomplete replica is made again
    assert replicate.cached_replica(manifests / "base", "k2", out, 101)["cached"] is False


def test_uids_and_ids_of_a_copy(replicate):
    import pyarrow as pa

    uids = pa.array(["1.2.3", "1.2", "", None, "1." + "2" * 62, "9" * 70], pa.string())
    prefixes = replicate.long_prefixes(uids.to_pylist())
    base = pa.array(["1.2.3", "1.2"], pa.string())
    out = replicate.copy_uids(uids, prefixes, 3, base).to_pylist()
    assert out[0] == "1.2.3.3"
    assert out[1].startswith("2.25.") and out[1].endswith("00000003")  # 1.2.3 is taken
    assert out[2:4] == ["", None]
    assert out[4].startswith("2.25.") and len(out[4]) <= 64  # 64 + 2 would be too long
    assert out[5] == "9" * 70 + ".3"  # already invalid: stays invalid
    assert replicate.copy_uids(uids, prefixes, 4, base).to_pylist()[1] != out[1]
    ids = pa.array(["A123", "A" * 16, "", None, "B" * 20], pa.string())
    assert replicate.copy_ids(ids, 12, 16).to_pylist() == [
        "A123-12", "A" * 13 + "-12", "", None, "B" * 20 + "-12"]


def test_scale_rows_option_and_sizes(bench):
    assert bench.parse_args([]).scale_rows == [1_000_000, 5_000_000, 10_000_000]
    assert bench.parse_args(["--quick"]).scale_rows == [100_000, 500_000]
    assert bench.parse_args(["--scale-rows", "10M,1m,100k,2_000"]).scale_rows == [
        2_000, 100_000, 1_000_000, 10_000_000]
    with pytest.raises(SystemExit):
        bench.parse_args(["--scale-rows", "0"])
    assert bench.parse_args([]).scale_timeout > bench.PLAN_TARGET_SECONDS
    assert bench.selection(["scale"])[0] == ["scale"]


def scale_run(bench, rows, seconds, cpu, rss, decided=None):
    m = bench.Measurement(1, seconds, 0, rss, rss * 2, rss, 0.0, 0.0,
                          {"cpu_user_s": cpu * 0.9, "cpu_system_s": cpu * 0.1})
    return bench.ScaleRun(rows, rows // 1024 + 1, rows / 5000, 1.0, True,
                          rows if decided is None else decided, m)


def test_plan_targets_of_issue_14(bench):
    runs = [scale_run(bench, 1_000_000, 60.0, 100.0, 1000.0),
            scale_run(bench, 5_000_000, 320.0, 500.0, 1200.0),
            scale_run(bench, 10_000_000, 700.0, 1000.0, 1400.0)]
    targets = {t.name.split(" (")[0]: t for t in bench.plan_targets({"runs": runs})}
    assert targets["plan on 10,000,000 rows: wall time"].met is True
    assert targets["plan on 10,000,000 rows: peak RSS of the largest process"].met is True
    assert targets["plan: every row decided"].met is True
    flat = targets["plan memory flat from 1,000,000 to 10,000,000 rows"]
    assert flat.met is True and flat.value.endswith(": flat") and flat.value.startswith("1.40x")
    linear = targets["plan time linear from 1,000,000 to 10,000,000 rows"]
    assert linear.met is True and linear.value.startswith("1.17x")
    paper = targets["plan on 10^8 objects, one 16-core node"]
    assert paper.met is None and paper.value.startswith("10 min")  # 100 us x 10^8 / 16: 625 s
    assert bench.paper_estimate_seconds(runs[-1]) == pytest.approx(100e-6 * 10**8 / 16)

    runs[-1] = scale_run(bench, 10_000_000, 1000.0, 1000.0, 3500.0, decided=9_999_999)
    targets = {t.name.split(" (")[0]: t for t in bench.plan_targets({"runs": runs})}
    assert targets["plan on 10,000,000 rows: wall time"].met is False
    assert targets["plan on 10,000,000 rows: peak RSS of the largest process"].met is False
    assert targets["plan: every row decided"].met is False
    assert targets["plan memory flat from 1,000,000 to 10,000,000 rows"].value.endswith(
        ": not flat")
    small = {t.name: t for t in bench.plan_targets({"runs": runs[:1]})}
    assert small["plan on 1,000,000 rows: wall time"].met is None  # the target is for 10^7
    assert bench.plan_targets(None)[0].status == "n/a"
    table = bench.scale_table({"runs": runs, "export": "tiny-headers", "base_rows": 20_000,
                               "workers": 2})
    assert "--workers 2" in table and "10^8 (paper, 16 cores)" in table
    assert "9,999,999 (not all)" in table


def test_write_main_process_targets_of_issue_14(bench):
    def with_main(method, files, main):
        r = result(bench, method, files, (5.0, 1.0, 0.5))
        r.measurements[0].details["sampled_main_rss_mb"] = main
        return r

    results = {"tiny": {"write-2": with_main("write-2", 20_000, 180.0),
                        "run-2-tar": with_main("run-2-tar", 20_000, 330.0)},
               "images": {"write-2": with_main("write-2", 2_000, 170.0),
                          "run-2-tar": with_main("run-2-tar", 2_000, 210.0)}}
    targets = {t.name: t for t in bench.write_main_targets(results)}
    write = targets["main-process RSS of write (write-2) on 'tiny' (issue 14; was 263 MB)"]
    assert (write.met, write.value, write.threshold) == (True, "180 MB", "< 200 MB")
    tar = targets["main-process RSS of run of the tar (run-2-tar) on 'tiny' (issue 14; was 330 MB)"]
    assert tar.met is False
    flat = "main-process RSS of {} flat: 'tiny' vs 'images' (10x the objects)"
    assert targets[flat.format("write (write-2)")].met is True  # 1.06x
    assert targets[flat.format("run of the tar (run-2-tar)")].met is False  # 1.57x
    names = {t.name for t in bench.check_targets({}, results, None)}
    assert set(targets) <= names


# --------------------------------------------------------------------------- execution (issue 15)


def export_of(bench, path, files=1000, size=10**7):
    return bench.Export(bench.export_specs(True, 0.1)["tiny"], path, files, size, {})


def result_rows(manifests):
    from migrate_fs import manifest

    rows = manifest.read_stage(manifests, "bench", "result").to_pylist()
    return {r["object_id"]: r for r in rows}


@pytest.fixture(scope="module")
def local_run(sample_export, tmp_path_factory):
    """``migrate-fs run`` of the sample export, 2 workers: what the backends must equal."""
    from migrate_fs.cli import main

    base = tmp_path_factory.mktemp("local")
    assert main(["run", str(sample_export), "--out", str(base / "out"), "--run", "bench",
                 "--manifests", str(base / "manifests"), "--workers", "2", "--quiet"]) == 0
    return base


def test_the_two_shard_driver_timed_as_one_command_equals_the_local_run(
        bench, sample_export, local_run, tmp_path, monkeypatch):
    from conftest import content_digest

    from migrate_fs import manifest

    monkeypatch.setattr(bench, "QUIET_MAX_WAIT", 0.0)
    export = export_of(bench, sample_export)
    method = next(m for m in bench.methods() if m.name == "shards-2")
    assert method.exports == ("images", "tiny") and not method.cluster
    m = bench.measure(method.argv(export, tmp_path), tmp_path, 1, timeout=300)
    assert m.ok, m.error
    details = method.inspect(export, tmp_path)
    m.details.update(details)  # as run_method does
    shards = details["shards"]
    one_command = bench.plan_has("--shard", "run")
    assert list(shards["seconds"]) == (["run"] if one_command else ["inventory", "plan", "write"])
    assert sum(shards["seconds"].values()) <= m.seconds
    assert shards["plan"] == ("sharded, in run --shard" if one_command else
                              "sharded" if bench.plan_has("--shard") else "one, --workers 2")
    # every migrate-fs process ran below the timed command: its CPU and largest process
    assert m.details["cpu_user_s"] + m.details["cpu_system_s"] > 1.0
    assert m.peak_rss_mb > 60  # a migrate-fs process, not the driver alone
    inventory = manifest.part_names(manifest.stage_dir(tmp_path / "manifests", "bench",
                                                       "inventory"))
    assert {n[:14] for n in inventory if n.startswith("part-")} == {
        "part-s000of002", "part-s001of002"}  # each shard inventoried its own objects
    results = manifest.part_names(manifest.stage_dir(tmp_path / "manifests", "bench", "result"))
    assert results and all(n.startswith("part-s00") and n[11:14] == "002" for n in results
                           if n.startswith("part-"))
    assert content_digest(tmp_path / "out") == content_digest(local_run / "out")
    assert result_rows(tmp_path / "manifests") == result_rows(local_run / "manifests")
    assert details["result_status"] == Counter(
        r["status"] for r in result_rows(local_run / "manifests").values())
    notes = bench.method_notes(export, bench.MethodResult("shards-2", "s", 1, 1, [m]))
    assert ("run" if one_command else "inventory") in notes
    assert f"(plan: {shards['plan']})" in notes


def test_a_failing_shard_stops_the_others_of_its_step(tmp_path):
    """Shard 1's inventory fails at once; shard 0's would run a minute (a sharded plan waits
    for the other shards forever): the driver stops it and fails."""
    driver = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("bench_driver", {str(SCRIPT)!r})
bench = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = bench
spec.loader.exec_module(bench)
bench.migrate_fs_argv = lambda *args: [sys.executable, "-c", "raise SystemExit(3)"
                                       if "1/2" in args else "import time; time.sleep(60)"]
sys.exit(bench.shards_main(["src", "out", "m", "r"]))
"""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert time.monotonic() - started < 20
    assert done.returncode == 1 and done.stdout == ""
    assert "inventory of shard 1/2 failed (exit status 3); the others were stopped" in done.stderr


def test_dask_runs_on_a_cluster_started_once_whose_processes_count(
        bench, sample_export, local_run, tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "QUIET_MAX_WAIT", 0.0)
    monkeypatch.setattr(bench, "TMP_DIR", tmp_path)
    export = export_of(bench, sample_export)
    dask = next(m for m in bench.methods() if m.name == "dask-2")
    results = bench.benchmark_export(export, [dask], 2, {}, timeout=300, pretouch_enabled=False)
    r = results["dask-2"]
    assert r.skipped is None and [m.error for m in r.measurements] == [None, None]
    assert export.cluster is None  # stopped, and no process of it is left
    for pid in os.listdir("/proc"):
        with contextlib.suppress(OSError):
            assert str(tmp_path / "dask") not in Path(f"/proc/{pid}/cmdline").read_text()
    local = Counter(row["status"] for row in result_rows(local_run / "manifests").values())
    for m in r.measurements:
        assert m.details["result_status"] == local
        watched = m.details["watched_rss_mb"]
        assert set(watched) == {"scheduler", "worker-0", "worker-1"}
        assert min(watched.values()) > 50 and m.peak_rss_mb >= max(watched.values())
        assert m.details["watched_cpu_s"] > 0.1  # the workers did the work ...
        cpu = m.details["cpu_user_s"] + m.details["cpu_system_s"]
        assert cpu > m.details["watched_cpu_s"]  # ... counted with the command's ...
    first, second = (m.details["watched_cpu_s"] for m in r.measurements)
    assert second < first  # ... during the run only: the first run pays the workers'
    # imports of migrate_fs; counted from their start, the second would hold the first
    assert "worker-0" in bench.worker_rss(r)


def test_ratios_and_targets_of_the_execution_backends(bench):
    def with_workers(r, **peaks):
        for m in r.measurements:
            m.details["watched_rss_mb"] = peaks
        return r

    tiny = {"run-1": result(bench, "run-1", 1000, (20.0, 15.0, 1.0)),
            "run-2": result(bench, "run-2", 1000, (10.0, 16.0, 2.0)),
            "shards-2": result(bench, "shards-2", 1000, (12.0, 18.0, 2.0)),
            "dask-2": with_workers(result(bench, "dask-2", 1000, (10.5, 17.0, 3.0)),
                                   scheduler=120.0, **{"worker-0": 250.0, "worker-1": 262.0})}
    images = {"run-2": result(bench, "run-2", 200, (4.0, 6.0, 1.0)),
              "dask-2": result(bench, "dask-2", 200, (5.0, 6.0, 1.0))}
    results = {"tiny": tiny, "images": images}
    targets = {t.name: t for t in bench.execution_targets(results)}
    dask = targets["dask vs local 2 workers on 'tiny' (files/s)"]
    assert (dask.met, dask.threshold) == (True, ">= 0.9x")
    assert dask.value == "0.95x (95 vs 100 files/s)"
    shards = targets["2 shards vs local 2 workers on 'tiny' (files/s)"]
    assert shards.met is False and shards.value.startswith("0.83x")
    assert targets["dask vs local 2 workers on 'images' (files/s)"].met is False  # 0.80x
    assert targets["2 shards vs local 2 workers on 'images' (files/s)"].status == "n/a"
    assert set(targets) <= {t.name for t in bench.check_targets({}, results, None)}

    exports = {name: export_of(bench, Path("/x"), files) for name, files in
               (("tiny", 1000), ("images", 200))}
    tables = bench.execution_tables(exports, results)
    assert len(tables) == 2 and "'images'" in tables[0] and "'tiny'" in tables[1]
    lines = tables[1].splitlines()
    headers = [c.strip() for c in lines[4].strip("|").split("|")]
    assert headers[:8] == ["method", "median s", "runs s", "files/s", "x local 2",
                           "CPU ms/object", "peak RSS MB", "per worker RSS MB"]
    rows = {row[0]: row for row in ([c.strip() for c in line.strip("|").split("|")]
                                     for line in lines[6:])}
    assert [row[4] for row in rows.values()] == ["0.50", "1.00", "0.83", "0.95"]
    dask_row = rows["dask-2"]
    assert dask_row[5] == "20.0"  # 17 + 3 CPU seconds over 1,000 objects
    assert dask_row[7] == "scheduler 120, worker-0 250, worker-1 262"
    tiny["shards-2"].measurements[0].details["shards"] = {
        "seconds": {"inventory": 3.0, "plan": 5.5, "write": 3.5}, "plan": "sharded"}
    shards_row = bench.execution_tables(exports, results)[1].splitlines()[-2]
    assert "inventory 3.0 s, plan 5.5 s, write 3.5 s (plan: sharded)" in shards_row
    assert bench.execution_tables(exports, {"tiny": {"run-2": tiny["run-2"]}}) == []


def test_the_scale_row_on_dask(bench):
    dask = scale_run(bench, 500_000, 30.0, 40.0, 450.0)
    dask.measurement.details["watched_rss_mb"] = {"scheduler": 150.0, "worker-0": 449.6}
    scale = {"runs": [], "dask": dask, "export": "tiny-headers", "base_rows": 2_000,
             "workers": 2}
    row = bench.scale_table(scale).splitlines()[-1]
    assert row.startswith("| 500,000 on dask (2 workers) | 489 (100 MB) | 30.0 | 40.0 | 80.0 |")
    assert row.endswith("ok; peak RSS MB: scheduler 150, worker-0 450 |")
    assert bench.plan_targets(scale)[0].status == "n/a"  # the local plan's targets: not run
    scale = {**scale, "dask": None, "dask_error": "RuntimeError('no scheduler')"}
    assert "failed: RuntimeError('no scheduler')" in bench.scale_table(scale)


def test_only_execution_and_scale_dask(bench):
    sections, chosen = bench.selection(bench.parse_args(["--only", "execution"]).only)
    assert sections == ["images", "tiny"]
    assert [m.name for m in chosen] == ["cp", "run-1", "run-2", "shards-2", "dask-2"]
    assert bench.selection(["scale-dask"])[0] == ["scale-dask"]
    sections, chosen = bench.selection([])  # the default run has both
    assert "scale-dask" in sections and {"shards-2", "dask-2"} <= {m.name for m in chosen}
