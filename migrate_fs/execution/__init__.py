"""execution: batches and streams of work to a backend's workers, resumable part by part.

It knows nothing of DICOM: the per-object work is a function the caller gives
(:mod:`migrate_fs.pipeline`). Backends: :mod:`.loky` (processes on this machine) and
:mod:`.dask` (an existing dask.distributed cluster), chosen by :mod:`.backends`.
"""

from migrate_fs.execution.batches import (
    Outcome,
    batched,
    named_batches,
    part_key,
    progress,
    run_batches,
    run_streams,
    table_rows,
)
from migrate_fs.execution.shards import PhaseBarrier, Shard, ShardWork

__all__ = ["Outcome", "PhaseBarrier", "Shard", "ShardWork", "batched", "named_batches", "part_key",
           "progress", "run_batches", "run_streams", "table_rows"]
