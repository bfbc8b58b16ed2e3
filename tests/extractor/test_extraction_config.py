"""One ExtractionConfig feeds every extraction entry point; a setting given twice or unknown is an error."""

from __future__ import annotations

import numpy as np
import pytest

from extractor import ExtractionConfig, extract_dataset, load_features
from tests.conftest import synthetic_image


def test_of_replaces_fields_and_names_unknown_options():
    base = ExtractionConfig(batch_size=8)
    assert ExtractionConfig.of(base, workers=0) == ExtractionConfig(batch_size=8, workers=0)
    assert ExtractionConfig.of(None) == ExtractionConfig()
    with pytest.raises(TypeError, match="unknown extraction option.*batchsize.*valid: features_root"):
        ExtractionConfig.of(base, batchsize=3)
    for bad in ({"batch_size": 0}, {"workers": -1}, {"limit": 0}, {"batch_size": True}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ExtractionConfig(**bad)


def test_extract_dataset_reads_the_config(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(5):
        synthetic_image(i, (40, 30)).save(folder / f"{i}.png")
    cfg = ExtractionConfig(features_root=tmp_path / "F", batch_size=2, workers=0, limit=3, progress=False)
    path = extract_dataset("dhash", folder, config=cfg)
    assert path.parent.parent == tmp_path / "F"
    plain = extract_dataset("dhash", folder, tmp_path / "G", batch_size=2, workers=0, limit=3, progress=False)
    a, b = load_features(path), load_features(plain)
    assert list(a.ids) == list(b.ids) and len(a.ids) == 3 and np.array_equal(a.features, b.features)
    with pytest.raises(TypeError, match=r"\['batch_size'\] in `config`"):
        extract_dataset("dhash", folder, batch_size=4, config=cfg)
