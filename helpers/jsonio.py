"""JSON results I/O: readable, stable key order, numpy values converted."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from helpers.atomic import write_text


def _default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def save_json(obj: Any, path: str | os.PathLike) -> None:
    """Write `obj` atomically (temporary file then rename), so a kill never leaves half a file."""
    write_text(path, json.dumps(obj, indent=2, default=_default, allow_nan=True) + "\n")


def load_json(path: str | os.PathLike) -> Any:
    """Read a JSON file written by `save_json`."""
    return json.loads(Path(path).read_text())
