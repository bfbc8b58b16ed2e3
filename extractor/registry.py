"""The one table of extractor names: hashes, torchvision models, SimCLR, plus user-registered encoders.

Entry tables are merged explicitly here (no decorators filling globals at import time).
`register_extractor` adds a user's module (e.g. a fine-tuned encoder) for this process.
Only the hashes' table is read at import: a hash never imports torch (``create_extractor('dhash')``
costs numpy and PIL); the neural tables (torch, torchvision) load on the first neural name.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import importlib
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from extractor import hashes
from extractor.base import Extractor

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from extractor.neural import NeuralExtractor, PreprocessCfg

class LazyEntry:
    """An entry named ``"module:function"``, imported on first use.

    For extractors built on other entries of this registry (SSCD's backbone is any registry encoder):
    their module imports the registry, so the registry names them instead of importing them.
    """

    def __init__(self, target: str) -> None:
        self.target = target

    def load(self) -> Callable[..., Extractor]:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Extractor:
        return self.load()(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(self.load())

    def __repr__(self) -> str:
        return f"LazyEntry({self.target!r})"


_USER: dict[str, Callable[..., Extractor]] = {}


@functools.cache
def _own_entries() -> tuple[dict[str, Callable[..., Extractor]], dict[str, str]]:
    """(entries, aliases) of the neural tables this library defines (torch, not torchvision's model list)."""
    from extractor import efficientnet_lite, simclr

    entries = {**simclr.ENTRIES, **efficientnet_lite.ENTRIES, "sscd": LazyEntry("extractor.sscd:create_sscd")}
    return entries, {**simclr.ALIASES}


@functools.cache
def _neural_entries() -> tuple[dict[str, Callable[..., Extractor]], dict[str, str]]:
    """(entries, aliases) of every neural table; imports torch and torchvision, so only for a non-hash name."""
    from extractor import torchvision_models

    own, aliases = _own_entries()
    return {**torchvision_models.ENTRIES, **own}, aliases


def __getattr__(name: str) -> Any:
    """``ENTRIES`` (every built-in name -> factory) and ``ALIASES`` (other spellings, e.g. the seed's
    "SimCLR v2 ResNet50 2x"), built on first access (PEP 562)."""
    if name == "ENTRIES":
        return {**hashes.ENTRIES, **_neural_entries()[0]}
    if name == "ALIASES":
        return dict(_neural_entries()[1])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _all_entries() -> dict[str, Callable[..., Extractor]]:
    return {**hashes.ENTRIES, **_neural_entries()[0], **_USER}


def list_extractors(pattern: str = "*") -> list[str]:
    """Sorted names of every extractor matching a wildcard (fnmatch: ``"resnet*"``, ``"*hash"``).

    A framework prefix lists that framework's models: ``"timm:*vit_small*"`` (timm.list_models),
    ``"open_clip:ViT-B-32*"`` (open_clip's model/tag pairs), ``"torchvision:resnet*"``.
    """
    framework, sep, rest = pattern.partition(":")
    if sep:
        from extractor.frameworks import list_framework_models

        return sorted({f"{framework}:{m}" for m in list_framework_models(framework)
                       if fnmatch.fnmatchcase(m, rest or "*")})
    return sorted(n for n in _all_entries() if fnmatch.fnmatchcase(n, pattern))


def _framework_factory(name: str) -> Callable[..., Extractor] | None:
    """The factory for a `framework:model` name (timm:..., open_clip:...), or None for a registered name."""
    if ":" not in name:
        return None
    from extractor.frameworks import create_framework_extractor

    return functools.partial(create_framework_extractor, name)


#: Random initialisation (``weights=None``) is seeded with this unless ``init_seed`` says otherwise,
#: so two runs (database, then queries; or a resumed run) build the same network.
RANDOM_INIT_SEED = 0


def _seeded_build(factory: Callable[..., Extractor], kwargs: dict[str, Any], seed: int) -> Extractor:
    """Call `factory` with torch's generator seeded (and restored afterwards); record the seed."""
    import torch as _torch  # noqa: PLC0415  (only neural random init needs it here)

    from extractor.neural import NeuralExtractor

    with _torch.random.fork_rng(devices=[]):
        _torch.manual_seed(seed)
        ext = factory(**kwargs)
    if isinstance(ext, NeuralExtractor):
        ext._extra_params["init_seed"] = seed
        if seed != RANDOM_INIT_SEED:
            ext.name = f"{ext.name}_seed{seed}"
    return ext


def create_extractor(name: str, **kwargs: Any) -> Extractor:
    """Build extractor `name`; kwargs go to its factory (``hash_size``, ``weights``, ``device``...).

    ``weights=None`` means random initialisation, seeded by ``init_seed`` (default
    `RANDOM_INIT_SEED`): the seed is recorded in the extractor's params (and so in the store's
    attributes), and a seed other than the default is part of the store name (``_seed<n>``).

    `name` is a registered name (``dhash``, ``resnet50``, ``efficientnet_lite0``) or
    ``<framework>:<model>`` as that framework spells it (``timm:vit_small_patch16_224.augreg_in21k``,
    ``open_clip:ViT-B-32/openai``, ``hub:dinov2_vits14``, ``torchvision:resnet50``): see `extractor.frameworks`.
    Keyword arguments set to None are dropped except ``weights`` (None there means random init),
    so unset script flags never override an entry's default.
    """
    factory = None if name in _USER else _framework_factory(name)
    if name in _USER:
        entries = dict(_USER)
    elif name in hashes.ENTRIES or factory is not None:  # a hash or `framework:model`: no other table loads
        entries = {name: factory or hashes.ENTRIES[name]}
    elif _own_entries()[1].get(name, name) in _own_entries()[0]:  # this library's models: no torchvision list
        name = _own_entries()[1].get(name, name)
        entries = {name: _own_entries()[0][name]}
    else:
        entries = _all_entries()
        name = _neural_entries()[1].get(name, name)
    if factory is None and name not in entries:
        close = difflib.get_close_matches(name, entries, n=5, cutoff=0.5)
        rest = [n for n in sorted(entries) if n not in close]
        raise ValueError(f"unknown extractor {name!r}; close matches: {close or 'none'}; all: {', '.join(rest)}")
    init_seed = kwargs.pop("init_seed", None)
    kwargs = {k: v for k, v in kwargs.items() if v is not None or k == "weights"}
    factory = factory or entries[name]
    try:
        if "weights" in kwargs and kwargs["weights"] is None:
            ext = _seeded_build(factory, kwargs, RANDOM_INIT_SEED if init_seed is None else int(init_seed))
        else:
            ext = factory(**kwargs)
    except TypeError as e:
        if "unexpected keyword" in str(e) or "positional argument" in str(e):
            raise TypeError(f"extractor {name!r} does not accept {sorted(kwargs)}: {e}") from None
        raise
    ext.factory_module = getattr(factory, "func", factory).__module__  # its source is part of the store's code record
    return ext


def register_extractor(
    name: str,
    model: torch.nn.Module,
    transform: Callable[[Image.Image], Any] | None = None,
    preprocess: PreprocessCfg | None = None,
    normalize: bool = False,
    params: dict[str, Any] | None = None,
) -> NeuralExtractor:
    """Register a module that maps an image batch to (B, dim) features under `name`; returns it built.

    `params` are recorded in its stores (e.g. ``{"weights": checkpoint_path}``: the store's provenance
    then hashes that file, so another checkpoint under the same name is never taken for this one).

    `preprocess` (default: ImageNet 256 shorter side, crop 224) defines the default uint8 transform;
    a custom `transform` returning float tensors is used as is. `create_extractor(name, device=...,
    precision=...)` then works like for built-in entries (same module object).
    """
    import torch

    from extractor.neural import NeuralExtractor

    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"extractor name must be a non-empty string without '/', got {name!r}")
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")

    def factory(device: str = "cpu", precision: str = "auto", normalize: bool = normalize) -> NeuralExtractor:
        return NeuralExtractor(
            name, model, preprocess, normalize=normalize, device=device, precision=precision, transform=transform,
            params={"registered": type(model).__name__, **(params or {})},
        )

    _USER[name] = factory
    return factory()


def unregister_extractor(name: str) -> None:
    """Remove a user-registered extractor (tests, notebooks)."""
    if name not in _USER:
        raise ValueError(f"{name!r} is not a user-registered extractor; registered: {sorted(_USER)}")
    del _USER[name]
