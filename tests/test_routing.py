"""Sex-routed models: each video goes to the model of its (detected or given) sex."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import IMAGES, RAVDESS_CLIPS, portrait

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


def test_faces_all_routes_each_person_by_their_own_sex(routed, models, tmp_path):
    # a man (larger, left) and a woman side by side: every track used to get the model of the
    # largest face's sex, so the woman was classified by the male model
    import cv2

    man, woman = portrait("single_face.jpg", 240), portrait("happy_f15.jpg", 200)
    path = tmp_path / "man_and_woman.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (720, 360))
    for _ in range(8):
        frame = np.full((360, 720, 3), 90, np.uint8)
        frame[60:300, 40:280] = man
        frame[80:280, 480:680] = woman
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()

    result = predict_video(path, routed, faces="all", frame_step=1)
    assert result.sex == "male"  # the video's sex: that of its largest face
    by_side = {track.boxes[0].x < 360: track for track in result.tracks}
    for sex, left in (("male", True), ("female", False)):
        alone = predict_video(path, models[sex], faces="all", frame_step=1)
        (same,) = [t for t in alone.tracks if (t.boxes[0].x < 360) == left]
        np.testing.assert_allclose(by_side[left].frame_probs, same.frame_probs, atol=1e-6)
    male_only = predict_video(path, models["male"], faces="all", frame_step=1)
    np.testing.assert_allclose(result.frame_probs, male_only.frame_probs, atol=1e-6)
