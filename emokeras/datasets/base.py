"""``ImageSet``: a labelled list of face images on disk, the common result of the folder loaders."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emokeras.errors import DatasetError
from emokeras.images import load_image
from emokeras.labels import LabelSet
from emokeras.media import IMAGE_EXTENSIONS as IMAGE_EXTENSIONS  # re-exported (moved there)

logger = logging.getLogger(__name__)



class LabelledItems:
    """What the labelled sets here share: per-class counts, and ``subset``'s index handling.
    A subclass has ``labels`` (int64), ``label_set`` and a length."""

    labels: np.ndarray
    label_set: LabelSet
    subjects: tuple[str, ...] | None

    def _checked_labels_and_subjects(
        self, count: int, items: str
    ) -> tuple[np.ndarray, tuple[str, ...] | None]:
        """Read-only int64 labels inside the label set and string subject ids, one per item;
        ``DatasetError`` (counting ``items``) otherwise."""
        # A private read-only copy, so the frozen set cannot change under its users.
        labels = np.array(self.labels, dtype=np.int64).reshape(-1)
        labels.setflags(write=False)
        if len(labels) != count:
            raise DatasetError(f"{count} {items} but {len(labels)} labels")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(self.label_set)):
            bad = int(labels[(labels < 0) | (labels >= len(self.label_set))][0])
            raise DatasetError(
                f"label {bad} is outside 0..{len(self.label_set) - 1} "
                f"of label set {self.label_set.name!r}"
            )
        subjects = None if self.subjects is None else tuple(str(s) for s in self.subjects)
        if subjects is not None and len(subjects) != count:
            raise DatasetError(f"{count} {items} but {len(subjects)} subject ids")
        return labels, subjects

    def class_counts(self) -> dict[str, int]:
        """Number of items per class, for every class of the label set in its order."""
        counts = np.bincount(self.labels, minlength=len(self.label_set))
        return {name: int(n) for name, n in zip(self.label_set.classes, counts, strict=True)}

    def _positions(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """``indices`` (integer positions or a boolean mask) as int64 positions, in order."""
        index = np.asarray(indices)
        if index.dtype == bool:
            if index.shape != (len(self),):
                raise ValueError(f"boolean mask of shape {index.shape} for {len(self)} items")
            index = np.flatnonzero(index)
        return index.astype(np.int64, copy=False).reshape(-1)


# eq=False: dataclass equality would compare the label arrays with ``==`` and fail on truthiness.
@dataclass(frozen=True, eq=False)
class ImageSet(LabelledItems):
    """Image paths with integer labels into ``label_set`` and, where known, a subject id each."""

    paths: tuple[str, ...]
    labels: np.ndarray
    label_set: LabelSet
    subjects: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        paths = tuple(str(p) for p in self.paths)
        labels, subjects = self._checked_labels_and_subjects(len(paths), "paths")
        object.__setattr__(self, "paths", paths)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "subjects", subjects)

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, indices: Sequence[int] | np.ndarray) -> ImageSet:
        """The items at ``indices`` (integer positions or a boolean mask), in that order."""
        index = self._positions(indices)
        return ImageSet(
            paths=tuple(self.paths[i] for i in index),
            labels=self.labels[index],
            label_set=self.label_set,
            subjects=None if self.subjects is None else tuple(self.subjects[i] for i in index),
        )

    def load_images(
        self, size: int | tuple[int, int] | None = None, grayscale: bool = False
    ) -> np.ndarray:
        """Read every image into one uint8 array: (N, H, W, 3) RGB, or (N, H, W) if grayscale.

        ``size`` is (height, width), or an int for a square; without it all images must share one
        size (else ``DatasetError``). ``ImageReadError`` names a file that cannot be decoded.
        """
        target = (size, size) if isinstance(size, int) else size
        images = [load_image(p, size=target, grayscale=grayscale) for p in self.paths]
        if not images:
            height, width = target if target is not None else (0, 0)
            return np.empty((0, height, width) + (() if grayscale else (3,)), dtype=np.uint8)
        first = images[0].shape
        for path, image in zip(self.paths, images, strict=True):
            if image.shape != first:
                raise DatasetError(
                    f"{path!r} is {image.shape[:2]}, unlike {self.paths[0]!r} {first[:2]}; "
                    "pass size= to resize"
                )
        return np.stack(images)


def list_images(folder: Path, extensions: Iterable[str]) -> list[Path]:
    """Image files directly in ``folder`` (not recursive), sorted by name."""
    wanted = {e.lower() for e in extensions}
    files = []
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and entry.suffix.lower() in wanted:
            files.append(entry)
        elif entry.is_file():
            logger.debug("ignoring %s: not an image extension", entry)
    return files


def class_subfolders(folder: Path) -> list[Path]:
    """Visible subfolders of ``folder``, sorted by name (hidden ones such as .git are skipped)."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
