"""Start-up (issue 26.1): a hash command's throughput vs the Python API's on the same files, and one-image latency.

Rounds interleave, in one run: the API (`extract_dataset("dhash", folder)` in this warm process) and the
command (`python -m imsim extract --method dhash --folder ...` in a fresh interpreter, start-up included)
on BENCH_STARTUP_N=2000 JPEGs of 500x375, BENCH_STARTUP_ROUNDS=3 rounds, BENCH_STARTUP_WORKERS=2
decoding threads each; then the one-image run of the command (hash, and efficientnet_lite0 against
the bare ``import torch`` + model build: what a neural command cannot avoid). Goals: command / API
>= 0.8; one-image hash run < 0.5 s. Each run writes a fresh store (nothing is reused).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from helpers.paths import REPO_ROOT


def _env(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _command(args: list[str], cwd: Path) -> float:
    """Wall seconds of a fresh interpreter running `args` (fails loudly on a non-zero exit)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if out.returncode:
        raise RuntimeError(f"{args}: exit {out.returncode}: {out.stderr[-1000:]}")
    return seconds


def main() -> dict:
    from extractor import extract_dataset
    from imsim.benchmarks.bench_extract import _make_jpegs

    n, rounds, workers = _env("BENCH_STARTUP_N", 2000), _env("BENCH_STARTUP_ROUNDS", 3), _env("BENCH_STARTUP_WORKERS", 2)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        folder = tmp / "jpegs"
        _make_jpegs(folder, n)
        one = tmp / "one"
        _make_jpegs(one, 1)
        api, cmd = [], []
        for r in range(rounds):
            start = time.perf_counter()
            extract_dataset("dhash", folder, features_root=tmp / f"api{r}", workers=workers, progress=False)
            api.append(time.perf_counter() - start)
            cmd.append(_command(["-m", "imsim", "extract", "--method", "dhash", "--folder", str(folder),
                                 "--workers", str(workers), "--features-root", str(tmp / f"cmd{r}")], tmp))
        one_hash = [_command(["-m", "imsim", "extract", "--method", "dhash", "--folder", str(one), "--features-root",
                              str(tmp / f"one{r}")], tmp) for r in range(rounds)]
        bare = [_command(["-c", "import torch; from extractor import create_extractor; "
                                "create_extractor('efficientnet_lite0')"], tmp) for _ in range(rounds)]
        one_neural = [_command(["-m", "imsim", "extract", "--method", "efficientnet_lite0", "--folder", str(one),
                                "--workers", "0", "--features-root", str(tmp / f"neural{r}")], tmp)
                      for r in range(rounds)]
        python = [_command(["-c", "pass"], tmp) for _ in range(rounds)]
    api_rate, cmd_rate = n / statistics.median(api), n / statistics.median(cmd)
    print(f"dhash on {n} JPEGs 500x375, {workers} decoding threads, median of {rounds} interleaved rounds:")
    print("| run | images/s | seconds | ratio |")
    print("|---|---|---|---|")
    print(f"| Python API `extract_dataset` (warm process) | {api_rate:,.0f} | {statistics.median(api):.2f} | 1.00 |")
    print(f"| command `imsim extract` (fresh interpreter) | {cmd_rate:,.0f} | {statistics.median(cmd):.2f} | "
          f"{cmd_rate / api_rate:.2f} (goal >= 0.8) |")
    print("\none-image runs, wall seconds (median):")
    print("| run | seconds |")
    print("|---|---|")
    print(f"| `python -c pass` (the interpreter alone) | {statistics.median(python):.2f} |")
    print(f"| `imsim extract --method dhash`, 1 image | {statistics.median(one_hash):.2f} (goal < 0.5) |")
    print(f"| `import torch; create_extractor('efficientnet_lite0')` (the model's own cost) | "
          f"{statistics.median(bare):.2f} |")
    print(f"| `imsim extract --method efficientnet_lite0`, 1 image | {statistics.median(one_neural):.2f} "
          f"({statistics.median(one_neural) - statistics.median(bare):+.2f} s over the model's own cost) |")
    return {"images": n, "rounds": rounds, "workers": workers, "api_s": api, "command_s": cmd,
            "api_images_per_s": api_rate, "command_images_per_s": cmd_rate, "command_over_api": cmd_rate / api_rate,
            "python_alone_s": python, "one_image_dhash_s": one_hash, "model_alone_s": bare,
            "one_image_neural_s": one_neural}


if __name__ == "__main__":
    main()
