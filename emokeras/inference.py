"""Predict emotions in images and videos: face crops in, probabilities and one label per video out.

``predict_video`` streams: it decodes sampled frames, finds and crops the face, and classifies the
crops in batches, holding one batch of crops at a time, never the whole video.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from emokeras import aggregation
from emokeras.errors import ConfigError, NoFaceFoundError
from emokeras.faces import FaceBox, FaceDetector, crop_face, default_detector, iter_face_crops
from emokeras.images import load_image
from emokeras.labels import LabelSet
from emokeras.video import iter_frames

log = logging.getLogger(__name__)

#: Default sampling for videos: enough frames for a stable label at a fraction of the decode cost.
DEFAULT_TARGET_FPS = 10.0
#: Margin around the detected face box, as in ``data_prep`` (crops must look like training's).
CROP_MARGIN = 0.2


@dataclass(frozen=True, eq=False)
class EmotionModel:
    """A Keras classifier (raw pixels in, probabilities out) with the label set of its outputs."""

    model: Any  # keras.Model; typed loosely so importing this module does not import Keras
    label_set: LabelSet

    def __post_init__(self) -> None:
        classes = self.model.output_shape[-1]
        if classes != len(self.label_set):
            raise ConfigError(
                f"the model has {classes} outputs but label set {self.label_set.name!r} has "
                f"{len(self.label_set)} classes"
            )

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> EmotionModel:
        """From a run folder written by ``train.py`` (model.keras + labels.json)."""
        from emokeras.runs import load_run

        model, label_set = load_run(run_dir)
        return cls(model, label_set)

    @property
    def input_size(self) -> int:
        return int(self.model.input_shape[1])

    @property
    def channels(self) -> int:
        return int(self.model.input_shape[-1])

    def prepare(self, crop: np.ndarray) -> np.ndarray:
        """An RGB (or gray) uint8 crop as the model takes it: its size, its channels, float32."""
        if crop.shape[:2] != (self.input_size, self.input_size):
            shrink = crop.shape[0] > self.input_size
            crop = cv2.resize(crop, (self.input_size, self.input_size),
                              interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        if crop.ndim == 2:
            crop = crop[..., np.newaxis]
        if self.channels == 1 and crop.shape[-1] == 3:
            crop = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)[..., np.newaxis]
        elif self.channels == 3 and crop.shape[-1] == 1:
            crop = np.repeat(crop, 3, axis=-1)
        return crop.astype(np.float32)

    def predict(self, crops: Iterable[np.ndarray]) -> np.ndarray:
        """Probabilities (N, classes) for face crops of any size."""
        batch = np.stack([self.prepare(c) for c in crops])
        # calling the model directly avoids predict()'s per-call setup, which dominates on
        # the small batches a video gives
        return np.asarray(self.model(batch, training=False))


def resolve_model(model=None, label_set: LabelSet | None = None) -> EmotionModel:
    """An EmotionModel from: None (the bundled model), a run folder, an EmotionModel, or a
    Keras model with its ``label_set``."""
    if model is None:
        from emokeras.bundled import load_bundled_model

        return EmotionModel(*load_bundled_model())
    if isinstance(model, EmotionModel):
        return model
    if isinstance(model, str | os.PathLike):
        return EmotionModel.load(model)
    if hasattr(model, "predict") and hasattr(model, "output_shape"):
        if label_set is None:
            raise ConfigError("a Keras model needs its label_set (which class each output is)")
        return EmotionModel(model, label_set)
    raise ConfigError(
        f"model must be None (the bundled model), a run folder, an EmotionModel or a Keras "
        f"model, got {type(model).__name__}"
    )


@dataclass(frozen=True, eq=False)
class ImagePrediction:
    """The emotion of one face: label, per-class scores, confidence, and where the face was."""

    label: str
    label_index: int
    emoji: str
    scores: np.ndarray
    confidence: float
    box: FaceBox | None  # None when the image was classified whole (detect=False)
    class_names: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class VideoPrediction:
    """One label for a video, with the per-frame evidence behind it.

    ``frame_probs`` has a row for each sampled frame in which a face was found, in order, with
    its ``frame_indices`` and ``timestamps`` (seconds). ``frames_read`` counts sampled frames,
    ``frames_without_face`` those in which no face was found.
    """

    path: str
    label: str
    label_index: int
    emoji: str
    scores: np.ndarray
    confidence: float
    aggregate: str
    class_names: tuple[str, ...]
    frame_probs: np.ndarray
    frame_indices: np.ndarray
    timestamps: np.ndarray
    frames_read: int
    frames_without_face: int
    #: "female" / "male": given by the caller, or detected (the majority over the frames)
    sex: str | None = None

    @property
    def num_frames(self) -> int:
        """Frames that were classified (a face was found in them)."""
        return len(self.frame_indices)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "label": self.label, "label_index": self.label_index,
            "emoji": self.emoji, "confidence": self.confidence, "aggregate": self.aggregate,
            "scores": dict(zip(self.class_names, map(float, self.scores), strict=True)),
            "frames_read": self.frames_read, "frames_without_face": self.frames_without_face,
            "frames_classified": self.num_frames, "sex": self.sex,
        }


def _image_prediction(
    probs: np.ndarray, box: FaceBox | None, labels: LabelSet
) -> ImagePrediction:
    index = int(np.argmax(probs))
    return ImagePrediction(labels.classes[index], index, labels.emoji(index), probs,
                           float(probs[index]), box, labels.classes)


def predict_frames(frames, model=None, *, label_set: LabelSet | None = None,
                   batch_size: int = 64) -> np.ndarray:
    """Probabilities (N, classes) for face crops given as an array (N, H, W[, C]) or a list."""
    emotion = resolve_model(model, label_set)
    crops = list(frames)
    if not crops:
        raise ValueError("predict_frames needs at least one frame")
    return np.concatenate([emotion.predict(crops[i : i + batch_size])
                           for i in range(0, len(crops), batch_size)])


def predict_image(image, model=None, *, label_set: LabelSet | None = None,
                  detector: FaceDetector | None = None, which: str = "largest",
                  detect: bool = True) -> list[ImagePrediction]:
    """Emotion of the face(s) in an image (a path or an RGB array), largest face first.

    With ``detect=False`` the whole image is taken as the face crop. No face found raises
    ``NoFaceFoundError``.
    """
    if which not in ("largest", "all"):
        raise ConfigError(f"which must be 'largest' or 'all', got {which!r}")
    emotion = resolve_model(model, label_set)
    rgb = load_image(image) if isinstance(image, str | os.PathLike) else np.asarray(image)
    if not detect:
        return [_image_prediction(emotion.predict([rgb])[0], None, emotion.label_set)]
    boxes = (detector or default_detector()).detect(rgb)
    if not boxes:
        where = str(image) if isinstance(image, str | os.PathLike) else "the image"
        raise NoFaceFoundError(f"no face found in {where}")
    boxes = boxes if which == "all" else boxes[:1]
    crops = [crop_face(rgb, box, size=emotion.input_size, margin=CROP_MARGIN) for box in boxes]
    probs = emotion.predict(crops)
    return [
        _image_prediction(p, box, emotion.label_set) for p, box in zip(probs, boxes, strict=True)
    ]


def _batches(items: Iterator, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def predict_video(
    path: str | os.PathLike[str],
    model=None,
    *,
    label_set: LabelSet | None = None,
    aggregate: aggregation.Method = "sum",
    frame_step: int | None = None,
    target_fps: float | None = DEFAULT_TARGET_FPS,
    max_frames: int | None = None,
    face_detector: FaceDetector | None = None,
    batch_size: int = 32,
    sex: str | None = None,
    sex_classifier=None,
) -> VideoPrediction:
    """One emotion label for a video, from the faces in its sampled frames.

    Frames are sampled by ``frame_step`` or ``target_fps`` (default 10 per second), the largest
    face of each is cropped and classified in batches of ``batch_size``, and the per-frame
    probabilities are aggregated (``sum``, ``vote`` or ``mean_logits``). ``sex="detect"``
    classifies the same face crops by sex (``sex_classifier``, default the offline one) and
    records the majority; ``"male"`` / ``"female"`` records what the caller knows. A video that
    cannot be read raises ``VideoReadError``; one with no face in any sampled frame
    ``NoFaceFoundError``.
    """
    from emokeras.gender import SEXES, default_sex_classifier, majority_sex

    if sex not in (None, "detect", *SEXES):
        raise ConfigError(f"sex must be None, 'detect', 'female' or 'male', got {sex!r}")
    sexer = (sex_classifier or default_sex_classifier()) if sex == "detect" else None
    emotion = resolve_model(model, label_set)
    sampling = ({"step": frame_step} if frame_step is not None else {"target_fps": target_fps})
    frames = iter_frames(path, **sampling, max_frames=max_frames)
    faces = iter_face_crops(frames, face_detector or default_detector(),
                            size=emotion.input_size, margin=CROP_MARGIN, which="largest")
    probs, sex_probs, indices, stamps = [], [], [], []
    frames_read = without_face = 0
    for batch in _batches(faces, batch_size):
        frames_read += len(batch)
        with_face = [item for item in batch if item.crops]
        without_face += len(batch) - len(with_face)
        if with_face:
            crops = [item.crops[0].image for item in with_face]
            probs.append(emotion.predict(crops))
            if sexer is not None:
                sex_probs.append(sexer.predict(crops))
            indices += [item.frame_index for item in with_face]
            stamps += [item.timestamp for item in with_face]
    if not indices:
        raise NoFaceFoundError(f"no face found in any of the {frames_read} sampled frames of "
                               f"{str(path)!r}")
    frame_probs = np.concatenate(probs)
    decision = aggregation.aggregate(frame_probs, aggregate)
    labels = emotion.label_set
    log.info("%s: %s (%.2f) from %d of %d frames", path, labels.classes[decision.label_index],
             decision.confidence, len(indices), frames_read)
    return VideoPrediction(
        path=str(path), label=labels.classes[decision.label_index],
        label_index=decision.label_index, emoji=labels.emoji(decision.label_index),
        scores=decision.scores, confidence=decision.confidence, aggregate=aggregate,
        class_names=labels.classes, frame_probs=frame_probs, frame_indices=np.array(indices),
        timestamps=np.array(stamps), frames_read=frames_read, frames_without_face=without_face,
        sex=majority_sex(np.concatenate(sex_probs)) if sexer is not None else sex,
    )
