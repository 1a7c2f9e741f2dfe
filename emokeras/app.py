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
import signal
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emokeras.aggregation import METHODS
from emokeras.annotate import DEFAULT_THRESHOLD, Annotator, label_face
from emokeras.errors import EmokerasError, ModelNotOfferedError, NoFaceFoundError
from emokeras.media import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, media_kind

log = logging.getLogger(__name__)

#: The model choice that means the model shipped inside the package.
BUNDLED = "bundled model"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_MAX_UPLOAD_MB = 50.0
#: Frames per second sampled from uploaded videos (as ``emokeras predict``'s default).
VIDEO_FPS = 10.0


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
    #: pandas tables offered as CSV downloads: a row per face per frame, and a row per face
    #: (an image's faces; a video's face tracks)
    frames: Any = None
    faces: Any = None


def _error(message: str) -> Analysis:
    return Analysis(ok=False, status=f"**Error:** {message}")


def _caption(label: str, emoji: str, confidence: float, threshold: float) -> str:
    if confidence < threshold:
        return f"uncertain (best guess {label} {emoji} {confidence:.0%})"
    return f"{label} {emoji} {confidence:.0%}"


# ------------------------------------------------------------------------------------------ models


def list_models(models_dir: str | os.PathLike[str] | None = "saved_models") -> list[str]:
    """The model choices: the bundled model, then run folders found under ``models_dir``."""
    from emokeras.run_folder import find_runs

    # the halves of a by-sex run are offered as the whole, routed run only (find_runs does so)
    return [BUNDLED, *sorted(str(run.path) for run in find_runs(models_dir or None))]


class ModelCache:
    """The models of the picker, loaded on first use: :data:`BUNDLED` or a run folder offered
    under ``models_dir`` (see :func:`list_models`), and nothing else.

    A choice is resolved (symlinks, ``..``) and must then be one of the offered run folders and
    lie inside ``models_dir``: any other path, existing or not, raises the same
    ModelNotOfferedError, so the picker neither loads nor reveals the server's other files. At
    most ``max_models`` models stay loaded (least recently used dropped first), keyed by resolved
    path, so no spelling of a path costs a second copy.
    """

    def __init__(self, default=None, *, models_dir: str | os.PathLike[str] | None = None,
                 max_models: int = 3) -> None:
        if max_models < 1:
            raise ValueError(f"max_models must be >= 1, got {max_models!r}")
        self._default = default
        self._models_dir = models_dir
        self._max_models = max_models
        self._models: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def resolve(self, choice: str | None) -> str:
        """The cache key of ``choice``: :data:`BUNDLED` or an offered run folder's resolved path;
        ModelNotOfferedError for anything else."""
        key = (choice or BUNDLED).strip()
        if key == BUNDLED:
            return BUNDLED
        if not self._models_dir:
            raise ModelNotOfferedError(key)
        try:
            root = Path(self._models_dir).resolve()
            offered = {Path(path).resolve() for path in list_models(self._models_dir)[1:]}
            # a path as offered (relative to the working folder), or one relative to models_dir
            candidates = {Path(key).resolve(), (root / key).resolve()}
        except (OSError, RuntimeError, ValueError):  # symlink loops, NUL bytes, ...
            raise ModelNotOfferedError(key) from None
        for candidate in candidates:
            if candidate in offered and candidate.is_relative_to(root):
                return str(candidate)
        raise ModelNotOfferedError(key)

    def get(self, choice: str | None):
        from emokeras.model import resolve_model

        key = self.resolve(choice)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            model = resolve_model(self._default if key == BUNDLED else key)
            self._models[key] = model
            while len(self._models) > self._max_models:
                dropped, _ = self._models.popitem(last=False)
                log.info("model cache full: dropped %s", dropped)
            return model

    def __len__(self) -> int:
        return len(self._models)


# ---------------------------------------------------------------------------------------- analysis


def analyse_image(rgb: np.ndarray, model, *, threshold: float = DEFAULT_THRESHOLD,
                  annotator: Annotator | None = None, name: str = "the image",
                  detector=None) -> Analysis:
    """Every face of an RGB image: boxed and labelled image, captions, the largest face's scores."""
    from emokeras.inference import predict_image

    rgb = np.asarray(rgb)
    if rgb.ndim == 3 and rgb.shape[2] == 4:
        rgb = rgb[..., :3]
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        return _error(f"{name} is not an RGB image")
    try:
        faces = predict_image(np.ascontiguousarray(rgb), model, which="all", detector=detector)
    except NoFaceFoundError:
        return Analysis(ok=False, status=f"No face found in {name}.", image=rgb, kind="image")
    labels = [label_face(f.box, f.probabilities, model.label_set, threshold) for f in faces]
    image = (annotator or Annotator()).draw(rgb, labels)
    captions = [_caption(f.label, f.emoji, f.confidence, threshold) for f in faces]
    if len(captions) == 1:
        label = captions[0]
    else:
        label = "\n".join(f"- face {i}: {c}" for i, c in enumerate(captions, 1))
    scores = dict(faces[0].scores)
    noun = "face" if len(faces) == 1 else "faces"
    from emokeras.results import images_to_frame, summary

    frames, per_face = images_to_frame(faces), summary(faces)
    frames["file"] = per_face["file"] = name
    return Analysis(ok=True, status=f"{len(faces)} {noun} found in {name}.", label=label,
                    image=image, scores=scores, kind="image", frames=frames, faces=per_face)


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
                  annotator: Annotator | None = None, detector=None) -> Analysis:
    """One label for a video, its timeline plot, and its most telling frame with the faces."""
    from emokeras.inference import predict_video
    from emokeras.plots import plot_timeline

    path = Path(path)
    try:
        prediction = predict_video(path, model, aggregate=aggregate, target_fps=VIDEO_FPS,
                                   detector=detector)
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
        shown = analyse_image(frame, model, threshold=threshold, annotator=annotator,
                              detector=detector)
        image = shown.image
    scores = dict(prediction.scores)
    status = (f"{path.name}: {prediction.num_frames} of {prediction.frames_read} sampled frames "
              f"had a face.")
    return Analysis(ok=True, status=status, label=label, image=image, scores=scores,
                    timeline=timeline, kind="video", frames=prediction.to_frame(),
                    faces=prediction.summary())


def analyse_file(path: str | os.PathLike[str] | None, model, *, aggregate: str = "sum",
                 threshold: float = DEFAULT_THRESHOLD,
                 max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
                 workdir: str | os.PathLike[str] | None = None,
                 annotator: Annotator | None = None, detector=None) -> Analysis:
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
    kind = media_kind(path)
    try:
        if kind == "image":
            from emokeras.images import load_image

            return analyse_image(load_image(path), model, threshold=threshold,
                                 annotator=annotator, name=path.name, detector=detector)
        if kind == "video":
            return analyse_video(path, model, aggregate=aggregate, threshold=threshold,
                                 workdir=workdir or tempfile.gettempdir(), annotator=annotator,
                                 detector=detector)
    except EmokerasError as error:
        return _error(str(error).replace(str(path), path.name))
    kinds = ", ".join([*IMAGE_EXTENSIONS, *VIDEO_EXTENSIONS])
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
              max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, threshold: float = DEFAULT_THRESHOLD,
              detector: str = "yunet", detector_threshold: float | None = None):
    """The Gradio app (a ``gr.Blocks``); serve it with :func:`launch_app`.

    ``detector`` is the face detector the page starts with (a dropdown offers the others);
    ``detector_threshold`` applies to that one (the others keep their defaults).

    ``model`` is what "bundled model" loads (None: the model shipped in the package; tests pass
    a run folder or an EmotionModel); ``models_dir`` is searched for run folders to offer.
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home
    import gradio as gr

    models = ModelCache(model, models_dir=models_dir)
    annotator = Annotator()
    workdir = tempfile.TemporaryDirectory(prefix="emokeras-app-")

    def table_file(table, stem: str) -> str | None:
        """A table as a CSV file in the app's folder, for its download button."""
        if table is None:
            return None
        fd, path = tempfile.mkstemp(prefix=f"{stem}_", suffix=".csv", dir=workdir.name)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            table.to_csv(handle, index=False)
        return path

    def show(result: Analysis):
        bars = gr.Label(value=result.scores or None)
        # "Analyse again" (other settings, same file) only once a file has been analysed
        again_button = gr.Button(visible=result.ok or result.kind != "")
        return (result.status, result.label, result.image, bars, result.timeline,
                table_file(result.frames, "per_frame"), table_file(result.faces, "per_face"),
                again_button)

    def run(analyse, choice):
        started = time.perf_counter()
        try:
            emotion = models.get(choice)
        except ModelNotOfferedError as error:
            return show(_error(str(error)))
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

    def found_by(name):
        from emokeras.faces import get_detector

        name = name or detector
        return get_detector(name, threshold=detector_threshold if name == detector else None)

    # parameter names are the API's (client.predict(file=..., threshold=...))
    def on_file(file, model, aggregate, threshold, face_detector=None):
        return run(lambda m: analyse_file(file, m, aggregate=aggregate, threshold=threshold,
                                          max_upload_mb=max_upload_mb, workdir=workdir.name,
                                          annotator=annotator,
                                          detector=found_by(face_detector)), model)

    def on_snapshot(image, model, threshold, face_detector=None):
        if image is None:
            return show(_error("take a snapshot first."))
        return run(lambda m: analyse_image(image, m, threshold=threshold, annotator=annotator,
                                           name="the snapshot",
                                           detector=found_by(face_detector)), model)

    with gr.Blocks(title="emokeras", analytics_enabled=False) as app:
        gr.Markdown("# emokeras\nEmotions in the faces of a video or an image. Upload a file "
                    f"(at most {max_upload_mb:g} MB) or take a webcam snapshot.")
        with gr.Row():
            with gr.Column(scale=1):
                with gr.Tab("Upload"):
                    upload = gr.File(label="Video or image", elem_id="upload")
                    again = gr.Button("Analyse again", variant="secondary", visible=False,
                                      elem_id="again")
                with gr.Tab("Webcam"):
                    webcam = gr.Image(sources=["webcam"], type="numpy", label="Snapshot",
                                      elem_id="webcam")
                    snap = gr.Button("Analyse snapshot", variant="primary")
                choice = gr.Dropdown(list_models(models_dir), value=BUNDLED, label="Model",
                                     allow_custom_value=True, elem_id="model",
                                     info="the bundled model or a run folder found under "
                                          f"{models_dir}")
                aggregate = gr.Radio(list(METHODS), value="sum", label="Aggregation (videos)",
                                     elem_id="aggregate")
                limit = gr.Slider(0.0, 1.0, value=threshold, step=0.05, elem_id="threshold",
                                  label="Confidence threshold (below it: uncertain)")
                from emokeras.faces import DETECTORS

                finder = gr.Dropdown(sorted(DETECTORS), value=detector, label="Face detector",
                                     elem_id="detector",
                                     info="yunet: the default; haar: fast, frontal faces only; "
                                          "mtcnn: needs the mtcnn extra")
            with gr.Column(scale=2):
                status = gr.Markdown(elem_id="status")
                label = gr.Markdown(elem_id="label")
                image = gr.Image(label="Faces", interactive=False, elem_id="faces")
                bars = gr.Label(label="Class probabilities", elem_id="scores")
                timeline = gr.Image(label="Emotion timeline (videos)", type="filepath",
                                    interactive=False, elem_id="timeline")
                with gr.Row():
                    frames_csv = gr.File(label="Per-frame table (CSV): a row per face per "
                                               "frame", interactive=False, elem_id="frames_csv")
                    faces_csv = gr.File(label="Per-face table (CSV): a row per face / track",
                                        interactive=False, elem_id="faces_csv")
        outputs = [status, label, image, bars, timeline, frames_csv, faces_csv, again]
        # named API endpoints (gradio_client: client.predict(..., api_name="/analyse"))
        upload.upload(on_file, [upload, choice, aggregate, limit, finder], outputs,
                      api_name="analyse")
        again.click(on_file, [upload, choice, aggregate, limit, finder], outputs,
                    api_name="analyse_again")
        snap.click(on_snapshot, [webcam, choice, limit, finder], outputs,
                   api_name="analyse_snapshot")
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

    def launch():
        return app.launch(server_name=host, server_port=port,
                          max_file_size=int(limit * gr.FileSize.MB),
                          prevent_thread_lock=not block, ssr_mode=False, show_error=False,
                          quiet=quiet, theme=_theme(), footer_links=[])

    if not block or threading.current_thread() is not threading.main_thread():
        return launch()
    # SIGTERM (a service manager stopping the app, ``kill``) would end Python at once, leaving
    # the app's /tmp/emokeras-app-* folder behind: it stops the server as Ctrl-C does instead,
    # and the folder is removed on the way out.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return launch()
    except KeyboardInterrupt:  # stopped while still starting: Gradio's own handler was not on
        log.info("stopped while starting; closing the server")
        app.close()
        return None
    finally:
        signal.signal(signal.SIGTERM, previous)
        workdir = getattr(app, "emokeras_workdir", None)
        if workdir is not None:
            workdir.cleanup()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
