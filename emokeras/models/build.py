"""Build emotion models on a registered backbone, split them at the backbone, freeze and unfreeze.

A model is one functional graph::

    image (raw RGB 0-255) -> backbone_tag -> [grayscale_to_rgb] -> preprocessing
        -> backbone (one nested model) -> head_* -> probabilities

so a saved ``.keras`` file reloads with ``keras.saving.load_model(path)`` and nothing else.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import keras
import numpy as np

from emokeras.errors import ConfigError, EmokerasError
from emokeras.models.backbones import BackboneSpec, get_backbone_spec
from emokeras.models.heads import HeadConfig, build_head
from emokeras.models.layers import BackboneTag, GrayscaleToRGB

logger = logging.getLogger(__name__)

#: Name of the nested backbone layer in every model ``build_model`` makes.
BACKBONE_LAYER = "backbone"
#: Name of the layer that records the backbone's registry name (see ``BackboneTag``).
TAG_LAYER = "backbone_tag"


def build_model(
    backbone: str,
    num_classes: int,
    *,
    weights: str | os.PathLike[str] | None = "imagenet",
    input_size: int | None = None,
    channels: int = 3,
    head: HeadConfig | None = None,
    name: str | None = None,
) -> keras.Model:
    """Build a classifier: raw RGB (or gray) 0-255 images in, class probabilities out.

    ``backbone`` is a registered name (``list_backbones()``); ``weights`` is ``"imagenet"``,
    ``None`` or a path (see ``emokeras.models.backbones``). ``input_size`` defaults to the
    backbone's own. ``channels=1`` takes grayscale images and repeats them to RGB in the graph.
    A pretrained backbone's BatchNorm layers always run in inference mode, even when the backbone
    is unfrozen: they are frozen here and the backbone is called with ``training=False``. Every
    other layer starts trainable: choose what trains with ``freeze_backbone``.
    """
    spec = get_backbone_spec(backbone)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(f"num_classes must be an int >= 2, got {num_classes!r}")
    if isinstance(channels, bool) or not isinstance(channels, int) or channels not in (1, 3):
        raise ConfigError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    if head is not None and not isinstance(head, HeadConfig):
        raise ConfigError(f"head must be a HeadConfig or None, got {type(head).__name__}")
    size = spec.default_input_size if input_size is None else input_size

    extractor = spec.feature_extractor(size, weights)
    extractor.name = BACKBONE_LAYER
    if spec.freeze_batchnorm:
        # A frozen BatchNorm runs in inference mode. training=False below is not enough on its
        # own: Keras 3.15 lets fit's training=True override it on a nested model (fixed upstream
        # by keras-team/keras#23364).
        for layer in _walk(extractor):
            if _is_batchnorm(layer):
                layer.trainable = False

    image = keras.Input((size, size, channels), name="image", dtype="float32")
    x = BackboneTag(spec.name, name=TAG_LAYER)(image)
    if channels == 1:
        x = GrayscaleToRGB(name="grayscale_to_rgb")(x)
    for layer in spec.preprocessing():
        x = layer(x)
    # training=False states the transfer-learning recipe: a pretrained backbone's BatchNorm keeps
    # its statistics. A backbone trained from scratch must learn them, so its call is left free.
    features = extractor(x, training=False) if spec.freeze_batchnorm else extractor(x)
    outputs = build_head(features, num_classes, head)
    model = keras.Model(image, outputs, name=name or f"emokeras_{spec.name}")
    logger.info(
        "built model %r: backbone %s (weights %s), input %dx%dx%d, %d classes, %s parameters",
        model.name,
        spec.name,
        "random" if weights is None else str(weights),
        size,
        size,
        channels,
        num_classes,
        f"{model.count_params():,}",
    )
    return model


def get_backbone(model: keras.Model) -> keras.Model:
    """The model's nested ``"backbone"`` layer; EmokerasError if it has none."""
    try:
        return model.get_layer(BACKBONE_LAYER)
    except ValueError:
        raise EmokerasError(
            f"model {model.name!r} has no layer named {BACKBONE_LAYER!r}; "
            "was it made by build_model?"
        ) from None


def backbone_name(model: keras.Model) -> str:
    """The registry name of the backbone a model was built on (kept in its ``backbone_tag``)."""
    try:
        return model.get_layer(TAG_LAYER).backbone
    except (ValueError, AttributeError):
        raise EmokerasError(
            f"model {model.name!r} does not record its backbone (no {TAG_LAYER!r} layer); "
            "was it made by build_model?"
        ) from None


def split_at_backbone(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """Split into ``(feature_extractor, head_model)`` sharing the model's own layers.

    ``feature_extractor`` maps images to the backbone's pooled features; ``head_model`` maps those
    features to probabilities through the SAME head layer objects, so training ``head_model`` on
    cached features trains the full model's head.
    """
    backbone = get_backbone(model)
    index = model.layers.index(backbone)
    head_layers = model.layers[index + 1 :]
    if not head_layers:
        raise EmokerasError(f"model {model.name!r} has no layers after its backbone")
    # The first head layer's input is the backbone's output in this model's graph.
    features = head_layers[0].input
    feature_extractor = keras.Model(model.input, features, name=f"{model.name}_features")

    head_input = keras.Input(features.shape[1:], name="features", dtype=features.dtype)
    x = head_input
    for layer in head_layers:
        x = layer(x)
    head_model = keras.Model(head_input, x, name=f"{model.name}_head")
    if len(head_model.layers) != len(head_layers) + 1:
        raise EmokerasError(f"the head of model {model.name!r} is not a chain of layers")
    return feature_extractor, head_model


@dataclass(frozen=True)
class FreezeSummary:
    """What ``freeze_backbone`` left trainable.

    ``trainable_layers``: the backbone's weighted layers now trainable, in graph order (nested
    ones as ``outer/inner`` paths); ``frozen_layers``: how many of its weighted layers are frozen
    (BatchNorm included); parameter counts are for the whole model, head included.
    """

    trainable_layers: tuple[str, ...]
    frozen_layers: int
    trainable_params: int
    non_trainable_params: int


def freeze_backbone(model: keras.Model, trainable: int | str = 0) -> FreezeSummary:
    """Choose which backbone layers train; the head always does. Recompile the model afterwards.

    ``trainable`` is ``0`` (whole backbone frozen), ``"all"``, an int N (the top N weighted
    layers, counted from the output end without BatchNorm layers, and everything after the first
    of them) or a block name from the backbone's spec (that block and everything after it).
    BatchNormalization layers of a pretrained backbone always stay frozen. Keras builds its
    training step from the trainable flags at ``compile()``: call ``model.compile(...)`` again
    after every change, or the change has no effect.
    """
    backbone = get_backbone(model)
    spec = _spec_of(model)
    freeze_batchnorm = spec.freeze_batchnorm if spec else True

    # Open everything first, layer by layer: on the TensorFlow backend `layer.trainable = True`
    # is a no-op when the layer's own flag is already True, even if its sublayers are frozen.
    for layer in (backbone, *_walk(backbone)):
        layer.trainable = True
    units = list(_weighted_units(backbone))
    start = _first_trainable(units, trainable, spec, model)
    for i, (_, layer) in enumerate(units):
        layer.trainable = i >= start and not (freeze_batchnorm and _is_batchnorm(layer))
    if freeze_batchnorm:
        for layer in _walk(backbone):
            if _is_batchnorm(layer):
                layer.trainable = False
    if start >= len(units):
        backbone.trainable = False
    for layer in model.layers:
        if layer is not backbone:
            layer.trainable = True

    trainable_layers = tuple("/".join(path) for path, layer in units if layer.trainable)
    summary = FreezeSummary(
        trainable_layers=trainable_layers,
        frozen_layers=len(units) - len(trainable_layers),
        trainable_params=_count(model.trainable_weights),
        non_trainable_params=_count(model.non_trainable_weights),
    )
    logger.info(
        "freeze_backbone(%r, %r): %d backbone layers trainable, %d frozen; %s trainable parameters",
        model.name,
        trainable,
        len(trainable_layers),
        summary.frozen_layers,
        f"{summary.trainable_params:,}",
    )
    return summary


def _spec_of(model: keras.Model) -> BackboneSpec | None:
    try:
        name = backbone_name(model)
    except EmokerasError:
        return None
    return get_backbone_spec(name)


def _first_trainable(
    units: list[tuple[tuple[str, ...], keras.layers.Layer]],
    trainable: int | str,
    spec: BackboneSpec | None,
    model: keras.Model,
) -> int:
    """Index of the first unit to train: ``len(units)`` trains none, 0 trains all."""
    blocks = list(spec.blocks) if spec else []
    allowed = f"0, 'all', an int 1..N (the top N weighted layers) or a block name of {blocks}"
    if isinstance(trainable, bool):
        raise ConfigError(f"trainable {trainable!r} is not allowed; use {allowed}")
    if isinstance(trainable, int):
        counted = [i for i, (_, layer) in enumerate(units) if not _is_batchnorm(layer)]
        if not 0 <= trainable <= len(counted):
            raise ConfigError(
                f"trainable {trainable} is out of range: the backbone of {model.name!r} has "
                f"{len(counted)} weighted layers besides BatchNorm; use {allowed}"
            )
        return counted[-trainable] if trainable else len(units)
    if trainable == "all":
        return 0
    if isinstance(trainable, str) and trainable in blocks:
        for i, (path, _) in enumerate(units):
            if any(_in_block(name, trainable) for name in path):
                return i
        raise ConfigError(f"block {trainable!r} has no weighted layers in model {model.name!r}")
    if isinstance(trainable, str) and spec is None:
        raise ConfigError(
            f"trainable {trainable!r}: model {model.name!r} does not record its backbone, "
            "so block names cannot be resolved; use 0, 'all' or an int"
        )
    raise ConfigError(f"trainable {trainable!r} is not allowed; use {allowed}")


def _in_block(name: str, block: str) -> bool:
    """``block_1`` holds ``block_1`` and ``block_1_expand`` but not ``block_10``."""
    return name.startswith(block) and not name[len(block) : len(block) + 1].isdigit()


def _children(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    # Layers tracked as attributes (keras-hub's ViT encoder blocks) are not in `.layers`.
    return layer._flatten_layers(include_self=False, recursive=False)


def _walk(layer: keras.layers.Layer) -> Iterator[keras.layers.Layer]:
    for child in _children(layer):
        yield child
        yield from _walk(child)


def _weighted_units(
    layer: keras.layers.Layer, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], keras.layers.Layer]]:
    """The smallest layers that own trainable weights, in graph order, with their name paths.

    A layer that owns a weight itself (a ViT's embedding with its class token) is one unit with
    all its sublayers; a container that only holds sublayers is opened up.
    """
    for child in _children(layer):
        child_path = (*path, child.name)
        own = {id(w) for w in child.trainable_weights}
        if not own:
            continue
        grandchildren = _children(child)
        held = {id(w) for g in grandchildren for w in g.trainable_weights}
        if grandchildren and own <= held:
            yield from _weighted_units(child, child_path)
        else:
            yield child_path, child


def _is_batchnorm(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, keras.layers.BatchNormalization)


def _count(weights) -> int:
    return int(sum(np.prod(w.shape) for w in weights))
