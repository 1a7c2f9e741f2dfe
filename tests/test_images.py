"""load_image: the one image reader."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import IMAGES

from emokeras.errors import ImageReadError
from emokeras.images import load_image


def test_load_image_gives_rgb_uint8():
    image = load_image(IMAGES / "single_face.jpg")
    bgr = cv2.imread(str(IMAGES / "single_face.jpg"))

    assert image.shape == (562, 572, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, bgr[:, :, ::-1])


def test_load_image_makes_grayscale_files_three_channel(tmp_path):
    gray = cv2.imread(str(IMAGES / "justin.jpg"), cv2.IMREAD_GRAYSCALE)
    path = tmp_path / "gray.png"
    assert cv2.imwrite(str(path), gray)

    image = load_image(path)

    assert image.shape == (*gray.shape, 3)
    np.testing.assert_array_equal(image[..., 0], gray)
    np.testing.assert_array_equal(image[..., 2], gray)


def _assert_image_error(path, reason_part: str) -> None:
    with pytest.raises(ImageReadError) as caught:
        load_image(path)
    assert str(path) in str(caught.value)
    assert caught.value.path == str(path)
    assert reason_part in caught.value.reason


def test_load_image_errors_name_the_path_and_reason(tmp_path):
    _assert_image_error(tmp_path / "missing.jpg", "no such file")
    _assert_image_error(tmp_path, "directory")
    empty = tmp_path / "empty.jpg"
    empty.touch()
    _assert_image_error(empty, "empty")
    text = tmp_path / "text.jpg"
    text.write_text("this is not an image\n")
    _assert_image_error(text, "could not decode")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes((IMAGES / "justin.jpg").read_bytes()[:200])
    _assert_image_error(truncated, "could not decode")



def test_load_image_reads_gray_and_resizes():
    gray = load_image(IMAGES / "single_face.jpg", grayscale=True)
    assert gray.shape == (562, 572) and gray.dtype == np.uint8
    assert load_image(IMAGES / "single_face.jpg", size=48).shape == (48, 48, 3)
    assert load_image(IMAGES / "single_face.jpg", size=(30, 40), grayscale=True).shape == (30, 40)
    with pytest.raises(ValueError, match="size"):
        load_image(IMAGES / "single_face.jpg", size=0)
