"""Encoders from the extractor registry: the trainable module, its feature size and preprocessing."""

from __future__ import annotations

from typing import Any

from torch import nn


def load_encoder(name: str, weights: str | None = None) -> tuple[nn.Module, int, Any]:
    """(module producing pooled (B, dim) features, dim, PreprocessCfg) of registry entry `name`.

    `weights=None` is a random initialisation. An unknown name raises ValueError listing the
    registered encoders; a hash (no torch module) raises ValueError too.
    """
    from extractor.registry import create_extractor

    try:
        ext = create_extractor(name, weights=weights)
    except TypeError as err:
        if weights is None and "weights" in str(err):  # user-registered encoders take no weights
            ext = create_extractor(name)
        else:
            raise ValueError(f"extractor {name!r} cannot be fine-tuned: it is not a neural encoder ({err})") from None
    model = getattr(ext, "model", None)
    if not isinstance(model, nn.Module):
        raise ValueError(f"extractor {name!r} has no trainable torch model (perceptual hashes cannot be fine-tuned)")
    return model, int(ext.dim), getattr(ext, "preprocess", None)
