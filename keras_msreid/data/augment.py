"""Batched ReID training augmentations in TensorFlow, one op call per batch.

Every op takes a batch `(N, H, W, C)` of RGB pixels in [0, 255] and a stateless `seed`
(int tensor of shape [2]); each image gets its own random draw, and the same seed gives
the same result. Flip, pad-crop and erasing move pixels only, so they keep the dtype
and run on uint8 batches, four times less memory traffic than float32; colour jitter
computes in float32. `augment_batch` therefore runs the pixel moves first and the
jitter last, on the way to the float32 the model takes.

`AugmentConfig` holds the defaults of the ReID "bag of tricks" strong baseline (Luo et
al. 2019), which torchreid users also train with: horizontal flip 0.5, zero pad 10 +
random crop, random erasing 0.5 with mean fill. Colour jitter is off by default, as
there; torchreid's `color_jitter` strengths are brightness 0.2, contrast 0.15.

Example:

```python
config = AugmentConfig(erasing_fill="random", brightness=0.2, contrast=0.15)
images = augment_batch(images, seed=tf.constant([0, step]), config=config)
yaml_ready = config.to_dict()
assert AugmentConfig.from_dict(yaml_ready) == config
```
"""

import dataclasses

import tensorflow as tf

# ImageNet channel means in pixel units: erasing with it equals zero after the
# model's input normalisation.
IMAGENET_MEAN_RGB = (123.675, 116.28, 103.53)


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation settings; a probability or strength of 0 disables a step."""

    flip_probability: float = 0.5
    padding: int = 10
    erasing_probability: float = 0.5
    erasing_area: tuple = (0.02, 0.4)
    erasing_aspect: tuple = (0.3, 3.33)
    erasing_fill: str = "mean"
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0

    def __post_init__(self):
        # YAML gives lists; keep tuples so configs compare and hash as values.
        object.__setattr__(self, "erasing_area", tuple(self.erasing_area))
        object.__setattr__(self, "erasing_aspect", tuple(self.erasing_aspect))
        _check_probability("flip_probability", self.flip_probability)
        _check_probability("erasing_probability", self.erasing_probability)
        if self.padding < 0:
            raise ValueError(f"AugmentConfig.padding must be >= 0, got {self.padding}.")
        _check_range("erasing_area", self.erasing_area, upper=1.0)
        _check_range("erasing_aspect", self.erasing_aspect, upper=None)
        if self.erasing_fill not in ("mean", "random"):
            raise ValueError(
                f"AugmentConfig.erasing_fill must be 'mean' or 'random', got {self.erasing_fill!r}."
            )
        for name in ("brightness", "contrast", "saturation"):
            _check_probability(name, getattr(self, name))
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"AugmentConfig.hue must be in [0, 0.5], got {self.hue}.")

    def to_dict(self):
        """Plain dict of builtin types (tuples as lists) for YAML configs."""
        return {
            field.name: list(value) if isinstance(value, tuple) else value
            for field in dataclasses.fields(self)
            for value in [getattr(self, field.name)]
        }

    @classmethod
    def from_dict(cls, values):
        """Inverse of `to_dict`; missing keys take defaults, unknown keys are an error."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"Unknown AugmentConfig keys {unknown}; expected some of {sorted(known)}."
            )
        return cls(**values)


def _check_probability(name, value):
    """Probabilities and jitter strengths both live in [0, 1]."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"AugmentConfig.{name} must be in [0, 1], got {value}.")


def _check_range(name, value, upper):
    if len(value) != 2 or not 0.0 < value[0] <= value[1] or (upper and value[1] > upper):
        bound = f" and at most {upper}" if upper else ""
        raise ValueError(
            f"AugmentConfig.{name} must be (low, high) with 0 < low <= high{bound}, got {value}."
        )


def augment_batch(images, seed, config=AugmentConfig()):
    """All enabled steps of `config`: flip, pad-crop, erasing, then colour jitter.

    Equals calling the single-step functions in that order with the seeds split from
    `seed`, but flips and crops each image in one pass. Returns float32 in [0, 255]
    for any input dtype. Jitter runs last so that the steps before it can stay in the
    input dtype; it also tints the erased rectangle, which is harmless.
    """
    seeds = tf.random.experimental.stateless_split(seed, num=4)
    batch = tf.shape(images)[0]
    flips, shifts = None, None
    if config.flip_probability:
        flips = _draw_flips(batch, seeds[0], config.flip_probability)
    if config.padding:
        shifts = _draw_shifts(batch, seeds[1], config.padding)
    if flips is not None or shifts is not None:
        images = _flip_and_shift(images, flips, shifts)
    if config.erasing_probability:
        images = random_erasing(
            images,
            seeds[2],
            config.erasing_probability,
            config.erasing_area,
            config.erasing_aspect,
            config.erasing_fill,
        )
    return color_jitter(
        images, seeds[3], config.brightness, config.contrast, config.saturation, config.hue
    )


def random_horizontal_flip(images, seed, probability=0.5):
    """Mirror each image left-right with `probability`."""
    return _flip_and_shift(images, _draw_flips(tf.shape(images)[0], seed, probability), None)


def random_pad_crop(images, seed, padding=10):
    """Zero-pad every side by `padding` pixels, then crop a random H x W window.

    The window offset is uniform in [0, 2 * padding] on each axis, so each image is
    shifted by up to `padding` pixels each way, with zeros where it moved away.
    """
    return _flip_and_shift(images, None, _draw_shifts(tf.shape(images)[0], seed, padding))


def _draw_flips(batch, seed, probability):
    return tf.random.stateless_uniform([batch], seed) < probability


def _draw_shifts(batch, seed, padding):
    """(row, column) shift per image: cropping the padded image at o is shifting by o - padding."""
    return tf.random.stateless_uniform(
        [batch, 2], seed, minval=-padding, maxval=padding + 1, dtype=tf.int32
    )


def _flip_and_shift(images, flips, shifts):
    """Per image: mirror where `flips`, then move content by `shifts` with zero fill.

    A per-image loop moves each image once. Batched alternatives measured slower on
    CPU: tf.where over the batch reads image and mirror and broadcasts its condition,
    and gathering pixel columns moves 3 bytes at a time.
    """
    size = tf.shape(images)[1:3]
    batch = tf.shape(images)[0]
    do_flip, do_shift = flips is not None, shifts is not None

    def one_image(args):
        image, flip, shift = args
        if do_flip:
            image = tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)
        if do_shift:
            # Slicing the part that stays inside and padding it back equals cropping
            # the padded image, without padding the whole batch first.
            low = tf.clip_by_value(shift, 0, size)
            kept_size = tf.clip_by_value(shift + size, 0, size) - low
            kept = tf.slice(image, tf.concat([low, [0]], 0), tf.concat([kept_size, [-1]], 0))
            before = tf.clip_by_value(low - shift, 0, size)
            after = size - before - kept_size
            image = tf.pad(kept, [[before[0], after[0]], [before[1], after[1]], [0, 0]])
        return image

    flips = flips if do_flip else tf.zeros([batch], tf.bool)
    shifts = shifts if do_shift else tf.zeros([batch, 2], tf.int32)
    moved = tf.map_fn(one_image, (images, flips, shifts), fn_output_signature=images.dtype)
    return tf.ensure_shape(moved, images.shape)


def random_erasing(
    images,
    seed,
    probability=0.5,
    area_range=(0.02, 0.4),
    aspect_range=(0.3, 3.33),
    fill="mean",
    attempts=10,
):
    """Random erasing (Zhong et al. 2020): overwrite one random rectangle per image.

    With `probability` an image gets a rectangle whose area is a fraction in
    `area_range` of the image and whose height/width ratio is log-uniform in
    `aspect_range`. Like torchreid, a rectangle that does not fit is redrawn (up to
    `attempts` times, vectorised); an image with no fitting draw is left unchanged.
    `fill` is "mean" (ImageNet mean colour) or "random" (uniform noise in [0, 255]).
    """
    if fill not in ("mean", "random"):
        raise ValueError(f"random_erasing fill must be 'mean' or 'random', got {fill!r}.")
    shape = tf.shape(images)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    seeds = tf.random.experimental.stateless_split(seed, num=6)
    area = tf.cast(height * width, tf.float32) * tf.random.stateless_uniform(
        [batch, attempts], seeds[0], area_range[0], area_range[1]
    )
    log_aspect = tf.random.stateless_uniform(
        [batch, attempts],
        seeds[1],
        tf.math.log(float(aspect_range[0])),
        tf.math.log(float(aspect_range[1])),
    )
    aspect = tf.exp(log_aspect)
    heights = tf.cast(tf.round(tf.sqrt(area * aspect)), tf.int32)
    widths = tf.cast(tf.round(tf.sqrt(area / aspect)), tf.int32)
    fits = (heights < height) & (widths < width) & (heights > 0) & (widths > 0)
    first_fit = tf.argmax(tf.cast(fits, tf.int32), axis=1, output_type=tf.int32)
    rect_h = tf.gather(heights, first_fit, batch_dims=1)
    rect_w = tf.gather(widths, first_fit, batch_dims=1)
    erase = tf.reduce_any(fits, axis=1) & (
        tf.random.stateless_uniform([batch], seeds[2]) < probability
    )
    # Top-left corner uniform over the positions where the rectangle fits.
    top = tf.cast(
        tf.random.stateless_uniform([batch], seeds[3]) * tf.cast(height - rect_h + 1, tf.float32),
        tf.int32,
    )
    left = tf.cast(
        tf.random.stateless_uniform([batch], seeds[4]) * tf.cast(width - rect_w + 1, tf.float32),
        tf.int32,
    )
    # Work on (N, H, W * C) rows: the mask is an outer product of a row mask and a
    # column mask, and tf.where then needs no slow broadcast over channels.
    rows = tf.range(height)[None, :]
    cols = tf.repeat(tf.range(width), channels)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < (top + rect_h)[:, None]) & erase[:, None]
    in_cols = (cols >= left[:, None]) & (cols < (left + rect_w)[:, None])
    mask = in_rows[:, :, None] & in_cols[:, None, :]
    flat_shape = tf.stack([batch, height, width * channels])
    if fill == "mean":
        colour = tf.cast(tf.round(tf.constant(IMAGENET_MEAN_RGB)), images.dtype)
        filler = tf.broadcast_to(tf.tile(colour, [width])[None, None, :], flat_shape)
    elif images.dtype.is_integer:
        filler = tf.cast(
            tf.random.stateless_uniform(flat_shape, seeds[5], 0, 256, dtype=tf.int32),
            images.dtype,
        )
    else:
        filler = tf.random.stateless_uniform(flat_shape, seeds[5], 0.0, 255.0, dtype=images.dtype)
    erased = tf.where(mask, filler, tf.reshape(images, flat_shape))
    return tf.reshape(erased, shape)


def color_jitter(images, seed, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0):
    """Per-image colour jitter with torchvision's meaning of the strengths; float32 out.

    brightness, contrast, saturation: factors drawn in [1 - s, 1 + s]; brightness scales
    the pixels, contrast blends with the image's mean grey level, saturation blends
    with the per-pixel grey image. hue: shift in [-hue, hue] of a full hue turn. The
    steps run in this fixed order (torchvision shuffles it), and brightness and
    contrast are applied as one affine map per image, so a pixel is clipped to
    [0, 255] once after both rather than in between; that differs only for pixels
    that brightness pushed past 255, and halves the passes over the batch. A
    strength of 0 skips its step, so all zeros only casts to float32.
    """
    batch = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(seed, num=4)

    def factors(strength, step_seed):
        return tf.random.stateless_uniform(
            [batch, 1, 1, 1], step_seed, 1.0 - strength, 1.0 + strength
        )

    if brightness or contrast:
        # brightness b then contrast c: c * b * x + (1 - c) * grey_mean(b * x), and the
        # grey level is linear in RGB, so grey_mean(b * x) = b * grey(mean colour of x).
        images = tf.cast(images, tf.float32)
        scale = factors(brightness, seeds[0])
        blend = factors(contrast, seeds[1])
        mean_colour = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
        offset = (1.0 - blend) * scale * tf.image.rgb_to_grayscale(mean_colour)
        images = tf.clip_by_value(images * (blend * scale) + offset, 0.0, 255.0)
    images = tf.cast(images, tf.float32)
    if saturation:
        factor = factors(saturation, seeds[2])
        grey = tf.image.rgb_to_grayscale(images)
        images = tf.clip_by_value(factor * images + (1.0 - factor) * grey, 0.0, 255.0)
    if hue:
        shift = tf.random.stateless_uniform([batch, 1, 1], seeds[3], -hue, hue)
        hsv = tf.image.rgb_to_hsv(images / 255.0)
        hue_channel = tf.math.floormod(hsv[..., 0] + shift, 1.0)
        hsv = tf.stack([hue_channel, hsv[..., 1], hsv[..., 2]], axis=-1)
        images = tf.clip_by_value(tf.image.hsv_to_rgb(hsv) * 255.0, 0.0, 255.0)
    return images
