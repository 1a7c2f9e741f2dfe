"""emokeras: emotion recognition in faces, in video and images, by transfer learning on Keras 3.

The public API, reachable from ``import emokeras``: ``emokeras.predict_video``,
``emokeras.build_model``, ``emokeras.load_model``, ... Names are resolved lazily (PEP 562): a
name's module is imported the first time the name is used, so ``import emokeras`` itself has no
side effects and imports neither TensorFlow nor Keras, and ``emokeras.FER2013`` does not load
the models. ``dir(emokeras)`` and ``__all__`` list every name.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Each public name and the module that defines it.
_EXPORTS: dict[str, str] = {
    # errors
    "AudioReadError": "emokeras.errors",
    "ConfigError": "emokeras.errors",
    "DatasetError": "emokeras.errors",
    "EmokerasError": "emokeras.errors",
    "ExportExistsError": "emokeras.errors",
    "ExportVerificationError": "emokeras.errors",
    "FaceDetectionError": "emokeras.errors",
    "ImageReadError": "emokeras.errors",
    "ImageTooLargeError": "emokeras.errors",
    "MissingExtraError": "emokeras.errors",
    "ModelLoadError": "emokeras.errors",
    "ModelNotOfferedError": "emokeras.errors",
    "NoAudioError": "emokeras.errors",
    "NoFaceFoundError": "emokeras.errors",
    "RavdessNameError": "emokeras.errors",
    "RunFolderError": "emokeras.errors",
    "VideoReadError": "emokeras.errors",
    "VideoTooLargeError": "emokeras.errors",
    # labels
    "CKPLUS": "emokeras.labels",
    "FER2013": "emokeras.labels",
    "RAVDESS": "emokeras.labels",
    "SEXES": "emokeras.labels",
    "SPEECH5": "emokeras.labels",
    "LabelSet": "emokeras.labels",
    "get_label_set": "emokeras.labels",
    # media in
    "Frame": "emokeras.video",
    "VideoInfo": "emokeras.video",
    "iter_frames": "emokeras.video",
    "probe_video": "emokeras.video",
    "load_image": "emokeras.images",
    "SpectrogramConfig": "emokeras.audio",
    "audio_spectrogram": "emokeras.audio",
    "load_audio": "emokeras.audio",
    # faces
    "FaceBox": "emokeras.faces",
    "FaceCrop": "emokeras.faces",
    "FaceDetector": "emokeras.faces",
    "FaceTracker": "emokeras.faces",
    "FrameFaces": "emokeras.faces",
    "HaarFaceDetector": "emokeras.faces",
    "MtcnnFaceDetector": "emokeras.faces",
    "YuNetFaceDetector": "emokeras.faces",
    "DETECTORS": "emokeras.faces",
    "get_detector": "emokeras.faces",
    "crop_face": "emokeras.faces",
    "detect_faces_and_crop": "emokeras.faces",
    "iter_face_crops": "emokeras.faces",
    "MultiFaceTracker": "emokeras.tracking",
    "DeepfaceSexClassifier": "emokeras.gender",
    # run folders and models
    "RunFolder": "emokeras.run_folder",
    "find_runs": "emokeras.run_folder",
    "EmotionModel": "emokeras.model",
    "SexRoutedModel": "emokeras.model",
    "load_model": "emokeras.model",
    "resolve_model": "emokeras.model",
    "CropFraming": "emokeras.run_folder",
    "crop_framing_for": "emokeras.model",
    "AudioEmotionModel": "emokeras.inference.audio",
    # inference
    "ImagePrediction": "emokeras.inference.results",
    "VideoPrediction": "emokeras.inference.results",
    "FaceTrack": "emokeras.inference.results",
    "Fusion": "emokeras.inference.results",
    "Sampling": "emokeras.inference.video",
    "predict_frames": "emokeras.inference.image",
    "predict_image": "emokeras.inference.image",
    "predict_video": "emokeras.inference.video",
    "AudioPrediction": "emokeras.inference.results",
    "fuse": "emokeras.inference.fusion",
    "predict_audio": "emokeras.inference.audio",
    "Aggregate": "emokeras.aggregation",
    "aggregate": "emokeras.aggregation",
    # result tables (pandas: the tables extra)
    "Scores": "emokeras.results",
    "images_to_frame": "emokeras.results",
    "write_table": "emokeras.results",
    # building and training (these import TensorFlow when used)
    "HeadConfig": "emokeras.models",
    "build_model": "emokeras.models",
    "list_backbones": "emokeras.models",
    "TrainConfig": "emokeras.training",
    "fit": "emokeras.training",
    "train_run": "emokeras.runs",
    "ensemble_run": "emokeras.runs",
    # evaluation and export
    "RunEvaluation": "emokeras.evaluation",
    "evaluate_run": "emokeras.evaluation",
    "ExportResult": "emokeras.export",
    "export_onnx": "emokeras.export",
    "export_saved_model": "emokeras.export",
    "export_tflite": "emokeras.export",
    "run_export": "emokeras.export",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'emokeras' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})

