"""Pairwise euclidean or cosine distance between two feature sets, computed in row blocks.

```python
distmat = pairwise_distance(query_features, gallery_features, metric="cosine")
distmat.shape  # (len(query_features), len(gallery_features)), float32
```

Only the (len(a), len(b)) float32 result is allocated in full; the matrix product and
its temporaries exist for `block_size` rows of `a` at a time. Arithmetic runs in the
input precision (float32 for float32 features, float64 for float64 features). Euclidean
distances come from |x|^2 + |y|^2 - 2 x.y, so their absolute error is about
sqrt(eps) times the feature norm (after centring on the mean of `b`).
"""

import numpy as np

METRICS = ("euclidean", "cosine")


def pairwise_distance(a, b, metric="euclidean", block_size=1024):
    """Distances between the rows of `a` (N, D) and of `b` (M, D) as an (N, M) float32 array.

    Args:
        a, b: real feature matrices with the same number of columns; no NaN or inf.
        metric: `"euclidean"` (the L2 norm of the difference) or `"cosine"`
            (1 - cosine similarity, in [0, 2]).
        block_size: rows of `a` processed at once.

    Raises:
        ValueError: on bad shapes, non-finite values, an unknown metric, or a zero
            feature vector with the cosine metric.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    a = _check_features(a, "a")
    b = _check_features(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"a and b must have the same feature dimension, got a {a.shape} and b {b.shape}"
        )
    dtype = np.result_type(a, b, np.float32)
    a = a.astype(dtype, copy=False)
    b = b.astype(dtype, copy=False)

    if metric == "cosine":
        a = _unit_rows(a, "a")
        b = _unit_rows(b, "b")
    else:
        # Euclidean distance ignores a shared shift; centring shrinks the norms whose
        # squares cancel in |x|^2 + |y|^2 - 2 x.y (ReLU features share a large offset).
        center = b.mean(axis=0)
        a = a - center
        b = b - center
        b_squared_norms = np.einsum("ij,ij->i", b, b)
    distances = np.empty((len(a), len(b)), dtype=np.float32)
    for start in range(0, len(a), block_size):
        rows = a[start : start + block_size]
        products = rows @ b.T
        if metric == "cosine":
            distances[start : start + len(rows)] = 1.0 - products
        else:
            squared = np.einsum("ij,ij->i", rows, rows)[:, None] + b_squared_norms - 2.0 * products
            # Rounding can push the squared distance of near-identical rows below zero.
            distances[start : start + len(rows)] = np.sqrt(np.maximum(squared, 0.0))
    return distances


def _check_features(features, name):
    features = np.asarray(features)
    if features.ndim != 2 or 0 in features.shape:
        raise ValueError(
            f"{name} must be a non-empty 2-D (num_samples, dim) matrix, got shape {features.shape}"
        )
    if features.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {features.dtype}")
    if not np.isfinite(features).all():
        bad_row = int(np.flatnonzero(~np.isfinite(features).all(axis=1))[0])
        raise ValueError(f"{name} has NaN or inf values (first in row {bad_row})")
    return features


def _unit_rows(features, name):
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    zero_rows = np.flatnonzero(norms[:, 0] == 0)
    if len(zero_rows):
        raise ValueError(
            f"{name} has {len(zero_rows)} all-zero rows (first: row {zero_rows[0]}); "
            "cosine distance is undefined for them"
        )
    return features / norms
