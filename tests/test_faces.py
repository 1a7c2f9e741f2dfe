"""emokeras.faces on the real fixture photos and videos."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import IMAGES, RAVDESS_CLIPS, REPO_ROOT, VIDEOS

from emokeras.errors import ConfigError, EmokerasError
from emokeras.faces import (
    DETECTORS,
    YUNET_MODEL,
    FaceBox,
    FaceCrop,
    FaceDetector,
    FaceTracker,
    FrameFaces,
    HaarFaceDetector,
    MtcnnFaceDetector,
    YuNetFaceDetector,
    crop_face,
    default_detector,
    detect_faces_and_crop,
    get_detector,
    iter_face_crops,
)
from emokeras.images import load_image
from emokeras.video import iter_frames

ONE_FACE = ["single_face.jpg", "justin.jpg", "angry_f13.jpg", "happy_f15.jpg", "surprise_f1.jpg"]
#: People in multi_face.jpg, counted by eye (five friends, all facing the camera)
GROUP_FACES = 5


@pytest.fixture(scope="module")
def haar() -> HaarFaceDetector:
    return HaarFaceDetector()


def _iou(a: FaceBox, b: FaceBox) -> float:
    ix = max(0, min(a.x + a.width, b.x + b.width) - max(a.x, b.x))
    iy = max(0, min(a.y + a.height, b.y + b.height) - max(a.y, b.y))
    inter = ix * iy
    return inter / (a.area + b.area - inter)


def _inside(box: FaceBox, image: np.ndarray) -> bool:
    height, width = image.shape[:2]
    return (
        box.x >= 0
        and box.y >= 0
        and box.width > 0
        and box.height > 0
        and box.x + box.width <= width
        and box.y + box.height <= height
    )


# ---- FaceBox ----------------------------------------------------------------------------------


def test_face_box_area_and_clip():
    box = FaceBox(-10, 20, 50, 40, 0.95)

    assert box.area == 2000
    assert box.clip(30, 50) == FaceBox(0, 20, 30, 30, 0.95)
    assert FaceBox(5, 5, 10, 10).clip(100, 100) == FaceBox(5, 5, 10, 10)
    assert FaceBox(200, 200, 10, 10).clip(100, 100).area == 0
    with pytest.raises(AttributeError):
        box.x = 0  # type: ignore[misc]
    with pytest.raises(ValueError, match="width"):
        FaceBox(0, 0, -1, 5)


# ---- Haar -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ONE_FACE)
def test_haar_finds_exactly_one_face(haar, name):
    image = load_image(IMAGES / name)
    boxes = haar.detect(image)

    assert len(boxes) == 1
    (box,) = boxes
    assert _inside(box, image)
    assert box.confidence == 1.0
    # A portrait's face is a sizeable part of the picture.
    assert box.area > 0.1 * image.shape[0] * image.shape[1]


def test_haar_misses_the_three_quarter_view(haar):
    # disgust_m7.jpg is a three-quarter view: the frontal cascade finds nothing there (MTCNN
    # does, see test_mtcnn_finds_faces).
    assert haar.detect(load_image(IMAGES / "disgust_m7.jpg")) == []


def test_haar_finds_four_of_the_five_people_largest_first(haar):
    image = load_image(IMAGES / "multi_face.jpg")
    boxes = haar.detect(image)

    assert len(boxes) == 4
    assert all(_inside(box, image) for box in boxes)
    areas = [box.area for box in boxes]
    assert areas == sorted(areas, reverse=True)
    # Four different faces, not one face found four times.
    assert all(_iou(a, b) == 0 for i, a in enumerate(boxes) for b in boxes[i + 1 :])


@pytest.mark.parametrize("name", ["mountain.jpg", "cartoon.jpg"])
def test_haar_finds_no_face_where_there_is_none(haar, name):
    assert haar.detect(load_image(IMAGES / name)) == []


def test_haar_accepts_grayscale_and_gives_the_same_box(haar):
    image = load_image(IMAGES / "justin.jpg")
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)

    assert haar.detect(gray) == haar.detect(image)


def test_haar_downscale_finds_the_same_face_as_full_resolution():
    frame = next(iter_frames(RAVDESS_CLIPS / "actor01_sample_02.mp4", start=1.0))
    assert frame.image.shape == (720, 1280, 3)

    full = HaarFaceDetector(max_side=None).detect(frame.image)
    small = HaarFaceDetector(max_side=640).detect(frame.image)

    assert len(full) >= 1 and len(small) >= 1
    assert _iou(full[0], small[0]) > 0.7
    assert _inside(small[0], frame.image)


def test_haar_rejects_a_bad_cascade_file_naming_it(tmp_path):
    bogus = tmp_path / "not_a_cascade.xml"
    bogus.write_text("<opencv_storage></opencv_storage>")

    for path in (bogus, tmp_path / "missing.xml"):
        with pytest.raises(EmokerasError, match="cannot load the Haar cascade") as caught:
            HaarFaceDetector(cascade_path=path)
        assert str(path) in str(caught.value)


def test_haar_rejects_bad_parameters_and_images(haar):
    with pytest.raises(ValueError, match="scale_factor"):
        HaarFaceDetector(scale_factor=1.0)
    with pytest.raises(ValueError, match="min_size"):
        HaarFaceDetector(min_size=0)
    with pytest.raises(ValueError, match="uint8"):
        haar.detect(np.zeros((50, 50, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        haar.detect(np.zeros((50, 50, 4), np.uint8))


def test_detectors_satisfy_the_protocol(haar):
    assert isinstance(haar, FaceDetector)
    assert default_detector() is default_detector()


# ---- crop_face --------------------------------------------------------------------------------


def test_crop_face_shapes_for_rgb_and_gray(haar):
    image = load_image(IMAGES / "single_face.jpg")
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    (box,) = haar.detect(image)

    assert crop_face(image, box).shape == (224, 224, 3)
    assert crop_face(gray, box, size=48).shape == (48, 48)
    assert crop_face(image, box, size=640).shape == (640, 640, 3)  # enlarging works too
    assert crop_face(gray[..., np.newaxis], box, size=64).shape == (64, 64, 1)
    unresized = crop_face(image, box, size=None, margin=0.2)
    side = round(max(box.width, box.height) * 1.4)
    assert unresized.shape == (side, side, 3)
    assert unresized.dtype == np.uint8
    # The unresized crop is a copy: writing to it leaves the source alone.
    unresized[:] = 0
    assert image.any()


def test_crop_is_centred_on_the_face(haar):
    image = load_image(IMAGES / "single_face.jpg")
    (box,) = haar.detect(image)
    crop = crop_face(image, box, size=None, margin=0.0)

    np.testing.assert_array_equal(
        crop, image[box.y : box.y + box.height, box.x : box.x + box.width]
    )
    # With a margin, Haar finds the face again in the crop, in its middle.
    crop = crop_face(image, box, size=224, margin=0.25)
    (again,) = haar.detect(crop)
    centre_x, centre_y = again.x + again.width / 2, again.y + again.height / 2
    assert abs(centre_x - 112) < 224 * 0.1 and abs(centre_y - 112) < 224 * 0.1


def test_a_box_at_the_border_gives_a_full_centred_square(haar):
    image = load_image(IMAGES / "single_face.jpg")
    (box,) = haar.detect(image)
    # Cut the photo through the middle of the face so the face touches the left border.
    cut = np.ascontiguousarray(image[:, box.x + box.width // 2 :])
    border_box = FaceBox(0, box.y, box.width // 2, box.height)

    for pad in ("edge", "zero"):
        crop = crop_face(cut, border_box, size=100, margin=0.2, pad=pad)
        assert crop.shape == (100, 100, 3)
    # Zero padding: the part of the square left of the image is black; the rest is the photo.
    crop = crop_face(cut, border_box, size=None, margin=0.2, pad="zero")
    side = crop.shape[0]
    assert side == round(max(border_box.width, border_box.height) * 1.4)
    left_pad = -round(border_box.width / 2 - side / 2)
    assert not crop[:, :left_pad].any()
    assert crop[:, left_pad:].any()


def test_crop_face_rejects_bad_arguments():
    image = np.zeros((100, 100, 3), np.uint8)
    with pytest.raises(ValueError, match="outside"):
        crop_face(image, FaceBox(500, 500, 10, 10))
    with pytest.raises(ValueError, match="empty box"):
        crop_face(image, FaceBox(10, 10, 0, 10))
    with pytest.raises(ValueError, match="margin"):
        crop_face(image, FaceBox(10, 10, 20, 20), margin=-0.1)
    with pytest.raises(ValueError, match="size"):
        crop_face(image, FaceBox(10, 10, 20, 20), size=0)


# ---- detect_faces_and_crop --------------------------------------------------------------------


def test_detect_and_crop_all_five_faces_of_the_group():
    image = load_image(IMAGES / "multi_face.jpg")

    crops = detect_faces_and_crop(image, which="all", size=96)  # the default detector: YuNet
    largest = detect_faces_and_crop(image, size=96)

    assert len(crops) == GROUP_FACES
    assert all(isinstance(c, FaceCrop) and c.image.shape == (96, 96, 3) for c in crops)
    assert len(largest) == 1
    assert largest[0].box == max((c.box for c in crops), key=lambda b: b.area)
    np.testing.assert_array_equal(largest[0].image, crops[0].image)


def test_detect_and_crop_returns_nothing_without_a_face(haar):
    assert detect_faces_and_crop(load_image(IMAGES / "mountain.jpg"), haar) == []


def test_detect_and_crop_rejects_an_unknown_which():
    with pytest.raises(ValueError, match="which"):
        detect_faces_and_crop(np.zeros((10, 10, 3), np.uint8), which="biggest")  # type: ignore[arg-type]


# ---- video ------------------------------------------------------------------------------------


def test_iter_face_crops_on_a_video_with_no_face(haar):
    items = list(iter_face_crops(iter_frames(VIDEOS / "no_face.mp4", max_frames=10), haar))

    assert len(items) == 10
    assert [item.frame_index for item in items] == list(range(10))
    assert all(isinstance(item, FrameFaces) and item.crops == () for item in items)


def test_iter_face_crops_finds_the_face_in_most_frames(haar):
    items = list(iter_face_crops(iter_frames(VIDEOS / "single_face.mp4", step=2), haar, size=64))

    assert [item.frame_index for item in items] == list(range(0, 72, 2))
    with_face = [item for item in items if item.crops]
    assert len(with_face) >= 0.9 * len(items)
    for item in with_face:
        (crop,) = item.crops
        assert crop.image.shape == (64, 64, 3)
    assert items[3].timestamp == pytest.approx(6 / 30.0)


def test_iter_face_crops_checks_which_at_call_time():
    with pytest.raises(ValueError, match="which"):
        iter_face_crops([], which="none")  # type: ignore[arg-type]


# ---- MTCNN ------------------------------------------------------------------------------------


# ---- FaceTracker ------------------------------------------------------------------------------


def test_tracker_follows_the_face_like_full_frame_detection(haar):
    frames = [frame.image for frame in iter_frames(RAVDESS_CLIPS / "actor02_sample_04.mp4", step=1)]
    tracker = FaceTracker(haar, redetect_every=30)
    tracked = [tracker.detect(image) for image in frames]
    full = [haar.detect(image)[:1] for image in frames]
    assert all(len(boxes) == 1 for boxes in tracked) and all(full)
    # Most frames are searched in a window only; the full frame every 30 frames.
    assert tracker.full_searches == -(-len(frames) // 31)
    ious = [_iou(a[0], b[0]) for a, b in zip(full, tracked, strict=True)]
    widths = [b[0].width / a[0].width for a, b in zip(full, tracked, strict=True)]
    assert np.mean(ious) > 0.75 and min(ious) > 0.5
    assert 0.95 < np.mean(widths) < 1.05  # calibrated to the full-frame detector's framing


def test_tracker_falls_back_to_the_full_frame_when_the_face_moves_away(haar):
    face = load_image(IMAGES / "single_face.jpg")
    tracker = FaceTracker(haar)
    first = tracker.detect(face)[0]
    moved = np.roll(face, (face.shape[0] // 2, face.shape[1] // 2), axis=(0, 1))
    box = tracker.detect(moved)[0]
    assert tracker.full_searches == 2
    assert _iou(box, haar.detect(moved)[0]) > 0.9 and _iou(box, first) < 0.2
    assert tracker.detect(np.zeros_like(face)) == []
    tracker.reset()
    assert tracker.full_searches == 0 and len(tracker.detect(face)) == 1


def test_tracker_rejects_bad_parameters(haar):
    for bad in ({"search_margin": -1}, {"search_side": 8}, {"redetect_every": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            FaceTracker(haar, **bad)
    assert isinstance(FaceTracker(haar), FaceDetector)


def test_mtcnn_finds_faces():
    detector = MtcnnFaceDetector()  # weights ship inside the mtcnn package; no download
    image = load_image(IMAGES / "single_face.jpg")

    (box,) = detector.detect(image)
    assert box.confidence > 0.9
    assert _inside(box, image)
    # its five landmarks come in YuNet's order: the eye on the image's left first
    (right_eye, left_eye, _, right_mouth, left_mouth) = box.landmarks
    assert right_eye[0] < left_eye[0] and right_mouth[0] < left_mouth[0]
    assert abs(box.eye_angle) < 10
    # It agrees with Haar on where the face is (MTCNN's boxes are taller and narrower).
    (haar_box,) = HaarFaceDetector().detect(image)
    assert _iou(box, haar_box) > 0.4
    # It also finds the three-quarter view Haar misses, and grayscale input works.
    gray = cv2.cvtColor(load_image(IMAGES / "disgust_m7.jpg"), cv2.COLOR_RGB2GRAY)
    assert len(detector.detect(gray)) == 1
    assert detector.detect(load_image(IMAGES / "cartoon.jpg")) == []


def test_importing_faces_does_not_import_tensorflow():
    code = "import sys, emokeras.faces; print('tensorflow' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


# ---- YuNet (the default) ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def yunet() -> YuNetFaceDetector:
    return YuNetFaceDetector()


def test_yunet_is_the_default_and_ships_inside_the_package():
    assert isinstance(default_detector(), YuNetFaceDetector)
    assert YUNET_MODEL.is_file() and YUNET_MODEL.parent.name == "yunet"
    assert (YUNET_MODEL.parent / "NOTICE.md").read_text().count("MIT") >= 1


@pytest.mark.parametrize("name", [*ONE_FACE, "disgust_m7.jpg"])
def test_yunet_finds_exactly_one_face_with_landmarks_inside_it(yunet, name):
    image = load_image(IMAGES / name)
    (box,) = yunet.detect(image)  # the three-quarter view too, which Haar misses

    assert _inside(box, image)
    assert 0.6 <= box.confidence <= 1.0
    assert len(box.landmarks) == 5
    for x, y in box.landmarks:
        assert box.x <= x <= box.x + box.width and box.y <= y <= box.y + box.height
    (right_eye, left_eye, nose, right_mouth, left_mouth) = box.landmarks
    # the person's right eye is on the image's left; eyes above the nose, the nose above the mouth
    assert right_eye[0] < left_eye[0] and right_mouth[0] < left_mouth[0]
    assert max(right_eye[1], left_eye[1]) < nose[1] < min(right_mouth[1], left_mouth[1])


def test_yunet_finds_every_face_of_the_group_and_nothing_else(yunet):
    image = load_image(IMAGES / "multi_face.jpg")
    boxes = yunet.detect(image)

    assert len(boxes) == GROUP_FACES
    assert [b.area for b in boxes] == sorted((b.area for b in boxes), reverse=True)
    assert all(_iou(a, b) == 0 for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    for box in boxes:
        assert all(box.x <= x <= box.x + box.width and box.y <= y <= box.y + box.height
                   for x, y in box.landmarks)


@pytest.mark.parametrize("name", ["mountain.jpg", "cartoon.jpg"])
def test_yunet_finds_no_face_where_there_is_none(yunet, name):
    assert yunet.detect(load_image(IMAGES / name)) == []


def test_yunet_finds_no_face_in_any_frame_of_the_no_face_video(yunet):
    frames = list(iter_frames(VIDEOS / "no_face.mp4", step=1))
    assert len(frames) > 10
    assert all(yunet.detect(frame.image) == [] for frame in frames)


def test_yunet_takes_gray_and_any_size_and_maps_boxes_back(yunet):
    image = load_image(IMAGES / "justin.jpg")
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    (rgb_box,) = yunet.detect(image)
    (gray_box,) = yunet.detect(gray)
    assert _iou(rgb_box, gray_box) > 0.9

    # a 720p frame shrunk to 640 for speed gives about the full-resolution box, in 720p pixels
    frame = next(iter_frames(RAVDESS_CLIPS / "actor01_sample_02.mp4", start=1.0)).image
    (small,) = YuNetFaceDetector(max_side=640).detect(frame)
    (full,) = YuNetFaceDetector(max_side=None).detect(frame)
    assert _iou(small, full) > 0.85 and _inside(small, frame)
    assert np.abs(np.subtract(small.landmarks, full.landmarks)).max() < 0.05 * full.width
    # sizes that are no multiple of anything, one after another on one detector
    for shape in ((31, 17, 3), (101, 333), (1, 1, 3), (2000, 48, 3)):
        assert yunet.detect(np.zeros(shape, np.uint8)) == []


def test_yunet_threshold_and_bad_settings(yunet):
    image = load_image(IMAGES / "multi_face.jpg")
    scores = sorted(b.confidence for b in yunet.detect(image))
    strict = YuNetFaceDetector(score_threshold=min(1.0, scores[0] + 1e-3)).detect(image)
    assert len(strict) == len(scores) - 1
    for bad in ({"score_threshold": 1.5}, {"nms_threshold": 0}, {"top_k": 0}, {"max_side": 8}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            YuNetFaceDetector(**bad)
    bogus = IMAGES / "mountain.jpg"
    with pytest.raises(EmokerasError, match="YuNet model") as caught:
        YuNetFaceDetector(model_path=bogus)
    assert str(bogus) in str(caught.value)


def test_yunet_tracker_follows_the_face_like_full_frame_detection(yunet):
    frames = [f.image for f in iter_frames(RAVDESS_CLIPS / "actor02_sample_04.mp4", step=1)]
    tracker = FaceTracker(yunet, redetect_every=30)
    tracked = [tracker.detect(image) for image in frames]
    full = [yunet.detect(image)[:1] for image in frames]
    assert all(len(boxes) == 1 for boxes in tracked) and all(full)
    assert tracker.full_searches <= -(-len(frames) // 31) + 2  # mostly window searches
    ious = [_iou(a[0], b[0]) for a, b in zip(full, tracked, strict=True)]
    assert np.mean(ious) > 0.75 and min(ious) > 0.5
    assert all(b[0].landmarks is not None for b in tracked)


# ---- the registry -----------------------------------------------------------------------------


def test_get_detector_by_name_instance_or_default(haar):
    assert sorted(DETECTORS) == ["haar", "mtcnn", "yunet"]
    assert get_detector() is default_detector() is get_detector("yunet")
    assert isinstance(get_detector("HAAR"), HaarFaceDetector)
    assert get_detector(haar) is haar
    strict = get_detector("yunet", threshold=0.9)
    assert strict.score_threshold == 0.9 and strict is get_detector("yunet", threshold=0.9)
    assert get_detector("haar", threshold=8).min_neighbors == 8
    with pytest.raises(ConfigError, match="unknown face detector 'retina'"):
        get_detector("retina")
    with pytest.raises(ConfigError, match="min_neighbors"):
        get_detector("haar", threshold=0.5)
    with pytest.raises(ConfigError, match="threshold"):
        get_detector(haar, threshold=0.5)
    with pytest.raises(ConfigError, match="FaceDetector"):
        get_detector(42)  # type: ignore[arg-type]


# ---- alignment --------------------------------------------------------------------------------


def _turned(image: np.ndarray, degrees: float) -> np.ndarray:
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)


@pytest.mark.parametrize("degrees", [20, -20])
def test_an_aligned_crop_of_a_turned_face_is_upright(yunet, degrees):
    photo = load_image(IMAGES / "single_face.jpg")
    assert abs(yunet.detect(photo)[0].eye_angle) < 1  # the photo itself is upright
    turned = _turned(photo, degrees)

    (aligned,) = detect_faces_and_crop(turned, yunet, size=224)
    (plain,) = detect_faces_and_crop(turned, yunet, size=224, align=False)

    (in_aligned,) = yunet.detect(aligned.image)
    (in_plain,) = yunet.detect(plain.image)
    assert abs(in_aligned.eye_angle) < 5
    assert abs(in_plain.eye_angle) > 12  # YuNet reads a 20 degree turn as 15 or so
    # the framing is the same size: the face fills the aligned crop as much as the plain one
    assert in_aligned.width == pytest.approx(in_plain.width, rel=0.15)


def test_crop_face_aligns_only_boxes_with_landmarks():
    image = load_image(IMAGES / "single_face.jpg")
    plain = FaceBox(191, 147, 182, 252)
    level = FaceBox(191, 147, 182, 252, 0.9, ((230, 240), (320, 240), (270, 290), (235, 330),
                                              (315, 330)))
    tilted = FaceBox(191, 147, 182, 252, 0.9, ((230, 220), (320, 260), (270, 290), (235, 330),
                                               (315, 330)))
    expected = crop_face(image, plain, size=None)
    # no landmarks, or level eyes: exactly today's crop
    np.testing.assert_array_equal(crop_face(image, level, size=None), expected)
    np.testing.assert_array_equal(crop_face(image, tilted, size=None, align=False), expected)
    turned = crop_face(image, tilted, size=None)
    assert turned.shape == expected.shape and not np.array_equal(turned, expected)
    assert tilted.eye_angle == pytest.approx(np.degrees(np.arctan2(40, 90)))
    # gray with a trailing channel and zero padding work too
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., np.newaxis]
    assert crop_face(gray, tilted, size=64, pad="zero").shape == (64, 64, 1)


# ---- the command line -------------------------------------------------------------------------


def test_predict_command_takes_the_detector_flags(capsys):
    from emokeras.cli import build_parser, main

    group = str(IMAGES / "multi_face.jpg")
    assert main(["predict", group, "--faces", "all"]) == 0  # YuNet, aligned
    assert capsys.readouterr().out.count("multi_face.jpg face") == GROUP_FACES
    assert main(["predict", group, "--faces", "all", "--detector", "haar", "--no-align"]) == 0
    assert capsys.readouterr().out.count("multi_face.jpg face") == 4
    assert main(["predict", group, "--faces", "all", "--detector-threshold", "0.99"]) == 1
    assert "no face found" in capsys.readouterr().out
    for command in (["live"], ["demo"], ["app"], ["predict", group]):
        args = build_parser().parse_args([*command, "--detector", "mtcnn",
                                          "--detector-threshold", "0.8"])
        assert (args.detector, args.detector_threshold) == ("mtcnn", 0.8)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["predict", group, "--detector", "retina"])


def test_yunet_boxes_of_a_shrunk_frame_are_mapped_back_without_rounding_twice(yunet):
    # a 1920-wide frame made of a 640-wide photo (each pixel 3x3): the detector shrinks it back
    # to exactly that photo, so its boxes must be the photo's boxes times 3, rounded once
    # (rounding in the small image first put up to 1.5 px of error into them)
    photo = load_image(IMAGES / "happy_f15.jpg")
    small = cv2.resize(photo, (640, round(photo.shape[0] * 640 / photo.shape[1])),
                       interpolation=cv2.INTER_AREA)
    big = np.repeat(np.repeat(small, 3, axis=0), 3, axis=1)
    net = cv2.FaceDetectorYN.create(str(yunet.model_path), "", (small.shape[1], small.shape[0]),
                                    yunet.score_threshold, yunet.nms_threshold, yunet.top_k)
    _, rows = net.detect(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    raw = max(rows, key=lambda row: row[2] * row[3])
    (box,) = yunet.detect(big)[:1]
    assert (box.x, box.y, box.width, box.height) == tuple(round(float(v) * 3) for v in raw[:4])
    np.testing.assert_allclose(box.landmarks, np.asarray(raw[4:14], np.float64).reshape(5, 2) * 3,
                               rtol=1e-5)
