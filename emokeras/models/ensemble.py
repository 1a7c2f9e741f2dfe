"""Ensembles: one Keras model that averages the class probabilities of several trained models.

    image -> member_1 -> probabilities ┐
          -> member_2 -> probabilities ├ average -> probabilities
          -> mirror -> member_1, ...   ┘ (with ``flip``: test-time augmentation)

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
    members: Sequence[keras.Model], *, flip: bool = False, name: str = "emokeras_ensemble"
) -> keras.Model:
    """Average the probabilities of ``members`` (and, with ``flip``, of each on the mirrored face).

    The ensemble takes the first member's input shape. Members must agree on the number of
    channels and of classes; ``ConfigError`` names the member that does not. The members are
    renamed ``member_1``, ``member_2``, ... (the names :func:`ensemble_members` goes by).
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
    if len(members) == 1 and not flip:
        raise ConfigError("an ensemble of one model without flip is that model: give more "
                          "members or flip=True")

    image = keras.Input((size, width, channels), name="image", dtype="float32")
    views = [image]
    if flip:
        views.append(HorizontalFlip(name="mirror")(image))
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


def ensemble_members(model: keras.Model) -> list[keras.Model]:
    """The member models of an ensemble from :func:`build_ensemble`; ``[]`` for any other model."""
    return [layer for layer in model.layers
            if isinstance(layer, keras.Model) and layer.name.startswith(MEMBER_PREFIX)]
