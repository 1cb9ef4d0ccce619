"""`evaluate_model`: CMC / mAP / mINP of a model on a dataset's query and gallery.

Three rankings of the same gallery:

- `"embedding"`: cosine similarity of the embeddings;
- `"csn"`: the pair score of the convolution similarity network;
- `"fusion"`: `fuse_scores` of both (weight `fusion_weight` on the pair score).

`ranking="exhaustive"` scores every query x gallery pair; `"two-stage"` scores only
each query's `shortlist` nearest gallery images by embedding, plus, for the fusion,
a small random sample of the rest (`score_shortlist`);
`"auto"` (the default) is exhaustive up to `AUTO_EXHAUSTIVE_PAIRS` pairs (minutes on
a CPU) and two-stage above (Market-1501's 53.6 M pairs would take hours).
Embedding-only models (`levels=()`) give only `"embedding"`.

Example:

>>> results = evaluate_model(model, build_dataset("market1501", root), ranking="two-stage", shortlist=100)
>>> results["fusion"]["rank1"], results["fusion"]["mAP"]
"""

import logging

import numpy as np

from keras_msreid.errors import UserError
from keras_msreid.metrics import evaluate_ranking
from keras_msreid.retrieval.extract import extract_features, keras_score_fn
from keras_msreid.retrieval.ranking import (
    DEFAULT_TAIL_SAMPLE,
    embedding_similarity,
    fuse_scores,
    rank_exhaustive,
    score_shortlist,
)

RANKINGS = ("embedding", "csn", "fusion")
RANKING_METHODS = ("auto", "exhaustive", "two-stage")
# Largest query x gallery count that `ranking="auto"` scores exhaustively.
AUTO_EXHAUSTIVE_PAIRS = 1_000_000

log = logging.getLogger(__name__)


def rank_dataset(model, dataset, rankings=RANKINGS, ranking="auto", shortlist=100, fusion_weight=0.5,
                 batch_size=128, progress=False, pair_batch_size=64):
    """Score matrices `(Q, G)` (higher is better) per ranking, and the features they came from.

    Returns:
        `(scores, query_features, gallery_features)`: `scores` maps each ranking
        of `rankings` the model supports to its matrix.
    """
    unknown = [name for name in rankings if name not in RANKINGS]
    if unknown or not rankings:
        raise ValueError(f"rankings must be a non-empty subset of {RANKINGS}, got {tuple(rankings)}")
    if ranking not in RANKING_METHODS:
        raise ValueError(f"ranking must be one of {RANKING_METHODS}, got {ranking!r}")
    if not dataset.query or not dataset.gallery:
        raise UserError(f"dataset {dataset.name!r} needs a query and a gallery split to be evaluated")
    pair_rankings = [name for name in rankings if name != "embedding"] if model.levels else []
    names = ["embedding"] + (model.scorer_feature_names if pair_rankings else [])
    extractor = model.extractor()
    query = extract_features(extractor, dataset.query, model.image_size, batch_size, progress, names)
    gallery = extract_features(extractor, dataset.gallery, model.image_size, batch_size, progress, names)
    similarities = embedding_similarity(query["embedding"], gallery["embedding"])
    scores = {"embedding": similarities} if "embedding" in rankings or not pair_rankings else {}
    if not pair_rankings:
        return scores, query, gallery

    score_fn = keras_score_fn(model.scorer("shift_add"), pair_batch_size)
    pairs = len(dataset.query) * len(dataset.gallery)
    if ranking == "auto":
        ranking = "exhaustive" if pairs <= AUTO_EXHAUSTIVE_PAIRS else "two-stage"
        log.info("ranking %d query x gallery pairs: %s", pairs, ranking)
    if ranking == "exhaustive":
        if pairs > AUTO_EXHAUSTIVE_PAIRS:
            log.warning("exhaustive ranking scores %d pairs; ranking='two-stage' scores %d",
                        pairs, len(dataset.query) * shortlist)
        pair_scores = rank_exhaustive(score_fn, query, gallery, progress=progress)
        fused = fuse_scores(pair_scores, similarities, fusion_weight) if "fusion" in pair_rankings else None
    else:
        shortlisted = score_shortlist(score_fn, query, gallery, shortlist, progress=progress,
                                      tail_sample=DEFAULT_TAIL_SAMPLE if "fusion" in pair_rankings else 0,
                                      similarities=similarities)
        pair_scores = shortlisted.ranking()
        fused = shortlisted.ranking(fusion_weight) if "fusion" in pair_rankings else None
    if "csn" in pair_rankings:
        scores["csn"] = pair_scores
    if "fusion" in pair_rankings:
        scores["fusion"] = fused
    return scores, query, gallery


def evaluate_model(model, dataset, rankings=RANKINGS, ranking="auto", shortlist=100, fusion_weight=0.5,
                   protocol=None, batch_size=128, progress=False, max_rank=20):
    """Evaluates `model` (an `MSReID`) on `dataset.query` against `dataset.gallery`.

    Args:
        model: an `MSReID` (its `extractor()` and `scorer()` are used).
        dataset: a `ReIDDataset` with query and gallery records.
        rankings: any of `RANKINGS`; embedding-only models give `"embedding"` only.
        ranking: `"auto"`, `"exhaustive"` or `"two-stage"`.
        shortlist: two-stage: gallery images rescored per query.
        fusion_weight: weight of the pair score in `"fusion"`.
        protocol: `evaluate_ranking` protocol (`"market1501"`, `"cuhk01"`, `"cuhk03_sgs"`);
            None: the dataset's own (`dataset.protocol`).
        batch_size: images per extractor call.
        progress: progress lines on stderr.
        max_rank: length of the CMC curve.

    Returns:
        `{ranking: RankingResult.as_dict() plus "cmc": [rank-1, ..., rank-max_rank]}`.
    """
    scores, _, _ = rank_dataset(model, dataset, rankings, ranking, shortlist, fusion_weight, batch_size, progress)
    return evaluate_scores(scores, dataset, protocol, max_rank)


def evaluate_scores(scores, dataset, protocol=None, max_rank=20):
    """`{ranking: RankingResult.as_dict() plus "cmc"}` of score matrices (higher is better).

    `protocol` None: the dataset's own (`dataset.protocol`).
    """
    protocol = protocol or dataset.protocol
    q_pids, q_camids = _labels(dataset.query)
    g_pids, g_camids = _labels(dataset.gallery)
    results = {}
    for name, matrix in scores.items():
        result = evaluate_ranking(
            matrix, q_pids, g_pids, q_camids, g_camids, protocol=protocol, higher_is_better=True, max_rank=max_rank
        )
        results[name] = {**result.as_dict(), "cmc": result.cmc.tolist()}
    return results


def _labels(records):
    return np.array([record.pid for record in records]), np.array([record.camid for record in records])
