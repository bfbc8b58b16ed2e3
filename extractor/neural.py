"""Neural extractors: a torch module that outputs pooled features, plus the preprocessing it was trained with.

Workers turn each PIL image into a resized, cropped **uint8** CHW tensor (4x less to move between
processes than float); the batch is scaled, normalised and run through the model on the device,
in fp32 or bf16 autocast (channels_last on CPU), AMP on CUDA. Features come back as float32.

Aspect-keeping resizes (ILIAS's RESIZE_LARGE / RESIZE_SMALL) give images of different shapes: a
batch is then a `ShapeGroups`, one stacked tensor per shape, each run as its own sub-batch and
put back in input order, so nothing is cropped or padded to make a batch. Test-time
augmentation (`scales`, `rotations`) averages the L2-normalised features of every view.
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from extractor.base import Extractor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
RESIZE_MODES = ("shorter", "longer", "square")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos")


@dataclass(frozen=True)
class PreprocessCfg:
    """How images are prepared for a model: resize, center crop, interpolation, normalisation, padding.

    `resize_mode="shorter"` resizes the shorter side to `resize_size`, `"longer"` the longer side
    (aspect kept in both), `"square"` to `resize_size x resize_size`. `crop_size=None` means no
    crop. `mean`/`std=None` means the model takes [0, 1] inputs (SimCLR). `pad_to` centre-pads
    (after normalisation, with zeros, as ILIAS does) to at least `pad_to x pad_to`.
    """

    resize_size: int = 256
    resize_mode: str = "shorter"
    crop_size: int | None = 224
    interpolation: str = "bilinear"
    mean: tuple[float, ...] | None = IMAGENET_MEAN
    std: tuple[float, ...] | None = IMAGENET_STD
    pad_to: int | None = None

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode={self.resize_mode!r}; expected one of {RESIZE_MODES}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation={self.interpolation!r}; expected one of {INTERPOLATIONS}")
        if (self.mean is None) != (self.std is None):
            raise ValueError(f"give both mean and std or neither, got mean={self.mean}, std={self.std}")

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the tensor fed to a square image (the model's nominal input size)."""
        if self.crop_size is not None:
            return (self.crop_size, self.crop_size)
        return (self.resize_size, self.resize_size)

    @property
    def fixed_size(self) -> bool:
        """True when every image gives the same tensor shape (crop or square resize)."""
        return self.crop_size is not None or self.resize_mode == "square"

    @classmethod
    def from_torchvision(cls, transforms: Any) -> PreprocessCfg:
        """Read a torchvision weights' ``.transforms()`` (ImageClassification) into a cfg."""
        crop = transforms.crop_size[0] if transforms.crop_size else None
        resize = transforms.resize_size[0] if transforms.resize_size else crop
        return cls(
            resize_size=int(resize),
            resize_mode="shorter",
            crop_size=int(crop) if crop else None,
            interpolation=transforms.interpolation.value,
            mean=tuple(float(m) for m in transforms.mean),
            std=tuple(float(s) for s in transforms.std),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def longer_side_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(height, width) with the longer side = `size`, aspect kept, rounded down as ILIAS's LargeSideResize."""
    ratio = height / width
    new_h = max(1, int(size * ratio)) if ratio <= 1 else size
    new_w = max(1, int(size / ratio)) if ratio > 1 else size
    return new_h, new_w


def image_to_uint8(image: Image.Image, cfg: PreprocessCfg) -> torch.Tensor:
    """Resize (PIL) and center-crop one image into a uint8 (3, H, W) tensor, as torchvision's presets do on PIL."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F

    if cfg.resize_mode == "shorter":
        size = [cfg.resize_size]
    elif cfg.resize_mode == "longer":
        size = list(longer_side_size(*image.size, cfg.resize_size))
    else:
        size = [cfg.resize_size, cfg.resize_size]
    image = F.resize(image, size, interpolation=InterpolationMode(cfg.interpolation))  # PIL, antialiased
    tensor = F.pil_to_tensor(image)
    if cfg.crop_size is not None:
        tensor = F.center_crop(tensor, [cfg.crop_size, cfg.crop_size])
    return tensor.contiguous()


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU runs bf16 matrix maths natively (x86 AVX512-BF16/AMX, ARM BF16)."""
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    flags = line
                    break
    except OSError:
        return platform.machine() == "arm64" and platform.system() == "Darwin"  # Apple M2+ run bf16
    words = set(flags.split())
    return bool(words & {"avx512_bf16", "amx_bf16", "bf16"})


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """'auto' -> fp32 on a CPU (the same numbers on every machine), 'bf16'/'fp16' AMP on CUDA.

    bf16 on a CPU is an explicit choice (``precision="bf16"``, recorded in the store): it moves
    EfficientNet-Lite0's features to a cosine of 0.98 of fp32 on some images (docs/extractor.md).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; expected one of {PRECISIONS}")
    kind = torch.device(device).type
    if precision == "auto":
        if kind == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp32"
    if precision == "fp16" and kind == "cpu":
        raise ValueError("precision='fp16' needs a CUDA device; use 'bf16' or 'fp32' on CPU")
    return precision


class ShapeGroups:
    """A batch of images of several shapes: one stacked tensor per shape and each image's batch position."""

    def __init__(self, groups: list[tuple[list[int], torch.Tensor]]) -> None:
        self.groups = groups
        self.size = sum(len(pos) for pos, _ in groups)

    def __len__(self) -> int:
        return self.size

    def pin_memory(self) -> ShapeGroups:
        return ShapeGroups([(pos, t.pin_memory()) for pos, t in self.groups])

    @classmethod
    def from_samples(cls, samples: list[torch.Tensor]) -> ShapeGroups:
        """Group per-image tensors by shape, in order of first appearance."""
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, sample in enumerate(samples):
            by_shape.setdefault(tuple(sample.shape), []).append(i)
        return cls([(pos, torch.stack([samples[i] for i in pos])) for pos in by_shape.values()])


class NeuralExtractor(Extractor):
    """A torch module whose output is the global-pooled feature, with its preprocessing.

    `model` must map a normalised (B, 3, H, W) float batch to (B, dim) features (or, with
    `local=True`, to (B, tokens, dim) patch tokens); `normalize=True` L2-normalises them.
    `transform` overrides the default uint8 preprocessing: a custom transform that returns float
    tensors is trusted to be fully preprocessed (no scaling or normalisation). `scales` and
    `rotations` (multiples of 90 degrees) are test-time views: each view's features are
    L2-normalised, averaged, and L2-normalised again (ILIAS's --multiscale / --multirotate).
    """

    binary = False

    def __init__(
        self,
        name: str,
        model: torch.nn.Module,
        preprocess: PreprocessCfg | None = None,
        normalize: bool = False,
        device: str = "cpu",
        precision: str = "auto",
        *,
        dim: int | None = None,
        transform: Callable[[Image.Image], Any] | None = None,
        params: dict[str, Any] | None = None,
        scales: tuple[float, ...] = (1.0,),
        rotations: tuple[int, ...] = (0,),
        local: bool = False,
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not scales or any(not s > 0 for s in scales):
            raise ValueError(f"scales must be positive numbers, got {scales!r}")
        if not rotations or any(r % 90 for r in rotations):
            raise ValueError(f"rotations must be multiples of 90 degrees, got {rotations!r}")
        if local and (tuple(scales) != (1.0,) or tuple(rotations) != (0,)):
            raise ValueError("local (patch token) features cannot be averaged over scales or rotations")
        self.name = name
        self.scales = tuple(float(s) for s in scales)
        self.rotations = tuple(int(r) % 360 for r in rotations)
        self.local = local
        self.model = model.eval()
        self.preprocess = preprocess if preprocess is not None else PreprocessCfg()
        self.normalize = normalize
        self.custom_transform = transform
        self._extra_params = dict(params or {})
        self.device = torch.device("cpu")
        self.precision = "fp32"
        self.to(device, precision)
        self.dim = int(dim) if dim is not None else self._probe_dim()

    # ---- configuration -------------------------------------------------------------------
    def to(self, device: str | None = None, precision: str | None = None) -> NeuralExtractor:
        """Move the model to `device` and pick the precision ('auto' resolves per device)."""
        device = torch.device(device) if device is not None else self.device
        self.precision = resolve_precision(precision or self.precision, device)
        self.device = device
        # On a CPU, decode in threads: PIL's decoding and resizing release the GIL, and no worker
        # processes fight the model's threads for the cores (assign False to force processes).
        # On a GPU, processes spread the decoding, the bottleneck there.
        self.threaded = device.type == "cpu"
        self.model.to(device)
        memory_format = torch.channels_last if device.type == "cpu" else torch.contiguous_format
        self.model.to(memory_format=memory_format)
        self._memory_format = memory_format
        self._scale_shift = self._make_scale_shift()
        return self

    def _make_scale_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 -> normalised float in one multiply-add: x * scale + shift."""
        cfg = self.preprocess
        mean = torch.tensor(cfg.mean if cfg.mean is not None else (0.0, 0.0, 0.0))
        std = torch.tensor(cfg.std if cfg.std is not None else (1.0, 1.0, 1.0))
        scale = (1.0 / (255.0 * std)).view(1, -1, 1, 1)
        shift = (-mean / std).view(1, -1, 1, 1)
        return scale.to(self.device), shift.to(self.device)

    @property
    def params(self) -> dict[str, Any]:
        extra = {}
        if self.scales != (1.0,) or self.rotations != (0,):
            extra = {"scales": list(self.scales), "rotations": list(self.rotations)}
        if self.local:
            extra["local"] = True
        return {
            **self._extra_params,
            "preprocess": self.preprocess.to_dict(),
            "normalize": self.normalize,
            "precision": self.precision,
            "custom_transform": self.custom_transform is not None,
            **extra,
        }

    @property
    def tta(self) -> bool:
        """True when features average several test-time views."""
        return self.scales != (1.0,) or self.rotations != (0,)

    # ---- per image (workers) ---------------------------------------------------------------
    def transform(self, image: Image.Image) -> torch.Tensor:
        """PIL RGB image -> uint8 (3, H, W) tensor (or whatever a custom transform returns)."""
        if self.custom_transform is not None:
            return self.custom_transform(image)
        return image_to_uint8(image, self.preprocess)

    def collate(self, samples: Any) -> Any:
        """Stack same-shaped samples; samples of several shapes become `ShapeGroups`."""
        first = samples[0]
        if isinstance(first, torch.Tensor) and any(s.shape != first.shape for s in samples):
            return ShapeGroups.from_samples(list(samples))
        return super().collate(samples)

    # ---- per batch -----------------------------------------------------------------------
    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        """Collated batch -> normalised (and padded) float tensor on the device, in the model's memory format."""
        batch = torch.as_tensor(batch).to(self.device, non_blocking=True)
        if batch.dtype == torch.uint8:
            scale, shift = self._scale_shift
            batch = torch.addcmul(shift, batch.float(), scale)
        else:
            batch = batch.float()
        pad_to = self.preprocess.pad_to
        if pad_to:
            h, w = batch.shape[-2:]
            dh, dw = max(0, pad_to - h), max(0, pad_to - w)
            if dh or dw:
                batch = torch.nn.functional.pad(batch, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
        return batch.contiguous(memory_format=self._memory_format)

    def _model(self, batch: torch.Tensor) -> torch.Tensor:
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            out = self.model(batch)
        return out.float() if self.local else out.float().flatten(1)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Model features of a prepared batch as a float32 tensor on the device (L2-normalised if asked).

        With test-time views, each view is resized (bicubic, as ILIAS) and/or rotated by
        quarter turns (exact, shape-changing), and the normalised features are averaged.
        """
        if not self.tta:
            out = self._model(batch)
            return torch.nn.functional.normalize(out, dim=-1) if self.normalize else out
        total = None
        with torch.inference_mode():
            for scale in self.scales:
                view = batch if scale == 1.0 else torch.nn.functional.interpolate(
                    batch, scale_factor=scale, mode="bicubic", align_corners=False)
                view = view.contiguous(memory_format=self._memory_format)
                for angle in self.rotations:
                    turned = torch.rot90(view, angle // 90, dims=(2, 3)) if angle else view
                    feats = torch.nn.functional.normalize(self._model(turned.contiguous(
                        memory_format=self._memory_format)), dim=1)
                    total = feats if total is None else total + feats
            return torch.nn.functional.normalize(total / (len(self.scales) * len(self.rotations)), dim=1)

    def _run(self, batch: Any) -> list[tuple[list[int], torch.Tensor]]:
        """(batch positions, features) per sub-batch; groups that padding made equal run together."""
        if not isinstance(batch, ShapeGroups):
            prepared = self.prepare(batch)
            return [(list(range(len(prepared))), self.forward(prepared))]
        merged: dict[tuple[int, ...], list[tuple[list[int], torch.Tensor]]] = {}
        for pos, tensor in batch.groups:
            prepared = self.prepare(tensor)
            merged.setdefault(tuple(prepared.shape[1:]), []).append((pos, prepared))
        out = []
        for items in merged.values():
            pos = [p for item_pos, _ in items for p in item_pos]
            tensor = items[0][1] if len(items) == 1 else torch.cat([t for _, t in items])
            out.append((pos, self.forward(tensor.contiguous(memory_format=self._memory_format))))
        return out

    def __call__(self, batch: Any) -> np.ndarray:
        if self.local:
            raise TypeError(f"{self.name} gives patch tokens (pooling='local'): use .tokens(batch) or "
                            "extractor.local_store.extract_local, not a fixed-width feature store")
        parts = self._run(batch)
        if len(parts) == 1:
            return parts[0][1].cpu().numpy()
        out = np.empty((len(batch), self.dim), np.float32)
        for pos, feats in parts:
            out[pos] = feats.cpu().numpy()
        return out

    def tokens(self, batch: Any) -> list[np.ndarray]:
        """Local features: one (tokens, dim) float32 array per image of the batch, in batch order."""
        if not self.local:
            raise TypeError(f"{self.name} gives global features; create it with pooling='local' for tokens")
        out: list[np.ndarray | None] = [None] * len(batch)
        for pos, feats in self._run(batch):
            arr = feats.cpu().numpy()
            for j, p in enumerate(pos):
                out[p] = arr[j]
        return out  # type: ignore[return-value]

    def local_features(self, images: Sequence[Image.Image]) -> list[np.ndarray]:
        """Patch tokens of a few PIL images in memory (notebooks, tests)."""
        return self.tokens(self.collate([self.transform(img.convert("RGB")) for img in images]))

    def _probe_dim(self) -> int:
        h, w = self.preprocess.input_size
        views = self.scales, self.rotations
        self.scales, self.rotations = (1.0,), (0,)
        try:
            probe = torch.zeros(1, 3, min(h, 64), min(w, 64), dtype=torch.uint8)
            try:
                return int(self.forward(self.prepare(probe)).shape[-1])
            except Exception:  # models that need their full input size
                return int(self.forward(self.prepare(torch.zeros(1, 3, h, w, dtype=torch.uint8))).shape[-1])
        finally:
            self.scales, self.rotations = views
