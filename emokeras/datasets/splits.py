"""Subject-grouped splits: no actor or subject ever has items on both sides of a split.

Splitting frames or images of one person across train and test inflates accuracy, so every split
here assigns whole subjects.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from emokeras.datasets.base import ImageSet
from emokeras.errors import DatasetError

logger = logging.getLogger(__name__)

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")


def _index_array(values: Iterable[int] | np.ndarray) -> np.ndarray:
    array = np.array(values, dtype=np.int64).reshape(-1)
    array.setflags(write=False)
    return array


# eq=False: dataclass equality would compare the index arrays with ``==`` and fail on truthiness.
@dataclass(frozen=True, eq=False)
class Split:
    """Sorted integer item indices of the train, validation and test parts."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def __post_init__(self) -> None:
        for name in SPLIT_NAMES:
            object.__setattr__(self, name, _index_array(getattr(self, name)))

    def as_dict(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in SPLIT_NAMES}

    def apply(self, image_set: ImageSet) -> tuple[ImageSet, ImageSet, ImageSet]:
        """The (train, val, test) subsets of ``image_set``."""
        return (
            image_set.subset(self.train),
            image_set.subset(self.val),
            image_set.subset(self.test),
        )


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
    if val_fraction + test_fraction >= 1:
        raise ValueError(
            f"val_fraction + test_fraction must be below 1, got {val_fraction + test_fraction}"
        )


def subject_split(
    subjects: Sequence[str] | np.ndarray,
    *,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
    stratify: Sequence[int] | np.ndarray | None = None,
) -> Split:
    """Split items into train / val / test by subject, deterministically for a ``seed``.

    ``subjects`` holds one subject id per item. Subjects are shuffled with the seed, one is put in
    each non-empty split, and each further subject goes to the split it brings closest to its
    target share of items, per class of ``stratify`` (item labels) when given. Fractions are of
    items, met as closely as whole subjects allow; a zero fraction leaves that split empty.
    """
    _check_fractions(val_fraction, test_fraction)
    ids = np.array([str(s) for s in subjects])
    if len(ids) == 0:
        raise DatasetError("no items to split")
    if stratify is None:
        classes = np.zeros(len(ids), dtype=np.int64)
    else:
        stratify = np.asarray(stratify)
        if stratify.shape != (len(ids),):
            raise ValueError(f"stratify has shape {stratify.shape}, expected ({len(ids)},)")
        classes = np.unique(stratify, return_inverse=True)[1]
    unique, group = np.unique(ids, return_inverse=True)
    fractions = np.array([1.0 - val_fraction - test_fraction, val_fraction, test_fraction])
    active = np.flatnonzero(fractions > 0)
    if len(unique) < len(active):
        raise DatasetError(
            f"only {len(unique)} subject(s) ({', '.join(unique[:5])}); "
            f"{len(active)} non-empty splits need at least {len(active)}"
        )

    counts = np.zeros((len(unique), classes.max() + 1))
    np.add.at(counts, (group, classes), 1)
    targets = fractions[:, None] * counts.sum(axis=0)[None, :]
    current = np.zeros_like(targets)
    assignment = np.empty(len(unique), dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(unique))
    # One subject in each non-empty split first, so a small split cannot end up empty.
    for split, subject in zip(active, order, strict=False):
        assignment[subject] = split
        current[split] += counts[subject]
    for subject in order[len(active) :]:
        added = counts[subject]
        # Growth of the squared distance to the targets, relative to each split's share (a
        # chi-square-like cost), so small splits fill as faithfully as the train split.
        cost = ((current + added - targets) ** 2 - (current - targets) ** 2).sum(axis=1)
        with np.errstate(divide="ignore"):
            cost = np.where(fractions > 0, cost / fractions, np.inf)
        split = int(np.argmin(cost))
        assignment[subject] = split
        current[split] += added

    item_split = assignment[group]
    result = Split(*(np.flatnonzero(item_split == s) for s in range(3)))
    logger.info(
        "subject split of %d items, %d subjects: train %d, val %d, test %d items",
        len(ids),
        len(unique),
        len(result.train),
        len(result.val),
        len(result.test),
    )
    return result


def fixed_subject_split(
    subjects: Sequence[str] | np.ndarray,
    *,
    val: Iterable[str] = (),
    test: Iterable[str] = (),
) -> Split:
    """Hold out named subjects (e.g. RAVDESS actors ``"23"``, ``"24"``); the rest is train.

    Ids are compared as strings, so RAVDESS actor 1 is ``"01"``, as ``RavdessName.actor_id``.
    """
    ids = np.array([str(s) for s in subjects])
    val_ids = {str(s) for s in val}
    test_ids = {str(s) for s in test}
    both = sorted(val_ids & test_ids)
    if both:
        raise ValueError(f"subjects {both} are in both val and test")
    present = set(ids.tolist())
    missing = sorted((val_ids | test_ids) - present)
    if missing:
        raise DatasetError(
            f"held-out subjects {missing} are not in the data; subjects are {sorted(present)}"
        )
    in_val = np.isin(ids, sorted(val_ids))
    in_test = np.isin(ids, sorted(test_ids))
    in_train = ~(in_val | in_test)
    if not in_train.any():
        raise DatasetError("every subject is held out; no items are left to train on")
    return Split(np.flatnonzero(in_train), np.flatnonzero(in_val), np.flatnonzero(in_test))


def split_by_sex(sexes: Sequence[str] | np.ndarray) -> dict[str, np.ndarray]:
    """Item indices of ``"male"`` and ``"female"`` items (case-insensitive)."""
    values = [str(s).strip().lower() for s in sexes]
    for position, value in enumerate(values):
        if value not in ("male", "female"):
            raise DatasetError(
                f"item {position}: sex {sexes[position]!r} is not 'male' or 'female'"
            )
    array = np.array(values)
    return {sex: _index_array(np.flatnonzero(array == sex)) for sex in ("male", "female")}
