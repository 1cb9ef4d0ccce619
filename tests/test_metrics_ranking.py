"""Tests for keras_msreid.metrics.ranking against slow per-query reference code."""

import json

import numpy as np
import pytest

from keras_msreid.metrics import RankingResult, evaluate_ranking


def reference_query_scores(distances, query_pid, query_camid, gallery_pids, gallery_camids,
                           higher_is_better=False):
    """Ranks of the correct matches of one query after dropping junk, best first."""
    order = np.argsort(-distances if higher_is_better else distances, kind="stable")
    kept_ranks_of_hits = []
    kept_count = 0
    for index in order:
        same_pid = gallery_pids[index] == query_pid
        if same_pid and gallery_camids[index] == query_camid:
            continue  # junk
        kept_count += 1
        if same_pid:
            kept_ranks_of_hits.append(kept_count)
    return kept_ranks_of_hits


def reference_scores_from_hit_ranks(hit_ranks, max_rank):
    cmc = np.array([1.0 if hit_ranks[0] <= k else 0.0 for k in range(1, max_rank + 1)])
    ap = np.mean([(n + 1) / rank for n, rank in enumerate(hit_ranks)])
    inp = len(hit_ranks) / hit_ranks[-1]
    return cmc, ap, inp


def reference_market1501(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=20,
                         higher_is_better=False):
    cmcs, aps, inps, skipped = [], [], [], 0
    for q in range(len(q_pids)):
        hit_ranks = reference_query_scores(
            distmat[q], q_pids[q], q_cams[q], g_pids, g_cams, higher_is_better
        )
        if not hit_ranks:
            skipped += 1
            continue
        cmc, ap, inp = reference_scores_from_hit_ranks(hit_ranks, max_rank)
        cmcs.append(cmc)
        aps.append(ap)
        inps.append(inp)
    return np.mean(cmcs, axis=0), np.mean(aps), np.mean(inps), len(aps), skipped


def reference_single_gallery_shot(distmat, q_pids, g_pids, q_cams, g_cams, max_rank, repeats, seed):
    num_query, num_gallery = distmat.shape
    generators = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(repeats)]
    by_identity = np.argsort(g_pids, kind="stable")
    priorities = []
    for generator in generators:
        priority = np.empty((num_query, num_gallery))
        priority[:, by_identity] = np.floor(generator.random((num_query, num_gallery)) * 2**31)
        priorities.append(priority)
    cmcs, aps, inps, skipped = [], [], [], 0
    for q in range(num_query):
        kept = [
            i for i in range(num_gallery)
            if not (g_pids[i] == q_pids[q] and g_cams[i] == q_cams[q])
        ]
        if not any(g_pids[i] == q_pids[q] for i in kept):
            skipped += 1
            continue
        ranked_position = np.argsort(np.argsort(distmat[q], kind="stable"), kind="stable")
        for priority in priorities:
            sampled = {}
            for i in kept:  # highest priority per identity, ties to the later-ranked one
                best = sampled.get(g_pids[i])
                if best is None or (priority[q, i], ranked_position[i]) > (
                    priority[q, best], ranked_position[best]
                ):
                    sampled[g_pids[i]] = i
            sampled_indices = np.array(sorted(sampled.values()))
            hit_ranks = reference_query_scores(
                distmat[q, sampled_indices], q_pids[q], q_cams[q],
                g_pids[sampled_indices], g_cams[sampled_indices],
            )
            cmc, ap, inp = reference_scores_from_hit_ranks(hit_ranks, max_rank)
            cmcs.append(cmc)
            aps.append(ap)
            inps.append(inp)
    return np.mean(cmcs, axis=0), np.mean(aps), np.mean(inps), len(aps) // repeats, skipped


def random_problem(seed, num_query=40, num_gallery=150, num_ids=12, num_cams=3, levels=None):
    """Random ids/cameras; `levels` rounds distances to few values to force ties."""
    rng = np.random.default_rng(seed)
    distmat = rng.random((num_query, num_gallery)).astype(np.float32)
    if levels is not None:
        distmat = np.round(distmat * levels).astype(np.float32)
    q_pids = rng.integers(0, num_ids + 3, num_query)  # some ids absent from the gallery
    g_pids = rng.integers(0, num_ids, num_gallery)
    q_cams = rng.integers(0, num_cams, num_query)
    g_cams = rng.integers(0, num_cams, num_gallery)
    return distmat, q_pids, g_pids, q_cams, g_cams


def assert_matches_reference(result, reference):
    cmc, mean_ap, mean_inp, num_queries, num_skipped = reference
    np.testing.assert_allclose(result.cmc, cmc, rtol=0, atol=1e-12)
    assert result.mAP == pytest.approx(mean_ap, abs=1e-12)
    assert result.mINP == pytest.approx(mean_inp, abs=1e-12)
    assert (result.num_queries, result.num_skipped) == (num_queries, num_skipped)


def test_hand_computed_single_query():
    # Ranked gallery: ids 2 (other), 1 (hit), 1 (junk: same camera), 3, 1 (hit).
    distmat = np.array([[0.4, 0.1, 0.5, 0.3, 0.2]])
    gallery_pids = np.array([1, 2, 3, 1, 1])
    gallery_camids = np.array([0, 1, 1, 1, 0])
    result = evaluate_ranking(distmat, [1], gallery_pids, [0], gallery_camids, max_rank=5)
    # Kept ranking: 2, 1(rank 2), 3, 1(rank 4) -> AP = (1/2 + 2/4) / 2, INP = 2/4.
    np.testing.assert_allclose(result.cmc, [0, 1, 1, 1, 1])
    assert result.mAP == pytest.approx(0.5)
    assert result.mINP == pytest.approx(0.5)
    assert (result.num_queries, result.num_skipped) == (1, 0)


def test_hand_computed_two_queries_and_a_skipped_one():
    distmat = np.array(
        [
            [0.1, 0.2, 0.3, 0.4],  # id 5: hits at ranks 1 and 3
            [0.4, 0.3, 0.2, 0.1],  # id 6: one hit at rank 3
            [0.1, 0.1, 0.1, 0.1],  # id 7: absent from the gallery
        ]
    )
    gallery_pids = [5, 6, 5, 9]
    result = evaluate_ranking(distmat, [5, 6, 7], gallery_pids, [0, 0, 0], [1, 1, 1, 1], max_rank=4)
    np.testing.assert_allclose(result.cmc, [0.5, 0.5, 1.0, 1.0])
    assert result.mAP == pytest.approx(((1 + 2 / 3) / 2 + 1 / 3) / 2)
    assert result.mINP == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert (result.num_queries, result.num_skipped) == (2, 1)
    assert result.as_dict() == {
        "rank1": 0.5, "mAP": pytest.approx(result.mAP), "mINP": pytest.approx(result.mINP),
        "num_queries": 2, "num_skipped": 1,
    }


def test_ties_resolve_by_gallery_order():
    distmat = np.zeros((1, 4), np.float32)
    result = evaluate_ranking(distmat, [1], [0, 1, 0, 1], [0], [1, 1, 1, 1], max_rank=4)
    np.testing.assert_allclose(result.cmc, [0, 1, 1, 1])  # hits at ranks 2 and 4
    assert result.mAP == pytest.approx((1 / 2 + 2 / 4) / 2)
    similarity = evaluate_ranking(distmat, [1], [0, 1, 0, 1], [0], [1, 1, 1, 1],
                                  max_rank=4, higher_is_better=True)
    np.testing.assert_allclose(similarity.cmc, result.cmc)


@pytest.mark.parametrize("levels", [None, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_market1501_matches_reference(seed, levels):
    problem = random_problem(seed, levels=levels)
    result = evaluate_ranking(*problem, max_rank=10)
    assert result.num_skipped > 0  # ids 12-14 exist only among queries
    assert_matches_reference(result, reference_market1501(*problem, max_rank=10))


def test_similarities_match_reference_and_negated_distances():
    distmat, *ids = random_problem(3, levels=5)
    similarity = evaluate_ranking(distmat, *ids, higher_is_better=True)
    assert_matches_reference(similarity, reference_market1501(distmat, *ids, higher_is_better=True))
    negated = evaluate_ranking(-distmat, *ids)
    np.testing.assert_array_equal(similarity.cmc, negated.cmc)
    assert similarity.mAP == negated.mAP


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.int16, np.float16, bool])
def test_dtypes_agree_with_float32_sort_keys(dtype):
    # Values exact in every dtype, with ties and negative zeros for the float path.
    distmat, *ids = random_problem(4, levels=3)
    signed = distmat - 1 if dtype is not bool else distmat > 1
    expected = evaluate_ranking(np.asarray(signed, np.float64), *ids)
    result = evaluate_ranking(np.asarray(signed).astype(dtype), *ids)
    assert_matches_reference(result, reference_market1501(np.asarray(signed, np.float64), *ids))
    np.testing.assert_array_equal(result.cmc, expected.cmc)


def test_negative_zero_ties_with_zero():
    distmat = np.array([[0.0, -0.0, 0.0]], np.float32)
    result = evaluate_ranking(distmat, [1], [0, 1, 1], [0], [1, 1, 1], max_rank=3)
    np.testing.assert_allclose(result.cmc, [0, 1, 1])
    assert result.mAP == pytest.approx((1 / 2 + 2 / 3) / 2)


@pytest.mark.parametrize("block", [1, 7, 1000])
def test_results_do_not_depend_on_query_block_size(block):
    problem = random_problem(5, levels=6)
    expected = evaluate_ranking(*problem)
    result = evaluate_ranking(*problem, query_block_size=block)
    np.testing.assert_array_equal(result.cmc, expected.cmc)
    assert result.mAP == pytest.approx(expected.mAP, abs=1e-12)
    assert result.mINP == pytest.approx(expected.mINP, abs=1e-12)


def test_cmc_beyond_gallery_size_is_flat():
    result = evaluate_ranking([[0.2, 0.1]], [3], [3, 4], [0], [1, 1], max_rank=5)
    np.testing.assert_allclose(result.cmc, [0, 1, 1, 1, 1])


def test_cuhk01_matches_market1501_when_cameras_are_disjoint():
    distmat, q_pids, g_pids, _, _ = random_problem(6, levels=8)
    q_cams = np.zeros_like(q_pids)
    g_cams = np.ones_like(g_pids)
    cuhk01 = evaluate_ranking(distmat, q_pids, g_pids, q_cams, g_cams, protocol="cuhk01")
    assert_matches_reference(cuhk01, reference_market1501(distmat, q_pids, g_pids, q_cams, g_cams))


@pytest.mark.parametrize("block", [None, 3])
@pytest.mark.parametrize("levels", [None, 3])
def test_single_gallery_shot_matches_reference(levels, block):
    problem = random_problem(7, num_query=12, num_gallery=60, num_ids=6, levels=levels)
    result = evaluate_ranking(
        *problem, protocol="cuhk03_sgs", repeats=3, seed=11, max_rank=8, query_block_size=block
    )
    assert_matches_reference(
        result, reference_single_gallery_shot(*problem, max_rank=8, repeats=3, seed=11)
    )


def test_single_gallery_shot_skips_queries_whose_identity_is_only_junk():
    # Identity 1 appears in the gallery only under the query's own camera.
    distmat = np.random.default_rng(10).random((3, 6))
    problem = (distmat, [1, 2, 3], [1, 1, 2, 2, 3, 3], [0, 0, 1], [0, 0, 0, 1, 0, 0])
    result = evaluate_ranking(*problem, protocol="cuhk03_sgs", repeats=4, max_rank=3)
    assert (result.num_queries, result.num_skipped) == (2, 1)
    assert_matches_reference(
        result, reference_single_gallery_shot(*map(np.asarray, problem), max_rank=3, repeats=4, seed=0)
    )


def test_single_gallery_shot_is_deterministic_by_seed():
    problem = random_problem(8, num_query=30, num_gallery=200, num_ids=10)
    first = evaluate_ranking(*problem, protocol="cuhk03_sgs", repeats=2, seed=1)
    again = evaluate_ranking(*problem, protocol="cuhk03_sgs", repeats=2, seed=1)
    other = evaluate_ranking(*problem, protocol="cuhk03_sgs", repeats=2, seed=2)
    np.testing.assert_array_equal(first.cmc, again.cmc)
    assert first.mAP == again.mAP
    assert first.mAP != other.mAP


def test_single_gallery_shot_equals_market1501_with_one_image_per_identity():
    rng = np.random.default_rng(9)
    distmat = rng.random((20, 15))
    q_pids = rng.integers(0, 15, 20)
    g_pids = np.arange(15)
    q_cams = np.zeros(20, int)
    g_cams = np.ones(15, int)
    market = evaluate_ranking(distmat, q_pids, g_pids, q_cams, g_cams)
    sgs = evaluate_ranking(distmat, q_pids, g_pids, q_cams, g_cams, protocol="cuhk03_sgs")
    np.testing.assert_allclose(sgs.cmc, market.cmc)
    assert sgs.mAP == pytest.approx(market.mAP)
    assert sgs.mINP == pytest.approx(market.mINP)


def test_result_accessors():
    result = RankingResult(cmc=np.linspace(0.5, 1, 20), mAP=np.float64(0.4), mINP=0.2,
                           num_queries=np.int64(7), num_skipped=1)
    assert result.rank(1) == 0.5 and result.rank(20) == 1.0
    summary = result.as_dict()
    assert list(summary) == ["rank1", "rank5", "rank10", "rank20", "mAP", "mINP",
                             "num_queries", "num_skipped"]
    assert json.loads(json.dumps(summary)) == summary
    with pytest.raises(ValueError, match=r"k must be between 1 and max_rank=20, got 21"):
        result.rank(21)
    with pytest.raises(ValueError, match="read-only"):
        result.cmc[0] = 0


def _valid_args():
    return dict(
        distmat=np.zeros((2, 3)), query_pids=[1, 2], gallery_pids=[1, 2, 3],
        query_camids=[0, 0], gallery_camids=[1, 1, 1],
    )


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"distmat": np.zeros(3)}, r"distmat must be a non-empty 2-D .* got shape \(3,\)"),
        ({"distmat": np.zeros((0, 3))}, r"distmat must be a non-empty 2-D"),
        ({"distmat": np.full((2, 3), np.nan)}, r"distmat contains NaN \(6 entries, first at \(0, 0\)\)"),
        ({"distmat": np.zeros((2, 3), complex)}, r"distmat must hold real numbers, got dtype complex128"),
        ({"query_pids": [1, 2, 3]}, r"query_pids must have shape \(2,\) to match the rows \(queries\) of distmat \(2, 3\), got shape \(3,\)"),
        ({"gallery_camids": [1, 1]}, r"gallery_camids must have shape \(3,\) to match the columns \(gallery\)"),
        ({"gallery_pids": [1.0, 2.0, 3.0]}, r"gallery_pids must hold integers, got dtype float64"),
        ({"protocol": "market"}, r"protocol must be one of \('market1501', 'cuhk01', 'cuhk03_sgs'\), got 'market'"),
        ({"protocol": "cuhk01", "query_camids": [0, 1]}, r"cameras \[1\] appear in both query_camids and gallery_camids"),
        ({"max_rank": 0}, r"max_rank must be a positive integer, got 0"),
        ({"repeats": 2.5}, r"repeats must be a positive integer, got 2.5"),
        ({"seed": None}, r"seed must be a non-negative integer, got None"),
        ({"query_block_size": True}, r"query_block_size must be a positive integer, got True"),
        ({"query_pids": [7, 8]}, r"no query has a correct match in the gallery \(all 2 queries skipped\)"),
    ],
)
def test_bad_input_raises_clear_errors(changes, message):
    args = {**_valid_args(), **changes}
    with pytest.raises(ValueError, match=message):
        evaluate_ranking(**args)
