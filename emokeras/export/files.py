"""Writing an export's files: quantization choices, targets that must not be overwritten
unasked, ``labels.txt``, and finished files moved into place atomically.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from emokeras import fileio
from emokeras.errors import ConfigError, ExportExistsError
from emokeras.fileio import atomic_write

QUANTIZATIONS = ("none", "dynamic", "int8")


def check_target(target: Path, overwrite: bool) -> None:
    """``ExportExistsError`` if ``target`` holds something and not ``overwrite``."""
    fileio.check_target(target, overwrite, ExportExistsError)


def check_quantize(quantize: str, representative) -> None:
    if quantize not in QUANTIZATIONS:
        raise ConfigError(f"quantize must be one of {list(QUANTIZATIONS)}, got {quantize!r}")
    if quantize == "int8" and representative is None:
        raise ConfigError("int8 quantization needs representative face crops to calibrate on "
                          "(representative=..., --representative FOLDER)")


def check_variants(targets: Mapping[str, Path], faces, overwrite: bool) -> None:
    for quantize, target in targets.items():
        check_quantize(quantize, faces)
        check_target(target, overwrite)


def write_labels_txt(path: Path, classes: Sequence[str]) -> Path:
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write("".join(f"{name}\n" for name in classes))
    return path


def publish_file(source: Path, target: Path, overwrite: bool) -> None:
    """Move a finished file into place: copied beside the target, then renamed over it."""
    check_target(target, overwrite)
    with atomic_write(target, "wb") as handle, open(source, "rb") as data:
        shutil.copyfileobj(data, handle)
