"""Typed errors. Every error emokeras raises on bad input is an ``EmokerasError``.

Each error says what it received (a path, a field, a value) so a batch job can report the bad
item and carry on.
"""

from __future__ import annotations

from pathlib import Path


class EmokerasError(Exception):
    """Base class of every error emokeras raises on bad input."""


class VideoReadError(EmokerasError):
    """A video cannot be opened or decoded."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read video {self.path!r}: {reason}")


class ImageReadError(EmokerasError):
    """An image file cannot be opened or decoded."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path!r}: {reason}")


class NoFaceFoundError(EmokerasError):
    """No face was found where one was required."""


class DatasetError(EmokerasError):
    """A dataset file or folder does not have the expected layout or content."""


class RavdessNameError(DatasetError):
    """A file name is not a valid RAVDESS name (``03-01-05-01-02-01-12.mp4``)."""

    def __init__(self, path: str | Path, field: str, value: str, reason: str) -> None:
        self.path = str(path)
        self.field = field
        self.value = value
        super().__init__(
            f"{Path(self.path).name!r} is not a valid RAVDESS file name: "
            f"field {field!r} is {value!r} ({reason})"
        )


class ConfigError(EmokerasError, ValueError):
    """A configuration value (backbone name, weights, phase, ...) is not one of those allowed."""


class RunFolderError(EmokerasError):
    """A run folder lacks a file it should have (model, labels, config)."""


class ExportExistsError(EmokerasError, FileExistsError):
    """The export's target (a SavedModel version folder, a file) exists and holds something."""


class ExportVerificationError(EmokerasError):
    """An exported model does not compute what the Keras model computes."""


class NoAudioError(EmokerasError):
    """A media file opens but has no audio stream (a silent video, a video-only RAVDESS file)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        super().__init__(f"{self.path!r} has no audio stream")


class AudioReadError(EmokerasError):
    """An audio or video file is missing, cannot be opened, or its audio cannot be decoded."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read audio from {self.path!r}: {reason}")
