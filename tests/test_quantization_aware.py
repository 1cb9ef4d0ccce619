"""Simulated int8 rounding for quantization-aware training, against numpy references."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import TINY_MODEL

from keras_msreid.models import MSReID
from keras_msreid.training.quantization_aware import round_activation, round_kernel, rounding_plan, simulated_int8


def _reference_kernel(kernel, channel_axis):
    """Per-channel symmetric int8 as TFLite stores weights: integers in [-127, 127] times max|w| / 127."""
    axes = tuple(axis for axis in range(kernel.ndim) if axis != channel_axis % kernel.ndim)
    scale = np.abs(kernel).max(axis=axes, keepdims=True) / 127.0
    return np.clip(np.floor(kernel / scale + 0.5), -127, 127) * scale


def _reference_activation(x):
    """Per-tensor asymmetric 8 bits as TFLite stores activations: a range holding 0, zero point an integer."""
    low, high = min(x.min(), 0.0), max(x.max(), 0.0)
    scale = (high - low) / 255.0
    zero_point = np.clip(np.round(-low / scale), 0, 255)
    low, high = -zero_point * scale, (255 - zero_point) * scale
    return np.floor((np.clip(x, low, high) - low) / scale + 0.5) * scale + low


@pytest.mark.parametrize("channel_axis", [-1, 2])
def test_kernel_rounds_per_channel_as_tflite_stores_weights(channel_axis):
    kernel = np.random.default_rng(0).normal(0, 0.2, (3, 3, 6, 5)).astype("float32")
    kernel[..., 1] *= 20  # channels of very different ranges: one grid for all would lose the small ones
    got = np.asarray(round_kernel(kernel, channel_axis))
    np.testing.assert_allclose(got, _reference_kernel(kernel, channel_axis), atol=1e-6)
    assert not np.allclose(got, kernel, atol=1e-7)


def test_activation_rounds_to_256_levels_over_a_range_holding_zero():
    x = np.random.default_rng(1).uniform(0.3, 2.1, (2, 8, 4, 3)).astype("float32")  # all positive: 0 joins the range
    got = np.asarray(round_activation(x))
    np.testing.assert_allclose(got, _reference_activation(x), atol=1e-6)
    assert len(np.unique(got)) <= 256
    dead = np.zeros((2, 4), "float32")  # a ReLU that never fires stays exactly zero
    np.testing.assert_array_equal(np.asarray(round_activation(dead)), dead)


def _model(**options):
    model = MSReID.from_options(num_classes=4, **{**TINY_MODEL, **options})
    model.build()
    return model


def test_rounds_the_tensors_the_int8_extractor_stores():
    model = _model(depths=(1, 2, 1))  # mid_1 keeps its shape: a residual Add
    plan = {id(layer): rounds for layer, rounds in rounding_plan(model)}
    trunk = {layer.name: plan[id(layer)] for layer in model.backbone.trunk.layers if id(layer) in plan}
    # Batch norms fold into the convolution before them, ReLUs into the op before them.
    assert trunk["normalise"] and trunk["stem_relu"] and trunk["mid_1_relu"] and trunk["mid_1_add"] is False
    assert not any(trunk[name] for name in ("stem_conv", "stem_bn", "mid_1_dw", "mid_1_dw_bn", "mid_1_pw"))
    assert trunk["mid_1_pw_bn"]  # it feeds the Add, which stores both operands
    # The similarity features: each convolution rounds after its batch norm.
    for features in model.backbone.similarity_features.values():
        transformer = features.spatial_transformer
        assert plan[id(features.projection)] is False and plan[id(features.projection_norm)] is True
        assert plan[id(transformer.hidden)] is False and plan[id(transformer.hidden_norm)] is True
    # The heads after pooling stay float in the export: left alone.
    assert not any(id(layer) in plan for layer in model.backbone.embedding_head._flatten_layers())


def test_simulation_rounds_inside_the_block_and_leaves_the_model_as_it_was():
    model = _model()
    images = np.random.default_rng(2).uniform(0, 255, (4, 64, 32, 3)).astype("float32")
    weights = [w.numpy() for w in model.weights]
    before = model.backbone(images, training=False)
    with simulated_int8(model):
        inside = model.backbone(images, training=False)
    after = model.backbone(images, training=False)
    for name in ("high_map", "low_patch"):
        difference = np.abs(np.asarray(inside[name]) - np.asarray(before[name]))
        assert 0 < difference.max() < 0.3, name  # rounding, not another network
        np.testing.assert_array_equal(np.asarray(after[name]), np.asarray(before[name]))
    assert len(model.weights) == len(weights)  # no range variables: checkpoints stay a plain model's
    for want, got in zip(weights, model.weights):
        np.testing.assert_array_equal(got.numpy(), want)
    assert not any("call" in vars(layer) for layer in model._flatten_layers())


def test_gradients_pass_the_rounding_straight_through():
    model = _model()
    images = tf.constant(np.random.default_rng(3).uniform(0, 255, (4, 64, 32, 3)).astype("float32"))

    def gradients():
        with tf.GradientTape() as tape:
            outputs = model.backbone(images, training=True)
            loss = tf.reduce_sum(outputs["high_map"] * outputs["high_map"][::-1]) + tf.reduce_sum(outputs["features"])
        return dict(zip([v.path for v in model.backbone.trainable_variables],
                        tape.gradient(loss, model.backbone.trainable_variables)))

    plain = gradients()
    with simulated_int8(model):
        rounded = gradients()
    for path in ("stem_conv", "high_0_pw", "projection"):
        (name,) = [key for key in plain if path in key and key.endswith("kernel")][:1]
        a, b = plain[name].numpy().ravel(), rounded[name].numpy().ravel()
        assert np.abs(b).max() > 0, name
        assert np.corrcoef(a, b)[0, 1] > 0.9, name  # the same descent direction, up to the rounding


def test_a_keras_applications_backbone_is_read_from_its_graph():
    model = MSReID.from_options(num_classes=3, backbone="MobileNetV2", alpha=0.35, image_size=(64, 32),
                                embedding_dim=8)
    model.build()
    plan = {layer.name: rounds for layer, rounds in rounding_plan(model)}
    assert plan["Conv1"] is False and plan["bn_Conv1"] is False and plan["Conv1_relu"] is True
    assert plan["block_1_project_BN"] is True  # no ReLU after a projection: stored
    images = np.random.default_rng(4).uniform(0, 255, (2, 64, 32, 3)).astype("float32")
    before = model.backbone(images, training=False)["embedding"]
    with simulated_int8(model):
        inside = model.backbone(images, training=False)["embedding"]
    assert 0 < np.abs(np.asarray(inside) - np.asarray(before)).max() < 0.5
    assert keras.ops.all(keras.ops.isfinite(inside))
