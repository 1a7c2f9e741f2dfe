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


class ImageTooLargeError(ImageReadError):
    """An image's header declares more pixels than the limit; refused before decoding it."""

    def __init__(
        self, path: str | Path, pixels: int, limit: int, size: tuple[int, int] | None = None
    ) -> None:
        self.pixels = pixels
        self.limit = limit
        self.size = size  # (width, height) where the header told it
        what = f"{size[0]}x{size[1]} is {pixels} pixels" if size else f"it has {pixels} pixels"
        super().__init__(path, f"{what}, over the limit of {limit} (raise max_pixels to read it)")


class VideoTooLargeError(VideoReadError):
    """A video's frames have more pixels than the limit; refused before decoding a frame."""

    def __init__(self, path: str | Path, width: int, height: int, limit: int) -> None:
        self.width = width
        self.height = height
        self.limit = limit
        super().__init__(
            path,
            f"frames of {width}x{height} are {width * height} pixels, over the limit of {limit} "
            "(raise max_pixels to read it)",
        )


class ModelNotOfferedError(EmokerasError):
    """A model choice (the app's picker) that is not one of the offered models.

    The message is the same for every such choice, whether or not the path exists on the server,
    so it tells nothing about the server's files.
    """

    def __init__(self, choice: str) -> None:
        self.choice = choice
        super().__init__(f"{choice!r} is not one of the offered models")


class FaceDetectionError(EmokerasError):
    """A detector failed on an image (OpenCV raised); the message names the image's shape."""


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


class ModelLoadError(RunFolderError):
    """A run folder's model or its labels cannot be loaded: a truncated, garbage or empty
    ``model.keras``, a ``labels.json`` that is not the label set the model predicts, a layer that
    safe mode refuses (a ``Lambda``), or a ``routing.json`` entry outside the run folder.

    A :class:`RunFolderError`, so code that catches a bad run folder catches this too.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot load {self.path!r}: {reason}")


class MissingExtraError(EmokerasError, ImportError):
    """An optional feature's packages are not installed; the message names the extra that
    brings them (``pip install 'emokeras[<extra>]'``)."""

    def __init__(self, extra: str, module: str, feature: str) -> None:
        self.extra = extra
        self.module = module
        super().__init__(f"{feature} needs the '{extra}' extra (module {module!r} is missing): "
                         f"pip install 'emokeras[{extra}]'")
