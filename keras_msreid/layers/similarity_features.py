"""The per-image half of a level's convolution similarity network (CSN)."""

import keras
from keras import layers

from keras_msreid.layers.batch_norm import batch_norm
from keras_msreid.layers.spatial_transformer import SpatialTransformer
from keras_msreid.layers.unit_norm import unit_normalize


@keras.saving.register_keras_serializable(package="keras_msreid")
class SimilarityFeatures(layers.Layer):
    """What one image contributes to every pair it is in, at one level, computed once.

    Projects the trunk's map to `channels` channels, normalises every cell to a unit
    vector (so that correlations, and with them the pair scores, stay bounded), and
    crops `parts` patches with a `SpatialTransformer` (learned attention, or fixed
    centre patches with `learn_transform=False`). Returns `(map, patches, theta)`;
    `ConvSimilarity` compares two images' results.

    Example:

    >>> features = SimilarityFeatures(channels=16, patch_size=(5, 3))
    >>> unit_map, patches, theta = features(keras.random.normal((2, 40, 16, 64)))
    >>> tuple(unit_map.shape), tuple(patches.shape)
    ((2, 40, 16, 16), (2, 1, 5, 3, 16))
    """

    def __init__(self, channels=32, patch_size=(5, 3), parts=1, learn_transform=True, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.patch_size = tuple(int(v) for v in patch_size)
        self.parts = int(parts)
        self.learn_transform = bool(learn_transform)
        self.projection = layers.Conv2D(self.channels, 1, use_bias=False, name="projection")
        self.projection_norm = batch_norm(name="projection_norm")
        self.spatial_transformer = SpatialTransformer(
            self.patch_size, self.parts, learn_transform=self.learn_transform, name="spatial_transformer"
        )

    def build(self, input_shape):
        """`input_shape` is the trunk map's shape `(batch, height, width, trunk_channels)`."""
        map_shape = tuple(input_shape[:3]) + (self.channels,)
        self.projection.build(input_shape)
        self.projection_norm.build(map_shape)
        self.spatial_transformer.build(map_shape)

    def call(self, feature_map, training=None):
        unit_map = unit_normalize(self.projection_norm(self.projection(feature_map), training=training))
        patches, theta = self.spatial_transformer(unit_map, training=training)
        return unit_map, patches, theta

    def compute_output_shape(self, input_shape):
        map_shape = tuple(input_shape[:3]) + (self.channels,)
        return (map_shape, (input_shape[0], self.parts) + self.patch_size + (self.channels,),
                (input_shape[0], self.parts, 4))

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels, patch_size=self.patch_size, parts=self.parts,
                      learn_transform=self.learn_transform)
        return config
