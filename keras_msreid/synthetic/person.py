"""Draws a walking pedestrian onto an RGB canvas with anti-aliased OpenCV primitives.

The figure is human-shaped on purpose (head, neck, torso, arms, legs in a walking
pose): the edge demo finds people with OpenCV's HOG people detector, which keys on
that silhouette. The viewpoint changes what is visible: a face and a printed logo
from the front, hair and the backpack itself from the back, backpack straps from
the front, a profile with a walking stride from the side.

Example:

>>> import numpy as np
>>> from keras_msreid.synthetic import identity_appearance
>>> canvas = np.full((256, 128, 3), 200, np.uint8)
>>> canvas = draw_person(canvas, identity_appearance(3, seed=0), foot=(64, 250), height=236,
...                      view="front", phase=0.5)
"""

import math

import cv2
import numpy as np

VIEWS = ("front", "back", "left", "right")

_SHIFT = 4  # fixed-point bits for sub-pixel drawing
_SCALE = 1 << _SHIFT
_FAR_SHADE = 0.78  # limbs on the far side of a profile are darker


def _fixed(points):
    return np.round(np.asarray(points, dtype=np.float64) * _SCALE).astype(np.int32)


def _fixed_point(point):
    return int(round(point[0] * _SCALE)), int(round(point[1] * _SCALE))


def _color(rgb, shade=1.0):
    return tuple(float(c) * shade for c in rgb)


def _polygon(canvas, points, rgb):
    cv2.fillPoly(canvas, [_fixed(points)], _color(rgb), cv2.LINE_AA, _SHIFT)


def _segment(canvas, p0, p1, thickness, rgb):
    """A limb: a thick line with round caps."""
    width = max(1, int(round(thickness)))
    cv2.line(canvas, _fixed_point(p0), _fixed_point(p1), _color(rgb), width, cv2.LINE_AA, _SHIFT)


def _ellipse(canvas, center, axes, rgb, angle=0.0):
    axes = tuple(max(1, int(round(a * _SCALE))) for a in axes)
    cv2.ellipse(canvas, _fixed_point(center), axes, angle, 0, 360, _color(rgb), -1, cv2.LINE_AA, _SHIFT)


def _patterned_polygon(canvas, points, appearance, origin, height):
    """Fills a polygon with the upper garment's pattern, anchored to the body."""
    points = np.asarray(points, dtype=np.float64)
    h, w = canvas.shape[:2]
    x0, y0 = np.maximum(np.floor(points.min(axis=0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(points.max(axis=0)).astype(int) + 1, (w, h))
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [_fixed(points - (x0, y0))], 255, cv2.LINE_AA, _SHIFT)
    period = max(2.0, appearance.stripe_period * height)
    ys = (np.arange(y0, y1) - origin[1])[:, None]
    xs = (np.arange(x0, x1) - origin[0])[None, :]
    row_band = np.floor(ys / (period / 2)) % 2 == 1
    col_band = np.floor(xs / (period / 2)) % 2 == 1
    if appearance.upper_pattern == "hstripes":
        second = np.broadcast_to(row_band, mask.shape)
    elif appearance.upper_pattern == "vstripes":
        second = np.broadcast_to(col_band, mask.shape)
    else:
        second = row_band ^ col_band
    texture = np.where(second[..., None], appearance.upper_color2, appearance.upper_color)
    alpha = mask[..., None].astype(np.float32) / 255.0
    region = canvas[y0:y1, x0:x1]
    region[...] = np.round(region * (1.0 - alpha) + texture * alpha).astype(np.uint8)


def _torso(canvas, points, appearance, origin, height):
    if appearance.upper_pattern == "plain":
        _polygon(canvas, points, appearance.upper_color)
    else:
        _patterned_polygon(canvas, points, appearance, origin, height)


def _bag_box(canvas, x0, y0, x1, y1, rgb):
    _polygon(canvas, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)], rgb)


def _logo(canvas, appearance, center, size):
    cx, cy = center
    if appearance.logo_shape == "circle":
        _ellipse(canvas, center, (size, size), appearance.logo_color)
    elif appearance.logo_shape == "square":
        _bag_box(canvas, cx - size, cy - size, cx + size, cy + size, appearance.logo_color)
    elif appearance.logo_shape == "triangle":
        _polygon(canvas, [(cx, cy - size), (cx + size, cy + size), (cx - size, cy + size)],
                 appearance.logo_color)


def _front_or_back(canvas, a, cx, top, H, view, phase):
    """A person facing the camera (front) or walking away from it (back)."""
    w = a.width_scale
    mirror = 1.0 if view == "front" else -1.0  # the person's left is on the other side
    y = lambda f: top + f * H  # noqa: E731 (a height fraction -> image row)
    sw, hw = 0.125 * H * w, 0.095 * H * w
    swing = math.sin(phase)

    if a.hair_style == "long" and view == "front":
        _bag_box(canvas, cx - 0.058 * H, y(0.06), cx + 0.058 * H, y(0.2), a.hair_color)

    # Legs: the leg swinging back lifts its foot a little.
    lifts = (0.025 * H * max(0.0, swing), 0.025 * H * max(0.0, -swing))
    for side, lift in zip((-1.0, 1.0), lifts):
        hip = (cx + side * 0.048 * H * w, y(0.5))
        knee = (cx + side * 0.052 * H * w, y(0.73) - lift)
        ankle = (cx + side * 0.056 * H * w, y(0.955) - lift)
        thigh_rgb = a.skin if a.lower_style == "skirt" else a.lower_color
        shin_rgb = a.lower_color if a.lower_style == "trousers" else a.skin
        _segment(canvas, knee, ankle, 0.062 * H * w, shin_rgb)
        _segment(canvas, hip, knee, 0.08 * H * w, thigh_rgb)
        _ellipse(canvas, (ankle[0] + side * 0.008 * H, y(0.975) - lift), (0.04 * H, 0.02 * H), a.shoes_color)
    _polygon(canvas, [(cx - hw, y(0.47)), (cx + hw, y(0.47)), (cx + 0.85 * hw, y(0.57)),
                      (cx - 0.85 * hw, y(0.57))], a.lower_color)
    if a.lower_style == "skirt":
        _polygon(canvas, [(cx - hw, y(0.47)), (cx + hw, y(0.47)), (cx + 1.4 * hw, y(0.69)),
                          (cx - 1.4 * hw, y(0.69))], a.lower_color)

    # Neck and torso.
    _bag_box(canvas, cx - 0.024 * H, y(0.11), cx + 0.024 * H, y(0.18), a.skin)
    torso = [(cx - sw, y(0.2)), (cx - 0.8 * sw, y(0.168)), (cx - 0.035 * H, y(0.158)),
             (cx + 0.035 * H, y(0.158)), (cx + 0.8 * sw, y(0.168)), (cx + sw, y(0.2)),
             (cx + 1.02 * hw, y(0.52)), (cx - 1.02 * hw, y(0.52))]
    _torso(canvas, torso, a, (cx, y(0.16)), H)
    if view == "front" and a.logo_shape != "none":
        _logo(canvas, a, (cx + 0.03 * H, y(0.27)), 0.03 * H)
    if a.bag == "backpack":
        if view == "back":
            _bag_box(canvas, cx - 0.095 * H * w, y(0.2), cx + 0.095 * H * w, y(0.43), a.bag_color)
            _segment(canvas, (cx - 0.07 * H * w, y(0.36)), (cx + 0.07 * H * w, y(0.36)),
                     0.012 * H, _color(a.bag_color, 0.7))
        else:
            for side in (-1.0, 1.0):
                _segment(canvas, (cx + side * 0.078 * H * w, y(0.175)),
                         (cx + side * 0.085 * H * w, y(0.37)), 0.024 * H, a.bag_color)
    if a.hair_style == "long" and view == "back":
        _polygon(canvas, [(cx - 0.058 * H, y(0.06)), (cx + 0.058 * H, y(0.06)),
                          (cx + 0.064 * H, y(0.24)), (cx - 0.064 * H, y(0.24))], a.hair_color)

    # Arms swing a little; the forearm is skin with short sleeves.
    for side in (-1.0, 1.0):
        shoulder = (cx + side * (sw - 0.028 * H), y(0.205))
        elbow = (cx + side * (sw + 0.004 * H), y(0.345) + side * 0.012 * H * swing)
        wrist = (cx + side * (sw + 0.012 * H), y(0.47) + side * 0.02 * H * swing)
        forearm_rgb = a.upper_color if a.sleeves == "long" else a.skin
        _segment(canvas, elbow, wrist, 0.045 * H * w, forearm_rgb)
        _segment(canvas, shoulder, elbow, 0.056 * H * w, a.upper_color)
        _ellipse(canvas, (wrist[0], wrist[1] + 0.018 * H), (0.024 * H, 0.028 * H), a.skin)
        if a.bag == "handbag" and side * mirror > 0:
            _segment(canvas, (wrist[0], wrist[1] + 0.02 * H), (wrist[0], y(0.52)), 0.008 * H,
                     _color(a.bag_color, 0.7))
            _bag_box(canvas, wrist[0] - 0.04 * H, y(0.51), wrist[0] + 0.04 * H, y(0.58), a.bag_color)
    if a.bag == "shoulder":
        strap_from = (cx - mirror * 0.09 * H * w, y(0.18))
        bag_x = cx + mirror * (hw + 0.045 * H)
        _segment(canvas, strap_from, (bag_x, y(0.45)), 0.014 * H, _color(a.bag_color, 0.7))
        _bag_box(canvas, bag_x - 0.05 * H, y(0.44), bag_x + 0.05 * H, y(0.53), a.bag_color)

    # Head: a face from the front, hair all over from the back.
    if view == "front":
        _ellipse(canvas, (cx, y(0.068)), (0.052 * H, 0.066 * H), a.hair_color)
        _ellipse(canvas, (cx, y(0.082)), (0.045 * H, 0.053 * H), a.skin)
    else:
        _ellipse(canvas, (cx, y(0.07)), (0.052 * H, 0.068 * H), a.hair_color)


def _profile(canvas, a, cx, top, H, direction, phase):
    """A person seen from the side, walking towards `direction` (+1 right, -1 left)."""
    w = a.width_scale
    d = direction
    y = lambda f: top + f * H  # noqa: E731 (a height fraction -> image row)
    back_x, front_x = cx - d * 0.12 * H * w, cx + d * 0.105 * H * w

    def leg(leg_phase, shade):
        # A modest stride keeps the silhouette that HOG people detectors expect;
        # the leg swinging forward bends its knee, so the legs never merge into one.
        angle = 0.22 * math.sin(leg_phase)
        hip = (cx, y(0.51))
        knee = (hip[0] + d * 0.225 * H * math.sin(angle), hip[1] + 0.225 * H * math.cos(angle))
        shin_angle = angle - 0.35 * max(0.0, math.cos(leg_phase))
        ankle = (knee[0] + d * 0.23 * H * math.sin(shin_angle), knee[1] + 0.23 * H * math.cos(shin_angle))
        thigh_rgb = a.skin if a.lower_style == "skirt" else a.lower_color
        shin_rgb = a.lower_color if a.lower_style == "trousers" else a.skin
        _segment(canvas, knee, ankle, 0.07 * H * w, _color(shin_rgb, shade))
        _segment(canvas, hip, knee, 0.1 * H * w, _color(thigh_rgb, shade))
        _ellipse(canvas, (ankle[0] + d * 0.022 * H, ankle[1] + 0.012 * H), (0.045 * H, 0.019 * H),
                 _color(a.shoes_color, shade))

    def arm(angle, shade):
        shoulder = (cx, y(0.205))
        elbow = (shoulder[0] + d * 0.15 * H * math.sin(angle), shoulder[1] + 0.15 * H * math.cos(angle))
        fore = angle + 0.3  # elbows bend forward
        wrist = (elbow[0] + d * 0.135 * H * math.sin(fore), elbow[1] + 0.135 * H * math.cos(fore))
        forearm_rgb = a.upper_color if a.sleeves == "long" else a.skin
        _segment(canvas, elbow, wrist, 0.045 * H * w, _color(forearm_rgb, shade))
        _segment(canvas, shoulder, elbow, 0.056 * H * w, _color(a.upper_color, shade))
        _ellipse(canvas, (wrist[0] + d * 0.01 * H, wrist[1] + 0.015 * H), (0.024 * H, 0.028 * H),
                 _color(a.skin, shade))
        return wrist

    arm(0.3 * math.sin(phase), _FAR_SHADE)
    leg(phase + math.pi, _FAR_SHADE)
    leg(phase, 1.0)
    if a.lower_style == "skirt":
        _polygon(canvas, [(back_x, y(0.47)), (front_x, y(0.47)), (cx + d * 0.12 * H, y(0.69)),
                          (cx - d * 0.12 * H, y(0.69))], a.lower_color)
    else:
        _polygon(canvas, [(back_x, y(0.47)), (front_x, y(0.47)), (front_x, y(0.57)),
                          (back_x, y(0.57))], a.lower_color)
    if a.hair_style == "long":
        _polygon(canvas, [(cx - d * 0.05 * H, y(0.05)), (cx + d * 0.01 * H, y(0.05)),
                          (cx - d * 0.03 * H, y(0.23)), (cx - d * 0.075 * H, y(0.23))], a.hair_color)
    if a.bag == "backpack":
        pack_x0, pack_x1 = sorted((back_x + d * 0.01 * H, back_x - d * 0.075 * H))
        _bag_box(canvas, pack_x0, y(0.2), pack_x1, y(0.44), a.bag_color)
    _bag_box(canvas, cx - 0.022 * H, y(0.11), cx + 0.022 * H, y(0.18), a.skin)
    torso = [(back_x, y(0.19)), (cx - d * 0.03 * H, y(0.16)), (cx + d * 0.03 * H, y(0.16)),
             (front_x + d * 0.008 * H, y(0.21)), (front_x + d * 0.012 * H, y(0.3)),
             (front_x, y(0.52)), (back_x, y(0.52))]
    _torso(canvas, torso, a, (cx, y(0.16)), H)
    if a.bag == "shoulder":
        _segment(canvas, (cx, y(0.18)), (cx + d * 0.02 * H, y(0.45)), 0.014 * H, _color(a.bag_color, 0.7))
        _bag_box(canvas, cx - 0.035 * H, y(0.44), cx + 0.065 * H, y(0.53), a.bag_color)
    wrist = arm(-0.3 * math.sin(phase), 1.0)
    if a.bag == "handbag":
        _segment(canvas, (wrist[0], wrist[1] + 0.02 * H), (wrist[0], wrist[1] + 0.05 * H), 0.008 * H,
                 _color(a.bag_color, 0.7))
        _bag_box(canvas, wrist[0] - 0.04 * H, wrist[1] + 0.045 * H, wrist[0] + 0.04 * H, wrist[1] + 0.115 * H,
                 a.bag_color)

    # Head: face forward, hair over the top and back.
    _ellipse(canvas, (cx + d * 0.01 * H, y(0.07)), (0.05 * H, 0.064 * H), a.skin)
    _ellipse(canvas, (cx - d * 0.012 * H, y(0.058)), (0.05 * H, 0.054 * H), a.hair_color)
    _ellipse(canvas, (cx + d * 0.022 * H, y(0.084)), (0.034 * H, 0.047 * H), a.skin)


def draw_person(canvas, appearance, foot, height, view="front", phase=0.0):
    """Draws `appearance` in place on an RGB uint8 `canvas`.

    Args:
        canvas: (H, W, 3) uint8 RGB image, modified in place.
        appearance: an `Appearance`.
        foot: (x, y) pixel position of the point between the feet on the ground.
        height: body height in pixels before the appearance's own height scale.
        view: "front", "back", "left" or "right" (the walking direction of a profile).
        phase: walking phase in radians; 2*pi is one stride cycle.
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    body_height = height * appearance.height_scale
    top = foot[1] - body_height
    if view in ("front", "back"):
        _front_or_back(canvas, appearance, foot[0], top, body_height, view, phase)
    else:
        _profile(canvas, appearance, foot[0], top, body_height, 1.0 if view == "right" else -1.0, phase)
    return canvas
