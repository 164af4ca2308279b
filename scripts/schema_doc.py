"""Rewrite the problem-code table of manifests/SCHEMA.md from migrate_fs.problems.CATALOGUE.

The table in SCHEMA.md is the catalogue word for word (tests/test_manifest.py checks it); run
this after adding or changing a code. It rewrites only that table.
"""

from __future__ import annotations

import sys
from pathlib import Path

from migrate_fs.problems import markdown_table

SCHEMA = Path(__file__).resolve().parent.parent / "manifests" / "SCHEMA.md"
HEADER = "| code | severity | meaning |"


def rewrite(text: str) -> str:
    """``text`` with the catalogue table (from its header line to the first non-table line)
    replaced by the current one."""
    lines = text.split("\n")
    start = lines.index(HEADER)
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "\n".join(lines[:start] + markdown_table().split("\n") + lines[end:])


def main() -> int:
    SCHEMA.write_text(rewrite(SCHEMA.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
