"""Datasets on real files: RAVDESS names and manifests, FER2013 folders and CSV, CK+48, splits."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import RAVDESS_NAMES

from emokeras.datasets import (
    FER2013_SPLITS,
    MANIFEST_COLUMNS,
    PRIVATE_TEST,
    PUBLIC_TEST,
    SPLIT_ROLES,
    TRAINING,
    ImageSet,
    Split,
    fixed_subject_split,
    load_ckplus,
    load_class_folders,
    load_fer2013_csv,
    load_fer2013_folders,
    parse_ravdess_name,
    read_ravdess_manifest,
    scan_ravdess,
    split_by_sex,
    subject_split,
    write_fer2013_csv,
    write_ravdess_manifest,
)
from emokeras.errors import DatasetError, ImageReadError, RavdessNameError
from emokeras.fileio import read_csv
from emokeras.labels import CKPLUS, FER2013, RAVDESS

CKPLUS_COUNTS = {
    "anger": 135,
    "contempt": 54,
    "disgust": 177,
    "fear": 75,
    "happy": 207,
    "sadness": 84,
    "surprise": 249,
}


def _link(source: str | Path, dest: str | Path) -> None:
    """Hard-link a real file into a test tree (copy where links are not possible)."""
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


# --- RAVDESS names -------------------------------------------------------------------------------


def test_parse_valid_name_reads_all_seven_fields():
    name = parse_ravdess_name("03-01-05-01-02-01-12.mp4")
    assert name.codes == (3, 1, 5, 1, 2, 1, 12)
    assert name.modality_name == "audio-only"
    assert name.vocal_channel_name == "speech"
    assert (name.emotion_code, name.emotion, name.emotion_index) == (5, "angry", 4)
    assert name.intensity_name == "normal"
    assert name.statement_text == "Dogs are sitting by the door"
    assert name.repetition == 1
    assert (name.actor, name.actor_id, name.sex) == (12, "12", "female")
    assert name.stem == "03-01-05-01-02-01-12"


def test_parse_path_odd_actor_is_male():
    name = parse_ravdess_name(Path("/data/Actor_01/01-02-03-02-01-02-01.mp4"))
    assert (name.modality_name, name.vocal_channel_name) == ("audio-video", "song")
    assert (name.emotion, name.intensity_name, name.repetition) == ("happy", "strong", 2)
    assert name.statement_text == "Kids are talking by the door"
    assert (name.actor_id, name.sex) == ("01", "male")


@pytest.mark.parametrize("code", range(1, 9))
def test_emotion_codes_follow_the_ravdess_label_set(code):
    name = parse_ravdess_name(f"01-01-{code:02d}-01-01-01-03")
    assert name.emotion_index == code - 1
    assert RAVDESS.index(name.emotion) == name.emotion_index


def test_extension_is_not_part_of_the_name():
    # Derived files (audio, features) keep the clip's name; a bare stem is a video id.
    stems = {
        parse_ravdess_name(n).stem for n in ("02-01-06-01-02-02-07.wav", "02-01-06-01-02-02-07")
    }
    assert stems == {"02-01-06-01-02-02-07"}


@pytest.mark.parametrize(
    ("file", "field", "value", "reason"),
    [
        ("03-01-05-01-02-12.mp4", "name", "03-01-05-01-02-12", "6 dash-separated fields"),
        ("03-01-05-01-02-01-12-01.mp4", "name", "03-01-05-01-02-01-12-01", "8 dash"),
        ("03-01-5-01-02-01-12.mp4", "emotion", "5", "two digits"),
        ("03-01-0a-01-02-01-12.mp4", "emotion", "0a", "two digits"),
        ("03-01-05-01-02-01-1\N{SUPERSCRIPT TWO}.mp4", "actor", "1\N{SUPERSCRIPT TWO}", "digits"),
        ("03-01-09-01-02-01-12.mp4", "emotion", "09", "must be 01..08"),
        ("03-01-00-01-02-01-12.mp4", "emotion", "00", "must be 01..08"),
        ("03-01-05-01-02-01-25.mp4", "actor", "25", "must be 01..24"),
        ("04-01-05-01-02-01-12.mp4", "modality", "04", "must be 01..03"),
        ("03-03-05-01-02-01-12.mp4", "vocal_channel", "03", "must be 01..02"),
        ("03-01-05-03-02-01-12.mp4", "intensity", "03", "must be 01..02"),
        ("03-01-05-01-03-01-12.mp4", "statement", "03", "must be 01..02"),
        ("03-01-05-01-02-00-12.mp4", "repetition", "00", "must be 01..02"),
        ("03-01-01-02-02-01-12.mp4", "intensity", "02", "neutral"),
        ("03-02-07-01-02-01-12.mp4", "emotion", "07", "song"),
    ],
)
def test_malformed_names_raise_naming_file_and_field(file, field, value, reason):
    with pytest.raises(RavdessNameError) as info:
        parse_ravdess_name(f"/data/Actor_12/{file}")
    error = info.value
    assert (error.field, error.value) == (field, value)
    assert error.path == f"/data/Actor_12/{file}"
    assert file in str(error) and repr(field) in str(error) and reason in str(error)
    assert isinstance(error, DatasetError)


# --- RAVDESS scans and manifests -----------------------------------------------------------------


def _expected_clips() -> list[tuple[str, str, str, int]]:
    """(stem, actor id, sex, emotion index) of the fixture clips in scan order (Actor_NN/, name),
    read off the codes of conftest's names."""
    expected = []
    for name in RAVDESS_NAMES.values():
        codes = name.removesuffix(".mp4").split("-")
        sex = "male" if int(codes[6]) % 2 else "female"
        expected.append((name.removesuffix(".mp4"), codes[6], sex, int(codes[2]) - 1))
    return sorted(expected, key=lambda clip: (clip[1], clip[0]))


def test_scan_finds_the_real_clips(ravdess_tree):
    scan = scan_ravdess(ravdess_tree)
    assert len(scan) == 4 and scan.errors == ()
    assert list(scan.paths) == sorted(scan.paths)
    assert all(
        Path(p).is_file() and Path(p).parent.name == f"Actor_{c.name.actor_id}"
        for p, c in zip(scan.paths, scan.clips, strict=True)
    )
    got = [(c.name.stem, c.name.actor_id, c.name.sex, c.name.emotion_index) for c in scan.clips]
    assert got == _expected_clips()
    assert scan.actors == ("01", "01", "02", "02")
    assert scan.sexes == ("male", "male", "female", "female")
    # neutral, angry (05), neutral, fearful (06)
    assert [RAVDESS.classes[i] for i in scan.emotion_indices] == [
        "neutral",
        "angry",
        "neutral",
        "fearful",
    ]


def test_scan_reports_bad_names_and_carries_on(ravdess_tree, tmp_path):
    root = tmp_path / "ravdess"
    shutil.copytree(ravdess_tree, root, copy_function=_link)
    clip = next(root.glob("Actor_01/*.mp4"))
    _link(clip, root / "Actor_01" / "01-01-09-01-01-01-01.mp4")  # emotion 09
    _link(clip, root / "Actor_02" / "01-01-01-01-01-02.mp4")  # six fields
    _link(clip, root / "Actor_02" / "02-01-03-01-01-01-02.MP4")  # valid, upper-case extension
    (root / "Actor_02" / "notes.txt").write_text("not a clip\n")  # not media: ignored

    scan = scan_ravdess(root)
    assert len(scan) == 5
    assert "02-01-03-01-01-01-02" in {c.name.stem for c in scan.clips}
    bad = dict(scan.errors)
    assert sorted(Path(p).name for p in bad) == [
        "01-01-01-01-01-02.mp4",
        "01-01-09-01-01-01-01.mp4",
    ]
    reason = bad[str(root / "Actor_01" / "01-01-09-01-01-01-01.mp4")]
    assert "'emotion'" in reason and "'09'" in reason
    assert len(scan_ravdess(root, extensions=(".wav",))) == 0


def test_scan_of_missing_folder_raises(tmp_path):
    with pytest.raises(DatasetError, match="nowhere"):
        scan_ravdess(tmp_path / "nowhere")


def test_manifest_round_trip(ravdess_tree, tmp_path):
    out = tmp_path / "manifests" / "ravdess.csv"
    scan = write_ravdess_manifest(ravdess_tree, out)
    rows = read_csv(out)
    assert tuple(rows[0]) == MANIFEST_COLUMNS
    assert [r["path"] for r in rows] == list(scan.paths)
    expected = _expected_clips()
    assert [
        (r["video_id"], r["actor"], r["sex"], int(r["emotion_index"])) for r in rows
    ] == expected
    assert [r["emotion"] for r in rows] == ["neutral", "angry", "neutral", "fearful"]
    assert {r["modality"] for r in rows} == {"audio-video"}
    assert rows[1]["intensity"] == "strong" and rows[0]["intensity"] == "normal"
    assert read_ravdess_manifest(out) == scan.clips
    assert not list(out.parent.glob(".*.tmp"))  # the atomic write left no temporary file


def test_manifest_that_contradicts_its_names_is_rejected(ravdess_tree, tmp_path):
    out = tmp_path / "ravdess.csv"
    write_ravdess_manifest(ravdess_tree, out)
    lines = out.read_text().splitlines()
    lines[2] = lines[2].replace(",angry,4,", ",happy,2,")
    out.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"line 3: columns \['emotion', 'emotion_index'\]"):
        read_ravdess_manifest(out)


def test_split_by_sex_on_the_manifest(ravdess_tree, tmp_path):
    out = tmp_path / "ravdess.csv"
    write_ravdess_manifest(ravdess_tree, out)
    rows = read_csv(out)
    by_sex = split_by_sex([r["sex"] for r in rows])
    assert by_sex["male"].tolist() == [0, 1] and by_sex["female"].tolist() == [2, 3]
    assert {rows[i]["actor"] for i in by_sex["male"]} == {"01"}
    assert {Path(rows[i]["path"]).parent.name for i in by_sex["female"]} == {"Actor_02"}
    assert split_by_sex(["Male", " female"])["female"].tolist() == [1]
    with pytest.raises(DatasetError, match=r"item 2: sex 'unknown'"):
        split_by_sex(["male", "female", "unknown"])


def test_fixed_actor_split_on_the_scan(ravdess_tree):
    scan = scan_ravdess(ravdess_tree)
    split = fixed_subject_split(scan.actors, test=["02"])
    assert split.train.tolist() == [0, 1] and split.test.tolist() == [2, 3]
    assert split.val.size == 0
    with pytest.raises(DatasetError, match=r"\['2'\] are not in the data.*\['01', '02'\]"):
        fixed_subject_split(scan.actors, test=[2])  # actor ids are two-digit strings
    with pytest.raises(ValueError, match="both val and test"):
        fixed_subject_split(scan.actors, val=["02"], test=["02"])
    with pytest.raises(DatasetError, match="no items are left to train"):
        fixed_subject_split(scan.actors, val=["01"], test=["02"])


# --- FER2013 -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fer_sets(fer2013_subset) -> dict[str, ImageSet]:
    return load_fer2013_folders(fer2013_subset)


def test_fer2013_folders_keep_the_official_splits(fer_sets):
    assert tuple(fer_sets) == FER2013_SPLITS == (TRAINING, PUBLIC_TEST, PRIVATE_TEST)
    assert SPLIT_ROLES == {TRAINING: "train", PUBLIC_TEST: "validation", PRIVATE_TEST: "test"}
    for split, image_set in fer_sets.items():
        assert len(image_set) == 84
        assert image_set.class_counts() == dict.fromkeys(FER2013.classes, 12)
        assert image_set.label_set is FER2013 and image_set.subjects is None
        top = "train" if split == TRAINING else "test"
        for path, label in zip(image_set.paths, image_set.labels, strict=True):
            path = Path(path)
            assert path.name.startswith(f"{split}_") and path.parents[1].name == top
            assert FER2013.classes[label] == path.parent.name


def test_fer2013_labels_follow_csv_order_not_alphabetical(fer_sets):
    training = fer_sets[TRAINING]
    labels = {
        Path(p).parent.name: int(x) for p, x in zip(training.paths, training.labels, strict=True)
    }
    assert labels == {
        "angry": 0,
        "disgust": 1,
        "fear": 2,
        "happy": 3,
        "sad": 4,
        "surprise": 5,
        "neutral": 6,
    }


def test_load_images_shapes(fer_sets):
    public = fer_sets[PUBLIC_TEST]
    rgb = public.load_images()
    assert rgb.shape == (84, 48, 48, 3) and rgb.dtype == np.uint8
    # FER2013 is grayscale, so the three RGB channels are the same picture.
    assert np.array_equal(rgb[..., 0], rgb[..., 2])
    gray = public.load_images(grayscale=True)
    assert gray.shape == (84, 48, 48) and gray.std() > 10
    assert public.load_images(size=(64, 32)).shape == (84, 64, 32, 3)
    assert public.subset([5, 1]).load_images(size=24, grayscale=True).shape == (2, 24, 24)


def test_subset_keeps_labels_and_paths(fer_sets):
    training = fer_sets[TRAINING]
    mask = training.labels == FER2013.index("neutral")
    neutral = training.subset(mask)
    assert len(neutral) == 12 and set(neutral.labels.tolist()) == {6}
    assert all(Path(p).parent.name == "neutral" for p in neutral.paths)
    picked = training.subset([83, 0])
    assert picked.paths == (training.paths[83], training.paths[0])
    with pytest.raises(ValueError):
        training.labels[0] = 1  # the frozen set's labels are read-only


def test_fer2013_csv_round_trip_from_real_images(fer_sets, tmp_path):
    images = np.concatenate([s.load_images(grayscale=True) for s in fer_sets.values()])
    labels = np.concatenate([s.labels for s in fer_sets.values()])
    usage = [split for split, s in fer_sets.items() for _ in range(len(s))]
    out = tmp_path / "fer2013.csv"
    write_fer2013_csv(out, images, labels, usage)
    header, first = out.read_text().splitlines()[:2]
    assert header == "emotion,pixels,Usage"
    assert len(first.split(",")[1].split()) == 2304

    loaded = load_fer2013_csv(out)
    assert loaded.images.shape == (252, 48, 48) and loaded.images.dtype == np.uint8
    assert np.array_equal(loaded.images, images)
    assert np.array_equal(loaded.labels, labels) and loaded.labels.dtype == np.int64
    assert loaded.usage == tuple(usage) and loaded.label_set is FER2013

    public = load_fer2013_csv(out, usage=PUBLIC_TEST)
    assert set(public.usage) == {PUBLIC_TEST}
    assert np.array_equal(public.images, fer_sets[PUBLIC_TEST].load_images(grayscale=True))
    assert np.array_equal(loaded.split(PRIVATE_TEST).labels, fer_sets[PRIVATE_TEST].labels)
    assert len(load_fer2013_csv(out, usage=[TRAINING, PRIVATE_TEST])) == 168
    with pytest.raises(ValueError, match="'Validation'"):
        load_fer2013_csv(out, usage="Validation")


@pytest.fixture(scope="module")
def fer_csv_lines(fer_sets, tmp_path_factory) -> list[str]:
    """Header and three rows of a FER2013 CSV made from real faces."""
    subset = fer_sets[TRAINING].subset([0, 40, 80])
    out = tmp_path_factory.mktemp("fercsv") / "small.csv"
    write_fer2013_csv(out, subset.load_images(grayscale=True), subset.labels, TRAINING)
    return out.read_text().splitlines()


def _mutate_third_line(lines, change):
    label, pixels, usage = lines[2].split(",")
    return [*lines[:2], ",".join(change(label, pixels.split(), usage)), *lines[3:]]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda lb, px, us: (lb, " ".join(px[:-1]), us), "line 3: pixels has 2303 pixels"),
        (lambda lb, px, us: (lb, " ".join(["x", *px[1:]]), us), "line 3: pixels pixel 0 is 'x'"),
        (lambda lb, px, us: (lb, " ".join([*px[:-1], "256"]), us), "pixel 2303 is 256, outside"),
        (lambda lb, px, us: ("9", " ".join(px), us), r"line 3: emotion '9' is not a label in 0..6"),
        (lambda lb, px, us: ("-1", " ".join(px), us), "line 3: emotion '-1'"),
        (lambda lb, px, us: (lb, " ".join(px), "Validation"), "line 3: Usage 'Validation'"),
        (lambda lb, px, us: (lb, " ".join(px)), "line 3: 2 fields, expected 3"),
    ],
)
def test_bad_fer2013_rows_raise_naming_the_line(fer_csv_lines, tmp_path, change, message):
    assert len(load_fer2013_csv(_write(tmp_path, fer_csv_lines))) == 3  # the base file is sound
    bad = _write(tmp_path, _mutate_third_line(fer_csv_lines, change))
    with pytest.raises(DatasetError) as info:
        load_fer2013_csv(bad)
    assert str(bad) in str(info.value)
    assert re.search(message, str(info.value)), str(info.value)


def _write(folder: Path, lines: list[str]) -> Path:
    path = folder / "fer.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fer2013_csv_with_wrong_header_names_the_columns(fer_csv_lines, tmp_path):
    lines = ["label,pixels,Usage", *fer_csv_lines[1:]]
    with pytest.raises(DatasetError, match=r"columns \['label', 'pixels', 'Usage'\].*'emotion'"):
        load_fer2013_csv(_write(tmp_path, lines))
    with pytest.raises(DatasetError, match="does not exist"):
        load_fer2013_csv(tmp_path / "missing.csv")


def test_write_fer2013_csv_rejects_bad_arrays(tmp_path):
    faces = np.zeros((2, 48, 48), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"\(N, 48, 48\)"):
        write_fer2013_csv(tmp_path / "x.csv", np.zeros((2, 64, 64), np.uint8), [0, 1], TRAINING)
    with pytest.raises(ValueError, match="0..6"):
        write_fer2013_csv(tmp_path / "x.csv", faces, [0, 7], TRAINING)
    with pytest.raises(ValueError, match="'Val'"):
        write_fer2013_csv(tmp_path / "x.csv", faces, [0, 1], [TRAINING, "Val"])
    assert not (tmp_path / "x.csv").exists()


@pytest.fixture
def fer_copy(fer2013_subset, tmp_path) -> Path:
    """A small FER2013 tree of real faces that a test may change: 1 face per class and split."""
    root = tmp_path / "fer"
    for split, top in ((TRAINING, "train"), (PUBLIC_TEST, "test"), (PRIVATE_TEST, "test")):
        for class_dir in sorted((fer2013_subset / top).iterdir()):
            face = sorted(class_dir.glob(f"{split}_*"))[0]
            _link(face, root / top / class_dir.name / face.name)
    assert {k: len(v) for k, v in load_fer2013_folders(root).items()} == dict.fromkeys(
        FER2013_SPLITS, 7
    )
    return root


def test_fer2013_folder_errors(fer_copy):
    face = next((fer_copy / "train" / "happy").iterdir())
    _link(face, fer_copy / "test" / "happy" / face.name)  # a Training face under test/
    with pytest.raises(DatasetError, match=r"Training_.*prefix 'Training' is not a split of test/"):
        load_fer2013_folders(fer_copy)
    (fer_copy / "test" / "happy" / face.name).unlink()

    _link(face, fer_copy / "train" / "joy" / face.name)
    with pytest.raises(DatasetError, match=r"unknown FER2013 class folder '.*joy'.*'neutral'"):
        load_fer2013_folders(fer_copy)
    shutil.rmtree(fer_copy / "train" / "joy")

    for private in (fer_copy / "test").glob("*/PrivateTest_*"):
        private.unlink()
    with pytest.raises(DatasetError, match="no PrivateTest_"):
        load_fer2013_folders(fer_copy)
    shutil.rmtree(fer_copy / "test")
    with pytest.raises(DatasetError, match="no test/ folder"):
        load_fer2013_folders(fer_copy)


def test_unreadable_image_raises_naming_it(fer_sets, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"this is not a JPEG")
    good = fer_sets[TRAINING].paths[0]
    image_set = ImageSet(paths=(good, str(broken)), labels=np.array([0, 0]), label_set=FER2013)
    with pytest.raises(ImageReadError) as info:
        image_set.load_images()
    assert info.value.path == str(broken) and "could not decode" in str(info.value)
    missing = ImageSet(paths=(str(tmp_path / "gone.png"),), labels=[1], label_set=FER2013)
    with pytest.raises(ImageReadError, match="gone.png"):
        missing.load_images()


def test_image_set_validates_its_fields(fer_sets):
    paths = fer_sets[TRAINING].paths[:2]
    with pytest.raises(DatasetError, match="2 paths but 1 labels"):
        ImageSet(paths=paths, labels=[0], label_set=FER2013)
    with pytest.raises(DatasetError, match="label 7 is outside 0..6"):
        ImageSet(paths=paths, labels=[0, 7], label_set=FER2013)
    with pytest.raises(DatasetError, match="1 subject ids"):
        ImageSet(paths=paths, labels=[0, 1], label_set=FER2013, subjects=["a"])


# --- CK+ and class folders -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ckplus(ckplus_dir) -> ImageSet:
    return load_ckplus(ckplus_dir)


def test_load_ckplus(ckplus, ckplus_dir):
    assert len(ckplus) == 981
    assert ckplus.label_set is CKPLUS
    assert ckplus.class_counts() == CKPLUS_COUNTS
    for path, subject in zip(ckplus.paths, ckplus.subjects, strict=True):
        assert re.fullmatch(r"S\d{3}", subject) and Path(path).name.startswith(subject + "_")
    assert len(set(ckplus.subjects)) == 118
    # Given CK+48/ itself rather than the folder holding it, the same set.
    assert load_ckplus(ckplus_dir / "CK+48").paths == ckplus.paths
    images = ckplus.subset(np.arange(0, 981, 100)).load_images()
    assert images.shape == (10, 48, 48, 3) and images.dtype == np.uint8


def test_class_folders_infer_labels_from_folder_names(ckplus, ckplus_dir):
    inferred = load_class_folders(ckplus_dir)
    assert inferred.label_set.classes == tuple(sorted(CKPLUS_COUNTS))
    assert inferred.label_set.canonical == CKPLUS.canonical
    assert inferred.class_counts() == CKPLUS_COUNTS
    assert inferred.subjects is None and inferred.paths == ckplus.paths


def test_class_folders_with_another_label_set(ckplus_dir):
    # CK+ folders read against FER2013's classes: "anger" is not a FER2013 class name, and contempt
    # would have no class at all.
    with pytest.raises(DatasetError, match=r"'.*anger' is not a class of .*'fer2013'.*'neutral'"):
        load_class_folders(ckplus_dir, label_set=FER2013)


def test_class_folder_errors(ckplus_dir, tmp_path):
    happy = sorted((ckplus_dir / "CK+48" / "happy").iterdir())[:2]
    for face in happy:
        _link(face, tmp_path / "faces" / "happy" / face.name)
        _link(face, tmp_path / "faces" / "joy" / face.name)
    with pytest.raises(DatasetError, match=r"\['joy'\].*pass label_set="):
        load_class_folders(tmp_path / "faces")
    with pytest.raises(DatasetError, match=r"'.*joy' is not a class of label set 'ckplus'"):
        load_class_folders(tmp_path / "faces", label_set=CKPLUS)

    shutil.rmtree(tmp_path / "faces" / "joy")
    (tmp_path / "faces" / "sad").mkdir()
    with pytest.raises(DatasetError, match=r"'.*sad' holds no images"):
        load_class_folders(tmp_path / "faces")
    (tmp_path / "faces" / "sad").rmdir()

    single = load_class_folders(tmp_path / "faces", subject_pattern=r"^(S\d+)_")
    assert single.subjects == tuple(face.name.split("_")[0] for face in happy)
    with pytest.raises(DatasetError, match=r"no subject id in '.*S\d+_.*png'"):
        load_class_folders(tmp_path / "faces", subject_pattern=r"^subject(\d+)")
    with pytest.raises(ValueError, match="exactly one group"):
        load_class_folders(tmp_path / "faces", subject_pattern=r"^S\d+")
    with pytest.raises(DatasetError, match="does not exist"):
        load_class_folders(tmp_path / "nothing")


# --- subject splits ------------------------------------------------------------------------------


def _assert_partition(split: Split, subjects: tuple[str, ...]) -> None:
    everything = np.concatenate([split.train, split.val, split.test])
    assert np.array_equal(np.sort(everything), np.arange(len(subjects)))  # every index, once
    groups = [{subjects[i] for i in part} for part in (split.train, split.val, split.test)]
    assert not groups[0] & groups[1] and not groups[0] & groups[2] and not groups[1] & groups[2]


def test_subject_split_on_ckplus(ckplus):
    split = subject_split(ckplus.subjects, val_fraction=0.15, test_fraction=0.2, seed=3)
    _assert_partition(split, ckplus.subjects)
    n = len(ckplus)
    assert abs(len(split.val) / n - 0.15) < 0.04 and abs(len(split.test) / n - 0.2) < 0.04

    again = subject_split(ckplus.subjects, val_fraction=0.15, test_fraction=0.2, seed=3)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(split.as_dict().values(), again.as_dict().values(), strict=True)
    )
    other = subject_split(ckplus.subjects, val_fraction=0.15, test_fraction=0.2, seed=4)
    assert not np.array_equal(split.test, other.test)


def test_stratified_subject_split_keeps_class_shares(ckplus):
    split = subject_split(ckplus.subjects, seed=0, stratify=ckplus.labels)
    _assert_partition(split, ckplus.subjects)
    train, val, test = split.apply(ckplus)
    assert len(train) + len(val) + len(test) == len(ckplus)
    for part, share in ((train, 0.7), (val, 0.15), (test, 0.15)):
        for name, count in part.class_counts().items():
            # Whole subjects move together, so shares are close, not exact.
            assert abs(count / CKPLUS_COUNTS[name] - share) < 0.08, (name, count)
    assert not set(train.subjects) & set(test.subjects)


def test_subject_split_argument_checks(ckplus):
    for val, test in ((-0.1, 0.1), (1.0, 0.0), (0.5, 0.5), (0.2, 0.9)):
        with pytest.raises(ValueError, match="fraction"):
            subject_split(ckplus.subjects, val_fraction=val, test_fraction=test)
    with pytest.raises(DatasetError, match=r"only 2 subject\(s\).*3 non-empty splits"):
        subject_split(["S005", "S005", "S010"])
    no_val = subject_split(["S005", "S005", "S010"], val_fraction=0, test_fraction=0.3)
    assert no_val.val.size == 0 and no_val.train.size + no_val.test.size == 3
    with pytest.raises(ValueError, match="stratify"):
        subject_split(ckplus.subjects, stratify=ckplus.labels[:-1])
