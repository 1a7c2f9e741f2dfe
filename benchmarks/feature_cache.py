"""Head-only training with the frozen-feature cache vs running the frozen backbone every epoch.

Same model (MobileNetV2 with the shared ImageNet weights, grayscale input), same real FER2013
faces, same head-only phase, augmentation off in both (cached features cannot be augmented), in
one process. Epoch times exclude each run's first epoch (graph tracing); the cached run's one-off
feature extraction is shown on its own and in the total.

    python benchmarks/feature_cache.py --fer2013 FER_DIR [--items 4096] [--epochs 4] [--size 64]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import keras
import numpy as np

from emokeras.datasets import load_fer2013_folders
from emokeras.datasets.pipeline import AugmentConfig
from emokeras.models import build_model
from emokeras.training import Phase, TrainConfig, fit

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO.parent / "shared" / "weights" / "mobilenet_v2_1.0_224_imagenet_notop.weights.h5"
NO_AUGMENT = AugmentConfig(flip=False, rotation_degrees=0.0, zoom=0.0, translate=0.0,
                           brightness=0.0, contrast=0.0)


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()
        self.epochs: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(time.perf_counter() - self.epoch_started)


def run(cached: bool, train, val, args) -> tuple[float, float, float]:
    """(seconds per epoch after the first, seconds before the first epoch, total seconds)."""
    keras.utils.set_random_seed(0)
    model = build_model("mobilenet_v2", 7, weights=WEIGHTS, input_size=args.size, channels=1)
    config = TrainConfig(phases=(Phase(0, args.epochs, 1e-3),), batch_size=64,
                         augment=NO_AUGMENT, feature_cache=cached, class_balance="none")
    timer = EpochTimer()
    started = time.perf_counter()
    fit(model, train, val, config, extra_callbacks=[timer])
    total = time.perf_counter() - started
    before_first_epoch = timer.started - started  # feature extraction, for the cached run
    return float(np.mean(timer.epochs[1:])), before_first_epoch, total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fer2013", type=Path, required=True, help="extracted FER2013 folders")
    parser.add_argument("--items", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()

    sets = load_fer2013_folders(args.fer2013)
    train = sets["Training"].subset(np.arange(args.items))
    val = sets["PublicTest"].subset(np.arange(args.items // 4))
    uncached = run(False, train, val, args)
    cached = run(True, train, val, args)

    print(f"MobileNetV2, {args.size}x{args.size} grayscale, {args.items} FER2013 Training faces "
          f"(+{args.items // 4} PublicTest for validation), head only, {args.epochs} epochs\n")
    print("| path | s / epoch (after the first) | s before the first epoch | total s |")
    print("|---|---:|---:|---:|")
    for name, (epoch, setup, total) in (("frozen backbone every epoch", uncached),
                                        ("feature cache", cached)):
        print(f"| {name} | {epoch:.2f} | {setup:.1f} | {total:.1f} |")
    print(f"\nepoch speed-up: {uncached[0] / cached[0]:.1f}x (goal >= 10x); "
          f"whole phase: {uncached[2] / cached[2]:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
