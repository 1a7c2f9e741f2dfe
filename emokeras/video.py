"""Stream the frames of a video file one at a time, as RGB arrays, with their index and timestamp.

Memory stays flat however long the video: only the current frame is ever held.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, cast

import cv2
import numpy as np

from emokeras.errors import VideoReadError, VideoTooLargeError
from emokeras.fileio import missing_reason

logger = logging.getLogger(__name__)

#: Frame rate assumed when the container reports none (timestamps are then approximate).
FALLBACK_FPS = 25.0

#: Videos whose frames have more pixels than this are refused when opened, before a frame is
#: decoded (8K video is 33 MP); pass ``max_pixels`` to read larger ones.
MAX_FRAME_PIXELS = 50_000_000

# A frame a float second boundary lands on to within this many frames counts as inside it, so
# that e.g. start=0.3 at 30 fps means frame 9 despite 0.3 * 30 == 9.000000000000002.
_EPS_FRAMES = 1e-6


class Frame(NamedTuple):
    """One decoded frame: its 0-based index in the video, time in seconds, RGB uint8 image."""

    index: int
    timestamp: float
    image: np.ndarray


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video; ``frame_count`` may be approximate."""

    path: str
    fps: float
    frame_count: int
    width: int
    height: int
    duration: float


def probe_video(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> VideoInfo:
    """Read a video's frame rate, frame count and size; raise VideoReadError if it is unreadable.

    Frames of more than ``max_pixels`` pixels (default :data:`MAX_FRAME_PIXELS`) raise
    VideoTooLargeError.
    """
    capture, fps = _open_capture(path, max_pixels)
    try:
        frame_count = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
        return VideoInfo(
            path=str(path),
            fps=fps,
            frame_count=frame_count,
            width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            duration=frame_count / fps,
        )
    finally:
        capture.release()


def iter_frames(
    path: str | os.PathLike[str],
    *,
    step: int = 1,
    target_fps: float | None = None,
    max_frames: int | None = None,
    start: float | None = None,
    end: float | None = None,
    max_pixels: int | None = None,
) -> Generator[Frame, None, None]:
    """Yield the frames of a video as :class:`Frame` (RGB uint8), one at a time.

    ``step`` keeps every step-th frame; ``target_fps`` instead keeps the frames nearest to a
    ``target_fps`` grid (never more than the source rate). ``max_frames`` caps how many are
    yielded; ``start``/``end`` (seconds, end exclusive) select a window. Frames of more than
    ``max_pixels`` pixels (default :data:`MAX_FRAME_PIXELS`) raise VideoTooLargeError at once.

    Arguments and the file are checked, and the file opened, when this is called, not at the
    first ``next()``: a bad path raises VideoReadError here. Close the returned generator (or
    exhaust it) to release the file early.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise ValueError(f"step must be an integer >= 1, got {step!r}")
    if target_fps is not None:
        if step != 1:
            raise ValueError("give either step or target_fps, not both")
        if not (target_fps > 0 and math.isfinite(target_fps)):
            raise ValueError(f"target_fps must be a positive number, got {target_fps!r}")
    if max_frames is not None and (
        isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1
    ):
        raise ValueError(f"max_frames must be an integer >= 1, got {max_frames!r}")
    if start is not None and not (math.isfinite(start) and start >= 0):
        raise ValueError(f"start must be a number of seconds >= 0, got {start!r}")
    if end is not None and not end > (start or 0.0):
        raise ValueError(f"end must be greater than start ({start or 0.0!r} s), got {end!r}")

    frames = _frames(path, step, target_fps, max_frames, start or 0.0, end, max_pixels)
    # Run the generator up to its first (priming) yield: that opens and checks the file now, and
    # puts the capture under the generator's try/finally, so close() releases it even if the
    # caller never asks for a frame.
    next(frames)
    return cast(Generator[Frame, None, None], frames)  # only the priming yield gives None


def _frames(
    path: str | os.PathLike[str],
    step: int,
    target_fps: float | None,
    max_frames: int | None,
    start: float,
    end: float | None,
    max_pixels: int | None = None,
) -> Generator[Frame | None, None, None]:
    capture, fps = _open_capture(path, max_pixels)  # frame 0 is grabbed already
    try:
        yield None
        reported = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        start_frame = math.ceil(start * fps - _EPS_FRAMES)
        end_frame = math.inf if end is None else math.ceil(end * fps - _EPS_FRAMES)
        # Kept frames follow a grid from the window's first frame: every step-th frame, or the
        # frame nearest to each multiple of fps / target_fps.
        interval = float(step) if target_fps is None else max(1.0, fps / target_fps)

        index = 0
        if start_frame > 0:
            capture, index = _skip_to(capture, path, start_frame, max_pixels)
        if index < start_frame:
            logger.warning("%s: start=%.3f s is past the end of the video", path, start)
            return

        k = 0
        yielded = 0
        while index < end_frame:
            target = start_frame + math.floor(k * interval + 0.5)
            if index == target:
                ok, bgr = capture.retrieve()
                if not ok:
                    raise VideoReadError(path, f"frame {index} could not be decoded")
                yield Frame(index, index / fps, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                yielded += 1
                if max_frames is not None and yielded >= max_frames:
                    return
                k += 1
            if not capture.grab():
                # Containers' frame counts are approximate (a few frames either way), so only a
                # big shortfall means a truncated or damaged file. The frames before it were
                # yielded already; raising still tells the caller the video is not whole.
                if index + 1 < 0.9 * reported:
                    raise VideoReadError(
                        path,
                        f"decoding stopped after {index + 1} frames but the container reports "
                        f"{reported}: the file is truncated or damaged",
                    )
                return
            index += 1
    finally:
        capture.release()


def _open_capture(
    path: str | os.PathLike[str], max_pixels: int | None = None
) -> tuple[cv2.VideoCapture, float]:
    """Open ``path`` and grab its first frame; return the capture and its frame rate."""
    file = Path(path)
    if not file.exists():
        raise VideoReadError(path, missing_reason(file))
    if file.is_dir():
        raise VideoReadError(path, "is a directory, not a video file")
    try:
        with open(file, "rb") as handle:
            empty = handle.read(1) == b""
    except OSError as error:
        raise VideoReadError(path, f"cannot open the file: {error.strerror or error}") from error
    if empty:
        raise VideoReadError(path, "the file is empty (0 bytes)")

    # Ask for FFmpeg by name where it exists: CAP_ANY may hand a name containing "%" to the
    # image-sequence backend.
    backend = cv2.CAP_FFMPEG if cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG) else cv2.CAP_ANY
    capture = cv2.VideoCapture(str(file), backend)
    if not capture.isOpened():
        capture.release()
        raise VideoReadError(
            path,
            "OpenCV could not open/decode the file; is it a video in a format OpenCV's FFmpeg "
            "reads?",
        )
    # The stream's size is known from its parameters once opened; checked before grab() decodes
    # the first frame, so a hostile header never costs a frame's memory.
    limit = MAX_FRAME_PIXELS if max_pixels is None else max_pixels
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if width * height > limit:
        capture.release()
        raise VideoTooLargeError(path, width, height, limit)
    if not capture.grab():
        capture.release()
        raise VideoReadError(path, "the video has no decodable frames")

    fps = capture.get(cv2.CAP_PROP_FPS)
    if not (math.isfinite(fps) and fps > 0):
        logger.warning(
            "%s: OpenCV reports fps=%r; assuming %.1f, so timestamps are approximate",
            path,
            fps,
            FALLBACK_FPS,
        )
        fps = FALLBACK_FPS
    return capture, float(fps)


def _skip_to(
    capture: cv2.VideoCapture, path: str | os.PathLike[str], frame: int,
    max_pixels: int | None = None,
) -> tuple[cv2.VideoCapture, int]:
    """Grab frame number ``frame`` (or the last one if the video is shorter); return its index.

    Seeks, and trusts the seek only if OpenCV then reports exactly the asked-for position (its
    FFmpeg backend derives that from the decoded frame's timestamp). Otherwise reopens the file
    and grabs frame by frame, which is slow but never mislabels a frame.
    """
    capture.set(cv2.CAP_PROP_POS_FRAMES, frame)
    if int(capture.get(cv2.CAP_PROP_POS_FRAMES)) == frame and capture.grab():
        return capture, frame
    logger.debug("%s: seek to frame %d was not exact; grabbing frame by frame", path, frame)
    capture.release()
    capture, _ = _open_capture(path, max_pixels)
    index = 0
    while index < frame and capture.grab():
        index += 1
    return capture, index
