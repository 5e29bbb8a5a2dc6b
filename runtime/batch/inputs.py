"""What ``fundus-batch`` segments: folders, image files, and CSV / Parquet lists of paths."""

from __future__ import annotations

import csv
from pathlib import Path

LIST_SUFFIXES = (".csv", ".parquet")
PATH_COLUMN = "path"


class InputListError(ValueError):
    """A CSV / Parquet list that cannot be read or has no path column."""


def read_list(path: Path) -> list[str]:
    """The paths in a CSV (column ``path``, else the first) or Parquet (column ``path``) list.

    Relative paths are taken relative to the list's folder.
    """
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            if PATH_COLUMN not in table.column_names:
                raise InputListError(f"{path}: no {PATH_COLUMN!r} column (has {', '.join(table.column_names)})")
            values = [str(v) for v in table.column(PATH_COLUMN).to_pylist() if v]
        else:
            with open(path, newline="") as f:
                rows = list(csv.reader(f))
            header = [c.strip() for c in rows[0]] if rows else []
            column = header.index(PATH_COLUMN) if PATH_COLUMN in header else 0
            body = rows[1:] if PATH_COLUMN in header else rows
            values = [r[column].strip() for r in body if len(r) > column and r[column].strip()]
    except InputListError:
        raise
    except Exception as exc:  # csv / pyarrow raise many types for unreadable files
        raise InputListError(f"{path}: not a readable list of paths ({exc.__class__.__name__}: {exc})") from exc
    return [v if Path(v).is_absolute() else str(path.parent / v) for v in values]


def expand_inputs(inputs: list[str]) -> list[str]:
    """INPUTS with every list file replaced by the paths it holds (folders stay for ``collect_jobs``)."""
    expanded: list[str] = []
    for item in inputs:
        path = Path(item)
        expanded.extend(read_list(path) if path.is_file() and path.suffix.lower() in LIST_SUFFIXES else [item])
    return expanded
