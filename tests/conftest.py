"""Fixtures: real exports built from pydicom's test files and the sample generator."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest

from migrate_fs import manifest
from migrate_fs.cli import main
from migrate_fs.sample_export import make_sample_export

PYDICOM_DATA = Path(pydicom.__file__).parent / "data"
ROOT = Path(__file__).resolve().parent.parent


def tree_digest(root: Path) -> dict[str, tuple[str, int]]:
    """Relative path -> (sha256, mtime_ns) of every file below root (links not followed)."""
    digest = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if path.is_symlink() or not path.is_file():
                continue
            digest[str(path.relative_to(root))] = (
                hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    return digest


def files_below(root: Path) -> list[Path]:
    """Every file below root, sorted."""
    return sorted(p for p in root.rglob("*") if p.is_file())


def content_digest(root: Path) -> dict[str, str]:
    """Relative POSIX path -> sha256 of every file below root: what a generator run wrote."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in files_below(root)}


def count_entries(root: Path) -> int:
    """Every non-folder entry below root: what the manifest must account for."""
    return sum(len(files) + sum(1 for d in dirs if (Path(folder) / d).is_symlink())
               for folder, dirs, files in os.walk(root))


@pytest.fixture(scope="session")
def pydicom_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pydicom's test files (every one, junk included) laid out as a legacy export."""
    root = tmp_path_factory.mktemp("pydicom") / "export"
    shutil.copytree(PYDICOM_DATA / "test_files", root / "test_files")
    shutil.copytree(PYDICOM_DATA / "charset_files", root / "charset_files")
    return root


class Migration:
    """A finished ``migrate-fs run`` and what a user would look at afterwards."""

    def __init__(self, export: Path, base: Path, workers: int = 2, *extra: str,
                 run: str = "t") -> None:
        self.export, self.out, self.manifests, self.run = export, base / "out", base / "m", run
        self.before = tree_digest(export)
        self.exit_code = main(["run", str(export), "--out", str(self.out), "--run", self.run,
                               "--manifests", str(self.manifests), "--workers", str(workers),
                               "--quiet", *extra])

    def stage(self, name: str) -> list[dict[str, Any]]:
        return manifest.read_stage(self.manifests, self.run, name).to_pylist()

    def by_name(self, stage: str = "result") -> dict[str, dict[str, Any]]:
        """Rows keyed by the locator's path relative to the export."""
        return {str(Path(r["locator"]).relative_to(self.export)): r for r in self.stage(stage)}


@pytest.fixture(scope="session")
def pydicom_migration(pydicom_export: Path, tmp_path_factory: pytest.TempPathFactory) -> Migration:
    return Migration(pydicom_export, tmp_path_factory.mktemp("pydicom_run"))


@pytest.fixture(scope="session")
def sample_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sample") / "export"
    make_sample_export(root, cr=1)
    return root


@pytest.fixture(scope="session")
def sample_migration(sample_export: Path, tmp_path_factory: pytest.TempPathFactory) -> Migration:
    return Migration(sample_export, tmp_path_factory.mktemp("sample_run"))


@contextlib.contextmanager
def lock_held(manifests: Path, run: str, what: str,
              shard: tuple[int, int] | None = None) -> Iterator[None]:
    """Another process holds the run's lock (a shard's, with ``shard``) while the block runs."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time; from migrate_fs import manifest\n"
        f"with manifest.run_lock({str(manifests)!r}, {run!r}, {what!r}, {shard!r}):\n"
        "    print('held', flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.kill()
        holder.wait()
