"""Classification metrics of a model on a dataset: accuracy, per-class scores, confusion matrix."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

from emokeras.aggregation import METHODS, aggregate
from emokeras.datasets.sources import Source, labels_of
from emokeras.errors import DatasetError
from emokeras.fileio import read_csv, write_json_atomic
from emokeras.run_folder import HISTORY_FILE, load_run


@dataclass(frozen=True)
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ClassificationMetrics:
    """Scores of predictions against true labels; ``confusion[i][j]``: true i predicted j."""

    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassScores]
    confusion: list[list[int]]
    count: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def classification_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, class_names: tuple[str, ...] | list[str]
) -> ClassificationMetrics:
    """Metrics of argmax predictions; classes absent from ``y_true`` score 0 with support 0.
    Soft targets (N, classes), such as FER+ votes, are scored against their top class."""
    y_true = np.asarray(y_true)
    if y_true.ndim == 2:
        y_true = y_true.argmax(axis=1)
    y_pred = np.asarray(probabilities).argmax(axis=-1)
    labels = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    per_class = {
        name: ClassScores(float(p), float(r), float(f), int(s))
        for name, p, r, f, s in zip(class_names, precision, recall, f1, support, strict=True)
    }
    present = support > 0
    return ClassificationMetrics(
        accuracy=float(np.mean(y_true == y_pred)) if len(y_true) else float("nan"),
        macro_f1=float(f1[present].mean()) if present.any() else float("nan"),
        per_class=per_class,
        confusion=confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        count=int(len(y_true)),
    )


def predict_source(model, source: Source, batch_size: int = 64) -> np.ndarray:
    """Class probabilities for every item of an ImageSet or (images, labels) arrays, in order."""
    from emokeras.datasets.pipeline import make_dataset

    _, size, _, channels = model.input_shape
    dataset = make_dataset(
        source, num_classes=model.output_shape[-1], input_size=size, channels=channels,
        batch_size=batch_size,
    )
    return model.predict(dataset.map(lambda x, y: x), verbose=0)


def evaluate_source(
    model, source: Source, class_names: tuple[str, ...], batch_size: int = 64
) -> ClassificationMetrics:
    return classification_metrics(
        labels_of(source), predict_source(model, source, batch_size), class_names
    )


def roc_auc_per_class(
    y_true: np.ndarray, probabilities: np.ndarray, class_names: tuple[str, ...]
) -> dict[str, float | None]:
    """One-vs-rest ROC AUC per class, and their mean as ``"macro"``; None for a class whose
    true labels are all one value (AUC is undefined there)."""
    y_true = np.asarray(y_true)
    scores: dict[str, float | None] = {}
    for index, name in enumerate(class_names):
        positive = y_true == index
        scores[name] = (float(roc_auc_score(positive, probabilities[:, index]))
                        if 0 < positive.sum() < len(y_true) else None)
    defined = [v for v in scores.values() if v is not None]
    scores["macro"] = float(np.mean(defined)) if defined else None
    return scores


def video_level(
    y_true: np.ndarray, probabilities: np.ndarray, video_ids, method: str
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(true label, aggregated scores, video id) per video, videos in order of first frame."""
    order: dict[str, list[int]] = {}
    for i, video in enumerate(video_ids):
        order.setdefault(video, []).append(i)
    truths, scores = [], []
    for video, rows in order.items():
        labels = set(np.asarray(y_true)[rows].tolist())
        if len(labels) != 1:
            raise DatasetError(f"video {video!r} has frames with different labels {labels}")
        truths.append(labels.pop())
        scores.append(aggregate(probabilities[rows], method).scores)
    return np.array(truths), np.array(scores), list(order)


@dataclass(frozen=True)
class EvaluationReport:
    """Frame-level metrics and ROC AUC; with video ids, video-level metrics per aggregation
    method; with sexes, frame- (and video-) level metrics per sex."""

    frame: ClassificationMetrics
    roc_auc: dict[str, float | None]
    video: dict[str, ClassificationMetrics]
    per_sex: dict[str, dict[str, ClassificationMetrics]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_report(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    class_names: tuple[str, ...],
    *,
    video_ids=None,
    sexes=None,
) -> EvaluationReport:
    y_true = np.asarray(y_true)
    video = {}
    if video_ids is not None:
        for method in METHODS:
            truths, scores, _ = video_level(y_true, probabilities, video_ids, method)
            video[method] = classification_metrics(truths, scores, class_names)
    per_sex: dict[str, dict[str, ClassificationMetrics]] = {}
    if sexes is not None:
        sexes = np.asarray(sexes)
        for sex in sorted(set(sexes.tolist()) - {""}):
            rows = np.flatnonzero(sexes == sex)
            per_sex[sex] = {"frame": classification_metrics(y_true[rows], probabilities[rows],
                                                            class_names)}
            if video_ids is not None:
                ids = [video_ids[i] for i in rows]
                truths, scores, _ = video_level(y_true[rows], probabilities[rows], ids, "sum")
                per_sex[sex]["video_sum"] = classification_metrics(truths, scores, class_names)
    return EvaluationReport(
        frame=classification_metrics(y_true, probabilities, class_names),
        roc_auc=roc_auc_per_class(y_true, probabilities, class_names),
        video=video, per_sex=per_sex,
    )


@dataclass(frozen=True)
class RunEvaluation:
    """What :func:`evaluate_run` measured and wrote: the report of a run's model on a split of a
    dataset, and the files (the JSON report, the plots) written into the run folder."""

    run_dir: Path
    data: str
    split: str
    protocol: str
    report: EvaluationReport
    written: tuple[Path, ...]

    @property
    def frame(self) -> ClassificationMetrics:
        return self.report.frame

    @property
    def roc_auc(self) -> dict[str, float | None]:
        return self.report.roc_auc

    @property
    def video(self) -> dict[str, ClassificationMetrics]:
        return self.report.video

    @property
    def per_sex(self) -> dict[str, dict[str, ClassificationMetrics]]:
        return self.report.per_sex

    def to_dict(self) -> dict[str, Any]:
        """As ``evaluation_<split>.json`` holds it."""
        return {"data": self.data, "split": self.split, "protocol": self.protocol,
                **self.report.to_dict()}


def evaluate_run(run_dir, data, split: str = "val") -> RunEvaluation:
    """Evaluate a run folder's model on a split of ``data``; write the report and its plots.

    Writes ``evaluation_<split>.json``, ``confusion_<split>.png``, ``roc_<split>.png``,
    ``per_class_<split>.png`` and, when the run has a ``history.csv``, ``training_curves.png``,
    into the run folder. For a face-crop manifest the report adds video-level results for
    every aggregation method and results per sex. Returns a :class:`RunEvaluation`.
    """
    from emokeras.datasets.manifest import read_manifest_rows
    from emokeras.datasets.sources import load_splits
    from emokeras.plots import (  # in-function: matplotlib is needed only here
        plot_confusion_matrix,
        plot_per_class,
        plot_roc_curves,
        plot_training_curves,
    )

    run_dir, data = Path(run_dir), Path(data)
    model, label_set = load_run(run_dir)
    splits = load_splits(data, label_set)
    source = getattr(splits, split)
    if source is None:
        raise DatasetError(f"{str(data)!r} has no {split} split")
    probabilities = predict_source(model, source)
    y_true = labels_of(source)
    video_ids = sexes = None
    if splits.kind == "manifest":
        rows = [row for _, row in read_manifest_rows(data, split=split)]
        video_ids = [row["video_id"] for row in rows]
        sexes = [row.get("sex", "") for row in rows]
    report = build_report(y_true, probabilities, label_set.classes, video_ids=video_ids,
                          sexes=sexes)
    result = RunEvaluation(run_dir, str(data), split, splits.protocol, report, ())
    written = [run_dir / f"evaluation_{split}.json"]
    write_json_atomic(written[0], result.to_dict())
    written += [
        plot_confusion_matrix(report.frame.confusion, label_set.classes,
                              run_dir / f"confusion_{split}.png",
                              f"{split}: accuracy {report.frame.accuracy:.1%}, "
                              f"n={report.frame.count}"),
        plot_roc_curves(y_true, probabilities, label_set.classes, run_dir / f"roc_{split}.png",
                        report.roc_auc),
        plot_per_class(report.frame.per_class, run_dir / f"per_class_{split}.png"),
    ]
    if (run_dir / HISTORY_FILE).is_file():
        written.append(plot_training_curves(read_csv(run_dir / HISTORY_FILE),
                                            run_dir / "training_curves.png"))
    return dataclasses.replace(result, written=tuple(written))
