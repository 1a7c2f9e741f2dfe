"""Speech emotion from a clip's audio.

An audio model is an image classifier over spectrograms: the clip's waveform becomes uint8
log-mel images (:func:`emokeras.audio.spectrogram_windows`, one per ``duration`` of audio), which
go through the same preparation as face crops (:func:`emokeras.model.prepare_crop`) and a
one-channel Keras classifier. The clip's probabilities are the mean over its windows. A run
folder of an audio model is an ordinary run folder (model.keras, labels.json) plus
``spectrogram.json``, the :class:`~emokeras.audio.SpectrogramConfig` it was trained on: the
images must be computed exactly as in training, so the config travels with the model.

Fusing the speech with a video's faces is :mod:`emokeras.inference.fusion`'s.
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
from emokeras.inference.results import AudioPrediction
from emokeras.model import EmotionModel
from emokeras.run_folder import SPECTROGRAM_FILE, load_run

__all__ = ["AudioEmotionModel", "AudioPrediction", "predict_audio", "resolve_audio_model"]

log = logging.getLogger(__name__)


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
