"""The ``migrate-fs`` command's entry point (and ``python -m migrate_fs``).

It imports the command (and with it pyarrow, pydicom...) only once running, so that a Ctrl-C
even during those imports ends with one line and exit code 130, not a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    try:
        from migrate_fs.cli.main import main as run
    except KeyboardInterrupt:
        print("\nmigrate-fs: interrupted before it started; nothing was done", file=sys.stderr)
        return 130
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
