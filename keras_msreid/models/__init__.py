"""Models: the trunk and the multi-level similarity network."""

from keras_msreid.models.loading import load_model
from keras_msreid.models.msreid import MSReID
from keras_msreid.models.trunk import LEVEL_STRIDES, build_trunk

__all__ = ["LEVEL_STRIDES", "MSReID", "build_trunk", "load_model"]
