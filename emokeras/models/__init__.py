"""Models: the backbone registry, the head, building, splitting and freezing models, ensembles.

Importing this package registers emokeras' custom layers with Keras, so saved models reload with
``keras.saving.load_model(path)`` alone.
"""

from emokeras.models import layers  # noqa: F401  (registers the custom layers)
from emokeras.models.architectures import ARCHITECTURES  # registers the from-scratch CNNs
from emokeras.models.backbones import (
    BACKBONES,
    BackboneSpec,
    get_backbone_spec,
    list_backbones,
    register_backbone,
)
from emokeras.models.build import (
    FreezeSummary,
    backbone_name,
    build_model,
    freeze_backbone,
    get_backbone,
    split_at_backbone,
)
from emokeras.models.ensemble import build_ensemble, ensemble_members
from emokeras.models.heads import HeadConfig, build_head
from emokeras.models.layers import (
    BackboneTag,
    GrayscaleToRGB,
    HorizontalFlip,
    VGGCaffePreprocessing,
)

__all__ = [
    "ARCHITECTURES",
    "BACKBONES",
    "BackboneSpec",
    "BackboneTag",
    "FreezeSummary",
    "GrayscaleToRGB",
    "HeadConfig",
    "HorizontalFlip",
    "VGGCaffePreprocessing",
    "backbone_name",
    "build_ensemble",
    "build_head",
    "build_model",
    "ensemble_members",
    "freeze_backbone",
    "get_backbone",
    "get_backbone_spec",
    "list_backbones",
    "register_backbone",
    "split_at_backbone",
]
