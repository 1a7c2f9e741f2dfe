"""FER2013 accuracy of trained runs and of the shared peer model, on every agreed protocol.

For each model: PublicTest (the split runs select on) and PrivateTest (the test split, reported
only) accuracy, per-class recall on PrivateTest, accuracy against FER+ majority labels on
PrivateTest, and cross-dataset accuracy on CK+ over the six classes it shares with FER2013
(never trained or tuned on). The peer row is ``fer2013_mini_XCEPTION`` from the face_classification
project; it was trained on a random 80% of all FER2013 rows, so its test scores are optimistic.

    python benchmarks/fer2013_accuracy.py --fer2013 FER_DIR --ckplus CK_DIR RUN_DIR [RUN_DIR ...]

FER_DIR and CK_DIR are the extracted tarballs from ../shared/data.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from emokeras.datasets import load_ckplus, load_fer2013_folders
from emokeras.datasets.ferplus import load_ferplus_votes, majority_labels
from emokeras.evaluation import predict_source
from emokeras.labels import CKPLUS, FER2013
from emokeras.run_folder import load_run

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PEER = SHARED / "weights" / "fer2013_mini_XCEPTION.102-0.66.hdf5"
FERPLUS = SHARED / "data" / "fer2013" / "ferplus_votes.csv"


@dataclass(frozen=True)
class Scorer:
    """A model and how it takes 48x48 grayscale faces."""

    name: str
    model: keras.Model
    peer: bool = False  # the peer model wants 64x64 in [-1, 1]; emokeras models take raw 0-255

    def probabilities(self, faces: np.ndarray) -> np.ndarray:
        if not self.peer:  # exactly the pipeline training and evaluate.py use
            return predict_source(self.model, (faces, np.zeros(len(faces), np.int64)), 256)
        x = keras.ops.image.resize(faces[..., np.newaxis].astype("float32"), (64, 64),
                                   antialias=True)
        return self.model.predict(keras.ops.convert_to_numpy(x) / 127.5 - 1.0, batch_size=256,
                                  verbose=0)


def ferplus_majority(names: tuple[str, ...]) -> np.ndarray:
    """FER+ majority label (FER2013 index) per file name; -1 where there is none.

    None: no vote row, a tie for the most votes, a majority for contempt / unknown / not-a-face,
    or a row FER+ flags as ambiguous (``emokeras.datasets.ferplus.majority_labels``).
    """
    votes = load_ferplus_votes(FERPLUS)
    return majority_labels(votes, votes.index_of_names(names))


def score(scorer: Scorer, fer: dict, ck_faces: np.ndarray, ck_labels: np.ndarray) -> dict:
    result = {}
    for split in ("PublicTest", "PrivateTest"):
        faces, labels, names = fer[split]
        probs = scorer.probabilities(faces)
        predicted = probs.argmax(axis=1)
        result[split] = float(np.mean(predicted == labels))
        if split == "PrivateTest":
            result["recall"] = {c: float(np.mean(predicted[labels == i] == i))
                                for i, c in enumerate(FER2013.classes)}
            majority = ferplus_majority(names)
            known = majority >= 0
            result["ferplus"] = float(np.mean(predicted[known] == majority[known]))
            result["ferplus_count"] = int(known.sum())
    # CK+: the six classes both sets have (no neutral, no contempt), argmax over those six
    to_fer = CKPLUS.mapping_to(FER2013)
    keep = np.isin(ck_labels, list(to_fer))
    shared = sorted(set(to_fer.values()))
    probs = scorer.probabilities(ck_faces[keep])[:, shared]
    predicted = np.array(shared)[probs.argmax(axis=1)]
    truth = np.array([to_fer[int(label)] for label in ck_labels[keep]])
    result["ckplus6"] = float(np.mean(predicted == truth))
    result["ckplus_count"] = int(keep.sum())
    return result


def run_scorer(run_dir: Path) -> Scorer:
    model, label_set = load_run(run_dir)
    if label_set.classes != FER2013.classes:
        raise SystemExit(f"{run_dir} is not a FER2013 run (classes {label_set.classes})")
    return Scorer(run_dir.name, model)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, help="run folders written by train.py")
    parser.add_argument("--fer2013", type=Path, required=True)
    parser.add_argument("--ckplus", type=Path, required=True)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()

    sets = load_fer2013_folders(args.fer2013)
    fer = {split: (sets[split].load_images(grayscale=True), sets[split].labels,
                   tuple(Path(p).name for p in sets[split].paths))
           for split in ("PublicTest", "PrivateTest")}
    ck = load_ckplus(args.ckplus)
    ck_faces = ck.load_images(size=48, grayscale=True)

    scorers = [run_scorer(run) for run in args.runs]
    peer = keras.models.load_model(PEER, compile=False)
    scorers.append(Scorer("peer: fer2013_mini_XCEPTION (saw ~80% of all rows)", peer, peer=True))
    results = {s.name: score(s, fer, ck_faces, ck.labels) for s in scorers}

    first = next(iter(results.values()))
    print(f"| model | PublicTest | PrivateTest | FER+ majority, PrivateTest "
          f"(n={first['ferplus_count']}) | CK+ 6 classes (n={first['ckplus_count']}) |")
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['PublicTest']:.2%} | {r['PrivateTest']:.2%} | "
              f"{r['ferplus']:.2%} | {r['ckplus6']:.2%} |")
    print("\nPer-class recall on PrivateTest:\n")
    print("| model | " + " | ".join(FER2013.classes) + " |")
    print("|---|" + "---:|" * len(FER2013.classes))
    for name, r in results.items():
        print(f"| {name} | " + " | ".join(f"{r['recall'][c]:.1%}" for c in FER2013.classes)
              + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
