"""The one table writer: rows of dicts to a CSV file (atomically) or to a Markdown table."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from helpers.atomic import atomic_write


def columns_of(rows: Sequence[dict]) -> list[str]:
    """Every key of `rows`, in first-seen order."""
    return list(dict.fromkeys(k for row in rows for k in row))


def write_csv(rows: Sequence[dict], path: str | os.PathLike, columns: Sequence[str] | None = None) -> Path:
    """Rows of dicts as a CSV file (header first; columns in first-seen order unless given); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns) if columns is not None else columns_of(rows))
        writer.writeheader()
        writer.writerows(rows)
    return path


def markdown_table(rows: Sequence[dict], columns: Sequence[str] | None = None,
                   fmt: Callable[[str, Any], str] = lambda _, v: "" if v is None else str(v)) -> str:
    """A Markdown table (readable in a terminal too); `fmt(column, value)` renders each cell."""
    columns = list(columns) if columns is not None else columns_of(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(c, row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
