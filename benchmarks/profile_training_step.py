"""Where the time of one MSReID training step goes, by part, on this machine.

Usage:
    python benchmarks/profile_training_step.py [--steps 8] [--batch 64]

Two tables, medians of one run (in-memory PK batches of `--batch / 4` identities x 4
images at 160x64, so the input pipeline is not included):

1. Whole optimizer steps (`train_on_batch`) of variants that differ in one part, so
   that differences attribute the time: embedding only (trunk, BNNeck head,
   identity and triplet losses, optimizer), one level at a time with and without
   the STN, all levels with and without the STN.
2. The parts of the all-levels step timed alone, forward + backward where they
   train: trunk with the embedding head, each level's per-image half (projection
   and STN), each level's correlation and 1x1 reduction over the step's pairs (both
   directions, gathering the pairs from the batch's rows), the fusion head, pair
   mining, and the optimizer's update.
"""

import argparse
import time

from keras_msreid.utils.heap import keep_freed_memory

keep_freed_memory()  # as `msreid train` does, before TensorFlow starts its threads

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_msreid.losses.pair_mining import mine_pairs  # noqa: E402
from keras_msreid.models import MSReID  # noqa: E402

LEVELS = ("low", "mid", "high")


def median_ms(function, steps, warmup=2):
    for _ in range(warmup):
        _block(function())
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        _block(function())
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def _block(result):
    for value in tf.nest.flatten(result):
        if hasattr(value, "numpy"):
            value.numpy()


def batch_of(size):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (size, 160, 64, 3)).astype("float32")
    labels = np.repeat(np.arange(size // 4), 4).astype("int32")
    return tf.constant(images), tf.constant(labels)


def step_ms(options, images, labels, steps):
    model = MSReID.from_options(num_classes=int(labels.shape[0]) // 4, **options)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    return median_ms(lambda: model.train_on_batch(images, labels, return_dict=True), steps)


def trained_gradient(function, variables):
    """A compiled forward + backward of `function()` (its output's squared sum) w.r.t. `variables`."""
    variables = [v.value if isinstance(v, keras.Variable) else v for v in variables]

    @tf.function
    def run():
        with tf.GradientTape() as tape:
            tape.watch(variables)
            loss = tf.add_n([tf.reduce_sum(tf.square(tf.cast(t, tf.float32))) for t in tf.nest.flatten(function())])
        return tape.gradient(loss, variables)

    return run


def part_times(images, labels, steps):
    """(part, ms) of the all-levels model's step, each part alone."""
    model = MSReID.from_options(num_classes=int(labels.shape[0]) // 4, levels=LEVELS, use_stn=True)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    model.train_on_batch(images, labels)  # builds the optimizer
    outputs = model(images, training=True)
    batch = int(labels.shape[0])
    options = model.loss_options
    noise = tf.random.stateless_uniform((batch, batch), seed=(0, 0))
    positive, _, negative, _ = mine_pairs(
        labels, outputs["features"], options["hard_positives"], options["hard_negatives"],
        options["random_positives"], options["random_negatives"], noise,
    )
    per_anchor = positive.shape[1] + negative.shape[1]
    anchors = tf.repeat(tf.range(batch), per_anchor)
    others = tf.reshape(tf.concat([positive, negative], axis=1), (-1,))
    pairs = int(anchors.shape[0])

    rows = []
    backbone = model.backbone
    trunk_variables = backbone.trunk.trainable_variables + backbone.embedding_head.trainable_variables
    rows.append(("trunk + embedding head, forward + backward", median_ms(trained_gradient(
        lambda: backbone.embedding_head(backbone.trunk(images, training=True)["high"], training=True),
        trunk_variables), steps)))
    maps = backbone.trunk(images, training=True)
    for level in LEVELS:
        block = backbone.similarity_features[level]
        trunk_map = tf.constant(maps[level])
        rows.append((f"{level}: projection + unit norm + STN (per image), fwd + bwd", median_ms(trained_gradient(
            lambda block=block, trunk_map=trunk_map: block(trunk_map, training=True)[:2],
            block.trainable_variables + [trunk_map]), steps)))
    level_maps = []
    # The step's pairs in both directions, as rows of the batch (`ConvSimilarity`'s form).
    both_rows = (tf.concat([anchors, others], 0), tf.concat([others, anchors], 0))
    for level in LEVELS:
        block = model.pair_head.similarities[level]
        patches, level_map = tf.constant(outputs[f"{level}_patch"]), tf.constant(outputs[f"{level}_map"])
        correlation = block.correlations[block.correlation_method]
        rows.append((f"{level}: correlation, {2 * pairs} pair-directions (gathers in), fwd + bwd",
                     median_ms(trained_gradient(
                         lambda correlation=correlation, patches=patches, level_map=level_map: correlation(
                             [patches, level_map], rows=both_rows),
                         [patches, level_map]), steps)))
        scores = tf.constant(correlation([patches, level_map], rows=both_rows))
        reduce = lambda block=block, scores=scores: tf.nn.relu(  # noqa: E731
            block.reduction_norm(block.reduction(scores), training=True))
        rows.append((f"{level}: 1x1 reduction + BN + ReLU, fwd + bwd", median_ms(trained_gradient(
            reduce, block.reduction.trainable_variables + block.reduction_norm.trainable_variables + [scores]),
            steps)))
        both = reduce()
        level_maps.append(tf.constant(tf.reduce_mean(tf.reshape(both, (2, -1) + tuple(both.shape[1:])), axis=0)))
    rows.append((f"fusion head over {pairs} pairs, fwd + bwd", median_ms(trained_gradient(
        lambda: model.pair_head.fusion(level_maps, training=True), model.pair_head.fusion.trainable_variables + level_maps), steps)))
    features = tf.constant(outputs["features"])
    mine = tf.function(lambda: mine_pairs(labels, features, options["hard_positives"], options["hard_negatives"],
                                          options["random_positives"], options["random_negatives"], noise))
    rows.append(("pair mining (forward only)", median_ms(mine, steps)))
    zeros = [tf.zeros_like(v) for v in model.trainable_variables]
    update = tf.function(lambda: model.optimizer.apply_gradients(zip(zeros, model.trainable_variables)))
    rows.append((f"AdamW update of {sum(int(np.prod(v.shape)) for v in model.trainable_variables):,} weights",
                 median_ms(update, steps)))
    return rows, pairs


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    images, labels = batch_of(args.batch)

    print(f"Table 1: training step, batch {args.batch} at 160x64, median of {args.steps} steps")
    print(f"{'variant':<40} {'ms/step':>9} {'vs embedding only':>18}")
    variants = {"embedding only": dict(levels=())}
    for level in LEVELS:
        variants[f"{level} level only"] = dict(levels=(level,), use_stn=True)
        variants[f"{level} level only, no STN"] = dict(levels=(level,), use_stn=False)
    variants["all levels"] = dict(levels=LEVELS, use_stn=True)
    variants["all levels, no STN"] = dict(levels=LEVELS, use_stn=False)
    base = None
    for name, options in variants.items():
        ms = step_ms(options, images, labels, args.steps)
        base = base or ms
        print(f"{name:<40} {ms:9.0f} {ms / base:17.2f}x", flush=True)

    rows, pairs = part_times(images, labels, args.steps)
    print(f"\nTable 2: parts of the all-levels step timed alone ({pairs} pairs), median of {args.steps}")
    print(f"{'part':<66} {'ms':>7}")
    for name, ms in rows:
        print(f"{name:<66} {ms:7.1f}", flush=True)
    print(f"{'sum of the parts':<66} {sum(ms for _, ms in rows):7.1f}")


if __name__ == "__main__":
    main()
