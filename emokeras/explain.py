"""Where a model looks: Grad-CAM for convolutional backbones, attention rollout for ViT.

Both take a model from :func:`emokeras.models.build_model` (or an ``EmotionModel``) and one face
image (RGB ``(H, W, 3)`` or gray ``(H, W)``, 0-255, any size: it is resized to the model's input
as inference does) and return a heatmap ``(H, W)`` float32 in [0, 1] at the image's own size.

- :func:`grad_cam` (Selvaraju et al., 2017): the gradients of the class's logit with respect to
  a convolutional feature map, averaged over space, weight the map's channels; the weighted sum,
  through a ReLU, divided by its maximum, is the map. The layer is the backbone's last layer with
  a 4-D output at least 4x4 (else larger than 1x1) that is not a pooling layer (``layer=`` names
  another). Of an ensemble (``emokeras.models.ensemble``), the members' maps of the ensemble's
  class are averaged. A map that is zero everywhere (no positive evidence) stays zero.
- :func:`attention_rollout` (Abnar & Zuidema, 2020) for keras-hub ViT backbones: per block, the
  attention averaged over heads, plus the identity for the residual path, rows renormalised; the
  blocks' matrices multiplied; the class token's row over the patches is the map. keras-hub's
  ``ViTBackbone`` does not return attention scores, so the encoder is run again here, block by
  block, through the blocks' own sublayers (``layer_norm_1``, ``mha`` with
  ``return_attention_scores=True``, ``layer_norm_2``, ``mlp``), and the result is checked against
  the backbone's own output so that a change inside keras-hub fails loudly instead of silently
  explaining something else.

:func:`overlay` blends a heatmap over the face (JET colours); :func:`save_explanation` writes that
as a PNG; :func:`explain_file` does the whole ``emokeras predict --explain`` path for an image or
a video (its most confident frame for the predicted label).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np

from emokeras.errors import ConfigError, EmokerasError, NoFaceFoundError
from emokeras.fileio import atomic_write
from emokeras.images import load_image, resize
from emokeras.model import (
    crop_framing_for,
    crop_sexes,
    crop_size_for,
    prepare_crop,
    resolve_model,
)

logger = logging.getLogger(__name__)

#: Grad-CAM's default layer is the last whose map is at least this many cells a side, where one
#: is (a MobileNetV2 at 64 px ends on a 2x2 map, too coarse to show anything on a face).
MIN_MAP_SIDE = 4
#: Layers whose output is never a Grad-CAM target (they only reshape or pool conv maps).
_POOLING = ("MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D")


def _keras_model(model):
    """The Keras model of an EmotionModel, or the model itself."""
    inner = getattr(model, "model", None)
    if inner is not None and hasattr(inner, "input_shape"):
        return inner
    if hasattr(model, "input_shape") and hasattr(model, "layers"):
        return model
    raise ConfigError(
        "model must be a Keras model from build_model or an EmotionModel, "
        f"got {type(model).__name__}"
    )


def _as_batch(model, image) -> np.ndarray:
    """One face as the model takes it: (1, S, S, C) float32, 0-255."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] != 3):
        raise ConfigError(f"image must be (H, W) gray or (H, W, 3) RGB, got shape {image.shape}")
    if image.size == 0:
        raise ConfigError("image is empty")
    _, size, _, channels = model.input_shape
    face = image.astype(np.float32) if image.dtype != np.uint8 else image
    return prepare_crop(face, int(size), int(channels))[np.newaxis]


def _parts(model):
    """(layers before the backbone, the backbone, layers after it) of a build_model model."""
    import keras

    from emokeras.models import get_backbone

    backbone = get_backbone(model)
    layers = list(model.layers)
    index = layers.index(backbone)
    before = [layer for layer in layers[:index] if not isinstance(layer, keras.layers.InputLayer)]
    return before, backbone, layers[index + 1 :]


def _logits_chain(head_layers):
    """The head up to its logits layer (Grad-CAM's score is the logit, not the probability)."""
    from emokeras.models.heads import LOGITS_LAYER  # in-function: it imports Keras

    names = [layer.name for layer in head_layers]
    if LOGITS_LAYER in names:
        return head_layers[: names.index(LOGITS_LAYER) + 1]
    return head_layers


def _rank4(layer) -> tuple[int, ...] | None:
    try:
        shape = tuple(layer.output.shape)
    except (AttributeError, ValueError):  # a layer used twice or never built
        return None
    return shape if len(shape) == 4 else None


def find_conv_layer(model) -> str:
    """Name of the backbone layer Grad-CAM uses by default (see the module's docstring)."""
    import keras

    _, backbone, _ = _parts(_keras_model(model))
    candidates = []
    for layer in reversed(backbone.layers):
        shape = _rank4(layer)
        if (
            shape is not None
            and not isinstance(layer, keras.layers.InputLayer)
            and type(layer).__name__ not in _POOLING
            and (shape[1] or 0) * (shape[2] or 0) > 1
        ):
            candidates.append((layer.name, min(shape[1], shape[2])))
    for name, side in candidates:
        if side >= MIN_MAP_SIDE:
            return name
    if candidates:
        return candidates[0][0]
    raise ConfigError(
        f"the backbone {backbone.name!r} of model {model.name!r} has no convolutional feature map "
        "for Grad-CAM; for a ViT, use attention_rollout"
    )


def _normalise(cam: np.ndarray, height: int, width: int) -> np.ndarray:
    cam = np.maximum(np.asarray(cam, dtype=np.float32), 0.0)
    top = float(cam.max())
    cam = cam / top if top > 0 else np.zeros_like(cam)
    cam = cv2.resize(cam, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(cam, 0.0, 1.0).astype(np.float32)


def grad_cam(model, image, class_index: int | None = None, layer: str | None = None) -> np.ndarray:
    """Grad-CAM heatmap (H, W) in [0, 1] at the image's size; ``class_index`` defaults to the
    predicted class, ``layer`` to :func:`find_conv_layer`'s choice."""
    import keras
    import tensorflow as tf

    from emokeras.models.ensemble import ensemble_members

    model = _keras_model(model)
    batch = _as_batch(model, image)
    members = ensemble_members(model)
    if members:  # each member's map of the ensemble's class, averaged
        if class_index is None:
            class_index = int(np.argmax(model.predict_on_batch(batch)[0]))
        maps = [grad_cam(member, image, class_index, layer) for member in members]
        return _normalise(np.mean(maps, axis=0), *maps[0].shape)
    before, backbone, head = _parts(model)
    name = layer or find_conv_layer(model)
    try:
        target = backbone.get_layer(name)
    except ValueError:
        raise ConfigError(f"the backbone of {model.name!r} has no layer named {name!r}") from None
    if _rank4(target) is None:
        raise ConfigError(f"layer {name!r} has no 4-D output: Grad-CAM needs a feature map")
    inner = keras.Model(backbone.inputs, [target.output, backbone.output])
    chain = _logits_chain(head)
    classes = int(model.output_shape[-1])
    if class_index is not None and not 0 <= class_index < classes:
        raise ConfigError(f"class_index must be in 0..{classes - 1}, got {class_index}")
    with tf.GradientTape() as tape:
        x = tf.convert_to_tensor(batch)
        for part in before:
            x = part(x)
        feature_map, x = inner(x, training=False)
        for part in chain:
            x = part(x, training=False)
        index = int(tf.argmax(x[0])) if class_index is None else class_index
        score = x[:, index]
    gradients = tape.gradient(score, feature_map)
    if gradients is None:
        raise EmokerasError(f"no gradient flows from the output to layer {name!r}")
    weights = tf.reduce_mean(gradients, axis=(1, 2))  # (1, C)
    cam = tf.reduce_sum(feature_map * weights[:, None, None, :], axis=-1)[0]
    height, width = np.asarray(image).shape[:2]
    logger.debug("Grad-CAM of class %d at layer %s (%s)", index, name, feature_map.shape)
    return _normalise(cam.numpy(), height, width)


def _find_vit(model):
    """The keras-hub ViTBackbone inside a model, or None."""
    try:
        from keras_hub.models import ViTBackbone
    except ImportError:  # pragma: no cover - keras-hub is a dependency
        return None
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, ViTBackbone):
            return layer
    return None


def is_vit(model) -> bool:
    """Whether the model's backbone is a keras-hub ViT (explained by attention rollout)."""
    return _find_vit(_keras_model(model)) is not None


def attention_rollout(model, image) -> np.ndarray:
    """Attention-rollout heatmap (H, W) in [0, 1] of a ViT model, at the image's size."""
    import tensorflow as tf

    model = _keras_model(model)
    vit = _find_vit(model)
    if vit is None:
        raise ConfigError(f"model {model.name!r} has no keras-hub ViT backbone; use grad_cam")
    batch = _as_batch(model, image)
    before, _, _ = _parts(model)
    x = tf.convert_to_tensor(batch)
    for part in before:  # tag, grayscale to RGB, preprocessing: what the ViT is fed
        x = part(x)
    tokens = vit.get_layer("vit_patching_and_embedding")(x)
    encoder = vit.get_layer("vit_encoder")
    matrices = []
    for block in encoder.encoder_layers:
        y = block.layer_norm_1(tokens)
        y, scores = block.mha(y, y, return_attention_scores=True, training=False)
        tokens = tokens + y
        tokens = tokens + block.mlp(block.layer_norm_2(tokens))
        matrices.append(np.asarray(scores)[0].mean(axis=0))  # (N, N), heads averaged
    expected = np.asarray(vit(x, training=False))
    got = np.asarray(encoder.layer_norm(tokens))
    if not np.allclose(got, expected, atol=1e-3 * max(1.0, float(np.abs(expected).max()))):
        raise EmokerasError(
            "re-running the ViT's blocks did not reproduce its output: this keras-hub version "
            "builds ViTEncoderBlock differently, so attention rollout cannot read its attention"
        )
    count = matrices[0].shape[0]
    rollout = np.eye(count)
    for attention in matrices:
        attention = attention + np.eye(count)
        attention = attention / attention.sum(axis=-1, keepdims=True)
        rollout = attention @ rollout
    patches = rollout[0, 1:]
    side = round(np.sqrt(len(patches)))
    if side * side != len(patches):
        raise EmokerasError(f"{len(patches)} patch tokens do not form a square grid")
    height, width = np.asarray(image).shape[:2]
    # Rollout weights are all positive: stretch min..max so the map shows where it looks most.
    grid = patches.reshape(side, side)
    grid = grid - grid.min()
    return _normalise(grid, height, width)


def explain(model, image, class_index: int | None = None) -> np.ndarray:
    """Attention rollout for a ViT, Grad-CAM for anything else."""
    if is_vit(model):
        if class_index is not None:
            logger.info("attention rollout does not depend on the class; class_index ignored")
        return attention_rollout(model, image)
    return grad_cam(model, image, class_index=class_index)


def overlay(face_rgb, heatmap, alpha: float = 0.45) -> np.ndarray:
    """The heatmap in JET colours blended over the face: RGB uint8 at the face's size."""
    face = np.asarray(face_rgb)
    if face.ndim == 3 and face.shape[-1] == 1:
        face = face[..., 0]
    if face.ndim == 2:
        face = np.repeat(face[..., None], 3, axis=-1)
    if face.ndim != 3 or face.shape[-1] != 3:
        raise ConfigError(f"face must be (H, W) gray or (H, W, 3) RGB, got shape {face.shape}")
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.ndim != 2:
        raise ConfigError(f"heatmap must be 2-D (H, W), got shape {heat.shape}")
    if not 0 <= alpha <= 1:
        raise ConfigError(f"alpha must be in [0, 1], got {alpha}")
    if heat.shape != face.shape[:2]:
        heat = cv2.resize(heat, (face.shape[1], face.shape[0]), interpolation=cv2.INTER_LINEAR)
    colours = cv2.applyColorMap(np.uint8(np.clip(heat, 0, 1) * 255), cv2.COLORMAP_JET)
    colours = cv2.cvtColor(colours, cv2.COLOR_BGR2RGB).astype(np.float32)
    blended = (1 - alpha) * np.clip(face, 0, 255).astype(np.float32) + alpha * colours
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def save_explanation(
    path: str | os.PathLike[str], face_rgb, heatmap, *, alpha: float = 0.45, min_side: int = 192
) -> Path:
    """Write the overlay as a PNG, atomically; small faces are enlarged to ``min_side``."""
    face = np.asarray(face_rgb)
    side = min(face.shape[:2])
    if side < min_side:
        scale = min_side / side
        size = (round(face.shape[0] * scale), round(face.shape[1] * scale))
        face = resize(face, size)
    image = overlay(face, heatmap, alpha)
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - PNG encoding of a uint8 RGB image does not fail
        raise EmokerasError(f"could not encode {path} as PNG")
    path = Path(path)
    with atomic_write(path, "wb") as handle:
        handle.write(data.tobytes())
    return path


def _pick_model(emotion, crop: np.ndarray, sex: str | None):
    """The EmotionModel to explain: the model itself, or a sex-routed model's model for the
    face's sex (given, else classified), as inference routes it."""
    sexes = crop_sexes(emotion, [crop], sex)
    return emotion if sexes is None else emotion.models[sexes[0]]


def _largest_face(rgb: np.ndarray, size: int, what: str, framing, detector=None) -> np.ndarray:
    """The largest face, cut with ``framing`` (a CropFraming: the model's)."""
    from emokeras.faces import crop_face, default_detector

    boxes = (detector or default_detector()).detect(rgb)
    if not boxes:
        raise NoFaceFoundError(f"no face found in {what}")
    return crop_face(rgb, boxes[0], size=size, margin=framing.margin, shift_y=framing.shift_y)


def explain_file(
    path: str | os.PathLike[str], model=None, out_dir: str | os.PathLike[str] = ".", *,
    video=None, detector=None,
) -> Path:  # fmt: skip
    """Write ``<out_dir>/<stem>_explain.png`` for an image or a video; return its path.

    An image: its largest face, explained for the predicted class. A video: pass its
    ``VideoPrediction`` as ``video``; the sampled frame with the highest probability for the
    video's label is read again, its largest face cropped and explained for that label.
    """
    emotion = resolve_model(model)
    path = Path(path)
    # crops as inference makes them
    size, framing = crop_size_for(emotion), crop_framing_for(emotion)
    class_index = None
    sex = None
    if video is None:
        crop = _largest_face(load_image(path), size, str(path), framing, detector)
    else:
        from emokeras.video import iter_frames

        row = int(np.argmax(video.frame_probs[:, video.label_index]))
        wanted, stamp = int(video.frame_indices[row]), float(video.timestamps[row])
        frame = None
        frames = iter_frames(path, start=max(0.0, stamp - 0.5))
        try:
            for item in frames:
                if item.index >= wanted:
                    frame = item.image
                    break
        finally:
            frames.close()
        if frame is None:
            raise EmokerasError(f"could not read frame {wanted} of {str(path)!r} again")
        crop = _largest_face(frame, size, f"frame {wanted} of {path}", framing, detector)
        class_index, sex = video.label_index, video.sex
    chosen = _pick_model(emotion, crop, sex)
    heatmap = explain(chosen.model, crop, class_index=class_index)
    out = Path(out_dir) / f"{path.stem}_explain.png"
    return save_explanation(out, crop, heatmap)
