"""Turn a folder of videos into face crops on disk plus a manifest, resumably.

Layout of the output folder::

    out_dir/
      crops/<video_id>/<frame>_<face>.jpg   square face crops
      parts/<video_id>.csv                  one finished video's rows (written last, atomically)
      manifest.csv                          all rows, with a subject-grouped split column
      prepare.json                          the PrepareConfig the crops were cut with (training
                                            reads its margin: the model's framing.json)

A video counts as finished once its part file exists, so a re-run skips it; a kill mid-video
leaves no part file and the video is redone. Every file is written atomically (temporary file,
then rename), so a kill never leaves a half-written crop, part or manifest.

Nothing is dropped silently: a frame without a face gets a ``no_face`` row, an unreadable video an
``unreadable`` row and a file whose name gives no label a ``bad_name`` row, each with its reason.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from emokeras.datasets import parse_ravdess_name, subject_split
from emokeras.datasets.manifest import PREPARE_CONFIG_FILE
from emokeras.errors import DatasetError, EmokerasError
from emokeras.faces import FaceDetector, get_detector, iter_face_crops
from emokeras.fileio import (
    atomic_write,
    read_csv,
    remove_partials,
    write_csv_atomic,
    write_json_atomic,
)
from emokeras.media import VIDEO_EXTENSIONS as VIDEO_EXTENSIONS  # re-exported (moved there)
from emokeras.video import iter_frames

log = logging.getLogger(__name__)


MANIFEST_FIELDS = (
    "video_id", "video_path", "frame_index", "timestamp", "face_index",
    "box_x", "box_y", "box_w", "box_h", "crop_path",
    "label", "label_index", "actor", "sex", "split", "status", "reason",
)

Status = Literal["ok", "no_face", "unreadable", "bad_name"]
LabelSource = Literal["ravdess", "folder", "none"]


@dataclass(frozen=True)
class PrepareConfig:
    """How frames are sampled, faces found and cropped, labels read and splits made."""

    step: int | None = None
    target_fps: float | None = 6.0  # about 20 crops from a 3.5 s RAVDESS clip
    max_frames: int | None = None
    detector: Literal["yunet", "haar", "mtcnn"] = "yunet"
    #: the detector's score threshold (None: its default; see emokeras.faces.get_detector)
    detector_threshold: float | None = None
    #: turn each face upright from its eye landmarks before cropping (as inference does)
    align: bool = True
    which: Literal["largest", "all"] = "largest"
    size: int = 224
    margin: float = 0.2
    label_source: LabelSource = "ravdess"
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        if self.step is not None and self.target_fps is not None:
            raise ValueError("sample frames by step or by target_fps, not both")

    @property
    def sampling(self) -> dict[str, float | int | None]:
        """Keyword arguments for :func:`emokeras.video.iter_frames`."""
        if self.target_fps is not None:
            return {"target_fps": self.target_fps, "max_frames": self.max_frames}
        return {"step": self.step or 1, "max_frames": self.max_frames}


@dataclass(frozen=True)
class VideoResult:
    """What happened to one video: its rows, or that a previous run had finished it."""

    video_id: str
    path: str
    skipped: bool
    num_frames: int
    num_faces: int
    status: Status | None  # None: frames were read (see the rows); else why the video failed
    reason: str = ""


def find_videos(root: str | Path, extensions: Sequence[str] = VIDEO_EXTENSIONS) -> list[Path]:
    """Every video file below ``root``, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"video folder {str(root)!r} does not exist or is not a folder")
    exts = {e.lower() for e in extensions}
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in exts)


def video_id_for(path: Path, root: Path) -> str:
    """A file-system-safe id that stays unique across subfolders."""
    return "__".join(path.relative_to(root).with_suffix("").parts)


def make_detector(name: str, threshold: float | None = None) -> FaceDetector:
    """The detector named ``name`` in :data:`emokeras.faces.DETECTORS` (ConfigError, a
    ValueError, for an unknown name)."""
    return get_detector(name, threshold=threshold)


def _labels_for(path: Path, source: LabelSource) -> dict[str, str]:
    if source == "ravdess":
        name = parse_ravdess_name(path)
        return {
            "label": name.emotion,
            "label_index": str(name.emotion_index),
            "actor": name.actor_id,
            "sex": name.sex,
        }
    if source == "folder":
        return {"label": path.parent.name, "label_index": "", "actor": "", "sex": ""}
    if source == "none":
        return {"label": "", "label_index": "", "actor": "", "sex": ""}
    raise ValueError(f"unknown label source {source!r}; use 'ravdess', 'folder' or 'none'")


def _write_jpeg(path: Path, rgb: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"OpenCV could not encode a JPEG for {path}")
    with atomic_write(path, "wb") as handle:
        handle.write(encoded.tobytes())


def prepare_video(
    path: Path, video_id: str, out_dir: Path, config: PrepareConfig, detector: FaceDetector
) -> tuple[list[dict[str, str]], VideoResult]:
    """Crop the faces of one video; return its manifest rows and a summary."""
    base = {"video_id": video_id, "video_path": str(path)}
    empty = dict.fromkeys(MANIFEST_FIELDS, "")

    def failed(status: Status, error: Exception):
        log.warning("%s: %s", path, error)
        # a video that broke mid-stream (truncated, damaged) keeps no crops from before the break
        shutil.rmtree(out_dir / "crops" / video_id, ignore_errors=True)
        row = {**empty, **base, "status": status, "reason": str(error)}
        return [row], VideoResult(video_id, str(path), False, 0, 0, status, str(error))

    try:
        labels = _labels_for(path, config.label_source)
    except DatasetError as error:
        return failed("bad_name", error)

    # Start the video afresh: a killed earlier run may have left some of its crops (and a
    # temporary file) behind.
    shutil.rmtree(out_dir / "crops" / video_id, ignore_errors=True)
    rows: list[dict[str, str]] = []
    num_frames = num_faces = 0
    try:
        frames = iter_frames(path, **config.sampling)
        for item in iter_face_crops(
            frames, detector, size=config.size, margin=config.margin, which=config.which,
            align=config.align,
        ):
            num_frames += 1
            frame_base = {
                **empty, **base, **labels,
                "frame_index": str(item.frame_index), "timestamp": f"{item.timestamp:.4f}",
            }
            if not item.crops:
                rows.append({**frame_base, "status": "no_face", "reason": "no face detected"})
            for face_index, crop in enumerate(item.crops):
                crop_rel = Path("crops") / video_id / f"{item.frame_index:06d}_{face_index}.jpg"
                _write_jpeg(out_dir / crop_rel, crop.image)
                num_faces += 1
                rows.append({
                    **frame_base, "face_index": str(face_index),
                    "box_x": str(crop.box.x), "box_y": str(crop.box.y),
                    "box_w": str(crop.box.width), "box_h": str(crop.box.height),
                    "crop_path": crop_rel.as_posix(), "status": "ok",
                })
    except EmokerasError as error:  # VideoReadError, also one raised mid-stream
        return failed("unreadable", error)
    if num_faces == 0:
        log.info("%s: no face in any of %d sampled frames", path, num_frames)
    return rows, VideoResult(video_id, str(path), False, num_frames, num_faces, None)


def prepare_videos(
    videos: Iterable[Path],
    root: str | Path,
    out_dir: str | Path,
    config: PrepareConfig = PrepareConfig(),
    *,
    detector: FaceDetector | None = None,
) -> Iterator[VideoResult]:
    """Process each video in turn, skipping those a previous run finished; yield a summary each.

    Call :func:`write_manifest` afterwards (the ``data_prep`` step does) to gather the rows.
    """
    root, out_dir = Path(root), Path(out_dir)
    detector = detector or make_detector(config.detector, config.detector_threshold)
    if (out_dir / "parts").is_dir():
        remove_partials(out_dir / "parts")
    for path in videos:
        video_id = video_id_for(Path(path), root)
        part = out_dir / "parts" / f"{video_id}.csv"
        if part.exists():
            yield VideoResult(video_id, str(path), True, 0, 0, None)
            continue
        rows, result = prepare_video(Path(path), video_id, out_dir, config, detector)
        write_csv_atomic(part, MANIFEST_FIELDS, rows)
        yield result


def _assign_splits(rows: list[dict[str, str]], config: PrepareConfig) -> None:
    """Split by subject (actor), or by video where no actor is known: never by frame."""
    usable = [r for r in rows if r["status"] == "ok"]
    groups = [r["actor"] or r["video_id"] for r in usable]
    if not usable:
        return
    try:
        split = subject_split(
            groups, val_fraction=config.val_fraction, test_fraction=config.test_fraction,
            seed=config.seed,
        )
    except DatasetError as error:
        log.warning("no grouped split made, every row is 'train': %s", error)
        for row in usable:
            row["split"] = "train"
        return
    for name, indices in (("train", split.train), ("val", split.val), ("test", split.test)):
        for i in indices:
            usable[i]["split"] = name


def write_manifest(out_dir: str | Path, config: PrepareConfig = PrepareConfig()) -> Path:
    """Gather every finished video's rows into ``manifest.csv`` with a split column, atomically,
    and write ``config`` beside it as ``prepare.json``: a model trained on the crops must cut
    detected faces with the same margin (``emokeras.datasets.manifest.manifest_framing``)."""
    out_dir = Path(out_dir)
    # Hidden names are temporary files a killed run left behind, never finished parts.
    parts = sorted(p for p in (out_dir / "parts").glob("*.csv") if not p.name.startswith("."))
    rows = [row for part in parts for row in read_csv(part)]
    _assign_splits(rows, config)
    manifest = out_dir / "manifest.csv"
    write_csv_atomic(manifest, MANIFEST_FIELDS, rows)
    write_json_atomic(out_dir / PREPARE_CONFIG_FILE, dataclasses.asdict(config))
    return manifest
