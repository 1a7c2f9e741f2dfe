"""Classic classifiers on face features: HOG or deep embeddings into scikit-learn.

``FeatureClassifier`` turns face images into feature vectors and fits a scikit-learn classifier
on them, behind one ``fit`` / ``predict`` / ``predict_proba`` / ``save`` / ``load``:

- ``features="hog"``: histograms of oriented gradients of the face as a 48x48 grayscale image
  (OpenCV's ``HOGDescriptor``: 16 px blocks of 8 px cells, 8 px stride, 9 orientations: 900
  values), so no extra dependency is needed;
- ``features="embedding"``: the pooled backbone features of a Keras model from
  :func:`emokeras.models.build_model` (``backbone_model``: the model, a ``.keras`` file or a run
  folder), computed by the model's own graph up to its backbone.

Classifiers (all after a ``StandardScaler``): ``"svm"`` (``SVC``, a ``GridSearchCV`` over the
kernel, linear or RBF, and C), ``"logreg"`` (``LogisticRegression``, a grid over C) and
``"gboost"`` (``HistGradientBoostingClassifier``, no grid by default). ``param_grid`` replaces the
default grid (keys are the classifier's own parameter names); ``cv`` is the number of
stratified folds of the search, which runs on the training data only. The search runs on a
stratified random subsample of at most ``search_size`` items (default 3,000; ``None``: all of
them) and the chosen parameters are then fitted on everything: an RBF or linear SVC costs
quadratic time or worse in the number of items, so a full search on 10,000 FER2013 faces takes
over 20 minutes on two cores, while the ranking of a few C values and kernels is already clear
on a few thousand.

``save(path)`` writes ``path`` (joblib: the fitted scikit-learn pipeline) and a JSON sidecar
``<path>.json`` (format version, features, classifier, grid, chosen parameters, classes and
label set). An embedding classifier also writes its Keras model beside it as
``<path>.backbone.keras``, so the saved classifier is self-contained and can be moved as three
files; the sidecar names that file relative to itself. ``load`` is pickle underneath: load only
files you trust.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from emokeras.errors import ConfigError, DatasetError, EmokerasError, RunFolderError
from emokeras.fileio import atomic_write, write_json_atomic
from emokeras.images import resize
from emokeras.labels import LabelSet, get_label_set

logger = logging.getLogger(__name__)

FEATURES = ("hog", "embedding")
CLASSIFIERS = ("svm", "logreg", "gboost")
#: The side of the grayscale face HOG is computed on.
HOG_SIZE = 48
FORMAT_VERSION = 1

#: Default grids, per classifier (its own parameter names, without the pipeline prefix).
DEFAULT_GRIDS: dict[str, dict[str, list] | None] = {
    "svm": {"kernel": ["linear", "rbf"], "C": [0.1, 1.0, 10.0]},
    "logreg": {"C": [0.01, 0.1, 1.0]},
    "gboost": None,
}


class NotFittedError(EmokerasError):
    """A FeatureClassifier was used before ``fit`` (or ``load``)."""


def hog_features(images: np.ndarray) -> np.ndarray:
    """HOG vectors (N, 900) of faces given as uint8 (N, H, W) gray or (N, H, W, 3) RGB."""
    images = _check_images(images)
    descriptor = cv2.HOGDescriptor(
        (HOG_SIZE, HOG_SIZE), (16, 16), (8, 8), (8, 8), 9
    )  # window, block, block stride, cell, bins
    out = []
    for image in images:
        gray = _gray(image)
        out.append(descriptor.compute(resize(gray, HOG_SIZE)).reshape(-1))
    return np.stack(out).astype(np.float32)


def _check_images(images) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise DatasetError(f"images must be uint8 (0-255), got dtype {images.dtype}")
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if not (images.ndim == 3 or (images.ndim == 4 and images.shape[-1] == 3)):
        raise DatasetError(
            f"images must be (N, H, W) gray or (N, H, W, 3) RGB, got shape {images.shape}"
        )
    if len(images) == 0:
        raise DatasetError("no images: the array is empty")
    return images


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def _load_keras_model(reference) -> Any:
    """A Keras model from a model, a ``.keras`` file or a run folder (``model.keras`` inside)."""
    if hasattr(reference, "predict") and hasattr(reference, "input_shape"):
        return reference
    if isinstance(reference, str | os.PathLike):
        import keras

        import emokeras.models  # noqa: F401  (registers emokeras' layers for safe-mode loading)

        path = Path(reference)
        if path.is_dir():
            path = path / "model.keras"
        if not path.is_file():
            raise ConfigError(f"backbone_model {str(reference)!r}: no such .keras file")
        return keras.saving.load_model(path, compile=False)
    raise ConfigError(
        "backbone_model must be a Keras model from build_model, a .keras file or a run folder, "
        f"got {type(reference).__name__}"
    )


@dataclass
class _Fitted:
    pipeline: Any
    classes: np.ndarray
    best_params: dict[str, Any]


class FeatureClassifier:
    """HOG or deep-embedding features into an SVM, logistic regression or gradient boosting.

    ``fit(images, labels)`` takes uint8 faces (N, H, W) or (N, H, W, 3) and integer labels (into
    ``label_set`` when given); ``predict`` returns labels, ``predict_proba`` (N, classes) in the
    order of ``classes_``.
    """

    def __init__(
        self,
        features: str = "hog",
        classifier: str = "svm",
        backbone_model=None,
        param_grid: dict[str, list] | None = None,
        cv: int = 3,
        *,
        search_size: int | None = 3000,
        label_set: LabelSet | None = None,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        if features not in FEATURES:
            raise ConfigError(f"features must be one of {list(FEATURES)}, got {features!r}")
        if classifier not in CLASSIFIERS:
            raise ConfigError(f"classifier must be one of {list(CLASSIFIERS)}, got {classifier!r}")
        if features == "embedding" and backbone_model is None:
            raise ConfigError("features='embedding' needs a backbone_model")
        if features == "hog" and backbone_model is not None:
            raise ConfigError("backbone_model is only used with features='embedding'")
        if param_grid is not None and (
            not isinstance(param_grid, dict)
            or not all(isinstance(v, list | tuple) and v for v in param_grid.values())
        ):
            raise ConfigError(
                f"param_grid must map parameter names to non-empty lists, got {param_grid!r}"
            )
        if isinstance(cv, bool) or not isinstance(cv, int) or cv < 2:
            raise ConfigError(f"cv must be an int >= 2, got {cv!r}")
        if search_size is not None and (
            isinstance(search_size, bool) or not isinstance(search_size, int) or search_size < 2
        ):
            raise ConfigError(f"search_size must be None or an int >= 2, got {search_size!r}")
        self.features = features
        self.classifier = classifier
        self.param_grid = (
            {k: list(v) for k, v in param_grid.items()}
            if param_grid is not None
            else DEFAULT_GRIDS[classifier]
        )
        self.cv = cv
        self.search_size = search_size
        self.label_set = label_set
        self.batch_size = batch_size
        self.seed = seed
        self._backbone_model = None if backbone_model is None else _load_keras_model(
            backbone_model
        )
        self._extractor = None
        self._fitted: _Fitted | None = None

    # --- features ------------------------------------------------------------------------------

    @property
    def backbone_model(self):
        return self._backbone_model

    def transform(self, images: np.ndarray) -> np.ndarray:
        """The feature vectors (N, D) of faces."""
        if self.features == "hog":
            return hog_features(images)
        return self._embeddings(_check_images(images))

    def _embeddings(self, images: np.ndarray) -> np.ndarray:
        from emokeras.models import split_at_backbone

        if self._extractor is None:
            self._extractor = split_at_backbone(self._backbone_model)[0]
        _, size, _, channels = self._backbone_model.input_shape
        batch = []
        for image in images:
            face = resize(image, int(size))
            if channels == 1:
                face = _gray(face)[..., None]
            elif face.ndim == 2:
                face = np.repeat(face[..., None], 3, axis=-1)
            batch.append(face)
        x = np.stack(batch).astype(np.float32)
        if len(x) <= self.batch_size:  # a direct call skips predict()'s per-call setup
            return np.asarray(self._extractor(x, training=False))
        return np.asarray(self._extractor.predict(x, batch_size=self.batch_size, verbose=0))

    # --- fitting and predicting ----------------------------------------------------------------

    def _estimator(
        self, params: dict[str, Any] | None = None, calibrated: bool = False, folds: int = 3
    ):
        """StandardScaler -> the classifier with ``params``; ``calibrated`` wraps an SVM in
        sigmoid calibration (what ``SVC(probability=True)`` did, deprecated in scikit-learn 1.9).
        """
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        params = params or {}
        if self.classifier == "svm":
            model = SVC(random_state=self.seed, **params)
            if calibrated:
                # One calibration fit on cross-validated decisions, not in the grid search: the
                # search compares accuracy, which calibration does not change.
                model = CalibratedClassifierCV(model, method="sigmoid", cv=folds, ensemble=False)
        elif self.classifier == "logreg":
            model = LogisticRegression(max_iter=2000, **params)
        else:
            model = HistGradientBoostingClassifier(random_state=self.seed, **params)
        return Pipeline([("scale", StandardScaler()), ("clf", model)])

    def fit(self, images: np.ndarray, labels) -> FeatureClassifier:
        """Extract features and fit; with a grid, search it by stratified ``cv``-fold CV first."""
        from sklearn.model_selection import GridSearchCV, StratifiedKFold

        images = _check_images(images)
        labels = np.asarray(labels)
        if labels.shape != (len(images),):
            raise DatasetError(
                f"labels must have shape ({len(images)},) for {len(images)} images, "
                f"got {labels.shape}"
            )
        if not np.issubdtype(labels.dtype, np.integer):
            raise DatasetError(f"labels must be integers, got dtype {labels.dtype}")
        if self.label_set is not None and (
            labels.min() < 0 or labels.max() >= len(self.label_set)
        ):
            raise DatasetError(
                f"labels must be in 0..{len(self.label_set) - 1} for label set "
                f"{self.label_set.name!r}, got {labels.min()}..{labels.max()}"
            )
        classes, counts = np.unique(labels, return_counts=True)
        if len(classes) < 2:
            raise DatasetError(f"fit needs at least two classes, got {classes.tolist()}")
        folds = min(self.cv, int(counts.min()))
        if folds < 2 and (self.param_grid or self.classifier == "svm"):
            found = dict(zip(classes.tolist(), counts.tolist(), strict=True))
            raise DatasetError(
                "the grid search and the SVM's calibration need at least 2 faces of every "
                f"class; class counts are {found}"
            )
        features = self.transform(images)
        best: dict[str, Any] = {}
        if self.param_grid:
            grid = {f"clf__{k}": v for k, v in self.param_grid.items()}
            search = GridSearchCV(
                self._estimator(), grid, refit=False, n_jobs=1,
                cv=StratifiedKFold(folds, shuffle=True, random_state=self.seed),
            )  # fmt: skip
            chosen = self._search_subsample(labels)
            search.fit(features[chosen], labels[chosen])
            best = {k.removeprefix("clf__"): v for k, v in search.best_params_.items()}
            logger.info("grid search (%d folds on %d items): best %s, CV accuracy %.4f", folds,
                        len(chosen), best, search.best_score_)  # fmt: skip
        pipeline = self._estimator(best, calibrated=True, folds=folds)
        pipeline.fit(features, labels)
        self._fitted = _Fitted(pipeline, pipeline.classes_, best)
        return self

    def _search_subsample(self, labels: np.ndarray) -> np.ndarray:
        """Indices of the grid search's items: all, or a stratified seeded subsample."""
        from sklearn.model_selection import train_test_split

        everything = np.arange(len(labels))
        if self.search_size is None or len(labels) <= self.search_size:
            return everything
        chosen, _ = train_test_split(
            everything, train_size=self.search_size, stratify=labels, random_state=self.seed
        )
        return np.sort(chosen)

    def _check_fitted(self) -> _Fitted:
        if self._fitted is None:
            raise NotFittedError("this FeatureClassifier is not fitted: call fit() or load()")
        return self._fitted

    @property
    def classes_(self) -> np.ndarray:
        return self._check_fitted().classes

    @property
    def best_params_(self) -> dict[str, Any]:
        """The parameters the grid search chose ({} without a grid)."""
        return dict(self._check_fitted().best_params)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """The predicted label of each face."""
        fitted = self._check_fitted()
        return fitted.pipeline.predict(self.transform(images))

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities (N, len(classes_))."""
        fitted = self._check_fitted()
        return fitted.pipeline.predict_proba(self.transform(images))

    def score(self, images: np.ndarray, labels) -> float:
        """Accuracy on labelled faces."""
        return float(np.mean(self.predict(images) == np.asarray(labels)))

    # --- saving --------------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "features": self.features,
            "classifier": self.classifier,
            "param_grid": self.param_grid,
            "cv": self.cv,
            "search_size": self.search_size,
            "seed": self.seed,
            "label_set": None if self.label_set is None else self.label_set.name,
            "label_names": None if self.label_set is None else list(self.label_set.classes),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fitted classifier to ``path`` (+ ``.json`` sidecar, + ``.backbone.keras``)."""
        import joblib

        fitted = self._check_fitted()
        path = Path(path)
        sidecar = {
            **self.config(),
            "best_params": fitted.best_params,
            "classes": fitted.classes.tolist(),
            "backbone_model": None,
        }
        if self.features == "embedding":
            from emokeras.run_folder import save_model_atomic

            model_file = path.with_name(path.name + ".backbone.keras")
            save_model_atomic(self._backbone_model, model_file)
            sidecar["backbone_model"] = model_file.name
        with atomic_write(path, "wb") as handle:
            joblib.dump(fitted.pipeline, handle)
        write_json_atomic(_sidecar(path), sidecar)
        logger.info("saved %s+%s classifier to %s", self.features, self.classifier, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FeatureClassifier:
        """Read a classifier ``save`` wrote. Unpickles the joblib file: only trusted files."""
        import joblib

        path = Path(path)
        for file in (path, _sidecar(path)):
            if not file.is_file():
                raise RunFolderError(f"saved FeatureClassifier {str(path)!r}: {file} is missing")
        try:
            meta = json.loads(_sidecar(path).read_text(encoding="utf-8"))
        except ValueError as error:
            raise RunFolderError(f"{_sidecar(path)} is not valid JSON: {error}") from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise RunFolderError(
                f"{_sidecar(path)} has format version {meta.get('format_version')!r}; "
                f"this emokeras reads {FORMAT_VERSION}"
            )
        backbone = None
        if meta["features"] == "embedding":
            backbone = path.parent / meta["backbone_model"]
            if not backbone.is_file():
                raise RunFolderError(
                    f"saved FeatureClassifier {str(path)!r}: {backbone} is missing"
                )
        classifier = cls(
            meta["features"], meta["classifier"], backbone_model=backbone,
            param_grid=meta["param_grid"], cv=meta["cv"], seed=meta.get("seed", 0),
            search_size=meta.get("search_size"),
            label_set=get_label_set(meta["label_set"]) if meta.get("label_set") else None,
        )  # fmt: skip
        pipeline = joblib.load(path)
        classes = np.asarray(meta["classes"])
        if not np.array_equal(np.asarray(pipeline.classes_), classes):
            raise RunFolderError(f"{path} and its sidecar disagree on the classes")
        classifier._fitted = _Fitted(pipeline, pipeline.classes_, dict(meta["best_params"]))
        return classifier

    def __repr__(self) -> str:
        state = "fitted" if self._fitted is not None else "not fitted"
        return f"FeatureClassifier({self.features!r}, {self.classifier!r}, {state})"


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")
