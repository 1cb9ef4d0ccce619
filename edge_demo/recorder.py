"""Writes the annotated frames to a video file, atomically.

The video is written to a hidden temporary file next to the target and renamed
over it when the run ends, so the target is either the previous file or a
complete video. Codecs: `.mp4` with mp4v, `.avi` with MJPG; both are written and
read back by the pip OpenCV wheels (checked in the tests).

Example:

>>> with VideoRecorder("out.mp4", fps=10) as recorder:
...     recorder.write(frame)
"""

import os
import tempfile

import cv2

CODECS = {".mp4": "mp4v", ".avi": "MJPG"}


class VideoRecorder:
    """Opens on the first frame (its size is the video's); `close` publishes the file."""

    def __init__(self, path, fps):
        extension = os.path.splitext(path)[1].lower()
        if extension not in CODECS:
            raise ValueError(f"video output {path} must end with one of {sorted(CODECS)}")
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"folder {directory} of video output {path} does not exist")
        if os.path.isdir(path):
            raise ValueError(f"video output {path} is a folder")
        # Find out now, not at the first frame, that the folder takes the temporary file.
        try:
            handle, probe = tempfile.mkstemp(suffix=extension, prefix=".partial-", dir=directory)
        except OSError as error:
            raise OSError(f"cannot write video output {path}: folder {directory}: {error.strerror}") from None
        os.close(handle)
        os.remove(probe)
        self.path = path
        self.fps = float(fps)
        self.extension = extension
        self.directory = directory
        self.writer = None
        self.temporary = None
        self.size = None

    def write(self, frame):
        if self.writer is None:
            handle, self.temporary = tempfile.mkstemp(suffix=self.extension, prefix=".partial-", dir=self.directory)
            os.close(handle)
            self.size = (frame.shape[1], frame.shape[0])
            self.writer = cv2.VideoWriter(self.temporary, cv2.VideoWriter_fourcc(*CODECS[self.extension]),
                                          self.fps, self.size)
            if not self.writer.isOpened():
                os.remove(self.temporary)
                raise OSError(f"OpenCV cannot write {CODECS[self.extension]} video to {self.path}")
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size)
        self.writer.write(frame)

    def close(self):
        if self.writer is not None:
            self.writer.release()
            os.replace(self.temporary, self.path)
            self.writer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
