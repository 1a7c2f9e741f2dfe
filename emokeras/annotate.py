"""Draw faces onto images: each face's box, emotion name, emoji and confidence (and track id).

Shared by ``emokeras live`` and the web app. Emoji are drawn with Pillow from a colour emoji font
(Noto Color Emoji on Linux: ``apt-get install fonts-noto-color-emoji``; ``EMOKERAS_EMOJI_FONT``
names another font file); without one the labels are text only.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emokeras.faces import FaceBox
from emokeras.labels import LabelSet

log = logging.getLogger(__name__)

#: Default confidence below which a face is labelled "uncertain".
DEFAULT_THRESHOLD = 0.5
UNCERTAIN = "uncertain"

#: Colour emoji fonts looked for, in order, after ``EMOKERAS_EMOJI_FONT``.
EMOJI_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",
    "/usr/share/fonts/noto/NotoColorEmoji.ttf",
    "/usr/share/fonts/google-noto-emoji/NotoColorEmoji.ttf",
    "/usr/share/fonts/noto-emoji/NotoColorEmoji.ttf",
    "/System/Library/Fonts/Apple Color Emoji.ttc",
    "C:/Windows/Fonts/seguiemj.ttf",
)
# Bitmap colour fonts (Noto's CBDT) load only at their strike size; scalable ones at any size.
_EMOJI_STRIKE = 109

# One colour per class index (RGB), grey for "uncertain".
_PALETTE = ((230, 57, 70), (106, 153, 78), (123, 44, 191), (255, 183, 3), (33, 158, 188),
            (251, 133, 0), (120, 120, 120), (0, 180, 216), (214, 40, 140))
_UNCERTAIN_COLOUR = (140, 140, 140)


# ------------------------------------------------------------------------------------- labels


@dataclass(frozen=True)
class FaceLabel:
    """What is drawn for one face: its box, label (a class, or "uncertain"), emoji, confidence."""

    box: FaceBox
    label: str
    emoji: str
    confidence: float
    label_index: int
    track_id: int | None = None

    @property
    def uncertain(self) -> bool:
        return self.label == UNCERTAIN

    @property
    def text(self) -> str:
        """The caption without the emoji: ``happy 87%``."""
        return f"{self.label} {self.confidence:.0%}"

    @property
    def caption(self) -> str:
        """What is drawn beside the emoji: the text, after the face's track id when it has one
        (``#2 happy 87%``), so a viewer can tell the people apart."""
        return self.text if self.track_id is None else f"#{self.track_id} {self.text}"


def label_face(box: FaceBox, scores: np.ndarray, label_set: LabelSet, threshold: float,
               track_id: int | None = None) -> FaceLabel:
    """The label of a face from its class scores: the top class, or "uncertain" (no emoji) when
    its score is below ``threshold``."""
    index = int(np.argmax(scores))
    confidence = float(scores[index])
    if confidence < threshold:
        return FaceLabel(box, UNCERTAIN, "", confidence, index, track_id)
    return FaceLabel(box, label_set.classes[index], label_set.emoji(index), confidence, index,
                     track_id)


# --------------------------------------------------------------------------------------- drawing


def _text_font_path() -> str | None:
    """DejaVu Sans from matplotlib's data (always installed with emokeras), if it is there."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    return str(path) if path.is_file() else None


def find_emoji_font() -> str | None:
    """A colour emoji font file: ``EMOKERAS_EMOJI_FONT``, a known path, or fontconfig's pick."""
    named = os.environ.get("EMOKERAS_EMOJI_FONT")
    candidates = [named] if named else []
    candidates += EMOJI_FONT_CANDIDATES
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    if shutil.which("fc-list"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            found = subprocess.run(["fc-list", ":charset=1f600:color=true", "file"],
                                   capture_output=True, text=True, timeout=10).stdout
            for line in found.splitlines():
                path = line.strip().rstrip(":")
                if path and Path(path).is_file():
                    return path
    return None


class Annotator:
    """Draws face boxes and captions (name, emoji, confidence) onto RGB frames.

    Captions are rendered with Pillow once per distinct text and pasted, so only the box outline
    and the caption's pixels change. ``emoji_font``: a font file, None to look for one, or False
    for text only; an unusable font falls back to text only.
    """

    def __init__(self, *, emoji_font: str | os.PathLike[str] | None | bool = None,
                 font_size: int | None = None) -> None:
        from PIL import ImageFont

        self.font_size = font_size
        self._text_font_path = _text_font_path()
        self._fonts: dict[int, ImageFont.FreeTypeFont | ImageFont.ImageFont] = {}
        self._emoji_font = None
        if emoji_font is not False:
            path = find_emoji_font() if emoji_font in (None, True) else str(emoji_font)
            self._emoji_font = self._load_emoji_font(path) if path else None
            if self._emoji_font is None:
                log.warning("no usable colour emoji font found: labels are drawn without emoji "
                            "(install fonts-noto-color-emoji or set EMOKERAS_EMOJI_FONT)")
        self._patch = functools.lru_cache(maxsize=512)(self._render_caption)

    @property
    def has_emoji(self) -> bool:
        return self._emoji_font is not None

    @staticmethod
    def _load_emoji_font(path: str):
        from PIL import ImageFont

        for size in (_EMOJI_STRIKE, 64):
            try:
                font = ImageFont.truetype(path, size)
                font.getbbox("\N{GRINNING FACE}")
                return font
            except (OSError, ValueError) as error:
                log.debug("emoji font %s at size %d: %s", path, size, error)
        return None

    def _font(self, size: int):
        from PIL import ImageFont

        if size not in self._fonts:
            font = None
            if self._text_font_path:
                with contextlib.suppress(OSError):
                    font = ImageFont.truetype(self._text_font_path, size)
            self._fonts[size] = font if font is not None else ImageFont.load_default(size)
        return self._fonts[size]

    def _emoji_image(self, emoji: str, height: int):
        """The emoji as an RGBA image ``height`` pixels tall, or None if it cannot be drawn."""
        from PIL import Image, ImageDraw

        font = self._emoji_font
        try:
            left, top, right, bottom = font.getbbox(emoji)
            if right <= left or bottom <= top:
                return None
            glyph = Image.new("RGBA", (right - left, bottom - top), (0, 0, 0, 0))
            ImageDraw.Draw(glyph).text((-left, -top), emoji, font=font, embedded_color=True)
        except (OSError, ValueError) as error:  # a font without colour glyphs, or no layout
            log.debug("cannot draw %r: %s", emoji, error)
            return None
        if glyph.getbbox() is None:
            return None
        width = max(1, round(glyph.width * height / glyph.height))
        return glyph.resize((width, height), Image.Resampling.LANCZOS)

    def _render_caption(self, text: str, emoji: str, colour: tuple[int, int, int],
                        size: int) -> np.ndarray:
        """The caption as an RGBA array: text (and emoji) in white on the label colour."""
        from PIL import Image, ImageDraw

        font = self._font(size)
        pad = max(2, size // 5)
        left, top, right, bottom = font.getbbox(text)
        text_height = max(size, bottom - top)
        glyph = self._emoji_image(emoji, text_height) if emoji and self._emoji_font else None
        gap = pad if glyph is not None else 0
        width = (right - left) + gap + (glyph.width if glyph is not None else 0) + 2 * pad
        height = text_height + 2 * pad
        patch = Image.new("RGBA", (width, height), (*colour, 255))
        draw = ImageDraw.Draw(patch)
        draw.text((pad - left, pad + (text_height - (bottom - top)) // 2 - top), text,
                  font=font, fill=(255, 255, 255, 255))
        if glyph is not None:
            patch.alpha_composite(glyph, (pad + (right - left) + gap, pad))
        return np.asarray(patch)

    def caption_size(self, frame_height: int) -> int:
        return self.font_size or max(14, round(frame_height / 24))

    def draw(self, image: np.ndarray, faces: Sequence[FaceLabel]) -> np.ndarray:
        """A copy of the RGB uint8 ``image`` with each face's box and caption drawn on it."""
        out = np.ascontiguousarray(image, dtype=np.uint8).copy()
        height, width = out.shape[:2]
        size = self.caption_size(height)
        thickness = max(2, round(height / 240))
        for face in faces:
            colour = _UNCERTAIN_COLOUR if face.uncertain else _PALETTE[
                face.label_index % len(_PALETTE)]
            box = face.box
            cv2.rectangle(out, (box.x, box.y), (box.x + box.width - 1, box.y + box.height - 1),
                          colour, thickness)
            patch = self._patch(face.caption, face.emoji, colour, size)
            # above the box where there is room, else just inside its top edge
            y = box.y - patch.shape[0] if box.y - patch.shape[0] >= 0 else box.y
            _paste(out, patch, box.x, y)
        return out


def _paste(image: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    """Alpha-blend an RGBA ``patch`` onto ``image`` at (x, y), clipped to the image."""
    height, width = image.shape[:2]
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + patch.shape[1]), min(height, y + patch.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    part = patch[y0 - y : y1 - y, x0 - x : x1 - x]
    alpha = part[..., 3:4].astype(np.float32) / 255.0
    region = image[y0:y1, x0:x1].astype(np.float32)
    image[y0:y1, x0:x1] = np.round(part[..., :3] * alpha + region * (1 - alpha)).astype(np.uint8)
