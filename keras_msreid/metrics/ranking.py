"""CMC, mAP and mINP of a query x gallery distance matrix under the standard ReID protocols.

Definitions follow the Market-1501 / torchreid evaluation. Per query the gallery is
ranked by distance (ascending; descending with `higher_is_better=True` for
similarities) and the protocol's junk entries are removed:

- CMC: rank-k accuracy is 1 from the first correct match onwards.
- AP: the mean, over the correct matches, of the precision at their ranks.
- INP (Ye et al., "Deep Learning for Person Re-identification: A Survey and Outlook"):
  number of correct matches / rank of the hardest (last) correct match.

Equal distances keep gallery order (a stable sort): of two gallery images at the same
distance, the one with the smaller gallery index ranks first.

Protocols:

- `"market1501"`: drop gallery images with the query's identity *and* camera; a query
  with no correct match left is skipped and counted in `num_skipped`.
- `"cuhk01"`: camera-A queries against a camera-B gallery, so nothing is dropped; a
  query camera that also appears in the gallery is an error.
- `"cuhk03_sgs"`: single-gallery-shot. Same junk rule as Market-1501; then, in each of
  `repeats` rounds and for each query, one kept gallery image per identity is sampled
  (seeded) and CMC, AP and INP are computed on that sampled gallery and averaged over
  rounds. Sampling: every (query, gallery) pair gets the priority `floor(u * 2**31)`,
  with `u = rng.random()` drawn row-major over the queries x the gallery sorted by
  identity (a stable sort of `gallery_pids`), one generator per round from
  `np.random.SeedSequence(seed).spawn(repeats)`; each identity keeps its kept image of
  highest priority (equal priorities: the one ranked later).

Example:

```python
result = evaluate_ranking(distmat, q_pids, g_pids, q_camids, g_camids)
print(result.rank(1), result.mAP, result.as_dict())
```

The gallery of a block of queries is sorted at once (argsort dominates the cost);
everything else works on the sparse list of same-identity entries. The stable order
comes from sorting unique integer keys (`_sort_keys`), several times faster than
`np.argsort(kind="stable")`; values exact in float32 take the fastest path.
"""

import dataclasses

import numpy as np

from keras_msreid.metrics._sort_keys import stable_argsort_rows

PROTOCOLS = ("market1501", "cuhk01", "cuhk03_sgs")

# About 4 M distances per block of queries keeps the temporaries near 100 MB.
_BLOCK_ELEMENTS = 1 << 22


@dataclasses.dataclass(frozen=True, eq=False)
class RankingResult:
    """Averages over the evaluated (not skipped) queries.

    `cmc[k - 1]` is the rank-k accuracy in [0, 1]; `as_dict()` gives plain Python
    numbers for JSON.
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_queries: int
    num_skipped: int

    def __post_init__(self):
        cmc = np.array(self.cmc, dtype=np.float64)
        cmc.flags.writeable = False
        object.__setattr__(self, "cmc", cmc)

    def rank(self, k):
        """Rank-k accuracy, for 1 <= k <= max_rank."""
        if not 1 <= k <= len(self.cmc):
            raise ValueError(f"k must be between 1 and max_rank={len(self.cmc)}, got {k}")
        return float(self.cmc[k - 1])

    def as_dict(self):
        """rank1/5/10/20 (those within max_rank), mAP, mINP and the query counts."""
        summary = {f"rank{k}": self.rank(k) for k in (1, 5, 10, 20) if k <= len(self.cmc)}
        summary.update(
            mAP=float(self.mAP),
            mINP=float(self.mINP),
            num_queries=int(self.num_queries),
            num_skipped=int(self.num_skipped),
        )
        return summary


def evaluate_ranking(
    distmat,
    query_pids,
    gallery_pids,
    query_camids,
    gallery_camids,
    *,
    max_rank=20,
    protocol="market1501",
    higher_is_better=False,
    repeats=10,
    seed=0,
    query_block_size=None,
):
    """Evaluate a (num_query, num_gallery) distance or similarity matrix.

    Args:
        distmat: distances (or similarities with `higher_is_better=True`); no NaN.
        query_pids, gallery_pids: integer identities, one per row / column.
        query_camids, gallery_camids: integer cameras, one per row / column.
        max_rank: length of the returned CMC curve.
        protocol: one of `PROTOCOLS` (see the module docstring).
        repeats, seed: rounds and seed of the `"cuhk03_sgs"` sampling.
        query_block_size: queries ranked at once; by default about 4 M distances per
            block. Results do not depend on it.

    Returns:
        A `RankingResult`.

    Raises:
        ValueError: on inconsistent shapes, non-integer ids, NaN distances, an
            unknown protocol, or when no query has a correct match in the gallery.
    """
    distmat = _check_distmat(distmat)
    num_query, num_gallery = distmat.shape
    query_pids = _check_ids(query_pids, "query_pids", distmat.shape, axis=0)
    gallery_pids = _check_ids(gallery_pids, "gallery_pids", distmat.shape, axis=1)
    query_camids = _check_ids(query_camids, "query_camids", distmat.shape, axis=0)
    gallery_camids = _check_ids(gallery_camids, "gallery_camids", distmat.shape, axis=1)
    _check_protocol(protocol, query_camids, gallery_camids)
    _check_positive_int(max_rank, "max_rank")
    _check_positive_int(repeats, "repeats")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if query_block_size is None:
        query_block_size = max(1, _BLOCK_ELEMENTS // num_gallery)
    _check_positive_int(query_block_size, "query_block_size")

    totals = _Totals(max_rank)
    if protocol == "cuhk03_sgs":
        generators = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(repeats)]
        groups = _IdentityGroups(gallery_pids)
    for start in range(0, num_query, query_block_size):
        rows = slice(start, start + query_block_size)
        block = distmat[rows]
        order = stable_argsort_rows(-block if higher_is_better else block)  # best first
        queries = (order, query_pids[rows], query_camids[rows], gallery_pids, gallery_camids)
        if protocol == "cuhk03_sgs":
            _add_single_gallery_shot(totals, *queries, generators, groups)
        else:
            first, ap, inp, skipped = _all_gallery_scores(*queries)
            totals.add(first, ap, inp, weight=1.0)
            totals.num_skipped += skipped
    return totals.result(num_query)


def _check_protocol(protocol, query_camids, gallery_camids):
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if protocol == "cuhk01":
        shared = np.intersect1d(query_camids, gallery_camids)
        if shared.size:
            raise ValueError(
                "protocol 'cuhk01' compares camera-A queries with a camera-B gallery, "
                f"but cameras {shared.tolist()} appear in both query_camids and "
                "gallery_camids"
            )


class _Totals:
    """Running sums of the per-query scores; `weight` averages the sgs rounds."""

    def __init__(self, max_rank):
        self.max_rank = max_rank
        # first_rank_counts[r] counts queries whose first correct match is at rank r;
        # ranks past max_rank share the last bin.
        self.first_rank_counts = np.zeros(max_rank + 2)
        self.ap_sum = 0.0
        self.inp_sum = 0.0
        self.num_skipped = 0

    def add(self, first_ranks, ap, inp, weight):
        clipped = np.minimum(first_ranks, self.max_rank + 1)
        self.first_rank_counts += weight * np.bincount(clipped, minlength=self.max_rank + 2)
        self.ap_sum += weight * float(np.sum(ap))
        self.inp_sum += weight * float(np.sum(inp))

    def result(self, num_query):
        num_evaluated = num_query - self.num_skipped
        if num_evaluated == 0:
            raise ValueError(
                f"no query has a correct match in the gallery (all {num_query} queries "
                "skipped); check that query and gallery identities overlap"
            )
        cmc = np.cumsum(self.first_rank_counts[1 : self.max_rank + 1]) / num_evaluated
        return RankingResult(
            cmc=cmc,
            mAP=self.ap_sum / num_evaluated,
            mINP=self.inp_sum / num_evaluated,
            num_queries=num_evaluated,
            num_skipped=self.num_skipped,
        )


def _all_gallery_scores(order, query_pids, query_camids, gallery_pids, gallery_camids):
    """First-match rank, AP and INP of each query with a correct match, and the skip count.

    Works on the sparse same-identity entries: an entry's rank in the kept gallery is its
    sorted position minus the junk (same identity and camera) entries before it.
    """
    num_rows = len(query_pids)
    rows, positions = np.nonzero(gallery_pids[order] == query_pids[:, None])
    is_junk = gallery_camids[order[rows, positions]] == query_camids[rows]
    junk_before = np.cumsum(is_junk, dtype=np.intp) - is_junk
    junk_before -= junk_before[np.searchsorted(rows, rows)]  # count within the row only

    is_hit = ~is_junk
    hit_rows = rows[is_hit]
    hit_ranks = positions[is_hit] + 1 - junk_before[is_hit]
    num_hits = np.bincount(hit_rows, minlength=num_rows)
    row_starts = np.cumsum(num_hits) - num_hits
    evaluated = num_hits > 0

    hit_number = np.arange(len(hit_rows)) - row_starts[hit_rows] + 1
    precision_sum = np.bincount(hit_rows, weights=hit_number / hit_ranks, minlength=num_rows)
    num_hits = num_hits[evaluated]
    first_ranks = hit_ranks[row_starts[evaluated]]
    last_ranks = hit_ranks[row_starts[evaluated] + num_hits - 1]
    ap = precision_sum[evaluated] / num_hits
    inp = num_hits / last_ranks
    return first_ranks, ap, inp, int(num_rows - evaluated.sum())


class _IdentityGroups:
    """Gallery columns sorted by identity (stable), for per-identity maxima with `reduceat`."""

    def __init__(self, gallery_pids):
        self.column_order = np.argsort(gallery_pids, kind="stable")
        grouped = gallery_pids[self.column_order]
        self.starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
        self.pids = grouped[self.starts]

    def index_of(self, pids):
        """Group index of each pid, or -1 where the gallery lacks it."""
        index = np.minimum(np.searchsorted(self.pids, pids), len(self.pids) - 1)
        return np.where(self.pids[index] == pids, index, -1)


def _add_single_gallery_shot(
    totals, order, query_pids, query_camids, gallery_pids, gallery_camids, generators, groups
):
    """Add one block of queries under the single-gallery-shot protocol, all rounds.

    Each kept entry is packed as (priority << 32 | ranked position): the per-identity
    maximum then names both the sampled image and its position, so a round costs a few
    passes over the block plus work on (rows, identities) arrays.
    """
    num_rows, num_gallery = order.shape
    position = np.empty_like(order)
    np.put_along_axis(position, order, np.arange(num_gallery), axis=1)

    columns = groups.column_order  # identity-grouped column layout from here on
    position = position[:, columns].astype(np.int64)
    junk = (gallery_pids[columns] == query_pids[:, None]) & (
        gallery_camids[columns] == query_camids[:, None]
    )
    own_group = groups.index_of(query_pids)
    rows = np.arange(num_rows)
    has_kept = np.logical_or.reduceat(~junk, groups.starts, axis=1)  # (rows, identities)
    evaluated = (own_group >= 0) & has_kept[rows, own_group]
    totals.num_skipped += int(num_rows - evaluated.sum())
    rows, own_group = rows[evaluated], own_group[evaluated]

    for generator in generators:
        # Drawn for every row, skipped or not, so that results do not depend on blocks.
        draws = generator.random((num_rows, num_gallery))
        packed = ((draws * 2**31).astype(np.int64) << 32) | position
        packed[junk] = -1
        best = np.maximum.reduceat(packed, groups.starts, axis=1)  # -1: no kept image
        sampled_position = np.where(best >= 0, best & 0xFFFFFFFF, num_gallery)
        positive_position = sampled_position[rows, own_group]
        ranks = np.count_nonzero(sampled_position[rows] <= positive_position[:, None], axis=1)
        totals.add(ranks, 1.0 / ranks, 1.0 / ranks, weight=1.0 / len(generators))


def _check_distmat(distmat):
    distmat = np.asarray(distmat)
    if distmat.ndim != 2 or 0 in distmat.shape:
        raise ValueError(
            "distmat must be a non-empty 2-D (num_query, num_gallery) matrix, "
            f"got shape {distmat.shape}"
        )
    if distmat.dtype.kind not in "biuf":
        raise ValueError(f"distmat must hold real numbers, got dtype {distmat.dtype}")
    exact_in_float32 = np.can_cast(distmat.dtype, np.float32, casting="safe")
    distmat = distmat.astype(np.float32 if exact_in_float32 else np.float64, copy=False)
    nan_at = np.argwhere(np.isnan(distmat))
    if len(nan_at):
        raise ValueError(
            f"distmat contains NaN ({len(nan_at)} entries, first at {tuple(nan_at[0].tolist())})"
        )
    return distmat


def _check_ids(ids, name, distmat_shape, axis):
    ids = np.asarray(ids)
    expected = distmat_shape[axis]
    if ids.shape != (expected,):
        side = "rows (queries)" if axis == 0 else "columns (gallery)"
        raise ValueError(
            f"{name} must have shape ({expected},) to match the {side} of distmat "
            f"{distmat_shape}, got shape {ids.shape}"
        )
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {ids.dtype}")
    return ids.astype(np.int64, copy=False)


def _check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
