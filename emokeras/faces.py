"""Find faces in images and video frames and cut them out as square crops.

The default detector is OpenCV's Haar cascade (fast, frontal faces only). ``MtcnnFaceDetector``
also finds turned faces but needs the optional ``mtcnn`` package and TensorFlow, which it imports
only when created, so importing this module stays light.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import cv2
import numpy as np

from emokeras.errors import EmokerasError
from emokeras.video import Frame

logger = logging.getLogger(__name__)

Which = Literal["largest", "all"]
Pad = Literal["edge", "zero"]


@dataclass(frozen=True)
class FaceBox:
    """A face's bounding box in pixels; ``confidence`` is 1.0 for detectors that give none."""

    x: int
    y: int
    width: int
    height: int
    confidence: float = 1.0

    def __post_init__(self) -> None:
        if self.width < 0 or self.height < 0:
            raise ValueError(f"a FaceBox needs width, height >= 0, got {self.width}x{self.height}")

    @property
    def area(self) -> int:
        return self.width * self.height

    def clip(self, image_width: int, image_height: int) -> FaceBox:
        """The part of this box inside an image of the given size (zero-sized if none is)."""
        x0 = min(max(self.x, 0), image_width)
        y0 = min(max(self.y, 0), image_height)
        x1 = min(max(self.x + self.width, 0), image_width)
        y1 = min(max(self.y + self.height, 0), image_height)
        return FaceBox(x0, y0, x1 - x0, y1 - y0, self.confidence)


@dataclass(frozen=True)
class FaceCrop:
    """A detected face and its square crop (same channels as the source image)."""

    box: FaceBox
    image: np.ndarray


@dataclass(frozen=True)
class FrameFaces:
    """The face crops of one video frame; ``crops`` is empty when the frame has no face."""

    frame_index: int
    timestamp: float
    crops: tuple[FaceCrop, ...]


@runtime_checkable
class FaceDetector(Protocol):
    """Anything that finds faces in an RGB uint8 (HxWx3) or grayscale (HxW) image."""

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Boxes of the faces found, largest first; empty when there is none."""
        ...


class HaarFaceDetector:
    """OpenCV's frontal-face Haar cascade.

    ``min_size`` is the smallest face as a fraction of the image's shorter side. Images whose
    longer side exceeds ``max_side`` are shrunk to it for detection (None: never), which is
    faster on HD frames; boxes are given in the original image's pixels.
    """

    def __init__(
        self,
        *,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: float = 0.1,
        max_side: int | None = 640,
        cascade_path: str | os.PathLike[str] | None = None,
    ) -> None:
        if not scale_factor > 1.0:
            raise ValueError(f"scale_factor must be > 1, got {scale_factor!r}")
        if min_neighbors < 0:
            raise ValueError(f"min_neighbors must be >= 0, got {min_neighbors!r}")
        if not 0.0 < min_size <= 1.0:
            raise ValueError(f"min_size must be a fraction in (0, 1], got {min_size!r}")
        if max_side is not None and max_side < 32:
            raise ValueError(f"max_side must be None or >= 32 pixels, got {max_side!r}")
        if cascade_path is None:
            # Some OpenCV builds (e.g. OpenCV 5 without the contrib data) have no cv2.data.
            folder = getattr(getattr(cv2, "data", None), "haarcascades", "")
            cascade_path = os.path.join(folder, "haarcascade_frontalface_default.xml")
        self.cascade_path = str(cascade_path)
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        self.max_side = max_side
        # load() returns False on some bad files and raises cv2.error on others.
        self._cascade = cv2.CascadeClassifier()
        try:
            loaded = Path(self.cascade_path).is_file() and self._cascade.load(self.cascade_path)
        except cv2.error as error:
            logger.debug("loading %s failed: %s", self.cascade_path, error)
            loaded = False
        if not loaded:
            raise EmokerasError(
                f"cannot load the Haar cascade {self.cascade_path!r}: missing or not a cascade "
                "file (does this OpenCV build ship its Haar cascades?)"
            )

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Boxes of the frontal faces in ``image``, largest first."""
        _check_image(image)
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        height, width = gray.shape
        scale = 1.0
        if self.max_side is not None and max(height, width) > self.max_side:
            scale = self.max_side / max(height, width)
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        # Equalizing makes the cascade less sensitive to exposure and contrast.
        gray = cv2.equalizeHist(gray)
        min_px = max(1, round(self.min_size * min(gray.shape)))
        found = self._cascade.detectMultiScale(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(min_px, min_px),
        )
        boxes = [
            FaceBox(round(x / scale), round(y / scale), round(w / scale), round(h / scale)).clip(
                width, height
            )
            for x, y, w, h in found
        ]
        return _sorted_boxes(boxes)


class MtcnnFaceDetector:
    """MTCNN from the ``mtcnn`` package (weights ship with it; runs on TensorFlow).

    Finds turned and partly hidden faces that the Haar cascade misses, at a few hundred
    milliseconds per image on a CPU. Faces below ``min_confidence`` are dropped.
    """

    def __init__(self, *, min_confidence: float = 0.9, device: str = "CPU:0") -> None:
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence!r}")
        try:
            from mtcnn import MTCNN  # imports TensorFlow, hence only here
        except ImportError as error:
            raise EmokerasError(
                f"MtcnnFaceDetector needs the mtcnn package ({error}): pip install emokeras[mtcnn]"
            ) from error
        self.min_confidence = min_confidence
        self._mtcnn = MTCNN(device=device)

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Boxes of the faces in ``image`` with confidence >= ``min_confidence``, largest first."""
        _check_image(image)
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)  # MTCNN wants three channels
        height, width = image.shape[:2]
        boxes = []
        for face in self._mtcnn.detect_faces(image):
            confidence = float(face["confidence"])
            if confidence < self.min_confidence:
                continue
            x, y, w, h = (round(float(v)) for v in face["box"])
            box = FaceBox(x, y, max(0, w), max(0, h), confidence).clip(width, height)
            if box.area > 0:
                boxes.append(box)
        return _sorted_boxes(boxes)


class FaceTracker:
    """Follows one person's face through a video, wrapping any :class:`FaceDetector`.

    A full-frame detection finds the largest face; on the next frames the wrapped detector only
    searches a window around the last box (``search_margin`` box sizes wider on each side),
    shrunk so its longer side is at most ``search_side`` pixels. That costs a fraction of a
    full-frame search on HD video, where detection otherwise dominates. The tracker falls back to
    the full frame when the window holds no face of about the last one's size (the person moved
    away, or the window found a false face), and every ``redetect_every`` frames, so a larger
    face entering the picture is picked up. It returns at most one box, and keeps state: use one
    tracker per video (or call :meth:`reset`).
    """

    def __init__(
        self,
        detector: FaceDetector,
        *,
        search_margin: float = 0.5,
        search_side: int = 160,
        redetect_every: int = 30,
    ) -> None:
        if search_margin < 0:
            raise ValueError(f"search_margin must be >= 0, got {search_margin!r}")
        if search_side < 32:
            raise ValueError(f"search_side must be >= 32 pixels, got {search_side!r}")
        if redetect_every < 1:
            raise ValueError(f"redetect_every must be >= 1, got {redetect_every!r}")
        self.detector = detector
        self.window_detector = _window_detector(detector)
        self.search_margin = search_margin
        self.search_side = search_side
        self.redetect_every = redetect_every
        self.reset()

    def reset(self) -> None:
        """Forget the last face: the next frame gets a full-frame detection."""
        self._last: FaceBox | None = None
        self._since_full = 0
        self._size_ratio = 1.0
        self.full_searches = 0
        self.window_searches = 0

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """The tracked face's box in ``image`` as a one-item list, or [] when there is none."""
        _check_image(image)
        if self._last is not None and self._since_full < self.redetect_every:
            box = self._search_window(image, self._last)
            if box is not None:
                self._last = box
                self._since_full += 1
                return [box]
        self.full_searches += 1
        boxes = _sorted_boxes(self.detector.detect(image))[:1]
        self._last = boxes[0] if boxes else None
        self._since_full = 0
        if boxes:
            self._calibrate(image, boxes[0])
        return boxes

    def _calibrate(self, image: np.ndarray, full: FaceBox) -> None:
        # The window search draws its boxes some percent larger or smaller than a full-frame
        # search does (other scales, other histogram). Measured on the same frame, the ratio
        # rescales later window boxes, so crops keep the framing the model was used with.
        self._size_ratio = 1.0
        found = self._window_box(image, full)
        if found is not None and found.width > 0:
            self._size_ratio = full.width / found.width

    def _search_window(self, image: np.ndarray, last: FaceBox) -> FaceBox | None:
        found = self._window_box(image, last)
        if found is None:
            return None
        ratio = self._size_ratio
        width, height = round(found.width * ratio), round(found.height * ratio)
        box = FaceBox(round(found.x + (found.width - width) / 2),
                      round(found.y + (found.height - height) / 2), width, height, found.confidence)
        # A face much smaller or larger than the last one is more likely a false detection
        # inside the window (an eye, a collar) than the same face: search the full frame.
        if not 0.6 <= box.width / max(last.width, 1) <= 1.6:
            return None
        return box.clip(image.shape[1], image.shape[0])

    def _window_box(self, image: np.ndarray, last: FaceBox) -> FaceBox | None:
        """The largest face the window detector finds around ``last``, in image pixels."""
        self.window_searches += 1
        height, width = image.shape[:2]
        pad_x = round(last.width * self.search_margin)
        pad_y = round(last.height * self.search_margin)
        window = FaceBox(last.x - pad_x, last.y - pad_y, last.width + 2 * pad_x,
                         last.height + 2 * pad_y).clip(width, height)
        if window.width < 8 or window.height < 8:
            return None
        patch = image[window.y : window.y + window.height, window.x : window.x + window.width]
        scale = min(1.0, self.search_side / max(window.width, window.height))
        if scale < 1.0:
            size = (max(1, round(window.width * scale)), max(1, round(window.height * scale)))
            patch = cv2.resize(patch, size, interpolation=cv2.INTER_AREA)
        found = _sorted_boxes(self.window_detector.detect(np.ascontiguousarray(patch)))
        if not found:
            return None
        box = found[0]
        return FaceBox(window.x + round(box.x / scale), window.y + round(box.y / scale),
                       round(box.width / scale), round(box.height / scale), box.confidence)


def _window_detector(detector: FaceDetector) -> FaceDetector:
    """The detector for a tracker's search window: for Haar, one that skips small faces."""
    if isinstance(detector, HaarFaceDetector):
        # The tracked face fills about half the window, so the many small scales that a
        # full-frame search must try are wasted work here.
        return HaarFaceDetector(scale_factor=detector.scale_factor,
                                min_neighbors=detector.min_neighbors, min_size=0.3,
                                max_side=None, cascade_path=detector.cascade_path)
    return detector


def crop_face(
    image: np.ndarray,
    box: FaceBox,
    *,
    size: int | None = 224,
    margin: float = 0.2,
    pad: Pad = "edge",
) -> np.ndarray:
    """Cut a square around ``box``, ``margin`` (a fraction of the box) wider on each side.

    The square is centred on the box, so where it leaves the image it is padded (``pad``:
    repeat the edge pixels, or zeros) rather than shifted. It is resized to ``size`` x ``size``
    (None: left as cut). The channels are kept: RGB in, RGB out; gray in, gray out.
    """
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
        raise ValueError("image must be a non-empty HxW or HxWxC array")
    if size is not None and size < 1:
        raise ValueError(f"size must be None or >= 1, got {size!r}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")
    if pad not in ("edge", "zero"):
        raise ValueError(f"pad must be 'edge' or 'zero', got {pad!r}")
    if box.width < 1 or box.height < 1:
        raise ValueError(f"cannot crop an empty box {box}")

    side = max(1, round(max(box.width, box.height) * (1 + 2 * margin)))
    x0 = round(box.x + box.width / 2 - side / 2)
    y0 = round(box.y + box.height / 2 - side / 2)
    height, width = image.shape[:2]
    # Cut the part of the square inside the image, then pad it back out to the full square.
    left, top = max(0, -x0), max(0, -y0)
    right, bottom = max(0, x0 + side - width), max(0, y0 + side - height)
    inside = image[y0 + top : y0 + side - bottom, x0 + left : x0 + side - right]
    if inside.size == 0:
        raise ValueError(f"box {box} lies outside the {width}x{height} image")
    if left or top or right or bottom:
        widths = [(top, bottom), (left, right)] + [(0, 0)] * (image.ndim - 2)
        if pad == "edge":
            inside = np.pad(inside, widths, mode="edge")
        else:
            inside = np.pad(inside, widths, mode="constant")
    if size is None or side == size:
        return inside.copy()  # never a view into the caller's image
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    resized = cv2.resize(inside, (size, size), interpolation=interpolation)
    if resized.ndim < inside.ndim:  # cv2.resize drops a trailing single channel
        resized = resized[..., np.newaxis]
    return resized


def detect_faces_and_crop(
    image: np.ndarray,
    detector: FaceDetector | None = None,
    *,
    size: int | None = 224,
    margin: float = 0.2,
    which: Which = "largest",
) -> list[FaceCrop]:
    """Detect faces and crop them: the largest one, or all largest first; [] when none."""
    _check_which(which)
    boxes = _sorted_boxes((detector if detector is not None else default_detector()).detect(image))
    if which == "largest":
        boxes = boxes[:1]
    return [FaceCrop(box, crop_face(image, box, size=size, margin=margin)) for box in boxes]


def iter_face_crops(
    frames: Iterable[Frame],
    detector: FaceDetector | None = None,
    *,
    size: int | None = 224,
    margin: float = 0.2,
    which: Which = "largest",
) -> Iterator[FrameFaces]:
    """Yield one :class:`FrameFaces` per frame, with empty ``crops`` where no face is found."""
    _check_which(which)  # here, not at the first next(), so a bad call fails at once
    if detector is None:
        detector = default_detector()
    return _face_crops(frames, detector, size, margin, which)


def _face_crops(
    frames: Iterable[Frame],
    detector: FaceDetector,
    size: int | None,
    margin: float,
    which: Which,
) -> Iterator[FrameFaces]:
    for frame in frames:
        crops = detect_faces_and_crop(frame.image, detector, size=size, margin=margin, which=which)
        logger.debug("frame %d (%.3f s): %d face(s)", frame.index, frame.timestamp, len(crops))
        yield FrameFaces(frame.index, frame.timestamp, tuple(crops))


@functools.cache
def default_detector() -> HaarFaceDetector:
    """The shared default detector (a HaarFaceDetector), created on first use."""
    return HaarFaceDetector()


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError("image must be a uint8 numpy array")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)) or image.size == 0:
        raise ValueError(f"image must be RGB (HxWx3) or grayscale (HxW), got shape {image.shape}")


def _check_which(which: str) -> None:
    if which not in ("largest", "all"):
        raise ValueError(f"which must be 'largest' or 'all', got {which!r}")


def _sorted_boxes(boxes: Iterable[FaceBox]) -> list[FaceBox]:
    return sorted(boxes, key=lambda box: box.area, reverse=True)
