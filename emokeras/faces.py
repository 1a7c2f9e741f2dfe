"""Find faces in images and video frames and cut them out as square, upright crops.

The default detector is YuNet (OpenCV Zoo's small CNN, shipped as a package asset and run by
OpenCV's own ``cv2.FaceDetectorYN``): it finds turned and small faces, gives a confidence and five
landmarks per face, and costs less than the Haar cascade on an HD frame. ``HaarFaceDetector``
(OpenCV's frontal-face cascade) and ``MtcnnFaceDetector`` (the optional ``mtcnn`` package, which
imports TensorFlow only when created) remain choices; :data:`DETECTORS` and :func:`get_detector`
pick one by name. Every detector here gives the same answers from several threads at once as in
turn (each thread gets its own OpenCV object).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import cv2
import numpy as np

from emokeras.errors import ConfigError, EmokerasError, FaceDetectionError
from emokeras.video import Frame

logger = logging.getLogger(__name__)

Which = Literal["largest", "all"]
Pad = Literal["edge", "zero"]


#: Five (x, y) points in image pixels: right eye, left eye, nose tip, right and left mouth corner
#: (the person's right and left, so the right eye is the one on the image's left).
Landmarks = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class FaceBox:
    """A face's bounding box in pixels; ``confidence`` is 1.0 for detectors that give none.

    ``landmarks`` (YuNet, MTCNN) are five (x, y) points: right eye, left eye, nose tip, right and
    left mouth corner; None for detectors that give none (Haar).
    """

    x: int
    y: int
    width: int
    height: int
    confidence: float = 1.0
    landmarks: Landmarks | None = None

    def __post_init__(self) -> None:
        if self.width < 0 or self.height < 0:
            raise ValueError(f"a FaceBox needs width, height >= 0, got {self.width}x{self.height}")
        if self.landmarks is not None and len(self.landmarks) != 5:
            raise ValueError(f"a FaceBox needs five landmarks or None, got {len(self.landmarks)}")

    @property
    def area(self) -> int:
        return self.width * self.height

    @property
    def eye_angle(self) -> float | None:
        """The tilt of the line from the right eye to the left eye, in degrees (0: upright,
        positive: the left eye lower in the image); None without landmarks."""
        if self.landmarks is None:
            return None
        (rx, ry), (lx, ly) = self.landmarks[0], self.landmarks[1]
        return math.degrees(math.atan2(ly - ry, lx - rx))

    def clip(self, image_width: int, image_height: int) -> FaceBox:
        """The part of this box inside an image of the given size (zero-sized if none is)."""
        x0 = min(max(self.x, 0), image_width)
        y0 = min(max(self.y, 0), image_height)
        x1 = min(max(self.x + self.width, 0), image_width)
        y1 = min(max(self.y + self.height, 0), image_height)
        return FaceBox(x0, y0, x1 - x0, y1 - y0, self.confidence, self.landmarks)

    def mapped(self, scale: float, dx: float = 0.0, dy: float = 0.0) -> FaceBox:
        """This box (and landmarks) from a resized/offset image back into the original one:
        each coordinate divided by ``scale``, then shifted by (dx, dy)."""
        marks = None
        if self.landmarks is not None:
            marks = tuple((float(x / scale + dx), float(y / scale + dy)) for x, y in self.landmarks)
        return FaceBox(round(self.x / scale + dx), round(self.y / scale + dy),
                       round(self.width / scale), round(self.height / scale), self.confidence,
                       marks)


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
        # A CascadeClassifier is not safe to share between threads (4 threads on one gave
        # different boxes than in turn), so each thread loads its own; this one checks the file.
        self._local = _PerThread(self._load)

    def _load(self) -> cv2.CascadeClassifier:
        # load() returns False on some bad files and raises cv2.error on others.
        cascade = cv2.CascadeClassifier()
        try:
            loaded = Path(self.cascade_path).is_file() and cascade.load(self.cascade_path)
        except cv2.error as error:
            logger.debug("loading %s failed: %s", self.cascade_path, error)
            loaded = False
        if not loaded:
            raise EmokerasError(
                f"cannot load the Haar cascade {self.cascade_path!r}: missing or not a cascade "
                "file (does this OpenCV build ship its Haar cascades?)"
            )
        return cascade

    def window_variant(self) -> HaarFaceDetector:
        """The detector for a :class:`FaceTracker`'s search window: one that skips small faces.

        The tracked face fills about half the window, so the many small scales that a
        full-frame search must try are wasted work there.
        """
        return HaarFaceDetector(scale_factor=self.scale_factor, min_neighbors=self.min_neighbors,
                                min_size=0.3, max_side=None, cascade_path=self.cascade_path)

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Boxes of the frontal faces in ``image``, largest first."""
        _check_image(image)
        with _typed_cv2_errors("the Haar cascade", image):
            return self._detect(image)

    def _detect(self, image: np.ndarray) -> list[FaceBox]:
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
        found = self._local.get().detectMultiScale(
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


class YuNetFaceDetector:
    """YuNet (OpenCV Zoo, MIT licence), shipped inside the package and run by OpenCV.

    Gives each face a confidence and five landmarks (eyes, nose tip, mouth corners). Faces scoring
    below ``score_threshold`` are dropped; ``nms_threshold`` merges overlapping boxes. Images
    whose longer side exceeds ``max_side`` are shrunk to it for detection (None: never), which is
    several times faster on HD frames; boxes and landmarks are given in the original image's
    pixels. Any image size works (the network's input size is set per call), RGB or grayscale.
    """

    def __init__(
        self,
        *,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        top_k: int = 5000,
        max_side: int | None = 640,
        model_path: str | os.PathLike[str] | None = None,
    ) -> None:
        if not 0.0 <= score_threshold <= 1.0:
            raise ConfigError(f"score_threshold must be in [0, 1], got {score_threshold!r}")
        if not 0.0 < nms_threshold <= 1.0:
            raise ConfigError(f"nms_threshold must be in (0, 1], got {nms_threshold!r}")
        if top_k < 1:
            raise ConfigError(f"top_k must be >= 1, got {top_k!r}")
        if max_side is not None and max_side < 32:
            raise ConfigError(f"max_side must be None or >= 32 pixels, got {max_side!r}")
        if not hasattr(cv2, "FaceDetectorYN"):
            raise EmokerasError(f"YuNet needs OpenCV >= 4.5.4 (cv2.FaceDetectorYN); this is "
                                f"OpenCV {cv2.__version__}: upgrade it or use the haar detector")
        self.model_path = str(model_path) if model_path is not None else str(YUNET_MODEL)
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.top_k = int(top_k)
        self.max_side = max_side
        # A FaceDetectorYN keeps its input size and buffers between calls, so threads must not
        # share one: each thread creates its own (cheap: the ONNX file is 230 KB). Creating the
        # first here makes a missing or broken model file fail at once.
        self._local = _PerThread(self._load)

    def _load(self):
        if not Path(self.model_path).is_file():
            raise EmokerasError(f"the YuNet model {self.model_path!r} is missing (a broken "
                                "emokeras install?)")
        try:
            return cv2.FaceDetectorYN.create(self.model_path, "", (320, 320),
                                             self.score_threshold, self.nms_threshold, self.top_k)
        except cv2.error as error:
            raise EmokerasError(f"cannot load the YuNet model {self.model_path!r}: "
                                f"{str(error).strip()}") from error

    def window_variant(self) -> YuNetFaceDetector:
        """The detector for a :class:`FaceTracker`'s search window, already shrunk: no resize."""
        return YuNetFaceDetector(score_threshold=self.score_threshold,
                                 nms_threshold=self.nms_threshold, top_k=self.top_k,
                                 max_side=None, model_path=self.model_path)

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Boxes (with confidence and landmarks) of the faces in ``image``, largest first."""
        _check_image(image)
        with _typed_cv2_errors("YuNet", image):
            return self._detect(image)

    def _detect(self, image: np.ndarray) -> list[FaceBox]:
        # YuNet was trained on BGR images; a gray image becomes three equal channels
        code = cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_RGB2BGR
        bgr = cv2.cvtColor(image, code)
        height, width = bgr.shape[:2]
        scale = 1.0
        if self.max_side is not None and max(height, width) > self.max_side:
            scale = self.max_side / max(height, width)
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
        net = self._local.get()
        net.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, found = net.detect(bgr)
        boxes = []
        for row in () if found is None else found:
            # on degenerate inputs (a blank strip a few pixels wide) the network has been seen
            # to return rows of inf or NaN: no face there
            if not np.isfinite(row[:15]).all():
                continue
            x, y, w, h = (float(v) for v in row[:4])
            marks = tuple((float(row[4 + 2 * i]), float(row[5 + 2 * i])) for i in range(5))
            # mapped() rounds: rounding here first would put an error of up to 0.5 / scale
            # pixels (1.5 on a 1080p frame) into the box
            box = FaceBox(x, y, max(0.0, w), max(0.0, h), float(row[14]),  # type: ignore[arg-type]
                          marks).mapped(scale).clip(width, height)
            if box.area > 0:
                boxes.append(box)
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
        # one TensorFlow model shared by all threads: a lock keeps its calls one at a time
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Boxes of the faces in ``image`` with confidence >= ``min_confidence``, largest first."""
        _check_image(image)
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)  # MTCNN wants three channels
        height, width = image.shape[:2]
        boxes = []
        with self._lock:
            found = self._mtcnn.detect_faces(image)
        for face in found:
            confidence = float(face["confidence"])
            if confidence < self.min_confidence:
                continue
            x, y, w, h = (round(float(v)) for v in face["box"])
            box = FaceBox(x, y, max(0, w), max(0, h), confidence,
                          _mtcnn_landmarks(face.get("keypoints"))).clip(width, height)
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
                      round(found.y + (found.height - height) / 2), width, height, found.confidence,
                      found.landmarks)
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
        return found[0].mapped(scale, window.x, window.y)


def _window_detector(detector: FaceDetector) -> FaceDetector:
    """The detector for a tracker's search window: the detector's own ``window_variant()`` if it
    has one (Haar: skip small faces; YuNet: no downscaling), else the detector itself."""
    variant = getattr(detector, "window_variant", None)
    return variant() if callable(variant) else detector


def crop_face(
    image: np.ndarray,
    box: FaceBox,
    *,
    size: int | None = 224,
    margin: float = 0.2,
    pad: Pad = "edge",
    align: bool = True,
    angle: float | None = None,
    shift_y: float = 0.0,
) -> np.ndarray:
    """Cut a square around ``box``, ``margin`` (a fraction of the box) wider on each side.

    The square is centred on the box, moved down by ``shift_y`` box heights (negative: up; along
    the face's own vertical when it is turned upright), so a model sees faces framed as its
    training faces were (``emokeras.model.crop_framing_for``). Where it leaves the image it is
    padded (``pad``: repeat the edge pixels, or zeros) rather than moved in. It is resized to
    ``size`` x ``size`` (None: left as cut). The channels are kept: RGB in, RGB out; gray in,
    gray out.

    With ``align`` (the default) and a box with landmarks, the square is turned about the box's
    centre so the eyes lie level: the face comes out upright, as the training faces are, framed
    the same size. A box without landmarks (Haar), or tilted less than
    :data:`ALIGN_MIN_DEGREES`, is cut unrotated. ``angle`` overrides the tilt to undo (degrees,
    as :attr:`FaceBox.eye_angle`), e.g. the refined one of :func:`face_angle`.
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
    if align and angle is None:
        angle = box.eye_angle
    if align and angle is not None and abs(angle) >= ALIGN_MIN_DEGREES:
        # a big face cut for a small model input: warp at twice the output size (not the face's
        # full size, several times the work), then area-average down as an unrotated crop is
        out = side if size is None or side <= 2 * size else 2 * size
        return _resized(_rotated_square(image, box, side, angle, pad, out,
                                        shift=shift_y * box.height), size)
    x0 = round(box.x + box.width / 2 - side / 2)
    y0 = round(box.y + box.height / 2 + shift_y * box.height - side / 2)
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
    return _resized(inside, size)


def _resized(square: np.ndarray, size: int | None) -> np.ndarray:
    side = square.shape[0]
    if size is None or side == size:
        return square.copy()  # never a view into the caller's image
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    resized = cv2.resize(square, (size, size), interpolation=interpolation)
    if resized.ndim < square.ndim:  # cv2.resize drops a trailing single channel
        resized = resized[..., np.newaxis]
    return resized


def _rotated_square(image: np.ndarray, box: FaceBox, side: int, angle: float,
                    pad: Pad, out: int | None = None, shift: float = 0.0) -> np.ndarray:
    """The ``side`` x ``side`` square centred on ``box``, turned by ``angle`` degrees (counter-
    clockwise as seen) so a face whose eye line tilts by ``angle`` comes out level; scaled to
    ``out`` x ``out`` pixels (default ``side``). ``shift``: the square's centre ``shift`` pixels
    below the box's centre, down the upright face."""
    out = side if out is None else out
    centre = (box.x + box.width / 2, box.y + box.height / 2)
    matrix = cv2.getRotationMatrix2D(centre, angle, out / side)
    # then move the box's centre to the square's centre: one warp cuts and turns together
    matrix[0, 2] += out / 2 - centre[0]
    # the shift is taken after the turn, so it runs down the upright face, not the image
    matrix[1, 2] += out / 2 - centre[1] - shift * out / side
    border = cv2.BORDER_REPLICATE if pad == "edge" else cv2.BORDER_CONSTANT
    squeeze = image.ndim == 3 and image.shape[2] == 1
    source = image[..., 0] if squeeze else image
    square = cv2.warpAffine(np.ascontiguousarray(source), matrix, (out, out),
                            flags=cv2.INTER_LINEAR, borderMode=border, borderValue=0)
    return square[..., np.newaxis] if squeeze else square


def face_angle(image: np.ndarray, box: FaceBox, detector: FaceDetector | None = None,
               *, margin: float = 0.2) -> float | None:
    """The tilt of the face in ``box`` (degrees, as :attr:`FaceBox.eye_angle`), refined with
    ``detector`` when the face is tilted by :data:`REFINE_MIN_DEGREES` or more; None without
    landmarks.

    YuNet's landmarks are pulled towards an upright face: on the fixture portraits turned by 20
    degrees its eye line says 13 to 19. So a tilted face is turned by that first estimate, found
    again in the turned square (a small image: a few ms), and the tilt still left is added.
    """
    angle = box.eye_angle
    if angle is None or detector is None or abs(angle) < REFINE_MIN_DEGREES:
        return angle
    side = max(1, round(max(box.width, box.height) * (1 + 2 * margin)))
    square = _rotated_square(image, box, side, angle, "edge", min(side, _REFINE_SIDE))
    centre = square.shape[0] / 2
    found = [b for b in detector.detect(np.ascontiguousarray(square))
             if b.eye_angle is not None and b.x <= centre <= b.x + b.width
             and b.y <= centre <= b.y + b.height]
    if not found:
        return angle
    return angle + _sorted_boxes(found)[0].eye_angle


def detect_faces_and_crop(
    image: np.ndarray,
    detector: FaceDetector | None = None,
    *,
    size: int | None = 224,
    margin: float = 0.2,
    which: Which = "largest",
    align: bool = True,
    shift_y: float = 0.0,
) -> list[FaceCrop]:
    """Detect faces and crop them: the largest one, or all largest first; [] when none.

    ``detector``: a :class:`FaceDetector`, a name from :data:`DETECTORS`, or None (YuNet).
    ``align``: turn each face upright from its eye landmarks; ``margin`` and ``shift_y``: how
    to frame it (see :func:`crop_face`).
    """
    _check_which(which)
    detector = get_detector(detector)
    boxes = _sorted_boxes(detector.detect(image))
    if which == "largest":
        boxes = boxes[:1]
    if not align:
        return [FaceCrop(box, crop_face(image, box, size=size, margin=margin, align=False,
                                        shift_y=shift_y))
                for box in boxes]
    # a tracker keeps state: a tilted face is found again with the detector it searches with
    refiner = detector.window_detector if isinstance(detector, FaceTracker) else detector
    return [FaceCrop(box, crop_face(image, box, size=size, margin=margin, shift_y=shift_y,
                                    angle=face_angle(image, box, refiner, margin=margin)))
            for box in boxes]


def iter_face_crops(
    frames: Iterable[Frame],
    detector: FaceDetector | None = None,
    *,
    size: int | None = 224,
    margin: float = 0.2,
    which: Which = "largest",
    align: bool = True,
    shift_y: float = 0.0,
) -> Iterator[FrameFaces]:
    """Yield one :class:`FrameFaces` per frame, with empty ``crops`` where no face is found."""
    _check_which(which)  # here, not at the first next(), so a bad call fails at once
    return _face_crops(frames, get_detector(detector), size, margin, which, align, shift_y)


def _face_crops(
    frames: Iterable[Frame],
    detector: FaceDetector,
    size: int | None,
    margin: float,
    which: Which,
    align: bool,
    shift_y: float = 0.0,
) -> Iterator[FrameFaces]:
    for frame in frames:
        crops = detect_faces_and_crop(frame.image, detector, size=size, margin=margin, which=which,
                                      align=align, shift_y=shift_y)
        logger.debug("frame %d (%.3f s): %d face(s)", frame.index, frame.timestamp, len(crops))
        yield FrameFaces(frame.index, frame.timestamp, tuple(crops))


#: The detectors by name: each factory takes a score threshold (None: the detector's default).
DETECTORS: dict[str, Callable[[float | None], FaceDetector]] = {
    "yunet": lambda threshold: YuNetFaceDetector(
        **({} if threshold is None else {"score_threshold": threshold})),
    "haar": lambda threshold: HaarFaceDetector(**_haar_threshold(threshold)),
    "mtcnn": lambda threshold: MtcnnFaceDetector(
        **({} if threshold is None else {"min_confidence": threshold})),
}
#: The detector used where none is named.
DEFAULT_DETECTOR = "yunet"


def _haar_threshold(threshold: float | None) -> dict:
    # the cascade gives no score: its nearest knob is how many overlapping hits make a face
    if threshold is None:
        return {}
    if float(threshold) != int(threshold) or threshold < 1:
        raise ConfigError(f"the haar detector gives no score; its threshold is min_neighbors, "
                          f"an integer >= 1 (default 5), got {threshold!r}")
    return {"min_neighbors": int(threshold)}


@functools.cache
def _named_detector(name: str, threshold: float | None) -> FaceDetector:
    return DETECTORS[name](threshold)


def get_detector(detector: str | FaceDetector | None = None, *,
                 threshold: float | None = None) -> FaceDetector:
    """A face detector from a name in :data:`DETECTORS` (``"yunet"``, ``"haar"``, ``"mtcnn"``),
    a detector (returned as is), or None (the default, YuNet).

    ``threshold`` is the score below which a face is dropped (YuNet's score, MTCNN's confidence,
    both in [0, 1]; Haar's min_neighbors, an integer). Named detectors are created once per
    (name, threshold) and shared: they are safe to use from several threads.
    """
    if detector is None:
        detector = DEFAULT_DETECTOR
    if isinstance(detector, str):
        name = detector.strip().lower()
        if name not in DETECTORS:
            raise ConfigError(f"unknown face detector {detector!r}; choose from "
                              f"{sorted(DETECTORS)}")
        return _named_detector(name, None if threshold is None else float(threshold))
    if not isinstance(detector, FaceDetector):
        raise ConfigError(f"detector must be a name from {sorted(DETECTORS)} or a FaceDetector "
                          f"(with a detect(image) method), got {type(detector).__name__}")
    if threshold is not None:
        raise ConfigError("a threshold applies to a detector given by name; set it on the "
                          f"{type(detector).__name__} itself")
    return detector


def default_detector() -> FaceDetector:
    """The shared default detector (a :class:`YuNetFaceDetector`), created on first use."""
    return get_detector(None)


#: The packaged YuNet model (see assets/yunet/NOTICE.md for its licence and source).
YUNET_MODEL = (Path(__file__).resolve().parent / "assets" / "yunet"
               / "face_detection_yunet_2026may.onnx")
#: Faces tilted less than this (degrees) are cut without rotating: no resampling for nothing.
ALIGN_MIN_DEGREES = 1.0
#: Faces tilted at least this much (degrees) get a second look to measure the tilt (face_angle).
REFINE_MIN_DEGREES = 5.0
# the side the second look searches at: the face fills most of it, so small is enough
_REFINE_SIDE = 160


class _PerThread:
    """One object per thread, made by ``factory`` on a thread's first :meth:`get`.

    OpenCV's detectors keep per-call state, so sharing one between threads gives wrong answers;
    one each costs a few KB (Haar) or 230 KB (YuNet) and no waiting, where a lock serialises.
    The creating thread's object is made at once, so a bad file fails in the constructor.
    """

    def __init__(self, factory: Callable[[], object]) -> None:
        self._factory = factory
        self._local = threading.local()
        self._local.value = factory()

    def get(self):
        value = getattr(self._local, "value", None)
        if value is None:
            value = self._local.value = self._factory()
        return value


class _typed_cv2_errors:
    """Turn a cv2.error inside the block into a FaceDetectionError naming the image's shape."""

    def __init__(self, what: str, image: np.ndarray) -> None:
        self.what, self.shape = what, image.shape

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, tb) -> bool:
        if kind is not None and issubclass(kind, cv2.error):
            raise FaceDetectionError(f"{self.what} failed on an image of shape {self.shape}: "
                                     f"{str(error).strip()}") from error
        return False


def _mtcnn_landmarks(points: dict | None) -> Landmarks | None:
    """MTCNN's keypoints in YuNet's order (the eye on the image's left first)."""
    names = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
    if not points or any(name not in points for name in names):
        return None
    return tuple((float(points[n][0]), float(points[n][1])) for n in names)


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
