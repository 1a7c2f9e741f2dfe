"""The web app: upload a video or an image (or take a webcam snapshot) and see its emotions.

    emokeras app [--host 127.0.0.1] [--port 7860] [--max-upload-mb 50]

It shows the image (for a video, its most telling frame) with every face boxed and labelled, the
label with its emoji and confidence, per-class probability bars, and for a video the emotion
timeline and the video-level label. Needs the ``app`` extra (``pip install emokeras[app]``, which
brings Gradio); importing this module does not import Gradio, ``build_app`` does.

The analysis functions (``analyse_file``, ``analyse_image``) are plain Python and return an
:class:`Analysis`, so they are tested and usable without a browser.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emokeras.aggregation import METHODS
from emokeras.datasets.base import IMAGE_EXTENSIONS
from emokeras.errors import EmokerasError, NoFaceFoundError
from emokeras.live import DEFAULT_THRESHOLD, Annotator, label_face

log = logging.getLogger(__name__)

#: The model choice that means the model shipped inside the package.
BUNDLED = "bundled model"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_MAX_UPLOAD_MB = 50.0
#: Frames per second sampled from uploaded videos (as ``emokeras predict``'s default).
VIDEO_FPS = 10.0


def _video_extensions() -> tuple[str, ...]:
    from emokeras.prepare import VIDEO_EXTENSIONS

    return tuple(VIDEO_EXTENSIONS)


@dataclass
class Analysis:
    """What the app shows for one upload. ``ok`` is False when ``status`` is an error message."""

    ok: bool
    status: str
    label: str = ""
    image: np.ndarray | None = None
    scores: dict[str, float] = field(default_factory=dict)
    timeline: str | None = None
    kind: str = ""


def _error(message: str) -> Analysis:
    return Analysis(ok=False, status=f"**Error:** {message}")


def _caption(label: str, emoji: str, confidence: float, threshold: float) -> str:
    if confidence < threshold:
        return f"uncertain (best guess {label} {emoji} {confidence:.0%})"
    return f"{label} {emoji} {confidence:.0%}"


# ------------------------------------------------------------------------------------------ models


def list_models(models_dir: str | os.PathLike[str] | None = "saved_models") -> list[str]:
    """The model choices: the bundled model, then run folders found under ``models_dir``."""
    choices = [BUNDLED]
    root = Path(models_dir) if models_dir else None
    if root is None or not root.is_dir():
        return choices
    from emokeras.inference import ROUTING_FILE

    routed = {path.parent for path in root.glob(f"**/{ROUTING_FILE}")}
    plain = {path.parent for path in root.glob("**/labels.json")
             if (path.parent / "model.keras").is_file()}
    # the halves of a by-sex run are offered as the whole, routed run only
    found = routed | {run for run in plain if not routed.intersection(run.parents)}
    return choices + sorted(str(run) for run in found)


class ModelCache:
    """Models loaded once per choice (a run folder path, or :data:`BUNDLED`)."""

    def __init__(self, default=None) -> None:
        self._default = default
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, choice: str | None):
        from emokeras.inference import resolve_model

        key = (choice or BUNDLED).strip()
        with self._lock:
            if key not in self._models:
                if key == BUNDLED:
                    self._models[key] = resolve_model(self._default)
                else:
                    if not Path(key).is_dir():
                        raise EmokerasError(f"model {key!r} is not a run folder")
                    self._models[key] = resolve_model(key)
            return self._models[key]


# ---------------------------------------------------------------------------------------- analysis


def analyse_image(rgb: np.ndarray, model, *, threshold: float = DEFAULT_THRESHOLD,
                  annotator: Annotator | None = None, name: str = "the image") -> Analysis:
    """Every face of an RGB image: boxed and labelled image, captions, the largest face's scores."""
    from emokeras.inference import predict_image

    rgb = np.asarray(rgb)
    if rgb.ndim == 3 and rgb.shape[2] == 4:
        rgb = rgb[..., :3]
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        return _error(f"{name} is not an RGB image")
    try:
        faces = predict_image(np.ascontiguousarray(rgb), model, which="all")
    except NoFaceFoundError:
        return Analysis(ok=False, status=f"No face found in {name}.", image=rgb, kind="image")
    labels = [label_face(f.box, f.scores, model.label_set, threshold) for f in faces]
    image = (annotator or Annotator()).draw(rgb, labels)
    captions = [_caption(f.label, f.emoji, f.confidence, threshold) for f in faces]
    if len(captions) == 1:
        label = captions[0]
    else:
        label = "\n".join(f"- face {i}: {c}" for i, c in enumerate(captions, 1))
    scores = dict(zip(faces[0].class_names, map(float, faces[0].scores), strict=True))
    noun = "face" if len(faces) == 1 else "faces"
    return Analysis(ok=True, status=f"{len(faces)} {noun} found in {name}.", label=label,
                    image=image, scores=scores, kind="image")


def _key_frame(path: Path, prediction) -> np.ndarray | None:
    """The sampled frame whose probability of the video's label is highest."""
    from emokeras.video import iter_frames

    row = int(np.argmax(prediction.frame_probs[:, prediction.label_index]))
    frames = iter_frames(path, start=float(prediction.timestamps[row]), max_frames=1)
    try:
        return next(frames).image
    except StopIteration:
        return None
    finally:
        frames.close()


def analyse_video(path: str | os.PathLike[str], model, *, aggregate: str = "sum",
                  threshold: float = DEFAULT_THRESHOLD, workdir: str | os.PathLike[str],
                  annotator: Annotator | None = None) -> Analysis:
    """One label for a video, its timeline plot, and its most telling frame with the faces."""
    from emokeras.inference import predict_video
    from emokeras.plots import plot_timeline

    path = Path(path)
    try:
        prediction = predict_video(path, model, aggregate=aggregate, target_fps=VIDEO_FPS)
    except NoFaceFoundError:
        return Analysis(ok=False, status=f"No face found in any sampled frame of {path.name}.",
                        kind="video")
    fd, timeline = tempfile.mkstemp(prefix=f"{path.stem}_timeline_", suffix=".png", dir=workdir)
    os.close(fd)
    plot_timeline(prediction, timeline)
    label = (f"{_caption(prediction.label, prediction.emoji, prediction.confidence, threshold)}"
             f" — video label ({aggregate} over {prediction.num_frames} frames with a face)")
    image = None
    frame = _key_frame(path, prediction)
    if frame is not None:
        shown = analyse_image(frame, model, threshold=threshold, annotator=annotator)
        image = shown.image
    scores = dict(zip(prediction.class_names, map(float, prediction.scores), strict=True))
    status = (f"{path.name}: {prediction.num_frames} of {prediction.frames_read} sampled frames "
              f"had a face.")
    return Analysis(ok=True, status=status, label=label, image=image, scores=scores,
                    timeline=timeline, kind="video")


def analyse_file(path: str | os.PathLike[str] | None, model, *, aggregate: str = "sum",
                 threshold: float = DEFAULT_THRESHOLD,
                 max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
                 workdir: str | os.PathLike[str] | None = None,
                 annotator: Annotator | None = None) -> Analysis:
    """An uploaded image or video. Never raises on bad input: a too large, unknown or unreadable
    file gives an :class:`Analysis` with ``ok=False`` and a message saying why."""
    if not path:
        return _error("no file was uploaded.")
    path = Path(path)
    if aggregate not in METHODS:
        return _error(f"unknown aggregation method {aggregate!r}; choose from {list(METHODS)}.")
    try:
        size_mb = path.stat().st_size / 1e6
    except OSError as error:
        return _error(f"cannot read the upload {path.name}: {error.strerror or error}.")
    if size_mb > max_upload_mb:
        return _error(f"{path.name} is {size_mb:.1f} MB, over the {max_upload_mb:g} MB limit.")
    suffix = path.suffix.lower()
    videos = _video_extensions()
    try:
        if suffix in IMAGE_EXTENSIONS:
            from emokeras.images import load_image

            return analyse_image(load_image(path), model, threshold=threshold,
                                 annotator=annotator, name=path.name)
        if suffix in videos:
            return analyse_video(path, model, aggregate=aggregate, threshold=threshold,
                                 workdir=workdir or tempfile.gettempdir(), annotator=annotator)
    except EmokerasError as error:
        return _error(str(error).replace(str(path), path.name))
    kinds = ", ".join([*IMAGE_EXTENSIONS, *videos])
    return _error(f"cannot read {path.name}: not an image or a video this app reads "
                  f"({kinds}).")


# -------------------------------------------------------------------------------------- the app


def _theme():
    """Gradio's default theme with system fonts: the default fetches Google Fonts, which an
    offline machine cannot reach."""
    import gradio as gr

    system = ["ui-sans-serif", "system-ui", "sans-serif"]
    mono = ["ui-monospace", "monospace"]
    return gr.themes.Default(font=system, font_mono=mono)


def build_app(*, models_dir: str | os.PathLike[str] | None = "saved_models", model=None,
              max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, threshold: float = DEFAULT_THRESHOLD):
    """The Gradio app (a ``gr.Blocks``); serve it with :func:`launch_app`.

    ``model`` is what "bundled model" loads (None: the model shipped in the package; tests pass
    a run folder or an EmotionModel); ``models_dir`` is searched for run folders to offer.
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home
    import gradio as gr

    models = ModelCache(model)
    annotator = Annotator()
    workdir = tempfile.TemporaryDirectory(prefix="emokeras-app-")

    def show(result: Analysis):
        bars = gr.Label(value=result.scores or None)
        return (result.status, result.label, result.image, bars, result.timeline)

    def run(analyse, choice):
        started = time.perf_counter()
        try:
            emotion = models.get(choice)
        except (EmokerasError, OSError, ValueError) as error:
            return show(_error(f"cannot load model {choice!r}: {error}"))
        try:
            result = analyse(emotion)
        except Exception as error:  # noqa: BLE001 - the page shows one line, never a traceback
            log.exception("analysis failed")
            result = _error(f"the analysis failed: {type(error).__name__}: {error}")
        if result.ok:
            result.status += f" ({time.perf_counter() - started:.1f} s)"
        return show(result)

    def on_file(path, choice, aggregate, limit):
        return run(lambda m: analyse_file(path, m, aggregate=aggregate, threshold=limit,
                                          max_upload_mb=max_upload_mb, workdir=workdir.name,
                                          annotator=annotator), choice)

    def on_snapshot(image, choice, limit):
        if image is None:
            return show(_error("take a snapshot first."))
        return run(lambda m: analyse_image(image, m, threshold=limit, annotator=annotator,
                                           name="the snapshot"), choice)

    with gr.Blocks(title="emokeras", analytics_enabled=False) as app:
        gr.Markdown("# emokeras\nEmotions in the faces of a video or an image. Upload a file "
                    f"(at most {max_upload_mb:g} MB) or take a webcam snapshot.")
        with gr.Row():
            with gr.Column(scale=1):
                with gr.Tab("Upload"):
                    upload = gr.File(label="Video or image", elem_id="upload")
                    again = gr.Button("Analyse again", variant="secondary")
                with gr.Tab("Webcam"):
                    webcam = gr.Image(sources=["webcam"], type="numpy", label="Snapshot",
                                      elem_id="webcam")
                    snap = gr.Button("Analyse snapshot", variant="primary")
                choice = gr.Dropdown(list_models(models_dir), value=BUNDLED, label="Model",
                                     allow_custom_value=True, elem_id="model",
                                     info="the bundled model, a run folder found under "
                                          f"{models_dir}, or a run folder's path")
                aggregate = gr.Radio(list(METHODS), value="sum", label="Aggregation (videos)",
                                     elem_id="aggregate")
                limit = gr.Slider(0.0, 1.0, value=threshold, step=0.05, elem_id="threshold",
                                  label="Confidence threshold (below it: uncertain)")
            with gr.Column(scale=2):
                status = gr.Markdown(elem_id="status")
                label = gr.Markdown(elem_id="label")
                image = gr.Image(label="Faces", interactive=False, elem_id="faces")
                bars = gr.Label(label="Class probabilities", elem_id="scores")
                timeline = gr.Image(label="Emotion timeline (videos)", type="filepath",
                                    interactive=False, elem_id="timeline")
        outputs = [status, label, image, bars, timeline]
        upload.upload(on_file, [upload, choice, aggregate, limit], outputs)
        again.click(on_file, [upload, choice, aggregate, limit], outputs)
        snap.click(on_snapshot, [webcam, choice, limit], outputs)
    app.emokeras_workdir = workdir  # lives as long as the app
    app.emokeras_max_upload_mb = max_upload_mb
    return app


def launch_app(app, *, host: str = DEFAULT_HOST, port: int | None = DEFAULT_PORT,
               max_upload_mb: float | None = None, block: bool = True, quiet: bool = False):
    """Serve ``app`` on ``host:port`` (127.0.0.1 by default: this machine only). With
    ``block=False`` it returns at once, serving from a background thread (``app.close()``)."""
    import gradio as gr

    limit = max_upload_mb if max_upload_mb is not None else getattr(
        app, "emokeras_max_upload_mb", DEFAULT_MAX_UPLOAD_MB)
    return app.launch(server_name=host, server_port=port, max_file_size=int(limit * gr.FileSize.MB),
                      prevent_thread_lock=not block, ssr_mode=False, show_error=False,
                      quiet=quiet, theme=_theme(), footer_links=[])
