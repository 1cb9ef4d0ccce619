"""A one-line progress counter on stderr for long extraction and ranking loops.

TensorFlow-free and dependency-free, so the feature store and the ranking functions
can report progress where only numpy is installed.

Example:

>>> progress = Progress(19281, "extracting", enabled=True)
>>> for batch in batches:
...     progress.update(len(batch))
>>> progress.close()
"""

import sys
import time


class Progress:
    """Prints `label done/total (percent) rate/s ETA` at most every `interval` seconds."""

    def __init__(self, total, label, enabled=True, unit="images", interval=1.0, stream=None):
        self.total = int(total)
        self.label = label
        self.enabled = bool(enabled)
        self.unit = unit
        self.interval = interval
        self.stream = stream or sys.stderr
        self.done = 0
        self.start = time.perf_counter()
        self.last_print = -float("inf")

    def update(self, count):
        self.done += int(count)
        now = time.perf_counter()
        # The last line is close()'s, so a finished count is not printed twice.
        if self.enabled and now - self.last_print >= self.interval and self.done < self.total:
            self.last_print = now
            self._print(now, end="\r")

    def close(self):
        """Prints the final line (total time and rate)."""
        if self.enabled:
            self._print(time.perf_counter(), end="\n")

    def _print(self, now, end):
        elapsed = now - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        remaining = (self.total - self.done) / rate if rate > 0 else float("nan")
        percent = 100.0 * self.done / self.total if self.total else 100.0
        eta = f"ETA {remaining:.0f} s" if self.done < self.total else f"{elapsed:.1f} s"
        print(
            f"{self.label} {self.done}/{self.total} {self.unit} ({percent:.0f}%) {rate:.1f}/s {eta}   ",
            end=end,
            file=self.stream,
            flush=True,
        )
