import numpy as np
import pytest

from keras_msreid import losses
from keras_msreid.losses.pair_mining import mine_pairs


def test_batch_hard_triplet_matches_loop_reference():
    rng = np.random.default_rng(0)
    labels = np.array([0, 0, 1, 1, 1, 2, 3])  # 3 and 2 have no positive
    features = rng.normal(size=(7, 5)).astype("float32")
    expected = []
    for i in range(7):
        positives = [np.linalg.norm(features[i] - features[j]) for j in range(7) if j != i and labels[j] == labels[i]]
        negatives = [np.linalg.norm(features[i] - features[j]) for j in range(7) if labels[j] != labels[i]]
        if positives and negatives:
            expected.append(max(0.0, 0.3 + max(positives) - min(negatives)))
    value = float(losses.batch_hard_triplet_loss(labels, features, margin=0.3))
    assert value == pytest.approx(np.mean(expected), rel=1e-4)


def test_improved_ranking_loss_matches_formula():
    positive = np.array([[0.9, 0.4], [0.6, 0.2]], "float32")
    negative = np.array([[0.5, 0.1, 0.8]], "float32").repeat(2, 0)
    positive_valid = np.array([[True, True], [True, False]])
    negative_valid = np.array([[True, True, False], [True, True, True]])
    relative, absolute = [], []
    for a in range(2):
        for p in range(2):
            if not positive_valid[a, p]:
                continue
            absolute.append(max(0.0, 0.7 - positive[a, p]))
            for n in range(3):
                if negative_valid[a, n]:
                    relative.append(max(0.0, 0.3 - positive[a, p] + negative[a, n]))
    value = float(losses.improved_ranking_loss(positive, negative, positive_valid, negative_valid, 0.3, 0.7, 0.5))
    assert value == pytest.approx(np.mean(relative) + 0.5 * np.mean(absolute), rel=1e-5)


def test_verification_loss_is_binary_cross_entropy_over_valid_pairs():
    logits = np.array([[2.0, -1.0], [0.5, 30.0]], "float32")
    same = np.array([[1, 0], [0, 0]])
    valid = np.array([[True, True], [True, False]])
    probabilities = 1 / (1 + np.exp(-logits))
    bce = -(same * np.log(probabilities) + (1 - same) * np.log(1 - probabilities))
    assert float(losses.verification_loss(same, logits, valid)) == pytest.approx(bce[valid].mean(), rel=1e-5)


def test_identity_loss_with_label_smoothing():
    logits = np.array([[1.0, 2.0, 0.5]], "float32")
    log_probabilities = logits - np.log(np.exp(logits).sum())
    targets = np.array([0.9, 0.0, 0.0]) + 0.1 / 3
    expected = -(targets * log_probabilities).sum()
    assert float(losses.smoothed_identity_loss(np.array([0]), logits, 0.1)) == pytest.approx(expected, rel=1e-5)


def test_mining_picks_hardest_positives_and_negatives():
    labels = np.array([0, 0, 0, 1, 1, 2])
    features = np.array([[0.0], [1.0], [3.0], [0.5], [10.0], [2.0]], "float32")
    positive_index, positive_valid, negative_index, negative_valid = [
        np.asarray(v) for v in mine_pairs(labels, features, hard_positives=2, hard_negatives=2)
    ]
    assert list(positive_index[0]) == [2, 1]  # farthest same-id first
    assert list(negative_index[0]) == [3, 5]  # nearest other-id first
    assert positive_valid[0].all() and negative_valid.all()
    # Identity 2 has no positive: its slots are invalid; identity 1 has one positive.
    assert not positive_valid[5].any()
    assert list(positive_valid[3]) == [True, False]


def test_mining_draws_random_pairs_among_those_not_already_hard():
    labels = np.array([0, 0, 0, 0, 1, 2, 3])
    features = np.array([[0.0], [1.0], [2.0], [3.0], [0.5], [5.0], [9.0]], "float32")
    noise = np.random.default_rng(0).uniform(size=(7, 7)).astype("float32")
    positive_index, positive_valid, negative_index, negative_valid = [
        np.asarray(v)
        for v in mine_pairs(labels, features, hard_positives=1, hard_negatives=1, random_positives=2,
                            random_negatives=2, noise=noise)
    ]
    # Anchor 0: hard positive 3 (farthest), hard negative 4 (nearest); the random
    # ones come from the rest, ordered by the noise.
    assert positive_index[0, 0] == 3 and negative_index[0, 0] == 4
    expected_positives = sorted([1, 2], key=lambda j: -noise[0, j])
    expected_negatives = sorted([5, 6], key=lambda j: -noise[0, j])
    assert list(positive_index[0, 1:]) == expected_positives
    assert list(negative_index[0, 1:]) == expected_negatives
    assert positive_valid[0].all() and negative_valid[0].all()
    # Anchor 4 (identity 1) has no positive at all; no random pick repeats a hard one.
    assert not positive_valid[4].any()
    for row in range(4):
        assert len(set(positive_index[row])) == 3 and len(set(negative_index[row, :3])) == 3


def test_mining_random_pairs_need_noise():
    with pytest.raises(ValueError, match="noise"):
        mine_pairs(np.array([0, 0]), np.zeros((2, 1), "float32"), random_negatives=1)
