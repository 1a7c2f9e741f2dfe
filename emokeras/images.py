"""Reading image files: one reader, so every loader reports bad files the same way."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from emokeras.errors import ImageReadError, ImageTooLargeError
from emokeras.fileio import missing_reason

#: Images whose header declares more pixels than this are refused before decoding (an 875 KB PNG
#: can declare 30000x30000 pixels and cost gigabytes to decode). 50 MP is above any camera photo
#: this library expects; pass ``max_pixels`` to read larger ones.
MAX_IMAGE_PIXELS = 50_000_000

# No image format stores a pixel in more than 8 bytes (16-bit RGBA): a file larger than that
# (plus room for metadata) cannot be an image under the limit, so it is refused unread.
_MAX_BYTES_PER_PIXEL = 8
_METADATA_BYTES = 16 * 2**20


def check_image_size(
    path: str | os.PathLike[str], max_pixels: int | None = None
) -> tuple[int, int] | None:
    """Raise ImageTooLargeError if the file's header declares more than ``max_pixels`` pixels.

    ``max_pixels`` defaults to :data:`MAX_IMAGE_PIXELS`. Returns the header's ``(width, height)``,
    or None for a format Pillow cannot read the header of (OpenCV then decodes it unchecked, up
    to its own limit of 2**30 pixels, and the decoded size is checked).
    """
    limit = MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    with warnings.catch_warnings():
        # Pillow's own limit warns past 89 MP: this header-only read applies ``limit`` instead.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as image:
                width, height = image.size
        except Image.DecompressionBombError as error:
            # Pillow refuses headers over twice its own limit without telling the width and
            # height; the pixel count is in its message ("Image size (N pixels) exceeds ...").
            found = re.search(r"\((\d+) pixels\)", str(error))
            if found and int(found.group(1)) > limit:
                raise ImageTooLargeError(path, int(found.group(1)), limit) from None
            return None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            return None  # not a header Pillow reads: OpenCV decides, and the result is checked
    if width * height > limit:
        raise ImageTooLargeError(path, width * height, limit, (width, height))
    return width, height


def load_image(
    path: str | os.PathLike[str],
    size: int | tuple[int, int] | None = None,
    grayscale: bool = False,
    *,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3), or gray (H, W) with ``grayscale=True``.

    Grayscale files read in colour get three equal channels. ``size`` (an int for a square, or
    ``(height, width)``) resizes the result. Images of more than ``max_pixels`` pixels (default
    :data:`MAX_IMAGE_PIXELS`) raise ImageTooLargeError, from the header, before decoding.
    """
    file = Path(path)
    if not file.exists():
        raise ImageReadError(path, missing_reason(file))
    if file.is_dir():
        raise ImageReadError(path, "is a directory, not an image file")
    limit = MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    check_image_size(file, limit)
    try:
        if file.stat().st_size > limit * _MAX_BYTES_PER_PIXEL + _METADATA_BYTES:
            raise ImageReadError(
                path, f"the file is {file.stat().st_size} bytes, more than any image of at most "
                f"{limit} pixels takes",
            )
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
    if image.shape[0] * image.shape[1] > limit:  # a format whose header Pillow could not read
        raise ImageTooLargeError(
            path, image.shape[0] * image.shape[1], limit, (image.shape[1], image.shape[0])
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
