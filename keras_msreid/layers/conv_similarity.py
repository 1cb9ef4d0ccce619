"""The per-pair half of a level's convolution similarity network (CSN)."""

import keras
from keras import layers, ops

from keras_msreid.layers.batch_norm import batch_norm
from keras_msreid.layers.depthwise_correlation import DepthwiseCorrelation


@keras.saving.register_keras_serializable(package="keras_msreid")
class ConvSimilarity(layers.Layer):
    """Compares two images at one level: each one's STN patches correlated over the other's map.

    `call([patches_a, maps_a, patches_b, maps_b])` (the outputs of
    `SimilarityFeatures` for the two images of each pair) runs the depth-wise
    correlation of A's patches over B's map and of B's over A's in one call, both
    directions stacked, averages the two, and reduces the result by a 1x1
    convolution to `reduced_channels`. Averaging before the reduction makes the
    result symmetric by construction and halves the reduction's work per pair.
    `strides` > 1 compares at a coarser grid of positions (cheaper per pair).
    `call(..., correlation="one_to_many")` takes A as a single image (a batch of 1)
    met by every row of B, the form of the exported scorer (a query against its
    gallery); the numbers are the same. `call(..., rows=(rows_a, rows_b))` takes
    both sides as per-image batches (they may be the same) and pair `i` as row
    `rows_a[i]` of A against row `rows_b[i]` of B, as a training step mines them.

    Example:

    >>> features, similarity = SimilarityFeatures(channels=16), ConvSimilarity()
    >>> maps, patches, _ = features(keras.random.normal((2, 40, 16, 64)))
    >>> tuple(similarity([patches[:1], maps[:1], patches[1:], maps[1:]]).shape)   # image 0 against image 1
    (1, 40, 16, 32)
    """

    def __init__(self, reduced_channels=32, correlation="grouped", strides=1, **kwargs):
        super().__init__(**kwargs)
        self.reduced_channels = int(reduced_channels)
        self.correlation_method = correlation
        self.strides = int(strides)
        if correlation not in DepthwiseCorrelation.ALIGNED_METHODS:
            raise ValueError(f"correlation must be one of {DepthwiseCorrelation.ALIGNED_METHODS}, got {correlation!r}")
        self.correlations = {
            method: DepthwiseCorrelation(method, self.strides, name=f"correlation_{method}")
            for method in DepthwiseCorrelation.METHODS
        }
        self.reduction = layers.Conv2D(self.reduced_channels, 1, use_bias=False, name="reduction")
        self.reduction_norm = batch_norm(name="reduction_norm")

    def build(self, input_shape):
        """`input_shape`: the shapes of `[patches_a, maps_a, patches_b, maps_b]`."""
        score_shape = self.correlations[self.correlation_method].compute_output_shape(input_shape[:2])
        self.reduction.build(score_shape)
        self.reduction_norm.build(tuple(score_shape[:3]) + (self.reduced_channels,))

    def compute_output_shape(self, input_shape):
        score_shape = self.correlations[self.correlation_method].compute_output_shape(input_shape[:2])
        return tuple(score_shape[:3]) + (self.reduced_channels,)

    def call(self, inputs, training=None, correlation=None, rows=None):
        patches_a, maps_a, patches_b, maps_b = inputs
        correlation = correlation or self.correlation_method
        correlate = self.correlations[correlation]
        if correlation == "one_to_many" and rows is None:
            # One side is a single image: the two directions differ in form and run apart.
            scores = (correlate([patches_a, maps_b]) + correlate([patches_b, maps_a])) * 0.5
        else:
            if rows is None:
                patches = ops.concatenate([patches_a, patches_b], axis=0)
                both = correlate([patches, ops.concatenate([maps_b, maps_a], axis=0)])
            else:
                both = self._both_directions_of_rows(correlate, patches_a, maps_a, patches_b, maps_b, *rows)
            scores = ops.mean(ops.reshape(both, (2, -1) + tuple(both.shape[1:])), axis=0)
        return ops.relu(self.reduction_norm(self.reduction(scores), training=training))

    @staticmethod
    def _both_directions_of_rows(correlate, patches_a, maps_a, patches_b, maps_b, rows_a, rows_b):
        """A's patches over B's maps, then B's over A's, of pairs `(rows_a[i], rows_b[i])` of per-image batches."""
        if patches_a is patches_b and maps_a is maps_b:
            # One batch on both sides (a training step's pairs): its maps are unfolded once.
            patches, maps, offset = patches_a, maps_a, 0
        else:
            patches, maps = ops.concatenate([patches_a, patches_b], 0), ops.concatenate([maps_a, maps_b], 0)
            offset = ops.shape(maps_a)[0]
        rows_a, rows_b = ops.cast(rows_a, "int32"), ops.cast(rows_b, "int32") + offset
        return correlate([patches, maps], rows=(ops.concatenate([rows_a, rows_b], 0),
                                                ops.concatenate([rows_b, rows_a], 0)))

    def get_config(self):
        config = super().get_config()
        config.update(reduced_channels=self.reduced_channels, correlation=self.correlation_method,
                      strides=self.strides)
        return config
