"""What every prediction result shares: a read-only ``scores`` mapping, JSON-safe ``to_dict``,
a short ``repr``, and pandas tables a researcher can analyse.

The result classes (``ImagePrediction``, ``VideoPrediction``, ``AudioPrediction``, face tracks)
hold their class probabilities as an array, ``probabilities``, in the order of ``class_names``;
``scores`` is the same numbers as a mapping class name -> probability.

Tables (pandas, the ``tables`` extra) have one row per face per frame::

    file, frame_index, timestamp, track_id, box_x, box_y, box_w, box_h, detector_score,
    <one column per class>, label

and :func:`summary` one row per video track (or image face): file, track_id, frames, start, end,
label, confidence, <one column per class>. A video predicted without face tracks (one face
followed through the video) is track 0 and has no per-frame boxes (NaN).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import PurePath
from typing import Any

import numpy as np

from emokeras.errors import MissingExtraError

#: The columns of a per-frame table before the class columns
FRAME_COLUMNS = ("file", "frame_index", "timestamp", "track_id", "box_x", "box_y", "box_w",
                 "box_h", "detector_score")
#: The columns of a summary table before the class columns
SUMMARY_COLUMNS = ("file", "track_id", "frames", "start", "end", "label", "confidence")


class Scores(Mapping[str, float]):
    """Class name -> probability, read-only, in the model's class order."""

    __slots__ = ("_names", "_values")

    def __init__(self, class_names: Sequence[str], probabilities: np.ndarray) -> None:
        values = np.asarray(probabilities, dtype=np.float64).reshape(-1)
        if len(class_names) != len(values):
            raise ValueError(f"{len(class_names)} class names for {len(values)} probabilities")
        self._names = tuple(class_names)
        self._values = values

    def __getitem__(self, name: str) -> float:
        try:
            return float(self._values[self._names.index(name)])
        except ValueError:
            raise KeyError(name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{n!r}: {v:.3f}" for n, v in zip(self._names, self._values,
                                                                strict=True)) + "}"

    def top(self, k: int = 1) -> list[tuple[str, float]]:
        """The ``k`` most likely classes with their probabilities, most likely first."""
        order = np.argsort(-self._values, kind="stable")[:k]
        return [(self._names[i], float(self._values[i])) for i in order]


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: arrays to lists, NumPy scalars to Python ones, paths to
    strings, result objects to their ``to_dict()``, non-finite floats to None."""
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return value.to_dict()
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Iterable):
        return [jsonable(v) for v in value]
    raise TypeError(f"no JSON form for {type(value).__name__}")


def _short(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"<array {'x'.join(map(str, value.shape))} {value.dtype}>"
    if isinstance(value, float):
        return f"{value:.3f}"
    if all(hasattr(value, a) for a in ("x", "y", "width", "height", "confidence")):  # a FaceBox
        return (f"FaceBox(x={value.x}, y={value.y}, {value.width}x{value.height}, "
                f"confidence={value.confidence:.2f})")
    if isinstance(value, tuple) and len(value) > 8:
        return f"<{len(value)} items>"
    if isinstance(value, tuple) and value and hasattr(value[0], "to_dict"):
        return f"<{len(value)} {type(value[0]).__name__}>"
    return repr(value)


class ResultMixin:
    """``scores``, ``to_dict`` and ``repr`` for a frozen result dataclass with fields
    ``probabilities`` and ``class_names`` (declare the dataclass with ``repr=False``)."""

    #: array fields shown in ``to_dict`` as {class: probability}, with the field of their names
    _score_fields: Mapping[str, str] = {"probabilities": "class_names"}
    #: optional fields left out of ``to_dict`` when None (e.g. the audio of a video without)
    _omit_if_none: tuple[str, ...] = ()

    @property
    def scores(self) -> Scores:
        """Class name -> probability (read-only); ``probabilities`` is the same as an array."""
        return Scores(self.class_names, self.probabilities)

    def _dict_extras(self) -> dict[str, Any]:
        """Derived values a subclass adds to ``to_dict``."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-safe (``json.dumps`` takes it): ``probabilities`` as ``scores``
        {class: probability}, per-frame arrays as lists, boxes and tracks as dicts."""
        data: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in self._omit_if_none:
                continue
            names_field = self._score_fields.get(f.name)
            if names_field is not None and value is not None:
                key = "scores" if f.name == "probabilities" else f.name
                # through jsonable: a NaN score (a diverged model) becomes null, as elsewhere
                data[key] = jsonable(dict(Scores(getattr(self, names_field), value)))
            else:
                data[f.name] = jsonable(value)
        data.update(jsonable(self._dict_extras()))
        return data

    def __repr__(self) -> str:
        shown = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None or f.name in ("class_names", "probabilities"):
                continue
            shown.append(f"{f.name}={_short(value)}")
        return f"{type(self).__name__}({', '.join(shown)})"


# -- tables -------------------------------------------------------------------------------------


def require_pandas():
    """pandas, or a ``MissingExtraError`` that names the ``tables`` extra."""
    try:
        import pandas
    except ImportError:
        raise MissingExtraError("tables", "pandas", "a table of results") from None
    return pandas


def _probabilities(obj) -> np.ndarray:
    """The class probabilities of a result or a face track (``probabilities``, else an
    array ``scores``)."""
    probs = getattr(obj, "probabilities", None)
    if probs is None:
        probs = getattr(obj, "scores", None)
    if isinstance(probs, Scores):
        probs = probs._values
    return np.asarray(probs, dtype=np.float64)


def _box_columns(box) -> dict[str, float]:
    if box is None:
        return {"box_x": math.nan, "box_y": math.nan, "box_w": math.nan, "box_h": math.nan,
                "detector_score": math.nan}
    return {"box_x": box.x, "box_y": box.y, "box_w": box.width, "box_h": box.height,
            "detector_score": float(box.confidence)}


def _class_columns(class_names: Sequence[str], probs: np.ndarray) -> dict[str, Any]:
    return {**dict(zip(class_names, map(float, probs), strict=True)),
            "label": class_names[int(np.argmax(probs))]}


def _tracks(prediction) -> tuple:
    return tuple(getattr(prediction, "tracks", None) or ())


def video_rows(prediction) -> list[dict[str, Any]]:
    """The per-frame rows of a VideoPrediction: one per face per frame (see the module doc)."""
    names = prediction.class_names
    rows = []
    tracks = _tracks(prediction)
    if tracks:
        for track in tracks:
            for i, frame in enumerate(np.asarray(track.frame_indices)):
                rows.append({"file": prediction.path, "frame_index": int(frame),
                             "timestamp": float(track.timestamps[i]),
                             "track_id": int(track.track_id), **_box_columns(track.boxes[i]),
                             **_class_columns(names, track.frame_probs[i])})
        rows.sort(key=lambda row: (row["frame_index"], row["track_id"]))
        return rows
    # one face followed through the video: track 0, boxes where the prediction kept them
    boxes = getattr(prediction, "frame_boxes", None) or None
    for i, frame in enumerate(np.asarray(prediction.frame_indices)):
        rows.append({"file": prediction.path, "frame_index": int(frame),
                     "timestamp": float(prediction.timestamps[i]), "track_id": 0,
                     **_box_columns(boxes[i] if boxes is not None else None),
                     **_class_columns(names, prediction.frame_probs[i])})
    return rows


def image_rows(predictions: Iterable, seen: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """One row per ImagePrediction (a face); faces of the same file are numbered 0, 1, ... as
    ``track_id`` in the order given (largest first, as ``predict_image`` returns them).
    ``seen`` carries the last number given per file across calls."""
    rows, seen = [], {} if seen is None else seen
    for pred in predictions:
        path = pred.path or ""
        face = seen[path] = seen.get(path, -1) + 1
        rows.append({"file": path, "frame_index": 0, "timestamp": math.nan, "track_id": face,
                     **_box_columns(pred.box), **_class_columns(pred.class_names,
                                                                 pred.probabilities)})
    return rows


def _frame(rows: list[dict[str, Any]], leading: Sequence[str], class_names: Sequence[str]):
    pandas = require_pandas()
    columns = [*leading, *class_names, "label"]
    if "label" in leading:  # the summary puts label among the leading columns
        columns = [*leading, *class_names]
    return pandas.DataFrame(rows, columns=columns)


def _class_names_of(predictions: Sequence) -> tuple[str, ...]:
    names = {tuple(p.class_names) for p in predictions}
    if len(names) > 1:
        raise ValueError(f"the predictions have different classes: {sorted(names)}")
    return next(iter(names)) if names else ()


def video_to_frame(prediction):
    """A VideoPrediction's per-frame table (pandas DataFrame)."""
    return _frame(video_rows(prediction), FRAME_COLUMNS, prediction.class_names)


def images_to_frame(predictions: Sequence):
    """ImagePredictions (e.g. ``predict_image(path, which="all")`` of several files) as one
    table, a row per face."""
    predictions = list(predictions)
    return _frame(image_rows(predictions), FRAME_COLUMNS, _class_names_of(predictions))


def to_frame(predictions: Sequence):
    """Video and image predictions together as one per-frame table."""
    predictions = list(predictions)
    rows, seen = [], {}
    for pred in predictions:
        rows += video_rows(pred) if hasattr(pred, "frame_probs") else image_rows([pred], seen)
    return _frame(rows, FRAME_COLUMNS, _class_names_of(predictions))


def summary_rows(prediction) -> list[dict[str, Any]]:
    """One row per track of a VideoPrediction (one row without tracks), or one for an
    ImagePrediction."""
    names = prediction.class_names
    if not hasattr(prediction, "frame_probs"):  # an image's face
        return [{"file": prediction.path or "", "track_id": 0, "frames": 1, "start": math.nan,
                 "end": math.nan, "label": prediction.label,
                 "confidence": float(prediction.confidence),
                 **dict(zip(names, map(float, prediction.probabilities), strict=True))}]
    tracks = _tracks(prediction) or (prediction,)
    rows = []
    for i, track in enumerate(tracks):
        stamps = np.asarray(track.timestamps, dtype=np.float64)
        probs = _probabilities(track)
        rows.append({"file": prediction.path, "track_id": int(getattr(track, "track_id", i)),
                     "frames": len(stamps),
                     "start": float(stamps.min()) if len(stamps) else math.nan,
                     "end": float(stamps.max()) if len(stamps) else math.nan,
                     "label": str(getattr(track, "label", names[int(np.argmax(probs))])),
                     "confidence": float(getattr(track, "confidence", probs.max())),
                     **dict(zip(names, map(float, probs), strict=True))})
    return rows


def summary(predictions) -> Any:
    """One row per video track (or per image face) of one prediction or several."""
    if not isinstance(predictions, Sequence):
        predictions = [predictions]
    predictions = list(predictions)
    rows = [row for pred in predictions for row in summary_rows(pred)]
    return _frame(rows, SUMMARY_COLUMNS, _class_names_of(predictions))


class VideoTableMixin:
    """``to_frame`` and ``summary`` for VideoPrediction."""

    def to_frame(self):
        """Per-frame table: one row per face per sampled frame with a face (pandas)."""
        return video_to_frame(self)

    def summary(self):
        """One row per face track of this video (pandas)."""
        return summary(self)


def write_table(frame, path) -> None:
    """Write a DataFrame as CSV or Parquet by the file's extension, atomically."""
    from emokeras.fileio import atomic_write

    suffix = PurePath(path).suffix.lower()
    check_table_path(path)
    if suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise MissingExtraError("tables", "pyarrow", "writing Parquet") from None
        with atomic_write(path, "wb") as handle:
            frame.to_parquet(handle, index=False)
    else:
        with atomic_write(path, encoding="utf-8", newline="") as handle:
            frame.to_csv(handle, index=False)


#: Table file types, by extension
TABLE_EXTENSIONS = (".csv", ".parquet")


def check_table_path(path) -> None:
    """Refuse a table file whose extension is neither .csv nor .parquet (``ConfigError``)."""
    from emokeras.errors import ConfigError

    if PurePath(path).suffix.lower() not in TABLE_EXTENSIONS:
        raise ConfigError(f"cannot write a table to {str(path)!r}: use a .csv or .parquet "
                          "file name")
