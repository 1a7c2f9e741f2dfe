"""Export a model for serving: SavedModel in TF Serving's layout, ONNX and TFLite (fp32 or
quantized), and checks that each export computes what the Keras model computes.

Every export takes **face crops at the model's size, RGB, raw pixels 0-255**: ``images`` of shape
``[batch, H, W, 3]``. A grayscale model (like the bundled one) converts RGB to gray inside the
graph with OpenCV's weights (0.299 R + 0.587 G + 0.114 B, not rounded), so a client sends the
crops it has and never needs to know the model's channels. A gray crop sent as three equal channels
gives the gray model its own pixels (to float32 rounding).

SavedModel (``export_saved_model``), TF Serving's layout ``<base_dir>/<version>/``::

    saved_model.pb  variables/  assets/labels.txt      (one class name a line, in output order)

    signature        inputs                                    outputs
    serving_default  images float32 [-1, H, W, 3] (0-255)      probabilities float32 [-1, classes]
    serving_uint8    images uint8   [-1, H, W, 3]              label_index int64 [-1]
                     (+ sex string [-1] for a sex-routed model) label string [-1] (class name)
    class_names      (none)                                    class_names string [classes]

``serving_default`` is float32 because TF Serving's JSON API sends numbers, and a float signature
takes them whatever their type; ``serving_uint8`` is for gRPC clients that send camera bytes.
The weights are stored once: the signatures are ``tf.function``s over the Keras model's own
variables, saved with ``tf.saved_model.save``; ``keras.Model.export`` stores each weight twice
(keras-team/keras#23553).

A sex-routed model (``SexRoutedModel``) becomes ONE SavedModel whose signatures also take ``sex``
(``"female"`` / ``"male"``, one per row); each row goes to its sex's model. ONNX and TFLite get one
file per sex.

ONNX (tf2onnx) and TFLite (``tf.lite.TFLiteConverter``) files take the same ``images`` float32
input and give ``probabilities`` and ``label_index``. Quantization: ``"dynamic"`` (int8 weights,
float activations) or ``"int8"`` (weights and activations, calibrated on representative faces).
Before conversion the head's BatchNormalization (Dense > ReLU > BatchNorm > Dense, as
``build_model`` makes it) is folded into the two Dense layers: the same function (ReLU commutes
with a positive scale), but without it int8 weights lose the head. TensorFlow is imported only when
an export runs.

The package's modules: ``graph`` (inputs, outputs, the Keras reference and the TensorFlow graph
pieces), ``saved_model``, ``onnx``, ``tflite``, ``verify``, ``serving_client`` (TF Serving
requests and answers), ``files`` (targets, labels.txt) and ``run`` (``run_export``). Every public
name is importable from ``emokeras.export`` itself.
"""

from emokeras.export.files import QUANTIZATIONS
from emokeras.export.graph import (
    CLASS_NAMES_SIGNATURE,
    GRAY_WEIGHTS,
    IMAGES_INPUT,
    LABEL,
    LABEL_INDEX,
    LABELS_ASSET,
    MAX_REPRESENTATIVE,
    PROBABILITIES,
    SERVING_SIGNATURE,
    SEX_INPUT,
    UINT8_SIGNATURE,
    as_frames,
    keras_probabilities,
    load_face_folder,
)
from emokeras.export.onnx import ONNX_OPSET, export_onnx, onnx_predictor
from emokeras.export.run import FORMATS, ExportEntry, ExportResult, run_export
from emokeras.export.saved_model import export_saved_model, variables_bytes, weight_bytes
from emokeras.export.serving_client import (
    predict_request_to_inputs,
    rest_body_to_inputs,
    rest_response,
    run_signature,
    signature_inputs,
)
from emokeras.export.tflite import export_tflite, tflite_predictor
from emokeras.export.verify import Verification, check_file, verify_file, verify_saved_model

__all__ = [
    "CLASS_NAMES_SIGNATURE",
    "FORMATS",
    "GRAY_WEIGHTS",
    "IMAGES_INPUT",
    "LABEL",
    "LABELS_ASSET",
    "LABEL_INDEX",
    "MAX_REPRESENTATIVE",
    "ONNX_OPSET",
    "PROBABILITIES",
    "QUANTIZATIONS",
    "SERVING_SIGNATURE",
    "SEX_INPUT",
    "UINT8_SIGNATURE",
    "ExportEntry",
    "ExportResult",
    "Verification",
    "as_frames",
    "check_file",
    "export_onnx",
    "export_saved_model",
    "export_tflite",
    "keras_probabilities",
    "load_face_folder",
    "onnx_predictor",
    "predict_request_to_inputs",
    "rest_body_to_inputs",
    "rest_response",
    "run_export",
    "run_signature",
    "signature_inputs",
    "tflite_predictor",
    "variables_bytes",
    "verify_file",
    "verify_saved_model",
    "weight_bytes",
]
