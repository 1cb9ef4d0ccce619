"""Identity classification loss with label smoothing."""

from keras import ops


def smoothed_identity_loss(labels, logits, smoothing=0.1):
    """Cross-entropy against `(1 - smoothing) * one_hot + smoothing / classes`.

    Example:

    >>> float(smoothed_identity_loss(ops.array([0]), ops.array([[0.0, 0.0]])))
    0.6931...
    """
    num_classes = logits.shape[-1]
    targets = ops.one_hot(ops.cast(labels, "int32"), num_classes, dtype=logits.dtype)
    targets = targets * (1.0 - smoothing) + smoothing / num_classes
    return ops.mean(-ops.sum(targets * ops.log_softmax(logits, axis=-1), axis=-1))
