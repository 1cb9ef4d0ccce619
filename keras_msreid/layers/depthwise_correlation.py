"""Depth-wise correlation: one image's patch slid over another image's feature map."""

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops


def _same_padding(kernel_size):
    """TensorFlow's SAME padding for stride 1: the extra cell goes after."""
    before = (kernel_size - 1) // 2
    return before, kernel_size - 1 - before


def cells_read(map_size, patch_size, stride=1):
    """Boolean `(height, width)`: the map cells a strided SAME correlation reads at all.

    Positions are evaluated every `stride` cells from (0, 0), and each reads the
    `patch_size` window around it (TensorFlow's SAME padding); with a stride
    larger than the patch, some cells are never read, and a feature store need
    not keep them.
    """
    (height, width), (patch_h, patch_w) = map_size, patch_size
    read = np.zeros((height, width), bool)
    top, left = _same_padding(patch_h)[0], _same_padding(patch_w)[0]
    for y in range(0, height, stride):
        for x in range(0, width, stride):
            read[max(0, y - top) : y - top + patch_h, max(0, x - left) : x - left + patch_w] = True
    return read


def correlate_grouped(patches, feature_maps, stride=1):
    """Correlation of many pairs as ONE depth-wise convolution.

    Each pair's channels become channels of a single image: the maps are laid side
    by side in the channel axis and each pair's patch becomes the depth-wise kernel
    of its own channels. One large op runs forward and backward several times
    faster than a loop of small ones (docs/RESULTS.md, "Training throughput", table 2).

    Args:
        patches: `(pairs, patch_h, patch_w, channels)`.
        feature_maps: `(pairs, height, width, channels)`.

        stride: evaluate every `stride`-th position in both directions.

    Returns:
        `(pairs, ceil(height / stride), ceil(width / stride), channels)`:
        SAME-padded correlation, unscaled.
    """
    pairs = tf.shape(feature_maps)[0]
    _, height, width, channels = feature_maps.shape
    patch_h, patch_w = patches.shape[1], patches.shape[2]
    images = tf.reshape(tf.transpose(feature_maps, (1, 2, 0, 3)), (1, height, width, -1))
    # Explicit stride-1 SAME padding, then VALID: with a stride, TensorFlow's own
    # SAME padding would shift the grid of evaluated positions.
    images = tf.pad(images, ((0, 0), _same_padding(patch_h), _same_padding(patch_w), (0, 0)))
    kernels = tf.reshape(tf.transpose(patches, (1, 2, 0, 3)), (patch_h, patch_w, -1, 1))
    # TensorFlow's depth-wise convolution (its backward pass above all) is several
    # times slower at stride 4 than at stride 2 on a CPU, for a quarter of the work:
    # an even stride above 2 is the stride-2 grid, subsampled (same values; 3x faster
    # forward + backward for a 40x16 map at stride 4, docs/RESULTS.md).
    conv_stride = 2 if stride > 2 and stride % 2 == 0 else stride
    scores = tf.nn.depthwise_conv2d(images, kernels, strides=(1, conv_stride, conv_stride, 1), padding="VALID")
    if conv_stride != stride:
        step = stride // conv_stride
        scores = scores[:, ::step, ::step, :]
    scores = tf.reshape(scores, (scores.shape[1], scores.shape[2], pairs, channels))
    return tf.transpose(scores, (2, 0, 1, 3))


def correlate_shift_add(patches, feature_maps, stride=1):
    """The same correlation as a sum of shifted, weighted copies of the map.

    Uses only pad, space-to-depth, slice, multiply and add, which convert to
    TFLITE_BUILTINS and quantize to int8 with a kernel that is a run-time tensor.
    With a stride, the padded map is first split into its `stride x stride`
    phases (space-to-depth), so every tap is a unit-stride slice of one phase:
    LiteRT's XNNPACK delegate runs unit-stride slices, and each term is computed
    only at the evaluated positions (5-10x faster under LiteRT than slicing the
    full map with a stride).
    """
    _, height, width, channels = feature_maps.shape
    patch_h, patch_w = patches.shape[1], patches.shape[2]
    out_h, out_w = -(-height // stride), -(-width // stride)
    (top, bottom), (left, right) = _same_padding(patch_h), _same_padding(patch_w)
    # Pad to whole phases that hold every tap of every evaluated position.
    padded_h = max(top + height + bottom, stride * (out_h + (patch_h - 1) // stride))
    padded_w = max(left + width + right, stride * (out_w + (patch_w - 1) // stride))
    padded_h, padded_w = padded_h + (-padded_h) % stride, padded_w + (-padded_w) % stride
    padded = ops.pad(
        feature_maps, ((0, 0), (top, padded_h - height - top), (left, padded_w - width - left), (0, 0))
    )
    # Channel block `(i % stride) * stride + j % stride` holds the cells of phase (i, j).
    phases = tf.nn.space_to_depth(padded, stride) if stride > 1 else padded
    total = None
    for i in range(patch_h):
        for j in range(patch_w):
            weight = patches[:, i : i + 1, j : j + 1, :]
            first = ((i % stride) * stride + j % stride) * channels
            row, col = i // stride, j // stride
            term = phases[:, row : row + out_h, col : col + out_w, first : first + channels] * weight
            total = term if total is None else total + term
    return total


def correlate_one_to_many(patches, feature_maps, stride=1):
    """The correlation when one side is a single image (a batch of 1).

    One patch `(1, ph, pw, C)` over many maps `(pairs, H, W, C)` is one depth-wise
    convolution: the patch is the kernel, the maps the batch. LiteRT's
    DEPTHWISE_CONV_2D takes a run-time kernel; for one direction of 100 pairs it ran
    2.9x faster in float32 than the `correlate_shift_add` slices (docs/RESULTS.md,
    "A query-major scorer, computing in float on int8 features").

    Many patches `(pairs, ph, pw, C)` over one map `(1, H, W, C)` are the slices of
    that one map times each pair's taps, broadcast over the pairs: as one
    convolution the map would be tiled into a channel count that depends on the
    number of pairs, which the TFLite converter refuses. A query against a gallery
    (`MSReID.scorer("one_to_many")`) runs both.

    Returns:
        `(pairs, ceil(H / stride), ceil(W / stride), C)`, as `correlate_grouped`.
    """
    if feature_maps.shape[0] == 1:
        return correlate_shift_add(patches, feature_maps, stride)
    if patches.shape[0] != 1:
        raise ValueError(f"one side must be a single image (a batch of 1), got patches {patches.shape} "
                         f"and maps {feature_maps.shape}")
    patch_h, patch_w = patches.shape[1:3]
    padded = tf.pad(feature_maps, ((0, 0), _same_padding(patch_h), _same_padding(patch_w), (0, 0)))
    return tf.nn.depthwise_conv2d(padded, tf.transpose(patches, (1, 2, 3, 0)), (1, stride, stride, 1), "VALID")


def unfold_taps(feature_maps, patch_size, stride=1):
    """Every evaluated position's SAME-padded window of each map, read once per image.

    Args:
        feature_maps: `(images, height, width, channels)`.
        patch_size: `(patch_h, patch_w)`.
        stride: positions evaluated every `stride` cells from (0, 0), as `correlate_grouped`.

    Returns:
        `(images, positions, patch_h * patch_w, channels)`, positions row-major over
        the `(ceil(height / stride), ceil(width / stride))` grid; taps that fall in the
        padding are zero.
    """
    images = tf.shape(feature_maps)[0]
    _, height, width, channels = feature_maps.shape
    patch_h, patch_w = patch_size
    (top, bottom), (left, right) = _same_padding(patch_h), _same_padding(patch_w)
    padded = tf.pad(feature_maps, ((0, 0), (top, bottom), (left, right), (0, 0)))
    padded_width = width + left + right
    out_h, out_w = -(-height // stride), -(-width // stride)
    rows = np.arange(out_h)[:, None, None, None] * stride + np.arange(patch_h)[None, None, :, None]
    cols = np.arange(out_w)[None, :, None, None] * stride + np.arange(patch_w)[None, None, None, :]
    cells = (rows * padded_width + cols).reshape(-1)
    taps = tf.gather(tf.reshape(padded, (images, -1, channels)), cells, axis=1)
    return tf.reshape(taps, (images, out_h * out_w, patch_h * patch_w, channels))


def unfolding_pays(map_size, patch_size, stride=1):
    """Whether pairs of a batch's images correlate faster through `unfold_taps`.

    Gathering each pair's taps moves `positions x patch area` cells per pair, gathering
    its map `height x width`: at a stride of 4 with a 5x3 patch the taps are the smaller
    and the correlation of 256 pairs in both directions ran 3.2-4.6x faster forward and
    backward; at stride 1 they are 15x the map and ran 2x slower (docs/RESULTS.md,
    "The low level's taps unfolded once per image").
    """
    (height, width), (patch_h, patch_w) = map_size, patch_size
    positions = -(-height // stride) * -(-width // stride)
    return positions * patch_h * patch_w <= height * width


def correlate_indexed(patches, feature_maps, patch_rows, map_rows, stride=1, unfold=None,
                      correlate_pairs=correlate_grouped):
    """The correlation of pairs given as rows of two per-image batches.

    Pair `i` slides `patches[patch_rows[i]]` over `feature_maps[map_rows[i]]`. With
    `unfold`, each map is unfolded into its taps once and the taps are gathered per
    pair; without, each pair's patch and map are gathered and `correlate_pairs`
    (`correlate_grouped` or `correlate_shift_add`) runs. Same values either way.

    Args:
        patches: `(images_p, patch_h, patch_w, channels)`.
        feature_maps: `(images_m, height, width, channels)`.
        patch_rows, map_rows: int `(pairs,)`.
        stride: as `correlate_grouped`.
        unfold: `None` (the default) unfolds where `unfolding_pays`.

    Returns:
        `(pairs, ceil(height / stride), ceil(width / stride), channels)`, unscaled.
    """
    _, patch_h, patch_w, channels = patches.shape
    _, height, width, _ = feature_maps.shape
    if unfold is None:
        unfold = unfolding_pays((height, width), (patch_h, patch_w), stride)
    if not unfold:
        return correlate_pairs(tf.gather(patches, patch_rows), tf.gather(feature_maps, map_rows), stride)
    taps = tf.gather(unfold_taps(feature_maps, (patch_h, patch_w), stride), map_rows)
    kernels = tf.reshape(tf.gather(patches, patch_rows), (-1, 1, patch_h * patch_w, channels))
    scores = tf.reduce_sum(taps * kernels, axis=2)
    return tf.reshape(scores, (-1, -(-height // stride), -(-width // stride), channels))


@keras.saving.register_keras_serializable(package="keras_msreid")
class DepthwiseCorrelation(layers.Layer):
    """Slides each pair's patch, channel by channel, over the other image's map.

    `out[n, y, x, p*C + c] = mean_{i,j} patch[n, p, i, j, c] * map[n, y + i - pi, x + j - pj, c]`
    with SAME padding (`pi, pj` = TensorFlow's leading pad), evaluated at every
    `strides`-th position (a coarser grid of positions, not a coarser patch: the
    patch keeps the map's detail). Dividing by the patch
    area keeps scores in [-1, 1] when the inputs are unit vectors per cell, which
    also keeps int8 quantization accurate. Parts are stacked along channels.

    `method="grouped"` folds all pairs into one depth-wise convolution (fast to
    train); `method="shift_add"` uses builtin element-wise ops only;
    `method="one_to_many"` takes a single image on one side (a batch of 1, known
    when the graph is built), met by every row of the other, as one depth-wise
    convolution with a run-time kernel (the exported scorer). All give the same
    numbers.

    `call([patches, maps], rows=(patch_rows, map_rows))` takes the two sides as
    per-image batches and pair `i` as `patches[patch_rows[i]]` over
    `maps[map_rows[i]]` (`correlate_indexed`; a level it does not unfold runs as
    `method` says, `grouped` for `one_to_many`): a training batch's pairs without
    copying a map per pair.

    Example:

    >>> corr = DepthwiseCorrelation()
    >>> patches = keras.random.normal((8, 2, 5, 3, 16))   # (pairs, parts, ph, pw, C)
    >>> maps = keras.random.normal((8, 40, 16, 16))
    >>> tuple(corr([patches, maps]).shape)
    (8, 40, 16, 32)
    """

    METHODS = ("grouped", "shift_add", "one_to_many")
    # The methods for aligned pairs (row i meets row i), the ones training takes.
    ALIGNED_METHODS = ("grouped", "shift_add")

    def __init__(self, method="grouped", strides=1, **kwargs):
        super().__init__(**kwargs)
        if method not in self.METHODS:
            raise ValueError(f"method must be one of {self.METHODS}, got {method!r}")
        self.method = method
        self.strides = int(strides)

    def call(self, inputs, rows=None):
        patches, feature_maps = inputs
        parts, patch_h, patch_w, channels = patches.shape[1:]
        _, height, width, _ = feature_maps.shape
        scale = 1.0 / (patch_h * patch_w)
        if rows is not None:
            # Pairs as rows of per-image batches: every part of a pair's patch image meets its map.
            patch_rows, map_rows = (ops.cast(index, "int32") for index in rows)
            part_rows = ops.reshape(ops.expand_dims(patch_rows, 1) * parts + ops.arange(parts, dtype="int32"), (-1,))
            scores = correlate_indexed(ops.reshape(patches, (-1, patch_h, patch_w, channels)), feature_maps,
                                       part_rows, ops.repeat(map_rows, parts), self.strides,
                                       correlate_pairs=correlate_shift_add if self.method == "shift_add"
                                       else correlate_grouped) * scale
        elif self.method == "one_to_many":
            # The scale goes on the kernel, the smaller tensor: one multiply fewer per output.
            patches = patches * scale
            if patches.shape[0] == 1:
                # One image's parts over many maps: a convolution per part, stacked part-major.
                scores = [correlate_one_to_many(patches[:, part], feature_maps, self.strides) for part in range(parts)]
                return scores[0] if parts == 1 else ops.concatenate(scores, axis=-1)
            # Many images' parts over one map: every part meets it, without repeating it.
            scores = correlate_one_to_many(ops.reshape(patches, (-1, patch_h, patch_w, channels)), feature_maps,
                                           self.strides)
        else:
            # Fold parts into pairs: every part meets the same map.
            flat_patches = ops.reshape(patches, (-1, patch_h, patch_w, channels))
            flat_maps = ops.reshape(
                ops.repeat(ops.expand_dims(feature_maps, 1), parts, axis=1), (-1, height, width, channels)
            )
            correlate = correlate_grouped if self.method == "grouped" else correlate_shift_add
            scores = correlate(flat_patches, flat_maps, self.strides) * scale
        height, width = scores.shape[1], scores.shape[2]
        scores = ops.reshape(scores, (-1, parts, height, width, channels))
        scores = ops.transpose(scores, (0, 2, 3, 1, 4))
        return ops.reshape(scores, (-1, height, width, parts * channels))

    def compute_output_shape(self, input_shape, rows=None):
        patch_shape, map_shape = input_shape
        height, width = (-(-size // self.strides) for size in map_shape[1:3])
        if rows is not None:
            pairs = rows[0][0]
        elif self.method == "one_to_many" and map_shape[0] == 1:
            pairs = patch_shape[0]
        else:
            pairs = map_shape[0]
        return (pairs, height, width, patch_shape[1] * map_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(method=self.method, strides=self.strides)
        return config
