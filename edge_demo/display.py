"""The on-screen window, when there is a screen and OpenCV was built with a GUI.

`opencv-python-headless` (the default requirement, smaller and without X11
libraries) has no GUI; install `opencv-python` instead to get a window.

Example:

>>> if display_available():
...     window = Window("msreid")
...     keep_going = window.show(frame)       # False once the user pressed q or Esc
"""

import os
import sys

import cv2


def gui_available():
    """Whether this OpenCV build can open windows."""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            return line.split(":", 1)[1].strip().upper() not in ("NONE", "")
    return False


def display_available():
    """A screen to draw on (X11 or Wayland on Linux) and a GUI-enabled OpenCV."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    return gui_available()


class Window:
    """One OpenCV window; `show` returns False when the user asks to quit."""

    def __init__(self, title):
        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)

    def show(self, frame):
        cv2.imshow(self.title, frame)
        key = cv2.waitKey(1) & 0xFF
        return key not in (ord("q"), 27)

    def close(self):
        cv2.destroyWindow(self.title)
