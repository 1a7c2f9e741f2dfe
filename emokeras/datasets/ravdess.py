"""RAVDESS file names (``03-01-05-01-02-01-12.mp4``), folder scans and manifests.

A RAVDESS name is seven two-digit codes: modality, vocal channel, emotion, intensity, statement,
repetition and actor. Odd actors are male, even actors female.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from emokeras.errors import DatasetError, RavdessNameError
from emokeras.fileio import read_csv, write_csv_atomic
from emokeras.labels import RAVDESS

logger = logging.getLogger(__name__)

#: The seven fields of a RAVDESS name, in order.
RAVDESS_FIELDS: tuple[str, ...] = (
    "modality",
    "vocal_channel",
    "emotion",
    "intensity",
    "statement",
    "repetition",
    "actor",
)

MODALITIES: dict[int, str] = {1: "audio-video", 2: "video-only", 3: "audio-only"}
VOCAL_CHANNELS: dict[int, str] = {1: "speech", 2: "song"}
INTENSITIES: dict[int, str] = {1: "normal", 2: "strong"}
STATEMENTS: dict[int, str] = {1: "Kids are talking by the door", 2: "Dogs are sitting by the door"}

_RANGES: dict[str, tuple[int, int]] = {
    "modality": (1, 3),
    "vocal_channel": (1, 2),
    "emotion": (1, 8),
    "intensity": (1, 2),
    "statement": (1, 2),
    "repetition": (1, 2),
    "actor": (1, 24),
}

#: Emotion codes RAVDESS recorded as song: the song set has no disgust (07) or surprised (08).
_SONG_EMOTIONS = frozenset(range(1, 7))

#: Columns of a RAVDESS manifest CSV, in order.
MANIFEST_COLUMNS: tuple[str, ...] = (
    "path",
    "video_id",
    "modality",
    "vocal_channel",
    "emotion",
    "emotion_index",
    "intensity",
    "statement",
    "repetition",
    "actor",
    "sex",
)

DEFAULT_EXTENSIONS: tuple[str, ...] = (".mp4", ".wav")


@dataclass(frozen=True)
class RavdessName:
    """The seven integer codes of a RAVDESS file name."""

    modality: int
    vocal_channel: int
    emotion_code: int
    intensity: int
    statement: int
    repetition: int
    actor: int

    @property
    def emotion(self) -> str:
        """Class name in ``labels.RAVDESS`` (``"angry"`` for code 05)."""
        return RAVDESS.classes[self.emotion_index]

    @property
    def emotion_index(self) -> int:
        """0-based index into ``labels.RAVDESS`` (code 01 is index 0)."""
        return self.emotion_code - 1

    @property
    def sex(self) -> str:
        return "male" if self.actor % 2 else "female"

    @property
    def actor_id(self) -> str:
        """The actor as in the file name, ``"01"``..``"24"``: the subject id used for splits."""
        return f"{self.actor:02d}"

    @property
    def modality_name(self) -> str:
        return MODALITIES[self.modality]

    @property
    def vocal_channel_name(self) -> str:
        return VOCAL_CHANNELS[self.vocal_channel]

    @property
    def intensity_name(self) -> str:
        return INTENSITIES[self.intensity]

    @property
    def statement_text(self) -> str:
        return STATEMENTS[self.statement]

    @property
    def codes(self) -> tuple[int, ...]:
        return (
            self.modality,
            self.vocal_channel,
            self.emotion_code,
            self.intensity,
            self.statement,
            self.repetition,
            self.actor,
        )

    @property
    def stem(self) -> str:
        """The name without extension, e.g. ``"03-01-05-01-02-01-12"``."""
        return "-".join(f"{code:02d}" for code in self.codes)


def parse_ravdess_name(path: str | Path) -> RavdessName:
    """Parse a RAVDESS path or file name; the extension, if any, is not checked.

    Raises ``RavdessNameError`` naming the file, the bad field, its value and what was wrong.
    """
    stem = Path(path).stem
    parts = stem.split("-")
    if len(parts) != len(RAVDESS_FIELDS):
        raise RavdessNameError(
            path, "name", stem, f"has {len(parts)} dash-separated fields, expected 7"
        )
    codes: dict[str, int] = {}
    for field, value in zip(RAVDESS_FIELDS, parts, strict=True):
        # isascii: str.isdigit alone accepts digits such as "²" that int() rejects.
        if len(value) != 2 or not (value.isascii() and value.isdigit()):
            raise RavdessNameError(path, field, value, "must be two digits")
        low, high = _RANGES[field]
        code = int(value)
        if not low <= code <= high:
            raise RavdessNameError(path, field, value, f"must be {low:02d}..{high:02d}")
        codes[field] = code
    # RAVDESS recorded neutral at normal intensity only, so "strong neutral" is a mislabelled file.
    if codes["emotion"] == 1 and codes["intensity"] == 2:
        raise RavdessNameError(
            path, "intensity", parts[3], "neutral (emotion 01) has no strong intensity"
        )
    if codes["vocal_channel"] == 2 and codes["emotion"] not in _SONG_EMOTIONS:
        raise RavdessNameError(
            path, "emotion", parts[2], "song (vocal channel 02) has only emotions 01..06"
        )
    return RavdessName(
        modality=codes["modality"],
        vocal_channel=codes["vocal_channel"],
        emotion_code=codes["emotion"],
        intensity=codes["intensity"],
        statement=codes["statement"],
        repetition=codes["repetition"],
        actor=codes["actor"],
    )


@dataclass(frozen=True)
class RavdessClip:
    """A RAVDESS media file and its parsed name."""

    path: str
    name: RavdessName


@dataclass(frozen=True)
class RavdessScan:
    """The clips found under a folder, and ``(path, reason)`` for each badly named media file."""

    clips: tuple[RavdessClip, ...]
    errors: tuple[tuple[str, str], ...] = ()

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(c.path for c in self.clips)

    @property
    def actors(self) -> tuple[str, ...]:
        """Actor id per clip (``"01"``..``"24"``), the subjects for ``subject_split``."""
        return tuple(c.name.actor_id for c in self.clips)

    @property
    def sexes(self) -> tuple[str, ...]:
        return tuple(c.name.sex for c in self.clips)

    @property
    def emotion_indices(self) -> tuple[int, ...]:
        return tuple(c.name.emotion_index for c in self.clips)


def scan_ravdess(root: str | Path, extensions: Iterable[str] = DEFAULT_EXTENSIONS) -> RavdessScan:
    """Find RAVDESS media files under ``root`` (recursively), sorted by path.

    Files with other extensions are ignored; media files with a malformed name are reported in
    ``errors`` rather than aborting the scan, so a batch job can list them and carry on.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"RAVDESS folder {str(root)!r} does not exist or is not a folder")
    wanted = {e.lower() for e in extensions}
    clips: list[RavdessClip] = []
    errors: list[tuple[str, str]] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix.lower() not in wanted:
            continue
        try:
            clips.append(RavdessClip(path=str(path), name=parse_ravdess_name(path)))
        except RavdessNameError as exc:
            errors.append((str(path), str(exc)))
            logger.warning("skipping %s", exc)
    if not clips:
        logger.warning("no RAVDESS clips with extensions %s under %s", sorted(wanted), root)
    return RavdessScan(clips=tuple(clips), errors=tuple(errors))


def _manifest_row(clip: RavdessClip) -> dict[str, object]:
    name = clip.name
    return {
        "path": clip.path,
        "video_id": name.stem,
        "modality": name.modality_name,
        "vocal_channel": name.vocal_channel_name,
        "emotion": name.emotion,
        "emotion_index": name.emotion_index,
        "intensity": name.intensity_name,
        "statement": name.statement,
        "repetition": name.repetition,
        "actor": name.actor_id,
        "sex": name.sex,
    }


def write_ravdess_manifest(
    root: str | Path, out_csv: str | Path, extensions: Iterable[str] = DEFAULT_EXTENSIONS
) -> RavdessScan:
    """Scan ``root`` and write one CSV row per clip (``MANIFEST_COLUMNS``), atomically.

    Codes are written by name (``emotion`` "angry", ``modality`` "audio-video", ...), ``actor`` as
    its two-digit id. Paths are as found under ``root`` (absolute if ``root`` is). Returns the scan,
    whose ``errors`` list the files left out.
    """
    scan = scan_ravdess(root, extensions)
    write_csv_atomic(out_csv, MANIFEST_COLUMNS, (_manifest_row(c) for c in scan.clips))
    logger.info(
        "wrote %d RAVDESS clips to %s (%d files skipped)", len(scan), out_csv, len(scan.errors)
    )
    return scan


def read_ravdess_manifest(csv_path: str | Path) -> tuple[RavdessClip, ...]:
    """Read a manifest written by ``write_ravdess_manifest`` back into clips.

    Each row's ``video_id`` is parsed again and the other columns must agree with it, so a
    hand-edited manifest cannot carry a label that contradicts its file name.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DatasetError(f"RAVDESS manifest {str(csv_path)!r} does not exist")
    rows = read_csv(csv_path)
    clips = []
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        missing = [c for c in MANIFEST_COLUMNS if row.get(c) is None]
        if missing:
            raise DatasetError(f"{csv_path}, line {line}: missing columns {missing}")
        try:
            name = parse_ravdess_name(row["video_id"])
        except RavdessNameError as exc:
            raise DatasetError(f"{csv_path}, line {line}: {exc}") from exc
        expected = _manifest_row(RavdessClip(path=row["path"], name=name))
        wrong = [c for c in MANIFEST_COLUMNS if row[c] != str(expected[c])]
        if Path(row["path"]).stem != name.stem:
            wrong.insert(0, "path")
        if wrong:
            raise DatasetError(
                f"{csv_path}, line {line}: columns {wrong} disagree with video_id "
                f"{row['video_id']!r}"
            )
        clips.append(RavdessClip(path=row["path"], name=name))
    return tuple(clips)
