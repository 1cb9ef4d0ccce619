"""Verification loss: binary cross-entropy of pair logits."""

from keras import ops

from keras_msreid.losses.masked_mean import masked_mean


def verification_loss(is_same, logits, valid):
    """Mean binary cross-entropy over the valid pairs, computed from logits (stable)."""
    targets = ops.cast(is_same, logits.dtype)
    # log(1 + exp(-|z|)) + max(z, 0) - z * t is BCE with logits, without overflow.
    losses = ops.softplus(-ops.abs(logits)) + ops.relu(logits) - logits * targets
    return masked_mean(losses, valid)
