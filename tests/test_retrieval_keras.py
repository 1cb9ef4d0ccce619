"""Keras side of retrieval on a tiny model: feature extraction, the XLA score function, evaluate_model."""

import keras
import numpy as np
import pytest

from conftest import TINY_MODEL
from keras_msreid.data.pipeline import load_image
from keras_msreid.datasets import build_dataset
from keras_msreid.models import MSReID
from keras_msreid.retrieval import evaluate
from keras_msreid.retrieval.evaluate import RANKINGS, evaluate_model
from keras_msreid.retrieval.extract import extract_features, keras_score_fn
from keras_msreid.synthetic import write_market1501



@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    write_market1501(root, num_ids=8, num_cameras=2, seed=0, image_size=(64, 32), overwrite=True)
    return build_dataset("market1501", root)  # 8 queries, 23 gallery images


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    model = MSReID.from_options(num_classes=4, **TINY_MODEL)
    model.build()
    return model


def images_of(records, image_size):
    return np.stack([load_image(record.path, image_size).numpy() for record in records])


def test_extract_features_keeps_order_and_matches_the_extractor(model, dataset):
    records = dataset.gallery[:7]
    features = extract_features(model.extractor(), records, model.image_size, batch_size=3, progress=False,
                                names=["embedding", "mid_map"])
    assert sorted(features) == ["embedding", "mid_map"]
    expected = model.extractor()(images_of(records, model.image_size))
    for name in features:
        np.testing.assert_allclose(features[name], expected[name], atol=1e-5, err_msg=name)


def test_keras_score_fn_matches_the_scorer_with_padded_last_batch(model, dataset):
    features = extract_features(model.extractor(), dataset.gallery[:6], model.image_size, progress=False)
    first, second = np.arange(11) % 6, (np.arange(11) * 5 + 1) % 6
    a = {name: value[first] for name, value in features.items()}
    b = {name: value[second] for name, value in features.items()}
    scorer = model.scorer("shift_add")
    inputs = {f"{side}_{name}": side_features[name] for side, side_features in (("a", a), ("b", b))
              for name in model.scorer_feature_names}
    expected = scorer(inputs)["score"].numpy()
    score_fn = keras_score_fn(scorer, batch_size=4)  # 4 + 4 + 3 padded to 4, compiled by XLA
    assert score_fn.feature_names == sorted(model.scorer_feature_names)
    np.testing.assert_allclose(score_fn(a, b), expected, atol=1e-5)
    grouped = keras_score_fn(model.scorer("grouped"), batch_size=16, jit_compile=False)
    np.testing.assert_allclose(grouped(a, b), expected, atol=1e-5)
    # Bound to the two feature sets, the score function gathers the same pairs itself.
    np.testing.assert_allclose(score_fn.bind(features, features)(first, second), expected, atol=1e-5)


def test_evaluate_model_gives_three_sane_rankings_and_two_stage_agrees(model, dataset, monkeypatch):
    exhaustive = evaluate_model(model, dataset, ranking="exhaustive")
    assert list(exhaustive) == list(RANKINGS)
    for result in exhaustive.values():
        assert result["num_queries"] == len(dataset.query) and result["num_skipped"] == 0
        assert 0 <= result["rank1"] <= result["rank5"] <= result["rank10"] <= 1
        assert 0 < result["mINP"] <= 1 and 0 < result["mAP"] <= 1
        assert len(result["cmc"]) == 20 and result["cmc"][0] == result["rank1"]
    short = evaluate_model(model, dataset, rankings=("embedding", "csn"), ranking="two-stage", shortlist=3)
    assert list(short) == ["embedding", "csn"]
    assert short["embedding"] == exhaustive["embedding"]
    # Three of 23 gallery images are rescored; everything else keeps its embedding order,
    # so from rank 3 on the two-stage CMC equals the embedding CMC.
    np.testing.assert_allclose(short["csn"]["cmc"][2:], exhaustive["embedding"]["cmc"][2:])
    assert 0 < short["csn"]["mAP"] <= 1
    # "auto" is exhaustive for a small gallery, two-stage above the pair limit.
    assert evaluate_model(model, dataset) == exhaustive
    monkeypatch.setattr(evaluate, "AUTO_EXHAUSTIVE_PAIRS", 10)
    assert evaluate_model(model, dataset, rankings=("embedding", "csn"), shortlist=3) == short


def test_embedding_only_model_gives_only_the_embedding_ranking(dataset):
    model = MSReID.from_options(**{**TINY_MODEL, "levels": ()})
    results = evaluate_model(model, dataset, ranking="two-stage")
    assert list(results) == ["embedding"]


def test_bad_arguments_are_named(model, dataset):
    with pytest.raises(ValueError, match="rankings must be a non-empty subset of"):
        evaluate_model(model, dataset, rankings=("cosine",))
    with pytest.raises(ValueError, match="ranking must be one of \\('auto', 'exhaustive', 'two-stage'\\), got 'fast'"):
        evaluate_model(model, dataset, ranking="fast")


def test_a_compact_store_ranks_as_its_float_features(model, dataset, tmp_path):
    from keras_msreid.retrieval.extract import build_feature_store, store_codecs
    from keras_msreid.retrieval.ranking import rank_exhaustive

    path = tmp_path / "model.keras"
    model.save(path)
    store = build_feature_store(path, dataset.gallery, tmp_path / "store", batch_size=8, progress=False, model=model)
    codecs = store_codecs(model)
    assert store.codecs == codecs and codecs["embedding"].encoding == "float16"
    assert codecs["low_map"].encoding == "int4" and codecs["mid_map"].encoding == "int8"
    floats = extract_features(model.extractor(), dataset.gallery, model.image_size, progress=False)
    queries = extract_features(model.extractor(), dataset.query, model.image_size, progress=False, names=list(codecs))
    gallery = {name: store.features[name] for name in codecs}
    score_fn = keras_score_fn(model.scorer("shift_add"), batch_size=16)
    # The graph's decoding (bind) equals numpy's (np.take on the encoded feature).
    bound = rank_exhaustive(score_fn, queries, gallery)
    gathered = rank_exhaustive(lambda a, b: score_fn(a, b), queries, gallery)
    np.testing.assert_allclose(bound, gathered, atol=1e-5)
    # And both score as the float features do, up to the int8 / int4 rounding.
    exact = rank_exhaustive(score_fn, queries, {name: floats[name] for name in codecs})
    assert np.abs(bound - exact).max() < 0.02
    assert np.corrcoef(bound.ravel(), exact.ravel())[0, 1] > 0.99
    assert store.bytes_per_image < sum(floats[name][0].nbytes for name in codecs) / 3
