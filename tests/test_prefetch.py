"""prefetch: order kept, errors raised where they happened, the source closed when the consumer
stops early, on real video frames."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import RAVDESS_CLIPS

from emokeras.errors import VideoReadError
from emokeras.prefetch import prefetch
from emokeras.video import iter_frames


def test_prefetched_frames_are_the_frames_in_order():
    clip = RAVDESS_CLIPS / "actor01_sample_01.mp4"
    direct = [(frame.index, frame.image) for frame in iter_frames(clip, step=5)]
    ahead = [(frame.index, frame.image) for frame in prefetch(iter_frames(clip, step=5), depth=2)]
    assert [index for index, _ in ahead] == [index for index, _ in direct]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(ahead, direct, strict=True))


def test_an_error_while_producing_reaches_the_consumer_after_the_items_before_it(tmp_path):
    def frames_then_a_broken_video():
        yield from iter_frames(RAVDESS_CLIPS / "actor01_sample_01.mp4", max_frames=3)
        broken = tmp_path / "broken.mp4"
        broken.write_bytes(b"not a video")
        yield from iter_frames(broken)

    seen = []
    with pytest.raises(VideoReadError, match="broken.mp4"):
        for frame in prefetch(frames_then_a_broken_video()):
            seen.append(frame.index)
    assert seen == [0, 1, 2]


def test_stopping_early_closes_the_source_in_the_producer_thread():
    closed_in = []

    def frames():
        try:
            yield from iter_frames(RAVDESS_CLIPS / "actor01_sample_01.mp4")
        finally:
            closed_in.append(threading.current_thread().name)

    ahead = prefetch(frames(), depth=2)
    assert next(ahead).index == 0
    ahead.close()  # as a `break` out of the consumer's loop does
    assert closed_in == ["emokeras-prefetch"]
    assert not any(t.name == "emokeras-prefetch" for t in threading.enumerate())


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="depth must be an integer >= 1, got 0"):
        prefetch([1, 2], depth=0)
