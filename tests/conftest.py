"""Shared test fixtures: real videos, photos and datasets from ``../shared`` (never copied here).

``EMOKERAS_SHARED`` overrides where ``shared/`` is; by default it sits beside the repository.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import shutil
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMOKERAS_SHARED", REPO_ROOT.parent / "shared"))

if not (SHARED / "fixtures").is_dir():
    raise RuntimeError(
        f"the test data folder {SHARED} is missing: clone the repository beside shared/ "
        "or set EMOKERAS_SHARED"
    )

FIXTURES = SHARED / "fixtures"
IMAGES = FIXTURES / "images"
VIDEOS = FIXTURES / "video"
RAVDESS_CLIPS = FIXTURES / "ravdess"
FER2013_TARBALL = SHARED / "data" / "fer2013" / "fer2013_images.tar.gz"
CKPLUS_TARBALL = SHARED / "data" / "ckplus48" / "ckplus48.tar.gz"

def benchmark_module(name: str):
    """The script ``benchmarks/<name>.py`` as a module, so a test checks a benchmark's own
    definitions (or shares its helpers) instead of restating them."""
    if name not in sys.modules:  # a dataclass in the script looks its module up there
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


#: The four real RAVDESS clips under made-up RAVDESS names. The emotion codes follow the emotions
#: judged by eye in fixtures/labels.csv (01 neutral, 05 angry, 06 fearful); actor 01 is male,
#: actor 02 female, as in the real data set.
RAVDESS_NAMES = {
    "actor01_sample_01.mp4": "01-01-01-01-01-01-01.mp4",
    "actor01_sample_02.mp4": "01-01-05-02-01-01-01.mp4",
    "actor02_sample_03.mp4": "01-01-01-01-02-01-02.mp4",
    "actor02_sample_04.mp4": "01-01-06-02-02-01-02.mp4",
}


@pytest.fixture(scope="session")
def ravdess_tree(tmp_path_factory) -> Path:
    """A RAVDESS-style folder (``Actor_01/``, ``Actor_02/``) of the real clips, renamed."""
    root = tmp_path_factory.mktemp("ravdess")
    for source, name in RAVDESS_NAMES.items():
        actor = int(name[-6:-4])
        folder = root / f"Actor_{actor:02d}"
        folder.mkdir(exist_ok=True)
        shutil.copyfile(RAVDESS_CLIPS / source, folder / name)
    return root


def _extract(tarball: Path, dest: Path, keep) -> Path:
    with tarfile.open(tarball) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and keep(m.name)]
        tar.extractall(dest, members=members, filter="data")
    return dest


@pytest.fixture(scope="session")
def fer2013_subset(tmp_path_factory) -> Path:
    """The FER2013 image-folder layout with the first 12 faces of each class and split."""
    counts: dict[tuple[str, str, str], int] = {}

    def keep(name: str) -> bool:
        parts = Path(name).parts
        if len(parts) < 3:
            return False
        split, label, file = parts[-3], parts[-2], parts[-1]
        key = (split, label, file.split("_")[0])
        counts[key] = counts.get(key, 0) + 1
        return counts[key] <= 12

    return _extract(FER2013_TARBALL, tmp_path_factory.mktemp("fer2013"), keep)


@pytest.fixture(scope="session")
def ckplus_dir(tmp_path_factory) -> Path:
    """CK+48 extracted whole (981 small faces)."""
    return _extract(CKPLUS_TARBALL, tmp_path_factory.mktemp("ckplus"), lambda name: True)


@pytest.fixture(scope="session")
def two_actors_per_sex_manifest(ravdess_tree, tmp_path_factory) -> Path:
    """Real face crops of the four RAVDESS clips, each person appearing under two actor ids.

    The clips show one man and one woman, so actors 01/03 (male) and 02/04 (female) are the
    same two people: this manifest tests how data is routed per sex, not accuracy.
    """
    out = tmp_path_factory.mktemp("crops")
    from emokeras.fileio import read_csv
    from emokeras.prepare import PrepareConfig, find_videos, prepare_videos, write_manifest

    config = PrepareConfig(target_fps=4.0, size=48)
    list(prepare_videos(find_videos(ravdess_tree), ravdess_tree, out, config))
    rows = read_csv(write_manifest(out, config))
    split_of = {"01": "train", "02": "train", "03": "val", "04": "val"}
    doubled = []
    for row in rows:
        for actor in (row["actor"], f"{int(row['actor']) + 2:02d}"):
            doubled.append({**row, "actor": actor, "split": split_of[actor]})
    with open(out / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(doubled)
    return out / "manifest.csv"


def write_silent_video(path: Path) -> Path:
    """A 10-frame video with no audio stream (OpenCV writes none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    assert writer.isOpened()
    for i in range(10):
        writer.write(np.full((48, 64, 3), 20 * i, dtype=np.uint8))
    writer.release()
    return path


def portrait(name: str, side: int) -> np.ndarray:
    """The face of a real fixture photo, cut square around the detected face and resized (for
    composing clips of several real people)."""
    from emokeras.faces import get_detector
    from emokeras.images import load_image

    image = load_image(IMAGES / name)
    box = get_detector("yunet").detect(image)[0]
    half = round(max(box.width, box.height) * 0.8)
    cx, cy = box.x + box.width // 2, box.y + box.height // 2
    patch = image[max(0, cy - half): cy + half, max(0, cx - half): cx + half]
    return cv2.resize(np.ascontiguousarray(patch), (side, side), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def tiny():
    """A real (untrained) 7-class model, small enough to save in a moment."""
    from emokeras.labels import FER2013
    from emokeras.model import EmotionModel
    from emokeras.models import build_model  # TensorFlow: only for the tests that ask

    return EmotionModel(build_model("small_cnn", 7, weights=None, input_size=32, channels=1),
                        FER2013)
