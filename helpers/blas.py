"""Give faiss's bundled OpenBLAS the right CPU kernel, and GEMM blocks big enough to use it.

The faiss-cpu wheel bundles OpenBLAS 0.3.15, which does not know recent CPUs: it took an AVX-512
Intel Xeon for a `Prescott` and an AMD EPYC (Zen 5) for a `Barcelona`, and ran their generic SSE
kernels, so exact (Flat) search reached 15-25 % of numpy's matmul on the same shapes. OpenBLAS
reads ``OPENBLAS_CORETYPE`` once, when it loads, so this module runs before faiss is imported
(``helpers.openmp`` imports it; every package that loads faiss imports that first):

- the CPU is detected now, from numpy's run-time dispatch table: AVX-512 (F, CD, BW, DQ, VL)
  -> ``SkylakeX``, AVX2 + FMA -> ``Haswell``, anything else -> no change (OpenBLAS decides);
- a value already set (by the user, or by an environment that pins it for its own reasons) is kept;
- numpy is imported first, so numpy's own, newer OpenBLAS still detects the CPU by itself.

`configure_faiss` also raises faiss's database block for BLAS distance computations from 1,024
to 4,096 vectors (a 4,096 x 4,096 float32 block, 64 MiB): with 1,024 the GEMM calls are too small
to run at BLAS speed (measured 2x slower on 2 cores). `faiss_blas` reports, via threadpoolctl,
which kernel faiss's OpenBLAS actually runs; the search benchmark prints it. `single_threaded_blas`
keeps several decoding threads from queueing on one multi-threaded BLAS.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np  # noqa: F401  (loaded first: numpy's OpenBLAS keeps its own CPU detection)

CORETYPE_ENV = "OPENBLAS_CORETYPE"
#: AVX-512 subsets OpenBLAS's SkylakeX kernels use.
SKYLAKEX_FEATURES = ("AVX512F", "AVX512CD", "AVX512BW", "AVX512DQ", "AVX512VL")
#: OpenBLAS core types with AVX2 (or better) kernels; anything else on an AVX2 CPU is a mis-detection.
FAST_CORETYPES = frozenset(
    {"haswell", "zen", "skylakex", "cooperlake", "sapphirerapids", "skylake", "zen2", "zen3", "zen4", "zen5"}
)
#: Database vectors per BLAS block in faiss's exact search (faiss's default is 1,024).
FAISS_DATABASE_BS = 4096


def cpu_features() -> set[str]:
    """Instruction-set extensions of the CPU this process runs on (numpy's dispatch names: AVX2, FMA3...)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # pragma: no cover  (numpy < 2)
        from numpy.core._multiarray_umath import __cpu_features__
    return {name for name, present in __cpu_features__.items() if present}


def choose_coretype(features: Iterable[str], current: str | None = None) -> str | None:
    """The OPENBLAS_CORETYPE to set for these CPU features; None to leave OpenBLAS alone.

    A `current` value (already in the environment) always wins: None is returned.
    """
    if current:
        return None
    features = set(features)
    if all(f in features for f in SKYLAKEX_FEATURES):
        return "SkylakeX"
    if {"AVX2", "FMA3"} <= features:
        return "Haswell"
    return None


def _set_coretype() -> None:
    if "faiss" in sys.modules:  # too late: its OpenBLAS has already chosen
        return
    choice = choose_coretype(cpu_features(), os.environ.get(CORETYPE_ENV))
    if choice:
        os.environ[CORETYPE_ENV] = choice


def configure_faiss(faiss: Any) -> None:
    """Per-process faiss settings (called where faiss is imported): BLAS blocks of `FAISS_DATABASE_BS` vectors."""
    cvar = getattr(faiss, "cvar", None)
    if cvar is not None and getattr(cvar, "distance_compute_blas_database_bs", FAISS_DATABASE_BS) < FAISS_DATABASE_BS:
        cvar.distance_compute_blas_database_bs = FAISS_DATABASE_BS


def single_threaded_blas() -> Any:
    """A context that runs every BLAS but torch's on one thread: extraction threads that each call
    numpy's BLAS (the hashes' resize matrices) otherwise wait on each other (measured 1.3x slower
    than one thread alone), while the model keeps its own threads."""
    from threadpoolctl import ThreadpoolController

    blas = ThreadpoolController().select(user_api="blas")
    others = [lib.filepath for lib in blas.lib_controllers if f"{os.sep}torch{os.sep}" not in lib.filepath]
    return blas.select(filepath=others).limit(limits=1)


def faiss_blas() -> dict[str, Any]:
    """threadpoolctl's record of the BLAS faiss loaded (version, architecture = kernel in use); {} if unknown."""
    import faiss  # noqa: F401  (the library must be loaded to be reported)
    from threadpoolctl import threadpool_info

    for info in threadpool_info():  # the wheel keeps its libraries in site-packages/faiss_cpu.libs/
        if info.get("internal_api") == "openblas" and "faiss" in os.path.basename(os.path.dirname(info["filepath"])):
            return info
    return {}


def check_faiss_blas() -> str:
    """One line on faiss's BLAS kernel; warns when it is a generic kernel on a CPU with AVX2."""
    info = faiss_blas()
    if not info:
        return "faiss BLAS: not OpenBLAS (or not found by threadpoolctl)"
    arch = str(info.get("architecture") or "?")
    line = f"faiss BLAS: OpenBLAS {info.get('version')} running {arch} kernels ({CORETYPE_ENV}={os.environ.get(CORETYPE_ENV)})"
    if "AVX2" in cpu_features() and arch.lower() not in FAST_CORETYPES:
        warnings.warn(f"{line}: a generic kernel on an AVX2 CPU; exact search runs several times slower", stacklevel=2)
    return line


_set_coretype()
