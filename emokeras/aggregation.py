"""Turn per-frame class probabilities into one label for a video (pure NumPy).

- ``sum``: the class with the highest summed probability.
- ``vote``: the class most frames pick; a tie goes to the tied class with the highest summed
  probability, and a tie that remains to the lowest class index.
- ``mean_logits``: the class with the highest mean log-probability (the geometric mean of the
  frames' probabilities): a class that any frame all but rules out is heavily penalised, where
  ``sum`` would let the other frames carry it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Method = Literal["sum", "vote", "mean_logits"]
METHODS: tuple[str, ...] = ("sum", "vote", "mean_logits")

# Probabilities of exactly 0 would make log(p) -inf; this floor keeps mean_logits finite.
_EPS = 1e-12


@dataclass(frozen=True, eq=False)
class Aggregate:
    """A video-level decision: the class index, per-class scores (summing to 1), confidence."""

    label_index: int
    scores: np.ndarray
    confidence: float
    method: str


def _check(frame_probs) -> np.ndarray:
    probs = np.asarray(frame_probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] == 0 or probs.shape[1] < 2:
        raise ValueError(
            f"frame probabilities must be (frames >= 1, classes >= 2), got shape {probs.shape}"
        )
    if not np.all(np.isfinite(probs)) or np.any(probs < 0):
        raise ValueError("frame probabilities must be finite and non-negative")
    return probs


def aggregate(frame_probs, method: Method = "sum") -> Aggregate:
    """One label from per-frame probabilities of shape (frames, classes)."""
    probs = _check(frame_probs)
    summed = probs.sum(axis=0)
    if method == "sum":
        scores = summed / summed.sum()
        label = int(np.argmax(scores))  # argmax takes the lowest index among equal maxima
    elif method == "vote":
        votes = np.bincount(probs.argmax(axis=1), minlength=probs.shape[1])
        tied = votes == votes.max()
        # among the tied classes, the highest summed probability; argmax breaks what remains
        label = int(np.argmax(np.where(tied, summed, -np.inf)))
        scores = votes / votes.sum()
    elif method == "mean_logits":
        mean_log = np.log(np.maximum(probs, _EPS)).mean(axis=0)
        exp = np.exp(mean_log - mean_log.max())
        scores = exp / exp.sum()
        label = int(np.argmax(scores))
    else:
        raise ValueError(f"unknown aggregation method {method!r}; choose from {list(METHODS)}")
    return Aggregate(label, scores, float(scores[label]), method)


def smooth(frame_probs, window: int) -> np.ndarray:
    """Trailing rolling mean over ``window`` frames (fewer at the start), for timelines.

    Trailing rather than centred, so the same smoothing works live, frame by frame.
    """
    probs = _check(frame_probs)
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    cumulative = np.cumsum(np.vstack([np.zeros((1, probs.shape[1])), probs]), axis=0)
    ends = np.arange(1, len(probs) + 1)
    starts = np.maximum(0, ends - window)
    return (cumulative[ends] - cumulative[starts]) / (ends - starts)[:, np.newaxis]
