"""errors: the run-level errors, one base class for all of them.

A run-level error stops a command before or after its work (a missing source, a step run before
the one it needs, an output folder inside a source, an unusable configuration). Its message says
what is wrong and what to do next; the CLI prints it as one line and exits with 1. Problems of
single objects are never exceptions of this kind: they are problem codes on the object's row
(:mod:`migrate_fs.problems`), and the run goes on.

This module imports nothing of migrate-fs.
"""

from __future__ import annotations


class MigrateError(Exception):
    """A run-level error. The message names the path or setting and says what to do next."""

    exit_code = 1


class UsageError(MigrateError):
    """An option that cannot work as given (an output that is not a folder): exit code 2."""

    exit_code = 2


class RunLocked(MigrateError):
    """Another migrate-fs process is working on the same run."""


class SourceError(MigrateError):
    """A source folder, file or volume is missing or cannot be read."""


class OutputError(MigrateError):
    """The output folder, the manifests folder or the run name cannot be used (inside a source,
    a file, not a plain name...)."""


class StageMissing(MigrateError):
    """A stage a command needs has not been written for this run yet."""


class ConfigError(MigrateError):
    """A rules configuration that cannot be used; the message says what to change."""


class CorrectionsError(MigrateError):
    """The corrections file is unusable: the message names the file, the rows or columns, and
    what to fix."""


class ReconcileError(MigrateError):
    """Reconcile cannot compare: the legacy database's export is unusable (the message names
    the file, the column or rows, and what to fix), or the manifests cannot be read within the
    memory limit."""


class DecoderError(MigrateError):
    """The decoder process of the decode check could not start (see [pixel] decoder)."""


class IncompleteStage(MigrateError):
    """A stage holds another number of rows than the objects it must account for."""


class ClusterError(MigrateError):
    """The dask scheduler given with --scheduler cannot be reached or used."""


class ShardsDisagree(MigrateError):
    """The shards of one step see different work (other manifests, options or settings)."""


class MediaError(MigrateError):
    """A medium (``migrate-fs dicomdir``) cannot be made as asked: more objects than one medium
    holds, or none of them can go on it."""
