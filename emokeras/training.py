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
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

# The configs live in emokeras.configs (no Keras, so command-line flags and --help stay
# light); re-exported here.
from emokeras.configs import Phase, TrainConfig, _dataclass_from_dict  # noqa: F401
from emokeras.datasets.pipeline import class_weights, make_dataset, steps_per_epoch
from emokeras.datasets.sources import Source, labels_of
from emokeras.errors import ConfigError
from emokeras.fileio import read_csv, write_json_atomic
from emokeras.models import freeze_backbone, get_backbone, split_at_backbone

log = logging.getLogger(__name__)

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


#: The power of the inverse class frequency that each loss-weighting ``class_balance`` uses.
_CLASS_WEIGHT_POWER = {"inverse": 1.0, "sqrt_inverse": 0.5}


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
        _AtomicBackupAndRestore(
            str(run_dir / "backup" / f"phase{phase_index}"), delete_checkpoint=False,
        ),
        # After the backup (callbacks run in order): once an epoch of this phase is backed up,
        # state.json exists, so a run killed even in phase 0 is known as resumed when started
        # again (and does not fetch pretrained weights that the backup then overwrites).
        _MarkStarted(run_dir, phase_index),
    ]
    return callbacks


class _AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """BackupAndRestore whose backup a kill never leaves half-written.

    Keras writes ``latest.weights.h5`` in place; its ``double_checkpoint`` copy covers a kill
    mid-write from the second epoch on, but a kill during a phase's first backup left a truncated
    file and no copy, and every later start of the run failed in h5py. Here the weights are
    written beside the backup and renamed over it, then the epoch count (atomically too): a kill
    at any moment leaves the previous backup or the new one. A backup that is unreadable anyway
    (a full disk, an older version's kill) is set aside with a warning and the phase starts over
    from its first epoch, as the run would without a backup.
    """

    def _save_model(self):
        backup = Path(self.backup_dir)
        backup.mkdir(parents=True, exist_ok=True)
        partial = backup / "latest.partial.weights.h5"  # Keras wants the .weights.h5 suffix
        self.model.save_weights(filepath=str(partial), overwrite=True)
        os.replace(partial, self._weights_path)
        write_json_atomic(self._training_metadata_path,
                          {"epoch": self._current_epoch, "batch": self._last_batch_seen})

    def on_train_begin(self, logs=None):
        try:
            super().on_train_begin(logs)
        except (OSError, ValueError, json.JSONDecodeError) as error:
            broken = Path(self.backup_dir)
            aside = broken.with_name(broken.name + ".broken")
            shutil.rmtree(aside, ignore_errors=True)
            broken.rename(aside)
            self.model._initial_epoch = None
            log.warning("backup %s is unreadable (%s); moved to %s, the phase starts over",
                        broken, error, aside)


class _MarkStarted(keras.callbacks.Callback):
    """Writes ``state.json`` (phases before this one done) when this phase's first epoch ends."""

    def __init__(self, run_dir: Path, phase_index: int) -> None:
        super().__init__()
        self._run_dir = run_dir
        self._phase_index = phase_index

    def on_epoch_end(self, epoch, logs=None):
        if not (self._run_dir / "state.json").exists():
            _write_state(self._run_dir, {"completed_phases": self._phase_index})


def _fit_phase(model: keras.Model, *args: Any, **kwargs: Any) -> keras.callbacks.History:
    """``model.fit`` that starts at the epoch its own BackupAndRestore says, and no other.

    BackupAndRestore resumes a phase by setting the model's ``_initial_epoch``, which Keras keeps
    on the model: the next phase's ``fit`` would start at that epoch too, and a phase shorter than
    it would run no epoch at all. Cleared before and after every phase.
    """
    model._initial_epoch = None
    try:
        return model.fit(*args, **kwargs)
    finally:
        model._initial_epoch = None


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
    if config.class_balance in _CLASS_WEIGHT_POWER:
        weights = class_weights(
            _hard_labels(train), num_classes, _CLASS_WEIGHT_POWER[config.class_balance]
        )

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
            fitted = _fit_phase(
                model, train_ds, validation_data=val_ds, epochs=phase.epochs,
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
    fitted = _fit_phase(
        head, features["train"], one_hot["train"],
        validation_data=(features["val"], one_hot["val"]),
        batch_size=config.batch_size, epochs=phase.epochs, class_weight=weights, shuffle=True,
        callbacks=[*make_callbacks(config, run_dir, index, checkpoint=False), *extra_callbacks],
        verbose=2,
    )
    return fitted.history
