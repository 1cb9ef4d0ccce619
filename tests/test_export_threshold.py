import numpy as np
import pytest

from keras_msreid.export.threshold import balanced_accuracy, best_threshold, sample_pairs


def brute_force_best(scores, is_same):
    """Tries every distinct score (and one above the highest) as a threshold."""
    best_accuracy, best_value = -1.0, None
    for candidate in sorted(set(scores.tolist())) + [scores.max() + 1.0]:
        accepted = scores >= candidate
        accuracy = 0.5 * (accepted[is_same].mean() + (~accepted[~is_same]).mean())
        if accuracy > best_accuracy + 1e-12:
            best_accuracy, best_value = accuracy, candidate
    return best_value, best_accuracy


@pytest.mark.parametrize("seed", range(5))
def test_best_threshold_matches_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    is_same = rng.random(60) < 0.3
    # Coarse scores so that many pairs tie, as int8 scores do.
    scores = np.round(rng.normal(0.3 + 0.4 * is_same, 0.2), 1)
    threshold, accuracy = best_threshold(scores, is_same)
    reference_value, reference_accuracy = brute_force_best(scores, is_same)
    assert accuracy == pytest.approx(reference_accuracy)
    assert balanced_accuracy(scores, is_same, threshold) == pytest.approx(reference_accuracy)
    # The midpoint below the brute force's lowest best score accepts the same pairs.
    assert np.array_equal(scores >= threshold, scores >= reference_value)


def test_best_threshold_separates_separable_scores():
    threshold, accuracy = best_threshold(np.array([0.1, 0.2, 0.7, 0.9]), np.array([False, False, True, True]))
    assert threshold == pytest.approx(0.45)
    assert accuracy == 1.0


def test_best_threshold_needs_both_kinds_of_pairs():
    with pytest.raises(ValueError, match="both same-identity and different-identity pairs"):
        best_threshold(np.array([0.1, 0.2]), np.array([True, True]))


def test_sample_pairs_balances_and_labels_pairs():
    ids = np.repeat(np.arange(10), 4)
    first, second, is_same = sample_pairs(ids, num_pairs=100, seed=0)
    assert len(first) == 100
    assert is_same.sum() == 50  # 60 same-identity pairs exist; half the budget is taken
    assert np.array_equal(is_same, ids[first] == ids[second])
    assert np.all(first < second)
    assert len(set(zip(first.tolist(), second.tolist()))) == 100


def test_sample_pairs_rejects_ids_without_a_same_identity_pair():
    with pytest.raises(ValueError, match="at least one identity with two images"):
        sample_pairs(np.arange(5), num_pairs=10)
