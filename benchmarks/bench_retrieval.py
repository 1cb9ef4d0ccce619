"""Retrieval at scale: scorer throughput, two-stage ranking time, extraction, two-stage vs exhaustive.

Four parts, each printing a table (medians of `--runs` timed runs where repeated):

- `scorer`: pairs scored per second by the default model's Keras scorer, "grouped"
  and "shift_add" correlation, with and without XLA, fed gathered pairs or bound to
  the feature sets (`KerasScoreFn.bind`), and the share of the correlations alone
  (both directions, every level).
- `scale`: two-stage ranking at Market-1501 size (3,368 queries x 15,913 gallery,
  K=100) on synthetic features of the default model's shapes (ranking cost does not
  depend on the values), by pair score alone and fused (which also scores a sample
  of the rest of the gallery), split into index, scoring and assembly, XLA's
  compilation included; then how the time grows with the gallery (1k, 4k, 16k):
  numpy and FAISS shortlists, two-stage K=100, and exhaustive scoring per query,
  each after an untimed first run.
- `extract`: images per second of feature extraction into a `FeatureStore` (decode,
  resize, extractor, memory-mapped write) on a dataset's query + gallery images, and
  the wall time that implies for Market-1501's 19,281.
- `agreement`: rank-1 / mAP of two-stage (K = 10, 50, 100) against exhaustive for a
  trained model on a dataset, with the time of each.

    python benchmarks/bench_retrieval.py scorer
    python benchmarks/bench_retrieval.py scale --queries 3368 --gallery 15913
    python benchmarks/bench_retrieval.py extract --dataset market1501 --root data/synthetic --limit 2000
    python benchmarks/bench_retrieval.py agreement --model runs/cuhk01/model.keras --dataset cuhk01 \\
        --root ../shared/data/cuhk01 --protocol cuhk01
"""

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

from keras_msreid.retrieval.ranking import (
    DEFAULT_TAIL_SAMPLE,
    embedding_similarity,
    fuse_scores,
    rank_exhaustive,
    score_shortlist,
)
from keras_msreid.retrieval.shortlist import EmbeddingIndex, faiss_available
from timing import median_seconds

MARKET_IMAGES = 3368 + 15913


def default_model(levels=("low", "mid", "high")):
    from keras_msreid.models import MSReID

    model = MSReID.from_options(levels=tuple(levels))
    model.build()
    return model


def compact(model, features):
    """`features` as a compact feature store keeps them (`EncodedFeature`s of `store_codecs(model)`)."""
    from keras_msreid.retrieval.encoding import EncodedFeature
    from keras_msreid.retrieval.extract import store_codecs

    return {name: EncodedFeature(codec, codec.encode(features[name])) for name, codec in store_codecs(model).items()}


def synthetic_features(model, count, seed):
    """Features of the shapes `model`'s extractor gives: unit embedding, unit vector per map cell and patch cell."""
    rng = np.random.default_rng(seed)
    shapes = {name: tuple(tensor.shape[1:]) for name, tensor in model.extractor().output.items()}
    features = {}
    for name in ["embedding"] + model.scorer_feature_names:
        value = rng.standard_normal((count, *shapes[name]), dtype=np.float32)
        value /= np.linalg.norm(value, axis=-1, keepdims=True)
        features[name] = value
    return features


def load_time():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


# --------------------------------------------------------------------------- scorer
def bench_scorer(args):
    import tensorflow as tf

    from keras_msreid.retrieval.extract import keras_score_fn

    model = default_model()
    features = synthetic_features(model, 256, seed=0)
    rng = np.random.default_rng(1)
    first, second = rng.integers(0, 256, args.pairs), rng.integers(0, 256, args.pairs)
    a = {name: value[first] for name, value in features.items()}
    b = {name: value[second] for name, value in features.items()}
    print(f"scorer of the default model ({model.image_size[0]}x{model.image_size[1]}, levels {model.levels}); "
          f"{args.pairs} pairs per timed run; configurations timed in turn, median of {args.runs} rounds; "
          f"load average {load_time():.1f}")
    score_fns = {}
    for correlation in ("grouped", "shift_add"):
        scorer = model.scorer(correlation)
        for jit in (False, True):
            for batch in args.batch_sizes:
                score_fns[(correlation, jit, batch)] = keras_score_fn(scorer, batch_size=batch, jit_compile=jit)
                score_fns[(correlation, jit, batch)](a, b)  # trace / compile
    # Round-robin, so that a change of machine load hits every configuration alike.
    times = {key: [] for key in score_fns}
    for _ in range(args.runs):
        for key, score_fn in score_fns.items():
            start = time.perf_counter()
            score_fn(a, b)
            times[key].append(time.perf_counter() - start)
    rates = {key: args.pairs / statistics.median(values) for key, values in times.items()}
    print(f"{'correlation':>12} {'XLA':>5} {'batch':>6} {'pairs/s':>9}")
    for (correlation, jit, batch), rate in rates.items():
        print(f"{correlation:>12} {'yes' if jit else 'no':>5} {batch:>6} {rate:9.0f}")
    best = max(rates, key=rates.get)
    print(f"fastest: {best[0]}, XLA {'on' if best[1] else 'off'}, batch {best[2]}: {rates[best]:.0f} pairs/s; "
          f"{rates[best] / rates[('grouped', False, best[2])]:.1f}x grouped without XLA at that batch")

    # The same scorer bound to the feature sets, gathering each batch's pairs itself.
    bound = score_fns[best].bind(features, features)
    bound(first, second)
    seconds = median_seconds(lambda: bound(first, second), args.runs)
    print(f"bound to the features (pairs gathered inside the graph): {args.pairs / seconds:.0f} pairs/s, "
          f"{args.pairs / seconds / rates[best]:.1f}x the fastest form fed gathered pairs")

    # Correlations alone (both directions, every level), as the fastest form runs them.
    batch = best[2]
    blocks = model.pair_head.similarities

    def correlations_only(inputs):
        total = 0.0
        for level in model.levels:
            patches = tf.concat([inputs[f"a_{level}_patch"], inputs[f"b_{level}_patch"]], 0)
            maps = tf.concat([inputs[f"b_{level}_map"], inputs[f"a_{level}_map"]], 0)
            total += tf.reduce_sum(blocks[level].correlations[best[0]]([patches, maps]), axis=(1, 2, 3))
        return total

    run = tf.function(correlations_only, jit_compile=best[1])
    inputs = {f"{side}_{name}": value[:batch] for side, features_ in (("a", a), ("b", b))
              for name, value in features_.items() if name != "embedding"}
    run(inputs)
    seconds = median_seconds(lambda: run(inputs), args.runs)
    full = median_seconds(lambda: score_fns[best](a, b), args.runs) / args.pairs
    share = (seconds / batch) / full
    print(f"correlations alone at batch {batch}: {batch / seconds:.0f} pairs/s, "
          f"{100 * share:.0f}% of the full scorer's time per pair (timed right after it)")


# ---------------------------------------------------------------------------- scale
def two_stage_parts(score_fn, query, gallery, shortlist, backend, tail_sample):
    """rank_two_stage split into its timed parts: {part: seconds}; fused when tail_sample > 0."""
    times = {}
    start = time.perf_counter()
    index = EmbeddingIndex(np.asarray(gallery["embedding"]), backend=backend)
    times["index"] = time.perf_counter() - start
    start = time.perf_counter()
    shortlisted = score_shortlist(score_fn, query, gallery, shortlist, index, tail_sample)
    times["scoring"] = time.perf_counter() - start
    start = time.perf_counter()
    shortlisted.ranking(0.5 if tail_sample else 1.0)
    times["assembly"] = time.perf_counter() - start
    times["total"] = sum(times.values())
    return times


def bench_scale(args):
    from keras_msreid.retrieval.extract import keras_score_fn

    model = default_model(args.levels)
    score_fn = keras_score_fn(model.scorer(args.correlation), batch_size=args.pair_batch, jit_compile=not args.no_xla)
    backend = "auto"
    gallery = synthetic_features(model, args.gallery, seed=0)
    if args.compact:
        gallery = compact(model, gallery)
    query = synthetic_features(model, args.queries, seed=1)
    index_backend = EmbeddingIndex(np.asarray(gallery["embedding"][:10])).backend
    print(f"two-stage ranking, {args.queries} queries x {args.gallery} gallery, K={args.shortlist}; levels "
          f"{' '.join(args.levels)}; gallery {'compact store' if args.compact else 'float32'} "
          f"({sum(value.nbytes for value in gallery.values()) / args.gallery / 1024:.1f} KiB/image); scorer "
          f"{args.correlation} XLA {'off' if args.no_xla else 'on'} batch {args.pair_batch}; shortlist "
          f"{index_backend}; load average {load_time():.1f}")
    print(f"{'ranking':>24} {'index s':>8} {'scoring s':>10} {'assembly s':>11} {'total s':>8} {'pairs/s':>8}")
    for tail_sample in args.tail_samples:
        times = two_stage_parts(score_fn, query, gallery, args.shortlist, backend, tail_sample)
        pairs = args.queries * (min(args.shortlist, args.gallery) + tail_sample)
        label = f"fusion, tail sample {tail_sample}" if tail_sample else "pair score"
        verdict = "met" if times["total"] <= 15 else f"missed: {times['total'] / 15:.1f}x over"
        print(f"{label:>24} {times['index']:8.2f} {times['scoring']:10.2f} {times['assembly']:11.2f} "
              f"{times['total']:8.2f} {pairs / times['scoring']:8.0f}  (target total <= 15 s: {verdict})", flush=True)
    del query
    if not args.sizes:
        return

    print(f"\ngrowth with the gallery: {args.scaling_queries} queries, K={args.shortlist}; exhaustive timed on "
          f"{args.exhaustive_queries} queries; load average {load_time():.1f}")
    header = f"{'gallery':>8} {'numpy top-k s':>14} {'faiss top-k s':>14} {'two-stage s':>12} {'exhaustive s/query':>19}"
    print(header)
    queries = synthetic_features(model, args.scaling_queries, seed=2)
    for size in args.sizes:
        subset = {name: value[:size] for name, value in gallery.items()}
        numpy_seconds = median_seconds(
            lambda: EmbeddingIndex(subset["embedding"], backend="numpy").search(queries["embedding"], args.shortlist),
            args.runs)
        faiss_seconds = median_seconds(
            lambda: EmbeddingIndex(subset["embedding"], backend="faiss-flat").search(queries["embedding"],
                                                                                    args.shortlist),
            args.runs) if faiss_available() else float("nan")
        # Untimed first runs: XLA compiles the scorer for each new gallery size (about 1 s).
        two_stage_parts(score_fn, queries, subset, args.shortlist, backend, 0)
        two_stage = two_stage_parts(score_fn, queries, subset, args.shortlist, backend, 0)["total"]
        few = {name: value[: args.exhaustive_queries] for name, value in queries.items()}
        rank_exhaustive(score_fn, few, subset)
        start = time.perf_counter()
        rank_exhaustive(score_fn, few, subset)
        exhaustive = (time.perf_counter() - start) / args.exhaustive_queries
        print(f"{size:>8} {numpy_seconds:14.3f} {faiss_seconds:14.3f} {two_stage:12.2f} {exhaustive:19.2f}",
              flush=True)


# -------------------------------------------------------------------------- extract
def bench_extract(args):
    from keras_msreid.datasets import build_dataset
    from keras_msreid.retrieval.extract import build_feature_store

    dataset = build_dataset(args.dataset, args.root)
    records = (dataset.query + dataset.gallery)[: args.limit]
    model = default_model()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.keras")
        model.save(path)
        warm = build_feature_store(path, records[: args.batch_size], os.path.join(folder, "warm"),
                                   batch_size=args.batch_size, progress=False, model=model)
        del warm
        start = time.perf_counter()
        store = build_feature_store(path, records, os.path.join(folder, "store"), batch_size=args.batch_size,
                                    progress=True, model=model)
        seconds = time.perf_counter() - start
        size = sum(array.nbytes for array in store.features.values())
    rate = len(records) / seconds
    print(f"extraction into a feature store, default model, batch {args.batch_size}; load average {load_time():.1f}")
    print(f"{'images':>7} {'seconds':>8} {'images/s':>9} {'store MB':>9} {'Market-1501 (19,281) s':>23}")
    print(f"{len(records):>7} {seconds:8.1f} {rate:9.1f} {size / 1e6:9.0f} {MARKET_IMAGES / rate:23.0f}")


# ------------------------------------------------------------------------ agreement
def bench_agreement(args):
    import keras

    import keras_msreid.models  # noqa: F401
    from keras_msreid.datasets import build_dataset
    from keras_msreid.retrieval.evaluate import evaluate_scores
    from keras_msreid.retrieval.extract import extract_features, keras_score_fn

    options = {key: getattr(args, key) for key in ("num_test_ids", "split_seed") if getattr(args, key) is not None}
    dataset = build_dataset(args.dataset, args.root, **options)
    model = keras.saving.load_model(args.model, safe_mode=True)
    names = ["embedding"] + model.scorer_feature_names
    extractor = model.extractor()
    query = extract_features(extractor, dataset.query, model.image_size, progress=False, names=names)
    gallery = extract_features(extractor, dataset.gallery, model.image_size, progress=False, names=names)
    score_fn = keras_score_fn(model.scorer(args.correlation), batch_size=args.pair_batch)
    similarities = embedding_similarity(query["embedding"], gallery["embedding"])
    index = EmbeddingIndex(gallery["embedding"])
    score_shortlist(score_fn, query, gallery, 1, index, tail_sample=0)  # compile

    start = time.perf_counter()
    csn = rank_exhaustive(score_fn, query, gallery)
    rows = {"exhaustive": (time.perf_counter() - start, {"embedding": similarities, "csn": csn,
                                                        "fusion": fuse_scores(csn, similarities, args.fusion_weight)})}
    for k in args.shortlists:
        for seed in args.tail_seeds:
            start = time.perf_counter()
            shortlisted = score_shortlist(score_fn, query, gallery, k, index, args.tail_sample, seed,
                                          similarities=similarities)
            matrices = {"csn": shortlisted.ranking(), "fusion": shortlisted.ranking(args.fusion_weight)}
            label = f"two-stage K={k}" + (f" seed {seed}" if len(args.tail_seeds) > 1 else "")
            rows[label] = (time.perf_counter() - start, matrices)
    print(f"{args.dataset} ({len(dataset.query)} queries x {len(dataset.gallery)} gallery, protocol {args.protocol}), "
          f"model {args.model}, fusion weight {args.fusion_weight}, tail sample {args.tail_sample}; load average {load_time():.1f}")
    print(f"{'ranking':>25} {'seconds':>8} {'emb r1':>7} {'emb mAP':>8} {'csn r1':>7} {'csn mAP':>8} "
          f"{'fus r1':>7} {'fus mAP':>8}")
    for label, (seconds, matrices) in rows.items():
        results = evaluate_scores({"embedding": similarities, **matrices}, dataset, args.protocol)
        cells = " ".join(f"{100 * results[name]['rank1']:7.1f} {100 * results[name]['mAP']:8.1f}"
                         for name in ("embedding", "csn", "fusion"))
        print(f"{label:>25} {seconds:8.1f} {cells}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per measurement (median)")
    sub = parser.add_subparsers(dest="part", required=True)
    scorer = sub.add_parser("scorer")
    scorer.add_argument("--pairs", type=int, default=2048)
    scorer.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1024])
    scale = sub.add_parser("scale")
    scale.add_argument("--queries", type=int, default=3368)
    scale.add_argument("--gallery", type=int, default=15913)
    scale.add_argument("--shortlist", type=int, default=100)
    scale.add_argument("--tail-samples", type=int, nargs="+", default=[0, DEFAULT_TAIL_SAMPLE],
                       help="gallery images outside the shortlist scored per query for the fusion (0: pair score alone)")
    scale.add_argument("--sizes", type=int, nargs="*", default=[1000, 4000, 16000],
                       help="gallery sizes of the growth table (none: skip it)")
    scale.add_argument("--levels", nargs="+", default=["low", "mid", "high"], choices=("low", "mid", "high"))
    scale.add_argument("--compact", action="store_true",
                       help="rank a compact store's encoded gallery (decoded per pair batch) instead of float32")
    scale.add_argument("--scaling-queries", type=int, default=100)
    scale.add_argument("--exhaustive-queries", type=int, default=2)
    for part in (scale,):
        part.add_argument("--correlation", default="shift_add", choices=("shift_add", "grouped"))
        part.add_argument("--no-xla", action="store_true")
        part.add_argument("--pair-batch", type=int, default=64)
    extract = sub.add_parser("extract")
    extract.add_argument("--dataset", default="market1501")
    extract.add_argument("--root", required=True)
    extract.add_argument("--limit", type=int, default=2000)
    extract.add_argument("--batch-size", type=int, default=128)
    agreement = sub.add_parser("agreement")
    agreement.add_argument("--model", required=True)
    agreement.add_argument("--dataset", required=True)
    agreement.add_argument("--root", required=True)
    agreement.add_argument("--protocol", default="market1501")
    agreement.add_argument("--num-test-ids", type=int)
    agreement.add_argument("--split-seed", type=int)
    agreement.add_argument("--shortlists", type=int, nargs="+", default=[10, 50, 100])
    agreement.add_argument("--fusion-weight", type=float, default=0.5)
    agreement.add_argument("--tail-sample", type=int, default=DEFAULT_TAIL_SAMPLE,
                           help="gallery images outside the shortlist scored per query for the fusion")
    agreement.add_argument("--tail-seeds", type=int, nargs="+", default=[0], help="seeds of that sample, a row each")
    agreement.add_argument("--correlation", default="shift_add", choices=("shift_add", "grouped"))
    agreement.add_argument("--pair-batch", type=int, default=64)
    args = parser.parse_args()
    {"scorer": bench_scorer, "scale": bench_scale, "extract": bench_extract, "agreement": bench_agreement}[args.part](args)


if __name__ == "__main__":
    main()
