"""Pictures people would rather look at than read: video timelines and evaluation reports.

Every plot is written atomically as a PNG. Figures are drawn on their own Agg canvas, outside
pyplot: nothing here selects or switches matplotlib's backend (a notebook keeps its own), no
display is needed, and no figure is left in pyplot's registry (long batch jobs make many).
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from emokeras.aggregation import smooth
from emokeras.fileio import atomic_write


def _subplots(*grid: int, figsize: tuple[float, float], dpi: int):
    """(figure, axes) like ``pyplot.subplots``, on a figure of its own Agg canvas."""
    figure = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(figure)
    return figure, figure.subplots(*grid)


def plot_timeline(prediction, path: str | os.PathLike[str], *, smooth_window: int = 5) -> Path:
    """Per-class probability over time (rolling mean of ``smooth_window`` frames), with the
    video-level label in the title; written atomically as PNG."""
    path = Path(path)
    probs = smooth(prediction.frame_probs, smooth_window)
    figure, axes = _subplots(figsize=(9, 3.6), dpi=110)
    try:
        colours = matplotlib.colormaps["tab10"]
        for index, name in enumerate(prediction.class_names):
            width = 2.6 if index == prediction.label_index else 1.2
            axes.plot(prediction.timestamps, probs[:, index], label=name, linewidth=width,
                      color=colours(index % 10))
        axes.set_xlabel("time (s)")
        axes.set_ylabel("probability")
        axes.set_ylim(0, 1)
        if len(prediction.timestamps) > 1:
            axes.set_xlim(prediction.timestamps[0], prediction.timestamps[-1])
        axes.set_title(
            f"{Path(prediction.path).name}: {prediction.label} ({prediction.confidence:.0%}, "
            f"{prediction.aggregate}) from {prediction.num_frames} of "
            f"{prediction.frames_read} frames", fontsize=10,
        )
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        axes.grid(alpha=0.3)
    except BaseException:
        figure.clear()
        raise
    return _save(figure, path)


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    with atomic_write(path, "wb") as handle:
        figure.savefig(handle, format="png")
    figure.clear()  # frees the artists now rather than at garbage collection
    return path


def plot_confusion_matrix(confusion, class_names, path: str | os.PathLike[str],
                          title: str = "") -> Path:
    """Row-normalised confusion matrix (recall on the diagonal), counts in each cell."""
    counts = np.asarray(confusion, dtype=float)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure, axes = _subplots(figsize=(6.4, 5.6), dpi=110)
    image = axes.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(counts):
        axes.text(j, i, f"{rates[i, j]:.2f}\n{int(count)}", ha="center", va="center",
                  fontsize=7, color="white" if rates[i, j] > 0.5 else "black")
    axes.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    axes.set_yticks(range(len(class_names)), class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title or "confusion matrix (rows sum to 1)", fontsize=10)
    figure.colorbar(image, ax=axes, fraction=0.046)
    return _save(figure, Path(path))


def plot_roc_curves(y_true, probabilities, class_names, path: str | os.PathLike[str],
                    auc: dict | None = None) -> Path:
    """One-vs-rest ROC curve per class (classes with no positive or no negative are skipped)."""
    from sklearn.metrics import roc_curve

    y_true = np.asarray(y_true)
    figure, axes = _subplots(figsize=(6.4, 5.2), dpi=110)
    for index, name in enumerate(class_names):
        positive = y_true == index
        if not 0 < positive.sum() < len(y_true):
            continue
        fpr, tpr, _ = roc_curve(positive, probabilities[:, index])
        score = (auc or {}).get(name)
        axes.plot(fpr, tpr, label=f"{name}" + (f" (AUC {score:.2f})" if score else ""))
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_title("one-vs-rest ROC", fontsize=10)
    axes.legend(fontsize=8, loc="lower right")
    return _save(figure, Path(path))


def plot_per_class(per_class: dict, path: str | os.PathLike[str]) -> Path:
    """Precision, recall and F1 per class as grouped bars (``ClassificationMetrics.per_class``
    or its dict form)."""
    names = list(per_class)
    get = (lambda s, k: s[k]) if isinstance(next(iter(per_class.values())), dict) else getattr
    figure, axes = _subplots(figsize=(max(6.0, 0.9 * len(names)), 3.8), dpi=110)
    x = np.arange(len(names))
    for offset, metric in zip((-0.27, 0.0, 0.27), ("precision", "recall", "f1"), strict=True):
        axes.bar(x + offset, [get(per_class[n], metric) for n in names], 0.26, label=metric)
    axes.set_xticks(x, names, rotation=30, ha="right")
    axes.set_ylim(0, 1)
    axes.legend(fontsize=8, ncols=3, loc="upper right")
    axes.grid(axis="y", alpha=0.3)
    return _save(figure, Path(path))


def plot_training_curves(history_rows: list[dict], path: str | os.PathLike[str]) -> Path:
    """Loss and accuracy per epoch across phases (rows of ``history.csv``); phase boundaries
    are marked."""
    figure, (loss_axes, accuracy_axes) = _subplots(1, 2, figsize=(10, 3.6), dpi=110)
    epochs = np.arange(len(history_rows))
    for key, axes in (("loss", loss_axes), ("accuracy", accuracy_axes)):
        for prefix in ("", "val_"):
            values = [float(r[prefix + key]) if r.get(prefix + key) not in (None, "") else np.nan
                      for r in history_rows]
            axes.plot(epochs, values, marker=".", label=(prefix + key) or key)
        phases = [int(float(r["phase"])) for r in history_rows]
        for epoch in range(1, len(phases)):
            if phases[epoch] != phases[epoch - 1]:
                axes.axvline(epoch - 0.5, color="grey", linestyle=":", linewidth=1)
        axes.set_xlabel("epoch (all phases)")
        axes.set_title(key, fontsize=10)
        axes.legend(fontsize=8)
        axes.grid(alpha=0.3)
    return _save(figure, Path(path))
