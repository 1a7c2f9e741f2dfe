"""tf.data input pipelines: raw 0-255 images with one-hot labels, augmentation, MixUp, balancing.

Every dataset yields ``(images, labels)`` batches: images float32 ``(B, S, S, C)`` holding raw pixel
values in [0, 255] (C = 1 gray or 3 RGB; models do their own preprocessing in-graph) and labels
one-hot float32 ``(B, K)``, so label smoothing and MixUp work on them. An ``(images, targets)``
source whose targets are a float ``(N, K)`` array (soft labels such as FER+ vote distributions, or
multi-hot labels) yields those targets as they are.

Each image is decoded once, its channels converted, resized to ``S x S`` (bilinear, antialiased)
and rounded to uint8, as :meth:`ImageSet.load_images` does; so the cache and the shuffle buffer
hold one byte per pixel, and at the source's own size the pixels equal ``load_images`` exactly.
Augmentation (training only) runs on whole batches after that, then MixUp.

``make_dataset(..., balanced=True)`` draws every class with equal probability and never ends:
pass ``steps_per_epoch=steps_per_epoch(len(train), batch_size)`` to ``model.fit``.

This module imports TensorFlow; ``emokeras.datasets`` does not import it until one of these names
is used from there.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

# AugmentConfig lives in emokeras.configs (no TensorFlow); re-exported here.
from emokeras.configs import _SPECTROGRAM_VALUES, AugmentConfig  # noqa: F401
from emokeras.datasets.base import ImageSet
from emokeras.datasets.fer2013 import Fer2013Arrays
from emokeras.datasets.sources import Source
from emokeras.datasets.spec_augment import (
    FrequencyMasking,
    SeededAugmentation,
    TimeMasking,
    TimeShift,
)
from emokeras.errors import ConfigError, DatasetError

logger = logging.getLogger(__name__)

__all__ = [
    "SPECTROGRAM_AUGMENT",
    "AugmentConfig",
    "RandomResizedCrop",
    "build_augmentation",
    "class_weights",
    "make_dataset",
    "steps_per_epoch",
]



_MIN_INPUT_SIZE = 8
_SHOWN = 5  # how many bad items an error message lists


# --------------------------------------------------------------------------- augmentation


#: The augmentation for spectrograms: time shift and SpecAugment masks, nothing else.
SPECTROGRAM_AUGMENT = AugmentConfig.spectrogram()


@keras.saving.register_keras_serializable(package="emokeras")
class RandomResizedCrop(SeededAugmentation):
    """Random resized crop that keeps the aspect ratio: zoom in by up to ``zoom`` at a random place.

    Each image gets a square-relative crop (side ``1 - z`` of the image's, z ~ U[0, zoom]) placed
    uniformly inside the image, resized back to the input size (bilinear), as
    ``tf.image.crop_and_resize`` would, but through one batched projective transform (the op of
    the Keras geometric layers): one resampling, and never a pixel from outside the image. Works
    on TensorFlow tensors (tf.data or a TensorFlow-backend model); identity when not training.
    """

    def __init__(self, zoom: float, seed: int | None = None, **kwargs) -> None:
        super().__init__(seed=seed, **kwargs)
        if not 0 <= zoom < 1:
            raise ConfigError(f"RandomResizedCrop zoom must be in [0, 1), got {zoom!r}")
        self.zoom = float(zoom)

    def _active(self) -> bool:
        return self.zoom > 0

    def _augment(self, images: tf.Tensor) -> tf.Tensor:
        shape = tf.shape(images)
        count = shape[0]
        side = 1.0 - self._rng().uniform([count], 0.0, self.zoom)
        top = self._rng().uniform([count]) * (1.0 - side)
        left = self._rng().uniform([count]) * (1.0 - side)
        # Output pixel (x, y) samples input (left * (W-1) + side * x, top * (H-1) + side * y):
        # the crop [top, top + side] x [left, left + side] of the image (in fractions of H-1 and
        # W-1, as tf.image.crop_and_resize counts), stretched over the whole output.
        height = tf.cast(shape[1] - 1, tf.float32)
        width = tf.cast(shape[2] - 1, tf.float32)
        zeros = tf.zeros_like(side)
        transforms = tf.stack(
            [side, zeros, left * width, zeros, side, top * height, zeros, zeros], axis=1
        )
        cropped = tf.raw_ops.ImageProjectiveTransformV3(
            images=tf.cast(images, tf.float32), transforms=transforms, output_shape=shape[1:3],
            fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT",
        )  # fmt: skip
        return tf.cast(cropped, images.dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "zoom": self.zoom}


def build_augmentation(
    config: AugmentConfig = AugmentConfig(), seed: int | None = None
) -> keras.Sequential:
    """The per-image augmentation of ``config`` as a ``keras.Sequential`` on 0-255 images.

    Layers, in order: RandomFlip, RandomResizedCrop (zoom), RandomRotation, RandomTranslation,
    RandomBrightness, RandomContrast, TimeShift, FrequencyMasking, TimeMasking, each only if on;
    an ``Identity`` layer when all are off. The masks come last so that masked bands stay
    whole rows and columns of silence.
    MixUp is not here: it mixes labels too, so ``make_dataset`` applies it after batching.
    Each layer gets its own seed derived from ``seed`` (None: nondeterministic).
    """

    def layer_seed(offset: int) -> int | None:
        return None if seed is None else seed + offset

    layers: list[keras.layers.Layer] = []
    if config.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=layer_seed(1)))
    if config.zoom:
        layers.append(RandomResizedCrop(config.zoom, seed=layer_seed(2)))
    if config.rotation_degrees:
        layers.append(
            keras.layers.RandomRotation(
                config.rotation_degrees / 360.0, fill_mode="reflect", seed=layer_seed(3)
            )
        )
    if config.translate:
        layers.append(
            keras.layers.RandomTranslation(
                config.translate, config.translate, fill_mode="reflect", seed=layer_seed(4)
            )
        )
    if config.brightness:
        layers.append(
            keras.layers.RandomBrightness(
                config.brightness, value_range=(0, 255), seed=layer_seed(5)
            )
        )
    if config.contrast:
        layers.append(
            keras.layers.RandomContrast(config.contrast, value_range=(0, 255), seed=layer_seed(6))
        )
    if config.time_shift:
        layers.append(TimeShift(config.time_shift, seed=layer_seed(7)))
    if config.freq_mask:
        layers.append(FrequencyMasking(config.freq_mask, config.num_masks, seed=layer_seed(8)))
    if config.time_mask:
        layers.append(TimeMasking(config.time_mask, config.num_masks, seed=layer_seed(9)))
    if not layers:
        layers.append(keras.layers.Identity())
    return keras.Sequential(layers, name="augmentation")


# --------------------------------------------------------------------------- helpers for fit


def class_weights(
    labels: Sequence[int] | np.ndarray, num_classes: int, power: float = 1.0
) -> dict[int, float]:
    """Inverse-frequency class weights for ``model.fit(class_weight=...)``.

    ``n / (K * count)`` (scikit-learn's "balanced") with K the number of classes that have items,
    so the mean weight over the training items is exactly 1. ``power`` tempers them:
    ``(n / (K * count)) ** power``, scaled so that the mean stays 1 (0.5: the square root, which
    lifts a rare class less than full balancing and so costs less accuracy on the common ones).
    A class with no item gets 0.0, with a warning (it cannot be learnt from this data).
    """
    if not 0 < power <= 1:
        raise DatasetError(f"class_weights power must be in (0, 1], got {power!r}")
    _check_num_classes(num_classes)
    labels = _check_labels(np.asarray(labels), num_classes, "labels")
    if len(labels) == 0:
        raise DatasetError("class_weights got no labels")
    counts = np.bincount(labels, minlength=num_classes)
    present = int(np.count_nonzero(counts))
    empty = [k for k in range(num_classes) if counts[k] == 0]
    if empty:
        logger.warning("classes %s have no training items; their class weight is 0.0", empty)
    total = len(labels)
    raw = np.array([(total / (present * c)) ** power if c else 0.0 for c in counts.tolist()])
    scale = total / float(np.dot(raw, counts))  # mean weight over the items = 1
    return {k: float(raw[k] * scale) for k in range(num_classes)}


def steps_per_epoch(num_items: int, batch_size: int) -> int:
    """Batches that cover ``num_items`` once: ``ceil(num_items / batch_size)``.

    Pass it to ``model.fit(steps_per_epoch=...)`` with a ``balanced=True`` dataset, which never
    ends, so that an epoch draws about as many items as the training set holds.
    """
    _check_positive_int(num_items, "num_items")
    _check_positive_int(batch_size, "batch_size")
    return math.ceil(int(num_items) / int(batch_size))


# --------------------------------------------------------------------------- make_dataset


def make_dataset(
    source: Source,
    *,
    num_classes: int,
    input_size: int,
    channels: int = 3,
    batch_size: int = 32,
    training: bool = False,
    augment: AugmentConfig | None = None,
    balanced: bool = False,
    shuffle_buffer: int | None = None,
    seed: int = 0,
    cache: bool = False,
) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of ``(images, one_hot_labels)`` batches from ``source``.

    ``source`` is an :class:`ImageSet` (files, decoded by TensorFlow), :class:`Fer2013Arrays`, or
    ``(images, labels)`` with images uint8 ``(N, H, W)`` or ``(N, H, W, C)`` (C 1 or 3). Images
    come out float32 ``(B, input_size, input_size, channels)`` in [0, 255]; gray sources are
    repeated to RGB, RGB sources converted to gray as ``channels`` asks.

    - ``training=False`` (validation, test, prediction): items in source order, every item once,
      never augmented.
    - ``training=True``: shuffled (seeded, reshuffled every epoch), augmented by ``augment`` per
      image, then MixUp per batch when ``augment.mixup_alpha > 0``. The last batch may be smaller.
      ``shuffle_buffer=None`` (the default) shuffles the whole set uniformly. A smaller buffer
      only mixes neighbours: a source stored class by class (FER2013's folders, 28,709 faces,
      with the old 10,000) then gives batches of a few classes at a time that change along the
      epoch.
    - ``balanced=True`` (training only): each batch item comes from a class drawn with equal
      probability among the classes present, so rare classes repeat more often. The dataset is
      then **infinite**: pass ``steps_per_epoch=steps_per_epoch(len(source), batch_size)`` to
      ``model.fit``.
    - ``cache=True`` keeps the decoded, resized uint8 images in memory after the first epoch
      (``N * S * S * C`` bytes; a training set's shuffle buffer then holds decoded images too,
      up to as many again); augmentation still runs fresh every epoch.

    Bad arguments raise ``ValueError``, bad data ``DatasetError``, both naming the value; files
    that do not exist raise ``DatasetError`` here, listing the first few. A file that exists but is
    not a JPEG, PNG, GIF or BMP raises ``tf.errors.InvalidArgumentError`` naming it when the
    dataset reaches it.
    """
    _check_num_classes(num_classes)
    if isinstance(input_size, bool) or not isinstance(input_size, int | np.integer):
        raise ValueError(f"input_size must be an integer, got {input_size!r}")
    if input_size < _MIN_INPUT_SIZE:
        raise ValueError(f"input_size must be at least {_MIN_INPUT_SIZE}, got {input_size}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    _check_positive_int(batch_size, "batch_size")
    if shuffle_buffer is not None:
        _check_positive_int(shuffle_buffer, "shuffle_buffer")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if balanced and not training:
        raise ValueError(
            "balanced=True needs training=True: balanced sampling repeats items and never ends, "
            "so it is for training; evaluate on the plain dataset"
        )
    if augment is not None and not isinstance(augment, AugmentConfig):
        raise TypeError(f"augment must be an AugmentConfig or None, got {type(augment).__name__}")
    input_size = int(input_size)

    items, labels, loader, description = _source_items(source, num_classes, channels, input_size)
    if balanced and labels.ndim == 2:
        raise ValueError("balanced=True needs one integer label per item, not soft targets")
    n = len(labels)

    def buffer_for(count: int) -> int:
        return count if shuffle_buffer is None else min(shuffle_buffer, count)

    def items_dataset(index: np.ndarray | None) -> tf.data.Dataset:
        chosen = items if index is None else tuple(part[index] for part in items)
        chosen_labels = labels if index is None else labels[index]
        return tf.data.Dataset.from_tensor_slices((*chosen, chosen_labels))

    def decoded(dataset: tf.data.Dataset) -> tf.data.Dataset:
        return dataset.map(loader, num_parallel_calls=tf.data.AUTOTUNE)

    if balanced:
        per_class = []
        present = [k for k in range(num_classes) if np.any(labels == k)]
        missing = [k for k in range(num_classes) if k not in present]
        if missing:
            logger.warning(
                "balanced sampling: classes %s have no items; drawing from the %d classes present",
                missing, len(present),
            )  # fmt: skip
        for k in present:
            index = np.flatnonzero(labels == k)
            dataset = items_dataset(index)
            if cache:
                dataset = decoded(dataset).cache()
            dataset = dataset.shuffle(
                buffer_for(len(index)), seed=seed + k, reshuffle_each_iteration=True
            ).repeat()
            per_class.append(dataset)
        dataset = tf.data.Dataset.sample_from_datasets(
            per_class, seed=seed, rerandomize_each_iteration=True
        )
        if not cache:
            dataset = decoded(dataset)
    else:
        dataset = items_dataset(None)
        if cache:
            dataset = decoded(dataset).cache()
        if training:
            # Without a cache the (cheap) paths or small arrays are shuffled before decoding.
            dataset = dataset.shuffle(buffer_for(n), seed=seed, reshuffle_each_iteration=True)
        if not cache:
            dataset = decoded(dataset)

    dataset = dataset.batch(batch_size, drop_remainder=False)
    config = augment if training and augment is not None else None
    if augment is not None and not training:
        logger.debug("augmentation ignored: training=False never augments")
    layers = (
        build_augmentation(config, seed=seed).layers
        if config is not None and config.augments_images
        else []
    )

    def finish(images, labels_batch):
        images = tf.cast(images, tf.float32)
        for layer in layers:
            images = layer(images, training=True)
        if labels_batch.dtype.is_floating:  # soft or multi-hot targets, as given
            return images, labels_batch
        return images, tf.one_hot(labels_batch, num_classes, dtype=tf.float32)

    dataset = dataset.map(finish, num_parallel_calls=tf.data.AUTOTUNE)
    mixup = config is not None and config.mixup_alpha > 0
    if mixup:
        dataset = _with_mixup(dataset, config.mixup_alpha, seed)
    logger.info(
        "dataset of %s: %d items, %d classes, %dx%dx%d, batch %d, %s%s%s%s",
        description, n, num_classes, input_size, input_size, channels, batch_size,
        "training (shuffled" if training else "evaluation (in order",
        ", augmented" if layers else "",
        f", MixUp alpha {config.mixup_alpha:g}" if mixup else "",
        ", balanced, infinite)" if balanced else ")",
    )  # fmt: skip
    return dataset.prefetch(tf.data.AUTOTUNE)


def _with_mixup(dataset: tf.data.Dataset, alpha: float, seed: int) -> tf.data.Dataset:
    """MixUp per batch: lambda ~ Beta(alpha, alpha), each item mixed with a shuffled partner.

    Randomness comes from ``Dataset.random`` (re-drawn every epoch) through stateless ops, so it is
    reproducible for a seed and safe in parallel maps.
    """
    randoms = tf.data.Dataset.random(seed=seed + 7919, rerandomize_each_iteration=True)

    def mix(batch, key):
        images, labels = batch
        seeds = tf.random.experimental.stateless_split(tf.stack([key, tf.constant(0, tf.int64)]), 3)
        a = tf.random.stateless_gamma([], seed=seeds[0], alpha=alpha)
        b = tf.random.stateless_gamma([], seed=seeds[1], alpha=alpha)
        # For tiny alpha both draws can underflow to 0; lambda 1 then leaves the batch unmixed.
        lam = tf.where(a + b > 0, a / tf.maximum(a + b, 1e-30), 1.0)
        order = tf.random.experimental.stateless_shuffle(tf.range(tf.shape(labels)[0]), seeds[2])
        mixed_images = lam * images + (1.0 - lam) * tf.gather(images, order)
        mixed_labels = lam * labels + (1.0 - lam) * tf.gather(labels, order)
        return tf.clip_by_value(mixed_images, 0.0, 255.0), mixed_labels

    return tf.data.Dataset.zip((dataset, randoms)).map(mix, num_parallel_calls=tf.data.AUTOTUNE)


def _source_items(source, num_classes: int, channels: int, input_size: int):
    """(tensors to slice, labels int64, per-item loader, description) for a source."""
    if isinstance(source, Fer2013Arrays):
        source = (source.images, source.labels)
    if isinstance(source, ImageSet):
        if len(source) == 0:
            raise DatasetError("the ImageSet is empty: no images to make a dataset of")
        if num_classes != len(source.label_set):
            logger.warning(
                "num_classes is %d but the ImageSet's label set %r has %d classes",
                num_classes, source.label_set.name, len(source.label_set),
            )  # fmt: skip
        labels = _check_labels(source.labels, num_classes, "ImageSet labels")
        _check_files_exist(source.paths)
        paths = np.array(source.paths, dtype=object)

        def load_file(path, label):
            return _prepare(_decode_file(path), channels, input_size), label

        return (paths,), labels, load_file, f"{len(paths)} image files"
    if isinstance(source, tuple) and len(source) == 2:
        images, labels = (np.asarray(part) for part in source)
        if images.dtype != np.uint8:
            raise DatasetError(f"images must be uint8 (0-255), got dtype {images.dtype}")
        if images.ndim == 4 and images.shape[-1] not in (1, 3):
            raise DatasetError(
                f"images must be (N, H, W) or (N, H, W, C) with C 1 or 3, got {images.shape}"
            )
        if images.ndim not in (3, 4):
            raise DatasetError(f"images must be (N, H, W) or (N, H, W, C), got {images.shape}")
        if len(images) == 0:
            raise DatasetError("the image array is empty: no images to make a dataset of")
        if labels.ndim == 2:  # soft or multi-hot targets, one row per image
            labels = _check_targets(labels, len(images), num_classes)
        elif labels.shape != (len(images),):
            raise DatasetError(
                f"labels must have shape ({len(images)},) for {len(images)} images, "
                f"got {labels.shape}"
            )
        else:
            labels = _check_labels(labels, num_classes, "labels")
        if images.ndim == 3:
            images = images[..., np.newaxis]

        def load_array(image, label):
            return _prepare(image, channels, input_size), label

        return (images,), labels, load_array, f"{len(images)} arrays of {images.shape[1:]}"
    raise TypeError(
        "source must be an ImageSet, Fer2013Arrays or an (images, labels) tuple of arrays, "
        f"got {type(source).__name__}"
    )


def _decode_file(path: tf.Tensor) -> tf.Tensor:
    """Decode one image file to uint8 (H, W, C) with C as stored; name the file if not an image."""
    data = tf.io.read_file(path)
    head = tf.strings.substr(data, 0, 4)
    known = tf.reduce_any(
        [
            tf.io.is_jpeg(data),
            tf.equal(head, b"\x89PNG"),
            tf.equal(tf.strings.substr(data, 0, 3), b"GIF"),
            tf.equal(tf.strings.substr(data, 0, 2), b"BM"),
        ]
    )
    check = tf.debugging.Assert(
        known, ["cannot decode image: not a JPEG, PNG, GIF or BMP file:", path], summarize=1
    )
    with tf.control_dependencies([check]):
        data = tf.identity(data)
    # decode_jpeg with the accurate IDCT decodes exactly as OpenCV (load_image) does; the default
    # fast IDCT is off by a level here and there.
    image = tf.cond(
        tf.io.is_jpeg(data),
        lambda: tf.io.decode_jpeg(data, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(data, expand_animations=False, dtype=tf.uint8),
    )
    image.set_shape([None, None, None])
    return image


def _prepare(image: tf.Tensor, channels: int, input_size: int) -> tf.Tensor:
    """uint8 (H, W, C) to uint8 (S, S, channels): channels converted (alpha dropped), resized."""
    stored = tf.shape(image)[-1]
    image = tf.cast(image, tf.float32)
    if channels == 3:
        if image.shape[-1] in (3, 4):
            image = image[..., :3]
        elif image.shape[-1] in (1, 2):
            image = tf.image.grayscale_to_rgb(image[..., :1])
        else:
            image = tf.cond(
                stored < 3,
                lambda: tf.image.grayscale_to_rgb(image[..., :1]),
                lambda: image[..., :3],
            )
    else:
        if image.shape[-1] in (3, 4):
            image = tf.image.rgb_to_grayscale(image[..., :3])
        elif image.shape[-1] in (1, 2):
            image = image[..., :1]
        else:
            image = tf.cond(
                stored >= 3,
                lambda: tf.image.rgb_to_grayscale(image[..., :3]),
                lambda: image[..., :1],
            )
    image.set_shape([None, None, channels])
    height_width = tf.shape(image)[:2]
    target = tf.constant([input_size, input_size])
    image = tf.cond(
        tf.reduce_all(tf.equal(height_width, target)),
        lambda: image,
        lambda: tf.image.resize(image, target, method="bilinear", antialias=True),
    )
    image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
    image.set_shape([input_size, input_size, channels])
    return image


# --------------------------------------------------------------------------- checks


def _check_num_classes(num_classes: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer):
        raise ValueError(f"num_classes must be an integer, got {num_classes!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")


def _check_positive_int(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_labels(labels: np.ndarray, num_classes: int, what: str) -> np.ndarray:
    """Integer labels in [0, num_classes) as int64 (1-D), else ``DatasetError`` naming a bad one."""
    if labels.ndim != 1:
        raise DatasetError(f"{what} must be one integer per item, got shape {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(f"{what} must be integers, got dtype {labels.dtype}")
    labels = labels.astype(np.int64, copy=False)
    bad = (labels < 0) | (labels >= num_classes)
    if np.any(bad):
        position = int(np.flatnonzero(bad)[0])
        raise DatasetError(
            f"{what}: label {int(labels[position])} (item {position}) is outside "
            f"0..{num_classes - 1} for num_classes={num_classes}"
        )
    return labels


def _check_targets(targets: np.ndarray, count: int, num_classes: int) -> np.ndarray:
    """Soft or multi-hot targets (count, num_classes) in [0, 1] as float32, else DatasetError."""
    if targets.shape != (count, num_classes):
        raise DatasetError(
            f"targets must have shape ({count}, {num_classes}) for {count} images and "
            f"{num_classes} classes, got {targets.shape}"
        )
    if not np.issubdtype(targets.dtype, np.floating):
        raise DatasetError(f"targets must be floats in [0, 1], got dtype {targets.dtype}")
    bad = ~np.isfinite(targets) | (targets < 0) | (targets > 1)
    if np.any(bad):
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        raise DatasetError(f"targets of item {row} are outside [0, 1]: {targets[row].tolist()}")
    return targets.astype(np.float32, copy=False)


def _check_files_exist(paths: Sequence[str]) -> None:
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        shown = ", ".join(repr(p) for p in missing[:_SHOWN])
        more = f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else ""
        raise DatasetError(
            f"{len(missing)} of {len(paths)} image files do not exist: {shown}{more}"
        )
