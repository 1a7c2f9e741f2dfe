"""load_image: the one image reader."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import IMAGES, REPO_ROOT, benchmark_module

from emokeras.errors import ImageReadError, ImageTooLargeError
from emokeras.images import MAX_IMAGE_PIXELS, load_image


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


def test_a_30000x30000_png_is_refused_from_its_header_in_little_memory(tmp_path):
    # issue 16: an 875 KB PNG declaring 900 MP cost predict_image 6 GB and 28 s to decode
    bomb = tmp_path / "bomb.png"
    benchmark_module("faults").write_huge_png(bomb, 30000, 30000)
    assert bomb.stat().st_size < 2_000_000
    script = (
        "import resource, sys, time\n"
        "from emokeras.images import load_image\n"
        "from emokeras.errors import ImageTooLargeError\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "start = time.monotonic()\n"
        "try:\n"
        "    load_image(sys.argv[1])\n"
        "except ImageTooLargeError as error:\n"
        "    print(error.pixels, error.limit)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(after - before, time.monotonic() - start)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(bomb)], capture_output=True,
                          text=True, cwd=REPO_ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    refused, cost = done.stdout.splitlines()[-2:]
    assert refused == f"900000000 {MAX_IMAGE_PIXELS}"
    grown_kib, seconds = cost.split()
    assert int(grown_kib) < 50 * 1024 and float(seconds) < 5  # no decode: no 900 MB buffer

    with pytest.raises(ImageTooLargeError) as caught:
        load_image(bomb)
    assert str(bomb) in str(caught.value) and "900000000 pixels" in str(caught.value)
    assert isinstance(caught.value, ImageReadError)


def test_the_pixel_limit_is_a_keyword_and_applies_to_every_format(tmp_path):
    photo = IMAGES / "single_face.jpg"  # 572x562 = 321464 pixels
    with pytest.raises(ImageTooLargeError, match="572x562 is 321464 pixels, over the limit of 10"):
        load_image(photo, max_pixels=1000)
    assert load_image(photo, max_pixels=321464).shape == (562, 572, 3)
    # a format whose header Pillow does not read (OpenEXR-less: a PFM) is checked once decoded
    pfm = tmp_path / "image.pfm"
    assert cv2.imwrite(str(pfm), np.zeros((40, 50, 3), np.float32))
    with pytest.raises(ImageTooLargeError, match="50x40"):
        load_image(pfm, max_pixels=1000)


def test_symlink_loops_and_broken_links_say_so(tmp_path):
    loop = tmp_path / "loop.jpg"
    loop.symlink_to(loop)
    _assert_image_error(loop, "symlink loop")
    broken = tmp_path / "broken.jpg"
    broken.symlink_to(tmp_path / "gone.jpg")
    _assert_image_error(broken, "broken symlink")
