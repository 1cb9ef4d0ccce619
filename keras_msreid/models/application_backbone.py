"""ApplicationBackbone: a `keras.applications` network as a ReID backbone, the peer a user would pick instead."""

import keras
from keras import layers

from keras_msreid.layers.batch_norm import MOMENTUM
from keras_msreid.layers.embedding_head import EmbeddingHead
from keras_msreid.models import options
from keras_msreid.models.trunk import check_image_size

# Constructor of each supported network, and the input range it was designed for.
APPLICATIONS = {
    "MobileNetV2": (keras.applications.MobileNetV2, (-1.0, 1.0)),
    "MobileNetV3Small": (keras.applications.MobileNetV3Small, (0.0, 255.0)),
}


@keras.saving.register_keras_serializable(package="keras_msreid")
class ApplicationBackbone(keras.Model):
    """A `keras.applications` network trained from scratch under the same embedding head and losses.

    For comparisons (issue 11): the network's last map is pooled by the same
    `EmbeddingHead` (a BNNeck) as `MSReIDBackbone`, so `MSReID(ApplicationBackbone(...),
    num_classes=N)` trains with the same identity and triplet losses and ranks by
    its embedding. It has no similarity levels, hence no pair head. Weights start
    random (`weights=None`): nothing is downloaded.

    Example:

    >>> backbone = ApplicationBackbone("MobileNetV2", alpha=0.35, image_size=(160, 64))
    >>> model = MSReID(backbone, num_classes=751)
    >>> tuple(backbone(keras.random.uniform((2, 160, 64, 3), 0, 255))["embedding"].shape)
    (2, 128)
    """

    def __init__(self, application="MobileNetV2", alpha=1.0, image_size=(160, 64), embedding_dim=128, **kwargs):
        checked = self.check_options(**options.arguments(locals()))
        super().__init__(**kwargs)
        for name, value in checked.items():
            setattr(self, name, value)
        self.levels = ()
        build, (low, high) = APPLICATIONS[application]
        # Images arrive in [0, 255], as for MSReIDBackbone; the network gets its own range.
        self.normalise = layers.Rescaling((high - low) / 255.0, offset=low, name="normalise")
        self.network = build(input_shape=self.image_size + (3,), alpha=self.alpha, include_top=False,
                             weights=None, **({"include_preprocessing": False} if low == 0.0 else {}))
        # keras.applications builds its batch norms with momentum 0.999, so after 1,000
        # steps from scratch 37 % of their moving statistics are still the initial (0, 1)
        # and the network infers garbage for much of a short run. The momentum of
        # MSReID's own layers, so that the peer is trained the same way.
        for layer in self.network.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = MOMENTUM
        self.embedding_head = EmbeddingHead(self.embedding_dim, name="embedding_head")

    @staticmethod
    def check_options(application, alpha, image_size, embedding_dim):
        """The constructor's arguments checked and normalised, building nothing (no TensorFlow state)."""
        if application not in APPLICATIONS:
            raise options.ModelOptionError(
                "application", f"application must be one of {sorted(APPLICATIONS)}, got {application!r}")
        checked = dict(
            application=application,
            alpha=options.positive_number("alpha", alpha),
            image_size=options.integers("image_size", image_size, 2, 16),
            embedding_dim=options.integer("embedding_dim", embedding_dim, 1),
        )
        check_image_size(checked["image_size"])
        return checked

    @property
    def pair_feature_names(self):
        return []

    def build(self, input_shape=None):
        batch = (None,) + self.image_size + (3,)
        self.normalise.build(batch)
        self.embedding_head.build(self.network.compute_output_shape(batch))
        self.built = True

    def call(self, images, training=None):
        feature_map = self.network(self.normalise(images), training=training)
        features, embedding = self.embedding_head(feature_map, training=training)
        return {"features": features, "embedding": embedding}

    def output_shapes(self):
        return {"features": (None, self.embedding_dim), "embedding": (None, self.embedding_dim)}

    def get_config(self):
        config = super().get_config()
        config.update(application=self.application, alpha=self.alpha, image_size=self.image_size,
                      embedding_dim=self.embedding_dim)
        return config
