"""FER+ crowd votes for FER2013 faces: soft targets, multi-label targets and majority labels.

FER+ (Barsoum et al., 2016) had ten annotators label every FER2013 row with one of ten classes:
neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown and NF (not a face).
The votes file (``ferplus_votes.csv``: row, Usage, fer_emotion, kaggle_jpg_name, ferplus_png,
label_ambiguous, then one count per class) is keyed by FER2013 row and by the JPEG's file name.

Mapping onto FER2013's seven classes: the seven emotions that exist in both are kept
(:data:`FERPLUS_TO_FER2013`); **contempt, unknown and NF are dropped**: FER2013 has no contempt,
and unknown / not-a-face are not emotions. Targets are built from the kept votes only:

- soft targets: the kept votes as a distribution (they sum to 1);
- multi-label targets: a class is on when it has at least ``threshold`` of the kept votes (the
  top class is always on);
- the FER+ majority label, the benchmark's definition (:func:`majority_labels`), counts all ten
  columns: a face has one when a single class has the most votes, that class is one of the seven,
  and FER+ does not flag the face as ambiguous.

A face with no kept vote at all (e.g. all NF) has no target and is left out of the training data.
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emokeras.datasets.fer2013 import (
    FER2013_FRAMING,
    FER2013_SPLITS,
    load_fer2013_csv,
    load_fer2013_folders,
)
from emokeras.errors import ConfigError, DatasetError
from emokeras.labels import FER2013
from emokeras.run_folder import CropFraming

logger = logging.getLogger(__name__)

#: The vote columns of ``ferplus_votes.csv``, in file order.
FERPLUS_CLASSES: tuple[str, ...] = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
    "unknown", "NF",
)  # fmt: skip
#: FER+ classes with a FER2013 counterpart, and its name there.
FERPLUS_TO_FER2013: dict[str, str] = {
    "anger": "angry", "disgust": "disgust", "fear": "fear", "happiness": "happy",
    "sadness": "sad", "surprise": "surprise", "neutral": "neutral",
}  # fmt: skip
#: FER+ classes with no FER2013 counterpart: their votes are dropped.
DROPPED_CLASSES: tuple[str, ...] = ("contempt", "unknown", "NF")
#: Default share of the kept votes that turns a class on in multi-label targets.
MULTILABEL_THRESHOLD = 0.3
TARGET_KINDS = ("soft", "multilabel")

_REQUIRED = ("row", "Usage", "kaggle_jpg_name", "label_ambiguous", *FERPLUS_CLASSES)


@dataclass(frozen=True, eq=False)
class FerPlusVotes:
    """The votes of every row: ``votes`` (N, 10) in :data:`FERPLUS_CLASSES` order.

    ``rows`` are FER2013 CSV row numbers (0-based), ``names`` the JPEG file names of the
    image-folder layout ("" where FER+ found no JPEG), ``ambiguous`` FER+'s flag.
    """

    rows: np.ndarray
    usage: tuple[str, ...]
    names: tuple[str, ...]
    votes: np.ndarray
    ambiguous: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def fer2013_votes(self) -> np.ndarray:
        """The kept votes (N, 7) in FER2013's class order; contempt, unknown and NF dropped."""
        columns = [FERPLUS_CLASSES.index(c) for c in _FER2013_SOURCE_COLUMNS]
        return self.votes[:, columns]

    def index_of_names(self, names) -> np.ndarray:
        """Row position of each file name; -1 for a name FER+ does not have."""
        where = {name: i for i, name in enumerate(self.names) if name}
        return np.array([where.get(Path(name).name, -1) for name in names], dtype=np.int64)


#: For each FER2013 class, in FER2013 order, the FER+ column it comes from.
_FER2013_SOURCE_COLUMNS = tuple(
    {fer: plus for plus, fer in FERPLUS_TO_FER2013.items()}[name] for name in FER2013.classes
)


def load_ferplus_votes(path: str | os.PathLike[str]) -> FerPlusVotes:
    """Read ``ferplus_votes.csv``; a missing file, column or bad count raises ``DatasetError``."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"FER+ votes file {str(path)!r} does not exist")
    rows, usage, names, votes, ambiguous = [], [], [], [], []
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(
                f"{path}: not a FER+ votes file, columns {missing} are missing "
                f"(it has {reader.fieldnames})"
            )
        for record in reader:
            where = f"{path}, line {reader.line_num}"
            try:
                counts = [int(record[c]) for c in FERPLUS_CLASSES]
                row = int(record["row"])
            except ValueError as error:
                raise DatasetError(f"{where}: {error}") from None
            if min(counts) < 0:
                raise DatasetError(f"{where}: negative vote count {counts}")
            if record["Usage"] not in FER2013_SPLITS:
                raise DatasetError(f"{where}: Usage {record['Usage']!r} is not a FER2013 split")
            rows.append(row)
            usage.append(record["Usage"])
            names.append(record["kaggle_jpg_name"].strip())
            votes.append(counts)
            ambiguous.append(record["label_ambiguous"].strip() == "1")
    logger.info("loaded FER+ votes of %d rows from %s", len(rows), path)
    return FerPlusVotes(
        rows=np.array(rows, dtype=np.int64), usage=tuple(usage), names=tuple(names),
        votes=np.array(votes, dtype=np.int64).reshape(-1, len(FERPLUS_CLASSES)),
        ambiguous=np.array(ambiguous, dtype=bool),
    )  # fmt: skip


def majority_labels(votes: FerPlusVotes, positions: np.ndarray) -> np.ndarray:
    """The FER+ majority label (a FER2013 index) of the rows at ``positions``; -1 where none.

    None: no vote row (position -1), a tie for the most votes, a majority for contempt, unknown
    or NF, or a row FER+ flags as ambiguous. This is the "FER+ majority" of
    ``benchmarks/fer2013_accuracy.py``.
    """
    positions = np.asarray(positions, dtype=np.int64)
    labels = np.full(len(positions), -1, dtype=np.int64)
    to_fer = {
        FERPLUS_CLASSES.index(plus): FER2013.index(fer) for plus, fer in FERPLUS_TO_FER2013.items()
    }
    for i, position in enumerate(positions):
        if position < 0 or votes.ambiguous[position]:
            continue
        counts = votes.votes[position]
        top = np.flatnonzero(counts == counts.max())
        if len(top) == 1 and int(top[0]) in to_fer:
            labels[i] = to_fer[int(top[0])]
    return labels


#: FER+'s eight emotions, the classes of its standard 8-class protocol (:func:`ferplus8_labels`).
FERPLUS_EMOTIONS: tuple[str, ...] = FERPLUS_CLASSES[:8]


def ferplus8_labels(votes: FerPlusVotes, positions: np.ndarray) -> np.ndarray:
    """FER+'s own majority label (an index into :data:`FERPLUS_EMOTIONS`) of the rows at
    ``positions``; -1 where FER+'s protocol has none.

    As FER+'s reference code (microsoft/FERPlus, src/ferplus.py) does in "majority" mode: a
    single vote for a class is taken as an outlier and set to 0; a face then has a label when
    one of the 8 emotions holds more than half of the remaining votes (so unknown / not-a-face
    majorities, ties and spread votes have none). Contempt is a label here; a 7-class model can
    never give it.
    """
    positions = np.asarray(positions, dtype=np.int64)
    labels = np.full(len(positions), -1, dtype=np.int64)
    known = positions >= 0
    counts = votes.votes[positions[known]].copy()
    counts[counts == 1] = 0
    top = counts.argmax(axis=1)
    clear = (counts.max(axis=1) * 2 > counts.sum(axis=1)) & (top < len(FERPLUS_EMOTIONS))
    labels[np.flatnonzero(known)[clear]] = top[clear]
    return labels


def fer2013_to_ferplus8(labels: np.ndarray) -> np.ndarray:
    """FER2013 class indices as indices into :data:`FERPLUS_EMOTIONS`."""
    to_plus = {FER2013.index(fer): FERPLUS_EMOTIONS.index(plus)
               for plus, fer in FERPLUS_TO_FER2013.items()}
    return np.array([to_plus[int(label)] for label in np.asarray(labels)], dtype=np.int64)


def soft_targets(counts: np.ndarray) -> np.ndarray:
    """Vote counts (N, K) as distributions (rows sum to 1); a row with no votes is all NaN."""
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (counts / np.where(totals > 0, totals, np.nan)).astype(np.float32)


def multilabel_targets(counts: np.ndarray, threshold: float = MULTILABEL_THRESHOLD) -> np.ndarray:
    """Multi-hot targets: classes with at least ``threshold`` of the row's votes, and the top one.

    A row with no votes is all NaN.
    """
    if not 0 < threshold <= 1:
        raise ConfigError(f"threshold must be in (0, 1], got {threshold!r}")
    shares = soft_targets(counts)
    hot = shares >= threshold - 1e-6
    valid = ~np.isnan(shares).any(axis=1)
    top = np.nan_to_num(shares, nan=-1.0).argmax(axis=1)
    hot[np.arange(len(hot)), top] |= valid
    return np.where(valid[:, None], hot.astype(np.float32), np.nan).astype(np.float32)


def targets_from_votes(
    counts: np.ndarray, kind: str = "soft", threshold: float = MULTILABEL_THRESHOLD
) -> np.ndarray:
    """``soft_targets`` or ``multilabel_targets`` of kept vote counts (N, 7), by ``kind``."""
    if kind == "soft":
        return soft_targets(counts)
    if kind == "multilabel":
        return multilabel_targets(counts, threshold)
    raise ConfigError(f"target kind must be one of {list(TARGET_KINDS)}, got {kind!r}")


@dataclass(frozen=True, eq=False)
class FerPlusSplit:
    """FER2013 faces of one split joined with their FER+ votes.

    ``images`` uint8 (N, 48, 48); ``targets`` float32 (N, 7) in FER2013's order (soft or
    multi-hot, per ``kind``); ``fer2013_labels`` the original FER2013 labels; ``majority`` the
    FER+ majority label or -1; ``names`` the file names (or ``row<N>`` for the CSV). Faces
    without any kept vote are left out; ``dropped`` counts them.
    """

    images: np.ndarray
    targets: np.ndarray
    fer2013_labels: np.ndarray
    majority: np.ndarray
    names: tuple[str, ...]
    kind: str
    dropped: int

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def source(self) -> tuple[np.ndarray, np.ndarray]:
        """``(images, targets)``, a source ``emokeras.training.fit`` trains on."""
        return self.images, self.targets

    @property
    def framing(self) -> CropFraming:
        """How the faces are framed: FER+ relabels FER2013's images, so FER2013's framing (a
        run trained on them passes it as ``DataSplits.framing``, which becomes framing.json)."""
        return FER2013_FRAMING


def load_ferplus_split(
    fer2013: str | os.PathLike[str],
    votes: str | os.PathLike[str] | FerPlusVotes,
    split: str,
    kind: str = "soft",
    *,
    threshold: float = MULTILABEL_THRESHOLD,
    limit: int | None = None,
    seed: int = 0,
) -> FerPlusSplit:
    """One FER2013 split's faces with FER+ targets.

    ``fer2013`` is the image-folder layout (joined to the votes by file name) or the original
    CSV (joined by row number, its Usage checked against the votes'). ``limit`` keeps a seeded
    random subset of at most that many faces (before faces without votes are dropped).
    """
    if split not in FER2013_SPLITS:
        raise ConfigError(f"split must be one of {list(FER2013_SPLITS)}, got {split!r}")
    targets_from_votes(np.ones((1, len(FER2013))), kind, threshold)  # checks kind and threshold
    table = votes if isinstance(votes, FerPlusVotes) else load_ferplus_votes(votes)
    fer2013 = Path(fer2013)
    if fer2013.is_dir():
        images_set = load_fer2013_folders(fer2013)[split]
        keep = _subset(len(images_set), limit, seed)
        images_set = images_set.subset(keep)
        names = tuple(Path(p).name for p in images_set.paths)
        positions = table.index_of_names(names)
        images = images_set.load_images(grayscale=True)
        labels = images_set.labels
    elif fer2013.is_file():
        data = load_fer2013_csv(fer2013)
        rows = np.flatnonzero(np.array(data.usage) == split)
        rows = rows[_subset(len(rows), limit, seed)]
        where = {int(r): i for i, r in enumerate(table.rows)}
        positions = np.array([where.get(int(r), -1) for r in rows], dtype=np.int64)
        mismatched = [int(r) for r, p in zip(rows, positions, strict=True)
                      if p >= 0 and table.usage[p] != split]  # fmt: skip
        if mismatched:
            raise DatasetError(
                f"FER2013 CSV {str(fer2013)!r} and the FER+ votes disagree on the split of rows "
                f"{mismatched[:5]}: are they the same FER2013 file?"
            )
        names = tuple(f"row{int(r)}" for r in rows)
        images, labels = data.images[rows], data.labels[rows]
    else:
        raise DatasetError(f"FER2013 path {str(fer2013)!r} does not exist")

    counts = np.zeros((len(positions), len(FER2013)), dtype=np.int64)
    known = positions >= 0
    counts[known] = table.fer2013_votes()[positions[known]]
    targets = targets_from_votes(counts, kind, threshold)
    valid = ~np.isnan(targets).any(axis=1)
    majority = majority_labels(table, positions)
    dropped = int((~valid).sum())
    if dropped:
        logger.info("FER+ %s: %d of %d faces have no kept vote, left out", split, dropped,
                    len(valid))  # fmt: skip
    if not valid.any():
        raise DatasetError(f"no {split} face of {str(fer2013)!r} has FER+ votes")
    return FerPlusSplit(
        images=np.ascontiguousarray(images[valid]), targets=targets[valid],
        fer2013_labels=np.asarray(labels)[valid], majority=majority[valid],
        names=tuple(n for n, v in zip(names, valid, strict=True) if v), kind=kind,
        dropped=dropped,
    )  # fmt: skip


def split_majority_labels(
    fer2013: str | os.PathLike[str], votes: str | os.PathLike[str] | FerPlusVotes, split: str
) -> np.ndarray:
    """FER+ majority labels (-1 where none) of every face of a FER2013 split, in the order
    ``emokeras.datasets.sources.load_splits`` gives that split (folders: by file name; CSV: by
    row)."""
    if split not in FER2013_SPLITS:
        raise ConfigError(f"split must be one of {list(FER2013_SPLITS)}, got {split!r}")
    table = votes if isinstance(votes, FerPlusVotes) else load_ferplus_votes(votes)
    fer2013 = Path(fer2013)
    if fer2013.is_dir():
        positions = table.index_of_names(load_fer2013_folders(fer2013)[split].paths)
    elif fer2013.is_file():
        where = {int(r): i for i, r in enumerate(table.rows)}
        rows = [i for i, u in enumerate(_csv_usage(fer2013)) if u == split]
        positions = np.array([where.get(r, -1) for r in rows], dtype=np.int64)
    else:
        raise DatasetError(f"FER2013 path {str(fer2013)!r} does not exist")
    return majority_labels(table, positions)


def _csv_usage(path: Path) -> list[str]:
    """The Usage of every row of a FER2013 CSV, in order."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        return [row["Usage"].strip() for row in reader]


def _subset(total: int, limit: int | None, seed: int) -> np.ndarray:
    if limit is None or limit >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, size=limit, replace=False))


def majority_accuracy(probabilities: np.ndarray, majority: np.ndarray) -> tuple[float, int]:
    """Accuracy of argmax predictions against FER+ majority labels, over the faces that have one.

    Returns ``(accuracy, count)``; NaN and 0 when no face has a majority label.
    """
    majority = np.asarray(majority)
    predicted = np.asarray(probabilities).argmax(axis=-1)
    if predicted.shape != majority.shape:
        raise DatasetError(
            f"{len(predicted)} predictions for {len(majority)} majority labels"
        )
    known = majority >= 0
    if not known.any():
        return float("nan"), 0
    return float(np.mean(predicted[known] == majority[known])), int(known.sum())
