"""Sex of a face, and of the person in a video (the majority over its frames).

The offline default is dlib-models' gender network (Cydral Technology, dedicated to the public
domain under CC0 1.0; see ``assets/sex/NOTICE.md``), shipped here as ONNX (530 KB) and run with
onnxruntime: no download. It takes a 32x32 RGB face chip. On this package's Haar crops, without
landmark alignment, it was right on every labelled fixture photo the detector finds and on every
sampled frame of the five labelled fixture videos (see benchmarks/README.md).

``DeepfaceSexClassifier`` is an optional backend on deepface's gender model (the ``deepface``
extra); it runs deepface in a worker process of its own (see the class).
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import os
import pickle
import subprocess
import sys
import threading
import weakref
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from emokeras.errors import EmokerasError
from emokeras.labels import SEXES  # the output order of every sex classifier here

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


#: deepface's gender weights for its TensorFlow backend, where deepface reads them
#: (``$DEEPFACE_HOME/.deepface/weights/``) and where it downloads them from when they are missing.
DEEPFACE_WEIGHTS_FILE = "gender_model_weights.h5"
DEEPFACE_WEIGHTS_URL = (
    "https://github.com/serengil/deepface_models/releases/download/v1.0/gender_model_weights.h5"
)
_DEEPFACE_INSTALL = 'pip install "emokeras[deepface]"'


def deepface_weights_path() -> Path:
    """Where deepface looks for its gender weights: ``$DEEPFACE_HOME`` (default ``~``) /
    ``.deepface/weights/gender_model_weights.h5``, as deepface's ``get_deepface_home`` reads it.

    Computed here, not asked of deepface: importing deepface has side effects (see
    :class:`DeepfaceSexClassifier`).
    """
    home = os.getenv("DEEPFACE_HOME", default=os.path.expanduser("~"))
    return Path(home) / ".deepface" / "weights" / DEEPFACE_WEIGHTS_FILE


class DeepfaceSexClassifier:
    """Sex from deepface's gender model (VGG-Face with a two-class head), an optional backend.

    Each crop goes through the real ``DeepFace.analyze(img_path=<BGR crop>, actions=["gender"],
    detector_backend="skip", enforce_detection=False, silent=True)`` ("skip": the crops are
    already faces) and ``result[0]["gender"]``'s percentages, ``{"Woman": .., "Man": ..}``, come
    back as probabilities in ``SEXES`` order. Use it wherever a :class:`SexClassifier` goes, e.g.
    ``predict_video(path, model, sex="detect", sex_classifier=DeepfaceSexClassifier())``.

    It needs the ``deepface`` extra (``pip install "emokeras[deepface]"``) and deepface's weights
    at :func:`deepface_weights_path` (537 MB): when they are missing it raises ``EmokerasError``
    rather than let deepface try a download, unless ``allow_download=True`` (online use).

    deepface runs in a worker process of its own, started here and stopped by :meth:`close` (or
    ``with``, or when the classifier is garbage-collected). Running it in this process was tried
    and leaks into emokeras' Keras 3 in ways that restoring ``TF_USE_LEGACY_KERAS`` after
    importing deepface (which sets it to "1") cannot undo, with TensorFlow 2.21 / Keras 3.15 /
    deepface 0.0.103:

    * TensorFlow reads that variable once, when it is first imported, to choose where
      ``import tensorflow.keras...`` statements resolve (it puts tf_keras' or Keras 3's folder
      first on ``tensorflow.__path__``), and again at the first access to the lazy ``tf.keras``
      attribute. So the outcome depends on import order. If Keras 3 (hence TensorFlow) was
      imported first, as in any process that has built an emokeras model, deepface's
      ``from tensorflow.keras.models import Model`` gets Keras 3 and its model is silently built
      on Keras 3, not on the tf_keras deepface requires. If deepface came first, every later
      ``from tensorflow.keras import ...`` in the process gets tf_keras while ``tf.keras`` may be
      Keras 3.
    * Importing deepface also calls ``warnings.filterwarnings("ignore")`` (every warning of the
      process silenced), sets ``TF_CPP_MIN_LOG_LEVEL=3`` and TensorFlow's logger to ERROR, and
      creates ``$DEEPFACE_HOME/.deepface/weights``.

    The worker starts with ``TF_USE_LEGACY_KERAS=1`` and ``DEEPFACE_BACKEND_ENGINE=tensorflow``
    in its environment, as deepface wants, and this process never imports deepface or tf_keras.
    The price: starting the worker (importing TensorFlow and loading the model) takes seconds,
    and the crops are sent to it through a pipe.
    """

    def __init__(self, *, allow_download: bool = False) -> None:
        for module in ("deepface", "tf_keras"):
            # find_spec does not import: importing deepface here is what the worker avoids
            if importlib.util.find_spec(module) is None:
                raise EmokerasError(
                    f"the deepface sex classifier needs {module}, which is not installed: "
                    f"{_DEEPFACE_INSTALL}"
                )
        weights = deepface_weights_path()
        if not allow_download and not weights.is_file():
            raise EmokerasError(
                f"deepface's gender weights are missing: expected {str(weights)!r} "
                "($DEEPFACE_HOME/.deepface/weights/, DEEPFACE_HOME defaulting to your home "
                f"folder). Download {DEEPFACE_WEIGHTS_URL} there, or pass allow_download=True to "
                "let deepface download it (needs internet access)"
            )
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1", DEEPFACE_BACKEND_ENGINE="tensorflow")
        source = inspect.getsource(_deepface_worker) + "\n_deepface_worker()\n"
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = subprocess.Popen(
            [sys.executable, "-c", source], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        self._finalizer = weakref.finalize(self, _stop_worker, self._process)
        try:
            status, detail = self._receive()
        except EmokerasError:
            self.close()
            raise
        if status != "ready":
            self.close()
            raise EmokerasError(f"deepface could not load its gender model: {detail}")

    def predict(self, crops: list[np.ndarray]) -> np.ndarray:
        if not crops:
            return np.empty((0, 2), np.float32)
        images = []
        for crop in crops:
            crop = np.asarray(crop)
            if crop.ndim == 2:
                crop = np.repeat(crop[..., np.newaxis], 3, axis=-1)
            images.append(np.ascontiguousarray(crop[..., ::-1]))  # deepface takes BGR
        with self._lock:
            if self._process is None:
                raise EmokerasError("this DeepfaceSexClassifier is closed")
            try:
                pickle.dump(images, self._process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                self._process.stdin.flush()
            except (OSError, ValueError) as error:
                raise EmokerasError(self._died()) from error
            status, detail = self._receive()
        if status != "ok":
            raise EmokerasError(f"deepface failed on {len(images)} crops: {detail}")
        return detail

    def close(self) -> None:
        """Stop the worker process (idempotent)."""
        with self._lock:
            self._finalizer()
            self._process = None

    def __enter__(self) -> DeepfaceSexClassifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _receive(self) -> tuple[str, object]:
        try:
            return pickle.load(self._process.stdout)
        except (EOFError, pickle.UnpicklingError, OSError, ValueError) as error:
            raise EmokerasError(self._died()) from error

    def _died(self) -> str:
        _stop_worker(self._process)
        code = self._process.returncode
        return f"the deepface worker process exited (code {code}); its error output is above"


def _stop_worker(process: subprocess.Popen) -> None:
    """Close the worker's stdin (it exits at end of input) and reap it."""
    for stream in (process.stdin, process.stdout):
        try:
            stream.close()
        except OSError:
            pass
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _deepface_worker() -> None:  # pragma: no cover - runs in the worker process
    """The worker's main loop; its source is run by ``python -c`` (see DeepfaceSexClassifier).

    Self-contained: it imports nothing from emokeras. It reads lists of BGR crops pickled on stdin
    and answers ``("ok", probabilities)`` or ``("error", message)`` on the original stdout, after
    a first ``("ready", None)`` or ``("error", message)`` once the model is loaded.
    """
    import os
    import pickle
    import sys
    import traceback

    requests = sys.stdin.buffer
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # deepface and TensorFlow print: keep that off the reply pipe, on stderr
    sys.stdout = sys.stderr

    def reply(status, detail):
        pickle.dump((status, detail), replies, protocol=pickle.HIGHEST_PROTOCOL)
        replies.flush()

    def describe(error):
        text = "".join(traceback.format_exception_only(type(error), error)).strip()
        if error.__cause__ is not None:
            text += " (caused by " + describe(error.__cause__) + ")"
        return text

    try:
        import numpy as np
        from deepface import DeepFace

        def predict(images):
            rows = []
            for image in images:
                result = DeepFace.analyze(img_path=image, actions=["gender"],
                                          detector_backend="skip", enforce_detection=False,
                                          silent=True)
                gender = result[0]["gender"]
                rows.append([gender["Woman"] / 100.0, gender["Man"] / 100.0])
            return np.asarray(rows, np.float32).reshape(-1, 2)

        predict([np.full((224, 224, 3), 128, np.uint8)])  # loads the model: fail now, not later
    except Exception as error:
        reply("error", describe(error))
        return
    reply("ready", None)
    while True:
        try:
            images = pickle.load(requests)
        except EOFError:
            return
        try:
            reply("ok", predict(images))
        except Exception as error:
            reply("error", describe(error))
