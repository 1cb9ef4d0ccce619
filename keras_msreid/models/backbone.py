"""MSReIDBackbone: one image to everything the pair head and retrieval need of it."""

import keras

from keras_msreid.layers.embedding_head import EmbeddingHead
from keras_msreid.layers.similarity_features import SimilarityFeatures
from keras_msreid.models import options
from keras_msreid.models.trunk import build_trunk, check_levels, check_patch_fits


@keras.saving.register_keras_serializable(package="keras_msreid")
class MSReIDBackbone(keras.Model):
    """The per-image network: a compact trunk, an embedding, and each level's similarity features.

    `backbone(images)` (RGB in [0, 255], `image_size + (3,)`) returns a dict:
    `features` (the embedding before its batch norm, for the triplet loss),
    `embedding`, and for each level in `levels` its unit-norm similarity map
    `<level>_map`, patches `<level>_patch` and their transform `<level>_theta`
    (`SimilarityFeatures`): fixed centre patches by default, placed by a learned
    spatial transformer (the paper's STN) with `use_stn=True` (without it the
    model ranked as well and its embedding better: docs/RESULTS.md, "No STN").
    All of it is computed once per image; `MSReIDPairHead` compares two images'
    outputs.

    Example:

    >>> backbone = MSReIDBackbone(image_size=(160, 64), levels=("mid", "high"))
    >>> outputs = backbone(keras.random.uniform((2, 160, 64, 3), 0, 255))
    >>> tuple(outputs["high_map"].shape), tuple(outputs["embedding"].shape)
    ((2, 10, 4, 32), (2, 128))
    """

    def __init__(
        self,
        image_size=(160, 64),
        levels=("high",),
        widths=(32, 64, 128, 256),
        depths=(2, 3, 3),
        similarity_channels=32,
        patch_size=(5, 3),
        parts=1,
        use_stn=False,
        embedding_dim=128,
        **kwargs,
    ):
        checked = self.check_options(**options.arguments(locals()))
        super().__init__(**kwargs)
        for name, value in checked.items():
            setattr(self, name, value)
        self.trunk = build_trunk(self.image_size, self.widths, self.depths)
        self.embedding_head = EmbeddingHead(self.embedding_dim, name="embedding_head")
        self.similarity_features = {
            level: SimilarityFeatures(self.similarity_channels, self.patch_size, self.parts,
                                      learn_transform=self.use_stn, name=f"{level}_features")
            for level in self.levels
        }

    @staticmethod
    def check_options(image_size, levels, widths, depths, similarity_channels, patch_size, parts, use_stn,
                      embedding_dim):
        """The constructor's arguments checked and normalised, building nothing (no TensorFlow state)."""
        checked = dict(
            image_size=options.integers("image_size", image_size, 2, 16),
            # The high level alone is the default: at convergence on CUHK01 as good as all
            # three at 0.65x the training CPU (docs/RESULTS.md); ("low", "mid", "high") is
            # the paper's network, () an embedding-only model.
            levels=check_levels(levels),
            widths=options.integers("widths", widths, 4, 1),
            depths=options.integers("depths", depths, 3, 1),
            similarity_channels=options.integer("similarity_channels", similarity_channels, 1),
            patch_size=options.integers("patch_size", patch_size, 2, 1),
            parts=options.integer("parts", parts, 1),
            use_stn=options.flag("use_stn", use_stn),
            embedding_dim=options.integer("embedding_dim", embedding_dim, 1),
        )
        check_patch_fits(checked["image_size"], checked["patch_size"], checked["levels"])
        return checked

    @property
    def pair_feature_names(self):
        """The names of the outputs a pair head compares, per image."""
        return [f"{level}_{kind}" for level in self.levels for kind in ("map", "patch")]

    def build(self, input_shape=None):
        """Builds every layer from the image size (the input shape is fixed)."""
        batch = (None,) + self.image_size + (3,)
        self.trunk.build(batch)
        maps = self.trunk.compute_output_shape(batch)
        self.embedding_head.build(maps["high"])
        for level in self.levels:
            self.similarity_features[level].build(maps[level])
        self.built = True

    def call(self, images, training=None):
        maps = self.trunk(images, training=training)
        features, embedding = self.embedding_head(maps["high"], training=training)
        outputs = {"features": features, "embedding": embedding}
        for level in self.levels:
            unit_map, patches, theta = self.similarity_features[level](maps[level], training=training)
            outputs.update({f"{level}_map": unit_map, f"{level}_patch": patches, f"{level}_theta": theta})
        return outputs

    def output_shapes(self):
        """The shape of each output, for a batch of `None` images."""
        batch = (None,) + self.image_size + (3,)
        maps = self.trunk.compute_output_shape(batch)
        shapes = {"features": (None, self.embedding_dim), "embedding": (None, self.embedding_dim)}
        for level in self.levels:
            unit_map, patches, theta = self.similarity_features[level].compute_output_shape(maps[level])
            shapes.update({f"{level}_map": unit_map, f"{level}_patch": patches, f"{level}_theta": theta})
        return shapes

    def get_config(self):
        config = super().get_config()
        config.update(
            image_size=self.image_size,
            levels=self.levels,
            widths=self.widths,
            depths=self.depths,
            similarity_channels=self.similarity_channels,
            patch_size=self.patch_size,
            parts=self.parts,
            use_stn=self.use_stn,
            embedding_dim=self.embedding_dim,
        )
        return config
