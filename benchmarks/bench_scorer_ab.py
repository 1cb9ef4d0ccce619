"""Two or more exports' LiteRT scorers timed against each other, call by call.

On a shared or noisy machine the medians of two benchmark runs a minute apart can
differ by 2x, which hides a 10-20 % change in an export's form. Here each round
calls every export's scorer once in turn (the same query against the same 100
stored gallery features, one invoke), so a slow moment hits all of them alike; the
minimum over rounds is the figure to compare, the median says how noisy it was.
Scores are compared too (on real crops with `--dataset`/`--root`: a trained model
scores random pixels all alike): forms of one model must give the same scores.

Usage (exports of one model, e.g. before and after a change to the scorer's form):

```bash
python benchmarks/bench_scorer_ab.py export_before export_after --dataset cuhk01 --root DATA/cuhk01
```
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import time  # noqa: E402

import numpy as np  # noqa: E402

from keras_msreid.edge_demo.reid_models import ReIDModels, read_metadata  # noqa: E402
from timing import crops_to_time  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("export_dirs", nargs="+", help="folders written by msreid export (the first is the reference)")
    parser.add_argument("--modes", nargs="+", default=["float32", "int8"], help="export modes to time")
    parser.add_argument("--pairs", type=int, default=100, help="gallery features scored per call (one invoke)")
    parser.add_argument("--rounds", type=int, default=300, help="calls of each scorer, interleaved")
    parser.add_argument("--threads", type=int, default=1, help="LiteRT interpreter threads")
    parser.add_argument("--dataset", default="folder", help="layout of --root (as in msreid train)")
    parser.add_argument("--root", help="dataset whose training crops to score (default: random pixels)")
    args = parser.parse_args()

    image_size = read_metadata(args.export_dirs[0])["image_size"]
    images = crops_to_time(image_size, args.pairs + 1, args.dataset, args.root)
    print(f"{args.pairs} pairs a call, {args.rounds} interleaved rounds, {args.threads} thread(s); ms")
    print(f"{'export':<40} {'mode':<8} {'min':>7} {'median':>7} {'min / ref':>9} {'max |score - ref|':>17}")
    for mode in args.modes:
        models = [ReIDModels.load(folder, mode, num_threads=args.threads) for folder in args.export_dirs]
        # One extractor's features for all, so that only the scorers differ; each
        # scorer gets them encoded for its own inputs.
        features = models[0].extract(images)
        query = {name: value[:1] for name, value in features.items()}
        gallery = {name: value[1:] for name, value in features.items()}
        inputs = [(model.encode(query, side="a"), model.encode(gallery, side="b")) for model in models]
        scores = [model.score(*pair, pairs_per_invoke=None) for model, pair in zip(models, inputs)]
        times = np.zeros((len(models), args.rounds))
        for round_ in range(args.rounds):
            for index, (model, pair) in enumerate(zip(models, inputs)):
                start = time.perf_counter()
                model.score(*pair, pairs_per_invoke=None)
                times[index, round_] = time.perf_counter() - start
        times *= 1000.0
        for folder, row, score in zip(args.export_dirs, times, scores):
            print(f"{folder[-40:]:<40} {mode:<8} {row.min():>7.3f} {np.median(row):>7.3f} "
                  f"{row.min() / times[0].min():>9.3f} {np.abs(score - scores[0]).max():>17.2e}")


if __name__ == "__main__":
    main()
