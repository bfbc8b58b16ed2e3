"""Neural extractors: a torch module that outputs pooled features, plus the preprocessing it was trained with.

Workers turn each PIL image into a resized, cropped **uint8** CHW tensor (4x less to move between
processes than float); the batch is scaled, normalised and run through the model on the device,
in fp32 or bf16 autocast (channels_last on CPU), AMP on CUDA. Features come back as float32.
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from extractor.base import Extractor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
RESIZE_MODES = ("shorter", "square")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos")


@dataclass(frozen=True)
class PreprocessCfg:
    """How images are prepared for a model: resize, center crop, interpolation, normalisation.

    `resize_mode="shorter"` resizes the shorter side to `resize_size` (aspect kept), `"square"` to
    `resize_size x resize_size`. `crop_size=None` means no crop. `mean`/`std=None` means the model
    takes [0, 1] inputs (SimCLR).
    """

    resize_size: int = 256
    resize_mode: str = "shorter"
    crop_size: int | None = 224
    interpolation: str = "bilinear"
    mean: tuple[float, ...] | None = IMAGENET_MEAN
    std: tuple[float, ...] | None = IMAGENET_STD

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode={self.resize_mode!r}; expected one of {RESIZE_MODES}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation={self.interpolation!r}; expected one of {INTERPOLATIONS}")
        if (self.mean is None) != (self.std is None):
            raise ValueError(f"give both mean and std or neither, got mean={self.mean}, std={self.std}")

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the tensor fed to the model (None dims for shorter-side resize without crop)."""
        if self.crop_size is not None:
            return (self.crop_size, self.crop_size)
        return (self.resize_size, self.resize_size)

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


def image_to_uint8(image: Image.Image, cfg: PreprocessCfg) -> torch.Tensor:
    """Resize (PIL) and center-crop one image into a uint8 (3, H, W) tensor, as torchvision's presets do on PIL."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F

    size = [cfg.resize_size] if cfg.resize_mode == "shorter" else [cfg.resize_size, cfg.resize_size]
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
    """'auto' -> 'bf16' on a CPU with native bf16, 'bf16'/'fp16' AMP on CUDA, else 'fp32'."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; expected one of {PRECISIONS}")
    kind = torch.device(device).type
    if precision == "auto":
        if kind == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if kind == "cpu" and cpu_has_native_bf16() else "fp32"
    if precision == "fp16" and kind == "cpu":
        raise ValueError("precision='fp16' needs a CUDA device; use 'bf16' or 'fp32' on CPU")
    return precision


class NeuralExtractor(Extractor):
    """A torch module whose output is the global-pooled feature, with its preprocessing.

    `model` must map a normalised (B, 3, H, W) float batch to (B, dim) features; `normalize=True`
    L2-normalises them. `transform` overrides the default uint8 preprocessing: a custom transform
    that returns float tensors is trusted to be fully preprocessed (no scaling or normalisation).
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
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.name = name
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
        return {
            **self._extra_params,
            "preprocess": self.preprocess.to_dict(),
            "normalize": self.normalize,
            "precision": self.precision,
            "custom_transform": self.custom_transform is not None,
        }

    # ---- per image (workers) ---------------------------------------------------------------
    def transform(self, image: Image.Image) -> torch.Tensor:
        """PIL RGB image -> uint8 (3, H, W) tensor (or whatever a custom transform returns)."""
        if self.custom_transform is not None:
            return self.custom_transform(image)
        return image_to_uint8(image, self.preprocess)

    # ---- per batch -----------------------------------------------------------------------
    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        """Collated batch -> normalised float tensor on the device, in the model's memory format."""
        batch = torch.as_tensor(batch).to(self.device, non_blocking=True)
        if batch.dtype == torch.uint8:
            scale, shift = self._scale_shift
            batch = torch.addcmul(shift, batch.float(), scale)
        else:
            batch = batch.float()
        return batch.contiguous(memory_format=self._memory_format)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Model features of a prepared batch as a float32 tensor on the device (L2-normalised if asked)."""
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            out = self.model(batch)
        out = out.float().flatten(1)
        if self.normalize:
            out = torch.nn.functional.normalize(out, dim=1)
        return out

    def __call__(self, batch: Any) -> np.ndarray:
        return self.forward(self.prepare(batch)).cpu().numpy()

    def _probe_dim(self) -> int:
        h, w = self.preprocess.input_size
        probe = torch.zeros(1, 3, min(h, 64), min(w, 64), dtype=torch.uint8)
        try:
            return int(self(probe).shape[1])
        except Exception:  # models that need their full input size
            return int(self(torch.zeros(1, 3, h, w, dtype=torch.uint8)).shape[1])
