"""Sex classification accuracy on the labelled fixtures, per backend that works offline.

Photos: the labelled single-face photos (fixtures/labels.csv), largest Haar face. Videos: every
labelled clip, frames sampled at 3 per second; per-frame accuracy and the video's majority. The
reference row is the shared ``gender_mini_XCEPTION`` (face_classification, MIT; trained on IMDB
faces), which emokeras does not ship.

    python benchmarks/sex_accuracy.py
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import keras
import numpy as np

from emokeras.faces import HaarFaceDetector, detect_faces_and_crop, iter_face_crops
from emokeras.gender import SEXES, OnnxSexClassifier, majority_sex
from emokeras.images import load_image
from emokeras.video import iter_frames

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"
PEER = REPO.parent / "shared" / "weights" / "gender_mini_XCEPTION.21-0.95.hdf5"


class MiniXceptionSex:
    """64x64 grayscale in [-1, 1]; outputs [woman, man], the same order as SEXES."""

    def __init__(self) -> None:
        self.model = keras.models.load_model(PEER, compile=False)

    def predict(self, crops):
        gray = [np.dot(c[..., :3], [0.299, 0.587, 0.114]) for c in crops]
        x = np.stack([keras.ops.convert_to_numpy(
            keras.ops.image.resize(g[..., np.newaxis], (64, 64), antialias=True)) for g in gray])
        return self.model.predict(x / 127.5 - 1.0, verbose=0)


def labelled(kind: str) -> list[tuple[Path, str]]:
    with open(FIXTURES / "labels.csv", newline="") as handle:
        return [(FIXTURES / row["file"], row["sex"]) for row in csv.DictReader(handle)
                if row["kind"] == kind and row["sex"]]


def main() -> int:
    detector = HaarFaceDetector()
    backends = {"emokeras offline (ONNX, CC0)": OnnxSexClassifier(),
                "reference: gender_mini_XCEPTION (not shipped)": MiniXceptionSex()}
    photos, videos = labelled("image"), labelled("video")
    print(f"| backend | photos right ({len(photos)} labelled) | frames right | "
          f"videos right by majority ({len(videos)}) |")
    print("|---|---:|---:|---:|")
    for name, backend in backends.items():
        photo_right = found = 0
        for path, truth in photos:
            crops = detect_faces_and_crop(load_image(path), detector)
            if crops:
                found += 1
                photo_right += SEXES[int(backend.predict([crops[0].image])[0].argmax())] == truth
        frames_right = frames = videos_right = 0
        for path, truth in videos:
            faces = [f.crops[0].image for f in
                     iter_face_crops(iter_frames(path, target_fps=3), detector) if f.crops]
            probabilities = backend.predict(faces)
            frames += len(faces)
            frames_right += int(np.sum(probabilities.argmax(axis=1) == SEXES.index(truth)))
            videos_right += majority_sex(probabilities) == truth
        print(f"| {name} | {photo_right}/{found} with a face found | "
              f"{frames_right}/{frames} ({frames_right / frames:.1%}) | "
              f"{videos_right}/{len(videos)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
