"""emokeras.models: the backbone registry, in-graph preprocessing, build, split and freeze.

Tiny configurations: 32 px inputs (48 for the grayscale small CNN), random weights except
MobileNetV2, which loads the real ImageNet file from ``../shared/weights``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from conftest import IMAGES, REPO_ROOT, SHARED

from emokeras.errors import ConfigError, EmokerasError
from emokeras.images import load_image
from emokeras.models import (
    BackboneSpec,
    GrayscaleToRGB,
    HeadConfig,
    VGGCaffePreprocessing,
    backbone_name,
    build_model,
    freeze_backbone,
    get_backbone,
    get_backbone_spec,
    list_backbones,
    register_backbone,
    split_at_backbone,
)

MOBILENET_WEIGHTS = SHARED / "weights" / "mobilenet_v2_1.0_224_imagenet_notop.weights.h5"
FACES = ("angry_f13.jpg", "disgust_m7.jpg", "happy_f15.jpg", "surprise_f1.jpg")
NUM_CLASSES = 7
#: Backbones whose build + fit + save + reload takes well over 15 s on two CPU cores.
SLOW_BACKBONES = {"vit_base"}  # 86M parameters: a 340 MB .keras file to write and read


def _face(size: int, name: str = "single_face.jpg", gray: bool = False) -> np.ndarray:
    """One real face photo as a float32 batch of one, 0-255, RGB (or gray with a channel axis)."""
    image = load_image(IMAGES / name, size=size, grayscale=gray).astype("float32")
    return (image[..., None] if gray else image)[None]


def _faces(size: int, gray: bool = False) -> tuple[np.ndarray, np.ndarray]:
    images = np.concatenate([_face(size, name, gray) for name in FACES])
    labels = keras.utils.to_categorical([0, 1, 3, 5], NUM_CLASSES)
    return images, labels


def _test_size(spec: BackboneSpec) -> int:
    """The smallest size >= 32 this backbone takes."""
    size = max(32, spec.min_input_size)
    return -(-size // spec.input_multiple) * spec.input_multiple


def _weights_for(name: str):
    return MOBILENET_WEIGHTS if name == "mobilenet_v2" else None


def _all_layers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    return layer._flatten_layers(include_self=False, recursive=True)


def _compile(model: keras.Model, eager: bool = True) -> None:
    # Eager: tracing a MobileNet or ViT train step into a graph takes ~20 s on two CPU cores and
    # proves nothing more here; test_grayscale_small_cnn trains in graph mode.
    model.compile(optimizer="adam", loss="categorical_crossentropy", run_eagerly=eager)


def _names(variables) -> set[str]:
    return {v.path for v in variables}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=[pytest.mark.slow] if name in SLOW_BACKBONES else [])
        for name in list_backbones()
    ],
)
def test_every_backbone_builds_predicts_fits_and_reloads(name, tmp_path):
    spec = get_backbone_spec(name)
    size = _test_size(spec)
    model = build_model(name, NUM_CLASSES, weights=_weights_for(name), input_size=size)

    assert model.input_shape == (None, size, size, 3)
    assert model.output_shape == (None, NUM_CLASSES)
    assert get_backbone(model).name == "backbone" and backbone_name(model) == name
    assert not [layer for layer in _all_layers(model) if isinstance(layer, keras.layers.Lambda)]

    face = _face(size)
    probabilities = model.predict(face, verbose=0)
    assert probabilities.shape == (1, NUM_CLASSES)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)

    images, labels = _faces(size)
    _compile(model)
    history = model.fit(images, labels, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])

    path = tmp_path / f"{name}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)  # safe mode, no custom_objects

    np.testing.assert_allclose(
        reloaded.predict(face, verbose=0), model.predict(face, verbose=0), atol=1e-6
    )
    assert backbone_name(reloaded) == name
    assert _names(reloaded.trainable_weights) == _names(model.trainable_weights)
    # Every block the spec advertises names real layers of the reloaded model.
    for block in spec.blocks:
        assert freeze_backbone(reloaded, block).trainable_layers


def test_a_fresh_interpreter_reloads_models_after_importing_emokeras_models(tmp_path):
    vit = tmp_path / "vit.keras"
    vgg_gray = tmp_path / "vgg_gray.keras"
    build_model("vit_tiny", NUM_CLASSES, weights=None, input_size=32).save(vit)
    build_model("vgg16", NUM_CLASSES, weights=None, input_size=32, channels=1).save(vgg_gray)
    script = textwrap.dedent(
        f"""
        import keras
        import emokeras.models
        for path in ({str(vit)!r}, {str(vgg_gray)!r}):
            keras.saving.load_model(path)
        print("reloaded")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "reloaded" in done.stdout


def test_grayscale_small_cnn_trains_in_graph_mode(caplog):
    caplog.set_level("INFO", logger="emokeras.models")
    model = build_model("small_cnn", NUM_CLASSES, weights=None, channels=1)

    assert model.input_shape == (None, 48, 48, 1)
    assert "small_cnn" in caplog.text
    assert isinstance(model.get_layer("grayscale_to_rgb"), GrayscaleToRGB)
    face = _face(48, gray=True)
    np.testing.assert_allclose(model.predict(face, verbose=0).sum(), 1.0, atol=1e-5)

    images, labels = _faces(48, gray=True)
    _compile(model, eager=False)
    before = model.get_layer("head_logits").get_weights()[0].copy()
    model.fit(images, labels, epochs=1, batch_size=4, verbose=0)
    assert not np.allclose(model.get_layer("head_logits").get_weights()[0], before)


def test_grayscale_to_rgb_repeats_one_channel_and_passes_three():
    gray = np.arange(2 * 4 * 4, dtype="float32").reshape(2, 4, 4, 1)
    rgb = keras.ops.convert_to_numpy(GrayscaleToRGB()(gray))
    np.testing.assert_array_equal(rgb, np.repeat(gray, 3, axis=-1))
    colour = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype("float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(GrayscaleToRGB()(colour)), colour)


def test_vgg_caffe_preprocessing_matches_keras():
    images = np.random.default_rng(0).uniform(0, 255, (3, 8, 8, 3)).astype("float32")
    expected = keras.applications.vgg16.preprocess_input(images.copy())
    got = keras.ops.convert_to_numpy(VGGCaffePreprocessing()(images))
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_mobilenet_v2_in_graph_preprocessing_gives_keras_features():
    model = build_model("mobilenet_v2", NUM_CLASSES, weights=MOBILENET_WEIGHTS, input_size=96)
    feature_extractor, _ = split_at_backbone(model)
    reference = keras.applications.MobileNetV2(
        include_top=False, weights=str(MOBILENET_WEIGHTS), input_shape=(96, 96, 3), pooling="avg"
    )
    images, _ = _faces(96)

    got = feature_extractor.predict(images, verbose=0)
    expected = reference.predict(
        keras.applications.mobilenet_v2.preprocess_input(images.copy()), verbose=0
    )

    assert got.shape == (4, 1280)
    assert np.abs(expected).max() > 0.1  # real weights, not a degenerate all-zero output
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_training_the_split_head_trains_the_model():
    model = build_model("small_cnn", NUM_CLASSES, weights=None, input_size=32)
    feature_extractor, head_model = split_at_backbone(model)
    images, labels = _faces(32)
    features = feature_extractor.predict(images, verbose=0)
    assert features.shape == (4, 256)
    assert {layer.name for layer in head_model.layers} >= {"head_dense", "probabilities"}

    before = model.get_layer("head_dense").get_weights()[0].copy()
    _compile(head_model)
    head_model.fit(features, labels, epochs=1, batch_size=4, verbose=0)

    assert not np.allclose(model.get_layer("head_dense").get_weights()[0], before)
    np.testing.assert_allclose(
        model.predict(images, verbose=0),
        head_model.predict(feature_extractor.predict(images, verbose=0), verbose=0),
        atol=1e-6,
    )


def test_linear_probe_head_and_mixed_precision_keep_float32_outputs():
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = build_model(
            "small_cnn", NUM_CLASSES, weights=None, input_size=32, head=HeadConfig(units=0)
        )
    finally:
        keras.config.set_dtype_policy(policy)
    names = {layer.name for layer in model.layers}
    assert "head_dense" not in names and "head_bn" not in names
    assert model.output.dtype == "float32"
    np.testing.assert_allclose(model.predict(_face(32), verbose=0).sum(), 1.0, atol=1e-3)


# --- freeze_backbone ------------------------------------------------------------------------


def _head_weights(model: keras.Model) -> set[str]:
    return {
        w.path
        for layer in model.layers
        if layer.name.startswith("head_") or layer.name == "probabilities"
        for w in layer.trainable_weights
    }


def test_freeze_vgg16_whole_backbone_then_block5():
    model = build_model("vgg16", NUM_CLASSES, weights=None, input_size=32)
    backbone = get_backbone(model)
    head = _head_weights(model)
    assert head

    summary = freeze_backbone(model, 0)
    assert summary.trainable_layers == () and summary.frozen_layers == 13
    assert _names(model.trainable_weights) == head
    assert summary.trainable_params == sum(int(np.prod(w.shape)) for w in model.trainable_weights)

    summary = freeze_backbone(model, "block5")
    block5 = ("block5_conv1", "block5_conv2", "block5_conv3")
    assert summary.trainable_layers == block5
    assert _names(model.trainable_weights) == head | {
        w.path for name in block5 for w in backbone.get_layer(name).weights
    }
    assert len(model.trainable_weights) == len(head) + 6


def test_freeze_mobilenet_v2_by_count_all_and_block():
    model = build_model("mobilenet_v2", NUM_CLASSES, weights=MOBILENET_WEIGHTS, input_size=32)
    backbone = get_backbone(model)
    batchnorms = [
        layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)
    ]
    weighted = [layer for layer in backbone.layers if layer.weights and layer not in batchnorms]
    head = _head_weights(model)

    summary = freeze_backbone(model, 3)
    top3 = tuple(layer.name for layer in weighted[-3:])
    assert summary.trainable_layers == top3 == ("block_16_depthwise", "block_16_project", "Conv_1")
    assert _names(model.trainable_weights) == head | {
        w.path for layer in weighted[-3:] for w in layer.weights
    }

    # From N=3 to "all": every layer must open again, not just the ones that were open.
    summary = freeze_backbone(model, "all")
    assert summary.trainable_layers == tuple(layer.name for layer in weighted)
    assert all(layer.trainable for layer in weighted)
    assert batchnorms and not any(layer.trainable for layer in batchnorms)
    assert not _names(model.trainable_weights) & {w.path for b in batchnorms for w in b.weights}

    # "block_1" is block 1 onwards; "block_10" does not drag in block_1's layers.
    assert freeze_backbone(model, "block_1").trainable_layers[0] == "block_1_expand"
    block10 = freeze_backbone(model, "block_10").trainable_layers
    assert block10[0] == "block_10_expand"
    assert not [name for name in block10 if name.startswith("block_1_")]

    assert freeze_backbone(model, 0).trainable_layers == ()
    assert _names(model.trainable_weights) == head


def test_freeze_vit_walks_into_keras_hub_layers():
    model = build_model("vit_tiny", NUM_CLASSES, weights=None, input_size=32)

    summary = freeze_backbone(model, "transformer_block_12")
    assert len(summary.trainable_layers) == 9  # ln_1, query, key, value, output, ln_2, 2 dense, ln
    assert all("transformer_block_12/" in n for n in summary.trainable_layers[:-1])
    assert summary.trainable_layers[-1].endswith("vit_encoder/ln")
    assert freeze_backbone(model, 1).trainable_layers == (summary.trainable_layers[-1],)

    everything = freeze_backbone(model, "all")
    assert everything.frozen_layers == 0
    # All but the head's BatchNorm statistics (2 x 256): a ViT has no BatchNorm.
    assert everything.non_trainable_params == 2 * 256
    assert everything.trainable_params + everything.non_trainable_params == model.count_params()


@pytest.mark.parametrize("bad", [-1, 10**6, True, 1.5, "block6", "everything", None])
def test_freeze_rejects_bad_values_naming_them(bad):
    model = build_model("vgg16", NUM_CLASSES, weights=None, input_size=32)
    with pytest.raises(ConfigError) as caught:
        freeze_backbone(model, bad)
    message = str(caught.value)
    assert repr(bad) in message or str(bad) in message
    assert "block5" in message  # lists the blocks


@pytest.mark.parametrize("unfreeze", [False, True], ids=["as_built", "all_unfrozen"])
def test_pretrained_backbone_batchnorm_stays_in_inference_mode(unfreeze):
    model = build_model("mobilenet_v2", NUM_CLASSES, weights=MOBILENET_WEIGHTS, input_size=32)
    backbone = get_backbone(model)
    if unfreeze:
        freeze_backbone(model, "all")
    batchnorms = [
        layer
        for layer in _all_layers(backbone)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    means = [layer.moving_mean.numpy().copy() for layer in batchnorms]
    kernel = backbone.get_layer("Conv_1").kernel.numpy().copy()

    images, labels = _faces(32)
    _compile(model)
    model.fit(images, labels, epochs=1, batch_size=4, verbose=0)

    for layer, mean in zip(batchnorms, means, strict=True):
        np.testing.assert_array_equal(layer.moving_mean.numpy(), mean, err_msg=layer.name)
    assert not np.allclose(backbone.get_layer("Conv_1").kernel.numpy(), kernel)  # it did train


def test_small_cnn_trained_from_scratch_updates_its_batchnorm():
    model = build_model("small_cnn", NUM_CLASSES, weights=None, input_size=32)
    assert freeze_backbone(model, "all").frozen_layers == 0  # BatchNorm included
    bn = get_backbone(model).get_layer("block1_bn1")
    mean = bn.moving_mean.numpy().copy()
    images, labels = _faces(32)
    _compile(model)
    model.fit(images, labels, epochs=1, batch_size=4, verbose=0)
    assert not np.allclose(bn.moving_mean.numpy(), mean)


# --- Weights from local files -----------------------------------------------------------------


def _assert_same_weights(got: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


def test_vit_from_a_local_keras_hub_preset(tmp_path):
    import keras_hub

    saved = keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3),
        patch_size=16,
        num_layers=12,
        num_heads=3,
        hidden_dim=192,
        mlp_dim=768,
    )
    preset = tmp_path / "preset"
    saved.save_to_preset(str(preset))

    model = build_model("vit_tiny", NUM_CLASSES, weights=preset, input_size=32)
    _assert_same_weights(get_backbone(model).get_weights(), saved.get_weights())

    with pytest.raises(ConfigError, match="48.*32x32"):
        build_model("vit_tiny", NUM_CLASSES, weights=preset, input_size=48)
    with pytest.raises(ConfigError, match="hidden_dim 192 .expected 384"):
        build_model("vit_small", NUM_CLASSES, weights=preset, input_size=32)
    with pytest.raises(ConfigError, match="folder"):
        build_model("vit_tiny", NUM_CLASSES, weights=preset / "config.json", input_size=32)


def test_small_cnn_from_a_local_weights_file(tmp_path):
    trained = build_model("small_cnn", NUM_CLASSES, weights=None)
    path = tmp_path / "small_cnn.weights.h5"
    get_backbone(trained).save_weights(path)

    model = build_model("small_cnn", NUM_CLASSES, weights=path)
    _assert_same_weights(get_backbone(model).get_weights(), get_backbone(trained).get_weights())


# --- Bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "named"),
    [
        (("resnet50",), {}, ["'resnet50'", "vgg16", "vit_tiny"]),
        (("small_cnn",), {"weights": "imagenet"}, ["small_cnn", "imagenet"]),
        (("vit_tiny",), {"weights": "imagenet"}, ["vit_tiny", "imagenet"]),
        (("vgg16",), {"weights": "/no/such/vgg16.weights.h5"}, ["/no/such/vgg16.weights.h5"]),
        (("vgg16",), {"weights": 123}, ["123", "imagenet", "None"]),
        (("vgg16",), {"input_size": 16}, ["16", "32"]),
        (("vit_tiny",), {"input_size": 40}, ["40", "16"]),
        (("vit_base",), {"input_size": 64}, ["64", "224"]),
        (("vgg16",), {"num_classes": 1}, ["num_classes", "1"]),
        (("vgg16",), {"channels": 2}, ["channels", "2"]),
    ],
)
def test_build_model_rejects_bad_input_naming_it(args, kwargs, named):
    kwargs = {"num_classes": NUM_CLASSES, "weights": None, **kwargs}
    if args == ("vit_base",):
        kwargs["weights"] = "imagenet"  # ImageNet ViT-B/16 takes 224 px only; checked offline
    with pytest.raises(ConfigError) as caught:
        build_model(*args, **kwargs)
    for part in named:
        assert part in str(caught.value)


def test_head_config_rejects_bad_values():
    for bad in ({"dropout": 1.0}, {"units": -1}, {"activation": "relu"}, {"batchnorm": "yes"}):
        with pytest.raises(ConfigError, match=repr(next(iter(bad.values())))):
            HeadConfig(**bad)


def test_registry_refuses_duplicates_and_models_without_a_backbone():
    with pytest.raises(ConfigError, match="vgg16"):
        register_backbone(get_backbone_spec("vgg16"))
    assert get_backbone_spec(" VGG16 ") is get_backbone_spec("vgg16")
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(EmokerasError, match="backbone"):
        get_backbone(plain)
    with pytest.raises(EmokerasError, match="backbone"):
        split_at_backbone(plain)
