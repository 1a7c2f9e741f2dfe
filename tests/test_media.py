"""File kinds come from one place, emokeras.media, and every old name is that list."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import FIXTURES, IMAGES, RAVDESS_CLIPS, VIDEOS

from emokeras import media
from emokeras.media import (
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    SOUND_EXTENSIONS,
    VIDEO_EXTENSIONS,
    extensions_of,
    media_kind,
)


def test_every_fixture_has_the_kind_its_folder_says():
    assert {media_kind(p) for p in IMAGES.iterdir()} == {"image"}
    assert {media_kind(p) for p in [*VIDEOS.iterdir(), *RAVDESS_CLIPS.glob("*.mp4")]} == {"video"}
    assert media_kind(FIXTURES / "labels.csv") is None
    assert media_kind(RAVDESS_CLIPS / "LICENSE-RAVDESS.txt") is None


def test_media_kind_reads_the_name_only_in_any_case():
    assert media_kind("CLIP.MP4") == "video"
    assert media_kind(Path("speech.Wav")) == "audio"
    assert media_kind("face.JPEG") == "image"
    assert media_kind("no_suffix") is None
    assert media_kind("archive.tar.gz") is None
    assert media_kind("does/not/exist.png") == "image"  # never looks at the file


def test_the_kinds_do_not_overlap_and_sound_is_audio_plus_video():
    kinds = (IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, AUDIO_EXTENSIONS)
    every = [ext for kind in kinds for ext in kind]
    assert len(every) == len(set(every))
    assert all(ext.startswith(".") and ext == ext.lower() for ext in every)
    assert set(SOUND_EXTENSIONS) == set(AUDIO_EXTENSIONS) | set(VIDEO_EXTENSIONS)
    assert extensions_of("image", "video") == IMAGE_EXTENSIONS + VIDEO_EXTENSIONS


def test_the_old_names_are_the_lists_of_emokeras_media():
    from emokeras.datasets import IMAGE_EXTENSIONS as dataset_images
    from emokeras.datasets.spectrograms import AUDIO_EXTENSIONS as spectrogram_sources
    from emokeras.prepare import VIDEO_EXTENSIONS as prepare_videos

    assert dataset_images is IMAGE_EXTENSIONS
    assert prepare_videos is VIDEO_EXTENSIONS
    assert spectrogram_sources is SOUND_EXTENSIONS


def test_importing_emokeras_media_imports_nothing_heavy():
    code = ("import sys, emokeras.media\n"
            "print(sorted(m for m in ('cv2', 'numpy', 'tensorflow', 'keras') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=Path(media.__file__).parents[1])
    assert done.stdout.strip() == "[]"
