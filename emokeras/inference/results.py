"""The results of inference: one face (:class:`ImagePrediction`), one person through a video
(:class:`FaceTrack`), a video (:class:`VideoPrediction`), a clip's speech
(:class:`AudioPrediction`), and how a video's faces and speech were fused (:class:`Fusion`).

Each is a frozen dataclass on :class:`emokeras.results.ResultMixin` (``scores``, ``to_dict``,
a short ``repr``); the tables (``to_frame``, ``summary``) are :mod:`emokeras.results`'.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from emokeras.faces import FaceBox
from emokeras.results import ResultMixin, Scores, VideoTableMixin, _short, jsonable


@dataclass(frozen=True, eq=False, repr=False)
class ImagePrediction(ResultMixin):
    """The emotion of one face: label, class probabilities (``probabilities``, and ``scores``
    as a mapping class -> probability), confidence, and where the face was."""

    label: str
    label_index: int
    emoji: str
    probabilities: np.ndarray
    confidence: float
    box: FaceBox | None  # None when the image was classified whole (detect=False)
    class_names: tuple[str, ...]
    #: the image file, when the image was given as a path
    path: str | None = None


@dataclass(frozen=True, eq=False, repr=False)
class FaceTrack(ResultMixin):
    """One person's face through a video: where it was in each sampled frame, what each frame
    said, and its own label, aggregated over its frames as the video's is.

    ``frame_indices``, ``timestamps`` (seconds), ``boxes`` and the rows of ``frame_probs``
    (n, classes) are aligned: one per sampled frame in which this face was found.
    """

    track_id: int
    frame_indices: np.ndarray
    timestamps: np.ndarray
    boxes: tuple[FaceBox, ...]
    frame_probs: np.ndarray
    label: str
    label_index: int
    emoji: str
    probabilities: np.ndarray
    confidence: float
    class_names: tuple[str, ...]

    @property
    def num_frames(self) -> int:
        return len(self.frame_indices)


@dataclass(frozen=True, eq=False, repr=False)
class Fusion:
    """How a video's face aggregate and its speech were fused (late fusion,
    :func:`emokeras.inference.fusion.fuse`).

    ``fused`` is the distribution over the face model's ``class_names`` that the video's label
    comes from: the mix, or the face's own when the audio could not be used (``audio_error``
    says why, and ``audio_scores``, ``audio_class_names`` and ``weight`` are None).
    """

    class_names: tuple[str, ...]
    #: the face aggregate as a distribution over ``class_names``
    face_scores: np.ndarray
    fused: np.ndarray
    #: the audio model's distribution over its own classes, ``audio_class_names``
    audio_scores: np.ndarray | None = None
    audio_class_names: tuple[str, ...] | None = None
    #: the weight of the audio in the mix
    weight: float | None = None
    #: why the audio model was given but not used (no audio stream, undecodable audio)
    audio_error: str | None = None

    @property
    def used_audio(self) -> bool:
        """Whether the audio took part (else ``fused`` is the face's distribution)."""
        return self.audio_error is None

    def to_dict(self) -> dict[str, Any]:
        """The VideoPrediction's fusion keys (``face_scores``, ``audio_scores`` as
        {class: probability}, ``audio_class_names``, ``audio_weight``, ``audio_error``), JSON-safe,
        without those that are None."""
        data: dict[str, Any] = {
            "face_scores": jsonable(dict(Scores(self.class_names, self.face_scores)))}
        if self.audio_scores is not None and self.audio_class_names is not None:
            data["audio_scores"] = jsonable(dict(Scores(self.audio_class_names,
                                                        self.audio_scores)))
            data["audio_class_names"] = list(self.audio_class_names)
        if self.weight is not None:
            data["audio_weight"] = float(self.weight)
        if self.audio_error is not None:
            data["audio_error"] = self.audio_error
        return data

    def __repr__(self) -> str:
        shown = [f"{name}={_short(getattr(self, name))}"
                 for name in ("fused", "face_scores", "audio_scores", "weight", "audio_error")
                 if getattr(self, name) is not None]
        return f"Fusion({', '.join(shown)})"


@dataclass(frozen=True, eq=False, repr=False)
class VideoPrediction(ResultMixin, VideoTableMixin):
    """One label for a video, with the per-frame evidence behind it.

    ``probabilities`` are the video's class probabilities (``scores``: the same as a mapping
    class -> probability); ``to_frame()`` and ``summary()`` give pandas tables.

    ``frame_probs`` has a row for each sampled frame in which a face was found, in order, with
    its ``frame_indices`` and ``timestamps`` (seconds). ``frames_read`` counts sampled frames,
    ``frames_without_face`` those in which no face was found.
    """

    path: str
    label: str
    label_index: int
    emoji: str
    probabilities: np.ndarray
    confidence: float
    aggregate: str
    class_names: tuple[str, ...]
    frame_probs: np.ndarray
    frame_indices: np.ndarray
    timestamps: np.ndarray
    frames_read: int
    frames_without_face: int
    #: "female" / "male": given by the caller, or detected (the majority over the frames)
    sex: str | None = None
    #: With an audio model (late fusion), how the faces and the speech were fused; then
    #: ``probabilities`` and the label are the fused ones (or the face's, when the audio is
    #: unavailable). ``face_scores``, ``audio_scores``, ``audio_class_names``, ``audio_weight``
    #: and ``audio_error`` read its fields (None without fusion).
    fusion: Fusion | None = None
    #: the box of the classified face in each row of ``frame_probs`` (the largest face)
    frame_boxes: tuple[FaceBox, ...] = ()
    #: one FaceTrack per person: with ``faces="all"`` every face followed through the video (ids
    #: from 0 in order of appearance); with ``faces="largest"`` one track, id 0, of the same
    #: frames as ``frame_probs``
    tracks: tuple[FaceTrack, ...] = ()

    @property
    def num_frames(self) -> int:
        """Frames that were classified (a face was found in them)."""
        return len(self.frame_indices)

    @property
    def face_scores(self) -> np.ndarray | None:
        """The face-only distribution over ``class_names`` (with fusion, else None)."""
        return None if self.fusion is None else self.fusion.face_scores

    @property
    def audio_scores(self) -> np.ndarray | None:
        """The audio model's distribution over ``audio_class_names`` (None when not used)."""
        return None if self.fusion is None else self.fusion.audio_scores

    @property
    def audio_class_names(self) -> tuple[str, ...] | None:
        return None if self.fusion is None else self.fusion.audio_class_names

    @property
    def audio_weight(self) -> float | None:
        """The weight of the audio in the fusion (None when no fusion happened)."""
        return None if self.fusion is None else self.fusion.weight

    @property
    def audio_error(self) -> str | None:
        """Why an audio model was given but not used (no audio stream, undecodable audio)."""
        return None if self.fusion is None else self.fusion.audio_error

    # the fusion's keys stay flat in to_dict (face_scores, audio_weight, ...), as before it
    # was a dataclass of its own
    _omit_if_none = ("fusion",)

    def _dict_extras(self) -> dict[str, Any]:
        return {"frames_classified": self.num_frames}

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.update(data.pop("fusion", None) or {})
        return data


@dataclass(frozen=True, eq=False, repr=False)
class AudioPrediction(ResultMixin):
    """The emotion of a clip's speech: label, class probabilities (``probabilities``; ``scores``
    as a mapping class -> probability), and how many windows it took."""

    path: str
    label: str
    label_index: int
    emoji: str
    probabilities: np.ndarray
    confidence: float
    class_names: tuple[str, ...]
    windows: int
