"""Training targets other than a dataset's labels: FER+ crowd votes and a teacher's probabilities.

    FER2013 Training faces ──> FER+ vote distribution, one-hot label, or a blend ──┐
                         └──> teacher run's probabilities ──────────── x weight ───┴─> soft targets

Training then fits the model to these soft targets with the usual cross-entropy
(``emokeras.training.fit`` takes ``(images, targets)`` arrays). Validation stays on the split the
protocol names (FER2013: PublicTest) and judges a run by what it is taught: with FER+ votes, by
PublicTest's FER+ votes blended with its labels as the training faces' are (accuracy against
their top class), else by the dataset's labels. The test split keeps the dataset's labels.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from emokeras.configs import TrainConfig
from emokeras.datasets.base import ImageSet
from emokeras.datasets.fer2013 import PUBLIC_TEST, TRAINING, Fer2013Arrays
from emokeras.datasets.ferplus import FerPlusSplit, load_ferplus_split, load_ferplus_votes
from emokeras.datasets.sources import DataSplits, labels_of
from emokeras.errors import ConfigError
from emokeras.fileio import atomic_write
from emokeras.labels import LabelSet

log = logging.getLogger(__name__)

#: The teacher's probabilities on the training faces, kept in the run folder for a resume.
TEACHER_FILE = "teacher_probabilities.npy"


def with_targets(
    splits: DataSplits, data: str | Path, config: TrainConfig, run_dir: str | Path | None = None
) -> DataSplits:
    """``splits`` with its training split as ``(images, soft targets)`` per ``config.targets``.

    ``data`` is the path ``splits`` came from (FER+ joins its votes to FER2013 by file name or
    row). With ``run_dir``, the teacher's probabilities are kept there
    (:data:`TEACHER_FILE`), so that a resumed run does not predict every face again.
    ``ConfigError`` for FER+ votes on data that is not FER2013, or a teacher that predicts
    another label set.
    """
    targets = config.targets
    if targets.from_labels:
        return splits
    if targets.ferplus_votes is not None:
        if not splits.kind.startswith("fer2013"):
            raise ConfigError(f"FER+ votes relabel FER2013's faces; {str(data)!r} is "
                              f"{splits.kind} data")
        votes = load_ferplus_votes(targets.ferplus_votes)  # read once for both splits
        weight = targets.ferplus_weight
        ferplus = load_ferplus_split(data, votes, TRAINING, "soft")
        images, base = ferplus.images, _votes_and_labels(ferplus, weight)
        # selected on what it is taught: the validation faces' own votes (and labels)
        held_out = load_ferplus_split(data, votes, PUBLIC_TEST, "soft")
        splits = dataclasses.replace(splits,
                                     val=(held_out.images, _votes_and_labels(held_out, weight)))
        taught = "FER+ vote distributions" if weight == 1 else (
            f"({weight:g} x FER+ vote distributions + {1 - weight:g} x FER2013 labels)")
        taught_by = (f"{taught} of {len(images)} Training faces ({ferplus.dropped} without a "
                     f"kept vote left out); validation against PublicTest's targets made alike")
    else:
        images = _images_of(splits.train, config)
        base = np.eye(len(splits.label_set), dtype=np.float32)[labels_of(splits.train)]
        taught_by = "the dataset's labels"
    if targets.teacher is not None and targets.teacher_weight > 0:
        cache = None if run_dir is None else Path(run_dir) / TEACHER_FILE
        taught = _load_cached(cache, len(images), len(splits.label_set))
        if taught is None:
            taught = teacher_probabilities(targets.teacher, images, splits.label_set)
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                with atomic_write(cache, "wb") as handle:
                    np.save(handle, taught)
        weight = targets.teacher_weight
        base = _blend(taught, base, weight)
        taught_by = (f"{weight:g} x the probabilities of teacher {targets.teacher} + "
                     f"{1 - weight:g} x {taught_by}")
    log.info("training targets: %s", taught_by)
    return dataclasses.replace(
        splits, train=(images, base), protocol=f"{splits.protocol}; training targets: {taught_by}"
    )


def _blend(first: np.ndarray, second: np.ndarray, weight: float) -> np.ndarray:
    """``weight`` x ``first`` + the rest x ``second``, as float32 targets."""
    return (weight * first + (1 - weight) * second).astype(np.float32)


def _votes_and_labels(split: FerPlusSplit, votes_weight: float) -> np.ndarray:
    """``votes_weight`` x the split's FER+ vote distributions + the rest x its FER2013 labels
    (one-hot)."""
    if votes_weight == 1:
        return split.targets
    labels = np.eye(split.targets.shape[1], dtype=np.float32)[split.fer2013_labels]
    return _blend(split.targets, labels, votes_weight)


def teacher_probabilities(
    teacher: str | Path, images: np.ndarray, label_set: LabelSet, batch_size: int = 256
) -> np.ndarray:
    """The probabilities the run folder ``teacher`` gives each image (no augmentation);
    ``ConfigError`` where it predicts other classes than ``label_set``'s."""
    from emokeras.evaluation import predict_source
    from emokeras.run_folder import load_run

    model, teacher_labels = load_run(teacher)
    if teacher_labels.classes != label_set.classes:
        raise ConfigError(f"teacher {str(teacher)!r} predicts {list(teacher_labels.classes)}, "
                          f"the data has {list(label_set.classes)}")
    log.info("teacher %s: predicting %d training faces", teacher, len(images))
    dummy = np.zeros(len(images), dtype=np.int64)
    return predict_source(model, (images, dummy), batch_size).astype(np.float32)


def _load_cached(path: Path | None, count: int, classes: int) -> np.ndarray | None:
    """The kept teacher probabilities, if ``path`` holds them for these ``count`` faces."""
    if path is None or not path.is_file():
        return None
    try:
        kept = np.load(path)
    except (OSError, ValueError) as error:
        log.warning("ignoring unreadable %s (%s): predicting again", path, error)
        return None
    if kept.shape != (count, classes):
        log.warning("ignoring %s: it holds %s, not (%d, %d)", path, kept.shape, count, classes)
        return None
    log.info("teacher probabilities read from %s", path)
    return kept.astype(np.float32)


def _images_of(source, config: TrainConfig) -> np.ndarray:
    """Every image of a training source as one uint8 array, in order (files are read at the
    model's input size and channels where the config gives them)."""
    if isinstance(source, ImageSet):
        return source.load_images(size=config.input_size, grayscale=config.channels == 1)
    if isinstance(source, Fer2013Arrays):
        return source.images
    return np.asarray(source[0])
