"""Timing helpers shared by the benchmark scripts (run as `python benchmarks/NAME.py`)."""

import statistics
import time

import numpy as np


def median_seconds(function, runs, warmup=0):
    """Median wall time of `runs` calls of `function`, after `warmup` untimed calls."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def crops_to_time(image_size, count, dataset="folder", root=None):
    """`count` uint8 crops `(count, H, W, 3)`: training crops of `dataset` at `root`
    drawn at random, or (no `root`) random pixels."""
    if root is None:
        return np.random.default_rng(0).integers(0, 256, (count,) + tuple(image_size) + (3,), dtype=np.uint8)
    from keras_msreid.datasets import build_dataset
    from keras_msreid.export.images import calibration_set

    images, _ = calibration_set(build_dataset(dataset, root).train, tuple(image_size), count)
    return np.round(images).astype(np.uint8)


def run_child(script, spec, env=None):
    """Runs `python script --child JSON` in a fresh process and returns the JSON of its last stdout line.

    A setting that holds for a whole process (a malloc option, a mixed-precision policy,
    a source tree on the path) is measured this way. `env` adds to this process's
    environment. Raises `RuntimeError` with the child's last error line if it fails.
    """
    import json
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, script, "--child", json.dumps(spec)], capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {})))
    if done.returncode:
        lines = done.stderr.strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"exit status {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])
