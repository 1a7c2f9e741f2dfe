"""Checks that an export computes what the Keras model computes, on the same faces.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emokeras.errors import ExportVerificationError
from emokeras.export.graph import (
    CLASS_NAMES_SIGNATURE,
    IMAGES_INPUT,
    LABEL,
    LABEL_INDEX,
    LABELS_ASSET,
    PROBABILITIES,
    SERVING_SIGNATURE,
    SEX_INPUT,
    UINT8_SIGNATURE,
    as_frames,
    geometry,
    keras_probabilities,
    resolve,
)
from emokeras.export.onnx import onnx_predictor
from emokeras.export.serving_client import run_signature
from emokeras.export.tflite import tflite_predictor


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


def compare(reference: np.ndarray, got: np.ndarray) -> tuple[float, float]:
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

    emotion = resolve(model, label_set)
    size, _ = geometry(emotion)
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
        diff, agree = compare(reference, out[PROBABILITIES])
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


def verify_file(path: str | os.PathLike[str], model, faces, *, atol: float | None = 1e-4,
                min_agreement: float | None = None, label_set=None) -> Verification:
    """Check an ONNX or TFLite file against the Keras model on ``faces``: probabilities within
    ``atol`` (fp32), or argmax agreement at least ``min_agreement`` (quantized). Raises
    ``ExportVerificationError`` if not; returns the numbers."""
    emotion = resolve(model, label_set)
    size, _ = geometry(emotion)
    frames = as_frames(faces, size)
    return check_file(path, keras_probabilities(emotion, frames), frames, atol=atol,
                      min_agreement=min_agreement)


def check_file(path: str | os.PathLike[str], reference: np.ndarray, frames: np.ndarray, *,
               atol: float | None = 1e-4, min_agreement: float | None = None) -> Verification:
    """Run an ONNX or TFLite file on ``frames`` and compare it with the ``reference``
    probabilities (``keras_probabilities``), as :func:`verify_file` describes."""
    loader = onnx_predictor if str(path).endswith(".onnx") else tflite_predictor
    diff, agree = compare(reference, loader(path)(frames))
    if atol is not None and diff > atol:
        raise ExportVerificationError(f"{str(path)!r}: probabilities differ from Keras by up to "
                                      f"{diff:.3g} (allowed {atol:g})")
    if min_agreement is not None and agree < min_agreement:
        raise ExportVerificationError(f"{str(path)!r}: its top class agrees with Keras on "
                                      f"{agree:.1%} of faces (needed {min_agreement:.0%})")
    return Verification(str(path), len(frames), diff, agree)
