"""SpecAugment (Park et al., 2019) for spectrograms kept as uint8 images: masks and time shift.

A spectrogram image of ``emokeras.audio`` is (bins, frames): rows are frequency bands (row 0 the
highest), columns are time frames, and 0 is silence (``top_db`` below the clip's loudest bin).
So a frequency mask zeroes whole rows, a time mask whole columns, and a time shift moves the
columns, filling the frames it uncovers with silence (or wrapping them around). Time warping,
the paper's third step, is left out: the paper found it the least useful and the most costly.

Per the paper, each of ``num_masks`` masks has a width drawn uniformly from 0 to the maximum
(``max_fraction`` of the axis, rounded down) and a start drawn uniformly where it fits; masks
may overlap. Every image in a batch draws its own masks and shift.

The layers take (B, H, W, C) or (H, W, C) tensors of any dtype; they move or zero values and
never make new ones, so [0, 255] input stays in [0, 255]. They augment only when training
(``training=False`` returns the input unchanged) and are seeded like
``emokeras.datasets.pipeline.RandomResizedCrop``. Registered serializable under ``"emokeras"``.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from emokeras.errors import ConfigError

__all__ = ["FrequencyMasking", "TimeMasking", "TimeShift"]

_FREQUENCY_AXIS = 1  # of a batch (B, H, W, C): rows are frequency bands
_TIME_AXIS = 2  # columns are time frames


def _check_fraction(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ConfigError(f"{what} must be a number in [0, 1), got {value!r}")
    return float(value)


def _check_seed(seed: int | None, what: str) -> int | None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError(f"{what} seed must be an int or None, got {seed!r}")
    return seed


class SeededAugmentation(keras.layers.Layer):
    """A training-only layer that draws from its own ``tf.random.Generator``; subclasses say
    when they are on (``_active``) and augment a batch (``_augment``)."""

    def __init__(self, seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.seed = _check_seed(seed, type(self).__name__)
        self._generator = None

    def _rng(self) -> tf.random.Generator:
        # Created on first use, outside any graph, so tf.data captures its state variable and
        # every batch (and epoch) draws afresh.
        if self._generator is None:
            with tf.init_scope():
                self._generator = (
                    tf.random.Generator.from_non_deterministic_state()
                    if self.seed is None
                    else tf.random.Generator.from_seed(self.seed)
                )
        return self._generator

    def _active(self) -> bool:
        raise NotImplementedError

    def _augment(self, images: tf.Tensor) -> tf.Tensor:
        """Augment a batch (B, H, W, C)."""
        raise NotImplementedError

    def call(self, images, training=True):
        if not training or not self._active():
            return images
        images = tf.convert_to_tensor(images)
        batched = images.shape.rank == 4
        if images.shape.rank not in (3, 4):
            raise ConfigError(
                f"{type(self).__name__} takes (B, H, W, C) or (H, W, C) images, "
                f"got shape {images.shape}"
            )
        out = self._augment(images if batched else images[tf.newaxis])
        return out if batched else out[0]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "seed": self.seed}


class _Masking(SeededAugmentation):
    """``num_masks`` bands along one axis, each up to ``max_fraction`` of it wide, set to 0."""

    axis: int

    def __init__(
        self, max_fraction: float, num_masks: int = 2, seed: int | None = None, **kwargs
    ) -> None:
        super().__init__(seed=seed, **kwargs)
        name = type(self).__name__
        self.max_fraction = _check_fraction(max_fraction, f"{name} max_fraction")
        if isinstance(num_masks, bool) or not isinstance(num_masks, int) or num_masks < 1:
            raise ConfigError(f"{name} num_masks must be an int >= 1, got {num_masks!r}")
        self.num_masks = num_masks

    def _active(self) -> bool:
        return self.max_fraction > 0

    def _augment(self, images: tf.Tensor) -> tf.Tensor:
        shape = tf.shape(images)
        count, length = shape[0], shape[self.axis]
        # Widths uniform in 0..F and starts uniform in 0..length-width, drawn as floats and
        # floored: Generator.uniform takes no per-item integer bounds.
        most = tf.floor(self.max_fraction * tf.cast(length, tf.float32))
        draws = [count, self.num_masks]
        width = tf.floor(self._rng().uniform(draws) * (most + 1.0))
        start = tf.floor(self._rng().uniform(draws) * (tf.cast(length, tf.float32) - width + 1.0))
        position = tf.cast(tf.range(length), tf.float32)[tf.newaxis, tf.newaxis]  # (1, 1, L)
        inside = (position >= start[..., tf.newaxis]) & (
            position < (start + width)[..., tf.newaxis]
        )
        masked = tf.reduce_any(inside, axis=1)  # (B, L)
        # (B, L) broadcast over the other image axes: (B, L, 1, 1) for rows, (B, 1, L, 1) columns.
        broadcast = [count, 1, 1, 1]
        broadcast[self.axis] = length
        masked = tf.reshape(masked, tf.stack(broadcast))
        return tf.where(masked, tf.zeros_like(images), images)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "max_fraction": self.max_fraction,
            "num_masks": self.num_masks,
        }


@keras.saving.register_keras_serializable(package="emokeras")
class FrequencyMasking(_Masking):
    """SpecAugment frequency masking: whole rows (frequency bands) of each image set to 0.

    ``num_masks`` masks per image, each ``f`` rows wide with ``f`` uniform in
    ``0..floor(max_fraction * H)``, at a uniform position where it fits.
    """

    axis = _FREQUENCY_AXIS


@keras.saving.register_keras_serializable(package="emokeras")
class TimeMasking(_Masking):
    """SpecAugment time masking: whole columns (time frames) of each image set to 0.

    ``num_masks`` masks per image, each ``t`` columns wide with ``t`` uniform in
    ``0..floor(max_fraction * W)``, at a uniform position where it fits.
    """

    axis = _TIME_AXIS


@keras.saving.register_keras_serializable(package="emokeras")
class TimeShift(SeededAugmentation):
    """Shift each image's columns by ``s`` frames, ``s`` uniform in ``-S..S``, S = max_fraction * W.

    ``mode="zeros"`` fills the frames the shift uncovers with 0 (silence, as the zero padding of
    a short clip); ``mode="wrap"`` rolls the columns around.
    """

    MODES = ("zeros", "wrap")

    def __init__(
        self, max_fraction: float, mode: str = "zeros", seed: int | None = None, **kwargs
    ) -> None:
        super().__init__(seed=seed, **kwargs)
        self.max_fraction = _check_fraction(max_fraction, "TimeShift max_fraction")
        if mode not in self.MODES:
            raise ConfigError(f"TimeShift mode must be one of {list(self.MODES)}, got {mode!r}")
        self.mode = mode

    def _active(self) -> bool:
        return self.max_fraction > 0

    def _augment(self, images: tf.Tensor) -> tf.Tensor:
        shape = tf.shape(images)
        count, width = shape[0], shape[_TIME_AXIS]
        most = tf.floor(self.max_fraction * tf.cast(width, tf.float32))
        shift = tf.cast(
            tf.floor(self._rng().uniform([count]) * (2.0 * most + 1.0) - most), tf.int32
        )
        # Output column j takes input column j - shift.
        source = tf.range(width)[tf.newaxis] - shift[:, tf.newaxis]  # (B, W)
        inside = (source >= 0) & (source < width)
        source = tf.math.floormod(source, width)
        moved = tf.gather(images, source, axis=_TIME_AXIS, batch_dims=1)
        if self.mode == "wrap":
            return moved
        return tf.where(inside[:, tf.newaxis, :, tf.newaxis], moved, tf.zeros_like(moved))

    def get_config(self) -> dict:
        return {**super().get_config(), "max_fraction": self.max_fraction, "mode": self.mode}
