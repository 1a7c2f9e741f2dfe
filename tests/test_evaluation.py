"""Metrics, video-level aggregation side by side, per-sex results, and evaluate.py's reports."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

import evaluate
import train
from emokeras.errors import DatasetError
from emokeras.evaluation import build_report, classification_metrics, roc_auc_per_class

CLASSES = ("a", "b", "c")


def test_classification_metrics_on_hand_made_predictions():
    y = np.array([0, 0, 1, 1, 2])
    probs = np.eye(3)[[0, 1, 1, 1, 0]]
    metrics = classification_metrics(y, probs, CLASSES)
    assert metrics.accuracy == pytest.approx(0.6)
    assert metrics.confusion == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert metrics.per_class["b"].recall == 1.0 and metrics.per_class["b"].precision == 2 / 3
    assert metrics.per_class["c"].support == 1 and metrics.per_class["c"].recall == 0.0


def test_roc_auc_is_none_where_undefined():
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1, 0], [0.6, 0.4, 0], [0.3, 0.7, 0], [0.45, 0.55, 0]])
    auc = roc_auc_per_class(y, probs, CLASSES)
    assert auc["a"] == 1.0 and auc["b"] == 1.0 and auc["c"] is None and auc["macro"] == 1.0


def test_video_level_and_per_sex_report():
    # video v1 (class 0): two frames mildly for 1, one frame sure of 0 -> vote 1, sum 0
    probs = np.array([[0.45, 0.55, 0], [0.45, 0.55, 0], [1.0, 0, 0],
                      [0, 0.2, 0.8], [0, 0.3, 0.7]])
    y = np.array([0, 0, 0, 2, 2])
    report = build_report(y, probs, CLASSES, video_ids=["v1"] * 3 + ["v2"] * 2,
                          sexes=["male"] * 3 + ["female"] * 2)
    assert report.video["sum"].accuracy == 1.0 and report.video["sum"].count == 2
    assert report.video["vote"].accuracy == 0.5
    assert report.per_sex["male"]["frame"].accuracy == pytest.approx(1 / 3)
    assert report.per_sex["female"]["video_sum"].accuracy == 1.0
    with pytest.raises(DatasetError, match="v1"):
        build_report(np.array([0, 1]), probs[:2], CLASSES, video_ids=["v1", "v1"])


@pytest.mark.slow
def test_evaluate_py_writes_every_report_and_plot(two_actors_per_sex_manifest, tmp_path, capsys):
    argv = ["--data", str(two_actors_per_sex_manifest), "--labels", "ravdess", "--run", "r",
            "--output-dir", str(tmp_path), "--phases", "all:2:1e-3", "--backbone", "small_cnn",
            "--weights", "none", "--channels", "1", "--input-size", "48"]
    assert train.main(argv) == 0
    run = tmp_path / "r"
    assert evaluate.main([str(run), "--data", str(two_actors_per_sex_manifest),
                          "--split", "val"]) == 0
    report = json.loads((run / "evaluation_val.json").read_text())
    assert report["frame"]["count"] > 0 and report["roc_auc"]["macro"] is not None
    assert set(report["video"]) == {"sum", "vote", "mean_logits"}
    assert report["video"]["sum"]["count"] == 4  # the four clips of actors 03 and 04
    assert set(report["per_sex"]) == {"male", "female"}
    for name in ("confusion_val.png", "roc_val.png", "per_class_val.png", "training_curves.png"):
        image = cv2.imread(str(run / name))
        assert image is not None and image.std() > 0, name
    assert "video-level" in capsys.readouterr().out
