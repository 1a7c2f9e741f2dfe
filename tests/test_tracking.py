"""emokeras.tracking, and predict_video(faces="all") on a real two-person clip made of fixtures."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import VIDEOS, portrait

from emokeras.errors import ConfigError
from emokeras.faces import FaceBox
from emokeras.inference import FaceTrack, VideoPrediction, predict_video
from emokeras.model import resolve_model
from emokeras.tracking import IdentityTracker, MultiFaceTracker, iou

FRAMES = 24
WIDTH, HEIGHT = 720, 360


@pytest.fixture(scope="module")
def two_people(tmp_path_factory):
    """A 24-frame clip: two real people side by side, drifting a few pixels per frame towards
    each other; returns the path and each person's x centre in every frame."""
    left, right = portrait("single_face.jpg", 240), portrait("happy_f15.jpg", 200)
    path = tmp_path_factory.mktemp("two") / "two_people.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (WIDTH, HEIGHT))
    assert writer.isOpened()
    centres = []
    for i in range(FRAMES):
        frame = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
        lx, rx = 40 + 3 * i, WIDTH - 40 - 200 - 3 * i
        frame[60:300, lx:lx + 240] = left
        frame[80:280, rx:rx + 200] = right
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        centres.append((lx + 120, rx + 100))
    writer.release()
    return path, centres


def test_iou_and_identity_tracker_basics():
    a, b = FaceBox(0, 0, 10, 10), FaceBox(5, 0, 10, 10)
    assert iou(a, a) == 1.0 and iou(a, b) == pytest.approx(50 / 150)
    assert iou(a, FaceBox(50, 50, 5, 5)) == 0.0
    tracker = IdentityTracker(max_missed=1)
    assert tracker.assign([a, FaceBox(100, 0, 10, 10)]) == [0, 1]
    # both move a little, and come in the other order: the ids follow the faces, not the order
    assert tracker.assign([FaceBox(102, 1, 10, 10), FaceBox(1, 1, 10, 10)]) == [1, 0]
    assert tracker.assign([]) == [] and tracker.active == 2
    assert tracker.assign([]) == [] and tracker.active == 0  # missed twice: dropped
    assert tracker.assign([a]) == [2]  # a face that comes back after that gets a new id
    for bad in ({"min_iou": 0}, {"max_distance": -1}, {"max_missed": -1}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            IdentityTracker(**bad)


def test_multi_face_tracker_smooths_over_its_window():
    tracker = MultiFaceTracker(window=2)
    box = FaceBox(0, 0, 10, 10)
    assert tracker.update([box], np.array([[1.0, 0.0]]))[0][0] == 0
    (track, scores), = tracker.update([box], np.array([[0.0, 1.0]]))
    assert track == 0 and scores == pytest.approx([0.5, 0.5])
    with pytest.raises(ValueError, match="boxes"):
        tracker.update([box], np.zeros((2, 2)))


def test_live_and_the_app_share_one_tracking_and_drawing_implementation():
    from emokeras import annotate, app, live, tracking

    assert live.MultiFaceTracker is tracking.MultiFaceTracker and live.iou is tracking.iou
    assert live.Annotator is annotate.Annotator is app.Annotator
    assert live.label_face is annotate.label_face is app.label_face
    box = FaceBox(0, 0, 10, 10)
    assert annotate.FaceLabel(box, "happy", "", 0.87, 3, track_id=2).caption == "#2 happy 87%"
    assert annotate.FaceLabel(box, "happy", "", 0.87, 3).caption == "happy 87%"


@pytest.fixture(scope="module")
def model():
    return resolve_model(None)


def test_every_face_of_a_two_person_clip_is_one_stable_track(two_people, model):
    path, centres = two_people
    result = predict_video(path, model, faces="all", frame_step=1)

    assert isinstance(result, VideoPrediction) and result.frames_read == FRAMES
    assert [t.track_id for t in result.tracks] == [0, 1]
    for track in result.tracks:
        assert isinstance(track, FaceTrack)
        assert list(track.frame_indices) == list(range(FRAMES))  # found in every frame
        assert track.frame_probs.shape == (FRAMES, len(model.label_set))
        assert len(track.boxes) == len(track.timestamps) == FRAMES
        assert track.label == model.label_set.classes[int(np.argmax(track.probabilities))]
        assert track.confidence == pytest.approx(track.probabilities.max())
        np.testing.assert_allclose(track.probabilities.sum(), 1.0, atol=1e-5)
    # each id stays on one person all through, though both move
    for track in result.tracks:
        side = [int(abs(b.x + b.width / 2 - lc) > abs(b.x + b.width / 2 - rc))
                for b, (lc, rc) in zip(track.boxes, centres, strict=True)]
        assert len(set(side)) == 1
    assert {t.boxes[0].x < WIDTH / 2 for t in result.tracks} == {True, False}
    # the video's own rows are the largest face of each frame (the left person)
    left = next(t for t in result.tracks if t.boxes[0].x < WIDTH / 2)
    np.testing.assert_allclose(result.frame_probs, left.frame_probs, atol=1e-6)
    assert result.frame_boxes == left.boxes


def test_the_largest_face_path_gives_one_track_of_the_same_frames(two_people, model):
    path, _ = two_people
    result = predict_video(path, model, frame_step=1)  # faces="largest", the default

    (track,) = result.tracks
    assert track.track_id == 0 and track.num_frames == result.num_frames == FRAMES
    np.testing.assert_array_equal(track.frame_probs, result.frame_probs)
    np.testing.assert_array_equal(track.frame_indices, result.frame_indices)
    assert track.boxes == result.frame_boxes and track.label == result.label
    assert all(b.x < WIDTH / 2 for b in track.boxes)  # the larger, left person


def test_faces_all_on_a_video_without_faces_and_bad_arguments(model):
    from emokeras.errors import NoFaceFoundError

    with pytest.raises(NoFaceFoundError):
        predict_video(VIDEOS / "no_face.mp4", model, faces="all", max_frames=10)
    with pytest.raises(ConfigError, match="faces"):
        predict_video(VIDEOS / "single_face.mp4", model, faces="every")
    with pytest.raises(ConfigError, match="unknown face detector"):
        predict_video(VIDEOS / "single_face.mp4", model, detector="retina")
