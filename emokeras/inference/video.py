"""Predict one emotion label for a video, from the faces in its sampled frames.

``predict_video`` streams: it decodes sampled frames, finds and crops the face, and classifies the
crops in batches, holding one batch of crops at a time, never the whole video.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from emokeras import aggregation
from emokeras.errors import ConfigError, NoFaceFoundError
from emokeras.faces import (
    FaceBox,
    FaceDetector,
    FaceTracker,
    FrameFaces,
    get_detector,
    iter_face_crops,
)
from emokeras.gender import default_sex_classifier, majority_sex
from emokeras.inference.audio import AudioEmotionModel, resolve_audio_model
from emokeras.inference.fusion import check_weight, fuse_audio
from emokeras.inference.results import FaceTrack, VideoPrediction
from emokeras.labels import SEXES, LabelSet
from emokeras.model import (
    EmotionModel,
    SexRoutedModel,
    crop_framing_for,
    crop_size_for,
    resolve_model,
)
from emokeras.prefetch import prefetch
from emokeras.tracking import IdentityTracker
from emokeras.video import Frame, iter_frames

log = logging.getLogger(__name__)

#: Default sampling for videos: enough frames for a stable label at a fraction of the decode cost.
DEFAULT_TARGET_FPS = 10.0


@dataclass(frozen=True)
class Sampling:
    """Which frames of a video are classified (:func:`emokeras.video.iter_frames` checks them).

    ``frame_step`` keeps every n-th frame and, when given, wins over ``target_fps`` (the frames
    nearest to a grid of that many per second; None: every frame). ``max_frames`` caps the
    sampled frames; ``start`` / ``end`` (seconds, end exclusive) select a window.
    """

    target_fps: float | None = DEFAULT_TARGET_FPS
    frame_step: int | None = None
    max_frames: int | None = None
    start: float | None = None
    end: float | None = None

    def frames(self, path: str | os.PathLike[str]) -> Iterator[Frame]:
        """The sampled frames of the video at ``path``."""
        pace = ({"step": self.frame_step} if self.frame_step is not None
                else {"target_fps": self.target_fps})
        return iter_frames(path, **pace, max_frames=self.max_frames, start=self.start,
                           end=self.end)


def _sampling(sampling: Sampling | None, frame_step: int | None, target_fps: float | None,
              max_frames: int | None) -> Sampling:
    """The one place the short keyword forms (``frame_step=3``) become a Sampling."""
    short = (frame_step, target_fps, max_frames)
    if sampling is None:
        return Sampling(target_fps=target_fps, frame_step=frame_step, max_frames=max_frames)
    if short != (None, DEFAULT_TARGET_FPS, None):
        raise ConfigError("give the frame sampling as sampling= or as frame_step= / "
                          "target_fps= / max_frames=, not both")
    if not isinstance(sampling, Sampling):
        raise ConfigError(f"sampling must be a Sampling, got {type(sampling).__name__}")
    return sampling


def _batches(items: Iterator, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class _Evidence:
    """What the batching loop gathers from a video (internal, filled in place)."""

    #: per candidate model (its sex, None when not routed): the probabilities of every crop
    probs: dict[str | None, list[np.ndarray]]
    #: the sex classifier's probabilities of each frame's largest face
    sex_probs: list[np.ndarray] = field(default_factory=list)
    #: with faces="all": the sex classifier's probabilities of every crop, in order
    crop_sex_probs: list[np.ndarray] = field(default_factory=list)
    #: frame index, timestamp and box of each frame's largest face, for frames with a face
    indices: list[int] = field(default_factory=list)
    stamps: list[float] = field(default_factory=list)
    boxes: list[FaceBox] = field(default_factory=list)
    #: with faces="all": every crop's (frame index, timestamp, box, track id), in order
    seen: list[tuple[int, float, FaceBox, int]] = field(default_factory=list)
    frames_read: int = 0
    without_face: int = 0


def _gather(found: Iterator[FrameFaces], candidates: dict[str | None, EmotionModel], sexer,
            batch_size: int, every_face: bool,
            progress: Callable[[int], object] | None) -> _Evidence:
    """Classify the faces of the sampled frames in batches of ``batch_size`` frames."""
    evidence = _Evidence({key: [] for key in candidates})
    identities = IdentityTracker()
    # the next batch is decoded and its faces found while the model classifies this one
    for batch in prefetch(_batches(found, batch_size)):
        evidence.frames_read += len(batch)
        if progress is not None:  # e.g. a progress bar's update: frames sampled so far
            progress(len(batch))
        with_face = [item for item in batch if item.crops]
        evidence.without_face += len(batch) - len(with_face)
        if not with_face:
            continue
        # every crop of the batch in one model call; the first of each frame is its largest
        crops = [crop.image for item in with_face for crop in item.crops]
        for key, candidate in candidates.items():
            evidence.probs[key].append(candidate.predict(crops))
        if sexer is not None and every_face and None not in candidates:
            # a routed model sends each person to their own sex's model: every crop is sexed
            every_sex = np.asarray(sexer.predict(crops))
            evidence.crop_sex_probs.append(every_sex)
            firsts = np.cumsum([0] + [len(item.crops) for item in with_face[:-1]])
            evidence.sex_probs.append(every_sex[firsts])
        elif sexer is not None:
            evidence.sex_probs.append(sexer.predict([item.crops[0].image for item in with_face]))
        evidence.indices += [item.frame_index for item in with_face]
        evidence.stamps += [item.timestamp for item in with_face]
        evidence.boxes += [item.crops[0].box for item in with_face]
        if every_face:
            for item in with_face:
                ids = identities.assign([crop.box for crop in item.crops])
                evidence.seen += [(item.frame_index, item.timestamp, crop.box, track_id)
                                  for crop, track_id in zip(item.crops, ids, strict=True)]
    return evidence


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


def _split_tracks(every_probs: np.ndarray, seen: list[tuple[int, float, FaceBox, int]],
                  method: aggregation.Method, labels: LabelSet,
                  by_sex: tuple[dict[str, np.ndarray], np.ndarray] | None = None,
                  ) -> tuple[np.ndarray, tuple[FaceTrack, ...]]:
    """The largest face's row of each frame, and one FaceTrack per track id (in id order), from
    the probabilities of every crop and its (frame index, timestamp, box, track id).
    ``by_sex`` (a routed model with the sex detected): every crop's probabilities by each sex's
    model, and every crop's sex probabilities; each track takes the rows of its own majority sex."""
    rows: dict[int, list] = {}
    crops_of: dict[int, list[int]] = {}
    largest, last_frame = [], None
    for i, (row, (frame_index, stamp, box, track_id)) in enumerate(
            zip(every_probs, seen, strict=True)):
        rows.setdefault(track_id, []).append((frame_index, stamp, box, row))
        crops_of.setdefault(track_id, []).append(i)
        if frame_index != last_frame:  # a frame's crops come largest first
            largest.append(row)
            last_frame = frame_index
    if by_sex is not None:
        probs_by_sex, sex_probs = by_sex
        for track_id, picks in crops_of.items():
            own = probs_by_sex[majority_sex(sex_probs[picks])][picks]
            rows[track_id] = [(*row[:3], probs) for row, probs in
                              zip(rows[track_id], own, strict=True)]
    tracks = tuple(_face_track(track_id, rows[track_id], method, labels)
                   for track_id in sorted(rows))
    return np.stack(largest), tracks


def _tracks(evidence: _Evidence, every_probs: np.ndarray, every_face: bool,
            method: aggregation.Method,
            labels: LabelSet) -> tuple[np.ndarray, tuple[FaceTrack, ...]]:
    """The largest face's row of each frame, and the video's face tracks."""
    if every_face:
        by_sex = None
        if evidence.crop_sex_probs and None not in evidence.probs:  # routed, sex detected
            by_sex = ({key: np.concatenate(parts) for key, parts in evidence.probs.items()},
                      np.concatenate(evidence.crop_sex_probs))
        return _split_tracks(every_probs, evidence.seen, method, labels, by_sex)
    rows = list(zip(evidence.indices, evidence.stamps, evidence.boxes, every_probs, strict=True))
    return every_probs, (_face_track(0, rows, method, labels),)


def _candidates(emotion: EmotionModel | SexRoutedModel,
                sex: str | None) -> tuple[str | None, dict[str | None, EmotionModel]]:
    """The sex to record or detect, and the models to score each batch with, by sex."""
    if not isinstance(emotion, SexRoutedModel):
        return sex, {None: emotion}
    # The sex is known only once frames are seen: a routed model scores each batch with both
    # models (cheap next to decoding and detection) so the video is still streamed, once.
    if sex is None or sex == "detect":  # routing needs the sex
        return "detect", dict(emotion.models)
    return sex, {sex: emotion.models[sex]}


def _face_finder(detector, face_detector, threshold: float | None) -> FaceDetector:
    if face_detector is not None and detector is not None:
        raise ConfigError("give the detector as detector= (face_detector= is its older name), "
                          "not both")
    return get_detector(detector if detector is not None else face_detector, threshold=threshold)


def predict_video(
    path: str | os.PathLike[str],
    model=None,
    *,
    label_set: LabelSet | None = None,
    aggregate: aggregation.Method = "sum",
    sampling: Sampling | None = None,
    frame_step: int | None = None,
    target_fps: float | None = DEFAULT_TARGET_FPS,
    max_frames: int | None = None,
    face_detector: FaceDetector | None = None,
    batch_size: int = 32,
    sex: str | None = None,
    sex_classifier=None,
    track: bool = True,
    audio_model: AudioEmotionModel | str | os.PathLike[str] | None = None,
    audio_weight: float = 0.3,
    detector: str | FaceDetector | None = None,
    detector_threshold: float | None = None,
    faces: str = "largest",
    align: bool = True,
    progress: Callable[[int], object] | None = None,
) -> VideoPrediction:
    """One emotion label for a video, from the faces in its sampled frames.

    Frames are sampled by ``sampling`` (a :class:`Sampling`), or by its short forms
    ``frame_step``, ``target_fps`` (default 10 per second) and ``max_frames``; the largest
    face of each is cropped and classified in batches of ``batch_size``, and the per-frame
    probabilities are aggregated (``sum``, ``vote`` or ``mean_logits``). ``sex="detect"``
    classifies the same face crops by sex (``sex_classifier``, default the offline one) and
    records the majority (with ``faces="all"`` and a sex-routed model, each track is classified
    by the model of its own majority sex); ``"male"`` / ``"female"`` records what the caller
    knows. ``track`` follows the face from frame to frame
    (:class:`~emokeras.faces.FaceTracker`) instead of searching every whole frame, which is
    several times faster on HD video. A video that
    cannot be read raises ``VideoReadError``; one with no face in any sampled frame
    ``NoFaceFoundError``.

    ``progress``, if given, is called with the number of frames sampled after each batch (a
    progress bar's ``update``).

    ``audio_model`` (an :class:`~emokeras.inference.audio.AudioEmotionModel` or its run folder)
    adds the speech of the same file by late fusion (:func:`~emokeras.inference.fusion.fuse`,
    ``audio_weight`` in [0, 1]): the face aggregate as a distribution (``sum``: the mean of the
    frames' probabilities; ``vote``: each class's share of the frames' votes; ``mean_logits``:
    the normalised geometric mean) is mixed with the audio's, and the label comes from the
    mix. ``fusion`` records it (:class:`~emokeras.inference.results.Fusion`). A file without
    usable audio keeps the face label and says why in ``audio_error``.

    ``detector``: a name (``"yunet"``, the default, ``"haar"``, ``"mtcnn"``) or a
    :class:`~emokeras.faces.FaceDetector` (``face_detector`` is its older name);
    ``detector_threshold`` its score threshold. ``align`` turns each face upright from its eye
    landmarks before it is classified. ``faces="all"`` classifies every face of every sampled
    frame and follows each across frames (:class:`~emokeras.tracking.IdentityTracker`):
    ``tracks`` then holds one :class:`FaceTrack` per person, with its own label, while the
    video's label and ``frame_probs`` stay those of the largest face in each frame. With
    ``faces="largest"`` (the default) ``tracks`` is one track of the largest face.
    """
    sampling = _sampling(sampling, frame_step, target_fps, max_frames)
    if faces not in ("largest", "all"):
        raise ConfigError(f"faces must be 'largest' or 'all', got {faces!r}")
    found_by = _face_finder(detector, face_detector, detector_threshold)
    if sex not in (None, "detect", *SEXES):
        raise ConfigError(f"sex must be None, 'detect', 'female' or 'male', got {sex!r}")
    audio = None
    if audio_model is not None:  # resolved before the video is decoded: a bad one fails at once
        audio_weight = check_weight(audio_weight)
        audio = resolve_audio_model(audio_model)
    emotion = resolve_model(model, label_set)
    sex, candidates = _candidates(emotion, sex)
    sexer = (sex_classifier or default_sex_classifier()) if sex == "detect" else None
    every_face = faces == "all"
    # FaceTracker follows one face by searching near its last box; every face needs full frames
    if track and not every_face:
        found_by = FaceTracker(found_by)
    framing = crop_framing_for(emotion)
    found = iter_face_crops(sampling.frames(path), found_by, size=crop_size_for(emotion),
                            margin=framing.margin, shift_y=framing.shift_y, which=faces,
                            align=align)
    evidence = _gather(found, candidates, sexer, batch_size, every_face, progress)
    if not evidence.indices:
        raise NoFaceFoundError(f"no face found in any of the {evidence.frames_read} sampled "
                               f"frames of {str(path)!r}")
    video_sex = majority_sex(np.concatenate(evidence.sex_probs)) if sexer is not None else sex
    chosen = video_sex if isinstance(emotion, SexRoutedModel) else None
    labels = candidates[chosen].label_set
    frame_probs, tracks = _tracks(evidence, np.concatenate(evidence.probs[chosen]), every_face,
                                  aggregate, labels)
    decision = aggregation.aggregate(frame_probs, aggregate)
    scores, index, confidence = decision.scores, decision.label_index, decision.confidence
    fusion = None
    if audio is not None:
        fusion = fuse_audio(path, audio, audio_weight, decision.scores, labels)
        scores = fusion.fused
        if fusion.used_audio:  # else the face's label stands, with its tie-breaking
            index = int(np.argmax(scores))
            confidence = float(scores[index])
    log.info("%s: %s (%.2f) from %d of %d frames", path, labels.classes[index], confidence,
             len(evidence.indices), evidence.frames_read)
    return VideoPrediction(
        path=str(path), label=labels.classes[index], label_index=index,
        emoji=labels.emoji(index), probabilities=scores, confidence=confidence,
        aggregate=aggregate, class_names=labels.classes, frame_probs=frame_probs,
        frame_indices=np.array(evidence.indices), timestamps=np.array(evidence.stamps),
        frames_read=evidence.frames_read, frames_without_face=evidence.without_face,
        sex=video_sex, fusion=fusion, frame_boxes=tuple(evidence.boxes), tracks=tracks,
    )
