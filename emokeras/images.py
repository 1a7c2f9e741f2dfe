"""Reading image files: one reader, so every loader reports bad files the same way."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from emokeras.errors import ImageReadError


def load_image(
    path: str | os.PathLike[str], size: int | tuple[int, int] | None = None, grayscale: bool = False
) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3), or gray (H, W) with ``grayscale=True``.

    Grayscale files read in colour get three equal channels. ``size`` (an int for a square, or
    ``(height, width)``) resizes the result.
    """
    file = Path(path)
    if not file.exists():
        raise ImageReadError(path, "no such file")
    if file.is_dir():
        raise ImageReadError(path, "is a directory, not an image file")
    try:
        # np.fromfile + imdecode rather than imread: it tells read errors from decode errors, and
        # non-ASCII paths work on every platform.
        data = np.fromfile(file, dtype=np.uint8)
    except OSError as error:
        raise ImageReadError(path, f"cannot read the file: {error.strerror or error}") from error
    if data.size == 0:
        raise ImageReadError(path, "the file is empty (0 bytes)")
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_COLOR)
    if image is None:
        raise ImageReadError(
            path, "OpenCV could not decode the file; is it an image (JPEG, PNG, BMP, ...)?"
        )
    if not grayscale:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image if size is None else resize(image, size)


def resize(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize to ``size`` (an int for a square, or ``(height, width)``)."""
    height, width = (size, size) if isinstance(size, int) else size
    if height <= 0 or width <= 0:
        raise ValueError(f"size must be positive, got {size}")
    if image.shape[:2] == (height, width):
        return image
    # INTER_AREA avoids aliasing when shrinking; INTER_LINEAR is smoother when enlarging.
    shrink = height < image.shape[0] or width < image.shape[1]
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)
