"""The SSCD measurement, now under the leak-free protocol: an alias of `finetune_protocol --recipe sscd`.

    python -m imsim.benchmarks.sscd_copy_detection [--skip-train] [--datasets-root ...]

The earlier version chose its settings (80 % frozen, best of three runs) on the families it reported,
rested 1 % FPR on 160 negatives and normalised scores with a background drawn like its negatives
(issue 21); `imsim.benchmarks.finetune_protocol` replaces it.
"""

from __future__ import annotations

import sys

from imsim.benchmarks.finetune_protocol import main as protocol_main


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    return protocol_main(args if "--recipe" in args else ["--recipe", "sscd", *args])


if __name__ == "__main__":
    raise SystemExit(main())
