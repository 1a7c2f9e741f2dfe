"""Results a researcher can analyse: scores mappings, JSON-safe dicts, short reprs, pandas tables
on real fixture videos and the group photo."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import IMAGES, RAVDESS_CLIPS, VIDEOS

from emokeras.inference import AudioPrediction, predict_image, predict_video
from emokeras.labels import FER2013
from emokeras.model import EmotionModel
from emokeras.models import build_model
from emokeras.results import (
    FRAME_COLUMNS,
    SUMMARY_COLUMNS,
    Scores,
    images_to_frame,
    summary,
    to_frame,
    write_table,
)

CLASSES = list(FER2013.classes)


@pytest.fixture(scope="module")
def gray_model() -> EmotionModel:
    """An untrained grayscale small_cnn: the tables' shape is under test, not accuracy."""
    return EmotionModel(build_model("small_cnn", 7, weights=None, input_size=48, channels=1),
                        FER2013)


@pytest.fixture(scope="module")
def videos(gray_model):
    return [predict_video(VIDEOS / "single_face.mp4", gray_model, frame_step=6),
            predict_video(RAVDESS_CLIPS / "actor02_sample_03.mp4", gray_model, target_fps=4)]


@pytest.fixture(scope="module")
def group(gray_model):
    return predict_image(IMAGES / "multi_face.jpg", gray_model, which="all")


def _tracks(prediction):
    return tuple(getattr(prediction, "tracks", None) or ())


def test_per_frame_table_of_a_video_has_a_row_per_face_per_frame(videos):
    for video in videos:
        frame = video.to_frame()
        assert list(frame.columns) == [*FRAME_COLUMNS, *CLASSES, "label"]
        faces = sum(len(t.frame_indices) for t in _tracks(video)) or video.num_frames
        assert len(frame) == faces >= 3
        assert (frame["file"] == video.path).all()
        np.testing.assert_allclose(frame[CLASSES].sum(axis=1), 1.0, rtol=1e-5)
        assert frame["label"].isin(CLASSES).all()
        assert frame["frame_index"].is_monotonic_increasing
        assert (frame["timestamp"].diff().dropna() >= 0).all()
        if not _tracks(video):  # one face followed: track 0, its probabilities as given
            np.testing.assert_allclose(frame[CLASSES].to_numpy(), video.frame_probs, rtol=1e-6)
            assert (frame["track_id"] == 0).all()


def test_summary_has_a_row_per_video_track(videos):
    table = summary(videos)
    assert list(table.columns) == [*SUMMARY_COLUMNS, *CLASSES]
    assert len(table) == sum(len(_tracks(v)) or 1 for v in videos)
    first = table[table["file"] == videos[0].path].iloc[0]
    if not _tracks(videos[0]):
        assert first["frames"] == videos[0].num_frames
        assert first["label"] == videos[0].label
        assert first["confidence"] == pytest.approx(videos[0].confidence)
    assert first["start"] <= first["end"]
    assert len(videos[0].summary()) == (len(_tracks(videos[0])) or 1)


def test_group_photo_table_has_a_row_per_face(group):
    assert len(group) >= 3
    frame = images_to_frame(group)
    assert list(frame.columns) == [*FRAME_COLUMNS, *CLASSES, "label"]
    assert len(frame) == len(group)
    assert list(frame["track_id"]) == list(range(len(group)))
    assert (frame["file"] == str(IMAGES / "multi_face.jpg")).all()
    assert list(frame["box_w"]) == [face.box.width for face in group]
    assert frame["detector_score"].between(0, 1).all()
    assert len(summary(group)) == len(group)


def test_tables_round_trip_through_csv_and_parquet(videos, group, tmp_path):
    table = to_frame([*videos, *group])
    assert len(table) == len(videos[0].to_frame()) + len(videos[1].to_frame()) + len(group)
    write_table(table, tmp_path / "t.csv")
    back = pd.read_csv(tmp_path / "t.csv")
    assert list(back.columns) == list(table.columns)
    pd.testing.assert_frame_equal(back, table, check_dtype=False, atol=1e-9)
    write_table(table, tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t.parquet"), table)


def test_scores_are_a_read_only_mapping_beside_the_probabilities(videos, group):
    for result in (videos[0], group[0]):
        assert isinstance(result.scores, Scores)
        assert list(result.scores) == CLASSES
        assert result.scores[result.label] == pytest.approx(result.confidence)
        np.testing.assert_allclose(list(result.scores.values()), result.probabilities)
        assert result.scores.top(1) == [(result.label, pytest.approx(result.confidence))]
        with pytest.raises(TypeError):
            result.scores["happy"] = 1.0  # type: ignore[index]
        with pytest.raises(KeyError):
            result.scores["bored"]


def test_every_result_type_is_json_safe_with_its_per_frame_data(videos, group):
    audio = AudioPrediction("a.wav", "happy", 2, "😄", np.array([0.1, 0.2, 0.7], np.float32),
                            0.7, ("neutral", "sad", "happy"), 3)
    for result in (*videos, *group, audio, *(t for v in videos for t in _tracks(v))):
        data = json.loads(json.dumps(result.to_dict()))
        assert data["label"] == result.label
    video = json.loads(json.dumps(videos[0].to_dict()))
    assert len(video["frame_indices"]) == len(video["frame_probs"]) == videos[0].num_frames
    assert video["scores"] == pytest.approx(dict(videos[0].scores))
    assert video["frames_classified"] == videos[0].num_frames
    face = json.loads(json.dumps(group[0].to_dict()))
    assert face["box"]["width"] == group[0].box.width
    assert face["path"] == str(IMAGES / "multi_face.jpg")
    assert json.loads(json.dumps(audio.to_dict()))["scores"]["happy"] == pytest.approx(0.7)


def test_a_nan_score_is_null_in_to_dict_as_every_other_non_finite_number():
    # scores bypassed jsonable: json.dumps wrote NaN, which is not JSON
    from emokeras.inference.results import Fusion

    nan = np.array([0.1, np.nan, 0.9])
    names = ("neutral", "sad", "happy")
    audio = AudioPrediction("a.wav", "happy", 2, "😄", nan, 0.9, names, 3)
    assert json.loads(json.dumps(audio.to_dict(), allow_nan=False))["scores"]["sad"] is None
    fusion = Fusion(names, nan, nan, audio_scores=nan, audio_class_names=names, weight=0.3)
    data = json.loads(json.dumps(fusion.to_dict(), allow_nan=False))
    assert data["face_scores"]["sad"] is None and data["audio_scores"]["happy"] == 0.9


def test_reprs_are_short_and_name_the_label(videos, group):
    text = repr(videos[0])
    assert text.startswith("VideoPrediction(") and f"label={videos[0].label!r}" in text
    assert "<array" in text and len(text) < 800 and "\n" not in text
    assert repr(group[0]).startswith("ImagePrediction(") and len(repr(group[0])) < 400


def test_an_image_without_a_path_and_nan_columns(gray_model):
    from emokeras.images import load_image

    [face] = predict_image(load_image(IMAGES / "single_face.jpg"), gray_model)
    assert face.path is None
    row = images_to_frame([face]).iloc[0]
    assert row["file"] == "" and math.isnan(row["timestamp"])


def test_predict_video_reports_progress_in_sampled_frames(gray_model):
    seen: list[int] = []
    video = predict_video(VIDEOS / "single_face.mp4", gray_model, frame_step=6, batch_size=4,
                          progress=seen.append)
    assert len(seen) >= 3 and sum(seen) == video.frames_read
