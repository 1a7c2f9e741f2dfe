"""Preprocessing layers that live inside the model graph, so a saved model needs no outside code.

Every layer here is registered with Keras under the package ``"emokeras"``: importing
``emokeras.models`` is enough for ``keras.saving.load_model(path)`` to rebuild them in safe mode.
"""

from __future__ import annotations

import keras
from keras import ops

from emokeras.errors import ConfigError

#: ImageNet channel means in BGR order, as ``keras.applications.vgg16.preprocess_input`` uses them.
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="emokeras")
class GrayscaleToRGB(keras.layers.Layer):
    """Repeat a one-channel image to three channels; pass three-channel images through."""

    def build(self, input_shape):
        if input_shape[-1] not in (1, 3):
            raise ConfigError(f"GrayscaleToRGB takes 1 or 3 channels, got shape {input_shape}")

    def call(self, inputs):
        if inputs.shape[-1] == 1:
            return ops.repeat(inputs, 3, axis=-1)
        return inputs

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 3)


@keras.saving.register_keras_serializable(package="emokeras")
class VGGCaffePreprocessing(keras.layers.Layer):
    """``keras.applications.vgg16.preprocess_input`` ("caffe" mode) on RGB 0-255 images.

    Flips RGB to BGR and subtracts the ImageNet BGR means; no scaling.
    """

    def call(self, inputs):
        bgr = ops.flip(inputs, axis=-1)
        return bgr - ops.convert_to_tensor(CAFFE_BGR_MEAN, dtype=bgr.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="emokeras")
class BackboneTag(keras.layers.Layer):
    """An identity layer that records which registered backbone a model was built from.

    Keras saves no free-form model metadata, but it saves every layer's config: this layer keeps
    the backbone's registry name through ``.keras`` files so that ``freeze_backbone`` can resolve
    block names such as ``"block5"`` on a reloaded model.
    """

    def __init__(self, backbone: str, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "backbone": self.backbone}


@keras.saving.register_keras_serializable(package="emokeras")
class HorizontalFlip(keras.layers.Layer):
    """Mirror images left-right, always (``keras.layers.RandomFlip`` flips only in training).

    For test-time augmentation: an ensemble averages a model's output on the face and on its
    mirror image.
    """

    def call(self, inputs):
        return ops.flip(inputs, axis=-2)  # (N, H, W, C): W is the second-last axis

    def compute_output_shape(self, input_shape):
        return input_shape
