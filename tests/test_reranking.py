"""Tests for keras_msreid.metrics.re_ranking against a dense, loop-based reference."""

import numpy as np
import pytest

from keras_msreid.metrics import evaluate_ranking, pairwise_distance, re_ranking


def reference_re_ranking(q_g, q_q, g_g, k1=20, k2=6, lambda_value=0.3):
    """Zhong et al. step by step, with dense N x N encodings and plain loops."""
    num_query = len(q_q)
    dist = np.block([[q_q, q_g], [q_g.T, g_g]]).astype(np.float32) ** 2
    dist = dist / dist.max(axis=1, keepdims=True)
    num_all = len(dist)
    rank = np.argsort(dist, axis=1, kind="stable")

    def k_reciprocal(i, k):
        return [j for j in rank[i, : k + 1] if i in rank[j, : k + 1]]

    encoding = np.zeros((num_all, num_all))
    for i in range(num_all):
        members = k_reciprocal(i, k1)
        expanded = set(members)
        for j in members:
            candidates = k_reciprocal(j, int(np.around(k1 / 2)))
            if len(set(candidates) & set(members)) > 2 / 3 * len(candidates):
                expanded |= set(candidates)
        expanded = sorted(expanded)
        weights = np.exp(-dist[i, expanded].astype(np.float64))
        encoding[i, expanded] = weights / weights.sum()
    if k2 > 1:
        encoding = np.stack([encoding[rank[i, :k2]].mean(axis=0) for i in range(num_all)])

    jaccard = np.zeros((num_query, num_all))
    for i in range(num_query):
        for j in range(num_all):
            overlap = np.minimum(encoding[i], encoding[j]).sum()
            jaccard[i, j] = 1 - overlap / (2 - overlap)
    blended = (1 - lambda_value) * jaccard + lambda_value * dist[:num_query]
    return blended[:, num_query:]


def feature_distances(seed, num_query, num_gallery, dim=8, rounding=None):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(num_query + num_gallery, dim))
    query, gallery = features[:num_query], features[num_query:]
    q_g, q_q, g_g = (pairwise_distance(a, b).astype(np.float64) for a, b in
                     ((query, gallery), (query, query), (gallery, gallery)))
    if rounding is not None:  # few distinct values: many ties
        q_g, q_q, g_g = (np.round(d * rounding) for d in (q_g, q_q, g_g))
        q_q = np.minimum(q_q, q_q.T)
        g_g = np.minimum(g_g, g_g.T)
    return q_g, q_q, g_g


@pytest.mark.parametrize(
    "k1, k2, lambda_value, block_size",
    [(20, 6, 0.3, 256), (20, 6, 0.3, 7), (5, 3, 0.0, 4), (7, 1, 0.2, 256), (9, 2, 1.0, 3), (3, 5, 0.5, 1)],
)
def test_matches_reference(k1, k2, lambda_value, block_size):
    q_g, q_q, g_g = feature_distances(0, 9, 31)
    result = re_ranking(q_g, q_q, g_g, k1, k2, lambda_value, block_size=block_size)
    assert result.dtype == np.float32 and result.shape == (9, 31)
    expected = reference_re_ranking(q_g, q_q, g_g, k1, k2, lambda_value)
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)


def test_matches_reference_with_ties():
    q_g, q_q, g_g = feature_distances(1, 8, 25, rounding=2)
    result = re_ranking(q_g, q_q, g_g, k1=6, k2=3, block_size=5)
    np.testing.assert_allclose(result, reference_re_ranking(q_g, q_q, g_g, 6, 3), rtol=1e-5, atol=1e-6)


def test_k_larger_than_the_number_of_images():
    q_g, q_q, g_g = feature_distances(2, 3, 5)
    result = re_ranking(q_g, q_q, g_g, k1=20, k2=12)
    np.testing.assert_allclose(result, reference_re_ranking(q_g, q_q, g_g, 20, 12), rtol=1e-5, atol=1e-6)


def test_small_join_budget_gives_the_same_result(monkeypatch):
    q_g, q_q, g_g = feature_distances(3, 12, 40)
    expected = re_ranking(q_g, q_q, g_g, k1=8, k2=3)
    monkeypatch.setattr("keras_msreid.metrics.reranking._JOIN_BUDGET", 10)
    np.testing.assert_array_equal(re_ranking(q_g, q_q, g_g, k1=8, k2=3), expected)


def test_improves_map_when_neighbours_are_informative():
    # Each identity's images lie along a curved track whose far end is closer to other
    # identities than to the query: the gallery images are mutual neighbours along the
    # track, which is what k-reciprocal encoding exploits.
    rng = np.random.default_rng(4)
    num_ids, per_id = 20, 8
    centres = rng.normal(size=(num_ids, 16)) * 3.0
    drift = rng.normal(size=(num_ids, 16))
    steps = np.arange(per_id + 1)[None, :, None]
    features = centres[:, None] + steps * drift[:, None] + rng.normal(size=(num_ids, per_id + 1, 16)) * 0.5
    query = features[:, 0]
    gallery = features[:, 1:].reshape(-1, 16)
    q_pids, g_pids = np.arange(num_ids), np.repeat(np.arange(num_ids), per_id)
    q_cams, g_cams = np.zeros(num_ids, int), np.ones(num_ids * per_id, int)
    q_g, q_q, g_g = (pairwise_distance(a, b) for a, b in
                     ((query, gallery), (query, query), (gallery, gallery)))
    before = evaluate_ranking(q_g, q_pids, g_pids, q_cams, g_cams)
    after = evaluate_ranking(re_ranking(q_g, q_q, g_g, k1=10, k2=3), q_pids, g_pids, q_cams, g_cams)
    assert after.mAP > before.mAP + 0.2  # about 0.48 -> 0.82 here


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(q_g_dist=np.zeros(4)), r"q_g_dist must be a non-empty 2-D matrix, got shape \(4,\)"),
        (dict(q_q_dist=np.zeros((2, 3))), r"q_q_dist must have shape \(2, 2\) for the 2 queries of q_g_dist \(2, 3\), got \(2, 3\)"),
        (dict(g_g_dist=np.zeros((2, 2))), r"g_g_dist must have shape \(3, 3\) for the 3 gallery images"),
        (dict(g_g_dist=np.full((3, 3), np.inf)), r"g_g_dist has NaN or inf values"),
        (dict(q_q_dist=np.zeros((2, 2), complex)), r"q_q_dist must hold real numbers, got dtype complex128"),
        (dict(k1=0), r"k1 must be a positive integer, got 0"),
        (dict(k2=2.0), r"k2 must be a positive integer, got 2.0"),
        (dict(block_size=None), r"block_size must be a positive integer, got None"),
        (dict(lambda_value=1.5), r"lambda_value must be in \[0, 1\], got 1.5"),
    ],
)
def test_bad_input_raises_clear_errors(changes, message):
    args = {"q_g_dist": np.ones((2, 3)), "q_q_dist": np.ones((2, 2)), "g_g_dist": np.ones((3, 3)), **changes}
    with pytest.raises(ValueError, match=message):
        re_ranking(**args)
