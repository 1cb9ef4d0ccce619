"""Keras layers of the multi-level similarity network."""

from keras_msreid.layers.conv_similarity import ConvSimilarity
from keras_msreid.layers.depthwise_correlation import DepthwiseCorrelation
from keras_msreid.layers.embedding_head import EmbeddingHead
from keras_msreid.layers.similarity_features import SimilarityFeatures
from keras_msreid.layers.similarity_fusion import SimilarityFusion
from keras_msreid.layers.spatial_transformer import SpatialTransformer

__all__ = ["ConvSimilarity", "DepthwiseCorrelation", "EmbeddingHead", "SimilarityFeatures", "SimilarityFusion",
           "SpatialTransformer"]
