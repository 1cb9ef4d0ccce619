"""The scorer's two LiteRT forms timed against each other, converted from one model in one run.

- `aligned pairs`: `model.scorer("shift_add", context="grouped")`, the export's form
  until format version 2: row i of the a-inputs meets row i of the b-inputs, so a
  query is repeated once per gallery row; the correlations are slices and products.
- `one to many` (the export's form): `model.scorer("one_to_many", context="grouped")`:
  one query against the rows of its gallery, the query's patch the run-time kernel of
  a DEPTHWISE_CONV_2D over the gallery's maps (kept in float in int8, see
  `export/float_ops.py`).

Both are converted as `msreid export` converts its scorer (float32, and int8 calibrated
on training crops with the same float islands). Each round calls every form once in
turn (one query against `--pairs` gallery rows in one invoke), so a slow moment on a
noisy machine hits both alike; the minimum over rounds is the figure to compare, the
median says how noisy it was. Scores are compared with the Keras float model's on the
same features (every query in turn against the other crops).

Usage:

```bash
python benchmarks/bench_scorer_forms.py RUN/model.keras --dataset cuhk01 --root DATA/cuhk01
```
"""

import argparse
import functools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import time  # noqa: E402

import numpy as np  # noqa: E402

from keras_msreid.edge_demo.litert import TFLiteModel  # noqa: E402
from keras_msreid.export.convert import calibration_samples, convert_keras_model  # noqa: E402
from keras_msreid.export.float_ops import float_islands  # noqa: E402
from keras_msreid.models import load_model  # noqa: E402
from keras_msreid.retrieval.extract import keras_score_fn  # noqa: E402
from keras_msreid.retrieval.ranking import rank_exhaustive  # noqa: E402
from timing import crops_to_time  # noqa: E402

FORMS = {"aligned pairs": "shift_add", "one to many": "one_to_many"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a trained .keras model with similarity levels")
    parser.add_argument("--pairs", type=int, default=100, help="gallery rows scored against one query per call")
    parser.add_argument("--rounds", type=int, default=300, help="calls of each form, interleaved")
    parser.add_argument("--threads", type=int, default=1, help="LiteRT interpreter threads")
    parser.add_argument("--calibration-count", type=int, default=200, help="training crops calibrating int8")
    parser.add_argument("--dataset", default="folder", help="layout of --root (as in msreid train)")
    parser.add_argument("--root", help="dataset whose training crops to calibrate on and score "
                                       "(default: random pixels)")
    args = parser.parse_args()

    model = load_model(args.model)
    extractor = model.extractor()
    if args.root is None:
        calibration, ids = crops_to_time(model.image_size, args.calibration_count).astype(np.float32), None
    else:
        from keras_msreid.datasets import build_dataset
        from keras_msreid.export.images import calibration_set

        calibration, ids = calibration_set(build_dataset(args.dataset, args.root).train, tuple(model.image_size),
                                           args.calibration_count)
    representative, _ = calibration_samples(model, extractor, calibration, ids, seed=0)
    crops = crops_to_time(model.image_size, args.pairs + 1, args.dataset, args.root)
    features = extractor.predict(crops.astype(np.float32), verbose=0)
    names = model.scorer_feature_names
    reference = rank_exhaustive(keras_score_fn(model.scorer("shift_add")), features, features)

    converted = {
        form: convert_keras_model(model.scorer(correlation, context="grouped"), ["float32", "int8"],
                                  representative["scorer"], what="scorer",
                                  keep_float=functools.partial(float_islands, "scorer"), int8_output="float32")
        for form, correlation in FORMS.items()
    }
    print(f"one query against {args.pairs} gallery rows a call, {args.rounds} interleaved rounds, "
          f"{args.threads} thread(s); ms; scores against Keras float over {args.pairs + 1} queries")
    print(f"{'form':<14} {'mode':<8} {'min':>7} {'median':>7} {'min / aligned':>13} "
          f"{'max |score - Keras|':>19} {'correlation':>11}")
    for mode in ("float32", "int8"):
        scorers = {form: TFLiteModel(converted[form][mode], num_threads=args.threads) for form in FORMS}
        calls = {form: _one_query_call(scorer, form, features, names, args.pairs) for form, scorer in scorers.items()}
        times = np.zeros((len(FORMS), args.rounds))
        for round_ in range(args.rounds):
            for index, call in enumerate(calls.values()):
                start = time.perf_counter()
                call()
                times[index, round_] = time.perf_counter() - start
        times *= 1000.0
        for index, (form, scorer) in enumerate(scorers.items()):
            scores = _all_scores(scorer, form, features, names)
            print(f"{form:<14} {mode:<8} {times[index].min():>7.3f} {np.median(times[index]):>7.3f} "
                  f"{times[index].min() / times[0].min():>13.3f} {np.abs(scores - reference).max():>19.2e} "
                  f"{np.corrcoef(scores.ravel(), reference.ravel())[0, 1]:>11.5f}")


def _inputs(scorer, form, features, names, query, rows):
    """The scorer's stored inputs for `query` (an index) against `rows` (indices)."""
    repeat = len(rows) if form == "aligned pairs" else 1
    inputs = {f"a_{name}": scorer.prepare_input(f"a_{name}", np.repeat(features[name][query:query + 1], repeat, 0))
              for name in names}
    inputs.update({f"b_{name}": scorer.prepare_input(f"b_{name}", features[name][rows]) for name in names})
    return inputs


def _one_query_call(scorer, form, features, names, pairs):
    inputs = _inputs(scorer, form, features, names, 0, np.arange(1, pairs + 1))
    return lambda: scorer.run_quantized(**inputs)


def _all_scores(scorer, form, features, names):
    """`(queries, rows)`: every crop as the query against every crop."""
    count = len(features[names[0]])
    return np.stack([scorer.real_outputs(scorer.run_quantized(**_inputs(scorer, form, features, names, query,
                                                                         np.arange(count))))["score"]
                     for query in range(count)])


if __name__ == "__main__":
    main()
