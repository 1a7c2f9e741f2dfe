"""The backbone registry: every backbone is a ``BackboneSpec``, built through one code path.

A spec's ``build(input_shape, weights)`` returns a feature extractor that maps preprocessed
images (B, H, W, 3) to pooled features (B, D); ``preprocessing()`` returns the layers that turn raw
RGB 0-255 into what that extractor expects. ``build_model`` puts both inside one graph.

Weights are asked for explicitly: ``None`` (random init), ``"imagenet"`` (where the spec has them;
downloaded on first use) or a path to local weights (a no-top ``.weights.h5`` file for the
keras.applications backbones and the from-scratch ones, a keras-hub preset folder for ViT).

``spec_cnn`` and ``mobilevit`` are for spectrograms (one-channel 128x128 images of
``emokeras.audio``), trained from scratch; ``mobilevit`` is built in ``emokeras.models.mobilevit``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import keras

from emokeras.errors import ConfigError
from emokeras.models.layers import VGGCaffePreprocessing
from emokeras.models.mobilevit import BLOCKS as MOBILEVIT_BLOCKS
from emokeras.models.mobilevit import mobilevit_backbone

logger = logging.getLogger(__name__)

Weights = str | os.PathLike[str] | None
BuildFn = Callable[[tuple[int, int, int], str | None], keras.Model]


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone, and what it needs.

    ``blocks`` are layer-name prefixes usable with ``freeze_backbone``: a layer belongs to block
    ``b`` when its name (or the name of a layer that contains it) is ``b`` or starts with ``b``
    followed by a non-digit, so ``"block_1"`` covers ``block_1_expand`` but not ``block_10_...``.
    ``weights_path`` says whether local weights are a ``"file"`` or a ``"folder"``.
    ``freeze_batchnorm`` is the transfer-learning recipe for pretrained backbones (BatchNorm runs
    in inference mode and is never trained); a backbone trained from scratch sets it False so its
    BatchNorm layers can learn their statistics.
    """

    name: str
    description: str
    build: BuildFn
    preprocessing: Callable[[], list[keras.layers.Layer]]
    default_input_size: int
    min_input_size: int = 32
    input_multiple: int = 1
    imagenet: bool = False
    blocks: tuple[str, ...] = ()
    weights_path: Literal["file", "folder"] = "file"
    freeze_batchnorm: bool = True

    def check_input_size(self, input_size: int) -> None:
        """Raise ConfigError unless ``input_size`` (image side, pixels) suits this backbone."""
        if isinstance(input_size, bool) or not isinstance(input_size, int):
            raise ConfigError(
                f"input_size must be an int, got {input_size!r} ({type(input_size).__name__})"
            )
        if input_size < self.min_input_size:
            raise ConfigError(
                f"input_size {input_size} is too small for backbone {self.name!r}: "
                f"it needs at least {self.min_input_size}"
            )
        if input_size % self.input_multiple:
            raise ConfigError(
                f"input_size {input_size} does not suit backbone {self.name!r}: "
                f"it must be a multiple of {self.input_multiple}"
            )

    def check_weights(self, weights: Weights) -> str | None:
        """Validate a weights request; return ``None``, ``"imagenet"`` or a path string."""
        forms = ["None (random init)", *(["'imagenet'"] if self.imagenet else [])]
        allowed = f"{', '.join(forms)} or the path of an existing weights {self.weights_path}"
        if weights is None:
            return None
        if isinstance(weights, str) and weights == "imagenet":
            if not self.imagenet:
                raise ConfigError(
                    f"weights 'imagenet' do not exist for backbone {self.name!r}; "
                    f"weights must be {allowed}"
                )
            return "imagenet"
        if not isinstance(weights, str | os.PathLike):
            raise ConfigError(
                f"weights {weights!r} ({type(weights).__name__}) is not allowed for backbone "
                f"{self.name!r}; weights must be {allowed}"
            )
        path = Path(weights)
        if not path.exists():
            raise ConfigError(
                f"weights path {str(path)!r} does not exist; weights must be {allowed}"
            )
        if (self.weights_path == "folder") != path.is_dir():
            raise ConfigError(
                f"weights path {str(path)!r} is a {'folder' if path.is_dir() else 'file'}; "
                f"backbone {self.name!r} loads weights from a {self.weights_path}"
            )
        return str(path)

    def feature_extractor(self, input_size: int, weights: Weights = None) -> keras.Model:
        """Validate the request, then build the feature extractor."""
        self.check_input_size(input_size)
        resolved = self.check_weights(weights)
        logger.debug("building backbone %s at %d px, weights %s", self.name, input_size, resolved)
        return self.build((input_size, input_size, 3), resolved)


BACKBONES: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Add a spec to the registry; a name already taken raises ConfigError."""
    if spec.name in BACKBONES:
        raise ConfigError(f"a backbone named {spec.name!r} is already registered")
    BACKBONES[spec.name] = spec
    return spec


def get_backbone_spec(name: str) -> BackboneSpec:
    """Look a backbone up by name; an unknown name raises ConfigError listing the available ones."""
    if isinstance(name, str) and name.strip().lower() in BACKBONES:
        return BACKBONES[name.strip().lower()]
    raise ConfigError(f"unknown backbone {name!r}; available: {list_backbones()}")


def list_backbones() -> list[str]:
    """Names of the registered backbones, sorted."""
    return sorted(BACKBONES)


# --- Preprocessing ----------------------------------------------------------------------------


def _rescale_to_unit_range() -> list[keras.layers.Layer]:
    """[0, 255] -> [-1, 1] (MobileNetV2's and ViT's ``preprocess_input``)."""
    return [keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess_rescale")]


def _rescale_to_zero_one() -> list[keras.layers.Layer]:
    return [keras.layers.Rescaling(1 / 255.0, name="preprocess_rescale")]


def _caffe() -> list[keras.layers.Layer]:
    return [VGGCaffePreprocessing(name="preprocess_caffe")]


def _none() -> list[keras.layers.Layer]:
    return []


# --- Builders ---------------------------------------------------------------------------------


def _keras_application(constructor: Callable[..., keras.Model], **kwargs) -> BuildFn:
    """A build function for a ``keras.applications`` constructor, without its top, avg-pooled."""

    def build(input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
        return constructor(
            include_top=False, weights=weights, input_shape=input_shape, pooling="avg", **kwargs
        )

    return build


def _vit(
    num_heads: int, hidden_dim: int, mlp_dim: int, imagenet_preset: tuple[str, int] | None = None
) -> BuildFn:
    """A build function for a keras-hub ViT whose readout is the class token.

    ``imagenet_preset`` is ``(preset name, its input size)`` where ImageNet weights exist.
    """
    arch = {
        "patch_size": 16,
        "num_layers": 12,
        "num_heads": num_heads,
        "hidden_dim": hidden_dim,
        "mlp_dim": mlp_dim,
    }

    def build(input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
        import keras_hub  # heavy import, only needed for ViT

        if weights is None:
            vit = keras_hub.models.ViTBackbone(image_shape=input_shape, **arch, name="vit")
        else:
            if weights == "imagenet":
                if imagenet_preset is None:  # check_weights stops this first
                    raise ConfigError("this ViT has no ImageNet weights")
                source, size = imagenet_preset
                preset_shape = (size, size, 3)
            else:
                source, preset_shape = weights, _check_vit_preset(Path(weights), arch)
            if tuple(input_shape) != preset_shape:
                raise ConfigError(
                    f"input size {input_shape[0]} does not match ViT preset {source!r}, "
                    f"which takes {preset_shape[0]}x{preset_shape[1]} images; "
                    f"use input_size={preset_shape[0]}"
                )
            vit = keras_hub.models.ViTBackbone.from_preset(source)
        pixels = keras.Input(input_shape, name="pixels")
        tokens = vit(pixels)
        # tokens[:, 0, :] is a Keras op (GetItem), saved and reloaded like a layer, no Lambda.
        return keras.Model(pixels, tokens[:, 0, :], name="vit_features")

    return build


def _check_vit_preset(folder: Path, arch: dict[str, int]) -> tuple[int, int, int]:
    """Read a keras-hub preset folder's config; check it is a ViT of ``arch``; its image shape."""
    config_file = folder / "config.json"
    try:
        saved = json.loads(config_file.read_text())
        config = saved["config"]
        image_shape = tuple(config["image_shape"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(
            f"weights folder {str(folder)!r} is not a keras-hub ViT preset "
            f"(cannot read image_shape from {config_file.name}: {error})"
        ) from error
    if saved.get("class_name") != "ViTBackbone":
        raise ConfigError(
            f"weights folder {str(folder)!r} holds a {saved.get('class_name')!r} preset, "
            "not a ViTBackbone"
        )
    patch = config.get("patch_size")
    got = {**config, "patch_size": patch[0] if isinstance(patch, list) else patch}
    wrong = {k: (got.get(k), v) for k, v in arch.items() if got.get(k) != v}
    if wrong:
        details = ", ".join(f"{k} {g} (expected {e})" for k, (g, e) in wrong.items())
        raise ConfigError(f"ViT preset {str(folder)!r} has another architecture: {details}")
    return image_shape


def _conv_blocks(
    input_shape: tuple[int, int, int], weights: str | None, convs_per_block: int, name: str
) -> keras.Model:
    """Four blocks of (Conv-BN-ReLU) x ``convs_per_block`` + MaxPool, 32/64/128/256 filters,
    then average pooling. Layers are named ``block<b>_conv`` (``block<b>_conv<c>`` with two
    convolutions a block), the names ``freeze_backbone`` blocks and saved weights go by."""
    layers = keras.layers
    inputs = keras.Input(input_shape, name="pixels")
    x = inputs
    for block, filters in enumerate((32, 64, 128, 256), start=1):
        for conv in range(1, convs_per_block + 1):
            suffix = str(conv) if convs_per_block > 1 else ""
            # No bias: the BatchNormalization right after has its own offset.
            x = layers.Conv2D(
                filters, 3, padding="same", use_bias=False, name=f"block{block}_conv{suffix}"
            )(x)
            x = layers.BatchNormalization(name=f"block{block}_bn{suffix}")(x)
            x = layers.ReLU(name=f"block{block}_relu{suffix}")(x)
        x = layers.MaxPooling2D(name=f"block{block}_pool")(x)
    outputs = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    model = keras.Model(inputs, outputs, name=name)
    if weights is not None:
        model.load_weights(weights)
    return model


def _build_small_cnn(input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    """Four blocks of (Conv-BN-ReLU) x2 + MaxPool, 32/64/128/256 filters, then average pooling."""
    return _conv_blocks(input_shape, weights, convs_per_block=2, name="small_cnn")


def _build_spec_cnn(input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    """Four Conv-BN-ReLU-MaxPool blocks, 32/64/128/256 filters, then average pooling.

    For log-mel spectrograms seen as images (frequency bins x frames). Average pooling, not
    flattening: an emotion shows in the voice wherever it falls in the clip's time window.
    """
    return _conv_blocks(input_shape, weights, convs_per_block=1, name="spec_cnn")


def _build_mobilevit(input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    model = mobilevit_backbone(input_shape, size="xxs")
    if weights is not None:
        model.load_weights(weights)
    return model


# --- The registry -----------------------------------------------------------------------------

register_backbone(
    BackboneSpec(
        name="vgg16",
        description="VGG16 (keras.applications), caffe preprocessing, 512 features",
        build=_keras_application(keras.applications.VGG16),
        preprocessing=_caffe,
        default_input_size=224,
        imagenet=True,
        blocks=tuple(f"block{i}" for i in range(1, 6)),
    )
)

register_backbone(
    BackboneSpec(
        name="mobilenet_v2",
        description=(
            "MobileNetV2 alpha 1.0 (keras.applications), [-1, 1] input, 1280 features; "
            "ImageNet weights exist for 96, 128, 160, 192 and 224 px"
        ),
        build=_keras_application(keras.applications.MobileNetV2, alpha=1.0),
        preprocessing=_rescale_to_unit_range,
        default_input_size=224,
        imagenet=True,
        blocks=tuple(f"block_{i}" for i in range(1, 17)),
    )
)

register_backbone(
    BackboneSpec(
        name="efficientnet_b0",
        description=(
            "EfficientNetB0 (keras.applications), which scales and normalizes 0-255 input itself, "
            "1280 features"
        ),
        build=_keras_application(keras.applications.EfficientNetB0),
        preprocessing=_none,
        default_input_size=224,
        imagenet=True,
        blocks=tuple(f"block{i}" for i in range(1, 8)),
    )
)

for _name, _heads, _dim, _mlp, _preset in (
    ("vit_tiny", 3, 192, 768, None),
    ("vit_small", 6, 384, 1536, None),
    ("vit_base", 12, 768, 3072, ("vit_base_patch16_224_imagenet", 224)),
):
    register_backbone(
        BackboneSpec(
            name=_name,
            description=(
                f"ViT patch 16, 12 layers, {_heads} heads, {_dim} features (keras-hub), "
                "[-1, 1] input, class-token readout"
                + ("; ImageNet weights at 224 px" if _preset else "")
            ),
            build=_vit(_heads, _dim, _mlp, imagenet_preset=_preset),
            preprocessing=_rescale_to_unit_range,
            default_input_size=224,
            input_multiple=16,
            imagenet=_preset is not None,
            blocks=tuple(f"transformer_block_{i}" for i in range(1, 13)),
            weights_path="folder",
        )
    )
del _name, _heads, _dim, _mlp, _preset

register_backbone(
    BackboneSpec(
        name="small_cnn",
        description="a small CNN for 48x48 faces, trained from scratch, 256 features",
        build=_build_small_cnn,
        preprocessing=_rescale_to_zero_one,
        default_input_size=48,
        blocks=tuple(f"block{i}" for i in range(1, 5)),
        freeze_batchnorm=False,
    )
)

register_backbone(
    BackboneSpec(
        name="spec_cnn",
        description=(
            "4 Conv-BN-ReLU-MaxPool blocks (32/64/128/256) for 128x128 spectrograms, trained "
            "from scratch, average-pooled, 256 features"
        ),
        build=_build_spec_cnn,
        preprocessing=_rescale_to_zero_one,
        default_input_size=128,
        min_input_size=16,
        blocks=tuple(f"block{i}" for i in range(1, 5)),
        freeze_batchnorm=False,
    )
)

register_backbone(
    BackboneSpec(
        name="mobilevit",
        description=(
            "MobileViT-XXS (Mehta & Rastegari 2021; emokeras.models.mobilevit) for 128x128 "
            "spectrograms, [0, 1] input, trained from scratch, 320 features"
        ),
        build=_build_mobilevit,
        preprocessing=_rescale_to_zero_one,
        default_input_size=128,
        min_input_size=64,
        input_multiple=32,
        blocks=MOBILEVIT_BLOCKS,
        freeze_batchnorm=False,
    )
)
