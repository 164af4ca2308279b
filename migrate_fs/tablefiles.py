"""tablefiles: read a table a user gives (the legacy database's corrections, its export of
studies) from a CSV or Parquet file, with run-level errors that name the file and the fix.

CSV is read as UTF-8 (a BOM allowed), every column as text, so that '00123' stays '00123' and
an empty cell is ''. The caller checks the columns (``check``) and raises its own error class
(``error``); nothing here knows what the columns mean, and nothing here writes.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pv
import pyarrow.parquet as pq

from migrate_fs.errors import MigrateError

Check = Callable[[list[str], str], None]  # (column names, source) -> None, or raise


def read_table_file(path: Path, what: str, error: type[MigrateError], example: str,
                    check: Check | None = None) -> pa.Table:
    """The table in ``path`` (``*.csv`` or ``*.parquet``); ``what`` says what the file should
    be and ``example`` a header line, in the messages."""
    if not path.is_file():
        raise error(f"{path}: no such file; give the path of {what} (CSV or Parquet)")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            table = pq.read_table(path)
        except (pa.ArrowException, OSError) as exc:
            raise error(f"{path}: cannot be read as Parquet ({exc}); write it again, or give a "
                        "CSV file") from exc
        if check is not None:
            check(table.column_names, str(path))
        return table
    if suffix != ".csv":
        raise error(f"{path}: unknown file type {suffix or '(no suffix)'!r}; name the file "
                    "*.csv (UTF-8, comma-separated) or *.parquet")
    return _read_csv(path, error, example, check)


def _read_csv(path: Path, error: type[MigrateError], example: str,
              check: Check | None) -> pa.Table:
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            header = next(csv.reader(f), None)
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start}); save the "
                    "file as UTF-8 CSV") from exc
    if not header:
        raise error(f"{path}: the file is empty; its first line must name the columns, e.g. "
                    f"{example}")
    if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
        raise error(f"{path}: the header {header[0]!r} is one column; separate the columns "
                    "with commas")
    if check is not None:
        check(header, str(path))
    options = pv.ConvertOptions(column_types={c: pa.string() for c in header},
                                strings_can_be_null=False)
    try:
        return pv.read_csv(path, convert_options=options)
    except pa.ArrowInvalid as exc:
        text = str(exc).splitlines()[0]
        fix = ("save the file as UTF-8" if "UTF8" in text else
               "check the quoting, and that every row has one cell per column")
        raise error(f"{path}: cannot be read as CSV ({text}); {fix}") from exc
