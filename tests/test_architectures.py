"""The five from-scratch architectures of ``emokeras.models.architectures`` (and ViT-Tiny at 48 px).

Each builds at its default input size (48 px, grayscale as FER2013), fits one step on real FER2013
faces from the ``fer2013_subset`` fixture, and reloads in safe mode with identical predictions.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from emokeras.datasets import load_fer2013_folders
from emokeras.models import (
    ARCHITECTURES,
    HeadConfig,
    backbone_name,
    build_model,
    freeze_backbone,
    get_backbone,
    get_backbone_spec,
)
from emokeras.models.architectures import (
    FACE_REGIONS,
    AttentionPooling,
    ChannelPooling,
    LearnedPositionEmbedding,
    region_crop,
)
from emokeras.training import Phase, TrainConfig, fit

NUM_CLASSES = 7


@pytest.fixture(scope="module")
def fer_faces(fer2013_subset):
    """16 real FER2013 Training faces (uint8, 48x48x1) with one-hot labels, classes mixed."""
    train = load_fer2013_folders(fer2013_subset)["Training"]
    pick = np.concatenate([np.flatnonzero(train.labels == k)[:3] for k in range(NUM_CLASSES)])[:16]
    subset = train.subset(pick)
    images = subset.load_images(grayscale=True)[..., None]
    return images, subset.labels


def _all_layers(model):
    return model._flatten_layers(include_self=False, recursive=True)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_architecture_builds_fits_a_step_and_reloads(name, fer_faces, tmp_path):
    spec = get_backbone_spec(name)
    assert spec.default_input_size == 48 and not spec.freeze_batchnorm
    model = build_model(name, NUM_CLASSES, weights=None, channels=1)
    assert model.input_shape == (None, 48, 48, 1)
    assert model.output_shape == (None, NUM_CLASSES)
    assert backbone_name(model) == name
    assert not [layer for layer in _all_layers(model) if isinstance(layer, keras.layers.Lambda)]
    # trained from scratch: its BatchNorm layers learn
    bns = [x for x in _all_layers(model) if isinstance(x, keras.layers.BatchNormalization)]
    assert bns and all(layer.trainable for layer in bns)

    images, labels = fer_faces
    x = images.astype("float32")
    model.compile(optimizer="adam", loss="categorical_crossentropy", run_eagerly=True)
    before = [w.numpy().copy() for w in get_backbone(model).trainable_weights]
    history = model.fit(x, keras.utils.to_categorical(labels, NUM_CLASSES), batch_size=16,
                        epochs=1, verbose=0)  # fmt: skip
    assert np.isfinite(history.history["loss"][0])
    after = [w.numpy() for w in get_backbone(model).trainable_weights]
    assert any(not np.allclose(a, b) for a, b in zip(after, before, strict=True))

    path = tmp_path / f"{name}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)  # safe mode, no custom_objects
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)  # fmt: skip
    assert backbone_name(reloaded) == name
    for block in spec.blocks:
        assert freeze_backbone(reloaded, block).trainable_layers


def test_one_architecture_trains_through_the_recipe(fer2013_subset):
    sets = load_fer2013_folders(fer2013_subset)
    model = build_model("baseline_cnn", NUM_CLASSES, weights=None, channels=1)
    config = TrainConfig(
        backbone="baseline_cnn", weights=None, channels=1, phases=(Phase("all", 1, 1e-3),),
        batch_size=32, backbone_lr_multiplier=1.0, feature_cache=False,
    )  # fmt: skip
    result = fit(model, sets["Training"], sets["PublicTest"], config)
    assert len(result.history) == 1 and 0 <= result.best <= 1


def test_multiscale_branches_see_24_48_and_96_px():
    backbone = get_backbone(build_model("multiscale_cnn", NUM_CLASSES, weights=None))
    assert backbone.get_layer("small_resize").output.shape[1:3] == (24, 24)
    assert backbone.get_layer("large_resize").output.shape[1:3] == (96, 96)
    # every branch ends on the same 6x6 grid, fused there
    for branch in ("small_stage2", "mid_stage3", "large_stage4"):
        assert backbone.get_layer(f"{branch}_pool").output.shape[1:3] == (6, 6)
    assert backbone.get_layer("fusion_relu").output.shape[1:3] == (6, 6)


def test_region_ensemble_crops_fixed_regions_with_cropping_layers():
    backbone = get_backbone(build_model("region_ensemble", NUM_CLASSES, weights=None))
    for region, (top, bottom, left, right) in FACE_REGIONS.items():
        crop = backbone.get_layer(f"{region}_crop")
        assert isinstance(crop, keras.layers.Cropping2D)
        height = round(bottom * 48) - round(top * 48)
        width = round(right * 48) - round(left * 48)
        assert crop.output.shape[1:3] == (height, width)
        assert region_crop(48, region) == tuple(map(tuple, crop.cropping))
    # the crop is the pixels of that region, not a resampling
    image = np.arange(48 * 48 * 3, dtype="float32").reshape(1, 48, 48, 3)
    (top, _), (left, _) = region_crop(48, "mouth")
    got = keras.ops.convert_to_numpy(backbone.get_layer("mouth_crop")(image))
    np.testing.assert_array_equal(got[0, 0, 0], image[0, top, left])


def test_attention_pooling_weights_sum_to_one_and_reload():
    layer = AttentionPooling(8)
    items = np.random.default_rng(0).normal(size=(2, 3, 5)).astype("float32")
    pooled, weights = layer(items, return_weights=True)
    weights = keras.ops.convert_to_numpy(weights)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)
    expected = (items * weights[..., None]).sum(axis=1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(pooled), expected, atol=1e-5)
    clone = AttentionPooling.from_config(layer.get_config())
    assert clone.units == 8


def test_custom_layers_compute_what_they_say():
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 3)).astype("float32")
    pooled = keras.ops.convert_to_numpy(ChannelPooling()(x))
    np.testing.assert_allclose(pooled[..., 0], x.mean(axis=-1), atol=1e-6)
    np.testing.assert_allclose(pooled[..., 1], x.max(axis=-1), atol=1e-6)
    tokens = np.zeros((2, 6, 4), "float32")
    embedding = LearnedPositionEmbedding()
    out = keras.ops.convert_to_numpy(embedding(tokens))
    np.testing.assert_allclose(out[0], keras.ops.convert_to_numpy(embedding.embedding))
    with pytest.raises(ValueError):
        AttentionPooling(0)


def test_vit_tiny_works_at_48_px(fer_faces):
    model = build_model("vit_tiny", NUM_CLASSES, weights=None, input_size=48, channels=1,
                        head=HeadConfig(units=0))  # fmt: skip
    images, _ = fer_faces
    probabilities = model.predict(images[:2].astype("float32"), verbose=0)
    assert probabilities.shape == (2, NUM_CLASSES)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
