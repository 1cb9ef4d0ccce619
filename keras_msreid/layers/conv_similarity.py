"""The convolution similarity network (CSN) block of one level."""

import keras
from keras import layers, ops

from keras_msreid.layers.batch_norm import batch_norm
from keras_msreid.layers.depthwise_correlation import DepthwiseCorrelation
from keras_msreid.layers.spatial_transformer import SpatialTransformer
from keras_msreid.layers.unit_norm import unit_normalize


@keras.saving.register_keras_serializable(package="keras_msreid")
class ConvSimilarity(layers.Layer):
    """Compares two images at one level: STN patch of one, correlated over the other.

    The block has a per-image half and a per-pair half, so that features are
    computed once per image and only the cheap half runs per pair:

    - `features(feature_map)`: projects the trunk's map to `channels` channels,
      normalises every cell to a unit vector (scores stay bounded), and crops
      `parts` patches with a `SpatialTransformer`. Returns `(map, patches, theta)`.
    - `call([patches_a, maps_a, patches_b, maps_b])`: depth-wise correlation of A's
      patches over B's map and of B's over A's (one call, both directions stacked),
      the two averaged, then reduced by a 1x1 convolution to `reduced_channels`.
      Averaging before the reduction makes the result symmetric by construction and
      halves the reduction's work per pair. `strides` > 1 compares at a coarser grid
      of positions (cheaper per pair).

    Example:

    >>> csn = ConvSimilarity(channels=16, patch_size=(5, 3))
    >>> maps, patches, _ = csn.features(keras.random.normal((2, 40, 16, 64)))
    >>> tuple(csn([patches[:1], maps[:1], patches[1:], maps[1:]]).shape)   # image 0 against image 1
    (1, 40, 16, 32)
    """

    def __init__(
        self,
        channels=32,
        patch_size=(5, 3),
        parts=1,
        reduced_channels=32,
        learn_transform=True,
        correlation="grouped",
        strides=1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.patch_size = tuple(int(v) for v in patch_size)
        self.parts = int(parts)
        self.reduced_channels = int(reduced_channels)
        self.learn_transform = bool(learn_transform)
        self.correlation_method = correlation
        self.strides = int(strides)
        self.projection = layers.Conv2D(self.channels, 1, use_bias=False, name="projection")
        self.projection_norm = batch_norm(name="projection_norm")
        self.spatial_transformer = SpatialTransformer(
            self.patch_size, self.parts, learn_transform=self.learn_transform, name="spatial_transformer"
        )
        self.correlations = {
            method: DepthwiseCorrelation(method, self.strides, name=f"correlation_{method}")
            for method in DepthwiseCorrelation.METHODS
        }
        if correlation not in self.correlations:
            raise ValueError(f"correlation must be one of {DepthwiseCorrelation.METHODS}, got {correlation!r}")
        self.reduction = layers.Conv2D(self.reduced_channels, 1, use_bias=False, name="reduction")
        self.reduction_norm = batch_norm(name="reduction_norm")

    def build(self, input_shape):
        """`input_shape` is the trunk map's shape `(batch, height, width, trunk_channels)`."""
        map_shape = tuple(input_shape[:3]) + (self.channels,)
        self.projection.build(input_shape)
        self.projection_norm.build(map_shape)
        self.spatial_transformer.build(map_shape)
        score_shape = self.correlations[self.correlation_method].compute_output_shape(
            ((None, self.parts) + self.patch_size + (self.channels,), map_shape)
        )
        self.reduction.build(score_shape)
        self.reduction_norm.build(score_shape[:3] + (self.reduced_channels,))

    def similarity_shape(self, trunk_map_shape):
        """The shape of the per-pair similarity map `call` gives for trunk maps of this shape."""
        map_shape = tuple(trunk_map_shape[:3]) + (self.channels,)
        score_shape = self.correlations[self.correlation_method].compute_output_shape(
            ((None, self.parts) + self.patch_size + (self.channels,), map_shape)
        )
        return tuple(score_shape[:3]) + (self.reduced_channels,)

    def features(self, feature_map, training=None):
        if not self.built:
            self.build(feature_map.shape)
        projected = self.projection_norm(self.projection(feature_map), training=training)
        unit_map = unit_normalize(projected)
        patches, theta = self.spatial_transformer(unit_map, training=training)
        return unit_map, patches, theta

    def call(self, inputs, training=None, correlation=None):
        patches_a, maps_a, patches_b, maps_b = inputs
        patches = ops.concatenate([patches_a, patches_b], axis=0)
        maps = ops.concatenate([maps_b, maps_a], axis=0)
        both = self.correlations[correlation or self.correlation_method]([patches, maps])
        scores = ops.mean(ops.reshape(both, (2, -1) + tuple(both.shape[1:])), axis=0)
        return ops.relu(self.reduction_norm(self.reduction(scores), training=training))

    def get_config(self):
        config = super().get_config()
        config.update(
            channels=self.channels,
            patch_size=self.patch_size,
            parts=self.parts,
            reduced_channels=self.reduced_channels,
            learn_transform=self.learn_transform,
            correlation=self.correlation_method,
            strides=self.strides,
        )
        return config
