import numpy as np
import pytest
import tensorflow as tf

from keras_msreid.layers.depthwise_correlation import (
    DepthwiseCorrelation,
    cells_read,
    correlate_indexed,
    unfolding_pays,
)


def naive_correlation(patches, maps, stride=1):
    """Slow reference: explicit loops, SAME padding with the extra cell after."""
    pairs, parts, patch_h, patch_w, channels = patches.shape
    _, height, width, _ = maps.shape
    top, left = (patch_h - 1) // 2, (patch_w - 1) // 2
    out_h, out_w = -(-height // stride), -(-width // stride)
    out = np.zeros((pairs, out_h, out_w, parts * channels))
    for n in range(pairs):
        for p in range(parts):
            for oy in range(out_h):
                for ox in range(out_w):
                    y, x = oy * stride, ox * stride
                    for c in range(channels):
                        total = 0.0
                        for i in range(patch_h):
                            for j in range(patch_w):
                                yy, xx = y + i - top, x + j - left
                                if 0 <= yy < height and 0 <= xx < width:
                                    total += patches[n, p, i, j, c] * maps[n, yy, xx, c]
                        out[n, oy, ox, p * channels + c] = total / (patch_h * patch_w)
    return out


@pytest.mark.parametrize("method", DepthwiseCorrelation.ALIGNED_METHODS)
@pytest.mark.parametrize(
    "patch_size,parts,stride",
    [((5, 3), 1, 1), ((4, 2), 2, 1), ((3, 3), 1, 2), ((2, 5), 2, 2), ((5, 3), 1, 4), ((3, 2), 2, 4)],
)
def test_matches_naive_loop_with_a_different_kernel_per_pair(method, patch_size, parts, stride):
    rng = np.random.default_rng(0)
    patches = rng.normal(size=(3, parts) + patch_size + (4,)).astype("float32")
    maps = rng.normal(size=(3, 9, 6, 4)).astype("float32")
    out = DepthwiseCorrelation(method, strides=stride)([tf.constant(patches), tf.constant(maps)]).numpy()
    np.testing.assert_allclose(out, naive_correlation(patches, maps, stride), atol=1e-5)


@pytest.mark.parametrize("stride", [2, 4])
def test_grouped_and_shift_add_agree_in_value_and_gradient(stride):
    rng = np.random.default_rng(1)
    patches = tf.constant(rng.normal(size=(16, 2, 5, 3, 8)).astype("float32"))
    maps = tf.constant(rng.normal(size=(16, 20, 8, 8)).astype("float32"))
    results = []
    for method in DepthwiseCorrelation.ALIGNED_METHODS:
        with tf.GradientTape() as tape:
            tape.watch([patches, maps])
            out = DepthwiseCorrelation(method, strides=stride)([patches, maps])
            loss = tf.reduce_sum(out**2)
        results.append([out.numpy()] + [g.numpy() for g in tape.gradient(loss, [patches, maps])])
    for grouped, shift_add in zip(*results):
        np.testing.assert_allclose(grouped, shift_add, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", DepthwiseCorrelation.ALIGNED_METHODS)
@pytest.mark.parametrize(
    "map_size,patch_size,parts,stride,unfolds",
    [((12, 8), (3, 3), 1, 4, True), ((9, 6), (3, 2), 2, 4, True), ((10, 4), (5, 3), 1, 1, False),
     ((9, 6), (4, 2), 2, 2, False)],
)
def test_pairs_given_as_rows_match_the_naive_loop_on_the_gathered_pairs(method, map_size, patch_size, parts, stride,
                                                                        unfolds):
    assert unfolding_pays(map_size, patch_size, stride) == unfolds  # both ways of running are covered
    rng = np.random.default_rng(4)
    patches = rng.normal(size=(4, parts) + patch_size + (3,)).astype("float32")
    maps = rng.normal(size=(5,) + map_size + (3,)).astype("float32")
    patch_rows, map_rows = np.array([0, 3, 3, 1, 2, 0]), np.array([4, 0, 2, 2, 1, 4])
    out = DepthwiseCorrelation(method, strides=stride)([tf.constant(patches), tf.constant(maps)],
                                                       rows=(tf.constant(patch_rows), tf.constant(map_rows)))
    np.testing.assert_allclose(out.numpy(), naive_correlation(patches[patch_rows], maps[map_rows], stride), atol=1e-5)


@pytest.mark.parametrize("stride", [1, 2, 3, 4])
def test_unfolded_taps_give_the_gathered_maps_values_at_any_stride(stride):
    rng = np.random.default_rng(6)
    patches = tf.constant(rng.normal(size=(4, 5, 3, 3)).astype("float32"))
    maps = tf.constant(rng.normal(size=(5, 11, 7, 3)).astype("float32"))
    rows = tf.constant([0, 3, 2, 2]), tf.constant([4, 1, 1, 0])
    unfolded, gathered = (correlate_indexed(patches, maps, *rows, stride, unfold=unfold) for unfold in (True, False))
    assert unfolded.shape == gathered.shape == (4, -(-11 // stride), -(-7 // stride), 3)
    np.testing.assert_allclose(unfolded.numpy(), gathered.numpy(), atol=1e-5)


@pytest.mark.parametrize("stride", [1, 4])
def test_pairs_given_as_rows_have_the_gradients_of_the_gathered_pairs(stride):
    rng = np.random.default_rng(5)
    patches = tf.constant(rng.normal(size=(6, 2, 5, 3, 4)).astype("float32"))
    maps = tf.constant(rng.normal(size=(6, 20, 8, 4)).astype("float32"))
    patch_rows, map_rows = tf.constant([0, 1, 1, 5, 3, 3, 2]), tf.constant([2, 2, 4, 0, 3, 1, 1])
    layer = DepthwiseCorrelation(strides=stride)
    weights = tf.constant(rng.normal(size=(7, -(-20 // stride), -(-8 // stride), 8)).astype("float32"))
    results = []
    for indexed in (True, False):
        with tf.GradientTape() as tape:
            tape.watch([patches, maps])
            if indexed:
                out = layer([patches, maps], rows=(patch_rows, map_rows))
            else:
                out = layer([tf.gather(patches, patch_rows), tf.gather(maps, map_rows)])
            loss = tf.reduce_sum(out * weights)
        results.append([out.numpy()] + [tf.convert_to_tensor(g).numpy() for g in tape.gradient(loss, [patches, maps])])
    for indexed, gathered in zip(*results):
        np.testing.assert_allclose(indexed, gathered, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("single", ["patches", "maps"])
@pytest.mark.parametrize("patch_size,parts,stride", [((5, 3), 1, 1), ((4, 2), 2, 1), ((3, 3), 2, 2), ((5, 3), 1, 4)])
def test_one_to_many_matches_the_naive_loop_with_the_single_image_repeated(single, patch_size, parts, stride):
    rng = np.random.default_rng(3)
    patches = rng.normal(size=(1 if single == "patches" else 5, parts) + patch_size + (4,)).astype("float32")
    maps = rng.normal(size=(1 if single == "maps" else 5, 9, 6, 4)).astype("float32")
    out = DepthwiseCorrelation("one_to_many", strides=stride)([tf.constant(patches), tf.constant(maps)]).numpy()
    repeated = (np.repeat(patches, 5, 0), maps) if single == "patches" else (patches, np.repeat(maps, 5, 0))
    np.testing.assert_allclose(out, naive_correlation(*repeated, stride), atol=1e-5)


def test_one_to_many_needs_a_single_image_on_one_side():
    patches, maps = tf.zeros((2, 1, 3, 3, 4)), tf.zeros((2, 9, 6, 4))
    with pytest.raises(ValueError, match="one side must be a single image"):
        DepthwiseCorrelation("one_to_many")([patches, maps])


def test_unit_vectors_give_scores_within_minus_one_and_one():
    rng = np.random.default_rng(2)
    maps = rng.normal(size=(4, 10, 4, 16))
    maps /= np.linalg.norm(maps, axis=-1, keepdims=True)
    patches = maps[:, None, 2:7, 0:3]
    out = DepthwiseCorrelation()([tf.constant(patches, tf.float32), tf.constant(maps, tf.float32)]).numpy()
    assert out.max() <= 1.0 and out.min() >= -1.0


def test_rejects_unknown_method_and_round_trips_config():
    with pytest.raises(ValueError, match="method must be one of"):
        DepthwiseCorrelation("fft")
    layer = DepthwiseCorrelation("shift_add", strides=2)
    clone = DepthwiseCorrelation.from_config(layer.get_config())
    assert (clone.method, clone.strides) == ("shift_add", 2)


@pytest.mark.parametrize("map_size, patch_size, stride", [((40, 16), (5, 3), 4), ((20, 8), (5, 3), 2),
                                                         ((9, 7), (3, 3), 4), ((10, 4), (5, 3), 1)])
def test_cells_read_are_exactly_those_the_correlation_depends_on(map_size, patch_size, stride):
    rng = np.random.default_rng(0)
    patches = rng.uniform(0.5, 1.0, size=(1, 1, *patch_size, 2)).astype(np.float32)  # no zero weight
    maps = rng.normal(size=(1, *map_size, 2)).astype(np.float32)
    layer = DepthwiseCorrelation("grouped", stride)
    base = layer([patches, maps]).numpy()
    read = cells_read(map_size, patch_size, stride)
    for y, x in np.ndindex(*map_size):
        changed = maps.copy()
        changed[0, y, x] += 1.0
        depends = not np.allclose(layer([patches, changed]).numpy(), base, atol=1e-6)
        assert depends == read[y, x], (y, x)
