"""The emotion model shipped inside the package: the default when no model is given.

It is a run folder (see ``emokeras.runs``) under ``emokeras/assets/``: ``model.keras``,
``labels.json``, ``config.json`` (how it was trained) and ``model_card.json`` (its measured
accuracy, the data, the split and the command that produced it).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from emokeras.run_folder import load_run

BUNDLED_MODEL_DIR = Path(__file__).parent / "assets" / "fer2013_cnn48_ensemble"


@functools.cache
def load_bundled_model():
    """The bundled model and its label set (loaded once per process)."""
    return load_run(BUNDLED_MODEL_DIR)


def bundled_model_card() -> dict[str, Any]:
    """What the bundled model is and how well it did, as measured (see benchmarks/README.md)."""
    return json.loads((BUNDLED_MODEL_DIR / "model_card.json").read_text())
