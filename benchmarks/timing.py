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
