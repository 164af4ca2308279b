"""migrate-fs: offline bulk DICOM migration from legacy storage exports to Part 10 folders.

The library API is :mod:`migrate_fs.pipeline`: ``pipeline.inventory``, ``pipeline.plan``,
``pipeline.write`` and ``pipeline.run``, with every run-level check the command has
(``migrate_fs.pipeline`` is imported on first use, so that importing one module of the package,
as the decoder process does, stays cheap). The steps are not bound to ``migrate_fs.inventory``
and ``migrate_fs.plan``: those names are the inventory module and the plan package.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "pipeline"]


def __getattr__(name: str) -> Any:
    if name == "pipeline":
        import importlib

        return importlib.import_module("migrate_fs.pipeline")
    raise AttributeError(f"module 'migrate_fs' has no attribute {name!r}")
