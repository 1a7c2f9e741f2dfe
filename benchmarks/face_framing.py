"""How detected faces should be framed for the bundled model, measured on FER2013 Training, and
what that framing does to detect -> crop -> classify accuracy.

FER2013's faces are 48x48 images, each framed around a face by the dataset's makers. The model
learnt faces framed so; at inference it sees a YuNet box cut with a margin. ``measure`` finds
that framing: every face of a stratified sample of FER2013 **Training** (``--fraction`` of each
class, fixed seed) is enlarged 4x (bicubic, as in benchmarks/face_alignment.py) and set in a
border of its mean gray, half its side wide (YuNet's boxes are clipped to the image, and a FER2013
face fills its image: without the border the box would be cut at the edges), YuNet finds it, and
the whole image is compared with the box: its side over the box's larger side (-> the
margin ``crop_face`` needs to cut the whole image back: ``(side / box - 1) / 2``), and the
offset of the image's centre from the box's centre (x in box widths, y in box heights;
positive: right, down). The medians are the framing (Training only: the data rules of
../shared/README.md): the margin's median (rounded to 0.01, at least 0), and a vertical shift
only where the offset is clearly not zero (its interquartile range excludes 0).

``evaluate`` classifies the faces of FER2013 PublicTest (the split that checks choices), and,
reported only, PrivateTest and CK+48, cut with the old framing (margin 0.2, no shift) and with
the model's (``crop_framing_for``), unaligned and aligned, beside the whole 48x48 image. The
faces are found in the same bordered image; a cut past the image's edge repeats its edge
pixels (``crop_face``'s padding).

    python benchmarks/face_framing.py measure [--fraction 0.1]
    python benchmarks/face_framing.py evaluate [--model RUN_DIR] [--limit N]
"""

from __future__ import annotations

import argparse
import random
import tarfile
import tempfile
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from emokeras.faces import FaceBox, crop_face, face_angle, get_detector
from emokeras.model import crop_framing_for, resolve_model
from emokeras.run_folder import DEFAULT_FRAMING, CropFraming

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FER = SHARED / "fer2013" / "fer2013_images.tar.gz"
CKPLUS = SHARED / "ckplus48" / "ckplus48.tar.gz"
#: how much each 48x48 face is enlarged for the detector (as benchmarks/face_alignment.py)
UPSCALE = 4
#: folder names of the two sets -> FER2013 class names (CK+'s contempt has none: left out)
NAMES = {"anger": "angry", "sadness": "sad", "fear": "fear", "happy": "happy",
         "surprise": "surprise", "disgust": "disgust", "angry": "angry", "sad": "sad",
         "neutral": "neutral"}


def faces_of(tarball: Path, keep, out: Path) -> list[tuple[Path, str]]:
    """Extract the members ``keep`` accepts; (path, class folder) of each, sorted by path."""
    with tarfile.open(tarball) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and keep(m.name)]
        tar.extractall(out, members=members, filter="data")
    return sorted((out / m.name, Path(m.name).parent.name) for m in members)


def stratified(items: list[tuple[Path, str]], fraction: float, seed: int = 0):
    """``fraction`` of each class's items, drawn with a fixed seed."""
    by_class = defaultdict(list)
    for item in items:
        by_class[item[1]].append(item)
    rng = random.Random(seed)
    return [item for name in sorted(by_class)
            for item in rng.sample(by_class[name], max(1, round(fraction * len(by_class[name]))))]


def enlarged(path: Path) -> tuple[np.ndarray, np.ndarray]:
    gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    side = gray.shape[0] * UPSCALE
    return gray, cv2.resize(gray, (side, side), interpolation=cv2.INTER_CUBIC)


def largest(boxes: list[FaceBox]) -> FaceBox | None:
    return max(boxes, key=lambda b: (b.area, b.confidence)) if boxes else None


def find_face(detector, image: np.ndarray) -> FaceBox | None:
    """The largest face YuNet finds in ``image`` set in a border of its mean gray half its side
    wide, in ``image``'s pixels (the box may reach past its edges); None if none is found, or
    the face's centre lies in the border."""
    pad = image.shape[0] // 2
    canvas = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT,
                                value=int(image.mean()))
    box = largest(detector.detect(canvas))
    if box is None:
        return None
    box = FaceBox(box.x - pad, box.y - pad, box.width, box.height, box.confidence,
                  tuple((x - pad, y - pad) for x, y in box.landmarks or ()) or None)
    centre_x, centre_y = box.x + box.width / 2, box.y + box.height / 2
    inside = 0 <= centre_x < image.shape[1] and 0 <= centre_y < image.shape[0]
    return box if inside else None


def framing_of(box: FaceBox, side: int) -> tuple[float, float, float]:
    """(margin, dx, dy) that cut the whole ``side`` x ``side`` image back out of ``box``."""
    margin = (side / max(box.width, box.height) - 1) / 2
    dx = (side / 2 - (box.x + box.width / 2)) / box.width
    dy = (side / 2 - (box.y + box.height / 2)) / box.height
    return margin, dx, dy


def summary(values) -> str:
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return f"{median:+.3f} | {q1:+.3f} .. {q3:+.3f}"


def measure(fraction: float) -> CropFraming:
    detector = get_detector("yunet")
    with tempfile.TemporaryDirectory() as tmp:
        items = stratified(faces_of(FER, lambda n: "/Training_" in n, Path(tmp)), fraction)
        faces, rows, tilts, clipped = [], [], [], []
        for path, _ in items:
            gray, big = enlarged(path)
            box = find_face(detector, big)
            if box is None:
                continue
            faces.append((gray, big, box))
            rows.append(framing_of(box, big.shape[0]) + (box.width / box.height,))
            if box.eye_angle is not None:
                tilts.append(abs(box.eye_angle))
            # the same without the border: the box clipped to the image, for comparison
            plain = largest(detector.detect(big))
            if plain is not None:
                clipped.append(framing_of(plain, big.shape[0])[0])
    rows = np.array(rows)
    margin, shift = np.median(rows[:, 0]), np.median(rows[:, 2])
    q1, q3 = np.percentile(rows[:, 2], [25, 75])
    chosen = CropFraming(max(0.0, round(float(margin), 2)),
                         round(float(shift), 2) if q1 > 0 or q3 < 0 else 0.0)
    missed = len(items) - len(faces)
    print(f"FER2013 Training, stratified {fraction:.0%} of each class (seed 0): {len(items)} "
          f"faces, enlarged {UPSCALE}x in a border; YuNet found no face in {missed} "
          f"({missed / len(items):.1%})\n")
    print("| measure (whole image vs. YuNet box) | median | IQR |")
    print("|---|---:|---:|")
    print(f"| margin that cuts the whole image (fraction of the box's larger side) | "
          f"{summary(rows[:, 0])} |")
    print(f"| image centre - box centre, x (box widths; + right) | {summary(rows[:, 1])} |")
    print(f"| image centre - box centre, y (box heights; + down) | {summary(rows[:, 2])} |")
    print(f"| box width / height | {summary(rows[:, 3])} |")
    print(f"| eye-line tilt (degrees, absolute) | {summary(tilts)} |")
    print(f"| margin, box found without the border (clipped to the image; {len(clipped)} found) "
          f"| {summary(clipped)} |")
    print(f"\nchosen framing: margin {chosen.margin}, shift_y {chosen.shift_y}\n")
    # how close each framing's unaligned cut is to the Training image itself (0-255 gray)
    print("| framing (unaligned, 48x48) | mean abs. difference to the Training image |")
    print("|---|---:|")
    for name, framing in (("old: margin 0.2, no shift", DEFAULT_FRAMING),
                          (f"chosen: margin {chosen.margin}, shift_y {chosen.shift_y}", chosen)):
        diffs = [np.abs(crop_face(big, box, size=48, margin=framing.margin,
                                  shift_y=framing.shift_y, align=False).astype(float)
                        - gray).mean()
                 for gray, big, box in faces]
        print(f"| {name} | {np.mean(diffs):.1f} |")
    return chosen


def cuts(big: np.ndarray, box: FaceBox, framing: CropFraming, detector) -> dict[str, np.ndarray]:
    """The face cut unaligned and aligned (with the refining second look of
    ``detect_faces_and_crop``) with ``framing``."""
    angle = face_angle(big, box, detector, margin=framing.margin)
    return {align: crop_face(big, box, size=48, margin=framing.margin, shift_y=framing.shift_y,
                             align=align == "aligned", angle=angle)
            for align in ("unaligned", "aligned")}


def evaluate_set(items, emotion, detector, framing: CropFraming, limit: int | None):
    classes = list(emotion.label_set.classes)
    items = [(p, NAMES[f]) for p, f in items if NAMES.get(f) in classes]
    if limit:
        items = stratified(items, min(1.0, limit / len(items)))
    crops, truth, found = defaultdict(list), [], 0
    for path, name in items:
        gray, big = enlarged(path)
        box = find_face(detector, big)
        if box is None:
            continue
        found += 1
        truth.append(classes.index(name))
        crops["whole"].append(gray)
        for key, crop in cuts(big, box, DEFAULT_FRAMING, detector).items():
            crops[f"old {key}"].append(crop)
        for key, crop in cuts(big, box, framing, detector).items():
            crops[f"new {key}"].append(crop)
    result = {"faces": len(items), "found": found}
    for key, rows in crops.items():
        probs = np.concatenate([emotion.predict(rows[i:i + 256])
                                for i in range(0, len(rows), 256)])
        result[key] = float(np.mean(probs.argmax(axis=1) == np.array(truth)))
    return result


def evaluate(model: Path | None, limit: int | None) -> None:
    emotion, detector = resolve_model(model), get_detector("yunet")
    framing = crop_framing_for(emotion)
    old = DEFAULT_FRAMING
    with tempfile.TemporaryDirectory() as tmp:
        sets = {
            "FER2013 PublicTest": faces_of(FER, lambda n: "/PublicTest_" in n, Path(tmp) / "f"),
            "FER2013 PrivateTest (report only)": faces_of(FER, lambda n: "/PrivateTest_" in n,
                                                          Path(tmp) / "f"),
            "CK+48 (report only)": faces_of(CKPLUS, lambda n: n.endswith(".png"), Path(tmp) / "c"),
        }
        print(f"old framing: margin {old.margin}, shift_y {old.shift_y}; model's framing: margin "
              f"{framing.margin}, shift_y {framing.shift_y}\n")
        print("| set | faces | found by YuNet (x4) | whole 48x48 | old, unaligned | old, aligned "
              "| new, unaligned | new, aligned |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name, items in sets.items():
            r = evaluate_set(items, emotion, detector, framing, limit)
            print(f"| {name} | {r['faces']} | {r['found']} | {r['whole']:.2%} | "
                  f"{r['old unaligned']:.2%} | {r['old aligned']:.2%} | "
                  f"{r['new unaligned']:.2%} | {r['new aligned']:.2%} |", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("measure", help="the framing of FER2013 Training faces")
    m.add_argument("--fraction", type=float, default=0.1, help="of each class (default 0.1)")
    e = sub.add_parser("evaluate", help="accuracy with the old and the model's framing")
    e.add_argument("--model", type=Path, help="a run folder (default: the bundled model)")
    e.add_argument("--limit", type=int, help="about this many faces per set (stratified)")
    args = parser.parse_args()
    if args.command == "measure":
        measure(args.fraction)
    else:
        evaluate(args.model, args.limit)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
