"""What a TF Serving client sends and gets, for a SavedModel loaded here: a signature's inputs,
calling it as TF Serving does, a ``PredictRequest`` or a REST body as NumPy inputs, and the
REST API's answer.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from emokeras.errors import ConfigError
from emokeras.export.graph import SERVING_SIGNATURE


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
