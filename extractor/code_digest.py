"""What code computes an extractor's features: the package version and a sha256 of its source files.

A store records it in its provenance (``provenance["code"]``), so a store written by older extractor
code is never taken as complete after that code changed: `extractor.pipeline.check_existing` names
the difference (refused, or redone with ``if_changed="redo"``).

The files are the repository modules that define the extractor's class (and its model's, for
neural extractors), the module of the registry factory that built it, and every repository module
they import, transitively, except the ones that only store or list features (`NOT_FEATURE_CODE`)
and packages' ``__init__`` files. Installed libraries are covered by the store's ``versions``.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

#: The distribution whose version is recorded (pyproject.toml's project name).
DISTRIBUTION = "image-similarity"
#: The repository root: modules whose file lies under it are "our" code.
ROOT = Path(__file__).resolve().parents[1]
#: Repository modules that never change a feature value: storage, listing, registries, CLI helpers.
NOT_FEATURE_CODE = frozenset({
    "extractor.registry", "extractor.store", "extractor.pipeline", "extractor.local_store",
    "extractor.code_digest", "extractor.ilias", "extractor.extraction_config", "helpers.atomic", "helpers.paths", "helpers.cli",
    "helpers.lock", "helpers.jsonio", "helpers.tables", "helpers.download", "helpers.lazy",
    "data_retrieval.datasets", "data_retrieval.tars",
})


def package_version() -> str:
    """The installed version of this project ("unknown" when it runs from a checkout without install)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


def _module_file(name: str) -> Path | None:
    """The source file of repository module `name`, or None (not ours, a package init, not found)."""
    if name in NOT_FEATURE_CODE:
        return None
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError, AttributeError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    path = Path(spec.origin).resolve()
    if path.name == "__init__.py" or ROOT not in path.parents or ".venv" in path.parts:
        return None
    return path


def _imports(path: Path, name: str) -> set[str]:
    """Absolute names of the modules `path` (module `name`) imports, anywhere in its body."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    package = name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return out


@lru_cache(maxsize=64)
def _digest(modules: frozenset[str]) -> tuple[str, tuple[str, ...]]:
    """(sha256, relative files) over the closure of `modules` under repository imports."""
    files: dict[str, Path] = {}
    todo = sorted(modules)
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if path is None or name in files:
            continue
        files[name] = path
        todo.extend(sorted(_imports(path, name) - set(files)))
    digest = hashlib.sha256()
    relative = sorted(str(p.relative_to(ROOT)) for p in files.values())
    for rel in relative:
        digest.update(rel.encode() + b"\0" + (ROOT / rel).read_bytes() + b"\0")
    return digest.hexdigest(), tuple(relative)


def source_modules(ext: Any) -> frozenset[str]:
    """The modules to start from: the extractor's classes, its model's classes, its factory's module."""
    names = {cls.__module__ for cls in type(ext).__mro__ if cls is not object}
    model = getattr(ext, "model", None)
    if model is not None:
        names.update(cls.__module__ for cls in type(model).__mro__ if cls is not object)
        for sub in getattr(model, "modules", lambda: [])():  # the blocks a wrapper is made of
            names.add(type(sub).__module__)
    factory = getattr(ext, "factory_module", None)
    if factory:
        names.add(factory)
    return frozenset(names)


def code_record(ext: Any) -> dict[str, Any]:
    """``{"version", "sources_sha256", "sources"}``: the code that computes `ext`'s features."""
    sha, files = _digest(source_modules(ext))
    return {"version": package_version(), "sources_sha256": sha, "sources": list(files)}
