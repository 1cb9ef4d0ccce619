"""Batch-hard triplet loss (Hermans et al., 2017) on embedding features."""

from keras import ops


def pairwise_euclidean(features):
    """Euclidean distances between all rows; the epsilon keeps the gradient finite at 0."""
    squared = ops.sum(ops.square(features), axis=-1)
    products = ops.matmul(features, ops.transpose(features))
    distances = squared[:, None] - 2.0 * products + squared[None, :]
    return ops.sqrt(ops.maximum(distances, 1e-12))


def batch_hard_triplet_loss(labels, features, margin=0.3):
    """For each anchor: `max(0, margin + d(hardest positive) - d(hardest negative))`.

    Anchors without a positive or a negative in the batch are left out.

    Example:

    >>> labels = ops.array([0, 0, 1, 1])
    >>> features = ops.array([[0.0], [1.0], [5.0], [6.0]])
    >>> float(batch_hard_triplet_loss(labels, features, margin=0.3))
    0.0
    """
    labels = ops.reshape(labels, (-1,))
    distances = pairwise_euclidean(features)
    same = ops.equal(labels[:, None], labels[None, :])
    not_self = ops.logical_not(ops.eye(ops.shape(labels)[0], dtype="bool"))
    positive = ops.logical_and(same, not_self)
    negative = ops.logical_not(same)
    large = ops.max(distances) + 1.0
    hardest_positive = ops.max(ops.where(positive, distances, 0.0), axis=1)
    hardest_negative = ops.min(ops.where(negative, distances, large), axis=1)
    valid = ops.logical_and(ops.any(positive, axis=1), ops.any(negative, axis=1))
    losses = ops.relu(margin + hardest_positive - hardest_negative)
    valid = ops.cast(valid, losses.dtype)
    return ops.sum(losses * valid) / ops.maximum(ops.sum(valid), 1.0)
