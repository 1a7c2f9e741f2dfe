"""File kinds: which extensions are images, videos and audio, in one place.

Every reader, folder search and front end asks here (the dataset loaders, ``emokeras predict``,
``emokeras prepare``, the app, export's calibration images), so a new extension is added once.
Extensions are lower case with the dot; compare them with ``path.suffix.lower()``. This module
imports nothing heavy (no OpenCV, no TensorFlow): the CLI builds its help text from it.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Literal

#: Still images (read by OpenCV; the dataset folder loaders, ``predict``, the app).
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp")
#: Videos (decoded by OpenCV; ``predict``, ``prepare``, the app). Their sound track, where there
#: is one, is read by PyAV.
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".mov", ".avi", ".mkv", ".m4v", ".webm")
#: Audio-only files (decoded by PyAV): ``predict --audio-model`` labels them by their sound.
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac")
#: Files with a sound track: audio files and videos (what ``emokeras spectrograms`` reads).
SOUND_EXTENSIONS: tuple[str, ...] = AUDIO_EXTENSIONS + VIDEO_EXTENSIONS

MediaKind = Literal["image", "video", "audio"]

_KINDS: dict[str, MediaKind] = {
    **{ext: "image" for ext in IMAGE_EXTENSIONS},
    **{ext: "video" for ext in VIDEO_EXTENSIONS},
    **{ext: "audio" for ext in AUDIO_EXTENSIONS},
}


def media_kind(path: str | PurePath) -> MediaKind | None:
    """``"image"``, ``"video"`` or ``"audio"`` by the file's extension (any case), or None for
    an extension none of them has. Only the name is looked at, never the file."""
    return _KINDS.get(PurePath(path).suffix.lower())


def extensions_of(*kinds: MediaKind) -> tuple[str, ...]:
    """The extensions of the given kinds, in the order above (``extensions_of("image",
    "video")``)."""
    return tuple(ext for ext, kind in _KINDS.items() if kind in kinds)
