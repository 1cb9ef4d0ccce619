"""Mean over the entries a mask keeps (zero when it keeps none)."""

from keras import ops


def masked_mean(values, mask):
    mask = ops.cast(mask, values.dtype)
    return ops.sum(values * mask) / ops.maximum(ops.sum(mask), 1.0)
