"""The former home of speech emotion and audio-visual fusion, kept so that
``from emokeras.audio_inference import ...`` keeps working: the code lives in
:mod:`emokeras.inference.audio` (the audio model, ``predict_audio``) and
:mod:`emokeras.inference.fusion` (late fusion)."""

from emokeras.inference.audio import AudioEmotionModel, predict_audio, resolve_audio_model
from emokeras.inference.fusion import (
    DEFAULT_AUDIO_WEIGHT,
    audio_on_face_classes,
    check_weight,
    fuse,
)
from emokeras.inference.results import AudioPrediction

__all__ = [
    "DEFAULT_AUDIO_WEIGHT",
    "AudioEmotionModel",
    "AudioPrediction",
    "audio_on_face_classes",
    "check_weight",
    "fuse",
    "predict_audio",
    "resolve_audio_model",
]
