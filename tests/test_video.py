"""emokeras.video on the real fixture videos and on broken files written here."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
from conftest import RAVDESS_CLIPS, VIDEOS

from emokeras.errors import VideoReadError, VideoTooLargeError
from emokeras.video import MAX_FRAME_PIXELS, Frame, VideoInfo, iter_frames, probe_video

SINGLE_FACE = VIDEOS / "single_face.mp4"
RAVDESS_CLIP = RAVDESS_CLIPS / "actor01_sample_01.mp4"  # 99 decodable frames at 29.97 fps
SINGLE_FACE_FPS = 30.0


def _all_frames(path) -> list[Frame]:
    return list(iter_frames(path))


def test_reads_every_frame_of_single_face_as_rgb():
    frames = _all_frames(SINGLE_FACE)

    assert len(frames) == 72
    assert [f.index for f in frames] == list(range(72))
    for frame in frames:
        assert frame.image.dtype == np.uint8
        assert frame.image.shape == (360, 640, 3)
        assert frame.timestamp == pytest.approx(frame.index / SINGLE_FACE_FPS)
    index, timestamp, image = frames[5]  # a Frame unpacks like a tuple
    assert (index, timestamp) == (5, pytest.approx(5 / SINGLE_FACE_FPS))
    assert image is frames[5].image


def test_frames_are_rgb_not_bgr():
    capture = cv2.VideoCapture(str(SINGLE_FACE))
    try:
        ok, bgr = capture.read()
    finally:
        capture.release()
    assert ok
    first = next(iter_frames(SINGLE_FACE))
    np.testing.assert_array_equal(first.image, bgr[:, :, ::-1])


def test_step_keeps_every_nth_frame():
    frames = list(iter_frames(SINGLE_FACE, step=3))

    assert [f.index for f in frames] == list(range(0, 72, 3))
    assert all(f.timestamp == pytest.approx(f.index / SINGLE_FACE_FPS) for f in frames)


def test_target_fps_resamples_a_ravdess_clip_to_about_ten_per_second():
    info = probe_video(RAVDESS_CLIP)
    frames = list(iter_frames(RAVDESS_CLIP, target_fps=10))

    assert abs(len(frames) - info.duration * 10) <= 1.5
    gaps = np.diff([f.timestamp for f in frames])
    assert np.all(gaps > 0)
    np.testing.assert_allclose(gaps, 0.1, atol=1 / info.fps)
    # The frame nearest to k * fps / target_fps: 0, 3, 6, ..., 27, 30 (29.97), 33 (32.97), ...
    assert [f.index for f in frames[:12]] == [0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33]


def test_target_fps_above_the_source_rate_keeps_every_frame_once():
    frames = list(iter_frames(SINGLE_FACE, target_fps=120))

    assert [f.index for f in frames] == list(range(72))


def test_max_frames_caps_the_output():
    assert [f.index for f in iter_frames(SINGLE_FACE, max_frames=4)] == [0, 1, 2, 3]
    assert [f.index for f in iter_frames(SINGLE_FACE, step=10, max_frames=3)] == [0, 10, 20]


def test_start_end_window_gives_timestamps_inside_it_and_the_same_pixels():
    everything = _all_frames(RAVDESS_CLIP)
    window = list(iter_frames(RAVDESS_CLIP, start=1.0, end=2.0))

    assert window, "the 1-2 s window of a 3.3 s clip is not empty"
    assert all(1.0 <= f.timestamp < 2.0 for f in window)
    assert [f.index for f in window] == list(range(30, 60))  # 29.97 fps: frames 30 .. 59
    # The seek lands on the same frame a full read gives at that index.
    for frame in (window[0], window[-1]):
        np.testing.assert_array_equal(frame.image, everything[frame.index].image)


def test_start_with_step_counts_from_the_first_frame_in_the_window():
    frames = list(iter_frames(SINGLE_FACE, start=1.0, step=5, max_frames=3))

    assert [f.index for f in frames] == [30, 35, 40]


def test_start_past_the_end_yields_nothing(caplog):
    with caplog.at_level(logging.WARNING, logger="emokeras.video"):
        frames = list(iter_frames(SINGLE_FACE, start=10.0))

    assert frames == []
    assert "past the end" in caplog.text


def test_closing_the_generator_early_is_fine():
    frames = iter_frames(SINGLE_FACE)
    first = next(frames)
    second = next(frames)
    frames.close()

    assert (first.index, second.index) == (0, 1)
    with pytest.raises(StopIteration):
        next(frames)
    # Closing before the first frame is fine too.
    iter_frames(SINGLE_FACE).close()


def test_probe_video_on_a_ravdess_clip():
    info = probe_video(RAVDESS_CLIP)

    assert isinstance(info, VideoInfo)
    assert info.path == str(RAVDESS_CLIP)
    assert (info.width, info.height) == (1280, 720)
    assert info.fps == pytest.approx(29.97, abs=0.01)
    # The container says 100 frames; 99 decode. frame_count is the container's figure.
    assert 99 <= info.frame_count <= 101
    assert info.duration == pytest.approx(info.frame_count / info.fps)
    with pytest.raises(AttributeError):
        info.fps = 1.0  # type: ignore[misc]


def _write_mjpg_avi(path, frames: list[Frame], fps: float = SINGLE_FACE_FPS) -> None:
    height, width = frames[0].image.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened(), "this OpenCV cannot write MJPG AVI files"
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


def test_reads_an_mjpg_avi(tmp_path):
    source = _all_frames(SINGLE_FACE)
    avi = tmp_path / "single_face.avi"
    _write_mjpg_avi(avi, source)

    info = probe_video(avi)
    frames = _all_frames(avi)

    assert (info.width, info.height, info.frame_count) == (640, 360, 72)
    assert info.fps == pytest.approx(SINGLE_FACE_FPS)
    assert [f.index for f in frames] == list(range(72))
    # MJPG is lossy, but each frame must still look like its source frame.
    for frame in (frames[0], frames[40]):
        diff = np.abs(frame.image.astype(int) - source[frame.index].image.astype(int))
        assert diff.mean() < 8
    window = list(iter_frames(avi, start=2.0))
    assert [f.index for f in window] == list(range(60, 72))
    np.testing.assert_array_equal(window[0].image, frames[60].image)


@pytest.mark.parametrize("container", ["mov", "mp4"])
def test_reads_hevc(tmp_path, container):
    # OpenCV's wheels cannot encode HEVC; PyAV (a dev dependency) ships FFmpeg with x265.
    import av  # not at the top: only this test needs it
    source = _all_frames(SINGLE_FACE)[:30]
    path = tmp_path / f"single_face_hevc.{container}"
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx265", rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        for frame in source:
            output.mux(stream.encode(av.VideoFrame.from_ndarray(frame.image, format="rgb24")))
        output.mux(stream.encode())

    info = probe_video(path)
    frames = _all_frames(path)

    assert (info.width, info.height) == (640, 360)
    assert [f.index for f in frames] == list(range(30))
    for frame in (frames[0], frames[29]):
        diff = np.abs(frame.image.astype(int) - source[frame.index].image.astype(int))
        assert diff.mean() < 8


# ---- bad input --------------------------------------------------------------------------------


def _assert_video_error(path, reason_part: str, **kwargs) -> VideoReadError:
    with pytest.raises(VideoReadError) as caught:
        iter_frames(path, **kwargs)  # raises at call time, before any next()
    error = caught.value
    assert str(path) in str(error)
    assert error.path == str(path)
    assert reason_part in error.reason
    return error


def test_missing_path(tmp_path):
    missing = tmp_path / "missing.mp4"
    _assert_video_error(missing, "no such file")
    with pytest.raises(VideoReadError, match="no such file"):
        probe_video(missing)


def test_directory(tmp_path):
    _assert_video_error(tmp_path, "directory")


def test_zero_byte_file(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.touch()
    _assert_video_error(empty, "empty")


def test_text_file_named_mp4(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    _assert_video_error(text, "OpenCV could not open/decode the file")
    with pytest.raises(VideoReadError, match="could not open"):
        probe_video(text)


def test_truncated_mp4_with_the_index_at_the_end_cannot_be_opened(tmp_path):
    # single_face.mp4 keeps its moov atom (the index) after the media data, so its first 30%
    # has no index and FFmpeg refuses the file ("moov atom not found").
    data = SINGLE_FACE.read_bytes()
    assert data.find(b"moov") > data.find(b"mdat")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: int(len(data) * 0.3)])

    _assert_video_error(truncated, "could not open")


def test_truncated_mp4_with_the_index_first_raises_after_the_frames_it_has(tmp_path):
    # The RAVDESS clips are "fast start" (moov before mdat): the first 30% opens, the container
    # still claims 100 frames, and decoding stops after the ~28 frames whose data is there. The
    # frames that exist come out intact, then the shortfall raises.
    data = RAVDESS_CLIP.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: int(len(data) * 0.3)])

    frames = []
    with pytest.raises(VideoReadError, match="truncated") as raised:
        for frame in iter_frames(truncated):
            frames.append(frame)

    assert str(truncated) in str(raised.value)
    assert 10 < len(frames) < 60
    assert [f.index for f in frames] == list(range(len(frames)))
    full = _all_frames(RAVDESS_CLIP)
    np.testing.assert_array_equal(frames[5].image, full[5].image)
    # a max_frames within the intact part reads cleanly
    assert len(list(iter_frames(truncated, max_frames=10))) == 10


def test_video_with_no_frames(tmp_path):
    # A VideoWriter released without a frame leaves a valid AVI header with zero frames: OpenCV
    # opens it, but the first read fails.
    avi = tmp_path / "no_frames.avi"
    writer = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (64, 48))
    writer.release()
    assert avi.stat().st_size > 0
    capture = cv2.VideoCapture(str(avi))
    try:
        assert capture.isOpened()
    finally:
        capture.release()

    _assert_video_error(avi, "no decodable frames")


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"step": 0}, "step"),
        ({"step": 1.5}, "step"),
        ({"target_fps": 0}, "target_fps"),
        ({"target_fps": -5.0}, "target_fps"),
        ({"step": 2, "target_fps": 10}, "step or target_fps"),
        ({"max_frames": 0}, "max_frames"),
        ({"start": -1.0}, "start"),
        ({"start": 2.0, "end": 2.0}, "end"),
        ({"start": 2.0, "end": 1.0}, "end"),
        ({"end": 0.0}, "end"),
    ],
)
def test_invalid_arguments_raise_value_error_naming_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        iter_frames(SINGLE_FACE, **kwargs)


def test_argument_errors_come_before_path_errors(tmp_path):
    with pytest.raises(ValueError, match="step"):
        iter_frames(tmp_path / "missing.mp4", step=0)


def test_frames_over_the_pixel_limit_are_refused_when_opened():
    info = probe_video(SINGLE_FACE)
    pixels = info.width * info.height
    error = _assert_video_error(SINGLE_FACE, "over the limit of 1000", max_pixels=1000)
    assert isinstance(error, VideoTooLargeError)
    assert (error.width, error.height, error.limit) == (info.width, info.height, 1000)
    with pytest.raises(VideoTooLargeError, match=f"{pixels} pixels"):
        probe_video(SINGLE_FACE, max_pixels=pixels - 1)
    assert probe_video(SINGLE_FACE, max_pixels=pixels).width == info.width
    assert MAX_FRAME_PIXELS >= 7680 * 4320  # 8K video reads under the default


def test_symlink_loop_and_broken_link(tmp_path):
    loop = tmp_path / "loop.mp4"
    loop.symlink_to(loop)
    _assert_video_error(loop, "symlink loop")
    broken = tmp_path / "broken.mp4"
    broken.symlink_to(tmp_path / "gone.mp4")
    _assert_video_error(broken, "broken symlink")
