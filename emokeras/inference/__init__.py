"""Predict emotions in images, videos and speech: face crops in, probabilities and one label
per video out.

The package's modules: :mod:`~emokeras.inference.image` (``predict_image``, ``predict_frames``),
:mod:`~emokeras.inference.video` (``predict_video``, :class:`~emokeras.inference.video.Sampling`),
:mod:`~emokeras.inference.audio` (``AudioEmotionModel``, ``predict_audio``),
:mod:`~emokeras.inference.fusion` (late audio-visual fusion) and
:mod:`~emokeras.inference.results` (the result dataclasses, :class:`Fusion` among them). Every
public name is re-exported here: ``from emokeras.inference import predict_video``.
"""

# The model objects live in emokeras.model; re-exported so that
# ``from emokeras.inference import EmotionModel`` (and the rest) keeps working.
from emokeras.inference.audio import AudioEmotionModel, predict_audio, resolve_audio_model
from emokeras.inference.fusion import (
    DEFAULT_AUDIO_WEIGHT,
    audio_on_face_classes,
    check_weight,
    fuse,
    fuse_audio,
)
from emokeras.inference.image import CROP_MARGIN, predict_frames, predict_image
from emokeras.inference.results import (
    AudioPrediction,
    FaceTrack,
    Fusion,
    ImagePrediction,
    VideoPrediction,
)
from emokeras.inference.video import DEFAULT_TARGET_FPS, Sampling, predict_video
from emokeras.model import EmotionModel, SexRoutedModel, crop_size_for, resolve_model

__all__ = [
    "CROP_MARGIN",
    "DEFAULT_AUDIO_WEIGHT",
    "DEFAULT_TARGET_FPS",
    "AudioEmotionModel",
    "AudioPrediction",
    "EmotionModel",
    "FaceTrack",
    "Fusion",
    "ImagePrediction",
    "Sampling",
    "SexRoutedModel",
    "VideoPrediction",
    "audio_on_face_classes",
    "check_weight",
    "crop_size_for",
    "fuse",
    "fuse_audio",
    "predict_audio",
    "predict_frames",
    "predict_image",
    "predict_video",
    "resolve_audio_model",
    "resolve_model",
]
