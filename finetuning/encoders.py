"""Encoders from the extractor registry: the trainable module, its feature size and preprocessing."""

from __future__ import annotations

from typing import Any

from torch import nn


def load_encoder(name: str, weights: str | None = None) -> tuple[nn.Module, int, Any]:
    """(module producing pooled (B, dim) features, dim, preprocessing cfg) of registry entry `name`.

    An unknown name raises ValueError listing the registered encoders.
    """
    from extractor import create_extractor, list_extractors

    try:
        ext = create_extractor(name, weights=weights)
    except (KeyError, ValueError, RuntimeError) as err:
        raise ValueError(f"encoder {name!r} is not in the extractor registry ({err}); valid: {list_extractors()}") from err
    model = getattr(ext, "model", None)
    if not isinstance(model, nn.Module):
        raise ValueError(f"extractor {name!r} has no trainable torch model (perceptual hashes cannot be fine-tuned)")
    return model, int(ext.dim), getattr(ext, "preprocess", None)
