"""A training step with glibc's default malloc against `keep_freed_memory` (what `msreid train` does).

Usage:
    python benchmarks/bench_freed_memory.py [--steps 12] [--rounds 2] [--batch 64]

Each measurement is its own process (a malloc setting holds for a whole process):
`model.fit` on in-memory PK batches of `--batch / 4` identities x 4 images at 160x64,
the median step time over `--steps` steps after two warm-up steps, and the page
faults (minor faults) per step over the same steps. The two settings alternate,
`--rounds` times, so that a drift of the machine hits both; the table gives each
round's figures, then the ratio of the medians over the rounds.
Thread counts come from TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS as usual.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

VARIANTS = {
    "embedding only": (),
    "high level (the default)": ("high",),
    "all levels": ("low", "mid", "high"),
}
SETTINGS = ("glibc default", "keep_freed_memory")


def child(setting, levels, steps, batch):
    """Runs in the measuring process: the step's median seconds and faults per step, as JSON."""
    applied = None
    if setting == "keep_freed_memory":
        from keras_msreid.utils.heap import keep_freed_memory

        applied = keep_freed_memory()
    import resource
    import time

    import keras
    import numpy as np
    import tensorflow as tf

    from keras_msreid.models import MSReID

    class StepProbe(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times, self.faults = [], []

        def on_train_batch_begin(self, batch, logs=None):
            self.start, self.faults_before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter() - self.start)
            self.faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - self.faults_before)

    images = np.random.default_rng(0).uniform(0, 255, (batch, 160, 64, 3)).astype("float32")
    labels = np.repeat(np.arange(batch // 4), 4).astype("int32")
    model = MSReID.from_options(num_classes=batch // 4, levels=levels)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    probe = StepProbe()
    model.fit(tf.data.Dataset.from_tensors((images, labels)).repeat(), steps_per_epoch=steps + 2, epochs=1,
              callbacks=[probe], verbose=0)
    print(json.dumps(dict(applied=applied, seconds=statistics.median(probe.times[2:]),
                          faults=statistics.median(probe.faults[2:]),
                          max_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6)))


def measure(setting, levels, steps, batch):
    command = [sys.executable, __file__, "--child", setting, "--levels", *levels, "--steps", str(steps),
               "--batch", str(batch)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    output = subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(output.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--child", choices=SETTINGS, help=argparse.SUPPRESS)
    parser.add_argument("--levels", nargs="*", default=(), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, tuple(args.levels), args.steps, args.batch)
        return

    threads = os.environ.get("TF_NUM_INTRAOP_THREADS", "TensorFlow's default")
    print(f"Training step, batch {args.batch} at 160x64, median of {args.steps} steps; intra-op threads: {threads}")
    print(f"{'variant':<26} {'malloc':<18} {'round':>5} {'ms/step':>8} {'faults/step':>12} {'max RSS GB':>11}")
    medians = {}
    for name, levels in VARIANTS.items():
        for round_ in range(1, args.rounds + 1):
            for setting in SETTINGS:
                result = measure(setting, levels, args.steps, args.batch)
                medians.setdefault((name, setting), []).append(result["seconds"])
                print(f"{name:<26} {setting:<18} {round_:>5} {result['seconds'] * 1000:8.0f} "
                      f"{result['faults']:12.0f} {result['max_rss_gb']:11.2f}", flush=True)
    print(f"\n{'variant':<26} {'default ms':>10} {'kept ms':>8} {'speed-up':>9}")
    for name in VARIANTS:
        default, kept = (statistics.median(medians[(name, setting)]) for setting in SETTINGS)
        print(f"{name:<26} {default * 1000:10.0f} {kept * 1000:8.0f} {default / kept:8.2f}x")
    embedding = {setting: statistics.median(medians[("embedding only", setting)]) for setting in SETTINGS}
    for setting in SETTINGS:
        ratios = ", ".join(f"{name} {statistics.median(medians[(name, setting)]) / embedding[setting]:.2f}x"
                           for name in VARIANTS if name != "embedding only")
        print(f"against embedding only, {setting}: {ratios}")


if __name__ == "__main__":
    main()
