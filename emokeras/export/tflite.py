"""TFLite export (``tf.lite.TFLiteConverter``) and the LiteRT interpreter that runs the files.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from emokeras.export.files import check_target, check_variants
from emokeras.export.graph import (
    IMAGES_INPUT,
    PROBABILITIES,
    SERVING_SIGNATURE,
    edge_function,
    model_variables,
    representative_faces,
    single_model,
)
from emokeras.fileio import atomic_write

log = logging.getLogger(__name__)


def export_tflite(model, path: str | os.PathLike[str], *, quantize: str = "none",
                  representative=None, overwrite: bool = False, label_set=None) -> Path:
    """Write ``model`` as TFLite: signature ``serving_default``, ``images`` float32 [N, H, W, 3]
    in, ``probabilities`` and ``label_index`` out.

    ``quantize``: ``"none"``; ``"dynamic"`` (dynamic range: int8 weights, float activations);
    ``"int8"`` (full integer: every operation int8, calibrated on ``representative`` faces;
    float32 input and output, so clients send the same frames to every variant).
    """
    emotion = single_model(model, label_set)
    faces = representative_faces(representative, emotion.input_size)
    return write_tflite(emotion, {quantize: Path(path)}, faces, overwrite)[quantize]


def write_tflite(member, targets: Mapping[str, Path], faces, overwrite: bool
                  ) -> dict[str, Path]:
    """Save ``member``'s function once and convert it to each quantization variant."""
    import tensorflow as tf

    check_variants(targets, faces, overwrite)
    with tempfile.TemporaryDirectory() as scratch:
        # from a SavedModel (not the concrete function): the converter then freezes Keras'
        # variables into the file and keeps the output names
        module = tf.Module()
        module.model_variables = model_variables([member.model])
        tf.saved_model.save(module, scratch, signatures={SERVING_SIGNATURE: edge_function(member)})
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
            check_target(target, overwrite)
            with atomic_write(target, "wb") as handle:
                handle.write(flatbuffer)
            log.info("exported TFLite (%s) to %s", quantize, target)
    return dict(targets)


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
