"""SimCLR v2 model names and depths, without torch (the download script checks its flags with them)."""

from __future__ import annotations

DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
MODELS = tuple(f"r{d}_{w}x_sk{s}" for d in (50, 101, 152) for w in (1, 2) for s in (0, 1)) + ("r152_3x_sk1",)


def parse_model_name(name: str) -> tuple[int, int, bool]:
    """'r50_2x_sk1' -> (50, 2, True); raises ValueError listing the valid names."""
    if name not in MODELS:
        raise ValueError(f"unknown SimCLR v2 model {name!r}; valid: {', '.join(MODELS)}")
    depth, width, sk = name.split("_")
    return int(depth[1:]), int(width[:-1]), sk == "sk1"
