"""Five from-scratch CNN architectures for 48x48 faces, registered as backbones.

The architectures of the comparison in ``benchmarks/compare_architectures.py`` (ViT-Tiny, the
sixth, is the registry's ``vit_tiny``):

- ``baseline_cnn``: three Conv-BN-ReLU-MaxPool layers (32/64/128 filters), flattened.
- ``attention_cnn``: the same three layers, each followed by CBAM-style channel attention (a
  shared MLP over average- and max-pooled channels) and spatial attention (a 7x7 convolution over
  the channel mean and max).
- ``multiscale_cnn``: the face resized inside the graph to half, the same and twice its size
  (24/48/96 px at the default 48), one small CNN per scale with 2/3/4 poolings so that every branch
  ends on the same S/8 grid, the three maps concatenated and fused by a 1x1 convolution.
- ``hybrid_cnn_transformer``: a three-stage CNN stem whose S/8 x S/8 map becomes tokens, a learned
  position embedding, two pre-norm transformer encoder blocks, average-pooled tokens.
- ``region_ensemble``: three specialists on fixed regions of the aligned face (an eye band, the
  mouth, the whole face), cut out in the graph with ``Cropping2D``, each giving an embedding; an
  attention layer weights the three embeddings (softmax over regions) into one.

The CNNs flatten their last map rather than average-pool it: three layers deep, their features
say what is there but not where, and where (brows up, mouth corners down) is what an expression
is; average-pooled, the baseline stayed at the majority class on 5000 FER2013 faces for four
epochs, flattened it reached 37% on PublicTest.

All train from scratch (``weights`` None, or a local ``.weights.h5`` file saved from the same
architecture), take [0, 1]-scaled RGB (``Rescaling`` in the graph) and keep their BatchNorm
layers trainable (``freeze_batchnorm=False``). Custom layers are registered serializable under
``"emokeras"``; there is no ``Lambda``, so saved models reload in safe mode.
"""

from __future__ import annotations

import keras
from keras import ops

from emokeras.errors import ConfigError
from emokeras.models.backbones import BackboneSpec, register_backbone

layers = keras.layers

#: Fixed regions of an aligned face, as fractions (top, bottom, left, right) of its side. FER2013
#: faces are registered so that the eyes lie around 35-45% of the height and the mouth around
#: 70-85%; the bands are generous so that a few pixels of misalignment keep the feature inside.
FACE_REGIONS: dict[str, tuple[float, float, float, float]] = {
    "eyes": (0.10, 0.55, 0.0, 1.0),
    "mouth": (0.55, 0.95, 0.15, 0.85),
}


# --- Custom layers ----------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="emokeras")
class ChannelPooling(keras.layers.Layer):
    """Mean and max over the channel axis, stacked: (B, H, W, C) -> (B, H, W, 2).

    The input of CBAM's spatial attention.
    """

    def call(self, inputs):
        return ops.concatenate(
            [ops.mean(inputs, axis=-1, keepdims=True), ops.max(inputs, axis=-1, keepdims=True)],
            axis=-1,
        )

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2)


@keras.saving.register_keras_serializable(package="emokeras")
class LearnedPositionEmbedding(keras.layers.Layer):
    """Add a learned embedding per token position: (B, N, D) -> (B, N, D)."""

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[1] is None or input_shape[2] is None:
            raise ConfigError(
                f"LearnedPositionEmbedding needs (batch, tokens, dim) with known sizes, "
                f"got {input_shape}"
            )
        self.embedding = self.add_weight(
            shape=(input_shape[1], input_shape[2]),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="embedding",
        )

    def call(self, inputs):
        return inputs + ops.cast(self.embedding, inputs.dtype)[None]

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="emokeras")
class AttentionPooling(keras.layers.Layer):
    """Attention-weighted sum over an axis of items: (B, R, D) -> (B, D).

    Each item gets a score ``v . tanh(W x + b)``; a softmax over the R items turns the scores into
    weights that sum to one. ``return_weights=True`` on a call also returns the weights (B, R).
    """

    def __init__(self, units: int = 64, **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise ConfigError(f"AttentionPooling units must be an int >= 1, got {units!r}")
        self.units = units

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ConfigError(f"AttentionPooling needs (batch, items, dim), got {input_shape}")
        dim = input_shape[-1]
        self.kernel = self.add_weight(shape=(dim, self.units), name="kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")
        self.score = self.add_weight(shape=(self.units, 1), name="score")

    def call(self, inputs, return_weights: bool = False):
        hidden = ops.tanh(ops.matmul(inputs, self.kernel) + self.bias)
        weights = ops.softmax(ops.matmul(hidden, self.score)[..., 0], axis=-1)  # (B, R)
        pooled = ops.sum(inputs * weights[..., None], axis=1)
        return (pooled, weights) if return_weights else pooled

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "units": self.units}


# --- Building blocks --------------------------------------------------------------------------


def _unit_scale() -> list[keras.layers.Layer]:
    """[0, 255] -> [0, 1]."""
    return [layers.Rescaling(1 / 255.0, name="preprocess_rescale")]


def _conv_bn_relu(x, filters: int, name: str, kernel: int = 3):
    # No bias: the BatchNormalization right after has its own offset.
    x = layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _cbam(x, name: str, ratio: int = 8, kernel: int = 7):
    """Channel attention then spatial attention (Woo et al., CBAM, 2018)."""
    channels = x.shape[-1]
    hidden = layers.Dense(max(channels // ratio, 4), activation="relu", name=f"{name}_ca_fc1")
    out = layers.Dense(channels, name=f"{name}_ca_fc2")
    avg = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_ca_avg")(x)
    mx = layers.GlobalMaxPooling2D(keepdims=True, name=f"{name}_ca_max")(x)
    scores = layers.Add(name=f"{name}_ca_add")([out(hidden(avg)), out(hidden(mx))])
    gate = layers.Activation("sigmoid", name=f"{name}_ca_gate")(scores)
    x = layers.Multiply(name=f"{name}_ca_apply")([x, gate])
    pooled = ChannelPooling(name=f"{name}_sa_pool")(x)
    spatial = layers.Conv2D(
        1, kernel, padding="same", activation="sigmoid", name=f"{name}_sa_conv"
    )(pooled)
    return layers.Multiply(name=f"{name}_sa_apply")([x, spatial])


def _finish(inputs, outputs, name: str, weights: str | None) -> keras.Model:
    model = keras.Model(inputs, outputs, name=name)
    if weights is not None:
        model.load_weights(weights)
    return model


# --- Builders ---------------------------------------------------------------------------------


def _build_baseline_cnn(input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    inputs = keras.Input(input_shape, name="pixels")
    x = inputs
    for block, filters in enumerate((32, 64, 128), start=1):
        x = _conv_bn_relu(x, filters, f"block{block}")
        x = layers.MaxPooling2D(name=f"block{block}_pool")(x)
    outputs = layers.Flatten(name="flatten")(x)
    return _finish(inputs, outputs, "baseline_cnn", weights)


def _build_attention_cnn(input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    inputs = keras.Input(input_shape, name="pixels")
    x = inputs
    for block, filters in enumerate((32, 64, 128), start=1):
        x = _conv_bn_relu(x, filters, f"block{block}")
        x = _cbam(x, f"block{block}")
        x = layers.MaxPooling2D(name=f"block{block}_pool")(x)
    outputs = layers.Flatten(name="flatten")(x)
    return _finish(inputs, outputs, "attention_cnn", weights)


#: (branch name, scale of the input side, filters per stage): each stage halves the side, so the
#: three branches all end at side S/8.
_SCALES = (("small", 0.5, (32, 64)), ("mid", 1.0, (32, 64, 128)), ("large", 2.0, (16, 32, 64, 128)))


def _build_multiscale_cnn(input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    side = input_shape[0]
    inputs = keras.Input(input_shape, name="pixels")
    maps = []
    for branch, scale, stages in _SCALES:
        x = inputs
        size = round(side * scale)
        if size != side:
            x = layers.Resizing(
                size, size, interpolation="bilinear", antialias=scale < 1, name=f"{branch}_resize"
            )(inputs)
        for stage, filters in enumerate(stages, start=1):
            x = _conv_bn_relu(x, filters, f"{branch}_stage{stage}")
            x = layers.MaxPooling2D(name=f"{branch}_stage{stage}_pool")(x)
        maps.append(x)
    x = layers.Concatenate(name="fusion_concat")(maps)
    x = _conv_bn_relu(x, 256, "fusion", kernel=1)
    outputs = layers.Flatten(name="flatten")(x)
    return _finish(inputs, outputs, "multiscale_cnn", weights)


def _build_hybrid(input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    dim, heads, mlp = 128, 4, 256
    inputs = keras.Input(input_shape, name="pixels")
    x = inputs
    for stage, filters in enumerate((32, 64, dim), start=1):
        x = _conv_bn_relu(x, filters, f"stage{stage}")
        x = layers.MaxPooling2D(name=f"stage{stage}_pool")(x)
    height, width = x.shape[1], x.shape[2]
    x = layers.Reshape((height * width, dim), name="tokens")(x)
    x = LearnedPositionEmbedding(name="position_embedding")(x)
    for block in (1, 2):
        name = f"transformer{block}"
        y = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_ln1")(x)
        y = layers.MultiHeadAttention(heads, dim // heads, dropout=0.1, name=f"{name}_mha")(y, y)
        x = layers.Add(name=f"{name}_add1")([x, y])
        y = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_ln2")(x)
        y = layers.Dense(mlp, activation="gelu", name=f"{name}_mlp1")(y)
        y = layers.Dense(dim, name=f"{name}_mlp2")(y)
        x = layers.Add(name=f"{name}_add2")([x, y])
    x = layers.LayerNormalization(epsilon=1e-6, name="encoder_ln")(x)
    outputs = layers.GlobalAveragePooling1D(name="avg_pool")(x)
    return _finish(inputs, outputs, "hybrid_cnn_transformer", weights)


def region_crop(side: int, region: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """``Cropping2D`` amounts ((top, bottom), (left, right)) in pixels of a region of a face."""
    top, bottom, left, right = FACE_REGIONS[region]
    return (round(top * side), side - round(bottom * side)), (
        round(left * side),
        side - round(right * side),
    )


def _build_region_ensemble(input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    dim = 128
    side = input_shape[0]
    inputs = keras.Input(input_shape, name="pixels")
    embeddings = []
    specialists = (("eyes", (32, 64)), ("mouth", (32, 64)), ("face", (32, 64, 128)))
    for region, stages in specialists:
        x = inputs
        if region in FACE_REGIONS:
            x = layers.Cropping2D(region_crop(side, region), name=f"{region}_crop")(inputs)
        for stage, filters in enumerate(stages, start=1):
            x = _conv_bn_relu(x, filters, f"{region}_stage{stage}")
            x = layers.MaxPooling2D(name=f"{region}_stage{stage}_pool")(x)
        x = layers.Flatten(name=f"{region}_flatten")(x)
        x = layers.Dense(dim, activation="relu", name=f"{region}_embed")(x)
        embeddings.append(layers.Reshape((1, dim), name=f"{region}_item")(x))
    stacked = layers.Concatenate(axis=1, name="fusion_stack")(embeddings)
    outputs = AttentionPooling(64, name="fusion_attention")(stacked)
    return _finish(inputs, outputs, "region_ensemble", weights)


# --- The registry -----------------------------------------------------------------------------

for _spec in (
    BackboneSpec(
        name="baseline_cnn",
        description="3 Conv-BN-ReLU-MaxPool layers (32/64/128), from scratch, last map flattened",
        build=_build_baseline_cnn,
        preprocessing=_unit_scale,
        default_input_size=48,
        min_input_size=16,
        blocks=("block1", "block2", "block3"),
        freeze_batchnorm=False,
    ),
    BackboneSpec(
        name="attention_cnn",
        description=(
            "the baseline's 3 layers, each with channel + spatial (CBAM) attention, from scratch, "
            "its last map flattened"
        ),
        build=_build_attention_cnn,
        preprocessing=_unit_scale,
        default_input_size=48,
        min_input_size=16,
        blocks=("block1", "block2", "block3"),
        freeze_batchnorm=False,
    ),
    BackboneSpec(
        name="multiscale_cnn",
        description=(
            "branches at 1/2, 1 and 2 times the input side (24/48/96 px at 48) fused on a common "
            "S/8 grid by a 1x1 convolution, from scratch, the fused map flattened"
        ),
        build=_build_multiscale_cnn,
        preprocessing=_unit_scale,
        default_input_size=48,
        min_input_size=32,
        input_multiple=8,
        blocks=("small", "mid", "large", "fusion"),
        freeze_batchnorm=False,
    ),
    BackboneSpec(
        name="hybrid_cnn_transformer",
        description=(
            "3-stage CNN stem, its S/8 grid as tokens through 2 transformer blocks (4 heads, "
            "dim 128), from scratch, 128 features"
        ),
        build=_build_hybrid,
        preprocessing=_unit_scale,
        default_input_size=48,
        min_input_size=16,
        blocks=("stage1", "stage2", "stage3", "position_embedding", "transformer1",
                "transformer2"),
        freeze_batchnorm=False,
    ),
    BackboneSpec(
        name="region_ensemble",
        description=(
            "eye-band, mouth and whole-face specialists on fixed regions of the aligned face, "
            "attention-weighted fusion, from scratch, 128 features"
        ),
        build=_build_region_ensemble,
        preprocessing=_unit_scale,
        default_input_size=48,
        min_input_size=32,
        blocks=("eyes", "mouth", "face", "fusion"),
        freeze_batchnorm=False,
    ),
):
    register_backbone(_spec)
del _spec

#: The registry names of the architectures above, in the order of the comparison.
ARCHITECTURES: tuple[str, ...] = (
    "baseline_cnn",
    "attention_cnn",
    "multiscale_cnn",
    "hybrid_cnn_transformer",
    "region_ensemble",
)
