"""The extractors of several exports under LiteRT, timed in alternated rounds, in one run.

Usage:
    python benchmarks/bench_extractors.py EXPORT [EXPORT ...] [--rounds 5] [--runs 200] [--threads 1]

For each export and mode (float32, int8, as exported): the median time of one
`ReIDModels.extract` of a 160x64 crop (batch 1) over `--runs` calls, after a
warm-up; every model is timed once per round, in turn, `--rounds` times, so that a
drift of the machine (these virtual machines drift by 25 % within minutes) hits every
model alike. Prints each round and the median of the rounds, and each model's ratio
to the first export's in the same mode. Latency does not depend on the weights: an
untrained model's export times the same as a trained one's.
"""

import argparse
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_msreid.edge_demo.reid_models import ReIDModels, read_metadata  # noqa: E402
from timing import crops_to_time, median_seconds  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("exports", nargs="+", help="folders written by msreid export")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=200, help="timed calls per model and round")
    parser.add_argument("--threads", type=int, default=1, help="LiteRT interpreter threads")
    args = parser.parse_args()

    models = {}
    for export in args.exports:
        metadata = read_metadata(export)
        for mode in metadata["models"]:
            models[(export, mode)] = ReIDModels.load(export, mode, num_threads=args.threads)
    image = crops_to_time((160, 64), 1)
    times = {key: [] for key in models}
    for _ in range(args.rounds):
        for key, reid in models.items():
            times[key].append(1000.0 * median_seconds(lambda: reid.extract(image), args.runs, warmup=20))

    first = args.exports[0]
    print(f"extractor ms per 160x64 image, LiteRT {args.threads} thread(s), median of {args.runs} calls per round")
    print(f"{'export':<28} {'mode':<8} {'median':>7} {'vs first':>8}  rounds")
    for (export, mode), rounds in times.items():
        median = statistics.median(rounds)
        base = statistics.median(times[(first, mode)]) if (first, mode) in times else float("nan")
        print(f"{export:<28} {mode:<8} {median:7.3f} {median / base:7.2f}x  " + " ".join(f"{t:.3f}" for t in rounds))


if __name__ == "__main__":
    main()
