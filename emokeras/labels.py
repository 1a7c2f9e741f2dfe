"""Emotion label sets in their datasets' fixed order, mappings between them, and emoji.

Every label set names its classes in the order its dataset encodes them, and ties each class to a
canonical emotion. Two sets map a class onto each other only where the canonical emotion is the
same: RAVDESS "calm" and CK+ "contempt" have no counterpart in FER2013 and stay unmapped rather
than being folded into a near neighbour.
"""

from __future__ import annotations

from dataclasses import dataclass

from emokeras.errors import EmokerasError

#: The sexes a face is classified as, in the order of the sex classifiers' outputs
#: (``emokeras.gender``): a routed model's, a manifest's and the serving graph's sex names.
SEXES: tuple[str, str] = ("female", "male")

#: Canonical emotions and their emoji.
EMOJI: dict[str, str] = {
    "neutral": "\N{NEUTRAL FACE}",
    "calm": "\N{RELIEVED FACE}",
    "happy": "\N{SMILING FACE WITH OPEN MOUTH AND SMILING EYES}",
    "sad": "\N{CRYING FACE}",
    "angry": "\N{ANGRY FACE}",
    "fearful": "\N{FEARFUL FACE}",
    "disgust": "\N{NAUSEATED FACE}",
    "surprised": "\N{ASTONISHED FACE}",
    "contempt": "\N{UNAMUSED FACE}",
}


class UnknownLabelError(EmokerasError, KeyError):
    """A class name or label set is not known."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class LabelSet:
    """An ordered set of class names, each tied to a canonical emotion."""

    name: str
    classes: tuple[str, ...]
    canonical: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.classes) != len(self.canonical):
            raise ValueError(f"label set {self.name!r}: classes and canonical differ in length")
        unknown = [c for c in self.canonical if c not in EMOJI]
        if unknown:
            raise ValueError(f"label set {self.name!r}: unknown canonical emotions {unknown}")

    def __len__(self) -> int:
        return len(self.classes)

    def index(self, class_name: str) -> int:
        """Index of a class, by its own name or its canonical emotion (case-insensitive)."""
        key = class_name.strip().lower()
        for names in (self.classes, self.canonical):
            # Lower-cased both sides: SPEECH5's own names are capitalised ("N", "Sad").
            lowered = [name.lower() for name in names]
            if key in lowered:
                return lowered.index(key)
        raise UnknownLabelError(
            f"{class_name!r} is not a class of label set {self.name!r}; "
            f"classes are {list(self.classes)}"
        )

    def emoji(self, class_name_or_index: str | int) -> str:
        index = (
            class_name_or_index
            if isinstance(class_name_or_index, int)
            else self.index(class_name_or_index)
        )
        return EMOJI[self.canonical[index]]

    def mapping_to(self, other: LabelSet) -> dict[int, int]:
        """Map class indices of this set onto ``other`` where the emotion is the same."""
        return {
            i: other.canonical.index(emotion)
            for i, emotion in enumerate(self.canonical)
            if emotion in other.canonical
        }


#: RAVDESS emotion codes 01..08, in code order.
RAVDESS = LabelSet(
    name="ravdess",
    classes=("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"),
    canonical=("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"),
)

#: FER2013 in its CSV's order: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral.
FER2013 = LabelSet(
    name="fer2013",
    classes=("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"),
    canonical=("angry", "disgust", "fearful", "happy", "sad", "surprised", "neutral"),
)

#: CK+ emotion codes 1..7 (code 0, neutral, has no folder in CK+48), as CK+48's folders name them.
CKPLUS = LabelSet(
    name="ckplus",
    classes=("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"),
    canonical=("angry", "contempt", "disgust", "fearful", "happy", "sad", "surprised"),
)

#: The five speech emotions of the seed's spectrogram data, under its own short names.
SPEECH5 = LabelSet(
    name="speech5",
    classes=("N", "F", "H", "Sad", "S"),
    canonical=("neutral", "fearful", "happy", "sad", "surprised"),
)

LABEL_SETS: dict[str, LabelSet] = {s.name: s for s in (RAVDESS, FER2013, CKPLUS, SPEECH5)}


def get_label_set(name: str) -> LabelSet:
    """Look a label set up by name (``"ravdess"``, ``"fer2013"``, ``"ckplus"``, ``"speech5"``)."""
    try:
        return LABEL_SETS[name.lower()]
    except KeyError:
        raise UnknownLabelError(
            f"unknown label set {name!r}; available: {sorted(LABEL_SETS)}"
        ) from None
