"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with
k-reciprocal Encoding", CVPR 2017), with memory bounded by row blocks.

```python
q_g = pairwise_distance(query_features, gallery_features)
q_q = pairwise_distance(query_features, query_features)
g_g = pairwise_distance(gallery_features, gallery_features)
reranked = re_ranking(q_g, q_q, g_g, k1=20, k2=6, lambda_value=0.3)
result = evaluate_ranking(reranked, q_pids, g_pids, q_camids, g_camids)
```

The steps and their constants follow the authors' reference code. Over all N = Q + G
images, with squared distances divided by the largest distance of their row:

1. R(i, k): the k-reciprocal neighbours of i, those j among i's k + 1 nearest (i
   itself included) that have i among their own k + 1 nearest.
2. R*(i): R(i, k1) joined with R(j, round(k1 / 2)) for every j in R(i, k1) whose set
   shares more than two thirds of its members with R(i, k1).
3. V(i): weights exp(-d(i, j)) on R*(i), summing to one; then (if k2 > 1) V(i)
   replaced by the mean of V over i's k2 nearest neighbours (local query expansion).
4. Jaccard distance 1 - S / (2 - S) with S = sum_k min(V(i)[k], V(g)[k]), blended as
   (1 - lambda_value) * jaccard + lambda_value * normalised squared distance.

Nearest-neighbour ties resolve by index (a stable sort). `q_q_dist` and `g_g_dist` are
taken as symmetric, as distances are; the reference code then gives the same numbers.

Memory: the N x N float32 matrix of normalised squared distances (4 N^2 bytes) is the
one full-size array, besides the caller's inputs and the (Q, G) float32 result. Other
temporaries are bounded by `block_size` rows (about 40 * block_size * N bytes in the
neighbour search, 8 * block_size * G in the Jaccard step) and by the 2**20 sparse
entries joined at once (about 40 MiB). The encodings V stay sparse, at most
N * (k1 + 1) * (round(k1 / 2) + 2) entries before query expansion and k2 times that
after, usually far fewer, where the reference code holds several dense N x N arrays.
`benchmarks/bench_metrics.py` prints the traced peak next to 4 N^2 bytes.
"""

import numpy as np

from keras_msreid.metrics._sort_keys import row_order_from_keys, stable_row_keys

# Upper bound on the (query entry, gallery entry) pairs joined at once in the Jaccard step.
_JOIN_BUDGET = 1 << 20


def re_ranking(q_g_dist, q_q_dist, g_g_dist, k1=20, k2=6, lambda_value=0.3, block_size=256):
    """Re-ranked (num_query, num_gallery) float32 distances.

    Args:
        q_g_dist: (Q, G) query-gallery distances.
        q_q_dist: (Q, Q) query-query distances.
        g_g_dist: (G, G) gallery-gallery distances.
        k1: size of the k-reciprocal neighbourhoods.
        k2: neighbours averaged by local query expansion (1 turns it off).
        lambda_value: weight of the original distance in the blend, in [0, 1].
        block_size: rows processed at once; results do not depend on it.

    Raises:
        ValueError: on inconsistent shapes, non-finite distances or bad parameters.
    """
    q_g_dist, q_q_dist, g_g_dist = _check_distances(q_g_dist, q_q_dist, g_g_dist)
    for name, value in (("k1", k1), ("k2", k2), ("block_size", block_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f"lambda_value must be in [0, 1], got {lambda_value!r}")

    num_query, num_gallery = q_g_dist.shape
    dist = _normalised_squared_distances(q_g_dist, q_q_dist, g_g_dist, block_size)
    num_all = len(dist)
    neighbours = _nearest_neighbours(dist, min(max(k1 + 1, k2), num_all), block_size)
    reciprocal = _k_reciprocal(neighbours, k1, block_size)
    half_reciprocal = _k_reciprocal(neighbours, int(np.around(k1 / 2)), block_size)
    encoding = _expanded_encoding(dist, reciprocal, half_reciprocal, block_size)
    if k2 > 1:
        encoding = _query_expansion(encoding, neighbours[:, :k2], block_size)

    reranked = np.empty((num_query, num_gallery), dtype=np.float32)
    for rows, overlap in _gallery_overlaps(encoding, num_query, block_size):
        jaccard = 1.0 - overlap / (2.0 - overlap)
        reranked[rows] = (1.0 - lambda_value) * jaccard + lambda_value * dist[rows, num_query:]
    return reranked


class _SparseRows:
    """Row-sorted sparse matrix: entry e is (rows[e], columns[e], values[e])."""

    def __init__(self, rows, columns, values, num_rows):
        self.rows, self.columns, self.values = rows, columns, values
        self.indptr = np.r_[0, np.cumsum(np.bincount(rows, minlength=num_rows))]


def _check_distances(q_g_dist, q_q_dist, g_g_dist):
    checked = []
    for name, matrix in (("q_g_dist", q_g_dist), ("q_q_dist", q_q_dist), ("g_g_dist", g_g_dist)):
        matrix = np.asarray(matrix)
        if matrix.ndim != 2 or 0 in matrix.shape:
            raise ValueError(f"{name} must be a non-empty 2-D matrix, got shape {matrix.shape}")
        if matrix.dtype.kind not in "biuf":
            raise ValueError(f"{name} must hold real numbers, got dtype {matrix.dtype}")
        if not np.isfinite(matrix).all():
            raise ValueError(f"{name} has NaN or inf values")
        checked.append(matrix)
    num_query, num_gallery = checked[0].shape
    for name, matrix, size, side in (
        ("q_q_dist", checked[1], num_query, "queries"),
        ("g_g_dist", checked[2], num_gallery, "gallery images"),
    ):
        if matrix.shape != (size, size):
            raise ValueError(
                f"{name} must have shape ({size}, {size}) for the {size} {side} of "
                f"q_g_dist {checked[0].shape}, got {matrix.shape}"
            )
    return checked


def _normalised_squared_distances(q_g_dist, q_q_dist, g_g_dist, block_size):
    """The (N, N) float32 matrix of squared distances over queries then gallery, each row
    divided by its maximum."""
    num_query = len(q_q_dist)
    dist = np.empty((num_query + len(g_g_dist),) * 2, dtype=np.float32)
    dist[:num_query, :num_query] = q_q_dist
    dist[:num_query, num_query:] = q_g_dist
    dist[num_query:, :num_query] = q_g_dist.T
    dist[num_query:, num_query:] = g_g_dist
    for start in range(0, len(dist), block_size):
        block = dist[start : start + block_size]  # a view: updated in place
        np.square(block, out=block)
        row_max = block.max(axis=1, keepdims=True)
        block /= np.where(row_max > 0, row_max, 1)  # an all-zero row stays zero
    return dist


def _nearest_neighbours(dist, num_neighbours, block_size):
    """(N, num_neighbours) indices of each row's nearest columns, nearest first, ties by index."""
    neighbours = np.empty((len(dist), num_neighbours), dtype=np.intp)
    for start in range(0, len(dist), block_size):
        keys = stable_row_keys(dist[start : start + block_size])
        if num_neighbours < keys.shape[1]:
            keys = np.partition(keys, num_neighbours - 1, axis=1)[:, :num_neighbours]
        neighbours[start : start + block_size] = row_order_from_keys(np.sort(keys, axis=1))
    return neighbours


def _k_reciprocal(neighbours, k, block_size):
    """R(i, k) for every i as an (N, k + 1) index array in neighbour order, -1 where the
    forward neighbour is not reciprocal."""
    forward = neighbours[:, : k + 1]
    reciprocal = np.empty_like(forward)
    for start in range(0, len(forward), block_size):
        block = forward[start : start + block_size]
        own_index = np.arange(start, start + len(block))[:, None, None]
        is_reciprocal = np.any(forward[block] == own_index, axis=2)
        reciprocal[start : start + len(block)] = np.where(is_reciprocal, block, -1)
    return reciprocal


def _expanded_encoding(dist, reciprocal, half_reciprocal, block_size):
    """V: Gaussian weights on the expanded sets R*(i), normalised per row (sparse)."""
    parts = []
    for start in range(0, len(reciprocal), block_size):
        members = reciprocal[start : start + block_size]  # (B, k1 + 1)
        is_member = members >= 0
        candidates = np.where(is_member[:, :, None], half_reciprocal[np.maximum(members, 0)], -1)
        is_candidate = candidates >= 0  # (B, k1 + 1, half + 1)
        shared = np.any(candidates[..., None] == members[:, None, None, :], axis=3) & is_candidate
        # "more than 2/3 of the candidate set", in exact integer arithmetic
        accepted = 3 * shared.sum(axis=2) > 2 * is_candidate.sum(axis=2)
        expanded = np.concatenate(
            [members, np.where(accepted[:, :, None], candidates, -1).reshape(len(members), -1)],
            axis=1,
        )
        expanded.sort(axis=1)
        expanded[:, 1:][expanded[:, 1:] == expanded[:, :-1]] = -1  # drop repeats
        local_rows, slots = np.nonzero(expanded >= 0)
        rows = local_rows + start
        columns = expanded[local_rows, slots]
        weights = np.exp(-dist[rows, columns].astype(np.float64))
        weights /= np.bincount(local_rows, weights=weights, minlength=len(members))[local_rows]
        parts.append((rows, columns, weights))
    return _SparseRows(*(np.concatenate(p) for p in zip(*parts)), num_rows=len(reciprocal))


def _ragged_positions(starts, lengths):
    """Concatenation of arange(start, start + length) for each pair."""
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(lengths.sum())


def _query_expansion(encoding, expansion_neighbours, block_size):
    """V(i) replaced by the mean of V over the given neighbours of i (sparse)."""
    num_all, num_averaged = expansion_neighbours.shape
    parts = []
    for start in range(0, num_all, block_size):
        sources = expansion_neighbours[start : start + block_size].ravel()
        lengths = encoding.indptr[sources + 1] - encoding.indptr[sources]
        positions = _ragged_positions(encoding.indptr[sources], lengths)
        owners = np.repeat(np.arange(len(sources)) // num_averaged + start, lengths)
        keys = owners.astype(np.int64) * num_all + encoding.columns[positions]
        unique_keys, entry_of = np.unique(keys, return_inverse=True)
        sums = np.bincount(entry_of, weights=encoding.values[positions])
        parts.append((unique_keys // num_all, unique_keys % num_all, sums / num_averaged))
    return _SparseRows(*(np.concatenate(p) for p in zip(*parts)), num_rows=num_all)


def _gallery_overlaps(encoding, num_query, block_size):
    """Yield (rows, S) for blocks of query rows, S[q, g] = sum_k min(V(q)[k], V(g)[k])
    against every gallery image g.

    Joins each query entry (q, k) with the gallery entries of column k (an inverted
    index), so the work is proportional to the overlapping entries only.
    """
    num_all = len(encoding.indptr) - 1
    num_gallery = num_all - num_query
    gallery = slice(encoding.indptr[num_query], None)
    by_column = np.argsort(encoding.columns[gallery], kind="stable")
    gallery_rows = encoding.rows[gallery][by_column] - num_query
    gallery_values = encoding.values[gallery][by_column]
    column_counts = np.bincount(encoding.columns[gallery], minlength=num_all)
    column_starts = np.cumsum(column_counts) - column_counts

    query_entries = slice(0, encoding.indptr[num_query])
    join_sizes = column_counts[encoding.columns[query_entries]]
    join_per_query = np.bincount(encoding.rows[query_entries], weights=join_sizes, minlength=num_query)
    joined_before = np.r_[0, np.cumsum(join_per_query)]
    start = 0
    while start < num_query:
        # As many queries as fit the join budget (at least one) and block_size.
        within_budget = np.searchsorted(joined_before, joined_before[start] + _JOIN_BUDGET, "right") - 1
        stop = min(max(within_budget, start + 1), start + block_size)
        entries = slice(encoding.indptr[start], encoding.indptr[stop])
        columns = encoding.columns[entries]
        lengths = column_counts[columns]
        positions = _ragged_positions(column_starts[columns], lengths)
        local_rows = np.repeat(encoding.rows[entries] - start, lengths)
        smaller = np.minimum(np.repeat(encoding.values[entries], lengths), gallery_values[positions])
        overlap = np.bincount(
            local_rows * num_gallery + gallery_rows[positions],
            weights=smaller,
            minlength=(stop - start) * num_gallery,
        )
        yield slice(start, stop), overlap.reshape(stop - start, num_gallery)
        start = stop
