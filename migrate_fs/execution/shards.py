"""execution.shards: static shards, one migration spread over machines that share storage.

``--shard i/N`` gives each unit of work (a source object by its locator, an archive by its
path, a plan part by its name) to exactly one of N shards, by a stable hash of its key, so
that N processes started anywhere, in any order, each do a disjoint share and the union of
their manifest parts is the run. A shard's parts carry its name (``part-s<i>of<N>-...``); a
shard never removes another's parts, and one lock per shard keeps two processes off one
shard. Knows nothing of DICOM.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from migrate_fs.errors import UsageError


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``i/N`` with 0 <= i < N."""
        found = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not found or not 0 <= int(found[1]) < int(found[2]):
            raise UsageError(f"--shard {text!r}: give i/N with 0 <= i < N, such as 0/3, 1/3 "
                             "and 2/3 for three machines")
        return cls(int(found[1]), int(found[2]))

    def owns(self, key: str) -> bool:
        """Whether this shard does the work named ``key``."""
        return zlib.crc32(key.encode("utf-8", "surrogateescape")) % self.count == self.index

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def prefix(self) -> str:
        """The start of the names of this shard's batch parts."""
        return f"part-s{self.index:03d}of{self.count:03d}-"

    def keeps(self, name: str) -> bool:
        """Whether a batch part ``name`` is left alone by this shard: another shard's of the
        same count (an unsharded part, or one of another count, is stale: removed)."""
        return re.match(rf"part-s\d{{3}}of{self.count:03d}-", name) is not None and \
            not name.startswith(self.prefix)
