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

import collections
import contextlib
import functools
import itertools
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emokeras import aggregation
from emokeras.errors import ConfigError, EmokerasError, VideoReadError
from emokeras.faces import FaceBox, FaceDetector, default_detector, detect_faces_and_crop
from emokeras.fileio import atomic_path
from emokeras.labels import LabelSet
from emokeras.video import Frame, iter_frames, probe_video

log = logging.getLogger(__name__)

#: Default confidence below which a face is labelled "uncertain".
DEFAULT_THRESHOLD = 0.5
#: Default number of frames a face's label is aggregated over.
DEFAULT_WINDOW = 5
UNCERTAIN = "uncertain"

#: Encoder by output extension. ``.mkv`` is lossless (FFV1): large files, exact pixels.
FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "FFV1"}
#: Frame rate written for a camera that reports none.
CAMERA_FALLBACK_FPS = 30.0

#: Colour emoji fonts looked for, in order, after ``EMOKERAS_EMOJI_FONT``.
EMOJI_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",
    "/usr/share/fonts/noto/NotoColorEmoji.ttf",
    "/usr/share/fonts/google-noto-emoji/NotoColorEmoji.ttf",
    "/usr/share/fonts/noto-emoji/NotoColorEmoji.ttf",
    "/System/Library/Fonts/Apple Color Emoji.ttc",
    "C:/Windows/Fonts/seguiemj.ttf",
)
# Bitmap colour fonts (Noto's CBDT) load only at their strike size; scalable ones at any size.
_EMOJI_STRIKE = 109

# One colour per class index (RGB), grey for "uncertain".
_PALETTE = ((230, 57, 70), (106, 153, 78), (123, 44, 191), (255, 183, 3), (33, 158, 188),
            (251, 133, 0), (120, 120, 120), (0, 180, 216), (214, 40, 140))
_UNCERTAIN_COLOUR = (140, 140, 140)


# --------------------------------------------------------------------------- labels and tracking


@dataclass(frozen=True)
class FaceLabel:
    """What is drawn for one face: its box, label (a class, or "uncertain"), emoji, confidence."""

    box: FaceBox
    label: str
    emoji: str
    confidence: float
    label_index: int
    track_id: int | None = None

    @property
    def uncertain(self) -> bool:
        return self.label == UNCERTAIN

    @property
    def text(self) -> str:
        """The caption without the emoji: ``happy 87%``."""
        return f"{self.label} {self.confidence:.0%}"


def label_face(box: FaceBox, scores: np.ndarray, label_set: LabelSet, threshold: float,
               track_id: int | None = None) -> FaceLabel:
    """The label of a face from its class scores: the top class, or "uncertain" (no emoji) when
    its score is below ``threshold``."""
    index = int(np.argmax(scores))
    confidence = float(scores[index])
    if confidence < threshold:
        return FaceLabel(box, UNCERTAIN, "", confidence, index, track_id)
    return FaceLabel(box, label_set.classes[index], label_set.emoji(index), confidence, index,
                     track_id)


def iou(a: FaceBox, b: FaceBox) -> float:
    """Intersection over union of two boxes (0 when they do not overlap)."""
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.width, b.x + b.width), min(a.y + a.height, b.y + b.height)
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def _centre_distance(a: FaceBox, b: FaceBox) -> float:
    """Distance between the boxes' centres, in units of the larger box's side."""
    dx = (a.x + a.width / 2) - (b.x + b.width / 2)
    dy = (a.y + a.height / 2) - (b.y + b.height / 2)
    return float(np.hypot(dx, dy)) / max(1, a.width, a.height, b.width, b.height)


@dataclass
class _Track:
    track_id: int
    box: FaceBox
    history: collections.deque
    missed: int = 0


class MultiFaceTracker:
    """Follows faces from frame to frame and aggregates each face's last ``window`` predictions.

    A new box joins the track it overlaps most (IoU >= ``min_iou``), else the track whose centre
    is nearest (within ``max_distance`` box sides); a box with neither starts a new track. A
    track not seen for ``max_missed`` frames is dropped.
    """

    def __init__(self, window: int = DEFAULT_WINDOW, *, method: aggregation.Method = "sum",
                 min_iou: float = 0.3, max_distance: float = 0.5, max_missed: int = 5) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigError(f"window must be an integer >= 1, got {window!r}")
        if method not in aggregation.METHODS:
            raise ConfigError(f"unknown aggregation method {method!r}; "
                              f"choose from {list(aggregation.METHODS)}")
        self.window = window
        self.method = method
        self.min_iou = min_iou
        self.max_distance = max_distance
        self.max_missed = max_missed
        self._tracks: list[_Track] = []
        self._next_id = 0

    def _match(self, boxes: Sequence[FaceBox]) -> dict[int, _Track]:
        """Box index -> track, greedily: best overlaps first, then nearest centres."""
        pairs = []
        for i, box in enumerate(boxes):
            for track in self._tracks:
                overlap = iou(box, track.box)
                distance = _centre_distance(box, track.box)
                if overlap >= self.min_iou:
                    pairs.append((0, -overlap, i, track))
                elif distance <= self.max_distance:
                    pairs.append((1, distance, i, track))
        pairs.sort(key=lambda p: (p[0], p[1], p[2], p[3].track_id))
        matched: dict[int, _Track] = {}
        used: set[int] = set()
        for _, _, i, track in pairs:
            if i not in matched and track.track_id not in used:
                matched[i] = track
                used.add(track.track_id)
        return matched

    def update(self, boxes: Sequence[FaceBox], probs: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Add one frame's boxes and their probabilities (N, classes); return, for each box in
        order, its track id and its scores aggregated over the track's last ``window`` frames."""
        if len(boxes) != len(probs):
            raise ValueError(f"{len(boxes)} boxes but {len(probs)} rows of probabilities")
        matched = self._match(boxes)
        results, seen = [], set()
        for i, box in enumerate(boxes):
            track = matched.get(i)
            if track is None:
                track = _Track(self._next_id, box, collections.deque(maxlen=self.window))
                self._next_id += 1
                self._tracks.append(track)
            track.box, track.missed = box, 0
            track.history.append(np.asarray(probs[i], dtype=np.float64))
            decision = aggregation.aggregate(np.stack(track.history), self.method)
            results.append((track.track_id, decision.scores))
            seen.add(track.track_id)
        for track in self._tracks:
            if track.track_id not in seen:
                track.missed += 1
        self._tracks = [t for t in self._tracks if t.missed <= self.max_missed]
        return results

    @property
    def active(self) -> int:
        """Tracks currently followed (seen within the last ``max_missed`` frames)."""
        return len(self._tracks)


# --------------------------------------------------------------------------------------- drawing


def _text_font_path() -> str | None:
    """DejaVu Sans from matplotlib's data (always installed with emokeras), if it is there."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    return str(path) if path.is_file() else None


def find_emoji_font() -> str | None:
    """A colour emoji font file: ``EMOKERAS_EMOJI_FONT``, a known path, or fontconfig's pick."""
    named = os.environ.get("EMOKERAS_EMOJI_FONT")
    candidates = [named] if named else []
    candidates += EMOJI_FONT_CANDIDATES
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    if shutil.which("fc-list"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            found = subprocess.run(["fc-list", ":charset=1f600:color=true", "file"],
                                   capture_output=True, text=True, timeout=10).stdout
            for line in found.splitlines():
                path = line.strip().rstrip(":")
                if path and Path(path).is_file():
                    return path
    return None


class Annotator:
    """Draws face boxes and captions (name, emoji, confidence) onto RGB frames.

    Captions are rendered with Pillow once per distinct text and pasted, so only the box outline
    and the caption's pixels change. ``emoji_font``: a font file, None to look for one, or False
    for text only; an unusable font falls back to text only.
    """

    def __init__(self, *, emoji_font: str | os.PathLike[str] | None | bool = None,
                 font_size: int | None = None) -> None:
        from PIL import ImageFont

        self.font_size = font_size
        self._text_font_path = _text_font_path()
        self._fonts: dict[int, ImageFont.FreeTypeFont | ImageFont.ImageFont] = {}
        self._emoji_font = None
        if emoji_font is not False:
            path = find_emoji_font() if emoji_font in (None, True) else str(emoji_font)
            self._emoji_font = self._load_emoji_font(path) if path else None
            if self._emoji_font is None:
                log.warning("no usable colour emoji font found: labels are drawn without emoji "
                            "(install fonts-noto-color-emoji or set EMOKERAS_EMOJI_FONT)")
        self._patch = functools.lru_cache(maxsize=512)(self._render_caption)

    @property
    def has_emoji(self) -> bool:
        return self._emoji_font is not None

    @staticmethod
    def _load_emoji_font(path: str):
        from PIL import ImageFont

        for size in (_EMOJI_STRIKE, 64):
            try:
                font = ImageFont.truetype(path, size)
                font.getbbox("\N{GRINNING FACE}")
                return font
            except (OSError, ValueError) as error:
                log.debug("emoji font %s at size %d: %s", path, size, error)
        return None

    def _font(self, size: int):
        from PIL import ImageFont

        if size not in self._fonts:
            font = None
            if self._text_font_path:
                with contextlib.suppress(OSError):
                    font = ImageFont.truetype(self._text_font_path, size)
            self._fonts[size] = font if font is not None else ImageFont.load_default(size)
        return self._fonts[size]

    def _emoji_image(self, emoji: str, height: int):
        """The emoji as an RGBA image ``height`` pixels tall, or None if it cannot be drawn."""
        from PIL import Image, ImageDraw

        font = self._emoji_font
        try:
            left, top, right, bottom = font.getbbox(emoji)
            if right <= left or bottom <= top:
                return None
            glyph = Image.new("RGBA", (right - left, bottom - top), (0, 0, 0, 0))
            ImageDraw.Draw(glyph).text((-left, -top), emoji, font=font, embedded_color=True)
        except (OSError, ValueError) as error:  # a font without colour glyphs, or no layout
            log.debug("cannot draw %r: %s", emoji, error)
            return None
        if glyph.getbbox() is None:
            return None
        width = max(1, round(glyph.width * height / glyph.height))
        return glyph.resize((width, height), Image.Resampling.LANCZOS)

    def _render_caption(self, text: str, emoji: str, colour: tuple[int, int, int],
                        size: int) -> np.ndarray:
        """The caption as an RGBA array: text (and emoji) in white on the label colour."""
        from PIL import Image, ImageDraw

        font = self._font(size)
        pad = max(2, size // 5)
        left, top, right, bottom = font.getbbox(text)
        text_height = max(size, bottom - top)
        glyph = self._emoji_image(emoji, text_height) if emoji and self._emoji_font else None
        gap = pad if glyph is not None else 0
        width = (right - left) + gap + (glyph.width if glyph is not None else 0) + 2 * pad
        height = text_height + 2 * pad
        patch = Image.new("RGBA", (width, height), (*colour, 255))
        draw = ImageDraw.Draw(patch)
        draw.text((pad - left, pad + (text_height - (bottom - top)) // 2 - top), text,
                  font=font, fill=(255, 255, 255, 255))
        if glyph is not None:
            patch.alpha_composite(glyph, (pad + (right - left) + gap, pad))
        return np.asarray(patch)

    def caption_size(self, frame_height: int) -> int:
        return self.font_size or max(14, round(frame_height / 24))

    def draw(self, image: np.ndarray, faces: Sequence[FaceLabel]) -> np.ndarray:
        """A copy of the RGB uint8 ``image`` with each face's box and caption drawn on it."""
        out = np.ascontiguousarray(image, dtype=np.uint8).copy()
        height, width = out.shape[:2]
        size = self.caption_size(height)
        thickness = max(2, round(height / 240))
        for face in faces:
            colour = _UNCERTAIN_COLOUR if face.uncertain else _PALETTE[
                face.label_index % len(_PALETTE)]
            box = face.box
            cv2.rectangle(out, (box.x, box.y), (box.x + box.width - 1, box.y + box.height - 1),
                          colour, thickness)
            patch = self._patch(face.text, face.emoji, colour, size)
            # above the box where there is room, else just inside its top edge
            y = box.y - patch.shape[0] if box.y - patch.shape[0] >= 0 else box.y
            _paste(out, patch, box.x, y)
        return out


def _paste(image: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    """Alpha-blend an RGBA ``patch`` onto ``image`` at (x, y), clipped to the image."""
    height, width = image.shape[:2]
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + patch.shape[1]), min(height, y + patch.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    part = patch[y0 - y : y1 - y, x0 - x : x1 - x]
    alpha = part[..., 3:4].astype(np.float32) / 255.0
    region = image[y0:y1, x0:x1].astype(np.float32)
    image[y0:y1, x0:x1] = np.round(part[..., :3] * alpha + region * (1 - alpha)).astype(np.uint8)


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
    detector: FaceDetector | None = None,
    annotator: Annotator | None = None,
    on_frame: Callable[[Frame, list[FaceLabel]], None] | None = None,
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
    """
    from emokeras.inference import CROP_MARGIN, crop_size_for, predict_frames, resolve_model

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
    crop_size = crop_size_for(emotion)
    detector = detector or default_detector()
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
                                              margin=CROP_MARGIN, which="all")
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
