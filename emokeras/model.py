"""The model objects: an :class:`EmotionModel` (a Keras classifier with the label set of its
outputs), a :class:`SexRoutedModel` (one per sex; it owns the routing of faces to them), and
:func:`resolve_model` / :func:`load_model`, which make one from what a caller gives.

Inference (``emokeras.inference``), export and explain take their models from here; run folders
are read and written through ``emokeras.run_folder``. Importing this module does not import Keras.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from emokeras.bundled import BUNDLED_MODEL_DIR, load_bundled_model
from emokeras.errors import ConfigError
from emokeras.images import resize
from emokeras.labels import SEXES, LabelSet
from emokeras.run_folder import (
    DEFAULT_FRAMING,
    ROUTING_FILE,
    CropFraming,
    RunFolder,
    load_run,
    read_framing,
    read_routing,
    save_model_atomic,
    write_framing,
    write_labels,
    write_routing,
)


def prepare_crop(crop: np.ndarray, input_size: int, channels: int) -> np.ndarray:
    """A face crop (RGB or gray, any size) as a model with this input takes it: resized,
    converted to its channels, float32 0-255, (input_size, input_size, channels)."""
    crop = resize(crop, input_size)
    if crop.ndim == 2:
        crop = crop[..., np.newaxis]
    if channels == 1 and crop.shape[-1] == 3:
        crop = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)[..., np.newaxis]
    elif channels == 3 and crop.shape[-1] == 1:
        crop = np.repeat(crop, 3, axis=-1)
    return crop.astype(np.float32)


@dataclass(frozen=True, eq=False)
class EmotionModel:
    """A Keras classifier (raw pixels in, probabilities out) with the label set of its outputs,
    and how to frame a detected face for it (``framing``; None: :data:`DEFAULT_FRAMING`)."""

    model: Any  # keras.Model; typed loosely so importing this module does not import Keras
    label_set: LabelSet
    # keyword-only so that subclasses (AudioEmotionModel) can add positional fields
    framing: CropFraming | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        classes = self.model.output_shape[-1]
        if classes != len(self.label_set):
            raise ConfigError(
                f"the model has {classes} outputs but label set {self.label_set.name!r} has "
                f"{len(self.label_set)} classes"
            )

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> EmotionModel:
        """From a run folder written by ``train.py`` (model.keras + labels.json)."""
        model, label_set = load_run(run_dir)
        return cls(model, label_set, framing=read_framing(run_dir))

    def save(self, run_dir: str | os.PathLike[str]) -> Path:
        """Write a run folder that ``load`` reads back: model.keras, labels.json, and
        framing.json where the model has a framing."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        save_model_atomic(self.model, run_dir / "model.keras")
        write_labels(run_dir, self.label_set)
        if self.framing is not None:
            write_framing(run_dir, self.framing)
        return run_dir

    def single(self, views: bool = False) -> EmotionModel:
        """The fast form of an ensemble: its first member alone, without the test-time views
        (for the bundled model, 1/12 of the compute). With ``views``, the first member keeps the
        ensemble's views (mirror, crops): for the bundled model a third of the compute, and
        much of the other members' gain (benchmarks/README.md, "Fast forms"). A model that is no
        ensemble is itself."""
        from emokeras.models.ensemble import build_ensemble, ensemble_members, ensemble_views

        members = ensemble_members(self.model)
        if not members:
            return self
        flip, crops = ensemble_views(self.model)
        if views and (flip or crops):
            # a new graph around the same member layer: its weights are shared, not copied
            model = build_ensemble(members[:1], flip=flip, crops=crops,
                                   name=f"{self.model.name}_first_member")
        else:
            model = members[0]
        return EmotionModel(model, self.label_set, framing=self.framing)

    @property
    def input_size(self) -> int:
        return int(self.model.input_shape[1])

    @property
    def channels(self) -> int:
        return int(self.model.input_shape[-1])

    def prepare(self, crop: np.ndarray) -> np.ndarray:
        """An RGB (or gray) uint8 crop as the model takes it: its size, its channels, float32."""
        return prepare_crop(crop, self.input_size, self.channels)

    def predict(self, crops: Iterable[np.ndarray]) -> np.ndarray:
        """Probabilities (N, classes) for face crops of any size."""
        batch = np.stack([self.prepare(c) for c in crops])
        # predict_on_batch runs a traced graph without predict()'s per-call setup (which
        # dominates on the small batches a video gives); calling the model eagerly, op by op,
        # measured 10x slower for one face
        return np.asarray(self.model.predict_on_batch(batch))


@dataclass(frozen=True, eq=False)
class SexRoutedModel:
    """One EmotionModel per sex: each video (or face) goes to the model of its sex, detected or
    given. Accepted wherever a model is; ``train.py --by-sex`` writes its run folder.

    It owns the routing: :meth:`sexes_for` (each face's sex), :meth:`route` (NumPy: inference
    and export's Keras reference) and :meth:`route_graph` (TensorFlow: the SavedModel's serving
    graph) send each row to its sex's model.
    """

    models: dict[str, EmotionModel]

    def __post_init__(self) -> None:
        if set(self.models) != set(SEXES):
            raise ConfigError(f"a sex-routed model needs one model for each of {SEXES}, "
                              f"got {sorted(self.models)}")
        classes = {m.label_set.classes for m in self.models.values()}
        if len(classes) != 1:
            raise ConfigError("the models of a sex-routed model must share one label set")

    @property
    def label_set(self) -> LabelSet:
        return next(iter(self.models.values())).label_set

    def single(self, views: bool = False) -> SexRoutedModel:
        """Each sex's model in its fast form (:meth:`EmotionModel.single`)."""
        return SexRoutedModel({sex: model.single(views) for sex, model in self.models.items()})

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> SexRoutedModel:
        """From a run folder with ``routing.json`` ({sex: "<sex>/model.keras"}); an entry that
        points outside the folder raises ``ModelLoadError``."""
        return cls({sex: EmotionModel.load(folder)
                    for sex, folder in read_routing(run_dir).items()})

    def save(self, run_dir: str | os.PathLike[str]) -> Path:
        run_dir = Path(run_dir)
        for sex, model in self.models.items():
            model.save(run_dir / sex)
        write_routing(run_dir, self.models)
        return run_dir

    def sexes_for(self, crops: Sequence[np.ndarray], sex: str | None = None) -> list[str]:
        """Each crop's sex for routing: ``sex`` for all when it is one of SEXES, else each
        crop's as the default sex classifier sees it."""
        if sex in SEXES:
            return [sex] * len(crops)
        from emokeras.gender import default_sex_classifier

        return [SEXES[i] for i in default_sex_classifier().predict(crops).argmax(axis=1)]

    def route(self, items, sexes: Sequence[str],
              predict: Callable[[EmotionModel, Any], np.ndarray] | None = None) -> np.ndarray:
        """Probabilities (N, classes) of each item (a list of crops or an array of frames) from
        the model of its sex: ``predict(member, rows)`` on each sex's rows (default
        ``member.predict``). ``ConfigError`` unless there is one sex per item."""
        if sexes is None or len(sexes) != len(items):
            raise ConfigError("a sex-routed model needs one sex per face")
        predict = predict or (lambda member, rows: member.predict(rows))
        sexes = np.asarray(sexes, dtype=object)
        out = np.empty((len(items), len(self.label_set)), np.float32)
        for sex, member in self.models.items():
            rows = np.flatnonzero(sexes == sex)
            if len(rows):
                subset = (items[rows] if isinstance(items, np.ndarray)
                          else [items[i] for i in rows])
                out[rows] = predict(member, subset)
        return out

    def route_graph(self, x, sex):
        """:meth:`route` in TensorFlow, for the SavedModel's serving graph: ``x`` a batch of
        model inputs (a tensor), ``sex`` a string tensor with one of SEXES per row (asserted).
        Each model runs on its rows only, and never on an empty batch (BatchNorm fails on one)."""
        import tensorflow as tf

        classes = len(self.label_set)
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

        def run(model, part):
            return tf.cond(tf.shape(part)[0] > 0, lambda: model(part, training=False),
                           lambda: tf.zeros([0, classes], tf.float32))

        results = [run(self.models[name].model, parts[i]) for i, name in enumerate(SEXES)]
        return tf.dynamic_stitch(rows, results)


def route(emotion: EmotionModel | SexRoutedModel, crops: list[np.ndarray],
          sexes: list[str] | None) -> np.ndarray:
    """Probabilities of each crop from the model of its sex (``sexes``: one per crop, or None
    for a plain EmotionModel)."""
    if isinstance(emotion, EmotionModel):
        return emotion.predict(crops)
    return emotion.route(crops, sexes)


def crop_sexes(emotion, crops: list[np.ndarray], sex: str | None) -> list[str] | None:
    """Each crop's sex for routing: the given one, else detected per crop; None if unrouted."""
    if not isinstance(emotion, SexRoutedModel):
        return None
    return emotion.sexes_for(crops, sex)


def crop_size_for(emotion: EmotionModel | SexRoutedModel) -> int:
    """The side to cut face crops at for this model (the largest input of a routed pair)."""
    models = emotion.models.values() if isinstance(emotion, SexRoutedModel) else [emotion]
    return max(m.input_size for m in models)


def crop_framing_for(emotion: EmotionModel | SexRoutedModel) -> CropFraming:
    """How to cut detected faces for this model: its run folder's framing.json, else
    :data:`DEFAULT_FRAMING` (margin 0.2, no shift). A routed pair's members are cut once for
    both, so they must agree (``ConfigError`` otherwise)."""
    models = emotion.models.values() if isinstance(emotion, SexRoutedModel) else [emotion]
    framings = {getattr(m, "framing", None) or DEFAULT_FRAMING for m in models}
    if len(framings) != 1:
        raise ConfigError(f"the models of a sex-routed model frame faces differently: "
                          f"{sorted(framings, key=repr)}")
    return framings.pop()


def crop_margin_for(emotion: EmotionModel | SexRoutedModel) -> float:
    """The crop margin (a fraction of the box on each side) for this model's faces."""
    return crop_framing_for(emotion).margin


def members(emotion: EmotionModel | SexRoutedModel) -> list[tuple[str | None, EmotionModel]]:
    """(sex, EmotionModel) pairs: one (None, model) for an unrouted model."""
    if isinstance(emotion, SexRoutedModel):
        return list(emotion.models.items())
    return [(None, emotion)]


def load_model(run_dir: str | os.PathLike[str]):
    """The model of a run folder, by its kind (``emokeras.run_folder.RunFolder``): an
    ``AudioEmotionModel`` (audio), a :class:`SexRoutedModel` (routed), else an
    :class:`EmotionModel` (plain, ensemble)."""
    folder = RunFolder.open(run_dir)
    if folder.kind == "routed":
        return SexRoutedModel.load(folder.path)
    if folder.kind == "audio":
        # in-function: emokeras.inference.audio builds on this module
        from emokeras.inference.audio import AudioEmotionModel

        return AudioEmotionModel.load(folder.path)
    return EmotionModel.load(folder.path)


def resolve_model(
    model=None, label_set: LabelSet | None = None
) -> EmotionModel | SexRoutedModel:
    """An EmotionModel from: None (the bundled model), a run folder, an EmotionModel, or a
    Keras model with its ``label_set``; a SexRoutedModel, or a run folder with routing.json,
    gives a SexRoutedModel."""
    if model is None:
        return EmotionModel(*load_bundled_model(), framing=read_framing(BUNDLED_MODEL_DIR))
    if isinstance(model, EmotionModel | SexRoutedModel):
        return model
    if isinstance(model, str | os.PathLike):
        if (Path(model) / ROUTING_FILE).is_file():
            return SexRoutedModel.load(model)
        return EmotionModel.load(model)
    if hasattr(model, "predict") and hasattr(model, "output_shape"):
        if label_set is None:
            raise ConfigError("a Keras model needs its label_set (which class each output is)")
        return EmotionModel(model, label_set)
    raise ConfigError(
        f"model must be None (the bundled model), a run folder, an EmotionModel, a "
        f"SexRoutedModel or a Keras model, got {type(model).__name__}"
    )
