"""Predict emotions in images and videos: face crops in, probabilities and one label per video out.

``predict_video`` streams: it decodes sampled frames, finds and crops the face, and classifies the
crops in batches, holding one batch of crops at a time, never the whole video.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from emokeras import aggregation
from emokeras.errors import ConfigError, NoFaceFoundError
from emokeras.faces import (
    FaceBox,
    FaceDetector,
    FaceTracker,
    crop_face,
    get_detector,
    iter_face_crops,
)
from emokeras.images import load_image
from emokeras.labels import LabelSet

# The model objects live in emokeras.model; imported here for inference's own use and so that
# ``from emokeras.inference import EmotionModel`` (and the rest) keeps working.
from emokeras.model import (  # noqa: F401
    EmotionModel,
    SexRoutedModel,
    crop_size_for,
    resolve_model,
)
from emokeras.model import crop_sexes as _crop_sexes
from emokeras.model import route as _route
from emokeras.prefetch import prefetch
from emokeras.results import ResultMixin, VideoTableMixin
from emokeras.tracking import IdentityTracker
from emokeras.video import iter_frames

log = logging.getLogger(__name__)

#: Default sampling for videos: enough frames for a stable label at a fraction of the decode cost.
DEFAULT_TARGET_FPS = 10.0
#: Margin around the detected face box, as in ``data_prep`` (crops must look like training's).
CROP_MARGIN = 0.2


@dataclass(frozen=True, eq=False, repr=False)
class ImagePrediction(ResultMixin):
    """The emotion of one face: label, class probabilities (``probabilities``, and ``scores``
    as a mapping class -> probability), confidence, and where the face was."""

    label: str
    label_index: int
    emoji: str
    probabilities: np.ndarray
    confidence: float
    box: FaceBox | None  # None when the image was classified whole (detect=False)
    class_names: tuple[str, ...]
    #: the image file, when the image was given as a path
    path: str | None = None


@dataclass(frozen=True, eq=False, repr=False)
class FaceTrack(ResultMixin):
    """One person's face through a video: where it was in each sampled frame, what each frame
    said, and its own label, aggregated over its frames as the video's is.

    ``frame_indices``, ``timestamps`` (seconds), ``boxes`` and the rows of ``frame_probs``
    (n, classes) are aligned: one per sampled frame in which this face was found.
    """

    track_id: int
    frame_indices: np.ndarray
    timestamps: np.ndarray
    boxes: tuple[FaceBox, ...]
    frame_probs: np.ndarray
    label: str
    label_index: int
    emoji: str
    probabilities: np.ndarray
    confidence: float
    class_names: tuple[str, ...]

    @property
    def num_frames(self) -> int:
        return len(self.frame_indices)


def _face_track(track_id: int, rows: list[tuple[int, float, FaceBox, np.ndarray]],
                method: aggregation.Method, labels: LabelSet) -> FaceTrack:
    """A FaceTrack from its (frame index, timestamp, box, probabilities) rows, in frame order."""
    probs = np.stack([row[3] for row in rows])
    decision = aggregation.aggregate(probs, method)
    index = decision.label_index
    return FaceTrack(
        track_id=track_id, frame_indices=np.array([row[0] for row in rows], dtype=np.int64),
        timestamps=np.array([row[1] for row in rows], dtype=np.float64),
        boxes=tuple(row[2] for row in rows), frame_probs=probs, label=labels.classes[index],
        label_index=index, emoji=labels.emoji(index), probabilities=decision.scores,
        confidence=decision.confidence, class_names=labels.classes)


@dataclass(frozen=True, eq=False, repr=False)
class VideoPrediction(ResultMixin, VideoTableMixin):
    """One label for a video, with the per-frame evidence behind it.

    ``probabilities`` are the video's class probabilities (``scores``: the same as a mapping
    class -> probability); ``to_frame()`` and ``summary()`` give pandas tables.

    ``frame_probs`` has a row for each sampled frame in which a face was found, in order, with
    its ``frame_indices`` and ``timestamps`` (seconds). ``frames_read`` counts sampled frames,
    ``frames_without_face`` those in which no face was found.
    """

    path: str
    label: str
    label_index: int
    emoji: str
    probabilities: np.ndarray
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
    #: ``probabilities`` and the label are the fused ones (or the face's, when the audio is
    #: unavailable)
    face_scores: np.ndarray | None = None
    #: the audio model's distribution over its own classes, ``audio_class_names``
    audio_scores: np.ndarray | None = None
    audio_class_names: tuple[str, ...] | None = None
    #: the weight of the audio in the fusion (None when no fusion happened)
    audio_weight: float | None = None
    #: why an audio model was given but not used (no audio stream, undecodable audio)
    audio_error: str | None = None
    #: the box of the classified face in each row of ``frame_probs`` (the largest face)
    frame_boxes: tuple[FaceBox, ...] = ()
    #: one FaceTrack per person: with ``faces="all"`` every face followed through the video (ids
    #: from 0 in order of appearance); with ``faces="largest"`` one track, id 0, of the same
    #: frames as ``frame_probs``
    tracks: tuple[FaceTrack, ...] = ()

    @property
    def num_frames(self) -> int:
        """Frames that were classified (a face was found in them)."""
        return len(self.frame_indices)

    _score_fields = {"probabilities": "class_names", "face_scores": "class_names",
                     "audio_scores": "audio_class_names"}
    _omit_if_none = ("face_scores", "audio_scores", "audio_class_names", "audio_weight",
                     "audio_error")

    def _dict_extras(self) -> dict[str, Any]:
        return {"frames_classified": self.num_frames}


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
    boxes = get_detector(detector, threshold=detector_threshold).detect(rgb)
    if not boxes:
        raise NoFaceFoundError(f"no face found in {where or 'the image'}")
    boxes = boxes if which == "all" else boxes[:1]
    crops = [crop_face(rgb, box, size=crop_size_for(emotion), margin=CROP_MARGIN, align=align)
             for box in boxes]
    probs = _route(emotion, crops, _crop_sexes(emotion, crops, None))
    return [
        _image_prediction(p, box, emotion.label_set, where)
        for p, box in zip(probs, boxes, strict=True)
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
    track: bool = True,
    audio_model=None,
    audio_weight: float = 0.3,
    detector: str | FaceDetector | None = None,
    detector_threshold: float | None = None,
    faces: str = "largest",
    align: bool = True,
    progress: Callable[[int], object] | None = None,
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

    ``progress``, if given, is called with the number of frames sampled after each batch (a
    progress bar's ``update``).

    ``audio_model`` (an :class:`~emokeras.audio_inference.AudioEmotionModel` or its run folder)
    adds the speech of the same file by late fusion (:func:`~emokeras.audio_inference.fuse`,
    ``audio_weight`` in [0, 1]): the face aggregate as a distribution (``sum``: the mean of the
    frames' probabilities; ``vote``: each class's share of the frames' votes; ``mean_logits``:
    the normalised geometric mean) is mixed with the audio's, and the label comes from the
    mix. A file without usable audio keeps the face label and says why in ``audio_error``.

    ``detector``: a name (``"yunet"``, the default, ``"haar"``, ``"mtcnn"``) or a
    :class:`~emokeras.faces.FaceDetector` (``face_detector`` is its older name);
    ``detector_threshold`` its score threshold. ``align`` turns each face upright from its eye
    landmarks before it is classified. ``faces="all"`` classifies every face of every sampled
    frame and follows each across frames (:class:`~emokeras.tracking.IdentityTracker`):
    ``tracks`` then holds one :class:`FaceTrack` per person, with its own label, while the
    video's label and ``frame_probs`` stay those of the largest face in each frame. With
    ``faces="largest"`` (the default) ``tracks`` is one track of the largest face.
    """
    from emokeras.gender import SEXES, default_sex_classifier, majority_sex

    if faces not in ("largest", "all"):
        raise ConfigError(f"faces must be 'largest' or 'all', got {faces!r}")
    if face_detector is not None and detector is not None:
        raise ConfigError("give the detector as detector= (face_detector= is its older name), "
                          "not both")
    found_by = get_detector(detector if detector is not None else face_detector,
                            threshold=detector_threshold)

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
    every_face = faces == "all"
    # FaceTracker follows one face by searching near its last box; every face needs full frames
    if track and not every_face:
        found_by = FaceTracker(found_by)
    found = iter_face_crops(frames, found_by, size=crop_size_for(emotion), margin=CROP_MARGIN,
                            which=faces, align=align)
    probs = {key: [] for key in candidates}
    sex_probs, indices, stamps, boxes = [], [], [], []
    # with faces="all": every crop's (frame index, timestamp, box, track id), in order
    identities = IdentityTracker()
    seen: list[tuple[int, float, FaceBox, int]] = []
    frames_read = without_face = 0
    # the next batch is decoded and its faces found while the model classifies this one
    for batch in prefetch(_batches(found, batch_size)):
        frames_read += len(batch)
        if progress is not None:  # e.g. a progress bar's update: frames sampled so far
            progress(len(batch))
        with_face = [item for item in batch if item.crops]
        without_face += len(batch) - len(with_face)
        if with_face:
            # every crop of the batch in one model call; the first of each frame is its largest
            crops = [crop.image for item in with_face for crop in item.crops]
            for key, candidate in candidates.items():
                probs[key].append(candidate.predict(crops))
            largest = [item.crops[0].image for item in with_face]
            if sexer is not None:
                sex_probs.append(sexer.predict(largest))
            indices += [item.frame_index for item in with_face]
            stamps += [item.timestamp for item in with_face]
            boxes += [item.crops[0].box for item in with_face]
            if every_face:
                for item in with_face:
                    ids = identities.assign([crop.box for crop in item.crops])
                    seen += [(item.frame_index, item.timestamp, crop.box, track_id)
                             for crop, track_id in zip(item.crops, ids, strict=True)]
    if not indices:
        raise NoFaceFoundError(f"no face found in any of the {frames_read} sampled frames of "
                               f"{str(path)!r}")
    video_sex = majority_sex(np.concatenate(sex_probs)) if sexer is not None else sex
    chosen = video_sex if routed else None
    every_probs = np.concatenate(probs[chosen])
    labels = candidates[chosen].label_set
    if every_face:
        frame_probs, tracks = _split_tracks(every_probs, seen, aggregate, labels)
    else:
        frame_probs = every_probs
        tracks = (_face_track(0, list(zip(indices, stamps, boxes, frame_probs, strict=True)),
                              aggregate, labels),)
    decision = aggregation.aggregate(frame_probs, aggregate)
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
        probabilities=scores, confidence=confidence, aggregate=aggregate,
        class_names=labels.classes, frame_probs=frame_probs, frame_indices=np.array(indices),
        timestamps=np.array(stamps), frames_read=frames_read, frames_without_face=without_face,
        sex=video_sex, frame_boxes=tuple(boxes), tracks=tracks, **fusion,
    )


def _split_tracks(every_probs: np.ndarray, seen: list[tuple[int, float, FaceBox, int]],
                  method: aggregation.Method,
                  labels: LabelSet) -> tuple[np.ndarray, tuple[FaceTrack, ...]]:
    """The largest face's row of each frame, and one FaceTrack per track id (in id order), from
    the probabilities of every crop and its (frame index, timestamp, box, track id)."""
    rows: dict[int, list] = {}
    largest, last_frame = [], None
    for row, (frame_index, stamp, box, track_id) in zip(every_probs, seen, strict=True):
        rows.setdefault(track_id, []).append((frame_index, stamp, box, row))
        if frame_index != last_frame:  # a frame's crops come largest first
            largest.append(row)
            last_frame = frame_index
    tracks = tuple(_face_track(track_id, rows[track_id], method, labels)
                   for track_id in sorted(rows))
    return np.stack(largest), tracks


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
    fused = fuse(face, labels, heard.probabilities, audio.label_set, weight)
    return {"scores": fused, "face_scores": face, "audio_scores": heard.probabilities,
            "audio_class_names": heard.class_names, "audio_weight": weight}
