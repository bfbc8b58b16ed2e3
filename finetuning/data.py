"""The training set: images of a dataset (or folder) turned into pairs of views."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm

from data_retrieval.datasets import load_dataset
from helpers.images import BadImageError, load_image
from helpers.paths import DATASETS_DIR

log = logging.getLogger(__name__)


class TwoViewDataset(torch.utils.data.Dataset):
    """Item i is `views(image i)`; an undecodable image is logged once and replaced by the next one.

    `preload` (a side length) decodes every image once, shrunk so its shorter side is at most that
    many pixels, and keeps it in memory: much faster for small sets, which are read every epoch.
    `with_index=True` appends i to each item (the instance id of SSCD's loss).
    """

    def __init__(
        self, paths: Sequence[str | os.PathLike], views: Callable, preload: int | None = None, with_index: bool = False
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.views = views
        self.preload = preload
        self.with_index = with_index
        self._bad: set[int] = set()
        self._cache: list[Image.Image | None] | None = None
        if preload:
            self._cache = [self._decode(i) for i in tqdm(range(len(self.paths)), desc="preload images", leave=False)]

    def _decode(self, i: int) -> Image.Image | None:
        try:
            img = load_image(self.paths[i], draft=(self.preload, self.preload) if self.preload else None)
        except BadImageError as err:
            if i not in self._bad:
                log.warning("skipping %s: %s", self.paths[i], err)
                self._bad.add(i)
            return None
        if self.preload and min(img.size) > self.preload:
            scale = self.preload / min(img.size)
            img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BICUBIC)
        return img

    def image(self, i: int) -> Image.Image:
        """The decoded image i, or the next decodable one."""
        for k in range(len(self.paths)):
            j = (i + k) % len(self.paths)
            img = self._cache[j] if self._cache is not None else self._decode(j)
            if img is not None:
                return img
        raise BadImageError(f"none of the {len(self.paths)} training images can be decoded")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple:
        views = self.views(self.image(i))
        return (*views, i) if self.with_index else views


def training_paths(
    datasets: str | os.PathLike | Sequence[str | os.PathLike], min_images: int, root: str | os.PathLike = DATASETS_DIR
) -> list[Path]:
    """Image paths of registered datasets or folders (recursive), checked to fill at least one batch."""
    if isinstance(datasets, (str, os.PathLike)):
        datasets = [datasets]
    paths: list[Path] = []
    for dataset in datasets:
        key = str(dataset)
        listing = load_dataset(key, root=root) if not Path(key).is_dir() else load_dataset(key, recursive=True)
        paths += listing.paths
    if len(paths) < min_images:
        where = ", ".join(str(d) for d in datasets)
        raise ValueError(
            f"{where} holds {len(paths)} images, fewer than one batch "
            f"({min_images} = batch size x processes); lower --batch-size or add images"
        )
    return paths
