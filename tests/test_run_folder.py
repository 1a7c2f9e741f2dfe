"""The run folder: its kinds, find_runs, one writer of labels.json and routing.json, and a typed
ModelLoadError for every broken file (real broken files, written here)."""

from __future__ import annotations

import json
import zipfile

import keras
import numpy as np
import pytest

from emokeras.audio import SpectrogramConfig
from emokeras.errors import EmokerasError, ModelLoadError, RunFolderError
from emokeras.fileio import write_json_atomic
from emokeras.inference import AudioEmotionModel
from emokeras.labels import FER2013, RAVDESS, SEXES
from emokeras.model import EmotionModel, SexRoutedModel, load_model, resolve_model
from emokeras.run_folder import (
    LABELS_FILE,
    MODEL_FILE,
    ROUTING_FILE,
    RunFolder,
    find_runs,
    load_model_file,
    load_run,
    read_labels,
    read_routing,
    save_model_atomic,
    write_labels,
)


@pytest.fixture(scope="module")
def saved_run(tiny, tmp_path_factory):
    return tiny.save(tmp_path_factory.mktemp("runs") / "plain")


def _copy_run(saved_run, target):
    target.mkdir(parents=True)
    for name in (MODEL_FILE, LABELS_FILE):
        (target / name).write_bytes((saved_run / name).read_bytes())
    return target


def test_kinds_are_told_from_the_files(tiny, saved_run, tmp_path):
    assert RunFolder.open(saved_run) == RunFolder(saved_run, "plain")
    routed = SexRoutedModel({sex: tiny for sex in SEXES}).save(tmp_path / "routed")
    assert RunFolder.open(routed).kind == "routed"
    assert RunFolder.open(routed).members() == {sex: routed / sex for sex in SEXES}
    assert RunFolder.open(routed).read_labels() is FER2013
    audio = AudioEmotionModel(tiny.model, tiny.label_set, SpectrogramConfig()).save(
        tmp_path / "audio")
    assert RunFolder.open(audio).kind == "audio"
    ensemble = _copy_run(saved_run, tmp_path / "ensemble")
    write_json_atomic(ensemble / "config.json", {"ensemble": {"members": []}})
    assert RunFolder.open(ensemble).kind == "ensemble"

    # load_model gives each kind's model object
    assert isinstance(load_model(routed), SexRoutedModel)
    assert isinstance(load_model(audio), AudioEmotionModel)
    assert type(load_model(ensemble)) is EmotionModel

    # a routed run's halves are parts of it, not runs of their own
    assert [(r.path.name, r.kind) for r in find_runs(tmp_path)] == [
        ("audio", "audio"), ("ensemble", "ensemble"), ("routed", "routed")]
    assert find_runs(tmp_path / "missing") == []


def test_a_folder_without_a_model_names_what_is_missing(tmp_path):
    with pytest.raises(RunFolderError, match="does not exist"):
        RunFolder.open(tmp_path / "nowhere")
    (tmp_path / LABELS_FILE).write_text("{}")
    with pytest.raises(RunFolderError, match=MODEL_FILE):
        RunFolder.open(tmp_path)


def test_labels_json_has_one_writer_and_reads_back(tmp_path):
    write_labels(tmp_path, RAVDESS)
    assert json.loads((tmp_path / LABELS_FILE).read_text()) == {
        "label_set": "ravdess", "classes": list(RAVDESS.classes),
        "emotions": list(RAVDESS.canonical)}
    assert read_labels(tmp_path) is RAVDESS


@pytest.mark.parametrize("content, reason", [
    (b"", "not a JSON file"),
    (b"{not json", "not a JSON file"),
    (b"\xff\xfe\x00garbage", "not a JSON file"),
    (b"[1, 2]", '"label_set"'),
    (b'{"classes": ["a"]}', '"label_set"'),
    (b'{"label_set": 7}', '"label_set"'),
    (b'{"label_set": "klingon"}', "unknown label set 'klingon'"),
    (b'{"label_set": "fer2013", "classes": ["x", "y"]}', "not those of label set 'fer2013'"),
    (b'{"label_set": "fer2013", "classes": "angry"}', "not those of label set 'fer2013'"),
    # valid labels, but 8 classes for a model with 7 outputs
    (b'{"label_set": "ravdess"}', "8 classes but the model has 7 outputs"),
])
def test_a_bad_labels_json_raises_model_load_error(saved_run, tmp_path, content, reason):
    run = _copy_run(saved_run, tmp_path / "run")
    (run / LABELS_FILE).write_bytes(content)
    with pytest.raises(ModelLoadError, match=reason) as error:
        load_run(run)
    assert error.value.path.endswith(LABELS_FILE) and isinstance(error.value, EmokerasError)
    with pytest.raises(ModelLoadError):
        resolve_model(run)


def test_a_broken_model_file_raises_model_load_error_naming_it(saved_run, tmp_path):
    whole = (saved_run / MODEL_FILE).read_bytes()
    cases = {
        "empty": (b"", "the file is empty"),
        "truncated": (whole[: len(whole) // 2], "not a .keras file"),
        "garbage": (np.random.default_rng(0).bytes(4096), "not a .keras file"),
        "text": (b"model weights go here\n", "not a .keras file"),
    }
    for name, (content, reason) in cases.items():
        run = _copy_run(saved_run, tmp_path / name)
        (run / MODEL_FILE).write_bytes(content)
        with pytest.raises(ModelLoadError, match=reason) as error:
            load_run(run)
        assert error.value.path == str(run / MODEL_FILE), name
        assert "File not found" not in str(error.value)
    # the whole file still loads: the errors are the files', not the loader's
    model, label_set = load_run(_copy_run(saved_run, tmp_path / "whole"))
    assert label_set is FER2013 and model.output_shape == (None, 7)


def test_a_lambda_layer_is_refused_with_model_load_error(tmp_path):
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    outputs = keras.layers.Dense(7, activation="softmax")(keras.layers.Flatten()(x))
    run = tmp_path / "lambda"
    run.mkdir()
    keras.Model(inputs, outputs).save(run / MODEL_FILE)
    write_labels(run, FER2013)
    with pytest.raises(ModelLoadError, match="Lambda layer, which safe mode refuses"):
        load_run(run)


@pytest.mark.parametrize("entry", ["../elsewhere/model.keras", "/tmp/model.keras",
                                   "female/../../model.keras"])
def test_routing_outside_the_run_folder_is_refused(tiny, tmp_path, entry):
    routed = SexRoutedModel({sex: tiny for sex in SEXES}).save(tmp_path / "routed")
    assert read_routing(routed) == {sex: routed / sex for sex in SEXES}
    write_json_atomic(routed / ROUTING_FILE, {"female": entry, "male": "male/model.keras"})
    with pytest.raises(ModelLoadError, match="outside the run folder"):
        read_routing(routed)
    with pytest.raises(ModelLoadError, match="outside the run folder"):
        resolve_model(routed)


@pytest.mark.parametrize("content", [b"", b"{", b"[]", b"{}", b'{"female": 3}'])
def test_a_bad_routing_json_raises_model_load_error(tmp_path, content):
    (tmp_path / ROUTING_FILE).write_bytes(content)
    with pytest.raises(ModelLoadError, match=ROUTING_FILE):
        read_routing(tmp_path)


def test_saved_models_are_deflated_zips_that_load_with_the_same_weights(tiny, tmp_path):
    path = tmp_path / "run" / MODEL_FILE
    save_model_atomic(tiny.model, path)
    with zipfile.ZipFile(path) as archive:
        entries = archive.infolist()
    assert {entry.compress_type for entry in entries} == {zipfile.ZIP_DEFLATED}
    assert "model.weights.h5" in {entry.filename for entry in entries}
    tiny.model.save(tmp_path / "keras_own.keras")  # Keras' own archive, stored uncompressed
    assert path.stat().st_size < (tmp_path / "keras_own.keras").stat().st_size
    assert [p.name for p in path.parent.iterdir()] == [MODEL_FILE]  # no temporary file left
    loaded = load_model_file(path)
    for ours, theirs in zip(tiny.model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
