"""Sex-routed models: each video goes to the model of its (detected or given) sex."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import IMAGES, RAVDESS_CLIPS

from emokeras.errors import ConfigError
from emokeras.inference import predict_frames, predict_image, predict_video
from emokeras.labels import FER2013, RAVDESS
from emokeras.model import EmotionModel, SexRoutedModel, resolve_model
from emokeras.models import build_model

ACTOR_01 = RAVDESS_CLIPS / "actor01_sample_01.mp4"  # male
ACTOR_02 = RAVDESS_CLIPS / "actor02_sample_03.mp4"  # female


def _model(seed: int, classes: int = 7, label_set=FER2013) -> EmotionModel:
    keras.utils.set_random_seed(seed)  # two different untrained models, so routing shows
    return EmotionModel(build_model("small_cnn", classes, weights=None, input_size=48,
                                    channels=1), label_set)


@pytest.fixture(scope="module")
def models():
    return {"male": _model(1), "female": _model(2)}


@pytest.fixture(scope="module")
def routed(models):
    return SexRoutedModel(models)


@pytest.mark.parametrize(("clip", "sex"), [(ACTOR_01, "male"), (ACTOR_02, "female")])
def test_each_video_goes_to_its_sex_model(routed, models, clip, sex):
    result = predict_video(clip, routed, target_fps=3)
    alone = predict_video(clip, models[sex], target_fps=3)
    assert result.sex == sex
    np.testing.assert_allclose(result.frame_probs, alone.frame_probs, atol=1e-6)
    other = predict_video(clip, models["female" if sex == "male" else "male"], target_fps=3)
    assert not np.allclose(result.frame_probs, other.frame_probs)


def test_a_given_sex_overrides_detection(routed, models):
    result = predict_video(ACTOR_01, routed, target_fps=3, sex="female")
    alone = predict_video(ACTOR_01, models["female"], target_fps=3)
    assert result.sex == "female"
    np.testing.assert_allclose(result.frame_probs, alone.frame_probs, atol=1e-6)


def test_images_and_frames_are_routed_per_face(routed, models):
    [face] = predict_image(IMAGES / "single_face.jpg", routed)  # a man
    [alone] = predict_image(IMAGES / "single_face.jpg", models["male"])
    np.testing.assert_allclose(face.probabilities, alone.probabilities, atol=1e-6)
    crops = np.zeros((2, 48, 48), np.uint8)
    np.testing.assert_allclose(predict_frames(crops, routed, sex="female"),
                               predict_frames(crops, models["female"]), atol=1e-6)


def test_saves_and_loads_as_one_run_folder(routed, tmp_path):
    routed.save(tmp_path / "run")
    loaded = resolve_model(tmp_path / "run")
    assert isinstance(loaded, SexRoutedModel) and loaded.label_set is FER2013
    assert predict_video(ACTOR_02, tmp_path / "run", target_fps=3).sex == "female"
    np.testing.assert_allclose(predict_video(ACTOR_02, loaded, target_fps=3).frame_probs,
                               predict_video(ACTOR_02, routed, target_fps=3).frame_probs,
                               atol=1e-6)


def test_bad_routing_is_rejected(models):
    with pytest.raises(ConfigError, match="each of"):
        SexRoutedModel({"male": models["male"]})
    with pytest.raises(ConfigError, match="label set"):
        SexRoutedModel({"male": models["male"], "female": _model(3, 8, RAVDESS)})
