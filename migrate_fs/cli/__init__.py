"""cli: the ``migrate-fs`` command, one module per verb (:mod:`.main` lists them)."""

from migrate_fs.cli.main import main

__all__ = ["main"]
