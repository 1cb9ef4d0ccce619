"""A level's pair correlation in training, two ways: maps gathered per pair, or taps unfolded per image.

Usage:
    python benchmarks/bench_unfolded_taps.py [--runs 10]

A training step of PK 16 x 4 = 64 images compares 256 pairs in both directions. Today
every pair's maps are gathered (`ops.take`) and correlated by `correlate_grouped`. The
other way: unfold each image's map once into its patch taps at the evaluated positions
(64 images, not 512 pair-directions), gather the taps per pair and contract them with
the other image's patch. At a level compared at stride 4 the taps are no bigger than
the map (15 taps at a quarter of the positions, against 16 cells); at stride 1 they are
15 times bigger. Forward + backward to the per-image maps and patches, medians of
`--runs`; the freed memory is kept as `msreid train` keeps it. Both give the same values.
"""

import argparse

from keras_msreid.utils.heap import keep_freed_memory

keep_freed_memory()  # as `msreid train` does, before TensorFlow starts its threads

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_msreid.layers.depthwise_correlation import _same_padding, correlate_grouped  # noqa: E402
from timing import median_seconds  # noqa: E402

LEVELS = {"low": ((40, 16), 4), "mid": ((20, 8), 2), "high": ((10, 4), 1)}
PATCH = (5, 3)


def unfold(maps, stride):
    """`(images, positions, taps, C)`: each evaluated position's SAME-padded 5x3 window, by one gather."""
    images = tf.shape(maps)[0]
    _, height, width, channels = maps.shape
    (top, bottom), (left, right) = _same_padding(PATCH[0]), _same_padding(PATCH[1])
    padded = tf.pad(maps, ((0, 0), (top, bottom), (left, right), (0, 0)))
    padded_width = width + left + right
    out_h, out_w = -(-height // stride), -(-width // stride)
    rows = np.arange(out_h)[:, None, None, None] * stride + np.arange(PATCH[0])[None, None, :, None]
    cols = np.arange(out_w)[None, :, None, None] * stride + np.arange(PATCH[1])[None, None, None, :]
    taps = tf.gather(tf.reshape(padded, (images, -1, channels)), (rows * padded_width + cols).reshape(-1), axis=1)
    return tf.reshape(taps, (images, out_h * out_w, PATCH[0] * PATCH[1], channels)), (out_h, out_w)


def gathered_maps(patches, maps, patch_side, map_side, stride):
    return correlate_grouped(tf.gather(patches, patch_side), tf.gather(maps, map_side), stride)


def unfolded_taps(patches, maps, patch_side, map_side, stride):
    taps, (out_h, out_w) = unfold(maps, stride)
    kernels = tf.reshape(tf.gather(patches, patch_side), (-1, 1, PATCH[0] * PATCH[1], patches.shape[-1]))
    scores = tf.reduce_sum(tf.gather(taps, map_side) * kernels, axis=2)
    return tf.reshape(scores, (-1, out_h, out_w, patches.shape[-1]))


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
    print(f"{'level':<6} {'map':>6} {'stride':>6} {'maps gathered':>14} {'taps unfolded':>14} {'ratio':>6} {'max diff':>9}")
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
              f"{row[0] / row[1]:5.2f}x {difference:9.1e}", flush=True)


if __name__ == "__main__":
    main()
