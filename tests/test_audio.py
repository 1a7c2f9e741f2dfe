"""Audio decoding and spectrogram images, on the real speech of the RAVDESS fixture clips."""

from __future__ import annotations

import wave
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import RAVDESS_CLIPS, VIDEOS, write_silent_video

from emokeras.audio import (
    SpectrogramConfig,
    audio_spectrogram,
    fix_length,
    load_audio,
    log_mel_spectrogram,
    spectrogram_image,
    spectrogram_windows,
    stft_magnitude,
)
from emokeras.errors import AudioReadError, ConfigError, EmokerasError, NoAudioError

CLIPS = sorted(RAVDESS_CLIPS.glob("*.mp4"))
CONFIG = SpectrogramConfig()


@pytest.fixture(scope="module")
def waveforms() -> dict[str, np.ndarray]:
    return {clip.name: load_audio(clip) for clip in CLIPS}


def _duration(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return float(stream.duration * stream.time_base)


def _write_wav(path: Path, waveform: np.ndarray, rate: int, channels: int = 1) -> None:
    pcm = np.round(np.clip(waveform, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.repeat(pcm, channels).tobytes())  # interleaved: L R L R ...



def test_fixture_clips_are_the_expected_ones():
    assert len(CLIPS) == 4


def test_real_clips_decode_to_16k_mono_of_their_duration(waveforms):
    for clip in CLIPS:
        waveform = waveforms[clip.name]
        assert waveform.dtype == np.float32 and waveform.ndim == 1
        # 48 kHz stereo AAC -> 16 kHz mono: length within 30 ms of the stream's duration (AAC
        # priming and the resampler's delay account for the rest).
        assert abs(len(waveform) / 16000 - _duration(clip)) < 0.03, clip.name
        assert 3.3 < len(waveform) / 16000 < 4.2
        assert np.abs(waveform).max() <= 1.0
        assert np.abs(waveform).max() > 0.01  # real speech, not silence


def test_sample_rate_changes_the_length_not_the_signal(waveforms):
    clip = CLIPS[0]
    at_8k = load_audio(clip, sample_rate=8000)
    assert abs(len(at_8k) * 2 - len(waveforms[clip.name])) <= 4
    # Same sound at half the rate: the envelope (RMS per 100 ms) agrees.
    def envelope(x, rate):
        step = rate // 10
        return np.sqrt([np.mean(x[i : i + step] ** 2) for i in range(0, len(x) - step, step)])

    low, high = envelope(at_8k, 8000), envelope(waveforms[clip.name], 16000)
    n = min(len(low), len(high))
    assert np.corrcoef(low[:n], high[:n])[0, 1] > 0.95


def test_other_fixture_videos_have_audio_in_other_codecs():
    # no_face.mp4 carries 44.1 kHz AAC, single_face.mp4 44.1 kHz MP3.
    for name in ("no_face.mp4", "single_face.mp4"):
        waveform = load_audio(VIDEOS / name)
        assert abs(len(waveform) / 16000 - _duration(VIDEOS / name)) < 0.05
        assert np.isfinite(waveform).all()


def test_wav_of_a_clip_loads_back_to_the_same_samples(waveforms, tmp_path):
    original = waveforms[CLIPS[1].name]
    path = tmp_path / "speech.wav"
    _write_wav(path, original, 16000)
    loaded = load_audio(path)
    assert loaded.shape == original.shape
    np.testing.assert_allclose(loaded, original, atol=1.5 / 32767)


def test_stereo_48k_wav_is_resampled_to_mono_16k(waveforms, tmp_path):
    original = waveforms[CLIPS[2].name]
    at_48k = np.interp(np.arange(len(original) * 3) / 3, np.arange(len(original)), original)
    path = tmp_path / "speech_48k_stereo.wav"
    _write_wav(path, at_48k, 48000, channels=2)
    loaded = load_audio(path)
    assert abs(len(loaded) - len(original)) <= 32
    n = min(len(loaded), len(original)) - 64
    # The resampler's filter delays and smooths slightly: compare after aligning the best lag.
    lags = range(-16, 17)
    best = max(np.corrcoef(loaded[32 + lag : 32 + lag + n], original[32 : 32 + n])[0, 1]
               for lag in lags)
    assert best > 0.98


def test_video_without_audio_raises_no_audio_naming_the_file(tmp_path):
    video = write_silent_video(tmp_path / "silent_movie.mp4")
    with pytest.raises(NoAudioError, match="silent_movie.mp4") as info:
        load_audio(video)
    assert isinstance(info.value, EmokerasError)
    assert info.value.path == str(video)
    with pytest.raises(NoAudioError):
        audio_spectrogram(video)


def test_missing_and_unreadable_files_raise_audio_read_error(tmp_path):
    with pytest.raises(AudioReadError, match="nowhere.wav") as info:
        load_audio(tmp_path / "nowhere.wav")
    assert "no such file" in str(info.value)
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    with pytest.raises(AudioReadError, match="notes.mp4"):
        load_audio(text)
    folder = tmp_path / "a_folder.wav"
    folder.mkdir()
    with pytest.raises(AudioReadError, match="a_folder.wav.*not a file"):
        load_audio(folder)


def test_wav_with_no_samples_is_unreadable(tmp_path):
    path = tmp_path / "empty.wav"
    _write_wav(path, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioReadError, match="empty.wav"):
        load_audio(path)


def test_real_spectrograms_are_128_square_and_show_speech(waveforms):
    for clip in CLIPS:
        image = audio_spectrogram(clip)
        assert image.shape == (128, 128) and image.dtype == np.uint8
        assert image.max() == 255  # the clip's loudest bin
        assert image.std() > 10, clip.name
        loudness = image.astype(float).mean(axis=0)  # per frame (column)
        # Speech frames stand well above the quietest (pauses before and after the sentence).
        assert loudness.max() - loudness.min() > 50, clip.name
        assert np.array_equal(
            image, spectrogram_image(fix_length(waveforms[clip.name], 48000), CONFIG)
        )


def test_speech_energy_sits_in_the_low_rows_at_the_bottom(waveforms):
    # Voiced speech has most of its energy below ~1 kHz: low frequencies are the bottom rows.
    image = spectrogram_image(waveforms[CLIPS[0].name], CONFIG).astype(float)
    assert image[-40:].mean() > image[:40].mean()


def test_tones_land_in_rows_by_frequency():
    t = np.arange(CONFIG.num_samples) / CONFIG.sample_rate
    rows = {}
    for hz in (300.0, 1000.0, 4000.0):
        image = spectrogram_image(0.5 * np.sin(2 * np.pi * hz * t).astype(np.float32), CONFIG)
        rows[hz] = int(np.argmax(image.astype(float).mean(axis=1)))
    # Row 0 is the highest frequency, so higher tones have smaller row numbers.
    assert rows[4000.0] < rows[1000.0] < rows[300.0]


def test_silence_gives_a_black_image_and_no_nan():
    silence = np.zeros(CONFIG.num_samples, dtype=np.float32)
    decibels = log_mel_spectrogram(silence, CONFIG).numpy()
    assert np.isfinite(decibels).all()
    np.testing.assert_allclose(decibels, -100.0)
    image = spectrogram_image(silence, CONFIG)
    assert image.shape == (128, 128) and not image.any()
    assert not spectrogram_windows(np.zeros(16000 * 5, np.float32), CONFIG).any()


def test_fix_length_centre_crops_and_pads():
    wave_ = np.arange(1, 11, dtype=np.float32)
    np.testing.assert_array_equal(fix_length(wave_, 4), [4, 5, 6, 7])
    np.testing.assert_array_equal(fix_length(wave_[:3], 6), [0, 1, 2, 3, 0, 0])
    np.testing.assert_array_equal(fix_length(wave_, 10), wave_)
    assert fix_length(wave_.astype(np.float64), 5).dtype == np.float32
    batch = np.stack([wave_, -wave_])
    assert fix_length(batch, 12).shape == (2, 12)
    cropped = fix_length(wave_, 4)
    cropped[0] = 99  # a copy, not a view of the input
    assert wave_[3] == 4


def test_stft_and_log_mel_shapes():
    noise = np.random.default_rng(0).normal(0, 0.1, (2, CONFIG.num_samples)).astype(np.float32)
    assert tuple(stft_magnitude(noise[0], CONFIG).shape) == (128, 513)
    assert tuple(stft_magnitude(noise, CONFIG).shape) == (2, 128, 513)
    mel = log_mel_spectrogram(noise, CONFIG)
    assert tuple(mel.shape) == (2, 128, 128) and mel.dtype.name == "float32"
    linear = SpectrogramConfig(num_mel_bins=0)
    assert linear.image_shape == (513, 128)
    assert tuple(log_mel_spectrogram(noise[0], linear).shape) == (128, 513)
    assert spectrogram_image(noise[0], linear).shape == (513, 128)
    # Other lengths are brought to the config's duration first.
    assert spectrogram_image(noise[0, :5000], CONFIG).shape == (128, 128)


def test_windows_cover_a_long_recording(waveforms):
    # Two real sentences back to back: about 7.5 s of speech.
    long = np.concatenate([waveforms[CLIPS[0].name], waveforms[CLIPS[1].name]])
    assert len(long) / 16000 > 7
    windows = spectrogram_windows(long, CONFIG)
    assert windows.dtype == np.uint8 and windows.shape[1:] == (128, 128)
    assert len(windows) >= 3
    assert (windows.reshape(len(windows), -1).max(axis=1) == 255).all()
    # The first window is the recording's first 3 s, scaled on its own.
    first = spectrogram_image(long[: CONFIG.num_samples], CONFIG)
    np.testing.assert_array_equal(windows[0], first)
    seven = np.random.default_rng(1).normal(0, 0.1, 7 * 16000).astype(np.float32)
    assert len(spectrogram_windows(seven, CONFIG)) >= 3
    assert len(spectrogram_windows(seven, CONFIG, overlap=0.0)) == 3
    assert spectrogram_windows(seven[:16000], CONFIG).shape == (1, 128, 128)


def test_config_defaults_and_round_trip():
    assert CONFIG.num_samples == 48000 and CONFIG.image_shape == (128, 128)
    again = SpectrogramConfig.from_dict(CONFIG.to_dict())
    assert again == CONFIG
    custom = SpectrogramConfig(duration=2, num_mel_bins=64, fmax=7000.0, top_db=60)
    assert SpectrogramConfig.from_dict(custom.to_dict()) == custom
    assert custom.image_shape == (64, 1 + (32000 - 512) // 372)
    # JSON writes 16000.0 as well as 16000; both read as the integer field.
    assert SpectrogramConfig.from_dict({"sample_rate": 16000.0}).sample_rate == 16000


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"hop": 10}, "unknown spectrogram config keys"),
        ({"duration": 0.01}, "fewer than one frame"),
        ({"fmax": 9000.0}, "fmax"),
        ({"num_mel_bins": -1}, "num_mel_bins"),
        ({"frame_length": 2048}, "fft_length"),
        ({"sample_rate": "16k"}, "sample_rate"),
    ],
)
def test_config_rejects_bad_values(bad, match):
    with pytest.raises(ConfigError, match=match):
        SpectrogramConfig.from_dict(bad)
