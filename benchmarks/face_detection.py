"""Face detectors on the labelled fixtures: faces found, missed and false, and time per 720p frame.

For every labelled fixture photo and video (``../shared/fixtures``; the true face counts below were
counted by eye) each detector's boxes are counted per image or sampled frame: ``found`` is
min(boxes, true faces), ``missed`` the faces short of the true count and ``false`` the boxes
beyond it. (With no ground-truth boxes a false box and a missed face in the same image would
cancel out; the group photo's boxes were also checked by eye.) Time: the median of ``--repeat``
detections of frames of a 1280x720 RAVDESS clip, one thread. Threads: 4 threads sharing one
detector over the same frames, with the detector's own one-OpenCV-object-per-thread against one
object behind a lock, as frames per second.

    python benchmarks/face_detection.py [--video-step 3] [--repeat 20]
        [--detectors yunet,haar,mtcnn]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from emokeras.errors import EmokerasError
from emokeras.faces import get_detector
from emokeras.images import load_image
from emokeras.video import iter_frames

SHARED = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
#: Every labelled fixture and its true number of faces (per frame for videos), counted by eye.
TRUE_FACES = {
    "images/angry_f13.jpg": 1,
    "images/disgust_m7.jpg": 1,  # a three-quarter view
    "images/happy_f15.jpg": 1,
    "images/surprise_f1.jpg": 1,
    "images/single_face.jpg": 1,
    "images/justin.jpg": 1,
    "images/multi_face.jpg": 5,  # five friends, all facing the camera
    "images/mountain.jpg": 0,  # a vector drawing of mountains
    "images/cartoon.jpg": 0,  # a cartoon face, not a human one
    "video/single_face.mp4": 1,
    "video/no_face.mp4": 0,
    "ravdess/actor01_sample_01.mp4": 1,
    "ravdess/actor01_sample_02.mp4": 1,
    "ravdess/actor02_sample_03.mp4": 1,
    "ravdess/actor02_sample_04.mp4": 1,
}
HD_CLIP = "ravdess/actor01_sample_02.mp4"


def images_of(name: str, step: int) -> list:
    path = SHARED / name
    if path.suffix == ".mp4":
        return [frame.image for frame in iter_frames(path, step=step)]
    return [load_image(path)]


def count(detector, images: list, true: int) -> tuple[int, int, int, int]:
    """(expected, found, missed, false) over the images."""
    found = missed = false = 0
    for image in images:
        boxes = len(detector.detect(image))
        found += min(boxes, true)
        missed += max(0, true - boxes)
        false += max(0, boxes - true)
    return true * len(images), found, missed, false


def ms_per_frame(detector, frames: list, repeat: int) -> float:
    detector.detect(frames[0])  # warm-up: loading, first allocations
    times = []
    for i in range(repeat):
        started = time.perf_counter()
        detector.detect(frames[i % len(frames)])
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


class Locked:
    """One detector shared behind a lock: the alternative to one OpenCV object per thread."""

    def __init__(self, detector) -> None:
        self.detector, self.lock = detector, threading.Lock()

    def detect(self, image):
        with self.lock:
            return self.detector.detect(image)


def threaded_fps(detector, frames: list, threads: int = 4) -> float:
    work = frames * threads
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(detector.detect, frames[:threads]))  # each thread's first object
        started = time.perf_counter()
        list(pool.map(detector.detect, work))
    return len(work) / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video-step", type=int, default=3, help="detect every Nth video frame")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--detectors", default="yunet,haar,mtcnn")
    args = parser.parse_args()

    detectors = {}
    for name in args.detectors.split(","):
        try:
            detectors[name] = get_detector(name)
        except EmokerasError as error:  # mtcnn without its extra
            print(f"skipping {name}: {error}")
    inputs = {name: images_of(name, args.video_step) for name in TRUE_FACES}
    hd = [frame.image for frame in iter_frames(SHARED / HD_CLIP, step=5)]
    assert hd[0].shape == (720, 1280, 3)

    print(f"videos: frame step {args.video_step}; found / missed / false per fixture\n")
    print("| fixture | true faces | " + " | ".join(detectors) + " |")
    print("|---|---:|" + "---:|" * len(detectors))
    totals = {name: [0, 0, 0, 0] for name in detectors}
    for fixture, true in TRUE_FACES.items():
        cells = []
        for name, detector in detectors.items():
            expected, found, missed, false = count(detector, inputs[fixture], true)
            totals[name] = [a + b for a, b in zip(totals[name], (expected, found, missed, false),
                                                  strict=True)]
            cells.append(f"{found} / {missed} / {false}")
        frames = len(inputs[fixture])
        what = f"{true} x {frames} frames" if frames > 1 else str(true)
        print(f"| {fixture} | {what} | " + " | ".join(cells) + " |")
    print("| **total** | " + str(next(iter(totals.values()))[0]) + " | "
          + " | ".join(f"**{t[1]} / {t[2]} / {t[3]}**" for t in totals.values()) + " |")

    print(f"\n1280x720 frames of {HD_CLIP}, median of {args.repeat}, and 4 threads sharing one "
          "detector\n")
    print("| detector | ms per 720p frame | x haar | 4 threads, per-thread objects (frames/s) "
          "| 4 threads, one object + lock (frames/s) |")
    print("|---|---:|---:|---:|---:|")
    timings = {name: ms_per_frame(d, hd, args.repeat) for name, d in detectors.items()}
    for name, detector in detectors.items():
        ratio = timings[name] / timings["haar"] if "haar" in timings else float("nan")
        own = threaded_fps(detector, hd)
        locked = threaded_fps(Locked(detector), hd)
        print(f"| {name} | {timings[name]:.1f} | {ratio:.2f} | {own:.1f} | {locked:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
