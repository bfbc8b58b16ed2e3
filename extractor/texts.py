"""Text queries: texts -> features of a model's text tower, stored like image features.

    ext = create_extractor("open_clip:ViT-B-32/laion2b_s34b_b79k")
    extract_texts(ext, {"q1": "a red double-decker bus", ...}, "my_text_queries")
    # Features/my_text_queries/<ext.name>.h5: same method name as the image stores, so the text
    # store is searched against an image store like any query set (cosine / inner product).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from extractor.store import store_path, write_features
from helpers.paths import FEATURES_DIR


def extract_texts(
    ext,
    texts: Mapping[str, str] | Sequence[tuple[str, str]],
    dataset: str,
    features_root: str | os.PathLike = FEATURES_DIR,
    *,
    dtype: str = "float32",
    overwrite: bool = False,
    batch_size: int = 256,
) -> Path:
    """Encode `texts` (id -> text) with `ext.encode_text` into ``<features_root>/<dataset>/<ext.name>.h5``.

    Ids are stored as ``<dataset>/<id>`` like image ids; features are L2-normalised float32
    (`dtype="float16"` halves them). A finished store is returned as is unless `overwrite`.
    """
    encode = getattr(ext, "encode_text", None)
    if encode is None:
        raise ValueError(f"{ext.name} has no text tower; use an open_clip model (open_clip:<model>/<tag>)")
    pairs = list(texts.items()) if isinstance(texts, Mapping) else [tuple(p) for p in texts]
    ids = [f"{dataset}/{i}" for i, _ in pairs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{len(ids) - len(set(ids))} duplicate text ids in {dataset!r}")
    if not pairs:
        raise ValueError("no texts to encode")
    out = store_path(dataset, ext.name, features_root)
    if out.exists():
        if not overwrite:
            return out
        out.unlink()
    out.parent.mkdir(parents=True, exist_ok=True)
    feats = np.asarray(encode([t for _, t in pairs], batch_size=batch_size), dtype=dtype)
    return write_features(out, ids, feats, method=ext.name, dataset=dataset,
                          params={"texts": True, **getattr(ext, "params", {})})
