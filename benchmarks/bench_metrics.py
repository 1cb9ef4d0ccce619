"""Wall time of the ReID evaluation on Market-1501-sized inputs, and of re-ranking.

Prints a table of medians over `--runs` timed runs:

- `evaluate_ranking` on a random 3,368 x 15,913 matrix with Market-1501-like ids
  (751 identities, 6 cameras, 2,793 distractors of id 0): float32, float64 holding
  float32 values, and float64 proper (the slower exact path), next to a
  torchreid-style per-query loop (`np.argsort(kind="stable")` per row) on the same matrix;
- the CUHK03 single-gallery-shot protocol at CUHK03 size (1,400 x 5,332, 10 repeats);
- `pairwise_distance` of 128-d features at Market-1501 size;
- `re_ranking` at 1,000 x 4,000 with its peak traced memory (tracemalloc, one extra run)
  against the N x N float32 matrix it must hold.

    python benchmarks/bench_metrics.py
    python benchmarks/bench_metrics.py --runs 5 --rerank-queries 2000 --rerank-gallery 8000
"""

import argparse
import tracemalloc

import numpy as np

from keras_msreid.metrics import evaluate_ranking, pairwise_distance, re_ranking
from timing import median_seconds


def market_like_ids(rng, num_query, num_gallery, num_ids, num_cameras, num_distractors):
    """Query and gallery (pids, camids); distractors carry id 0 and appear in the gallery only."""
    query_pids = rng.integers(1, num_ids + 1, num_query)
    gallery_pids = np.r_[np.zeros(num_distractors, int), rng.integers(1, num_ids + 1, num_gallery - num_distractors)]
    query_camids = rng.integers(1, num_cameras + 1, num_query)
    gallery_camids = rng.integers(1, num_cameras + 1, num_gallery)
    return query_pids, gallery_pids, query_camids, gallery_camids


def per_query_loop(distmat, query_pids, gallery_pids, query_camids, gallery_camids, max_rank=20):
    """torchreid-style evaluation: one stable argsort and a few vector ops per query."""
    cmc_sum, ap_sum, num_evaluated = np.zeros(max_rank), 0.0, 0
    for q in range(len(distmat)):
        order = np.argsort(distmat[q], kind="stable")
        same_pid = gallery_pids[order] == query_pids[q]
        hits = same_pid[~(same_pid & (gallery_camids[order] == query_camids[q]))]
        if not hits.any():
            continue
        cmc_sum += np.minimum(np.cumsum(hits), 1)[:max_rank]
        ap_sum += np.sum(np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)) / hits.sum()
        num_evaluated += 1
    return cmc_sum / num_evaluated, ap_sum / num_evaluated


def clustered_features(rng, centres, pids, noise):
    """One Gaussian cluster per identity around `centres[pid]`."""
    return (centres[pids] + noise * rng.normal(size=(len(pids), centres.shape[1]))).astype(np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--queries", type=int, default=3368)
    parser.add_argument("--gallery", type=int, default=15913)
    parser.add_argument("--rerank-queries", type=int, default=1000)
    parser.add_argument("--rerank-gallery", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    rows = []

    ids = market_like_ids(rng, args.queries, args.gallery, 751, 6, min(2793, args.gallery // 5))
    distmat = rng.random((args.queries, args.gallery), dtype=np.float32)
    size = f"{args.queries} x {args.gallery}"
    fast = median_seconds(lambda: evaluate_ranking(distmat, *ids), args.runs)
    rows.append(("evaluate_ranking market1501, float32", size, fast, ""))
    distmat64 = distmat.astype(np.float64)
    seconds = median_seconds(lambda: evaluate_ranking(distmat64, *ids), args.runs)
    rows.append(("evaluate_ranking market1501, float64 from float32", size, seconds, ""))
    distmat64 = rng.random((args.queries, args.gallery))  # not exact in float32
    seconds = median_seconds(lambda: evaluate_ranking(distmat64, *ids), args.runs)
    rows.append(("evaluate_ranking market1501, float64", size, seconds, ""))
    loop = median_seconds(lambda: per_query_loop(distmat, *ids), args.runs)
    rows.append(("per-query loop (torchreid style), float32", size, loop, f"{loop / fast:.1f}x ours"))
    # The two must agree, or the comparison means nothing.
    ours = evaluate_ranking(distmat, *ids)
    loop_cmc, loop_map = per_query_loop(distmat, *ids)
    assert np.allclose(ours.cmc, loop_cmc) and np.isclose(ours.mAP, loop_map)
    del distmat64

    # CUHK03's size (1,400 x 5,332), or the whole matrix when --queries / --gallery are smaller.
    sgs_query, sgs_gallery = min(1400, args.queries), min(5332, args.gallery)
    sgs_ids = market_like_ids(rng, sgs_query, sgs_gallery, 700, 2, 0)
    sgs_distmat = distmat[:sgs_query, :sgs_gallery]
    seconds = median_seconds(
        lambda: evaluate_ranking(sgs_distmat, *sgs_ids, protocol="cuhk03_sgs", repeats=10), args.runs
    )
    rows.append(("evaluate_ranking cuhk03_sgs, 10 repeats", f"{sgs_query} x {sgs_gallery}", seconds, ""))

    centres = rng.normal(size=(752, 128))
    query_features = clustered_features(rng, centres, ids[0], noise=1.5)
    gallery_features = clustered_features(rng, centres, ids[1], noise=1.5)
    seconds = median_seconds(lambda: pairwise_distance(query_features, gallery_features), args.runs)
    rows.append(("pairwise_distance euclidean, 128-d", size, seconds, ""))

    num_query, num_gallery = args.rerank_queries, args.rerank_gallery
    query_features, gallery_features = query_features[:num_query], gallery_features[:num_gallery]
    q_g = pairwise_distance(query_features, gallery_features)
    q_q = pairwise_distance(query_features, query_features)
    g_g = pairwise_distance(gallery_features, gallery_features)
    seconds = median_seconds(lambda: re_ranking(q_g, q_q, g_g), args.runs)
    tracemalloc.start()
    reranked = re_ranking(q_g, q_q, g_g)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    sub_ids = [ids[0][:num_query], ids[1][:num_gallery], ids[2][:num_query], ids[3][:num_gallery]]
    before = evaluate_ranking(q_g, *sub_ids).mAP
    after = evaluate_ranking(reranked, *sub_ids).mAP
    num_all = num_query + num_gallery
    rows.append((
        "re_ranking k1=20 k2=6",
        f"{num_query} x {num_gallery}",
        seconds,
        f"peak {peak / 2**20:.0f} MiB (its N x N float32: {4 * num_all**2 / 2**20:.0f} MiB); "
        f"mAP {before:.3f} -> {after:.3f}",
    ))

    print(f"median of {args.runs} runs, seed {args.seed}")
    print(f"| {'step':<50} | {'size':<13} | {'median s':>8} | notes")
    print(f"|{'-' * 52}|{'-' * 15}|{'-' * 10}|------")
    for name, size, seconds, notes in rows:
        print(f"| {name:<50} | {size:<13} | {seconds:>8.2f} | {notes}")


if __name__ == "__main__":
    main()
