"""FER+ votes: loading, joining with FER2013 faces, targets, and training on them."""

from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import REPO_ROOT, SHARED, benchmark_module

from emokeras.bundled import BUNDLED_MODEL_DIR
from emokeras.datasets import load_fer2013_folders, write_fer2013_csv
from emokeras.datasets.ferplus import (
    DROPPED_CLASSES,
    FERPLUS_CLASSES,
    FERPLUS_EMOTIONS,
    FerPlusVotes,
    fer2013_to_ferplus8,
    ferplus8_labels,
    load_ferplus_split,
    load_ferplus_votes,
    majority_accuracy,
    majority_labels,
    multilabel_targets,
    soft_targets,
    split_majority_labels,
)
from emokeras.datasets.pipeline import make_dataset
from emokeras.errors import ConfigError, DatasetError
from emokeras.labels import FER2013
from emokeras.models import HeadConfig, build_model
from emokeras.training import Phase, TrainConfig, fit, top_label_accuracy

VOTES = SHARED / "data" / "fer2013" / "ferplus_votes.csv"


@pytest.fixture(scope="module")
def votes():
    return load_ferplus_votes(VOTES)


def test_votes_load_with_the_documented_shape(votes):
    assert len(votes) == 35887 and votes.votes.shape == (35887, 10)
    assert sum(1 for name in votes.names if not name) == 173
    assert int(votes.ambiguous.sum()) == 102
    assert votes.usage.count("Training") == 28709
    # row 0: neutral 4, sadness 1, anger 3, disgust 2 -> FER2013 order angry..neutral
    np.testing.assert_array_equal(votes.fer2013_votes()[0], [3, 2, 0, 0, 1, 0, 4])
    assert set(DROPPED_CLASSES) <= set(FERPLUS_CLASSES)


def test_majority_is_the_benchmarks_definition(votes):
    benchmark = benchmark_module("fer2013_accuracy")
    names = [name for name in votes.names[:3000] if name] + ["Training_0.jpg"]
    expected = benchmark.ferplus_majority(tuple(names))
    got = majority_labels(votes, votes.index_of_names(names))
    np.testing.assert_array_equal(got, expected)
    assert got[-1] == -1 and got[0] == FER2013.index("neutral")
    # ambiguous rows and ties have none
    assert (majority_labels(votes, np.flatnonzero(votes.ambiguous)) == -1).all()


def test_the_benchmarks_selection_only_run_shows_nothing_report_only(fer2013_subset):
    # the choice is made from this run, so no PrivateTest or CK+ number may reach its reader
    run = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "fer2013_accuracy.py"), "--fer2013",
         str(fer2013_subset), "--selection-only", str(BUNDLED_MODEL_DIR)],
        capture_output=True, text=True, timeout=600, check=True)
    assert "selection score" in run.stdout and "Per-class recall on PublicTest" in run.stdout
    rows = [line for line in run.stdout.splitlines()
            if line.startswith(f"| {BUNDLED_MODEL_DIR.name} |")]
    assert len(rows) == 5  # selection, PublicTest recall, predicted shares, agreement, cost
    # the shares of PublicTest faces predicted as each class, beside the labels' own shares
    labels_row = next(line for line in run.stdout.splitlines() if line.startswith("| labels |"))
    for row in (labels_row, rows[2]):
        shares = [float(cell.rstrip("%")) for cell in row.strip(" |").split(" | ")[1:]]
        assert len(shares) == 7 and sum(shares) == pytest.approx(100.0, abs=0.5)
    # between the labellings: where they differ, FER2013's + FER+'s + neither = 100%
    split = [float(cell.rstrip("%")) for cell in rows[3].strip(" |").split(" | ")[1:]]
    assert len(split) == 4 and sum(split[1:]) == pytest.approx(100.0, abs=0.05)
    for absent in ("Report only", "PrivateTest", "CK+", "photos"):
        assert absent not in run.stdout


def test_agreement_splits_predictions_between_the_two_labellings():
    benchmark = benchmark_module("fer2013_accuracy")
    labels = np.array([0, 1, 2, 3, 4, 5, 6])
    majority = np.array([0, 1, 3, 4, 0, -1, 6])  # agree on 0, 1, 6; differ on 2, 3, 4; none on 5
    predicted = np.array([0, 0, 2, 4, 6, 5, 6])  # differing: FER2013's, FER+'s, neither
    got = benchmark.agreement(predicted, labels, majority)
    assert got["agree_share"] == pytest.approx(0.5)
    assert got["agreed"] == pytest.approx(2 / 3)
    assert got["differ_fer2013"] == pytest.approx(1 / 3)
    assert got["differ_ferplus"] == pytest.approx(1 / 3)


def test_ferplus8_is_the_strict_majority_after_single_votes_are_dropped():
    # columns: neutral happiness surprise sadness anger disgust fear contempt unknown NF
    counts = np.array([
        [6, 0, 0, 0, 0, 0, 0, 4, 0, 0],  # neutral: 6 of 10
        [0, 0, 0, 0, 0, 0, 0, 6, 4, 0],  # contempt: a label here, never in the 7-class set
        [5, 0, 0, 5, 0, 0, 0, 0, 0, 0],  # a tie: none
        [4, 1, 1, 1, 1, 1, 1, 0, 0, 0],  # 4 of 10, but 4 of 4 once single votes are outliers
        [0, 0, 0, 0, 0, 0, 0, 0, 3, 7],  # not a face: none
        [4, 0, 3, 3, 0, 0, 0, 0, 0, 0],  # 4 of 10: no majority
    ])
    table = FerPlusVotes(rows=np.arange(6), usage=("PrivateTest",) * 6,
                         names=tuple(f"PrivateTest_{i}.jpg" for i in range(6)), votes=counts,
                         ambiguous=np.zeros(6, bool))
    got = ferplus8_labels(table, np.array([0, 1, 2, 3, 4, 5, -1]))
    np.testing.assert_array_equal(got, [0, FERPLUS_EMOTIONS.index("contempt"), -1, 0, -1, -1, -1])
    mapped = fer2013_to_ferplus8(np.arange(7))
    assert [FERPLUS_EMOTIONS[i] for i in mapped] == [
        "anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"]


def test_ferplus8_on_the_real_test_split(votes):
    private = np.flatnonzero(np.array(votes.usage) == "PrivateTest")
    labels = ferplus8_labels(votes, private)
    # every PrivateTest row; the benchmark's (and model card's) 3,152 are those with a JPEG
    assert (labels >= 0).sum() == 3153
    assert (labels == FERPLUS_EMOTIONS.index("contempt")).sum() == 16


def test_targets_from_votes():
    counts = np.array([[5, 0, 0, 3, 0, 0, 2], [0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 4]])
    soft = soft_targets(counts)
    np.testing.assert_allclose(soft[0], [0.5, 0, 0, 0.3, 0, 0, 0.2])
    assert np.isnan(soft[1]).all()
    hot = multilabel_targets(counts, threshold=0.3)
    np.testing.assert_array_equal(hot[0], [1, 0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(hot[2], [0, 0, 0, 0, 0, 0, 1])  # the top class is always on
    assert np.isnan(hot[1]).all()
    with pytest.raises(ConfigError):
        multilabel_targets(counts, threshold=0)


def test_split_joins_faces_with_votes_by_file_name(votes, fer2013_subset):
    split = load_ferplus_split(fer2013_subset, votes, "Training", "soft")
    faces = load_fer2013_folders(fer2013_subset)["Training"]
    assert len(split) + split.dropped == len(faces)
    assert split.images.shape == (len(split), 48, 48) and split.images.dtype == np.uint8
    assert split.targets.shape == (len(split), 7)
    np.testing.assert_allclose(split.targets.sum(axis=1), 1.0, atol=1e-6)
    # each face got its own row's votes
    row = votes.index_of_names([split.names[0]])[0]
    counts = votes.fer2013_votes()[row]
    np.testing.assert_allclose(split.targets[0], counts / counts.sum(), atol=1e-6)
    # the FER+ plurality mostly agrees with FER2013's own label
    assert np.mean(split.targets.argmax(axis=1) == split.fer2013_labels) > 0.5

    hot = load_ferplus_split(fer2013_subset, votes, "PublicTest", "multilabel", limit=20)
    assert len(hot) <= 20 and set(np.unique(hot.targets)) <= {0.0, 1.0}
    assert (hot.targets.sum(axis=1) >= 1).all()

    majority = split_majority_labels(fer2013_subset, votes, "PrivateTest")
    private = load_fer2013_folders(fer2013_subset)["PrivateTest"]
    assert majority.shape == (len(private),) and (majority >= 0).mean() > 0.8

    with pytest.raises(ConfigError):
        load_ferplus_split(fer2013_subset, votes, "Validation")
    with pytest.raises(ConfigError):
        load_ferplus_split(fer2013_subset, votes, "Training", "hard")


def test_a_csv_that_is_not_the_votes_fer2013_is_refused(votes, fer2013_subset, tmp_path):
    faces = load_fer2013_folders(fer2013_subset)["PrivateTest"]
    csv_path = tmp_path / "fer2013.csv"
    write_fer2013_csv(csv_path, faces.load_images(grayscale=True), faces.labels, "PrivateTest")
    with pytest.raises(DatasetError, match="disagree"):
        load_ferplus_split(csv_path, votes, "PrivateTest")
    bad = tmp_path / "votes.csv"
    bad.write_text("row,Usage\n0,Training\n")
    with pytest.raises(DatasetError, match="missing"):
        load_ferplus_votes(bad)


def test_majority_accuracy():
    probabilities = np.eye(3)[[0, 1, 2, 2]]
    assert majority_accuracy(probabilities, np.array([0, 1, 1, -1])) == (pytest.approx(2 / 3), 3)
    accuracy, count = majority_accuracy(probabilities, np.full(4, -1))
    assert np.isnan(accuracy) and count == 0


def test_pipeline_passes_soft_targets_through_and_checks_them():
    images = np.zeros((3, 8, 8), np.uint8)
    targets = np.array([[0.5, 0.5], [1, 0], [0.2, 0.8]], np.float32)
    dataset = make_dataset((images, targets), num_classes=2, input_size=8, batch_size=3)
    _, batch = next(iter(dataset))
    np.testing.assert_allclose(batch.numpy(), targets)
    with pytest.raises(DatasetError, match="outside"):
        make_dataset((images, targets * 2), num_classes=2, input_size=8)
    with pytest.raises(DatasetError, match="shape"):
        make_dataset((images, targets[:, :1]), num_classes=2, input_size=8)
    with pytest.raises(ValueError, match="soft targets"):
        make_dataset((images, targets), num_classes=2, input_size=8, training=True,
                     balanced=True)


def test_top_label_accuracy():
    y_true = np.array([[1, 0, 1], [0, 1, 0]], np.float32)
    y_pred = np.array([[0.1, 0.2, 0.9], [0.8, 0.1, 0.1]], np.float32)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(top_label_accuracy(y_true, y_pred)),
                                  [1.0, 0.0])  # fmt: skip


def _config(head: HeadConfig, class_balance: str = "inverse") -> TrainConfig:
    return TrainConfig(
        backbone="baseline_cnn", weights=None, channels=1, head=head,
        phases=(Phase("all", 1, 1e-3),), batch_size=16, class_balance=class_balance,
        backbone_lr_multiplier=1.0, feature_cache=False,
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["multilabel", "soft"])
def test_a_step_of_training_on_real_votes(kind, votes, fer2013_subset):
    head = HeadConfig(activation="sigmoid" if kind == "multilabel" else "softmax")
    train = load_ferplus_split(fer2013_subset, votes, "Training", kind, limit=32)
    val = load_ferplus_split(fer2013_subset, votes, "PublicTest", kind, limit=16)
    model = build_model("baseline_cnn", len(FER2013), weights=None, channels=1, head=head)
    before = model.get_layer("head_logits").get_weights()[0].copy()
    # the soft targets train with the tempered class weights (the votes' top classes)
    balance = "inverse" if kind == "multilabel" else "sqrt_inverse"
    result = fit(model, train.source, val.source, _config(head, balance))
    loss = model.loss
    expected = keras.losses.BinaryCrossentropy if kind == "multilabel" else (
        keras.losses.CategoricalCrossentropy
    )
    assert isinstance(loss, expected)
    row = result.history[0]
    assert np.isfinite(row["loss"]) and 0 <= row["val_accuracy"] <= 1
    assert not np.allclose(model.get_layer("head_logits").get_weights()[0], before)
    probabilities = model.predict(val.images[..., None].astype("float32"), verbose=0)
    if kind == "multilabel":  # independent sigmoids, not a distribution
        assert not np.allclose(probabilities.sum(axis=1), 1.0)


def test_a_head_that_does_not_match_the_config_is_refused(votes, fer2013_subset):
    train = load_ferplus_split(fer2013_subset, votes, "Training", "multilabel", limit=8)
    model = build_model("baseline_cnn", len(FER2013), weights=None, channels=1)  # softmax
    with pytest.raises(ConfigError, match="activation"):
        fit(model, train.source, train.source, _config(HeadConfig(activation="sigmoid")))
    sampling = TrainConfig(**{**_config(HeadConfig()).__dict__, "class_balance": "sampling"})
    with pytest.raises(ConfigError, match="sampling"):
        fit(model, train.source, train.source, sampling)
