"""The offline sex classifier on the labelled fixtures, and sex detection in predict_video."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import IMAGES, RAVDESS_CLIPS, VIDEOS

from emokeras.errors import ConfigError
from emokeras.faces import detect_faces_and_crop
from emokeras.gender import SEXES, default_sex_classifier, majority_sex
from emokeras.images import load_image
from emokeras.inference import predict_video
from emokeras.labels import FER2013
from emokeras.model import EmotionModel
from emokeras.models import build_model

# fixtures/labels.csv: each photo's sex (disgust_m7's three-quarter view is not found by Haar)
PHOTOS = {"angry_f13.jpg": "female", "happy_f15.jpg": "female", "surprise_f1.jpg": "female",
          "single_face.jpg": "male", "justin.jpg": "male"}


def test_offline_classifier_is_right_on_the_labelled_photos():
    classifier = default_sex_classifier()
    crops = [detect_faces_and_crop(load_image(IMAGES / name))[0].image for name in PHOTOS]
    probabilities = classifier.predict(crops)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert [SEXES[i] for i in probabilities.argmax(axis=1)] == list(PHOTOS.values())
    assert classifier.predict([]).shape == (0, 2)


def test_majority_sex_and_its_tie_break():
    assert majority_sex(np.array([[0.9, 0.1], [0.4, 0.6], [0.8, 0.2]])) == "female"
    assert majority_sex(np.array([[0.45, 0.55], [0.9, 0.1]])) == "female"  # tie: higher sum
    with pytest.raises(ValueError, match="frames, 2"):
        majority_sex(np.zeros((0, 2)))


@pytest.fixture(scope="module")
def gray_model() -> EmotionModel:
    return EmotionModel(build_model("small_cnn", 7, weights=None, input_size=48, channels=1),
                        FER2013)


@pytest.mark.parametrize(("clip", "sex"), [
    (RAVDESS_CLIPS / "actor01_sample_01.mp4", "male"),
    (RAVDESS_CLIPS / "actor02_sample_04.mp4", "female"),
    (VIDEOS / "single_face.mp4", "male"),
])
def test_predict_video_detects_the_sex(gray_model, clip, sex):
    assert predict_video(clip, gray_model, target_fps=3, sex="detect").sex == sex


def test_predict_video_records_a_given_sex_and_rejects_others(gray_model):
    clip = VIDEOS / "single_face.mp4"
    assert predict_video(clip, gray_model, max_frames=2, sex="female").sex == "female"
    assert predict_video(clip, gray_model, max_frames=2).sex is None
    with pytest.raises(ConfigError, match="woman"):
        predict_video(clip, gray_model, sex="woman")
