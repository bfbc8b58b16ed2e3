"""Lazy package attributes (PEP 562): ``import extractor`` costs nothing until a name is used.

A package's ``__init__`` maps each public name to the submodule that defines it; the submodule
(and torch, faiss or matplotlib behind it) is imported on first access. Scripts' ``--help`` and
``import fast_search`` stay fast, and the public API is unchanged.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_attributes(
    package: str, modules: dict[str, str]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """(``__all__``, ``__getattr__``, ``__dir__``) for `package`; `modules` maps each submodule to the
    space-separated public names it defines."""
    names = {name: module for module, listed in modules.items() for name in listed.split()}

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals_ = importlib.import_module(package).__dict__
        globals_[name] = value  # cache: later look-ups do not come back here
        return value

    def __dir__() -> list[str]:
        return sorted(set(names) | set(importlib.import_module(package).__dict__))

    return sorted(names), __getattr__, __dir__
