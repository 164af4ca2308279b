"""Streaming: no step's main process holds a whole stage; the stages are read part by part.

``write`` takes the file rows a plan part at a time into the same batches as a whole-run table
gave (the same result part names, so a write started by an earlier release resumes), and each
dump's worker reads its own plan parts; ``inventory`` finds its archives and counts its rows
part by part. The tests forbid ``manifest.read_stage`` (the whole-run reader) during the step,
and make the parts small so that batches and streams cross part boundaries.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from migrate_fs import manifest, pipeline
from migrate_fs.errors import StageMissing
from migrate_fs.execution import batched, batches, named_batches, part_key, table_rows
from migrate_fs.sample_export import make_sample_export

SMALL = {"patients": 1, "studies_per_patient": 1, "series_per_study": 2, "images_per_series": 3,
         "cr": 0, "matrix": 32, "pitfalls": False, "hostile": False}


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Plain files (junk included) and, among them, a tar of another export."""
    base = tmp_path_factory.mktemp("streaming")
    root = base / "export"
    make_sample_export(root, seed=0, **SMALL)
    make_sample_export(base / "taped", seed=1, **SMALL)
    with tarfile.open(root / "tape01", "w") as tf:  # found by content, not by name
        tf.add(base / "taped", arcname="taped")
    return root


def forbid_whole_stages(monkeypatch: pytest.MonkeyPatch) -> None:
    def whole_stage(*args: Any, **kwargs: Any) -> pa.Table:
        raise AssertionError(f"read_stage{args}: a step read a whole stage")

    monkeypatch.setattr(manifest, "read_stage", whole_stage)


def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parts of a few rows (in this process: the steps below run with one worker, in-process):
    file batches and dump streams then span several plan parts."""
    monkeypatch.setattr(pipeline, "INVENTORY_BATCH", 4)
    monkeypatch.setattr(batches, "STREAM_PART_ROWS", 5)
    monkeypatch.setattr(pipeline, "WRITE_BATCH", 3)


def inventory_and_plan(export: Path, m: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        small_parts(patch)
        forbid_whole_stages(patch)
        done = pipeline.inventory([export], run="r", manifests=m, workers=1)
    assert done.tally.objects == done.objects == manifest.stage_rows(m, "r", "inventory")
    pipeline.plan(run="r", manifests=m)  # the plan step is not streamed yet (planning.py)


def expected_part_names(m: Path) -> set[str]:
    """The result parts a write over the whole-run plan table makes (the code before
    streaming, written out again): file batches over the file rows in part order; one stream
    per dump, its key over its rows sorted by (archive, member_offset)."""
    planned = manifest.read_stage(m, "r", "plan")
    in_archive = pc.is_valid(planned.column("archive"))
    files = planned.filter(pc.invert(in_archive))
    names = {name for name, _ in named_batches(
        batched(table_rows(files), pipeline.WRITE_BATCH, lambda r: r["size"] or 0,
                pipeline.WRITE_BATCH_BYTES),
        lambda r: (r["object_id"], r["action"], r["output_path"]))}
    members = planned.filter(in_archive).sort_by([("archive", "ascending"),
                                                  ("member_offset", "ascending")])
    for archive in sorted(set(members.column("archive").to_pylist())):
        rows = members.filter(pc.equal(members.column("archive"), archive))
        key = part_key(zip(*(rows.column(c).to_pylist()
                             for c in ("object_id", "action", "output_path")), strict=True))
        count = -(-rows.num_rows // batches.STREAM_PART_ROWS)
        names |= {f"a{key}-{i:06d}" for i in range(count)}
    return names


def check_outputs(m: Path, out: Path) -> dict[str, dict[str, Any]]:
    """One result row per plan row; every written output is there with the size and hash
    its row records; returns the result rows by object_id."""
    plan = {r["object_id"]: r for r in manifest.read_stage(m, "r", "plan").to_pylist()}
    result = {r["object_id"]: r for r in manifest.read_stage(m, "r", "result").to_pylist()}
    assert result.keys() == plan.keys() and len(result) == manifest.stage_rows(m, "r", "result")
    for oid, row in result.items():
        assert row["action"] == plan[oid]["action"]
        if row["action"] == "migrate":
            assert row["status"] == "written", row
            data = (out / row["output_path"]).read_bytes()
            assert len(data) == row["output_size"]
            assert hashlib.sha256(data).hexdigest() == row["output_sha256"]
    outputs = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert outputs == {r["output_path"] for r in result.values() if r["status"] == "written"}
    return result


def comparable(rows: dict[str, dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    return {oid: (r["status"], r["reason"], r["output_path"], r["output_size"],
                  r["output_sha256"]) for oid, r in rows.items()}


def test_iter_stage_reads_each_part_with_the_current_schema(tmp_path: Path) -> None:
    folder = manifest.stage_dir(tmp_path, "r", "inventory")
    with pytest.raises(StageMissing, match="run the inventory step"):
        manifest.iter_stage(tmp_path, "r", "inventory")  # at the call, not at the first part
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"object_id": ["old"], "size": [5]}), folder / "part-0.parquet")
    manifest.write_part(folder, "part-1", [{"object_id": "new", "size": 6, "kind": "raw"},
                                           {"object_id": "two", "size": 7, "kind": "raw"}],
                        "inventory")
    manifest.write_part(folder, "a1234-000000", [{"object_id": "m", "size": 1}], "inventory")
    parts = list(manifest.iter_stage(tmp_path, "r", "inventory"))
    assert [name for name, _ in parts] == ["a1234-000000", "part-0", "part-1"]
    for _, table in parts:
        assert table.schema == manifest.SCHEMAS["inventory"]
    assert parts[1][1].column("kind").to_pylist() == [None]  # the older part: nulls
    narrow = list(manifest.iter_stage(tmp_path, "r", "inventory", ["kind", "size"],
                                      names=["part-1", "part-0"]))
    assert [(n, t.column_names, t.num_rows) for n, t in narrow] == [
        ("part-0", ["kind", "size"], 1), ("part-1", ["kind", "size"], 2)]
    assert manifest.stage_rows(tmp_path, "r", "inventory") == 4
    assert manifest.stage_rows(tmp_path, "r", "inventory", ["part-1"]) == 2
    assert manifest.read_stage(tmp_path, "r", "inventory").num_rows == 4


def test_write_streams_the_plan_and_names_parts_as_before(export: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    m, out = tmp_path / "m", tmp_path / "out"
    inventory_and_plan(export, m, monkeypatch)
    plan_parts = manifest.stage_parts(m, "r", "plan")
    streams = {n[1:].split("-")[0] for n in plan_parts if n.startswith("a")}
    assert len(streams) == 1 and sum(n.startswith("a") for n in plan_parts) > 2
    assert sum(n.startswith("part-") for n in plan_parts) > 2
    with monkeypatch.context() as patch:
        small_parts(patch)
        expected = expected_part_names(m)
        forbid_whole_stages(patch)
        written = pipeline.write(run="r", out=out, manifests=m, workers=1)
        assert manifest.part_names(manifest.stage_dir(m, "r", "result")) == expected
        assert written.failed == 0 and written.objects == written.tally.objects
        assert written.tally.objects == manifest.stage_rows(m, "r", "plan")
        again = pipeline.write(run="r", out=out, manifests=m, workers=1)  # resumes it all
        assert again.bytes_written == 0 and again.objects == written.objects
    streamed = check_outputs(m, out)
    assert any(r["archive"] for r in streamed.values() if r["status"] == "written")
    assert any(not r["archive"] for r in streamed.values() if r["status"] == "written")
    # the same plan written again by two worker processes, with the usual part sizes
    other = tmp_path / "other"
    pipeline.write(run="r", out=other, manifests=m, workers=2)
    assert comparable(check_outputs(m, other)) == comparable(streamed)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*.dcm")} == \
        {p.relative_to(other): p.read_bytes() for p in other.rglob("*.dcm")}


def test_a_dump_whose_plan_rows_are_out_of_member_order_is_sorted(
        export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The inventory writes a dump's rows in member order; rows in another order (parts
    rewritten in reverse) are sorted, within that dump only, and keep the stream's key."""
    m, out = tmp_path / "m", tmp_path / "out"
    inventory_and_plan(export, m, monkeypatch)
    folder = manifest.stage_dir(m, "r", "plan")
    with monkeypatch.context() as patch:
        small_parts(patch)
        expected = expected_part_names(m)
        names = [n for n in manifest.stage_parts(m, "r", "plan") if n.startswith("a")]
        tables = [manifest.read_part(folder, n, "plan") for n in names]
        for name, table in zip(names, reversed(tables), strict=True):
            manifest.write_part(folder, name, table.take(list(range(table.num_rows))[::-1]),
                                "plan")
        forbid_whole_stages(patch)
        written = pipeline.write(run="r", out=out, manifests=m, workers=1)
    assert written.failed == 0
    assert manifest.part_names(manifest.stage_dir(m, "r", "result")) == expected
    check_outputs(m, out)


def test_a_stream_task_is_small(export: Path, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A dump's worker gets the plan folder and its part names, not its rows."""
    m = tmp_path / "m"
    inventory_and_plan(export, m, monkeypatch)
    folder = manifest.stage_dir(m, "r", "plan")
    names = manifest.stage_parts(m, "r", "plan")
    found: list[tuple[list[str], str, Any]] = list(
        pipeline._plan_streams(folder, [n for n in names if n.startswith("a")]))
    assert len(found) == 1
    paths, key, stream = found[0]
    assert paths == [str(export / "tape01")] and len(key) == 12
    assert stream.folder == folder and stream.ordered
    assert list(stream.parts) == sorted(n for n in names if n.startswith("a"))
    rows: Iterator[dict[str, Any]] = stream.rows()
    offsets = [r["member_offset"] for r in rows]
    assert offsets == sorted(offsets) and len(offsets) == manifest.stage_rows(
        m, "r", "plan", stream.parts)


def test_a_dump_found_and_also_named_as_a_volume_is_read_once(
        export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_whole_stages(monkeypatch)
    done = pipeline.inventory([export], volumes=[[str(export / "tape01")]], run="r",
                              manifests=tmp_path / "m", workers=2)
    assert done.objects == done.tally.objects == manifest.stage_rows(tmp_path / "m", "r",
                                                                     "inventory")
    streams = {n[1:].split("-")[0] for n in manifest.part_names(
        manifest.stage_dir(tmp_path / "m", "r", "inventory")) if n.startswith("a")}
    assert len(streams) == 1
