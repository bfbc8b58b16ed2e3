"""The settings every extraction entry point shares, in one object.

    from extractor import ExtractionConfig, extract_dataset
    cfg = ExtractionConfig(features_root="Features", batch_size=128, workers=4, overwrite=True)
    extract_dataset("dhash", "Flickr500K", config=cfg)                       # one process
    extract_dataset_ray("resnet50", "Flickr500K", cfg, shards=16)           # imsim.scaleout: on Ray
    extract_partition(ext, "distractors", "/data/yfcc100m", "hdf5/", cfg)   # extractor.ilias: ILIAS's files

`extract_dataset`, `imsim.scaleout.extract_dataset_ray`, `extractor.ilias.extract_partition` and the
scripts (`extract_features.py`, including ``--tars``, and `ilias_extract.py`) read these fields from one
`ExtractionConfig` instead of each listing them: a new setting is one field here. What belongs to the
extractor (device, precision) or to one entry point (shards, ILIAS's partitions, output dtype) stays there.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from helpers.paths import DATASETS_DIR, FEATURES_DIR


@dataclass(frozen=True)
class ExtractionConfig:
    """Where stores go and how images are fed; what to do with a finished or bad input."""

    features_root: str | os.PathLike = FEATURES_DIR  # stores: <features_root>/<dataset>/<method>.h5
    datasets_root: str | os.PathLike = DATASETS_DIR  # where registered dataset names are found
    batch_size: int = 64
    workers: int = 2  # decoding threads on CPU, processes on a GPU (0: in the main thread)
    limit: int | None = None  # only the first `limit` images
    strict: bool = False  # stop at the first file that cannot be used, instead of skipping it
    overwrite: bool = False  # redo a finished store instead of keeping it
    progress: bool = True  # tqdm bars

    def __post_init__(self) -> None:
        for name in ("batch_size", "workers", "limit"):
            value, low = getattr(self, name), 0 if name == "workers" else 1
            if value is None and name == "limit":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")

    @classmethod
    def of(cls, config: ExtractionConfig | None = None, **options: Any) -> ExtractionConfig:
        """`config` (default: every default) with `options` replaced; an unknown option names the valid ones."""
        unknown = set(options) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"unknown extraction option(s) {sorted(unknown)}; valid: "
                            f"{', '.join(f.name for f in dataclasses.fields(cls))}")
        return dataclasses.replace(config or cls(), **options)

    def as_kwargs(self) -> dict[str, Any]:
        """The fields as keyword arguments (of `extract_dataset`)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
