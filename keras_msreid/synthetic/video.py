"""A video of rendered pedestrians walking across a static scene, with ground truth.

Made for the edge demo's tests: people enter at one side, walk across (in opposite
directions, so that they cross, unless `crossing=False`) and leave at the other
side. Ground truth gives every person's box in every frame. The people are drawn
large (240-300 px tall by default) and in profile with a modest stride, which
OpenCV's default HOG people detector finds in most frames (`benchmarks/bench_synth.py`
measures the rate per person; smaller people, clothes close to the street's grey
and busy patterns such as vertical stripes are missed more often).

Example:

>>> truth = write_pedestrian_video("/tmp/walk.mp4", people=[3, 8], frames=60, seed=0)
>>> len(truth)
60
>>> sorted(truth[30][0])
['box', 'occluded', 'person', 'visible']
"""

import dataclasses
import math
import os
import tempfile

import cv2
import numpy as np

from keras_msreid.errors import UserError
from keras_msreid.synthetic.appearance import Appearance, identity_appearance
from keras_msreid.synthetic.camera import BACKGROUND_PALETTE, smooth_noise
from keras_msreid.synthetic.person import draw_person

CODECS = {".mp4": "mp4v", ".avi": "MJPG"}  # both written and read back by opencv-python
_CROSSING_SHARE = 0.6  # of the video one person needs to cross the frame
_STRIDE = 0.9  # body heights walked per gait cycle
_MID_TONES = tuple(c for c in BACKGROUND_PALETTE if 90 <= np.mean(c) <= 160)


def _scene(size, rng):
    """A static street, a building wall with windows above pavement; and its horizon row."""
    h, w = size
    # Mid-tone wall and pavement: both light and dark clothes stand out against them.
    wall, windows, ground = (np.array(_MID_TONES[i], np.float32)
                             for i in rng.choice(len(_MID_TONES), 3, replace=False))
    horizon = int(h * rng.uniform(0.4, 0.5))
    image = np.empty((h, w, 3), np.float32)
    image[:horizon] = wall
    image[horizon:] = ground * np.linspace(0.9, 1.1, h - horizon, dtype=np.float32)[:, None, None]
    period = int(w / rng.uniform(4.0, 7.0))
    for x in range(period // 4, w, period):
        image[int(0.1 * h):int(0.3 * h), x:x + period // 2] = windows
    image *= 0.97 + 0.06 * smooth_noise(rng, (h, w), cells=16)[..., None]  # faint: texture competes with limbs in HOG
    return cv2.convertScaleAbs(image), horizon


def _person_box(appearance, height, view, phase):
    """Tight box (x0, y0, x1, y1) around the drawn person relative to the foot point."""
    pad = int(height * 0.4) + 4
    canvas = np.zeros((int(height * 1.1) + pad, 2 * pad, 3), np.uint8)
    foot = (pad, int(height * 1.05))
    draw_person(canvas, appearance, foot, height, view, phase)
    ys, xs = np.nonzero(canvas.any(axis=2))
    return xs.min() - foot[0], ys.min() - foot[1], xs.max() + 1 - foot[0], ys.max() + 1 - foot[1]


def _open_writer(path, fps, size):
    extension = os.path.splitext(path)[1].lower()
    if extension not in CODECS:
        raise UserError(f"video path {path} must end with one of {sorted(CODECS)}")
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(suffix=extension, prefix=".partial-", dir=directory)
    os.close(handle)
    writer = cv2.VideoWriter(temporary, cv2.VideoWriter_fourcc(*CODECS[extension]), fps, (size[1], size[0]))
    if not writer.isOpened():
        os.remove(temporary)
        raise OSError(f"OpenCV cannot write {CODECS[extension]} video to {path}")
    return writer, temporary


@dataclasses.dataclass(frozen=True)
class _Walker:
    """One person's path: enters at `start` (a frame index) and crosses at `speed` px/frame."""

    appearance: Appearance
    height: float
    direction: float  # +1 walks to the right, -1 to the left
    foot_y: float
    start: float
    speed: float
    margin: float  # starts and ends this far outside the frame
    phase0: float

    def pose(self, frame_index, width):
        """(foot point, view, stride phase) in a frame, or None before the person enters."""
        walked = (frame_index - self.start) * self.speed
        if walked < 0:
            return None
        start_x = -self.margin if self.direction > 0 else width + self.margin
        foot = (start_x + self.direction * walked, self.foot_y)
        phase = self.phase0 + 2.0 * math.pi * walked / (_STRIDE * self.height)
        return foot, "right" if self.direction > 0 else "left", phase


def _plan_walkers(appearances, frames, size, horizon, person_height, crossing, rng):
    h, w = size
    duration = max(1.0, _CROSSING_SHARE * frames)
    stagger = (frames - duration) / max(1, len(appearances) - 1)
    walkers = []
    for index, appearance in enumerate(appearances):
        height = rng.uniform(*person_height)
        # Feet on the pavement, and the margin that a HOG detection window keeps
        # around a person (16 of its 128 rows) inside the frame where it fits.
        window_margin = height / 6.0
        highest = min(max(horizon + 0.1 * h, height + window_margin), h - 4.0)
        lowest = min(max(highest, h - window_margin), h - 4.0)
        margin = 0.3 * height
        walkers.append(_Walker(
            appearance=appearance,
            height=height,
            direction=-1.0 if crossing and index % 2 else 1.0,
            foot_y=rng.uniform(highest, lowest),
            start=index * stagger,
            speed=(w + 2 * margin) / duration,
            margin=margin,
            phase0=rng.uniform(0.0, 2.0 * math.pi),
        ))
    return walkers


def _occlusion(entries, size):
    """Adds to each entry the fraction of its box covered by the boxes of nearer people."""
    covered = np.zeros(size, bool)
    for entry in reversed(entries):  # nearest first
        x, y, w, h = entry["box"]
        entry["occluded"] = round(float(covered[y:y + h, x:x + w].mean()), 3)
        covered[y:y + h, x:x + w] = True


def _resolve_people(people, seed):
    appearances = []
    for person in people:
        if isinstance(person, Appearance):
            appearances.append(person)
        elif isinstance(person, (int, np.integer)) and not isinstance(person, bool):
            appearances.append(identity_appearance(int(person), seed))
        else:
            raise TypeError(f"people must hold Appearance objects or integer ids, got {person!r}")
    return appearances


def write_pedestrian_video(path, people, frames=60, size=(480, 640), fps=10, seed=0, person_height=(240, 300),
                           crossing=True):
    """Writes the video and returns its ground truth.

    Args:
        path: output file, `.mp4` (mp4v) or `.avi` (MJPG); written atomically.
        people: list of `Appearance`s or integer identities; an identity is drawn
            as in `write_market1501` with the same seed (`identity_appearance`).
        frames: number of frames; each person needs 60% of them to cross, and
            the people enter one after the other, evenly spread over the video.
        size: (height, width) of the frames.
        fps: frames per second stored in the file.
        seed: chooses the scene, heights, paths and timing.
        person_height: (min, max) body height in pixels.
        crossing: alternate walking directions so that people cross each other;
            otherwise everybody walks left to right.

    Returns:
        One list per frame with an entry for every person at least partly in
        view, farthest first: {"person": index into `people`, "box": (x, y, w, h)
        of the whole body clipped to the frame, "visible": fraction of the body
        box inside the frame, "occluded": fraction of the clipped box covered by
        the boxes of nearer people}.
    """
    if not people:
        raise ValueError("people must name at least one person")
    if frames < 1 or fps <= 0:
        raise UserError(f"frames must be >= 1 and fps > 0, got frames={frames}, fps={fps}")
    h, w = size
    if not 0 < person_height[0] <= person_height[1] <= 0.95 * h:
        raise ValueError(f"person_height {person_height} must be increasing and fit 95% of the frame height {h}")
    appearances = _resolve_people(people, seed)
    rng = np.random.default_rng([seed, 5])
    scene, horizon = _scene(size, rng)
    walkers = _plan_walkers(appearances, frames, size, horizon, person_height, crossing, rng)
    by_depth = sorted(range(len(walkers)), key=lambda i: walkers[i].foot_y)

    writer, temporary = _open_writer(path, fps, size)
    truth = []
    try:
        for frame_index in range(frames):
            frame = scene.copy()
            entries = []
            for index in by_depth:
                walker = walkers[index]
                pose = walker.pose(frame_index, w)
                if pose is None:
                    continue
                foot, view, phase = pose
                x0, y0, x1, y1 = _person_box(walker.appearance, walker.height, view, phase)
                box = (foot[0] + x0, foot[1] + y0, foot[0] + x1, foot[1] + y1)
                left, top = max(0, int(box[0])), max(0, int(box[1]))
                right, bottom = min(w, int(math.ceil(box[2]))), min(h, int(math.ceil(box[3])))
                if right <= left or bottom <= top:
                    continue
                draw_person(frame, walker.appearance, foot, walker.height, view, phase)
                inside = (right - left) * (bottom - top) / ((box[2] - box[0]) * (box[3] - box[1]))
                entries.append({"person": index, "box": (left, top, right - left, bottom - top),
                                "visible": round(min(1.0, inside), 3)})
            _occlusion(entries, size)
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            truth.append(entries)
        writer.release()
        os.replace(temporary, path)
    except BaseException:
        writer.release()
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return truth
