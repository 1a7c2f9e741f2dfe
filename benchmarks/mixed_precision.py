"""Training speed in float32 vs mixed bfloat16 on this machine's CPU (or GPU), in one process.

Same model (the bundled recipe's ``small_cnn``, 48x48 grayscale, batch 64), same real FER2013
faces (spread over the classes), same augmentation, one epoch over ``--items`` faces per policy
after a warm-up epoch (graph tracing). Mixed bfloat16 pays off only where the hardware computes
in bfloat16 (AVX-512 BF16 / AMX CPUs, recent GPUs); elsewhere it is emulated and slower than
float32, which is what ``emokeras.runs.native_bfloat16`` warns about.

    python benchmarks/mixed_precision.py --fer2013 FER_DIR [--items 2048]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import keras
import numpy as np
from feature_cache import EpochTimer  # benchmarks/ is on sys.path when run as a script

from emokeras.datasets import load_fer2013_folders
from emokeras.models import build_model
from emokeras.runs import native_bfloat16
from emokeras.training import Phase, TrainConfig, fit


def epoch_seconds(policy: str, train, val) -> float:
    """Seconds for the second of two epochs (the first traces the graph) under ``policy``."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        model = build_model("small_cnn", 7, weights=None, input_size=48, channels=1)
        config = TrainConfig(phases=(Phase("all", 2, 1e-3),), batch_size=64,
                             backbone_lr_multiplier=1.0, class_balance="none")
        timer = EpochTimer()
        fit(model, train, val, config, extra_callbacks=[timer])
        return timer.epochs[-1]
    finally:
        keras.mixed_precision.set_global_policy(previous)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fer2013", type=Path, required=True, help="extracted FER2013 folders")
    parser.add_argument("--items", type=int, default=2048, help="training faces an epoch")
    args = parser.parse_args()

    sets = load_fer2013_folders(args.fer2013)
    # spread over the class-sorted folders, so every class is in both
    def spread(split: str, count: int):
        return sets[split].subset(np.linspace(0, len(sets[split]) - 1, count, dtype=int))

    train, val = spread("Training", args.items), spread("PublicTest", 256)
    print(f"native bfloat16 on this CPU: {native_bfloat16()}")
    seconds = {policy: epoch_seconds(policy, train, val)
               for policy in ("float32", "mixed_bfloat16")}
    base = seconds["float32"]
    print(f"\n| policy | seconds an epoch ({args.items} faces) | faces a second "
          "| ratio to float32 |")
    print("|---|---:|---:|---:|")
    for policy, s in seconds.items():
        print(f"| {policy} | {s:.1f} | {args.items / s:.0f} | {s / base:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
