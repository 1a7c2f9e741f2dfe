"""The package as a whole: the lazy top-level API, and the import graph between its modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import emokeras

PACKAGE = Path(emokeras.__file__).parent

#: The names ``import emokeras`` offered before the API became lazy: they must all stay.
EARLIER_NAMES = {
    "Aggregate", "AudioEmotionModel", "AudioPrediction", "AudioReadError", "NoAudioError",
    "SPEECH5", "SpectrogramConfig", "audio_spectrogram", "fuse", "load_audio", "predict_audio",
    "EmotionModel", "ImagePrediction", "SexRoutedModel", "VideoPrediction", "aggregate",
    "export_onnx", "export_saved_model", "export_tflite", "run_export", "predict_frames",
    "predict_image", "predict_video", "CKPLUS", "FER2013", "RAVDESS", "DatasetError",
    "DeepfaceSexClassifier", "EmokerasError", "FaceBox", "FaceCrop", "FaceDetector",
    "FaceTracker", "Frame", "FrameFaces", "HaarFaceDetector", "ImageReadError", "LabelSet",
    "MtcnnFaceDetector", "NoFaceFoundError", "RavdessNameError", "VideoInfo", "VideoReadError",
    "__version__", "crop_face", "detect_faces_and_crop", "get_label_set", "iter_face_crops",
    "iter_frames", "load_image", "probe_video",
}


def test_import_emokeras_does_not_import_tensorflow():
    code = ("import sys, emokeras; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, "
            "sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')); "
            # touching light names must not import it either
            "emokeras.FER2013, emokeras.RunFolder, emokeras.EmotionModel, emokeras.run_export; "
            "assert 'tensorflow' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=PACKAGE.parent)
    assert done.returncode == 0, done.stderr[-2000:]


def test_every_public_name_is_listed_and_reachable():
    listed = set(emokeras.__all__)
    assert EARLIER_NAMES <= listed, EARLIER_NAMES - listed
    assert {"build_model", "list_backbones", "fit", "load_model", "evaluate_run",
            "run_export", "RunFolder", "find_runs", "ModelLoadError"} <= listed
    assert listed <= set(dir(emokeras))
    for name in sorted(listed):
        assert getattr(emokeras, name) is not None, name
    from emokeras.model import load_model
    from emokeras.models import build_model

    assert emokeras.build_model is build_model and emokeras.load_model is load_model


def test_an_unknown_name_raises_attribute_error():
    try:
        emokeras.no_such_thing  # noqa: B018
    except AttributeError as error:
        assert "no_such_thing" in str(error)
    else:  # pragma: no cover
        raise AssertionError("emokeras.no_such_thing did not raise AttributeError")


# --------------------------------------------------------------------------- the import graph


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(emokeras modules imported at module level, those imported inside functions). Class
    bodies run at import, so theirs count as module level; ``if TYPE_CHECKING:`` never runs."""
    module_level: set[str] = set()
    in_function: set[str] = set()

    def targets(node) -> set[str]:
        if isinstance(node, ast.Import):
            return {a.name for a in node.names if a.name.split(".")[0] == "emokeras"}
        if node.level or not node.module or node.module.split(".")[0] != "emokeras":
            return set()
        found = {node.module}  # ``from pkg import module`` imports the module too
        found |= {f"{node.module}.{a.name}" for a in node.names
                  if f"{node.module}.{a.name}" in MODULES}
        return found

    def visit(nodes, inside: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.Import | ast.ImportFrom):
                (in_function if inside else module_level).update(targets(node))
            if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
                continue
            function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    visit([child], inside or function)

    visit(ast.parse(path.read_text(encoding="utf-8")).body, False)
    return module_level, in_function


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return cycles


def _defined(path: Path) -> set[str]:
    """Names a module defines or imports at its top level."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def test_every_from_emokeras_import_names_something_that_exists():
    """A name moved to another module, still imported from its old one (perhaps inside a
    function, where it would fail only when that function runs), fails here."""
    defined = {name: _defined(path) for name, path in MODULES.items()}
    stale = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.ImportFrom) and not node.level and node.module
                    and node.module.split(".")[0] == "emokeras"):
                for alias in node.names:
                    if (node.module not in MODULES or (
                            alias.name not in defined[node.module]
                            and f"{node.module}.{alias.name}" not in MODULES)):
                        stale.append(f"{name}: from {node.module} import {alias.name}")
    assert not stale, stale


def test_no_import_cycle_among_module_level_imports():
    graph, every = {}, {}
    for name, path in MODULES.items():
        module_level, in_function = _imports(path)
        graph[name] = module_level - {name}
        every[name] = module_level | in_function
    assert _cycles(graph) == []
    # every emokeras import, in functions too, names a module that exists (a moved name's
    # old module would otherwise fail only when that function runs)
    missing = {(name, target) for name, targets in every.items() for target in targets
               if target not in MODULES}
    assert not missing, sorted(missing)


def test_plots_leave_matplotlib_backend_and_pyplot_alone(tmp_path):
    """A notebook's backend survives ``import emokeras.plots`` and a plot; no pyplot figure
    is left open (each is drawn on its own Agg canvas)."""
    out = tmp_path / "per_class.png"
    code = (
        "import matplotlib; matplotlib.use('svg'); import matplotlib.pyplot as plt; "
        "import emokeras.plots as p; "
        "p.plot_per_class({'happy': {'precision': .5, 'recall': .4, 'f1': .45}, "
        "'sad': {'precision': .3, 'recall': .6, 'f1': .4}}, " + repr(str(out)) + "); "
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend(); "
        "assert plt.get_fignums() == [], plt.get_fignums()"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=PACKAGE.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
