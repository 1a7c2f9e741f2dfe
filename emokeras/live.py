"""Label every face live, frame by frame: a camera or a video file in, an annotated video out.

Each frame's faces are detected (all of them), classified in one batch, and followed from frame to
frame by box overlap, so each face's label is the aggregate of its last ``window`` frames rather
than one jittery frame. A face is drawn with its box, emotion name, emoji and confidence, or as
"uncertain" below the threshold.

    emokeras live --source 0                          # the first camera, in a window
    emokeras live --source clip.mp4 --out annotated.mp4 --no-display

Emoji are drawn with Pillow from a colour emoji font (Noto Color Emoji on Linux:
``apt-get install fonts-noto-color-emoji``; ``EMOKERAS_EMOJI_FONT`` names another font file);
without one the labels are text only.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emokeras import aggregation

# the drawing and the tracking live beside faces.py; imported here for live's own use and so
# that ``from emokeras.live import Annotator`` (and the rest) keeps working
from emokeras.annotate import (  # noqa: F401
    DEFAULT_THRESHOLD,
    EMOJI_FONT_CANDIDATES,
    UNCERTAIN,
    Annotator,
    FaceLabel,
    find_emoji_font,
    label_face,
)
from emokeras.errors import ConfigError, EmokerasError, VideoReadError
from emokeras.faces import FaceDetector, detect_faces_and_crop, get_detector
from emokeras.fileio import atomic_path
from emokeras.tracking import DEFAULT_WINDOW, MultiFaceTracker, iou  # noqa: F401 (re-export)
from emokeras.video import Frame, iter_frames, probe_video

log = logging.getLogger(__name__)

#: Encoder by output extension. ``.mkv`` is lossless (FFV1): large files, exact pixels.
FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "FFV1"}
#: Frame rate written for a camera that reports none.
CAMERA_FALLBACK_FPS = 30.0


# ----------------------------------------------------------------------------------------- sources


def parse_source(source: int | str | os.PathLike[str]) -> int | Path:
    """A camera index (an int, or a string of digits such as ``"0"``) or a video file path."""
    if isinstance(source, bool):
        raise ConfigError(f"source must be a camera index or a video file, got {source!r}")
    if isinstance(source, int):
        return source
    if isinstance(source, str) and source.strip().isdigit():
        return int(source.strip())
    return Path(source)


def _camera_frames(index: int, max_frames: int | None) -> tuple[Iterator[Frame], float,
                                                                  tuple[int, int]]:
    """Frames from camera ``index``, its frame rate and (width, height)."""
    name = f"camera {index}"
    capture = cv2.VideoCapture(index)
    if not capture.isOpened():
        capture.release()
        raise VideoReadError(name, "cannot open the camera: is one connected, and not in use?")
    ok, bgr = capture.read()
    if not ok or bgr is None:
        capture.release()
        raise VideoReadError(name, "the camera opened but gave no frame")
    fps = capture.get(cv2.CAP_PROP_FPS)
    fps = float(fps) if np.isfinite(fps) and 1 <= fps <= 240 else CAMERA_FALLBACK_FPS
    size = (bgr.shape[1], bgr.shape[0])

    def frames() -> Iterator[Frame]:
        start = time.perf_counter()
        current, index_ = bgr, 0
        try:
            while True:
                yield Frame(index_, time.perf_counter() - start,
                            cv2.cvtColor(current, cv2.COLOR_BGR2RGB))
                index_ += 1
                if max_frames is not None and index_ >= max_frames:
                    return
                ok, current = capture.read()
                if not ok or current is None:
                    log.warning("%s stopped giving frames after %d", name, index_)
                    return
        finally:
            capture.release()

    return frames(), fps, size


def _file_frames(path: Path, max_frames: int | None) -> tuple[Iterator[Frame], float,
                                                               tuple[int, int]]:
    info = probe_video(path)  # VideoReadError naming the file if it cannot be read
    return iter_frames(path, max_frames=max_frames), info.fps, (info.width, info.height)


# ------------------------------------------------------------------------------------------ writer


@contextlib.contextmanager
def _video_writer(path: Path, fps: float, size: tuple[int, int]) -> Iterator[cv2.VideoWriter]:
    """A VideoWriter on a temporary file beside ``path``, renamed over it on success."""
    suffix = path.suffix.lower()
    if suffix not in FOURCC:
        raise ConfigError(f"cannot write {str(path)!r}: the annotated video must end in one of "
                          f"{sorted(FOURCC)}")
    with atomic_path(path, keep_suffix=True) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*FOURCC[suffix]), fps, size)
        try:
            if not writer.isOpened():
                raise EmokerasError(f"cannot write video {str(path)!r}: OpenCV could not open "
                                    f"an encoder ({FOURCC[suffix]}) for it")
            yield writer
        finally:
            writer.release()  # before the rename: the file is complete only once released


# ------------------------------------------------------------------------------------------- live


@dataclass(frozen=True)
class LiveStats:
    """What a live run did: frames processed, faces labelled (over all frames), frames/s."""

    frames: int
    faces: int
    fps: float
    seconds: float
    out: Path | None = None
    #: the source's frame rate (what the annotated video is written at)
    source_fps: float = 0.0


def display_available() -> bool:
    """Whether a window can be shown: macOS, Windows, or DISPLAY / WAYLAND_DISPLAY set."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class _Window:
    """An OpenCV window, if this OpenCV has a GUI (opencv-python-headless has none)."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.open = True

    def show(self, rgb: np.ndarray) -> bool:
        """Show a frame; False when the user asked to stop (q or Esc) or the window is gone."""
        if not self.open:
            return True
        try:
            cv2.imshow(self.title, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            key = cv2.waitKey(1) & 0xFF
        except cv2.error as error:
            reason = ("this OpenCV has no GUI (opencv-python-headless)"
                      if "not implemented" in str(error) else str(error).strip())
            log.warning("cannot show a window: %s; carrying on without one", reason)
            self.open = False
            return True
        return key not in (ord("q"), 27)

    def close(self) -> None:
        if self.open:
            with contextlib.suppress(cv2.error):
                cv2.destroyWindow(self.title)


def run_live(
    source: int | str | os.PathLike[str],
    model=None,
    *,
    out: str | os.PathLike[str] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    window: int = DEFAULT_WINDOW,
    display: bool = False,
    max_frames: int | None = None,
    aggregate: aggregation.Method = "sum",
    detector: str | FaceDetector | None = None,
    annotator: Annotator | None = None,
    on_frame: Callable[[Frame, list[FaceLabel]], None] | None = None,
    detector_threshold: float | None = None,
    align: bool = True,
) -> LiveStats:
    """Label the faces of a camera (an index) or a video file, frame by frame.

    Every face of every frame is classified (one batch per frame), followed across frames by
    :class:`MultiFaceTracker` and labelled by the aggregate of its last ``window`` frames
    (``aggregate``: as for videos); below ``threshold`` it is "uncertain". With ``out`` every
    frame is written annotated, at the source's frame rate and size, to a temporary file renamed
    to ``out`` at the end (``.mp4``, ``.mov``, ``.avi`` or lossless ``.mkv``). ``display`` shows
    a window where there is a display and OpenCV has a GUI (q or Esc stops). Ctrl+C stops a
    camera cleanly, keeping what was written. A camera that cannot be opened or a file that
    cannot be read raises ``VideoReadError`` naming it.

    ``detector`` (a name: ``"yunet"``, the default, ``"haar"``, ``"mtcnn"``, or a FaceDetector)
    and ``detector_threshold`` choose how faces are found; ``align`` turns each face upright
    from its eye landmarks before it is classified. Each face is drawn with its track id.
    """
    from emokeras.inference import predict_frames
    from emokeras.model import crop_framing_for, crop_size_for, resolve_model

    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"threshold must be in [0, 1], got {threshold!r}")
    if max_frames is not None and (isinstance(max_frames, bool) or max_frames < 1):
        raise ConfigError(f"max_frames must be >= 1, got {max_frames!r}")
    tracker = MultiFaceTracker(window, method=aggregate)
    out_path = Path(out) if out is not None else None
    if out_path is not None and out_path.suffix.lower() not in FOURCC:
        raise ConfigError(f"cannot write {str(out_path)!r}: the annotated video must end in one "
                          f"of {sorted(FOURCC)}")
    emotion = resolve_model(model)
    crop_size, framing = crop_size_for(emotion), crop_framing_for(emotion)
    detector = get_detector(detector, threshold=detector_threshold)
    parsed = parse_source(source)
    if isinstance(parsed, int):
        frames, fps, size = _camera_frames(parsed, max_frames)
    else:
        frames, fps, size = _file_frames(parsed, max_frames)
    # the frames' own size, which a rotated video's container may give the other way round
    first = next(frames, None)
    if first is None:
        raise VideoReadError(str(source), "no frame could be read")
    size = (first.image.shape[1], first.image.shape[0])
    pending = itertools.chain([first], frames)
    annotator = annotator or Annotator()
    window_ = None
    if display:
        if display_available():
            window_ = _Window(f"emokeras live: {source}")
        else:
            log.warning("no display found (DISPLAY is not set): running without a window")

    count = faces = 0
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(_video_writer(out_path, fps, size)) if out_path else None
        stack.callback(getattr(frames, "close", lambda: None))
        if window_ is not None:
            stack.callback(window_.close)
        try:
            for frame in pending:
                crops = detect_faces_and_crop(frame.image, detector, size=crop_size,
                                              margin=framing.margin, shift_y=framing.shift_y,
                                              which="all", align=align)
                labels: list[FaceLabel] = []
                if crops:
                    probs = predict_frames([c.image for c in crops], emotion)
                    tracked = tracker.update([c.box for c in crops], probs)
                    labels = [label_face(c.box, scores, emotion.label_set, threshold, track)
                              for c, (track, scores) in zip(crops, tracked, strict=True)]
                else:
                    tracker.update([], np.zeros((0, len(emotion.label_set))))
                annotated = annotator.draw(frame.image, labels) if (
                    writer is not None or window_ is not None) else frame.image
                if writer is not None:
                    if annotated.shape[1::-1] != size:  # a camera may change its size
                        annotated = cv2.resize(annotated, size)
                    writer.write(cv2.cvtColor(annotated, cv2.COLOR_RGB2BGR))
                count += 1
                faces += len(labels)
                if on_frame is not None:
                    on_frame(frame, labels)
                if window_ is not None and not window_.show(annotated):
                    break
        except KeyboardInterrupt:
            if not isinstance(parsed, int):
                raise
            log.info("stopped by the user after %d frames", count)
    seconds = time.perf_counter() - start
    return LiveStats(count, faces, count / seconds if seconds > 0 else 0.0, seconds,
                     out_path, fps)
