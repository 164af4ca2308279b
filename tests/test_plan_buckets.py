"""The plan in part groups and hash buckets: the same plan, row for row, for any bucket count,
group size and worker count, on disk as in memory; and no whole-run table on the way."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from migrate_fs import manifest, pipeline, planning
from migrate_fs.cli.main import main
from migrate_fs.config import parse_config
from migrate_fs.manifest import SCHEMAS
from migrate_fs.plan import make_plan
from migrate_fs.plan.buckets import bucket_of, key_hash
from migrate_fs.plan.hashes import Digest


def test_bucket_numbers_are_stable_and_spread() -> None:
    uids = pa.array([f"1.2.826.0.1.3680043.8.498.{i}" for i in range(7000)] + ["", None])
    buckets = bucket_of(uids, 7)
    # the same value gets the same bucket whatever array holds it (sliced, chunked, typed)
    assert (bucket_of(uids.slice(3000), 7) == buckets[3000:]).all()
    assert (bucket_of(pa.chunked_array([uids.slice(0, 10), uids.slice(10)]), 7) == buckets).all()
    assert (bucket_of(uids.cast(pa.large_string()), 7) == buckets).all()
    assert buckets[-1] == buckets[-2]  # a null is bucketed as the empty string
    counts = np.bincount(buckets[:7000], minlength=7)
    assert counts.min() > 800 and counts.max() < 1200, counts  # 1000 each, give or take
    assert (bucket_of(uids, 1) == 0).all()
    # the hash is FNV-1a with a final mix, as this plain loop computes it: no two of the
    # 7,000 UIDs (which differ only in their last digits) share one
    hashes = key_hash(uids)
    assert len(set(hashes[:7000].tolist())) == 7000
    assert hashes[:50].tolist() == [fnv1a(u) for u in uids.slice(0, 50).to_pylist()]


def fnv1a(text: str) -> int:
    h = 0xCBF29CE484222325
    for byte in text.encode():
        h = ((h ^ byte) * 0x100000001B3) % 2**64
    h ^= h >> 31
    h = (h * 0x94D049BB133111EB) % 2**64
    return h ^ (h >> 29)
    # a value's bucket does not depend on the other values
    assert bucket_of(pa.array(["1.2.3", "1.2.3.4", "P1"]), 64).tolist() == \
        bucket_of(pa.array(["P1", "1.2.3.4", "1.2.3"]), 64).tolist()[::-1]


# --- in memory: a crafted inventory with every kind of whole-run decision ------------------

BASE = {"kind": "part10", "size": 10, "transfer_syntax": "1.2.840.10008.1.2",
        "sop_class_uid": "1.2.840.10008.5.1.4.1.1.7", "study_instance_uid": "1.2.3",
        "series_instance_uid": "1.2.3.4", "problems": []}


def crafted(n: int, seed: int) -> tuple[pa.Table, dict[str, str]]:
    """Rows whose SOPInstanceUIDs, pixel signatures and paths collide in every way the plan
    decides: identical copies, conflicts, copies with the pixels of another UID, paths that
    differ only in letter case, blocked rows; and the content label of each locator."""
    rng = random.Random(seed)
    rows, labels = [], {}
    for i in range(n):
        uid = rng.choice([f"1.2.{rng.choice('Aa')}{rng.randrange(n // 4)}",
                          f"1.5.{rng.randrange(n // 3)}", f"1.6.{i}"])
        row = {**BASE, "locator": f"/x/{rng.randrange(10**6):06d}-{i}", "object_id": f"o{i}",
               "sop_instance_uid": uid, "mtime_ns": rng.randrange(4),
               "patient_id": rng.choice(["P1", "P2"]), "instance_number": str(i % 5),
               "pixel_data_length": rng.choice([None, 100, 200])}
        if rng.random() < 0.05:
            row["problems"] = [{"code": "not_dicom", "message": "junk"}]
        rows.append(row)
        labels[row["locator"]] = rng.choice(["one", "two", row["locator"]])
    return pa.Table.from_pylist(rows, schema=SCHEMAS["inventory"]), labels


def labelled(labels: dict[str, str]):
    def hashes(rows: list[dict]) -> dict[str, Digest | str]:
        found: dict[str, Digest | str] = {}
        for r in rows:
            label = labels[r["locator"]]
            found[r["object_id"]] = "OSError: cannot read" if label.endswith("7") else \
                Digest(label, f"pixels-{label[:3]}", {"(0010,0010)": label})
        return found
    return hashes


CONFIGS = [{}, {"duplicates": {"conflict": "keep_all", "content_duplicates": "skip"}},
           {"duplicates": {"conflict": "keep_newest_file", "content_duplicates": "off"}}]


@pytest.mark.parametrize("settings", CONFIGS, ids=["defaults", "keep_all", "newest"])
def test_any_bucket_count_and_group_size_gives_the_same_plan(settings: dict) -> None:
    table, labels = crafted(600, seed=len(settings))
    config = parse_config(settings)
    reference = make_plan(table, config, hashes=labelled(labels)).table(table).to_pylist()
    reasons = {r["reason"] for r in reference}
    # the crafted rows reach every whole-run decision the configuration can make
    assert {"output_path_collision", "unreadable_source", "not_dicom"} <= reasons, reasons
    if config.conflict == "keep_all":
        assert "content_duplicate" in reasons
        assert any(c["rule"] == "duplicate_new_uid" for r in reference for c in r["changes"])
    else:
        assert {"duplicate", "uid_conflict"} <= reasons
    for buckets, group_rows in ((7, 50), (64, 7), (3, 599), (1, 1)):
        found = make_plan(table, config, hashes=labelled(labels), buckets=buckets,
                          group_rows=group_rows).table(table).to_pylist()
        assert found == reference, (buckets, group_rows)


# --- on disk: real exports, real workers ---------------------------------------------------

def rows_by_id(folder: Path) -> dict[str, dict[str, Any]]:
    names = sorted(manifest.part_names(folder))
    rows = [r for n in names for r in manifest.read_part(folder, n, "plan").to_pylist()]
    return {r["object_id"]: r for r in rows}


def with_copies(export: Path, to: Path) -> Path:
    """A copy of ``export`` with a second copy of some objects, the last byte of one changed
    (the same SOPInstanceUID with other pixel values)."""
    shutil.copytree(export, to)
    images = sorted(p for p in to.rglob("*") if p.is_file() and p.stat().st_size > 20_000)[:6]
    (to / "copies").mkdir()
    for i, image in enumerate(images):
        copy = to / "copies" / f"c{i}"
        shutil.copy(image, copy)
        if i == 0:
            data = bytearray(copy.read_bytes())
            data[-1] ^= 0xFF
            copy.write_bytes(bytes(data))
    return to


@pytest.mark.parametrize("which", ["pydicom", "sample"])
def test_the_plan_of_a_run_is_the_same_for_1_7_and_64_buckets(
        which: str, request: pytest.FixtureRequest, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    export = request.getfixturevalue(f"{which}_export")
    if which == "sample":  # it has no duplicates: add copies, one of them changed
        export = with_copies(export, tmp_path / "export")
    monkeypatch.setattr(pipeline, "INVENTORY_BATCH", 16)  # many parts, so many groups
    pipeline.inventory([export], run="r", manifests=tmp_path, workers=2)
    parts = manifest.part_names(manifest.stage_dir(tmp_path, "r", "inventory"))
    assert len(parts) >= 8
    plans = {}
    for buckets, workers, group_parts in ((1, 1, 1000), (7, 2, 2), (64, 2, 3)):
        monkeypatch.setattr(planning, "GROUP_PARTS", group_parts)
        done = pipeline.plan(run="r", manifests=tmp_path, workers=workers, buckets=buckets,
                             trial=f"b{buckets}")
        assert done.folder == tmp_path / "r" / "trials" / f"b{buckets}" / "plan"
        assert manifest.part_names(done.folder) == parts  # one plan part per inventory part
        plans[buckets] = rows_by_id(done.folder)
        assert not (tmp_path / "r" / planning.WORK).exists()  # the work folder is gone
    assert plans[1] == plans[7] == plans[64]
    assert len(plans[1]) == sum(1 for _ in export.rglob("*") if _.is_file())
    # and the same as the plan of the whole inventory in memory
    inventory = manifest.read_stage(tmp_path, "r", "inventory")
    whole = make_plan(inventory).table(inventory).to_pylist()
    assert {r["object_id"]: r for r in whole} == plans[1]
    decided = {r["reason"] for r in plans[1].values()}
    assert decided & {"duplicate", "transfer_syntax_variant", "uid_conflict"}, decided


def test_trial_plans_sit_beside_the_plan_and_write_executes_the_plan(
        sample_export: Path, tmp_path: Path) -> None:
    m = str(tmp_path / "m")
    export = with_copies(sample_export, tmp_path / "export")
    assert main(["inventory", str(export), "--run", "r", "--manifests", m, "--quiet"]) == 0
    assert main(["plan", "--run", "r", "--manifests", m, "--workers", "2"]) == 0
    rules = tmp_path / "rules.toml"
    rules.write_text('[duplicates]\nconflict = "keep_all"\n')
    assert main(["plan", "--run", "r", "--manifests", m, "--as", "keep-all", "--config",
                 str(rules), "--workers", "2"]) == 0
    own = rows_by_id(tmp_path / "m" / "r" / "plan")
    trial = rows_by_id(tmp_path / "m" / "r" / "trials" / "keep-all" / "plan")
    assert own.keys() == trial.keys()
    conflicts = [i for i, r in own.items() if r["reason"] == "uid_conflict"]
    assert conflicts and all(trial[i]["action"] == "migrate" for i in conflicts)
    info = manifest.read_run_info(tmp_path / "m", "r")
    assert info["trials"]["keep-all"]["config"]["conflict"] == "keep_all"
    assert info["plan"]["config"]["conflict"] == "quarantine"
    with pytest.raises(Exception, match="plain name"):
        pipeline.plan(run="r", manifests=tmp_path / "m", trial="../x")


def test_the_plan_step_never_reads_a_whole_stage(pydicom_export: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline.inventory([pydicom_export], run="r", manifests=tmp_path)

    def whole_stage(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the plan read a whole stage")

    monkeypatch.setattr(manifest, "read_stage", whole_stage)
    done = pipeline.plan(run="r", manifests=tmp_path, workers=1)  # tasks in this process
    assert done.objects == done.tally.objects > 100
    assert done.hashed is not None and done.hashed["objects"] > 0


def test_write_refuses_a_plan_that_did_not_finish(pydicom_export: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    m = tmp_path / "m"
    pipeline.inventory([pydicom_export], run="r", manifests=m)
    pipeline.plan(run="r", manifests=m)
    import migrate_fs.plan.buckets as buckets

    def killed(*args: Any) -> None:
        raise KeyboardInterrupt  # as a Ctrl-C in the middle of the plan's last phase

    monkeypatch.setattr(buckets, "_finish", killed)
    with pytest.raises(KeyboardInterrupt):
        pipeline.plan(run="r", manifests=m)
    monkeypatch.undo()
    assert main(["write", "--run", "r", "--manifests", str(m), "--out", str(tmp_path / "out"),
                 "--quiet"]) == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.dcm"))
    pipeline.plan(run="r", manifests=m)  # planned again: the write goes ahead
    assert main(["write", "--run", "r", "--manifests", str(m), "--out", str(tmp_path / "out"),
                 "--quiet", "--workers", "1"]) in (0, 3)
    assert any((tmp_path / "out").rglob("*.dcm"))
