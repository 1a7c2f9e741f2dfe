"""Predict the emotion of the faces in an image, or of face crops given as arrays."""

from __future__ import annotations

import os

import numpy as np

from emokeras.errors import ConfigError, NoFaceFoundError
from emokeras.faces import FaceBox, FaceDetector, detect_faces_and_crop, get_detector
from emokeras.images import load_image
from emokeras.inference.results import ImagePrediction
from emokeras.labels import LabelSet
from emokeras.model import crop_framing_for, crop_size_for, resolve_model
from emokeras.model import crop_sexes as _crop_sexes
from emokeras.model import route as _route

#: The margin around a detected face box of a model without a framing of its own (as in
#: ``data_prep``); a model's crops are framed by :func:`emokeras.model.crop_framing_for`.
CROP_MARGIN = 0.2


def _image_prediction(
    probs: np.ndarray, box: FaceBox | None, labels: LabelSet, path: str | None = None
) -> ImagePrediction:
    index = int(np.argmax(probs))
    return ImagePrediction(labels.classes[index], index, labels.emoji(index), probs,
                           float(probs[index]), box, labels.classes, path)


def predict_frames(frames, model=None, *, label_set: LabelSet | None = None,
                   batch_size: int = 64, sex: str | None = None) -> np.ndarray:
    """Probabilities (N, classes) for face crops given as an array (N, H, W[, C]) or a list.

    With a SexRoutedModel each crop goes to its sex's model: ``sex`` if given, else detected.
    """
    emotion = resolve_model(model, label_set)
    crops = list(frames)
    if not crops:
        raise ValueError("predict_frames needs at least one frame")
    sexes = _crop_sexes(emotion, crops, sex)
    parts = []
    for i in range(0, len(crops), batch_size):
        batch_sexes = None if sexes is None else sexes[i : i + batch_size]
        parts.append(_route(emotion, crops[i : i + batch_size], batch_sexes))
    return np.concatenate(parts)


def predict_image(image, model=None, *, label_set: LabelSet | None = None,
                  detector: str | FaceDetector | None = None, which: str = "largest",
                  detect: bool = True, detector_threshold: float | None = None,
                  align: bool = True) -> list[ImagePrediction]:
    """Emotion of the face(s) in an image (a path or an RGB array), largest face first.

    ``detector``: a name (``"yunet"``, the default, ``"haar"``, ``"mtcnn"``) or a
    :class:`~emokeras.faces.FaceDetector`; ``detector_threshold``: its score threshold (see
    :func:`~emokeras.faces.get_detector`). ``align`` turns each face upright from its eye
    landmarks before it is classified. With ``detect=False`` the whole image is taken as the face
    crop. No face found raises ``NoFaceFoundError``.
    """
    if which not in ("largest", "all"):
        raise ConfigError(f"which must be 'largest' or 'all', got {which!r}")
    emotion = resolve_model(model, label_set)
    rgb = load_image(image) if isinstance(image, str | os.PathLike) else np.asarray(image)
    where = str(image) if isinstance(image, str | os.PathLike) else None
    if not detect:
        probs = _route(emotion, [rgb], _crop_sexes(emotion, [rgb], None))
        return [_image_prediction(probs[0], None, emotion.label_set, where)]
    # the same cropping as videos and live (largest first, the tilt refined by face_angle), so
    # a photo and a frame of the same face are classified alike
    size, framing = crop_size_for(emotion), crop_framing_for(emotion)
    found = detect_faces_and_crop(rgb, get_detector(detector, threshold=detector_threshold),
                                  size=size, margin=framing.margin, which=which, align=align,
                                  shift_y=framing.shift_y)
    if not found:
        raise NoFaceFoundError(f"no face found in {where or 'the image'}")
    crops = [face.image for face in found]
    probs = _route(emotion, crops, _crop_sexes(emotion, crops, None))
    return [
        _image_prediction(p, face.box, emotion.label_set, where)
        for p, face in zip(probs, found, strict=True)
    ]
