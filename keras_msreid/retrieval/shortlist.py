"""Top-k search over unit embeddings: the first stage of two-stage ranking.

`EmbeddingIndex` ranks gallery embeddings by inner product (cosine similarity for
unit vectors) with one of three backends behind one interface:

- `"faiss-flat"`: exact search with FAISS `IndexFlatIP`;
- `"faiss-hnsw"`: approximate search with FAISS `IndexHNSWFlat` (inner product),
  for galleries too large for exact search;
- `"numpy"`: exact search by blocked matrix products and `argpartition`.

`backend="auto"` takes FAISS when it is importable (flat below `exact_limit`
gallery images, HNSW above) and numpy otherwise. TensorFlow-free.

Example:

>>> index = EmbeddingIndex(gallery_embeddings)          # (G, D), unit rows
>>> similarities, indices = index.search(query_embeddings, k=100)
>>> index.backend
'faiss-flat'
"""

import numpy as np

BACKENDS = ("auto", "numpy", "faiss-flat", "faiss-hnsw")

# Exact (flat) search up to this many images: at 1M it took 8.6 ms a query and found every
# true match, where HNSW at ef 512 took 2.8 ms and missed 1.3 % of them, at ef 128 6.3 %
# (docs/RESULTS.md, "A compact feature store"); HNSW above, at ef 512.
EXACT_LIMIT = 1_000_000
HNSW_EF_SEARCH = 512

# About 4 M similarities per block of queries keeps the numpy temporaries near 16 MB.
_BLOCK_ELEMENTS = 1 << 22


def faiss_available():
    """Whether `import faiss` works here."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


class EmbeddingIndex:
    """Inner-product top-k index over the rows of `embeddings` `(G, D)`.

    Args:
        embeddings: gallery embeddings, one row per image (unit L2 norm for cosine).
        backend: one of `BACKENDS`.
        exact_limit: with `"auto"` and FAISS, galleries of more images than this use
            HNSW (approximate) instead of exact flat search.
        hnsw_neighbors: HNSW graph degree `M`.
        hnsw_ef_search: HNSW search breadth; raised to `k` when `k` is larger.
    """

    def __init__(self, embeddings, backend="auto", exact_limit=EXACT_LIMIT, hnsw_neighbors=32,
                 hnsw_ef_search=HNSW_EF_SEARCH):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        embeddings = np.asarray(embeddings)
        if embeddings.ndim != 2 or embeddings.shape[0] == 0 or embeddings.shape[1] == 0:
            raise ValueError(f"embeddings must be a non-empty (images, dim) matrix, got shape {embeddings.shape}")
        if not np.all(np.isfinite(embeddings)):
            raise ValueError("embeddings contain NaN or infinite values")
        if backend == "auto":
            if faiss_available():
                backend = "faiss-hnsw" if embeddings.shape[0] > exact_limit else "faiss-flat"
            else:
                backend = "numpy"
        self.backend = backend
        self.size, self.dim = embeddings.shape
        self.hnsw_ef_search = int(hnsw_ef_search)
        if backend == "numpy":
            self._embeddings = embeddings.astype(np.float32, copy=False)
            return
        try:
            import faiss
        except ImportError as error:
            raise ImportError(f"backend {backend!r} needs faiss-cpu (pip install faiss-cpu)") from error
        if backend == "faiss-flat":
            self._index = faiss.IndexFlatIP(self.dim)
        else:
            self._index = faiss.IndexHNSWFlat(self.dim, int(hnsw_neighbors), faiss.METRIC_INNER_PRODUCT)
        self._index.add(np.ascontiguousarray(embeddings, dtype=np.float32))

    def add(self, embeddings):
        """Appends rows to the index (for an HNSW index, into its graph)."""
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[1] != self.dim:
            raise ValueError(f"embeddings must have shape (images, {self.dim}), got {embeddings.shape}")
        if not np.all(np.isfinite(embeddings)):
            raise ValueError("embeddings contain NaN or infinite values")
        if self.backend == "numpy":
            self._embeddings = np.concatenate([self._embeddings, embeddings])
        else:
            self._index.add(embeddings)
        self.size += len(embeddings)

    def to_bytes(self):
        """The FAISS index serialised (`from_bytes` reads it back); a numpy index has nothing to save."""
        if self.backend == "numpy":
            raise ValueError("a numpy index is rebuilt from its embeddings, not saved")
        import faiss

        return faiss.serialize_index(self._index).tobytes()

    @classmethod
    def from_bytes(cls, data, hnsw_ef_search=HNSW_EF_SEARCH):
        """An `EmbeddingIndex` from `to_bytes()` output."""
        import faiss

        index = cls.__new__(cls)
        index._index = faiss.deserialize_index(np.frombuffer(data, np.uint8))
        index.backend = "faiss-hnsw" if isinstance(index._index, faiss.IndexHNSW) else "faiss-flat"
        index.size, index.dim = int(index._index.ntotal), int(index._index.d)
        index.hnsw_ef_search = int(hnsw_ef_search)
        return index

    def search(self, queries, k, excluded=None):
        """The `k` most similar gallery rows of each query, most similar first.

        `excluded`: rows never returned (a store's removed images), skipped during
        the search itself (FAISS's ID selector), so that they cost nothing.

        Returns:
            `(similarities (Q, k) float32, indices (Q, k) int64)`; `k` is capped at
            the rows searched. Equal similarities keep gallery order with `"numpy"`.
        """
        queries = np.asarray(queries)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"queries must have shape (num_queries, {self.dim}), got {queries.shape}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        excluded = np.unique(np.asarray([] if excluded is None else excluded, np.int64))
        k = min(int(k), self.size - len(excluded))
        if k < 1:
            raise ValueError("every row of the index is excluded")
        if self.backend == "numpy":
            return _top_k(queries.astype(np.float32, copy=False), self._embeddings, k, excluded)
        import faiss

        params = None
        if len(excluded):
            selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(excluded))
            params = (faiss.SearchParametersHNSW(sel=selector) if self.backend == "faiss-hnsw"
                      else faiss.SearchParameters(sel=selector))
        if self.backend == "faiss-hnsw":
            self._index.hnsw.efSearch = max(self.hnsw_ef_search, k)
            if params is not None:
                params.efSearch = self._index.hnsw.efSearch
        similarities, indices = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), k, params=params)
        missing = np.nonzero((indices < 0).any(axis=1))[0]
        if missing.size:
            # HNSW can reach fewer than k nodes from its entry point; those rows fall back to exact search.
            similarities[missing], indices[missing] = self._search_exact(queries[missing], k, excluded)
        return similarities, indices.astype(np.int64, copy=False)

    def _search_exact(self, queries, k, excluded):
        embeddings = self._index.reconstruct_n(0, self.size)
        return _top_k(queries.astype(np.float32, copy=False), embeddings, k, excluded)


def _top_k(queries, embeddings, k, excluded=()):
    num_queries, size = queries.shape[0], embeddings.shape[0]
    similarities = np.empty((num_queries, k), np.float32)
    indices = np.empty((num_queries, k), np.int64)
    block = max(1, _BLOCK_ELEMENTS // size)
    for start in range(0, num_queries, block):
        rows = slice(start, start + block)
        scores = queries[rows] @ embeddings.T
        if len(excluded):
            scores[:, excluded] = -np.inf
        if k < size:
            # argpartition finds the top k unordered; sorting their indices first makes
            # the stable sort below break ties by gallery order.
            candidates = np.sort(np.argpartition(-scores, k - 1, axis=1)[:, :k], axis=1)
        else:
            candidates = np.broadcast_to(np.arange(size), scores.shape)
        values = np.take_along_axis(scores, candidates, axis=1)
        order = np.argsort(-values, axis=1, kind="stable")
        similarities[rows] = np.take_along_axis(values, order, axis=1)
        indices[rows] = np.take_along_axis(candidates, order, axis=1)
    return similarities, indices
