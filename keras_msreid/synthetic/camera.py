"""What a synthetic camera does to a picture: background, viewpoint, light and optics.

Each camera has its own lighting, white balance (colour cast), saturation, blur,
noise, person scale, background and a dominant viewpoint. The colour changes are
moderate: a shirt stays recognisable, but its pixels move between the bins of a
colour histogram from camera to camera (measured by the colour-histogram
baseline, `benchmarks/color_histogram_baseline.py`).

Example:

>>> import numpy as np
>>> style = camera_style(camera_id=2, seed=0)
>>> rng = np.random.default_rng(0)
>>> background = draw_background((256, 128), style, rng)
>>> picture = apply_camera(background, style, rng)
"""

import dataclasses

import cv2
import numpy as np

# Background materials (RGB): pavement, concrete, asphalt, sandstone, brick, grass,
# glass. Muted and shared by the cameras, as on one campus, so that the background
# does not outweigh the person in colour statistics.
BACKGROUND_PALETTE = (
    (125, 125, 123), (156, 154, 150), (98, 98, 101), (177, 174, 168), (124, 102, 94),
    (98, 108, 93), (126, 132, 137), (71, 72, 74), (196, 195, 192), (121, 115, 107),
)
BACKGROUND_KINDS = ("wall_ground", "tiles", "bars", "foliage")
VIEW_NAMES = ("front", "back", "side")
_OWN_SCENE_PROB = 0.5  # a picture's background uses the camera's material / colour


@dataclasses.dataclass(frozen=True)
class CameraStyle:
    """Camera-specific rendering parameters (colours RGB, factors multiplicative)."""

    gain: float
    white_balance: tuple  # per-channel RGB multipliers: the colour cast
    gamma: float
    saturation: float
    light_slope: float  # horizontal illumination gradient across the picture
    blur_sigma: float
    noise_sigma: float
    person_scale: float  # body height as a fraction of the crop height
    background_kind: str
    background_colors: tuple  # two RGB colours
    view_probs: tuple  # probabilities of front, back, side
    occlusion_prob: float
    jpeg_quality: int


def sample_camera_style(rng):
    """Draws a `CameraStyle` from a `numpy.random.Generator`."""
    temperature = rng.uniform(-1.0, 1.0)  # warm (red) to cool (blue)
    tint = rng.uniform(-1.0, 1.0)  # magenta to green
    white_balance = (1.0 + 0.075 * temperature, 1.0 + 0.04 * tint, 1.0 - 0.075 * temperature)
    dominant = rng.integers(3)
    view_probs = np.full(3, 0.2)
    view_probs[dominant] = 0.6
    colors = rng.choice(len(BACKGROUND_PALETTE), size=2, replace=False)
    return CameraStyle(
        gain=float(rng.uniform(0.9, 1.1)),
        white_balance=tuple(float(c) for c in white_balance),
        gamma=float(rng.uniform(0.925, 1.075)),
        saturation=float(rng.uniform(0.85, 1.075)),
        light_slope=float(rng.uniform(-0.25, 0.25)),
        blur_sigma=float(rng.uniform(0.0, 1.0)),
        noise_sigma=float(rng.uniform(1.0, 5.0)),
        person_scale=float(rng.uniform(0.78, 0.9)),
        background_kind=BACKGROUND_KINDS[rng.integers(len(BACKGROUND_KINDS))],
        background_colors=tuple(BACKGROUND_PALETTE[i] for i in colors),
        view_probs=tuple(float(p) for p in view_probs),
        occlusion_prob=float(rng.uniform(0.05, 0.2)),
        jpeg_quality=int(rng.integers(75, 96)),
    )


def camera_style(camera_id, seed):
    """The style of camera `camera_id` in the synthetic world of `seed`."""
    return sample_camera_style(np.random.default_rng([seed, 2, camera_id]))


def smooth_noise(rng, shape, cells):
    """Blotchy noise in [0, 1]: coarse random values upsampled smoothly."""
    coarse = rng.random((max(2, shape[0] // cells), max(2, shape[1] // cells)), dtype=np.float32)
    return cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _background_colors(style, rng):
    """Two materials, usually the camera's own, sometimes any other of the palette."""
    return tuple(
        own if rng.random() < _OWN_SCENE_PROB else BACKGROUND_PALETTE[rng.integers(len(BACKGROUND_PALETTE))]
        for own in style.background_colors
    )


def draw_background(shape, style, rng):
    """An RGB uint8 background of `shape` (height, width) in the camera's style.

    The material and colours are mostly the camera's own; offsets, and sometimes
    materials, vary per picture, as crops of one camera show different parts of
    its scene.
    """
    h, w = shape
    first, second = (np.array(c, np.float32) for c in _background_colors(style, rng))
    rows = np.arange(h, dtype=np.float32)[:, None, None]
    cols = np.arange(w, dtype=np.float32)[None, :, None]
    kind = style.background_kind if rng.random() < _OWN_SCENE_PROB else BACKGROUND_KINDS[rng.integers(4)]
    if kind == "wall_ground":
        horizon = h * rng.uniform(0.45, 0.75)
        image = np.where(rows < horizon, first * (0.9 + 0.2 * rows / h), second * (0.85 + 0.25 * rows / h))
    elif kind == "tiles":
        period = rng.uniform(0.12, 0.25) * w
        offset = rng.uniform(0.0, period, size=2)
        lines = (((rows + offset[0]) % period) < 0.08 * period) | (((cols + offset[1]) % period) < 0.08 * period)
        image = np.where(lines, second, first)
    elif kind == "bars":
        period = rng.uniform(0.2, 0.45) * w
        offset = rng.uniform(0.0, period)
        image = np.where(((cols + offset) % period) < 0.35 * period, second, first)
    else:  # foliage
        blend = smooth_noise(rng, (h, w), cells=max(2, w // 10))[..., None]
        image = second + (first - second) * blend
    texture = smooth_noise(rng, (h, w), cells=max(2, w // 24))[..., None] * 0.2 + 0.9
    return cv2.convertScaleAbs(image * texture)  # saturates to uint8


def apply_camera(image, style, rng):
    """Applies the camera's light, colour cast, saturation, blur and noise to RGB uint8.

    A small per-picture jitter of gain and white balance models changing daylight.
    """
    h, w = image.shape[:2]
    balance = np.array(style.white_balance) * rng.uniform(0.95, 1.05, size=3)
    gain = style.gain * rng.uniform(0.9, 1.1)
    # Saturation (blend with the grey level) and white balance as one colour matrix.
    s = style.saturation
    mix = gain * np.diag(balance) @ (s * np.eye(3) + (1.0 - s) / 3.0 * np.ones((3, 3)))
    pixels = cv2.transform(image.astype(np.float32), mix.astype(np.float32))
    slope = 1.0 + style.light_slope * (np.linspace(-0.5, 0.5, w, dtype=np.float32))
    pixels = cv2.convertScaleAbs(pixels * slope[None, :, None])
    gamma_table = (255.0 * (np.arange(256) / 255.0) ** style.gamma + 0.5).astype(np.uint8)
    pixels = cv2.LUT(pixels, gamma_table)
    if style.blur_sigma > 0.05:
        pixels = cv2.GaussianBlur(pixels, (0, 0), style.blur_sigma)
    # Sensor noise, drawn at half resolution: a quarter of the random numbers.
    noise = rng.standard_normal(((h + 1) // 2, (w + 1) // 2, 3), dtype=np.float32) * style.noise_sigma
    noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_NEAREST)
    return cv2.convertScaleAbs(pixels + noise)
