import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import TINY_MODEL
from keras_msreid.errors import UserError
from keras_msreid.models import MSReID



def images(count, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (count, 64, 32, 3)).astype("float32")


def pair_inputs(names, features_a, features_b):
    inputs = {f"a_{name}": features_a[name] for name in names}
    inputs.update({f"b_{name}": features_b[name] for name in names})
    return inputs


@pytest.fixture(scope="module")
def model():
    model = MSReID.from_options(num_classes=4, parts=2, **TINY_MODEL)
    model(images(2))
    # Non-trivial batch-norm statistics, so that inference differs from initialisation.
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.random.default_rng(1).normal(size=layer.moving_mean.shape) * 0.1)
    return model


def test_outputs_per_image(model):
    outputs = model(images(3))
    assert outputs["embedding"].shape == (3, 16)
    assert outputs["id_logits"].shape == (3, 4)
    assert outputs["low_map"].shape == (3, 16, 8, 8)
    assert outputs["mid_map"].shape == (3, 8, 4, 8)
    assert outputs["high_map"].shape == (3, 4, 2, 8)
    assert outputs["high_patch"].shape == (3, 2, 3, 2, 8)
    # Cells of the similarity maps are unit vectors.
    norms = np.linalg.norm(outputs["mid_map"].numpy(), axis=-1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-4)


def test_score_is_symmetric_and_both_correlation_forms_agree(model):
    features = model.extractor().predict(images(6), verbose=0)
    names = model.scorer_feature_names
    a = {name: value[[0, 1, 2, 3]] for name, value in features.items()}
    b = {name: value[[4, 5, 3, 0]] for name, value in features.items()}
    scorer = model.scorer("shift_add")
    forward = scorer.predict(pair_inputs(names, a, b), verbose=0)["score"]
    backward = scorer.predict(pair_inputs(names, b, a), verbose=0)["score"]
    grouped = model.scorer("grouped").predict(pair_inputs(names, a, b), verbose=0)["score"]
    exported_form = model.scorer("shift_add", context="grouped").predict(pair_inputs(names, a, b), verbose=0)["score"]
    np.testing.assert_allclose(forward, backward, atol=1e-6)
    np.testing.assert_allclose(forward, grouped, atol=1e-5)
    np.testing.assert_allclose(exported_form, grouped, atol=1e-5)
    assert forward.shape == (4,)
    assert np.all((forward > 0) & (forward < 1))
    # The unit-norm embedding of the extractor.
    np.testing.assert_allclose(np.linalg.norm(features["embedding"], axis=-1), 1.0, atol=1e-5)


def test_the_two_directions_are_averaged_before_the_reduction():
    model = MSReID.from_options(**TINY_MODEL)
    features = model(images(4, seed=3))
    a = {name: value[:2] for name, value in features.items()}
    b = {name: value[2:] for name, value in features.items()}
    level_maps = []
    for level in model.levels:  # the slow way: each direction's correlation on its own
        block = model.pair_head.similarities[level]
        correlation = block.correlations["grouped"]
        ab = correlation([a[f"{level}_patch"], b[f"{level}_map"]])
        ba = correlation([b[f"{level}_patch"], a[f"{level}_map"]])
        level_maps.append(keras.ops.relu(block.reduction_norm(block.reduction((ab + ba) / 2))))
    expected = np.reshape(model.pair_head.fusion(level_maps), (-1,))
    np.testing.assert_allclose(model.pair_logits(a, b), expected, atol=1e-5)
    np.testing.assert_allclose(model.pair_logits(b, a), model.pair_logits(a, b), atol=1e-6)


def test_pairs_as_rows_of_the_batch_score_and_train_as_the_gathered_pairs():
    model = MSReID.from_options(**TINY_MODEL)  # low level at stride 4: unfolded; mid and high: gathered
    batch = tf.constant(images(5, seed=6))
    rows_a, rows_b = tf.constant([0, 0, 1, 4, 3, 2]), tf.constant([1, 3, 1, 2, 0, 4])
    results = []
    for as_rows in (True, False):
        with tf.GradientTape() as tape:
            features = model(batch, training=True)
            if as_rows:
                logits = model.pair_logits(features, features, training=True, rows=(rows_a, rows_b))
            else:
                logits = model.pair_logits({name: tf.gather(value, rows_a) for name, value in features.items()},
                                           {name: tf.gather(value, rows_b) for name, value in features.items()},
                                           training=True)
            loss = tf.reduce_sum(logits * tf.range(1.0, 7.0))
        gradients = tape.gradient(loss, model.trainable_variables)
        results.append([logits.numpy()] + [tf.convert_to_tensor(g).numpy() for g in gradients if g is not None])
    assert len(results[0]) == len(results[1]) > 20
    for as_rows, gathered in zip(*results):
        np.testing.assert_allclose(as_rows, gathered, rtol=1e-4, atol=1e-5)


def test_pairs_as_rows_of_two_different_batches_score_as_the_gathered_pairs():
    model = MSReID.from_options(**TINY_MODEL)
    features = model(images(5, seed=7))
    a = {name: value[:3] for name, value in features.items()}
    b = {name: value[3:] for name, value in features.items()}
    rows_a, rows_b = np.array([2, 0, 1, 2]), np.array([0, 1, 1, 0])
    gathered = model.pair_logits({name: tf.gather(value, rows_a) for name, value in a.items()},
                                 {name: tf.gather(value, rows_b) for name, value in b.items()})
    np.testing.assert_allclose(model.pair_logits(a, b, rows=(rows_a, rows_b)), gathered, atol=1e-5)
    np.testing.assert_allclose(model.pair_logits(b, a, rows=(rows_b, rows_a)), gathered, atol=1e-5)


@pytest.mark.parametrize("pair_stride,grids", [(16, [(4, 2)] * 3), (8, [(8, 4), (8, 4), (4, 2)]), (4, [(16, 8), (8, 4), (4, 2)])])
def test_every_level_is_compared_on_the_pair_stride_grid(pair_stride, grids):
    model = MSReID.from_options(pair_stride=pair_stride, **TINY_MODEL)
    features = model(images(2, seed=4))
    a = {name: value[:1] for name, value in features.items()}
    b = {name: value[1:] for name, value in features.items()}
    shapes = [tuple(model.pair_head.similarities[level]([a[f"{level}_patch"], a[f"{level}_map"], b[f"{level}_patch"],
                                                     b[f"{level}_map"]]).shape[1:3]) for level in model.levels]
    assert shapes == grids  # 64 x 32 images: strides 4, 8, 16 give 16x8, 8x4 and 4x2 maps
    assert model.pair_logits(a, b).shape == (1,)
    with pytest.raises(ValueError, match=r"pair_stride must be one of \(4, 8, 16\)"):
        MSReID.from_options(pair_stride=32, **TINY_MODEL)


def test_a_model_saved_before_the_backbone_split_is_refused_with_the_way_out():
    config = MSReID.from_options(**TINY_MODEL).get_config()
    assert config["pair_head"]["config"]["pair_stride"] == 16
    flat = {key: value for key, value in config.items() if key not in ("backbone", "pair_head")}
    with pytest.raises(ValueError, match=r"saved by an earlier keras_msreid, before the backbone .*convert_flat_model"):
        MSReID.from_config({**flat, **TINY_MODEL})


def test_parts_are_named_and_checked():
    from keras_msreid.models import MSReIDBackbone, MSReIDPairHead

    model = MSReID(MSReIDBackbone(levels=("mid", "high")), MSReIDPairHead(levels=("mid", "high")), num_classes=3)
    assert model.levels == ("mid", "high") and model.scorer_feature_names == [
        "mid_map", "mid_patch", "high_map", "high_patch"]
    with pytest.raises(ValueError, match=r"pair head compares levels \['high'\] but the backbone computes \['mid', 'high'\]"):
        MSReID(MSReIDBackbone(levels=("mid", "high")), MSReIDPairHead(levels=("high",)))
    with pytest.raises(ValueError, match="no pair head to compare them"):
        MSReID(MSReIDBackbone(levels=("high",)))
    with pytest.raises(ValueError, match=r"unknown model options \['pair_strid'\]"):
        MSReID.from_options(pair_strid=8)


def test_save_and_load_in_safe_mode_keeps_outputs(model, tmp_path):
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.get_config() == model.get_config()
    batch = images(2, seed=5)
    for name, value in model(batch).items():
        np.testing.assert_allclose(loaded(batch)[name], value, atol=1e-5, err_msg=name)


def test_fit_lowers_the_loss_on_a_fixed_batch():
    keras.utils.set_random_seed(0)
    model = MSReID.from_options(num_classes=4, **{**TINY_MODEL, "levels": ("low", "high")})
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss_weights={"ranking": 1.0}, hard_positives=1,
                  hard_negatives=1, random_positives=0, random_negatives=0)
    x = images(16)
    y = np.repeat(np.arange(4), 4).astype("int32")
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    history = model.fit(data, steps_per_epoch=15, epochs=2, verbose=0).history
    assert history["loss"][1] < history["loss"][0]
    for name in ("identity_loss", "triplet_loss", "verification_loss", "ranking_loss", "pair_accuracy"):
        assert np.isfinite(history[name][-1]), name


def test_every_level_trains_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = MSReID.from_options(num_classes=2, **TINY_MODEL)  # all levels, with the STN
        model.compile(optimizer=keras.optimizers.AdamW(1e-3))
        logs = model.train_on_batch(images(8, seed=8), np.repeat([0, 1], 4), return_dict=True)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.backbone.compute_dtype == "float16"
    assert {"verification_loss", "triplet_loss", "identity_loss"} <= set(logs)
    assert all(np.isfinite(value) for value in logs.values())


def test_a_term_weighted_zero_is_neither_trained_nor_logged():
    model = MSReID.from_options(num_classes=4, **{**TINY_MODEL, "levels": ("high",)})
    model.compile(optimizer=keras.optimizers.Adam(1e-3))  # the default weights: no ranking loss
    x, y = images(8), np.repeat(np.arange(4), 2).astype("int32")
    logs = model.fit(x, y, epochs=1, verbose=0).history
    assert "ranking_loss" not in logs and "verification_loss" in logs and "pair_accuracy" in logs
    terms = {name: logs[f"{name}_loss"][0] for name in ("identity", "triplet", "verification")}
    assert logs["loss"][0] == pytest.approx(sum(terms.values()), rel=1e-4)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss_weights={"ranking": 0.5, "triplet": 0.0})
    logs = model.fit(x, y, epochs=1, verbose=0).history
    assert "ranking_loss" in logs and "triplet_loss" not in logs


def test_a_loaded_model_is_compiled_as_it_was_saved(tmp_path):
    model = MSReID.from_options(num_classes=4, **{**TINY_MODEL, "levels": ("high",)})
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss_weights={"ranking": 0.5}, hard_negatives=2,
                  random_negatives=0)
    x, y = images(8), np.repeat(np.arange(4), 2).astype("int32")
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Keras warns when it cannot restore a custom compile
        loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert loaded.loss_weights == model.loss_weights and loaded.loss_options == model.loss_options
    assert int(loaded.optimizer.iterations) == 1
    loaded.fit(x, y, epochs=1, verbose=0)  # trains on from the saved optimizer state
    assert int(loaded.optimizer.iterations) == 2


def test_embedding_only_model_has_no_scorer_and_bad_arguments_are_named():
    model = MSReID.from_options(**{**TINY_MODEL, "levels": ()})
    assert model.scorer_feature_names == []
    with pytest.raises(ValueError, match="no similarity levels"):
        model.scorer()
    model.compile(random_positives=0, random_negatives=0)  # no pair head: nothing to mine
    with pytest.raises(UserError, match="at least one positive and one negative pair"):
        MSReID.from_options(**{**TINY_MODEL, "levels": ("high",)}).compile(random_negatives=0)
    with pytest.raises(ValueError, match=r"unknown levels \['top'\]"):
        MSReID.from_options(levels=("top",))
    with pytest.raises(ValueError, match=r"unknown loss_weights \['rank'\]"):
        MSReID.from_options(**TINY_MODEL).compile(loss_weights={"rank": 1.0})
    with pytest.raises(ValueError, match=r"image_size must be divisible by 16, got \(60, 32\)"):
        MSReID.from_options(image_size=(60, 32))


def test_default_model_fits_the_parameter_budget():
    model = MSReID.from_options(num_classes=None)
    model(np.zeros((1, 160, 64, 3), "float32"))
    assert model.count_params() <= 2_000_000
