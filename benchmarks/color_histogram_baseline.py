"""Colour-histogram baseline on a ReID dataset: the floor a trained network must clear.

Loads the dataset with `keras_msreid.datasets.build_dataset`, describes every image by
HSV stripe histograms (`keras_msreid.baselines`), ranks the gallery by histogram
distance and prints CMC rank-1/5/10 and mAP (`keras_msreid.metrics`). CUHK01 is
averaged over several seeded identity splits (camera A queries, camera B gallery).

    python benchmarks/color_histogram_baseline.py /tmp/synthetic_market
    python benchmarks/color_histogram_baseline.py ../shared/data/cuhk01 --dataset cuhk01 --splits 10
"""

import argparse
import sys
import time

import cv2
import numpy as np

from keras_msreid.baselines import METRICS, color_histogram_features, histogram_distance
from keras_msreid.datasets import build_dataset
from keras_msreid.metrics import evaluate_ranking


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="dataset folder")
    parser.add_argument("--dataset", default="market1501", help="dataset name for build_dataset (default market1501)")
    parser.add_argument("--metrics", nargs="+", default=list(METRICS), choices=METRICS,
                        help="histogram distances to compare (default: all)")
    parser.add_argument("--stripes", type=int, default=6, help="horizontal stripes (default 6)")
    parser.add_argument("--bins", type=int, nargs=3, default=(8, 4, 4), metavar=("H", "S", "V"),
                        help="hue, saturation and value bins (default 8 4 4)")
    parser.add_argument("--size", type=int, nargs=2, default=(128, 64), metavar=("HEIGHT", "WIDTH"),
                        help="images are resized to this size first (default 128 64)")
    parser.add_argument("--splits", type=int, default=10, help="CUHK01 identity splits to average (default 10)")
    parser.add_argument("--test-ids", type=int, default=100, help="CUHK01 test identities (default 100)")
    return parser.parse_args(argv)


def load_features(paths, size, stripes, bins):
    """Features of every readable image by path; unreadable files are reported and left out."""
    images, kept = [], []
    for path in paths:
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            print(f"warning: skipping unreadable image {path}", file=sys.stderr)
            continue
        images.append(cv2.cvtColor(cv2.resize(bgr, (size[1], size[0]), interpolation=cv2.INTER_AREA),
                                   cv2.COLOR_BGR2RGB))
        kept.append(path)
    features = color_histogram_features(np.stack(images), num_stripes=stripes, bins=tuple(bins))
    return dict(zip(kept, features))


def evaluate(dataset, features, metric, protocol):
    query = [r for r in dataset.query if r.path in features]
    gallery = [r for r in dataset.gallery if r.path in features]
    distances = histogram_distance(np.stack([features[r.path] for r in query]),
                                   np.stack([features[r.path] for r in gallery]), metric=metric)
    ids = lambda records, field: np.array([getattr(r, field) for r in records])  # noqa: E731
    return evaluate_ranking(distances, ids(query, "pid"), ids(gallery, "pid"), ids(query, "camid"),
                            ids(gallery, "camid"), protocol=protocol)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    if args.dataset == "cuhk01":
        datasets = [build_dataset("cuhk01", args.root, num_test_ids=args.test_ids, split_seed=seed)
                    for seed in range(args.splits)]
        protocol = "cuhk01"
    else:
        datasets = [build_dataset(args.dataset, args.root)]
        protocol = "market1501"
    paths = sorted({r.path for d in datasets for r in d.query + d.gallery})
    features = load_features(paths, args.size, args.stripes, args.bins)
    elapsed = time.perf_counter() - start
    print(f"{args.dataset} at {args.root}: {len(datasets[0].query)} queries, {len(datasets[0].gallery)} gallery, "
          f"{len(datasets)} split(s); {len(features)} images described in {elapsed:.1f} s "
          f"({args.stripes} stripes, HSV bins {tuple(args.bins)}, {args.size[0]}x{args.size[1]})")
    print(f"{'metric':<10} {'rank-1':>7} {'rank-5':>7} {'rank-10':>8} {'mAP':>7}")
    for metric in args.metrics:
        results = [evaluate(d, features, metric, protocol) for d in datasets]
        row = [np.mean([r.rank(k) for r in results]) for k in (1, 5, 10)] + [np.mean([r.mAP for r in results])]
        print(f"{metric:<10} " + " ".join(f"{100 * v:>{w}.1f}" for v, w in zip(row, (7, 7, 8, 7))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
