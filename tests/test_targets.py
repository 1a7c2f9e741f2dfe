"""Training on FER+ votes and a teacher's probabilities, and starting from another run's weights:
real FER2013 faces and votes from ../shared, real (tiny) models trained into run folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SHARED

from emokeras.configs import HeadConfig, Phase, TargetConfig, TrainConfig
from emokeras.datasets.ferplus import load_ferplus_split
from emokeras.datasets.sources import load_splits
from emokeras.errors import ConfigError
from emokeras.evaluation import predict_source
from emokeras.models import build_model
from emokeras.models.ensemble import ensemble_members
from emokeras.run_folder import load_run
from emokeras.runs import ensemble_run, initialise_from, train_run
from emokeras.targets import TEACHER_FILE, with_targets

VOTES = SHARED / "data" / "fer2013" / "ferplus_votes.csv"
HEAD = HeadConfig(units=16)


def tiny_config(**changes) -> TrainConfig:
    return TrainConfig(backbone="small_cnn", weights=None, input_size=32, channels=1, head=HEAD,
                       phases=(Phase("all", 1, 1e-3),), batch_size=16, class_balance="none",
                       **changes)


@pytest.fixture(scope="module")
def teacher_runs(fer2013_subset, tmp_path_factory):
    """Two tiny FER2013 runs (seeds 0 and 1) and their ensemble, trained for real."""
    root = tmp_path_factory.mktemp("teachers")
    runs = [train_run(fer2013_subset, root / f"seed{seed}", tiny_config(seed=seed))[0].run_dir
            for seed in (0, 1)]
    return runs, ensemble_run(runs, root / "ensemble")


def test_targets_blend_the_teachers_probabilities_with_the_votes(fer2013_subset, teacher_runs,
                                                                   tmp_path):
    _, ensemble = teacher_runs
    splits = load_splits(fer2013_subset)
    config = tiny_config(targets=TargetConfig(ferplus_votes=str(VOTES), teacher=str(ensemble),
                                              teacher_weight=0.25))
    taught = with_targets(splits, fer2013_subset, config, tmp_path)

    images, targets = taught.train
    votes = load_ferplus_split(fer2013_subset, VOTES, "Training", "soft")
    model, _ = load_run(ensemble)
    teacher = predict_source(model, (votes.images, np.zeros(len(votes), np.int64)), 64)
    np.testing.assert_array_equal(images, votes.images)
    np.testing.assert_allclose(targets, 0.25 * teacher + 0.75 * votes.targets, atol=1e-6)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-5)
    assert "FER+ vote distributions" in taught.protocol and "teacher" in taught.protocol
    # selected on what it is taught: PublicTest's own FER+ votes; the test keeps FER2013's labels
    held_out = load_ferplus_split(fer2013_subset, VOTES, "PublicTest", "soft")
    np.testing.assert_array_equal(taught.val[1], held_out.targets)
    assert taught.test is splits.test
    assert np.load(tmp_path / TEACHER_FILE).shape == targets.shape


def test_votes_blend_with_fer2013_labels_for_training_and_validation(fer2013_subset):
    splits = load_splits(fer2013_subset)
    config = tiny_config(targets=TargetConfig(ferplus_votes=str(VOTES), ferplus_weight=0.25))
    taught = with_targets(splits, fer2013_subset, config)

    for split, (images, targets) in (("Training", taught.train), ("PublicTest", taught.val)):
        votes = load_ferplus_split(fer2013_subset, VOTES, split, "soft")
        labels = np.eye(7)[votes.fer2013_labels]
        np.testing.assert_array_equal(images, votes.images)
        np.testing.assert_allclose(targets, 0.25 * votes.targets + 0.75 * labels, atol=1e-6)
        # at a votes share under a half, every face's top class is its FER2013 label
        np.testing.assert_array_equal(targets.argmax(axis=1), votes.fer2013_labels)
    assert "(0.25 x FER+ vote distributions + 0.75 x FER2013 labels) of" in taught.protocol


def test_kept_teacher_probabilities_are_reused_and_a_stale_file_is_not(
        fer2013_subset, teacher_runs, tmp_path, caplog):
    runs, _ = teacher_runs
    splits = load_splits(fer2013_subset)
    config = tiny_config(targets=TargetConfig(teacher=str(runs[0]), teacher_weight=1.0))
    (tmp_path / TEACHER_FILE).write_bytes(b"not an npy file")
    with caplog.at_level("WARNING"):
        first = with_targets(splits, fer2013_subset, config, tmp_path)
    assert "unreadable" in caplog.text
    # a teacher weight of 1: the targets are the teacher's probabilities
    model, _ = load_run(runs[0])
    np.testing.assert_allclose(first.train[1], predict_source(model, first.train, 64), atol=1e-6)

    kept = np.load(tmp_path / TEACHER_FILE)
    kept[:, :] = 1 / 7  # what a resumed run must read back instead of predicting again
    np.save(tmp_path / TEACHER_FILE, kept)
    again = with_targets(splits, fer2013_subset, config, tmp_path)
    np.testing.assert_allclose(again.train[1], 1 / 7, atol=1e-6)
    assert again.val is splits.val  # without votes, selection stays on the dataset's labels


def test_labels_alone_leave_the_splits_as_they_are(fer2013_subset):
    splits = load_splits(fer2013_subset)
    assert with_targets(splits, fer2013_subset, tiny_config()) is splits


def test_votes_on_data_that_is_not_fer2013_are_refused(ckplus_dir):
    splits = load_splits(ckplus_dir)
    config = tiny_config(targets=TargetConfig(ferplus_votes=str(VOTES)))
    with pytest.raises(ConfigError, match="FER\\+ votes relabel FER2013"):
        with_targets(splits, ckplus_dir, config)


def test_a_teacher_with_other_labels_is_refused(ckplus_dir, teacher_runs):
    splits = load_splits(ckplus_dir)
    config = tiny_config(targets=TargetConfig(teacher=str(teacher_runs[0][0])))
    with pytest.raises(ConfigError, match="teacher .* predicts"):
        with_targets(splits, ckplus_dir, config)


def test_weights_start_from_a_run_or_an_ensemble_member(teacher_runs):
    runs, ensemble = teacher_runs
    model = build_model("small_cnn", 7, weights=None, input_size=32, channels=1, head=HEAD)
    initialise_from(model, ensemble, member=2)
    member = ensemble_members(load_run(ensemble)[0])[1]
    for ours, theirs in zip(model.get_weights(), member.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    initialise_from(model, runs[0])
    for ours, theirs in zip(model.get_weights(), load_run(runs[0])[0].get_weights(),
                            strict=True):
        np.testing.assert_array_equal(ours, theirs)

    with pytest.raises(ConfigError, match="ensemble of 2 models; init_member 3"):
        initialise_from(model, ensemble, member=3)
    other = build_model("small_cnn", 7, weights=None, input_size=32, channels=1,
                        head=HeadConfig(units=8))
    with pytest.raises(ConfigError, match="other shapes"):
        initialise_from(other, runs[0])


def test_a_distilled_run_records_its_targets_and_start(fer2013_subset, teacher_runs, tmp_path):
    _, ensemble = teacher_runs
    config = tiny_config(
        targets=TargetConfig(ferplus_votes=str(VOTES), teacher=str(ensemble)),
        init_from=str(ensemble), init_member=1,
    )
    result = train_run(fer2013_subset, tmp_path / "student", config)[0]
    recorded = json.loads((result.run_dir / "config.json").read_text())
    assert recorded["targets"] == {"ferplus_votes": str(VOTES), "ferplus_weight": 1.0,
                                   "teacher": str(ensemble), "teacher_weight": 0.5}
    assert recorded["init_from"] == str(ensemble)
    assert "training targets" in recorded["data"]["protocol"]
    assert (result.run_dir / TEACHER_FILE).is_file()
    assert result.metrics["test"]["count"] == 84  # PrivateTest, with FER2013's labels
    model, label_set = load_run(result.run_dir)
    assert model.output_shape == (None, 7) and label_set.name == "fer2013"


def test_init_member_counts_from_one():
    with pytest.raises(ConfigError, match="counts from 1"):
        TrainConfig(init_member=0)
    with pytest.raises(ConfigError, match="teacher_weight"):
        TargetConfig(teacher_weight=1.5)
    with pytest.raises(ConfigError, match="ferplus_weight must be in"):
        TargetConfig(ferplus_votes=str(VOTES), ferplus_weight=-0.1)
    with pytest.raises(ConfigError, match="needs targets.ferplus_votes"):
        TargetConfig(ferplus_weight=0.5)
