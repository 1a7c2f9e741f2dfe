"""Classification metrics of a model on a dataset: accuracy, per-class scores, confusion matrix."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from emokeras.datasets.sources import Source, labels_of


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
    """Metrics of argmax predictions; classes absent from ``y_true`` score 0 with support 0."""
    y_true = np.asarray(y_true)
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
