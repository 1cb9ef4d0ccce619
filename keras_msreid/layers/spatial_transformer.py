"""Spatial attention by a spatial transformer (STN) that crops body-part patches."""

import keras
import numpy as np
from keras import layers, ops

from keras_msreid.layers.batch_norm import batch_norm


def interpolation_matrix(centres, scales, num_samples, size):
    """Bilinear interpolation weights along one axis, as a dense matrix.

    Sample `k` of `num_samples` sits at normalised coordinate
    `centre + scale * linspace(-1, 1, num_samples)[k]`, where -1 and 1 are the
    centres of the first and last cell (align-corners convention). It takes
    `1 - f` of cell `floor(p)` and `f` of cell `floor(p) + 1`, `p` its position in
    cells and `f = p - floor(p)`; cells outside the map count as zero. Written with
    the fraction (not as a tent `max(0, 1 - |p - h|)`) so that the gradient with
    respect to centre and scale is not zero when samples sit exactly on cells, as
    they do at the native-scale prior.

    Args:
        centres, scales: tensors of shape `(..., 1)`.
        num_samples: number of samples along the axis.
        size: number of cells of the feature map along the axis.

    Returns:
        Tensor of shape `(..., num_samples, size)`.
    """
    steps = np.linspace(-1.0, 1.0, num_samples) if num_samples > 1 else np.zeros(1)
    normalised = centres + scales * ops.convert_to_tensor(steps.astype("float32"))  # (..., num_samples)
    pixels = ops.expand_dims((normalised + 1.0) * (0.5 * (size - 1)), -1)
    below = ops.floor(pixels)
    fraction = pixels - below
    cells = ops.convert_to_tensor(np.arange(size, dtype="float32"))
    # Indicators of cells `below` and `below + 1` as tents on integers rather than
    # `equal`: the same values in float, and after int8 quantization a slightly
    # inexact integer still selects its cell, where `equal` would select none.
    at_below = ops.relu(1.0 - ops.abs(cells - below))
    at_above = ops.relu(1.0 - ops.abs(cells - below - 1.0))
    return (1.0 - fraction) * at_below + fraction * at_above


def sample_patches(feature_map, theta, patch_size):
    """Samples axis-aligned patches from a feature map with bilinear interpolation.

    The transform is scale + translation, so sampling separates into two small
    matrix products (rows, then columns) instead of a per-pixel gather: builtin
    BATCH_MATMUL in TFLite, quantizable to int8, and cheap.

    Args:
        feature_map: `(batch, height, width, channels)`.
        theta: `(batch, parts, 4)` as `(scale_y, scale_x, centre_y, centre_x)` in
            normalised coordinates (the whole map spans [-1, 1]).
        patch_size: `(patch_height, patch_width)`.

    Returns:
        `(batch, parts, patch_height, patch_width, channels)`.
    """
    patch_h, patch_w = patch_size
    _, height, width, channels = feature_map.shape
    parts = theta.shape[1]
    # Weights from float32 coordinates, applied in the map's own dtype (float16 under mixed precision).
    rows = ops.cast(interpolation_matrix(theta[..., 2:3], theta[..., 0:1], patch_h, height), feature_map.dtype)
    cols = ops.cast(interpolation_matrix(theta[..., 3:4], theta[..., 1:2], patch_w, width), feature_map.dtype)
    # Rows: (B, P*ph, H) @ (B, H, W*C) -> (B, P*ph, W*C).
    flat = ops.reshape(feature_map, (-1, height, width * channels))
    picked_rows = ops.matmul(ops.reshape(rows, (-1, parts * patch_h, height)), flat)
    # Columns: (B*P, pw, W) @ (B*P, W, ph*C) -> (B*P, pw, ph*C).
    picked_rows = ops.reshape(picked_rows, (-1, patch_h, width, channels))
    picked_rows = ops.reshape(ops.transpose(picked_rows, (0, 2, 1, 3)), (-1, width, patch_h * channels))
    patches = ops.matmul(ops.reshape(cols, (-1, patch_w, width)), picked_rows)
    patches = ops.reshape(patches, (-1, patch_w, patch_h, channels))
    patches = ops.transpose(patches, (0, 2, 1, 3))
    return ops.reshape(patches, (-1, parts, patch_h, patch_w, channels))


@keras.saving.register_keras_serializable(package="keras_msreid")
class SpatialTransformer(layers.Layer):
    """Predicts where to look on a feature map and crops `parts` patches there.

    A small localisation net (1x1 conv, global pooling, dense) predicts, per part,
    a scale and a centre. The scale is bounded to `[0.5, 2]` times the scale at
    which the patch samples one cell per step (the "native" scale), and the centre
    so that the patch stays inside the map. At initialisation every part is a
    native-scale patch; with several parts their centres are spread from top to
    bottom (head to feet). With `learn_transform=False` the transform stays at that
    prior: a fixed centre patch (the "no STN" ablation).

    Example:

    >>> stn = SpatialTransformer(patch_size=(5, 3), parts=2)
    >>> patches, theta = stn(keras.random.normal((4, 40, 16, 32)))
    >>> tuple(patches.shape), tuple(theta.shape)
    ((4, 2, 5, 3, 32), (4, 2, 4))
    """

    def __init__(self, patch_size=(5, 3), parts=1, hidden_units=32, learn_transform=True, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = tuple(int(v) for v in patch_size)
        self.parts = int(parts)
        self.hidden_units = int(hidden_units)
        self.learn_transform = bool(learn_transform)
        if self.parts < 1:
            raise ValueError(f"parts must be >= 1, got {parts}")
        if min(self.patch_size) < 1:
            raise ValueError(f"patch_size must be positive, got {patch_size}")

    def build(self, input_shape):
        _, height, width, _ = input_shape
        if height < self.patch_size[0] or width < self.patch_size[1]:
            raise ValueError(
                f"patch_size {self.patch_size} does not fit a {height}x{width} feature map"
            )
        native = np.array(
            [(self.patch_size[0] - 1) / max(height - 1, 1), (self.patch_size[1] - 1) / max(width - 1, 1)],
            dtype="float32",
        )
        native = np.maximum(native, 1.0 / max(height, width))
        self.min_scale = np.minimum(native * 0.5, 1.0)
        self.max_scale = np.minimum(native * 2.0, 1.0)
        # Prior: native scale; part centres spread evenly over the height, as a
        # fraction of the room the patch leaves (see `_bounded_theta`).
        self.prior_scale = np.minimum(native, 1.0)
        spread = np.linspace(-0.75, 0.75, self.parts) if self.parts > 1 else np.zeros(1)
        self.prior_centre_y = spread.astype("float32")
        if self.learn_transform:
            self.hidden = layers.Conv2D(self.hidden_units, 1, use_bias=False, name="hidden")
            self.hidden_norm = batch_norm(name="hidden_norm")
            self.hidden.build(input_shape)
            self.hidden_norm.build(input_shape[:-1] + (self.hidden_units,))
            # Zero kernel: the prediction starts exactly at the prior.
            self.regressor = layers.Dense(
                4 * self.parts, kernel_initializer="zeros", bias_initializer="zeros", name="regressor"
            )
            self.regressor.build((None, self.hidden_units))

    def call(self, feature_map, training=None):
        batch = ops.shape(feature_map)[0]
        if not self.learn_transform:
            theta = self._bounded_theta(ops.zeros((batch, self.parts, 4)))
        else:
            hidden = ops.relu(self.hidden_norm(self.hidden(feature_map), training=training))
            raw = ops.reshape(self.regressor(ops.mean(hidden, axis=(1, 2))), (-1, self.parts, 4))
            # The transform in float32 whatever the map's dtype (float16 under mixed
            # precision): its bounds are float32 constants, and it is 4 numbers a part.
            theta = self._bounded_theta(ops.cast(raw, "float32"))
        return sample_patches(feature_map, theta, self.patch_size), theta

    def _bounded_theta(self, raw):
        """Maps unbounded predictions to scales in [min, max] and centres inside the map.

        A zero prediction gives the prior: the scale goes through a sigmoid centred
        on the prior, and the centre, in units of the room the patch leaves on each
        side, is the prior centre plus a tanh offset.
        """
        low, high, prior = self.min_scale, self.max_scale, self.prior_scale
        # sigmoid(raw + bias) equals (prior - low) / (high - low) at raw == 0.
        fraction = np.clip((prior - low) / np.maximum(high - low, 1e-6), 1e-3, 1 - 1e-3)
        bias = np.log(fraction / (1.0 - fraction)).astype("float32")
        scale = low + (high - low) * ops.sigmoid(raw[..., 0:2] + bias)
        room = 1.0 - scale  # centres in [-room, room] keep the patch inside
        prior_centre = ops.convert_to_tensor(
            np.stack([self.prior_centre_y, np.zeros(self.parts, "float32")], axis=-1)
        )
        centre = ops.clip(prior_centre + ops.tanh(raw[..., 2:4]), -1.0, 1.0) * room
        return ops.concatenate([scale, centre], axis=-1)

    def compute_output_shape(self, input_shape):
        batch, _, _, channels = input_shape
        return (batch, self.parts) + self.patch_size + (channels,), (batch, self.parts, 4)

    def get_config(self):
        config = super().get_config()
        config.update(
            patch_size=self.patch_size,
            parts=self.parts,
            hidden_units=self.hidden_units,
            learn_transform=self.learn_transform,
        )
        return config
