"""The classification head put on top of a backbone's pooled features."""

from __future__ import annotations

import keras

# HeadConfig lives in emokeras.configs (no Keras, so flags and --help built from TrainConfig
# stay light); re-exported here.
from emokeras.configs import ACTIVATIONS, HeadConfig  # noqa: F401

#: The head's layer names (export folds the head's BatchNorm by finding these layers; explain
#: stops at the logits).
DROPOUT_LAYER = "head_dropout"
DENSE_LAYER = "head_dense"
RELU_LAYER = "head_relu"
NORM_LAYER = "head_bn"
LOGITS_LAYER = "head_logits"
#: The last layer, and the model's output name
OUTPUT_LAYER = "probabilities"


def build_head(features, num_classes: int, config: HeadConfig | None = None):
    """Apply the head to a features tensor (B, D); return the probabilities tensor (B, classes).

    Layers are named ``head_dropout``, ``head_dense``, ``head_relu``, ``head_bn``, ``head_logits``
    and, last, ``probabilities`` (the model's output name). Logits and probabilities are float32
    even under a mixed-precision policy, so losses and scores stay stable.
    """
    config = config or HeadConfig()
    layers = keras.layers
    x = layers.Dropout(config.dropout, name=DROPOUT_LAYER)(features)
    if config.units:
        x = layers.Dense(config.units, name=DENSE_LAYER)(x)
        x = layers.ReLU(name=RELU_LAYER)(x)
        if config.batchnorm:
            x = layers.BatchNormalization(name=NORM_LAYER)(x)
    # Logits as their own layer: averaging logits over a video's frames needs them.
    logits = layers.Dense(num_classes, name=LOGITS_LAYER, dtype="float32")(x)
    return layers.Activation(config.activation, name=OUTPUT_LAYER, dtype="float32")(logits)
