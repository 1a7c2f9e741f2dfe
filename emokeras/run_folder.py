"""The run folder, emokeras' central artifact: its file names, what kind of model it holds, and
the one reader and writer of each of its files.

    <run>/
      model.keras       the model (raw pixels in, probabilities out; loads in Keras' safe mode)
      labels.json       {"label_set", "classes", "emotions"}: which class each output is
      config.json       how it was made (a TrainConfig, or {"ensemble": ...})
      metrics.json      validation (and test) scores, once training has finished
      history.csv       one row per epoch
      spectrogram.json  an audio model's SpectrogramConfig (its input images are computed so)
      routing.json      a sex-routed model: {sex: "<sex>/model.keras"}, each a run folder inside
      framing.json      optional {"margin", "shift_y"}: how to cut a detected face for the model
                        (without it, DEFAULT_FRAMING: margin 0.2, no shift)

Kinds, from the files present: ``routed`` (routing.json), ``audio`` (spectrogram.json),
``ensemble`` (config.json with an "ensemble" entry), else ``plain``. Training (``emokeras.runs``),
inference (``emokeras.model``), export, evaluation and the app read and write run folders only
through this module. Keras is imported only when a model is loaded or saved.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from emokeras.errors import ConfigError, ModelLoadError, RunFolderError
from emokeras.fileio import atomic_path, write_json_atomic
from emokeras.labels import SEXES, LabelSet, UnknownLabelError, get_label_set

log = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
LABELS_FILE = "labels.json"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
STATE_FILE = "state.json"
#: The file that makes a run folder an audio model: the SpectrogramConfig it was trained on.
SPECTROGRAM_FILE = "spectrogram.json"
#: The file that makes a run folder a sex-routed model (written by ``train.py --by-sex``).
ROUTING_FILE = "routing.json"
#: How to frame a detected face for this model (:class:`CropFraming`); optional.
FRAMING_FILE = "framing.json"

RunKind = Literal["plain", "routed", "audio", "ensemble"]
KINDS: tuple[str, ...] = ("plain", "routed", "audio", "ensemble")

#: Compute dtypes of mixed precision, which saved models do not keep
HALF_DTYPES = ("bfloat16", "float16")


# --------------------------------------------------------------------------- the folder


def detect_kind(path: str | os.PathLike[str]) -> RunKind | None:
    """The kind of run folder ``path`` is, from its files; None when it holds no model."""
    folder = Path(path)
    if (folder / ROUTING_FILE).is_file():
        return "routed"
    if not ((folder / MODEL_FILE).is_file() and (folder / LABELS_FILE).is_file()):
        return None
    if (folder / SPECTROGRAM_FILE).is_file():
        return "audio"
    if "ensemble" in (read_config(folder) or {}):
        return "ensemble"
    return "plain"


@dataclass(frozen=True)
class RunFolder:
    """A run folder that holds a model, and its kind (see the module's docstring)."""

    path: Path
    kind: RunKind

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> RunFolder:
        """The run folder at ``path``; ``RunFolderError`` naming the missing file if it holds
        no model (no routing.json, and no model.keras with labels.json)."""
        folder = Path(path)
        if not folder.is_dir():
            raise RunFolderError(f"run folder {str(folder)!r} does not exist")
        kind = detect_kind(folder)
        if kind is None:
            missing = next(name for name in (MODEL_FILE, LABELS_FILE)
                           if not (folder / name).is_file())
            raise RunFolderError(f"run folder {str(folder)!r} has no {missing}")
        return cls(folder, kind)

    @property
    def model_file(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def labels_file(self) -> Path:
        return self.path / LABELS_FILE

    def read_labels(self) -> LabelSet:
        """The label set of a plain, audio or ensemble folder; a routed one's members' (one)."""
        if self.kind == "routed":
            sets = {read_labels(member) for member in self.members().values()}
            if len(sets) != 1:
                raise ModelLoadError(self.path / ROUTING_FILE,
                                     "its models predict different label sets")
            return sets.pop()
        return read_labels(self.path)

    def members(self) -> dict[str, Path]:
        """A routed folder's run folders by sex (empty for any other kind)."""
        return read_routing(self.path) if self.kind == "routed" else {}

    def read_config(self) -> dict[str, Any] | None:
        return read_config(self.path)


def find_runs(root: str | os.PathLike[str] | None) -> list[RunFolder]:
    """Every run folder below ``root`` (itself included), sorted by path; the models of a routed
    folder are not listed separately (they are parts of it). A missing root has none."""
    if root is None or not Path(root).is_dir():
        return []
    root = Path(root)
    candidates = {root} | {p.parent for name in (ROUTING_FILE, LABELS_FILE)
                           for p in root.glob(f"**/{name}")}
    runs = [RunFolder(path, kind) for path in sorted(candidates)
            if (kind := detect_kind(path)) is not None]
    routed = [run.path for run in runs if run.kind == "routed"]
    return [run for run in runs
            if not any(run.path != r and run.path.is_relative_to(r) for r in routed)]


# --------------------------------------------------------------------------- labels and routing


def write_labels(run_dir: str | os.PathLike[str], label_set: LabelSet) -> Path:
    """Write ``labels.json``: the label set's name, its classes in output order, and the
    canonical emotion of each."""
    path = Path(run_dir) / LABELS_FILE
    write_json_atomic(path, {"label_set": label_set.name, "classes": list(label_set.classes),
                             "emotions": list(label_set.canonical)})
    return path


def read_labels(run_dir: str | os.PathLike[str]) -> LabelSet:
    """The label set ``labels.json`` names; ``ModelLoadError`` if it is not JSON, not an object,
    names no known label set, or lists classes other than that set's."""
    path = Path(run_dir) / LABELS_FILE
    if not path.is_file():
        raise RunFolderError(f"run folder {str(Path(run_dir))!r} has no {LABELS_FILE}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelLoadError(path, f"not a JSON file ({error})") from None
    if not isinstance(data, dict) or not isinstance(data.get("label_set"), str):
        raise ModelLoadError(path, 'needs a JSON object with a "label_set" name, got '
                                   f"{json.dumps(data)[:80]}")
    try:
        label_set = get_label_set(data["label_set"])
    except UnknownLabelError as error:
        raise ModelLoadError(path, str(error)) from None
    classes = data.get("classes")
    if classes is not None and (not isinstance(classes, list)
                                or tuple(classes) != label_set.classes):
        raise ModelLoadError(path, f"its classes {classes!r} are not those of label set "
                                   f"{label_set.name!r} {list(label_set.classes)}")
    return label_set


def write_routing(run_dir: str | os.PathLike[str], sexes: Iterable[str] = SEXES) -> Path:
    """Write ``routing.json``: each sex's model at ``<sex>/model.keras``."""
    path = Path(run_dir) / ROUTING_FILE
    write_json_atomic(path, {sex: f"{sex}/{MODEL_FILE}" for sex in sexes})
    return path


def read_routing(run_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Each sex's run folder, from ``routing.json``. ``ModelLoadError`` for a file that is not a
    JSON object of relative paths, or an entry that points outside the run folder (absolute, or
    through ``..``): a run folder must be self-contained, and a downloaded one must not make us
    load files from elsewhere."""
    run_dir = Path(run_dir)
    path = run_dir / ROUTING_FILE
    try:
        routing = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelLoadError(path, f"not a JSON file ({error})") from None
    if not isinstance(routing, dict) or not routing or not all(
            isinstance(v, str) for v in routing.values()):
        raise ModelLoadError(path, 'needs a JSON object {sex: "<sex>/model.keras"}, got '
                                   f"{json.dumps(routing)[:80]}")
    folders = {}
    for sex, entry in routing.items():
        relative = Path(entry)
        if relative.is_absolute() or ".." in relative.parts or entry.startswith(("/", "\\")):
            raise ModelLoadError(path, f"the {sex!r} model {entry!r} is outside the run folder")
        folders[sex] = run_dir / relative.parent
    return folders


def read_config(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A run's config.json, or None where it has none or it is unreadable (it is a record, not
    needed to predict)."""
    try:
        data = json.loads((Path(run_dir) / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --------------------------------------------------------------------------- framing


@dataclass(frozen=True)
class CropFraming:
    """How a detected face is cut for a model (``emokeras.faces.crop_face``): ``margin`` (a
    fraction of the box) on each side, and the square's centre moved down by ``shift_y`` box
    heights (negative: up). A model should see faces framed as its training faces were."""

    margin: float = 0.2
    shift_y: float = 0.0

    def __post_init__(self) -> None:
        for name in ("margin", "shift_y"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"framing {name} must be a number, got {value!r}")
        if not 0 <= self.margin <= 2:
            raise ConfigError(f"framing margin must be in [0, 2], got {self.margin!r}")
        if not -1 <= self.shift_y <= 1:
            raise ConfigError(f"framing shift_y must be in [-1, 1], got {self.shift_y!r}")


#: The framing of a run folder without framing.json: what every model got before it had one.
DEFAULT_FRAMING = CropFraming()


def write_framing(run_dir: str | os.PathLike[str], framing: CropFraming) -> Path:
    """Write ``framing.json``: {"margin", "shift_y"}."""
    path = Path(run_dir) / FRAMING_FILE
    write_json_atomic(path, {"margin": framing.margin, "shift_y": framing.shift_y})
    return path


def read_framing(run_dir: str | os.PathLike[str]) -> CropFraming | None:
    """The framing ``framing.json`` gives, or None where the folder has none (the model then
    gets DEFAULT_FRAMING). ``ModelLoadError`` for a file that is not a JSON object of a margin
    and an optional shift_y in range: a wrong framing would quietly cost accuracy."""
    path = Path(run_dir) / FRAMING_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelLoadError(path, f"not a JSON file ({error})") from None
    if not isinstance(data, dict) or "margin" not in data or set(data) - {"margin", "shift_y"}:
        raise ModelLoadError(path, 'needs a JSON object {"margin": m, "shift_y": s}, got '
                                   f"{json.dumps(data)[:80]}")
    try:
        return CropFraming(data["margin"], data.get("shift_y", 0.0))
    except ConfigError as error:
        raise ModelLoadError(path, str(error)) from None


# --------------------------------------------------------------------------- the model file


def save_model_atomic(model, path: str | os.PathLike[str]):
    """Save for inference, atomically: a ``.keras`` beside ``path``, then a rename over it.

    The optimizer's state is left out (it would triple the file for AdamW): the model is rebuilt
    from its config, uncompiled (``clone_model`` would compile the copy), with the same weights.
    A mixed-precision model is saved computing in float32: most CPUs emulate bfloat16 slowly, and
    its weights are float32 anyway. The archive is deflated (Keras stores it uncompressed): a
    tenth smaller, for a tenth more load time (benchmarks/model_file.py). Returns the model as
    saved.
    """
    inference = model.__class__.from_config(_float32_config(model.get_config()))
    inference.set_weights(model.get_weights())
    with atomic_path(Path(path), keep_suffix=True) as partial:
        inference.save(partial)
        _deflate_zip(partial)
    return inference


def _deflate_zip(path: Path) -> None:
    """Rewrite the zip archive at ``path`` with every entry deflated (same names, same bytes)."""
    deflated = path.with_name(f"{path.stem}.deflating{path.suffix}")
    try:
        with zipfile.ZipFile(path) as source, zipfile.ZipFile(
            deflated, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9
        ) as target:
            for entry in source.infolist():
                with source.open(entry) as data, target.open(entry.filename, "w") as out:
                    shutil.copyfileobj(data, out, 1 << 20)
        os.replace(deflated, path)
    finally:
        deflated.unlink(missing_ok=True)


def _float32_config(node: Any) -> Any:
    """A model config with every mixed-precision dtype policy (and tensor dtype) made float32."""
    if isinstance(node, list):
        return [_float32_config(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _float32_config(value) for key, value in node.items()}
    inner = node.get("config")
    if node.get("class_name") == "DTypePolicy" and inner.get("name", "").startswith("mixed_"):
        return {**node, "config": {**inner, "name": "float32"}}
    if node.get("class_name") == "__keras_tensor__" and inner.get("dtype") in HALF_DTYPES:
        return {**node, "config": {**inner, "dtype": "float32"}}
    return node


def load_model_file(path: str | os.PathLike[str]):
    """A ``.keras`` file's model, uncompiled, in Keras' safe mode; ``ModelLoadError`` naming
    the file and why for an empty, truncated or garbage file, or a layer safe mode refuses."""
    import keras

    import emokeras.models  # noqa: F401  (registers the in-graph preprocessing layers)

    path = Path(path)
    if not path.is_file():
        raise RunFolderError(f"run folder {str(path.parent)!r} has no {path.name}")
    if path.stat().st_size == 0:
        raise ModelLoadError(path, "the file is empty")
    # Keras reports a file that is not a zip as "File not found" though it exists: say what
    # is wrong with it instead
    if not zipfile.is_zipfile(path):
        raise ModelLoadError(path, "not a .keras file (not a zip archive: truncated or garbage)")
    try:
        return keras.saving.load_model(path, compile=False)
    except (ValueError, TypeError, KeyError, OSError, EOFError, zipfile.BadZipFile) as error:
        reason = " ".join(str(error).split())[:300]
        if "lambda" in reason.lower() and "safe" in reason.lower():
            reason = f"it holds a Lambda layer, which safe mode refuses to load ({reason})"
        raise ModelLoadError(path, reason or type(error).__name__) from None


def load_run(run_dir: str | os.PathLike[str]) -> tuple[Any, LabelSet]:
    """The model of a (plain, audio or ensemble) run folder and its label set, checked against
    each other: ``ModelLoadError`` if labels.json has not one class per model output."""
    run_dir = Path(run_dir)
    for name in (MODEL_FILE, LABELS_FILE):
        if not (run_dir / name).is_file():
            raise RunFolderError(f"run folder {str(run_dir)!r} has no {name}")
    label_set = read_labels(run_dir)
    model = load_model_file(run_dir / MODEL_FILE)
    outputs = model.output_shape[-1] if isinstance(model.output_shape, tuple) else None
    if outputs != len(label_set):
        raise ModelLoadError(run_dir / LABELS_FILE,
                             f"label set {label_set.name!r} has {len(label_set)} classes but the "
                             f"model has {outputs} outputs")
    return model, label_set
