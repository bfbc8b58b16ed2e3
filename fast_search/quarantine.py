"""Move (never delete) the files of a remove list into a quarantine folder, with an undo file that puts them back.

``quarantine(paths, folder)`` writes ``folder/undo.json`` (every planned move, written before the
first move) and moves each file under `folder`, keeping its path relative to the files' common
parent. ``undo(folder/undo.json)`` moves them back; a file whose old place is taken again is left
where it is and reported. Nothing here deletes a file.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from helpers.atomic import write_json

log = logging.getLogger(__name__)
UNDO_FILE = "undo.json"


class QuarantineError(Exception):
    """A quarantine that would overwrite or lose a file: nothing was moved."""


def quarantine(paths: Sequence[str | os.PathLike], folder: str | os.PathLike) -> Path:
    """Move `paths` under `folder`; returns the undo file. Refuses before moving anything if a move would overwrite."""
    folder = Path(folder)
    sources = [Path(p).resolve() for p in paths]
    if not sources:
        folder.mkdir(parents=True, exist_ok=True)
    missing = [str(p) for p in sources if not p.is_file()]
    if missing:
        raise QuarantineError(f"{len(missing)} files to move do not exist (e.g. {missing[0]})")
    undo_path = folder / UNDO_FILE
    if undo_path.exists():
        raise QuarantineError(f"{undo_path} exists: undo that quarantine first or choose another folder")
    root = Path(os.path.commonpath([str(p.parent) for p in sources])) if sources else folder
    moves = [(src, folder / src.relative_to(root)) for src in sources]
    taken = [str(dst) for _, dst in moves if dst.exists()]
    if taken:
        raise QuarantineError(f"{len(taken)} destinations exist already (e.g. {taken[0]})")
    if any(folder.resolve() == src.parent or folder.resolve() in src.parents for src in sources):
        raise QuarantineError(f"the quarantine folder {folder} holds files to move: choose a folder outside them")
    folder.mkdir(parents=True, exist_ok=True)
    write_json(undo_path, {"moves": [{"from": str(s), "to": str(d.resolve())} for s, d in moves]}, indent=1)
    for src, dst in moves:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(src), str(dst))
    return undo_path


def undo(undo_file: str | os.PathLike) -> list[str]:
    """Put back the files moved by `quarantine`; returns the paths restored (taken places are skipped, logged)."""
    with open(undo_file, encoding="utf-8") as f:
        moves = json.load(f)["moves"]
    restored = []
    for move in moves:
        src, dst = Path(move["from"]), Path(move["to"])
        if not dst.is_file():
            log.warning("%s is not in the quarantine any more; skipped", dst)
            continue
        if src.exists():
            log.warning("%s exists again; %s left in the quarantine", src, dst)
            continue
        src.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(dst), str(src))
        restored.append(str(src))
    if len(restored) == len(moves):
        Path(undo_file).rename(Path(undo_file).with_suffix(".done.json"))
    return restored
