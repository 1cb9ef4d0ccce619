"""Ranking a gallery for each query: by embedding, exhaustively by pair score, or in two stages.

A *score function* (the `ScoreFn` protocol) takes two dicts of per-image features
whose rows are aligned pairs (row `i` of `a` meets row `i` of `b`) and returns one
score per pair, higher meaning more similar. Three implement it: `keras_score_fn`
(a Keras scorer), `edge_demo.reid_models.ReIDModels.score` (an exported LiteRT
scorer, as the device runs it; `export.validate` ranks with it) and any callable
of that shape. Optional attributes make it faster:

- `feature_names`: only those features are gathered per pair;
- `bind(query_features, gallery_features)`: returns `(query_index, gallery_index)
  -> scores`, for a score function that gathers the pairs itself (the Keras one
  does so inside its compiled graph, which saves copying every pair's features);
- `thread_safe`: batches of pairs are scored on one thread per CPU core at once.

- `rank_exhaustive`: scores every query x gallery pair.
- `rank_two_stage`: shortlists the `shortlist` nearest gallery images of each query
  by embedding (`EmbeddingIndex`), scores only those pairs, and ranks every other
  gallery image strictly below them, by embedding similarity.
- `score_shortlist`: the scoring half of `rank_two_stage`, as `ShortlistScores`
  (which also gives the fused ranking without scoring again).
- `fuse_scores`: `w * z(logit(score)) + (1 - w) * z(cosine)`, the pair score and
  the embedding similarity each standardised over a query's gallery.

All functions return `(num_queries, num_gallery)` float32 matrices, higher is better
(`evaluate_ranking(..., higher_is_better=True)`). TensorFlow-free.

Example:

>>> scores = rank_two_stage(score_fn, query_features, gallery_features, shortlist=100)
>>> result = evaluate_ranking(scores, q_pids, g_pids, q_camids, g_camids, higher_is_better=True)
"""

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, runtime_checkable

import numpy as np

from keras_msreid.retrieval.progress import Progress
from keras_msreid.retrieval.shortlist import EmbeddingIndex


@runtime_checkable
class ScoreFn(Protocol):
    """Scores `(N,)` of N aligned pairs: row i of `features_a` against row i of `features_b`."""

    def __call__(self, features_a: dict, features_b: dict) -> np.ndarray: ...


# Pairs gathered per score_fn call: about 14 MB of features at the default model size,
# small enough to stay in a CPU's last-level cache between the gather and the scorer.
DEFAULT_PAIR_BATCH = 64
# Gallery images outside the shortlist scored per query when two-stage ranking fuses, to
# estimate the pair score's spread over the whole gallery (`ShortlistScores`).
DEFAULT_TAIL_SAMPLE = 16
# Pairs indexed at once by `rank_exhaustive` (16 MB of indices).
EXHAUSTIVE_BLOCK_PAIRS = 1 << 20


def embedding_similarity(query_embeddings, gallery_embeddings):
    """Cosine similarity `(Q, G)` float32 of unit embeddings (their inner products)."""
    query_embeddings = np.asarray(query_embeddings, np.float32)
    gallery_embeddings = np.asarray(gallery_embeddings, np.float32)
    if query_embeddings.ndim != 2 or gallery_embeddings.ndim != 2 or query_embeddings.shape[1] != gallery_embeddings.shape[1]:
        raise ValueError(
            f"embeddings must be (images, dim) matrices of the same dim, got {query_embeddings.shape} "
            f"and {gallery_embeddings.shape}"
        )
    return query_embeddings @ gallery_embeddings.T


def fuse_scores(scores, similarities, fusion_weight, score_statistics=None, similarity_statistics=None):
    """`fusion_weight * z(logit(scores)) + (1 - fusion_weight) * z(similarities)`, row by row.

    `z` standardises each row (one query's candidates) to mean 0 and standard
    deviation 1, so that the weight means what it says: unit cosines of a trained
    embedding span a few hundredths while pair scores span most of [0, 1], and a
    plain weighted sum ranked by the pair score alone. Pair scores are taken as
    logits (clipped to [1e-6, 1 - 1e-6] first), where sigmoid saturation does not
    squash the differences among the best candidates.

    `score_statistics` (of the logits) and `similarity_statistics`, each a `(mean,
    std)` pair of `(Q, 1)` arrays, standardise with those of a larger candidate set
    than the columns given: two-stage ranking passes the whole gallery's.
    """
    if not 0.0 <= fusion_weight <= 1.0:
        raise ValueError(f"fusion_weight must be in [0, 1], got {fusion_weight}")
    scores = np.asarray(scores, np.float64)
    similarities = np.asarray(similarities, np.float64)
    if scores.shape != similarities.shape or scores.ndim != 2:
        raise ValueError(f"scores and similarities must be (queries, candidates) matrices of one shape, got "
                         f"{scores.shape} and {similarities.shape}")
    logits = score_logits(scores)
    fused = fusion_weight * _standardize_rows(logits, score_statistics or row_statistics(logits))
    fused += (1.0 - fusion_weight) * _standardize_rows(similarities, similarity_statistics or row_statistics(similarities))
    return fused.astype(np.float32)


def score_logits(scores):
    """`log(p / (1 - p))` of pair scores, clipped to [1e-6, 1 - 1e-6] first."""
    scores = np.clip(np.asarray(scores, np.float64), 1e-6, 1.0 - 1e-6)
    return np.log(scores) - np.log1p(-scores)


def row_statistics(matrix):
    """`(mean, std)` of each row, as `(Q, 1)` float64 arrays."""
    return matrix.mean(axis=1, keepdims=True, dtype=np.float64), matrix.std(axis=1, keepdims=True, dtype=np.float64)


def _standardize_rows(matrix, statistics):
    mean, spread = statistics
    return (matrix - mean) / np.where(spread > 0, spread, 1.0)


def score_pairs(score_fn, query_features, gallery_features, query_index, gallery_index,
                batch_size=DEFAULT_PAIR_BATCH, progress=None, workers=None):
    """Scores of the pairs `(query_index[i], gallery_index[i])`, `batch_size` pairs per call.

    `workers` threads score batches at once; the default is one per CPU core for a
    `thread_safe` score function and one otherwise.
    """
    score_indexed = _bind_score_fn(score_fn, query_features, gallery_features)
    return _score_indexed_pairs(score_fn, score_indexed, query_index, gallery_index, batch_size, progress, workers)


def _bind_score_fn(score_fn, query_features, gallery_features):
    """`(query_index, gallery_index) -> scores` of `score_fn` over two sets of features."""
    names = _feature_names(score_fn, query_features, gallery_features)
    if hasattr(score_fn, "bind"):
        return score_fn.bind(query_features, gallery_features)

    def gather_and_score(query_index, gallery_index):
        a = {name: np.take(query_features[name], query_index, axis=0) for name in names}
        b = {name: np.take(gallery_features[name], gallery_index, axis=0) for name in names}
        return score_fn(a, b)

    return gather_and_score


def _score_indexed_pairs(score_fn, score_indexed, query_index, gallery_index, batch_size, progress, workers):
    query_index = np.asarray(query_index, np.int64)
    gallery_index = np.asarray(gallery_index, np.int64)
    if len(query_index) != len(gallery_index):
        raise ValueError(f"query_index and gallery_index differ in length: {len(query_index)} and {len(gallery_index)}")
    if workers is None:
        workers = (os.cpu_count() or 1) if getattr(score_fn, "thread_safe", False) else 1
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    scores = np.empty(len(query_index), np.float32)

    def score_batch(start):
        rows = slice(start, start + batch_size)
        queries, galleries = query_index[rows], gallery_index[rows]
        batch_scores = np.asarray(score_indexed(queries, galleries), np.float32).reshape(-1)
        if batch_scores.shape[0] != len(queries):
            raise ValueError(f"score_fn returned {batch_scores.shape[0]} scores for {len(queries)} pairs")
        scores[rows] = batch_scores
        return len(batch_scores)

    starts = range(0, len(query_index), batch_size)
    if workers == 1:
        counts = map(score_batch, starts)
    else:
        executor = ThreadPoolExecutor(workers, thread_name_prefix="score_pairs")
        counts = executor.map(score_batch, starts)
    try:
        for count in counts:
            if progress is not None:
                progress.update(count)
    finally:
        if workers > 1:
            executor.shutdown(cancel_futures=True)
    return scores


def rank_exhaustive(score_fn, query_features, gallery_features, batch_size=DEFAULT_PAIR_BATCH, progress=False,
                    workers=None):
    """Scores `(Q, G)` of every query x gallery pair."""
    num_query = _count(query_features, "query_features")
    num_gallery = _count(gallery_features, "gallery_features")
    score_indexed = _bind_score_fn(score_fn, query_features, gallery_features)
    meter = Progress(num_query * num_gallery, "scoring pairs", enabled=progress, unit="pairs")
    scores = np.empty((num_query, num_gallery), np.float32)
    queries_per_block = max(1, EXHAUSTIVE_BLOCK_PAIRS // num_gallery)
    for start in range(0, num_query, queries_per_block):
        queries = np.arange(start, min(start + queries_per_block, num_query))
        block = _score_indexed_pairs(
            score_fn, score_indexed, np.repeat(queries, num_gallery), np.tile(np.arange(num_gallery), len(queries)),
            batch_size, meter, workers,
        )
        scores[queries] = block.reshape(len(queries), num_gallery)
    meter.close()
    return scores


def shortlist_gallery(query_embeddings, index, shortlist):
    """Indices `(Q, K)` of each query's `shortlist` nearest gallery images, nearest first."""
    _, indices = index.search(query_embeddings, shortlist)
    return indices


def combine_two_stage(similarities, shortlist_indices, shortlist_scores):
    """`(Q, G)` scores: the shortlist's scores, every other image below all of them by similarity.

    Non-shortlisted entries get `similarity + offset` with an offset that puts the
    largest of them 2 below the smallest shortlisted score.
    """
    similarities = np.asarray(similarities, np.float32)
    shortlist_scores = np.asarray(shortlist_scores, np.float32)
    offset = min(float(shortlist_scores.min()), 0.0) - 3.0
    combined = similarities + np.float32(offset)
    np.put_along_axis(combined, shortlist_indices, shortlist_scores, axis=1)
    return combined


@dataclasses.dataclass(frozen=True)
class ShortlistScores:
    """Pair scores of each query's shortlist, and of a random sample of the rest of the gallery.

    `ranking(fusion_weight)` turns them into a `(Q, G)` matrix. Fused, both scores
    are standardised over the whole gallery row, as `fuse_scores` does over an
    exhaustive one: the cosine's row statistics are exact (every similarity is
    known), the pair score logit's are estimated by strata, exactly over the K
    shortlisted images and from the `tail_scores` sample over the other G - K.
    (Standardised over the shortlist alone, the pair score weighed more against
    the cosine than exhaustively; see docs/RESULTS.md.)

    Attributes:
        similarities: `(Q, G)` embedding cosines.
        indices: `(Q, K)` shortlisted gallery indices, nearest first.
        scores: `(Q, K)` their pair scores.
        tail_scores: `(Q, S)` pair scores of S gallery images drawn uniformly, with
            replacement, from outside each query's shortlist (S may be 0).
    """

    similarities: np.ndarray
    indices: np.ndarray
    scores: np.ndarray
    tail_scores: np.ndarray

    def ranking(self, fusion_weight=1.0):
        """`(Q, G)` scores, higher is better: the shortlist by (fused) pair score, the rest below by cosine."""
        if fusion_weight == 1.0:
            return combine_two_stage(self.similarities, self.indices, self.scores)
        fused = fuse_scores(
            self.scores, np.take_along_axis(self.similarities, self.indices, axis=1), fusion_weight,
            score_statistics=self.gallery_logit_statistics(), similarity_statistics=row_statistics(self.similarities),
        )
        return combine_two_stage(self.similarities, self.indices, fused)

    def gallery_logit_statistics(self):
        """`(mean, std)` `(Q, 1)` of the pair score logits over each query's whole gallery (estimated)."""
        num_gallery, shortlist = self.similarities.shape[1], self.indices.shape[1]
        head = score_logits(self.scores)
        if shortlist == num_gallery or self.tail_scores.shape[1] == 0:
            return row_statistics(head)
        tail = score_logits(self.tail_scores)
        head_share = shortlist / num_gallery
        mean = head_share * head.mean(1, keepdims=True) + (1 - head_share) * tail.mean(1, keepdims=True)
        second_moment = head_share * np.mean(head**2, 1, keepdims=True) + (1 - head_share) * np.mean(tail**2, 1, keepdims=True)
        return mean, np.sqrt(np.maximum(second_moment - mean**2, 0.0))


def score_shortlist(score_fn, query_features, gallery_features, shortlist=100, index=None,
                    tail_sample=DEFAULT_TAIL_SAMPLE, seed=0, batch_size=DEFAULT_PAIR_BATCH, progress=False,
                    workers=None, similarities=None):
    """Two-stage ranking's scoring: each query's `shortlist` nearest gallery images by embedding,
    and `tail_sample` random others, scored by `score_fn`; a `ShortlistScores`.

    `tail_sample` only serves the fusion (`ShortlistScores.ranking(w)` with w < 1);
    pass 0 to rank by pair score alone. `seed` draws the sample. `similarities`: the
    `(Q, G)` `embedding_similarity` of the two sets, when the caller already has it.
    """
    num_query = _count(query_features, "query_features")
    num_gallery = _count(gallery_features, "gallery_features")
    if shortlist < 1 or tail_sample < 0:
        raise ValueError(f"shortlist must be >= 1 and tail_sample >= 0, got {shortlist} and {tail_sample}")
    if index is None:
        index = EmbeddingIndex(gallery_features["embedding"])
    if similarities is None:
        similarities = embedding_similarity(query_features["embedding"], gallery_features["embedding"])
    indices = shortlist_gallery(query_features["embedding"], index, shortlist)  # K capped at G
    k = indices.shape[1]
    tail = sample_outside(indices, num_gallery, tail_sample if k < num_gallery else 0, np.random.default_rng(seed))
    candidates = np.concatenate([indices, tail], axis=1)
    meter = Progress(candidates.size, "scoring shortlist", enabled=progress, unit="pairs")
    scores = score_pairs(score_fn, query_features, gallery_features, np.repeat(np.arange(num_query), candidates.shape[1]),
                         candidates.reshape(-1), batch_size, meter, workers).reshape(candidates.shape)
    meter.close()
    return ShortlistScores(similarities, indices, scores[:, :k], scores[:, k:])


def sample_outside(indices, num_gallery, count, rng):
    """`(Q, count)` gallery indices drawn uniformly, with replacement, from outside each row of `indices`."""
    excluded = np.sort(indices, axis=1)
    draws = rng.integers(0, num_gallery - excluded.shape[1], size=(len(excluded), count))
    # The d-th index not excluded is d plus the number of excluded ones at or below it,
    # which is the number of j with excluded[j] - j <= d.
    shifted = excluded - np.arange(excluded.shape[1])
    return np.stack([draw + np.searchsorted(row, draw, side="right") for row, draw in zip(shifted, draws)])


def rank_two_stage(score_fn, query_features, gallery_features, shortlist=100, fusion_weight=1.0, index=None,
                   batch_size=DEFAULT_PAIR_BATCH, progress=False, tail_sample=DEFAULT_TAIL_SAMPLE):
    """Embedding shortlist, then pair scores for the shortlist only.

    Args:
        score_fn: a `ScoreFn`.
        query_features, gallery_features: dicts of per-image features, each with an
            `"embedding"` (unit rows) and the features `score_fn` needs.
        shortlist: K, gallery images rescored per query.
        fusion_weight: weight of the pair score against the embedding similarity
            (`fuse_scores`); 1 ranks the shortlist by pair score alone.
        index: an `EmbeddingIndex` of the gallery embeddings, built when None.
        batch_size: pairs per `score_fn` call.
        tail_sample: with `0 < fusion_weight < 1`, gallery images outside the
            shortlist also scored per query, to standardise the pair score over the
            whole gallery (`ShortlistScores`).

    Returns:
        `(Q, G)` float32 scores, higher is better; with K >= G the order equals
        that of `fuse_scores` over `rank_exhaustive`.
    """
    fusing = 0.0 < fusion_weight < 1.0
    return score_shortlist(score_fn, query_features, gallery_features, shortlist, index,
                           tail_sample if fusing else 0, batch_size=batch_size, progress=progress).ranking(fusion_weight)


def _feature_names(score_fn, query_features, gallery_features):
    names = getattr(score_fn, "feature_names", None) or sorted(query_features)
    for side, features in (("query_features", query_features), ("gallery_features", gallery_features)):
        missing = [name for name in names if name not in features]
        if missing:
            raise KeyError(f"{side} lack the features {missing} the score function needs")
    return list(names)


def _count(features, argument):
    if not features:
        raise ValueError(f"{argument} is empty: expected a dict of per-image feature arrays")
    counts = {name: len(value) for name, value in features.items()}
    if len(set(counts.values())) != 1:
        raise ValueError(f"{argument} arrays differ in length: {counts}")
    count = next(iter(counts.values()))
    if count == 0:
        raise ValueError(f"{argument} hold no images")
    return count
