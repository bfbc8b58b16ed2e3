"""faiss's OpenBLAS runs the CPU's kernel: the core type is chosen from CPU features before faiss loads."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import blas

AVX512 = {"AVX", "AVX2", "FMA3", *blas.SKYLAKEX_FEATURES}


def test_choose_coretype_from_features():
    assert blas.choose_coretype(AVX512) == "SkylakeX"
    assert blas.choose_coretype({"AVX", "AVX2", "FMA3", "AVX512F"}) == "Haswell"  # partial AVX-512: AVX2 kernels
    assert blas.choose_coretype({"SSE2", "SSE3", "AVX"}) is None  # leave old CPUs to OpenBLAS
    assert blas.choose_coretype(set()) is None


def test_value_already_set_is_kept():
    assert blas.choose_coretype(AVX512, current="Haswell") is None
    code = "import fast_search, os; print(os.environ.get('OPENBLAS_CORETYPE'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    inherited = os.environ.get("OPENBLAS_CORETYPE")
    expected = inherited or blas.choose_coretype(blas.cpu_features()) or "None"
    assert out == expected


def test_faiss_runs_a_fast_kernel_on_avx2_cpus():
    from fast_search.index import faiss  # loaded the way the library loads it

    assert faiss.cvar.distance_compute_blas_database_bs >= blas.FAISS_DATABASE_BS
    info = blas.faiss_blas()
    if not info or "AVX2" not in blas.cpu_features():
        pytest.skip("faiss's BLAS is not OpenBLAS, or the CPU has no AVX2")
    assert str(info["architecture"]).lower() in blas.FAST_CORETYPES
    assert "kernels" in blas.check_faiss_blas()


def test_single_threaded_blas_limits_numpys_blas_and_restores_it():
    from threadpoolctl import threadpool_info

    from helpers.blas import single_threaded_blas

    def numpy_blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas" and "torch" not in i["filepath"]]

    before = numpy_blas_threads()
    with single_threaded_blas():
        assert all(n == 1 for n in numpy_blas_threads())
    assert numpy_blas_threads() == before
