"""The tf.data pipeline on real FER2013 faces and photos: shapes, pixels, augmentation, MixUp,
balanced sampling, class weights, face-crop manifests and argument checks."""

from __future__ import annotations

import csv
import dataclasses
import logging
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf
from conftest import IMAGES, REPO_ROOT

from emokeras.datasets import TRAINING, Fer2013Arrays, ImageSet, load_fer2013_folders
from emokeras.datasets.manifest import manifest_image_set
from emokeras.datasets.pipeline import (
    AugmentConfig,
    RandomResizedCrop,
    build_augmentation,
    class_weights,
    make_dataset,
    steps_per_epoch,
)
from emokeras.errors import ConfigError, DatasetError
from emokeras.labels import FER2013, RAVDESS
from emokeras.prepare import MANIFEST_FIELDS

K = len(FER2013)
OFF = AugmentConfig(flip=False, rotation_degrees=0, zoom=0, translate=0, brightness=0, contrast=0)
PHOTOS = ("angry_f13.jpg", "happy_f15.jpg", "justin.jpg", "disgust_m7.jpg")


@pytest.fixture(scope="module")
def train(fer2013_subset) -> ImageSet:
    """The 84 real FER2013 training faces of the subset (12 per class), 48x48 gray JPEGs."""
    return load_fer2013_folders(fer2013_subset)[TRAINING]


@pytest.fixture(scope="module")
def small(train) -> ImageSet:
    """20 faces over all 7 classes, in a fixed order."""
    return train.subset(
        np.concatenate([np.flatnonzero(train.labels == k)[:3] for k in range(K)])[:20]
    )


def collect(dataset, batches=None):
    """All batches (or the first ``batches``) of a dataset, concatenated: (images, labels)."""
    images, labels = [], []
    for x, y in dataset.take(-1 if batches is None else batches):
        images.append(x.numpy())
        labels.append(y.numpy())
    return np.concatenate(images), np.concatenate(labels)


def one_hot(labels):
    return np.eye(K, dtype=np.float32)[labels]


# ----------------------------------------------------------------------------- pixels and shapes


@pytest.mark.parametrize("channels", [3, 1])
def test_image_set_at_source_size_equals_load_images(small, channels):
    dataset = make_dataset(small, num_classes=K, input_size=48, channels=channels, batch_size=8)
    first_x, first_y = next(iter(dataset))
    assert first_x.shape == (8, 48, 48, channels) and first_x.dtype == tf.float32
    assert first_y.shape == (8, K) and first_y.dtype == tf.float32
    images, labels = collect(dataset)
    expected = small.load_images(grayscale=channels == 1)
    expected = expected[..., np.newaxis] if channels == 1 else expected
    # Exactly the pixels OpenCV decodes, in source order, as float 0-255.
    np.testing.assert_array_equal(images, expected.astype(np.float32))
    np.testing.assert_array_equal(labels, one_hot(small.labels))


def test_image_set_resized_to_64(small):
    images, labels = collect(make_dataset(small, num_classes=K, input_size=64, batch_size=6))
    assert images.shape == (20, 64, 64, 3) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 255
    # Bilinear upscaling, as OpenCV's INTER_LINEAR in load_images(size=64), up to rounding.
    difference = np.abs(images - small.load_images(size=64).astype(np.float32))
    assert difference.max() <= 2 and difference.mean() < 0.5
    np.testing.assert_array_equal(labels, one_hot(small.labels))


def test_photos_of_any_size_and_format_convert_channels(tmp_path):
    # Real colour photos of different sizes, one as a PNG with an alpha channel.
    paths = [str(IMAGES / name) for name in PHOTOS[:3]]
    bgr = cv2.imread(str(IMAGES / PHOTOS[3]), cv2.IMREAD_COLOR)
    png = tmp_path / "with_alpha.png"
    cv2.imwrite(str(png), cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA))
    photos = ImageSet(paths=(*paths, str(png)), labels=np.array([0, 3, 6, 1]), label_set=FER2013)
    sizes = {cv2.imread(p).shape[:2] for p in photos.paths}
    assert len(sizes) > 1
    rgb, _ = collect(make_dataset(photos, num_classes=K, input_size=96, batch_size=4))
    gray, _ = collect(make_dataset(photos, num_classes=K, input_size=96, channels=1, batch_size=4))
    assert rgb.shape == (4, 96, 96, 3) and gray.shape == (4, 96, 96, 1)
    # Colour survives (these are colour photos), and matches OpenCV's resize of the same photo.
    assert np.abs(rgb[..., 0] - rgb[..., 2]).mean() > 5
    reference = photos.load_images(size=96).astype(np.float32)
    assert np.abs(rgb - reference).mean() < 4
    # Gray is the ITU-R 601 luma of the RGB pixels.
    luma = rgb @ np.array([0.2989, 0.587, 0.114], dtype=np.float32)
    assert np.abs(gray[..., 0] - luma).mean() < 1.5


def test_arrays_source(small):
    gray = small.load_images(grayscale=True)
    assert gray.shape == (20, 48, 48) and gray.dtype == np.uint8
    source = (gray, small.labels)
    for channels in (1, 3):
        images, labels = collect(
            make_dataset(source, num_classes=K, input_size=48, channels=channels, batch_size=7)
        )
        assert images.shape == (20, 48, 48, channels) and images.dtype == np.float32
        # Gray repeated to RGB: every channel equals the source pixels exactly.
        for c in range(channels):
            np.testing.assert_array_equal(images[..., c], gray.astype(np.float32))
        np.testing.assert_array_equal(labels, one_hot(small.labels))
    # Fer2013Arrays directly, resized 48 -> 64 like the files are.
    arrays = Fer2013Arrays(images=gray, labels=small.labels, usage=(TRAINING,) * 20)
    from_arrays, _ = collect(make_dataset(arrays, num_classes=K, input_size=64, batch_size=32))
    from_files, _ = collect(make_dataset(small, num_classes=K, input_size=64, batch_size=32))
    assert from_arrays.shape == (20, 64, 64, 3)
    np.testing.assert_array_equal(from_arrays, from_files)
    # (N, H, W, 3) arrays to gray.
    rgb = small.load_images()
    images, _ = collect(make_dataset((rgb, small.labels), num_classes=K, input_size=48, channels=1))
    np.testing.assert_array_equal(images[..., 0], gray.astype(np.float32))


def test_cache_gives_the_same_batches(small):
    plain = collect(make_dataset(small, num_classes=K, input_size=56, batch_size=8))
    cached = make_dataset(small, num_classes=K, input_size=56, batch_size=8, cache=True)
    for _ in range(2):  # the second pass reads the cache
        for got, expected in zip(collect(cached), plain, strict=True):
            np.testing.assert_array_equal(got, expected)


# ----------------------------------------------------------------------------- augmentation


def test_evaluation_never_augments(small):
    dataset = make_dataset(
        small, num_classes=K, input_size=48, batch_size=8,
        augment=AugmentConfig(rotation_degrees=30, mixup_alpha=0.4),
    )  # fmt: skip
    first, second = collect(dataset), collect(dataset)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[0], small.load_images().astype(np.float32))
    np.testing.assert_array_equal(first[1], one_hot(small.labels))


def test_training_shuffles_every_epoch(small):
    dataset = make_dataset(small, num_classes=K, input_size=48, batch_size=8, training=True)
    epochs = [collect(dataset) for _ in range(2)]
    source = small.load_images().astype(np.float32)
    for images, labels in epochs:
        assert images.shape == source.shape  # drop_remainder=False: all 20 items, batches 8, 8, 4
        # The same items with their own labels, in another order (no augmentation asked for).
        order = [int(np.flatnonzero((source == image).all(axis=(1, 2, 3)))[0]) for image in images]
        assert sorted(order) == list(range(20)) and order != list(range(20))
        np.testing.assert_array_equal(labels, one_hot(small.labels[order]))
    assert not np.array_equal(epochs[0][0], epochs[1][0])


def test_training_augments_within_range(small):
    dataset = make_dataset(
        small, num_classes=K, input_size=64, batch_size=10, training=True,
        augment=AugmentConfig(), shuffle_buffer=1, seed=3,
    )  # fmt: skip
    source = collect(make_dataset(small, num_classes=K, input_size=64, batch_size=10))
    first, second = collect(dataset), collect(dataset)
    for images, labels in (first, second):
        assert images.shape == (20, 64, 64, 3) and images.dtype == np.float32
        assert images.min() >= 0 and images.max() <= 255
        # shuffle_buffer=1 keeps the order, so each image compares with its source.
        changed = np.abs(images - source[0]).mean(axis=(1, 2, 3))
        assert (changed > 1).all()
        np.testing.assert_array_equal(labels, source[1])
    assert np.abs(first[0] - second[0]).mean() > 1  # new random transforms every epoch


def test_build_augmentation_layers():
    names = [type(layer).__name__ for layer in build_augmentation(AugmentConfig()).layers]
    assert names == [
        "RandomFlip", "RandomResizedCrop", "RandomRotation", "RandomTranslation",
        "RandomBrightness", "RandomContrast",
    ]  # fmt: skip
    identity = build_augmentation(OFF)
    assert [type(layer).__name__ for layer in identity.layers] == ["Identity"]
    batch = tf.constant(cv2.imread(str(IMAGES / "justin.jpg"))[np.newaxis, :64, :64], tf.float32)
    np.testing.assert_array_equal(identity(batch, training=True).numpy(), batch.numpy())
    flip = build_augmentation(dataclasses.replace(OFF, flip=True), seed=1)
    assert not np.array_equal(batch[0].numpy(), batch[0].numpy()[:, ::-1])
    flipped = flip(tf.repeat(batch, 16, axis=0), training=True).numpy()
    mirrored = [np.array_equal(image, batch[0].numpy()[:, ::-1]) for image in flipped]
    unchanged = [np.array_equal(image, batch[0].numpy()) for image in flipped]
    assert all(m or u for m, u in zip(mirrored, unchanged, strict=True))
    assert any(mirrored) and any(unchanged)  # decided per image


def test_random_resized_crop_stays_inside_the_image():
    # A horizontal ramp 0..252 (4 per column): a crop of side s in [0.8, 1] of the image, resized
    # back, is again a ramp with a step of 4 * s per column, and never reaches outside the image.
    ramp = np.tile(np.arange(64, dtype=np.float32) * 4, (64, 1))
    batch = tf.constant(np.repeat(ramp[np.newaxis, ..., np.newaxis], 32, axis=0))
    cropped = RandomResizedCrop(0.2, seed=0)(batch, training=True).numpy()[..., 0]
    steps = np.diff(cropped, axis=2)
    assert (steps > 4 * 0.8 - 1e-3).all() and (steps < 4 + 1e-3).all()
    spans = cropped[:, 0, -1] - cropped[:, 0, 0]
    assert spans.min() < 252 * 0.95 and spans.max() <= 252 + 1e-3  # zoomed, by different amounts
    assert cropped.min() >= 0 and cropped.max() <= 252
    np.testing.assert_array_equal(RandomResizedCrop(0.2)(batch, training=False), batch)


def test_mixup_mixes_pairs_within_a_batch(small):
    config = dataclasses.replace(OFF, mixup_alpha=0.4)
    dataset = make_dataset(
        small, num_classes=K, input_size=48, batch_size=10, training=True, augment=config,
        shuffle_buffer=1, seed=5,
    )  # fmt: skip
    source = small.load_images().astype(np.float32)
    batches = [(0, x.numpy(), y.numpy()) for x, y in dataset.take(1)]
    batches += [
        (start, x.numpy(), y.numpy()) for start, (x, y) in zip((0, 10), dataset, strict=True)
    ]
    lambdas = set()
    for start, images, labels in batches:
        assert images.shape == (10, 48, 48, 3) and images.min() >= 0 and images.max() <= 255
        np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=1e-6)
        assert labels.min() >= 0 and ((labels > 0).sum(axis=1) <= 2).all()
        batch, own = source[start : start + 10], small.labels[start : start + 10]
        # shuffle_buffer=1 keeps the order: image i is lam * image i + (1 - lam) * a partner, so
        # its own class weighs lam in its label row; one lambda for the whole batch.
        mixed = labels[np.arange(10), own] < 1 - 1e-6
        assert mixed.any(), "no row of the batch is mixed"
        lam = labels[np.arange(10), own][mixed]
        np.testing.assert_allclose(lam, lam[0], atol=1e-6)
        lam = float(lam[0])
        lambdas.add(round(lam, 4))
        for i in range(10):
            partners = [
                j for j in range(10)
                if np.allclose(images[i], lam * batch[i] + (1 - lam) * batch[j], atol=0.01)
            ]  # fmt: skip
            assert partners, f"image {i} is not a mix of itself and another image of the batch"
            expected = [lam * one_hot(own[i]) + (1 - lam) * one_hot(own[j]) for j in partners]
            assert any(np.allclose(labels[i], e, atol=1e-6) for e in expected)
    assert len(lambdas) == 3  # a new lambda every batch and every epoch


# ----------------------------------------------------------------------------- balancing


@pytest.mark.parametrize("cache", [False, True])
def test_balanced_sampling_draws_classes_equally(train, cache):
    happy, sad, disgust = (FER2013.index(name) for name in ("happy", "sad", "disgust"))
    index = np.concatenate(
        [
            np.flatnonzero(train.labels == happy)[:12],
            np.flatnonzero(train.labels == sad)[:6],
            np.flatnonzero(train.labels == disgust)[:2],
        ]
    )
    imbalanced = train.subset(index)
    dataset = make_dataset(
        imbalanced, num_classes=K, input_size=48, batch_size=32, training=True, balanced=True,
        cache=cache, seed=1,
    )  # fmt: skip
    images, labels = collect(dataset, batches=50)  # infinite: 50 batches of 32
    assert images.shape == (1600, 48, 48, 3)
    counts = labels.sum(axis=0)
    assert counts.sum() == 1600 and set(np.flatnonzero(counts)) == {happy, sad, disgust}
    for k in (happy, sad, disgust):
        assert abs(counts[k] / 1600 - 1 / 3) < 0.06, counts
    # Only the two disgust faces of the subset come back for disgust, over and over.
    disgust_images = images[labels[:, disgust] == 1]
    assert len(np.unique(disgust_images.reshape(len(disgust_images), -1), axis=0)) == 2
    assert steps_per_epoch(len(imbalanced), 32) == 1


def test_training_batches_mix_a_class_sorted_source(train):
    # The 84 real faces come class by class, as FER2013's folders do. By default the whole set
    # is shuffled, so every epoch's first batch already mixes classes; a buffer smaller than the
    # set only mixes neighbours, and the first batch holds the first classes alone.
    assert np.count_nonzero(np.diff(train.labels)) == K - 1  # one run of faces per class

    def first_batches(epochs: int, **kwargs) -> list[set[int]]:
        dataset = make_dataset(train, num_classes=K, input_size=48, channels=1, batch_size=12,
                               training=True, seed=1, **kwargs)
        return [set(np.argmax(next(iter(dataset))[1].numpy(), axis=1).tolist())
                for _ in range(epochs)]

    whole = first_batches(3)
    assert all(len(classes) >= 4 for classes in whole), whole
    assert len({frozenset(classes) for classes in whole}) > 1  # reshuffled every epoch
    assert first_batches(1, shuffle_buffer=12)[0] <= set(train.labels[:24].tolist())  # 2 classes
    # Past the old 10,000-item buffer: each face repeated 143 times (12,012, still class by
    # class), the last class starts at item 10,296, out of reach of a first batch drawn through a
    # 10,000 buffer; the whole-set shuffle reaches it.
    faces = np.repeat(train.load_images(grayscale=True), 143, axis=0)
    labels = np.repeat(train.labels, 143)
    last = int(labels[-1])
    assert np.flatnonzero(labels == last)[0] > 10_000 + 64
    dataset = make_dataset((faces, labels), num_classes=K, input_size=48, channels=1,
                           batch_size=64, training=True, seed=1)
    assert last in np.argmax(next(iter(dataset))[1].numpy(), axis=1)


def test_class_weights_on_real_labels(train, caplog):
    # Every class, imbalanced: 12, 10, 8, 6, 4, 2 and 1 real faces.
    keep = np.concatenate(
        [np.flatnonzero(train.labels == k)[: max(12 - 2 * k, 1)] for k in range(K)]
    )
    labels = train.labels[keep]
    counts = np.bincount(labels, minlength=K)
    assert counts.tolist() == [12, 10, 8, 6, 4, 2, 1]
    weights = class_weights(labels, K)
    assert set(weights) == set(range(K))
    for k in range(K):  # scikit-learn's "balanced": n / (K * count)
        assert weights[k] == pytest.approx(len(labels) / (K * counts[k]))
    assert sum(weights[k] * counts[k] for k in range(K)) / len(labels) == pytest.approx(1.0)
    assert weights[0] < weights[3] < weights[6]  # the rarer the class, the heavier
    # Tempered (power 0.5): the square roots of those ratios, still averaging 1 over the items.
    tempered = class_weights(labels, K, power=0.5)
    assert sum(tempered[k] * counts[k] for k in range(K)) / len(labels) == pytest.approx(1.0)
    for k in range(1, K):
        assert tempered[k] / tempered[0] == pytest.approx((counts[0] / counts[k]) ** 0.5)
    assert tempered[6] < weights[6] and tempered[0] > weights[0]  # a milder lift
    with pytest.raises(DatasetError, match="power must be in"):
        class_weights(labels, K, power=0.0)
    # Without any disgust face: 0 for disgust, with a warning; the others still average 1.
    disgust = FER2013.index("disgust")
    labels = labels[labels != disgust]
    with caplog.at_level(logging.WARNING, logger="emokeras.datasets.pipeline"):
        weights = class_weights(labels, K)
    assert weights[disgust] == 0.0
    assert f"[{disgust}] have no training items" in caplog.text
    counts = np.bincount(labels, minlength=K)
    assert sum(weights[k] * counts[k] for k in range(K)) / len(labels) == pytest.approx(1.0)
    assert weights[0] == pytest.approx(len(labels) / (6 * 12))
    with pytest.raises(DatasetError, match="label 7 .*outside 0..6"):
        class_weights([0, 7], K)


def test_steps_per_epoch():
    assert steps_per_epoch(84, 32) == 3
    assert steps_per_epoch(64, 32) == 2
    assert steps_per_epoch(1, 32) == 1
    with pytest.raises(ValueError, match="num_items.*0"):
        steps_per_epoch(0, 32)
    with pytest.raises(ValueError, match="batch_size.*-1"):
        steps_per_epoch(10, -1)


# ----------------------------------------------------------------------------- manifests


def write_manifest(folder, rows):
    with open(folder / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({field: row.get(field, "") for field in MANIFEST_FIELDS})
    return folder / "manifest.csv"


@pytest.fixture
def manifest(tmp_path, train):
    """A face-crop manifest over real FER2013 faces copied into ``crops/``."""
    rows = []
    spec = [  # (status, split, label name, label_index, actor, sex)
        ("ok", "train", "happy", "2", "01", "male"),
        ("ok", "train", "sad", "3", "02", "female"),
        ("no_face", "train", "happy", "2", "01", "male"),
        ("ok", "val", "angry", "4", "03", "male"),
        ("ok", "test", "happy", "2", "04", "female"),
        ("ok", "train", "angry", "", "", "female"),  # label from the name, subject from the video
        ("unreadable", "", "sad", "3", "05", "male"),
    ]
    for i, (status, split, label, index, actor, sex) in enumerate(spec):
        video = f"Actor_{i:02d}/clip{i}"
        crop = ""
        if status == "ok":
            crop = f"crops/{video}/000{i}_0.jpg"
            (tmp_path / crop).parent.mkdir(parents=True)
            shutil.copyfile(train.paths[i * 5], tmp_path / crop)
        rows.append(
            {
                "video_id": video, "crop_path": crop, "label": label, "label_index": index,
                "actor": actor, "sex": sex, "split": split, "status": status,
            }
        )  # fmt: skip
    return write_manifest(tmp_path, rows)


def test_manifest_image_set_keeps_ok_rows_of_the_split(manifest):
    folder = manifest.parent
    images = manifest_image_set(manifest, RAVDESS, split="train")
    assert images.paths == tuple(
        str(folder / f"crops/Actor_{i:02d}/clip{i}/000{i}_0.jpg") for i in (0, 1, 5)
    )
    assert images.labels.tolist() == [2, 3, RAVDESS.index("angry")]
    assert images.subjects == ("01", "02", "Actor_05/clip5")
    assert images.label_set is RAVDESS
    assert len(manifest_image_set(manifest, RAVDESS)) == 5  # every ok row, any split
    val = manifest_image_set(manifest, RAVDESS, split="val")
    assert val.labels.tolist() == [4] and val.subjects == ("03",)
    female = manifest_image_set(manifest, RAVDESS, split="train", sex="Female")
    assert female.subjects == ("02", "Actor_05/clip5")
    # The crops feed the pipeline.
    x, y = next(iter(make_dataset(images, num_classes=len(RAVDESS), input_size=48)))
    assert x.shape == (3, 48, 48, 3)
    np.testing.assert_array_equal(np.argmax(y, axis=1), images.labels)


def test_manifest_filters_that_empty_it_are_named(manifest, tmp_path):
    with pytest.raises(DatasetError, match=r"filter sex='male'.*sex \{'female': 1\}"):
        manifest_image_set(manifest, RAVDESS, split="test", sex="male")
    rows = list(csv.DictReader(manifest.open(encoding="utf-8")))
    train_only = write_manifest(tmp_path, [r for r in rows if r["split"] != "val"])
    with pytest.raises(DatasetError, match=r"filter split='val'.*split \{'train': 3, 'test': 1\}"):
        manifest_image_set(train_only, RAVDESS, split="val")
    no_faces = write_manifest(tmp_path, [r for r in rows if r["status"] != "ok"])
    with pytest.raises(DatasetError, match=r"no row with status 'ok' \(\{'no_face': 1, 'unread"):
        manifest_image_set(no_faces, RAVDESS)
    with pytest.raises(DatasetError, match="has no rows"):
        manifest_image_set(write_manifest(tmp_path, []), RAVDESS)
    bad_label = write_manifest(tmp_path, [{**rows[0], "label_index": "9"}])
    with pytest.raises(DatasetError, match="line 2: label_index '9' is not a class index"):
        manifest_image_set(bad_label, RAVDESS)


def test_manifest_missing_file_and_columns(tmp_path):
    with pytest.raises(DatasetError, match="nowhere.csv.*does not exist"):
        manifest_image_set(tmp_path / "nowhere.csv", RAVDESS)
    (tmp_path / "partial.csv").write_text("crop_path,label,status\ncrops/a.jpg,happy,ok\n")
    with pytest.raises(DatasetError, match=r"lacks columns \['label_index', 'actor', 'video_id'\]"):
        manifest_image_set(tmp_path / "partial.csv", RAVDESS)
    with pytest.raises(ValueError, match="split.*'validation'"):
        manifest_image_set(tmp_path / "partial.csv", RAVDESS, split="validation")


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"num_classes": 1}, ValueError, "num_classes must be at least 2, got 1"),
        ({"input_size": 4}, ValueError, "input_size must be at least 8, got 4"),
        ({"channels": 2}, ValueError, "channels must be 1 .* got 2"),
        ({"batch_size": 0}, ValueError, "batch_size must be a positive integer, got 0"),
        ({"shuffle_buffer": 0}, ValueError, "shuffle_buffer .* got 0"),
        ({"num_classes": 3}, DatasetError, r"label [3-6] \(item \d+\) is outside 0..2"),
        ({"balanced": True}, ValueError, "balanced=True needs training=True"),
    ],
)
def test_bad_arguments_are_named(small, changes, error, message):
    arguments = {"num_classes": K, "input_size": 48, **changes}
    with pytest.raises(error, match=message):
        make_dataset(small, **arguments)


def test_bad_sources(small, tmp_path):
    gray = small.load_images(grayscale=True)
    empty = ImageSet(paths=(), labels=np.array([], dtype=np.int64), label_set=FER2013)
    with pytest.raises(DatasetError, match="empty"):
        make_dataset(empty, num_classes=K, input_size=48)
    with pytest.raises(DatasetError, match="empty"):
        make_dataset((gray[:0], small.labels[:0]), num_classes=K, input_size=48)
    with pytest.raises(DatasetError, match="uint8.*float32"):
        make_dataset((gray.astype(np.float32), small.labels), num_classes=K, input_size=48)
    with pytest.raises(DatasetError, match=r"labels must have shape \(20,\).*\(19,\)"):
        make_dataset((gray, small.labels[:19]), num_classes=K, input_size=48)
    with pytest.raises(DatasetError, match="label -1 .*outside"):
        make_dataset((gray, np.full(20, -1)), num_classes=K, input_size=48)
    with pytest.raises(TypeError, match="list"):
        make_dataset(list(small.paths), num_classes=K, input_size=48)
    with pytest.raises(ConfigError, match="zoom must be in .* got 1.5"):
        AugmentConfig(zoom=1.5)
    with pytest.raises(ConfigError, match="mixup_alpha .* got -1"):
        AugmentConfig(mixup_alpha=-1)
    # Missing files are listed up front; a file that is no image is named when reached.
    gone = small.subset(range(8))
    moved = [str(tmp_path / f"gone{i}.jpg") for i in range(7)]
    gone = ImageSet(paths=(*moved, gone.paths[7]), labels=gone.labels, label_set=FER2013)
    with pytest.raises(DatasetError, match=r"7 of 8 image files do not exist: .*gone0.jpg.*2 more"):
        make_dataset(gone, num_classes=K, input_size=48)
    text = tmp_path / "notes.jpg"
    text.write_text("not an image\n")
    bad = ImageSet(paths=(small.paths[0], str(text)), labels=np.array([0, 1]), label_set=FER2013)
    with pytest.raises(tf.errors.InvalidArgumentError, match="not a JPEG, PNG.*notes.jpg"):
        collect(make_dataset(bad, num_classes=K, input_size=48))


def test_light_modules_stay_free_of_tensorflow():
    # emokeras, its datasets and the data_prep step must import without TensorFlow (3-10 s)
    code = (
        "import sys, emokeras, emokeras.datasets, emokeras.datasets.sources, emokeras.prepare; "
        "heavy = {'tensorflow', 'keras'} & set(sys.modules); "
        "print('ok' if not heavy else heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"
