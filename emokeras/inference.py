"""Predict emotions in images and videos: face crops in, probabilities and one label per video out.

``predict_video`` streams: it decodes sampled frames, finds and crops the face, and classifies the
crops in batches, holding one batch of crops at a time, never the whole video.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from emokeras import aggregation
from emokeras.errors import ConfigError, NoFaceFoundError
from emokeras.faces import (
    FaceBox,
    FaceDetector,
    FaceTracker,
    crop_face,
    default_detector,
    iter_face_crops,
)
from emokeras.images import load_image, resize
from emokeras.labels import LabelSet
from emokeras.prefetch import prefetch
from emokeras.video import iter_frames

log = logging.getLogger(__name__)

#: Default sampling for videos: enough frames for a stable label at a fraction of the decode cost.
DEFAULT_TARGET_FPS = 10.0
#: Margin around the detected face box, as in ``data_prep`` (crops must look like training's).
CROP_MARGIN = 0.2


def prepare_crop(crop: np.ndarray, input_size: int, channels: int) -> np.ndarray:
    """A face crop (RGB or gray, any size) as a model with this input takes it: resized,
    converted to its channels, float32 0-255, (input_size, input_size, channels)."""
    crop = resize(crop, input_size)
    if crop.ndim == 2:
        crop = crop[..., np.newaxis]
    if channels == 1 and crop.shape[-1] == 3:
        crop = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)[..., np.newaxis]
    elif channels == 3 and crop.shape[-1] == 1:
        crop = np.repeat(crop, 3, axis=-1)
    return crop.astype(np.float32)


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

    def save(self, run_dir: str | os.PathLike[str]) -> Path:
        """Write a run folder that ``load`` reads back: model.keras and labels.json."""
        from emokeras.fileio import write_json_atomic
        from emokeras.runs import save_model_atomic

        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        save_model_atomic(self.model, run_dir / "model.keras")
        write_json_atomic(run_dir / "labels.json", {
            "label_set": self.label_set.name, "classes": list(self.label_set.classes),
        })
        return run_dir

    @property
    def input_size(self) -> int:
        return int(self.model.input_shape[1])

    @property
    def channels(self) -> int:
        return int(self.model.input_shape[-1])

    def prepare(self, crop: np.ndarray) -> np.ndarray:
        """An RGB (or gray) uint8 crop as the model takes it: its size, its channels, float32."""
        return prepare_crop(crop, self.input_size, self.channels)

    def predict(self, crops: Iterable[np.ndarray]) -> np.ndarray:
        """Probabilities (N, classes) for face crops of any size."""
        batch = np.stack([self.prepare(c) for c in crops])
        # predict_on_batch runs a traced graph without predict()'s per-call setup (which
        # dominates on the small batches a video gives); calling the model eagerly, op by op,
        # measured 10x slower for one face
        return np.asarray(self.model.predict_on_batch(batch))


@dataclass(frozen=True, eq=False)
class SexRoutedModel:
    """One EmotionModel per sex: each video (or face) goes to the model of its sex, detected or
    given. Accepted wherever a model is; ``train.py --by-sex`` writes its run folder."""

    models: dict[str, EmotionModel]

    def __post_init__(self) -> None:
        from emokeras.gender import SEXES

        if set(self.models) != set(SEXES):
            raise ConfigError(f"a sex-routed model needs one model for each of {SEXES}, "
                              f"got {sorted(self.models)}")
        classes = {m.label_set.classes for m in self.models.values()}
        if len(classes) != 1:
            raise ConfigError("the models of a sex-routed model must share one label set")

    @property
    def label_set(self) -> LabelSet:
        return next(iter(self.models.values())).label_set

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> SexRoutedModel:
        """From a run folder with ``routing.json`` ({sex: "<sex>/model.keras"})."""
        import json

        run_dir = Path(run_dir)
        routing = json.loads((run_dir / ROUTING_FILE).read_text())
        return cls({sex: EmotionModel.load(run_dir / Path(path).parent)
                    for sex, path in routing.items()})

    def save(self, run_dir: str | os.PathLike[str]) -> Path:
        from emokeras.fileio import write_json_atomic

        run_dir = Path(run_dir)
        for sex, model in self.models.items():
            model.save(run_dir / sex)
        write_json_atomic(run_dir / ROUTING_FILE,
                          {sex: f"{sex}/model.keras" for sex in self.models})
        return run_dir


#: The file that makes a run folder a sex-routed model (written by ``train.py --by-sex``).
ROUTING_FILE = "routing.json"


def resolve_model(
    model=None, label_set: LabelSet | None = None
) -> EmotionModel | SexRoutedModel:
    """An EmotionModel from: None (the bundled model), a run folder, an EmotionModel, or a
    Keras model with its ``label_set``; a SexRoutedModel, or a run folder with routing.json,
    gives a SexRoutedModel."""
    if model is None:
        from emokeras.bundled import load_bundled_model

        return EmotionModel(*load_bundled_model())
    if isinstance(model, EmotionModel | SexRoutedModel):
        return model
    if isinstance(model, str | os.PathLike):
        if (Path(model) / ROUTING_FILE).is_file():
            return SexRoutedModel.load(model)
        return EmotionModel.load(model)
    if hasattr(model, "predict") and hasattr(model, "output_shape"):
        if label_set is None:
            raise ConfigError("a Keras model needs its label_set (which class each output is)")
        return EmotionModel(model, label_set)
    raise ConfigError(
        f"model must be None (the bundled model), a run folder, an EmotionModel, a "
        f"SexRoutedModel or a Keras model, got {type(model).__name__}"
    )


def _route(emotion: EmotionModel | SexRoutedModel, crops: list[np.ndarray],
           sexes: list[str] | None) -> np.ndarray:
    """Probabilities of each crop from the model of its sex (``sexes``: one per crop, or None
    for a plain EmotionModel)."""
    if isinstance(emotion, EmotionModel):
        return emotion.predict(crops)
    out = np.empty((len(crops), len(emotion.label_set)), np.float32)
    for sex, model in emotion.models.items():
        rows = [i for i, s in enumerate(sexes) if s == sex]
        if rows:
            out[rows] = model.predict([crops[i] for i in rows])
    return out


def _crop_sexes(emotion, crops: list[np.ndarray], sex: str | None) -> list[str] | None:
    """Each crop's sex for routing: the given one, else detected per crop; None if unrouted."""
    if not isinstance(emotion, SexRoutedModel):
        return None
    from emokeras.gender import SEXES, default_sex_classifier

    if sex in SEXES:
        return [sex] * len(crops)
    return [SEXES[i] for i in default_sex_classifier().predict(crops).argmax(axis=1)]


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
    #: With an audio model (late fusion): the face-only distribution over ``class_names``; then
    #: ``scores`` and the label are the fused ones (or the face's, when the audio is unavailable)
    face_scores: np.ndarray | None = None
    #: the audio model's distribution over its own classes, ``audio_class_names``
    audio_scores: np.ndarray | None = None
    audio_class_names: tuple[str, ...] | None = None
    #: the weight of the audio in the fusion (None when no fusion happened)
    audio_weight: float | None = None
    #: why an audio model was given but not used (no audio stream, undecodable audio)
    audio_error: str | None = None

    @property
    def num_frames(self) -> int:
        """Frames that were classified (a face was found in them)."""
        return len(self.frame_indices)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "path": self.path, "label": self.label, "label_index": self.label_index,
            "emoji": self.emoji, "confidence": self.confidence, "aggregate": self.aggregate,
            "scores": dict(zip(self.class_names, map(float, self.scores), strict=True)),
            "frames_read": self.frames_read, "frames_without_face": self.frames_without_face,
            "frames_classified": self.num_frames, "sex": self.sex,
        }
        if self.face_scores is not None:
            data["face_scores"] = dict(zip(self.class_names, map(float, self.face_scores),
                                           strict=True))
        if self.audio_scores is not None:
            data["audio_scores"] = dict(zip(self.audio_class_names,
                                            map(float, self.audio_scores), strict=True))
        if self.audio_weight is not None:
            data["audio_weight"] = self.audio_weight
        if self.audio_error is not None:
            data["audio_error"] = self.audio_error
        return data


def _image_prediction(
    probs: np.ndarray, box: FaceBox | None, labels: LabelSet
) -> ImagePrediction:
    index = int(np.argmax(probs))
    return ImagePrediction(labels.classes[index], index, labels.emoji(index), probs,
                           float(probs[index]), box, labels.classes)


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
        probs = _route(emotion, [rgb], _crop_sexes(emotion, [rgb], None))
        return [_image_prediction(probs[0], None, emotion.label_set)]
    boxes = (detector or default_detector()).detect(rgb)
    if not boxes:
        where = str(image) if isinstance(image, str | os.PathLike) else "the image"
        raise NoFaceFoundError(f"no face found in {where}")
    boxes = boxes if which == "all" else boxes[:1]
    crops = [crop_face(rgb, box, size=crop_size_for(emotion), margin=CROP_MARGIN) for box in boxes]
    probs = _route(emotion, crops, _crop_sexes(emotion, crops, None))
    return [
        _image_prediction(p, box, emotion.label_set) for p, box in zip(probs, boxes, strict=True)
    ]


def crop_size_for(emotion: EmotionModel | SexRoutedModel) -> int:
    """The side to cut face crops at for this model (the largest input of a routed pair)."""
    models = emotion.models.values() if isinstance(emotion, SexRoutedModel) else [emotion]
    return max(m.input_size for m in models)


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
    track: bool = True,
    audio_model=None,
    audio_weight: float = 0.3,
) -> VideoPrediction:
    """One emotion label for a video, from the faces in its sampled frames.

    Frames are sampled by ``frame_step`` or ``target_fps`` (default 10 per second), the largest
    face of each is cropped and classified in batches of ``batch_size``, and the per-frame
    probabilities are aggregated (``sum``, ``vote`` or ``mean_logits``). ``sex="detect"``
    classifies the same face crops by sex (``sex_classifier``, default the offline one) and
    records the majority; ``"male"`` / ``"female"`` records what the caller knows. ``track``
    follows the face from frame to frame (:class:`~emokeras.faces.FaceTracker`) instead of
    searching every whole frame, which is several times faster on HD video. A video that
    cannot be read raises ``VideoReadError``; one with no face in any sampled frame
    ``NoFaceFoundError``.

    ``audio_model`` (an :class:`~emokeras.audio_inference.AudioEmotionModel` or its run folder)
    adds the speech of the same file by late fusion (:func:`~emokeras.audio_inference.fuse`,
    ``audio_weight`` in [0, 1]): the face aggregate as a distribution (``sum``: the mean of the
    frames' probabilities; ``vote``: each class's share of the frames' votes; ``mean_logits``:
    the normalised geometric mean) is mixed with the audio's, and the label comes from the
    mix. A file without usable audio keeps the face label and says why in ``audio_error``.
    """
    from emokeras.gender import SEXES, default_sex_classifier, majority_sex

    if sex not in (None, "detect", *SEXES):
        raise ConfigError(f"sex must be None, 'detect', 'female' or 'male', got {sex!r}")
    audio = None
    if audio_model is not None:
        # resolved before the video is decoded, so a bad folder or weight fails at once
        from emokeras.audio_inference import check_weight, resolve_audio_model

        audio_weight = check_weight(audio_weight)
        audio = resolve_audio_model(audio_model)
    emotion = resolve_model(model, label_set)
    routed = isinstance(emotion, SexRoutedModel)
    if routed and sex is None:
        sex = "detect"  # routing needs the sex
    sexer = (sex_classifier or default_sex_classifier()) if sex == "detect" else None
    # The sex is known only once frames are seen: a routed model scores each batch with both
    # models (cheap next to decoding and detection) so the video is still streamed, once.
    if not routed:
        candidates = {None: emotion}
    elif sex == "detect":
        candidates = dict(emotion.models)
    else:
        candidates = {sex: emotion.models[sex]}
    sampling = ({"step": frame_step} if frame_step is not None else {"target_fps": target_fps})
    frames = iter_frames(path, **sampling, max_frames=max_frames)
    detector = face_detector or default_detector()
    if track:
        detector = FaceTracker(detector)
    faces = iter_face_crops(frames, detector,
                            size=crop_size_for(emotion), margin=CROP_MARGIN, which="largest")
    probs = {key: [] for key in candidates}
    sex_probs, indices, stamps = [], [], []
    frames_read = without_face = 0
    # the next batch is decoded and its faces found while the model classifies this one
    for batch in prefetch(_batches(faces, batch_size)):
        frames_read += len(batch)
        with_face = [item for item in batch if item.crops]
        without_face += len(batch) - len(with_face)
        if with_face:
            crops = [item.crops[0].image for item in with_face]
            for key, candidate in candidates.items():
                probs[key].append(candidate.predict(crops))
            if sexer is not None:
                sex_probs.append(sexer.predict(crops))
            indices += [item.frame_index for item in with_face]
            stamps += [item.timestamp for item in with_face]
    if not indices:
        raise NoFaceFoundError(f"no face found in any of the {frames_read} sampled frames of "
                               f"{str(path)!r}")
    video_sex = majority_sex(np.concatenate(sex_probs)) if sexer is not None else sex
    chosen = video_sex if routed else None
    frame_probs = np.concatenate(probs[chosen])
    decision = aggregation.aggregate(frame_probs, aggregate)
    labels = candidates[chosen].label_set
    scores, label_index, confidence = decision.scores, decision.label_index, decision.confidence
    fusion: dict[str, Any] = {}
    if audio is not None:
        fusion = _fuse_audio(path, audio, audio_weight, decision.scores, labels)
        scores = fusion.pop("scores")
        if "audio_error" not in fusion:  # else the face's label stands, with its tie-breaking
            label_index = int(np.argmax(scores))
            confidence = float(scores[label_index])
    log.info("%s: %s (%.2f) from %d of %d frames", path, labels.classes[label_index],
             confidence, len(indices), frames_read)
    return VideoPrediction(
        path=str(path), label=labels.classes[label_index],
        label_index=label_index, emoji=labels.emoji(label_index),
        scores=scores, confidence=confidence, aggregate=aggregate,
        class_names=labels.classes, frame_probs=frame_probs, frame_indices=np.array(indices),
        timestamps=np.array(stamps), frames_read=frames_read, frames_without_face=without_face,
        sex=video_sex, **fusion,
    )


def _fuse_audio(path, audio, weight: float, face_aggregate: np.ndarray,
                labels: LabelSet) -> dict[str, Any]:
    """The fused scores and the VideoPrediction fields that record the fusion; the face's
    scores, and why, when the file's audio cannot be used."""
    from emokeras.audio_inference import fuse, predict_audio
    from emokeras.errors import AudioReadError, NoAudioError

    # every aggregate already sums to 1; dividing again guards the fusion's input all the same
    face = np.asarray(face_aggregate, dtype=np.float64)
    face = face / face.sum()
    try:
        heard = predict_audio(path, audio)
    except (NoAudioError, AudioReadError) as error:
        # the faces were seen: a silent or undecodable soundtrack should not lose that label
        log.warning("%s: audio not used, the label is the face's: %s", path, error)
        return {"scores": face, "face_scores": face, "audio_error": str(error)}
    fused = fuse(face, labels, heard.scores, audio.label_set, weight)
    return {"scores": fused, "face_scores": face, "audio_scores": heard.scores,
            "audio_class_names": heard.class_names, "audio_weight": weight}
