"""Every framework and pooling on tiny random models: shapes, determinism, batch vs single, aspect groups."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from extractor import create_extractor
from extractor.frameworks import ilias_preprocess
from extractor.neural import NeuralExtractor, PreprocessCfg, ShapeGroups, image_to_uint8
from extractor.pooling import POOLINGS, gap, gem, mac, regions, rmac
from tests.conftest import synthetic_image

#: two aspect ratios, so RESIZE_LARGE batches hold two shape groups
SIZES = [(96, 72), (72, 96), (96, 72), (100, 40)]
MAP_POOLINGS = ["head", "gap", "mac", "gem", "rmac", "rgem"]


def _images():
    return [synthetic_image(i, size) for i, size in enumerate(SIZES)]


def _check_global(ext: NeuralExtractor, dim: int | None = None) -> np.ndarray:
    images = _images()
    batch = ext.features(images)
    assert batch.shape == (len(images), dim or ext.dim) and batch.dtype == np.float32
    assert np.isfinite(batch).all()
    np.testing.assert_array_equal(batch, ext.features(images))  # deterministic
    single = np.concatenate([ext.features([img]) for img in images])  # one by one = no grouping at all
    np.testing.assert_allclose(batch, single, rtol=1e-4, atol=1e-5)
    return batch


@pytest.mark.parametrize("pooling", [*MAP_POOLINGS, "cls"])
def test_timm_vit_every_pooling_aspect_kept(pooling):
    ext = create_extractor("timm:test_vit", weights=None, pooling=pooling, transforms="RESIZE_LARGE",
                           resolution=64, precision="fp32")
    assert ext.name == f"timm-test_vit_random{'' if pooling == 'head' else '_' + pooling}_large64"
    samples = [ext.transform(img) for img in _images()]
    assert isinstance(ext.collate(samples), ShapeGroups) and len(ext.collate(samples).groups) == 3
    _check_global(ext)


@pytest.mark.parametrize("pooling", MAP_POOLINGS)
def test_timm_cnn_every_pooling(pooling):
    ext = create_extractor("timm:test_resnet", weights=None, pooling=pooling, transforms="RESIZE_SMALL",
                           resolution=48, precision="fp32")
    _check_global(ext)


def test_cls_needs_a_class_token():
    with pytest.raises(ValueError, match="class token"):
        create_extractor("timm:test_resnet", weights=None, pooling="cls")


@pytest.mark.parametrize("pooling", ["head", "gem", "rmac"])
def test_torchvision_poolings(pooling):
    ext = create_extractor("torchvision:resnet18", weights=None, pooling=pooling, transforms="RESIZE_LARGE",
                           resolution=64, precision="fp32")
    assert ext.dim == 512
    _check_global(ext)


def test_torchvision_without_options_is_the_plain_entry():
    plain, named = create_extractor("resnet18", weights=None), create_extractor("torchvision:resnet18", weights=None)
    assert plain.name == named.name == "resnet18_random" and plain.params == named.params
    with pytest.raises(TypeError, match="unexpected keyword"):
        create_extractor("torchvision:resnet18", weights=None, poolng="gem")


def test_local_tokens_vary_per_image_and_batch_equals_single():
    ext = create_extractor("timm:test_vit", weights=None, pooling="local", transforms="RESIZE_LARGE",
                           resolution=64, precision="fp32")
    images = _images()
    tokens = ext.local_features(images)
    counts = [len(t) for t in tokens]
    assert counts[0] == counts[1] == counts[2] and counts[3] < counts[0]  # 100x40 has fewer patches
    assert all(t.shape[1] == ext.dim == 64 for t in tokens)
    for img, t in zip(images, tokens, strict=True):
        np.testing.assert_allclose(ext.local_features([img])[0], t, rtol=1e-4, atol=1e-5)
    with pytest.raises(TypeError, match="tokens"):
        ext.features(images)
    with pytest.raises(ValueError, match="local"):
        create_extractor("timm:test_vit", weights=None, pooling="local", multiscale=True)


# ---- open_clip -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    import open_clip  # required (requirements.txt): a broken install fails, never skips

    cfg = tmp_path_factory.mktemp("oc") / "imsim-test-tiny.json"
    cfg.write_text('{"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16,'
                   ' "patch_size": 8}, "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32,'
                   ' "heads": 2, "layers": 1}}')
    open_clip.add_model_config(cfg)
    torch.manual_seed(0)
    return create_extractor("open_clip:imsim-test-tiny", weights=None, precision="fp32")


def test_open_clip_image_and_text_towers(tiny_clip, tmp_path):
    assert tiny_clip.name == "open_clip-imsim-test-tiny_random" and tiny_clip.dim == 16
    _check_global(tiny_clip)
    text = tiny_clip.encode_text(["a red bus", "a cat", "a red bus"])
    assert text.shape == (3, 16) and text.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(text[0], text[2], rtol=1e-5, atol=1e-6)
    torch.save(tiny_clip.clip_model.state_dict(), tmp_path / "tiny.pt")
    again = create_extractor("open_clip:imsim-test-tiny", weights=str(tmp_path / "tiny.pt"), precision="fp32")
    assert again.name == "open_clip-imsim-test-tiny_tiny"
    np.testing.assert_allclose(again.encode_text(["a cat"]), text[1:2], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="pooling='head'"):
        create_extractor("open_clip:imsim-test-tiny", weights=None, pooling="gem")


def test_text_store_searches_an_image_store(tiny_clip, tmp_path):
    from extractor import extract_dataset, load_features
    from extractor.texts import extract_texts

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(5):
        synthetic_image(i).save(folder / f"{i}.png")
    image_store = extract_dataset(tiny_clip, folder, features_root=tmp_path / "F", workers=0, progress=False)
    text_store = extract_texts(tiny_clip, {"bus": "a red bus", "cat": "a cat"}, "text_queries", tmp_path / "F")
    assert text_store.parent.name == "text_queries" and text_store.name == image_store.name  # same method name
    queries, database = load_features("text_queries", tiny_clip.name, tmp_path / "F"), load_features(
        "imgs", tiny_clip.name, tmp_path / "F")
    assert list(queries.ids) == ["text_queries/bus", "text_queries/cat"] and queries.features.shape == (2, 16)
    import faiss

    base = database.features / np.linalg.norm(database.features, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(16)
    index.add(base.astype(np.float32))
    _, top = index.search(queries.features.astype(np.float32), 1)
    np.testing.assert_array_equal(top[:, 0], (queries.features @ base.T).argmax(1))
    from fast_search import run_experiment

    gt = tmp_path / "gt.csv"
    gt.write_text(f"text_queries/bus,{database.ids[top[0, 0]]}\ntext_queries/cat,imgs/4\n")
    run_experiment("t2i", tiny_clip.name, database=["imgs"], queries=["text_queries"], ground_truth=gt,
                   indexes=["Flat"], metrics=["cosine"], ks=[1, 5], features_root=tmp_path / "F",
                   results_root=tmp_path / "R")
    from fast_search import summary_rows

    (row,) = summary_rows("t2i", results_root=tmp_path / "R")  # text -> image, like any query store
    assert row["recall@1"] >= 0.5 and row["recall@5"] == 1.0
    with pytest.raises(ValueError, match="text tower"):
        extract_texts(create_extractor("dhash"), {"a": "b"}, "t", tmp_path / "F")


def test_open_clip_missing_weights_and_unknown_names():
    with pytest.raises(FileNotFoundError, match=r"ViT-B-32\.pt|huggingface|Hugging Face"):
        create_extractor("open_clip:ViT-B-32/openai")
    with pytest.raises(ValueError, match="laion2b_s34b_b79k"):
        create_extractor("open_clip:ViT-B-32/no_such_tag")
    with pytest.raises(ValueError, match="ViT-B-32"):
        create_extractor("open_clip:ViT-B-3")


# ---- torch.hub from a local directory -----------------------------------------------------
HUBCONF = '''
dependencies = ["torch"]
import torch
from torch import nn


class TinyViT(nn.Module):
    def __init__(self, dim=16, patch=8):
        super().__init__()
        self.patch_size = patch
        self.embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.block = nn.TransformerEncoderLayer(dim, 2, 32, batch_first=True, dropout=0.0)
        self.norm = nn.LayerNorm(dim)

    def forward_features(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)
        t = self.norm(self.block(torch.cat([self.cls_token.expand(len(t), -1, -1), t], 1)))
        return {"x_norm_clstoken": t[:, 0], "x_norm_patchtokens": t[:, 1:]}

    def forward(self, x):
        return self.forward_features(x)["x_norm_clstoken"]


def tiny_vit(pretrained=False, **kwargs):
    torch.manual_seed(0)
    return TinyViT()
'''


@pytest.fixture(scope="module")
def hub_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hub")
    (folder / "hubconf.py").write_text(HUBCONF)
    return folder


@pytest.mark.parametrize("pooling", ["head", "cls", "gem", "rmac"])
def test_hub_poolings(hub_dir, pooling):
    ext = create_extractor("hub:tiny_vit", weights=None, hub_dir=hub_dir, pooling=pooling,
                           transforms="RESIZE_LARGE", resolution=60, precision="fp32")  # 60: padded to 64
    _check_global(ext, 16)


def test_hub_local_tokens_weights_file_and_errors(hub_dir, tmp_path):
    ext = create_extractor("hub:tiny_vit", weights=None, hub_dir=hub_dir, pooling="local", precision="fp32")
    assert [t.shape for t in ext.local_features(_images()[:1])] == [(28 * 28, 16)]  # 224 / 8 patches a side
    torch.save(ext.model.backbone.model.state_dict(), tmp_path / "w.pth")
    loaded = create_extractor("hub:tiny_vit", weights=str(tmp_path / "w.pth"), hub_dir=hub_dir, precision="fp32")
    assert loaded.name == "hub-tiny_vit_w"
    with pytest.raises(FileNotFoundError, match="no known checkpoint"):
        create_extractor("hub:tiny_vit", hub_dir=hub_dir)
    with pytest.raises(ValueError, match="tiny_vit"):
        create_extractor("hub:tiny_vt", weights=None, hub_dir=hub_dir)
    with pytest.raises(FileNotFoundError, match="facebookresearch_dinov2"):
        create_extractor("hub:dinov2_vits14", weights=None)


def test_unknown_framework_and_timm_names():
    with pytest.raises(ValueError, match="timm, torchvision, open_clip, hub"):
        create_extractor("keras:resnet50")
    with pytest.raises(ValueError, match="resnet50"):
        create_extractor("timm:resnet_50")
    with pytest.raises(FileNotFoundError, match="resnet18"):
        create_extractor("timm:resnet18")  # pretrained file not in any local cache


# ---- transforms, test-time views, pooling maths ---------------------------------------
@pytest.mark.parametrize("name,shape", [("RESIZE_LARGE", (48, 64)), ("RESIZE_SMALL", (64, 85)),
                                        ("RESIZE_CENTER", (64, 64)), ("RESIZE_SQUARE", (64, 64)),
                                        ("RESIZE_PAD", (64, 64))])
def test_ilias_transforms(name, shape):
    cfg = ilias_preprocess(name, 64, PreprocessCfg())
    image = synthetic_image(0, (96, 72))
    ext = NeuralExtractor("id", torch.nn.Flatten(), cfg, precision="fp32")
    prepared = ext.prepare(image_to_uint8(image, cfg)[None])
    assert tuple(prepared.shape[-2:]) == shape
    if name == "RESIZE_PAD":
        assert torch.all(prepared[..., :8, :] == 0) and torch.all(prepared[..., -8:, :] == 0)  # 48 -> 64: 8 + 8
    with pytest.raises(ValueError, match="RESIZE_LARGE"):
        ilias_preprocess("RESIZE_HUGE", 64, cfg)


def test_multiscale_multirotate_average_of_normalised_views():
    kwargs = dict(weights=None, transforms="RESIZE_LARGE", resolution=64, precision="fp32")

    def make(**extra):
        torch.manual_seed(0)  # the same random weights every time
        return create_extractor("timm:test_resnet", **kwargs, **extra)

    both = make(multiscale=True, multirotate=True)
    assert both.name == "timm-test_resnet_random_large64_ms_mr"
    image = synthetic_image(1, (96, 72))
    feats = both.features([image])
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, rtol=1e-5)
    turned = both.features([image.transpose(Image.Transpose.ROTATE_90)])
    # the four quarter turns are the same set of views (up to PIL's uint8 rounding between its two resize passes)
    assert float(turned[0] @ feats[0]) > 0.9999
    plain = make()
    views = []
    for scale in (0.707, 1.0, 1.414):
        plain.scales = (scale,)
        views.append(plain.features([image])[0])
    scaled = np.mean([v / np.linalg.norm(v) for v in views], axis=0)
    ms = make(multiscale=True).features([image])[0]
    np.testing.assert_allclose(ms, scaled / np.linalg.norm(scaled), rtol=1e-4, atol=1e-5)


def test_pooling_maths():
    x = torch.rand(2, 3, 5, 7) + 0.1
    torch.testing.assert_close(gem(x, p=1.0), gap(x))
    assert torch.all(gem(x) >= gap(x) - 1e-6) and torch.all(gem(x) <= mac(x) + 1e-6)
    constant = torch.full((1, 2, 4, 4), -2.0)
    torch.testing.assert_close(gem(constant), torch.full((1, 2), -2.0))  # negative maps are shifted, not clipped
    assert regions(7, 7)[0] == (0, 0, -1) and len(regions(7, 7)) == 1 + 4 + 9
    assert all(t + s <= 5 and left + s <= 9 for t, left, s in regions(5, 9)[1:])
    assert rmac(x).shape == (2, 3) and set(POOLINGS) >= {"head", "cls", "local"}


def test_store_fp16_and_exif(tmp_path):
    from extractor import extract_dataset, load_features
    from helpers.images import load_image

    folder = tmp_path / "imgs"
    folder.mkdir()
    upright = synthetic_image(3, (96, 72))
    upright.save(folder / "upright.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: viewers turn it 90 degrees clockwise
    upright.transpose(Image.Transpose.ROTATE_90).save(folder / "rotated.jpg", exif=exif, quality=100)
    assert load_image(folder / "rotated.jpg").size == upright.size
    ext = create_extractor("timm:test_resnet", weights=None, transforms="RESIZE_LARGE", resolution=64,
                           precision="fp32")
    half = extract_dataset(ext, folder, features_root=tmp_path / "F", workers=0, dtype="float16", progress=False)
    feats = load_features("imgs", ext.name, tmp_path / "F").features
    assert feats.dtype == np.float16 and half.exists()
    cos = (feats[0].astype(np.float32) @ feats[1].astype(np.float32)) / np.prod(
        np.linalg.norm(feats.astype(np.float32), axis=1))
    assert cos > 0.98  # EXIF transposed, then the same picture (JPEG vs PNG)


def test_timm_weights_from_file_and_from_the_local_hub_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants
    import timm
    from safetensors.torch import save_file

    random = create_extractor("timm:test_vit", weights=None, precision="fp32")
    torch.save(random.model.backbone.model.state_dict(), tmp_path / "mine.pth")
    from_file = create_extractor("timm:test_vit", weights=str(tmp_path / "mine.pth"), precision="fp32")
    assert from_file.name == "timm-test_vit_mine"
    images = _images()[:2]
    np.testing.assert_allclose(from_file.features(images), random.features(images), rtol=1e-5, atol=1e-6)

    repo = timm.models.get_pretrained_cfg("test_vit").to_dict()["hf_hub_id"]  # timm/test_vit.r160_in1k
    snapshot = tmp_path / "hub" / f"models--{repo.replace('/', '--')}" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc")
    save_file({k: v.contiguous() for k, v in random.model.backbone.model.state_dict().items()},
              str(snapshot / "model.safetensors"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    cached = create_extractor("timm:test_vit", precision="fp32")  # DEFAULT: found in the local cache
    assert cached.name == "timm-test_vit" and cached.params["weights"].endswith("model.safetensors")
    np.testing.assert_allclose(cached.features(images), random.features(images), rtol=1e-5, atol=1e-6)


def test_list_extractors_per_framework():
    from extractor import list_extractors

    assert "timm:vit_small_patch16_224.augreg_in21k" in list_extractors("timm:vit_small_patch16_224*")
    assert list_extractors("torchvision:resnet1*") == ["torchvision:resnet101", "torchvision:resnet152",
                                                       "torchvision:resnet18"]
    assert "hub:dinov2_vits14" in list_extractors("hub:*")
    with pytest.raises(ValueError, match="known"):
        list_extractors("keras:*")
    assert "open_clip:ViT-B-32/laion2b_s34b_b79k" in list_extractors("open_clip:ViT-B-32/*")


@pytest.mark.parametrize("pooling", ["gem", "local"])
def test_simclr_poolings(pooling):
    ext = create_extractor("simclr_v2_r50_1x_sk0", weights=None, pooling=pooling, transforms="RESIZE_LARGE",
                           resolution=64, precision="fp32")
    assert ext.name == f"simclr_v2_r50_1x_sk0_random_{pooling}_large64" and ext.dim == 2048
    if pooling == "local":
        tokens = ext.local_features(_images()[:2])
        assert [t.shape for t in tokens] == [(4, 2048), (4, 2048)]  # 64x48 -> 2x2 after stride 32
    else:
        _check_global(ext)
    with pytest.raises(TypeError, match="unexpected keyword"):
        create_extractor("simclr_v2_r50_1x_sk0", weights=None, poolng="gem")
