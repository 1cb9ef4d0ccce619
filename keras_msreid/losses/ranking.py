"""The improved ranking loss on pair scores (our reading of Guo and Cheung, 2018)."""

from keras import ops

from keras_msreid.losses.masked_mean import masked_mean


def improved_ranking_loss(
    positive_scores, negative_scores, positive_valid, negative_valid, margin=0.3, threshold=0.7, beta=0.5
):
    """Relative ranking plus an absolute pull of positive scores above a threshold.

    For every anchor with positive scores `s(a, p)` (shape `(anchors, P)`) and
    negative scores `s(a, n)` (shape `(anchors, N)`), all in [0, 1]:

        mean over (a, p, n) of max(0, margin - s(a, p) + s(a, n))
        + beta * mean over (a, p) of max(0, threshold - s(a, p))

    The first term only orders scores; the second makes a positive score mean
    "same person" in absolute terms, which a fixed match threshold on the device
    relies on.

    Example:

    >>> float(improved_ranking_loss(ops.array([[0.9]]), ops.array([[0.1]]),
    ...                             ops.array([[True]]), ops.array([[True]])))
    0.0
    """
    gaps = margin - positive_scores[:, :, None] + negative_scores[:, None, :]
    both_valid = ops.logical_and(positive_valid[:, :, None], negative_valid[:, None, :])
    relative = masked_mean(ops.relu(gaps), both_valid)
    absolute = masked_mean(ops.relu(threshold - positive_scores), positive_valid)
    return relative + beta * absolute
