"""What a synthetic person wears: the identity part of a rendered pedestrian.

Clothing colours come from a small shared palette, so many identities share their
main colours and only the combination of colours, patterns, hair, accessories and
layout tells them apart. That is what keeps a colour histogram from solving the task.

Example:

>>> appearance = identity_appearance(person_id=7, seed=0)
>>> appearance == identity_appearance(7, 0)
True
"""

import dataclasses

import numpy as np

# Clothing palette (RGB). Dark and neutral colours are the most common, as in street
# footage; the weights below make them dominate.
CLOTHING_PALETTE = {
    "black": (28, 28, 32),
    "white": (232, 232, 226),
    "gray": (128, 128, 132),
    "navy": (32, 42, 92),
    "blue": (52, 100, 188),
    "red": (178, 34, 40),
    "green": (44, 118, 62),
    "yellow": (222, 196, 56),
    "khaki": (188, 168, 128),
    "brown": (108, 70, 42),
    "pink": (226, 142, 172),
    "purple": (108, 62, 138),
}
_UPPER_WEIGHTS = {
    "black": 3, "white": 3, "gray": 2, "navy": 2, "blue": 2, "red": 1.5,
    "green": 1, "yellow": 1, "khaki": 1, "brown": 1, "pink": 1, "purple": 1,
}
_LOWER_WEIGHTS = {
    "black": 4, "white": 1, "gray": 2, "navy": 3, "blue": 3, "red": 0.5,
    "green": 0.5, "yellow": 0.3, "khaki": 2, "brown": 1.5, "pink": 0.3, "purple": 0.3,
}
SKIN_TONES = ((246, 214, 186), (230, 186, 148), (198, 146, 106), (148, 100, 68), (96, 64, 44))
HAIR_COLORS = ((22, 20, 20), (58, 40, 30), (108, 74, 44), (206, 176, 108), (156, 156, 156))
SHOE_COLORS = ((24, 24, 24), (236, 236, 236), (96, 62, 36), (120, 120, 124))

UPPER_PATTERNS = ("plain", "hstripes", "vstripes", "checks")
SLEEVES = ("long", "short")
LOWER_STYLES = ("trousers", "shorts", "skirt")
HAIR_STYLES = ("short", "long")
BAGS = ("none", "backpack", "shoulder", "handbag")
LOGO_SHAPES = ("circle", "square", "triangle")


@dataclasses.dataclass(frozen=True)
class Appearance:
    """The identity-specific look of a rendered person (colours are RGB tuples)."""

    upper_color: tuple
    upper_color2: tuple
    upper_pattern: str
    stripe_period: float  # pattern period as a fraction of body height
    sleeves: str
    lower_color: tuple
    lower_style: str
    skin: tuple
    hair_color: tuple
    hair_style: str
    shoes_color: tuple
    bag: str
    bag_color: tuple
    logo_shape: str  # "none" or one of LOGO_SHAPES; printed on the front only
    logo_color: tuple
    width_scale: float  # body build
    height_scale: float


def _pick_color_name(rng, weights, exclude=None):
    names = [name for name in weights if name != exclude]
    probs = np.array([weights[name] for name in names], dtype=np.float64)
    return names[rng.choice(len(names), p=probs / probs.sum())]


def sample_appearance(rng):
    """Draws an `Appearance` from a `numpy.random.Generator`."""
    upper = _pick_color_name(rng, _UPPER_WEIGHTS)
    upper2 = _pick_color_name(rng, _UPPER_WEIGHTS, exclude=upper)
    upper_pattern = UPPER_PATTERNS[rng.choice(4, p=[0.55, 0.17, 0.12, 0.16])]
    lower = _pick_color_name(rng, _LOWER_WEIGHTS)
    bag = BAGS[rng.choice(4, p=[0.4, 0.25, 0.2, 0.15])]
    has_logo = upper_pattern == "plain" and rng.random() < 0.4
    return Appearance(
        upper_color=CLOTHING_PALETTE[upper],
        upper_color2=CLOTHING_PALETTE[upper2],
        upper_pattern=upper_pattern,
        stripe_period=float(rng.uniform(0.035, 0.07)),
        sleeves=SLEEVES[rng.choice(2, p=[0.6, 0.4])],
        lower_color=CLOTHING_PALETTE[lower],
        lower_style=LOWER_STYLES[rng.choice(3, p=[0.7, 0.18, 0.12])],
        skin=SKIN_TONES[rng.integers(len(SKIN_TONES))],
        hair_color=HAIR_COLORS[rng.integers(len(HAIR_COLORS))],
        hair_style=HAIR_STYLES[rng.integers(2)],
        shoes_color=SHOE_COLORS[rng.integers(len(SHOE_COLORS))],
        bag=bag,
        bag_color=CLOTHING_PALETTE[_pick_color_name(rng, _LOWER_WEIGHTS)],
        logo_shape=LOGO_SHAPES[rng.integers(3)] if has_logo else "none",
        logo_color=CLOTHING_PALETTE[_pick_color_name(rng, _UPPER_WEIGHTS, exclude=upper)],
        width_scale=float(rng.uniform(0.85, 1.18)),
        height_scale=float(rng.uniform(0.93, 1.04)),
    )


def identity_appearance(person_id, seed):
    """The appearance of `person_id` in the synthetic world of `seed`.

    The dataset writer and the video writer both use it, so a video rendered with
    the same seed shows the same people as the dataset.
    """
    return sample_appearance(np.random.default_rng([seed, 1, person_id]))
