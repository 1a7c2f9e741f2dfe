"""The SavedModel in TF Serving's layout (``<base_dir>/<version>/``, see the package's
docstring for its signatures), and what its weights weigh.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from emokeras.errors import ConfigError, ExportExistsError
from emokeras.export.files import write_labels_txt
from emokeras.export.graph import LABELS_ASSET, model_variables, resolve, serving_module
from emokeras.fileio import atomic_folder, check_target, remove_partials
from emokeras.model import members as model_members

log = logging.getLogger(__name__)


def export_saved_model(model, base_dir: str | os.PathLike[str], version: int = 1,
                       overwrite: bool = False, *, label_set=None) -> Path:
    """Write ``model`` as a SavedModel in TF Serving's layout: ``<base_dir>/<version>/``.

    ``model``: None (the bundled model), a run folder, an EmotionModel, a SexRoutedModel, or a
    Keras model with its ``label_set``. The signatures are described in this module's docstring.
    The folder is built beside the target and renamed into place; a version folder that exists
    and is not empty raises ``ExportExistsError`` unless ``overwrite``. The hidden build folders
    that killed exports left in ``base_dir`` are deleted first (so do not run two exports into
    one ``base_dir`` at once). Returns the version folder.
    """
    import tensorflow as tf

    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ConfigError(
            f"version must be an int >= 0 (TF Serving's folder name), got {version!r}")
    emotion = resolve(model, label_set)
    target = Path(base_dir) / str(version)
    check_target(target, overwrite, ExportExistsError)  # a refused export deletes nothing
    # a killed export's build folder (.1.partial-*) is a whole SavedModel's size, and no rerun
    # would ever reuse it; swept before this export makes its own
    swept = remove_partials(target.parent, folders=True)
    if swept:
        log.info("removed %d unfinished export(s) left in %s", swept, target.parent)
    building = atomic_folder(target, overwrite, ExportExistsError)
    with building as work, tempfile.TemporaryDirectory() as scratch:
        labels = write_labels_txt(Path(scratch) / LABELS_ASSET, emotion.label_set.classes)
        module, signatures = serving_module(emotion, labels)
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
    models = [m.model for _, m in model_members(model)] if emotion_like else [model]
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype.as_numpy_dtype).itemsize
               for v in model_variables(models))
