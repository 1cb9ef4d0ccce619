"""Edge demo input and output: sources, detection, crops, video, events, MJPEG, stats, quantization."""

import json
import os
import sys
import types
import urllib.request

import cv2
import numpy as np
import pytest

from keras_msreid.edge_demo import litert
from keras_msreid.edge_demo.cli import build_parser
from keras_msreid.edge_demo.crops import crop_person
from keras_msreid.edge_demo.detectors import HOGDetector, _suppress
from keras_msreid.edge_demo.events import FIELDS, EventLog
from keras_msreid.edge_demo.mjpeg import MJPEGServer
from keras_msreid.edge_demo.recorder import VideoRecorder
from keras_msreid.edge_demo.sources import FrameSource, SourceError, parse_source
from keras_msreid.edge_demo.stats import Stats
from keras_msreid.synthetic import draw_person, identity_appearance
from conftest import read_frames


# ----------------------------------------------------------------------------- sources
@pytest.mark.parametrize("spec, expected", [
    ("0", ("camera", 0)), (" 12 ", ("camera", 12)),
    ("rtsp://10.0.0.2:554/live", ("stream", "rtsp://10.0.0.2:554/live")),
    ("HTTP://cam.local/video.mjpg", ("stream", "HTTP://cam.local/video.mjpg")),
    ("picamera", ("picamera", None)), ("clips/walk.mp4", ("file", "clips/walk.mp4")),
])
def test_parse_source(spec, expected):
    assert parse_source(spec) == expected


def test_missing_video_file_names_it(tmp_path):
    with pytest.raises(SourceError, match=r"video file .*missing\.mp4 does not exist"):
        FrameSource(str(tmp_path / "missing.mp4"))


def test_undecodable_file_names_it(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("not a video")
    with pytest.raises(SourceError, match=r"cannot open video file .*notes\.mp4: OpenCV cannot decode it"):
        FrameSource(str(path))


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.path.exists("/dev/video57"), reason="needs Linux")
def test_absent_camera_index_names_the_device():
    with pytest.raises(SourceError, match=r"cannot open camera 57 \(/dev/video57\): no such device"):
        FrameSource("57")


class FakeDevice:
    def __init__(self, frames, opened=True):
        self.frames = list(frames)
        self.opened = opened
        self.released = False

    def is_opened(self):
        return self.opened

    def read(self):
        return self.frames.pop(0) if self.frames else None

    def fps(self):
        return 25.0

    def release(self):
        self.released = True


def test_dropped_camera_is_reopened_with_exponential_backoff():
    frame = np.zeros((4, 4, 3), np.uint8)
    devices = [FakeDevice([frame, frame]), FakeDevice([], opened=False), FakeDevice([]), FakeDevice([frame])]
    waits = []
    source = FrameSource("0", retries=4, backoff=0.5, max_backoff=1.5, opener=lambda kind, target: devices.pop(0),
                         sleep=waits.append)
    assert source.fps == 25.0
    assert source.read() is frame and source.read() is frame
    assert source.read() is frame  # after two failed reconnections
    assert waits == [0.5, 1.0, 1.5]
    assert source.reconnects == 1


def test_lost_stream_gives_up_after_bounded_retries():
    devices = [FakeDevice([])] + [FakeDevice([], opened=False) for _ in range(3)]
    waits = []
    source = FrameSource("rtsp://cam/live", retries=3, backoff=1.0, opener=lambda kind, target: devices.pop(0),
                         sleep=waits.append)
    with pytest.raises(SourceError, match=r"lost stream rtsp://cam/live: no frame after 3 reconnection attempts"):
        source.read()
    assert waits == [1.0, 2.0, 4.0]


def test_end_of_video_file_is_not_a_drop(tmp_path):
    path = str(tmp_path / "clip.avi")
    with VideoRecorder(path, fps=5) as recorder:
        for value in range(3):
            recorder.write(np.full((48, 64, 3), 60 * value, np.uint8))
    waits = []
    source = FrameSource(path, sleep=waits.append)
    frames = [source.read() for _ in range(4)]
    source.close()
    assert [f is None for f in frames] == [False, False, False, True]
    assert waits == []


# --------------------------------------------------------------------------- detection
def person_scene(height=200, size=(300, 400), x=200):
    frame = np.full(size + (3,), 150, np.uint8)
    draw_person(frame, identity_appearance(3, seed=0), foot=(x, size[0] - 30), height=height, view="right", phase=0.6)
    return cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)


def test_hog_finds_a_drawn_person_and_respects_thresholds():
    frame = person_scene()
    found = HOGDetector()(frame)
    assert found, "no person found"
    x, y, w, h = max(found, key=lambda d: d.score).box
    assert x <= 200 <= x + w and y <= 170 <= y + h  # the person's middle
    assert HOGDetector(min_height=h + 1)(frame) == [d for d in found if d.box[3] > h]
    assert HOGDetector(min_score=100.0)(frame) == []
    # Detection on a half-size frame reports boxes in full-frame pixels.
    enlarged = cv2.resize(frame, None, fx=2, fy=2)
    boxes = [d.box for d in HOGDetector(resize=0.5)(enlarged)]
    assert any(abs(bx - 2 * x) <= 16 and abs(bh - 2 * h) <= 32 for bx, _, _, bh in boxes)


def test_unknown_hog_model_is_named():
    with pytest.raises(ValueError, match="unknown HOG model 'tiny'"):
        HOGDetector("tiny")
    with pytest.raises(ValueError, match=r"contained must be in \(0, 1\], got 1.5"):
        HOGDetector(contained=1.5)


def test_a_box_nested_in_a_larger_one_is_dropped_whatever_its_score():
    whole, legs, neighbour = (100, 40, 80, 200), (110, 120, 60, 110), (150, 60, 80, 200)
    boxes = np.array([whole, legs, neighbour], np.float64)
    # The legs score highest, and their IoU with the whole person (0.41) passes
    # non-maximum suppression; the neighbour overlaps the person by IoU 0.20 and
    # 34 % of its area, so stays.
    found = _suppress(boxes, np.array([1.0, 3.0, 2.0]), 0.5, 0, overlap=0.45, contained=0.8)
    assert sorted(d.box for d in found) == [whole, neighbour]
    kept = _suppress(boxes, np.array([1.0, 3.0, 2.0]), 0.5, 0, overlap=0.45, contained=1.0)
    assert sorted(d.box for d in kept) == [whole, neighbour]  # wholly inside: dropped even at 1
    partly = np.array([whole, (110, 150, 60, 110)], np.float64)  # 82 % inside the whole person
    assert len(_suppress(partly, np.array([1.0, 3.0]), 0.5, 0, overlap=0.45, contained=0.8)) == 1
    assert len(_suppress(partly, np.array([1.0, 3.0]), 0.5, 0, overlap=0.45, contained=0.9)) == 2


# ------------------------------------------------------------------------------- crops
def test_crop_is_rgb_resized_and_clipped():
    frame = np.zeros((100, 80, 3), np.uint8)
    frame[:, :40] = (255, 0, 0)  # blue in BGR, left half
    crop = crop_person(frame, (-20, 10, 60, 200), (32, 16))
    assert crop.shape == (32, 16, 3) and crop.dtype == np.uint8
    # The box is clipped to x 0..40: all blue, which is RGB (0, 0, 255).
    np.testing.assert_array_equal(crop[16, 8], (0, 0, 255))
    with pytest.raises(ValueError, match=r"box \(90, 0, 10, 10\) lies outside the 80x100 frame"):
        crop_person(frame, (90, 0, 10, 10), (32, 16))


# ------------------------------------------------------------------------------ outputs
@pytest.mark.parametrize("extension", [".mp4", ".avi"])
def test_video_recorder_writes_a_readable_video_atomically(tmp_path, extension):
    path = tmp_path / f"out{extension}"
    recorder = VideoRecorder(str(path), fps=10)
    for value in range(5):
        recorder.write(np.full((64, 96, 3), 40 * value, np.uint8))
    assert not path.exists()  # only the hidden temporary file until close
    recorder.close()
    assert os.listdir(tmp_path) == [path.name]
    frames = read_frames(path)
    assert len(frames) == 5 and frames[0].shape == (64, 96, 3)
    assert abs(float(frames[4].mean()) - 160) < 8


def test_video_recorder_rejects_unknown_extension(tmp_path):
    with pytest.raises(ValueError, match=r"video output .*out\.mkv must end with one of \['\.avi', '\.mp4'\]"):
        VideoRecorder(str(tmp_path / "out.mkv"), fps=10)


def test_event_log_appends_json_lines_with_the_documented_fields(tmp_path):
    path = tmp_path / "events.jsonl"
    event = {"time": 1.5, "frame": 0, "track": 2, "identity": None, "name": None, "score": None,
             "box": [1, 2, 3, 4], "event": "seen", "detection": 0}
    with EventLog(str(path)) as log:
        log.write_frame([event])
    with EventLog(str(path)) as log:  # a restart appends
        log.write_frame([dict(event, frame=1, identity=7, name="Alice", score=0.93, event="identified")])
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [list(line) for line in lines] == [list(FIELDS)] * 2
    assert lines[1] == {"time": 1.5, "frame": 1, "track": 2, "identity": 7, "name": "Alice", "score": 0.93,
                        "box": [1, 2, 3, 4], "event": "identified"}


def test_mjpeg_server_binds_loopback_by_default_and_serves_frames():
    assert build_parser().parse_args(["run", "--model-dir", "m", "--source", "0"]).mjpeg_host == "127.0.0.1"
    server = MJPEGServer(port=0)
    try:
        assert server.server.server_address[0] == "127.0.0.1"
        frame = np.zeros((60, 80, 3), np.uint8)
        frame[:, 40:] = 255
        server.publish(frame)
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/frame.jpg", timeout=5) as response:
            assert response.headers["Content-Type"] == "image/jpeg"
            image = cv2.imdecode(np.frombuffer(response.read(), np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (60, 80, 3) and image[:, 60:].mean() > 240 and image[:, :20].mean() < 15
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/stream.mjpg", timeout=5) as response:
            assert response.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=msreidframe"
            server.publish(frame)
            assert response.readline() == b"--msreidframe\r\n"
            assert response.readline() == b"Content-Type: image/jpeg\r\n"
    finally:
        server.close()


def test_stats_report_fps_and_stage_means():
    now = [0.0]
    stats = Stats(("detect", "match"), clock=lambda: now[0])
    for detect_seconds in (0.010, 0.030):
        with stats.time("detect"):
            now[0] += detect_seconds
        with stats.time("match"):
            now[0] += 0.005
        now[0] += 0.1 - detect_seconds - 0.005  # the rest of a 100 ms frame
        stats.end_frame()
    assert stats.report() == "frames 2 | 10.0 fps | detect 20.0 ms | match 5.0 ms"
    now[0] += 0.2  # a slow window: one frame in 0.25 s
    with stats.time("detect"):
        now[0] += 0.05
    stats.end_frame()
    assert stats.report() == "frames 1 | 4.0 fps | detect 50.0 ms | match 0.0 ms"
    summary = stats.summary()  # the whole run: 3 frames in 0.45 s
    assert summary["frames"] == 3 and summary["fps"] == pytest.approx(3 / 0.45, abs=0.01)
    assert summary["detect_ms_median"] == pytest.approx(30.0) and summary["match_ms_mean"] == 3.33  # rounded to 0.01 ms


# -------------------------------------------------------------------------- quantization
def test_quantize_and_dequantize_against_the_definition():
    values = np.array([-300.0, -1.26, -0.25, 0.0, 0.24, 0.26, 1.0, 300.0], np.float32)
    scale, zero_point = 0.5, -3
    expected = [max(-128, min(127, int(np.round(v / scale)) + zero_point)) for v in values]
    quantized = litert.quantize(values, np.int8, scale, zero_point)
    assert quantized.dtype == np.int8 and quantized.tolist() == expected
    np.testing.assert_allclose(litert.dequantize(quantized, scale, zero_point),
                               [(q - zero_point) * scale for q in expected])
    # uint8 pixels into a uint8 input calibrated on [0, 255] pass unchanged.
    pixels = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(litert.quantize(pixels, np.uint8, 1.0, 0), pixels)


def test_interpreter_falls_back_to_tflite_runtime_and_explains_when_neither(monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    fake = types.ModuleType("tflite_runtime.interpreter")
    fake.Interpreter = object
    monkeypatch.setitem(sys.modules, "tflite_runtime", types.ModuleType("tflite_runtime"))
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", fake)
    assert litert.load_interpreter_class() is object
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    with pytest.raises(ImportError, match="pip install ai-edge-litert"):
        litert.load_interpreter_class()
