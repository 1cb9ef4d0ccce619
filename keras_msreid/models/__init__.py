"""Models: the backbone (per image), the pair head (per pair) and the MSReID task that trains them."""

from keras_msreid.models.application_backbone import ApplicationBackbone
from keras_msreid.models.backbone import MSReIDBackbone
from keras_msreid.models.loading import load_model
from keras_msreid.models.msreid import MSReID
from keras_msreid.models.pair_head import MSReIDPairHead
from keras_msreid.models.trunk import LEVEL_STRIDES, build_trunk

__all__ = [
    "LEVEL_STRIDES",
    "ApplicationBackbone",
    "MSReID",
    "MSReIDBackbone",
    "MSReIDPairHead",
    "build_trunk",
    "load_model",
]
