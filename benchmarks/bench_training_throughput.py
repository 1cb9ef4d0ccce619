"""Training throughput of MSReID variants, and the two correlation forms, on this machine.

Usage:
    python benchmarks/bench_training_throughput.py [--steps 10] [--batch 64]

Table 1: one optimizer step of `model.fit` (in-memory PK batches of 16 x 4 images at
160x64, so the input pipeline is not measured), median over `--steps` steps after two
warm-up steps, for each variant, and the first step alone (it traces the step's graph).
Table 2: forward + backward of the depth-wise correlation alone for 224 pairs of
40x16x32 maps and 5x3 patches, grouped (one depth-wise convolution) against
shift-and-add (the TFLite form). Table 3: the same
for 512 pairs (a training step's 256 pairs, both directions) at the strides the pair
path uses, and two other forms of the strided correlation: one strided depth-wise
convolution, and each map unfolded into its patch taps (`tf.image.extract_patches`)
then contracted with the patch. Medians of one run.
"""

import argparse
import time

from keras_msreid.utils.heap import keep_freed_memory

keep_freed_memory()  # as `msreid train` does, before TensorFlow starts its threads

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_msreid.layers.depthwise_correlation import correlate_grouped, correlate_shift_add  # noqa: E402
from keras_msreid.models import MSReID  # noqa: E402

VARIANTS = {
    "all levels (low, mid, high)": dict(levels=("low", "mid", "high")),
    "high level only": dict(levels=("high",)),
    "embedding only": dict(levels=()),
}


class StepTimer(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self.start)

    def on_train_begin(self, logs=None):
        self.times = []


def time_training(options, steps, batch):
    images = np.random.default_rng(0).uniform(0, 255, (batch, 160, 64, 3)).astype("float32")
    labels = np.repeat(np.arange(batch // 4), 4).astype("int32")
    data = tf.data.Dataset.from_tensors((images, labels)).repeat()
    model = MSReID.from_options(num_classes=batch // 4, **options)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    timer = StepTimer()
    model.fit(data, steps_per_epoch=steps + 2, epochs=1, callbacks=[timer], verbose=0)
    return float(np.median(timer.times[2:])), timer.times[0]


def correlate_one_strided_conv(patches, maps, stride):
    """The grouped correlation as ONE depth-wise convolution at `stride` (what correlate_grouped avoids above 2)."""
    pairs, height, width, channels = maps.shape
    images = tf.reshape(tf.transpose(maps, (1, 2, 0, 3)), (1, height, width, -1))
    images = tf.pad(images, ((0, 0), (2, 2), (1, 1), (0, 0)))
    kernels = tf.reshape(tf.transpose(patches, (1, 2, 0, 3)), (5, 3, -1, 1))
    scores = tf.nn.depthwise_conv2d(images, kernels, strides=(1, stride, stride, 1), padding="VALID")
    return tf.transpose(tf.reshape(scores, (scores.shape[1], scores.shape[2], pairs, channels)), (2, 0, 1, 3))


def correlate_unfolded(patches, maps, stride):
    """Each map unfolded into its 5x3 patch taps at the evaluated positions, contracted with the patch."""
    padded = tf.pad(maps, ((0, 0), (2, 2), (1, 1), (0, 0)))
    taps = tf.image.extract_patches(padded, [1, 5, 3, 1], [1, stride, stride, 1], [1, 1, 1, 1], "VALID")
    taps = tf.reshape(taps, (-1, taps.shape[1], taps.shape[2], 15, maps.shape[-1]))
    return tf.einsum("nyxtc,ntc->nyxc", taps, tf.reshape(patches, (-1, 15, maps.shape[-1])))


def time_correlation(correlate, repeats=5, pairs=224, map_size=(40, 16)):
    rng = np.random.default_rng(1)
    patches = tf.constant(rng.normal(size=(pairs, 5, 3, 32)).astype("float32"))
    maps = tf.constant(rng.normal(size=(pairs,) + map_size + (32,)).astype("float32"))

    @tf.function
    def step(patches, maps):
        with tf.GradientTape() as tape:
            tape.watch([patches, maps])
            loss = tf.reduce_sum(correlate(patches, maps) ** 2)
        return tape.gradient(loss, [patches, maps])

    step(patches, maps)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        [value.numpy() for value in step(patches, maps)]
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()

    print(f"Table 1: training step, batch {args.batch} at 160x64 (median of {args.steps} steps)")
    print(f"{'variant':<30} {'ms/step':>9} {'images/s':>9} {'first step s':>13}")
    for name, options in VARIANTS.items():
        seconds, first = time_training(options, args.steps, args.batch)
        print(f"{name:<30} {seconds * 1000:9.0f} {args.batch / seconds:9.1f} {first:13.1f}", flush=True)

    print("\nTable 2: correlation forward + backward, 224 pairs, 40x16x32 maps, 5x3 patches (median of 5)")
    grouped, shift_add = time_correlation(correlate_grouped), time_correlation(correlate_shift_add)
    print(f"{'grouped (one depth-wise conv)':<30} {grouped * 1000:9.0f} ms")
    print(f"{'shift-and-add':<30} {shift_add * 1000:9.0f} ms")
    print(f"{'ratio shift-and-add / grouped':<30} {shift_add / grouped:9.1f} x")

    print("\nTable 3: correlation forward + backward, 512 pair-directions, 5x3 patches, 32 channels (median of 5)")
    print(f"{'map':<8} {'stride':>6} {'correlate_grouped':>18} {'one strided conv':>17} {'unfolded taps':>14}")
    for map_size, stride in (((40, 16), 4), ((40, 16), 2), ((20, 8), 2), ((10, 4), 1)):
        row = [time_correlation(lambda p, m, f=f: f(p, m, stride), pairs=512, map_size=map_size) * 1000
               for f in (correlate_grouped, correlate_one_strided_conv, correlate_unfolded)]
        print(f"{map_size[0]}x{map_size[1]:<5} {stride:>6} {row[0]:15.1f} ms {row[1]:14.1f} ms {row[2]:11.1f} ms",
              flush=True)


if __name__ == "__main__":
    main()
