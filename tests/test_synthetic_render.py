"""Appearances, cameras, the person drawing and crops of the synthetic renderer."""

import collections
import dataclasses

import numpy as np
import pytest

from keras_msreid.synthetic import (
    camera_style,
    draw_person,
    identity_appearance,
    render_crop,
    render_distractor,
    render_junk,
)
from keras_msreid.synthetic.appearance import CLOTHING_PALETTE

BACKGROUND = (90, 160, 90)  # a colour no garment, skin or hair uses


def drawn(appearance, view, height=200, phase=0.7, size=(240, 160)):
    canvas = np.zeros(size + (3,), np.uint8)
    canvas[:] = BACKGROUND
    draw_person(canvas, appearance, (size[1] // 2, size[0] - 10), height, view, phase)
    return canvas


def pixels_of(canvas, rgb):
    return int(np.all(canvas == np.array(rgb, np.uint8), axis=2).sum())


def person_mask(canvas):
    return np.any(canvas != np.array(BACKGROUND, np.uint8), axis=2)


def body_width(canvas):
    columns = np.nonzero(person_mask(canvas))[1]
    return columns.max() - columns.min() + 1


def test_identities_are_stable_by_seed_and_distinct():
    assert identity_appearance(4, seed=1) == identity_appearance(4, seed=1)
    assert identity_appearance(4, seed=1) != identity_appearance(4, seed=2)
    assert camera_style(2, seed=1) == camera_style(2, seed=1) != camera_style(3, seed=1)


def test_colours_are_shared_but_combinations_are_not():
    looks = [identity_appearance(i, seed=0) for i in range(300)]
    assert {a.upper_color for a in looks} <= set(CLOTHING_PALETTE.values())
    main_colours = collections.Counter((a.upper_color, a.lower_color) for a in looks)
    assert main_colours.most_common(1)[0][1] >= 5  # several people share shirt and trousers colours
    full = {(a.upper_color, a.upper_color2, a.upper_pattern, a.lower_color, a.lower_style, a.hair_color,
             a.hair_style, a.bag, a.bag_color, a.shoes_color) for a in looks}
    assert len(full) == len(looks)  # while the whole outfit tells everybody apart


@pytest.mark.parametrize("view", ["front", "back", "left", "right"])
def test_person_fills_a_human_sized_box(view):
    appearance = identity_appearance(3, seed=0)
    canvas = drawn(appearance, view, height=200)
    rows, cols = np.nonzero(person_mask(canvas))
    body = 200 * appearance.height_scale
    assert rows.max() - rows.min() + 1 == pytest.approx(body, rel=0.03)
    assert 0.15 * body < cols.max() - cols.min() + 1 < 0.6 * body  # upright: taller than wide
    assert rows.max() <= 240 - 10 + 0.02 * body  # the feet stand on the given point


def test_viewpoint_changes_what_is_visible():
    colours = list(CLOTHING_PALETTE.values())
    appearance = dataclasses.replace(
        identity_appearance(3, seed=0), upper_pattern="plain", upper_color=colours[0], lower_color=colours[1],
        bag="backpack", bag_color=colours[4], logo_shape="square", logo_color=colours[7])
    front, back, side = (drawn(appearance, view) for view in ("front", "back", "right"))
    # The logo is printed on the front only.
    assert pixels_of(front, appearance.logo_color) > 20
    assert pixels_of(back, appearance.logo_color) == pixels_of(side, appearance.logo_color) == 0
    # From the back the whole backpack shows, from the front only its straps.
    assert pixels_of(back, appearance.bag_color) > 3 * pixels_of(front, appearance.bag_color) > 0
    # A profile is narrower than the front.
    assert body_width(side) < body_width(front)


def test_walking_phase_moves_the_legs():
    appearance = identity_appearance(3, seed=0)
    apart, together = drawn(appearance, "right", phase=np.pi / 2), drawn(appearance, "right", phase=np.pi)
    assert not np.array_equal(apart, together)
    assert np.array_equal(apart, drawn(appearance, "right", phase=np.pi / 2 + 2 * np.pi))


def test_unknown_view():
    with pytest.raises(ValueError, match="view must be one of .*got 'top'"):
        drawn(identity_appearance(1, seed=0), "top")


@pytest.mark.parametrize("size", [(128, 64), (160, 64)])
def test_crops_have_the_size_and_are_reproducible(size):
    appearance, style = identity_appearance(5, seed=0), camera_style(1, seed=0)
    crop = render_crop(appearance, style, np.random.default_rng(3), size=size)
    assert crop.shape == size + (3,) and crop.dtype == np.uint8
    np.testing.assert_array_equal(crop, render_crop(appearance, style, np.random.default_rng(3), size=size))
    assert not np.array_equal(crop, render_crop(appearance, style, np.random.default_rng(4), size=size))
    for other in (render_distractor(style, np.random.default_rng(3), size),
                  render_junk(appearance, style, np.random.default_rng(3), size)):
        assert other.shape == size + (3,) and other.dtype == np.uint8


def test_cameras_change_colours():
    appearance = identity_appearance(5, seed=0)
    means = [render_crop(appearance, camera_style(c, seed=0), np.random.default_rng(0), view="front",
                         phase=0.0, occlude=False).reshape(-1, 3).mean(axis=0) for c in range(1, 7)]
    spread = np.ptp(np.array(means), axis=0)
    assert np.all(spread > 5)  # every channel's mean moves by more than 5 levels across cameras
