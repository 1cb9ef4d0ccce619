"""Exhaustive and two-stage ranking over a numpy score function, against plain-loop references."""

import dataclasses
import math
import statistics
import threading
import time

import numpy as np
import pytest

from keras_msreid.metrics import evaluate_ranking
from keras_msreid.retrieval.ranking import (
    ShortlistScores,
    combine_two_stage,
    embedding_similarity,
    fuse_scores,
    rank_exhaustive,
    rank_two_stage,
    row_statistics,
    sample_outside,
    score_logits,
    score_pairs,
    score_shortlist,
)
from keras_msreid.retrieval.shortlist import EmbeddingIndex


def features(count, seed):
    rng = np.random.default_rng(seed)
    embedding = rng.normal(size=(count, 8)).astype(np.float32)
    return {
        "embedding": embedding / np.linalg.norm(embedding, axis=1, keepdims=True),
        "map": rng.normal(size=(count, 3, 2, 4)).astype(np.float32),
    }


def bilinear_score(a, b):
    """A pair score in (0, 1) that is not a function of the embeddings alone."""
    return 1.0 / (1.0 + np.exp(-np.sum(a["map"] * b["map"], axis=(1, 2, 3)) / 4.0))


def cosine_score(a, b):
    """A pair score that ranks exactly as the embedding similarity does."""
    return 0.5 * (1.0 + np.sum(a["embedding"] * b["embedding"], axis=1))


def one_pair_at_a_time(score_fn, query, gallery):
    """Reference: every pair scored on its own."""
    scores = np.empty((len(query["map"]), len(gallery["map"])), np.float32)
    for i in range(scores.shape[0]):
        for j in range(scores.shape[1]):
            a = {name: value[i : i + 1] for name, value in query.items()}
            b = {name: value[j : j + 1] for name, value in gallery.items()}
            scores[i, j] = score_fn(a, b)[0]
    return scores


def test_exhaustive_equals_pair_by_pair_reference():
    query, gallery = features(5, 0), features(23, 1)
    expected = one_pair_at_a_time(bilinear_score, query, gallery)
    np.testing.assert_allclose(rank_exhaustive(bilinear_score, query, gallery, batch_size=7), expected, rtol=1e-6)


def test_score_fn_feature_names_limit_what_is_gathered():
    seen = []

    def score_fn(a, b):
        seen.append(sorted(a))
        return bilinear_score(a, b)

    score_fn.feature_names = ["map"]
    rank_exhaustive(score_fn, features(2, 0), features(3, 1))
    assert seen == [["map"]]


def test_thread_safe_score_fn_runs_on_several_workers_with_the_same_scores():
    query, gallery = features(5, 0), features(23, 1)
    threads = set()

    def score_fn(a, b):
        threads.add(threading.get_ident())
        time.sleep(0.01)  # long enough that a second worker takes the next batch
        return bilinear_score(a, b)

    score_fn.thread_safe = True
    expected = one_pair_at_a_time(bilinear_score, query, gallery)
    np.testing.assert_allclose(rank_exhaustive(score_fn, query, gallery, batch_size=4, workers=3), expected, rtol=1e-6)
    assert len(threads) > 1
    threads.clear()
    np.testing.assert_allclose(rank_exhaustive(score_fn, query, gallery, batch_size=4, workers=1), expected, rtol=1e-6)
    assert len(threads) == 1
    with pytest.raises(ValueError, match="workers must be >= 1"):
        rank_exhaustive(score_fn, query, gallery, workers=0)


def test_a_bound_score_fn_gathers_its_own_pairs():
    query, gallery = features(4, 6), features(9, 7)
    bound_to = []

    def score_fn(a, b):
        raise AssertionError("a score function with bind() is called through it")

    def bind(query_features, gallery_features):
        bound_to.append((query_features, gallery_features))
        return lambda query_index, gallery_index: bilinear_score(
            {"map": query_features["map"][query_index]}, {"map": gallery_features["map"][gallery_index]}
        )

    score_fn.bind = bind
    scores = rank_exhaustive(score_fn, query, gallery, batch_size=5)
    np.testing.assert_allclose(scores, one_pair_at_a_time(bilinear_score, query, gallery), rtol=1e-6)
    assert len(bound_to) == 1 and bound_to[0][0] is query  # bound once, not per batch
    with pytest.raises(ValueError, match="differ in length"):
        score_pairs(score_fn, query, gallery, [0, 1], [0])


def test_two_stage_with_whole_gallery_equals_exhaustive():
    query, gallery = features(6, 2), features(15, 3)
    exhaustive = rank_exhaustive(bilinear_score, query, gallery)
    np.testing.assert_allclose(rank_two_stage(bilinear_score, query, gallery, shortlist=15), exhaustive, rtol=1e-6)
    fused = rank_two_stage(bilinear_score, query, gallery, shortlist=40, fusion_weight=0.3)
    similarity = embedding_similarity(query["embedding"], gallery["embedding"])
    # (Row statistics summed in shortlist order, not gallery order: rounding apart.)
    np.testing.assert_allclose(fused, fuse_scores(exhaustive, similarity, 0.3), rtol=1e-6, atol=1e-6)


def test_sample_outside_draws_uniformly_from_outside_each_shortlist():
    shortlists = np.array([[3, 0, 7], [9, 8, 1], [4, 5, 6]])
    draws = sample_outside(shortlists, 10, 7000, np.random.default_rng(0))
    assert draws.shape == (3, 7000)
    for shortlist, row in zip(shortlists, draws):
        counts = np.bincount(row, minlength=10)
        assert not counts[shortlist].any()
        others = np.delete(counts, shortlist)
        assert np.abs(others - 1000).max() < 120  # 1000 expected each, std about 29
    assert sample_outside(shortlists, 10, 0, np.random.default_rng(0)).shape == (3, 0)


def test_shortlist_statistics_are_the_gallery_rows_when_the_tail_is_the_rest():
    query, gallery = features(5, 11), features(12, 12)
    exhaustive = one_pair_at_a_time(bilinear_score, query, gallery)
    similarity = embedding_similarity(query["embedding"], gallery["embedding"])
    indices = np.argsort(-similarity, axis=1)[:, :4]
    rest = np.array([np.setdiff1d(np.arange(12), row) for row in indices])
    shortlisted = ShortlistScores(similarity, indices, np.take_along_axis(exhaustive, indices, 1),
                                  np.take_along_axis(exhaustive, rest, 1))
    for estimate, exact in zip(shortlisted.gallery_logit_statistics(), row_statistics(score_logits(exhaustive))):
        np.testing.assert_allclose(estimate, exact, rtol=1e-9)
    fused = fuse_scores(exhaustive, similarity, 0.4)
    np.testing.assert_allclose(np.take_along_axis(shortlisted.ranking(0.4), indices, 1),
                               np.take_along_axis(fused, indices, 1), rtol=1e-5, atol=1e-6)


def test_two_stage_fusion_weighs_the_scores_as_exhaustive_fusion_does():
    query, gallery = features(8, 13), features(300, 14)
    exhaustive = fuse_scores(one_pair_at_a_time(bilinear_score, query, gallery),
                             embedding_similarity(query["embedding"], gallery["embedding"]), 0.5)
    shortlisted = score_shortlist(bilinear_score, query, gallery, shortlist=10, tail_sample=400)
    errors = {}
    for label, fused in (("sampled tail", shortlisted.ranking(0.5)),
                         ("shortlist only", dataclasses.replace(shortlisted, tail_scores=np.zeros((8, 0))).ranking(0.5))):
        errors[label] = np.abs(np.take_along_axis(fused - exhaustive, shortlisted.indices, 1)).max()
    # Standardised over its 10 candidates alone, a query's pair score counts for more.
    assert errors["sampled tail"] < 0.15 < 0.5 < errors["shortlist only"], errors


def test_two_stage_orders_shortlist_by_score_then_the_rest_by_similarity():
    query, gallery = features(4, 4), features(30, 5)
    k = 6
    scores = rank_two_stage(bilinear_score, query, gallery, shortlist=k, batch_size=5)
    exhaustive = one_pair_at_a_time(bilinear_score, query, gallery)
    for i in range(4):
        similarity = [float(np.dot(query["embedding"][i], row)) for row in gallery["embedding"]]
        by_similarity = sorted(range(30), key=lambda j: -similarity[j])
        shortlisted = sorted(by_similarity[:k], key=lambda j: -exhaustive[i, j])
        expected_order = shortlisted + by_similarity[k:]
        np.testing.assert_array_equal(np.argsort(-scores[i], kind="stable"), expected_order)
        np.testing.assert_allclose(scores[i, shortlisted], exhaustive[i, shortlisted], rtol=1e-6)


def test_two_stage_agrees_with_exhaustive_when_the_score_follows_the_embedding():
    rng = np.random.default_rng(6)
    query, gallery = features(10, 7), features(40, 8)
    q_pids, g_pids = rng.integers(0, 5, 10), rng.integers(0, 5, 40)
    q_cams, g_cams = np.zeros(10, int), np.ones(40, int)
    exhaustive = evaluate_ranking(rank_exhaustive(cosine_score, query, gallery), q_pids, g_pids, q_cams, g_cams,
                                  higher_is_better=True).as_dict()
    for k in (1, 5, 40):
        two_stage = rank_two_stage(cosine_score, query, gallery, shortlist=k,
                                   index=EmbeddingIndex(gallery["embedding"], backend="numpy"))
        result = evaluate_ranking(two_stage, q_pids, g_pids, q_cams, g_cams, higher_is_better=True).as_dict()
        assert result == pytest.approx(exhaustive)


def test_combine_puts_every_shortlisted_entry_above_the_rest():
    similarity = np.array([[0.9, -0.2, 0.5, 0.99]], np.float32)
    combined = combine_two_stage(similarity, np.array([[1, 2]]), np.array([[-7.0, 0.25]], np.float32))
    np.testing.assert_array_equal(np.argsort(-combined[0], kind="stable"), [2, 1, 3, 0])
    assert combined[0, [0, 3]].max() < -7.0


def test_fuse_scores_standardises_each_query_before_weighting():
    scores = np.array([[0.1, 0.5, 0.9], [0.3, 0.2, 0.7]])
    similarities = np.array([[0.95, 0.97, 0.96], [0.2, 0.9, 0.1]])
    # Reference, one query at a time with plain Python.
    for row in range(2):
        logits = [math.log(p / (1 - p)) for p in scores[row]]
        expected = [
            0.3 * (logit - statistics.fmean(logits)) / statistics.pstdev(logits)
            + 0.7 * (cosine - statistics.fmean(similarities[row])) / statistics.pstdev(similarities[row])
            for logit, cosine in zip(logits, similarities[row])
        ]
        np.testing.assert_allclose(fuse_scores(scores, similarities, 0.3)[row], expected, rtol=1e-5)
    # A cosine spread of 0.02 still counts as much as a score spread of 0.8 at weight 0.5.
    fused = fuse_scores(np.array([[0.9, 0.1]]), np.array([[0.95, 0.97]]), 0.5)
    np.testing.assert_allclose(fused, [[0.0, 0.0]], atol=1e-6)
    # Saturated scores and constant rows stay finite.
    assert np.isfinite(fuse_scores(np.array([[0.0, 1.0], [0.5, 0.5]]), np.ones((2, 2)), 0.5)).all()
    with pytest.raises(ValueError, match=r"fusion_weight must be in \[0, 1\], got 1.5"):
        fuse_scores(np.zeros((1, 1)), np.zeros((1, 1)), 1.5)
    with pytest.raises(ValueError, match="one shape"):
        fuse_scores(np.zeros((1, 2)), np.zeros((1, 3)), 0.5)


def test_bad_input_is_named():
    query, gallery = features(2, 0), features(3, 1)
    del gallery["map"]
    with pytest.raises(KeyError, match=r"gallery_features lack the features \['map'\]"):
        rank_exhaustive(bilinear_score, query, gallery)
    with pytest.raises(ValueError, match="query_features arrays differ in length"):
        rank_exhaustive(bilinear_score, {"embedding": np.zeros((2, 8)), "map": np.zeros((3, 1))}, features(3, 1))
    with pytest.raises(ValueError, match="score_fn returned 1 scores for 3 pairs"):
        rank_exhaustive(lambda a, b: np.zeros(1), features(1, 0), features(3, 1))


def test_scores_are_evaluated_by_the_datasets_own_protocol_unless_told():
    from keras_msreid.datasets import ImageRecord, ReIDDataset
    from keras_msreid.retrieval.evaluate import evaluate_scores

    # Query 0's only match shares its camera: Market-1501's rule drops it (the query is
    # skipped), CUHK01's keeps it; query 1 ranks its match second either way.
    query = [ImageRecord("q0", 0, 0), ImageRecord("q1", 1, 0)]
    gallery = [ImageRecord("g0", 0, 0), ImageRecord("g1", 1, 1), ImageRecord("g2", 2, 1)]
    scores = {"embedding": np.array([[0.9, 0.1, 0.2], [0.1, 0.5, 0.8]], np.float32)}
    market = ReIDDataset("folder", "/data", [], query, gallery)
    cuhk = ReIDDataset("cuhk", "/data", [], query, gallery, protocol="cuhk01")
    with pytest.raises(ValueError, match="camera"):  # CUHK01's rule: a query camera in the gallery is an error
        evaluate_scores(scores, cuhk)
    assert evaluate_scores(scores, market)["embedding"]["num_skipped"] == 1
    assert evaluate_scores(scores, market)["embedding"]["rank1"] == 0.0
    cuhk.gallery = [ImageRecord("g0", 0, 1), *gallery[1:]]
    assert evaluate_scores(scores, cuhk)["embedding"]["rank1"] == 0.5
    assert evaluate_scores(scores, cuhk, protocol="market1501")["embedding"]["num_skipped"] == 0
