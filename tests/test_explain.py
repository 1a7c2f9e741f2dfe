"""Explanations: Grad-CAM, attention rollout, overlays, and ``emokeras predict --explain``."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import IMAGES, VIDEOS

from emokeras import cli
from emokeras.errors import ConfigError
from emokeras.explain import (
    attention_rollout,
    explain,
    find_conv_layer,
    grad_cam,
    is_vit,
    overlay,
    save_explanation,
)
from emokeras.images import load_image
from emokeras.models import build_model

NUM_CLASSES = 7


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    """A real face photo, cropped off-square so the map's size is checked on both axes."""
    return load_image(IMAGES / "happy_f15.jpg")[40:460, 60:420]


@pytest.fixture(scope="module")
def small_model():
    keras.utils.set_random_seed(0)
    return build_model("small_cnn", NUM_CLASSES, weights=None, channels=1)


def _check_map(heatmap: np.ndarray, image: np.ndarray) -> None:
    assert heatmap.shape == image.shape[:2]
    assert heatmap.dtype == np.float32
    assert heatmap.min() >= 0.0 and heatmap.max() <= 1.0
    assert heatmap.std() > 0.01, "the map is constant"


def test_grad_cam_has_the_image_size_and_is_not_constant_on_a_real_face(small_model, face):
    heatmap = grad_cam(small_model, face)
    _check_map(heatmap, face)
    assert heatmap.max() > 0.9  # scaled to its maximum (interpolation may shave the peak)
    # a grayscale image gives a map of its own size too
    gray = face.mean(axis=-1).astype(np.uint8)
    _check_map(grad_cam(small_model, gray, class_index=3), gray)


@pytest.mark.parametrize(
    ("name", "layer"),
    [
        ("baseline_cnn", "block3_relu"),
        ("attention_cnn", "block3_sa_apply"),
        ("multiscale_cnn", "fusion_relu"),
        ("hybrid_cnn_transformer", "stage3_relu"),
        ("region_ensemble", "face_stage3_relu"),
    ],
)
def test_grad_cam_finds_the_last_feature_map_of_each_architecture(name, layer, face):
    keras.utils.set_random_seed(0)
    model = build_model(name, NUM_CLASSES, weights=None, channels=1)
    assert find_conv_layer(model) == layer
    _check_map(grad_cam(model, face), face)


def test_grad_cam_of_a_pretrained_mobilenet_avoids_its_2x2_last_map(face):
    from conftest import SHARED

    keras.utils.set_random_seed(0)  # the head is random: keep its map the same every run
    weights = SHARED / "weights" / "mobilenet_v2_1.0_224_imagenet_notop.weights.h5"
    model = build_model("mobilenet_v2", NUM_CLASSES, weights=weights, input_size=64)
    layer = find_conv_layer(model)
    assert layer != "out_relu"  # 2x2 at 64 px: too coarse for a face
    _check_map(grad_cam(model, face), face)
    coarse = grad_cam(model, face, layer="out_relu")  # 2x2 cells: may well be all zero
    assert coarse.shape == face.shape[:2] and 0 <= coarse.min() <= coarse.max() <= 1


def test_grad_cam_rejects_what_it_cannot_explain(small_model, face):
    with pytest.raises(ConfigError, match="class_index"):
        grad_cam(small_model, face, class_index=NUM_CLASSES)
    with pytest.raises(ConfigError, match="no layer named"):
        grad_cam(small_model, face, layer="nope")
    with pytest.raises(ConfigError, match="4-D"):
        grad_cam(small_model, face, layer="avg_pool")
    with pytest.raises(ConfigError):
        grad_cam(small_model, np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ConfigError):
        grad_cam("not a model", face)


def test_attention_rollout_on_a_small_vit(face):
    model = build_model("vit_tiny", NUM_CLASSES, weights=None, input_size=32)
    assert is_vit(model)
    heatmap = attention_rollout(model, face)
    _check_map(heatmap, face)
    np.testing.assert_allclose(explain(model, face), heatmap)
    with pytest.raises(ConfigError, match="attention_rollout"):
        grad_cam(model, face)


def test_attention_rollout_needs_a_vit(small_model, face):
    assert not is_vit(small_model)
    with pytest.raises(ConfigError, match="grad_cam"):
        attention_rollout(small_model, face)


def test_overlay_and_save_explanation(face, tmp_path):
    heatmap = np.linspace(0, 1, 20 * 10, dtype=np.float32).reshape(20, 10)
    blended = overlay(face, heatmap)
    assert blended.shape == face.shape and blended.dtype == np.uint8
    assert not np.array_equal(blended, face)
    np.testing.assert_array_equal(overlay(face, heatmap, alpha=0.0), face)
    gray = overlay(face[..., 0], heatmap)
    assert gray.shape == face.shape
    with pytest.raises(ConfigError):
        overlay(face, heatmap, alpha=2)
    with pytest.raises(ConfigError):
        overlay(face, np.zeros((2, 2, 2)))

    small = face[:48, :48]
    path = save_explanation(tmp_path / "out" / "face.png", small, heatmap)
    written = load_image(path)
    assert written.shape == (192, 192, 3)  # small faces are enlarged to be seen


def test_predict_explain_writes_an_overlay_per_file(tmp_path, capsys):
    out = tmp_path / "explained"
    code = cli.main([
        "predict", str(IMAGES / "happy_f15.jpg"), str(VIDEOS / "single_face.mp4"),
        "--max-frames", "6", "--explain", str(out),
    ])  # fmt: skip
    assert code == 0
    for stem in ("happy_f15", "single_face"):
        image = load_image(out / f"{stem}_explain.png")
        assert image.ndim == 3 and min(image.shape[:2]) >= 192
    assert "explanation:" in capsys.readouterr().out


def test_predict_explain_reports_a_file_without_a_face(tmp_path, capsys):
    out = tmp_path / "explained"
    code = cli.main(["predict", str(IMAGES / "mountain.jpg"), "--explain", str(out)])
    assert code == 1  # the only file failed: no face, so no prediction and no picture
    assert not out.exists() or not list(out.iterdir())
