"""``python -m migrate_fs.cli``: the same as the ``migrate-fs`` command."""

import sys

from migrate_fs.__main__ import main

sys.exit(main())
