"""Batched augmentations against simple per-image numpy references."""

import numpy as np
import pytest
import tensorflow as tf
import yaml

from keras_msreid.data.augment import (
    IMAGENET_MEAN_RGB,
    AugmentConfig,
    augment_batch,
    color_jitter,
    random_erasing,
    random_horizontal_flip,
    random_pad_crop,
)

SEED = tf.constant([1, 2], tf.int64)


def random_images(n=16, height=12, width=8, dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (n, height, width, 3))
    return images.astype(np.uint8) if dtype == np.uint8 else images.astype(np.float32)


def shifted(image, dy, dx):
    """The H x W window at offset (padding + dy, padding + dx) of the zero-padded image."""
    height, width = image.shape[:2]
    padded = np.pad(image, [(height, height), (width, width), (0, 0)])
    return padded[height + dy : 2 * height + dy, width + dx : 2 * width + dx]


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_flip_mirrors_some_images_and_leaves_the_rest(dtype):
    images = random_images(64, dtype=dtype)
    out = random_horizontal_flip(tf.constant(images), SEED, probability=0.5).numpy()
    assert out.dtype == dtype
    flipped = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, images)]
    kept = [np.array_equal(o, i) for o, i in zip(out, images)]
    assert all(f != k for f, k in zip(flipped, kept)), "each image is mirrored or kept"
    assert 16 < sum(flipped) < 48


@pytest.mark.parametrize("probability, expect_flipped", [(0.0, False), (1.0, True)])
def test_flip_probability_bounds(probability, expect_flipped):
    images = random_images(8)
    out = random_horizontal_flip(tf.constant(images), SEED, probability).numpy()
    np.testing.assert_array_equal(out, images[:, :, ::-1] if expect_flipped else images)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_pad_crop_is_a_shifted_window_of_the_zero_padded_image(dtype):
    padding = 3
    images = random_images(32, dtype=dtype) + 1  # no zeros inside, so shifts are unique
    out = random_pad_crop(tf.constant(images), SEED, padding).numpy()
    assert out.dtype == dtype and out.shape == images.shape
    seen = set()
    for image, result in zip(images, out):
        matches = [
            (dy, dx)
            for dy in range(-padding, padding + 1)
            for dx in range(-padding, padding + 1)
            if np.array_equal(result, shifted(image, dy, dx))
        ]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) > 10, "shifts are drawn per image"


def test_shift_beyond_the_image_gives_zeros_not_an_error():
    images = random_images(64, height=4, width=3) + 1
    out = random_pad_crop(tf.constant(images), SEED, padding=6).numpy()
    blank = [not result.any() for result in out]
    assert any(blank) and not all(blank)


def test_pad_zero_is_identity():
    images = random_images(4)
    np.testing.assert_array_equal(random_pad_crop(tf.constant(images), SEED, 0).numpy(), images)


def erased_rectangle(before, after):
    """(top, left, height, width) of the changed pixels; asserts they form a rectangle."""
    changed = np.any(before != after, axis=-1)
    rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    top, left = rows[0], cols[0]
    height, width = rows[-1] - top + 1, cols[-1] - left + 1
    assert changed[top : top + height, left : left + width].all(), "changed set is a rectangle"
    assert changed.sum() == height * width
    return top, left, height, width


def test_erasing_fills_one_rectangle_of_the_requested_area_with_the_mean_colour():
    height, width = 64, 32
    images = random_images(40, height, width, dtype=np.float32)  # never exactly the mean
    area_range, aspect_range = (0.05, 0.3), (0.5, 2.0)
    out = random_erasing(
        tf.constant(images), SEED, 1.0, area_range, aspect_range, fill="mean"
    ).numpy()
    mean = np.round(IMAGENET_MEAN_RGB)
    for before, after in zip(images, out):
        top, left, h, w = erased_rectangle(before, after)
        assert top + h <= height and left + w <= width
        patch = after[top : top + h, left : left + w]
        np.testing.assert_array_equal(patch, np.broadcast_to(mean, (h, w, 3)))
        # Height and width are rounded from the drawn area and aspect: allow half a pixel.
        low = (h - 0.5) * (w - 0.5) / (height * width)
        high = (h + 0.5) * (w + 0.5) / (height * width)
        assert low <= area_range[1] and high >= area_range[0]
        assert (h - 0.5) / (w + 0.5) <= aspect_range[1] and (h + 0.5) / (w - 0.5) >= aspect_range[0]


def test_erasing_random_fill_stays_in_range_and_keeps_dtype():
    images = random_images(16, 32, 16)
    out = random_erasing(tf.constant(images), SEED, 1.0, fill="random").numpy()
    assert out.dtype == np.uint8
    changed = 0
    for before, after in zip(images, out):
        top, left, h, w = erased_rectangle(before, after)
        patch = after[top : top + h, left : left + w].astype(int)
        assert len(np.unique(patch)) > 10, "random fill is noise, not one colour"
        changed += 1
    assert changed == 16


def test_erasing_probability_zero_and_impossible_areas_leave_images_unchanged():
    images = random_images(8)
    unchanged = random_erasing(tf.constant(images), SEED, probability=0.0).numpy()
    np.testing.assert_array_equal(unchanged, images)
    # An area of 99% with aspect 3 never fits a 12 x 8 image: skipped, as in torchreid.
    too_big = random_erasing(tf.constant(images), SEED, 1.0, (0.99, 0.99), (3.0, 3.0)).numpy()
    np.testing.assert_array_equal(too_big, images)


def test_erasing_rejects_unknown_fill():
    with pytest.raises(ValueError, match="fill must be 'mean' or 'random', got 'zero'"):
        random_erasing(tf.constant(random_images(2)), SEED, fill="zero")


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_jitter_with_zero_strength_is_identity_in_float32(dtype):
    images = random_images(4, dtype=dtype)
    out = color_jitter(tf.constant(images), SEED).numpy()
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, images.astype(np.float32))


def test_brightness_scales_each_image_by_one_factor_in_range():
    images = random_images(16, dtype=np.float32) * 0.8  # headroom: no clipping
    out = color_jitter(tf.constant(images), SEED, brightness=0.2).numpy()
    ratios = out / np.maximum(images, 1e-3)
    for image, ratio in zip(images, ratios):
        factor = np.median(ratio[image > 1])
        assert 0.8 <= factor <= 1.2
        np.testing.assert_allclose(ratio[image > 1], factor, rtol=1e-4)
    assert len({round(float(np.median(r)), 4) for r in ratios}) > 8, "a factor per image"


def test_contrast_blends_with_the_mean_grey_level():
    images = 60 + random_images(16, dtype=np.float32) * 0.5  # stays inside [0, 255]
    out = color_jitter(tf.constant(images), SEED, contrast=0.3).numpy()
    grey_weights = np.array([0.2989, 0.587, 0.114])
    for image, result in zip(images, out):
        mean_grey = (image @ grey_weights).mean()
        factor = (result - mean_grey).ravel() @ (image - mean_grey).ravel() / np.sum(
            (image - mean_grey) ** 2
        )
        assert 0.7 <= factor <= 1.3
        np.testing.assert_allclose(result, factor * image + (1 - factor) * mean_grey, atol=1e-3)


def test_brightness_and_contrast_together_are_one_affine_map_per_image():
    images = 60 + random_images(8, dtype=np.float32) * 0.4
    out = color_jitter(tf.constant(images), SEED, brightness=0.2, contrast=0.2).numpy()
    for image, result in zip(images, out):
        slope, intercept = np.polyfit(image.ravel(), result.ravel(), 1)
        assert 0.8 * 0.8 <= slope <= 1.2 * 1.2
        np.testing.assert_allclose(result, slope * image + intercept, atol=1e-2)


def test_jitter_clips_to_the_pixel_range():
    images = np.full((4, 6, 4, 3), 250, np.uint8)
    images[:, :, :2] = 5
    out = color_jitter(tf.constant(images), SEED, brightness=0.5, contrast=0.9, saturation=0.5)
    out = out.numpy()
    assert out.min() >= 0.0 and out.max() <= 255.0


def test_saturation_keeps_the_grey_level_of_each_pixel():
    images = 60 + random_images(8, dtype=np.float32) * 0.5
    out = color_jitter(tf.constant(images), SEED, saturation=0.5).numpy()
    grey = tf.image.rgb_to_grayscale
    # TF's grey weights sum to 0.9999, so blending with grey shifts it by up to 0.01.
    np.testing.assert_allclose(grey(out).numpy(), grey(images).numpy(), atol=0.02)
    assert not np.allclose(out, images)


def test_hue_keeps_value_and_saturation_of_each_pixel():
    images = random_images(8, dtype=np.float32)
    out = color_jitter(tf.constant(images), SEED, hue=0.2).numpy()
    hsv_in = tf.image.rgb_to_hsv(images / 255).numpy()
    hsv_out = tf.image.rgb_to_hsv(out / 255).numpy()
    np.testing.assert_allclose(hsv_out[..., 1:], hsv_in[..., 1:], atol=1e-4)
    assert not np.allclose(hsv_out[..., 0], hsv_in[..., 0], atol=1e-3)


def test_augment_batch_equals_the_single_steps_with_split_seeds():
    config = AugmentConfig(padding=2, brightness=0.2, contrast=0.1, erasing_fill="random")
    images = tf.constant(random_images(16))
    seeds = tf.random.experimental.stateless_split(SEED, num=4)
    expected = random_horizontal_flip(images, seeds[0], config.flip_probability)
    expected = random_pad_crop(expected, seeds[1], config.padding)
    expected = random_erasing(
        expected, seeds[2], config.erasing_probability, config.erasing_area,
        config.erasing_aspect, config.erasing_fill,
    )
    expected = color_jitter(expected, seeds[3], config.brightness, config.contrast)
    out = augment_batch(images, SEED, config)
    assert out.dtype == tf.float32
    np.testing.assert_array_equal(out.numpy(), expected.numpy())


def test_augment_batch_is_deterministic_per_seed():
    images = tf.constant(random_images(8))
    first = augment_batch(images, SEED).numpy()
    np.testing.assert_array_equal(first, augment_batch(images, SEED).numpy())
    assert not np.array_equal(first, augment_batch(images, SEED + 1).numpy())


def test_everything_off_only_casts():
    config = AugmentConfig(flip_probability=0, padding=0, erasing_probability=0)
    images = random_images(4)
    np.testing.assert_array_equal(augment_batch(tf.constant(images), SEED, config).numpy(), images)


def test_config_round_trips_through_yaml():
    config = AugmentConfig(padding=4, erasing_area=(0.1, 0.2), hue=0.05, erasing_fill="random")
    text = yaml.safe_dump(config.to_dict())
    assert "!!python" not in text
    assert AugmentConfig.from_dict(yaml.safe_load(text)) == config
    assert AugmentConfig.from_dict({}) == AugmentConfig()


@pytest.mark.parametrize(
    "values, message",
    [
        ({"flip_prob": 0.5}, r"Unknown AugmentConfig keys \['flip_prob'\]"),
        ({"flip_probability": 1.5}, r"flip_probability must be in \[0, 1\], got 1.5"),
        ({"padding": -1}, r"padding must be >= 0, got -1"),
        ({"erasing_area": [0.5, 0.1]}, r"erasing_area must be \(low, high\) with 0 < low <= high"),
        ({"erasing_area": [0.1, 1.5]}, r"erasing_area .* and at most 1.0, got \(0.1, 1.5\)"),
        ({"erasing_fill": "black"}, r"erasing_fill must be 'mean' or 'random', got 'black'"),
        ({"contrast": 2.0}, r"contrast must be in \[0, 1\], got 2.0"),
        ({"hue": 0.6}, r"hue must be in \[0, 0.5\], got 0.6"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(values, message):
    with pytest.raises(ValueError, match=message):
        AugmentConfig.from_dict(values)
