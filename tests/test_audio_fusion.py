"""Speech emotion models and late audio-visual fusion, on the real RAVDESS clips' speech."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import wave

import av
import cv2
import numpy as np
import pytest
from conftest import RAVDESS_CLIPS, RAVDESS_NAMES, VIDEOS

from emokeras.audio import SpectrogramConfig, audio_spectrogram, load_audio, spectrogram_windows
from emokeras.cli import main
from emokeras.datasets.pipeline import AugmentConfig
from emokeras.errors import ConfigError, RunFolderError
from emokeras.fileio import read_csv
from emokeras.images import resize
from emokeras.inference import (
    AudioEmotionModel,
    Fusion,
    audio_on_face_classes,
    fuse,
    predict_audio,
    predict_video,
)
from emokeras.labels import FER2013, RAVDESS, SPEECH5, LabelSet
from emokeras.model import EmotionModel, resolve_model
from emokeras.models import build_model

CLIP = RAVDESS_CLIPS / "actor01_sample_01.mp4"

# RAVDESS-8 order: neutral calm happy sad angry fearful disgust surprised
FACE = np.array([0.1, 0.2, 0.3, 0.1, 0.2, 0.05, 0.05, 0.0])
# SPEECH5 order: N F H Sad S
VOICE = np.array([0.5, 0.1, 0.2, 0.1, 0.1])


# --- fusion arithmetic ---------------------------------------------------------------------


def test_weight_zero_is_the_face_and_weight_one_the_mapped_audio():
    np.testing.assert_array_equal(fuse(FACE, RAVDESS, VOICE, SPEECH5, 0.0), FACE)
    # shared classes (all but calm, angry, disgust) hold 0.55 of the face's mass; the audio
    # splits that 0.55 in its own proportions, the three classes it cannot hear keep theirs
    mapped = [0.55 * 0.5, 0.2, 0.55 * 0.2, 0.55 * 0.1, 0.2, 0.55 * 0.1, 0.05, 0.55 * 0.1]
    np.testing.assert_allclose(fuse(FACE, RAVDESS, VOICE, SPEECH5, 1.0), mapped, atol=1e-12)
    np.testing.assert_allclose(audio_on_face_classes(FACE, RAVDESS, VOICE, SPEECH5), mapped,
                               atol=1e-12)
    half = fuse(FACE, RAVDESS, VOICE, SPEECH5, 0.5)
    np.testing.assert_allclose(half, (FACE + np.array(mapped)) / 2, atol=1e-12)
    assert half.sum() == pytest.approx(1.0)
    for weight in (0.0, 0.3, 0.7, 1.0):  # a class the audio cannot hear is never moved
        fused = fuse(FACE, RAVDESS, VOICE, SPEECH5, weight)
        np.testing.assert_allclose(fused[[1, 4, 6]], FACE[[1, 4, 6]], atol=1e-12)


def test_a_confident_voice_changes_the_label_only_with_enough_weight():
    sure_neutral = np.array([0.96, 0.01, 0.01, 0.01, 0.01])
    assert RAVDESS.classes[int(np.argmax(FACE))] == "happy"
    low = fuse(FACE, RAVDESS, sure_neutral, SPEECH5, 0.1)
    high = fuse(FACE, RAVDESS, sure_neutral, SPEECH5, 0.5)
    assert RAVDESS.classes[int(np.argmax(low))] == "happy"
    assert RAVDESS.classes[int(np.argmax(high))] == "neutral"
    assert high[0] == pytest.approx(0.5 * 0.1 + 0.5 * 0.55 * 0.96)


def test_mapping_by_canonical_emotion_between_fer2013_and_speech5():
    # FER2013: angry disgust fear happy sad surprise neutral; the voice is sure of fear
    face = np.array([0.3, 0.1, 0.1, 0.2, 0.1, 0.1, 0.1])
    voice = np.array([0.0, 1.0, 0.0, 0.0, 0.0])
    carried = audio_on_face_classes(face, FER2013, voice, SPEECH5)
    # FER2013's "fear" is SPEECH5's "F" (both fearful): it takes all the shared mass, 0.6
    np.testing.assert_allclose(carried, [0.3, 0.1, 0.6, 0, 0, 0, 0], atol=1e-12)
    assert FER2013.classes[int(np.argmax(fuse(face, FER2013, voice, SPEECH5, 0.5)))] == "fear"


def test_audio_mass_on_classes_the_face_lacks_is_dropped():
    # a RAVDESS-8 voice model onto FER2013 faces: "calm" has no FER2013 counterpart
    face = np.full(7, 1 / 7)
    voice = np.array([0.1, 0.5, 0.2, 0.1, 0.1, 0, 0, 0])  # neutral calm happy sad angry ...
    carried = audio_on_face_classes(face, FER2013, voice, RAVDESS)
    assert carried.sum() == pytest.approx(1.0)
    # without calm the voice is neutral .2, happy .4, sad .2, angry .2 of the shared mass (all 1)
    np.testing.assert_allclose(carried[[6, 3, 4, 0]], [0.2, 0.4, 0.2, 0.2], atol=1e-12)


def test_bad_weights_and_disjoint_label_sets_are_refused():
    for weight in (-0.1, 1.5, math.nan, "heavy"):
        with pytest.raises(ConfigError, match="weight"):
            fuse(FACE, RAVDESS, VOICE, SPEECH5, weight)
    only_calm = LabelSet("calm_contempt", ("calm", "contempt"), ("calm", "contempt"))
    with pytest.raises(ConfigError, match="calm_contempt.*speech5|share no emotion"):
        fuse(np.array([0.5, 0.5]), only_calm, VOICE, SPEECH5, 0.3)
    with pytest.raises(ConfigError, match=r"shape \(5,\)"):
        fuse(FACE, RAVDESS, FACE, SPEECH5, 0.3)


# --- a real audio model --------------------------------------------------------------------


@pytest.fixture(scope="module")
def audio_run(tmp_path_factory):
    """A small_cnn at 64x64 (so the 128x128 spectrograms are resized) trained one step on the
    real clips' spectrograms, saved as an audio run folder."""
    import keras

    keras.utils.set_random_seed(0)
    config = SpectrogramConfig()
    clips = sorted(RAVDESS_NAMES)
    images = np.stack([audio_spectrogram(RAVDESS_CLIPS / c, config) for c in clips])
    # their RAVDESS emotions (neutral, angry, neutral, fearful) where SPEECH5 has them
    labels = np.array([SPEECH5.index("neutral"), SPEECH5.index("sad"), SPEECH5.index("neutral"),
                       SPEECH5.index("fearful")])
    model = build_model("small_cnn", len(SPEECH5), weights=None, channels=1, input_size=64)
    before = [w.copy() for w in model.get_weights()]
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    batch = np.stack([resize(i, 64) for i in images])[..., None].astype(np.float32)
    model.train_on_batch(batch, labels)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    audio = AudioEmotionModel(model, SPEECH5, config)
    return audio, audio.save(tmp_path_factory.mktemp("audio_run"))


def test_an_audio_run_folder_loads_back_with_the_same_probabilities(audio_run):
    audio, run = audio_run
    assert json.loads((run / "spectrogram.json").read_text()) == SpectrogramConfig().to_dict()
    loaded = AudioEmotionModel.load(run)
    assert loaded.label_set is SPEECH5 and loaded.config == audio.config
    waveform = load_audio(CLIP, audio.config.sample_rate)
    np.testing.assert_allclose(loaded.predict_waveform(waveform),
                               audio.predict_waveform(waveform), atol=1e-6)
    np.testing.assert_allclose(loaded.predict_file(CLIP), audio.predict_waveform(waveform),
                               atol=1e-6)


def test_a_clip_is_the_mean_of_its_windows_resized_to_the_model(audio_run):
    audio, _ = audio_run
    waveform = load_audio(CLIP, 16000)
    windows = spectrogram_windows(waveform, audio.config)
    # a 3.3 s clip: half-overlapping 3 s windows, from the start and to the end
    assert len(windows) == math.ceil((len(waveform) - 48000) / 24000) + 1 == 2
    batch = np.stack([resize(w, 64) for w in windows])[..., None].astype(np.float32)
    expected = np.asarray(audio.model.predict_on_batch(batch)).mean(axis=0)
    np.testing.assert_allclose(audio.predict_waveform(waveform), expected, atol=1e-6)
    prediction = predict_audio(CLIP, audio)
    assert prediction.windows == 2 and prediction.class_names == SPEECH5.classes
    assert prediction.label == SPEECH5.classes[int(np.argmax(expected))]
    assert prediction.to_dict()["scores"]["N"] == pytest.approx(float(expected[0]))
    # a clip shorter than a window is one zero-padded window
    assert predict_audio(CLIP, audio).probabilities.shape == (5,)
    assert audio.window_probs(waveform[:16000]).shape == (1, 5)


def test_a_face_run_folder_is_not_an_audio_model(tmp_path):
    face = EmotionModel(build_model("small_cnn", 7, weights=None, input_size=48, channels=1),
                        FER2013)
    face.save(tmp_path / "face")
    with pytest.raises(RunFolderError, match="not an audio model"):
        AudioEmotionModel.load(tmp_path / "face")
    with pytest.raises(RunFolderError, match="spectrogram.json"):
        predict_video(CLIP, face, audio_model=tmp_path / "face")


# --- fusion in predict_video ---------------------------------------------------------------


@pytest.fixture(scope="module")
def bundled():
    return resolve_model(None)


@pytest.mark.slow
def test_predict_video_fuses_the_faces_with_the_speech(bundled, audio_run):
    audio, run = audio_run
    plain = predict_video(CLIP, bundled, max_frames=6)
    fused = predict_video(CLIP, bundled, max_frames=6, audio_model=run, audio_weight=0.3)
    np.testing.assert_allclose(fused.face_scores, plain.probabilities, atol=1e-9)
    np.testing.assert_array_equal(fused.frame_probs, plain.frame_probs)
    heard = predict_audio(CLIP, audio)
    np.testing.assert_allclose(fused.audio_scores, heard.probabilities, atol=1e-6)
    assert fused.audio_class_names == SPEECH5.classes and fused.audio_weight == 0.3
    expected = fuse(plain.probabilities, FER2013, heard.probabilities, SPEECH5, 0.3)
    np.testing.assert_allclose(fused.probabilities, expected, atol=1e-6)
    assert fused.label_index == int(np.argmax(expected))
    assert fused.label == FER2013.classes[fused.label_index]
    assert fused.confidence == pytest.approx(float(expected.max()))
    data = fused.to_dict()
    assert data["audio_weight"] == 0.3 and set(data["audio_scores"]) == set(SPEECH5.classes)
    assert data["face_scores"]["happy"] == pytest.approx(float(plain.probabilities[3]))
    assert "face_scores" not in plain.to_dict() and plain.audio_scores is None
    assert "fusion" not in data and plain.fusion is None
    assert isinstance(fused.fusion, Fusion) and fused.fusion.used_audio
    np.testing.assert_array_equal(fused.fusion.fused, fused.probabilities)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fused.fusion.weight = 0.5  # type: ignore[misc]
    with pytest.raises(ConfigError, match="weight"):
        predict_video(CLIP, bundled, audio_model=audio, audio_weight=2)


@pytest.fixture(scope="module")
def silent_video(tmp_path_factory):
    """single_face.mp4's first frames re-encoded by OpenCV, which writes no audio stream."""
    path = tmp_path_factory.mktemp("silent") / "silent.avi"
    capture = cv2.VideoCapture(str(VIDEOS / "single_face.mp4"))
    writer = None
    for _ in range(12):
        ok, frame = capture.read()
        assert ok
        if writer is None:
            height, width = frame.shape[:2]
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 24,
                                     (width, height))
        writer.write(frame)
    writer.release()
    capture.release()
    with av.open(str(path)) as container:
        assert container.streams.video and not container.streams.audio
    return path


def test_a_video_without_audio_keeps_the_face_label(bundled, audio_run, silent_video, caplog):
    audio, _ = audio_run
    plain = predict_video(silent_video, bundled, max_frames=6)
    with caplog.at_level(logging.WARNING, logger="emokeras.inference"):
        result = predict_video(silent_video, bundled, max_frames=6, audio_model=audio)
    assert result.label == plain.label and result.label_index == plain.label_index
    np.testing.assert_allclose(result.probabilities, plain.probabilities, atol=1e-9)
    assert "no audio stream" in result.audio_error and "silent.avi" in result.audio_error
    assert result.audio_scores is None and result.audio_weight is None
    assert result.to_dict()["audio_error"] == result.audio_error
    assert not result.fusion.used_audio and result.fusion.audio_error == result.audio_error
    assert "audio not used" in caplog.text


# --- the command line ----------------------------------------------------------------------


def _write_wav(path, waveform: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((np.clip(waveform, -1, 1) * 32767).astype("<i2").tobytes())


def test_cli_predict_with_an_audio_model(audio_run, tmp_path, capsys):
    audio, run = audio_run
    out = tmp_path / "out.json"
    speech = tmp_path / "speech.wav"
    _write_wav(speech, load_audio(CLIP, 16000), 16000)
    assert main(["predict", str(CLIP), str(speech), "--audio-model", str(run),
                 "--audio-weight", "0.4", "--max-frames", "6", "--output", str(out)]) == 0
    video_row, audio_row = json.loads(out.read_text())
    assert video_row["kind"] == "video" and video_row["audio_weight"] == 0.4
    assert video_row["face_label"] in FER2013.classes
    assert video_row["audio_label"] in SPEECH5.classes
    fused = fuse(list(video_row["face_scores"].values()), FER2013,
                 list(video_row["audio_scores"].values()), SPEECH5, 0.4)
    assert video_row["label"] == FER2013.classes[int(np.argmax(fused))]
    # the wav holds the clip's 16 kHz audio: the same windows, the same voice label
    heard = predict_audio(CLIP, audio)
    assert audio_row["kind"] == "audio" and audio_row["label"] == heard.label
    assert audio_row["confidence"] == pytest.approx(heard.confidence, abs=1e-3)
    assert "voice" in capsys.readouterr().out
    csv_out = tmp_path / "out.csv"
    assert main(["predict", str(speech), "--output", str(csv_out)]) == 1  # no --audio-model
    [row] = read_csv(csv_out)
    assert row["status"] == "failed" and "--audio-model" in row["error"]
    assert main(["predict", str(CLIP), "--audio-model", str(run), "--audio-weight", "1.5"]) == 2


@pytest.fixture(scope="module")
def named_clips(tmp_path_factory):
    """RAVDESS-named links to the real clips, and a RAVDESS-named file that is no media."""
    folder = tmp_path_factory.mktemp("speech")
    for source, name in RAVDESS_NAMES.items():
        (folder / name).symlink_to(RAVDESS_CLIPS / source)
    (folder / "01-01-03-01-01-01-03.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 99)
    return folder


def test_cli_spectrograms_writes_an_npz_and_names_the_bad_file(named_clips, tmp_path, capsys):
    from emokeras.datasets.spectrograms import load_spectrogram_npz

    out = tmp_path / "speech.npz"
    assert main(["spectrograms", str(named_clips), str(out), "--labels", "ravdess"]) == 0
    printed = capsys.readouterr().out
    assert "failed:" in printed and "01-01-03-01-01-01-03.mp4" in printed
    assert "4 spectrograms 128x128 of 2 speakers" in printed
    spec_set = load_spectrogram_npz(out)
    assert spec_set.label_set is RAVDESS and spec_set.config == SpectrogramConfig()
    by_file = dict(zip((p.rsplit("/", 1)[-1] for p in spec_set.filenames),
                       (RAVDESS.classes[i] for i in spec_set.labels), strict=True))
    assert by_file == {"01-01-01-01-01-01-01.mp4": "neutral", "01-01-05-02-01-01-01.mp4": "angry",
                       "01-01-01-01-02-01-02.mp4": "neutral", "01-01-06-02-02-01-02.mp4": "fearful"}
    np.testing.assert_array_equal(
        spec_set.images[list(by_file).index("01-01-01-01-01-01-01.mp4")],
        audio_spectrogram(CLIP, SpectrogramConfig()))

    # speech5 (the default) has no "angry": that clip is skipped, not failed
    short = tmp_path / "short.npz"
    assert main(["spectrograms", str(named_clips), str(short), "--duration", "2",
                 "--mel-bins", "64"]) == 0
    spec_set = load_spectrogram_npz(short)
    assert spec_set.label_set is SPEECH5 and len(spec_set) == 3
    assert spec_set.images.shape[1:] == SpectrogramConfig(duration=2, num_mel_bins=64).image_shape

    # nothing readable: an error and no file
    bad_only = tmp_path / "bad_only"
    bad_only.mkdir()
    (bad_only / "01-01-03-01-01-01-03.wav").write_text("not audio")
    assert main(["spectrograms", str(bad_only), str(tmp_path / "none.npz")]) == 1
    assert not (tmp_path / "none.npz").exists()
    assert "nothing written" in capsys.readouterr().err


@pytest.mark.slow
def test_spectrograms_then_train_make_an_audio_run_folder(tmp_path, capsys):
    # the four clips under three sets of actor ids: six "speakers", enough for a grouped split
    clips = tmp_path / "clips"
    clips.mkdir()
    for shift in (0, 2, 4):
        for source, name in RAVDESS_NAMES.items():
            actor = int(name[-6:-4]) + shift
            (clips / f"{name[:-6]}{actor:02d}.mp4").symlink_to(RAVDESS_CLIPS / source)
    data = tmp_path / "speech.npz"
    assert main(["spectrograms", str(clips), str(data), "--mel-bins", "64"]) == 0
    assert main(["train", "--data", str(data), "--backbone", "small_cnn", "--channels", "1",
                 "--input-size", "48", "--labels", "speech5", "--weights", "none",
                 "--phases", "all:1:1e-3", "--batch-size", "4", "--limit", "5",
                 "--output-dir", str(tmp_path / "runs"), "--run", "speech"]) == 0
    run = tmp_path / "runs" / "speech"
    audio = AudioEmotionModel.load(run)  # --limit kept the spectrogram config with the splits
    assert audio.config == SpectrogramConfig(num_mel_bins=64) and audio.label_set is SPEECH5
    assert audio.input_size == 48 and audio.channels == 1
    prediction = predict_audio(CLIP, run)
    assert prediction.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert prediction.label in SPEECH5.classes
    # left at the image defaults, spectrograms train with SpecAugment, and config.json says so
    augment = json.loads((run / "config.json").read_text())["augment"]
    assert augment == dataclasses.asdict(AugmentConfig.spectrogram()) and not augment["flip"]
