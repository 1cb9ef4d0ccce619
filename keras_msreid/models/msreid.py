"""MSReID: the multi-level similarity Siamese network, trainable with `model.fit`."""

import keras
import tensorflow as tf
from keras import layers, ops

from keras_msreid import losses
from keras_msreid.errors import UserError
from keras_msreid.layers.conv_similarity import ConvSimilarity
from keras_msreid.layers.embedding_head import EmbeddingHead
from keras_msreid.layers.similarity_fusion import SimilarityFusion
from keras_msreid.layers.unit_norm import unit_normalize
from keras_msreid.losses.masked_mean import masked_mean
from keras_msreid.losses.pair_mining import mine_pairs
from keras_msreid.models.trunk import LEVEL_STRIDES, build_trunk, check_patch_fits

# Image strides of the grid on which pairs are compared (`pair_stride`).
PAIR_STRIDES = (4, 8, 16)
DEFAULT_LOSS_WEIGHTS = {"identity": 1.0, "triplet": 1.0, "verification": 1.0, "ranking": 1.0}
DEFAULT_LOSS_OPTIONS = {
    # Pairs scored per anchor: its hardest positives and negatives by embedding
    # distance, and random ones, without which the score head learns "far means same".
    "hard_positives": 1,
    "random_positives": 1,
    "hard_negatives": 1,
    "random_negatives": 1,
    "triplet_margin": 0.3,
    "ranking_margin": 0.3,
    "ranking_threshold": 0.7,
    "ranking_beta": 0.5,
    "label_smoothing": 0.1,
}


@keras.saving.register_keras_serializable(package="keras_msreid")
class MSReID(keras.Model):
    """Compares two pedestrian images at several depths of a shared trunk.

    Per image, the trunk gives maps at three levels; at each level in `levels` a
    `ConvSimilarity` block normalises the map and crops STN patches; an
    `EmbeddingHead` pools the high-level map into an embedding. Per pair, each
    image's patches are correlated over the other's maps (both directions) on one
    grid of positions (`pair_stride` pixels apart, the high level's grid by
    default), the two directions' correlations are averaged, so `score(A, B) ==
    score(B, A)`, and the levels are fused from low to high into one logit.

    `model(images)` returns the per-image outputs; `model.fit(pk_batches)` mines
    pairs and triplets inside each batch of P identities x K images and trains
    score and embedding together (see `compile`). `extractor()` and `scorer()` are
    functional views of the same weights for retrieval and export.

    Example:

    >>> model = MSReID(num_classes=751)
    >>> model.compile(optimizer="adam")
    >>> model.fit(train_dataset, steps_per_epoch=100, epochs=60)   # (images, ids) PK batches
    >>> features = model.extractor().predict(images)
    >>> scores = model.scorer().predict(pair_inputs(features, features))
    """

    def __init__(
        self,
        image_size=(160, 64),
        levels=("low", "mid", "high"),
        parts=1,
        patch_size=(5, 3),
        widths=(32, 64, 128, 256),
        depths=(2, 3, 3),
        similarity_channels=32,
        reduced_channels=32,
        fusion_channels=32,
        embedding_dim=128,
        num_classes=None,
        use_stn=True,
        correlation="grouped",
        pair_stride=16,
        **kwargs,
    ):
        super().__init__(**kwargs)
        unknown = [level for level in levels if level not in LEVEL_STRIDES]
        if unknown:
            raise UserError(f"unknown levels {unknown}; choose from {list(LEVEL_STRIDES)}")
        self.image_size = tuple(int(v) for v in image_size)
        self.levels = tuple(sorted(levels, key=LEVEL_STRIDES.get))
        self.parts = int(parts)
        self.patch_size = tuple(int(v) for v in patch_size)
        check_patch_fits(self.image_size, self.patch_size, self.levels)
        self.widths = tuple(int(v) for v in widths)
        self.depths = tuple(int(v) for v in depths)
        self.similarity_channels = int(similarity_channels)
        self.reduced_channels = int(reduced_channels)
        self.fusion_channels = int(fusion_channels)
        self.embedding_dim = int(embedding_dim)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.use_stn = bool(use_stn)
        self.correlation = correlation
        self.pair_stride = int(pair_stride)
        if self.pair_stride not in PAIR_STRIDES:
            raise UserError(f"pair_stride must be one of {PAIR_STRIDES} (image pixels), got {pair_stride!r}")
        # Every level is compared on the grid `pair_stride` pixels apart (or its own,
        # if coarser): the per-pair work then no longer grows with a level's
        # resolution, while each patch keeps its level's detail (docs/RESULTS.md,
        # "Where a training step's time goes").
        correlation_strides = {level: max(1, self.pair_stride // LEVEL_STRIDES[level]) for level in self.levels}

        self.trunk = build_trunk(self.image_size, self.widths, self.depths)
        self.similarity_blocks = {
            level: ConvSimilarity(
                channels=self.similarity_channels,
                patch_size=self.patch_size,
                parts=self.parts,
                reduced_channels=self.reduced_channels,
                learn_transform=self.use_stn,
                correlation=correlation,
                strides=correlation_strides[level],
                name=f"{level}_similarity",
            )
            for level in self.levels
        }
        self.fusion = (
            SimilarityFusion(
                [LEVEL_STRIDES[level] * correlation_strides[level] for level in self.levels],
                self.fusion_channels,
                name="fusion",
            )
            if self.levels
            else None
        )
        self.embedding_head = EmbeddingHead(self.embedding_dim, name="embedding_head")
        self.classifier = (
            layers.Dense(self.num_classes, use_bias=False, name="classifier") if self.num_classes else None
        )
        self.loss_weights = dict(DEFAULT_LOSS_WEIGHTS)
        self.loss_options = dict(DEFAULT_LOSS_OPTIONS)
        self.trackers = {
            name: keras.metrics.Mean(name=f"{name}_loss") for name in DEFAULT_LOSS_WEIGHTS
        }
        self.trackers["pair_accuracy"] = keras.metrics.Mean(name="pair_accuracy")

    def build(self, input_shape=None):
        """Builds every sub-layer from the image size (the input shape is fixed)."""
        batch = (None,) + self.image_size + (3,)
        self.trunk.build(batch)
        maps = self.trunk.compute_output_shape(batch)
        self.embedding_head.build(maps["high"])
        if self.classifier is not None:
            self.classifier.build((None, self.embedding_dim))
        similarity_shapes = []
        for level in self.levels:
            block = self.similarity_blocks[level]
            block.build(maps[level])
            similarity_shapes.append(block.similarity_shape(maps[level]))
        if self.fusion is not None:
            self.fusion.build(similarity_shapes)
        self.built = True

    # ------------------------------------------------------------------ per image
    @property
    def scorer_feature_names(self):
        """Names of the extractor outputs the scorer needs, per image."""
        return [f"{level}_{kind}" for level in self.levels for kind in ("map", "patch")]

    def call(self, images, training=None):
        maps = self.trunk(images, training=training)
        features, embedding = self.embedding_head(maps["high"], training=training)
        outputs = {"features": features, "embedding": embedding}
        if self.classifier is not None:
            outputs["id_logits"] = self.classifier(embedding)
        for level in self.levels:
            unit_map, patches, theta = self.similarity_blocks[level].features(maps[level], training=training)
            outputs[f"{level}_map"] = unit_map
            outputs[f"{level}_patch"] = patches
            outputs[f"{level}_theta"] = theta
        return outputs

    # ------------------------------------------------------------------- per pair
    def pair_logits(self, features_a, features_b, training=None, correlation=None):
        """Symmetric logits `(pairs,)` of aligned pairs from two dicts of per-image features.

        At each level, A's patches are correlated over B's map and B's over A's in
        one call, and the two directions averaged (`ConvSimilarity`).
        """
        level_maps = [
            self.similarity_blocks[level](
                [features_a[f"{level}_patch"], features_a[f"{level}_map"],
                 features_b[f"{level}_patch"], features_b[f"{level}_map"]],
                training=training, correlation=correlation,
            )
            for level in self.levels
        ]
        return ops.reshape(self.fusion(level_maps, training=training), (-1,))

    # ----------------------------------------------------------- functional views
    def extractor(self):
        """Functional model: images -> embedding (unit norm), per-level maps, patches, theta."""
        images = keras.Input(self.image_size + (3,), name="images")
        outputs = self(images, training=False)
        extracted = {"embedding": unit_normalize(outputs["embedding"])}
        for level in self.levels:
            for kind in ("map", "patch", "theta"):
                extracted[f"{level}_{kind}"] = outputs[f"{level}_{kind}"]
        return keras.Model(images, extracted, name="msreid_extractor")

    def scorer(self, correlation="shift_add"):
        """Functional model: `a_<name>`, `b_<name>` features -> `score` in [0, 1].

        `correlation="shift_add"` uses builtin element-wise ops only (TFLite);
        `"grouped"` is faster on a desktop for large batches of pairs.
        """
        if not self.levels:
            raise ValueError("this model has no similarity levels: rank by its embedding instead")
        extractor = self.extractor()
        inputs = {}
        for side in ("a", "b"):
            for name in self.scorer_feature_names:
                shape = extractor.output[name].shape[1:]
                inputs[f"{side}_{name}"] = keras.Input(shape, name=f"{side}_{name}")
        split = {
            side: {name: inputs[f"{side}_{name}"] for name in self.scorer_feature_names} for side in ("a", "b")
        }
        logits = self.pair_logits(split["a"], split["b"], training=False, correlation=correlation)
        return keras.Model(inputs, {"score": ops.sigmoid(logits)}, name="msreid_scorer")

    # ------------------------------------------------------------------- training
    def compile(self, optimizer="adam", loss_weights=None, **kwargs):
        """Configures training. Other arguments go to `keras.Model.compile`.

        Args:
            optimizer: any Keras optimizer.
            loss_weights: dict overriding `DEFAULT_LOSS_WEIGHTS`: `identity` and
                `triplet` train the embedding, `verification` and `ranking` the
                score. A weight of 0 switches a term off.
            **kwargs: any of `DEFAULT_LOSS_OPTIONS` (margins, pairs mined per
                anchor, label smoothing) and `keras.Model.compile` arguments such
                as `jit_compile`.
        """
        unknown = set(loss_weights or {}) - set(DEFAULT_LOSS_WEIGHTS)
        if unknown:
            raise UserError(f"unknown loss_weights {sorted(unknown)}; known: {sorted(DEFAULT_LOSS_WEIGHTS)}")
        self.loss_weights = {**DEFAULT_LOSS_WEIGHTS, **(loss_weights or {})}
        self.loss_options = dict(DEFAULT_LOSS_OPTIONS)
        for name in DEFAULT_LOSS_OPTIONS:
            if name in kwargs:
                self.loss_options[name] = kwargs.pop(name)
        super().compile(optimizer=optimizer, **kwargs)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config:
            config = {**config, "loss_weights": dict(self.loss_weights), **self.loss_options}
        return config

    def compile_from_config(self, config):
        # The base class skips models with their own `compile`; ours takes its config back.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    @property
    def metrics(self):
        return super().metrics + list(self.trackers.values())

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        options = self.loss_options
        labels = ops.cast(ops.reshape(y, (-1,)), "int32")
        weights = self.loss_weights
        terms = {}
        features = ops.cast(y_pred["features"], "float32")
        if self.classifier is not None and weights["identity"]:
            terms["identity"] = losses.smoothed_identity_loss(
                labels, ops.cast(y_pred["id_logits"], "float32"), options["label_smoothing"]
            )
        if weights["triplet"]:
            terms["triplet"] = losses.batch_hard_triplet_loss(labels, features, options["triplet_margin"])
        if self.levels and (weights["verification"] or weights["ranking"]):
            terms.update(self._score_losses(labels, features, y_pred, options, training))
        total = 0.0
        for name, value in terms.items():
            self.trackers[name].update_state(value)
            if name in weights:
                total = total + weights[name] * value
        # Keras sums per-replica losses under tf.distribute: scale as its own losses do.
        return total / tf.distribute.get_strategy().num_replicas_in_sync

    def _score_losses(self, labels, features, y_pred, options, training):
        batch = ops.shape(labels)[0]
        # Stateless draws keyed by the step: a resumed run mines the same pairs.
        step = tf.cast(self.optimizer.iterations, tf.int32)
        noise = tf.random.stateless_uniform((batch, batch), seed=tf.stack([step, 0]))
        positive_index, positive_valid, negative_index, negative_valid = mine_pairs(
            labels,
            features,
            options["hard_positives"],
            options["hard_negatives"],
            options["random_positives"],
            options["random_negatives"],
            noise,
        )
        num_positives, num_negatives = positive_index.shape[1], negative_index.shape[1]
        anchors = ops.repeat(ops.arange(batch), num_positives + num_negatives)
        others = ops.reshape(ops.concatenate([positive_index, negative_index], axis=1), (-1,))
        names = self.scorer_feature_names
        side_a = {name: ops.take(y_pred[name], anchors, axis=0) for name in names}
        side_b = {name: ops.take(y_pred[name], others, axis=0) for name in names}
        logits = ops.cast(self.pair_logits(side_a, side_b, training=training), "float32")
        logits = ops.reshape(logits, (-1, num_positives + num_negatives))
        is_same = ops.concatenate(
            [ops.ones_like(positive_valid), ops.zeros_like(negative_valid)], axis=1
        )
        valid = ops.concatenate([positive_valid, negative_valid], axis=1)
        scores = ops.sigmoid(logits)
        correct = ops.equal(scores > 0.5, is_same)
        terms = {
            "verification": losses.verification_loss(is_same, logits, valid),
            "ranking": losses.improved_ranking_loss(
                scores[:, :num_positives],
                scores[:, num_positives:],
                positive_valid,
                negative_valid,
                options["ranking_margin"],
                options["ranking_threshold"],
                options["ranking_beta"],
            ),
            "pair_accuracy": masked_mean(ops.cast(correct, "float32"), valid),
        }
        return terms

    def get_config(self):
        config = super().get_config()
        config.update(
            image_size=self.image_size,
            levels=self.levels,
            parts=self.parts,
            patch_size=self.patch_size,
            widths=self.widths,
            depths=self.depths,
            similarity_channels=self.similarity_channels,
            reduced_channels=self.reduced_channels,
            fusion_channels=self.fusion_channels,
            embedding_dim=self.embedding_dim,
            num_classes=self.num_classes,
            use_stn=self.use_stn,
            correlation=self.correlation,
            pair_stride=self.pair_stride,
        )
        return config

    @classmethod
    def from_config(cls, config):
        outdated = sorted({"merge_directions", "low_level_stride"} & set(config))
        if outdated:
            raise UserError(f"this model was saved by an earlier keras_msreid (options {outdated}): its pair head "
                            "compared and merged the two images differently, so these weights cannot be reused; "
                            "train it again with this version")
        return cls(**config)
