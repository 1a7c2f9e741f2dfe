"""Example clips built from a public-domain photo that a dependency ships, for demos and the README.

matplotlib ships Grace Hopper's official US Navy portrait (public domain) as sample data, so the
examples need no download. The clips get RAVDESS-style names so the whole data path — name
parsing, sex from actor parity, face crops, grouped splits — runs on them. Their emotion code
(01, neutral) is a made-up label, not a judgement of the photo.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from matplotlib import cbook

#: neutral, normal intensity, statement 01, repetition 01, actor 02 (even = female).
FACE_CLIP_NAME = "01-01-01-01-01-01-02.mp4"
#: the same codes for actor 04; the clip shows no face, to show how such a video is reported.
NO_FACE_CLIP_NAME = "01-01-01-01-01-01-04.mp4"


def sample_face_photo() -> np.ndarray:
    """Grace Hopper's portrait from matplotlib's sample data, RGB uint8."""
    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_video(path: str | Path, frames, fps: float) -> Path:
    """Write RGB frames to an MP4 (MPEG-4 part 2, which OpenCV's pip wheels can encode)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    try:
        for rgb in frames:
            if writer is None:
                height, width = rgb.shape[:2]
                writer = cv2.VideoWriter(
                    str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height)
                )
                if not writer.isOpened():
                    raise OSError(f"OpenCV cannot write a video to {path}")
            writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    finally:
        if writer is not None:
            writer.release()
    return path


def _zoom_frames(photo: np.ndarray, num_frames: int, size: tuple[int, int]):
    """A slow zoom into the photo's centre: the face moves and grows a little, as in a real clip."""
    height, width = photo.shape[:2]
    for i in range(num_frames):
        scale = 1.0 - 0.25 * i / max(num_frames - 1, 1)
        crop_w, crop_h = int(width * scale), int(height * scale)
        x0, y0 = (width - crop_w) // 2, (height - crop_h) // 3
        yield cv2.resize(photo[y0 : y0 + crop_h, x0 : x0 + crop_w], size)


def make_example_videos(
    out_dir: str | Path, *, seconds: float = 2.0, fps: float = 15.0
) -> list[Path]:
    """Write the example clips (one with a face, one without) into ``out_dir``; return the paths."""
    out_dir = Path(out_dir)
    num_frames = int(round(seconds * fps))
    photo = sample_face_photo()
    size = (360, 420)  # portrait, like the photo
    face_clip = write_video(out_dir / FACE_CLIP_NAME, _zoom_frames(photo, num_frames, size), fps)
    # A smooth colour gradient drifting sideways: texture for the decoder, nothing face-like.
    ramp = np.linspace(0, 255, size[0], dtype=np.float32)
    no_face_frames = (
        np.dstack([np.tile(np.roll(ramp, 8 * i), (size[1], 1))] * 3).astype(np.uint8)
        for i in range(num_frames)
    )
    no_face_clip = write_video(out_dir / NO_FACE_CLIP_NAME, no_face_frames, fps)
    return [face_clip, no_face_clip]
