import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_msreid.layers.spatial_transformer import SpatialTransformer, sample_patches


def numpy_bilinear_patch(feature_map, theta, patch_size):
    """Slow reference: one sample at a time, zero outside the map."""
    height, width, channels = feature_map.shape
    scale_y, scale_x, centre_y, centre_x = theta
    patch_h, patch_w = patch_size
    out = np.zeros((patch_h, patch_w, channels))
    for i in range(patch_h):
        for j in range(patch_w):
            ny = centre_y + scale_y * (-1 + 2 * i / (patch_h - 1) if patch_h > 1 else 0)
            nx = centre_x + scale_x * (-1 + 2 * j / (patch_w - 1) if patch_w > 1 else 0)
            y = (ny + 1) / 2 * (height - 1)
            x = (nx + 1) / 2 * (width - 1)
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
                for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
                    if 0 <= yy < height and 0 <= xx < width:
                        out[i, j] += wy * wx * feature_map[yy, xx]
    return out


def test_identity_transform_returns_the_input():
    feature_map = np.random.default_rng(0).normal(size=(2, 6, 4, 3)).astype("float32")
    theta = np.tile(np.array([[[1.0, 1.0, 0.0, 0.0]]], "float32"), (2, 1, 1))
    patches = sample_patches(tf.constant(feature_map), tf.constant(theta), (6, 4))
    np.testing.assert_allclose(patches.numpy()[:, 0], feature_map, atol=1e-5)


def test_known_translation_moves_content_by_whole_cells():
    feature_map = np.zeros((1, 9, 5, 1), "float32")
    feature_map[0, 6, 2, 0] = 1.0  # a single bright cell
    # A 3x3 native-scale patch (scale = 2 / (size - 1)) centred on row 6, column 2.
    theta = np.array([[[2 / 8, 2 / 4, (6 / 8) * 2 - 1, 0.0]]], "float32")
    patch = sample_patches(tf.constant(feature_map), tf.constant(theta), (3, 3)).numpy()[0, 0, :, :, 0]
    expected = np.zeros((3, 3))
    expected[1, 1] = 1.0
    np.testing.assert_allclose(patch, expected, atol=1e-6)
    # Moving the centre up by one cell moves the bright cell down by one row in the patch.
    theta[0, 0, 2] -= 2 / 8
    patch = sample_patches(tf.constant(feature_map), tf.constant(theta), (3, 3)).numpy()[0, 0, :, :, 0]
    expected = np.zeros((3, 3))
    expected[2, 1] = 1.0
    np.testing.assert_allclose(patch, expected, atol=1e-6)


@pytest.mark.parametrize("patch_size", [(5, 3), (4, 2), (1, 1)])
def test_sampling_matches_slow_numpy_bilinear_sampler(patch_size):
    rng = np.random.default_rng(1)
    feature_map = rng.normal(size=(3, 10, 6, 4)).astype("float32")
    theta = np.stack(
        [rng.uniform(0.1, 1.2, (3, 2)), rng.uniform(0.1, 1.2, (3, 2)), rng.uniform(-1.1, 1.1, (3, 2)), rng.uniform(-1.1, 1.1, (3, 2))],
        axis=-1,
    ).astype("float32")
    patches = sample_patches(tf.constant(feature_map), tf.constant(theta), patch_size).numpy()
    for b in range(3):
        for p in range(2):
            expected = numpy_bilinear_patch(feature_map[b], theta[b, p], patch_size)
            np.testing.assert_allclose(patches[b, p], expected, atol=1e-5)


def test_gradients_flow_to_transform_parameters():
    feature_map = tf.constant(np.random.default_rng(2).normal(size=(2, 10, 6, 3)).astype("float32"))
    theta = tf.Variable([[[0.4, 0.5, 0.13, -0.21]], [[0.3, 0.6, -0.3, 0.17]]])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(sample_patches(feature_map, theta, (5, 3)) ** 2)
    gradient = tape.gradient(loss, theta).numpy()
    assert np.all(np.isfinite(gradient))
    assert np.all(np.abs(gradient) > 0)


def test_layer_starts_at_native_centre_patch_and_learns_transform():
    stn = SpatialTransformer(patch_size=(5, 3), parts=1)
    feature_map = tf.constant(np.random.default_rng(3).normal(size=(2, 9, 5, 4)).astype("float32"))
    patches, theta = stn(feature_map)
    # Native scale on a 9x5 map with a 5x3 patch: one cell per step, centred.
    np.testing.assert_allclose(theta.numpy()[:, 0, :2], [[4 / 8, 2 / 4]] * 2, atol=2e-3)
    np.testing.assert_allclose(theta.numpy()[:, 0, 2:], 0.0, atol=1e-6)
    np.testing.assert_allclose(patches.numpy()[:, 0], feature_map.numpy()[:, 2:7, 1:4], atol=5e-3)
    with tf.GradientTape() as tape:
        patches, _ = stn(feature_map, training=True)
        loss = tf.reduce_sum(patches[..., 0])
    gradients = tape.gradient(loss, stn.regressor.trainable_weights)
    assert float(tf.reduce_max(tf.abs(gradients[0]))) > 0


def test_parts_start_spread_from_top_to_bottom_and_stay_inside():
    stn = SpatialTransformer(patch_size=(3, 3), parts=3)
    _, theta = stn(keras.random.normal((1, 20, 8, 4)))
    centres = theta.numpy()[0, :, 2]
    assert centres[0] < centres[1] < centres[2]
    scale = theta.numpy()[0, :, 0]
    assert np.all(np.abs(centres) + scale <= 1.0 + 1e-6)


def test_fixed_transform_has_no_weights_and_bad_sizes_are_rejected():
    stn = SpatialTransformer(patch_size=(5, 3), learn_transform=False)
    stn.build((None, 10, 4, 8))
    assert stn.trainable_weights == []
    with pytest.raises(ValueError, match=r"patch_size \(5, 3\) does not fit a 4x4 feature map"):
        SpatialTransformer(patch_size=(5, 3)).build((None, 4, 4, 8))
    with pytest.raises(ValueError, match="parts must be >= 1"):
        SpatialTransformer(parts=0)


def test_config_round_trip():
    stn = SpatialTransformer(patch_size=(3, 2), parts=2, hidden_units=8, learn_transform=False)
    clone = SpatialTransformer.from_config(stn.get_config())
    assert (clone.patch_size, clone.parts, clone.hidden_units, clone.learn_transform) == ((3, 2), 2, 8, False)


@pytest.mark.parametrize("learn_transform", [False, True])
def test_a_float16_map_gives_float16_patches_and_a_float32_transform(learn_transform):
    rng = np.random.default_rng(3)
    feature_map = rng.normal(size=(2, 10, 4, 8)).astype("float32")
    layer32 = SpatialTransformer((5, 3), parts=2, learn_transform=learn_transform)
    layer16 = SpatialTransformer((5, 3), parts=2, learn_transform=learn_transform, dtype="mixed_float16")
    patches32, theta32 = layer32(tf.constant(feature_map))
    layer16.build(feature_map.shape)
    layer16.set_weights(layer32.get_weights())
    patches16, theta16 = layer16(tf.constant(feature_map))  # computes in float16, as under mixed precision
    assert (patches16.dtype, theta16.dtype) == (tf.float16, tf.float32)
    np.testing.assert_allclose(theta16.numpy(), theta32.numpy(), atol=1e-3)
    np.testing.assert_allclose(patches16.numpy().astype("float32"), patches32.numpy(), atol=1e-2)
