"""Ensembles of trained runs (``emokeras.models.ensemble``, ``emokeras ensemble``) on real faces.

Two tiny runs are really trained on real FER2013 faces: one at 48 px, one at 32 px in mixed
precision, so the ensemble resizes in its graph and a mixed-precision run is saved in float32.
"""

from __future__ import annotations

import json
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_training import TINY

import evaluate
import train
from emokeras.cli import main as emokeras_main
from emokeras.datasets import load_fer2013_folders
from emokeras.datasets.fer2013 import FER2013_FRAMING
from emokeras.errors import ConfigError, RunFolderError
from emokeras.explain import grad_cam
from emokeras.model import EmotionModel
from emokeras.models import build_ensemble, build_model, ensemble_members
from emokeras.models.ensemble import ensemble_views
from emokeras.run_folder import load_run, read_framing
from emokeras.runs import ensemble_run


@pytest.fixture(scope="module")
def two_runs(fer2013_subset, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    common = ["--data", str(fer2013_subset), "--output-dir", str(out), "--phases", "all:1:1e-3",
              "--limit", "40", *TINY]
    assert train.main([*common, "--run", "a"]) == 0
    assert train.main([*common, "--run", "b", "--input-size", "32", "--seed", "1",
                       "--mixed-precision"]) == 0
    return out / "a", out / "b"


@pytest.fixture(scope="module")
def faces(fer2013_subset):
    """Real FER2013 PublicTest faces, 48x48x1 uint8."""
    return load_fer2013_folders(fer2013_subset)["PublicTest"].load_images(grayscale=True)[..., None]


def _all_layers(model):
    return list(model._flatten_layers(include_self=True, recursive=True))


def test_a_mixed_precision_run_is_saved_computing_in_float32(two_runs):
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after the run
    model, _ = load_run(two_runs[1])
    assert {layer.dtype_policy.name for layer in _all_layers(model)} == {"float32"}
    assert model.input_shape == (None, 32, 32, 1)


def test_the_ensemble_averages_its_members_on_the_face_and_its_mirror(two_runs, faces):
    (a, _), (b, _) = load_run(two_runs[0]), load_run(two_runs[1])
    x = faces.astype("float32")
    mirrored = x[:, :, ::-1]
    small = tf.image.resize(x, (32, 32), "bilinear").numpy()
    small_mirrored = tf.image.resize(mirrored, (32, 32), "bilinear").numpy()
    expected = np.mean([a.predict(x, verbose=0), a.predict(mirrored, verbose=0),
                        b.predict(small, verbose=0), b.predict(small_mirrored, verbose=0)], axis=0)

    ensemble = build_ensemble([a, b], flip=True)
    assert ensemble.input_shape == (None, 48, 48, 1)
    assert [m.name for m in ensemble_members(ensemble)] == ["member_1", "member_2"]
    np.testing.assert_allclose(ensemble.predict(x, verbose=0), expected, atol=1e-6)
    plain = build_ensemble([a, b], flip=False)
    np.testing.assert_allclose(
        plain.predict(x, verbose=0),
        (a.predict(x, verbose=0) + b.predict(small, verbose=0)) / 2, atol=1e-6)
    assert ensemble_members(a) == []


def test_crops_add_the_central_square_resized_back_and_its_mirror(two_runs, faces):
    a, _ = load_run(two_runs[0])
    x = faces.astype("float32")
    zoomed = tf.image.resize(x[:, 2:46, 2:46], (48, 48), "bilinear").numpy()
    views = [x, x[:, :, ::-1], zoomed, zoomed[:, :, ::-1]]
    expected = np.mean([a.predict(view, verbose=0) for view in views], axis=0)
    ensemble = build_ensemble([a], flip=True, crops=(44,))
    np.testing.assert_allclose(ensemble.predict(x, verbose=0), expected, atol=1e-5)
    crop_only = build_ensemble([a], crops=(44,))
    np.testing.assert_allclose(
        crop_only.predict(x, verbose=0),
        (a.predict(x, verbose=0) + a.predict(zoomed, verbose=0)) / 2, atol=1e-5)


def test_the_fast_forms_are_the_first_member_alone_or_with_the_ensembles_views(two_runs, faces):
    (a, labels), (b, _) = load_run(two_runs[0]), load_run(two_runs[1])
    x = faces.astype("float32")
    zoomed = tf.image.resize(x[:, 2:46, 2:46], (48, 48), "bilinear").numpy()
    both = EmotionModel(build_ensemble([a, b], flip=True, crops=(44,)), labels)
    assert ensemble_views(both.model) == (True, [44]) and ensemble_views(a) == (False, [])

    assert both.single().model is a
    with_views = both.single(views=True)
    assert ensemble_members(with_views.model) == [a]  # the member itself: no copied weights
    expected = np.mean([a.predict(v, verbose=0) for v in (x, x[:, :, ::-1], zoomed,
                                                         zoomed[:, :, ::-1])], axis=0)
    np.testing.assert_allclose(with_views.model.predict(x, verbose=0), expected, atol=1e-5)
    # an ensemble without views has no views to keep
    plain = EmotionModel(build_ensemble([a, b]), labels)
    assert plain.single(views=True).model is a


def test_ensemble_command_writes_a_run_folder_that_works_as_any_run(
        two_runs, faces, fer2013_subset, tmp_path, capsys):
    out = tmp_path / "ens"
    assert emokeras_main(["ensemble", *map(str, two_runs), "--out", str(out), "--crop", "44"]) == 0
    assert "the mirrored face and the central 44x44" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())["ensemble"]
    assert config["flip"] is True and config["crops"] == [44]
    assert [m["run"] for m in config["members"]] == [str(run) for run in two_runs]
    assert config["members"][1]["config"]["mixed_precision"] is True
    assert json.loads((out / "labels.json").read_text()) == json.loads(
        (two_runs[0] / "labels.json").read_text())
    # both members learnt FER2013's tight faces: the ensemble cuts detected faces as they did
    assert read_framing(out) == read_framing(two_runs[0]) == FER2013_FRAMING
    assert EmotionModel.load(out).framing == FER2013_FRAMING

    # reloads in safe mode, as the members' average on the face, its crop and their mirrors
    model, label_set = load_run(out)
    members = [load_run(run)[0] for run in two_runs]
    x = faces.astype("float32")
    expected = build_ensemble(members, flip=True, crops=(44,)).predict(x, verbose=0)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=1e-6)
    assert label_set.name == "fer2013"
    assert evaluate.main([str(out), "--data", str(fer2013_subset), "--split", "test"]) == 0
    assert json.loads((out / "evaluation_test.json").read_text())["frame"]["count"] == 84


def test_grad_cam_of_an_ensemble_averages_its_members_maps(two_runs, faces):
    members = [load_run(run)[0] for run in two_runs]
    ensemble = build_ensemble(members, flip=True)
    face = faces[0, ..., 0]
    label = int(np.argmax(ensemble.predict(faces[:1].astype("float32"), verbose=0)))
    heatmap = grad_cam(ensemble, face)
    assert heatmap.shape == face.shape and 0.0 <= heatmap.min() and heatmap.max() <= 1.0
    maps = np.mean([grad_cam(member, face, label) for member in members], axis=0)
    expected = maps / maps.max() if maps.max() > 0 else maps
    np.testing.assert_allclose(heatmap, expected, atol=1e-5)


def test_ensemble_errors_name_what_is_wrong(two_runs, tmp_path):
    a, _ = load_run(two_runs[0])
    five = build_model("small_cnn", 5, weights=None, input_size=48, channels=1)
    with pytest.raises(ConfigError, match="member 2 .* gives 5 classes"):
        build_ensemble([a, five])
    rgb = build_model("small_cnn", 7, weights=None, input_size=48, channels=3)
    with pytest.raises(ConfigError, match="takes 3 channels"):
        build_ensemble([a, rgb])
    with pytest.raises(ConfigError, match="without flip or crops is that model"):
        build_ensemble([a])
    for crop in (48, 0, 40.5):
        with pytest.raises(ConfigError, match=f"crop size {crop!r} is not .* 1 and the input's 47"):
            build_ensemble([a], crops=(crop,))
    with pytest.raises(ConfigError, match="needs at least one member"):
        build_ensemble([])
    with pytest.raises(RunFolderError, match="one of its members"):
        ensemble_run([two_runs[0], two_runs[1]], two_runs[1])
    with pytest.raises(RunFolderError, match="has no model.keras"):
        ensemble_run([two_runs[0], tmp_path], tmp_path / "ens")
    # members trained on faces framed differently cannot share one cut of each face
    loose = tmp_path / "loose"
    shutil.copytree(two_runs[1], loose)
    (loose / "framing.json").unlink()  # as a run from before framing.json: the default framing
    with pytest.raises(ConfigError, match=r"frame faces differently .*'[^']*/a' margin 0 .*"
                                          r"'[^']*/loose' margin 0.2 shift_y 0 \(no framing"):
        ensemble_run([two_runs[0], loose], tmp_path / "ens")
    assert not (tmp_path / "ens").exists()
