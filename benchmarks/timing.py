"""Timing helper shared by the benchmark scripts (run as `python benchmarks/NAME.py`)."""

import statistics
import time


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
