"""What every export is built from and checked against: the export's inputs and outputs, the
model to export (resolved, its geometry), face crops as the exports take them, the Keras
reference probabilities, and the TensorFlow graph pieces (the serving signatures' module, the
ONNX/TFLite edge function with the head's BatchNorm folded). TensorFlow is imported only when a
graph is built.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emokeras.errors import ConfigError, RunFolderError
from emokeras.media import IMAGE_EXTENSIONS
from emokeras.model import SexRoutedModel, resolve_model
from emokeras.model import members as model_members
from emokeras.run_folder import MODEL_FILE, ROUTING_FILE

SERVING_SIGNATURE = "serving_default"
UINT8_SIGNATURE = "serving_uint8"
CLASS_NAMES_SIGNATURE = "class_names"
IMAGES_INPUT = "images"
SEX_INPUT = "sex"
PROBABILITIES = "probabilities"
LABEL_INDEX = "label_index"
LABEL = "label"
LABELS_ASSET = "labels.txt"
#: OpenCV's RGB to gray weights (ITU-R BT.601), as ``EmotionModel.prepare`` converts crops.
GRAY_WEIGHTS = (0.299, 0.587, 0.114)
#: At most this many representative faces are used for int8 calibration.
MAX_REPRESENTATIVE = 300


def resolve(model, label_set=None):
    """An EmotionModel or SexRoutedModel from what the caller gave (None: the bundled model)."""
    if isinstance(model, str | os.PathLike):
        folder = Path(model)
        if not folder.is_dir():
            raise RunFolderError(f"run folder {str(folder)!r} does not exist")
        if not (folder / MODEL_FILE).is_file() and not (folder / ROUTING_FILE).is_file():
            raise RunFolderError(
                f"run folder {str(folder)!r} has no model to export (no model.keras, no "
                f"{ROUTING_FILE}); has its training finished?"
            )
    return resolve_model(model, label_set)


def geometry(emotion) -> tuple[int, int]:
    """(input size, channels) shared by every model of ``emotion``."""
    shapes = {(m.input_size, m.channels) for _, m in model_members(emotion)}
    if len(shapes) != 1:
        raise ConfigError(
            f"the models of a sex-routed model must share one input size and channel count to be "
            f"exported as one SavedModel, got {sorted(shapes)}"
        )
    return next(iter(shapes))


def as_frames(faces, size: int, what: str = "faces") -> np.ndarray:
    """Face crops as float32 ``(N, size, size, 3)`` raw pixels: RGB, or gray as equal channels.

    Takes ``(N, size, size, 3)``, ``(N, size, size, 1)`` or ``(N, size, size)``; any other shape
    raises ``ConfigError`` naming the shape it got and the shape it needs.
    """
    array = np.asarray(faces)
    if array.ndim == 3:
        array = array[..., np.newaxis]
    if (array.ndim != 4 or array.shape[1:3] != (size, size) or array.shape[-1] not in (1, 3)
            or len(array) == 0):
        raise ConfigError(
            f"{what} have shape {tuple(np.shape(faces))}, the model needs (N, {size}, {size}, 3) "
            f"RGB or (N, {size}, {size}) gray face crops, N >= 1"
        )
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return array.astype(np.float32)


def load_face_folder(folder: str | os.PathLike[str], size: int,
                     limit: int | None = MAX_REPRESENTATIVE) -> np.ndarray:
    """Face images below ``folder`` (recursively) as uint8 RGB ``(N, size, size, 3)``; at most
    ``limit`` of them, spread evenly over the sorted file list."""
    from emokeras.images import load_image

    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"representative face folder {str(root)!r} does not exist")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ConfigError(f"no face images ({', '.join(IMAGE_EXTENSIONS)}) under {str(root)!r}")
    if limit is not None and len(files) > limit:
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    return np.stack([load_image(p, size=size) for p in files])


def representative_faces(representative, size: int) -> np.ndarray | None:
    if representative is None:
        return None
    if isinstance(representative, str | os.PathLike):
        representative = load_face_folder(representative, size)
    return as_frames(representative, size, "representative faces")


def keras_probabilities(emotion, faces, sexes: Sequence[str] | None = None,
                        batch_size: int = 64) -> np.ndarray:
    """What the Keras model gives for ``faces`` (see ``as_frames``), converted to its channels
    as the exports convert them: the reference every export is checked against."""
    size, channels = geometry(emotion)
    frames = as_frames(faces, size)
    if channels == 1:
        frames = (frames @ np.asarray(GRAY_WEIGHTS, np.float32))[..., np.newaxis]
    if isinstance(emotion, SexRoutedModel):  # the routed model routes; each model runs on its rows
        return emotion.route(frames, sexes, lambda member, rows: predict_in_batches(
            member.model, rows, batch_size))
    return predict_in_batches(emotion.model, frames, batch_size)


def predict_in_batches(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    return np.concatenate([np.asarray(model(x[i : i + batch_size], training=False))
                           for i in range(0, len(x), batch_size)])


def to_model_input(images, channels: int):
    """Raw RGB frames (any dtype) to the model's float32 input: gray by a 1x1 convolution."""
    import tensorflow as tf

    x = tf.cast(images, tf.float32)
    if channels == 1:
        kernel = tf.constant(np.asarray(GRAY_WEIGHTS, np.float32).reshape(1, 1, 3, 1))
        x = tf.nn.conv2d(x, kernel, strides=1, padding="VALID")
    return x


def model_variables(models) -> list:
    """Each model's variables (the TensorFlow ones under Keras'), each once."""
    import tensorflow as tf

    seen, out = set(), []
    for model in models:
        for weight in model.weights:
            variable = weight if isinstance(weight, tf.Variable) else weight.value
            if id(variable) not in seen:
                seen.add(id(variable))
                out.append(variable)
    return out


def serving_module(emotion, labels_file: Path):
    """A tf.Module with the serving signatures; the models' variables tracked once."""
    import tensorflow as tf

    size, channels = geometry(emotion)
    members = model_members(emotion)
    routed = members[0][0] is not None
    classes = list(emotion.label_set.classes)

    module = tf.Module()
    module.model_variables = model_variables(m.model for _, m in members)
    module.labels = tf.saved_model.Asset(str(labels_file))

    def outputs(probabilities):
        index = tf.argmax(probabilities, axis=-1)
        return {PROBABILITIES: probabilities, LABEL_INDEX: index,
                LABEL: tf.gather(tf.constant(classes), index)}

    def probabilities(images, sex=None):
        x = to_model_input(images, channels)
        if not routed:
            return members[0][1].model(x, training=False)
        return emotion.route_graph(x, sex)

    def image_spec(dtype):
        return tf.TensorSpec([None, size, size, 3], dtype, name=IMAGES_INPUT)

    sex_spec = tf.TensorSpec([None], tf.string, name=SEX_INPUT)
    signatures = {}
    for key, dtype in ((SERVING_SIGNATURE, tf.float32), (UINT8_SIGNATURE, tf.uint8)):
        if routed:
            function = tf.function(lambda images, sex: outputs(probabilities(images, sex)),
                                   input_signature=[image_spec(dtype), sex_spec])
        else:
            function = tf.function(lambda images: outputs(probabilities(images)),
                                   input_signature=[image_spec(dtype)])
        signatures[key] = function.get_concrete_function()
    names = tf.function(lambda: {CLASS_NAMES_SIGNATURE: tf.constant(classes)}, input_signature=[])
    signatures[CLASS_NAMES_SIGNATURE] = names.get_concrete_function()
    return module, signatures


def folded_head(model):
    """(features model, head parameters) when the head is build_model's Dense > ReLU > BatchNorm
    > Dense > activation with every BatchNorm scale positive; None otherwise."""
    import keras

    from emokeras.models import heads  # in-function: it imports Keras

    try:
        dense, relu, norm, logits, act = (model.get_layer(name) for name in (
            heads.DENSE_LAYER, heads.RELU_LAYER, heads.NORM_LAYER, heads.LOGITS_LAYER,
            heads.OUTPUT_LAYER))
    except ValueError:
        return None
    linear = keras.activations.linear
    chained = (relu.input is dense.output and norm.input is relu.output
               and logits.input is norm.output and act.input is logits.output
               and model.outputs[0] is act.output)
    plain = (isinstance(relu, keras.layers.ReLU) and relu.max_value is None
             and float(relu.negative_slope) == 0 and float(relu.threshold) == 0
             and dense.activation is linear and logits.activation is linear
             and norm.axis in (-1, [-1], len(norm.input.shape) - 1))
    if not (chained and plain):
        return None
    gamma = norm.gamma.numpy() if norm.scale else 1.0
    beta = norm.beta.numpy() if norm.center else 0.0
    scale = gamma / np.sqrt(norm.moving_variance.numpy() + norm.epsilon)
    if np.any(scale <= 0):
        return None
    shift = beta - norm.moving_mean.numpy() * scale
    w1, w2 = dense.kernel.numpy(), logits.kernel.numpy()
    b1 = dense.bias.numpy() if dense.use_bias else np.zeros(w1.shape[1], np.float32)
    b2 = logits.bias.numpy() if logits.use_bias else np.zeros(w2.shape[1], np.float32)
    # relu(x W1 + b1) * s + t == relu(x (W1 s) + b1 s) + t for s > 0; then t goes into b2
    params = [np.asarray(p, np.float32) for p in (w1 * scale, b1 * scale, w2, b2 + shift @ w2)]
    features = keras.Model(model.inputs, dense.input)
    return features, params, act


def edge_function(member):
    """The tf.function that ONNX and TFLite are converted from (frozen by the converters)."""
    import tensorflow as tf

    size, channels = member.input_size, member.channels
    folded = folded_head(member.model)

    def forward(x):
        if folded is None:
            return member.model(x, training=False)
        features, params, act = folded
        # constants made inside the function, so converters see them as constants, not inputs
        w1, b1, w2, b2 = (tf.constant(p) for p in params)
        hidden = tf.nn.relu(tf.matmul(features(x, training=False), w1) + b1)
        return act(tf.matmul(hidden, w2) + b2)

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32,
                                                name=IMAGES_INPUT)])
    def edge(images):
        probabilities = forward(to_model_input(images, channels))
        return {PROBABILITIES: probabilities, LABEL_INDEX: tf.argmax(probabilities, axis=-1)}

    return edge


def single_model(model, label_set):
    emotion = resolve(model, label_set)
    if isinstance(emotion, SexRoutedModel):
        raise ConfigError("ONNX and TFLite take one model: export each sex's model "
                          "(routed.models['female'], ...), or use run_export, which does")
    return emotion
