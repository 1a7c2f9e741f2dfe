"""Video-level aggregation on hand-made per-frame probabilities, every tie case included."""

from __future__ import annotations

import numpy as np
import pytest

from emokeras.aggregation import METHODS, aggregate, smooth


def test_sum_picks_the_highest_summed_probability():
    probs = [[0.6, 0.4, 0.0], [0.6, 0.4, 0.0], [0.0, 0.1, 0.9]]
    result = aggregate(probs, "sum")
    # sums: 1.2, 0.9, 0.9 -> class 0
    assert result.label_index == 0
    np.testing.assert_allclose(result.scores, [0.4, 0.3, 0.3])
    assert result.confidence == pytest.approx(0.4)


def test_vote_majority_can_differ_from_sum():
    # two weak votes for class 1 beat one confident vote for class 0 under "vote", not "sum"
    probs = [[0.45, 0.55], [0.45, 0.55], [1.0, 0.0]]
    assert aggregate(probs, "vote").label_index == 1
    assert aggregate(probs, "vote").confidence == pytest.approx(2 / 3)
    assert aggregate(probs, "sum").label_index == 0


def test_vote_tie_goes_to_the_higher_summed_probability():
    # one vote each for classes 0 and 1; class 1's frames are more confident overall
    probs = [[0.5, 0.3, 0.2], [0.1, 0.8, 0.1]]
    result = aggregate(probs, "vote")
    assert result.label_index == 1
    np.testing.assert_allclose(result.scores, [0.5, 0.5, 0.0])


def test_vote_tie_ignores_classes_that_are_not_tied():
    # classes 0 and 2 tie on votes; class 1 has the highest sum but no votes at all
    probs = [[0.40, 0.35, 0.25], [0.25, 0.35, 0.40], [0.40, 0.35, 0.25], [0.25, 0.35, 0.40]]
    assert np.argmax(np.sum(probs, axis=0)) == 1
    assert aggregate(probs, "vote").label_index == 0  # 0 and 2 tie on sum too: lower index


def test_vote_tie_on_votes_and_sum_goes_to_the_lower_index():
    probs = [[0.0, 0.7, 0.3], [0.0, 0.3, 0.7]]
    assert aggregate(probs, "vote").label_index == 1
    probs = [[0.3, 0.0, 0.7], [0.7, 0.0, 0.3]]
    assert aggregate(probs, "vote").label_index == 0


def test_sum_tie_goes_to_the_lower_index():
    assert aggregate([[0.5, 0.5], [0.5, 0.5]], "sum").label_index == 0
    assert aggregate([[0.2, 0.4, 0.4]], "sum").label_index == 1


def test_mean_logits_lets_a_frame_that_rules_a_class_out_veto_it():
    # four frames mildly for class 1, one frame that gives class 1 no probability at all:
    # the sum still picks class 1, the geometric mean does not
    probs = [[0.3, 0.7]] * 4 + [[1.0, 0.0]]
    assert aggregate(probs, "sum").label_index == 1
    assert aggregate(probs, "mean_logits").label_index == 0
    # where no frame rules a class out, it agrees with the frames' consensus
    probs = [[0.3, 0.7]] * 4 + [[0.6, 0.4]]
    assert aggregate(probs, "mean_logits").label_index == 1
    result = aggregate([[0.2, 0.8], [0.2, 0.8]], "mean_logits")
    np.testing.assert_allclose(result.scores, [0.2, 0.8])


@pytest.mark.parametrize("method", METHODS)
def test_one_frame_gives_its_own_argmax_and_scores_sum_to_one(method):
    result = aggregate([[0.1, 0.2, 0.7]], method)
    assert result.label_index == 2 and result.method == method
    assert result.scores.sum() == pytest.approx(1.0)


def test_bad_input_is_rejected_with_the_shape_or_method_named():
    with pytest.raises(ValueError, match=r"\(0, 3\)"):
        aggregate(np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"\(3,\)"):
        aggregate([0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="finite"):
        aggregate([[np.nan, 1.0]])
    with pytest.raises(ValueError, match="median"):
        aggregate([[0.5, 0.5]], "median")


def test_smooth_is_a_trailing_rolling_mean():
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    smoothed = smooth(probs, 2)
    np.testing.assert_allclose(smoothed, [[1, 0], [0.5, 0.5], [0, 1], [0.5, 0.5]])
    np.testing.assert_allclose(smooth(probs, 1), probs)
    np.testing.assert_allclose(smooth(probs, 10)[-1], [0.5, 0.5])
    with pytest.raises(ValueError, match="window"):
        smooth(probs, 0)
