"""An MJPEG stream of the annotated frames over HTTP, for a browser on the network.

It listens on 127.0.0.1 unless another address is asked for: the stream shows
people and has no authentication, so exposing it is the owner's explicit choice
(or tunnel it: `ssh -L 8080:127.0.0.1:8080 pi@raspberrypi`).

Paths: `/` a page showing the stream, `/stream.mjpg` the multipart stream,
`/frame.jpg` the latest frame.

Example:

>>> server = MJPEGServer(port=8080)          # http://127.0.0.1:8080/
>>> server.publish(frame)                     # BGR frame; encoded once, and only if someone watches
>>> server.close()
"""

import http.server
import threading

import cv2

_BOUNDARY = "msreidframe"
_PAGE = b"<html><head><title>msreid edge</title></head><body style='margin:0;background:#000'>" \
        b"<img src='/stream.mjpg' style='max-width:100%'></body></html>"


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "msreid-edge"

    def do_GET(self):
        hub = self.server.hub
        if self.path == "/":
            self._send(200, "text/html", _PAGE)
        elif self.path == "/frame.jpg":
            jpeg = hub.latest(timeout=5.0)
            if jpeg is None:
                self._send(503, "text/plain", b"no frame yet\n")
            else:
                self._send(200, "image/jpeg", jpeg)
        elif self.path == "/stream.mjpg":
            self._stream(hub)
        else:
            self._send(404, "text/plain", b"not found\n")

    def _send(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, hub):
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        sequence = -1
        try:
            while not hub.closed:
                jpeg, sequence = hub.next_after(sequence, timeout=1.0)
                if jpeg is None:
                    continue
                self.wfile.write(f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}"
                                 f"\r\n\r\n".encode("ascii") + jpeg + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the viewer went away

    def log_message(self, *args):
        pass  # one line per request would flood the demo's output


class _FrameHub:
    """The latest frame, its JPEG made on first request, and a condition viewers wait on."""

    def __init__(self, quality):
        self.condition = threading.Condition()
        self.quality = quality
        self.frame = None
        self.jpeg = None
        self.sequence = 0
        self.closed = False

    def put(self, frame):
        with self.condition:
            self.frame = frame.copy()
            self.jpeg = None
            self.sequence += 1
            self.condition.notify_all()

    def _encoded(self):
        # Called with the condition held: one encoding per frame, however many viewers.
        if self.jpeg is None and self.frame is not None:
            ok, jpeg = cv2.imencode(".jpg", self.frame, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            self.jpeg = jpeg.tobytes() if ok else None
        return self.jpeg

    def latest(self, timeout):
        with self.condition:
            self.condition.wait_for(lambda: self.frame is not None or self.closed, timeout)
            return self._encoded()

    def next_after(self, sequence, timeout):
        with self.condition:
            if not self.condition.wait_for(lambda: self.sequence != sequence or self.closed, timeout):
                return None, sequence
            return self._encoded(), self.sequence


class MJPEGServer:
    """Serves published frames on `host:port` from a background thread.

    Args:
        port: TCP port; 0 picks a free one (see `.port`).
        host: address to listen on; 127.0.0.1 keeps the stream on this machine.
        quality: JPEG quality of the stream.
    """

    def __init__(self, port=8080, host="127.0.0.1", quality=80):
        if not 0 <= int(port) <= 65535:
            raise ValueError(f"MJPEG port must be between 0 and 65535, got {port}")
        self.hub = _FrameHub(int(quality))
        try:
            self.server = http.server.ThreadingHTTPServer((host, int(port)), _Handler)
        except OSError as error:
            raise OSError(f"cannot serve MJPEG on {host}:{port}: {error.strerror or error}") from None
        self.server.daemon_threads = True
        self.server.hub = self.hub
        self.host, self.port = self.server.server_address[:2]
        self.thread = threading.Thread(target=self.server.serve_forever, name="mjpeg", daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://{self.host}:{self.port}/"

    def publish(self, frame):
        self.hub.put(frame)

    def close(self):
        with self.hub.condition:
            self.hub.closed = True
            self.hub.condition.notify_all()
        self.server.shutdown()
        self.server.server_close()
