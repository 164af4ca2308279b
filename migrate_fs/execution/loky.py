"""execution.loky: the local backend, joblib's loky processes on this machine.

The backend contract (every backend module has it): ``BACKEND_DEPENDENCIES``, the packages it
needs; ``is_available()``; ``run(tasks, workers)``, which executes ``joblib.delayed`` tasks and
yields their results as they complete, in any order. A backend knows nothing of DICOM or of
manifests.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Iterator
from typing import Any

BACKEND_DEPENDENCIES = ("joblib",)


def is_available() -> bool:
    return all(importlib.util.find_spec(name) for name in BACKEND_DEPENDENCIES)


def run(tasks: Iterable[Any], workers: int) -> Iterator[Any]:
    """Each task's result, as tasks complete (worker processes started once per call)."""
    from joblib import Parallel

    # One task at a time: each is a batch already, and joblib's automatic batching would let
    # this process hold several tasks per worker ahead of those running.
    yield from Parallel(n_jobs=workers, backend="loky", return_as="generator_unordered",
                        batch_size=1)(tasks)
