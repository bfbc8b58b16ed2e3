"""Region descriptors: boxes of each layout, both description modes, and boxes round-tripping through the store."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from extractor import create_extractor
from extractor.local_store import LocalFeatures, LocalWriter
from extractor.neural import NeuralExtractor, PreprocessCfg
from extractor.regions import (
    LAYOUTS,
    RegionDescriber,
    extract_regions,
    load_regions,
    pixel_boxes,
    pool_tokens,
    region_boxes,
)


def test_layout_boxes():
    boxes = region_boxes("grid14")
    assert boxes.shape == (14, 4)
    assert boxes[0].tolist() == [0, 0, 1, 1]
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 1 + 1e-6).all()
    assert sorted({round(float(s), 3) for s in boxes[:, 2] - boxes[:, 0]}) == [0.45, 0.6, 1.0]
    assert len(region_boxes("grid5")) == 5 and set(LAYOUTS) >= {"grid5", "grid10", "grid14", "global"}
    with pytest.raises(ValueError, match="unknown region layout"):
        region_boxes("nope")
    px = pixel_boxes(boxes, (200, 100))
    assert px[0].tolist() == [0, 0, 200, 100] and (px[:, 2] > px[:, 0]).all()


def test_pool_tokens_averages_the_covered_cells():
    tokens = np.zeros((4, 4, 3), np.float32)
    tokens[:2, :2, 0] = 1  # top-left quarter points along x
    tokens[2:, 2:, 1] = 1  # bottom-right along y
    pooled = pool_tokens(tokens.reshape(16, 3), np.array([[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]], np.float32))
    assert np.allclose(pooled, [[1, 0, 0], [0, 1, 0]])


def _gradient(seed: int, size=(96, 80)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8), "RGB").resize(size, Image.BICUBIC)


def test_crops_mode_describes_each_box_like_the_cut_out_image():
    ext = create_extractor("phash")
    describer = RegionDescriber(ext, "grid5", mode="crops")
    img = _gradient(1)
    feats = describer.describe([img])[0]
    assert feats.shape == (5, 8) and feats.dtype == np.uint8
    box = tuple(pixel_boxes(describer.boxes, img.size)[3])
    assert np.array_equal(feats[3], ext.features([img.crop(box)])[0])


class _Tokens(torch.nn.Module):
    """A 'local' model: 4 x 4 patch tokens of mean colour per patch (3 dims)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.nn.functional.adaptive_avg_pool2d(x, 4)
        return pooled.flatten(2).transpose(1, 2) + 2.0


def test_tokens_mode_and_store_round_trip(tmp_path):
    ext = NeuralExtractor("toy_local", _Tokens(), PreprocessCfg(resize_size=64, crop_size=64), local=True, dim=3)
    describer = RegionDescriber(ext, "grid5", mode="tokens", size=64)
    assert ext.preprocess.crop_size is None and ext.preprocess.resize_mode == "square"
    data = tmp_path / "data" / "toy"
    data.mkdir(parents=True)
    for i in range(5):
        _gradient(i).save(data / f"{i}.png")
    path = extract_regions(describer, str(data), tmp_path / "feats", tmp_path / "data", batch_images=2,
                           progress=False)
    assert path.name == "toy_local-tokens5.regions.h5"
    regions = load_regions(path)
    assert len(regions.ids) == 5 and regions.features.shape == (25, 3)
    assert np.array_equal(regions.owner, np.repeat(np.arange(5), 5))
    assert np.allclose(regions.boxes, np.tile(describer.boxes, (5, 1)))
    with LocalFeatures(path) as store:
        assert np.allclose(store.boxes(regions.ids[2]), describer.boxes)
    direct = describer.describe([Image.open(data / f"{regions.ids[2].split('/')[-1]}.png")])[0]
    assert np.allclose(regions.features[10:15], direct, atol=1e-5)
    _gradient(9).save(data / "9.png")  # other inputs: the finished file is not reused
    again = load_regions(extract_regions(describer, str(data), tmp_path / "feats", tmp_path / "data",
                                         progress=False))
    assert len(again.ids) == 6 and again.features.shape == (30, 3)


def test_writer_refuses_rows_without_boxes(tmp_path):
    with LocalWriter(tmp_path / "r.regions.h5", method="m", dim=2, boxes=True) as writer:
        with pytest.raises(ValueError, match="boxes"):
            writer.append(["a"], [np.zeros((2, 2))])
        with pytest.raises(ValueError, match="one box per token row"):
            writer.append(["a"], [np.zeros((2, 2))], boxes=[np.zeros((3, 4))])
        writer.append(["a"], [np.ones((2, 2))], boxes=[np.array([[0, 0, 1, 1], [0, 0, 0.5, 0.5]])])
        path = writer.finish()
    with LocalFeatures(path) as store:
        assert store.boxes("a").tolist() == [[0, 0, 1, 1], [0, 0, 0.5, 0.5]]
