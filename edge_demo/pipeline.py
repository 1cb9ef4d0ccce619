"""The demo's main loop: frame -> people -> features -> tracks -> identities -> outputs.

Per frame: detect people, crop and extract every person in one extractor invoke,
link them to tracks, let the identifier match / enrol them inside one gallery
transaction, then annotate the frame and hand it to the outputs (window, video,
event log, MJPEG). Stage times are printed every `stats_every` seconds and at
the end, with a final JSON summary line (`summary {...}`).

Example:

>>> summary = run(RunOptions(model_dir="models", source="walk.mp4", headless=True, out_video="out.mp4"))
>>> summary["identities_created"], summary["fps"]
(2, 7.9)
"""

import contextlib
import dataclasses
import json
import signal
import sys
import threading
import time

import cv2

from .annotate import annotate
from .crops import clip_box, crop_people
from .detectors import HOGDetector, TFLiteDetector
from .display import Window, display_available
from .events import EventLog
from .gallery import Gallery, check_gallery_path
from .identifier import Identifier
from .matcher import Matcher
from .mjpeg import MJPEGServer
from .motion import MotionRegions
from .recorder import VideoRecorder
from .reid_models import ReIDModels
from .sources import FrameSource
from .stats import Stats, format_summary
from .tracker import Tracker

STAGES = ("detect", "extract", "match", "output")


@dataclasses.dataclass
class RunOptions:
    """Everything `python -m edge_demo run` can set (see `--help` for each)."""

    model_dir: str
    source: str
    mode: str = "int8"
    gallery: str = "gallery.sqlite"
    headless: bool = False
    out_video: str = None
    events: str = None
    mjpeg_port: int = None
    mjpeg_host: str = "127.0.0.1"
    threads: int = None
    max_frames: int = None
    stats_every: float = 10.0
    detector: str = "hog"
    hog_model: str = "default"
    detect_resize: float = 1.0
    hog_scale: float = 1.05
    min_score: float = 0.5
    min_height: float = 0.0
    contained: float = 0.8
    person_class: int = 0
    motion: bool = False
    shortlist: int = 5
    threshold: float = None
    max_samples: int = 20
    confirm_frames: int = 3
    max_missed: int = 10
    track_similarity: float = 0.5


def make_detector(options):
    if options.detector == "hog":
        return HOGDetector(options.hog_model, min_score=options.min_score, min_height=options.min_height,
                           resize=options.detect_resize, scale=options.hog_scale, contained=options.contained,
                           motion=MotionRegions() if options.motion else None)
    if options.motion:
        raise ValueError(f"--motion works with the HOG detector only, not with --detector {options.detector}")
    return TFLiteDetector(options.detector, person_class=options.person_class, min_score=options.min_score,
                          min_height=options.min_height, contained=options.contained, num_threads=options.threads)


class _StopFlag:
    """Set by SIGTERM (systemd stopping the service) or Ctrl-C: the loop ends after the current frame."""

    def __init__(self):
        self.event = threading.Event()
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.previous[signum] = signal.signal(signum, lambda *_: self.event.set())

    def restore(self):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


class _Outputs:
    """Window, video file, event log and MJPEG stream, whichever were asked for."""

    def __init__(self, options, fps, log):
        self.window = None
        if not options.headless:
            if display_available():
                self.window = Window("msreid edge")
            else:
                print("no display (or OpenCV without GUI): running headless", file=log)
        self.recorder = VideoRecorder(options.out_video, fps) if options.out_video else None
        self.events = None  # opened by open_events, once everything else is known to work
        self.mjpeg = None
        if options.mjpeg_port is not None:
            self.mjpeg = MJPEGServer(options.mjpeg_port, options.mjpeg_host)
            print(f"MJPEG stream on {self.mjpeg.url}", file=log)

    def open_events(self, options):
        if options.events:
            self.events = EventLog(options.events)

    @property
    def wants_frames(self):
        return self.window is not None or self.recorder is not None or self.mjpeg is not None

    def emit(self, frame, people, status):
        """Returns False when the user closed the window."""
        if self.events is not None:
            self.events.write_frame(people)
        if not self.wants_frames:
            return True
        annotate(frame, people, status)
        if self.recorder is not None:
            self.recorder.write(frame)
        if self.mjpeg is not None:
            self.mjpeg.publish(frame)
        return self.window.show(frame) if self.window is not None else True

    def close(self):
        for output in (self.recorder, self.events, self.mjpeg, self.window):
            if output is not None:
                output.close()


def run(options, log=sys.stdout):
    """Runs the demo until the source ends, `max_frames`, Ctrl-C or SIGTERM; returns the summary dict."""
    if options.threads is not None:
        cv2.setNumThreads(options.threads)
    with contextlib.ExitStack() as resources:
        # What only reads comes first, what creates files last: a mistake leaves no new gallery or log behind.
        check_gallery_path(options.gallery)
        models = ReIDModels.load(options.model_dir, options.mode, num_threads=options.threads)
        detector = make_detector(options)
        source = FrameSource(options.source)
        resources.callback(source.close)
        outputs = _Outputs(options, source.fps or 10.0, log)  # window, video, MJPEG: nothing written yet
        resources.callback(outputs.close)
        gallery = Gallery(options.gallery, fingerprint=models.fingerprint, max_samples=options.max_samples)
        resources.callback(gallery.close)
        outputs.open_events(options)
        stop = _StopFlag()
        resources.callback(stop.restore)
        tracker = Tracker(min_similarity=options.track_similarity, max_missed=options.max_missed)
        matcher = Matcher(models, gallery, shortlist=options.shortlist, threshold=options.threshold)
        identifier = Identifier(matcher, gallery, tracker, confirm_hits=options.confirm_frames)
        stats = Stats(STAGES)
        print(f"{source.description} -> {options.model_dir} ({options.mode}), gallery {options.gallery} "
              f"({len(gallery.identities())} identities)", file=log, flush=True)
        try:
            _loop(options, source, detector, models, tracker, identifier, gallery, outputs, stats, stop, log)
        finally:
            summary = stats.summary()
            summary.update(identities_created=identifier.created, identities_total=len(gallery.identities()),
                           reconnects=source.reconnects, mode=options.mode, threads=options.threads)
            print(f"total: {format_summary(summary)} | identities {summary['identities_total']} "
                  f"(+{summary['identities_created']})", file=log)
            print("summary " + json.dumps(summary, sort_keys=True), file=log, flush=True)
    return summary


def _loop(options, source, detector, models, tracker, identifier, gallery, outputs, stats, stop, log):
    frame_index = 0
    last_report = time.monotonic()
    while not stop.event.is_set() and (options.max_frames is None or frame_index < options.max_frames):
        frame = source.read()
        if frame is None:
            return
        now = time.time()
        with stats.time("detect"):
            boxes = [box for box in (clip_box(d.box, frame.shape) for d in detector(frame)) if box is not None]
        with stats.time("extract"):
            crops = crop_people(frame, boxes, models.image_size)
            features = models.extract(crops) if boxes else {}
        with stats.time("match"):
            tracks = tracker.update(boxes, features.get("embedding"), frame_index)
            with gallery.transaction():
                decisions = identifier.update(tracks, features, crops, frame_index, now)
        with stats.time("output"):
            people = [dict(decision, time=round(now, 3), frame=frame_index, box=list(boxes[decision["detection"]]),
                           name=gallery.name(decision["identity"]) if decision["identity"] else None,
                           score=None if decision["score"] is None else round(decision["score"], 4))
                      for decision in decisions]
            if not outputs.emit(frame, people, f"frame {frame_index}  {len(boxes)} people"):
                return
        stats.end_frame()
        frame_index += 1
        if time.monotonic() - last_report >= options.stats_every:
            last_report = time.monotonic()
            print(f"{stats.report()} | identities {len(gallery.identities())} (+{identifier.created})",
                  file=log, flush=True)
