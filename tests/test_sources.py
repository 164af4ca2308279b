"""sources: every entry of an export is listed once, in a stable order, links never followed."""

from __future__ import annotations

import os
from pathlib import Path

from migrate_fs.inventory import inventory_row
from migrate_fs.sources import iter_sources


def test_walk_is_sorted_and_complete(tmp_path: Path) -> None:
    for name in ["b/2", "b/1", "a", "c/d/e"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = [Path(o.locator).relative_to(tmp_path).as_posix() for o in iter_sources([tmp_path])]
    assert found == ["a", "b/1", "b/2", "c/d/e"]
    ids = [o.object_id for o in iter_sources([tmp_path])]
    assert ids == [o.object_id for o in iter_sources([str(tmp_path)])]  # stable across runs


def test_links_and_fifos_are_recorded_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"not part of the export")
    export = tmp_path / "export"
    export.mkdir()
    (export / "real").write_bytes(b"")
    os.symlink(outside, export / "dirlink")
    os.symlink(outside / "secret", export / "filelink")
    os.mkfifo(export / "fifo")
    rows = {Path(o.locator).name: inventory_row(o) for o in iter_sources([export])}
    assert set(rows) == {"real", "dirlink", "filelink", "fifo"}
    for name in ("dirlink", "filelink", "fifo"):
        assert rows[name]["problems"][0]["code"] == "not_regular_file"
    assert rows["real"]["problems"][0]["code"] == "empty_file"


def test_undecodable_file_name_is_accounted_for(tmp_path: Path) -> None:
    os.close(os.open(os.fsencode(tmp_path) + b"/M\xfcller", os.O_CREAT | os.O_WRONLY))
    (row,) = [inventory_row(o) for o in iter_sources([tmp_path])]
    assert row["locator"].endswith("M\\xfcller")
    assert row["problems"][0]["code"] == "undecodable_path"
