"""Speech audio as spectrogram images: decode any media file's audio, then log-mel spectrograms.

A spectrogram here is a one-channel uint8 image, ``bins x frames`` (128 x 128 by default), so
speech emotion recognition reuses the face-image training path unchanged: the same backbones with
``channels=1`` and the same ``(images uint8, labels)`` sources, augmentation aside.

- :func:`load_audio` decodes the first audio stream of a video (.mp4, .mov, ...) or audio file
  (.wav, .flac, .mp3, ...) with PyAV (FFmpeg) and resamples it to mono float32 at one rate;
  RAVDESS clips carry 48 kHz stereo AAC, which becomes 16 kHz mono, enough for speech.
- :func:`fix_length` centre-crops or zero-pads a waveform to ``SpectrogramConfig.duration``
  (RAVDESS sentences last 3 to 5 s, with the speech in the middle).
- :func:`stft_magnitude` and :func:`log_mel_spectrogram` are the maths, in TensorFlow's
  ``tf.signal`` (Hann-windowed STFT, the HTK mel filter bank), in float32, on any leading batch
  shape. The defaults give exactly 128 frames for 3 s: ``1 + (48000 - 512) // 372 == 128``.
- :func:`spectrogram_image` scales one clip's decibels to 0..255 relative to the clip's loudest
  bin: 255 is that bin, 0 is ``top_db`` below it or quieter. Low frequencies are at the bottom
  (row 0 is the highest frequency), as spectrograms are usually drawn. Per-clip scaling makes the
  image independent of recording level. Power is floored at 1e-10 (-100 dB) before the log, so
  digital silence gives no NaN and an all-zero image rather than a stretched floor.
- :func:`spectrogram_windows` cuts a long recording (a whole video's soundtrack) into
  half-overlapping windows of ``duration``, each scaled like a training clip, so a model trained
  on single clips can score every part of it.

TensorFlow is imported inside the functions that need it, so ``SpectrogramConfig`` and
:func:`load_audio` (used by the TensorFlow-free dataset modules) load quickly.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np

from emokeras.errors import AudioReadError, ConfigError, NoAudioError
from emokeras.fileio import missing_reason

if TYPE_CHECKING:
    import tensorflow as tf

#: Power below this is treated as silence before taking the log (-100 dB).
POWER_FLOOR = 1e-10
_FLOOR_DB = 10.0 * math.log10(POWER_FLOOR)


@dataclass(frozen=True)
class SpectrogramConfig:
    """How a waveform becomes a spectrogram image; stored with the data and the trained model."""

    sample_rate: int = 16000
    #: Seconds: waveforms are centre-cropped or zero-padded to this.
    duration: float = 3.0
    #: Samples per STFT frame (32 ms at 16 kHz).
    frame_length: int = 512
    #: Hop between frames: 372 makes 3 s exactly 128 frames.
    frame_step: int = 372
    #: Frames are zero-padded to 1024 points: with 512, the lowest of 128 mel bands falls
    #: between two FFT bins and stays empty (a black row in every image).
    fft_length: int = 1024
    #: Mel bands; 0 means the linear STFT magnitude (``fft_length // 2 + 1`` bins).
    num_mel_bins: int = 128
    fmin: float = 20.0
    #: None: half the sample rate.
    fmax: float | None = None
    #: Dynamic range kept below the clip's loudest bin.
    top_db: float = 80.0

    def __post_init__(self) -> None:
        for name in ("sample_rate", "frame_length", "frame_step", "fft_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"spectrogram {name} must be a positive integer, got {value!r}")
        if isinstance(self.num_mel_bins, bool) or not isinstance(self.num_mel_bins, int) or (
            self.num_mel_bins < 0
        ):
            raise ConfigError(
                f"spectrogram num_mel_bins must be an integer >= 0, got {self.num_mel_bins!r}"
            )
        for name in ("duration", "top_db"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"spectrogram {name} must be a positive number, got {value!r}")
        if self.fft_length < self.frame_length:
            raise ConfigError(
                f"fft_length {self.fft_length} is shorter than frame_length {self.frame_length}"
            )
        if self.num_samples < self.frame_length:
            raise ConfigError(
                f"duration {self.duration} s is {self.num_samples} samples, fewer than one frame "
                f"({self.frame_length})"
            )
        for name in ("fmin", "fmax"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | None):
                raise ConfigError(f"spectrogram {name} must be a number, got {value!r}")
        nyquist = self.sample_rate / 2
        top = nyquist if self.fmax is None else self.fmax
        if not 0 <= self.fmin < top <= nyquist:
            raise ConfigError(
                f"need 0 <= fmin < fmax <= sample_rate / 2 ({nyquist:g}), "
                f"got fmin {self.fmin!r}, fmax {self.fmax!r}"
            )

    @property
    def num_samples(self) -> int:
        """Samples in one clip of ``duration``."""
        return int(round(self.duration * self.sample_rate))

    @property
    def num_bins(self) -> int:
        return self.num_mel_bins or self.fft_length // 2 + 1

    @property
    def num_frames(self) -> int:
        """STFT frames of one clip (no padding at the end)."""
        return 1 + (self.num_samples - self.frame_length) // self.frame_step

    @property
    def image_shape(self) -> tuple[int, int]:
        """(height, width) of a spectrogram image: (bins, frames)."""
        return self.num_bins, self.num_frames

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpectrogramConfig:
        """The inverse of :meth:`to_dict`; ``ConfigError`` on unknown keys or bad values."""
        if not isinstance(data, dict):
            raise ConfigError(f"a spectrogram config must be a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown spectrogram config keys {unknown}; known keys are {sorted(known)}"
            )
        values = dict(data)
        # JSON has one number type: accept 3 for a float field and 16000.0 for an int field.
        for field in dataclasses.fields(cls):
            value = values.get(field.name)
            if isinstance(value, float) and field.type == "int" and value.is_integer():
                values[field.name] = int(value)
        return cls(**values)


def load_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """The first audio stream of ``path`` as mono float32 in [-1, 1] at ``sample_rate``.

    Works for video and audio files alike (anything FFmpeg reads). ``AudioReadError`` names a
    missing or unreadable file or one whose audio decodes to nothing; ``NoAudioError`` a file
    that opens but has no audio stream.
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ConfigError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    path = Path(path)
    if not path.exists():
        raise AudioReadError(path, missing_reason(path))
    if not path.is_file():
        raise AudioReadError(path, "not a file")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise AudioReadError(path, f"not a media file FFmpeg can open ({exc})") from exc
    chunks: list[np.ndarray] = []
    with container:
        if not container.streams.audio:
            raise NoAudioError(path)
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        try:
            for frame in container.decode(stream):
                chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
            # The resampler holds back its last few samples until flushed with None.
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise AudioReadError(path, f"decoding its audio failed ({exc})") from exc
    waveform = np.concatenate(chunks) if chunks else np.empty(0, dtype=np.float32)
    if waveform.size == 0:
        raise AudioReadError(path, "its audio stream decodes to no samples")
    # Lossy codecs overshoot full scale slightly; the contract is [-1, 1].
    return np.clip(waveform.astype(np.float32, copy=False), -1.0, 1.0)


def fix_length(waveform: np.ndarray, num_samples: int) -> np.ndarray:
    """Centre-crop or zero-pad (both sides) the last axis of ``waveform`` to ``num_samples``."""
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim == 0:
        raise ValueError("a waveform needs at least one axis")
    if num_samples <= 0:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    length = waveform.shape[-1]
    if length >= num_samples:
        start = (length - num_samples) // 2
        return waveform[..., start : start + num_samples].copy()
    missing = num_samples - length
    pad = [(0, 0)] * (waveform.ndim - 1) + [(missing // 2, missing - missing // 2)]
    return np.pad(waveform, pad)


def stft_magnitude(waveform: np.ndarray | tf.Tensor, config: SpectrogramConfig) -> tf.Tensor:
    """Hann-windowed STFT magnitude, float32 ``(..., frames, fft_length // 2 + 1)``."""
    import tensorflow as tf

    signal = tf.convert_to_tensor(waveform, dtype=tf.float32)
    stft = tf.signal.stft(
        signal,
        frame_length=config.frame_length,
        frame_step=config.frame_step,
        fft_length=config.fft_length,
        window_fn=tf.signal.hann_window,
        pad_end=False,
    )
    return tf.abs(stft)


def log_mel_spectrogram(waveform: np.ndarray | tf.Tensor, config: SpectrogramConfig) -> tf.Tensor:
    """Mel-band power in dB (re 1.0, floored at -100 dB), float32 ``(..., frames, bins)``.

    With ``num_mel_bins == 0`` the bins are the linear STFT bins.
    """
    import tensorflow as tf

    power = tf.square(stft_magnitude(waveform, config))
    if config.num_mel_bins:
        weights = tf.signal.linear_to_mel_weight_matrix(
            num_mel_bins=config.num_mel_bins,
            num_spectrogram_bins=config.fft_length // 2 + 1,
            sample_rate=config.sample_rate,
            lower_edge_hertz=config.fmin,
            upper_edge_hertz=config.fmax if config.fmax is not None else config.sample_rate / 2,
            dtype=tf.float32,
        )
        power = tf.tensordot(power, weights, axes=1)
    floored = tf.maximum(power, POWER_FLOOR)
    return 10.0 * tf.math.log(floored) / tf.math.log(tf.constant(10.0, tf.float32))


def _to_images(decibels: tf.Tensor, top_db: float) -> np.ndarray:
    """``(n, frames, bins)`` dB into uint8 ``(n, bins, frames)`` images, each by its own max."""
    import tensorflow as tf

    peak = tf.reduce_max(decibels, axis=(-2, -1), keepdims=True)
    scaled = tf.clip_by_value((decibels - peak + top_db) / top_db, 0.0, 1.0)
    # A clip at the floor everywhere is silence: black, not a stretched floor.
    scaled = tf.where(peak > _FLOOR_DB, scaled, tf.zeros_like(scaled))
    images = tf.cast(tf.round(scaled * 255.0), tf.uint8).numpy()
    # (frames, bins) -> (bins, frames), then the highest frequency in row 0.
    return np.ascontiguousarray(np.flip(np.swapaxes(images, -1, -2), axis=-2))


def spectrogram_image(waveform: np.ndarray, config: SpectrogramConfig) -> np.ndarray:
    """One clip as a uint8 image of ``config.image_shape`` (bins, frames).

    The waveform (1-D, at ``config.sample_rate``) is first brought to ``config.duration`` with
    :func:`fix_length`, so every image of a config has the same shape. 255 is the clip's loudest
    bin, 0 is ``config.top_db`` below it; row 0 is the highest frequency.
    """
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1:
        raise ValueError(f"expected a 1-D waveform, got shape {waveform.shape}")
    clip = fix_length(waveform, config.num_samples)
    return _to_images(log_mel_spectrogram(clip[None], config), config.top_db)[0]


def spectrogram_windows(
    waveform: np.ndarray, config: SpectrogramConfig, *, overlap: float = 0.5
) -> np.ndarray:
    """Images of windows of ``config.duration`` covering the whole waveform: uint8 (n, bins,
    frames), n >= 1.

    A waveform no longer than one window gives one (centre-padded) image. A longer one gives
    evenly spaced windows, the first at the start and the last ending at the end, at most
    ``(1 - overlap) * duration`` apart. Each window is scaled by its own loudest bin, as a
    training clip is.
    """
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1:
        raise ValueError(f"expected a 1-D waveform, got shape {waveform.shape}")
    size = config.num_samples
    if len(waveform) <= size:
        windows = fix_length(waveform, size)[None]
    else:
        hop = max(1, int(size * (1 - overlap)))
        count = math.ceil((len(waveform) - size) / hop) + 1
        starts = np.round(np.linspace(0, len(waveform) - size, count)).astype(np.int64)
        windows = np.stack([waveform[s : s + size] for s in starts])
    return _to_images(log_mel_spectrogram(windows, config), config.top_db)


def audio_spectrogram(
    path: str | Path, config: SpectrogramConfig = SpectrogramConfig()
) -> np.ndarray:
    """The spectrogram image of a media file's audio (centre ``config.duration`` seconds)."""
    waveform = load_audio(path, config.sample_rate)
    return spectrogram_image(fix_length(waveform, config.num_samples), config)
