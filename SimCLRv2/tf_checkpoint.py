"""Official SimCLR TensorFlow checkpoints: file names, fetching, reading, strict by-name conversion.

Shared by `SimCLRv1` and `SimCLRv2`. TensorFlow is imported lazily, only when a checkpoint is read;
nothing here is needed to *use* a converted model. Conversion maps every TensorFlow variable to one
PyTorch tensor by name (a table built by the caller) and refuses to save unless every used TF tensor
appears exactly once, every shape matches and nothing is left over on either side.
"""

from __future__ import annotations

import fnmatch
import logging
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import torch

from helpers.atomic import atomic_write
from helpers.download import download_files

log = logging.getLogger(__name__)

# torch key -> (TF variable name, how to transform it)
Table = dict[str, tuple[str, str]]
TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "copy": lambda a: a,
    "conv": lambda a: a.transpose(3, 2, 0, 1),  # HWIO -> OIHW
    "dense": lambda a: a.T,  # (in, out) -> (out, in)
}
# step counter, optimizer (LARS momentum) slots, a TF2 object graph if present
ALWAYS_IGNORED = ("global_step", "*/Momentum", "_CHECKPOINTABLE_OBJECT_GRAPH")
MAX_LISTED = 25


class ConversionError(ValueError):
    """A TF checkpoint does not match the PyTorch model: the message lists every mismatch."""


def tf_file_names(step: int, all_files: bool = False) -> list[str]:
    """Files of one released checkpoint; only these three are needed to convert it."""
    names = ["checkpoint", f"model.ckpt-{step}.index", f"model.ckpt-{step}.data-00000-of-00001"]
    return names + (["graph.pbtxt", f"model.ckpt-{step}.meta"] if all_files else [])


def fetch_tf_checkpoint(base_url: str, step: int, folder: Path, all_files: bool = False) -> Path:
    """Download (resumably) one released checkpoint into `folder`; returns its prefix `model.ckpt-{step}`."""
    download_files(base_url, tf_file_names(step, all_files), Path(folder))
    return Path(folder) / f"model.ckpt-{step}"


class TFCheckpoint:
    """Read-only view of a TF checkpoint: `shapes` (name -> shape) up front, tensors read on demand."""

    def __init__(self, prefix: str | Path):
        try:
            import tensorflow as tf
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("converting SimCLR checkpoints needs TensorFlow (CPU build is enough): "
                              "pip install -r requirements-convert.txt") from err
        self.prefix = str(prefix)
        if not Path(self.prefix + ".index").is_file():
            raise FileNotFoundError(f"no TensorFlow checkpoint at {self.prefix!r} "
                                    f"(expected {self.prefix}.index and its .data files)")
        self._reader = tf.train.load_checkpoint(self.prefix)
        self.shapes = {k: tuple(v) for k, v in self._reader.get_variable_to_shape_map().items()}

    def get(self, name: str) -> np.ndarray:
        """One variable as a numpy array."""
        return np.asarray(self._reader.get_tensor(name))


def _listing(title: str, items: Iterable[str]) -> str:
    items = sorted(items)
    more = f"\n    ... and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else ""
    return f"  {title} ({len(items)}):\n" + "".join(f"    {i}\n" for i in items[:MAX_LISTED]) + more


def check_table(table: Table, tf_shapes: Mapping[str, tuple], torch_shapes: Mapping[str, tuple],
                ignore: Iterable[str] = (), torch_only: Callable[[str], bool] = lambda k: False) -> None:
    """Raise ConversionError listing every mismatch between a name table and both sides' shapes."""
    patterns = tuple(ALWAYS_IGNORED) + tuple(ignore)
    problems = []
    used: dict[str, str] = {}
    twice = []
    for key, (tf_name, _) in table.items():
        if tf_name in used:
            twice.append(f"{tf_name} -> {used[tf_name]} and {key}")
        used[tf_name] = key
    missing = [f"{n} (for {k})" for k, (n, _) in table.items() if n not in tf_shapes]
    ignored_but_used = [n for n in used if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    leftover_tf = [n for n in tf_shapes if n not in used and not any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    unmapped_torch = [k for k in torch_shapes if k not in table and not torch_only(k)]
    unknown_torch = [k for k in table if k not in torch_shapes]
    bad_shapes = []
    for key, (tf_name, how) in table.items():
        if tf_name in tf_shapes and key in torch_shapes:
            shape = TRANSFORMS[how](np.empty(tf_shapes[tf_name], dtype=np.uint8)).shape
            if tuple(shape) != tuple(torch_shapes[key]):
                bad_shapes.append(f"{tf_name} {tuple(tf_shapes[tf_name])} ({how}) -> {key} "
                                  f"expects {tuple(torch_shapes[key])}")
    for title, items in [("TF variables used twice", twice), ("TF variables missing", missing),
                         ("TF variables ignored but mapped", ignored_but_used),
                         ("TF variables left over (not mapped, not ignored)", leftover_tf),
                         ("PyTorch tensors with no TF variable", unmapped_torch),
                         ("table entries the PyTorch model lacks", unknown_torch),
                         ("shape mismatches", bad_shapes)]:
        if items:
            problems.append(_listing(title, items))
    if problems:
        raise ConversionError("TF checkpoint does not match the PyTorch model:\n" + "".join(problems))


def convert_by_name(ckpt: TFCheckpoint, table: Table, module: torch.nn.Module, ignore: Iterable[str] = (),
                    ) -> dict[str, torch.Tensor]:
    """State dict for `module` (may live on the meta device) from `ckpt`, strictly checked by name.

    `num_batches_tracked` buffers have no TF counterpart and are set to 0; `ignore` adds fnmatch
    patterns of TF variables deliberately left out (global_step and Momentum slots always are).
    """
    torch_shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    torch_only = lambda k: k.endswith("num_batches_tracked")  # noqa: E731
    check_table(table, ckpt.shapes, torch_shapes, ignore, torch_only)
    state = {}
    for key in torch_shapes:
        if torch_only(key):
            state[key] = torch.zeros((), dtype=torch.long)
        else:
            tf_name, how = table[key]
            array = np.ascontiguousarray(TRANSFORMS[how](ckpt.get(tf_name)), dtype=np.float32)
            state[key] = torch.from_numpy(array)
    return state


def save_checkpoint(sections: dict[str, dict[str, torch.Tensor]], path: Path) -> Path:
    """torch.save a plain dict of plain dicts of tensors (loadable with weights_only=True), atomically."""
    path = Path(path)
    with atomic_write(path, "wb") as f:
        torch.save({name: dict(section) for name, section in sections.items()}, f)
    log.info("wrote %s", path)
    return path


def remove_tf_files(folder: Path) -> None:
    """Delete a downloaded TF checkpoint folder (after a successful conversion, with --remove-tf)."""
    folder = Path(folder)
    if folder.is_dir():
        shutil.rmtree(folder)
        log.info("removed %s", folder)


def fetch_and_convert(base_url: str, step: int, tf_folder: Path, out_path: Path,
                      convert: Callable[[Path], dict[str, dict[str, torch.Tensor]]], *, keep_tf: bool = True,
                      force: bool = False, all_files: bool = False) -> Path:
    """Download one released checkpoint (resumably), convert it with `convert(prefix)`, save it.

    An existing output is kept unless `force`; the TF files are deleted afterwards unless `keep_tf`.
    """
    out_path = Path(out_path)
    if out_path.is_file() and not force:
        log.info("%s exists; pass --force to convert again", out_path)
        return out_path
    prefix = fetch_tf_checkpoint(base_url, step, tf_folder, all_files)
    save_checkpoint(convert(prefix), out_path)
    if not keep_tf:
        remove_tf_files(tf_folder)
    return out_path
