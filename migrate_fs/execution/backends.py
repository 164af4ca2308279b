"""execution.backends: which backend runs a step's tasks.

Local loky processes by default; the dask.distributed cluster at ``scheduler`` (an address
such as ``tcp://10.0.0.5:8786``) when one is given. Both take the same ``joblib.delayed``
tasks and yield their results as tasks complete. Knows nothing of DICOM or of manifests.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from migrate_fs.errors import UsageError
from migrate_fs.execution import dask, loky


def run_tasks(tasks: Iterable[Any], workers: int, scheduler: str | None = None
              ) -> Iterator[Any]:
    """Each task's result as it completes: on ``workers`` local processes, or on the cluster."""
    if scheduler is None:
        return loky.run(tasks, workers)
    if not dask.is_available():
        raise UsageError(f"--scheduler {scheduler}: dask.distributed is not installed; "
                         "install migrate-fs[cluster] (pip install 'migrate-fs[cluster]')")
    return dask.run(tasks, workers, scheduler)
