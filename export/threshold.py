"""The match threshold of an export: the score above which two crops show the same person.

Calibrated on labelled pairs of held-out images: the threshold that maximises
balanced accuracy, `(true positive rate + true negative rate) / 2`. Balanced
accuracy does not depend on how many same-person pairs there are per
different-person pair, which a camera's stream does not know in advance (F1
would). Pure numpy.

Example:

>>> first, second, same = sample_pairs(ids, num_pairs=2000, seed=0)
>>> threshold, accuracy = best_threshold(scores_of(first, second), same)
"""

import numpy as np

from keras_msreid.errors import UserError


def sample_pairs(ids, num_pairs, seed=0):
    """Up to `num_pairs // 2` same-identity pairs and different-identity pairs for the rest.

    Same-identity pairs are drawn without replacement from all `i < j` with equal
    ids; different-identity pairs uniformly at random (without the same pair twice).

    Returns:
        `(first, second, is_same)`: index arrays into `ids` and a bool array.
    """
    ids = np.asarray(ids)
    if num_pairs < 2:
        raise ValueError(f"num_pairs must be >= 2, got {num_pairs}")
    rng = np.random.default_rng(seed)
    rows, cols = np.triu_indices(len(ids), k=1)
    same = ids[rows] == ids[cols]
    positives = np.flatnonzero(same)
    negatives = np.flatnonzero(~same)
    if not len(positives) or not len(negatives):
        raise UserError(
            "threshold calibration needs at least one identity with two images and two identities; "
            f"got {len(ids)} images of {len(np.unique(ids))} identities"
        )
    positives = rng.choice(positives, min(len(positives), num_pairs // 2), replace=False)
    negatives = rng.choice(negatives, min(len(negatives), num_pairs - len(positives)), replace=False)
    chosen = np.concatenate([positives, negatives])
    return rows[chosen], cols[chosen], same[chosen]


def balanced_accuracy(scores, is_same, threshold):
    """Mean of the rates of same pairs scored `>= threshold` and different pairs below it."""
    scores, is_same = np.asarray(scores), np.asarray(is_same, bool)
    accepted = scores >= threshold
    return 0.5 * (accepted[is_same].mean() + (~accepted[~is_same]).mean())


def best_threshold(scores, is_same):
    """The threshold of highest balanced accuracy, and that accuracy.

    Candidates are the midpoints between consecutive distinct scores (and a point
    below the lowest / above the highest); of equally good ones the lowest wins.
    """
    scores = np.asarray(scores, np.float64)
    is_same = np.asarray(is_same, bool)
    if scores.shape != is_same.shape or scores.ndim != 1:
        raise ValueError(f"scores and is_same must be 1-D of one length, got {scores.shape} and {is_same.shape}")
    num_same = int(is_same.sum())
    if num_same == 0 or num_same == len(scores):
        raise ValueError("best_threshold needs both same-identity and different-identity pairs")
    values, inverse = np.unique(scores, return_inverse=True)
    same_at = np.bincount(inverse, weights=is_same, minlength=len(values))
    different_at = np.bincount(inverse, weights=~is_same, minlength=len(values))
    # Candidate k accepts values[k:]: k = 0 accepts everything, k = len(values) nothing.
    same_accepted = num_same - np.concatenate([[0.0], np.cumsum(same_at)])
    different_rejected = np.concatenate([[0.0], np.cumsum(different_at)])
    accuracy = 0.5 * (same_accepted / num_same + different_rejected / (len(scores) - num_same))
    best = int(np.argmax(accuracy))
    if best == 0:
        threshold = values[0] - 1e-6
    elif best == len(values):
        threshold = values[-1] + 1e-6
    else:
        threshold = 0.5 * (values[best - 1] + values[best])
    return float(threshold), float(accuracy[best])
