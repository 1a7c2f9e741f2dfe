"""Spectrogram models and SpecAugment on real spectrograms of the four RAVDESS clips.

``spec_cnn`` and ``mobilevit`` go through ``build_model`` and ``emokeras.training.fit`` as any
image backbone does: one-channel 128x128 uint8 spectrograms in, class probabilities out.
"""

from __future__ import annotations

import argparse

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import RAVDESS_CLIPS

from emokeras.audio import audio_spectrogram
from emokeras.cli.args import add_config_arguments, config_from_arguments
from emokeras.datasets.pipeline import (
    SPECTROGRAM_AUGMENT,
    AugmentConfig,
    build_augmentation,
    make_dataset,
)
from emokeras.datasets.spec_augment import FrequencyMasking, TimeMasking, TimeShift
from emokeras.errors import ConfigError
from emokeras.labels import SPEECH5
from emokeras.models import (
    backbone_name,
    build_model,
    freeze_backbone,
    get_backbone,
    get_backbone_spec,
)
from emokeras.models.mobilevit import SIZES, mobilevit_backbone
from emokeras.training import Phase, TrainConfig, fit

CLIPS = ("actor01_sample_01", "actor01_sample_02", "actor02_sample_03", "actor02_sample_04")
NUM_CLASSES = len(SPEECH5)
#: backbone: (the block a second phase unfreezes from, a block before it, left frozen). For
#: MobileViT only its last 1x1 convolution: tracing a train step through its transformers takes
#: 40-90 s on two busy CPU cores (test_models trains all of it, eagerly, at 64 px).
PROGRESSIVE = {"spec_cnn": ("block3", "block2"), "mobilevit": ("final", "stage5")}
#: backbone: a block to unfreeze from, in the middle of the network
MIDDLE_BLOCK = {"spec_cnn": "block3", "mobilevit": "stage4"}


@pytest.fixture(scope="module")
def spectrograms() -> tuple[np.ndarray, np.ndarray]:
    """uint8 (4, 128, 128) log-mel spectrograms of the clips' speech, with SPEECH5 labels.

    The clips' emotions are not known (three are neutral or angry by eye and SPEECH5 has no
    angry): labels 0..3 are stand-ins, since one step of training tests the mechanics only.
    """
    images = np.stack([audio_spectrogram(RAVDESS_CLIPS / f"{clip}.mp4") for clip in CLIPS])
    return images, np.arange(len(CLIPS))


def _batch(images: np.ndarray) -> tf.Tensor:
    return tf.constant(images[..., np.newaxis], tf.float32)


# --- Backbones ----------------------------------------------------------------------------------


def _weights_of(model: keras.Model, prefix: str) -> list[np.ndarray]:
    """Every weight (BatchNorm statistics too) of the backbone layers of one block."""
    backbone = get_backbone(model)
    return [
        keras.ops.convert_to_numpy(w).copy()
        for layer in backbone.layers
        if layer.name.startswith(prefix)
        for w in layer.weights
    ]


def _changed(before: list[np.ndarray], after: list[np.ndarray]) -> bool:
    assert before and len(before) == len(after)
    return any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PROGRESSIVE))
# The reloaded model is all trainable, so the optimizer state saved after phase 1 (fewer
# variables) is skipped, with a warning; predictions do not depend on it.
@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_two_phase_fit_on_spectrograms_then_save_and_reload(name, spectrograms, tmp_path):
    images, labels = spectrograms
    unfreeze, frozen = PROGRESSIVE[name]
    model = build_model(name, NUM_CLASSES, weights=None, channels=1)
    assert model.input_shape == (None, 128, 128, 1) and model.output_shape == (None, NUM_CLASSES)
    assert get_backbone_spec(name).default_input_size == 128
    assert not [x for x in model._flatten_layers() if isinstance(x, keras.layers.Lambda)]

    config = TrainConfig(
        backbone=name, weights=None, channels=1, batch_size=4, label_smoothing=0.1,
        phases=(Phase(0, 1, 1e-3), Phase(unfreeze, 1, 1e-3)), augment=SPECTROGRAM_AUGMENT,
        class_balance="none", warmup_fraction=0.0,
    )  # fmt: skip
    first = _weights_of(model, frozen)
    later = _weights_of(model, unfreeze)
    head = model.get_layer("head_logits").get_weights()[0].copy()
    result = fit(model, (images, labels), (images, labels), config)

    assert result.phases_run == (0, 1)
    assert [row["phase"] for row in result.history] == [0, 1]
    assert all(np.isfinite(row["loss"]) for row in result.history)
    assert model.loss.get_config()["label_smoothing"] == 0.1
    assert not _changed(first, _weights_of(model, frozen))  # before the unfrozen block: frozen
    assert _changed(later, _weights_of(model, unfreeze))
    assert not np.array_equal(head, model.get_layer("head_logits").get_weights()[0])

    path = tmp_path / f"{name}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    batch = images[..., np.newaxis].astype("float32")
    expected = model.predict(batch, verbose=0)
    np.testing.assert_allclose(reloaded.predict(batch, verbose=0), expected, atol=1e-6)
    np.testing.assert_allclose(expected.sum(axis=1), 1.0, atol=1e-5)
    assert backbone_name(reloaded) == name


@pytest.mark.parametrize("name", sorted(MIDDLE_BLOCK))
def test_freezing_from_a_block_leaves_only_later_blocks_trainable(name):
    spec = get_backbone_spec(name)
    unfreeze = MIDDLE_BLOCK[name]
    model = build_model(name, NUM_CLASSES, weights=None, channels=1)
    later = spec.blocks[spec.blocks.index(unfreeze) :]
    summary = freeze_backbone(model, unfreeze)
    assert summary.trainable_layers
    assert all(path.startswith(later) for path in summary.trainable_layers)
    assert any(path.startswith(later[-1]) for path in summary.trainable_layers)
    # BatchNorm trains too: these backbones learn from scratch.
    assert any(path.endswith("_bn") for path in summary.trainable_layers)
    for layer in get_backbone(model).layers:
        if layer.weights and not layer.name.startswith(later):
            assert not layer.trainable_weights, layer.name
    everything = freeze_backbone(model, "all")
    assert everything.frozen_layers == 0
    assert freeze_backbone(model, 0).trainable_layers == ()


@pytest.mark.slow
# At 64 px the stride-32 map is 2x2: one patch, so Keras warns of a softmax over one token.
@pytest.mark.filterwarnings("ignore:You are using a softmax over axis")
def test_mobilevit_takes_multiples_of_32_and_counts_parameters(spectrograms):
    images, _ = spectrograms
    spec = get_backbone_spec("mobilevit")
    for size in (64, 96):  # 96: the 3x3 map at stride 32 is resized to 4x4 for its patches
        model = build_model("mobilevit", NUM_CLASSES, weights=None, input_size=size, channels=1)
        small = tf.image.resize(_batch(images[:2]), (size, size)).numpy()
        probabilities = keras.ops.convert_to_numpy(model(small, training=False))
        assert probabilities.shape == (2, NUM_CLASSES)
        assert np.isfinite(probabilities).all()
    for bad in (80, 32):
        with pytest.raises(ConfigError, match="mobilevit"):
            spec.check_input_size(bad)
    # The paper's sizes: 1.3M (XXS) and 2.3M (XS) parameters with a 1000-class classifier.
    for size, total in (("xxs", 1.27e6), ("xs", 2.32e6)):
        backbone = mobilevit_backbone((128, 128, 3), size=size)
        features = SIZES[size].features
        assert backbone.output_shape == (None, features)
        assert abs(backbone.count_params() + features * 1000 + 1000 - total) / total < 0.02
    with pytest.raises(ConfigError, match="xxl"):
        mobilevit_backbone((128, 128, 3), size="xxl")


def test_mobilevit_unfolds_2x2_patches_by_position_and_folds_back():
    backbone = mobilevit_backbone((128, 128, 3))
    stage = "stage3_mvit"  # a 16x16 map of width 64 at stride 8
    unfold = [backbone.get_layer(f"{stage}_{n}") for n in ("unfold_split", "unfold_permute",
                                                            "unfold")]
    fold = [backbone.get_layer(f"{stage}_{n}") for n in ("fold_split", "fold_permute", "fold")]
    grid = np.random.default_rng(0).normal(size=(2, 16, 16, 64)).astype("float32")
    x = grid
    for layer in unfold:
        x = layer(x)
    tokens = keras.ops.convert_to_numpy(x)
    assert tokens.shape == (2, 4, 64, 64)  # (batch, position in patch, patch, channels)
    for position, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        # The tokens of one position are that pixel of every patch, patches in raster order.
        expected = grid[:, dy::2, dx::2].reshape(2, 64, 64)
        np.testing.assert_array_equal(tokens[:, position], expected)
    for layer in fold:
        x = layer(x)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(x), grid)
    attention = backbone.get_layer(f"{stage}_transformer1_mha")
    assert tuple(attention.get_config()["attention_axes"]) == (2,)  # over the patches, per position


# --- SpecAugment --------------------------------------------------------------------------------


def _runs(flags: np.ndarray) -> list[int]:
    """Lengths of the runs of True in a 1-D boolean array."""
    padded = np.concatenate([[0], flags.astype(int), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return list(edges[1::2] - edges[::2])


@pytest.mark.parametrize(("layer_class", "axis"), [(FrequencyMasking, 1), (TimeMasking, 2)])
def test_masks_zero_whole_bands_within_the_widths(layer_class, axis, spectrograms):
    images, _ = spectrograms
    batch = _batch(images)
    out = layer_class(0.15, num_masks=2, seed=0)(batch, training=True).numpy()
    original = batch.numpy()
    other = 3 - axis  # the image axis the masks span whole
    changed = out != original
    assert (out[changed] == 0).all()  # masking only writes silence
    assert changed.any()
    banded = changed.any(axis=(other, 3))  # (B, length): rows (or columns) with a change
    for image, bands in zip(out, banded, strict=True):  # whole bands are silent
        assert (np.take(image, np.flatnonzero(bands), axis=axis - 1) == 0).all()

    # On a constant image every masked band shows: at most 2 of at most floor(0.15 * 128) = 19.
    loud = tf.fill((64, 128, 128, 1), 255.0)
    masked = layer_class(0.15, num_masks=2, seed=1)(loud, training=True).numpy()
    zero = masked == 0
    assert set(np.unique(masked)) <= {0.0, 255.0}
    bands = zero.all(axis=(other, 3))  # (64, length)
    np.testing.assert_array_equal(zero.any(axis=(other, 3)), bands)  # all or nothing across
    widths = [_runs(row) for row in bands]
    assert all(len(runs) <= 2 and sum(runs) <= 38 for runs in widths)
    assert max(max(runs, default=0) for runs in widths) >= 15  # widths reach near the limit
    assert all(max(runs, default=0) <= 19 for runs in widths if len(runs) == 2)

    np.testing.assert_array_equal(layer_class(0.15, seed=0)(batch, training=False), original)
    as_uint8 = layer_class(0.15, seed=0)(tf.constant(images[..., None]), training=True)
    assert as_uint8.dtype == tf.uint8


def test_time_shift_moves_columns_and_fills_silence(spectrograms):
    images, _ = spectrograms
    batch = _batch(np.concatenate([images] * 4))
    original = batch.numpy()[..., 0]
    most = int(0.1 * 128)  # 12 frames
    for mode in ("zeros", "wrap"):
        out = TimeShift(0.1, mode=mode, seed=3)(batch, training=True).numpy()[..., 0]
        shifts = []
        for before, after in zip(original, out, strict=True):
            found = [
                s for s in range(-most, most + 1)
                if np.array_equal(after, _shifted(before, s, mode))
            ]  # fmt: skip
            assert found, "not a time shift within the limit"
            shifts.append(found[0])
        assert len(set(shifts)) > 1 and any(shifts)  # content moved, by per-image amounts
        assert out.min() >= 0 and out.max() <= 255
    np.testing.assert_array_equal(TimeShift(0.1, seed=3)(batch, training=False), batch)


def _shifted(image: np.ndarray, shift: int, mode: str) -> np.ndarray:
    rolled = np.roll(image, shift, axis=1)
    if mode == "zeros" and shift > 0:
        rolled[:, :shift] = 0
    elif mode == "zeros" and shift < 0:
        rolled[:, shift:] = 0
    return rolled


def test_spec_augment_is_seeded_and_serialisable(spectrograms):
    batch = _batch(spectrograms[0])
    for make in (
        lambda seed: FrequencyMasking(0.2, num_masks=3, seed=seed),
        lambda seed: TimeMasking(0.2, seed=seed),
        lambda seed: TimeShift(0.1, mode="wrap", seed=seed),
    ):
        layer = make(7)
        first = layer(batch, training=True).numpy()
        np.testing.assert_array_equal(make(7)(batch, training=True), first)
        assert not np.array_equal(layer(batch, training=True), first)  # fresh draws each call
        assert not np.array_equal(make(8)(batch, training=True), first)
        rebuilt = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
        assert type(rebuilt) is type(layer) and rebuilt.get_config() == layer.get_config()
    with pytest.raises(ConfigError, match="max_fraction"):
        FrequencyMasking(1.0)
    with pytest.raises(ConfigError, match="num_masks"):
        TimeMasking(0.1, num_masks=0)
    with pytest.raises(ConfigError, match="mode"):
        TimeShift(0.1, mode="reflect")


# --- AugmentConfig, the pipeline, TrainConfig and the CLI ----------------------------------------


def test_spectrogram_augment_config_and_pipeline(spectrograms):
    config = AugmentConfig.spectrogram()
    assert config == SPECTROGRAM_AUGMENT
    assert not (config.flip or config.rotation_degrees or config.zoom or config.translate
                or config.brightness or config.contrast)
    assert (config.freq_mask, config.time_mask, config.time_shift) == (0.15, 0.2, 0.1)
    assert AugmentConfig.spectrogram(num_masks=1).num_masks == 1
    names = [type(layer).__name__ for layer in build_augmentation(config, seed=0).layers]
    assert names == ["TimeShift", "FrequencyMasking", "TimeMasking"]
    only_masks = AugmentConfig.spectrogram(time_shift=0.0, time_mask=0.0)
    assert only_masks.augments_images
    for bad in ({"freq_mask": 1.0}, {"time_mask": -0.1}, {"time_shift": 1.5}, {"num_masks": 0}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            AugmentConfig(**bad)

    images, labels = spectrograms
    data = {"num_classes": NUM_CLASSES, "input_size": 128, "channels": 1, "batch_size": 4}
    plain = next(iter(make_dataset((images, labels), **data, augment=config)))[0].numpy()
    np.testing.assert_array_equal(plain[..., 0], images)  # evaluation never augments
    trained = make_dataset((images, labels), **data, training=True, augment=config, seed=2)
    batch = next(iter(trained))[0].numpy()
    assert batch.shape == (4, 128, 128, 1)
    assert batch.min() >= 0 and batch.max() <= 255
    silent_rows = (batch == 0).all(axis=(2, 3)).sum()
    silent_columns = (batch == 0).all(axis=(1, 3)).sum()
    assert silent_rows > (images == 0).all(axis=2).sum()  # masks added silent bands
    assert silent_columns > (images == 0).all(axis=1).sum()


def test_train_config_and_cli_carry_spec_augment(tmp_path):
    config = TrainConfig(backbone="mobilevit", weights=None, channels=1,
                         augment=AugmentConfig.spectrogram(num_masks=3))
    data = config.to_dict()
    assert data["augment"]["freq_mask"] == 0.15 and data["augment"]["num_masks"] == 3
    assert TrainConfig.from_dict(data) == config

    parser = argparse.ArgumentParser()
    add_config_arguments(parser, TrainConfig)
    args = parser.parse_args([
        "--backbone", "spec_cnn", "--augment-freq-mask", "0.1", "--augment-time-mask", "0.25",
        "--augment-num-masks", "1", "--augment-time-shift", "0.05", "--no-augment-flip",
    ])  # fmt: skip
    augment = config_from_arguments(args, TrainConfig).augment
    assert (augment.freq_mask, augment.time_mask, augment.num_masks, augment.time_shift) == (
        0.1, 0.25, 1, 0.05,
    )  # fmt: skip
    assert augment.flip is False
    with pytest.raises(ConfigError, match="freq_mask"):
        config_from_arguments(parser.parse_args(["--augment-freq-mask", "2"]), TrainConfig)
