"""emokeras: emotion recognition in faces, in video and images, by transfer learning on Keras 3.

The public API, re-exported explicitly. Importing emokeras has no side effects and does not import
TensorFlow; modules that need it import it when used.
"""

from emokeras.aggregation import Aggregate, aggregate
from emokeras.audio import SpectrogramConfig, audio_spectrogram, load_audio
from emokeras.audio_inference import AudioEmotionModel, AudioPrediction, fuse, predict_audio
from emokeras.errors import (
    AudioReadError,
    DatasetError,
    EmokerasError,
    ImageReadError,
    NoAudioError,
    NoFaceFoundError,
    RavdessNameError,
    VideoReadError,
)
from emokeras.export import export_onnx, export_saved_model, export_tflite, run_export
from emokeras.faces import (
    FaceBox,
    FaceCrop,
    FaceDetector,
    FaceTracker,
    FrameFaces,
    HaarFaceDetector,
    MtcnnFaceDetector,
    crop_face,
    detect_faces_and_crop,
    iter_face_crops,
)
from emokeras.gender import DeepfaceSexClassifier
from emokeras.images import load_image
from emokeras.inference import (
    EmotionModel,
    ImagePrediction,
    SexRoutedModel,
    VideoPrediction,
    predict_frames,
    predict_image,
    predict_video,
)
from emokeras.labels import CKPLUS, FER2013, RAVDESS, SPEECH5, LabelSet, get_label_set
from emokeras.video import Frame, VideoInfo, iter_frames, probe_video

__version__ = "0.1.0"

__all__ = [
    "Aggregate",
    "AudioEmotionModel",
    "AudioPrediction",
    "AudioReadError",
    "NoAudioError",
    "SPEECH5",
    "SpectrogramConfig",
    "audio_spectrogram",
    "fuse",
    "load_audio",
    "predict_audio",
    "EmotionModel",
    "ImagePrediction",
    "SexRoutedModel",
    "VideoPrediction",
    "aggregate",
    "export_onnx",
    "export_saved_model",
    "export_tflite",
    "run_export",
    "predict_frames",
    "predict_image",
    "predict_video",
    "CKPLUS",
    "FER2013",
    "RAVDESS",
    "DatasetError",
    "DeepfaceSexClassifier",
    "EmokerasError",
    "FaceBox",
    "FaceCrop",
    "FaceDetector",
    "FaceTracker",
    "Frame",
    "FrameFaces",
    "HaarFaceDetector",
    "ImageReadError",
    "LabelSet",
    "MtcnnFaceDetector",
    "NoFaceFoundError",
    "RavdessNameError",
    "VideoInfo",
    "VideoReadError",
    "__version__",
    "crop_face",
    "detect_faces_and_crop",
    "get_label_set",
    "iter_face_crops",
    "iter_frames",
    "load_image",
    "probe_video",
]
