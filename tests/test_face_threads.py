"""Detectors and predict_video from several threads give what the same calls give in turn."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from conftest import RAVDESS_CLIPS, VIDEOS

from emokeras.faces import get_detector
from emokeras.inference import predict_video
from emokeras.model import resolve_model
from emokeras.video import iter_frames

CLIPS = [*sorted(RAVDESS_CLIPS.glob("*.mp4")), VIDEOS / "single_face.mp4", VIDEOS / "no_face.mp4"]


@pytest.fixture(scope="module")
def mixed_frames() -> list[np.ndarray]:
    """Frames of every fixture clip (1280x720 and 640x360), and some of them in gray."""
    frames = []
    for clip in CLIPS:
        frames += [f.image for f in iter_frames(clip, target_fps=3, max_frames=6)]
    frames += [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames[::5]]
    assert {f.shape[:2] for f in frames} >= {(720, 1280), (360, 640)}
    return frames


@pytest.mark.parametrize("name", ["yunet", "haar"])
def test_one_detector_from_four_threads_gives_the_sequential_boxes(name, mixed_frames):
    detector = get_detector(name)
    sequential = [detector.detect(frame) for frame in mixed_frames]
    assert sum(map(len, sequential)) >= len(CLIPS)  # faces were found: this compares something
    with ThreadPoolExecutor(4) as pool:
        # each frame four times, interleaved, so threads run the detector on different sizes
        threaded = list(pool.map(detector.detect, [f for f in mixed_frames for _ in range(4)]))
    assert threaded == [boxes for boxes in sequential for _ in range(4)]


def test_predict_video_from_four_threads_equals_the_calls_in_turn():
    model = resolve_model(None)  # one model and one (default) detector shared by all threads
    clips = [clip for clip in CLIPS if clip.name != "no_face.mp4"]

    def run(clip):
        return predict_video(clip, model, target_fps=5, max_frames=10)

    sequential = [run(clip) for clip in clips]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(run, clips * 2))
    for got, want in zip(threaded, sequential * 2, strict=True):
        assert got.path == want.path and got.label == want.label
        np.testing.assert_array_equal(got.frame_indices, want.frame_indices)
        assert got.frame_boxes == want.frame_boxes
        np.testing.assert_allclose(got.frame_probs, want.frame_probs, atol=1e-5)
