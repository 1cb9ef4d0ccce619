"""ApplicationBackbone: a keras.applications peer under the same head and losses."""

import keras
import numpy as np
import pytest

from keras_msreid.models import ApplicationBackbone, MSReID, load_model


def images(count, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (count, 64, 32, 3)).astype("float32")


def test_trains_saves_and_ranks_by_embedding(tmp_path):
    keras.utils.set_random_seed(0)
    model = MSReID(ApplicationBackbone("MobileNetV2", alpha=0.35, image_size=(64, 32), embedding_dim=16), num_classes=4)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)  # tracing MobileNetV2 takes a minute
    x, y = images(16), np.repeat(np.arange(4), 4).astype("int32")
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    assert set(history) == {"loss", "identity_loss", "triplet_loss"}  # no pair head, no pair terms
    assert model.levels == () and model.scorer_feature_names == []
    features = model.extractor()(images(3, seed=1))
    assert set(features) == {"embedding"}
    np.testing.assert_allclose(np.linalg.norm(features["embedding"], axis=1), 1.0, atol=1e-4)
    model.save(tmp_path / "peer.keras")
    loaded = load_model(tmp_path / "peer.keras")
    np.testing.assert_allclose(loaded.extractor()(images(3, seed=1))["embedding"],
                               features["embedding"], atol=1e-5)


def test_mobilenetv3_small_round_trips(tmp_path):
    model = MSReID(ApplicationBackbone("MobileNetV3Small", image_size=(64, 32), embedding_dim=16))
    batch = images(2)
    expected = model(batch)["embedding"]
    assert expected.shape == (2, 16)
    model.save(tmp_path / "peer.keras")
    np.testing.assert_allclose(load_model(tmp_path / "peer.keras")(batch)["embedding"], expected, atol=1e-5)


def test_unknown_network_and_image_size_are_named():
    with pytest.raises(ValueError, match=r"application must be one of \['MobileNetV2', 'MobileNetV3Small'\]"):
        ApplicationBackbone("ResNet50")
    with pytest.raises(ValueError, match="image_size must be divisible by 16"):
        ApplicationBackbone(image_size=(60, 32))


@pytest.mark.parametrize("application", ["MobileNetV2", "MobileNetV3Small"])
def test_batch_norms_move_as_fast_as_msreids_own(application):
    # keras.applications' momentum 0.999 would keep 37 % of the initial statistics after
    # 1,000 steps from scratch; one step at MSReID's momentum moves them by 1 - 0.9.
    backbone = ApplicationBackbone(application, alpha=1.0, image_size=(64, 32), embedding_dim=16)
    norms = [layer for layer in backbone.network.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms
    norm = norms[0]
    channels = norm.moving_mean.shape[0]
    batch = np.random.default_rng(0).normal(3.0, 1.0, (8, 4, 4, channels)).astype("float32")
    norm(batch, training=True)
    np.testing.assert_allclose(norm.moving_mean.numpy(), 0.1 * batch.mean(axis=(0, 1, 2)), rtol=1e-4)
