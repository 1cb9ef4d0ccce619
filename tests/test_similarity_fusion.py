import numpy as np
import pytest
import tensorflow as tf

from keras_msreid.layers import SimilarityFusion


def level_maps(seed=0):
    rng = np.random.default_rng(seed)
    return [tf.constant(rng.normal(size=shape).astype("float32")) for shape in ((3, 8, 4, 6), (3, 4, 2, 6))]


def fusion_with_random_weights():
    fusion = SimilarityFusion(strides=(8, 16), channels=5, hidden_units=7)
    fusion(level_maps())
    rng = np.random.default_rng(1)
    for weight in fusion.weights:
        weight.assign(rng.normal(size=weight.shape).astype("float32") * 0.5 + (1.0 if "variance" in weight.path else 0.0))
    return fusion


def test_context_as_slices_gives_the_convolutions_values_and_gradients():
    fusion = fusion_with_random_weights()
    maps = level_maps(seed=2)
    results = {}
    for depthwise in ("grouped", "shift_add"):
        with tf.GradientTape() as tape:
            tape.watch(maps)
            logits = fusion(maps, training=False, depthwise=depthwise)
            loss = tf.reduce_sum(tf.sin(logits))
        gradients = tape.gradient(loss, maps + [fusion.context.depthwise_kernel, fusion.context.pointwise_kernel])
        results[depthwise] = [logits] + gradients
    for convolution, slices in zip(results["grouped"], results["shift_add"]):
        np.testing.assert_allclose(slices.numpy(), convolution.numpy(), rtol=1e-4, atol=1e-5)
    # The context does reach the logits: a changed depth-wise kernel changes them.
    fusion.context.depthwise_kernel.assign(fusion.context.depthwise_kernel * 2.0)
    assert not np.allclose(fusion(maps, depthwise="shift_add").numpy(), results["shift_add"][0].numpy())


def test_an_unknown_depthwise_form_is_refused():
    fusion = fusion_with_random_weights()
    with pytest.raises(ValueError, match="depthwise must be one of"):
        fusion(level_maps(), depthwise="im2col")
