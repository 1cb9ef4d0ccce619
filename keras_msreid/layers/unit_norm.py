"""L2 normalisation that stays finite in TFLite, int8 included."""

from keras import ops

# Added to the squared norm, so that an all-zero vector (an untrained model, an
# empty cell) gives zeros rather than NaN: Keras's UnitNormalization converts to a
# TFLite graph whose rsqrt(0) = inf times 0 is NaN under LiteRT.
EPSILON = 1e-6


def unit_normalize(x, axis=-1):
    """`x / sqrt(|x|^2 + EPSILON)`: unit length for vectors well above EPSILON's scale.

    Example:

    >>> float(ops.sum(unit_normalize(ops.array([[3.0, 4.0]])) ** 2))
    1.0
    """
    return x * ops.rsqrt(ops.sum(ops.square(x), axis=axis, keepdims=True) + EPSILON)
