"""The pure parts of scripts/bench.py: exports, selection, CPU per object, targets, tables."""

from __future__ import annotations

import importlib.util
import sys
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
