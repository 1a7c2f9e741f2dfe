"""Load any supported dataset path as train / validation / test, and say which protocol split it.

- a FER2013 CSV (``emotion,pixels,Usage``) or image-folder tree (``train/``, ``test/``): the
  official split, Training / PublicTest / PrivateTest;
- a face-crop manifest from ``data_prep`` (``manifest.csv``): its subject-grouped split column;
- any class-per-folder set: a subject-grouped split when subject ids are known (CK+), else a
  stratified split by image, which the protocol string says plainly;
- a spectrogram set (``.npz``, see ``emokeras.datasets.spectrograms``): likewise grouped by
  speaker when the file has subject ids, else stratified by item.

Each also says how its images frame their faces (``DataSplits.framing``), which training writes
as the run's framing.json: FER2013's measured framing, a manifest's crop margin, else the default.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emokeras.audio import SpectrogramConfig
from emokeras.datasets.base import ImageSet
from emokeras.datasets.fer2013 import (
    FER2013_FRAMING,
    PRIVATE_TEST,
    PUBLIC_TEST,
    TRAINING,
    Fer2013Arrays,
    load_fer2013_csv,
    load_fer2013_folders,
)
from emokeras.datasets.folders import CKPLUS_SUBJECT_PATTERN, load_class_folders
from emokeras.datasets.manifest import manifest_framing, manifest_image_set
from emokeras.datasets.spectrograms import load_spectrogram_npz
from emokeras.datasets.splits import subject_split
from emokeras.errors import DatasetError
from emokeras.labels import CKPLUS, FER2013, RAVDESS, LabelSet
from emokeras.run_folder import DEFAULT_FRAMING, CropFraming

log = logging.getLogger(__name__)

#: What training and evaluation read: an ImageSet of files, FER2013 arrays, or
#: ``(images uint8, integer labels)`` arrays.
Source = ImageSet | Fer2013Arrays | tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True, eq=False)
class DataSplits:
    """Train, validation and (optional) test data, their label set, and how they were split."""

    train: Source
    val: Source
    test: Source | None
    label_set: LabelSet
    protocol: str
    #: "fer2013_csv", "fer2013_folders", "manifest", "class_folders" or "spectrograms"
    kind: str
    #: How the spectrogram images were made (kind "spectrograms", when the file says).
    spectrogram: SpectrogramConfig | None = None
    #: How the images frame their faces, so a model trained on them is given detected faces cut
    #: alike (its framing.json); None for images that are not faces (spectrograms).
    framing: CropFraming | None = None

    def sizes(self) -> dict[str, int]:
        return {
            name: len(labels_of(source))
            for name, source in (("train", self.train), ("val", self.val), ("test", self.test))
            if source is not None
        }


def labels_of(source: Source) -> np.ndarray:
    if isinstance(source, ImageSet | Fer2013Arrays):
        return source.labels
    return np.asarray(source[1])


def limit(source: Source, count: int | None, seed: int = 0) -> Source:
    """A seeded random subset of at most ``count`` items (all of them when ``count`` is None)."""
    total = len(labels_of(source))
    if count is None or count >= total:
        return source
    keep = np.sort(np.random.default_rng(seed).choice(total, size=count, replace=False))
    if isinstance(source, ImageSet):
        return source.subset(keep)
    return source[0][keep], source[1][keep]


def _csv_header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return next(csv.reader(handle), [])


def _arrays(data: Fer2013Arrays, usage: str) -> tuple[np.ndarray, np.ndarray]:
    part = data.split(usage)
    return part.images, part.labels


def load_splits(
    path: str | Path,
    label_set: LabelSet | None = None,
    *,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
    sex: str | None = None,
) -> DataSplits:
    """Read ``path`` (see the module's docstring) into train / val / test."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"dataset path {str(path)!r} does not exist")
    official = (
        "FER2013 official split: train on Training, select on PublicTest, "
        "report PrivateTest"
    )
    if path.is_file() and path.suffix.lower() == ".csv":
        header = _csv_header(path)
        if {"emotion", "pixels", "Usage"} <= set(header):
            data = load_fer2013_csv(path)
            return DataSplits(
                _arrays(data, TRAINING), _arrays(data, PUBLIC_TEST), _arrays(data, PRIVATE_TEST),
                FER2013, official, "fer2013_csv", framing=FER2013_FRAMING,
            )
        if "crop_path" in header:
            return _manifest_splits(path, label_set, sex)
        raise DatasetError(
            f"{str(path)!r} is neither a FER2013 CSV (emotion,pixels,Usage) nor a data_prep "
            f"manifest (crop_path, label, split, ...); its columns are {header}"
        )
    if path.is_file() and path.suffix.lower() == ".npz":
        return _spectrogram_splits(path, label_set, val_fraction, test_fraction, seed)
    if path.is_dir() and (path / "train").is_dir() and (path / "test").is_dir():
        sets = load_fer2013_folders(path)
        return DataSplits(
            sets[TRAINING], sets[PUBLIC_TEST], sets[PRIVATE_TEST], FER2013, official,
            "fer2013_folders", framing=FER2013_FRAMING,
        )
    if path.is_dir():
        return _folder_splits(path, label_set, val_fraction, test_fraction, seed)
    raise DatasetError(f"{str(path)!r} is not a dataset this package reads (see load_splits)")


def _manifest_splits(path: Path, label_set: LabelSet | None, sex: str | None) -> DataSplits:
    label_set = label_set or RAVDESS
    parts = {
        split: manifest_image_set(path, label_set, split=split, sex=sex)
        for split in ("train", "val")
    }
    try:
        test = manifest_image_set(path, label_set, split="test", sex=sex)
    except DatasetError:
        test = None
    who = f", {sex} subjects only" if sex else ""
    return DataSplits(
        parts["train"], parts["val"], test, label_set,
        f"face-crop manifest {path.name}: its subject-grouped split column{who}", "manifest",
        framing=manifest_framing(path),
    )


def _folder_splits(
    path: Path, label_set: LabelSet | None, val_fraction: float, test_fraction: float, seed: int
) -> DataSplits:
    # CK+ names its files by subject (S005_001_...): use that so no subject is in two splits.
    looks_like_ckplus = label_set is CKPLUS or any(path.glob("**/S[0-9]*_*.png"))
    images = load_class_folders(
        path, label_set, subject_pattern=CKPLUS_SUBJECT_PATTERN if looks_like_ckplus else None
    )
    if images.subjects is not None:
        groups, how = images.subjects, "subject-grouped split (no subject in two splits)"
    else:
        log.warning("%s: no subject ids, so the split is by image", path)
        groups, how = tuple(str(i) for i in range(len(images))), "split by image (no subject ids)"
    split = subject_split(
        groups, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
        stratify=images.labels,
    )
    train, val, test = split.apply(images)
    return DataSplits(
        train, val, test if len(test) else None, images.label_set,
        f"class folders {path.name}: {how}, val {val_fraction:g}, test {test_fraction:g}, "
        f"seed {seed}", "class_folders",
        # how a folder set's makers framed its faces is not measured here: the default, which
        # every model had before framing.json existed
        framing=DEFAULT_FRAMING,
    )


def _spectrogram_splits(
    path: Path, label_set: LabelSet | None, val_fraction: float, test_fraction: float, seed: int
) -> DataSplits:
    spectrograms = load_spectrogram_npz(path, label_set)
    if spectrograms.subjects is not None:
        groups, how = spectrograms.subjects, "subject-grouped split (no speaker in two splits)"
    else:
        log.warning("%s: no subject ids, so the split is by item", path)
        groups = tuple(str(i) for i in range(len(spectrograms)))
        how = "split by item (no subject ids)"
    split = subject_split(
        groups, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
        stratify=spectrograms.labels,
    )
    train, val, test = (spectrograms.subset(part) for part in (split.train, split.val, split.test))
    return DataSplits(
        train.as_source(), val.as_source(), test.as_source() if len(test) else None,
        spectrograms.label_set,
        f"spectrograms {path.name}: {how}, val {val_fraction:g}, test {test_fraction:g}, "
        f"seed {seed}", "spectrograms", spectrograms.config,
    )
