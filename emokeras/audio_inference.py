"""Speech emotion from a clip's audio, and late fusion of it with the face model's video label.

An audio model is an image classifier over spectrograms: the clip's waveform becomes uint8
log-mel images (:func:`emokeras.audio.spectrogram_windows`, one per ``duration`` of audio), which
go through the same preparation as face crops (:func:`emokeras.model.prepare_crop`) and a
one-channel Keras classifier. The clip's probabilities are the mean over its windows. A run
folder of an audio model is an ordinary run folder (model.keras, labels.json) plus
``spectrogram.json``, the :class:`~emokeras.audio.SpectrogramConfig` it was trained on: the
images must be computed exactly as in training, so the config travels with the model.

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

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emokeras.audio import SpectrogramConfig, load_audio, spectrogram_windows
from emokeras.errors import ConfigError, RunFolderError
from emokeras.fileio import write_json_atomic
from emokeras.labels import LabelSet
from emokeras.model import EmotionModel
from emokeras.results import ResultMixin
from emokeras.run_folder import SPECTROGRAM_FILE, load_run

log = logging.getLogger(__name__)

DEFAULT_AUDIO_WEIGHT = 0.3


@dataclass(frozen=True, eq=False)
class AudioEmotionModel(EmotionModel):
    """An :class:`~emokeras.model.EmotionModel` on spectrogram images, with the spectrogram
    config its input images are computed with; ``predict`` takes spectrogram images."""

    config: SpectrogramConfig

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> AudioEmotionModel:
        """From a run folder trained on a spectrogram set: model.keras, labels.json and
        spectrogram.json."""
        run_dir = Path(run_dir)
        spec_file = run_dir / SPECTROGRAM_FILE
        # checked first: a face model's folder would otherwise load and fail later, obscurely
        if not spec_file.is_file():
            raise RunFolderError(
                f"run folder {str(run_dir)!r} has no {SPECTROGRAM_FILE}: it is not an audio "
                "model (train one on a spectrogram set from 'emokeras spectrograms')"
            )
        try:
            config = SpectrogramConfig.from_dict(json.loads(spec_file.read_text()))
        except (OSError, json.JSONDecodeError, TypeError) as error:
            raise RunFolderError(f"cannot read {str(spec_file)!r}: {error}") from None
        model, label_set = load_run(run_dir)
        return cls(model, label_set, config)

    def save(self, run_dir: str | os.PathLike[str]) -> Path:
        """Write a run folder that ``load`` reads back."""
        run_dir = super().save(run_dir)
        write_json_atomic(run_dir / SPECTROGRAM_FILE, self.config.to_dict())
        return run_dir

    def window_probs(self, waveform: np.ndarray) -> np.ndarray:
        """Probabilities (windows, classes) of each ``duration`` window of a mono waveform at
        the config's sample rate."""
        return self.predict(spectrogram_windows(np.asarray(waveform), self.config))

    def predict_waveform(self, waveform: np.ndarray) -> np.ndarray:
        """Probabilities (classes,) of a whole clip: the mean over its windows."""
        return self.window_probs(waveform).mean(axis=0)

    def predict_file(self, path: str | os.PathLike[str]) -> np.ndarray:
        """Probabilities (classes,) of an audio or video file's audio (``AudioReadError`` if it
        cannot be read, ``NoAudioError`` if it has no audio stream)."""
        return self.predict_waveform(load_audio(path, self.config.sample_rate))


def resolve_audio_model(model: AudioEmotionModel | str | os.PathLike[str]) -> AudioEmotionModel:
    """An AudioEmotionModel, or one loaded from a run folder."""
    if isinstance(model, AudioEmotionModel):
        return model
    if isinstance(model, str | os.PathLike):
        return AudioEmotionModel.load(model)
    raise ConfigError(
        f"audio_model must be an AudioEmotionModel or a run folder, got {type(model).__name__}"
    )


@dataclass(frozen=True, eq=False, repr=False)
class AudioPrediction(ResultMixin):
    """The emotion of a clip's speech: label, class probabilities (``probabilities``; ``scores``
    as a mapping class -> probability), and how many windows it took."""

    path: str
    label: str
    label_index: int
    emoji: str
    probabilities: np.ndarray
    confidence: float
    class_names: tuple[str, ...]
    windows: int


def predict_audio(
    path: str | os.PathLike[str], model: AudioEmotionModel | str | os.PathLike[str]
) -> AudioPrediction:
    """The emotion of the speech in an audio or video file (mean over its windows)."""
    audio = resolve_audio_model(model)
    probs = audio.window_probs(load_audio(path, audio.config.sample_rate))
    scores = probs.mean(axis=0)
    index = int(np.argmax(scores))
    labels = audio.label_set
    log.info("%s: %s (%.2f) from %d audio windows", path, labels.classes[index],
             scores[index], len(probs))
    return AudioPrediction(str(path), labels.classes[index], index, labels.emoji(index), scores,
                           float(scores[index]), labels.classes, len(probs))


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
