"""predict_video against a per-frame loop, and predict_video's real-time factor.

The per-frame loop is how the seeds and deepface work: decode a frame, detect the face, call
``model.predict`` on that one crop. Both paths use the same real 720p RAVDESS clip, the bundled
model (or ``--model``), the same face detector (``--detector``, default YuNet, the package's
default) and every frame. predict_video follows the face
from frame to frame (its default); it is also timed searching every whole frame
(``track=False``) to show what the tracking adds. The real-time factor is processing time over
clip duration for predict_video with its default settings (10 sampled frames per second).
predict_video decodes and finds the faces of the next batch while the model classifies this one
(``emokeras.prefetch``); the "in turn" row runs the same steps one after the other. Each path
runs once untimed first (graph tracing, detector load), then is timed over ``--repeat`` runs.

    python benchmarks/video_throughput.py [--clip PATH] [--repeat 3] [--model RUN_DIR]
        [--detector yunet|haar|mtcnn]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from emokeras.faces import DETECTORS, FaceTracker, crop_face, get_detector, iter_face_crops
from emokeras.inference import CROP_MARGIN, predict_video
from emokeras.inference.video import _batches
from emokeras.model import crop_size_for, resolve_model
from emokeras.video import iter_frames, probe_video

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = REPO.parent / "shared" / "fixtures" / "ravdess" / "actor01_sample_02.mp4"


def per_frame_loop(clip: Path, emotion, detector) -> int:
    """decode -> detect -> model.predict on one crop, frame after frame; returns faces seen."""
    capture = cv2.VideoCapture(str(clip))
    faces = 0
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                return faces
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            boxes = detector.detect(rgb)
            if boxes:
                crop = crop_face(rgb, boxes[0], size=emotion.input_size, margin=CROP_MARGIN)
                emotion.model.predict(emotion.prepare(crop)[np.newaxis], verbose=0)
                faces += 1
    finally:
        capture.release()


def in_turn(clip: Path, emotion, detector, batch_size: int = 32) -> None:
    """predict_video's steps without its prefetch: decode and track a batch, then classify it."""
    faces = iter_face_crops(iter_frames(clip, step=1), FaceTracker(detector),
                            size=crop_size_for(emotion), margin=CROP_MARGIN, which="largest")
    for batch in _batches(faces, batch_size):  # predict_video's batching, without prefetch()
        crops = [item.crops[0].image for item in batch if item.crops]
        if crops:
            emotion.predict(crops)


def timed(function, repeat: int) -> float:
    function()  # warm-up: tracing, first allocations
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", type=Path, help="a run folder (default: the bundled model)")
    parser.add_argument("--detector", choices=sorted(DETECTORS), default="yunet")
    args = parser.parse_args()

    info = probe_video(args.clip)
    emotion = resolve_model(args.model)
    detector = get_detector(args.detector)
    frames = predict_video(args.clip, emotion, frame_step=1, face_detector=detector).frames_read

    loop = timed(lambda: per_frame_loop(args.clip, emotion, detector), args.repeat)
    ours = timed(lambda: predict_video(args.clip, emotion, frame_step=1, face_detector=detector,
                                       batch_size=32), args.repeat)
    sequential = timed(lambda: in_turn(args.clip, emotion, detector), args.repeat)
    untracked = timed(lambda: predict_video(args.clip, emotion, frame_step=1, track=False,
                                            face_detector=detector, batch_size=32), args.repeat)
    default = timed(lambda: predict_video(args.clip, emotion, detector=detector), args.repeat)
    sampled = predict_video(args.clip, emotion, detector=detector).frames_read

    print(f"{args.clip.name}: {info.width}x{info.height}, {frames} frames, {info.duration:.2f} s; "
          f"{args.model or 'bundled'} model "
          f"{emotion.input_size}x{emotion.input_size}x{emotion.channels}; "
          f"{args.detector} detector; "
          f"median of {args.repeat} runs\n")
    print("| path | frames | seconds | frames / s | speed-up |")
    print("|---|---:|---:|---:|---:|")
    print(f"| per-frame loop (decode, detect, predict one crop) | {frames} | {loop:.2f} | "
          f"{frames / loop:.1f} | 1.0x |")
    print(f"| predict_video, every frame, batch 32, whole-frame detection (track=False) | {frames} "
          f"| {untracked:.2f} | {frames / untracked:.1f} | {loop / untracked:.1f}x |")
    print(f"| the same steps in turn (decode and track a batch, then classify it) | {frames} "
          f"| {sequential:.2f} | {frames / sequential:.1f} | {loop / sequential:.1f}x |")
    print(f"| predict_video, every frame, batch 32 (face tracked) | {frames} | {ours:.2f} "
          f"| {frames / ours:.1f} | {loop / ours:.1f}x |")
    print(f"| predict_video, defaults (10 fps sampled) | {sampled} | {default:.2f} | "
          f"{sampled / default:.1f} | - |")
    print(f"\nthroughput ratio: {loop / ours:.1f}x (goal >= 5x); "
          f"real-time factor with defaults: {default / info.duration:.3f} (goal <= 0.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
