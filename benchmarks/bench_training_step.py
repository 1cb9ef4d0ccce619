"""A training step of MSReID variants, each in its own process, alternated so that a drift hits all.

Usage:
    python benchmarks/bench_training_step.py [--variants embedding high all] [--rounds 2] [--steps 12]
        [--malloc kept] [--source DIR ...] [--batch 64]

Each measurement is its own process: `model.fit` on in-memory PK batches of
`--batch / 4` identities x 4 images at 160x64 (the input pipeline is not measured),
the median step time over `--steps` steps after two warm-up steps, the page faults
(minor faults) per step over the same steps, and the peak RSS. The variants, malloc
settings and sources alternate within each of `--rounds` rounds; the summary gives
the median over the rounds, each variant against embedding only, and (with several)
each malloc setting and source against the first.

`--malloc default` is glibc's own allocator, `kept` is `keep_freed_memory` (what
`msreid train` does). `--source` times the package at other source trees (for
example `git worktree add /tmp/before COMMIT`), put first on the child's path;
the default is this checkout. Thread counts come from TF_NUM_INTRAOP_THREADS /
TF_NUM_INTEROP_THREADS as usual.
"""

import argparse
import json
import os
import statistics
import sys

from timing import run_child

VARIANTS = {
    "embedding": ("embedding only", dict(levels=())),
    "high": ("high level (the default)", dict(levels=("high",))),
    "all": ("all levels", dict(levels=("low", "mid", "high"))),
    "all-stn": ("all levels + STN", dict(levels=("low", "mid", "high"), use_stn=True)),
    "all-16": ("all levels, 16 channels", dict(levels=("low", "mid", "high"), similarity_channels=16)),
}
MALLOC = ("default", "kept")
HERE = os.path.abspath(__file__)


def child(spec):
    """Runs in the measuring process: prints the step's median seconds, faults and peak RSS as JSON."""
    if spec["malloc"] == "kept":
        from keras_msreid.utils.heap import keep_freed_memory

        keep_freed_memory()
    import resource
    import time

    import keras
    import numpy as np
    import tensorflow as tf

    import keras_msreid
    from keras_msreid.models import MSReID

    class StepProbe(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times, self.faults = [], []

        def on_train_batch_begin(self, batch, logs=None):
            self.start, self.faults_before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter() - self.start)
            self.faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - self.faults_before)

    batch, steps = spec["batch"], spec["steps"]
    images = np.random.default_rng(0).uniform(0, 255, (batch, 160, 64, 3)).astype("float32")
    labels = np.repeat(np.arange(batch // 4), 4).astype("int32")
    model = MSReID.from_options(num_classes=batch // 4, **VARIANTS[spec["variant"]][1])
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    probe = StepProbe()
    model.fit(tf.data.Dataset.from_tensors((images, labels)).repeat(), steps_per_epoch=steps + 2, epochs=1,
              callbacks=[probe], verbose=0)
    print(json.dumps(dict(package=os.path.dirname(keras_msreid.__file__),
                          seconds=statistics.median(probe.times[2:]), faults=statistics.median(probe.faults[2:]),
                          max_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6)))


def measure(spec, source):
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))} if source else {}
    result = run_child(HERE, spec, env)
    if source and not result["package"].startswith(os.path.abspath(source)):
        sys.exit(f"--source {source}: the child imported keras_msreid from {result['package']}")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=["embedding", "high", "all"])
    parser.add_argument("--malloc", nargs="+", choices=MALLOC, default=["kept"])
    parser.add_argument("--source", nargs="+", default=[""], help="source trees to time (default: this checkout)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    for source in args.source:
        if source and not os.path.isdir(os.path.join(source, "keras_msreid")):
            parser.error(f"--source {source}: no keras_msreid package there")

    threads = os.environ.get("TF_NUM_INTRAOP_THREADS", "TensorFlow's default")
    print(f"Training step, batch {args.batch} at 160x64, median of {args.steps} steps; intra-op threads: {threads}")
    print(f"{'variant':<26} {'malloc':<8} {'source':<20} {'round':>5} {'ms/step':>8} {'faults/step':>12} "
          f"{'max RSS GB':>11}")
    times = {}
    for round_ in range(1, args.rounds + 1):
        for variant in args.variants:
            for malloc in args.malloc:
                for source in args.source:
                    spec = dict(variant=variant, malloc=malloc, steps=args.steps, batch=args.batch)
                    result = measure(spec, source)
                    times.setdefault((variant, malloc, source), []).append(result["seconds"])
                    print(f"{VARIANTS[variant][0]:<26} {malloc:<8} {source or 'this checkout':<20} {round_:>5} "
                          f"{result['seconds'] * 1000:8.0f} {result['faults']:12.0f} {result['max_rss_gb']:11.2f}",
                          flush=True)

    medians = {key: statistics.median(values) for key, values in times.items()}
    print(f"\nmedians over {args.rounds} rounds, ms/step")
    print(f"{'variant':<26} {'malloc':<8} {'source':<20} {'ms/step':>8} {'/ embedding':>12} {'/ first':>8}")
    first_malloc, first_source = args.malloc[0], args.source[0]
    for (variant, malloc, source), seconds in medians.items():
        embedding = medians.get(("embedding", malloc, source))
        baseline = medians[(variant, first_malloc, first_source)]
        print(f"{VARIANTS[variant][0]:<26} {malloc:<8} {source or 'this checkout':<20} {seconds * 1000:8.0f} "
              f"{f'{seconds / embedding:.2f}x' if embedding else '-':>12} {seconds / baseline:7.2f}x")


if __name__ == "__main__":
    main()
