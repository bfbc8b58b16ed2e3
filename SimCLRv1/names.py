"""SimCLR v1 model names (ResNet-50 widths), without torch (the download script checks its flags with them)."""

from __future__ import annotations

WIDTHS = (1, 2, 4)
MODELS = tuple(f"{w}x" for w in WIDTHS)


def parse_model_name(name: str) -> int:
    """'2x' -> 2; raises ValueError listing the valid names."""
    if name not in MODELS:
        raise ValueError(f"unknown SimCLR v1 model {name!r}; valid: {', '.join(MODELS)}")
    return int(name[:-1])
