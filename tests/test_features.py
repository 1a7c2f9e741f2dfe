"""FeatureClassifier: HOG or embeddings into scikit-learn, on real FER2013 faces."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emokeras.datasets import load_fer2013_folders
from emokeras.errors import ConfigError, DatasetError, EmokerasError, RunFolderError
from emokeras.features import FeatureClassifier, NotFittedError, hog_features
from emokeras.labels import FER2013
from emokeras.models import build_model


@pytest.fixture(scope="module")
def faces(fer2013_subset):
    """(train images, train labels, test images): real FER2013 faces, 12 per class each."""
    sets = load_fer2013_folders(fer2013_subset)
    train, test = sets["Training"], sets["PublicTest"]
    return train.load_images(grayscale=True), train.labels, test.load_images(grayscale=True)


def test_hog_features_of_gray_and_rgb_faces(faces):
    images = faces[0][:3]
    features = hog_features(images)
    assert features.shape == (3, 900) and features.dtype == np.float32
    rgb = np.repeat(images[..., None], 3, axis=-1)
    np.testing.assert_allclose(hog_features(rgb), features, atol=1e-5)
    # any size is brought to 48x48 first
    big = np.stack([np.kron(image, np.ones((2, 2), np.uint8)) for image in images])
    assert hog_features(big).shape == (3, 900)


@pytest.mark.parametrize("classifier", ["svm", "logreg"])
def test_hog_classifier_round_trips_through_save_and_load(classifier, faces, tmp_path):
    train_images, train_labels, test_images = faces
    model = FeatureClassifier("hog", classifier, label_set=FER2013).fit(train_images, train_labels)
    assert set(model.best_params_) == set(model.param_grid)  # the grid was searched
    if classifier == "svm":
        assert model.best_params_["kernel"] in ("linear", "rbf")
    predicted = model.predict(test_images)
    probabilities = model.predict_proba(test_images)
    assert probabilities.shape == (len(test_images), len(FER2013))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert model.score(train_images, train_labels) > 1 / len(FER2013)

    path = model.save(tmp_path / f"hog_{classifier}.joblib")
    sidecar = json.loads((tmp_path / f"hog_{classifier}.joblib.json").read_text())
    assert sidecar["features"] == "hog" and sidecar["classifier"] == classifier
    assert sidecar["label_set"] == "fer2013" and sidecar["classes"] == list(range(7))
    loaded = FeatureClassifier.load(path)
    np.testing.assert_array_equal(loaded.predict(test_images), predicted)
    np.testing.assert_array_equal(loaded.predict_proba(test_images), probabilities)
    assert loaded.label_set is FER2013 and loaded.best_params_ == model.best_params_


def test_the_grid_search_runs_on_a_subsample_and_the_final_fit_on_everything(faces, caplog):
    train_images, train_labels, _ = faces
    caplog.set_level("INFO", logger="emokeras.features")
    model = FeatureClassifier("hog", "logreg", search_size=42).fit(train_images, train_labels)
    assert "on 42 items" in caplog.text
    scaler = model._check_fitted().pipeline.named_steps["scale"]
    assert scaler.n_samples_seen_ == len(train_labels) > 42
    with pytest.raises(ConfigError, match="search_size"):
        FeatureClassifier("hog", "svm", search_size=1)


def test_gradient_boosting_without_a_grid(faces, tmp_path):
    train_images, train_labels, test_images = faces
    model = FeatureClassifier("hog", "gboost").fit(train_images[::2], train_labels[::2])
    assert model.best_params_ == {}
    loaded = FeatureClassifier.load(model.save(tmp_path / "gb.joblib"))
    np.testing.assert_array_equal(
        loaded.predict_proba(test_images), model.predict_proba(test_images)
    )


def test_embedding_classifier_saves_its_backbone_beside_it(faces, tmp_path):
    train_images, train_labels, test_images = faces
    network = build_model("small_cnn", len(FER2013), weights=None, channels=1)
    model = FeatureClassifier("embedding", "logreg", backbone_model=network,
                              param_grid={"C": [1.0]}).fit(train_images, train_labels)  # fmt: skip
    assert model.transform(test_images[:2]).shape == (2, 256)
    path = model.save(tmp_path / "emb" / "clf.joblib")
    assert (tmp_path / "emb" / "clf.joblib.backbone.keras").is_file()
    # self-contained: the three files still load once moved elsewhere
    moved = tmp_path / "moved"
    moved.mkdir()
    for file in (tmp_path / "emb").iterdir():
        file.rename(moved / file.name)
    loaded = FeatureClassifier.load(moved / path.name)
    np.testing.assert_allclose(loaded.predict_proba(test_images), model.predict_proba(test_images),
                               atol=1e-6)  # fmt: skip


def test_bad_configuration_is_refused():
    with pytest.raises(ConfigError, match="features"):
        FeatureClassifier("sift")
    with pytest.raises(ConfigError, match="classifier"):
        FeatureClassifier("hog", "knn")
    with pytest.raises(ConfigError, match="backbone_model"):
        FeatureClassifier("embedding", "svm")
    with pytest.raises(ConfigError, match="only used"):
        FeatureClassifier("hog", "svm", backbone_model="model.keras")
    with pytest.raises(ConfigError, match="no such"):
        FeatureClassifier("embedding", "svm", backbone_model="/nonexistent/model.keras")
    with pytest.raises(ConfigError, match="param_grid"):
        FeatureClassifier("hog", "svm", param_grid={"C": []})
    with pytest.raises(ConfigError, match="cv"):
        FeatureClassifier("hog", "svm", cv=1)


def test_bad_data_is_refused(faces, tmp_path):
    train_images, train_labels, _ = faces
    model = FeatureClassifier("hog", "logreg")
    with pytest.raises(NotFittedError):
        model.predict(train_images)
    assert issubclass(NotFittedError, EmokerasError)
    with pytest.raises(NotFittedError):
        model.save(tmp_path / "x.joblib")
    with pytest.raises(DatasetError, match="uint8"):
        model.fit(train_images.astype(np.float32), train_labels)
    with pytest.raises(DatasetError, match="shape"):
        model.fit(train_images, train_labels[:-1])
    with pytest.raises(DatasetError, match="shape"):
        model.fit(train_images[:, :, :, None, None], train_labels)
    with pytest.raises(DatasetError, match="two classes"):
        model.fit(train_images[:5], np.zeros(5, np.int64))
    with pytest.raises(DatasetError, match="integers"):
        model.fit(train_images, train_labels.astype(float))
    with pytest.raises(DatasetError, match="label set"):
        FeatureClassifier("hog", "logreg", label_set=FER2013).fit(train_images, train_labels + 5)
    with pytest.raises(DatasetError, match="at least 2 faces"):
        FeatureClassifier("hog", "svm").fit(train_images[:8], np.array([0, 0, 0, 0, 1, 1, 1, 2]))
    with pytest.raises(DatasetError, match="empty"):
        hog_features(np.zeros((0, 48, 48), np.uint8))


def test_load_names_what_is_missing(faces, tmp_path):
    train_images, train_labels, _ = faces
    path = FeatureClassifier("hog", "logreg", param_grid={"C": [1.0]}).fit(
        train_images, train_labels
    ).save(tmp_path / "clf.joblib")
    with pytest.raises(RunFolderError, match="missing"):
        FeatureClassifier.load(tmp_path / "other.joblib")
    sidecar = tmp_path / "clf.joblib.json"
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(RunFolderError, match="format version"):
        FeatureClassifier.load(path)
    sidecar.write_text("{not json")
    with pytest.raises(RunFolderError, match="JSON"):
        FeatureClassifier.load(path)
