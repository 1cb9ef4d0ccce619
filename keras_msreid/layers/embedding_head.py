"""Embedding head: global pooling, a linear projection and batch normalisation."""

import keras
from keras import layers, ops

from keras_msreid.layers.batch_norm import batch_norm


@keras.saving.register_keras_serializable(package="keras_msreid")
class EmbeddingHead(layers.Layer):
    """Turns the high-level map into an identity embedding (a "BNNeck").

    Returns `(features, embedding)`: `features` before batch normalisation (for the
    triplet loss) and `embedding` after it (for the identity classifier and for
    retrieval, compared by cosine similarity).

    Example:

    >>> head = EmbeddingHead(dim=128)
    >>> features, embedding = head(keras.random.normal((2, 10, 4, 256)))
    >>> tuple(embedding.shape)
    (2, 128)
    """

    def __init__(self, dim=128, **kwargs):
        super().__init__(**kwargs)
        self.dim = int(dim)
        self.projection = layers.Dense(self.dim, use_bias=False, name="projection")
        self.norm = batch_norm(name="norm")

    def build(self, input_shape):
        self.projection.build((input_shape[0], input_shape[-1]))
        self.norm.build((input_shape[0], self.dim))

    def call(self, feature_map, training=None):
        features = self.projection(ops.mean(feature_map, axis=(1, 2)))
        return features, self.norm(features, training=training)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dim), (input_shape[0], self.dim)

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim)
        return config
