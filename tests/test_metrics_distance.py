"""Tests for keras_msreid.metrics.pairwise_distance against per-pair reference loops."""

import numpy as np
import pytest

from keras_msreid.metrics import pairwise_distance


def reference_distance(a, b, metric):
    out = np.empty((len(a), len(b)))
    for i, x in enumerate(np.asarray(a, np.float64)):
        for j, y in enumerate(np.asarray(b, np.float64)):
            if metric == "euclidean":
                out[i, j] = np.sqrt(np.sum((x - y) ** 2))
            else:
                out[i, j] = 1 - np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y))
    return out


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("block_size", [1, 4, 1024])
def test_matches_reference(metric, block_size):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(9, 16)).astype(np.float32)
    b = rng.normal(size=(13, 16)).astype(np.float32)
    distances = pairwise_distance(a, b, metric=metric, block_size=block_size)
    assert distances.dtype == np.float32 and distances.shape == (9, 13)
    np.testing.assert_allclose(distances, reference_distance(a, b, metric), rtol=1e-5, atol=1e-5)


def test_float64_features_are_computed_in_float64():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(5, 8)) * 1e3
    b = a + 1e-3 * rng.normal(size=(5, 8))  # float32 would lose these in cancellation
    np.testing.assert_allclose(
        np.diag(pairwise_distance(a, b)), np.diag(reference_distance(a, b, "euclidean")), rtol=1e-2
    )


def test_identical_rows_have_near_zero_distance():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(6, 32)).astype(np.float32) * 100
    euclidean = pairwise_distance(a, a)
    assert (euclidean >= 0).all()
    norms = np.linalg.norm(a, axis=1)
    assert (np.diag(euclidean) <= 1e-3 * norms).all()  # about sqrt(eps) * norm
    np.testing.assert_allclose(np.diag(pairwise_distance(a, a, metric="cosine")), 0, atol=1e-6)


def test_shared_offset_does_not_cost_precision():
    # ReLU-like features with a large common offset: centring keeps the error small.
    rng = np.random.default_rng(3)
    a = (1000 + rng.normal(size=(6, 32))).astype(np.float32)
    b = a + np.float32(0.01)
    expected = np.sqrt(32) * 0.01
    np.testing.assert_allclose(np.diag(pairwise_distance(a, b)), expected, rtol=0.05)


def test_integer_features_are_accepted():
    np.testing.assert_allclose(pairwise_distance([[0, 0]], [[3, 4], [0, 0]]), [[5, 0]])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(a=np.zeros(3)), r"a must be a non-empty 2-D \(num_samples, dim\) matrix, got shape \(3,\)"),
        (dict(b=np.zeros((0, 4))), r"b must be a non-empty 2-D \(num_samples, dim\) matrix, got shape \(0, 4\)"),
        (dict(b=np.zeros((2, 5))), r"a and b must have the same feature dimension, got a \(2, 4\) and b \(2, 5\)"),
        (dict(b=np.array([[1, 2, 3, np.inf], [0, 0, 0, 1.0]])), r"b has NaN or inf values \(first in row 0\)"),
        (dict(a=np.array([["x"] * 4] * 2)), r"a must hold real numbers, got dtype <U1"),
        (dict(metric="l1"), r"metric must be one of \('euclidean', 'cosine'\), got 'l1'"),
        (dict(block_size=0), r"block_size must be a positive integer, got 0"),
        (dict(metric="cosine", b=np.array([[1.0, 0, 0, 0], [0, 0, 0, 0]])),
         r"b has 1 all-zero rows \(first: row 1\); cosine distance is undefined"),
    ],
)
def test_bad_input_raises_clear_errors(kwargs, message):
    args = {"a": np.ones((2, 4)), "b": np.ones((3, 4)), **kwargs}
    with pytest.raises(ValueError, match=message):
        pairwise_distance(**args)
