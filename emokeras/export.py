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
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emokeras.errors import (
    ConfigError,
    ExportExistsError,
    ExportVerificationError,
    RunFolderError,
)
from emokeras.fileio import atomic_write, write_json_atomic

log = logging.getLogger(__name__)

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

FORMATS = ("savedmodel", "onnx", "tflite")
QUANTIZATIONS = ("none", "dynamic", "int8")
ONNX_OPSET = 17
#: At most this many representative faces are used for int8 calibration.
MAX_REPRESENTATIVE = 300


# --------------------------------------------------------------------------- models and faces


def _resolve(model, label_set=None):
    """An EmotionModel or SexRoutedModel from what the caller gave (None: the bundled model)."""
    from emokeras.inference import ROUTING_FILE, resolve_model

    if isinstance(model, str | os.PathLike):
        folder = Path(model)
        if not folder.is_dir():
            raise RunFolderError(f"run folder {str(folder)!r} does not exist")
        if not (folder / "model.keras").is_file() and not (folder / ROUTING_FILE).is_file():
            raise RunFolderError(
                f"run folder {str(folder)!r} has no model to export (no model.keras, no "
                f"{ROUTING_FILE}); has its training finished?"
            )
    return resolve_model(model, label_set)


def _members(emotion) -> list[tuple[str | None, Any]]:
    """(sex, EmotionModel) pairs: one (None, model) for an unrouted model."""
    from emokeras.inference import SexRoutedModel

    if isinstance(emotion, SexRoutedModel):
        return list(emotion.models.items())
    return [(None, emotion)]


def _geometry(emotion) -> tuple[int, int]:
    """(input size, channels) shared by every model of ``emotion``."""
    shapes = {(m.input_size, m.channels) for _, m in _members(emotion)}
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
    from emokeras.datasets.base import IMAGE_EXTENSIONS
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


def _representative(representative, size: int) -> np.ndarray | None:
    if representative is None:
        return None
    if isinstance(representative, str | os.PathLike):
        representative = load_face_folder(representative, size)
    return as_frames(representative, size, "representative faces")


def keras_probabilities(emotion, faces, sexes: Sequence[str] | None = None,
                        batch_size: int = 64) -> np.ndarray:
    """What the Keras model gives for ``faces`` (see ``as_frames``), converted to its channels
    as the exports convert them: the reference every export is checked against."""
    from emokeras.inference import SexRoutedModel

    size, channels = _geometry(emotion)
    frames = as_frames(faces, size)
    if channels == 1:
        frames = (frames @ np.asarray(GRAY_WEIGHTS, np.float32))[..., np.newaxis]
    if isinstance(emotion, SexRoutedModel):
        if sexes is None or len(sexes) != len(frames):
            raise ConfigError("a sex-routed model needs one sex per face")
        out = np.empty((len(frames), len(emotion.label_set)), np.float32)
        for sex, member in emotion.models.items():
            rows = np.flatnonzero(np.asarray(sexes) == sex)
            if len(rows):
                out[rows] = _predict(member.model, frames[rows], batch_size)
        return out
    return _predict(emotion.model, frames, batch_size)


def _predict(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    return np.concatenate([np.asarray(model(x[i : i + batch_size], training=False))
                           for i in range(0, len(x), batch_size)])


# --------------------------------------------------------------------------- graph pieces


def _to_model_input(images, channels: int):
    """Raw RGB frames (any dtype) to the model's float32 input: gray by a 1x1 convolution."""
    import tensorflow as tf

    x = tf.cast(images, tf.float32)
    if channels == 1:
        kernel = tf.constant(np.asarray(GRAY_WEIGHTS, np.float32).reshape(1, 1, 3, 1))
        x = tf.nn.conv2d(x, kernel, strides=1, padding="VALID")
    return x


def _variables(models) -> list:
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


def _serving_module(emotion, labels_file: Path):
    """A tf.Module with the serving signatures; the models' variables tracked once."""
    import tensorflow as tf

    from emokeras.gender import SEXES

    size, channels = _geometry(emotion)
    members = _members(emotion)
    routed = members[0][0] is not None
    classes = list(emotion.label_set.classes)

    module = tf.Module()
    module.model_variables = _variables(m.model for _, m in members)
    module.labels = tf.saved_model.Asset(str(labels_file))

    def outputs(probabilities):
        index = tf.argmax(probabilities, axis=-1)
        return {PROBABILITIES: probabilities, LABEL_INDEX: index,
                LABEL: tf.gather(tf.constant(classes), index)}

    def probabilities(images, sex=None):
        x = _to_model_input(images, channels)
        if not routed:
            return members[0][1].model(x, training=False)
        # one model per row's sex: split the batch, run each model on its rows, put them back
        route = tf.fill(tf.shape(sex), -1)
        for i, name in enumerate(SEXES):
            route = tf.where(tf.equal(sex, name), i, route)
        checks = [
            tf.debugging.assert_equal(tf.shape(sex)[0], tf.shape(x)[0],
                                      message="sex needs one value per image"),
            tf.debugging.assert_non_negative(
                route, message=f"sex must be {' or '.join(SEXES)} in every row"),
        ]
        with tf.control_dependencies(checks):
            rows = tf.dynamic_partition(tf.range(tf.shape(x)[0]), route, len(SEXES))
            parts = tf.dynamic_partition(x, route, len(SEXES))
        by_sex = dict(members)

        def run(model, part):  # a model never sees an empty batch (BatchNorm fails on one)
            return tf.cond(tf.shape(part)[0] > 0, lambda: model(part, training=False),
                           lambda: tf.zeros([0, len(classes)], tf.float32))

        results = [run(by_sex[name].model, parts[i]) for i, name in enumerate(SEXES)]
        return tf.dynamic_stitch(rows, results)

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


# --------------------------------------------------------------------------- atomic folders


def _check_target(target: Path, overwrite: bool) -> None:
    if target.is_file() or target.is_symlink():
        if not overwrite:
            raise ExportExistsError(f"{str(target)!r} exists; pass overwrite=True to replace it")
    elif target.is_dir() and any(target.iterdir()) and not overwrite:
        raise ExportExistsError(
            f"{str(target)!r} exists and is not empty; pass overwrite=True (--overwrite) to "
            "replace it, or choose another version or folder"
        )


@contextlib.contextmanager
def _building(target: Path, overwrite: bool):
    """A temporary folder beside ``target`` to build in; on success it replaces ``target``.

    TF Serving loads only all-digit folder names, so it never sees the ``.partial`` folder. An old
    ``target`` is renamed away first and deleted after the new one is in place.
    """
    _check_target(target, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        yield work
        umask = os.umask(0o022)
        os.umask(umask)
        os.chmod(work, 0o777 & ~umask)  # mkdtemp's folder is owner-only; a server may not be
        _check_target(target, overwrite)  # someone may have written it meanwhile
        old = None
        if target.is_dir() or target.is_file() or target.is_symlink():
            old = target.with_name(f"{work.name}.old")
            os.replace(target, old)
        os.replace(work, target)
        if old is not None:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            else:
                old.unlink()
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _write_labels(path: Path, classes: Sequence[str]) -> Path:
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write("".join(f"{name}\n" for name in classes))
    return path


# --------------------------------------------------------------------------- SavedModel


def export_saved_model(model, base_dir: str | os.PathLike[str], version: int = 1,
                       overwrite: bool = False, *, label_set=None) -> Path:
    """Write ``model`` as a SavedModel in TF Serving's layout: ``<base_dir>/<version>/``.

    ``model``: None (the bundled model), a run folder, an EmotionModel, a SexRoutedModel, or a
    Keras model with its ``label_set``. The signatures are described in this module's docstring.
    The folder is built beside the target and renamed into place; a version folder that exists
    and is not empty raises ``ExportExistsError`` unless ``overwrite``. Returns the version folder.
    """
    import tensorflow as tf

    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ConfigError(
            f"version must be an int >= 0 (TF Serving's folder name), got {version!r}")
    emotion = _resolve(model, label_set)
    target = Path(base_dir) / str(version)
    with _building(target, overwrite) as work, tempfile.TemporaryDirectory() as scratch:
        labels = _write_labels(Path(scratch) / LABELS_ASSET, emotion.label_set.classes)
        module, signatures = _serving_module(emotion, labels)
        tf.saved_model.save(module, str(work), signatures=signatures)
    log.info("exported a SavedModel to %s", target)
    return target


def variables_bytes(saved_model_dir: str | os.PathLike[str]) -> int:
    """Bytes under a SavedModel's ``variables/`` folder (the weights, as stored)."""
    return sum(f.stat().st_size for f in (Path(saved_model_dir) / "variables").rglob("*")
               if f.is_file())


def weight_bytes(model) -> int:
    """Bytes of the weights of ``model`` (a Keras model, EmotionModel or SexRoutedModel), each
    counted once: what ``variables/`` should hold, plus a small index."""
    emotion_like = hasattr(model, "label_set")
    models = [m.model for _, m in _members(model)] if emotion_like else [model]
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype.as_numpy_dtype).itemsize
               for v in _variables(models))


def signature_inputs(loaded, name: str = SERVING_SIGNATURE) -> dict[str, Any]:
    """The TensorSpecs a loaded SavedModel's signature takes, by input name."""
    try:
        function = loaded.signatures[name]
    except KeyError:
        raise ConfigError(f"the SavedModel has no signature {name!r}; it has "
                          f"{sorted(loaded.signatures)}") from None
    return dict(function.structured_input_signature[1])


def run_signature(loaded, name: str, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Call a loaded SavedModel's signature as TF Serving would: inputs by name, each converted to
    the signature's dtype (as TF Serving's JSON API does); outputs as NumPy arrays."""
    import tensorflow as tf

    specs = signature_inputs(loaded, name)
    if set(inputs) != set(specs):
        raise ConfigError(f"signature {name!r} takes inputs {sorted(specs)}, got {sorted(inputs)}")
    tensors = {}
    for key, spec in specs.items():
        value = inputs[key]
        if isinstance(value, np.ndarray) and value.dtype != object and spec.dtype != tf.string:
            if value.dtype != spec.dtype.as_numpy_dtype:
                raise ConfigError(f"input {key!r} of signature {name!r} is {spec.dtype.name}, "
                                  f"got {value.dtype}")
        tensor = tf.convert_to_tensor(value, dtype=spec.dtype)
        if not spec.shape.is_compatible_with(tensor.shape):
            raise ConfigError(f"input {key!r} of signature {name!r} has shape {spec.shape}, got "
                              f"{tuple(tensor.shape)}")
        tensors[key] = tensor
    try:
        result = loaded.signatures[name](**tensors)
    except tf.errors.InvalidArgumentError as error:  # e.g. a sex that is neither female nor male
        detail = error.message.split("assertion failed: [")[-1].split("]")[0].strip()
        raise ConfigError(f"signature {name!r} rejected the inputs: {detail[:300]}") from None
    return {key: value.numpy() for key, value in result.items()}


# --------------------------------------------------------------------------- TF Serving requests


def predict_request_to_inputs(request) -> tuple[str, dict[str, np.ndarray]]:
    """A TF Serving ``PredictRequest`` (``tensorflow_serving.apis.predict_pb2``) as its signature
    name and NumPy inputs, for ``run_signature``."""
    import tensorflow as tf

    name = request.model_spec.signature_name or SERVING_SIGNATURE
    return name, {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}


def _json_value(value):
    """TF Serving's JSON: ``{"b64": ...}`` objects are binary strings."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


def rest_body_to_inputs(body: str | bytes | Mapping[str, Any], loaded
                        ) -> tuple[str, dict[str, np.ndarray]]:
    """A TF Serving REST predict body as its signature name and NumPy inputs of the signature's
    dtypes (JSON numbers take the signature's type, as TF Serving converts them).

    The row format ``{"instances": [...]}`` (each instance a value when the signature has one
    input, else ``{name: value}``) and the columnar ``{"inputs": value or {name: value}}``, as
    TF Serving's REST API documents them; ``{"b64": ...}`` values are binary strings.
    """
    data = json.loads(body) if isinstance(body, str | bytes) else dict(body)
    name = data.get("signature_name", SERVING_SIGNATURE)
    specs = signature_inputs(loaded, name)
    names = list(specs)
    if ("instances" in data) == ("inputs" in data):
        raise ConfigError('a predict request body needs exactly one of "instances" (rows) and '
                          '"inputs" (columns)')
    if "instances" in data:
        rows = data["instances"]
        if not isinstance(rows, list) or not rows:
            raise ConfigError('"instances" must be a non-empty list')
        if all(isinstance(row, dict) and "b64" not in row for row in rows):
            columns = {key: [_json_value(row.get(key)) for row in rows] for key in rows[0]}
        elif len(names) == 1:
            columns = {names[0]: [_json_value(row) for row in rows]}
        else:
            raise ConfigError(f"signature {name!r} takes {names}: each instance must be an "
                              "object with those keys")
    else:
        columns = data["inputs"]
        if not (isinstance(columns, dict) and "b64" not in columns):
            if len(names) != 1:
                raise ConfigError(f'signature {name!r} takes {names}: "inputs" must name them')
            columns = {names[0]: columns}
        columns = {key: _json_value(value) for key, value in columns.items()}
    if set(columns) != set(specs):
        raise ConfigError(f"signature {name!r} takes inputs {names}, got {sorted(columns)}")
    return name, {key: _typed(value, specs[key]) for key, value in columns.items()}


def _typed(value, spec) -> np.ndarray:
    if spec.dtype.name == "string":
        return np.asarray(value, dtype=object)
    return np.asarray(value, dtype=spec.dtype.as_numpy_dtype)


def rest_response(outputs: Mapping[str, np.ndarray], columnar: bool = False) -> dict[str, Any]:
    """Outputs as TF Serving's REST API answers: ``{"predictions": [row, ...]}`` for a row-format
    request, ``{"outputs": {name: column}}`` for a columnar one (strings decoded as UTF-8)."""
    def plain(value):
        if isinstance(value, bytes):
            return value.decode()
        array = np.asarray(value)
        if array.dtype == object or array.dtype.kind == "S":
            return np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else v,
                                otypes=[object])(array).tolist()
        return array.tolist()

    if columnar:
        return {"outputs": {key: plain(value) for key, value in outputs.items()}}
    count = len(next(iter(outputs.values())))
    return {"predictions": [{key: plain(value[i]) for key, value in outputs.items()}
                            for i in range(count)]}


# --------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class Verification:
    """How an export compares with the Keras model on the same faces."""

    path: str
    faces: int
    max_abs_diff: float
    argmax_agreement: float
    checks: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "faces": self.faces, "max_abs_diff": self.max_abs_diff,
                "argmax_agreement": self.argmax_agreement, "checks": dict(self.checks)}


def _compare(reference: np.ndarray, got: np.ndarray) -> tuple[float, float]:
    return (float(np.abs(reference - got).max()),
            float(np.mean(reference.argmax(axis=1) == got.argmax(axis=1))))


def verify_saved_model(path: str | os.PathLike[str], model, faces, *,
                       sexes: Sequence[str] | None = None, atol: float = 1e-5,
                       label_set=None) -> Verification:
    """Reload a SavedModel with ``tf.saved_model.load`` and check it against ``model``.

    Both image signatures, on ``faces`` (``as_frames``; ``sexes`` for a sex-routed model), must
    give the Keras probabilities within ``atol`` and the same ``label_index``; ``class_names`` and
    ``assets/labels.txt`` must list the model's classes. Raises ``ExportVerificationError``
    otherwise; returns the numbers.
    """
    import tensorflow as tf

    emotion = _resolve(model, label_set)
    size, _ = _geometry(emotion)
    frames = as_frames(faces, size)
    reference = keras_probabilities(emotion, frames, sexes)
    loaded = tf.saved_model.load(str(path))
    classes = list(emotion.label_set.classes)
    problems, checks = [], {}
    extra = {} if sexes is None else {SEX_INPUT: np.asarray(sexes, dtype=object)}
    variants = [(SERVING_SIGNATURE, frames)]
    if np.array_equal(frames, frames.round()) and frames.min() >= 0 and frames.max() <= 255:
        variants.append((UINT8_SIGNATURE, frames.astype(np.uint8)))
    worst, agreement = 0.0, 1.0
    for name, x in variants:
        out = run_signature(loaded, name, {IMAGES_INPUT: x, **extra})
        diff, agree = _compare(reference, out[PROBABILITIES])
        checks[f"{name}_max_abs_diff"] = diff
        worst, agreement = max(worst, diff), min(agreement, agree)
        if diff > atol:
            problems.append(f"{name}: probabilities differ from Keras by up to {diff:.3g} "
                            f"(allowed {atol:g})")
        if not np.array_equal(out[LABEL_INDEX], out[PROBABILITIES].argmax(axis=1)):
            problems.append(f"{name}: label_index is not the argmax of probabilities")
        names = [classes[i] for i in out[LABEL_INDEX]]
        if [v.decode() for v in out[LABEL]] != names:
            problems.append(f"{name}: label is not the class name of label_index")
    got = [v.decode() for v in loaded.signatures[CLASS_NAMES_SIGNATURE]()[
        CLASS_NAMES_SIGNATURE].numpy()]
    if got != classes:
        problems.append(f"class_names signature gives {got}, the model's classes are {classes}")
    asset = Path(path) / "assets" / LABELS_ASSET
    if not asset.is_file() or asset.read_text(encoding="utf-8").splitlines() != classes:
        problems.append(f"assets/{LABELS_ASSET} is missing or does not list {classes}")
    if problems:
        raise ExportVerificationError(f"SavedModel {str(path)!r}: " + "; ".join(problems))
    return Verification(str(path), len(frames), worst, agreement, checks)


def onnx_predictor(path: str | os.PathLike[str], threads: int | None = None
                   ) -> Callable[[np.ndarray], np.ndarray]:
    """``frames (N, H, W, 3) float32 -> probabilities`` with onnxruntime on the CPU."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def predict(frames: np.ndarray) -> np.ndarray:
        return session.run([PROBABILITIES], {IMAGES_INPUT: np.asarray(frames, np.float32)})[0]

    return predict


def _interpreter_class():
    # tf.lite.Interpreter is deprecated (it warns that LiteRT replaces it); prefer LiteRT.
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - the export extra installs ai-edge-litert
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806
    return Interpreter


def tflite_predictor(path: str | os.PathLike[str], threads: int | None = None
                     ) -> Callable[[np.ndarray], np.ndarray]:
    """``frames (N, H, W, 3) float32 -> probabilities`` with the LiteRT (TFLite) interpreter."""
    interpreter = _interpreter_class()(model_path=str(path), num_threads=threads)
    runner = interpreter.get_signature_runner()

    def predict(frames: np.ndarray) -> np.ndarray:
        return runner(**{IMAGES_INPUT: np.asarray(frames, np.float32)})[PROBABILITIES]

    return predict


def verify_file(path: str | os.PathLike[str], model, faces, *, atol: float | None = 1e-4,
                min_agreement: float | None = None, label_set=None) -> Verification:
    """Check an ONNX or TFLite file against the Keras model on ``faces``: probabilities within
    ``atol`` (fp32), or argmax agreement at least ``min_agreement`` (quantized). Raises
    ``ExportVerificationError`` if not; returns the numbers."""
    emotion = _resolve(model, label_set)
    size, _ = _geometry(emotion)
    frames = as_frames(faces, size)
    loader = onnx_predictor if str(path).endswith(".onnx") else tflite_predictor
    diff, agree = _compare(keras_probabilities(emotion, frames), loader(path)(frames))
    if atol is not None and diff > atol:
        raise ExportVerificationError(f"{str(path)!r}: probabilities differ from Keras by up to "
                                      f"{diff:.3g} (allowed {atol:g})")
    if min_agreement is not None and agree < min_agreement:
        raise ExportVerificationError(f"{str(path)!r}: its top class agrees with Keras on "
                                      f"{agree:.1%} of faces (needed {min_agreement:.0%})")
    return Verification(str(path), len(frames), diff, agree)


# --------------------------------------------------------------------------- ONNX and TFLite


def _folded_head(model):
    """(features model, head parameters) when the head is build_model's Dense > ReLU > BatchNorm
    > Dense > activation with every BatchNorm scale positive; None otherwise."""
    import keras

    try:
        dense, relu, norm, logits, act = (model.get_layer(name) for name in (
            "head_dense", "head_relu", "head_bn", "head_logits", "probabilities"))
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


def _edge_function(member):
    """The tf.function that ONNX and TFLite are converted from (frozen by the converters)."""
    import tensorflow as tf

    size, channels = member.input_size, member.channels
    folded = _folded_head(member.model)

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
        probabilities = forward(_to_model_input(images, channels))
        return {PROBABILITIES: probabilities, LABEL_INDEX: tf.argmax(probabilities, axis=-1)}

    return edge


def _single(model, label_set):
    from emokeras.inference import SexRoutedModel

    emotion = _resolve(model, label_set)
    if isinstance(emotion, SexRoutedModel):
        raise ConfigError("ONNX and TFLite take one model: export each sex's model "
                          "(routed.models['female'], ...), or use run_export, which does")
    return emotion


def _check_quantize(quantize: str, representative) -> None:
    if quantize not in QUANTIZATIONS:
        raise ConfigError(f"quantize must be one of {list(QUANTIZATIONS)}, got {quantize!r}")
    if quantize == "int8" and representative is None:
        raise ConfigError("int8 quantization needs representative face crops to calibrate on "
                          "(representative=..., --representative FOLDER)")


def export_onnx(model, path: str | os.PathLike[str], *, quantize: str = "none",
                representative=None, overwrite: bool = False, label_set=None) -> Path:
    """Write ``model`` as ONNX (tf2onnx, opset 17): ``images`` float32 [N, H, W, 3] in,
    ``probabilities`` and ``label_index`` out.

    ``quantize``: ``"none"``; ``"dynamic"`` (onnxruntime ``quantize_dynamic``: uint8 weights per
    channel, activations quantized on the fly); ``"int8"`` (``quantize_static``, QDQ, uint8
    activations and int8 per-channel weights in a 7-bit range, calibrated on ``representative``
    faces: an array or a folder of face images).
    """
    emotion = _single(model, label_set)
    faces = _representative(representative, emotion.input_size)
    return _write_onnx(emotion, {quantize: Path(path)}, faces, overwrite)[quantize]


def export_tflite(model, path: str | os.PathLike[str], *, quantize: str = "none",
                  representative=None, overwrite: bool = False, label_set=None) -> Path:
    """Write ``model`` as TFLite: signature ``serving_default``, ``images`` float32 [N, H, W, 3]
    in, ``probabilities`` and ``label_index`` out.

    ``quantize``: ``"none"``; ``"dynamic"`` (dynamic range: int8 weights, float activations);
    ``"int8"`` (full integer: every operation int8, calibrated on ``representative`` faces;
    float32 input and output, so clients send the same frames to every variant).
    """
    emotion = _single(model, label_set)
    faces = _representative(representative, emotion.input_size)
    return _write_tflite(emotion, {quantize: Path(path)}, faces, overwrite)[quantize]


def _check_variants(targets: Mapping[str, Path], faces, overwrite: bool) -> None:
    for quantize, target in targets.items():
        _check_quantize(quantize, faces)
        _check_target(target, overwrite)


def _write_onnx(member, targets: Mapping[str, Path], faces, overwrite: bool) -> dict[str, Path]:
    """Convert ``member`` once and write each quantization variant to its target."""
    import tf2onnx

    _check_variants(targets, faces, overwrite)
    edge = _edge_function(member)
    proto, _ = tf2onnx.convert.from_function(edge, input_signature=edge.input_signature,
                                             opset=ONNX_OPSET)
    with tempfile.TemporaryDirectory() as scratch:
        fp32 = Path(scratch) / "model.onnx"
        fp32.write_bytes(proto.SerializeToString())
        for quantize, target in targets.items():
            result = fp32 if quantize == "none" else _quantize_onnx(fp32, quantize, faces)
            _publish_file(result, target, overwrite)
            log.info("exported ONNX (%s) to %s", quantize, target)
    return dict(targets)


def _quantize_onnx(fp32: Path, quantize: str, faces: np.ndarray | None) -> Path:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # shape inference and graph optimization first (BatchNorm into Conv and the like), as
    # onnxruntime advises: without it static int8 loses MobileNetV2 (agreement 59% vs 95%)
    prepared = fp32.with_name("prepared.onnx")
    if not prepared.exists():
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    out = fp32.with_name(f"model_{quantize}.onnx")
    if quantize == "dynamic":
        # per channel: per-tensor weights lose MobileNetV2's depthwise convolutions
        quantize_dynamic(str(prepared), str(out), weight_type=QuantType.QUInt8, per_channel=True)
        return out

    class Faces(CalibrationDataReader):
        def __init__(self) -> None:
            self.rows = iter(range(len(faces)))

        def get_next(self):
            i = next(self.rows, None)
            return None if i is None else {IMAGES_INPUT: faces[i : i + 1]}

    # uint8 activations with int8 weights (U8S8): onnxruntime's fast int8 path on x86-64.
    # reduce_range (7-bit weights): without VNNI (AVX2-only CPUs such as many AMD EPYCs) the
    # U8S8 kernels saturate their 16-bit sums; argmax agreement with Keras on 280 PublicTest
    # faces there: 81% without it, 99% with it (the flip-only bundle).
    quantize_static(str(prepared), str(out), Faces(), quant_format=QuantFormat.QDQ,
                    per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    return out


def _write_tflite(member, targets: Mapping[str, Path], faces, overwrite: bool
                  ) -> dict[str, Path]:
    """Save ``member``'s function once and convert it to each quantization variant."""
    import tensorflow as tf

    _check_variants(targets, faces, overwrite)
    with tempfile.TemporaryDirectory() as scratch:
        # from a SavedModel (not the concrete function): the converter then freezes Keras'
        # variables into the file and keeps the output names
        module = tf.Module()
        module.model_variables = _variables([member.model])
        tf.saved_model.save(module, scratch, signatures={SERVING_SIGNATURE: _edge_function(member)})
        for quantize, target in targets.items():
            converter = tf.lite.TFLiteConverter.from_saved_model(scratch)
            if quantize != "none":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
            if quantize == "int8":
                converter.representative_dataset = lambda: (
                    {IMAGES_INPUT: faces[i : i + 1]} for i in range(len(faces)))
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            with warnings.catch_warnings():  # int8 calibration runs the deprecated interpreter
                warnings.filterwarnings("ignore", "(?s).*tf.lite.Interpreter is deprecated")
                flatbuffer = converter.convert()
            _check_target(target, overwrite)
            with atomic_write(target, "wb") as handle:
                handle.write(flatbuffer)
            log.info("exported TFLite (%s) to %s", quantize, target)
    return dict(targets)


def _publish_file(source: Path, target: Path, overwrite: bool) -> None:
    """Move a finished file into place: copied beside the target, then renamed over it."""
    _check_target(target, overwrite)
    with atomic_write(target, "wb") as handle, open(source, "rb") as data:
        shutil.copyfileobj(data, handle)


# --------------------------------------------------------------------------- the command


@dataclass(frozen=True)
class ExportResult:
    """What ``run_export`` wrote: every file or folder with its size and how it verified."""

    out_dir: Path
    entries: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "exports": self.entries}


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def _as_choices(values: str | Iterable[str], allowed: tuple[str, ...], what: str) -> list[str]:
    items = [v.strip() for v in values.split(",")] if isinstance(values, str) else list(values)
    items = [v for v in items if v]
    unknown = [v for v in items if v not in allowed]
    if unknown or not items:
        raise ConfigError(f"{what} must be a list of {list(allowed)}, got {items}")
    return list(dict.fromkeys(items))


def run_export(model, out_dir: str | os.PathLike[str],
               formats: str | Iterable[str] = FORMATS,
               quantize: str | Iterable[str] = ("none",), representative=None,
               overwrite: bool = False, *, version: int = 1, label_set=None,
               verify: bool = True) -> ExportResult:
    """Export ``model`` (None: the bundled model; a run folder; an EmotionModel, ...) in each of
    ``formats`` under ``out_dir``::

        out_dir/savedmodel/<version>/   TF Serving's base path is out_dir/savedmodel
        out_dir/onnx/model[_<sex>][_dynamic|_int8].onnx
        out_dir/tflite/model[_<sex>][_dynamic|_int8].tflite
        out_dir/labels.txt              class names, one a line, in output order
        out_dir/export.json             what was written, sizes, and how each verified

    ``quantize`` (ONNX and TFLite): any of ``none``, ``dynamic``, ``int8``; ``int8`` needs
    ``representative`` face crops (an array or a folder of face images), also used to verify.
    With ``verify``, every export is compared with Keras (on the representative faces, else on a
    fixed batch of random pixels): fp32 within 1e-5 (SavedModel) / 1e-4 (ONNX, TFLite); quantized
    files only report their argmax agreement.
    """
    formats = _as_choices(formats, FORMATS, "formats")
    quantize = _as_choices(quantize, QUANTIZATIONS, "quantize")
    emotion = _resolve(model, label_set)
    size, _ = _geometry(emotion)
    faces = _representative(representative, size)
    if "int8" in quantize and faces is None and {"onnx", "tflite"} & set(formats):
        _check_quantize("int8", None)
    out = Path(out_dir)
    plan: list[tuple[str, str, str | None, Path]] = []  # (format, quantize, sex, path)
    if "savedmodel" in formats:
        plan.append(("savedmodel", "none", None, out / "savedmodel" / str(version)))
    for fmt, suffix in (("onnx", ".onnx"), ("tflite", ".tflite")):
        if fmt not in formats:
            continue
        for sex, _member in _members(emotion):
            for q in quantize:
                stem = "_".join(["model", *([sex] if sex else []), *([q] if q != "none" else [])])
                plan.append((fmt, q, sex, out / fmt / f"{stem}{suffix}"))
    for _, _, _, path in plan:  # refuse before doing any work
        _check_target(path, overwrite)

    members = dict(_members(emotion))
    if "savedmodel" in formats:
        export_saved_model(emotion, out / "savedmodel", version, overwrite)
    for fmt in ("onnx", "tflite"):  # each model converted once, then its quantized variants
        for sex, member in members.items():
            targets = {q: path for f, q, s, path in plan if f == fmt and s == sex}
            if targets:
                writer = _write_onnx if fmt == "onnx" else _write_tflite
                writer(member, targets, faces, overwrite)

    if faces is not None:
        check_faces, faces_note = faces, f"{len(faces)} representative faces"
    else:
        check_faces = np.random.default_rng(0).integers(0, 256, (16, size, size, 3)).astype(
            np.float32)
        faces_note = "16 images of random pixels (no representative faces given)"
    # a routed model's check faces alternate between the sexes
    sexes = None if None in members else [list(members)[i % len(members)]
                                          for i in range(len(check_faces))]
    reference = {sex: keras_probabilities(member, check_faces) for sex, member in members.items()}
    entries = []
    for fmt, q, sex, path in plan:
        entry = {"format": fmt, "quantize": q, "sex": sex, "path": str(path.relative_to(out)),
                 "bytes": _size(path)}
        if verify:
            if fmt == "savedmodel":
                result = verify_saved_model(path, emotion, check_faces, sexes=sexes)
                diff, agree = result.max_abs_diff, result.argmax_agreement
            else:
                predictor = onnx_predictor if fmt == "onnx" else tflite_predictor
                diff, agree = _compare(reference[sex], predictor(path)(check_faces))
                if q == "none" and diff > 1e-4:
                    raise ExportVerificationError(
                        f"{str(path)!r}: probabilities differ from Keras by up to {diff:.3g} "
                        "(allowed 1e-4)")
            entry.update(verified_on=faces_note, max_abs_diff_vs_keras=diff,
                         argmax_agreement_vs_keras=agree)
        entries.append(entry)
    _write_labels(out / LABELS_ASSET, emotion.label_set.classes)
    size_note = {"input": {"name": IMAGES_INPUT, "shape": [None, size, size, 3],
                           "pixels": "RGB 0-255"},
                 "classes": list(emotion.label_set.classes),
                 "sex_input": None if None in members else list(members)}
    result = ExportResult(out, entries)
    write_json_atomic(out / "export.json", {**result.to_dict(), **size_note})
    return result
