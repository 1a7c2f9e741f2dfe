"""The transfer-learning recipe: phased fine-tuning with stock Keras callbacks, resumable.

A run is a sequence of phases. Each phase freezes the backbone as it says (head only, top N
layers, from a named block, or all; BatchNorm always frozen), recompiles a fresh AdamW whose
learning rate warms up linearly then follows a cosine, and fits. The backbone's variables learn at
``backbone_lr_multiplier`` times the head's rate. A head-only phase can train on backbone features
computed once (the frozen-feature cache) instead of running the frozen backbone every epoch.

With a run folder, every phase gets stock callbacks (EarlyStopping restoring the best weights,
ModelCheckpoint to ``.keras``, CSVLogger, TensorBoard, BackupAndRestore), and ``state.json``
records finished phases, so a killed run started again with the same call resumes: finished phases
are skipped (their weights reloaded) and the unfinished one continues from its last epoch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import keras
import numpy as np
import tensorflow as tf

from emokeras.datasets.pipeline import AugmentConfig, class_weights, make_dataset, steps_per_epoch
from emokeras.datasets.sources import Source, labels_of
from emokeras.errors import ConfigError
from emokeras.fileio import read_csv, write_json_atomic
from emokeras.models import HeadConfig, freeze_backbone, get_backbone, split_at_backbone

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Phase:
    """One phase: what of the backbone trains, for how many epochs, at what peak learning rate.

    ``trainable`` is 0 (head only), a number of top backbone layers, a block name (``"block5"``)
    or ``"all"``; see :func:`emokeras.models.freeze_backbone`.
    """

    trainable: int | str
    epochs: int
    learning_rate: float

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"a phase needs epochs >= 1, got {self.epochs}")
        if not self.learning_rate > 0:
            raise ConfigError(f"a phase needs a learning rate > 0, got {self.learning_rate}")

    @classmethod
    def parse(cls, text: str) -> Phase:
        """Read ``TRAINABLE:EPOCHS:LR``, e.g. ``0:3:1e-3``, ``block5:5:1e-4``, ``all:10:3e-5``."""
        parts = text.strip().split(":")
        if len(parts) != 3:
            raise ConfigError(f"a phase is TRAINABLE:EPOCHS:LR (e.g. 0:3:1e-3), got {text!r}")
        trainable: int | str = int(parts[0]) if parts[0].isdigit() else parts[0]
        try:
            return cls(trainable, int(parts[1]), float(parts[2]))
        except ValueError as error:
            raise ConfigError(f"phase {text!r}: {error}") from None

    def __str__(self) -> str:
        return f"{self.trainable}:{self.epochs}:{self.learning_rate:g}"

    @property
    def head_only(self) -> bool:
        return self.trainable == 0


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs; written to the run folder as ``config.json``."""

    backbone: str = "mobilenet_v2"
    weights: str | None = "imagenet"
    input_size: int | None = None
    channels: int = 3
    head: HeadConfig = field(default_factory=HeadConfig)
    phases: tuple[Phase, ...] = (Phase(0, 5, 1e-3), Phase("all", 10, 1e-4))
    batch_size: int = 32
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    #: "inverse": loss weighted by inverse class frequency; "sampling": balanced batches.
    class_balance: Literal["none", "inverse", "sampling"] = "inverse"
    #: fraction of each phase's steps spent warming the learning rate up linearly
    warmup_fraction: float = 0.1
    #: "cosine": warmup then cosine decay; "plateau": constant, cut by ReduceLROnPlateau
    lr_schedule: Literal["cosine", "plateau"] = "cosine"
    backbone_lr_multiplier: float = 0.1
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    feature_cache: bool = True
    early_stopping_patience: int = 5
    reduce_lr_patience: int = 2
    monitor: str = "val_accuracy"
    mixed_precision: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.phases:
            raise ConfigError("a run needs at least one phase")
        for name, allowed in (
            ("class_balance", ("none", "inverse", "sampling")),
            ("lr_schedule", ("cosine", "plateau")),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not 0 <= self.warmup_fraction < 1:
            raise ConfigError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["phases"] = [str(p) for p in self.phases]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a (possibly partial) nested dict, as ``config.json`` or ``--config`` hold."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"unknown config keys {unknown}; known: {sorted(known)}")
        values: dict[str, Any] = {}
        nested = {"head": HeadConfig, "augment": AugmentConfig}
        for key, value in data.items():
            if key in nested and isinstance(value, dict):
                value = _dataclass_from_dict(nested[key], value, key)
            elif key == "phases":
                value = tuple(p if isinstance(p, Phase) else Phase.parse(str(p)) for p in value)
            values[key] = value
        return cls(**values)


def _dataclass_from_dict(cls, data: dict[str, Any], where: str):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown keys {unknown} in {where!r}; known: {sorted(known)}")
    return cls(**data)


@keras.saving.register_keras_serializable(package="emokeras")
class DiscriminativeAdamW(keras.optimizers.AdamW):
    """AdamW whose backbone variables learn at ``backbone_lr_multiplier`` times the rate.

    Which variables are the backbone's is told with :meth:`set_backbone_variables` before the
    first step; variable paths cannot say it, since Keras drops the nested model's name from them
    once a model is saved and reloaded. Keras' own variable index is used to match, because under
    a distribution strategy the update step sees per-replica copies, not the variables themselves.
    """

    def __init__(self, *args, backbone_lr_multiplier: float = 1.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.backbone_lr_multiplier = float(backbone_lr_multiplier)
        self._backbone_variable_ids: set[int] = set()
        self._backbone_indices: set[int] = set()

    def set_backbone_variables(self, variables: Sequence[keras.Variable]) -> None:
        self._backbone_variable_ids = {id(v) for v in variables}

    def build(self, variables) -> None:
        super().build(variables)
        self._backbone_indices = {
            i for i, v in enumerate(variables) if id(v) in self._backbone_variable_ids
        }

    def _apply_weight_decay(self, variables) -> None:
        """No-op: the decay is applied in :meth:`update_step`, at each variable's own rate."""

    def update_step(self, gradient, variable, learning_rate):
        if self._get_variable_index(variable) in self._backbone_indices:
            learning_rate = learning_rate * self.backbone_lr_multiplier
        if self.weight_decay and self._use_weight_decay(variable):
            # decoupled weight decay, as AdamW does it, but scaled with the variable's rate
            rate = keras.ops.cast(learning_rate, variable.dtype)
            decay = keras.ops.cast(self.weight_decay, variable.dtype)
            self.assign_sub(variable, variable * decay * rate)
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "backbone_lr_multiplier": self.backbone_lr_multiplier}


def learning_rate_for(phase: Phase, steps: int, config: TrainConfig):
    """The phase's peak rate, as linear warmup then cosine decay (or constant for plateau)."""
    if config.lr_schedule == "plateau":
        return phase.learning_rate
    total = max(1, phase.epochs * steps)
    warmup = int(total * config.warmup_fraction)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else phase.learning_rate,
        decay_steps=max(1, total - warmup),
        warmup_target=phase.learning_rate if warmup else None,
        warmup_steps=warmup,
    )


@keras.saving.register_keras_serializable(package="emokeras")
def top_label_accuracy(y_true, y_pred):
    """Multi-label accuracy: 1 where the top-scored class is one of the item's positive labels."""
    top = keras.ops.expand_dims(keras.ops.argmax(y_pred, axis=-1), -1)
    hit = keras.ops.take_along_axis(y_true, top, axis=-1)[..., 0]
    return keras.ops.cast(hit > 0.5, "float32")


def loss_and_metrics(config: TrainConfig) -> tuple[keras.losses.Loss, list]:
    """The loss and metrics of the config's head.

    Softmax: categorical cross-entropy against one-hot labels or soft targets (vote
    distributions); ``accuracy`` is argmax agreement with the (plurality) target. Sigmoid
    (multi-label): binary cross-entropy against multi-hot targets; ``accuracy`` is
    :func:`top_label_accuracy`. Both keep the config's label smoothing.
    """
    if config.head.activation == "sigmoid":
        loss = keras.losses.BinaryCrossentropy(label_smoothing=config.label_smoothing)
        return loss, [keras.metrics.MeanMetricWrapper(top_label_accuracy, name="accuracy")]
    return keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing), [
        "accuracy"
    ]


def compile_for_phase(
    model: keras.Model, phase: Phase, steps: int, config: TrainConfig, backbone_variables=()
) -> None:
    optimizer = DiscriminativeAdamW(
        learning_rate=learning_rate_for(phase, steps, config),
        weight_decay=config.weight_decay,
        backbone_lr_multiplier=config.backbone_lr_multiplier,
    )
    optimizer.set_backbone_variables(backbone_variables)
    loss, metrics = loss_and_metrics(config)
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)


def make_callbacks(
    config: TrainConfig, run_dir: Path | None, phase_index: int, *, checkpoint: bool = True
) -> list[keras.callbacks.Callback]:
    """The stock callbacks of one phase; without a run folder, only those that write nothing."""
    mode = "min" if "loss" in config.monitor else "max"
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.EarlyStopping(
            monitor=config.monitor, mode=mode, patience=config.early_stopping_patience,
            restore_best_weights=True,
        ),
    ]
    if config.lr_schedule == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=config.monitor, mode=mode, factor=0.3,
                patience=config.reduce_lr_patience, min_lr=1e-7,
            )
        )
    if run_dir is None:
        return callbacks
    if checkpoint:
        callbacks.append(
            keras.callbacks.ModelCheckpoint(
                run_dir / "checkpoints" / "best.keras", monitor=config.monitor, mode=mode,
                save_best_only=True,
            )
        )
    callbacks += [
        keras.callbacks.CSVLogger(str(_csv_log(run_dir, phase_index)), append=True),
        keras.callbacks.TensorBoard(log_dir=str(run_dir / "logs" / f"phase{phase_index}")),
        # Kept after the phase ends (delete_checkpoint=False): state.json, written after it,
        # decides whether the phase is done, so a kill in between redoes nothing but that step.
        # double_checkpoint: Keras writes the backup in place, so a kill mid-write leaves a
        # broken file; it then falls back to the previous epoch's copy.
        keras.callbacks.BackupAndRestore(
            str(run_dir / "backup" / f"phase{phase_index}"), delete_checkpoint=False,
            double_checkpoint=True,
        ),
    ]
    return callbacks


@dataclass(frozen=True)
class FitResult:
    """What a run produced: one row per epoch across phases (``phase``, ``epoch``, metrics)."""

    history: tuple[dict[str, float], ...]
    phases_run: tuple[int, ...]
    phases_skipped: tuple[int, ...]

    def series(self, metric: str) -> list[float]:
        return [row[metric] for row in self.history if metric in row]

    @property
    def best(self) -> float | None:
        values = self.series("val_accuracy")
        return max(values) if values else None


def _rows_from_keras(phase: int, history: dict[str, list[float]]) -> list[dict[str, float]]:
    epochs = len(next(iter(history.values()), []))
    return [
        {"phase": phase, "epoch": e, **{k: float(v[e]) for k, v in history.items()}}
        for e in range(epochs)
    ]


def _rows_from_csv_log(phase: int, path: Path) -> list[dict[str, float]]:
    """The phase's epochs as CSVLogger wrote them, across a kill and resume.

    An epoch cut short by a kill is run again after the resume and logged twice; the later row
    is the one whose weights went on, so it wins.
    """
    by_epoch = {int(row["epoch"]): row for row in read_csv(path)} if path.exists() else {}
    rows = []
    for epoch in sorted(by_epoch):
        metrics = {k: float(v) for k, v in by_epoch[epoch].items() if k != "epoch"}
        rows.append({"phase": phase, "epoch": epoch, **metrics})
    return rows


def _read_state(run_dir: Path | None) -> dict[str, Any]:
    if run_dir is None or not (run_dir / "state.json").exists():
        return {"completed_phases": 0}
    return json.loads((run_dir / "state.json").read_text())


def _write_state(run_dir: Path, state: dict[str, Any]) -> None:
    write_json_atomic(run_dir / "state.json", state)


def _csv_log(run_dir: Path, index: int) -> Path:
    return run_dir / "logs" / f"history_phase{index}.csv"


def _phase_weights(run_dir: Path, index: int) -> Path:
    return run_dir / "phases" / f"phase{index}.weights.h5"


def fit(
    model: keras.Model,
    train: Source,
    val: Source,
    config: TrainConfig = TrainConfig(),
    *,
    run_dir: str | Path | None = None,
    strategy: tf.distribute.Strategy | None = None,
    extra_callbacks: Sequence[keras.callbacks.Callback] = (),
) -> FitResult:
    """Fine-tune ``model`` (from :func:`emokeras.models.build_model`) phase by phase.

    ``train``/``val`` are ImageSets or ``(images, labels)`` arrays; images go in raw (0-255) at
    the model's input size. Labels may also be float targets ``(N, classes)``: soft labels (vote
    distributions) for a softmax head, multi-hot labels for a sigmoid head (``config.head``
    says which; see :func:`loss_and_metrics`). With ``run_dir``, callbacks write there and a
    killed run resumes when called again. Build and call under ``strategy`` to train on several
    devices. ``extra_callbacks`` join every phase's stock callbacks.
    """
    run_dir = None if run_dir is None else Path(run_dir)
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
    _, height, width, channels = model.input_shape
    num_classes = model.output_shape[-1]
    data_args = {"num_classes": num_classes, "input_size": height, "channels": channels}
    if height != width:
        raise ConfigError(f"models must take square input, got {height}x{width}")
    _check_head_matches(model, config)
    if config.class_balance == "sampling" and labels_of(train).ndim == 2:
        raise ConfigError("class_balance 'sampling' needs integer labels, not soft targets")

    balanced = config.class_balance == "sampling"
    train_ds = make_dataset(
        train, **data_args, batch_size=config.batch_size, training=True, augment=config.augment,
        balanced=balanced, seed=config.seed,
    )
    val_ds = make_dataset(val, **data_args, batch_size=config.batch_size)
    steps = steps_per_epoch(len(labels_of(train)), config.batch_size)
    weights = None
    if config.class_balance == "inverse":
        weights = class_weights(_hard_labels(train), num_classes)

    state = _read_state(run_dir)
    done = state["completed_phases"]
    if done:
        model.load_weights(_phase_weights(run_dir, done - 1))
        log.info("resuming %s: phases 0..%d done, weights reloaded", run_dir, done - 1)

    history: list[dict[str, float]] = []
    if run_dir is not None:
        for index in range(done):
            history += _rows_from_csv_log(index, _csv_log(run_dir, index))
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    for index, phase in enumerate(config.phases):
        if index < done:
            continue
        summary = freeze_backbone(model, phase.trainable)
        log.info("phase %d (%s): %d layers trainable", index, phase, len(summary.trainable_layers))
        if phase.head_only and config.feature_cache:
            phase_history = _fit_head_on_cached_features(
                model, train, val, phase, config, run_dir, index, data_args, weights, scope,
                extra_callbacks,
            )
        else:
            with scope:
                compile_for_phase(
                    model, phase, steps, config, get_backbone(model).trainable_variables
                )
            fitted = model.fit(
                train_ds, validation_data=val_ds, epochs=phase.epochs,
                steps_per_epoch=steps if balanced else None, class_weight=weights, shuffle=False,
                callbacks=[*make_callbacks(config, run_dir, index), *extra_callbacks], verbose=2,
            )
            phase_history = fitted.history
        if run_dir is None:
            history += _rows_from_keras(index, phase_history)
        else:
            history += _rows_from_csv_log(index, _csv_log(run_dir, index))
            _phase_weights(run_dir, index).parent.mkdir(exist_ok=True)
            model.save_weights(_phase_weights(run_dir, index))
            _write_state(run_dir, {"completed_phases": index + 1})
            shutil.rmtree(run_dir / "backup" / f"phase{index}", ignore_errors=True)
    ran = tuple(range(done, len(config.phases)))
    return FitResult(tuple(history), ran, tuple(range(done)))


def _hard_labels(source: Source) -> np.ndarray:
    """Integer labels; for float targets (N, K), each item's top class."""
    labels = labels_of(source)
    return labels.argmax(axis=1) if labels.ndim == 2 else labels


def _targets(source: Source, num_classes: int) -> np.ndarray:
    """One-hot labels, or the source's own float targets (N, K)."""
    labels = labels_of(source)
    if labels.ndim == 2:
        return labels.astype("float32")
    return keras.utils.to_categorical(labels, num_classes)


def _check_head_matches(model: keras.Model, config: TrainConfig) -> None:
    """ConfigError when the model's output activation is not the one the config trains for."""
    try:
        activation = model.get_layer("probabilities").activation
    except (ValueError, AttributeError):
        return  # not a build_model model: nothing to check against
    name = getattr(activation, "__name__", None)
    if name in ("softmax", "sigmoid") and name != config.head.activation:
        raise ConfigError(
            f"the model's output activation is {name} but config.head.activation is "
            f"{config.head.activation!r}: the loss would not match the head"
        )


def compute_features(
    extractor: keras.Model, source: Source, data_args: dict[str, int], batch_size: int
) -> np.ndarray:
    """Pooled backbone features of every item, in order (no augmentation)."""
    dataset = make_dataset(source, **data_args, batch_size=batch_size)
    return extractor.predict(dataset.map(lambda x, y: x), verbose=0)


def _fit_head_on_cached_features(
    model, train, val, phase, config, run_dir, index, data_args, weights, scope, extra_callbacks
) -> dict[str, list[float]]:
    """Train the head on backbone features computed once; the head's layers are the model's own.

    Augmentation and MixUp need the images, so they do not apply here; the phases that train
    the backbone use them.
    """
    extractor, head = split_at_backbone(model)
    num_classes = data_args["num_classes"]
    features = {
        name: compute_features(extractor, source, data_args, config.batch_size)
        for name, source in (("train", train), ("val", val))
    }
    one_hot = {
        name: _targets(source, num_classes) for name, source in (("train", train), ("val", val))
    }
    steps = steps_per_epoch(len(features["train"]), config.batch_size)
    with scope:
        compile_for_phase(head, phase, steps, config)
    fitted = head.fit(
        features["train"], one_hot["train"], validation_data=(features["val"], one_hot["val"]),
        batch_size=config.batch_size, epochs=phase.epochs, class_weight=weights, shuffle=True,
        callbacks=[*make_callbacks(config, run_dir, index, checkpoint=False), *extra_callbacks],
        verbose=2,
    )
    return fitted.history
