"""``run_export``: every format and quantization of a model under one folder, each verified, with
``labels.txt`` and an ``export.json`` that lists them (:class:`ExportResult`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emokeras.errors import ConfigError
from emokeras.export.files import QUANTIZATIONS, check_quantize, check_target, write_labels_txt
from emokeras.export.graph import (
    IMAGES_INPUT,
    LABELS_ASSET,
    geometry,
    keras_probabilities,
    representative_faces,
    resolve,
)
from emokeras.export.onnx import write_onnx
from emokeras.export.saved_model import export_saved_model
from emokeras.export.tflite import write_tflite
from emokeras.export.verify import check_file, verify_saved_model
from emokeras.fileio import remove_partials, write_json_atomic
from emokeras.model import members as model_members

FORMATS = ("savedmodel", "onnx", "tflite")


@dataclass(frozen=True)
class ExportEntry:
    """One file or folder ``run_export`` wrote: what it is, where (relative to ``out_dir``), its
    size, and, when verified, on what and how it compared with Keras."""

    format: str  # "savedmodel", "onnx" or "tflite"
    quantize: str  # "none", "dynamic" or "int8"
    sex: str | None  # the sex's model of a routed model's ONNX/TFLite file, else None
    path: str
    bytes: int
    verified_on: str | None = None
    max_abs_diff_vs_keras: float | None = None
    argmax_agreement_vs_keras: float | None = None

    @property
    def verified(self) -> bool:
        return self.verified_on is not None

    def to_dict(self) -> dict[str, Any]:
        """As ``export.json`` lists it (the verification's keys only when verified)."""
        data = dataclasses.asdict(self)
        if not self.verified:
            for key in ("verified_on", "max_abs_diff_vs_keras", "argmax_agreement_vs_keras"):
                del data[key]
        return data


@dataclass(frozen=True)
class ExportResult:
    """What ``run_export`` wrote: every file or folder with its size and how it verified."""

    out_dir: Path
    entries: tuple[ExportEntry, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "exports": [e.to_dict() for e in self.entries]}


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
    emotion = resolve(model, label_set)
    size, _ = geometry(emotion)
    faces = representative_faces(representative, size)
    if "int8" in quantize and faces is None and {"onnx", "tflite"} & set(formats):
        check_quantize("int8", None)
    out = Path(out_dir)
    plan: list[tuple[str, str, str | None, Path]] = []  # (format, quantize, sex, path)
    if "savedmodel" in formats:
        plan.append(("savedmodel", "none", None, out / "savedmodel" / str(version)))
    for fmt, suffix in (("onnx", ".onnx"), ("tflite", ".tflite")):
        if fmt not in formats:
            continue
        for sex, _member in model_members(emotion):
            for q in quantize:
                stem = "_".join(["model", *([sex] if sex else []), *([q] if q != "none" else [])])
                plan.append((fmt, q, sex, out / fmt / f"{stem}{suffix}"))
    for _, _, _, path in plan:  # refuse before doing any work
        check_target(path, overwrite)
    # the half-written files of a killed export (export_saved_model sweeps its own folders)
    for folder in (out, out / "onnx", out / "tflite"):
        remove_partials(folder)

    members = dict(model_members(emotion))
    if "savedmodel" in formats:
        export_saved_model(emotion, out / "savedmodel", version, overwrite)
    for fmt in ("onnx", "tflite"):  # each model converted once, then its quantized variants
        for sex, member in members.items():
            targets = {q: path for f, q, s, path in plan if f == fmt and s == sex}
            if targets:
                writer = write_onnx if fmt == "onnx" else write_tflite
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
        entry = ExportEntry(fmt, q, sex, str(path.relative_to(out)), _size(path))
        if verify:
            if fmt == "savedmodel":
                check = verify_saved_model(path, emotion, check_faces, sexes=sexes)
            else:  # fp32 within 1e-4; a quantized file only reports its agreement
                check = check_file(path, reference[sex], check_faces,
                                   atol=1e-4 if q == "none" else None)
            entry = dataclasses.replace(
                entry, verified_on=faces_note, max_abs_diff_vs_keras=check.max_abs_diff,
                argmax_agreement_vs_keras=check.argmax_agreement)
        entries.append(entry)
    write_labels_txt(out / LABELS_ASSET, emotion.label_set.classes)
    size_note = {"input": {"name": IMAGES_INPUT, "shape": [None, size, size, 3],
                           "pixels": "RGB 0-255"},
                 "classes": list(emotion.label_set.classes),
                 "sex_input": None if None in members else list(members)}
    result = ExportResult(out, tuple(entries))
    write_json_atomic(out / "export.json", {**result.to_dict(), **size_note})
    return result
