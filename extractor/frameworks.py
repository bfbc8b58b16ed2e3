"""One vocabulary for every model source: ``<framework>:<model>`` names and the options they share.

    create_extractor("timm:vit_small_patch16_224.augreg_in21k", pooling="gem", transforms="RESIZE_LARGE",
                     resolution=512, multiscale=True)
    create_extractor("open_clip:ViT-B-32/laion2b_s34b_b79k")      # model / pretrained tag, as open_clip lists them
    create_extractor("hub:dinov2_vits14")                         # torch.hub entry from a local hub directory
    create_extractor("torchvision:resnet50", pooling="rmac")      # = "resnet50" with options

Options (every framework): ``weights`` ("DEFAULT" = the local cache, a file, or None = random),
``pooling`` (head, cls, gap, mac, gem, rmac, rgem, local), ``transforms`` (ILIAS's RESIZE_LARGE,
RESIZE_SMALL, RESIZE_CENTER, RESIZE_SQUARE, RESIZE_PAD; None = the model's own preprocessing),
``resolution``, ``min_size``, ``multiscale`` / ``multirotate`` (test-time views), ``normalize``,
``device``, ``precision``. Frameworks import their library lazily.
"""

from __future__ import annotations

from typing import Any

from extractor import hub_models, open_clip_models, timm_models, torchvision_models
from extractor.framework_options import (  # noqa: F401  (the shared options, importable from here too)
    MULTIROTATE,
    MULTISCALE,
    OPTIONS,
    TRANSFORMS,
    ilias_preprocess,
    make_extractor,
    safe_name,
)
from extractor.neural import NeuralExtractor

FRAMEWORKS = ("timm", "torchvision", "open_clip", "hub")


def list_framework_models(framework: str) -> list[str]:
    """Model names a framework knows (pretrained tags included where the framework has them)."""
    if framework == "timm":
        import timm

        return list(timm.list_models(pretrained=True)) + list(timm.list_models())
    if framework == "open_clip":
        import open_clip

        return [f"{model}/{tag}" for model, tag in open_clip.list_pretrained()] + list(open_clip.list_models())
    if framework == "torchvision":
        return list(torchvision_models.ENTRIES)
    if framework == "hub":
        return [*hub_models.DINO_FILES, *(f"dinov2_vit{s}14{r}" for s in "sblg" for r in ("", "_reg"))]
    raise ValueError(f"unknown framework {framework!r}; known: {', '.join(FRAMEWORKS)}")


def create_framework_extractor(name: str, **kwargs: Any) -> NeuralExtractor:
    """Build ``<framework>:<model>``; ValueError for an unknown framework or (with close names) model."""
    framework, _, model = name.partition(":")
    if framework == "timm":
        return timm_models.create_timm(model, **kwargs)
    if framework == "torchvision":
        return torchvision_models.create_torchvision(model, **kwargs)
    if framework == "open_clip":
        return open_clip_models.create_open_clip(model, **kwargs)
    if framework == "hub":
        return hub_models.create_hub(model, **kwargs)
    raise ValueError(f"unknown framework {framework!r} in {name!r}; known: {', '.join(FRAMEWORKS)} "
                     "(e.g. timm:resnet50.a1_in1k, open_clip:ViT-B-32/openai, hub:dinov2_vits14)")
