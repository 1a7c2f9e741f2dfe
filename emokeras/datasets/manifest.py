"""Read the face-crop manifest that ``data_prep`` writes (``emokeras.prepare``) as an ImageSet."""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np

from emokeras.datasets.base import ImageSet
from emokeras.errors import ConfigError, DatasetError
from emokeras.labels import LabelSet, UnknownLabelError
from emokeras.run_folder import DEFAULT_FRAMING, CropFraming

logger = logging.getLogger(__name__)

#: Manifest columns ``manifest_image_set`` always reads (``split``/``sex`` only to filter on them).
MANIFEST_COLUMNS_READ: tuple[str, ...] = (
    "crop_path", "label", "label_index", "actor", "video_id", "status",
)  # fmt: skip
MANIFEST_SPLITS: tuple[str, ...] = ("train", "val", "test")
#: Written by ``emokeras prepare`` beside its manifest: the PrepareConfig its crops were cut with.
PREPARE_CONFIG_FILE = "prepare.json"


def read_manifest_rows(
    manifest_csv: str | Path, *, split: str | None = None, sex: str | None = None
) -> list[tuple[int, dict[str, str]]]:
    """The manifest's usable rows (status ``ok``, and the split / sex asked for), in order, each
    with its line number; ``DatasetError`` says which file, column or filter failed."""
    path = Path(manifest_csv)
    if split is not None and split not in MANIFEST_SPLITS:
        raise ValueError(f"split must be one of {list(MANIFEST_SPLITS)} or None, got {split!r}")
    if not path.is_file():
        raise DatasetError(f"manifest {str(path)!r} does not exist or is not a file")
    try:
        # utf-8-sig: a manifest saved again by a spreadsheet program may start with a BOM.
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except (UnicodeDecodeError, OSError, csv.Error) as error:
        raise DatasetError(f"cannot read manifest {str(path)!r}: {error}") from error
    needed = list(MANIFEST_COLUMNS_READ)
    needed += ["split"] if split is not None else []
    needed += ["sex"] if sex is not None else []
    missing = [c for c in needed if c not in header]
    if missing:
        raise DatasetError(
            f"manifest {str(path)!r} lacks columns {missing}; its columns are {header}"
        )
    if not rows:
        raise DatasetError(f"manifest {str(path)!r} has no rows")

    kept = [(line, row) for line, row in enumerate(rows, start=2) if row["status"] == "ok"]
    if not kept:
        statuses = dict(Counter(row["status"] for row in rows))
        raise DatasetError(f"manifest {str(path)!r} has no row with status 'ok' ({statuses})")
    filters = [("split", split, lambda row: row["split"] == split)]
    filters.append(("sex", sex, lambda row: row["sex"].strip().lower() == sex.strip().lower()))
    for column, wanted, keep in filters:
        if wanted is None:
            continue
        before = kept
        kept = [(line, row) for line, row in kept if keep(row)]
        if not kept:
            found = dict(Counter(row[column] for _, row in before))
            raise DatasetError(
                f"manifest {str(path)!r}: no usable row is left after the filter "
                f"{column}={wanted!r}; the {len(before)} rows before it have {column} {found}"
            )

    return kept


def manifest_framing(manifest_csv: str | Path) -> CropFraming:
    """How the manifest's crops frame their faces: the margin of the ``prepare.json`` beside it
    (``emokeras prepare`` cuts with no vertical shift), else :data:`DEFAULT_FRAMING` (prepare's
    default margin, and what a manifest from before prepare.json was most likely cut with). A
    prepare.json without a usable margin is a ``DatasetError`` naming it: a model given the wrong
    framing would quietly lose accuracy on detected faces."""
    path = Path(manifest_csv).parent / PREPARE_CONFIG_FILE
    if not path.is_file():
        logger.info("%s: no %s beside it, so its crops are taken as framed with margin %g",
                    manifest_csv, PREPARE_CONFIG_FILE, DEFAULT_FRAMING.margin)
        return DEFAULT_FRAMING
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"cannot read {str(path)!r}: {error}") from None
    if not isinstance(data, dict) or "margin" not in data:
        raise DatasetError(f"{str(path)!r} gives no crop margin: expected a JSON object with "
                           f'"margin", got {json.dumps(data)[:80]}')
    try:
        return CropFraming(margin=data["margin"])
    except ConfigError as error:
        raise DatasetError(f"{str(path)!r}: {error}") from None


def manifest_image_set(
    manifest_csv: str | Path,
    label_set: LabelSet,
    *,
    split: str | None = None,
    sex: str | None = None,
) -> ImageSet:
    """The usable face crops of a ``data_prep`` manifest (``emokeras.prepare``) as an ImageSet.

    Keeps rows whose status is ``ok`` and, if given, whose ``split`` (train, val or test) and
    ``sex`` (e.g. male, female; case-insensitive) match, in manifest order. Paths are resolved
    relative to the manifest's folder. Labels come from ``label_index``, or from the ``label``
    name through ``label_set`` where the index is empty; subjects from ``actor``, or
    ``video_id`` where the actor is empty. A missing file or column, a bad label, or no row left
    raises ``DatasetError`` saying which. ``read_manifest_rows`` gives the same rows' other
    columns (video id, sex, ...), in the same order.
    """
    path = Path(manifest_csv)
    kept = read_manifest_rows(path, split=split, sex=sex)
    folder = path.parent
    paths, labels, subjects = [], [], []
    for line, row in kept:
        where = f"manifest {str(path)!r}, line {line}"
        crop = row["crop_path"].strip()
        if not crop:
            raise DatasetError(f"{where}: status 'ok' but crop_path is empty")
        paths.append(str(folder / crop))
        labels.append(_manifest_label(row, label_set, where))
        subject = row["actor"].strip() or row["video_id"].strip()
        if not subject:
            raise DatasetError(f"{where}: both actor and video_id are empty (no subject id)")
        subjects.append(subject)
    logger.info(
        "manifest %s: %d usable rows (status ok%s%s)", path, len(paths),
        f", split {split}" if split else "", f", sex {sex}" if sex else "",
    )  # fmt: skip
    return ImageSet(
        paths=tuple(paths), labels=np.array(labels, dtype=np.int64), label_set=label_set,
        subjects=tuple(subjects),
    )  # fmt: skip


def _manifest_label(row: dict[str, str], label_set: LabelSet, where: str) -> int:
    index = row["label_index"].strip()
    if index:
        if not (index.isascii() and index.isdigit()) or int(index) >= len(label_set):
            raise DatasetError(
                f"{where}: label_index {index!r} is not a class index of label set "
                f"{label_set.name!r} (0..{len(label_set) - 1})"
            )
        return int(index)
    name = row["label"].strip()
    if not name:
        raise DatasetError(f"{where}: both label_index and label are empty")
    try:
        return label_set.index(name)
    except UnknownLabelError as error:
        raise DatasetError(f"{where}: {error}") from None
