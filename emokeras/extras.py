"""Optional extras: check that an extra's packages are installed before any work is done, so a
missing one is one line naming what to install, not a traceback half-way through a run."""

from __future__ import annotations

import importlib.util

from emokeras.errors import MissingExtraError

#: The modules each optional extra of setup.cfg brings, by the name they are imported under
EXTRAS: dict[str, tuple[str, ...]] = {
    "export": ("tf2onnx", "onnx", "ai_edge_litert"),
    "app": ("gradio",),
    "mtcnn": ("mtcnn",),
    "deepface": ("deepface",),
    "tables": ("pandas", "pyarrow"),
}


def require_extra(extra: str, feature: str, modules: tuple[str, ...] | None = None) -> None:
    """Raise ``MissingExtraError`` naming ``extra`` when one of its ``modules`` (default: all of
    the extra's) cannot be imported. Only looks the modules up; imports nothing."""
    for module in EXTRAS[extra] if modules is None else modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise MissingExtraError(extra, module, feature)
