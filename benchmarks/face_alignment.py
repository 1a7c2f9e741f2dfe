"""What face alignment does to accuracy: FER2013 PublicTest (and CK+, reported only).

FER2013 and CK+48 faces are 48x48 crops, already roughly upright, too small for a detector: each
is enlarged 4x (bicubic), YuNet finds the face in it, and the bundled model (or ``--model``)
classifies three versions of every face it finds: the whole 48x48 image as given (what the model
was trained on), the detected face cut with ``crop_face``'s margin as found (``align=False``), and
the same cut turned upright from the eye landmarks (``align=True``, with the refining second look
of ``detect_faces_and_crop``). Accuracy is over the faces YuNet finds; PublicTest is the tuning
split, and PrivateTest is not touched. CK+ is cross-dataset, reported only (its contempt class
is not in FER2013's label set and is left out).

    python benchmarks/face_alignment.py [--model RUN_DIR] [--limit N]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

# the data, class names and extraction are face_framing.py's (run from benchmarks/ as a script)
from face_framing import CKPLUS, FER, NAMES, faces_of

from emokeras.faces import detect_faces_and_crop, get_detector
from emokeras.inference import CROP_MARGIN
from emokeras.model import resolve_model


def evaluate(items, emotion, detector, limit: int | None) -> dict[str, float]:
    classes = list(emotion.label_set.classes)
    rows = {"whole": [], "unaligned": [], "aligned": []}
    truth, tilts, found = [], [], 0
    for path, folder in items[:limit]:
        name = NAMES.get(folder)
        if name not in classes:
            continue
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        big = cv2.resize(gray, (192, 192), interpolation=cv2.INTER_CUBIC)
        plain = detect_faces_and_crop(big, detector, size=48, margin=CROP_MARGIN, align=False)
        if not plain:
            continue
        aligned = detect_faces_and_crop(big, detector, size=48, margin=CROP_MARGIN, align=True)
        found += 1
        truth.append(classes.index(name))
        tilts.append(abs(plain[0].box.eye_angle))
        rows["whole"].append(gray)
        rows["unaligned"].append(plain[0].image)
        rows["aligned"].append(aligned[0].image)
    result = {"faces": len([1 for _, f in items[:limit] if NAMES.get(f) in classes]),
              "found": found, "median_tilt": float(np.median(tilts)),
              "tilted_5": float(np.mean(np.array(tilts) >= 5))}
    for key, crops in rows.items():
        probs = np.concatenate([emotion.predict(crops[i:i + 256])
                                for i in range(0, len(crops), 256)])
        result[key] = float(np.mean(probs.argmax(axis=1) == np.array(truth)))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a run folder (default: the bundled model)")
    parser.add_argument("--limit", type=int, help="at most this many faces per set")
    args = parser.parse_args()
    emotion, detector = resolve_model(args.model), get_detector("yunet")
    with tempfile.TemporaryDirectory() as tmp:
        sets = {
            "FER2013 PublicTest": faces_of(FER, lambda n: "/PublicTest_" in n, Path(tmp) / "f"),
            "CK+48 (report only)": faces_of(CKPLUS, lambda n: n.endswith(".png"), Path(tmp) / "c"),
        }
        print("| set | faces | found by YuNet (x4) | median tilt | tilted >= 5 deg | whole 48x48 "
              "| detected, not aligned | detected, aligned |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name, items in sets.items():
            r = evaluate(items, emotion, detector, args.limit)
            print(f"| {name} | {r['faces']} | {r['found']} | {r['median_tilt']:.1f} deg | "
                  f"{r['tilted_5']:.0%} | {r['whole']:.2%} | {r['unaligned']:.2%} | "
                  f"{r['aligned']:.2%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
