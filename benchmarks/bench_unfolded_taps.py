"""A level's pair correlation in training, two ways: maps gathered per pair, or taps unfolded per image.

Usage:
    python benchmarks/bench_unfolded_taps.py [--runs 10]

A training step of PK 16 x 4 = 64 images compares 256 pairs in both directions. Today
`correlate_indexed` either gathers every pair's map and correlates by
`correlate_grouped`, or unfolds each image's map once into its patch taps at the
evaluated positions (64 images, not 512 pair-directions), gathers the taps per pair and
contracts them with the other image's patch; `unfolding_pays` chooses (last column). At a level compared at stride 4 the taps are no bigger than
the map (15 taps at a quarter of the positions, against 16 cells); at stride 1 they are
15 times bigger. Forward + backward to the per-image maps and patches, medians of
`--runs`; the freed memory is kept as `msreid train` keeps it. Both give the same values.
"""

import argparse

from keras_msreid.utils.heap import keep_freed_memory

keep_freed_memory()  # as `msreid train` does, before TensorFlow starts its threads

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_msreid.layers.depthwise_correlation import correlate_indexed, unfolding_pays  # noqa: E402
from timing import median_seconds  # noqa: E402

LEVELS = {"low": ((40, 16), 4), "mid": ((20, 8), 2), "high": ((10, 4), 1)}
PATCH = (5, 3)


def gathered_maps(patches, maps, patch_side, map_side, stride):
    return correlate_indexed(patches, maps, patch_side, map_side, stride, unfold=False)


def unfolded_taps(patches, maps, patch_side, map_side, stride):
    return correlate_indexed(patches, maps, patch_side, map_side, stride, unfold=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    anchors = np.repeat(np.arange(64), 4).astype("int32")
    others = rng.integers(0, 64, 256).astype("int32")
    patch_side = tf.constant(np.concatenate([anchors, others]))  # both directions
    map_side = tf.constant(np.concatenate([others, anchors]))

    print("64 images, 256 pairs both directions, 5x3 patches, 32 channels; forward + backward, ms")
    print(f"{'level':<6} {'map':>6} {'stride':>6} {'maps gathered':>14} {'taps unfolded':>14} {'ratio':>6} {'max diff':>9} "
          f"{'unfolds':>8}")
    for level, ((height, width), stride) in LEVELS.items():
        patches = tf.constant(rng.normal(size=(64,) + PATCH + (32,)).astype("float32"))
        maps = tf.constant(rng.normal(size=(64, height, width, 32)).astype("float32"))
        row = []
        for form in (gathered_maps, unfolded_taps):
            @tf.function
            def step(form=form):
                with tf.GradientTape() as tape:
                    tape.watch([patches, maps])
                    scores = form(patches, maps, patch_side, map_side, stride)
                    loss = tf.reduce_sum(scores * scores)
                return [tf.convert_to_tensor(gradient) for gradient in tape.gradient(loss, [patches, maps])]

            def gradients(step=step):
                return [gradient.numpy() for gradient in step()]

            row.append(1000.0 * median_seconds(gradients, args.runs, warmup=2))
        difference = float(tf.reduce_max(tf.abs(gathered_maps(patches, maps, patch_side, map_side, stride)
                                                 - unfolded_taps(patches, maps, patch_side, map_side, stride))))
        print(f"{level:<6} {height:>3}x{width:<2} {stride:>6} {row[0]:14.1f} {row[1]:14.1f} "
              f"{row[0] / row[1]:5.2f}x {difference:9.1e} {str(unfolding_pays((height, width), PATCH, stride)):>8}",
              flush=True)


if __name__ == "__main__":
    main()
