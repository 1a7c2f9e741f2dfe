"""A training run folder: build, fit (resumably), and write the model with everything beside it.

    saved_models/<run>/
      model.keras     the trained model (raw RGB in, probabilities out; needs no outside code)
      config.json     the resolved TrainConfig, plus the data and how it was split
      labels.json     the label set and its class names, in output order
      history.csv     one row per epoch across all phases
      metrics.json    validation (and test) accuracy, per-class scores, confusion matrices
      framing.json    how to cut a detected face as the training faces were (FER2013's measured
                      framing, a manifest's crop margin, else the default); not for audio
      checkpoints/ backup/ phases/ logs/ state.json   working files: best model, resume state

With ``by_sex`` there is one such folder per sex (``male/``, ``female/``) and a ``routing.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from emokeras.datasets.pipeline import SPECTROGRAM_AUGMENT, AugmentConfig
from emokeras.datasets.sources import DataSplits, limit, load_splits
from emokeras.errors import ConfigError, RunFolderError
from emokeras.evaluation import evaluate_source
from emokeras.fileio import write_csv_atomic, write_json_atomic
from emokeras.labels import SEXES, LabelSet
from emokeras.models import build_model
from emokeras.run_folder import (
    CONFIG_FILE,
    DEFAULT_FRAMING,
    FRAMING_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    MODEL_FILE,
    SPECTROGRAM_FILE,
    STATE_FILE,
    CropFraming,
    load_run,
    read_config,
    read_framing,
    save_model_atomic,
    write_framing,
    write_labels,
    write_routing,
)
from emokeras.targets import with_targets
from emokeras.training import TrainConfig, fit

log = logging.getLogger(__name__)

#: /proc/cpuinfo flags of CPUs that compute in bfloat16 rather than emulate it
BFLOAT16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]


def native_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool | None:
    """Whether mixed bfloat16 runs natively here: a GPU, or a CPU with AVX-512 BF16 or AMX.

    None where it cannot tell (no ``cpuinfo``, e.g. not Linux). Elsewhere bfloat16 is emulated:
    training is then slower than in float32 (``benchmarks/mixed_precision.py`` measures it).
    """
    if tf.config.list_physical_devices("GPU"):
        return True
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    flags = {flag for line in text.splitlines() if line.startswith("flags")
             for flag in line.partition(":")[2].split()}
    return bool(flags & BFLOAT16_CPU_FLAGS)


def _write_history(path: Path, rows: tuple[dict[str, float], ...]) -> None:
    keys = ["phase", "epoch"] + sorted({k for row in rows for k in row} - {"phase", "epoch"})
    write_csv_atomic(path, keys, ({k: row.get(k, "") for k in keys} for row in rows))


def train_splits(
    splits: DataSplits,
    run_dir: str | Path,
    config: TrainConfig,
    *,
    strategy: tf.distribute.Strategy | None = None,
    data_description: str = "",
    score_test: bool = True,
) -> RunResult:
    """Train one model on ``splits`` into ``run_dir``; resumes an unfinished run found there.

    With ``score_test`` False the test split is left unscored (``metrics.json`` has no
    ``test``), so a run chosen among others on validation is chosen without its test number
    in sight; score it afterwards with ``evaluate.py``."""
    run_dir = Path(run_dir)
    if (run_dir / METRICS_FILE).exists():
        raise RunFolderError(
            f"run folder {str(run_dir)!r} holds a finished run; choose another run name"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    resuming = (run_dir / STATE_FILE).exists()
    label_set: LabelSet = splits.label_set
    if splits.kind == "spectrograms" and config.augment == AugmentConfig():
        # The image defaults (flips, rotations) would garble a spectrogram's time and frequency
        # axes; left at the defaults, spectrograms get SpecAugment instead.
        config = dataclasses.replace(config, augment=SPECTROGRAM_AUGMENT)
        log.info("spectrogram data: augmentation is SpecAugment (%s)", SPECTROGRAM_AUGMENT)
    write_json_atomic(run_dir / CONFIG_FILE, {
        **config.to_dict(),
        "data": {"path": data_description, "protocol": splits.protocol, "sizes": splits.sizes()},
    })
    write_labels(run_dir, label_set)
    if splits.framing is not None:
        # without it inference would cut detected faces with DEFAULT_FRAMING, whatever the
        # training faces looked like (FER2013's tight faces: about 11 points lost)
        write_framing(run_dir, splits.framing)
    if splits.spectrogram is not None:
        # what makes this an audio model: inference must compute its images the same way
        write_json_atomic(run_dir / SPECTROGRAM_FILE, splits.spectrogram.to_dict())

    started = time.monotonic()
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    # the policy is process-wide: set for this run only
    previous_policy = keras.mixed_precision.global_policy()
    if config.mixed_precision:
        if native_bfloat16() is False:
            log.warning("mixed precision on a CPU without AVX-512 BF16 or AMX: bfloat16 is "
                        "emulated and trains slower than float32 here; drop --mixed-precision")
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        with scope:
            starts_elsewhere = resuming or config.init_from is not None
            model = build_model(
                config.backbone, len(label_set),
                # a resumed run reloads its own weights and an initialised one takes another
                # run's, so neither need fetch pretrained ones
                weights=None if starts_elsewhere else config.weights,
                input_size=config.input_size, channels=config.channels, head=config.head,
            )
            if config.init_from is not None and not resuming:
                initialise_from(model, config.init_from, config.init_member)
        result = fit(model, splits.train, splits.val, config, run_dir=run_dir,
                     strategy=strategy)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    seconds = time.monotonic() - started

    model = save_model_atomic(model, run_dir / MODEL_FILE)  # metrics of the model as saved
    _write_history(run_dir / HISTORY_FILE, result.history)
    metrics: dict[str, Any] = {
        "protocol": splits.protocol,
        "sizes": splits.sizes(),
        "train_seconds_this_session": round(seconds, 1),
        "resumed": resuming,
        "val": evaluate_source(model, splits.val, label_set.classes).to_dict(),
    }
    if splits.test is not None and score_test:
        metrics["test"] = evaluate_source(model, splits.test, label_set.classes).to_dict()
    write_json_atomic(run_dir / METRICS_FILE, metrics)
    log.info("run %s: val accuracy %.4f", run_dir, metrics["val"]["accuracy"])
    return RunResult(run_dir, metrics)


def initialise_from(model: keras.Model, run_dir: str | Path, member: int = 1) -> None:
    """Start ``model`` from the weights of the run folder ``run_dir`` (of an ensemble: of its
    member ``member``, counted from 1). ``ConfigError`` where the architectures differ."""
    from emokeras.models.ensemble import ensemble_members

    source, _ = load_run(run_dir)
    members = ensemble_members(source)
    if members:
        if not 1 <= member <= len(members):
            raise ConfigError(f"{str(run_dir)!r} is an ensemble of {len(members)} models; "
                              f"init_member {member} is not one of them")
        source = members[member - 1]
    ours = [tuple(w.shape) for w in model.weights]
    theirs = [tuple(w.shape) for w in source.weights]
    if ours != theirs:
        raise ConfigError(f"cannot start from {str(run_dir)!r}: its model has {len(theirs)} "
                          f"weight arrays of other shapes than this run's {len(ours)} (a "
                          "different backbone, input size, channels, head or classes)")
    model.set_weights(source.get_weights())
    log.info("weights initialised from %s%s", run_dir, f" member {member}" if members else "")


def train_run(
    data: str | Path,
    run_dir: str | Path,
    config: TrainConfig,
    *,
    label_set: LabelSet | None = None,
    limit_items: int | None = None,
    by_sex: bool = False,
    strategy: tf.distribute.Strategy | None = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    score_test: bool = True,
) -> list[RunResult]:
    """Load ``data`` and train one model, or one per sex with ``by_sex`` (manifests only);
    ``score_test`` as in :func:`train_splits`."""
    run_dir = Path(run_dir)
    groups = SEXES if by_sex else (None,)
    results = []
    for sex in groups:
        splits = load_splits(
            data, label_set, val_fraction=val_fraction, test_fraction=test_fraction,
            seed=config.seed, sex=sex,
        )
        target = run_dir / sex if sex else run_dir
        splits = with_targets(splits, data, config, target)
        if limit_items is not None:
            # replace() keeps the fields not named here (a spectrogram set's config)
            splits = dataclasses.replace(
                splits,
                train=limit(splits.train, limit_items, config.seed),
                val=limit(splits.val, limit_items, config.seed),
                test=None if splits.test is None else limit(splits.test, limit_items, config.seed),
                protocol=f"{splits.protocol}; at most {limit_items} random items per split",
            )
        results.append(train_splits(
            splits, target, config, strategy=strategy, data_description=str(data),
            score_test=score_test,
        ))
    if by_sex:
        write_routing(run_dir, SEXES)
    return results


def ensemble_run(
    run_dirs: list[str | Path], out_dir: str | Path, *, flip: bool = True,
    crops: tuple[int, ...] = (),
) -> Path:
    """Write a run folder whose model averages the probabilities of the runs in ``run_dirs``
    (see :func:`emokeras.models.ensemble.build_ensemble`); returns the folder.

    The runs must share a label set and a framing (``ConfigError`` naming them otherwise: the
    ensemble's faces are cut once for all members). ``config.json`` records each member's folder
    and config; ``labels.json`` and ``framing.json`` are the members'. The folder then works
    wherever a run folder does.
    """
    from emokeras.models.ensemble import build_ensemble

    out_dir = Path(out_dir)
    run_dirs = [Path(run) for run in run_dirs]
    if not run_dirs:
        raise RunFolderError("an ensemble needs at least one run folder")
    if any(run.resolve() == out_dir.resolve() for run in run_dirs):
        raise RunFolderError(f"the ensemble folder {str(out_dir)!r} is one of its members")
    loaded = [load_run(run) for run in run_dirs]
    first_labels = loaded[0][1]
    for run, (_, label_set) in zip(run_dirs, loaded, strict=True):
        if label_set is not first_labels:
            raise RunFolderError(
                f"run {str(run)!r} predicts {label_set.name!r} labels, run "
                f"{str(run_dirs[0])!r} {first_labels.name!r}: an ensemble needs one label set")
    framing = _common_framing(run_dirs)
    model = build_ensemble([member for member, _ in loaded], flip=flip, crops=crops)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_model_atomic(model, out_dir / MODEL_FILE)
    write_labels(out_dir, first_labels)
    if framing is not None:
        write_framing(out_dir, framing)
    else:  # an earlier ensemble written here may have left one
        (out_dir / FRAMING_FILE).unlink(missing_ok=True)
    write_json_atomic(out_dir / CONFIG_FILE, {"ensemble": {
        "flip": flip,
        "crops": list(crops),
        "members": [{"run": str(run), "config": read_config(run)} for run in run_dirs],
    }})
    log.info("ensemble of %d runs (flip %s, crops %s) written to %s", len(run_dirs), flip,
             list(crops), out_dir)
    return out_dir


def _common_framing(run_dirs: list[Path]) -> CropFraming | None:
    """The framing all ``run_dirs`` share (a folder without framing.json has DEFAULT_FRAMING), or
    None where none of them has the file (the ensemble then needs none either). ``ConfigError``
    naming each run's framing where they differ: one cut cannot suit them all."""
    stored = [read_framing(run) for run in run_dirs]
    if all(framing is None for framing in stored):
        return None
    framings = [framing or DEFAULT_FRAMING for framing in stored]
    if len(set(framings)) > 1:
        listed = ", ".join(
            f"{str(run)!r} margin {framing.margin:g} shift_y {framing.shift_y:g}"
            + ("" if file is not None else " (no framing.json)")
            for run, framing, file in zip(run_dirs, framings, stored, strict=True))
        raise ConfigError(f"the runs frame faces differently ({listed}): an ensemble cuts each "
                          "face once for all its members, so they must be trained on faces "
                          "framed alike")
    return framings[0]
