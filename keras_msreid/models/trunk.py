"""The shared (Siamese) trunk: pixels to feature maps at three depths."""

import keras
from keras import layers

from keras_msreid.errors import UserError
from keras_msreid.layers.batch_norm import batch_norm
from keras_msreid.models import options

# Stride of each level's map relative to the input image.
LEVEL_STRIDES = {"low": 4, "mid": 8, "high": 16}


def _conv_bn_relu(x, filters, kernel_size, strides, name):
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = batch_norm(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _separable_block(x, filters, strides, name):
    """Depth-wise 3x3 then point-wise 1x1, residual when the shape is kept."""
    shortcut = x
    x = layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = batch_norm(name=f"{name}_dw_bn")(x)
    x = layers.ReLU(name=f"{name}_dw_relu")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
    x = batch_norm(name=f"{name}_pw_bn")(x)
    if strides == 1 and shortcut.shape[-1] == filters:
        x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.ReLU(name=f"{name}_relu")(x)


def check_levels(levels):
    """Distinct level names as a tuple from low to high (the order the pair head fuses them in)."""
    return tuple(sorted(options.names("levels", levels, tuple(LEVEL_STRIDES)), key=LEVEL_STRIDES.get))


def check_image_size(image_size):
    """Raises `UserError` unless `(height, width)` are positive multiples of the trunk's stride, 16."""
    if image_size[0] % 16 or image_size[1] % 16:
        raise UserError(f"image_size must be divisible by 16, got {tuple(image_size)}")
    if min(image_size) < 16:
        raise UserError(f"image_size must be at least 16 x 16, got {tuple(image_size)}")


def check_patch_fits(image_size, patch_size, levels):
    """Raises `UserError` unless the images fit the trunk and a `patch_size` patch fits every level's map."""
    check_image_size(image_size)
    for level in levels:
        size = (image_size[0] // LEVEL_STRIDES[level], image_size[1] // LEVEL_STRIDES[level])
        if patch_size[0] > size[0] or patch_size[1] > size[1]:
            raise UserError(f"patch_size {tuple(patch_size)} does not fit the {level} level's {size[0]}x{size[1]} map "
                            f"of {tuple(image_size)} images: use larger images or a smaller patch")


def build_trunk(image_size=(160, 64), widths=(32, 64, 128, 256), depths=(2, 3, 3), name="trunk"):
    """Builds the trunk as a functional model.

    Input: RGB images as float32 in [0, 255], shape `(batch, H, W, 3)` with H and W
    divisible by 16. Output: a dict of maps `{"low": stride 4, "mid": stride 8,
    "high": stride 16}` with `widths[1:]` channels.

    Example:

    >>> trunk = build_trunk((160, 64))
    >>> {k: tuple(v.shape[1:]) for k, v in trunk.output.items()}
    {'low': (40, 16, 64), 'mid': (20, 8, 128), 'high': (10, 4, 256)}
    """
    check_image_size(image_size)
    height, width = image_size
    if len(widths) != 4 or len(depths) != 3:
        raise UserError(f"widths needs 4 entries and depths 3, got {widths} and {depths}")
    images = keras.Input((height, width, 3), name="images")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalise")(images)
    x = _conv_bn_relu(x, widths[0], 3, 2, "stem")
    outputs = {}
    for level, filters, depth in zip(LEVEL_STRIDES, widths[1:], depths):
        for index in range(depth):
            x = _separable_block(x, filters, 2 if index == 0 else 1, f"{level}_{index}")
        outputs[level] = x
    return keras.Model(images, outputs, name=name)
