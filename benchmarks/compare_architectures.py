"""Six architectures and classic feature classifiers on FER2013, under one training budget.

Every network trains from scratch on (a seeded subset of) FER2013 Training, 48x48 grayscale, with
the same recipe: one phase, AdamW at 1e-3, batch 32 (``--batch-size``), left-right flips as the
only augmentation, no label smoothing, no class weighting, and
either the same number of epochs or the same wall-clock minutes per model. The epoch kept is the
best on PublicTest (EarlyStopping restores it); PrivateTest is only reported. The feature
classifiers (HOG into SVM / logistic regression / gradient boosting, and the trained baseline
CNN's embeddings into logistic regression) fit on the same training faces, their grids searched
by cross-validation on a stratified 3,000-face subsample of those faces (FeatureClassifier's
default ``search_size``) and the chosen setting then fitted on all of them. Two more rows
train the baseline CNN on FER+ vote distributions (soft targets, softmax) and on FER+
multi-label targets (sigmoid + BCE).

Reported per model: parameters, training time, PublicTest and PrivateTest accuracy, accuracy
against FER+ majority labels on PrivateTest, and CPU latency per face at batch 1 (median of 30
calls of the model, as ``EmotionModel.predict`` calls it). Writes ``results.json``,
``results.md`` and ``comparison.png`` into ``--out``.

    python benchmarks/compare_architectures.py --fer2013 /tmp/fer2013 --limit 10000 \\
        --minutes-per-model 3
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import keras
import numpy as np

from emokeras.datasets.base import ImageSet
from emokeras.datasets.ferplus import (
    load_ferplus_split,
    load_ferplus_votes,
    majority_accuracy,
    split_majority_labels,
)
from emokeras.datasets.pipeline import AugmentConfig
from emokeras.datasets.sources import labels_of, limit, load_splits
from emokeras.evaluation import predict_source
from emokeras.features import FeatureClassifier
from emokeras.labels import FER2013
from emokeras.models import ARCHITECTURES, HeadConfig, build_model
from emokeras.training import Phase, TrainConfig, fit

REPO = Path(__file__).resolve().parents[1]
FERPLUS = REPO.parent / "shared" / "data" / "fer2013" / "ferplus_votes.csv"
NETWORKS = (*ARCHITECTURES, "vit_tiny")
FEATURE_MODELS = ("hog:svm", "hog:logreg", "hog:gboost", "embedding:logreg")
INPUT_SIZE = 48
#: Flips only: over a budget of a few epochs, heavier augmentation only slows learning down.
AUGMENT = AugmentConfig(flip=True, rotation_degrees=0, zoom=0, translate=0, brightness=0,
                        contrast=0)  # fmt: skip


class TimeBudget(keras.callbacks.Callback):
    """Stop after the epoch that leaves no time for another of the same length."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        if (now - self.start) + (now - self.epoch_start) > self.seconds:
            self.model.stop_training = True


def arrays(source) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, 48, 48) faces and labels of an ImageSet or arrays source."""
    if isinstance(source, ImageSet):
        return source.load_images(size=INPUT_SIZE, grayscale=True), source.labels
    images = np.asarray(source[0])
    return (images[..., 0] if images.ndim == 4 else images), np.asarray(source[1])


def latency_ms(predict_one, repeats: int = 30) -> float:
    for _ in range(3):
        predict_one()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict_one()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def train_config(name: str, args, head: HeadConfig) -> TrainConfig:
    budget = args.minutes_per_model is not None
    return TrainConfig(
        backbone=name, weights=None, input_size=INPUT_SIZE, channels=1, head=head,
        # a time budget cannot know its epoch count, so it keeps a constant rate (cut on plateau)
        phases=(Phase("all", 1000 if budget else args.epochs, args.lr),),
        lr_schedule="plateau" if budget else "cosine", batch_size=args.batch_size,
        class_balance="none", backbone_lr_multiplier=1.0, feature_cache=False,
        early_stopping_patience=1000, augment=AUGMENT, label_smoothing=0.0, seed=args.seed,
    )  # fmt: skip


def score(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(probabilities.argmax(axis=1) == labels))


def run_network(name, label, train, val, data, args, head=None) -> tuple[dict, object]:
    print(f"--- {label}", flush=True)
    head = head or HeadConfig()
    keras.utils.set_random_seed(args.seed)
    config = train_config(name, args, head)
    model = build_model(name, len(FER2013), weights=None, input_size=INPUT_SIZE, channels=1,
                        head=head)  # fmt: skip
    callbacks = [TimeBudget(60 * args.minutes_per_model)] if args.minutes_per_model else []
    start = time.monotonic()
    result = fit(model, train, val, config, extra_callbacks=callbacks)
    seconds = time.monotonic() - start
    row = {"model": label, "kind": "network", "params": int(model.count_params()),
           "train_s": round(seconds, 1), "epochs": len(result.history),
           "best_epoch": int(np.argmax(result.series("val_accuracy"))) + 1}  # fmt: skip
    for split in ("PublicTest", "PrivateTest"):
        images, labels = data[split]
        probabilities = predict_source(model, (images, labels), batch_size=256)
        row[split] = score(probabilities, labels)
        if split == "PrivateTest":
            row["ferplus"], row["ferplus_count"] = majority_accuracy(
                probabilities, data["majority"]
            )
    one = data["PrivateTest"][0][:1, ..., None].astype("float32")
    row["latency_ms"] = latency_ms(lambda: model(one, training=False))
    print(json.dumps(row), flush=True)
    return row, model


def run_features(spec, data, train_images, train_labels, embedding_model, args) -> dict:
    features, classifier = spec.split(":")
    label = f"{features} + {classifier}" + (
        " (baseline_cnn embeddings)" if features == "embedding" else ""
    )
    print(f"--- {label}", flush=True)
    backbone = embedding_model if features == "embedding" else None
    model = FeatureClassifier(features, classifier, backbone_model=backbone, cv=3,
                              label_set=FER2013, seed=args.seed)  # fmt: skip
    start = time.monotonic()
    model.fit(train_images, train_labels)
    row = {"model": label, "kind": "features", "params": None,
           "train_s": round(time.monotonic() - start, 1), "epochs": None,
           "best_params": model.best_params_}  # fmt: skip
    for split in ("PublicTest", "PrivateTest"):
        images, labels = data[split]
        probabilities = model.predict_proba(images)  # classes_ are 0..6: every class is present
        row[split] = score(probabilities, labels)
        if split == "PrivateTest":
            row["ferplus"], row["ferplus_count"] = majority_accuracy(
                probabilities, data["majority"]
            )
    one = data["PrivateTest"][0][:1]
    row["latency_ms"] = latency_ms(lambda: model.predict_proba(one), repeats=20)
    print(json.dumps(row), flush=True)
    return row


def markdown(rows: list[dict], count: int) -> str:
    lines = [
        "| model | params | train time (s) | epochs (best) | PublicTest | PrivateTest | "
        f"FER+ majority, PrivateTest (n={count}) | CPU latency, batch 1 (ms/face) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        params = f"{r['params'] / 1e6:.2f}M" if r["params"] else "-"
        epochs = f"{r['epochs']} ({r['best_epoch']})" if r.get("epochs") else "-"
        lines.append(
            f"| {r['model']} | {params} | {r['train_s']:.0f} | {epochs} | {r['PublicTest']:.2%} | "
            f"{r['PrivateTest']:.2%} | {r['ferplus']:.2%} | {r['latency_ms']:.1f} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["model"] for r in rows]
    fig, (bars, scatter) = plt.subplots(1, 2, figsize=(15, 6))
    y = np.arange(len(rows))
    colours = ["tab:blue" if r["kind"] == "network" else "tab:orange" for r in rows]
    bars.barh(y, [r["PrivateTest"] for r in rows], color=colours)
    bars.set_yticks(y, names, fontsize=8)
    bars.invert_yaxis()
    bars.set_xlabel("PrivateTest accuracy")
    bars.set_title("FER2013 PrivateTest accuracy (blue: networks, orange: feature classifiers)")
    for i, r in enumerate(rows):
        bars.text(r["PrivateTest"], i, f" {r['PrivateTest']:.1%}", va="center", fontsize=8)
    scatter.scatter([r["latency_ms"] for r in rows], [r["PrivateTest"] for r in rows],
                    c=colours)  # fmt: skip
    for r in rows:
        scatter.annotate(r["model"], (r["latency_ms"], r["PrivateTest"]), fontsize=7,
                         xytext=(3, 3), textcoords="offset points")  # fmt: skip
    scatter.set_xscale("log")
    scatter.set_xlabel("CPU latency per face at batch 1 (ms, log)")
    scatter.set_ylabel("PrivateTest accuracy")
    scatter.set_title("accuracy against latency")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fer2013", type=Path, required=True,
                        help="FER2013 image folders (train/, test/) or the original CSV")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, default=5, help="epochs per network (default 5)")
    budget.add_argument("--minutes-per-model", type=float,
                        help="wall-clock minutes of training per network instead of --epochs")
    parser.add_argument("--limit", type=int, help="train on this many random Training faces")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--models", nargs="*", default=list(NETWORKS), choices=NETWORKS)
    parser.add_argument("--features", nargs="*", default=list(FEATURE_MODELS),
                        choices=FEATURE_MODELS)
    parser.add_argument("--ferplus", type=Path, default=FERPLUS,
                        help="FER+ votes CSV (default ../shared/...); --no-ferplus-training "
                             "skips the two FER+ rows")  # fmt: skip
    parser.add_argument("--no-ferplus-training", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "compare")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    total_start = time.monotonic()
    splits = load_splits(args.fer2013)
    train = limit(splits.train, args.limit, seed=args.seed)
    train_images, train_labels = arrays(train)
    data = {"PublicTest": arrays(splits.val), "PrivateTest": arrays(splits.test)}
    votes = load_ferplus_votes(args.ferplus)
    data["majority"] = split_majority_labels(args.fer2013, votes, "PrivateTest")
    print(f"train {len(train_labels)} faces, PublicTest {len(labels_of(splits.val))}, "
          f"PrivateTest {len(labels_of(splits.test))}", flush=True)  # fmt: skip
    train_source = (train_images, train_labels)
    val_source = data["PublicTest"]

    rows, trained = [], {}
    for name in args.models:
        row, model = run_network(name, name, train_source, val_source, data, args)
        rows.append(row)
        trained[name] = model
    if not args.no_ferplus_training:
        heads = (("soft", HeadConfig()), ("multilabel", HeadConfig(activation="sigmoid")))
        for kind, head in heads:
            ferplus = {
                split: load_ferplus_split(args.fer2013, votes, split, kind, seed=args.seed,
                                          limit=args.limit if split == "Training" else None)
                for split in ("Training", "PublicTest")
            }  # fmt: skip
            target = "vote distributions" if kind == "soft" else "multi-label (sigmoid + BCE)"
            label = f"baseline_cnn, FER+ {target}"
            row, _ = run_network("baseline_cnn", label, ferplus["Training"].source,
                                 ferplus["PublicTest"].source, data, args, head=head)
            rows.append(row)
    for spec in args.features:
        embedding = trained.get("baseline_cnn")
        if spec.startswith("embedding") and embedding is None:
            print(f"skipping {spec}: it needs the trained baseline_cnn", flush=True)
            continue
        rows.append(run_features(spec, data, train_images, train_labels, embedding, args))

    count = int((data["majority"] >= 0).sum())
    table = markdown(rows, count)
    budget_text = (f"{args.minutes_per_model:g} min per network" if args.minutes_per_model
                   else f"{args.epochs} epochs per network")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(
        {"args": {k: str(v) for k, v in vars(args).items()}, "budget": budget_text,
         "train_faces": len(train_labels), "total_s": round(time.monotonic() - total_start),
         "rows": rows}, indent=2))  # fmt: skip
    (args.out / "results.md").write_text(table + "\n")
    plot(rows, args.out / "comparison.png")
    print(f"\n{len(train_labels)} training faces, {budget_text}, "
          f"total {time.monotonic() - total_start:.0f} s\n")  # fmt: skip
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
