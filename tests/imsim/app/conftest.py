"""A tiny demo collection built on the fly: 4 photographs, 2 attacks each, 16 distractors, pHash."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

PHOTOS = ["astronaut", "camera", "chelsea", "coffee"]
ATTACKS = ["jpg_compression_50", "text_length_20"]
DATABASE = ["demo_original", "demo_distractors"]
METHOD = "phash"


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> dict:
    """{"datasets": root, "features": root, "method", "database"} of a small demo set with pHash features."""
    from data_retrieval.demo import build_demo
    from extractor import extract_dataset

    root = tmp_path_factory.mktemp("app_demo")
    datasets, features = root / "Datasets", root / "Features"
    build_demo(datasets, n_distractors=16, photos=PHOTOS, attack_ids=ATTACKS, n_synthetic_negatives=0, workers=1,
               n_photo_distractors=4, n_photo_negatives=0, n_procedural_negatives=0)
    for dataset in [*DATABASE, "demo_attacks"]:
        extract_dataset(METHOD, dataset, features, datasets, workers=0, progress=False)
    return {"datasets": datasets, "features": features, "method": METHOD, "database": DATABASE}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def attack_file(tiny_demo: dict, stem: str) -> Path:
    return next((Path(tiny_demo["datasets"]) / "demo" / "Attacks").glob(f"{stem}.*"))
