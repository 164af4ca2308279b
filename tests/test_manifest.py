"""manifest: atomic parts, one table per stage, schema documented and forward compatible."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from migrate_fs import manifest
from migrate_fs.errors import MigrateError
from migrate_fs.problems import CATALOGUE, Problem, markdown_table

ROOT = Path(__file__).resolve().parent.parent


def test_parts_read_as_one_table_and_temporary_parts_are_invisible(tmp_path: Path) -> None:
    folder = manifest.stage_dir(tmp_path, "r", "inventory")
    manifest.write_part(folder, "part-1", [{"object_id": "a", "size": 1}], "inventory")
    manifest.write_part(folder, "part-2", [{"object_id": "b", "size": 2}], "inventory")
    (folder / ".part-3.parquet.tmp").write_bytes(b"half a part")
    table = pd.read_parquet(folder)
    assert sorted(table["object_id"]) == ["a", "b"]
    assert manifest.part_names(folder) == {"part-1", "part-2"}


def test_older_parts_without_new_columns_read_with_nulls(tmp_path: Path) -> None:
    folder = manifest.stage_dir(tmp_path, "r", "inventory")
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"object_id": ["old"], "size": [5]}), folder / "part-0.parquet")
    manifest.write_part(folder, "part-1", [{"object_id": "new", "size": 6, "kind": "raw"}],
                        "inventory")
    table = manifest.read_stage(tmp_path, "r", "inventory").to_pylist()
    assert {r["object_id"]: r["kind"] for r in table} == {"old": None, "new": "raw"}


def test_missing_stage_says_which_step_to_run(tmp_path: Path) -> None:
    with pytest.raises(manifest.RunNotFound, match="run the write step"):
        manifest.read_stage(tmp_path, "r", "result")


@pytest.mark.parametrize("name", ["", "..", "a/b", ".hidden"])
def test_run_names_cannot_escape_the_manifest_folder(name: str) -> None:
    with pytest.raises(MigrateError):
        manifest.run_dir("manifests", name)


def test_schema_doc_lists_every_column_and_problem_code() -> None:
    doc = (ROOT / "manifests" / "SCHEMA.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_0-9]+)` \|", doc, re.M))
    assert set(manifest.SCHEMAS["result"].names) <= documented
    assert set(CATALOGUE) <= documented
    assert markdown_table() in doc  # the catalogue table, word for word
    assert f"version {manifest.SCHEMA_VERSION}" in doc


def test_unknown_problem_code_is_refused() -> None:
    with pytest.raises(ValueError, match="add it to CATALOGUE"):
        Problem("made_up", "x")
