"""Ensembles: one Keras model that averages the class probabilities of several trained models.

    image -> member_1 -> probabilities ┐
          -> member_2 -> probabilities ├ average -> probabilities
          -> mirror -> member_1, ...   │ (with ``flip``: test-time augmentation)
          -> crop 44 -> member_1, ...  ┘ (with ``crops``: the central 44x44, resized back)

Every member takes the same raw 0-255 image the ensemble takes (a member with another input size
gets it through an in-graph ``Resizing``), so an ensemble is used, saved, exported and served like
any single model: ``keras.saving.load_model`` rebuilds it in safe mode. Members keep their names
(``member_1``, ``member_2``, ...) inside the ensemble; :func:`ensemble_members` finds them again,
e.g. for Grad-CAM, which explains each member and averages the maps.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from emokeras.errors import ConfigError
from emokeras.models.layers import HorizontalFlip

#: Prefix of the member models' names inside an ensemble.
MEMBER_PREFIX = "member_"


def build_ensemble(
    members: Sequence[keras.Model], *, flip: bool = False, crops: Sequence[int] = (),
    name: str = "emokeras_ensemble",
) -> keras.Model:
    """Average the probabilities of ``members`` on the face and on test-time views of it.

    Views: with ``flip``, the mirrored face; for each size in ``crops``, the central square of
    that many pixels resized back to the input size (a zoom-in: ``small_cnn`` trains on random
    crops of up to 15% less area, ``crops=(44,)`` of a 48-pixel face is such a crop), and its
    mirror with ``flip``. The ensemble takes the first member's input shape. Members must agree
    on the number of channels and of classes; ``ConfigError`` names the member that does not.
    The members are renamed ``member_1``, ``member_2``, ... (the names :func:`ensemble_members`
    goes by).
    """
    members = list(members)
    if not members:
        raise ConfigError("an ensemble needs at least one member model")
    for index, member in enumerate(members):
        if not isinstance(member, keras.Model):
            raise ConfigError(
                f"ensemble member {index + 1} is a {type(member).__name__}, not a Keras model")
    _, size, width, channels = members[0].input_shape
    classes = members[0].output_shape[-1]
    for index, member in enumerate(members[1:], start=2):
        if member.input_shape[-1] != channels or member.output_shape[-1] != classes:
            raise ConfigError(
                f"ensemble member {index} ({member.name!r}) takes {member.input_shape[-1]} "
                f"channels and gives {member.output_shape[-1]} classes; member 1 "
                f"({members[0].name!r}) takes {channels} and gives {classes}")
    crops = list(crops)
    for crop in crops:
        if not (isinstance(crop, int) and 0 < crop < min(size, width)):
            raise ConfigError(f"crop size {crop!r} is not a whole number of pixels between 1 "
                              f"and the input's {min(size, width) - 1} (the input is "
                              f"{size}x{width})")
    if len(members) == 1 and not flip and not crops:
        raise ConfigError("an ensemble of one model without flip or crops is that model: give "
                          "more members, flip=True or crops")

    image = keras.Input((size, width, channels), name="image", dtype="float32")
    views = [image]
    for crop in crops:
        cropped = keras.layers.CenterCrop(crop, crop, name=f"crop_{crop}")(image)
        views.append(keras.layers.Resizing(size, width, interpolation="bilinear",
                                           name=f"crop_{crop}_resize")(cropped))
    if flip:
        views += [HorizontalFlip(name=f"mirror_{index}" if index else "mirror")(view)
                  for index, view in enumerate(list(views))]
    outputs = []
    for index, member in enumerate(members, start=1):
        member.name = f"{MEMBER_PREFIX}{index}"
        _, member_size, member_width, _ = member.input_shape
        resize = None
        if (member_size, member_width) != (size, width):
            # bilinear, as the input pipeline resizes a face for a model of that size
            resize = keras.layers.Resizing(member_size, member_width, interpolation="bilinear",
                                           name=f"{member.name}_resize")
        for view in views:
            outputs.append(member(view if resize is None else resize(view)))
    probabilities = keras.layers.Average(name="probabilities")(outputs)
    return keras.Model(image, probabilities, name=name)


def ensemble_views(model: keras.Model) -> tuple[bool, list[int]]:
    """The test-time views of an ensemble from :func:`build_ensemble`: whether it mirrors the
    face, and its crop sizes (``(False, [])`` for any other model)."""
    flip = any(isinstance(layer, HorizontalFlip) for layer in model.layers)
    crops = [layer.height for layer in model.layers if isinstance(layer, keras.layers.CenterCrop)]
    return flip, crops


def ensemble_members(model: keras.Model) -> list[keras.Model]:
    """The member models of an ensemble from :func:`build_ensemble`; ``[]`` for any other model."""
    return [layer for layer in model.layers
            if isinstance(layer, keras.Model) and layer.name.startswith(MEMBER_PREFIX)]
