"""Late fusion of a video's face aggregate with its speech.

Fusion is late: the face model and the audio model each give a distribution over their own
classes, and :func:`fuse` mixes them onto the face model's classes. The two label sets meet by
canonical emotion (:meth:`~emokeras.labels.LabelSet.mapping_to`). A face class the audio model
does not have (RAVDESS "calm", "angry" or "disgust" against SPEECH5) gets no audio evidence, for or
against: the audio distribution on the face's classes gives such a class the face's own
probability, and shares the rest of the mass (what the face gives the shared classes) among the
shared classes in the audio model's proportions. So the audio can only reorder the classes it
can hear; a class it cannot hear is neither pushed down (as giving it audio probability 0 would
do, however sure the face is) nor propped up (as spreading leftover mass uniformly would do).
Audio mass on classes the face model lacks (SPEECH5 has none against RAVDESS; a RAVDESS audio
model's "calm" against FER2013) says nothing about the face's classes and is dropped, by
renormalising the audio over the shared classes.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from emokeras.errors import AudioReadError, ConfigError, NoAudioError
from emokeras.inference.audio import AudioEmotionModel, predict_audio
from emokeras.inference.results import Fusion
from emokeras.labels import LabelSet

__all__ = ["DEFAULT_AUDIO_WEIGHT", "Fusion", "audio_on_face_classes", "check_weight", "fuse",
           "fuse_audio"]

log = logging.getLogger(__name__)

DEFAULT_AUDIO_WEIGHT = 0.3


def check_weight(weight: float) -> float:
    """The audio weight as a float in [0, 1], else ``ConfigError``."""
    try:
        value = float(weight)
    except (TypeError, ValueError):
        raise ConfigError(f"the audio weight must be a number in [0, 1], got {weight!r}") from None
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise ConfigError(f"the audio weight must be in [0, 1], got {weight!r}")
    return value


def _distribution(scores, labels: LabelSet, what: str) -> np.ndarray:
    values = np.asarray(scores, dtype=np.float64)
    if values.shape != (len(labels),):
        raise ConfigError(f"{what} scores must have shape ({len(labels)},) for label set "
                          f"{labels.name!r}, got {values.shape}")
    if not np.all(np.isfinite(values)) or np.any(values < 0) or values.sum() <= 0:
        raise ConfigError(f"{what} scores must be finite, non-negative and not all 0")
    return values / values.sum()


def audio_on_face_classes(face_scores, face_labels: LabelSet, audio_scores,
                          audio_labels: LabelSet) -> np.ndarray:
    """The audio distribution carried onto the face model's classes (see the module's
    docstring): shared classes split the face's shared mass in the audio's proportions; face
    classes the audio lacks keep the face's probability."""
    face = _distribution(face_scores, face_labels, "face")
    audio = _distribution(audio_scores, audio_labels, "audio")
    mapping = audio_labels.mapping_to(face_labels)
    if not mapping:
        raise ConfigError(
            f"the face label set {face_labels.name!r} {list(face_labels.canonical)} and the audio "
            f"label set {audio_labels.name!r} {list(audio_labels.canonical)} share no emotion"
        )
    on_face = np.zeros_like(face)
    np.add.at(on_face, list(mapping.values()), audio[list(mapping)])
    shared = np.zeros(len(face), dtype=bool)
    shared[list(mapping.values())] = True
    audio_shared = on_face.sum()
    if audio_shared <= 0:  # all the audio's mass is on classes the face lacks: no evidence
        return face
    result = face.copy()
    result[shared] = on_face[shared] / audio_shared * face[shared].sum()
    return result


def fuse(face_scores, face_labels: LabelSet, audio_scores, audio_labels: LabelSet,
         weight: float = DEFAULT_AUDIO_WEIGHT) -> np.ndarray:
    """Late fusion onto the face model's classes: ``(1 - weight) * face + weight * audio``, with
    the audio carried onto the face's classes by :func:`audio_on_face_classes`; renormalised.

    ``weight`` 0 gives the face distribution exactly, 1 the carried audio distribution. Two label
    sets that share no emotion, or a weight outside [0, 1], raise ``ConfigError``.
    """
    weight = check_weight(weight)
    audio = audio_on_face_classes(face_scores, face_labels, audio_scores, audio_labels)
    face = _distribution(face_scores, face_labels, "face")
    if weight == 0.0:
        return face
    if weight == 1.0:
        return audio
    fused = (1.0 - weight) * face + weight * audio
    return fused / fused.sum()


def fuse_audio(path: str | os.PathLike[str], audio: AudioEmotionModel, weight: float,
               face_aggregate: np.ndarray, labels: LabelSet) -> Fusion:
    """A video's face aggregate fused with the speech of the same file; the face's scores, and
    why, when the file's audio cannot be used."""
    # every aggregate already sums to 1; dividing again guards the fusion's input all the same
    face = np.asarray(face_aggregate, dtype=np.float64)
    face = face / face.sum()
    try:
        heard = predict_audio(path, audio)
    except (NoAudioError, AudioReadError) as error:
        # the faces were seen: a silent or undecodable soundtrack should not lose that label
        log.warning("%s: audio not used, the label is the face's: %s", path, error)
        return Fusion(labels.classes, face_scores=face, fused=face, audio_error=str(error))
    fused = fuse(face, labels, heard.probabilities, audio.label_set, weight)
    return Fusion(labels.classes, face_scores=face, fused=fused,
                  audio_scores=heard.probabilities, audio_class_names=heard.class_names,
                  weight=weight)
