"""Pedestrian crops as a detector would cut them from a camera's footage.

A crop is a background in the camera's style, one person with per-picture jitter
(stride phase, position, size), sometimes partly occluded by an object at the
bottom or a side, then the camera's light and optics. The figure is drawn at twice
the crop size and shrunk, which anti-aliases edges and patterns.

Example:

>>> import numpy as np
>>> from keras_msreid.synthetic import camera_style, identity_appearance
>>> rng = np.random.default_rng(0)
>>> crop = render_crop(identity_appearance(5, seed=0), camera_style(1, seed=0), rng)
>>> crop.shape
(128, 64, 3)
"""

import math

import cv2
import numpy as np

from keras_msreid.synthetic.appearance import CLOTHING_PALETTE, sample_appearance
from keras_msreid.synthetic.camera import VIEW_NAMES, apply_camera, draw_background
from keras_msreid.synthetic.person import draw_person

_SUPERSAMPLE = 2
_OCCLUDER_COLORS = tuple(CLOTHING_PALETTE.values())


def sample_view(style, rng):
    """A view for `draw_person` drawn from the camera's viewpoint distribution."""
    view = VIEW_NAMES[rng.choice(3, p=style.view_probs)]
    if view == "side":
        return "left" if rng.random() < 0.5 else "right"
    return view


def _occlude(canvas, rng):
    """Covers the bottom or one side with an object (a bench, a car, a pole, a bin)."""
    h, w = canvas.shape[:2]
    color = np.array(_OCCLUDER_COLORS[rng.integers(len(_OCCLUDER_COLORS))], np.float32)
    where = rng.integers(3)
    if where == 0:
        top = int(h * rng.uniform(0.65, 0.85))
        region = canvas[top:]
    else:
        width = int(w * rng.uniform(0.15, 0.35))
        region = canvas[:, :width] if where == 1 else canvas[:, w - width:]
    shade = np.linspace(0.8, 1.1, region.shape[0], dtype=np.float32)[:, None, None]
    region[...] = np.clip(color * shade, 0, 255).astype(np.uint8)


def _canvas(style, rng, size):
    """The camera's background at the drawing size (drawn small: it is shrunk back anyway)."""
    background = draw_background(size, style, rng)
    return cv2.resize(background, (size[1] * _SUPERSAMPLE, size[0] * _SUPERSAMPLE), interpolation=cv2.INTER_LINEAR)


def _finish(canvas, style, size, rng):
    small = cv2.resize(canvas, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return apply_camera(small, style, rng)


def render_crop(appearance, style, rng, size=(128, 64), view=None, phase=None, occlude=None):
    """Renders one RGB uint8 crop of `size` (height, width).

    Args:
        appearance: the person's `Appearance`.
        style: the camera's `CameraStyle`.
        rng: `numpy.random.Generator` for the per-picture jitter.
        view: "front", "back", "left" or "right"; drawn from the camera when None.
        phase: stride phase in radians; random when None.
        occlude: whether an object hides part of the person; the camera's
            occlusion probability decides when None.
    """
    h, w = size[0] * _SUPERSAMPLE, size[1] * _SUPERSAMPLE
    canvas = _canvas(style, rng, size)
    view = sample_view(style, rng) if view is None else view
    phase = rng.uniform(0.0, 2.0 * math.pi) if phase is None else phase
    body = h * style.person_scale * rng.uniform(0.94, 1.06)
    foot_x = w / 2 + rng.uniform(-0.07, 0.07) * w
    foot_y = (h + body) / 2 + rng.uniform(-0.03, 0.03) * h
    draw_person(canvas, appearance, (foot_x, foot_y), body, view, phase)
    if occlude is None:
        occlude = rng.random() < style.occlusion_prob
    if occlude:
        _occlude(canvas, rng)
    return _finish(canvas, style, size, rng)


def render_distractor(style, rng, size=(128, 64)):
    """A false detection: background only, or a stranger cut badly (Market's "0000")."""
    h, w = size[0] * _SUPERSAMPLE, size[1] * _SUPERSAMPLE
    canvas = _canvas(style, rng, size)
    if rng.random() < 0.7:
        stranger = sample_appearance(rng)
        body = h * rng.uniform(1.2, 2.2)  # too close: only part of the body fits
        foot = (w * rng.uniform(0.1, 0.9), h * rng.uniform(0.9, 2.0))
        draw_person(canvas, stranger, foot, body, sample_view(style, rng), rng.uniform(0, 2 * math.pi))
    return _finish(canvas, style, size, rng)


def render_junk(appearance, style, rng, size=(128, 64)):
    """A crop too poor to score (Market's "-1"): a sliver of a person, heavily blurred."""
    h, w = size[0] * _SUPERSAMPLE, size[1] * _SUPERSAMPLE
    canvas = _canvas(style, rng, size)
    body = h * rng.uniform(0.8, 1.0)
    foot = (w * rng.choice([-0.15, 1.15]), (h + body) / 2)
    draw_person(canvas, appearance, foot, body, sample_view(style, rng), rng.uniform(0, 2 * math.pi))
    canvas = cv2.GaussianBlur(canvas, (0, 0), 3.0 * _SUPERSAMPLE)
    return _finish(canvas, style, size, rng)
