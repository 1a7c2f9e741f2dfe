"""Spectrogram sets: from RAVDESS-named real clips, to and from .npz, and split for training."""

from __future__ import annotations

import json
import logging
import os
import wave
from pathlib import Path

import numpy as np
import pytest
from conftest import RAVDESS_CLIPS, RAVDESS_NAMES, write_silent_video

from emokeras.audio import SpectrogramConfig, audio_spectrogram, load_audio
from emokeras.datasets import (
    SpectrogramSet,
    audio_spectrogram_set,
    load_spectrogram_npz,
    save_spectrogram_npz,
)
from emokeras.datasets.sources import load_splits
from emokeras.errors import DatasetError
from emokeras.labels import RAVDESS, SPEECH5, get_label_set

CONFIG = SpectrogramConfig()


def _link(source: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(source, dest)
    return dest



@pytest.fixture(scope="module")
def clip_tree(tmp_path_factory) -> Path:
    """The four real clips under their RAVDESS names (neutral, angry, neutral, fearful), plus a
    badly named file and a RAVDESS-named video with no audio track."""
    root = tmp_path_factory.mktemp("speech")
    for source, name in RAVDESS_NAMES.items():
        _link(RAVDESS_CLIPS / source, root / f"Actor_{name[-6:-4]}" / name)
    _link(RAVDESS_CLIPS / "actor01_sample_01.mp4", root / "Actor_01" / "interview.mp4")
    write_silent_video(root / "Actor_03" / "01-01-03-01-01-01-03.mp4")
    (root / "notes.txt").write_text("not media\n")
    return root


@pytest.fixture(scope="module")
def built(clip_tree):
    return audio_spectrogram_set(clip_tree, progress=False)


@pytest.fixture(scope="module")
def six_actor_npz(tmp_path_factory) -> Path:
    """Each real clip under three actor ids (01..06), saved as a spectrogram file."""
    root = tmp_path_factory.mktemp("six_actors")
    for source, name in RAVDESS_NAMES.items():
        actor = int(name[-6:-4])
        for shift in (0, 2, 4):
            renamed = f"{name[:-6]}{actor + shift:02d}.mp4"
            _link(RAVDESS_CLIPS / source, root / renamed)
    spec_set, failures = audio_spectrogram_set(root, progress=False)
    assert failures == [] and len(spec_set) == 12
    path = root / "speech.npz"
    save_spectrogram_npz(path, spec_set)
    return path


def _assert_same(a: SpectrogramSet, b: SpectrogramSet) -> None:
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.images.dtype == b.images.dtype == np.uint8
    assert a.labels.dtype == b.labels.dtype == np.int64
    assert a.filenames == b.filenames
    assert a.label_set == b.label_set
    assert a.subjects == b.subjects
    assert a.config == b.config


def _save_raw(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


# --- SpectrogramSet ------------------------------------------------------------------------------


def test_set_validates_its_fields():
    images = np.zeros((3, 8, 8), dtype=np.uint8)
    spec = SpectrogramSet(images, [0, 4, 2], ("a", "b", "c"), SPEECH5, ("1", "1", "2"))
    assert len(spec) == 3 and spec.class_counts() == {"N": 1, "F": 0, "H": 1, "Sad": 0, "S": 1}
    with pytest.raises(DatasetError, match="3 spectrogram images but 2 labels"):
        SpectrogramSet(images, [0, 1], ("a", "b", "c"), SPEECH5)
    with pytest.raises(DatasetError, match="3 spectrogram images but 1 file names"):
        SpectrogramSet(images, [0, 1, 2], ("a",), SPEECH5)
    with pytest.raises(DatasetError, match="2 subject ids"):
        SpectrogramSet(images, [0, 1, 2], ("a", "b", "c"), SPEECH5, ("1", "2"))
    with pytest.raises(DatasetError, match=r"label 5 is outside 0..4 of label set 'speech5'"):
        SpectrogramSet(images, [0, 5, 2], ("a", "b", "c"), SPEECH5)
    with pytest.raises(DatasetError, match="uint8"):
        SpectrogramSet(images.astype(np.float32), [0, 1, 2], ("a", "b", "c"), SPEECH5)
    with pytest.raises(DatasetError, match=r"\(N, height, width\)"):
        SpectrogramSet(images[..., None], [0, 1, 2], ("a", "b", "c"), SPEECH5)
    with pytest.raises(DatasetError, match=r"\(8, 8\) but their config makes \(128, 128\)"):
        SpectrogramSet(images, [0, 1, 2], ("a", "b", "c"), SPEECH5, config=CONFIG)


def test_set_is_a_read_only_copy_and_subsets():
    images = np.arange(4 * 2 * 2, dtype=np.uint8).reshape(4, 2, 2)
    spec = SpectrogramSet(images, [0, 1, 2, 3], ("a", "b", "c", "d"), SPEECH5, tuple("wxyz"))
    images[0] = 99
    assert spec.images[0, 0, 0] == 0
    with pytest.raises(ValueError):
        spec.images[0, 0, 0] = 1
    part = spec.subset([3, 1])
    assert part.filenames == ("d", "b") and part.subjects == ("z", "x")
    np.testing.assert_array_equal(part.labels, [3, 1])
    np.testing.assert_array_equal(part.images, spec.images[[3, 1]])
    masked = spec.subset(np.array([True, False, True, False]))
    assert masked.filenames == ("a", "c")
    source_images, source_labels = spec.as_source()
    assert source_images.shape == (4, 2, 2) and source_images.dtype == np.uint8
    assert source_labels.dtype == np.int64


# --- from audio ----------------------------------------------------------------------------------


def test_set_from_a_folder_of_real_clips(built, clip_tree):
    spec, failures = built
    assert len(spec) == 4
    names = [Path(f).name for f in spec.filenames]
    assert names == sorted(RAVDESS_NAMES.values(), key=lambda n: (n[-6:-4], n))
    # Labels from the names' emotion codes (01 neutral, 05 angry, 06 fearful), actors as subjects.
    assert [RAVDESS.classes[i] for i in spec.labels] == ["neutral", "angry", "neutral", "fearful"]
    assert spec.subjects == ("01", "01", "02", "02")
    assert spec.label_set is RAVDESS and spec.config == CONFIG
    assert spec.images.shape == (4, 128, 128) and spec.images.dtype == np.uint8
    # Each image is the spectrogram of that file's real audio.
    for image, filename in zip(spec.images, spec.filenames, strict=True):
        np.testing.assert_array_equal(image, audio_spectrogram(filename, CONFIG))
        assert image.std() > 10
    # The bad name and the silent video fail, named; the text file is not media at all.
    failed = {Path(path).name: reason for path, reason in failures}
    assert set(failed) == {"interview.mp4", "01-01-03-01-01-01-03.mp4"}
    assert "not a valid RAVDESS file name" in failed["interview.mp4"]
    assert "no audio stream" in failed["01-01-03-01-01-01-03.mp4"]


def test_failures_are_logged_as_warnings(clip_tree, caplog):
    files = [clip_tree / "Actor_01" / "interview.mp4"]
    with caplog.at_level(logging.WARNING, logger="emokeras.datasets.spectrograms"):
        spec, failures = audio_spectrogram_set(files, progress=False)
    assert len(spec) == 0 and spec.images.shape == (0, 128, 128)
    assert len(failures) == 1 and "interview.mp4" in caplog.text


def test_speech5_keeps_its_emotions_and_skips_the_others(clip_tree, caplog):
    files = sorted(clip_tree.rglob("01-01-0[156]-*.mp4"))
    assert len(files) == 4
    with caplog.at_level(logging.INFO, logger="emokeras.datasets.spectrograms"):
        spec, failures = audio_spectrogram_set(files, label_set=SPEECH5, progress=False)
    assert failures == []  # the angry clip is skipped, not failed
    assert [SPEECH5.classes[i] for i in spec.labels] == ["N", "N", "F"]
    assert "angry is not in label set 'speech5'" in caplog.text
    assert spec.label_set is SPEECH5 and len(spec) == 3


def test_audio_only_copy_is_preferred_and_video_only_is_skipped(tmp_path):
    clip = RAVDESS_CLIPS / "actor01_sample_01.mp4"
    audio_video = _link(clip, tmp_path / "01-01-03-01-01-01-01.mp4")
    # The audio-only (03) file of the same performance: RAVDESS ships these as WAV.
    samples = np.round(load_audio(clip) * 32767).astype("<i2")
    audio_only = tmp_path / "03-01-03-01-01-01-01.wav"
    with wave.open(str(audio_only), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(samples.tobytes())
    video_only = write_silent_video(tmp_path / "02-01-03-01-01-01-01.mp4")
    spec, failures = audio_spectrogram_set(
        [audio_video, audio_only, video_only], progress=False
    )
    assert failures == []
    assert spec.filenames == (str(audio_only),)
    assert RAVDESS.classes[spec.labels[0]] == "happy"
    # The same speech: 16-bit WAV quantisation only blurs the quietest bins.
    from_video = audio_spectrogram(audio_video).astype(float)
    assert np.corrcoef(spec.images[0].astype(float).ravel(), from_video.ravel())[0, 1] > 0.95


def test_missing_folder_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="nowhere"):
        audio_spectrogram_set(tmp_path / "nowhere", progress=False)


# --- .npz files ----------------------------------------------------------------------------------


def test_npz_round_trip_gives_an_equal_set(built, tmp_path):
    spec, _ = built
    path = tmp_path / "out" / "speech.npz"
    save_spectrogram_npz(path, spec)
    assert sorted(p.name for p in path.parent.iterdir()) == ["speech.npz"]  # no partial left
    _assert_same(load_spectrogram_npz(path), spec)
    with np.load(path) as raw:
        assert str(raw["label_set"]) == "ravdess"
        assert SpectrogramConfig.from_dict(json.loads(str(raw["spectrogram_config"]))) == CONFIG
    # A set without subjects or config round-trips too.
    bare = SpectrogramSet(spec.images[:2], [1, 3], ("x", "y"), SPEECH5)
    save_spectrogram_npz(path, bare)
    _assert_same(load_spectrogram_npz(path), bare)


def test_seed_format_with_string_labels_and_float_images(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.normal(-40, 15, size=(5, 16, 12, 1)).astype(np.float32)  # dB-like floats
    images[4] = -80.0  # a constant image
    path = _save_raw(
        tmp_path / "seed.npz",
        images=images,
        labels=np.array(["N", "F", "H", "Sad", "S"]),
        filenames=np.array([f"clip{i}.wav" for i in range(5)]),
    )
    spec = load_spectrogram_npz(path)
    assert spec.label_set is SPEECH5 and spec.subjects is None and spec.config is None
    np.testing.assert_array_equal(spec.labels, [0, 1, 2, 3, 4])
    assert spec.images.shape == (5, 16, 12) and spec.images.dtype == np.uint8
    # Scaled per image by its own range; the constant image is black.
    assert (spec.images[:4].reshape(4, -1).min(axis=1) == 0).all()
    assert (spec.images[:4].reshape(4, -1).max(axis=1) == 255).all()
    assert not spec.images[4].any()
    order = np.argsort(images[0, ..., 0], axis=None)
    assert (np.diff(spec.images[0].reshape(-1)[order].astype(int)) >= 0).all()  # monotonic
    assert spec.filenames[3] == "clip3.wav"


def test_labels_by_canonical_name_and_stored_label_set(tmp_path):
    images = np.zeros((3, 4, 4), dtype=np.uint8)
    names = np.array(["a", "b", "c"])
    path = _save_raw(tmp_path / "c.npz", images=images, labels=np.array(["sad", "Neutral", "s"]),
                     filenames=names)
    np.testing.assert_array_equal(load_spectrogram_npz(path).labels, [3, 0, 4])
    # Integer labels of a file that names RAVDESS: kept as RAVDESS, or carried over by emotion.
    path = _save_raw(tmp_path / "r.npz", images=images, labels=np.array([0, 5, 7]),
                     filenames=names, label_set=np.array("ravdess"), subjects=np.array([1, 1, 2]))
    as_stored = load_spectrogram_npz(path)
    assert as_stored.label_set is RAVDESS and as_stored.subjects == ("1", "1", "2")
    np.testing.assert_array_equal(as_stored.labels, [0, 5, 7])
    as_speech5 = load_spectrogram_npz(path, SPEECH5)
    assert [SPEECH5.canonical[i] for i in as_speech5.labels] == ["neutral", "fearful", "surprised"]
    calm = _save_raw(tmp_path / "calm.npz", images=images, labels=np.array([1, 0, 0]),
                     filenames=names, label_set=np.array("ravdess"))
    with pytest.raises(DatasetError, match=r"calm.npz.*\['calm'\].*speech5"):
        load_spectrogram_npz(calm, SPEECH5)
    assert get_label_set("speech5") is SPEECH5


def test_bad_npz_files_are_named(tmp_path):
    images = np.zeros((2, 4, 4), dtype=np.uint8)
    names = np.array(["a", "b"])
    missing = _save_raw(tmp_path / "missing.npz", images=images, labels=np.array([0, 1]))
    with pytest.raises(DatasetError, match=r"missing.npz.*lacks \['filenames'\]"):
        load_spectrogram_npz(missing)
    short = _save_raw(tmp_path / "short.npz", images=images, labels=np.array([0]), filenames=names)
    with pytest.raises(DatasetError, match="short.npz.*2 spectrogram images but 1 labels"):
        load_spectrogram_npz(short)
    unknown = _save_raw(
        tmp_path / "unknown.npz", images=images, labels=np.array(["N", "Angry"]), filenames=names
    )
    with pytest.raises(DatasetError, match="unknown.npz.*'Angry' is not a class.*speech5"):
        load_spectrogram_npz(unknown)
    out_of_range = _save_raw(
        tmp_path / "range.npz", images=images, labels=np.array([0, 9]), filenames=names
    )
    with pytest.raises(DatasetError, match="range.npz.*label 9 is outside 0..4"):
        load_spectrogram_npz(out_of_range)
    text = tmp_path / "text.npz"
    text.write_text("images,labels\n")
    with pytest.raises(DatasetError, match="text.npz.*not a NumPy .npz archive"):
        load_spectrogram_npz(text)
    single = tmp_path / "single.npy"
    np.save(single, images)
    with pytest.raises(DatasetError, match="single.npy.*not an .npz archive"):
        load_spectrogram_npz(single)
    pickled = _save_raw(tmp_path / "pickled.npz", images=images, labels=np.array([0, 1]),
                        filenames=np.array([Path("a"), Path("b")], dtype=object))
    with pytest.raises(DatasetError, match="pickled.npz.*cannot read"):
        load_spectrogram_npz(pickled)
    bad_config = _save_raw(tmp_path / "config.npz", images=images, labels=np.array([0, 1]),
                           filenames=names, spectrogram_config=np.array('{"hop": 3}'))
    with pytest.raises(DatasetError, match="config.npz.*bad spectrogram_config.*hop"):
        load_spectrogram_npz(bad_config)
    bad_set = _save_raw(tmp_path / "set.npz", images=images, labels=np.array([0, 1]),
                        filenames=names, label_set=np.array("affectnet"))
    with pytest.raises(DatasetError, match="set.npz.*affectnet"):
        load_spectrogram_npz(bad_set)
    wrong_shape = _save_raw(tmp_path / "shape.npz", images=np.zeros((2, 4), np.uint8),
                            labels=np.array([0, 1]), filenames=names)
    with pytest.raises(DatasetError, match=r"shape.npz.*\(N, H, W\)"):
        load_spectrogram_npz(wrong_shape)
    with pytest.raises(DatasetError, match="absent.npz.*does not exist"):
        load_spectrogram_npz(tmp_path / "absent.npz")


# --- splits for training -------------------------------------------------------------------------


def test_load_splits_groups_a_spectrogram_file_by_speaker(six_actor_npz, tmp_path):
    splits = load_splits(six_actor_npz, val_fraction=0.2, test_fraction=0.2, seed=0)
    assert splits.kind == "spectrograms"
    assert "subject-grouped" in splits.protocol and "speech.npz" in splits.protocol
    assert splits.label_set is RAVDESS and splits.spectrogram == CONFIG
    assert splits.sizes() == {"train": 8, "val": 2, "test": 2}
    for images, labels in (splits.train, splits.val, splits.test):
        assert images.dtype == np.uint8 and images.shape[1:] == (128, 128)
        assert labels.dtype == np.int64 and len(images) == len(labels)

    # Each clip appears under three actors with the same image, so mark every image with its
    # actor (pixel 0, 0) to see where each actor's items went.
    full = load_spectrogram_npz(six_actor_npz)
    marked = full.images.copy()
    marked[:, 0, 0] = [int(a) for a in full.subjects]
    path = tmp_path / "marked.npz"
    save_spectrogram_npz(path, SpectrogramSet(
        marked, full.labels, full.filenames, full.label_set, full.subjects, full.config
    ))
    splits = load_splits(path, val_fraction=0.2, test_fraction=0.2, seed=0)
    actors = {
        name: set(images[:, 0, 0].tolist())
        for name, (images, _) in (("train", splits.train), ("val", splits.val),
                                  ("test", splits.test))
    }
    assert actors["train"] | actors["val"] | actors["test"] == {1, 2, 3, 4, 5, 6}
    assert not (actors["train"] & actors["val"] or actors["train"] & actors["test"]
                or actors["val"] & actors["test"])
    assert all(actors.values())
    # Labels travel with their images.
    for images, labels in (splits.train, splits.val, splits.test):
        for image, label in zip(images, labels, strict=True):
            match = np.flatnonzero((marked == image).all(axis=(1, 2)))
            assert len(match) == 1 and full.labels[match[0]] == label


def test_load_splits_without_subjects_splits_by_item(tmp_path):
    rng = np.random.default_rng(0)
    count = 20
    images = rng.integers(0, 256, (count, 8, 8), dtype=np.uint8)
    labels = np.arange(count) % 5
    path = _save_raw(
        tmp_path / "seed.npz", images=images, labels=np.array(SPEECH5.classes)[labels],
        filenames=np.array([f"f{i}" for i in range(count)]),
    )
    splits = load_splits(path, val_fraction=0.2, test_fraction=0.2)
    assert splits.kind == "spectrograms" and "split by item" in splits.protocol
    assert splits.label_set is SPEECH5 and splits.spectrogram is None
    # Stratified: four items per class, so val and test get one of each.
    assert splits.sizes() == {"train": 10, "val": 5, "test": 5}
    for _, part_labels in (splits.val, splits.test):
        assert sorted(part_labels.tolist()) == [0, 1, 2, 3, 4]
    seen = []
    for part_images, part_labels in (splits.train, splits.val, splits.test):
        for image, label in zip(part_images, part_labels, strict=True):
            position = int(np.flatnonzero((images == image).all(axis=(1, 2)))[0])
            assert labels[position] == label
            seen.append(position)
    assert sorted(seen) == list(range(count))  # every item in exactly one split


def test_speech5_names_resolve_in_any_case():
    assert get_label_set("SPEECH5") is SPEECH5
    assert [SPEECH5.index(n) for n in ("N", "f", "H", "SAD", "s")] == [0, 1, 2, 3, 4]
    assert SPEECH5.index("Sad") == SPEECH5.index("sad") == 3
    assert SPEECH5.index("surprised") == 4 and SPEECH5.index("fearful") == 1
    named = {SPEECH5.classes[i]: RAVDESS.classes[j] for i, j in SPEECH5.mapping_to(RAVDESS).items()}
    assert named == {
        "N": "neutral", "F": "fearful", "H": "happy", "Sad": "sad", "S": "surprised"
    }
