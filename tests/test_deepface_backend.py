"""The deepface sex backend: deepface's real ``DeepFace.analyze`` path, run in its worker process.

deepface's trained gender weights cannot be downloaded here, so the module fixture builds
deepface's own gender model (``Gender.load_model``: VGG-Face plus its two-class head) with
deepface's own code in a subprocess, with only its download and weight loading stubbed out, and
saves the (untrained, randomly initialised) weights under the name and in the folder deepface
reads them from, in a temporary ``DEEPFACE_HOME``. The same subprocess runs that model on the
test's own re-implementation of deepface's preprocessing: the reference the classifier must
match. These tests check the plumbing, not the accuracy of deepface's model.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import IMAGES, VIDEOS

from emokeras.errors import EmokerasError
from emokeras.faces import detect_faces_and_crop
from emokeras.gender import (
    DEEPFACE_WEIGHTS_FILE,
    DEEPFACE_WEIGHTS_URL,
    SEXES,
    DeepfaceSexClassifier,
    deepface_weights_path,
)
from emokeras.images import load_image

HAS_DEEPFACE = all(importlib.util.find_spec(name) is not None for name in ("deepface", "tf_keras"))
needs_deepface = pytest.mark.skipif(not HAS_DEEPFACE, reason="the deepface extra is not installed")

#: Two labelled photos (fixtures/labels.csv), cropped at their own size so deepface resizes them.
PHOTOS = ("happy_f15.jpg", "single_face.jpg")
#: The untrained head's kernel is scaled up so the two faces' probabilities differ clearly (about
#: 0.5 +- 1e-4 otherwise): a wrong preprocessing step then shows in the comparison.
HEAD_SCALE = 5000.0

# Runs with TF_USE_LEGACY_KERAS=1 (deepface's configuration, tf_keras), never in this process.
BUILDER = """
import sys
import numpy as np
weights_path, inputs_path, outputs_path, scale = sys.argv[1:5]
try:
    from deepface.models.demography.tf import Gender  # deepface >= 0.0.94
except ImportError:
    from deepface.models.demography import Gender
import tensorflow as tf

# deepface's own architecture, without the download and the loading of the trained weights
Gender.weight_utils.download_weights_if_necessary = lambda **kwargs: weights_path
Gender.weight_utils.load_model_weights = lambda model, weight_file: model
tf.keras.utils.set_random_seed(0)
model = Gender.load_model()
assert type(model).__module__.startswith("tf_keras"), type(model)
head = model.get_layer("predictions")
kernel, bias = head.get_weights()
head.set_weights([kernel * float(scale), bias])
model.save_weights(weights_path)
inputs = np.load(inputs_path)
np.save(outputs_path, np.stack([model(x[None], training=False).numpy()[0] for x in inputs]))
"""


def deepface_input(rgb: np.ndarray) -> np.ndarray:
    """What deepface 0.0.103's analyze feeds its gender model for a BGR image and "skip".

    extract_faces takes the whole image, flips it to RGB and divides by 255; analyze flips it
    back to BGR and resize_image scales it (bilinear, aspect kept) into 224x224, zero-padded
    around the centre.
    """
    image = rgb[..., ::-1].astype(np.float64) / 255
    factor = min(224 / image.shape[0], 224 / image.shape[1])
    image = cv2.resize(image, (int(image.shape[1] * factor), int(image.shape[0] * factor)))
    pad_0, pad_1 = 224 - image.shape[0], 224 - image.shape[1]
    image = np.pad(image, ((pad_0 // 2, pad_0 - pad_0 // 2), (pad_1 // 2, pad_1 - pad_1 // 2),
                           (0, 0)))
    return image.astype(np.float32)


def _state() -> dict:
    return {
        "env": {name: os.environ.get(name) for name in
                ("TF_USE_LEGACY_KERAS", "TF_CPP_MIN_LOG_LEVEL", "DEEPFACE_BACKEND_ENGINE")},
        # importing deepface adds warnings.filterwarnings("ignore"): every warning silenced
        "ignore_all_warnings": any(action == "ignore" and message is None and category is Warning
                                   and module is None
                                   for action, message, category, module, _ in warnings.filters),
        "modules": {name for name in ("deepface", "tf_keras") if name in sys.modules},
    }


@dataclass
class Backend:
    classifier: DeepfaceSexClassifier
    crops: list[np.ndarray]
    reference: np.ndarray  # deepface's model run directly on deepface_input(crops)
    before: dict  # _state() before the classifier was made
    probabilities: np.ndarray  # the classifier's first answer on crops


@pytest.fixture(scope="module")
def backend(tmp_path_factory) -> Iterator[Backend]:
    home = tmp_path_factory.mktemp("deepface_home")
    weights = home / ".deepface" / "weights" / DEEPFACE_WEIGHTS_FILE
    weights.parent.mkdir(parents=True)
    crops = [detect_faces_and_crop(load_image(IMAGES / name), size=None)[0].image
             for name in PHOTOS]
    assert {crop.shape[0] for crop in crops} != {224}  # deepface has to resize them
    np.save(home / "inputs.npy", np.stack([deepface_input(crop) for crop in crops]))
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", DEEPFACE_BACKEND_ENGINE="tensorflow",
               DEEPFACE_HOME=str(home))
    subprocess.run([sys.executable, "-c", BUILDER, str(weights), str(home / "inputs.npy"),
                    str(home / "reference.npy"), str(HEAD_SCALE)], env=env, check=True)
    before = _state()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEEPFACE_HOME", str(home))  # the worker reads it when it starts
        classifier = DeepfaceSexClassifier()
    try:
        yield Backend(classifier, crops, np.load(home / "reference.npy"), before,
                      classifier.predict(crops))
    finally:
        classifier.close()


@needs_deepface
def test_deepface_analyze_gives_its_model_s_probabilities_in_sexes_order(backend):
    probabilities = backend.probabilities
    assert probabilities.shape == (2, 2) and probabilities.dtype == np.float32
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    # DeepFace.analyze's {"Woman", "Man"} percentages are the model's outputs [woman, man] x 100
    np.testing.assert_allclose(probabilities, backend.reference, atol=1e-5)
    assert abs(probabilities[0, 0] - probabilities[1, 0]) > 0.01  # two faces, two answers

    one = backend.classifier.predict(backend.crops[:1])
    assert one.shape == (1, 2)
    np.testing.assert_allclose(one.sum(axis=1), 1.0, atol=1e-4)
    np.testing.assert_array_equal(one, probabilities[:1])  # deterministic
    gray = cv2.cvtColor(backend.crops[0], cv2.COLOR_RGB2GRAY)
    assert backend.classifier.predict([gray]).shape == (1, 2)
    assert backend.classifier.predict([]).shape == (0, 2)


@needs_deepface
def test_deepface_does_not_leak_into_this_process_s_keras_3(backend, tmp_path):
    import keras

    from emokeras.models import build_model

    # the environment, no blanket warning filter, deepface and tf_keras not imported here
    assert _state() == backend.before
    assert not backend.before["ignore_all_warnings"]
    model = build_model("small_cnn", 7, weights=None, input_size=48, channels=1)
    assert type(model).__module__.startswith("keras.")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).uniform(0, 255, (4, 48, 48, 1)).astype(np.float32)
    loss = model.train_on_batch(x, np.array([0, 1, 2, 3]))
    assert np.isfinite(loss)
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)
    assert _state() == backend.before


@needs_deepface
def test_predict_video_takes_the_deepface_classifier(backend):
    from emokeras.inference import predict_video
    from emokeras.labels import FER2013
    from emokeras.model import EmotionModel
    from emokeras.models import build_model

    model = EmotionModel(build_model("small_cnn", 7, weights=None, input_size=48, channels=1),
                         FER2013)
    result = predict_video(VIDEOS / "single_face.mp4", model, target_fps=1, max_frames=2,
                           sex="detect", sex_classifier=backend.classifier)
    assert result.sex in SEXES  # untrained weights: which one says nothing


def test_importing_gender_imports_no_deepface():
    code = ("import sys, emokeras, emokeras.gender; "
            "print(sorted({'deepface', 'tf_keras', 'tensorflow'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("module", ["deepface", "tf_keras"])
def test_a_missing_extra_says_how_to_install_it(monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)  # what find_spec and import see as absent
    with pytest.raises(EmokerasError, match=r'pip install "emokeras\[deepface\]"'):
        DeepfaceSexClassifier()


@needs_deepface
def test_missing_weights_name_the_path_and_the_url(monkeypatch, tmp_path):
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    expected = tmp_path / ".deepface" / "weights" / "gender_model_weights.h5"
    assert deepface_weights_path() == expected
    with pytest.raises(EmokerasError) as error:
        DeepfaceSexClassifier()
    assert str(expected) in str(error.value) and DEEPFACE_WEIGHTS_URL in str(error.value)
    assert not (tmp_path / ".deepface").exists()  # deepface was not even started


@needs_deepface
def test_a_broken_weights_file_fails_at_construction(monkeypatch, tmp_path):
    weights = tmp_path / ".deepface" / "weights" / DEEPFACE_WEIGHTS_FILE
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"not an HDF5 file")
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    with pytest.raises(EmokerasError, match="deepface could not load its gender model"):
        DeepfaceSexClassifier()


def test_deepface_weights_path_defaults_to_the_home_folder(monkeypatch):
    monkeypatch.delenv("DEEPFACE_HOME", raising=False)
    expected = Path.home() / ".deepface" / "weights" / DEEPFACE_WEIGHTS_FILE
    assert deepface_weights_path() == expected
