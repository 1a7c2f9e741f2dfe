"""Give every face an identity across video frames: one implementation for ``live``, the app and
``predict_video(faces="all")``.

Boxes are matched to the tracks of earlier frames by overlap (IoU) first, then by the distance
between centres; a box matching no track starts a new one, and a track unseen for ``max_missed``
frames is dropped, so a face that leaves and comes back may get a new id.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from emokeras import aggregation
from emokeras.errors import ConfigError
from emokeras.faces import FaceBox

#: Default number of frames a face's label is aggregated over by :class:`MultiFaceTracker`.
DEFAULT_WINDOW = 5


def iou(a: FaceBox, b: FaceBox) -> float:
    """Intersection over union of two boxes (0 when they do not overlap)."""
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.width, b.x + b.width), min(a.y + a.height, b.y + b.height)
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def _centre_distance(a: FaceBox, b: FaceBox) -> float:
    """Distance between the boxes' centres, in units of the larger box's side."""
    dx = (a.x + a.width / 2) - (b.x + b.width / 2)
    dy = (a.y + a.height / 2) - (b.y + b.height / 2)
    return float(np.hypot(dx, dy)) / max(1, a.width, a.height, b.width, b.height)


@dataclass
class _Track:
    track_id: int
    box: FaceBox
    history: collections.deque = field(default_factory=collections.deque)
    missed: int = 0


class IdentityTracker:
    """Gives each box of a frame the id of the face it continues, or a new id.

    A box joins the track it overlaps most (IoU >= ``min_iou``), else the track whose centre is
    nearest (within ``max_distance`` box sides); matches are made greedily, best first, and each
    track takes at most one box per frame. A track not seen for ``max_missed`` frames is dropped.
    Ids count up from 0 in order of first appearance. Keeps state: one tracker per video.
    """

    def __init__(self, *, min_iou: float = 0.3, max_distance: float = 0.5,
                 max_missed: int = 5, history: int | None = None) -> None:
        if not 0.0 < min_iou <= 1.0:
            raise ConfigError(f"min_iou must be in (0, 1], got {min_iou!r}")
        if max_distance < 0:
            raise ConfigError(f"max_distance must be >= 0, got {max_distance!r}")
        if isinstance(max_missed, bool) or not isinstance(max_missed, int) or max_missed < 0:
            raise ConfigError(f"max_missed must be an integer >= 0, got {max_missed!r}")
        self.min_iou = min_iou
        self.max_distance = max_distance
        self.max_missed = max_missed
        self._history = history
        self._tracks: list[_Track] = []
        self._next_id = 0

    def _match(self, boxes: Sequence[FaceBox]) -> dict[int, _Track]:
        """Box index -> track, greedily: best overlaps first, then nearest centres."""
        pairs = []
        for i, box in enumerate(boxes):
            for track in self._tracks:
                overlap = iou(box, track.box)
                if overlap >= self.min_iou:
                    pairs.append((0, -overlap, i, track))
                    continue
                distance = _centre_distance(box, track.box)
                if distance <= self.max_distance:
                    pairs.append((1, distance, i, track))
        pairs.sort(key=lambda p: (p[0], p[1], p[2], p[3].track_id))
        matched: dict[int, _Track] = {}
        used: set[int] = set()
        for _, _, i, track in pairs:
            if i not in matched and track.track_id not in used:
                matched[i] = track
                used.add(track.track_id)
        return matched

    def _assign_tracks(self, boxes: Sequence[FaceBox]) -> list[_Track]:
        matched = self._match(boxes)
        tracks, seen = [], set()
        for i, box in enumerate(boxes):
            track = matched.get(i)
            if track is None:
                track = _Track(self._next_id, box, collections.deque(maxlen=self._history))
                self._next_id += 1
                self._tracks.append(track)
            track.box, track.missed = box, 0
            tracks.append(track)
            seen.add(track.track_id)
        for track in self._tracks:
            if track.track_id not in seen:
                track.missed += 1
        self._tracks = [t for t in self._tracks if t.missed <= self.max_missed]
        return tracks

    def assign(self, boxes: Sequence[FaceBox]) -> list[int]:
        """One frame's boxes in; the track id of each box, in order, out."""
        return [track.track_id for track in self._assign_tracks(boxes)]

    @property
    def active(self) -> int:
        """Tracks currently followed (seen within the last ``max_missed`` frames)."""
        return len(self._tracks)


class MultiFaceTracker(IdentityTracker):
    """An :class:`IdentityTracker` that also aggregates each face's last ``window`` predictions
    (``method``: as for videos), so a live label does not jitter from frame to frame."""

    def __init__(self, window: int = DEFAULT_WINDOW, *, method: aggregation.Method = "sum",
                 min_iou: float = 0.3, max_distance: float = 0.5, max_missed: int = 5) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigError(f"window must be an integer >= 1, got {window!r}")
        if method not in aggregation.METHODS:
            raise ConfigError(f"unknown aggregation method {method!r}; "
                              f"choose from {list(aggregation.METHODS)}")
        super().__init__(min_iou=min_iou, max_distance=max_distance, max_missed=max_missed,
                         history=window)
        self.window = window
        self.method = method

    def update(self, boxes: Sequence[FaceBox], probs: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Add one frame's boxes and their probabilities (N, classes); return, for each box in
        order, its track id and its scores aggregated over the track's last ``window`` frames."""
        if len(boxes) != len(probs):
            raise ValueError(f"{len(boxes)} boxes but {len(probs)} rows of probabilities")
        results = []
        for track, row in zip(self._assign_tracks(boxes), probs, strict=True):
            track.history.append(np.asarray(row, dtype=np.float64))
            decision = aggregation.aggregate(np.stack(track.history), self.method)
            results.append((track.track_id, decision.scores))
        return results
