"""FER2013: the original CSV (``emotion,pixels,Usage``) and the common image-folder layout.

FER2013 comes with an official three-way split, kept here under its own names:

- ``"Training"`` (28,709 faces): train on it.
- ``"PublicTest"`` (3,589): the validation set; tune and select models on it.
- ``"PrivateTest"`` (3,589): the test set; report on it, never select or tune on it.

Labels are indices into ``labels.FER2013``, the CSV's order (0 angry ... 6 neutral), whichever
form the data comes in, so a model trained on folders reads the CSV's labels the same way.
"""

from __future__ import annotations

import csv
import logging
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emokeras.datasets.base import ImageSet, class_subfolders, list_images
from emokeras.errors import DatasetError
from emokeras.fileio import atomic_write
from emokeras.labels import FER2013, LabelSet, UnknownLabelError
from emokeras.media import IMAGE_EXTENSIONS
from emokeras.run_folder import CropFraming

logger = logging.getLogger(__name__)

TRAINING = "Training"
PUBLIC_TEST = "PublicTest"
PRIVATE_TEST = "PrivateTest"
#: The official splits, in order.
FER2013_SPLITS: tuple[str, ...] = (TRAINING, PUBLIC_TEST, PRIVATE_TEST)
#: What each split is for.
SPLIT_ROLES: dict[str, str] = {TRAINING: "train", PUBLIC_TEST: "validation", PRIVATE_TEST: "test"}

#: The header of the original CSV.
CSV_COLUMNS: tuple[str, ...] = ("emotion", "pixels", "Usage")
IMAGE_SIZE = 48
NUM_PIXELS = IMAGE_SIZE * IMAGE_SIZE
#: How FER2013's images frame their faces, as a cut of a YuNet box: measured on the Training
#: split by ``benchmarks/face_framing.py`` (the margin whose cuts of detected faces look most
#: like the images themselves). Training on FER2013 (or FER+, the same images) writes it as the
#: run's framing.json, so inference cuts detected faces as the model saw them; the bundled
#: model's ``emokeras/assets/fer2013_cnn48_ensemble/framing.json`` holds the same values.
FER2013_FRAMING = CropFraming(margin=0.0, shift_y=0.0)
_DECIMALS = [str(value) for value in range(256)]

# The image-folder layout: which file-name prefixes (splits) each top folder may hold. test/ mixes
# PublicTest and PrivateTest, so the split comes from the prefix, not the folder.
_FOLDER_SPLITS: dict[str, tuple[str, ...]] = {
    "train": (TRAINING,),
    "test": (PUBLIC_TEST, PRIVATE_TEST),
}


# eq=False: dataclass equality would compare the arrays with ``==`` and fail on truthiness.
@dataclass(frozen=True, eq=False)
class Fer2013Arrays:
    """FER2013 rows as arrays: images uint8 (N, 48, 48), labels int64 (N,), Usage per row."""

    images: np.ndarray
    labels: np.ndarray
    usage: tuple[str, ...]
    label_set: LabelSet = FER2013

    def __len__(self) -> int:
        return len(self.labels)

    def split(self, name: str) -> Fer2013Arrays:
        """The rows of one split (``"Training"``, ``"PublicTest"`` or ``"PrivateTest"``)."""
        _check_splits([name])
        keep = np.array([u == name for u in self.usage], dtype=bool)
        return _arrays(self.images[keep], self.labels[keep], [u for u in self.usage if u == name])


def _arrays(images: np.ndarray, labels: np.ndarray, usage: Sequence[str]) -> Fer2013Arrays:
    # Read-only, as the result is frozen; slicing above already copied.
    images.setflags(write=False)
    labels.setflags(write=False)
    return Fer2013Arrays(images=images, labels=labels, usage=tuple(usage))


def _check_splits(names: Iterable[str]) -> frozenset[str]:
    names = frozenset(names)
    unknown = sorted(names - set(FER2013_SPLITS))
    if unknown:
        raise ValueError(f"unknown FER2013 split(s) {unknown}; splits are {list(FER2013_SPLITS)}")
    return names


def _parse_pixels(text: str) -> np.ndarray:
    """Parse one ``pixels`` field into 2304 uint8 values; raise ValueError saying what is wrong."""
    try:
        # Older NumPy warns instead of raising on a non-numeric token; make it raise everywhere.
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            values = np.fromstring(text, dtype=np.int64, sep=" ")
    except (ValueError, DeprecationWarning):
        values = None
    if values is None or len(values) != NUM_PIXELS:
        # The slow path runs only on a bad row, to say exactly what is wrong with it.
        tokens = text.split()
        for position, token in enumerate(tokens):
            if not (token.isascii() and token.isdigit()):
                raise ValueError(f"pixel {position} is {token[:20]!r}, not an integer") from None
        raise ValueError(f"has {len(tokens)} pixels, expected {NUM_PIXELS}") from None
    if values.min() < 0 or values.max() > 255:
        position = int(np.flatnonzero((values < 0) | (values > 255))[0])
        raise ValueError(f"pixel {position} is {values[position]}, outside 0..255")
    return values.astype(np.uint8)


def load_fer2013_csv(path: str | Path, usage: str | Iterable[str] | None = None) -> Fer2013Arrays:
    """Load the original FER2013 CSV, optionally only the rows of one split or a list of splits.

    Every row's label and Usage are checked; pixels are parsed (and checked) for the rows kept.
    A bad row raises ``DatasetError`` naming the file, the line and the problem.
    """
    path = Path(path)
    wanted = None if usage is None else _check_splits([usage] if isinstance(usage, str) else usage)
    if not path.is_file():
        raise DatasetError(f"FER2013 CSV {str(path)!r} does not exist")
    images: list[np.ndarray] = []
    labels: list[int] = []
    usages: list[str] = []
    # utf-8-sig: a CSV saved by a spreadsheet program may start with a byte-order mark.
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [column.strip() for column in next(reader, [])]
        missing = [c for c in CSV_COLUMNS if c not in header]
        if missing:
            raise DatasetError(
                f"{path}: header has columns {header}, expected {list(CSV_COLUMNS)} "
                f"(missing {missing})"
            )
        i_emotion, i_pixels, i_usage = (header.index(c) for c in CSV_COLUMNS)
        for row in reader:
            if not row:
                continue  # a blank line, e.g. at the end of the file
            where = f"{path}, line {reader.line_num}"
            if len(row) != len(header):
                raise DatasetError(f"{where}: {len(row)} fields, expected {len(header)}")
            split = row[i_usage].strip()
            if split not in FER2013_SPLITS:
                raise DatasetError(f"{where}: Usage {split!r} is not one of {list(FER2013_SPLITS)}")
            label = row[i_emotion].strip()
            if not (label.isascii() and label.isdigit() and int(label) < len(FER2013)):
                raise DatasetError(
                    f"{where}: emotion {label!r} is not a label in 0..{len(FER2013) - 1}"
                )
            if wanted is not None and split not in wanted:
                continue
            try:
                images.append(_parse_pixels(row[i_pixels]))
            except ValueError as exc:
                raise DatasetError(f"{where}: pixels {exc}") from None
            labels.append(int(label))
            usages.append(split)
    if not labels:
        logger.warning("no FER2013 rows%s in %s", "" if wanted is None else f" of {wanted}", path)
    stacked = (
        np.stack(images).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
        if images
        else np.empty((0, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    )
    logger.info("loaded %d FER2013 rows from %s", len(labels), path)
    return _arrays(stacked, np.array(labels, dtype=np.int64), usages)


def write_fer2013_csv(
    path: str | Path,
    images: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    usage: str | Sequence[str],
) -> None:
    """Write images (N, 48, 48) or (N, 2304) with labels and Usage as a FER2013 CSV, atomically.

    The inverse of ``load_fer2013_csv``; with ``ImageSet.load_images(grayscale=True)`` it turns the
    image-folder layout into the CSV. ``usage`` is one split for every row or a split per row.
    """
    images = np.asarray(images)
    if images.ndim not in (2, 3) or images.shape[1:] not in ((NUM_PIXELS,), (48, 48)):
        raise ValueError(f"images must be (N, 48, 48) or (N, 2304), got {images.shape}")
    if not np.issubdtype(images.dtype, np.integer):
        raise ValueError(f"images must be integers in 0..255, got dtype {images.dtype}")
    flat = images.reshape(len(images), NUM_PIXELS)
    if flat.size and (flat.min() < 0 or flat.max() > 255):
        raise ValueError("image values must be in 0..255")
    labels = np.asarray(labels)
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be {len(images)} integers, got {labels.dtype} of shape {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= len(FER2013)):
        raise ValueError(f"labels must be in 0..{len(FER2013) - 1}")
    usages = [usage] * len(images) if isinstance(usage, str) else list(usage)
    if len(usages) != len(images):
        raise ValueError(f"{len(usages)} usage values for {len(images)} images")
    _check_splits(usages)
    with atomic_write(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for pixels, label, split in zip(
            flat.astype(np.uint8), labels.tolist(), usages, strict=True
        ):
            # Joining cached decimal strings is ~4x faster than str() per pixel (82M for all rows).
            writer.writerow((label, " ".join(map(_DECIMALS.__getitem__, pixels.tobytes())), split))
    logger.info("wrote %d FER2013 rows to %s", len(images), path)


def load_fer2013_folders(
    root: str | Path, extensions: Iterable[str] = IMAGE_EXTENSIONS
) -> dict[str, ImageSet]:
    """Load the image-folder layout into one ``ImageSet`` per split, keyed by split name.

    ``root/train/<class>/Training_*`` is "Training"; ``root/test/<class>/PublicTest_*`` and
    ``PrivateTest_*`` are "PublicTest" and "PrivateTest". Class folders map to ``labels.FER2013``
    (CSV order, not alphabetical). An image whose name prefix is not a split its top folder may
    hold raises ``DatasetError``: guessing its split could leak test faces into training.
    Other files are ignored. FER2013 has no subject ids, so ``subjects`` is None.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"FER2013 folder {str(root)!r} does not exist or is not a folder")
    found: dict[str, tuple[list[str], list[int]]] = {split: ([], []) for split in FER2013_SPLITS}
    for top, allowed in _FOLDER_SPLITS.items():
        folder = root / top
        if not folder.is_dir():
            raise DatasetError(
                f"{str(root)!r} has no {top}/ folder; expected train/<class>/ and test/<class>/"
            )
        loose = list_images(folder, extensions)
        if loose:
            logger.warning("ignoring %d images outside class folders in %s", len(loose), folder)
        for class_dir in class_subfolders(folder):
            try:
                label = FER2013.index(class_dir.name)
            except UnknownLabelError:
                raise DatasetError(
                    f"unknown FER2013 class folder {str(class_dir)!r}; "
                    f"classes are {list(FER2013.classes)}"
                ) from None
            for file in list_images(class_dir, extensions):
                prefix = file.name.split("_", 1)[0]
                if prefix not in allowed:
                    raise DatasetError(
                        f"{str(file)!r}: name prefix {prefix!r} is not a split of {top}/ "
                        f"(expected {' or '.join(p + '_*' for p in allowed)})"
                    )
                found[prefix][0].append(str(file))
                found[prefix][1].append(label)
    result = {}
    for split, (paths, labels) in found.items():
        if not paths:
            raise DatasetError(f"no {split}_* images under {str(root)!r}")
        result[split] = ImageSet(paths=tuple(paths), labels=np.array(labels), label_set=FER2013)
        logger.info("FER2013 %s: %d images", split, len(paths))
    return result
