"""execution.dask: the cluster backend, tasks on an existing dask.distributed cluster.

The backend contract (as :mod:`.loky`): ``BACKEND_DEPENDENCIES``; ``is_available()``;
``run(tasks, workers, address)``, which executes ``joblib.delayed`` tasks (``(function, args,
kwargs)`` tuples) on the scheduler at ``address`` and yields their results as tasks complete, in
any order. At most a few tasks per cluster thread are submitted ahead of those running, so the
caller's task generator is drawn lazily, as with loky. A worker that dies loses only its tasks:
the scheduler runs them again elsewhere. The workers need the package installed, read access
to the sources and write access to the output and the manifests; they know nothing of this
process. A backend knows nothing of DICOM or of manifests.
"""

from __future__ import annotations

import importlib.util
import itertools
from collections.abc import Iterable, Iterator
from typing import Any

from migrate_fs.errors import ClusterError

BACKEND_DEPENDENCIES = ("distributed",)
AHEAD = 2  # tasks submitted per cluster thread beyond those running
CONNECT_TIMEOUT = "30s"


def is_available() -> bool:
    return all(importlib.util.find_spec(name) for name in BACKEND_DEPENDENCIES)


def run(tasks: Iterable[Any], workers: int, address: str) -> Iterator[Any]:
    """Each task's result, as tasks complete on the cluster at ``address`` (``workers``, the
    local worker count, is not used: the cluster's threads are)."""
    from distributed import Client, as_completed

    try:
        client = Client(address, set_as_default=False, timeout=CONNECT_TIMEOUT)
    except (OSError, ValueError) as exc:
        raise ClusterError(f"cannot reach the dask scheduler at {address} ({exc}); check the "
                           "address and that `dask scheduler` runs there") from None
    with client:
        threads = sum(client.nthreads().values()) or 1
        pending = iter(tasks)
        first = [client.submit(function, *args, pure=False, **kwargs)
                 for function, args, kwargs in itertools.islice(pending, threads * (1 + AHEAD))]
        if not first:
            return
        running = as_completed(first, loop=client.loop)
        for future in running:
            result = future.result()
            future.release()
            for function, args, kwargs in itertools.islice(pending, 1):
                running.add(client.submit(function, *args, pure=False, **kwargs))
            yield result
