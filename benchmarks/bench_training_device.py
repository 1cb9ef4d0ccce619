"""Training images per second through `msreid train`'s own loop, tf.data input included, on the device TensorFlow finds.

Usage:
    python benchmarks/bench_training_device.py [--dataset cuhk01 --root ../shared/data/cuhk01]
        [--levels high] [--settings float32 mixed float32-xla mixed-xla] [--steps 30] [--warmup 10]

The prepared script for a lent GPU (issue 11: GPU images/s with mixed precision on and
off, beside the CPU figure); on a CPU give `--settings float32` (XLA and float16 are
for GPUs here). Each setting is its own process, as mixed precision is a global
policy: `keras_msreid.training.train` of one epoch of `--warmup + --steps` PK 16 x 4
steps at 160x64 in a temporary run folder, no evaluation, the decoded images cached
in memory (`cache_decoded`, what a GPU host wants), a callback timing every step.
images/s is the batch times the timed steps over their summed time; the first step
(tracing, and XLA compiling) is reported apart. Without `--root` a synthetic
Market-1501 set of 100 identities is written to a temporary folder first.
"""

import argparse
import json
import os
import tempfile

from timing import run_child

SETTINGS = {
    "float32": dict(mixed_precision=False, jit_compile=False),
    "mixed": dict(mixed_precision=True, jit_compile=False),
    "float32-xla": dict(mixed_precision=False, jit_compile=True),
    "mixed-xla": dict(mixed_precision=True, jit_compile=True),
}
HERE = os.path.abspath(__file__)


def child(spec):
    """Runs in the measuring process: prints the device, the first step and the timed steps' images/s as JSON."""
    import statistics
    import time

    import keras
    import tensorflow as tf

    from keras_msreid.training.config import TrainConfig
    from keras_msreid.training.trainer import train
    from keras_msreid.utils.heap import keep_freed_memory

    keep_freed_memory()

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter() - self.start)

    timer = StepTimer()
    with tempfile.TemporaryDirectory(prefix="msreid_bench_") as run:
        config = TrainConfig(dataset=spec["dataset"], root=spec["root"], dataset_options=spec["dataset_options"],
                             model={"levels": spec["levels"]}, epochs=1, warmup_epochs=0,
                             steps_per_epoch=spec["warmup"] + spec["steps"], eval_every=0, final_evaluation=False,
                             cache_decoded=True, out_dir=os.path.join(run, "run"),
                             checkpoint_every_steps=10**6, **SETTINGS[spec["setting"]])
        train(config, extra_callbacks=[timer], verbose=0)
    timed = timer.times[spec["warmup"]:]
    gpus = tf.config.list_physical_devices("GPU")
    device = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus else "CPU"
    batch = config.p * config.k
    print(json.dumps(dict(device=device, first_step_s=timer.times[0], median_ms=1000 * statistics.median(timed),
                          images_per_s=batch * len(timed) / sum(timed))))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="market1501")
    parser.add_argument("--root", help="dataset root (default: a synthetic Market-1501 set, written first)")
    parser.add_argument("--levels", nargs="*", default=["high"], help="the pair head's levels (none: embedding only)")
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be >= 1")

    with tempfile.TemporaryDirectory(prefix="msreid_bench_data_") as scratch:
        root, dataset_options = args.root, {}
        if root is None:
            from keras_msreid.synthetic.market import write_market1501

            root = os.path.join(scratch, "synthetic")
            write_market1501(root, num_ids=100, seed=0)
        elif not os.path.isdir(root):
            parser.error(f"--root {root}: no such folder")
        if args.dataset == "cuhk01":
            dataset_options = {"num_test_ids": 100, "split_seed": 0}
        print(f"msreid train's loop, levels {args.levels or 'none (embedding only)'}, PK 16 x 4 at 160x64, "
              f"{args.steps} steps timed after {args.warmup}, data {args.dataset} at {root}")
        print(f"{'setting':<12} {'device':<28} {'first step s':>12} {'ms / step':>10} {'images / s':>11}")
        for setting in args.settings:
            spec = dict(setting=setting, dataset=args.dataset, root=root, dataset_options=dataset_options,
                        levels=args.levels, steps=args.steps, warmup=args.warmup)
            try:
                result = run_child(HERE, spec)
            except RuntimeError as error:
                print(f"{setting:<12} failed: {error}", flush=True)
                continue
            print(f"{setting:<12} {result['device'][:28]:<28} {result['first_step_s']:12.1f} "
                  f"{result['median_ms']:10.1f} {result['images_per_s']:11.1f}", flush=True)


if __name__ == "__main__":
    main()
