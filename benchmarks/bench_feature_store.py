"""The compact feature store: what each encoding costs in accuracy, and how the store and its index grow.

Three parts, each printing a table:

- `encodings`: a trained model on a dataset's test split, its gallery kept by each
  encoding scheme (float32, the default, and the alternatives), ranked exhaustively
  and in two stages (K = `--shortlist`) by pair score and fused: rank-1 / mAP, their
  difference from float32, and the bytes kept per image.
- `growth`: synthetic unit embeddings from 10k to 1M images: shortlist index build
  time, memory, latency per query and recall@K of the approximate index against
  exact search; then a store with the default model's maps (all levels, synthetic
  values): size on disk, write, append, load, removal and compaction time.
- `engines`: this store against LanceDB (embedded; `pip install lancedb`) on the same
  images and bytes: write, append, delete, size on disk, shortlist latency, reading
  the shortlisted rows' features back, and whether a kill during an append leaves the
  previous store readable.

    python benchmarks/bench_feature_store.py encodings --model runs/conv_ar/model.keras --dataset cuhk01 \\
        --root ../shared/data/cuhk01 --protocol cuhk01 --num-test-ids 100 --split-seed 1 --validation-ids 100
    python benchmarks/bench_feature_store.py growth --sizes 10000 100000 1000000 --store-images 100000
    python benchmarks/bench_feature_store.py engines --images 100000
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

from keras_msreid.retrieval.encoding import EncodedFeature
from keras_msreid.retrieval.shortlist import EmbeddingIndex, faiss_available
from timing import median_seconds

# Encoding schemes compared: name -> encodings over every feature (None: float32 throughout).
SCHEMES = {
    "float32": "float32",
    "float16 embedding, int8 maps and patches": {"embedding": "float16", "low_map": "int8"},
    "default (low map int4)": {},
    "int4 maps": {"mid_map": "int4", "high_map": "int4"},
    "int4 maps and patches": {"mid_map": "int4", "high_map": "int4", "low_patch": "int4", "mid_patch": "int4",
                              "high_patch": "int4"},
}


def load_average():
    return os.getloadavg()[0]


# ------------------------------------------------------------------------ encodings
def scheme_codecs(model, scheme):
    from keras_msreid.retrieval.extract import store_codecs

    names = ["embedding"] + model.scorer_feature_names
    if scheme == "float32":
        return store_codecs(model, {name: "float32" for name in names})
    return store_codecs(model, {name: encoding for name, encoding in scheme.items() if name in names})


def bench_encodings(args):
    import keras

    import keras_msreid.models  # noqa: F401
    from keras_msreid.datasets import build_dataset
    from keras_msreid.retrieval.evaluate import evaluate_scores
    from keras_msreid.retrieval.extract import extract_features, keras_score_fn
    from keras_msreid.retrieval.ranking import embedding_similarity, fuse_scores, rank_exhaustive, score_shortlist

    options = {key: getattr(args, key) for key in ("num_test_ids", "split_seed", "validation_ids")
               if getattr(args, key) is not None}
    dataset = build_dataset(args.dataset, args.root, **options)
    model = keras.saving.load_model(args.model, safe_mode=True)
    names = ["embedding"] + model.scorer_feature_names
    extractor = model.extractor()
    query = extract_features(extractor, dataset.query, model.image_size, progress=False, names=names)
    floats = extract_features(extractor, dataset.gallery, model.image_size, progress=False, names=names)
    score_fn = keras_score_fn(model.scorer("shift_add"))

    def metrics(scores):
        result = evaluate_scores({"ranking": scores}, dataset, protocol=args.protocol)["ranking"]
        return 100 * result["rank1"], 100 * result["mAP"]

    print(f"feature store encodings: {args.model} on {args.dataset} {options}, {len(dataset.query)} queries x "
          f"{len(dataset.gallery)} gallery, K={args.shortlist}, fusion weight {args.fusion_weight}; "
          f"load average {load_average():.1f}")
    header = (f"{'scheme':>42} {'KiB/image':>9} {'exhaustive pair R1/mAP':>23} {'fusion R1/mAP':>14} "
              f"{'two-stage pair R1/mAP':>22} {'fusion R1/mAP':>14}")
    print(header)
    reference = None
    for label, scheme in SCHEMES.items():
        codecs = scheme_codecs(model, scheme)
        gallery = {name: EncodedFeature(codec, codec.encode(floats[name])) for name, codec in codecs.items()}
        similarities = embedding_similarity(query["embedding"], np.asarray(gallery["embedding"]))
        pair = rank_exhaustive(score_fn, query, gallery)
        shortlisted = score_shortlist(score_fn, query, gallery, args.shortlist,
                                      EmbeddingIndex(np.asarray(gallery["embedding"])), similarities=similarities)
        row = [metrics(pair), metrics(fuse_scores(pair, similarities, args.fusion_weight)),
               metrics(shortlisted.ranking()), metrics(shortlisted.ranking(args.fusion_weight))]
        size = sum(codec.bytes_per_image for codec in codecs.values()) / 1024
        cells = " ".join(f"{r1:>11.1f}/{m:<5.2f}" for r1, m in row)
        print(f"{label:>42} {size:9.1f} {cells}", flush=True)
        if reference is None:
            reference = row
        else:
            deltas = " ".join(f"{r1 - r1_ref:>+11.1f}/{m - m_ref:<+5.2f}"
                              for (r1, m), (r1_ref, m_ref) in zip(row, reference))
            print(f"{'difference from float32':>42} {'':>9} {deltas}", flush=True)


# --------------------------------------------------------------------------- growth
def unit_rows(count, dim, seed):
    rows = np.random.default_rng(seed).standard_normal((count, dim), dtype=np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def clustered_rows(count, dim, seed, per_identity=8, spread=0.35):
    """Unit rows around `count / per_identity` identity centres, as a ReID gallery's embeddings cluster.

    Returns `(rows, identity of each row, centres)`.
    """
    rng = np.random.default_rng(seed)
    centres = unit_rows(max(1, count // per_identity), dim, seed + 1)
    identities = rng.integers(0, len(centres), count)
    rows = centres[identities] + spread / np.sqrt(dim) * rng.standard_normal((count, dim), dtype=np.float32)
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32), identities, centres


def bench_growth(args):
    print(f"shortlist index growth: {args.dim}-d clustered unit embeddings, {args.queries} queries, K={args.k}; "
          f"faiss {'present' if faiss_available() else 'absent'}; load average {load_average():.1f}")
    print("recall@K: of the exact top K; identity recall: of the gallery images of the query's own identity "
          "(what two-stage ranking needs in its shortlist)")
    print(f"{'images':>9} {'index':>18} {'build s':>8} {'memory MB':>10} {'ms/query':>9} {'recall@K':>9} "
          f"{'identity recall':>16}")
    for size in args.sizes:
        gallery, identities, centres = clustered_rows(size, args.dim, seed=0)
        noise = 0.35 / np.sqrt(args.dim) * np.random.default_rng(5).standard_normal((args.queries, args.dim))
        query_identities = np.arange(args.queries) % len(centres)
        queries = centres[query_identities] + noise.astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        matches = [np.flatnonzero(identities == identity) for identity in query_identities]
        exact = None
        backends = ["numpy"] + (["faiss-flat", "faiss-hnsw"] if faiss_available() else [])
        for backend in backends:
            if backend == "numpy" and size > args.numpy_limit:
                continue
            start = time.perf_counter()
            index = EmbeddingIndex(gallery, backend=backend, hnsw_neighbors=args.hnsw_neighbors)
            build = time.perf_counter() - start
            memory = len(index.to_bytes()) if backend != "numpy" else gallery.nbytes
            for ef_search in args.ef_search if backend == "faiss-hnsw" else [None]:
                if ef_search is not None:
                    index.hnsw_ef_search = ef_search
                seconds = median_seconds(lambda: index.search(queries, args.k), args.runs, warmup=1)
                _, found = index.search(queries, args.k)
                if exact is None:
                    exact = found
                recall = np.mean([len(np.intersect1d(a, b)) / args.k for a, b in zip(found, exact)])
                identity_recall = (sum(len(np.intersect1d(a, m)) for a, m in zip(found, matches))
                                   / max(1, sum(min(len(m), args.k) for m in matches)))
                label = backend if ef_search is None else f"{backend} ef {ef_search}"
                print(f"{size:>9} {label:>18} {build:8.2f} {memory / 1e6:10.1f} "
                      f"{1000 * seconds / args.queries:9.3f} {recall:9.4f} {identity_recall:16.4f}", flush=True)
            del index
    if args.store_images:
        bench_store_growth(args)


def all_levels_codecs():
    """`(model, store_codecs(model))` of the default-sized model with all three levels."""
    from keras_msreid.models import MSReID
    from keras_msreid.retrieval.extract import store_codecs

    model = MSReID.from_options(levels=("low", "mid", "high"))
    model.build()
    return model, store_codecs(model)


def bench_store_growth(args):
    from keras_msreid.retrieval.feature_store import (
        FeatureStore,
        add_to_feature_store,
        compact_feature_store,
        remove_from_feature_store,
        write_feature_store,
    )

    model, codecs = all_levels_codecs()
    total, added = args.store_images, args.append_images
    paths = [f"/gallery/{i}" for i in range(total + added)]
    extract = synthetic_store_batches(codecs)
    print(f"\nfeature store with maps: all levels, default codecs ({sum(c.bytes_per_image for c in codecs.values())}"
          f" bytes/image), synthetic features; load average {load_average():.1f}")
    folder = tempfile.mkdtemp(prefix="store-growth-", dir=args.tmp)
    try:
        directory = os.path.join(folder, "store")
        start = time.perf_counter()
        write_feature_store(directory, paths[:total], extract, model_sha256="0" * 64, image_size=model.image_size,
                            codecs=codecs, progress=False)
        write = time.perf_counter() - start
        disk = sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(directory) for name in names)
        start = time.perf_counter()
        add_to_feature_store(directory, paths[total:], extract, progress=False)
        append = time.perf_counter() - start
        start = time.perf_counter()
        store = FeatureStore.load(directory)
        index = store.index()
        load = time.perf_counter() - start
        start = time.perf_counter()
        remove_from_feature_store(directory, paths[: added])
        remove = time.perf_counter() - start
        start = time.perf_counter()
        compact_feature_store(directory, progress=False)  # two segments, `added` rows removed: one segment
        compact = time.perf_counter() - start
        print(f"{'images':>9} {'disk MB':>8} {'write s':>8} {'append ' + str(added) + ' s':>13} "
              f"{'load + index s':>15} {'remove ' + str(added) + ' s':>13} {'compact s':>10} {'index':>11}")
        print(f"{total:>9} {disk / 1e6:8.0f} {write:8.1f} {append:13.2f} {load:15.2f} {remove:13.2f} "
              f"{compact:10.1f} {index.backend:>11}")
    finally:
        shutil.rmtree(folder)


# ------------------------------------------------------------------------- engines
def synthetic_store_batches(codecs, batch_size=1024):
    """`extract(items)` of synthetic unit features (seeded by the first item's number)."""

    def extract(items):
        for start in range(0, len(items), batch_size):
            count = min(batch_size, len(items) - start)
            rng = np.random.default_rng(int(str(items[start]).rsplit("/", 1)[1]))
            batch = {}
            for name, codec in codecs.items():
                value = rng.standard_normal((count, *codec.shape), dtype=np.float32)
                batch[name] = value / np.linalg.norm(value, axis=-1, keepdims=True)
            yield batch

    return extract


def folder_bytes(folder):
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(folder) for name in names)


def lance_rows(codecs, extract, paths, first_id):
    """pyarrow record batches for LanceDB: id, path, float32 embedding, and the other features' codes as bytes."""
    import pyarrow as pa

    done = 0
    for batch in extract(paths):
        count = len(batch["embedding"])
        encoded = {name: codec.encode(batch[name]) for name, codec in codecs.items() if name != "embedding"}
        blobs = np.concatenate([np.ascontiguousarray(array).reshape(count, -1).view(np.uint8)
                                for arrays in encoded.values() for array in arrays.values()], axis=1)
        embedding = batch["embedding"].astype(np.float32)
        yield pa.record_batch({
            "id": pa.array(np.arange(first_id + done, first_id + done + count)),
            "path": pa.array(paths[done : done + count]),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(embedding.reshape(-1)), embedding.shape[1]),
            "features": pa.FixedSizeBinaryArray.from_buffers(pa.binary(blobs.shape[1]), count,
                                                             [None, pa.py_buffer(blobs.tobytes())]),
        })
        done += count


KILLED_APPEND = """
import sys, threading, os, signal
sys.path.insert(0, {benchmarks!r})
import numpy as np
import bench_feature_store as b
_, codecs = b.all_levels_codecs()
paths = [f"/gallery/{{i}}" for i in range({first}, {first} + {count})]
extract = b.synthetic_store_batches(codecs)
threading.Timer({after}, lambda: os.kill(os.getpid(), signal.SIGKILL)).start()
if {engine!r} == "lancedb":
    import lancedb, pyarrow as pa
    table = lancedb.connect({folder!r}).open_table("gallery")
    rows = list(b.lance_rows(codecs, extract, paths, {first}))
    table.add(pa.Table.from_batches(rows))
else:
    from keras_msreid.retrieval.feature_store import add_to_feature_store
    add_to_feature_store({folder!r}, paths, extract, progress=False)
print("finished before the kill")
"""


def killed_append(engine, folder, first, count, after):
    """Runs an append of `count` images in a child process killed after `after` seconds; whether it was cut short."""
    code = KILLED_APPEND.format(benchmarks=os.path.dirname(os.path.abspath(__file__)), first=first, count=count,
                                after=after, engine=engine, folder=folder)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    # The timer kills the child even after a finished append: only a kill before it counts.
    return result.returncode == -signal.SIGKILL and "finished before the kill" not in result.stdout


def bench_engines(args):
    import lancedb
    import pyarrow as pa

    from keras_msreid.retrieval.feature_store import (
        FeatureStore,
        add_to_feature_store,
        compact_feature_store,
        remove_from_feature_store,
        write_feature_store,
    )

    model, codecs = all_levels_codecs()
    total, added = args.images, args.append_images
    paths = [f"/gallery/{i}" for i in range(total + added)]
    extract = synthetic_store_batches(codecs)
    queries = unit_rows(args.queries, codecs["embedding"].shape[0], seed=9)
    rows = {}
    folder = tempfile.mkdtemp(prefix="store-engines-", dir=args.tmp)
    try:
        # This store.
        directory = os.path.join(folder, "ours")
        start = time.perf_counter()
        write_feature_store(directory, paths[:total], extract, model_sha256="0" * 64, image_size=model.image_size,
                            codecs=codecs, progress=False, index_backend="faiss-flat")
        write = time.perf_counter() - start
        start = time.perf_counter()
        add_to_feature_store(directory, paths[total:], extract, progress=False)
        append = time.perf_counter() - start
        start = time.perf_counter()
        remove_from_feature_store(directory, paths[total:])
        delete = time.perf_counter() - start
        store = FeatureStore.load(directory)
        index = store.index()
        # One query at a time, as LanceDB's search takes them.
        search = median_seconds(lambda: [index.search(query[None], args.k) for query in queries], args.runs,
                                warmup=1) / args.queries
        _, found = index.search(queries, args.k)
        read = median_seconds(lambda: [store.features[name].take(found[0]) for name in codecs], args.runs, warmup=1)
        disk = folder_bytes(directory)
        killed = killed_append("ours", directory, total + added, 20 * added, args.kill_after)
        survived = FeatureStore.load(directory).count
        rows["this store (npy segments, FAISS flat)"] = (write, append, delete, disk, search, read, killed, survived)

        # LanceDB, embedded, the same rows; features kept as the same encoded bytes.
        uri = os.path.join(folder, "lance")
        db = lancedb.connect(uri)
        start = time.perf_counter()
        table = db.create_table("gallery", data=pa.Table.from_batches(lance_rows(codecs, extract, paths[:total], 0)))
        write = time.perf_counter() - start
        start = time.perf_counter()
        table.add(pa.Table.from_batches(lance_rows(codecs, extract, paths[total:], total)))
        append = time.perf_counter() - start
        start = time.perf_counter()
        table.delete(f"id >= {total}")
        delete = time.perf_counter() - start

        def lance_search():
            for query in queries:
                table.search(query, vector_column_name="embedding").distance_type("dot").limit(args.k) \
                    .select(["id"]).to_arrow()

        search = median_seconds(lance_search, 1, warmup=1) / args.queries
        ids = table.search(queries[0], vector_column_name="embedding").distance_type("dot").limit(args.k) \
            .select(["id"]).to_arrow()["id"].to_numpy()
        id_list = ", ".join(str(i) for i in ids)
        read = median_seconds(lambda: table.search().where(f"id IN ({id_list})").select(["features"])
                              .limit(args.k).to_arrow(), args.runs, warmup=1)
        disk = folder_bytes(uri)
        killed = killed_append("lancedb", uri, total + added, 20 * added, args.kill_after)
        survived = lancedb.connect(uri).open_table("gallery").count_rows()
        rows["LanceDB 0.x embedded, no vector index"] = (write, append, delete, disk, search, read, killed, survived)
    finally:
        shutil.rmtree(folder)

    print(f"feature store engines: {total} images with all levels' default codecs ({sum(c.bytes_per_image for c in codecs.values())}"
          f" bytes/image), append and delete {added}, {args.queries} queries K={args.k}; load average {load_average():.1f}")
    print(f"{'engine':>40} {'write s':>8} {'append s':>9} {'delete s':>9} {'disk MB':>8} {'ms/query':>9} "
          f"{'read K rows ms':>15} {'killed mid-append: rows after':>30}")
    print("(ms/query: one query at a time; read K rows: the shortlist's features, decoded to float32 for this store, "
          "raw bytes for LanceDB)")
    for label, (write, append, delete, disk, search, read, killed, survived) in rows.items():
        outcome = f"{survived} ({'killed' if killed else 'finished first'})"
        print(f"{label:>40} {write:8.1f} {append:9.2f} {delete:9.2f} {disk / 1e6:8.0f} {1000 * search:9.2f} "
              f"{1000 * read:15.2f} {outcome:>30}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per measurement (median)")
    sub = parser.add_subparsers(dest="part", required=True)
    encodings = sub.add_parser("encodings")
    encodings.add_argument("--model", required=True)
    encodings.add_argument("--dataset", required=True)
    encodings.add_argument("--root", required=True)
    encodings.add_argument("--protocol", default="market1501")
    encodings.add_argument("--num-test-ids", type=int)
    encodings.add_argument("--split-seed", type=int)
    encodings.add_argument("--validation-ids", type=int,
                           help="rank identities carved from the training ones (choose the default encodings there)")
    encodings.add_argument("--shortlist", type=int, default=100)
    encodings.add_argument("--fusion-weight", type=float, default=0.5)
    growth = sub.add_parser("growth")
    growth.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    growth.add_argument("--dim", type=int, default=128)
    growth.add_argument("--queries", type=int, default=1000)
    growth.add_argument("--k", type=int, default=100)
    growth.add_argument("--hnsw-neighbors", type=int, default=32)
    growth.add_argument("--ef-search", type=int, nargs="+", default=[128, 512], help="HNSW search breadths timed")
    growth.add_argument("--numpy-limit", type=int, default=1_000_000, help="largest gallery searched with numpy")
    growth.add_argument("--store-images", type=int, default=100_000, help="images of the store with maps (0: skip)")
    growth.add_argument("--append-images", type=int, default=1000)
    growth.add_argument("--tmp", default=None, help="folder for the temporary store (default: the system's)")
    engines = sub.add_parser("engines")
    engines.add_argument("--images", type=int, default=100_000)
    engines.add_argument("--append-images", type=int, default=1000)
    engines.add_argument("--queries", type=int, default=200)
    engines.add_argument("--k", type=int, default=100)
    engines.add_argument("--kill-after", type=float, default=8.0,
                         help="seconds after its start that the child appending 20x --append-images is killed")
    engines.add_argument("--tmp", default=None, help="folder for the temporary stores (default: the system's)")
    args = parser.parse_args()
    {"encodings": bench_encodings, "growth": bench_growth, "engines": bench_engines}[args.part](args)


if __name__ == "__main__":
    main()
