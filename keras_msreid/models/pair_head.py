"""MSReIDPairHead: two images' backbone outputs to one symmetric logit per pair."""

import keras
from keras import ops

from keras_msreid.layers.conv_similarity import ConvSimilarity
from keras_msreid.layers.depthwise_correlation import DepthwiseCorrelation, cells_read
from keras_msreid.layers.similarity_fusion import SimilarityFusion
from keras_msreid.models import options
from keras_msreid.models.trunk import LEVEL_STRIDES, check_levels

# Image strides of the grid on which pairs are compared (`pair_stride`).
PAIR_STRIDES = (4, 8, 16)


@keras.saving.register_keras_serializable(package="keras_msreid")
class MSReIDPairHead(keras.layers.Layer):
    """Multi-level similarity of aligned pairs: `head(features_a, features_b)` -> logits `(pairs,)`.

    `features_a` and `features_b` are dicts of per-image backbone outputs
    (`<level>_map`, `<level>_patch`), row i of one paired with row i of the other.
    At each level a `ConvSimilarity` correlates each image's patches over the
    other's map, both directions in one call, averaged, so that
    `head(a, b) == head(b, a)`; every level is compared on the grid `pair_stride`
    image pixels apart (or its own, if coarser), so the per-pair work does not grow
    with a level's resolution while each patch keeps its level's detail
    (docs/RESULTS.md, "Where a training step's time goes"). A `SimilarityFusion`
    joins the levels from low to high into one logit. `call(..., correlation=,
    context=)` choose how its depth-wise steps run (`MSReID.scorer`), the same
    numbers either way. `call(..., rows=(rows_a, rows_b))` scores pair `i` as row
    `rows_a[i]` of `features_a` against row `rows_b[i]` of `features_b`, both
    per-image (the same dict in a training step): no map is copied per pair, and a
    level compared at a stride its patch fits in is unfolded once per image
    (`correlate_indexed`).

    Example:

    >>> backbone = MSReIDBackbone(levels=("mid", "high"))
    >>> head = MSReIDPairHead(levels=("mid", "high"))
    >>> features = backbone(keras.random.uniform((4, 160, 64, 3), 0, 255))
    >>> a = {name: value[:2] for name, value in features.items()}
    >>> b = {name: value[2:] for name, value in features.items()}
    >>> tuple(head(a, b).shape)
    (2,)
    """

    def __init__(self, levels=("high",), pair_stride=16, reduced_channels=32, fusion_channels=32,
                 correlation="grouped", **kwargs):
        checked = self.check_options(**options.arguments(locals()))
        super().__init__(**kwargs)
        for name, value in checked.items():
            setattr(self, name, value)
        correlation_strides = {level: max(1, self.pair_stride // LEVEL_STRIDES[level]) for level in self.levels}
        self.similarities = {
            level: ConvSimilarity(self.reduced_channels, correlation, correlation_strides[level],
                                  name=f"{level}_similarity")
            for level in self.levels
        }
        self.fusion = SimilarityFusion(
            [LEVEL_STRIDES[level] * correlation_strides[level] for level in self.levels],
            self.fusion_channels,
            name="fusion",
        )

    @staticmethod
    def check_options(levels, pair_stride, reduced_channels, fusion_channels, correlation):
        """The constructor's arguments checked and normalised, building nothing (no TensorFlow state)."""
        levels = check_levels(levels)
        if not levels:
            raise options.ModelOptionError("levels", "a pair head needs at least one level")
        return dict(
            levels=levels,
            pair_stride=int(options.choice("pair_stride", pair_stride, PAIR_STRIDES)),
            reduced_channels=options.integer("reduced_channels", reduced_channels, 1),
            fusion_channels=options.integer("fusion_channels", fusion_channels, 1),
            correlation=options.choice("correlation", correlation, DepthwiseCorrelation.ALIGNED_METHODS),
        )

    def build(self, feature_shapes):
        """`feature_shapes`: a dict of the backbone's output shapes (at least `feature_names`)."""
        similarity_shapes = []
        for level in self.levels:
            shapes = [feature_shapes[f"{level}_patch"], feature_shapes[f"{level}_map"]] * 2
            self.similarities[level].build(shapes)
            similarity_shapes.append(self.similarities[level].compute_output_shape(shapes))
        self.fusion.build(similarity_shapes)
        self.built = True

    def cells_read(self, feature_shapes):
        """`{"<level>_map": boolean (height, width)}`: the map cells a pair's score depends on.

        `feature_shapes` as for `build`. A feature store keeps only these cells.
        """
        masks = {}
        for level in self.levels:
            patch_size = tuple(feature_shapes[f"{level}_patch"][-3:-1])
            map_size = tuple(feature_shapes[f"{level}_map"][-3:-1])
            masks[f"{level}_map"] = cells_read(map_size, patch_size, self.similarities[level].strides)
        return masks

    def get_build_config(self):
        # Built by its task (`MSReID.build`) or on its first call: a saved shape dict would
        # come back from JSON with lists for tuples, and the config would not round-trip.
        return None

    def call(self, features_a, features_b, training=None, correlation=None, context=None, rows=None):
        # The fusion's context runs as the correlations do unless told otherwise; it is
        # per pair, so a one-to-many comparison runs it as the aligned form does.
        correlation = correlation or self.correlation
        context = context or (self.correlation if correlation == "one_to_many" else correlation)
        level_maps = [
            self.similarities[level](
                [features_a[f"{level}_patch"], features_a[f"{level}_map"],
                 features_b[f"{level}_patch"], features_b[f"{level}_map"]],
                training=training, correlation=correlation, rows=rows,
            )
            for level in self.levels
        ]
        fused = self.fusion(level_maps, training=training, depthwise=context)
        return ops.reshape(fused, (-1,))

    def get_config(self):
        config = super().get_config()
        config.update(levels=self.levels, pair_stride=self.pair_stride, reduced_channels=self.reduced_channels,
                      fusion_channels=self.fusion_channels, correlation=self.correlation)
        return config
