"""The recipe, train.py and evaluate.py on real FER2013 faces and real RAVDESS crops."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO_ROOT, SHARED

import evaluate
import train
from emokeras.cli.args import add_config_arguments, config_from_arguments
from emokeras.datasets import load_fer2013_folders
from emokeras.datasets.fer2013 import FER2013_FRAMING
from emokeras.datasets.pipeline import AugmentConfig
from emokeras.errors import ConfigError, RunFolderError
from emokeras.fileio import read_csv
from emokeras.model import EmotionModel, crop_framing_for, resolve_model
from emokeras.models import HeadConfig, build_model, get_backbone
from emokeras.runs import native_bfloat16
from emokeras.training import Phase, TrainConfig, fit

NO_AUGMENT = AugmentConfig(
    flip=False, rotation_degrees=0.0, zoom=0.0, translate=0.0, brightness=0.0, contrast=0.0
)
MOBILENET_WEIGHTS = SHARED / "weights" / "mobilenet_v2_1.0_224_imagenet_notop.weights.h5"
# small_cnn on 48x48 grayscale FER2013 faces: seconds per epoch on a few hundred images
TINY = ["--backbone", "small_cnn", "--weights", "none", "--channels", "1", "--input-size", "48",
        "--batch-size", "32", "--no-feature-cache"]


def test_phase_parse_and_errors():
    assert Phase.parse("0:3:1e-3") == Phase(0, 3, 1e-3)
    assert Phase.parse("block5:2:1e-4") == Phase("block5", 2, 1e-4)
    assert str(Phase("all", 4, 3e-5)) == "all:4:3e-05"
    for bad in ("0:3", "x:y:z", "0:0:1e-3", "0:1:-1"):
        with pytest.raises(ConfigError, match="phase|epochs|learning rate"):
            Phase.parse(bad)


def test_config_round_trips_and_rejects_unknown_keys():
    config = TrainConfig(
        backbone="vgg16", phases=(Phase(0, 2, 1e-3), Phase("block5", 3, 1e-4)),
        head=HeadConfig(units=128), augment=AugmentConfig(mixup_alpha=0.2),
    )
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ConfigError, match="learning_rat"):
        TrainConfig.from_dict({"learning_rat": 1})
    with pytest.raises(ConfigError, match="colour"):
        TrainConfig.from_dict({"augment": {"colour": 1}})
    with pytest.raises(ConfigError, match="lr_schedule"):
        TrainConfig(lr_schedule="step")


def test_flags_are_generated_from_the_dataclass(tmp_path):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, TrainConfig)
    (tmp_path / "run.json").write_text(json.dumps({"backbone": "vgg16", "batch_size": 8,
                                                   "head": {"units": 64}}))
    args = parser.parse_args(["--config", str(tmp_path / "run.json"), "--batch-size", "16",
                              "--no-augment-flip", "--head-dropout", "0.3", "--weights", "none",
                              "--phases", "0:1:1e-3,all:2:1e-4"])
    config = config_from_arguments(args, TrainConfig)
    assert config.backbone == "vgg16"  # from the file
    assert config.batch_size == 16  # the flag overrides the file
    assert config.head == HeadConfig(dropout=0.3, units=64)
    assert config.augment.flip is False and config.weights is None
    assert config.phases == (Phase(0, 1, 1e-3), Phase("all", 2, 1e-4))
    with pytest.raises(SystemExit):
        parser.parse_args(["--lr-schedule", "step"])


@pytest.fixture(scope="module")
def fer_faces(fer2013_subset):
    """84 real FER2013 faces per split, as 48x48 grayscale arrays."""
    sets = load_fer2013_folders(fer2013_subset)
    return {name: (s.load_images(grayscale=True), s.labels) for name, s in sets.items()}


def test_feature_cache_trains_the_head_as_the_uncached_path_does(fer_faces):
    # One full batch per epoch, no dropout and no augmentation: both paths then take exactly
    # the same optimisation steps, so the head's weights must agree.
    config = TrainConfig(
        backbone="mobilenet_v2", channels=1, input_size=48, head=HeadConfig(dropout=0.0),
        phases=(Phase(0, 3, 1e-2),), batch_size=128, augment=NO_AUGMENT, class_balance="none",
        label_smoothing=0.0,
    )
    train_set = (fer_faces["Training"][0][:80], fer_faces["Training"][1][:80])
    val_set = fer_faces["PublicTest"]
    heads, losses = [], []
    for cached in (True, False):
        keras.utils.set_random_seed(0)
        model = build_model("mobilenet_v2", 7, weights=MOBILENET_WEIGHTS, input_size=48,
                            channels=1, head=config.head)
        result = fit(model, train_set, val_set, TrainConfig(**{**config.__dict__,
                                                               "feature_cache": cached}))
        losses.append(result.series("loss") + result.series("val_loss"))
        heads.append([w.numpy() for w in model.trainable_weights])
    assert len(losses[0]) == 6
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4)
    for cached, uncached in zip(*heads, strict=True):
        np.testing.assert_allclose(cached, uncached, rtol=1e-3, atol=1e-4)


def test_backbone_learns_at_its_multiplier(fer_faces):
    model = build_model("small_cnn", 7, weights=None, input_size=48, channels=1)
    backbone_before = [w.numpy().copy() for w in get_backbone(model).trainable_weights]
    head_before = model.get_layer("head_dense").kernel.numpy().copy()
    config = TrainConfig(
        backbone="small_cnn", phases=(Phase("all", 1, 1e-2),), batch_size=32,
        backbone_lr_multiplier=0.0, augment=NO_AUGMENT, feature_cache=False,
    )
    fit(model, fer_faces["Training"], fer_faces["PublicTest"], config)
    backbone_after = get_backbone(model).trainable_weights
    assert backbone_after, "the backbone should be unfrozen in this phase"
    for before, after in zip(backbone_before, backbone_after, strict=True):
        np.testing.assert_array_equal(before, after.numpy())
    assert not np.allclose(head_before, model.get_layer("head_dense").kernel.numpy())


def test_train_py_end_to_end_then_evaluate_py(fer2013_subset, tmp_path, capsys):
    argv = ["--data", str(fer2013_subset), "--run", "tiny", "--output-dir", str(tmp_path),
            "--phases", "0:1:1e-3,all:2:1e-3", *TINY]
    assert train.main(argv) == 0
    run = tmp_path / "tiny"
    for name in ("model.keras", "config.json", "labels.json", "history.csv", "metrics.json"):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert config["backbone"] == "small_cnn" and config["phases"] == ["0:1:0.001", "all:2:0.001"]
    assert "PublicTest" in config["data"]["protocol"]
    assert config["data"]["sizes"] == {"train": 84, "val": 84, "test": 84}
    assert json.loads((run / "labels.json").read_text())["classes"][0] == "angry"
    # FER2013's own images are framed tight (benchmarks/face_framing.py): the run says so, and
    # the model loads with that framing, so detected faces are cut as its training faces were
    assert json.loads((run / "framing.json").read_text()) == {"margin": 0.0, "shift_y": 0.0}
    assert EmotionModel.load(run).framing == FER2013_FRAMING
    assert crop_framing_for(resolve_model(run)) == FER2013_FRAMING
    history = read_csv(run / "history.csv")
    assert len(history) == 3 and {"loss", "val_accuracy"} <= set(history[0])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val"]["count"] == 84 and metrics["test"]["count"] == 84
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    assert sum(map(sum, metrics["test"]["confusion"])) == 84
    # the saved model reloads in safe mode with no outside code, takes raw 0-255 pixels, and
    # scores the test faces exactly as the run did; it holds weights only, no optimizer state
    model = keras.saving.load_model(run / "model.keras")
    assert not model.compiled
    faces = fer_faces_test(fer2013_subset)
    probabilities = model.predict(faces[0], verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == faces[1]))
    assert accuracy == pytest.approx(metrics["test"]["accuracy"])
    assert (run / "model.keras").stat().st_size < 3 * 4 * model.count_params()

    assert evaluate.main([str(run), "--data", str(fer2013_subset), "--split", "test"]) == 0
    report = json.loads((run / "evaluation_test.json").read_text())
    assert report["frame"]["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    # a finished run is never overwritten
    assert train.main(argv) == 2
    assert "finished run" in capsys.readouterr().err


def test_train_py_seal_test_leaves_the_test_split_unscored(fer2013_subset, tmp_path, capsys):
    # choosing among runs on validation must not put their test numbers in sight first
    argv = ["--data", str(fer2013_subset), "--run", "sealed", "--output-dir", str(tmp_path),
            "--phases", "all:1:1e-3", "--seal-test", *TINY]
    assert train.main(argv) == 0
    printed = capsys.readouterr().out
    assert "validation accuracy" in printed and "test accuracy" not in printed
    metrics = json.loads((tmp_path / "sealed" / "metrics.json").read_text())
    assert "test" not in metrics and metrics["val"]["count"] == 84
    # the test faces are still there to score once the run is chosen
    assert evaluate.main([str(tmp_path / "sealed"), "--data", str(fer2013_subset),
                          "--split", "test"]) == 0
    report = json.loads((tmp_path / "sealed" / "evaluation_test.json").read_text())
    assert report["frame"]["count"] == 84


def test_evaluate_py_names_a_run_folder_without_a_model(tmp_path, fer2013_subset, capsys):
    assert evaluate.main([str(tmp_path), "--data", str(fer2013_subset)]) == 2
    assert "model.keras" in capsys.readouterr().err
    with pytest.raises(RunFolderError):
        from emokeras.run_folder import load_run

        load_run(tmp_path)


def fer_faces_test(root: Path) -> tuple[np.ndarray, np.ndarray]:
    test = load_fer2013_folders(root)["PrivateTest"]
    return test.load_images(grayscale=True)[..., np.newaxis].astype(np.float32), test.labels


def _train_command(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "train.py", "--data", str(data), "--run", "r",
            "--output-dir", str(out), *TINY, *extra]


@pytest.mark.slow
def test_a_killed_run_resumes_where_it_stopped(fer2013_subset, tmp_path):
    command = _train_command(fer2013_subset, tmp_path, "--phases", "0:1:1e-3,all:8:1e-3",
                             "--early-stopping-patience", "100")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    backup = tmp_path / "r" / "backup" / "phase1"
    deadline = time.monotonic() + 300
    # wait until the second phase has backed up at least two epochs, then kill it hard
    while time.monotonic() < deadline and process.poll() is None:
        rows = tmp_path / "r" / "logs" / "history_phase1.csv"
        if backup.exists() and rows.exists() and len(rows.read_text().splitlines()) >= 3:
            break
        time.sleep(0.1)
    assert process.poll() is None, "training ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "r" / "metrics.json").exists()
    epochs_before = len(read_csv(tmp_path / "r" / "logs" / "history_phase1.csv"))

    finished = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-3000:]
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["resumed"] is True
    # phase 1's epochs continue where the killed run stopped: each epoch once, 0..7
    history = read_csv(tmp_path / "r" / "history.csv")
    assert [(r["phase"], r["epoch"]) for r in history] == [("0", "0")] + [
        ("1", str(e)) for e in range(8)
    ]
    assert epochs_before >= 2


@pytest.mark.slow
def test_a_run_killed_in_phase_0_runs_every_phase_after_resuming(fer2013_subset, tmp_path):
    # issue 16: BackupAndRestore's initial epoch leaked into the next phase, which then ran
    # no epoch; metrics.json said resumed: false and model.keras held phase 0's weights
    command = _train_command(fer2013_subset, tmp_path, "--phases", "all:3:1e-3,all:2:1e-4",
                             "--early-stopping-patience", "100")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    run = tmp_path / "r"
    rows = run / "logs" / "history_phase0.csv"
    deadline = time.monotonic() + 300
    # kill hard once phase 0's first epoch is logged and backed up (state.json then exists)
    while time.monotonic() < deadline and process.poll() is None:
        if (run / "state.json").exists() and rows.exists() and len(
            rows.read_text().splitlines()
        ) >= 2:
            break
        time.sleep(0.05)
    assert process.poll() is None, "training ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (run / "phases" / "phase0.weights.h5").exists(), "killed after phase 0 ended"
    assert json.loads((run / "state.json").read_text()) == {"completed_phases": 0}

    finished = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert json.loads((run / "metrics.json").read_text())["resumed"] is True
    history = read_csv(run / "history.csv")
    assert [(r["phase"], r["epoch"]) for r in history] == [
        ("0", "0"), ("0", "1"), ("0", "2"), ("1", "0"), ("1", "1"),
    ]
    assert json.loads((run / "state.json").read_text()) == {"completed_phases": 2}
    # model.keras holds the last phase's final weights, not phase 0's
    saved = keras.saving.load_model(run / "model.keras")
    phase0 = keras.saving.load_model(run / "model.keras")
    phase0.load_weights(run / "phases" / "phase0.weights.h5")
    phase1 = keras.saving.load_model(run / "model.keras")
    phase1.load_weights(run / "phases" / "phase1.weights.h5")
    for mine, last in zip(saved.weights, phase1.weights, strict=True):
        np.testing.assert_array_equal(mine.numpy(), last.numpy())
    assert any(
        not np.array_equal(a.numpy(), b.numpy())
        for a, b in zip(saved.weights, phase0.weights, strict=True)
    )


def test_an_unreadable_backup_starts_its_phase_over(fer_faces, tmp_path, caplog):
    # A kill during a phase's first backup left Keras' latest.weights.h5 truncated, with no
    # earlier copy, and every later start of the run failed in h5py. Backups are now written
    # atomically; one unreadable anyway (as that kill left it) is set aside with a warning.
    backup = tmp_path / "backup" / "phase0"
    backup.mkdir(parents=True)
    (backup / "latest.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(88))
    config = TrainConfig(
        backbone="small_cnn", weights=None, channels=1, input_size=48,
        phases=(Phase("all", 2, 1e-3),), augment=NO_AUGMENT, feature_cache=False,
        early_stopping_patience=100,
    )
    model = build_model("small_cnn", 7, weights=None, input_size=48, channels=1)
    train_set = (fer_faces["Training"][0][:64], fer_faces["Training"][1][:64])
    result = fit(model, train_set, fer_faces["PublicTest"], config, run_dir=tmp_path)
    assert [(row["phase"], row["epoch"]) for row in result.history] == [(0, 0), (0, 1)]
    assert "unreadable" in caplog.text
    assert (tmp_path / "backup" / "phase0.broken" / "latest.weights.h5").is_file()
    assert json.loads((tmp_path / "state.json").read_text()) == {"completed_phases": 1}
    assert not list(tmp_path.rglob("*.partial*"))


@pytest.mark.slow
def test_by_sex_trains_one_model_per_sex(two_actors_per_sex_manifest, tmp_path):
    argv = ["--data", str(two_actors_per_sex_manifest), "--labels", "ravdess", "--by-sex",
            "--run", "sexes", "--output-dir", str(tmp_path), "--phases", "all:1:1e-3",
            *TINY]
    assert train.main(argv) == 0
    run = tmp_path / "sexes"
    assert json.loads((run / "routing.json").read_text()) == {
        "male": "male/model.keras", "female": "female/model.keras"}
    for sex in ("male", "female"):
        config = json.loads((run / sex / "config.json").read_text())
        assert f"{sex} subjects only" in config["data"]["protocol"]
        assert (run / sex / "model.keras").is_file()
        labels = json.loads((run / sex / "labels.json").read_text())
        assert labels["label_set"] == "ravdess" and len(labels["classes"]) == 8
        # the crops' margin, from the prepare.json beside the manifest
        assert json.loads((run / sex / "framing.json").read_text()) == {
            "margin": 0.2, "shift_y": 0.0}
    # the run folder is a model that routes each video to its sex's model
    from emokeras.model import SexRoutedModel, resolve_model

    routed = resolve_model(run)
    assert isinstance(routed, SexRoutedModel) and routed.label_set.name == "ravdess"


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(fer2013_subset, tmp_path):
    command = _train_command(fer2013_subset, tmp_path, "--phases", "all:1:1e-3",
                             "--distribute", "mirrored", "--cpu-replicas", "2")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    finished = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "mirrored strategy with 2 replicas" in finished.stderr
    assert (tmp_path / "r" / "model.keras").is_file()


def test_multiworker_needs_tf_config(monkeypatch):
    from emokeras.distribute import make_strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        make_strategy("multiworker")
    with pytest.raises(ConfigError, match="ring"):
        make_strategy("ring")


def test_copying_a_run_folder_keeps_it_loadable(tmp_path, fer2013_subset):
    """A run folder is self-contained: moved elsewhere, its model loads with its labels."""
    argv = ["--data", str(fer2013_subset), "--run", "a", "--output-dir", str(tmp_path),
            "--phases", "all:1:1e-3", "--limit", "40", *TINY]
    assert train.main(argv) == 0
    shutil.copytree(tmp_path / "a", tmp_path / "moved")
    from emokeras.run_folder import load_run

    model, label_set = load_run(tmp_path / "moved")
    assert label_set.name == "fer2013" and model.output_shape == (None, 7)


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")),
                    reason="with a GPU, native_bfloat16 is True whatever the CPU flags say")
def test_native_bfloat16_reads_the_cpu_flags(tmp_path):
    # two cores as /proc/cpuinfo lists them: an AVX2-only AMD EPYC, an AMX Xeon
    epyc = ("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n\n"
            "processor\t: 1\nflags\t\t: fpu sse2 avx avx2 fma\n")
    xeon = "processor\t: 0\nflags\t\t: avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
    (tmp_path / "epyc").write_text(epyc)
    (tmp_path / "xeon").write_text(xeon)
    assert native_bfloat16(tmp_path / "epyc") is False
    assert native_bfloat16(tmp_path / "xeon") is True
    assert native_bfloat16(tmp_path / "missing") is None
