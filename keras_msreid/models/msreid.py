"""MSReID: the multi-level similarity Siamese network as a task, trainable with `model.fit`."""

import inspect

import keras
import tensorflow as tf
from keras import layers, ops

from keras_msreid import losses
from keras_msreid.errors import UserError
from keras_msreid.layers.unit_norm import unit_normalize
from keras_msreid.losses.masked_mean import masked_mean
from keras_msreid.losses.pair_mining import mine_pairs
from keras_msreid.models import options as options_module
from keras_msreid.models.application_backbone import APPLICATIONS, ApplicationBackbone
from keras_msreid.models.backbone import MSReIDBackbone
from keras_msreid.models.pair_head import MSReIDPairHead

# The paper's improved ranking loss is off by default: on the default network (high level,
# no STN) the recipe without it ranked CUHK01's validation identities level or better on
# all three seeded splits (docs/RESULTS.md, "The ranking loss off by default"). The
# verification loss already pushes each positive score toward 1 and each negative toward
# 0, which orders them; without the threshold term positive scores were no lower.
DEFAULT_LOSS_WEIGHTS = {"identity": 1.0, "triplet": 1.0, "verification": 1.0, "ranking": 0.0}
DEFAULT_LOSS_OPTIONS = {
    # Pairs scored per anchor: random positives and negatives. Hardest-by-embedding pairs
    # are the ones a head sharing the embedding's features gets wrong by construction:
    # with them the high-level head stayed at chance for ~30 epochs on CUHK01, without
    # them it learns from the first epochs and ends higher (docs/RESULTS.md).
    "hard_positives": 0,
    "random_positives": 2,
    "hard_negatives": 0,
    "random_negatives": 2,
    "triplet_margin": 0.3,
    "ranking_margin": 0.3,
    "ranking_threshold": 0.7,
    "ranking_beta": 0.5,
    "label_smoothing": 0.1,
}


@keras.saving.register_keras_serializable(package="keras_msreid")
class MSReID(keras.Model):
    """The re-identification task: a backbone, a pair head, and how they are trained together.

    Per image, the `backbone` (`MSReIDBackbone`) gives an embedding and each
    level's similarity features; per pair, the `pair_head` (`MSReIDPairHead`, or
    `None` for an embedding-only model) gives one symmetric logit. `model(images)`
    returns the backbone's outputs, with `id_logits` of the identity classifier when
    `num_classes` is set; `model.fit(pk_batches)` mines pairs and triplets inside
    each batch of P identities x K images and trains score and embedding together
    (see `compile`). `extractor()` and `scorer()` are functional views of the same
    weights for retrieval and export. `MSReID.from_options` builds both parts from
    one flat mapping of options (what `TrainConfig` and the CLI pass).

    Example:

    >>> model = MSReID(MSReIDBackbone(levels=("mid", "high")), MSReIDPairHead(levels=("mid", "high")),
    ...                num_classes=751)      # or MSReID.from_options(levels=("mid", "high"), num_classes=751)
    >>> model.compile(optimizer="adam")
    >>> model.fit(train_dataset, steps_per_epoch=100, epochs=60)   # (images, ids) PK batches
    >>> features = model.extractor().predict(images)
    >>> scores = model.scorer().predict(pair_inputs(features, features))
    """

    def __init__(self, backbone, pair_head=None, num_classes=None, **kwargs):
        super().__init__(**kwargs)
        if pair_head is not None and tuple(pair_head.levels) != tuple(backbone.levels):
            raise UserError(f"the pair head compares levels {list(pair_head.levels)} but the backbone computes "
                            f"{list(backbone.levels)}")
        if pair_head is None and backbone.levels:
            raise UserError(f"the backbone computes similarity features at {list(backbone.levels)} but there is "
                            "no pair head to compare them: give one, or a backbone with levels=()")
        self.backbone = backbone
        self.pair_head = pair_head
        self.num_classes = None if num_classes is None else int(num_classes)
        self.classifier = (
            layers.Dense(self.num_classes, use_bias=False, name="classifier") if self.num_classes else None
        )
        self.loss_weights = dict(DEFAULT_LOSS_WEIGHTS)
        self.loss_options = dict(DEFAULT_LOSS_OPTIONS)
        # A tracker per loss term this model can have: no pair terms without a pair head.
        applies = {"identity": self.classifier is not None, "verification": pair_head is not None,
                   "ranking": pair_head is not None}
        self.trackers = {name: keras.metrics.Mean(name=f"{name}_loss")
                         for name in DEFAULT_LOSS_WEIGHTS if applies.get(name, True)}
        if pair_head is not None:
            self.trackers["pair_accuracy"] = keras.metrics.Mean(name="pair_accuracy")

    @classmethod
    def from_options(cls, num_classes=None, backbone="msreid", **options):
        """A model from one flat mapping of options: what `TrainConfig.model` holds and the CLI passes.

        `backbone="msreid"` (the default) takes `MSReIDBackbone` and `MSReIDPairHead`
        options, `levels` going to both; `levels=()` gives no pair head. A
        `keras.applications` name (`ApplicationBackbone`: "MobileNetV2",
        "MobileNetV3Small") takes its options (`alpha`, `image_size`,
        `embedding_dim`) and has no pair head: the peer a user would pick instead. An
        option the chosen parts do not take is an error naming it.
        """
        cls.check_options(backbone, **options)
        if backbone != "msreid":
            return cls(ApplicationBackbone(backbone, **options, name="backbone"), None, num_classes)
        head_names = _parameters(MSReIDPairHead)
        backbone_model = MSReIDBackbone(**{key: value for key, value in options.items()
                                           if key in _parameters(MSReIDBackbone)}, name="backbone")
        head_options = {key: value for key, value in options.items() if key in head_names and key != "levels"}
        pair_head = (MSReIDPairHead(backbone_model.levels, **head_options, name="pair_head")
                     if backbone_model.levels else None)
        return cls(backbone_model, pair_head, num_classes)

    @staticmethod
    def check_options(backbone="msreid", **options):
        """Checks a `from_options` mapping as building it would, building nothing.

        No layer is made and no TensorFlow state is touched, so that `TrainConfig` can
        check a config before a distribution strategy exists (a multi-worker strategy
        must be the process's first TensorFlow work).
        """
        options_module.choice("backbone", backbone, ("msreid", *APPLICATIONS))
        if backbone != "msreid":
            _check_known(options, ApplicationBackbone, backbone=backbone)
            arguments = _with_defaults(ApplicationBackbone, {**options, "application": backbone})
            ApplicationBackbone.check_options(**arguments)
            return
        _check_known(options, MSReIDBackbone, MSReIDPairHead)
        levels = MSReIDBackbone.check_options(**_with_defaults(MSReIDBackbone, options))["levels"]
        if levels:
            MSReIDPairHead.check_options(**_with_defaults(MSReIDPairHead, {**options, "levels": levels}))

    @staticmethod
    def option_names():
        """Every option `from_options` takes, over all backbones."""
        parts = (MSReIDBackbone, MSReIDPairHead, ApplicationBackbone)
        return {"backbone"}.union(*(_parameters(part) for part in parts))

    @property
    def image_size(self):
        return self.backbone.image_size

    @property
    def levels(self):
        return self.backbone.levels

    @property
    def scorer_feature_names(self):
        """Names of the extractor outputs the scorer needs, per image."""
        return self.backbone.pair_feature_names

    def build(self, input_shape=None):
        """Builds every part from the image size (the input shape is fixed)."""
        # A loaded backbone and pair head arrive built (each has its own build config).
        if not self.backbone.built:
            self.backbone.build()
        shapes = self.backbone.output_shapes()
        if self.classifier is not None:
            self.classifier.build(shapes["embedding"])
        if self.pair_head is not None and not self.pair_head.built:
            self.pair_head.build(shapes)
        self.built = True

    # ------------------------------------------------------------------ per image
    def call(self, images, training=None):
        outputs = dict(self.backbone(images, training=training))
        if self.classifier is not None:
            outputs["id_logits"] = self.classifier(outputs["embedding"])
        return outputs

    # ------------------------------------------------------------------- per pair
    def pair_logits(self, features_a, features_b, training=None, correlation=None, context=None, rows=None):
        """Symmetric logits `(pairs,)` from two dicts of per-image features: aligned, or the `rows` pairs."""
        return self.pair_head(features_a, features_b, training=training, correlation=correlation, context=context,
                              rows=rows)

    # ----------------------------------------------------------- functional views
    def extractor(self):
        """Functional model: images -> embedding (unit norm), per-level maps, patches, theta."""
        images = keras.Input(self.image_size + (3,), name="images")
        outputs = self.backbone(images, training=False)
        extracted = {"embedding": unit_normalize(outputs["embedding"])}
        for level in self.levels:
            for kind in ("map", "patch", "theta"):
                extracted[f"{level}_{kind}"] = outputs[f"{level}_{kind}"]
        return keras.Model(images, extracted, name="msreid_extractor")

    def scorer(self, correlation="shift_add", context=None):
        """Functional model: `a_<name>`, `b_<name>` features -> `score` in [0, 1].

        `correlation="shift_add"` runs the pair head's depth-wise steps (the correlations
        and, unless `context` says otherwise, the fusion's 3x3 context) as slices and
        element-wise products: builtin ops for TFLite, and the fast form under XLA
        (`keras_score_fn`); `"grouped"` runs them as TensorFlow's depth-wise
        convolutions, the faster form without XLA. The TFLite export takes
        `scorer("shift_add", context="grouped")`: the correlations' kernels are
        run-time tensors, but the context's is a weight, which LiteRT runs as one
        DEPTHWISE_CONV_2D faster than nine slices (docs/RESULTS.md, "The exported
        scorer's context as a convolution").

        `correlation="one_to_many"` scores one image against many: the `a_` inputs
        take a batch of exactly 1, met by every row of the `b_` inputs; its patch is
        the run-time kernel of a DEPTHWISE_CONV_2D over their maps. The TFLite export
        takes `scorer("one_to_many", context="grouped")`, the fastest form of a
        query against its shortlist under LiteRT (docs/RESULTS.md, "A query-major
        scorer, computing in float on int8 features").
        """
        if self.pair_head is None:
            raise ValueError("this model has no similarity levels: rank by its embedding instead")
        shapes = self.backbone.output_shapes()
        batch = {"a": 1 if correlation == "one_to_many" else None, "b": None}
        inputs = {f"{side}_{name}": keras.Input(shapes[name][1:], batch_size=batch[side], name=f"{side}_{name}")
                  for side in ("a", "b") for name in self.scorer_feature_names}
        split = {
            side: {name: inputs[f"{side}_{name}"] for name in self.scorer_feature_names} for side in ("a", "b")
        }
        logits = self.pair_logits(split["a"], split["b"], training=False, correlation=correlation, context=context)
        return keras.Model(inputs, {"score": ops.sigmoid(logits)}, name="msreid_scorer")

    # ------------------------------------------------------------------- training
    def compile(self, optimizer="adam", loss_weights=None, **kwargs):
        """Configures training. Other arguments go to `keras.Model.compile`.

        Args:
            optimizer: any Keras optimizer.
            loss_weights: dict overriding `DEFAULT_LOSS_WEIGHTS`: `identity` and
                `triplet` train the embedding, `verification` and `ranking` the
                score (off by default). A weight of 0 switches a term off: it is
                neither computed nor logged.
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
        options = self.loss_options
        if self.pair_head is not None and (options["hard_positives"] + options["random_positives"] < 1
                                           or options["hard_negatives"] + options["random_negatives"] < 1):
            raise UserError("the pair losses need at least one positive and one negative pair per anchor: "
                            "set hard_positives or random_positives, and hard_negatives or random_negatives, >= 1")
        super().compile(optimizer=optimizer, **kwargs)
        # Outside a tf.distribute scope Keras would build the optimizer inside the first
        # traced step, and a tf.function that creates variables is traced twice: the default
        # model's first step took 28-31 s instead of 14 (docs/RESULTS.md, "one trace for the
        # first step"). The input size is fixed, so the model can be built here.
        if not self.built:
            self.build()
        self.optimizer.build(self.trainable_variables)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config:
            config = {**config, "loss_weights": dict(self.loss_weights), **self.loss_options}
        return config

    def compile_from_config(self, config):
        # The base class skips models with their own `compile`; ours takes its config back.
        self.compile(**keras.saving.deserialize_keras_object(config))

    @property
    def metrics(self):
        # Keras lists `self.trackers` itself; a term weighted 0 is not computed, so not logged.
        idle = {id(tracker) for name, tracker in self.trackers.items() if not self.loss_weights.get(name, 1.0)}
        return [metric for metric in super().metrics if id(metric) not in idle]

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
        if self.pair_head is not None and (weights["verification"] or weights["ranking"]):
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
        # The pairs as rows of the batch's per-image features: nothing is copied per pair.
        per_image = {name: y_pred[name] for name in self.scorer_feature_names}
        logits = ops.cast(self.pair_logits(per_image, per_image, training=training, rows=(anchors, others)),
                          "float32")
        logits = ops.reshape(logits, (-1, num_positives + num_negatives))
        is_same = ops.concatenate(
            [ops.ones_like(positive_valid), ops.zeros_like(negative_valid)], axis=1
        )
        valid = ops.concatenate([positive_valid, negative_valid], axis=1)
        scores = ops.sigmoid(logits)
        correct = ops.equal(scores > 0.5, is_same)
        terms = {"pair_accuracy": masked_mean(ops.cast(correct, "float32"), valid)}
        if self.loss_weights["verification"]:
            terms["verification"] = losses.verification_loss(is_same, logits, valid)
        if self.loss_weights["ranking"]:
            terms["ranking"] = losses.improved_ranking_loss(
                scores[:, :num_positives],
                scores[:, num_positives:],
                positive_valid,
                negative_valid,
                options["ranking_margin"],
                options["ranking_threshold"],
                options["ranking_beta"],
            )
        return terms

    def get_config(self):
        config = super().get_config()
        config.update(
            backbone=keras.saving.serialize_keras_object(self.backbone),
            pair_head=keras.saving.serialize_keras_object(self.pair_head) if self.pair_head is not None else None,
            num_classes=self.num_classes,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "backbone" not in config:
            raise UserError("this model was saved by an earlier keras_msreid, before the backbone and the pair head "
                            "were apart: convert it once with `python scripts/convert_flat_model.py OLD NEW`, or "
                            "train it again")
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        if config.get("pair_head") is not None:
            config["pair_head"] = keras.saving.deserialize_keras_object(config["pair_head"])
        return cls(**config)


def _parameters(part):
    return set(inspect.signature(part.__init__).parameters) - {"self", "kwargs", "application"}


def _with_defaults(part, options):
    """`part`'s constructor arguments: its defaults, replaced by `options` where given."""
    parameters = inspect.signature(part.__init__).parameters
    return {name: options.get(name, parameter.default) for name, parameter in parameters.items()
            if name not in ("self", "kwargs")}


def _check_known(options, *parts, backbone="msreid"):
    known = set().union(*(_parameters(part) for part in parts))
    unknown = sorted(set(options) - known)
    if unknown:
        raise UserError(f"unknown model options {unknown} for backbone {backbone}; known: {sorted(known)}")
