"""Framing: how a detected face is cut for a model (margin, vertical shift), stored in the run
folder's framing.json, read back with the model, and used by inference. The bundled model's
framing was measured on FER2013 Training (benchmarks/face_framing.py): a real Training face,
found by YuNet and cut with it, must look more like the Training image than the old cut."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import IMAGES

from emokeras.bundled import BUNDLED_MODEL_DIR
from emokeras.datasets.fer2013 import FER2013_FRAMING
from emokeras.errors import ConfigError, ModelLoadError
from emokeras.faces import FaceBox, crop_face, get_detector
from emokeras.images import load_image
from emokeras.labels import FER2013
from emokeras.model import (
    EmotionModel,
    SexRoutedModel,
    crop_framing_for,
    crop_margin_for,
    load_model,
    resolve_model,
)
from emokeras.run_folder import (
    DEFAULT_FRAMING,
    FRAMING_FILE,
    CropFraming,
    read_framing,
    write_framing,
)


def test_framing_round_trips_through_the_run_folder(tiny, tmp_path):
    framing = CropFraming(margin=0.05, shift_y=-0.1)
    run = EmotionModel(tiny.model, tiny.label_set, framing=framing).save(tmp_path / "run")
    assert json.loads((run / FRAMING_FILE).read_text()) == {"margin": 0.05, "shift_y": -0.1}
    assert read_framing(run) == framing
    write_framing(tmp_path / "run", CropFraming(0.1))
    assert read_framing(run) == CropFraming(0.1, 0.0)
    write_framing(run, framing)
    for loaded in (EmotionModel.load(run), load_model(run), resolve_model(run)):
        assert crop_framing_for(loaded) == framing
        assert crop_margin_for(loaded) == 0.05


def test_a_run_without_framing_keeps_the_old_margin(tiny, tmp_path):
    run = tiny.save(tmp_path / "run")
    assert not (run / FRAMING_FILE).exists()
    assert read_framing(run) is None
    loaded = EmotionModel.load(run)
    assert loaded.framing is None
    assert crop_framing_for(loaded) == DEFAULT_FRAMING == CropFraming(0.2, 0.0)
    assert crop_margin_for(loaded) == 0.2
    # a Keras model given with its label set has no run folder: the old margin too
    assert crop_margin_for(resolve_model(tiny.model, FER2013)) == 0.2


@pytest.mark.parametrize("text, reason", [
    ("{not json", "not a JSON file"),
    ('{"shift_y": 0.1}', "margin"),
    ('{"margin": 0.1, "zoom": 2}', "margin"),
    ('{"margin": -0.1}', "margin must be in [0, 2]"),
    ('{"margin": 0.1, "shift_y": 3}', "shift_y must be in [-1, 1]"),
    ('{"margin": "wide"}', "must be a number"),
])
def test_a_bad_framing_file_is_a_typed_error_naming_it(tiny, tmp_path, text, reason):
    run = tiny.save(tmp_path / "run")
    (run / FRAMING_FILE).write_text(text)
    with pytest.raises(ModelLoadError, match=FRAMING_FILE) as error:
        EmotionModel.load(run)
    assert reason in str(error.value)


def test_routed_models_must_frame_faces_alike(tiny):
    pair = SexRoutedModel({"female": tiny, "male": EmotionModel(
        tiny.model, tiny.label_set, framing=CropFraming(0.0))})
    with pytest.raises(ConfigError, match="frame faces differently"):
        crop_framing_for(pair)
    alike = SexRoutedModel({"female": tiny, "male": tiny})
    assert crop_framing_for(alike) == DEFAULT_FRAMING


def test_the_bundled_model_carries_its_measured_framing():
    stored = read_framing(BUNDLED_MODEL_DIR)
    assert stored is not None
    assert crop_framing_for(resolve_model()) == stored
    assert stored.margin < DEFAULT_FRAMING.margin  # FER2013 faces fill their images
    # the constant training writes into FER2013 runs is the same measurement
    assert stored == FER2013_FRAMING


def test_shift_y_moves_the_square_down_the_face():
    photo = load_image(IMAGES / "single_face.jpg")
    box = get_detector("yunet").detect(photo)[0]
    plain = crop_face(photo, box, size=None, margin=0.0, align=False)
    shifted = crop_face(photo, box, size=None, margin=0.0, shift_y=0.25, align=False)
    step = round(box.y + box.height / 2 + 0.25 * box.height - plain.shape[0] / 2) - round(
        box.y + box.height / 2 - plain.shape[0] / 2)
    assert step > 0
    np.testing.assert_array_equal(shifted[:-step], plain[step:])
    # turned by 90 degrees, "down the face" is across the image: the square moves sideways
    turned = crop_face(photo, box, size=None, margin=0.0, angle=90.0)
    turned_shifted = crop_face(photo, box, size=None, margin=0.0, angle=90.0, shift_y=0.25)
    assert np.abs(turned_shifted[:-step].astype(int) - turned[step:].astype(int)).mean() < 3
    assert np.abs(turned_shifted.astype(int) - turned.astype(int)).mean() > 10


def _training_faces(fer2013_subset: Path) -> list[Path]:
    return sorted(fer2013_subset.glob("train/*/Training_*.jpg"))


def _found_in_border(detector, image: np.ndarray) -> FaceBox | None:
    """The face in ``image`` set in a mean-gray border (as benchmarks/face_framing.py measured
    it: a FER2013 face fills its image, and YuNet's boxes are clipped to the image)."""
    pad = image.shape[0] // 2
    canvas = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT,
                                value=int(image.mean()))
    boxes = detector.detect(canvas)
    if not boxes:
        return None
    box = boxes[0]
    return FaceBox(box.x - pad, box.y - pad, box.width, box.height, box.confidence)


def test_real_training_faces_cut_with_the_bundled_framing_look_like_the_originals(
        fer2013_subset):
    framing, detector = crop_framing_for(resolve_model()), get_detector("yunet")
    new, old = [], []
    for path in _training_faces(fer2013_subset):
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        big = cv2.resize(gray, (192, 192), interpolation=cv2.INTER_CUBIC)
        box = _found_in_border(detector, big)
        if box is None:
            continue
        for diffs, chosen in ((new, framing), (old, DEFAULT_FRAMING)):
            crop = crop_face(big, box, size=48, margin=chosen.margin, shift_y=chosen.shift_y,
                             align=False)
            diffs.append(np.abs(crop.astype(float) - gray).mean())
    assert len(new) >= 70  # of 84: YuNet finds nearly every FER2013 face enlarged
    assert np.mean(new) < 0.85 * np.mean(old), (np.mean(new), np.mean(old))
