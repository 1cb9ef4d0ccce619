"""What C libraries print: captured, so that a failure is reported in one line of our own.

OpenCV's video backends, libjpeg, libpng and the LiteRT runtime write warnings
straight to file descriptor 2, around Python's `sys.stderr`. Around a call that
may print them, `native_stderr()` sends descriptor 2 to a temporary file and
hands back what arrived, so the caller can fold the reason into its own message
(or drop it) instead of leaving the user a mix of library lines and ours.

Example:

>>> with native_stderr() as printed:
...     image = cv2.imdecode(data, cv2.IMREAD_COLOR)
>>> first_line(printed.text)
'Premature end of JPEG file'
"""

import contextlib
import os
import sys
import tempfile


class Captured:
    text = ""


def _flush_python_stderr():
    for stream in (sys.stderr, sys.__stderr__):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass


@contextlib.contextmanager
def native_stderr():
    """Captures what is written to file descriptor 2 inside the block (`.text` once it ends)."""
    captured = Captured()
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (a detached service): nothing to capture
        yield captured
        return
    try:
        with tempfile.TemporaryFile() as sink:
            _flush_python_stderr()
            os.dup2(sink.fileno(), 2)
            try:
                yield captured
            finally:
                _flush_python_stderr()
                os.dup2(saved, 2)
                sink.seek(0)
                captured.text = sink.read().decode("utf-8", "replace")
    finally:
        os.close(saved)


def first_line(text):
    """The first non-empty line of `text`, without OpenCV's `[ WARN:0@0.1] global file.cpp:12 ` prefix."""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and "]" in line:
            line = line.split("]", 1)[1].strip()
            if line.startswith("global "):
                line = line.split(" ", 2)[-1] if line.count(" ") >= 2 else line
        if line:
            return line
    return ""
