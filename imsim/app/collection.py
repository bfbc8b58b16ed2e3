# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""A searchable collection: feature store(s) of one method, their faiss index, and the query extractor.

The index (any faiss factory string) is built once and written next to the features
(``<features_root>/<first dataset>/<method>.<tag>.faiss`` plus a ``.json`` fingerprint of the stores
and the build settings, and the sha256 of the index file); it is loaded when the fingerprint and the
checksum match and rebuilt, with one line naming the file, when a store changed or the file is damaged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import faiss
import numpy as np
from PIL import Image

from data_retrieval.datasets import image_paths
from extractor.store import load_features, read_attrs, store_files
from fast_search import FaissIndex, check_sources, default_search_params
from fast_search.index import check_finite, check_metric, prepare, set_search_param, sweep_param, to_distance
from fast_search.verify import KeypointVerifier, verified_distance
from helpers.atomic import atomic_path
from helpers.digest import ChecksumError, file_sha256, verify
from helpers.images import BadImageError, load_image
from helpers.jsonio import load_json, save_json
from helpers.paths import DATASETS_DIR, FEATURES_DIR, RESULTS_DIR
from imsim.app.batcher import EmbeddingBatcher
from imsim.app.embed import extractor_for_store, prepare_file, prepare_image

log = logging.getLogger(__name__)

#: Queries larger than this many pixels are refused (decompression bombs; 40 Mpx is a large photo).
MAX_QUERY_PIXELS = 40_000_000


@dataclass
class Hit:
    """One search result: rank (1-based), dataset-qualified id, distance, image file (None if gone)."""

    rank: int
    id: str
    distance: float
    path: Path | None
    is_copy: bool | None = None
    inliers: int | None = None  # keypoint verification (Collection(verify=True)): RANSAC inliers
    match_box: tuple[float, float, float, float] | None = None  # the matched region in the hit's image
    query_box: tuple[float, float, float, float] | None = None  # ... and in the query


def default_index(method: str, database: Sequence[str], features_root: str | os.PathLike) -> str:
    """The approximate index `default_search_params` picks for this collection (its exact one if none)."""
    return default_search_params(method, list(database), features_root)["indexes"][-1]


def default_metric(binary: bool) -> str:
    return "hamming" if binary else "cosine"


def store_fingerprint(files: Sequence[str | os.PathLike], **settings) -> str:
    """sha1 of the store files (path, size, mtime, created, inputs) and the build settings."""
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode())
    for f in files:
        st = os.stat(f)
        attrs = read_attrs(f)
        digest.update(
            f"{Path(f).resolve()}|{st.st_size}|{st.st_mtime_ns}|{attrs.get('created')}|{attrs.get('inputs_sha1')}\n".encode()
        )
    return digest.hexdigest()


def threshold_from_results(
    name: str, metric: str, index: str | None = None, results_root: str | os.PathLike = RESULTS_DIR
) -> float | None:
    """The distance threshold at 1 % FPR of experiment `name` (its run with the same index, else exact).

    None when the experiment has no such threshold (no negatives, or no threshold reaches 1 %).
    """
    path = Path(results_root) / name / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"no results at {path}: run search_experiment.py {name} first")
    runs = [r for r in load_json(path).get("runs", []) if r.get("metric") == metric]
    if not runs:
        raise ValueError(f"{path} has no run with metric {metric!r}")
    runs.sort(key=lambda r: (r.get("index") != index, not r.get("exact"), -(r.get("value") or 0)))
    value = runs[0].get("threshold_at_fpr_1pct")
    return None if value is None else float(value)


class Collection:
    """Feature stores of `method` over `database` datasets, searchable by image.

    `index` is a faiss factory string (None: `default_index`), `metric` None picks hamming for
    hashes and cosine for float features; `nprobe`/`efSearch` are set when the index has them.
    """

    def __init__(
        self,
        method: str,
        database: Sequence[str],
        index: str | None = None,
        metric: str | None = None,
        nprobe: int = 16,
        features_root: str | os.PathLike = FEATURES_DIR,
        datasets_root: str | os.PathLike = DATASETS_DIR,
        device: str = "cpu",
        max_pixels: int = MAX_QUERY_PIXELS,
        verify: bool = False,
    ) -> None:
        self.method = method
        self.database = [str(d) for d in ([database] if isinstance(database, str) else database)]
        self.features_root = Path(features_root)
        self.datasets_root = Path(datasets_root)
        self.max_pixels = max_pixels
        self.verifier = KeypointVerifier() if verify else None
        info = check_sources(method, self.database, self.database[:1], 1, features_root)
        parts = [load_features(d, method, features_root) for d in self.database]
        self.ids = np.concatenate([p.ids for p in parts]).astype(object)
        xb = np.concatenate([p.features for p in parts])
        check_finite(xb, self.ids, f"collection {self.database}")
        if len(set(self.ids.tolist())) != len(self.ids):
            raise ValueError(f"the collection {self.database} holds duplicate ids: list each dataset once")
        self.binary, self.dim = info["binary"], info["dim"]
        self.metric = check_metric(metric or default_metric(self.binary), self.binary)
        self.factory = index or default_index(method, self.database, features_root)
        self.nprobe = nprobe
        files = [f for d in self.database for f in _store_files(d, method, features_root)]
        self.attrs = read_attrs(files[0])
        self.extractor = extractor_for_store(self.attrs, device=device)
        self.batcher = EmbeddingBatcher(self.extractor)
        self.fingerprint = store_fingerprint(
            files, database=self.database, factory=self.factory, metric=self.metric
        )
        self.index_path = self.index_file()
        self.index, self.rebuilt = self._load_or_build(xb)
        param = sweep_param(self.factory)
        if param == "nprobe":
            set_search_param(self.index, "nprobe", nprobe)
        self.folders = {}
        for d in self.database:
            folder = read_attrs(_store_files(d, method, features_root)[0]).get("folder")
            if folder:
                self.folders[d] = folder
        self._paths: dict[str, Path | None] | None = None

    # ---- the index on disk ---------------------------------------------------------------
    def index_file(self) -> Path:
        """``<features_root>/<first dataset>/<method>.<factory, metric, datasets tag>.faiss``."""
        tag = re.sub(r"[^A-Za-z0-9_.=-]+", "-", f"{self.factory}--{self.metric}")
        if len(self.database) > 1:
            tag += "--" + hashlib.sha1("|".join(self.database).encode()).hexdigest()[:8]
        return self.features_root / Path(self.database[0]).name / f"{self.method}.{tag}.faiss"

    def _load_or_build(self, xb: np.ndarray):
        meta_path = self.index_path.with_suffix(".json")
        read = faiss.read_index_binary if self.binary else faiss.read_index
        if self.index_path.is_file() and meta_path.is_file():
            try:
                meta = load_json(meta_path)
                if meta.get("fingerprint") == self.fingerprint:
                    if not meta.get("sha256"):
                        raise ChecksumError(f"{meta_path} records no checksum of {self.index_path.name}")
                    verify(self.index_path, meta["sha256"])
                    index = read(str(self.index_path))
                    if index.ntotal == len(self.ids) and index.d == self.dim:
                        log.info("loaded %s", self.index_path)
                        return index, False
                    raise ChecksumError(f"{self.index_path} holds {index.ntotal} vectors, not {len(self.ids)}")
            except (OSError, RuntimeError, ValueError) as err:
                log.warning("%s: cannot use it (%s): rebuilding it", self.index_path,
                            " ".join(str(err).split()))
        log.info("building %s on %d vectors -> %s", self.factory, len(xb), self.index_path)
        index = FaissIndex(self.factory, self.metric, self.binary).fit(xb).add(xb).index_
        with atomic_path(self.index_path) as tmp:
            (faiss.write_index_binary if self.binary else faiss.write_index)(index, str(tmp))
            sha256 = file_sha256(tmp)
        save_json(
            {"fingerprint": self.fingerprint, "factory": self.factory, "metric": self.metric,
             "database": self.database, "method": self.method, "ntotal": int(index.ntotal), "sha256": sha256},
            meta_path,
        )
        return index, True

    # ---- queries -------------------------------------------------------------------------
    def embed(self, query: str | os.PathLike | Image.Image) -> np.ndarray:
        """(1, width) features of an image file (decoded as extraction does) or a PIL image.

        Decoding runs in the caller's thread; the extractor runs in the collection's batcher, so
        concurrent queries share forward passes.
        """
        if isinstance(query, Image.Image):
            return self.batcher.embed(prepare_image(self.extractor, query, self.max_pixels))
        return self.batcher.embed(prepare_file(self.extractor, query, self.max_pixels))

    def search_features(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(D, I) of feature rows: distances (smaller is closer) and positions in `ids`."""
        k = int(min(max(k, 1), len(self.ids)))
        D, I = self.index.search(prepare(x, self.metric), k)
        return to_distance(D, self.metric), I

    def search(
        self, query: str | os.PathLike | Image.Image, k: int = 5, threshold: float | None = None
    ) -> list[Hit]:
        """The k nearest images of the collection; `is_copy` is set when a threshold is given."""
        D, I = self.search_features(self.embed(query), k)
        hits = []
        for rank, (d, i) in enumerate(zip(D[0], I[0], strict=True), start=1):
            if i < 0:
                continue
            image_id = str(self.ids[i])
            copy = None if threshold is None else bool(d <= threshold)
            hits.append(Hit(rank, image_id, float(d), self.path_of(image_id), copy))
        return self.verify(query, hits) if self.verifier is not None else hits

    def verify(self, query: str | os.PathLike | Image.Image, hits: list[Hit]) -> list[Hit]:
        """Match each hit's keypoints against the query (`fast_search.verify`): verified hits first, by
        inliers (then distance), each with its matched region; ranks renumbered."""
        verifier = self.verifier or KeypointVerifier()
        image = query if isinstance(query, Image.Image) else load_image(query)
        keys = verifier.describe_query(image)
        checked = []
        for hit in hits:
            try:
                match = verifier.verify(keys, verifier.describe(load_image(hit.path))) if hit.path else None
            except BadImageError:
                match = None
            if match is None:
                checked.append(hit)
                continue
            checked.append(replace(hit, inliers=match.inliers, match_box=match.db_box, query_box=match.query_box))
        first = np.array([h.distance for h in checked])
        order = np.argsort(verified_distance(np.array([h.inliers or 0 for h in checked]), first,
                                             verifier.min_inliers), kind="stable")
        return [replace(checked[j], rank=r) for r, j in enumerate(order, start=1)]

    def path_of(self, image_id: str) -> Path | None:
        """The image file of a database id (None when its dataset folder is not on this machine)."""
        if self._paths is None:
            found = image_paths(list(self.ids), root=self.datasets_root, folders=self.folders)
            self._paths = dict(zip(self.ids.tolist(), found, strict=True))
        return self._paths.get(image_id)

    def image_folders(self) -> list[Path]:
        """The folders holding the collection's images (served read-only by the app)."""
        self.path_of(str(self.ids[0]))
        roots = {Path(f) for f in self.folders.values()}
        roots |= {p.parent for p in self._paths.values() if p is not None and not any(r in p.parents for r in roots)}
        return sorted(roots)

    def describe(self) -> str:
        """One line for people: size, datasets, features and index (file names only, no server paths)."""
        return (
            f"{len(self.ids):,} images of {', '.join(Path(d).name for d in self.database)} · features {self.method} "
            f"({'binary, ' + str(self.dim) + ' bits' if self.binary else str(self.dim) + '-d'}) · "
            f"index {self.factory} ({self.metric}"
            + (f", nprobe {self.nprobe}" if sweep_param(self.factory) == "nprobe" else "")
            + f") saved as {self.index_path.name}"
        )


def _store_files(dataset: str, method: str, root) -> list[str]:
    return [str(p) for p in store_files(dataset, method, root)]
