"""Neural extractors: shapes, determinism, batching, precision, preprocessing, weights (never downloaded)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from extractor import NeuralExtractor, PreprocessCfg, create_extractor
from extractor.neural import image_to_uint8, resolve_precision
from extractor.torchvision_models import SEED_MODELS, create_torchvision, strip_classifier
from tests.conftest import synthetic_image


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    return create_extractor("resnet18", weights=None, precision="fp32")


def _images(n=4, size=(96, 72)):
    return [synthetic_image(i, size) for i in range(n)]


def test_shape_dtype_name_and_determinism(resnet18):
    out = resnet18.features(_images())
    assert out.shape == (4, 512) and out.dtype == np.float32 and resnet18.dim == 512
    assert resnet18.name == "resnet18_random" and not resnet18.binary
    np.testing.assert_array_equal(out, resnet18.features(_images()))
    assert not resnet18.model.training


def test_batch_equals_single_images(resnet18):
    images = _images(3)
    batch = resnet18.features(images)
    single = np.concatenate([resnet18.features([img]) for img in images])
    np.testing.assert_allclose(batch, single, rtol=1e-4, atol=1e-5)


def test_bf16_matches_fp32(resnet18):
    images = _images(6)
    small = PreprocessCfg(resize_size=72, crop_size=64)  # emulated bf16 is slow on CPUs without it
    fp32 = NeuralExtractor("r18", resnet18.model, small, precision="fp32", dim=512).features(images)
    bf16 = NeuralExtractor("r18", resnet18.model, small, precision="bf16", dim=512).features(images)
    assert bf16.dtype == np.float32
    cos = (fp32 * bf16).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(bf16, axis=1)
    assert cos.mean() >= 0.99, cos


def test_l2_normalisation_changes_the_name():
    ext = create_extractor("resnet18", weights=None, normalize=True)
    assert ext.name == "resnet18_random_l2"
    np.testing.assert_allclose(np.linalg.norm(ext.features(_images(2)), axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("weights", ["DEFAULT", "IMAGENET1K_V1"])
def test_preprocessing_equals_torchvision_weights_transforms(weights):
    enum = torchvision.models.get_model_weights("resnet50")[weights]
    cfg = PreprocessCfg.from_torchvision(enum.transforms())
    ext = NeuralExtractor("id", torch.nn.Flatten(), cfg, precision="fp32")
    image = synthetic_image(3, (300, 200))
    mine = ext.prepare(image_to_uint8(image, cfg)[None])[0]
    torch.testing.assert_close(mine, enum.transforms()(image), rtol=0, atol=1e-5)


def test_seed_models_dims_and_preprocessing():
    expected = {"inception_v3": (2048, 342, 299), "efficientnet_b7": (2560, 600, 600), "resnet50": (2048, 232, 224)}
    for arch in SEED_MODELS:
        with torch.device("meta"):  # shapes only: no memory, no init cost
            kwargs = {"aux_logits": False, "init_weights": False} if arch == "inception_v3" else {}
            dim = strip_classifier(torchvision.models.get_model(arch, weights=None, **kwargs))
        cfg = PreprocessCfg.from_torchvision(torchvision.models.get_model_weights(arch).DEFAULT.transforms())
        assert dim == expected.get(arch, (2048,))[0]
        if arch in expected:
            assert (cfg.resize_size, cfg.crop_size) == expected[arch][1:]


@pytest.mark.slow
def test_inception_v3_runs_without_aux_head():
    ext = create_torchvision("inception_v3", weights=None)
    assert ext(torch.zeros(1, 3, 96, 96, dtype=torch.uint8)).shape == (1, 2048)


@pytest.mark.parametrize("arch", ["mobilenet_v3_small", "squeezenet1_1", "shufflenet_v2_x0_5", "mnasnet0_5"])
def test_any_torchvision_model_gives_pooled_features(arch):
    ext = create_extractor(arch, weights=None)
    out = ext(torch.zeros(2, 3, 64, 64, dtype=torch.uint8))
    assert out.shape == (2, ext.dim)


def test_missing_weights_error_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        create_extractor("resnet50")
    message = str(err.value)
    assert "resnet50-11ad3fa6.pth" in message and "--weights" in message and str(tmp_path) in message


def test_weights_from_cache_and_local_file_load_without_download(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(1)
    source = torchvision.models.resnet18()
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(source.state_dict(), cache / "resnet18-f37072fd.pth")  # the name torchvision expects
    torch.save({"state_dict": source.state_dict()}, tmp_path / "mine.pth")
    cached = create_extractor("resnet18", precision="fp32")
    local = create_extractor("resnet18", weights=str(tmp_path / "mine.pth"), precision="fp32")
    assert cached.name == "resnet18" and local.name == "resnet18_mine"
    images = _images(1)
    np.testing.assert_array_equal(cached.features(images), local.features(images))
    source.fc = torch.nn.Identity()
    x = cached.prepare(cached.collate([cached.transform(i) for i in images]))
    np.testing.assert_allclose(cached.features(images), source.eval()(x).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_wrong_weights_are_clear_errors(tmp_path):
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
    with pytest.raises(ValueError, match="does not hold resnet50 weights"):
        create_extractor("resnet50", weights=str(tmp_path / "r18.pth"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        create_extractor("resnet50", weights=str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="unknown weights"):
        create_extractor("resnet50", weights="IMAGENET9K")


def test_precision_resolution():
    # fp32 on every CPU, native bf16 or not: the same command gives the same numbers everywhere
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="expected one of"):
        resolve_precision("half", "cpu")
    with pytest.raises(ValueError, match="CUDA"):
        resolve_precision("fp16", "cpu")


def test_preprocess_cfg_validation_and_square_resize():
    with pytest.raises(ValueError, match="resize_mode"):
        PreprocessCfg(resize_mode="longest")
    with pytest.raises(ValueError, match="mean and std"):
        PreprocessCfg(mean=(0.5, 0.5, 0.5), std=None)
    cfg = PreprocessCfg(resize_size=64, resize_mode="square", crop_size=None, interpolation="lanczos", mean=None, std=None)
    out = image_to_uint8(synthetic_image(1, (90, 40)), cfg)
    assert out.shape == (3, 64, 64) and out.dtype == torch.uint8
    ext = NeuralExtractor("flat", torch.nn.Flatten(), cfg, precision="fp32")
    assert ext.dim == 3 * 64 * 64 and float(ext(out[None]).max()) <= 1.0
