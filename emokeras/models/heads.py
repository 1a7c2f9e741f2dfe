"""The classification head put on top of a backbone's pooled features."""

from __future__ import annotations

from dataclasses import dataclass

import keras

from emokeras.errors import ConfigError

ACTIVATIONS = ("softmax", "sigmoid")


@dataclass(frozen=True)
class HeadConfig:
    """Dropout -> Dense(units) -> ReLU -> BatchNorm -> Dense(classes) -> activation.

    ``units=0`` gives a linear probe: Dropout -> Dense(classes) -> activation. ``batchnorm=False``
    drops the BatchNormalization. ``activation`` is ``"softmax"`` (one label per image) or
    ``"sigmoid"`` (independent labels).
    """

    dropout: float = 0.5
    units: int = 256
    batchnorm: bool = True
    activation: str = "softmax"

    def __post_init__(self) -> None:
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, int | float):
            raise ConfigError(f"head dropout must be a number in [0, 1), got {self.dropout!r}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"head dropout must be in [0, 1), got {self.dropout!r}")
        if isinstance(self.units, bool) or not isinstance(self.units, int) or self.units < 0:
            raise ConfigError(
                f"head units must be an int >= 0 (0: a linear probe), got {self.units!r}"
            )
        if not isinstance(self.batchnorm, bool):
            raise ConfigError(f"head batchnorm must be True or False, got {self.batchnorm!r}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"head activation {self.activation!r} is not one of {list(ACTIVATIONS)}"
            )


def build_head(features, num_classes: int, config: HeadConfig | None = None):
    """Apply the head to a features tensor (B, D); return the probabilities tensor (B, classes).

    Layers are named ``head_dropout``, ``head_dense``, ``head_relu``, ``head_bn``, ``head_logits``
    and, last, ``probabilities`` (the model's output name). Logits and probabilities are float32
    even under a mixed-precision policy, so losses and scores stay stable.
    """
    config = config or HeadConfig()
    layers = keras.layers
    x = layers.Dropout(config.dropout, name="head_dropout")(features)
    if config.units:
        x = layers.Dense(config.units, name="head_dense")(x)
        x = layers.ReLU(name="head_relu")(x)
        if config.batchnorm:
            x = layers.BatchNormalization(name="head_bn")(x)
    # Logits as their own layer: averaging logits over a video's frames needs them.
    logits = layers.Dense(num_classes, name="head_logits", dtype="float32")(x)
    return layers.Activation(config.activation, name="probabilities", dtype="float32")(logits)
