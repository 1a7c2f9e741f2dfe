"""MobileViT (Mehta & Rastegari, 2021), written here from Keras 3 core layers.

keras-hub 0.32 ships MobileNet, MobileNetV5 and ViT backbones but no MobileViT, and
keras.applications has none either, so this module builds one. It follows the paper's
architecture (and its reference implementation, apple/ml-cvnets):

- a stem: 3x3 convolution, stride 2, BatchNorm, SiLU;
- MobileNetV2 inverted residual blocks (1x1 expansion, 3x3 depthwise, 1x1 linear projection,
  a residual where the shape allows), which do every downsampling;
- at strides 8, 16 and 32 a MobileViT block: a 3x3 convolution and a 1x1 projection to the
  transformer width d (local representation); the map unfolded into non-overlapping 2x2 patches,
  so that each of the 4 positions inside a patch gives a sequence of N = HW/4 tokens; L pre-norm
  transformer layers attending over the N tokens of the same position (global representation);
  the tokens folded back into the map; a 1x1 projection back to the block's channels; the result
  concatenated with the block's input and fused by a 3x3 convolution;
- a 1x1 convolution widening the channels, then global average pooling to (B, D) features.

Unfolding and folding are ``Reshape`` + ``Permute`` layers; attention is a
``MultiHeadAttention`` over axis 2 of (B, 4, N, d), so the four patch positions attend
independently as the paper describes. A map whose side is not a multiple of the patch size (the
3x3 map at stride 32 of a 96 px input) is resized up to the next multiple for the transformer
and back afterwards, as ml-cvnets does (at 64 px the stride-32 map is a single patch, so
attention there sees one token; Keras warns of a softmax over one item). There are no custom
layers and no ``Lambda``: a saved model reloads in safe mode.

Sizes: ``"xxs"`` (320 features, about 0.95M backbone parameters) and ``"xs"`` (384 features,
about 1.9M), with the paper's channel widths, transformer widths and depths.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from emokeras.errors import ConfigError

layers = keras.layers

#: Side of the square patches a MobileViT block unfolds its map into.
PATCH_SIZE = 2


@dataclass(frozen=True)
class MobileViTSize:
    """Widths and depths of one MobileViT size.

    ``channels``: output channels of the stem and of stages 1-5; ``stage2_blocks``: inverted
    residual blocks in stage 2; ``transformers``: (width d, layers L) of the MobileViT blocks of
    stages 3, 4 and 5 (their MLP is 2d wide); ``expansion``: the inverted residuals' expansion
    factor; ``features``: channels of the last 1x1 convolution, the pooled feature size.
    """

    channels: tuple[int, int, int, int, int, int]
    stage2_blocks: int
    transformers: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
    expansion: int
    features: int
    heads: int = 4
    dropout: float = 0.1


SIZES: dict[str, MobileViTSize] = {
    "xxs": MobileViTSize(
        channels=(16, 16, 24, 48, 64, 80),
        stage2_blocks=3,
        transformers=((64, 2), (80, 4), (96, 3)),
        expansion=2,
        features=320,
    ),
    "xs": MobileViTSize(
        channels=(16, 32, 48, 64, 80, 96),
        stage2_blocks=3,
        transformers=((96, 2), (120, 4), (144, 3)),
        expansion=4,
        features=384,
    ),
}

#: Block names for ``freeze_backbone``: every layer's name starts with one of them.
BLOCKS: tuple[str, ...] = ("stem", "stage1", "stage2", "stage3", "stage4", "stage5", "final")


def _conv_bn(x, filters: int, kernel: int, name: str, strides: int = 1, activation: bool = True):
    # No bias: the BatchNormalization right after has its own offset.
    x = layers.Conv2D(
        filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("silu", name=f"{name}_act")(x) if activation else x


def _inverted_residual(x, filters: int, strides: int, expansion: int, name: str):
    """MobileNetV2's block: expand (1x1), depthwise 3x3 (with the stride), project (1x1, linear)."""
    inputs = x
    channels = x.shape[-1]
    if expansion != 1:
        x = _conv_bn(x, channels * expansion, 1, f"{name}_expand")
    x = layers.DepthwiseConv2D(
        3, strides=strides, padding="same", use_bias=False, name=f"{name}_depthwise"
    )(x)
    x = layers.BatchNormalization(name=f"{name}_depthwise_bn")(x)
    x = layers.Activation("silu", name=f"{name}_depthwise_act")(x)
    x = _conv_bn(x, filters, 1, f"{name}_project", activation=False)
    if strides == 1 and channels == filters:
        x = layers.Add(name=f"{name}_add")([inputs, x])
    return x


def _transformer(x, dim: int, heads: int, dropout: float, name: str):
    """A pre-norm transformer layer on (B, P, N, d): attention over the N axis for each P."""
    y = layers.LayerNormalization(epsilon=1e-5, name=f"{name}_ln1")(x)
    y = layers.MultiHeadAttention(
        heads, dim // heads, attention_axes=(2,), name=f"{name}_mha"
    )(y, y)
    y = layers.Dropout(dropout, name=f"{name}_drop1")(y)
    x = layers.Add(name=f"{name}_add1")([x, y])
    y = layers.LayerNormalization(epsilon=1e-5, name=f"{name}_ln2")(x)
    y = layers.Dense(2 * dim, activation="silu", name=f"{name}_mlp1")(y)
    y = layers.Dense(dim, name=f"{name}_mlp2")(y)
    y = layers.Dropout(dropout, name=f"{name}_drop2")(y)
    return layers.Add(name=f"{name}_add2")([x, y])


def _mobilevit_block(x, dim: int, depth: int, size: MobileViTSize, name: str):
    """Local 3x3 + 1x1, unfold, ``depth`` transformer layers, fold, 1x1, concat, fuse 3x3."""
    inputs = x
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    x = _conv_bn(x, channels, 3, f"{name}_local")
    # A linear projection to the transformer's width, as in the paper (no norm, no activation).
    x = layers.Conv2D(dim, 1, use_bias=False, name=f"{name}_local_proj")(x)

    p = PATCH_SIZE
    grid_h, grid_w = -(-height // p) * p, -(-width // p) * p
    resized = (grid_h, grid_w) != (height, width)
    if resized:
        x = layers.Resizing(grid_h, grid_w, interpolation="bilinear", name=f"{name}_resize_in")(x)
    # (B, H, W, d) -> (B, H/p, p, W/p, p, d) -> (B, p, p, H/p, W/p, d) -> (B, p*p, N, d)
    tokens = grid_h // p * (grid_w // p)
    x = layers.Reshape((grid_h // p, p, grid_w // p, p, dim), name=f"{name}_unfold_split")(x)
    x = layers.Permute((2, 4, 1, 3, 5), name=f"{name}_unfold_permute")(x)
    x = layers.Reshape((p * p, tokens, dim), name=f"{name}_unfold")(x)
    for layer in range(1, depth + 1):
        x = _transformer(x, dim, size.heads, size.dropout, f"{name}_transformer{layer}")
    x = layers.LayerNormalization(epsilon=1e-5, name=f"{name}_transformer_ln")(x)
    # The exact inverse of the unfolding.
    x = layers.Reshape((p, p, grid_h // p, grid_w // p, dim), name=f"{name}_fold_split")(x)
    x = layers.Permute((3, 1, 4, 2, 5), name=f"{name}_fold_permute")(x)
    x = layers.Reshape((grid_h, grid_w, dim), name=f"{name}_fold")(x)
    if resized:
        x = layers.Resizing(height, width, interpolation="bilinear", name=f"{name}_resize_out")(x)

    x = _conv_bn(x, channels, 1, f"{name}_proj")
    x = layers.Concatenate(name=f"{name}_concat")([inputs, x])
    return _conv_bn(x, channels, 3, f"{name}_fuse")


def mobilevit_backbone(
    input_shape: tuple[int, int, int], size: str = "xxs", name: str = "mobilevit"
) -> keras.Model:
    """A MobileViT feature extractor: preprocessed images (B, H, W, 3) -> features (B, D).

    ``size`` is ``"xxs"`` or ``"xs"`` (see ``SIZES``). H and W must be multiples of 32 (five
    stride-2 stages). Layer names start with a name of ``BLOCKS``.
    """
    if size not in SIZES:
        raise ConfigError(f"unknown MobileViT size {size!r}; available: {sorted(SIZES)}")
    height, width = input_shape[0], input_shape[1]
    if not height or not width or height % 32 or width % 32:
        raise ConfigError(f"MobileViT needs a height and width that are multiples of 32, "
                          f"got input shape {tuple(input_shape)}")
    config = SIZES[size]
    stem, *stages = config.channels
    inputs = keras.Input(input_shape, name="pixels")
    x = _conv_bn(inputs, stem, 3, "stem", strides=2)
    x = _inverted_residual(x, stages[0], 1, config.expansion, "stage1_mv2")
    for block in range(config.stage2_blocks):
        x = _inverted_residual(
            x, stages[1], 2 if block == 0 else 1, config.expansion, f"stage2_mv2_{block + 1}"
        )
    for stage, (filters, (dim, depth)) in enumerate(
        zip(stages[2:], config.transformers, strict=True), start=3
    ):
        x = _inverted_residual(x, filters, 2, config.expansion, f"stage{stage}_mv2")
        x = _mobilevit_block(x, dim, depth, config, f"stage{stage}_mvit")
    x = _conv_bn(x, config.features, 1, "final")
    outputs = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, outputs, name=name)
