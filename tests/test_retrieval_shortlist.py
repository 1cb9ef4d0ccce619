"""EmbeddingIndex: numpy and FAISS backends give the same top-k, against a brute-force reference."""

import sys

import numpy as np
import pytest

from keras_msreid.retrieval import shortlist
from keras_msreid.retrieval.shortlist import EmbeddingIndex

needs_faiss = pytest.mark.skipif(not shortlist.faiss_available(), reason="faiss-cpu not installed")


def unit_rows(count, dim=16, seed=0):
    rows = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def brute_force_top_k(queries, gallery, k):
    """Per query: gallery indices by decreasing inner product, ties by index (a plain loop)."""
    indices = []
    for query in queries:
        scores = [float(np.dot(query.astype(np.float64), row)) for row in gallery]
        indices.append(sorted(range(len(gallery)), key=lambda j: (-scores[j], j))[:k])
    return np.array(indices)


def test_numpy_backend_matches_brute_force():
    gallery, queries = unit_rows(300), unit_rows(7, seed=1)
    similarities, indices = EmbeddingIndex(gallery, backend="numpy").search(queries, 25)
    np.testing.assert_array_equal(indices, brute_force_top_k(queries, gallery, 25))
    np.testing.assert_allclose(similarities, np.take_along_axis(queries @ gallery.T, indices, axis=1), rtol=1e-6)
    assert similarities.dtype == np.float32 and indices.dtype == np.int64


def test_numpy_backend_breaks_ties_by_gallery_order_and_caps_k():
    gallery = np.repeat(unit_rows(3), 2, axis=0)  # every row twice: rows 2i and 2i+1 tie
    queries = gallery[[4]]
    similarities, indices = EmbeddingIndex(gallery, backend="numpy").search(queries, 50)
    assert indices.shape == (1, 6)
    np.testing.assert_array_equal(indices[0, :2], [4, 5])
    np.testing.assert_array_equal(indices, brute_force_top_k(queries, gallery, 6))


def test_numpy_backend_is_blocked_over_queries(monkeypatch):
    monkeypatch.setattr(shortlist, "_BLOCK_ELEMENTS", 500)  # two queries per block of 300 gallery rows
    gallery, queries = unit_rows(300), unit_rows(9, seed=2)
    _, indices = EmbeddingIndex(gallery, backend="numpy").search(queries, 10)
    np.testing.assert_array_equal(indices, brute_force_top_k(queries, gallery, 10))


@needs_faiss
def test_faiss_flat_agrees_with_numpy():
    gallery, queries = unit_rows(500, dim=32), unit_rows(40, dim=32, seed=3)
    numpy_similarities, numpy_indices = EmbeddingIndex(gallery, backend="numpy").search(queries, 20)
    index = EmbeddingIndex(gallery, backend="faiss-flat")
    faiss_similarities, faiss_indices = index.search(queries, 20)
    np.testing.assert_array_equal(faiss_indices, numpy_indices)
    np.testing.assert_allclose(faiss_similarities, numpy_similarities, atol=1e-5)
    assert EmbeddingIndex(gallery).backend == "faiss-flat"


@needs_faiss
def test_faiss_hnsw_finds_nearly_all_exact_neighbours():
    gallery, queries = unit_rows(2000, dim=32), unit_rows(50, dim=32, seed=4)
    exact = brute_force_top_k(queries, gallery, 10)
    index = EmbeddingIndex(gallery, backend="auto", exact_limit=1000)
    assert index.backend == "faiss-hnsw"
    similarities, indices = index.search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(indices, exact)])
    assert recall >= 0.95
    assert np.all(np.diff(similarities, axis=1) <= 1e-6)  # best first


def test_auto_falls_back_to_numpy_without_faiss(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` now raises ImportError
    assert EmbeddingIndex(unit_rows(10)).backend == "numpy"
    with pytest.raises(ImportError, match="backend 'faiss-flat' needs faiss-cpu"):
        EmbeddingIndex(unit_rows(10), backend="faiss-flat")


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="backend must be one of"):
        EmbeddingIndex(unit_rows(4), backend="annoy")
    with pytest.raises(ValueError, match=r"non-empty \(images, dim\) matrix, got shape \(0, 16\)"):
        EmbeddingIndex(np.zeros((0, 16)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        EmbeddingIndex(np.full((2, 3), np.nan))
    index = EmbeddingIndex(unit_rows(4), backend="numpy")
    with pytest.raises(ValueError, match=r"queries must have shape \(num_queries, 16\), got \(2, 8\)"):
        index.search(np.zeros((2, 8)), 1)
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        index.search(unit_rows(1), 0)


@pytest.mark.parametrize("backend", ["numpy"] + (["faiss-flat", "faiss-hnsw"] if shortlist.faiss_available() else []))
def test_excluded_rows_are_never_returned_and_the_rest_rank_as_without_them(backend):
    gallery, queries = unit_rows(600, dim=16), unit_rows(20, dim=16, seed=5)
    excluded = np.arange(0, 600, 3)
    kept = np.setdiff1d(np.arange(600), excluded)
    index = EmbeddingIndex(gallery, backend=backend)
    _, indices = index.search(queries, 10, excluded=excluded)
    assert not np.isin(indices, excluded).any()
    exact = kept[brute_force_top_k(queries, gallery[kept], 10)]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(indices, exact)])
    assert recall == 1.0 if backend != "faiss-hnsw" else recall >= 0.95
    with pytest.raises(ValueError, match="every row of the index is excluded"):
        index.search(queries, 1, excluded=np.arange(600))
