"""Sex of a face, and of the person in a video (the majority over its frames).

The offline default is dlib-models' gender network (Cydral Technology, dedicated to the public
domain under CC0 1.0; see ``assets/sex/NOTICE.md``), shipped here as ONNX (530 KB) and run with
onnxruntime: no download. It takes a 32x32 RGB face chip. On this package's Haar crops, without
landmark alignment, it was right on every labelled fixture photo the detector finds and on every
sampled frame of the five labelled fixture videos (see benchmarks/README.md).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from emokeras.errors import EmokerasError

#: Output order of every sex classifier here.
SEXES: tuple[str, str] = ("female", "male")

ONNX_MODEL = Path(__file__).parent / "assets" / "sex" / "gender-v1.onnx"
#: The network's input: RGB bytes minus these channel means, divided by 256 (dlib's recipe).
_CHIP = 32
_MEANS = np.array([122.781998, 117.000999, 104.297997], np.float32)


class SexClassifier(Protocol):
    """Probabilities (N, 2) over ``SEXES`` for RGB uint8 face crops of any size."""

    def predict(self, crops: list[np.ndarray]) -> np.ndarray: ...


class OnnxSexClassifier:
    """The offline default (see the module docstring)."""

    def __init__(self, model_path: str | Path = ONNX_MODEL) -> None:
        try:
            import onnxruntime
        except ImportError as error:  # pragma: no cover - onnxruntime is a dependency
            raise EmokerasError("the offline sex classifier needs onnxruntime") from error
        if not Path(model_path).is_file():
            raise EmokerasError(f"sex model {str(model_path)!r} is missing")
        self._session = onnxruntime.InferenceSession(
            str(model_path), providers=["CPUExecutionProvider"]
        )

    def predict(self, crops: list[np.ndarray]) -> np.ndarray:
        if not crops:
            return np.empty((0, 2), np.float32)
        chips = []
        for crop in crops:
            if crop.ndim == 2:
                crop = np.repeat(crop[..., np.newaxis], 3, axis=-1)
            chip = cv2.resize(crop, (_CHIP, _CHIP), interpolation=cv2.INTER_AREA)
            chips.append((chip.astype(np.float32) - _MEANS) / 256.0)
        batch = np.stack(chips).transpose(0, 3, 1, 2)  # NHWC -> NCHW
        return self._session.run(None, {"images": batch})[0]


@functools.cache
def default_sex_classifier() -> OnnxSexClassifier:
    return OnnxSexClassifier()


def majority_sex(probabilities: np.ndarray) -> str:
    """The sex most frames show; a tie goes to the higher summed probability."""
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 2 or probabilities.shape[1] != 2 or len(probabilities) == 0:
        raise ValueError(f"need per-frame sex probabilities (frames, 2), got {probabilities.shape}")
    votes = np.bincount(probabilities.argmax(axis=1), minlength=2)
    if votes[0] == votes[1]:
        return SEXES[int(np.argmax(probabilities.sum(axis=0)))]
    return SEXES[int(np.argmax(votes))]
