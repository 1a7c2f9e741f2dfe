"""FER2013 accuracy of trained runs and of the shared peer model, on every agreed protocol.

For each model:

- selection (PublicTest only, what runs are chosen on): FER2013 accuracy, FER+ 7-class majority
  accuracy, and their mean (the selection score); per-class recall and its mean, which show
  whether a gain in the score costs the rare classes; the share of faces predicted as each
  class beside the labels' shares, which shows a model leaning on a class; and where the model
  sits between the two labellings (``agreement``);
- report only: PrivateTest accuracy and per-class recall; FER+ on its own test split
  (PrivateTest) by the 7-class majority and by FER+'s standard 8-class protocol
  (``emokeras.datasets.ferplus.ferplus8_labels``: contempt counts, a 7-class model never says
  it), and the same split between the labellings on PrivateTest; CK+ over the six classes it
  shares with FER2013 (never trained or tuned on); and the labelled fixture photos of
  ../shared/fixtures, detected, cut and classified as ``emokeras.predict_image`` does for a
  user (runs only).

The peer row is ``fer2013_mini_XCEPTION`` from the face_classification project; it was trained
on a random 80% of all FER2013 rows, so its test scores are optimistic.

    python benchmarks/fer2013_accuracy.py --fer2013 FER_DIR --ckplus CK_DIR [--fast] RUN_DIR ...
    python benchmarks/fer2013_accuracy.py --fer2013 FER_DIR --selection-only RUN_DIR ...

Choose with ``--selection-only`` first: it scores PublicTest alone and prints nothing that is
for reporting only, so no report number can be seen before the choice is made.

FER_DIR and CK_DIR are the extracted tarballs from ../shared/data (``EMOKERAS_SHARED`` says
where shared/ is, as for the tests). ``--fast`` also scores each ensemble's fast forms: its first
member alone (``EmotionModel.single``), and its first member with the ensemble's test-time views
(``single(views=True)``). A last table gives each model's cost: member passes a face and
milliseconds a face, timed in this process.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from emokeras.datasets import load_ckplus, load_fer2013_folders
from emokeras.datasets.ferplus import (
    FERPLUS_EMOTIONS,
    fer2013_to_ferplus8,
    ferplus8_labels,
    load_ferplus_votes,
    majority_accuracy,
    majority_labels,
)
from emokeras.evaluation import predict_source
from emokeras.inference import predict_image
from emokeras.labels import CKPLUS, FER2013
from emokeras.model import EmotionModel
from emokeras.models.ensemble import ensemble_members, ensemble_views

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMOKERAS_SHARED", REPO.parent / "shared"))
PEER = SHARED / "weights" / "fer2013_mini_XCEPTION.102-0.66.hdf5"
FERPLUS = SHARED / "data" / "fer2013" / "ferplus_votes.csv"


@dataclass(frozen=True)
class Scorer:
    """A model and how it takes 48x48 grayscale faces."""

    name: str
    model: keras.Model
    peer: bool = False  # the peer model wants 64x64 in [-1, 1]; emokeras models take raw 0-255
    emotion: EmotionModel | None = None  # with its framing, for the photos (not the peer)

    def probabilities(self, faces: np.ndarray) -> np.ndarray:
        if not self.peer:  # exactly the pipeline training and evaluate.py use
            return predict_source(self.model, (faces, np.zeros(len(faces), np.int64)), 256)
        x = keras.ops.image.resize(faces[..., np.newaxis].astype("float32"), (64, 64),
                                   antialias=True)
        return self.model.predict(keras.ops.convert_to_numpy(x) / 127.5 - 1.0, batch_size=256,
                                  verbose=0)


@functools.cache
def ferplus_votes():
    """The FER+ votes, read once for every split and model."""
    return load_ferplus_votes(FERPLUS)


def ferplus_majority(names: tuple[str, ...]) -> np.ndarray:
    """FER+ majority label (FER2013 index) per file name; -1 where there is none.

    None: no vote row, a tie for the most votes, a majority for contempt / unknown / not-a-face,
    or a row FER+ flags as ambiguous (``emokeras.datasets.ferplus.majority_labels``).
    """
    votes = ferplus_votes()
    return majority_labels(votes, votes.index_of_names(names))


def ferplus8(names: tuple[str, ...]) -> np.ndarray:
    """FER+'s 8-class majority label (index into FERPLUS_EMOTIONS) per file name; -1 where none."""
    votes = ferplus_votes()
    return ferplus8_labels(votes, votes.index_of_names(names))


def labelled_photos() -> list[tuple[Path, str]]:
    """The fixture photos with an emotion label (fixtures/labels.csv), FER2013 class names."""
    with open(SHARED / "fixtures" / "labels.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle)
                if row["kind"] == "image" and row["emotion"] in FER2013.classes]
    return [(SHARED / "fixtures" / row["file"], row["emotion"]) for row in rows]


def class_recall(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Each FER2013 class's recall: the share of its faces predicted as it."""
    return {c: float(np.mean(predicted[labels == i] == i)) for i, c in enumerate(FER2013.classes)}


def class_shares(predicted: np.ndarray) -> dict[str, float]:
    """The share of faces predicted as each FER2013 class (of labels: the true shares)."""
    return {c: float(np.mean(predicted == i)) for i, c in enumerate(FER2013.classes)}


def agreement(predicted: np.ndarray, labels: np.ndarray, majority: np.ndarray) -> dict:
    """Where a model sits between FER2013's labels and FER+'s majority (-1: none).

    FER+'s majority and FER2013's label differ on about a third of the faces that have a
    majority; there a prediction can match one labelling, never both. So: the share of faces
    where the two agree, the model's accuracy on them, and on the faces where they differ, the
    share of predictions that take FER2013's label, FER+'s, or neither.
    """
    known = majority >= 0
    agree, differ = known & (majority == labels), known & (majority != labels)
    return {"agree_share": float(agree.sum() / known.sum()),
            "agreed": float(np.mean(predicted[agree] == labels[agree])),
            "differ_fer2013": float(np.mean(predicted[differ] == labels[differ])),
            "differ_ferplus": float(np.mean(predicted[differ] == majority[differ]))}


def print_agreement(results: dict, key: str, split: str) -> None:
    """The table of :func:`agreement` numbers (``results[name][key]``)."""
    first = next(iter(results.values()))[key]
    print(f"\nBetween the labellings, {split}: FER2013's label and FER+'s majority agree on "
          f"{first['agree_share']:.1%} of the faces that have a majority; where they differ, a "
          f"prediction can match one at most:\n")
    print("| model | right where they agree | where they differ: FER2013's | FER+'s | neither |")
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        a = r[key]
        neither = 1 - a["differ_fer2013"] - a["differ_ferplus"]
        print(f"| {name} | {a['agreed']:.2%} | {a['differ_fer2013']:.2%} | "
              f"{a['differ_ferplus']:.2%} | {neither:.2%} |")


def print_per_class(results: dict, key: str, mean: bool = False) -> None:
    """A table of each model's per-class numbers (``results[name][key]``), and their mean."""
    columns = [*FER2013.classes, *(["mean"] if mean else [])]
    print("| model | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for name, r in results.items():
        values = [r[key][c] for c in FER2013.classes]
        if mean:
            values.append(float(np.mean(values)))
        print(f"| {name} | " + " | ".join(f"{v:.1%}" for v in values) + " |")


def score_selection(scorer: Scorer, fer: dict) -> dict:
    """The PublicTest numbers runs are chosen on."""
    faces, labels, names = fer["PublicTest"]
    probs = scorer.probabilities(faces)
    predicted = probs.argmax(axis=1)
    majority = ferplus_majority(names)
    result = {"PublicTest": float(np.mean(predicted == labels)),
              "ferplus_public": majority_accuracy(probs, majority)[0],
              "recall_public": class_recall(predicted, labels),
              "predicted_public": class_shares(predicted),
              "agreement_public": agreement(predicted, labels, majority)}
    result["selection"] = (result["PublicTest"] + result["ferplus_public"]) / 2
    return result


def score_report(scorer: Scorer, fer: dict, ck_faces: np.ndarray, ck_labels: np.ndarray) -> dict:
    """The report-only numbers: PrivateTest, FER+ on its test split, the photos, CK+."""
    faces, labels, names = fer["PrivateTest"]
    probs = scorer.probabilities(faces)
    predicted = probs.argmax(axis=1)
    majority = ferplus_majority(names)
    ferplus, ferplus_count = majority_accuracy(probs, majority)
    eight = ferplus8(names)
    known8 = eight >= 0
    result = {"PrivateTest": float(np.mean(predicted == labels)),
              "recall": class_recall(predicted, labels),
              "ferplus": ferplus,
              "ferplus_count": ferplus_count,
              "ferplus8": float(np.mean(fer2013_to_ferplus8(predicted[known8]) == eight[known8])),
              "ferplus8_count": int(known8.sum()),
              "ferplus8_contempt": int((eight == FERPLUS_EMOTIONS.index("contempt")).sum()),
              "agreement": agreement(predicted, labels, majority)}
    if scorer.emotion is not None:
        photos = labelled_photos()
        said = {path.name: predict_image(path, scorer.emotion)[0].label for path, _ in photos}
        result["photos"] = {path.name: (truth, said[path.name]) for path, truth in photos}
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


def run_scorers(run_dir: Path, fast: bool) -> list[Scorer]:
    """The run's scorer, and with ``fast`` its fast forms' where it is an ensemble: the first
    member alone, and the first member with the ensemble's views."""
    emotion = EmotionModel.load(run_dir)
    if emotion.label_set.classes != FER2013.classes:
        raise SystemExit(f"{run_dir} is not a FER2013 run (classes {emotion.label_set.classes})")
    scorers = [Scorer(run_dir.name, emotion.model, emotion=emotion)]
    single = emotion.single()
    if fast and single is not emotion:
        scorers.append(Scorer(f"{run_dir.name} --fast (first member alone)", single.model,
                              emotion=single))
        with_views = emotion.single(views=True)
        if with_views.model is not single.model:
            scorers.append(Scorer(f"{run_dir.name}: first member with its views",
                                  with_views.model, emotion=with_views))
    return scorers


def passes(model: keras.Model) -> int:
    """How many times a face goes through a member network: members x views."""
    flip, crops = ensemble_views(model)
    return max(1, len(ensemble_members(model))) * (1 + len(crops)) * (1 + flip)


def milliseconds_a_face(model: keras.Model, batch: int = 32, calls: int = 20) -> float:
    """Median time of one ``predict_on_batch`` of ``batch`` faces (as ``predict_video`` runs a
    model), over ``calls`` after a warm-up, divided by ``batch``."""
    faces = np.zeros((batch, *model.input_shape[1:]), np.float32)
    for _ in range(3):
        model.predict_on_batch(faces)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        model.predict_on_batch(faces)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times)) / batch


def cpu_name() -> str:
    """The CPU's model name (timings differ between machines: say which one ran them)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, help="run folders written by train.py")
    parser.add_argument("--fer2013", type=Path, required=True)
    parser.add_argument("--ckplus", type=Path, help="the extracted CK+48 set (not needed with "
                        "--selection-only)")
    parser.add_argument("--fast", action="store_true",
                        help="also score each ensemble's first member, alone and with its views")
    parser.add_argument("--selection-only", action="store_true",
                        help="score PublicTest alone and print nothing report-only: choose "
                        "from this, then run again without it for the chosen model's report")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    if args.ckplus is None and not args.selection_only:
        parser.error("--ckplus is required (unless --selection-only)")

    sets = load_fer2013_folders(args.fer2013)
    splits = ("PublicTest",) if args.selection_only else ("PublicTest", "PrivateTest")
    fer = {split: (sets[split].load_images(grayscale=True), sets[split].labels,
                   tuple(Path(p).name for p in sets[split].paths))
           for split in splits}
    if not args.selection_only:
        ck = load_ckplus(args.ckplus)
        ck_faces = ck.load_images(size=48, grayscale=True)

    scorers = [scorer for run in args.runs for scorer in run_scorers(run, args.fast)]
    peer = keras.models.load_model(PEER, compile=False)
    scorers.append(Scorer("peer: fer2013_mini_XCEPTION (saw ~80% of all rows)", peer, peer=True))
    results = {s.name: score_selection(s, fer) for s in scorers}
    if not args.selection_only:
        for s in scorers:
            results[s.name].update(score_report(s, fer, ck_faces, ck.labels))
    for s in scorers:
        results[s.name]["passes"] = 1 if s.peer else passes(s.model)
        results[s.name]["ms_a_face"] = milliseconds_a_face(s.model)

    print("Selection, PublicTest: FER2013 labels, FER+ 7-class majority, their mean\n")
    print("| model | FER2013 | FER+ | selection score |")
    print("|---|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['PublicTest']:.2%} | {r['ferplus_public']:.2%} | "
              f"{r['selection']:.2%} |")
    print("\nPer-class recall on PublicTest (selection side), and its mean:\n")
    print_per_class(results, "recall_public", mean=True)
    # a model that says one class more often than the labels do leans on it (a class-sorted
    # training order did that to neutral: benchmarks/README.md, "The class-order bias")
    print("\nShare of PublicTest faces predicted as each class (first row: the labels):\n")
    labels_row = {"labels": {"predicted_public": class_shares(fer["PublicTest"][1])}}
    print_per_class({**labels_row, **results}, "predicted_public")
    print_agreement(results, "agreement_public", "PublicTest")
    if not args.selection_only:
        print_report(results)
    print_cost(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def print_report(results: dict) -> None:
    """The report-only tables: PrivateTest, FER+ test, CK+, photos, PrivateTest recall."""
    first = next(iter(results.values()))
    print("\nReport only (never used for a choice):\n")
    print(f"| model | PrivateTest | FER+ 7-class majority, PrivateTest "
          f"(n={first['ferplus_count']}) | FER+ 8-class, PrivateTest "
          f"(n={first['ferplus8_count']}, {first['ferplus8_contempt']} contempt) | "
          f"CK+ 6 classes (n={first['ckplus_count']}) | fixture photos |")
    print("|---|---:|---:|---:|---:|---|")
    for name, r in results.items():
        photos = r.get("photos")
        said = ("-" if photos is None else
                f"{sum(t == p for t, p in photos.values())} of {len(photos)} ("
                + ", ".join(f"{t}: {p}" for t, p in photos.values()) + ")")
        print(f"| {name} | {r['PrivateTest']:.2%} | {r['ferplus']:.2%} | {r['ferplus8']:.2%} | "
              f"{r['ckplus6']:.2%} | {said} |")
    print("\nPer-class recall on PrivateTest:\n")
    print_per_class(results, "recall")
    print_agreement(results, "agreement", "PrivateTest")


def print_cost(results: dict) -> None:
    """Each model's member passes a face and its milliseconds a face, against the first."""
    first = next(iter(results.values()))
    print(f"\nCost: member passes a face, and milliseconds a face in predict_on_batch of 32 "
          f"(median of 20, this process; {cpu_name()}):\n")
    print("| model | passes | ms a face | vs the first |")
    print("|---|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['passes']} | {r['ms_a_face']:.2f} | "
              f"{r['ms_a_face'] / first['ms_a_face']:.2f}x |")


if __name__ == "__main__":
    sys.exit(main())
