"""`emokeras live`: every face of a real video labelled frame by frame, drawn and saved."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import VIDEOS

from emokeras.cli import main
from emokeras.errors import ConfigError, VideoReadError
from emokeras.faces import FaceBox
from emokeras.labels import FER2013
from emokeras.live import (
    UNCERTAIN,
    Annotator,
    FaceLabel,
    MultiFaceTracker,
    find_emoji_font,
    label_face,
    run_live,
)
from emokeras.model import resolve_model

CLIP = VIDEOS / "single_face.mp4"  # one man, 72 frames, 640x360, 30 fps


def _read_all(path) -> tuple[list[np.ndarray], float, tuple[int, int]]:
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), path
    fps = capture.get(cv2.CAP_PROP_FPS)
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames, fps, size


def _masks(shape, box: FaceBox, annotator: Annotator):
    """(the box's edge lines, everything well away from the box and its caption above it)."""
    height, width = shape[:2]
    yy, xx = np.mgrid[:height, :width]
    right, bottom = box.x + box.width - 1, box.y + box.height - 1
    along_x = (xx >= box.x) & (xx <= right)
    along_y = (yy >= box.y) & (yy <= bottom)
    outline = ((along_x & ((yy == box.y) | (yy == bottom)))
               | (along_y & ((xx == box.x) | (xx == right))))
    caption = 3 * annotator.caption_size(height)
    near = ((xx >= box.x - 20) & (xx <= box.x + max(box.width, 400) + 20)
            & (yy >= box.y - caption - 20) & (yy <= box.y + box.height + 20))
    return outline, ~near


@pytest.fixture(scope="module")
def model():
    return resolve_model(None)  # the bundled model


def test_live_fast_labels_frames_with_the_first_member_alone(tmp_path, capsys):
    assert main(["live", "--source", str(CLIP), "--fast", "--max-frames", "3",
                 "--no-display"]) == 0
    assert "3 frames" in capsys.readouterr().out


@pytest.mark.slow
def test_live_command_writes_an_annotated_video_frame_for_frame(tmp_path, capsys):
    out = tmp_path / "annotated.mp4"
    assert main(["live", "--source", str(CLIP), "--out", str(out), "--no-display"]) == 0
    printed = capsys.readouterr().out
    assert "72 frames" in printed and "frames/s" in printed and str(out) in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotated.mp4"]  # no temp file left

    source, source_fps, source_size = _read_all(CLIP)
    annotated, fps, size = _read_all(out)
    assert len(annotated) == len(source) == 72
    assert size == source_size and fps == pytest.approx(source_fps, abs=0.01)

    # mp4v is lossy: the box outline differs strongly, the background only by coding noise
    from emokeras.faces import default_detector

    annotator = Annotator()
    for index in (5, 36, 70):
        rgb = cv2.cvtColor(source[index], cv2.COLOR_BGR2RGB)
        box = default_detector().detect(rgb)[0]
        outline, away = _masks(rgb.shape, box, annotator)
        diff = np.abs(annotated[index].astype(int) - source[index].astype(int)).max(axis=2)
        assert diff[outline].mean() > 40, index
        assert diff[away].mean() < 6, index  # mp4v coding noise is about 3.5


def test_run_live_draws_only_boxes_and_captions(model, tmp_path):
    """Lossless .mkv: pixels well away from the face and its caption are exactly the source's."""
    drawn = []
    out = tmp_path / "annotated.mkv"
    stats = run_live(CLIP, model, out=out, max_frames=16, threshold=0.0, window=3,
                     on_frame=lambda frame, labels: drawn.append(labels))
    assert (stats.frames, stats.out, stats.source_fps) == (16, out, 30.0)
    assert stats.fps > 0 and stats.faces == sum(len(labels) for labels in drawn) >= 14

    source, _, _ = _read_all(CLIP)
    annotated, fps, size = _read_all(out)
    assert len(annotated) == 16 and size == (640, 360) and fps == pytest.approx(30.0)
    annotator = Annotator()
    checked = 0
    for index, labels in enumerate(drawn):
        if len(labels) != 1:
            continue
        face = labels[0]
        assert face.label in FER2013.classes and face.emoji and 0 < face.confidence <= 1
        assert face.track_id == drawn[0][0].track_id  # one person, one track throughout
        outline, away = _masks(source[index].shape, face.box, annotator)
        diff = np.abs(annotated[index].astype(int) - source[index].astype(int)).max(axis=2)
        assert (diff[outline] > 0).mean() > 0.9
        assert np.array_equal(annotated[index][away], source[index][away])
        checked += 1
    assert checked >= 14


def test_bad_sources_raise_video_read_error_naming_them(model, tmp_path):
    missing = tmp_path / "missing.mp4"
    with pytest.raises(VideoReadError, match="missing.mp4"):
        run_live(missing, model)
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video")
    with pytest.raises(VideoReadError, match="notes.mp4"):
        run_live(notes, model, out=tmp_path / "out.mp4")
    assert not list(tmp_path.glob("*out*"))  # nothing half-written
    with pytest.raises(VideoReadError, match="camera 97"):
        run_live(97, model)
    with pytest.raises(VideoReadError, match="camera 98"):
        run_live("98", model)
    with pytest.raises(ConfigError, match="end in one of"):
        run_live(CLIP, model, out=tmp_path / "out.gif")


def test_live_command_reports_a_bad_source(tmp_path, capsys):
    assert main(["live", "--source", str(tmp_path / "nope.mp4"), "--no-display"]) == 2
    assert "nope.mp4" in capsys.readouterr().err


def test_tracker_follows_faces_and_smooths_their_scores():
    tracker = MultiFaceTracker(window=3)
    left, right = FaceBox(10, 10, 50, 50), FaceBox(300, 20, 60, 60)
    happy, sad = np.eye(7)[3], np.eye(7)[4]
    first = tracker.update([left, right], np.stack([happy, sad]))
    # the next frame lists them the other way round, both moved a little
    second = tracker.update([FaceBox(305, 22, 60, 60), FaceBox(14, 12, 50, 50)],
                            np.stack([happy, happy]))
    assert [t for t, _ in second] == [first[1][0], first[0][0]]
    np.testing.assert_allclose(second[0][1], (sad + happy) / 2)  # right: one sad, one happy
    np.testing.assert_allclose(second[1][1], happy)
    for _ in range(3):  # the window forgets the sad frame
        scores = tracker.update([FaceBox(305, 22, 60, 60)], happy[np.newaxis])[0][1]
    np.testing.assert_allclose(scores, happy)
    for _ in range(6):  # unseen for more than max_missed frames: dropped
        tracker.update([], np.zeros((0, 7)))
    assert tracker.active == 0
    with pytest.raises(ConfigError):
        MultiFaceTracker(window=0)


def test_labels_below_the_threshold_are_uncertain():
    box = FaceBox(0, 0, 10, 10)
    scores = np.array([0.1, 0.0, 0.0, 0.6, 0.3, 0.0, 0.0])
    sure = label_face(box, scores, FER2013, threshold=0.5)
    assert (sure.label, sure.emoji, sure.text) == ("happy", FER2013.emoji(3), "happy 60%")
    unsure = label_face(box, scores, FER2013, threshold=0.7)
    assert (unsure.label, unsure.emoji, unsure.uncertain) == (UNCERTAIN, "", True)


def test_captions_fall_back_to_text_without_an_emoji_font(tmp_path):
    image = np.full((120, 200, 3), 90, np.uint8)
    face = FaceLabel(FaceBox(60, 50, 60, 60), "happy", FER2013.emoji(3), 0.9, 3)
    bogus = tmp_path / "not_a_font.ttf"
    bogus.write_text("nothing")
    plain = Annotator(emoji_font=False)
    broken = Annotator(emoji_font=bogus)
    assert not plain.has_emoji and not broken.has_emoji
    for annotator in (plain, broken):
        drawn = annotator.draw(image, [face])
        assert drawn.shape == image.shape and (drawn != image).any()
        assert (image == 90).all()  # the input is never drawn on
    assert np.array_equal(plain.draw(image, [face]), broken.draw(image, [face]))
    if find_emoji_font() is not None:  # with a colour emoji font the caption shows the emoji
        coloured = Annotator()
        assert coloured.has_emoji
        with_emoji = coloured.draw(image, [face])
        assert (with_emoji != plain.draw(image, [face])).any()
