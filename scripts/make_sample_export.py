#!/usr/bin/env python3
"""Generate a deterministic sample of a legacy PACS storage export (command line).

Usage: ``python scripts/make_sample_export.py OUT_DIR [options]`` (``--help`` lists them).
The generator is :mod:`migrate_fs.sample_export`; this script only calls its ``main``.
"""

import sys

from migrate_fs.sample_export import main

if __name__ == "__main__":
    sys.exit(main())
