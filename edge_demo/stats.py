"""Live statistics: frames per second and milliseconds per pipeline stage.

Example:

>>> stats = Stats(("detect", "extract", "match"))
>>> with stats.time("detect"):
...     detections = detector(frame)
>>> stats.end_frame()
>>> print(stats.report())          # since the previous report
frames 1 | 9.8 fps | detect 95.1 ms | extract 0.0 ms | match 0.0 ms
"""

import contextlib
import time

import numpy as np


class Stats:
    """Per-stage times of each frame; summaries for a window and for the whole run."""

    def __init__(self, stages, clock=time.perf_counter):
        self.stages = tuple(stages)
        self.clock = clock
        self.started = clock()
        self.window_start = self.started
        self.frames = {stage: [] for stage in self.stages}  # ms per frame, whole run
        self._current = dict.fromkeys(self.stages, 0.0)
        self._window_first = 0
        self.count = 0

    @contextlib.contextmanager
    def time(self, stage):
        start = self.clock()
        try:
            yield
        finally:
            self._current[stage] += (self.clock() - start) * 1000.0

    def end_frame(self):
        for stage in self.stages:
            self.frames[stage].append(self._current[stage])
        self._current = dict.fromkeys(self.stages, 0.0)
        self.count += 1

    def summary(self, since=0, start=None):
        """{"frames", "seconds", "fps", "<stage>_ms_mean", "<stage>_ms_median"} from frame `since`."""
        start = self.started if start is None else start
        seconds = self.clock() - start
        frames = self.count - since
        result = {"frames": frames, "seconds": round(seconds, 3),
                  "fps": round(frames / seconds, 2) if seconds > 0 else 0.0}
        for stage in self.stages:
            values = np.asarray(self.frames[stage][since:])
            result[f"{stage}_ms_mean"] = round(float(values.mean()), 2) if values.size else 0.0
            result[f"{stage}_ms_median"] = round(float(np.median(values)), 2) if values.size else 0.0
        return result

    def report(self):
        """One line for the frames since the previous report, then starts a new window."""
        summary = self.summary(self._window_first, self.window_start)
        self._window_first = self.count
        self.window_start = self.clock()
        return format_summary(summary)


def format_summary(summary):
    """"frames N | F fps | <stage> M ms | ..." with each stage's mean."""
    stages = [key[:-len("_ms_mean")] for key in summary if key.endswith("_ms_mean")]
    parts = [f"frames {summary['frames']}", f"{summary['fps']:.1f} fps"]
    parts += [f"{stage} {summary[f'{stage}_ms_mean']:.1f} ms" for stage in stages]
    return " | ".join(parts)
