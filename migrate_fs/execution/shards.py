"""execution.shards: static shards, one migration spread over machines that share storage.

``--shard i/N`` gives each unit of work (a source object by its locator, an archive by its
path, a plan part by its name) to exactly one of N shards, by a stable hash of its key, so
that N processes started anywhere, in any order, each do a disjoint share and the union of
their manifest parts is the run. A shard's parts carry its name (``part-s<i>of<N>-...``); a
shard never removes another's parts, and one lock per shard keeps two processes off one
shard. A step in phases that are barriers across the whole run (the plan) runs its phases
through a :class:`PhaseBarrier`: the shards meet between phases in a shared folder. Knows
nothing of DICOM.
"""

from __future__ import annotations

import os
import pickle
import re
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migrate_fs import manifest
from migrate_fs.errors import ShardsDisagree, UsageError

_PART = re.compile(r"part-(?:s(\d{3})of(\d{3})-)?(\d{6})-")


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

    def owns_part(self, name: str) -> bool:
        """Whether this shard does the work of a batch part ``name`` (a plan part: the write of
        its objects). A part of an inventory sharded the same way is its shard's (the split the
        inventory made, evenly by object); another batch part goes by its index, round robin
        (even, where a hash of a few dozen names is not); any other name by its hash."""
        found = _PART.match(name)
        if found is None:
            return self.owns(name)
        shard, count, index = found.groups()
        if shard is not None and int(count) == self.count:
            return int(shard) == self.index
        return (int(index) + int(shard or 0)) % self.count == self.index

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


class ShardWork:
    """The parts of one shard's work in a stage folder: its batch parts and the parts of the
    streams it owns, by the stream's first path (everything, without a shard). ``stream`` is
    the ``owned`` callback of :func:`~migrate_fs.execution.batches.run_streams`."""

    def __init__(self, shard: Shard | None) -> None:
        self.shard = shard
        self.keys: set[str] = set()

    def stream(self, paths: list[str], key: str) -> bool:
        owns = self.shard is None or self.shard.owns(paths[0])
        if owns:
            self.keys.add(key)
        return owns

    def parts(self, folder: Path) -> list[str] | None:
        """The shard's parts in ``folder`` (None without a shard: all of them)."""
        if self.shard is None:
            return None
        return [n for n in sorted(manifest.part_names(folder))
                if n.startswith(self.shard.prefix)
                or (n.startswith("a") and n[1:].split("-")[0] in self.keys)]


# --- a step in phases (the plan): each shard runs its share, the shards meet between phases ---

Task = tuple[Callable[..., Any], tuple[Any, ...]]
POLL_FIRST, POLL_SECONDS = 0.005, 0.5  # a shard looks for the others' markers: the first
# pause, and the longest (the pauses double: a phase of a small run costs milliseconds)


def _kept(folder: str, index: int, function: Callable[..., Any], arguments: tuple[Any, ...]
          ) -> None:
    """Run one task of a phase and keep its result as ``t<index>.pkl`` in the phase's folder
    (written under a dot name and renamed: the file is there only when the task is done)."""
    result = function(*arguments)
    final = Path(folder, f"t{index:06d}.pkl")
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, final)


def write_marker(path: Path, text: str) -> None:
    """Write a marker the other shards read (under a temporary name, then renamed: they never
    read one half written)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclass
class PhaseBarrier:
    """A runner of phases (lists of tasks, as :mod:`migrate_fs.plan.buckets` hands them) for one
    shard of a step that N processes run at once, on machines sharing ``folder``: of each phase,
    this shard runs the tasks ``j`` with ``j mod N == i`` on ``run`` (its own workers), keeps
    their results in ``folder/phase-<k>/``, marks its share done and waits until every shard
    has; then every shard gets the results of all the phase's tasks, in order, as one process
    running them all would. A task whose result is there already (a shard run again after a
    crash) is not run again. Every shard must see the same phases: the task counts are
    compared, and a shard that sees another count stops with :class:`ShardsDisagree`.
    ``waiting`` is told, once per phase, which shards it waits for; ``watch`` is called at each
    look while waiting (the caller's check that the other shards are on the same work)."""

    folder: Path
    shard: Shard
    run: Callable[[list[Task]], Iterable[Any]]
    waiting: Callable[[str], None] | None = None
    watch: Callable[[], None] | None = None  # called while waiting: may raise to stop it
    phase: int = 0
    _since: float = 0.0

    def __post_init__(self) -> None:
        self._stop_marker(self.shard.index).unlink(missing_ok=True)  # started again
        self.folder.mkdir(parents=True, exist_ok=True)
        started = self.folder / f"started-{self.shard.index}of{self.shard.count}"
        write_marker(started, "")
        self._since = started.stat().st_mtime  # on the shared folder's clock

    def __call__(self, tasks: list[Task]) -> list[Any]:
        here = self.folder / f"phase-{self.phase:03d}"
        self.phase += 1
        here.mkdir(parents=True, exist_ok=True)
        mine = [j for j in range(len(tasks)) if j % self.shard.count == self.shard.index
                and not (here / f"t{j:06d}.pkl").exists()]
        for _ in self.run([(_kept, (str(here), j, *tasks[j])) for j in mine]):
            pass
        write_marker(here / f"done-{self.shard.index}of{self.shard.count}", str(len(tasks)))
        self._wait(here, len(tasks))
        results = []
        for j in range(len(tasks)):
            with open(here / f"t{j:06d}.pkl", "rb") as f:
                results.append(pickle.load(f))
        return results

    def _wait(self, here: Path, count: int) -> None:
        told, pause = False, POLL_FIRST
        while True:
            left = []
            for i in range(self.shard.count):
                marker = here / f"done-{i}of{self.shard.count}"
                try:
                    seen = int(marker.read_text())
                except FileNotFoundError:
                    left.append(f"{i}/{self.shard.count}")
                    continue
                if seen != count:
                    raise ShardsDisagree(
                        f"shard {i}/{self.shard.count} saw {seen} tasks in phase {here.name} "
                        f"of {self.folder}, this shard {count}: the shards see different "
                        "manifests; run every shard with the same options, after the step "
                        "before it has finished on every shard")
            if not left:
                return
            self._stopped()
            if self.watch is not None:
                self.watch()
            if not told and self.waiting is not None:
                self.waiting(f"shard {self.shard.label}: waiting for shard(s) "
                             f"{', '.join(left)} to finish {here.name}")
                told = True
            time.sleep(pause)
            pause = min(pause * 2, POLL_SECONDS)

    def stop(self, why: str) -> None:
        """Say that this shard stopped on an error (``why``): the others stop waiting for it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        write_marker(self._stop_marker(self.shard.index), why)

    def _stop_marker(self, index: int) -> Path:
        return self.folder / f"stopped-{index}of{self.shard.count}"

    def _stopped(self) -> None:
        for i in range(self.shard.count):
            marker = self._stop_marker(i)
            try:
                why, when = marker.read_text(), marker.stat().st_mtime
            except FileNotFoundError:
                continue
            if i != self.shard.index and when >= self._since:  # not a stop before this start
                raise ShardsDisagree(f"shard {i}/{self.shard.count} stopped ({why}); this shard "
                                     "stops too: mend the cause, then start every shard again")

    def finish(self) -> bool:
        """Mark this shard finished with every phase; True for the shard that sees all of
        them finished (the last): it alone may remove the phases' folder."""
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"end-{self.shard.index}of{self.shard.count}").touch()
        return all((self.folder / f"end-{i}of{self.shard.count}").exists()
                   for i in range(self.shard.count))
