"""Training throughput of MSReID variants, and the two correlation forms, on this machine.

Usage:
    python benchmarks/bench_training_throughput.py [--steps 10] [--batch 64]

Table 1: one optimizer step of `model.fit` (in-memory PK batches of 16 x 4 images at
160x64, so the input pipeline is not measured), median over `--steps` steps after two
warm-up steps, for each variant. Table 2: forward + backward of the depth-wise
correlation alone for 224 pairs of 40x16x32 maps and 5x3 patches, grouped (one
depth-wise convolution) against shift-and-add (the TFLite form). Medians of one run.
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from keras_msreid.layers.depthwise_correlation import correlate_grouped, correlate_shift_add
from keras_msreid.models import MSReID

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
    model = MSReID(num_classes=batch // 4, **options)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    timer = StepTimer()
    model.fit(data, steps_per_epoch=steps + 2, epochs=1, callbacks=[timer], verbose=0)
    return float(np.median(timer.times[2:]))


def time_correlation(correlate, repeats=5):
    rng = np.random.default_rng(1)
    patches = tf.constant(rng.normal(size=(224, 5, 3, 32)).astype("float32"))
    maps = tf.constant(rng.normal(size=(224, 40, 16, 32)).astype("float32"))

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
    print(f"{'variant':<30} {'ms/step':>9} {'images/s':>9}")
    for name, options in VARIANTS.items():
        seconds = time_training(options, args.steps, args.batch)
        print(f"{name:<30} {seconds * 1000:9.0f} {args.batch / seconds:9.1f}", flush=True)

    print("\nTable 2: correlation forward + backward, 224 pairs, 40x16x32 maps, 5x3 patches (median of 5)")
    grouped, shift_add = time_correlation(correlate_grouped), time_correlation(correlate_shift_add)
    print(f"{'grouped (one depth-wise conv)':<30} {grouped * 1000:9.0f} ms")
    print(f"{'shift-and-add':<30} {shift_add * 1000:9.0f} ms")
    print(f"{'ratio shift-and-add / grouped':<30} {shift_add / grouped:9.1f} x")


if __name__ == "__main__":
    main()
