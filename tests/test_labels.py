"""Label sets: dataset orders, cross-set mappings, lookup by name and emoji."""

from __future__ import annotations

import pytest

from emokeras.errors import EmokerasError
from emokeras.labels import (
    CKPLUS,
    EMOJI,
    FER2013,
    RAVDESS,
    LabelSet,
    UnknownLabelError,
    get_label_set,
)


def test_orders_follow_each_dataset_encoding():
    # RAVDESS emotion codes 01..08.
    assert RAVDESS.classes == (
        "neutral",
        "calm",
        "happy",
        "sad",
        "angry",
        "fearful",
        "disgust",
        "surprised",
    )
    # The FER2013 CSV's 0..6, which is not alphabetical: neutral is last.
    assert FER2013.classes == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    # CK+ codes 1..7 under CK+48's folder names.
    assert CKPLUS.classes == (
        "anger",
        "contempt",
        "disgust",
        "fear",
        "happy",
        "sadness",
        "surprise",
    )
    assert (len(RAVDESS), len(FER2013), len(CKPLUS)) == (8, 7, 7)


def test_fer2013_maps_onto_ravdess_by_emotion():
    mapping = FER2013.mapping_to(RAVDESS)
    named = {FER2013.classes[i]: RAVDESS.classes[j] for i, j in mapping.items()}
    assert named == {
        "angry": "angry",
        "disgust": "disgust",
        "fear": "fearful",
        "happy": "happy",
        "sad": "sad",
        "surprise": "surprised",
        "neutral": "neutral",
    }
    # Calm has no FER2013 counterpart: nothing maps onto it and it maps onto nothing.
    assert RAVDESS.index("calm") not in mapping.values()
    assert RAVDESS.index("calm") not in RAVDESS.mapping_to(FER2013)
    assert len(RAVDESS.mapping_to(FER2013)) == 7


def test_contempt_stays_unmapped():
    contempt = CKPLUS.index("contempt")
    for other in (FER2013, RAVDESS):
        mapping = CKPLUS.mapping_to(other)
        assert contempt not in mapping
        assert len(mapping) == 6
    assert CKPLUS.mapping_to(FER2013)[CKPLUS.index("sadness")] == FER2013.index("sad")


def test_index_by_own_name_and_canonical_name():
    assert FER2013.index("fear") == FER2013.index("fearful") == 2
    assert FER2013.index(" Surprise ") == FER2013.index("surprised") == 5
    assert CKPLUS.index("anger") == CKPLUS.index("angry") == 0
    assert CKPLUS.index("sad") == CKPLUS.index("sadness") == 5
    assert RAVDESS.index("neutral") == 0
    assert FER2013.index("neutral") == 6


def test_every_class_has_its_canonical_emoji():
    for label_set in (RAVDESS, FER2013, CKPLUS):
        emoji = [label_set.emoji(i) for i in range(len(label_set))]
        assert emoji == [EMOJI[c] for c in label_set.canonical]
        assert len(set(emoji)) == len(label_set)  # no two classes look alike
        assert [label_set.emoji(name) for name in label_set.classes] == emoji
    assert FER2013.emoji("fear") == RAVDESS.emoji("fearful") == CKPLUS.emoji("fear")


def test_unknown_class_raises_with_the_class_list():
    with pytest.raises(UnknownLabelError) as info:
        FER2013.index("calm")
    message = str(info.value)
    assert "'calm'" in message and "fer2013" in message
    assert str(list(FER2013.classes)) in message
    assert isinstance(info.value, EmokerasError) and isinstance(info.value, KeyError)


def test_get_label_set_by_name():
    assert get_label_set("RAVDESS") is RAVDESS
    assert get_label_set("ckplus") is CKPLUS
    with pytest.raises(
        UnknownLabelError, match=r"'affectnet'.*\['ckplus', 'fer2013', 'ravdess', 'speech5'\]"
    ):
        get_label_set("affectnet")


def test_label_set_rejects_inconsistent_definitions():
    with pytest.raises(ValueError, match="differ in length"):
        LabelSet(name="x", classes=("a", "b"), canonical=("happy",))
    with pytest.raises(ValueError, match="joy"):
        LabelSet(name="x", classes=("joy",), canonical=("joy",))
