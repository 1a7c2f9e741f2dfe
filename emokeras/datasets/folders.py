"""Class-per-folder face sets (``root/<class>/*.png``), and CK+48 on top of them."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from emokeras.datasets.base import ImageSet, class_subfolders, list_images
from emokeras.errors import DatasetError
from emokeras.labels import CKPLUS, EMOJI, LABEL_SETS, LabelSet, UnknownLabelError
from emokeras.media import IMAGE_EXTENSIONS

logger = logging.getLogger(__name__)

#: CK+ file names start with the subject: ``S132_006_00000023.png`` is subject S132.
CKPLUS_SUBJECT_PATTERN = r"^(S\d+)_"


def _canonical(folder_name: str) -> str | None:
    """The canonical emotion a folder name stands for, by the known label sets' class names."""
    key = folder_name.strip().lower()
    if key in EMOJI:
        return key
    for label_set in LABEL_SETS.values():
        if key in label_set.classes:
            return label_set.canonical[label_set.classes.index(key)]
    return None


def _infer_label_set(root: Path, names: list[str]) -> LabelSet:
    unknown = [n for n in names if _canonical(n) is None]
    if unknown:
        raise DatasetError(
            f"class folders {unknown} under {str(root)!r} are not known emotions "
            f"({sorted(EMOJI)} or a known data set's class names); pass label_set="
        )
    canonical = [_canonical(n) for n in names]
    doubled = sorted({c for c in canonical if canonical.count(c) > 1})
    if doubled:
        raise DatasetError(
            f"class folders under {str(root)!r} name the same emotion twice ({doubled}): "
            "merge them or pass label_set="
        )
    return LabelSet(
        name=root.name,
        classes=tuple(n.strip().lower() for n in names),
        canonical=tuple(canonical),
    )


def _class_root(root: Path) -> Path:
    """``root``, or its only subfolder when that holds the class folders (CK+'s ``CK+48/``)."""
    subfolders = class_subfolders(root)
    if len(subfolders) == 1 and class_subfolders(subfolders[0]):
        logger.debug("descending into %s", subfolders[0])
        return subfolders[0]
    return root


def load_class_folders(
    root: str | Path,
    label_set: LabelSet | None = None,
    extensions: Iterable[str] = IMAGE_EXTENSIONS,
    subject_pattern: str | re.Pattern[str] | None = None,
) -> ImageSet:
    """Load a face set laid out one folder per class.

    With ``label_set``, folder names resolve through ``label_set.index`` (class or canonical
    name). Without, classes are the folder names in sorted order, each tied to its canonical
    emotion through the known label sets' names ("fear" is fearful, "anger" angry, ...); other
    names need an explicit ``label_set``. ``subject_pattern`` is a regex with one group that
    finds the subject id in each file name. Images directly inside a class folder are read (not
    deeper); other files are ignored.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"image folder {str(root)!r} does not exist or is not a folder")
    pattern = None if subject_pattern is None else re.compile(subject_pattern)
    if pattern is not None and pattern.groups != 1:
        raise ValueError(f"subject_pattern {pattern.pattern!r} must have exactly one group")
    class_root = _class_root(root)
    folders = class_subfolders(class_root)
    if not folders:
        raise DatasetError(f"no class folders under {str(class_root)!r}")
    if label_set is None:
        label_set = _infer_label_set(class_root, [f.name for f in folders])

    paths: list[str] = []
    labels: list[int] = []
    subjects: list[str] = []
    seen: dict[int, Path] = {}
    for folder in folders:
        try:
            label = label_set.index(folder.name)
        except UnknownLabelError:
            raise DatasetError(
                f"class folder {str(folder)!r} is not a class of label set {label_set.name!r}; "
                f"expected one of {list(label_set.classes)}"
            ) from None
        if label in seen:
            raise DatasetError(
                f"class folders {str(seen[label])!r} and {str(folder)!r} are the same class "
                f"{label_set.classes[label]!r}"
            )
        seen[label] = folder
        files = list_images(folder, extensions)
        if not files:
            raise DatasetError(f"class folder {str(folder)!r} holds no images")
        for file in files:
            if pattern is not None:
                match = pattern.search(file.name)
                if match is None:
                    raise DatasetError(
                        f"no subject id in {str(file)!r}: name does not match {pattern.pattern!r}"
                    )
                subjects.append(match.group(1))
            paths.append(str(file))
            labels.append(label)
    logger.info("loaded %d images in %d classes from %s", len(paths), len(folders), class_root)
    return ImageSet(
        paths=tuple(paths),
        labels=np.array(labels, dtype=np.int64),
        label_set=label_set,
        subjects=tuple(subjects) if pattern is not None else None,
    )


def load_ckplus(root: str | Path, extensions: Iterable[str] = IMAGE_EXTENSIONS) -> ImageSet:
    """Load CK+48 (``root`` is ``CK+48/`` or the folder holding it) with subject ids ("S132")."""
    return load_class_folders(
        root, label_set=CKPLUS, extensions=extensions, subject_pattern=CKPLUS_SUBJECT_PATTERN
    )
