"""Spectrogram data sets: uint8 spectrogram images with labels, in memory and as ``.npz`` files.

A :class:`SpectrogramSet` holds the images themselves, not paths: a spectrogram is computed once
from audio (:func:`audio_spectrogram_set`, from RAVDESS-named audio or video files) and then
trained on like any face-image array, through :meth:`SpectrogramSet.as_source`.

On disk it is the seed's NumPy ``.npz`` format: ``images`` (N, H, W) or (N, H, W, 1), ``labels``
(class indices or class names), ``filenames``; optionally ``label_set`` (a label set's name),
``subjects`` (one speaker id per item, for subject-grouped splits) and ``spectrogram_config`` (the
:class:`~emokeras.audio.SpectrogramConfig` as JSON). Files are read with ``allow_pickle=False``,
so a data file cannot run code.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from emokeras.audio import SpectrogramConfig, audio_spectrogram
from emokeras.datasets.base import LabelledItems
from emokeras.datasets.ravdess import RavdessName, parse_ravdess_name
from emokeras.errors import (
    AudioReadError,
    ConfigError,
    DatasetError,
    NoAudioError,
    RavdessNameError,
)
from emokeras.fileio import atomic_write
from emokeras.labels import RAVDESS, SPEECH5, LabelSet, UnknownLabelError, get_label_set
from emokeras.media import SOUND_EXTENSIONS

logger = logging.getLogger(__name__)

#: Extensions :func:`audio_spectrogram_set` looks for in a folder (compared case-insensitively):
#: audio files and videos (emokeras.media)
AUDIO_EXTENSIONS: tuple[str, ...] = SOUND_EXTENSIONS

#: The label set of a spectrogram file that names none (the seed's five speech emotions).
DEFAULT_LABEL_SET = SPEECH5

#: The config's defaults: 128 x 128 images of 3 s at 16 kHz (frozen, so safe to share).
_DEFAULT_CONFIG = SpectrogramConfig()

_REQUIRED_KEYS: tuple[str, ...] = ("images", "labels", "filenames")

#: RAVDESS modality codes: 02 is video-only, recorded without sound.
_AUDIO_VIDEO, _VIDEO_ONLY, _AUDIO_ONLY = 1, 2, 3


# eq=False: dataclass equality would compare the arrays with ``==`` and fail on truthiness.
@dataclass(frozen=True, eq=False)
class SpectrogramSet(LabelledItems):
    """Spectrogram images (uint8, N x H x W) with integer labels into ``label_set``, a file name
    each, and where known a subject (speaker) id each and the config that made them."""

    images: np.ndarray
    labels: np.ndarray
    filenames: tuple[str, ...]
    label_set: LabelSet
    subjects: tuple[str, ...] | None = None
    config: SpectrogramConfig | None = None

    def __post_init__(self) -> None:
        images = np.asarray(self.images)
        if images.dtype != np.uint8:
            raise DatasetError(f"spectrogram images must be uint8, got {images.dtype}")
        if images.ndim != 3:
            raise DatasetError(
                f"spectrogram images must be (N, height, width), got shape {images.shape}"
            )
        # A private read-only copy, so the frozen set cannot change under its users.
        images = images.copy()
        images.setflags(write=False)
        count = len(images)
        labels, subjects = self._checked_labels_and_subjects(count, "spectrogram images")
        filenames = tuple(str(f) for f in self.filenames)
        if len(filenames) != count:
            raise DatasetError(f"{count} spectrogram images but {len(filenames)} file names")
        if self.config is not None and images.shape[1:] != self.config.image_shape:
            raise DatasetError(
                f"spectrogram images are {images.shape[1:]} but their config makes "
                f"{self.config.image_shape}"
            )
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "filenames", filenames)
        object.__setattr__(self, "subjects", subjects)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: Sequence[int] | np.ndarray) -> SpectrogramSet:
        """The items at ``indices`` (integer positions or a boolean mask), in that order."""
        index = self._positions(indices)
        return SpectrogramSet(
            images=self.images[index],
            labels=self.labels[index],
            filenames=tuple(self.filenames[i] for i in index),
            label_set=self.label_set,
            subjects=None if self.subjects is None else tuple(self.subjects[i] for i in index),
            config=self.config,
        )

    def as_source(self) -> tuple[np.ndarray, np.ndarray]:
        """``(images uint8 (N, H, W), labels int64 (N,))``: what training and evaluation take."""
        return self.images, self.labels


def _string_array(array: np.ndarray, key: str, path: Path) -> list[str]:
    if array.dtype.kind == "S":
        return [bytes(v).decode("utf-8") for v in array.reshape(-1)]
    if array.dtype.kind in "Uiu":
        return [str(v) for v in array.reshape(-1)]
    raise DatasetError(f"{str(path)!r}: {key!r} must hold strings, got {array.dtype}")


def _scalar_string(array: np.ndarray, key: str, path: Path) -> str:
    values = _string_array(array, key, path)
    if len(values) != 1:
        raise DatasetError(f"{str(path)!r}: {key!r} must be one string, got {len(values)} values")
    return values[0]


def _images_to_uint8(images: np.ndarray, path: Path) -> np.ndarray:
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3:
        raise DatasetError(
            f"{str(path)!r}: 'images' must be (N, H, W) or (N, H, W, 1), got shape {images.shape}"
        )
    if images.dtype == np.uint8:
        return images
    if images.dtype.kind not in "iuf":
        raise DatasetError(f"{str(path)!r}: 'images' must be numeric, got {images.dtype}")
    if images.dtype.kind in "iu" and (
        images.size == 0 or (images.min() >= 0 and images.max() <= 255)
    ):
        return images.astype(np.uint8)
    values = images.astype(np.float64)
    if not np.isfinite(values).all():
        raise DatasetError(f"{str(path)!r}: 'images' holds NaN or infinite values")
    # Each image by its own range, as the seed's float dB spectrograms have no common scale.
    low = values.min(axis=(1, 2), keepdims=True)
    span = values.max(axis=(1, 2), keepdims=True) - low
    scaled = np.divide(values - low, span, out=np.zeros_like(values), where=span > 0)
    return np.round(scaled * 255.0).astype(np.uint8)


def _labels_to_indices(
    raw: np.ndarray, path: Path, label_set: LabelSet, stored: LabelSet | None
) -> np.ndarray:
    raw = raw.reshape(-1)
    if raw.dtype.kind in "US":
        names = _string_array(raw, "labels", path)
        try:
            return np.array([label_set.index(n) for n in names], dtype=np.int64)
        except UnknownLabelError as exc:
            raise DatasetError(f"{str(path)!r}: {exc}") from exc
    if raw.dtype.kind not in "iu":
        raise DatasetError(
            f"{str(path)!r}: 'labels' must be class indices or names, got {raw.dtype}"
        )
    labels = raw.astype(np.int64)
    if stored is None or stored == label_set or not len(labels):
        return labels
    # Indices into the label set the file names: carry them over to the requested one by emotion.
    if labels.min() < 0 or labels.max() >= len(stored):
        bad = int(labels[(labels < 0) | (labels >= len(stored))][0])
        raise DatasetError(
            f"{str(path)!r}: label {bad} is outside 0..{len(stored) - 1} of its label set "
            f"{stored.name!r}"
        )
    mapping = stored.mapping_to(label_set)
    missing = sorted({stored.canonical[i] for i in labels.tolist() if i not in mapping})
    if missing:
        raise DatasetError(
            f"{str(path)!r}: its labels include {missing}, which label set {label_set.name!r} "
            "does not have"
        )
    return np.array([mapping[i] for i in labels.tolist()], dtype=np.int64)


def load_spectrogram_npz(path: str | Path, label_set: LabelSet | None = None) -> SpectrogramSet:
    """Read a spectrogram ``.npz`` (see the module docstring) into a :class:`SpectrogramSet`.

    Images may be (N, H, W) or (N, H, W, 1). uint8 images are kept as they are, integer images
    within 0..255 are cast; any other images (float dB, say) are scaled to 0..255 per image by
    that image's own minimum and maximum (a constant image becomes 0).

    Labels may be class indices or names (a class name of the label set or its canonical
    emotion: "Sad", "sad" and "S" all resolve in SPEECH5). The label set is ``label_set``, else
    the one the file names, else SPEECH5, the seed's five speech emotions. Integer labels of a
    file that names another label set are carried over by emotion.

    ``DatasetError`` names the file and what is wrong: not an npz archive, a missing key,
    lengths that differ, an unknown label.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"spectrogram file {str(path)!r} does not exist")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"{str(path)!r} is not a NumPy .npz archive ({exc})") from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DatasetError(f"{str(path)!r} is a single .npy array, not an .npz archive")
    with archive:
        missing = [k for k in _REQUIRED_KEYS if k not in archive.files]
        if missing:
            raise DatasetError(
                f"{str(path)!r} lacks {missing}; a spectrogram file has {list(_REQUIRED_KEYS)} "
                f"(and optionally label_set, subjects, spectrogram_config); it has {archive.files}"
            )
        try:
            data = {key: archive[key] for key in archive.files}
        except (OSError, ValueError) as exc:
            # Object arrays need pickle, which is refused: a data file must not run code.
            raise DatasetError(f"{str(path)!r}: cannot read its arrays ({exc})") from exc

    stored = None
    if "label_set" in data:
        name = _scalar_string(data["label_set"], "label_set", path)
        try:
            stored = get_label_set(name)
        except UnknownLabelError as exc:
            raise DatasetError(f"{str(path)!r}: {exc}") from exc
    target = label_set or stored or DEFAULT_LABEL_SET

    config = None
    if "spectrogram_config" in data:
        text = _scalar_string(data["spectrogram_config"], "spectrogram_config", path)
        try:
            config = SpectrogramConfig.from_dict(json.loads(text))
        except (json.JSONDecodeError, ConfigError, TypeError) as exc:
            raise DatasetError(f"{str(path)!r}: bad spectrogram_config ({exc})") from exc

    images = _images_to_uint8(data["images"], path)
    labels = _labels_to_indices(data["labels"], path, target, stored)
    filenames = _string_array(data["filenames"], "filenames", path)
    subjects = _string_array(data["subjects"], "subjects", path) if "subjects" in data else None
    try:
        return SpectrogramSet(images, labels, tuple(filenames), target, subjects, config)
    except DatasetError as exc:
        raise DatasetError(f"{str(path)!r}: {exc}") from exc


def save_spectrogram_npz(path: str | Path, spec_set: SpectrogramSet) -> None:
    """Write ``spec_set`` as a compressed ``.npz``, atomically; :func:`load_spectrogram_npz`
    reads back an equal set (label set, subjects and config included)."""
    arrays: dict[str, np.ndarray] = {
        "images": spec_set.images,
        "labels": spec_set.labels,
        "filenames": np.array(spec_set.filenames, dtype=np.str_),
        "label_set": np.array(spec_set.label_set.name),
    }
    if spec_set.subjects is not None:
        arrays["subjects"] = np.array(spec_set.subjects, dtype=np.str_)
    if spec_set.config is not None:
        arrays["spectrogram_config"] = np.array(json.dumps(spec_set.config.to_dict()))
    with atomic_write(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    logger.info("wrote %d spectrograms to %s", len(spec_set), path)


def _media_files(paths_or_root: str | Path | Iterable[str | Path]) -> list[Path]:
    if isinstance(paths_or_root, str | Path):
        root = Path(paths_or_root)
        if not root.is_dir():
            raise DatasetError(
                f"audio folder {str(root)!r} does not exist or is not a folder "
                "(pass a list for single files)"
            )
        wanted = set(AUDIO_EXTENSIONS)
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in wanted)
        if not files:
            logger.warning("no audio or video files %s under %s", list(AUDIO_EXTENSIONS), root)
        return files
    return [Path(p) for p in paths_or_root]


def _recording(name: RavdessName) -> tuple[int, ...]:
    """The performance a file records: its codes without the modality."""
    return name.codes[1:]


def audio_spectrogram_set(
    paths_or_root: str | Path | Iterable[str | Path],
    config: SpectrogramConfig = _DEFAULT_CONFIG,
    label_set: LabelSet = RAVDESS,
    progress: bool = True,
) -> tuple[SpectrogramSet, list[tuple[str, str]]]:
    """Spectrograms of RAVDESS-named audio or video files, and ``(path, reason)`` failures.

    ``paths_or_root`` is a folder (searched recursively for ``AUDIO_EXTENSIONS``) or a list of
    files. Labels come from each name's emotion code, subjects are the actors (``"01"``..).
    With another ``label_set`` than RAVDESS (SPEECH5, say) emotions map by canonical emotion and
    files of emotions the set lacks are skipped: logged at info level, not failures.

    Video-only files (modality 02) have no sound by design and are skipped likewise, as is the
    audio-video copy (01) of a performance whose audio-only file (03) is also given: RAVDESS
    recorded both from one take, so keeping both would count the same speech twice.

    A file with a bad name, no audio or unreadable audio is a failure, logged as a warning; the
    others carry on.
    """
    files = _media_files(paths_or_root)
    failures: list[tuple[str, str]] = []
    named: list[tuple[Path, RavdessName]] = []
    for path in files:
        try:
            named.append((path, parse_ravdess_name(path)))
        except RavdessNameError as exc:
            failures.append((str(path), str(exc)))
            logger.warning("skipping %s", exc)

    audio_only = {_recording(n) for _, n in named if n.modality == _AUDIO_ONLY}
    keep: list[tuple[Path, RavdessName, int]] = []
    skipped = {"emotion": 0, "video-only": 0, "duplicate": 0}
    for path, name in named:
        canonical = RAVDESS.canonical[name.emotion_index]
        if name.modality == _VIDEO_ONLY:
            skipped["video-only"] += 1
            logger.info("skipping %s: a RAVDESS video-only file has no sound", path)
        elif name.modality == _AUDIO_VIDEO and _recording(name) in audio_only:
            skipped["duplicate"] += 1
            logger.info("skipping %s: its audio-only file is also given", path)
        elif canonical not in label_set.canonical:
            skipped["emotion"] += 1
            logger.info("skipping %s: %s is not in label set %r", path, canonical, label_set.name)
        else:
            keep.append((path, name, label_set.canonical.index(canonical)))

    images, labels, filenames, subjects = [], [], [], []
    bar = tqdm(keep, unit="file", desc="spectrograms", disable=not progress or not keep)
    for path, name, label in bar:
        try:
            image = audio_spectrogram(path, config)
        except (NoAudioError, AudioReadError) as exc:
            failures.append((str(path), str(exc)))
            logger.warning("skipping %s", exc)
            continue
        images.append(image)
        labels.append(label)
        filenames.append(str(path))
        subjects.append(name.actor_id)

    if any(skipped.values()):
        logger.info("skipped %s", ", ".join(f"{n} {why}" for why, n in skipped.items() if n))
    stacked = (
        np.stack(images) if images else np.empty((0, *config.image_shape), dtype=np.uint8)
    )
    spec_set = SpectrogramSet(
        stacked, np.array(labels, dtype=np.int64), tuple(filenames), label_set, tuple(subjects),
        config,
    )
    logger.info(
        "%d spectrograms from %d files (%d failed)", len(spec_set), len(files), len(failures)
    )
    return spec_set, failures
