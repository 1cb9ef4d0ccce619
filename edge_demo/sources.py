"""Frame sources: a camera index, a video file, an RTSP/HTTP stream, or the Pi camera.

`FrameSource(spec)` reads the `--source` argument:

- `0`, `1`, ...: a V4L2 / USB camera (`/dev/video0`, ...);
- `rtsp://...`, `http://...`, `https://...`, `rtmp://...`: a network stream;
- `picamera`: the Raspberry Pi camera through picamera2 (installed with apt);
- anything else: a video file.

Frames are BGR uint8, as OpenCV gives them. A source that cannot be opened raises
`SourceError` naming it. A live source (camera or stream) that stops delivering
frames is reopened with exponential back-off, a bounded number of times; the end
of a video file is the end of the run, not a drop.

Example:

>>> source = FrameSource("rtsp://192.168.1.20:554/stream1")
>>> frame = source.read()        # None once a video file ends
>>> source.close()
"""

import os
import platform
import sys
import time

import cv2

from .native import first_line, native_stderr

STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")


class SourceError(RuntimeError):
    """A frame source could not be opened, or was lost for good."""


def parse_source(spec):
    """`--source` text -> (kind, target): ("camera", index) | ("stream", url) | ("picamera", None) | ("file", path)."""
    text = str(spec).strip()
    if text.isdigit():
        return "camera", int(text)
    if text.lower().startswith(STREAM_SCHEMES):
        return "stream", text
    if text.lower() in ("picamera", "picamera2"):
        return "picamera", None
    return "file", text


def _describe(kind, target):
    return {"camera": f"camera {target} (/dev/video{target})", "stream": f"stream {target}",
            "picamera": "the Raspberry Pi camera", "file": f"video file {target}"}[kind]


class _OpenCVCapture:
    """cv2.VideoCapture of a camera index, stream URL or file."""

    def __init__(self, kind, target):
        if kind == "camera":
            # V4L2 directly: OpenCV's default backend search can pick GStreamer and stall.
            backend = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
            self.capture = cv2.VideoCapture(target, backend)
        elif kind == "stream":
            self.capture = cv2.VideoCapture(target, cv2.CAP_FFMPEG)
        else:
            self.capture = cv2.VideoCapture(target)
        if kind != "file":
            # A live source should hand over its newest frame, not a backlog queued while we computed.
            self.capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)

    def is_opened(self):
        return self.capture.isOpened()

    def read(self):
        ok, frame = self.capture.read()
        return frame if ok else None

    def fps(self):
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        return fps if 0 < fps < 1000 else None

    def release(self):
        self.capture.release()


class _PiCamera:
    """The Pi camera through picamera2 (libcamera), as BGR frames."""

    def __init__(self, size=(640, 480)):
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise SourceError(
                "--source picamera needs picamera2: `sudo apt install python3-picamera2` and a virtual "
                "environment made with --system-site-packages (see edge_demo/README.md)"
            ) from None
        try:
            self.camera = Picamera2()
            # libcamera's "RGB888" is stored B, G, R: the byte order OpenCV uses.
            self.camera.configure(self.camera.create_video_configuration(main={"size": size, "format": "RGB888"}))
            self.camera.start()
        except (RuntimeError, IndexError) as error:
            raise SourceError(f"cannot start the Raspberry Pi camera: {error} (is it connected and enabled?)") from None

    def is_opened(self):
        return True

    def read(self):
        try:
            return self.camera.capture_array()
        except RuntimeError:
            return None

    def fps(self):
        return None

    def release(self):
        self.camera.close()


def _open_device(kind, target):
    if kind == "picamera":
        return _PiCamera()
    return _OpenCVCapture(kind, target)


class FrameSource:
    """Reads BGR frames from one source; reconnects a dropped live source.

    Args:
        spec: the `--source` text (see the module docstring).
        retries: reconnection attempts after a live source drops before giving up.
        backoff: first wait in seconds; it doubles after each failed attempt.
        max_backoff: longest wait between attempts.
        opener: `opener(kind, target)` -> device; replaced in tests.
        sleep: `time.sleep`; replaced in tests.
    """

    def __init__(self, spec, retries=6, backoff=0.5, max_backoff=16.0, opener=_open_device, sleep=time.sleep):
        self.kind, self.target = parse_source(spec)
        self.description = _describe(self.kind, self.target)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.opener = opener
        self.sleep = sleep
        self.reconnects = 0
        if self.kind == "file":
            self._check_file()
        # OpenCV and FFmpeg print their reasons on descriptor 2; the failure is reported in one line of ours.
        with native_stderr() as printed:
            self.device = opener(self.kind, self.target)
            opened = self.device.is_opened()
            if not opened:
                self.device.release()
        if not opened:
            reason = first_line(printed.text) if self.kind == "file" else ""
            raise SourceError(f"cannot open {self.description}: {self._open_hint()}"
                              + (f" ({reason})" if reason else ""))
        self.fps = self.device.fps()

    def _check_file(self):
        if os.path.isdir(self.target):
            raise SourceError(f"{self.description} is a folder, not a video file")
        if not os.path.isfile(self.target):
            raise SourceError(f"{self.description} does not exist")
        try:
            with open(self.target, "rb") as f:
                empty = not f.read(1)
        except OSError as error:
            raise SourceError(f"cannot read {self.description}: {error.strerror}") from None
        if empty:
            raise SourceError(f"{self.description} is an empty file (0 bytes)")

    def _open_hint(self):
        if self.kind == "camera":
            if platform.system() == "Linux" and not os.path.exists(f"/dev/video{self.target}"):
                return "no such device (list cameras with `v4l2-ctl --list-devices`)"
            return "the device exists but does not deliver video (busy, or not a capture device)"
        if self.kind == "stream":
            return "check the URL, the network and the credentials"
        return "OpenCV cannot decode it (unsupported container or codec)"

    @property
    def live(self):
        return self.kind != "file"

    def read(self):
        """The next frame; None when a video file ends. Raises SourceError when a live source is lost."""
        frame = self.device.read()
        if frame is not None or not self.live:
            return frame
        return self._reconnect()

    def _reconnect(self):
        wait = self.backoff
        for attempt in range(1, self.retries + 1):
            print(f"{self.description} dropped; reconnecting in {wait:.1f} s (attempt {attempt}/{self.retries})",
                  file=sys.stderr, flush=True)
            self.device.release()
            self.sleep(wait)
            wait = min(2 * wait, self.max_backoff)
            try:
                with native_stderr():
                    self.device = self.opener(self.kind, self.target)
                    opened = self.device.is_opened()
            except SourceError:
                continue
            frame = self.device.read() if opened else None
            if frame is not None:
                self.reconnects += 1
                return frame
        raise SourceError(f"lost {self.description}: no frame after {self.retries} reconnection attempts")

    def close(self):
        self.device.release()
