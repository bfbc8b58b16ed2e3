"""Checkpoints as plain dicts of tensors and numbers, readable with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from helpers.atomic import atomic_write

FORMAT = "finetuning.simclr/1"
_EPOCH_RE = re.compile(r"^epoch_(\d+)\.pth$")


def rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and Python generator states, as tensors and plain numbers."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "gauss": float(np_state[4]),
        },
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` saved."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_path(folder: str | os.PathLike, epoch: int) -> Path:
    """``<folder>/epoch_<e>.pth`` (epochs counted from 1; epoch 0 is the untrained model)."""
    return Path(folder) / f"epoch_{epoch:03d}.pth"


def list_checkpoints(folder: str | os.PathLike) -> dict[int, Path]:
    """Epoch -> checkpoint file of a run folder, sorted by epoch."""
    folder = Path(folder)
    found = {}
    if folder.is_dir():
        for path in folder.iterdir():
            m = _EPOCH_RE.match(path.name)
            if m:
                found[int(m[1])] = path
    return dict(sorted(found.items()))


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write atomically (temporary file then rename): a kill never leaves half a checkpoint."""
    with atomic_write(path, "wb") as f:
        torch.save({"format": FORMAT, **payload}, f)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint` (no unpickling of arbitrary objects)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not a fine-tuning checkpoint (format {FORMAT!r} expected)")
    return ckpt


def check_architecture(ckpt: dict[str, Any], expected: dict[str, Any], path: str | os.PathLike) -> None:
    """Raise ValueError naming every difference between the checkpoint's architecture and the model's."""
    have = ckpt.get("architecture", {})
    diff = {k: (have.get(k), v) for k, v in expected.items() if have.get(k) != v}
    if diff:
        detail = "; ".join(f"{k}: checkpoint {a!r}, current {b!r}" for k, (a, b) in diff.items())
        raise ValueError(f"{path} was saved for another architecture ({detail}); resume with the same encoder and head")
